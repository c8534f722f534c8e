/* pml — internal: the functions behind the op table (ops/optable.c). One group per op. */
#ifndef PML_OPS_KERNELS_H
#define PML_OPS_KERNELS_H

#include "ops/ops.h"

#define PML__OP_DECL(op)                                                                           \
    pml_status pml__##op##_infer(pml_node *n, const pml_shape *in, int nin);                      \
    void pml__##op##_fwd(const pml_kctx *k);                                                       \
    void pml__##op##_bwd(const pml_kctx *k);                                                       \
    void pml__##op##_fwd_ref(const pml_kctx *k);                                                   \
    void pml__##op##_bwd_ref(const pml_kctx *k);                                                   \
    double pml__##op##_flops(const pml_node *n, const pml_shape *in, int nin);                    \
    size_t pml__##op##_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r);         \
    pml_region pml__##op##_in_region(const pml_node *n, const pml_shape *in, int nin, int i,       \
                                     pml_region out);

PML__OP_DECL(input)
PML__OP_DECL(linear)
PML__OP_DECL(conv2d)
PML__OP_DECL(maxpool2d)
PML__OP_DECL(avgpool2d)
PML__OP_DECL(relu)
PML__OP_DECL(flatten)
PML__OP_DECL(add)
PML__OP_DECL(concat)
PML__OP_DECL(activation)
PML__OP_DECL(mul)
/* mul's second input is one value per channel (C, 1, 1) of a larger first */
bool pml__mul_per_channel(const pml_shape *in);
PML__OP_DECL(matmul)
PML__OP_DECL(batchnorm)
PML__OP_DECL(dropout)
PML__OP_DECL(softmax_xent)

/* conv2d's two implementations: im2col + sgemm (k_conv.c) and oneDNN (k_conv_dnnl.c; returns
 * false when it does not run the call: not built in, a row range, a shape it cannot do, or the
 * sgemm kernel measured faster for the shape). */
void pml__conv2d_fwd_blas(const pml_kctx *k);
void pml__conv2d_bwd_blas(const pml_kctx *k);
size_t pml__conv2d_ws_blas(const pml_node *n, const pml_shape *in, pml_region r);
bool pml__conv2d_dnnl(const pml_kctx *k, bool bwd);
size_t pml__conv2d_dnnl_ws(const pml_node *n, const pml_shape *in, pml_region r);

/* Shared helpers for kernels. */

/* Hot loops are compiled three times, for x86-64-v4 (AVX-512 F/BW/DQ/VL, any vendor), x86-64-v3
 * (AVX2+FMA) and the baseline, and picked at load time by the CPU's features. ("arch=haswell"
 * would be picked on Intel Haswell and later only.) GCC's v4 code keeps 256-bit vectors by
 * default (no frequency drop on the CPUs that have one) with AVX-512's masks and 32 registers. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define PML_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PML_HOT
#endif

/** m[i] = y[i] > 0 ? dy[i] : 0 for i < n: a relu's gradient mask, branch-free (a relu's output
 * has its signs scattered: a branch a value mispredicted half the time made flowers-cnn's first
 * convolution's backward 5x slower than its arithmetic). m may not overlap y or dy. */
void pml__relu_mask(float *m, const float *y, const float *dy, size_t n);
/** The same over `rows` rows of `len` values, `ld` apart in y and dy, dense in m (one call when
 * the rows are contiguous). */
void pml__relu_mask_rows(float *m, const float *y, const float *dy, size_t ld, size_t rows,
                         size_t len);


/** Resolves conv/pool padding and output size along one axis.
 * \return output size, or <= 0 when the window does not fit. */
int pml__window_out(int in, int k, int s, int mode, int pexp, int ceil_mode, int *pbefore,
                    int *pafter);
/* A 3-D window op's depth (a.depth > 0; nothing to do for 2-D): checks depth, kd, sd, dd and pd
 * against input x (C, D*H, W), resolves a.od, a.pf, a.pk, and gives in *rows the rows of a
 * plane (x.h for 2-D). \return PML_OK or an error naming node n (op \p op). */
pml_status pml__depth_window(pml_node *n, pml_shape x, const char *op, int ceil_mode, int *rows);
/** Sets a parameter slot of a node (called from infer). */
void pml__node_param(pml_node *n, int i, size_t size, int init, int fan_in, int fan_out);
void pml__node_state(pml_node *n, int i, size_t size, int init);

#endif
