/* pml — linear (dense): y = act(x W' + b). W is stored (out, in), as PyTorch's nn.Linear and
 * ONNX's Gemm with transB=1 store it: a parameter split (a block of output units) owns one
 * contiguous block of rows of W, so the cores of a split never write next to each other's
 * weights (interleaved column blocks made the hardware prefetchers move lines between cores at
 * every update). Keras' kernel (in, out) is W transposed. */
#include "kernels.h"

#include <cblas.h>
#include <string.h>

pml_status pml__linear_infer(pml_node *n, const pml_shape *in, int nin)
{
    if (in[0].h != 1 || in[0].w != 1)
        return pml_fail(PML_ESHAPE,
                        "node '%s' (linear): input is %dx%dx%d, needs a vector (add a flatten)",
                        n->name, in[0].c, in[0].h, in[0].w);
    if (n->a.out <= 0)
        return pml_fail(PML_EFORMAT, "node '%s' (linear): out=%d must be positive", n->name,
                        n->a.out);
    if (n->a.act != PML_ACT_NONE && n->a.act != PML_ACT_RELU)
        return pml_fail(PML_EFORMAT, "node '%s' (linear): unknown activation %d", n->name, n->a.act);
    int K = in[0].c, O = n->a.out;
    if ((size_t)K * (size_t)O > ((size_t)1 << 31))
        return pml_fail(PML_ESHAPE, "node '%s' (linear): %d x %d weights are too many", n->name, K,
                        O);
    n->out = (pml_shape){O, 1, 1};
    pml__node_param(n, 0, (size_t)O * K, PML_INIT_GLOROT, K, O);
    if (n->a.bias) pml__node_param(n, 1, (size_t)O, PML_INIT_ZEROS, 0, 0);
    return PML_OK;
}

double pml__linear_flops(const pml_node *n, const pml_shape *in, int nin)
{
    return 2.0 * (double)in[0].c * n->a.out;
}

size_t pml__linear_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    /* forward of a block of the units: its product; backward with relu: the masked dy block */
    const bool part = r.c1 - r.c0 < n->out.c;
    return part || n->a.act == PML_ACT_RELU ? (size_t)(r.n1 - r.n0) * (size_t)(r.c1 - r.c0) : 0;
}

// x (N,K) -> y (N,O); region rows [n0,n1), columns [c0,c1)
void pml__linear_fwd(const pml_kctx *k)
{
    const pml_node *n = k->node;
    const int K = k->xs[0].c, O = n->out.c;
    const int rows = k->r.n1 - k->r.n0, cols = k->r.c1 - k->r.c0;
    if (rows <= 0 || cols <= 0) return;
    float *y = k->y + (size_t)k->r.n0 * O + k->r.c0;
    /* A block of the units writes columns of rows whose other columns another core writes:
     * sgemm's passes over them (zeroing, a pass per block of K, then the bias and relu) move the
     * lines at the block's edges between the cores each time (the prefetchers take the
     * neighbours too: a 32x64x784 part ran 1.15x slower so). So the product goes to the
     * workspace, and y is written once. */
    const bool part = cols < O && k->ws;
    float *z = part ? k->ws : y;
    const int ldz = part ? cols : O;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, K, 1.0f,
                k->x[0] + (size_t)k->r.n0 * K, K, k->w[0] + (size_t)k->r.c0 * K, K, 0.0f, z, ldz);
    const float *b = n->a.bias ? k->w[1] + k->r.c0 : NULL;
    const bool relu = n->a.act == PML_ACT_RELU;
    for (int i = 0; i < rows; i++) {
        const float *zr = z + (size_t)i * ldz;
        float *yr = y + (size_t)i * O;
        for (int j = 0; j < cols; j++) {
            float v = b ? zr[j] + b[j] : zr[j];
            yr[j] = relu && !(v > 0.0f) ? 0.0f : v;
        }
    }
}

// dy (N,O) -> dx (N,K) +=, dW (O,K) +=, db (O) +=
void pml__linear_bwd(const pml_kctx *k)
{
    const pml_node *n = k->node;
    const int K = k->xs[0].c, O = n->out.c;
    const int rows = k->r.n1 - k->r.n0, cols = k->r.c1 - k->r.c0;
    if (rows <= 0 || cols <= 0) return;
    const size_t off = (size_t)k->r.n0 * O + k->r.c0;
    const float *dz = k->dy + off;
    int ldz = O;
    if (n->a.act == PML_ACT_RELU) {
        float *m = k->ws;
        const float *y = k->y + off;
        pml__relu_mask_rows(m, y, dz, (size_t)O, (size_t)rows, (size_t)cols);
        dz = m;
        ldz = cols;
    }
    const float *x = k->x[0] + (size_t)k->r.n0 * K;
    if (k->dw[0])
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, K, rows, 1.0f, dz, ldz, x, K,
                    1.0f, k->dw[0] + (size_t)k->r.c0 * K, K);
    if (n->a.bias && k->dw[1]) {
        float *db = k->dw[1] + k->r.c0;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) db[j] += dz[(size_t)i * ldz + j];
    }
    if (k->dx[0])
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, K, cols, 1.0f, dz, ldz,
                    k->w[0] + (size_t)k->r.c0 * K, K, 1.0f, k->dx[0] + (size_t)k->r.n0 * K, K);
}

void pml__linear_fwd_ref(const pml_kctx *k)
{
    const pml_node *n = k->node;
    const int K = k->xs[0].c, O = n->out.c;
    for (int i = k->r.n0; i < k->r.n1; i++)
        for (int o = k->r.c0; o < k->r.c1; o++) {
            double s = n->a.bias ? k->w[1][o] : 0.0;
            for (int j = 0; j < K; j++) s += (double)k->x[0][(size_t)i * K + j] * k->w[0][(size_t)o * K + j];
            if (n->a.act == PML_ACT_RELU && s < 0) s = 0;
            k->y[(size_t)i * O + o] = (float)s;
        }
}

void pml__linear_bwd_ref(const pml_kctx *k)
{
    const pml_node *n = k->node;
    const int K = k->xs[0].c, O = n->out.c;
    for (int i = k->r.n0; i < k->r.n1; i++)
        for (int o = k->r.c0; o < k->r.c1; o++) {
            size_t s = (size_t)i * O + o;
            float g = k->dy[s];
            if (n->a.act == PML_ACT_RELU && !(k->y[s] > 0.0f)) g = 0.0f;
            if (n->a.bias && k->dw[1]) k->dw[1][o] += g;
            for (int j = 0; j < K; j++) {
                if (k->dw[0]) k->dw[0][(size_t)o * K + j] += k->x[0][(size_t)i * K + j] * g;
                if (k->dx[0]) k->dx[0][(size_t)i * K + j] += k->w[0][(size_t)o * K + j] * g;
            }
        }
}

/* ---------------------------------------------------------------- matmul
 *
 * The product of two tensors, sample by sample: a sample of each holds matrices, and y's are
 * a's times b's. axis 0: one matrix a sample, its rows the channels: a (M, K, 1) b (K, P, 1) ->
 * y (M, P, 1) (ONNX's MatMul of (N, M, K) and (N, K, P)); axis 1: C matrices, rows the rows:
 * a (C, M, K) b (C, K, P) -> y (C, M, P) (of (N, C, M, K) and (N, C, K, P)). A region of y is
 * matrices [m0, m1), their rows [r0, r1) and columns [q0, q1). */

typedef struct mmgeom {
    int nm, M, K, P; /* matrices a sample, of M x K (a), K x P (b), M x P (y) */
    int m0, m1, r0, r1, q0, q1;
} mmgeom;

static mmgeom mm_geom(const pml_node *n, const pml_shape *in, pml_region r)
{
    mmgeom g;
    if (n->a.axis == 0) {
        g = (mmgeom){1, in[0].c, in[0].h, in[1].h, 0, 1, r.c0, r.c1, r.h0, r.h1};
    } else {
        g = (mmgeom){in[0].c, in[0].h, in[0].w, in[1].w, r.c0, r.c1, r.h0, r.h1, 0, in[1].w};
    }
    return g;
}

pml_status pml__matmul_infer(pml_node *n, const pml_shape *in, int nin)
{
    if (nin != 2)
        return pml_fail(PML_EFORMAT, "node '%s' (matmul): takes 2 inputs, has %d", n->name, nin);
    const pml_shape a = in[0], b = in[1];
    if (n->a.axis == 0 && a.w == 1 && b.w == 1 && a.h == b.c) {
        n->out = (pml_shape){a.c, b.h, 1};
    } else if (n->a.axis == 1 && a.c == b.c && a.w == b.h) {
        n->out = (pml_shape){a.c, a.h, b.w};
    } else if (n->a.axis != 0 && n->a.axis != 1) {
        return pml_fail(PML_EFORMAT,
                        "node '%s' (matmul): axis=%d; the matrices' rows are the channels (0) "
                        "or the rows (1)",
                        n->name, n->a.axis);
    } else {
        return pml_fail(PML_ESHAPE,
                        "node '%s' (matmul): input 0 is %dx%dx%d, input 1 %dx%dx%d: %s", n->name,
                        a.c, a.h, a.w, b.c, b.h, b.w,
                        n->a.axis == 0 ? "one matrix a sample (axis 0) takes (M, K, 1) and "
                                         "(K, P, 1)"
                                       : "matrices along the channels (axis 1) take (C, M, K) "
                                         "and (C, K, P)");
    }
    return PML_OK;
}

double pml__matmul_flops(const pml_node *n, const pml_shape *in, int nin)
{
    const mmgeom g = mm_geom(n, in, (pml_region){0, 1, 0, n->out.c, 0, n->out.h});
    return 2.0 * (g.m1 - g.m0) * (double)g.M * g.K * g.P;
}

size_t pml__matmul_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return 0; }

/* sample s's matrix m of a, b and y (or their gradients) */
#define MM_A(p, g, s, m) ((p) + (((size_t)(s) * (size_t)(g).nm + (m)) * (g).M * (g).K))
#define MM_B(p, g, s, m) ((p) + (((size_t)(s) * (size_t)(g).nm + (m)) * (g).K * (g).P))
#define MM_Y(p, g, s, m) ((p) + (((size_t)(s) * (size_t)(g).nm + (m)) * (g).M * (g).P))

// a (N, matrices of M x K), b (N, of K x P) -> y (N, of M x P) on region r
void pml__matmul_fwd(const pml_kctx *k)
{
    const mmgeom g = mm_geom(k->node, k->xs, k->r);
    const int rows = g.r1 - g.r0, cols = g.q1 - g.q0;
    if (rows <= 0 || cols <= 0) return;
    for (int s = k->r.n0; s < k->r.n1; s++)
        for (int m = g.m0; m < g.m1; m++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, g.K, 1.0f,
                        MM_A(k->x[0], g, s, m) + (size_t)g.r0 * g.K, g.K,
                        MM_B(k->x[1], g, s, m) + g.q0, g.P, 0.0f,
                        MM_Y(k->y, g, s, m) + (size_t)g.r0 * g.P + g.q0, g.P);
}

// dy -> da += dy b', db += a' dy (a region's rows of b's gradient: partial sums)
void pml__matmul_bwd(const pml_kctx *k)
{
    const mmgeom g = mm_geom(k->node, k->xs, k->r);
    const int rows = g.r1 - g.r0, cols = g.q1 - g.q0;
    if (rows <= 0 || cols <= 0) return;
    for (int s = k->r.n0; s < k->r.n1; s++)
        for (int m = g.m0; m < g.m1; m++) {
            const float *dy = MM_Y(k->dy, g, s, m) + (size_t)g.r0 * g.P + g.q0;
            if (k->dx[0])
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, g.K, cols, 1.0f, dy,
                            g.P, MM_B(k->x[1], g, s, m) + g.q0, g.P, 1.0f,
                            MM_A(k->dx[0], g, s, m) + (size_t)g.r0 * g.K, g.K);
            if (k->dx[1])
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.K, cols, rows, 1.0f,
                            MM_A(k->x[0], g, s, m) + (size_t)g.r0 * g.K, g.K, dy, g.P, 1.0f,
                            MM_B(k->dx[1], g, s, m) + g.q0, g.P);
        }
}

void pml__matmul_fwd_ref(const pml_kctx *k)
{
    const mmgeom g = mm_geom(k->node, k->xs, k->r);
    for (int s = k->r.n0; s < k->r.n1; s++)
        for (int m = g.m0; m < g.m1; m++)
            for (int i = g.r0; i < g.r1; i++)
                for (int j = g.q0; j < g.q1; j++) {
                    double z = 0;
                    for (int t = 0; t < g.K; t++)
                        z += (double)MM_A(k->x[0], g, s, m)[(size_t)i * g.K + t] *
                             MM_B(k->x[1], g, s, m)[(size_t)t * g.P + j];
                    MM_Y(k->y, g, s, m)[(size_t)i * g.P + j] = (float)z;
                }
}

void pml__matmul_bwd_ref(const pml_kctx *k)
{
    const mmgeom g = mm_geom(k->node, k->xs, k->r);
    for (int s = k->r.n0; s < k->r.n1; s++)
        for (int m = g.m0; m < g.m1; m++)
            for (int i = g.r0; i < g.r1; i++)
                for (int j = g.q0; j < g.q1; j++) {
                    const double d = MM_Y(k->dy, g, s, m)[(size_t)i * g.P + j];
                    for (int t = 0; t < g.K; t++) {
                        if (k->dx[0])
                            MM_A(k->dx[0], g, s, m)[(size_t)i * g.K + t] +=
                                (float)(d * MM_B(k->x[1], g, s, m)[(size_t)t * g.P + j]);
                        if (k->dx[1])
                            MM_B(k->dx[1], g, s, m)[(size_t)t * g.P + j] +=
                                (float)(d * MM_A(k->x[0], g, s, m)[(size_t)i * g.K + t]);
                    }
                }
}
