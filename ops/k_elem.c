/* pml — stub (to be written) */
#include "kernels.h"

pml_status pml__relu_infer(pml_node *n, const pml_shape *in, int nin) { return pml_fail(PML_EUNSUPPORTED, "node '%s': relu is not implemented yet", n->name); }
void pml__relu_fwd(const pml_kctx *k) { (void)k; }
void pml__relu_bwd(const pml_kctx *k) { (void)k; }
void pml__relu_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__relu_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__relu_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__relu_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
pml_status pml__flatten_infer(pml_node *n, const pml_shape *in, int nin) { return pml_fail(PML_EUNSUPPORTED, "node '%s': flatten is not implemented yet", n->name); }
void pml__flatten_fwd(const pml_kctx *k) { (void)k; }
void pml__flatten_bwd(const pml_kctx *k) { (void)k; }
void pml__flatten_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__flatten_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__flatten_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__flatten_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
pml_status pml__add_infer(pml_node *n, const pml_shape *in, int nin) { return pml_fail(PML_EUNSUPPORTED, "node '%s': add is not implemented yet", n->name); }
void pml__add_fwd(const pml_kctx *k) { (void)k; }
void pml__add_bwd(const pml_kctx *k) { (void)k; }
void pml__add_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__add_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__add_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__add_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
pml_status pml__concat_infer(pml_node *n, const pml_shape *in, int nin) { return pml_fail(PML_EUNSUPPORTED, "node '%s': concat is not implemented yet", n->name); }
void pml__concat_fwd(const pml_kctx *k) { (void)k; }
void pml__concat_bwd(const pml_kctx *k) { (void)k; }
void pml__concat_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__concat_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__concat_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__concat_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
pml_status pml__dropout_infer(pml_node *n, const pml_shape *in, int nin) { return pml_fail(PML_EUNSUPPORTED, "node '%s': dropout is not implemented yet", n->name); }
void pml__dropout_fwd(const pml_kctx *k) { (void)k; }
void pml__dropout_bwd(const pml_kctx *k) { (void)k; }
void pml__dropout_fwd_ref(const pml_kctx *k) { (void)k; }
void pml__dropout_bwd_ref(const pml_kctx *k) { (void)k; }
double pml__dropout_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__dropout_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }
