/* pml — stub (to be written) */
#include "kernels.h"

pml_status pml__linear_infer(pml_node *n, const pml_shape *in, int nin) { return pml_fail(PML_EUNSUPPORTED, "node '%s': linear is not implemented yet", n->name); }
void pml__linear_fwd(const pml_kctx *k) { (void)k; }
void pml__linear_bwd(const pml_kctx *k) { (void)k; }
void pml__linear_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__linear_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__linear_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__linear_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
