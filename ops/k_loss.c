/* pml — stub (to be written) */
#include "kernels.h"

pml_status pml__softmax_xent_infer(pml_node *n, const pml_shape *in, int nin) { return pml_fail(PML_EUNSUPPORTED, "node '%s': softmax_xent is not implemented yet", n->name); }
void pml__softmax_xent_fwd(const pml_kctx *k) { (void)k; }
void pml__softmax_xent_bwd(const pml_kctx *k) { (void)k; }
void pml__softmax_xent_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__softmax_xent_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__softmax_xent_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__softmax_xent_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
