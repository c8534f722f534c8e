/* pml — input: the batch enters the graph here (the executor fills its buffer). */
#include "kernels.h"

pml_status pml__input_infer(pml_node *n, const pml_shape *in, int nin)
{
    pml_shape s = n->a.shape;
    if (s.c <= 0 || s.h <= 0 || s.w <= 0)
        return pml_fail(PML_ESHAPE, "node '%s' (input): shape %dx%dx%d must be positive", n->name,
                        s.c, s.h, s.w);
    if (pml_shape_size(s) > (1u << 28))
        return pml_fail(PML_ESHAPE, "node '%s' (input): shape %dx%dx%d is too large", n->name, s.c,
                        s.h, s.w);
    n->out = s;
    return PML_OK;
}

void pml__input_fwd(const pml_kctx *k) { (void)k; }
void pml__input_bwd(const pml_kctx *k) { (void)k; }
void pml__input_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__input_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__input_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__input_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
