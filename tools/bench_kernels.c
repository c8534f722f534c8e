/* bench-kernels — times the fast conv2d and pool kernels (forward and backward, full region, one
 * thread) on the layer shapes of the Fashion-MNIST CNN and the TF flowers CNN, and prints GFLOP/s.
 * A benchmark, not a test: `bench-kernels [batch] [seconds per kernel]`. */
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct layer {
    const char *model, *name;
    pml_op_type op;
    pml_shape in;
    int out, k, pad_mode, relu;
    bool need_dx; /* false for the first conv: it reads the data */
} layer;

static const layer layers[] = {
    {"fashion", "conv1", PML_OP_CONV2D, {1, 28, 28}, 32, 3, PML_PAD_VALID, 1, false},
    {"fashion", "pool1", PML_OP_MAXPOOL2D, {32, 26, 26}, 0, 2, PML_PAD_VALID, 0, true},
    {"fashion", "conv2", PML_OP_CONV2D, {32, 13, 13}, 64, 3, PML_PAD_VALID, 1, true},
    {"fashion", "pool2", PML_OP_MAXPOOL2D, {64, 11, 11}, 0, 2, PML_PAD_VALID, 0, true},
    {"flowers", "conv1", PML_OP_CONV2D, {3, 180, 180}, 16, 3, PML_PAD_SAME, 1, false},
    {"flowers", "pool1", PML_OP_MAXPOOL2D, {16, 180, 180}, 0, 2, PML_PAD_VALID, 0, true},
    {"flowers", "conv2", PML_OP_CONV2D, {16, 90, 90}, 32, 3, PML_PAD_SAME, 1, true},
    {"flowers", "pool2", PML_OP_MAXPOOL2D, {32, 90, 90}, 0, 2, PML_PAD_VALID, 0, true},
    {"flowers", "conv3", PML_OP_CONV2D, {32, 45, 45}, 64, 3, PML_PAD_SAME, 1, true},
    {"flowers", "pool3", PML_OP_MAXPOOL2D, {64, 45, 45}, 0, 2, PML_PAD_VALID, 0, true},
};


/* n floats: v = 0 gives zeros; otherwise uniform in [-0.3 v, 0.7 v) from a counter hash, with
 * values below zero clamped to 0 when \p relu (like a relu output feeding a pool). */
static float *buf(size_t n, float v, bool relu)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench-kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        float u = v * (pml_rand_unif(42, n, i) - 0.3f);
        p[i] = relu && u < 0 ? 0 : u;
    }
    return p;
}

/* Median seconds of one call of \p fn, repeated for about \p budget seconds. */
static double time_kernel(pml_kernel_fn fn, const pml_kctx *k, double budget)
{
    double t[64];
    int n = 0;
    fn(k); /* warm-up */
    double start = pml_now();
    while (n < 64 && (n < 3 || pml_now() - start < budget)) {
        double t0 = pml_now();
        fn(k);
        t[n++] = pml_now() - t0;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double s = t[j];
            t[j] = t[j - 1];
            t[j - 1] = s;
        }
    return t[n / 2];
}

int main(int argc, char **argv)
{
    int N = argc > 1 ? atoi(argv[1]) : 32;
    double budget = argc > 2 ? atof(argv[2]) : 0.5;
    if (N <= 0 || !(budget > 0)) {
        fprintf(stderr, "usage: bench-kernels [batch > 0] [seconds per kernel > 0]\n");
        return 2;
    }
    pml_blas_single_thread();
    const char *be = getenv("PML_CONV"); /* blas, dnnl or auto (default) */
    if (be && strcmp(be, "blas") == 0) pml_conv_backend(PML_CONV_BLAS);
    if (be && strcmp(be, "dnnl") == 0) pml_conv_backend(PML_CONV_DNNL);
    printf("batch %d, one thread; GFLOP/s counts multiply-add as 2 (backward: dW + dx gemms)\n", N);
    printf("%-8s %-6s %-10s %-16s %10s %9s %10s %9s\n", "model", "layer", "op", "input", "fwd ms",
           "GFLOP/s", "bwd ms", "GFLOP/s");
    double model_ms[2] = {0, 0};
    for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
        const layer *L = &layers[li];
        pml_node n;
        memset(&n, 0, sizeof n);
        snprintf(n.name, sizeof n.name, "%s", L->name);
        n.op = L->op;
        n.nin = 1;
        n.a = pml_attrs_default(L->op);
        if (L->op == PML_OP_CONV2D) {
            n.a.out = L->out;
            n.a.kh = n.a.kw = L->k;
            n.a.pad_mode = L->pad_mode;
            n.a.act = L->relu ? PML_ACT_RELU : PML_ACT_NONE;
        }
        const pml_op_def *d = &pml_ops[L->op];
        if (d->infer(&n, &L->in, 1) != PML_OK) {
            fprintf(stderr, "bench-kernels: %s: %s\n", L->name, pml_errmsg());
            return 1;
        }
        pml_region r = pml_region_full(&n, N);
        size_t xs = (size_t)N * pml_shape_size(L->in), ys = (size_t)N * pml_shape_size(n.out);
        pml_kctx k;
        memset(&k, 0, sizeof k);
        k.node = &n;
        k.N = N;
        k.batch_total = N;
        k.r = r;
        k.nin = 1;
        k.xs[0] = L->in;
        /* pools read a relu output (many zeros: ties); convs read data or a pool output */
        bool pool = L->op != PML_OP_CONV2D;
        float *x = buf(xs, 1, pool), *y = buf(ys, 0, false), *dy = buf(ys, 1, false);
        float *dx = buf(xs, 0, false);
        float *w[PML_MAX_PARAMS] = {0}, *dw[PML_MAX_PARAMS] = {0};
        for (int j = 0; j < n.nparam; j++) {
            w[j] = buf(n.param_size[j], 0.2f, false);
            dw[j] = buf(n.param_size[j], 0, false);
            k.w[j] = w[j];
            k.dw[j] = dw[j];
        }
        float *ws = buf(d->ws_floats(&n, &L->in, 1, r), 0, false);
        float *aux = buf(n.aux_per_sample * (size_t)N + n.aux_fixed, 0, false);
        k.x[0] = x;
        k.y = y;
        k.dy = dy;
        k.dx[0] = L->need_dx ? dx : NULL;
        k.ws = ws;
        k.aux = aux;
        k.training = true;

        double fl = d->flops(&n, &L->in, 1) * N;
        double tf = time_kernel(d->fwd, &k, budget);
        double tb = time_kernel(d->bwd, &k, budget);
        /* backward: the dW gemm, plus the dx gemm when needed; pools: one pass like forward */
        double flb = fl;
        if (L->op == PML_OP_CONV2D) {
            double mm = 2.0 * pml_shape_size(n.out) * L->in.c * L->k * L->k * N;
            flb = mm * (L->need_dx ? 2 : 1);
        }
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", L->in.c, L->in.h, L->in.w);
        printf("%-8s %-6s %-10s %-16s %10.3f %9.1f %10.3f %9.1f\n", L->model, L->name, d->name,
               shape, tf * 1e3, fl / tf * 1e-9, tb * 1e3, flb / tb * 1e-9);
        model_ms[strcmp(L->model, "fashion") == 0 ? 0 : 1] += (tf + tb) * 1e3;
        free(x), free(y), free(dy), free(dx), free(ws), free(aux);
        for (int j = 0; j < n.nparam; j++) free(w[j]), free(dw[j]);
    }
    printf("conv+pool fwd+bwd per batch of %d: fashion %.2f ms (%.0f img/s, %.2f s per 60,000), "
           "flowers %.2f ms (%.0f img/s)\n",
           N, model_ms[0], N / model_ms[0] * 1e3, 60000.0 / N * model_ms[0] * 1e-3, model_ms[1],
           N / model_ms[1] * 1e3);
    return 0;
}
