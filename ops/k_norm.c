/* pml — stub (to be written) */
#include "kernels.h"

pml_status pml__batchnorm_infer(pml_node *n, const pml_shape *in, int nin) { return pml_fail(PML_EUNSUPPORTED, "node '%s': batchnorm is not implemented yet", n->name); }
void pml__batchnorm_fwd(const pml_kctx *k) { (void)k; }
void pml__batchnorm_bwd(const pml_kctx *k) { (void)k; }
void pml__batchnorm_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__batchnorm_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__batchnorm_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__batchnorm_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
