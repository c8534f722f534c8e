/* pml — stub (to be written) */
#include "kernels.h"

pml_status pml__conv2d_infer(pml_node *n, const pml_shape *in, int nin) { return pml_fail(PML_EUNSUPPORTED, "node '%s': conv2d is not implemented yet", n->name); }
void pml__conv2d_fwd(const pml_kctx *k) { (void)k; }
void pml__conv2d_bwd(const pml_kctx *k) { (void)k; }
void pml__conv2d_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__conv2d_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__conv2d_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__conv2d_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
