/* pml bench kernels — each fast kernel of the reference models' layers on one core, against
 * this core's sgemm: conv2d forward, backward-data and backward-weights (on each conv2d
 * implementation built in), dense, pooling and Adam. A benchmark, not a test. */
#include "cli.h"

#include "ops/ops.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char kernels_intro[] =
    "usage: pml bench kernels [--batch N] [--seconds S] [--only TEXT] [--json]\n"
    "\n"
    "Times the fast kernels of the layers of fashion-cnn, flowers-cnn and mlp (and a MobileNet\n"
    "depthwise 3x3) on one core\n"
    "(single-threaded BLAS), each the median of runs for about S seconds (default 0.3), and\n"
    "prints milliseconds, GFLOP/s (a multiply-add counts 2) and the share of this core's\n"
    "sgemm (512x512x512, measured first). conv2d: forward, backward-data (dx) and\n"
    "backward-weights (dW and the bias), on im2col + OpenBLAS sgemm and, when pml is built\n"
    "with it, on oneDNN (pml picks per shape the one it measures faster). Pooling and Adam\n"
    "move memory rather than compute: they also show GB/s. Batch N (default 32).\n"
    "\n";

static const cli_opt kernels_opts[] = {
    {"batch", 0, "N", "the layers' batch (default 32)"},
    {"seconds", 0, "S", "how long each kernel runs, its median taken (default 0.3)"},
    {"only", 0, "TEXT", "only the layers whose \"model layer\" contains TEXT (e.g. \"flowers conv2\")"},
    {"json", 0, NULL, "one JSON object on stdout"},
    {"help", 'h', NULL, "this help"},
    {0},
};

typedef struct layer {
    const char *model, *name;
    pml_op_type op;
    pml_shape in;
    int out, k, pad_mode, relu;
    bool need_dx; /* false for the first layer: it reads the data */
    int groups;   /* conv2d: channel groups (0: 1) */
    int stride;   /* conv2d: both ways (0: 1) */
} layer;

static const layer layers[] = {
    {"fashion", "conv1", PML_OP_CONV2D, {1, 28, 28}, 32, 3, PML_PAD_VALID, 1, false, 0, 0},
    {"fashion", "pool1", PML_OP_MAXPOOL2D, {32, 26, 26}, 0, 2, PML_PAD_VALID, 0, true, 0, 0},
    {"fashion", "conv2", PML_OP_CONV2D, {32, 13, 13}, 64, 3, PML_PAD_VALID, 1, true, 0, 0},
    {"fashion", "pool2", PML_OP_MAXPOOL2D, {64, 11, 11}, 0, 2, PML_PAD_VALID, 0, true, 0, 0},
    {"fashion", "dense", PML_OP_LINEAR, {1600, 1, 1}, 128, 0, 0, 1, true, 0, 0},
    {"flowers", "conv1", PML_OP_CONV2D, {3, 180, 180}, 16, 3, PML_PAD_SAME, 1, false, 0, 0},
    {"flowers", "pool1", PML_OP_MAXPOOL2D, {16, 180, 180}, 0, 2, PML_PAD_VALID, 0, true, 0, 0},
    {"flowers", "conv2", PML_OP_CONV2D, {16, 90, 90}, 32, 3, PML_PAD_SAME, 1, true, 0, 0},
    {"flowers", "pool2", PML_OP_MAXPOOL2D, {32, 90, 90}, 0, 2, PML_PAD_VALID, 0, true, 0, 0},
    {"flowers", "conv3", PML_OP_CONV2D, {32, 45, 45}, 64, 3, PML_PAD_SAME, 1, true, 0, 0},
    {"flowers", "pool3", PML_OP_MAXPOOL2D, {64, 45, 45}, 0, 2, PML_PAD_VALID, 0, true, 0, 0},
    {"flowers", "dense", PML_OP_LINEAR, {30976, 1, 1}, 128, 0, 0, 1, true, 0, 0},
    {"mlp", "dense1", PML_OP_LINEAR, {784, 1, 1}, 128, 0, 0, 1, false, 0, 0},
    /* MobileNet's depthwise 3x3 (one channel a group: computed directly), stride 1 and 2 */
    {"mobile", "dw3x3", PML_OP_CONV2D, {96, 28, 28}, 96, 3, PML_PAD_SAME, 1, true, 96, 0},
    {"mobile", "dw3x3s2", PML_OP_CONV2D, {144, 56, 56}, 144, 3, PML_PAD_SAME, 1, true, 144, 2},
};

/* n floats: v = 0 gives zeros; otherwise uniform in [-0.3 v, 0.7 v) from a counter hash, with
 * values below zero clamped to 0 when \p relu (like a relu output feeding a pool). NULL when out
 * of memory. */
static float *buf(size_t n, float v, bool relu)
{
    float *p = aligned_alloc(64, ((n ? n : 1) * sizeof *p + 63) & ~(size_t)63);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) {
        float u = v * (pml_rand_unif(42, n, i) - 0.3f);
        p[i] = relu && u < 0 ? 0 : u;
    }
    return p;
}

/* Median seconds of one call of \p fn, repeated for about \p budget seconds (3 to 64 runs). */
static double time_kernel(pml_kernel_fn fn, const pml_kctx *k, double budget)
{
    double t[64];
    int n = 0;
    fn(k); /* warm-up (and, for conv2d, the choice of implementation) */
    double start = pml_now();
    while (n < 64 && (n < 3 || pml_now() - start < budget)) {
        double t0 = pml_now();
        fn(k);
        t[n++] = pml_now() - t0;
    }
    return pml_median(t, n);
}

static float *sg_a, *sg_b, *sg_c;
static void run_sgemm(const pml_kctx *k)
{
    (void)k;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 512, 512, 512, 1.0f, sg_a, 512, sg_b,
                512, 0.0f, sg_c, 512);
}

static pml_optim adam;
static float *adam_p, *adam_g;
static size_t adam_n;
static void run_adam(const pml_kctx *k)
{
    (void)k;
    pml_optim_apply(&adam, adam_p, adam_g, 0, adam_n);
    memset(adam_g, 0, adam_n * sizeof *adam_g);
}

typedef struct row {
    const char *model, *layer, *kernel, *impl;
    double sec, flops, bytes;
} row;

static double ceiling; /* this core's sgemm FLOP/s */
static bool json, first_json = true;

static void print_row(const row *r)
{
    const double gf = r->flops / r->sec * 1e-9;
    if (json) {
        printf("%s\n  {\"model\":\"%s\",\"layer\":\"%s\",\"kernel\":\"%s\",\"impl\":\"%s\","
               "\"ms\":%.4f,\"gflops\":%.2f,\"of_sgemm\":%.4f",
               first_json ? "" : ",", r->model, r->layer, r->kernel, r->impl, r->sec * 1e3, gf,
               r->flops / r->sec / ceiling);
        if (r->bytes > 0) printf(",\"gbytes_per_s\":%.2f", r->bytes / r->sec * 1e-9);
        printf("}");
        first_json = false;
        return;
    }
    char gbs[32] = "";
    if (r->bytes > 0) snprintf(gbs, sizeof gbs, "%8.1f GB/s", r->bytes / r->sec * 1e-9);
    printf("%-8s %-7s %-16s %-5s %10.3f %9.1f %8.0f%% %s\n", r->model, r->layer, r->kernel, r->impl,
           r->sec * 1e3, gf, 100.0 * r->flops / r->sec / ceiling, gbs);
}

/* Times one layer's kernels; \return false when out of memory. */
static bool bench_layer(const layer *L, int N, double budget)
{
    pml_node n;
    memset(&n, 0, sizeof n);
    snprintf(n.name, sizeof n.name, "%s", L->name);
    n.op = L->op;
    n.nin = 1;
    n.a = pml_attrs_default(L->op);
    if (L->op == PML_OP_CONV2D || L->op == PML_OP_LINEAR) {
        n.a.out = L->out;
        n.a.act = L->relu ? PML_ACT_RELU : PML_ACT_NONE;
    }
    if (L->op == PML_OP_CONV2D) {
        n.a.kh = n.a.kw = L->k;
        n.a.pad_mode = L->pad_mode;
        n.a.groups = L->groups > 1 ? L->groups : 1;
        n.a.sh = n.a.sw = L->stride > 1 ? L->stride : 1;
    }
    const pml_op_def *d = &pml_ops[L->op];
    if (d->infer(&n, &L->in, 1) != PML_OK) {
        fprintf(stderr, "pml bench kernels: %s: %s\n", L->name, pml_errmsg());
        return false;
    }
    const pml_region r = pml_region_full(&n, N);
    const size_t xs = (size_t)N * pml_shape_size(L->in), ys = (size_t)N * pml_shape_size(n.out);
    pml_kctx k;
    memset(&k, 0, sizeof k);
    k.node = &n;
    k.N = N;
    k.batch_total = N;
    k.r = r;
    k.nin = 1;
    k.xs[0] = L->in;
    k.training = true;
    const bool pool = L->op == PML_OP_MAXPOOL2D;
    float *x = buf(xs, 1, pool), *y = buf(ys, 0, false), *dy = buf(ys, 1, false),
          *dx = buf(xs, 0, false);
    float *w[PML_MAX_PARAMS] = {0}, *dw[PML_MAX_PARAMS] = {0};
    bool ok = x && y && dy && dx;
    for (int j = 0; j < n.nparam && ok; j++) {
        w[j] = buf(n.param_size[j], 0.2f, false);
        dw[j] = buf(n.param_size[j], 0, false);
        ok = w[j] && dw[j];
    }
    float *ws = NULL, *aux = buf(n.aux_per_sample * (size_t)N + n.aux_fixed, 0, false);
    /* both implementations are timed, whatever PML_CONV says: room for either's workspace */
    if (L->op == PML_OP_CONV2D) pml_conv_backend(PML_CONV_AUTO);
    if (ok && aux) ws = buf(d->ws_floats(&n, &L->in, 1, r), 0, false);
    if (!ws) {
        free(x), free(y), free(dy), free(dx), free(aux);
        for (int j = 0; j < n.nparam; j++) free(w[j]), free(dw[j]);
        return false;
    }
    k.x[0] = x;
    k.y = y;
    k.dy = dy;
    k.ws = ws;
    k.aux = aux;
    for (int j = 0; j < n.nparam; j++) k.w[j] = w[j], k.dw[j] = dw[j];

    const double fl = d->flops(&n, &L->in, 1) * N;
    if (pool) { /* read x, write y; backward: read dy (and the argmax), write dx */
        const double bytes = 4.0 * (double)(xs + ys);
        k.dx[0] = dx;
        row f = {L->model, L->name, "forward", "-", time_kernel(d->fwd, &k, budget), fl, bytes};
        print_row(&f);
        row b = {L->model, L->name, "backward", "-", time_kernel(d->bwd, &k, budget), fl, bytes};
        print_row(&b);
    } else {
        /* the multiply-adds of one product: forward = backward-data = backward-weights */
        const double mm = L->op == PML_OP_CONV2D
                              ? 2.0 * (double)ys * (L->in.c / (L->groups > 1 ? L->groups : 1)) *
                                    L->k * L->k
                              : 2.0 * N * (double)pml_shape_size(L->in) * L->out;
        /* oneDNN runs plain convolutions only (not grouped ones) */
        const int nimpl = L->op == PML_OP_CONV2D && L->groups <= 1 && pml_conv_dnnl_available() ? 2 : 1;
        for (int impl = 0; impl < nimpl; impl++) {
            const bool direct = L->groups > 1 && L->groups == L->in.c && L->out == L->in.c;
            const char *iname = L->op != PML_OP_CONV2D ? "blas" : impl ? "dnnl" : direct ? "direct" : "blas";
            if (L->op == PML_OP_CONV2D) pml_conv_backend(impl ? PML_CONV_DNNL : PML_CONV_BLAS);
            row f = {L->model, L->name, "forward", iname, time_kernel(d->fwd, &k, budget), fl, 0};
            print_row(&f);
            if (L->need_dx) { /* backward-data alone: no parameter gradients */
                k.dx[0] = dx;
                for (int j = 0; j < n.nparam; j++) k.dw[j] = NULL;
                row b = {L->model, L->name, "backward-data", iname,
                         time_kernel(d->bwd, &k, budget), mm, 0};
                print_row(&b);
            }
            k.dx[0] = NULL; /* backward-weights alone */
            for (int j = 0; j < n.nparam; j++) k.dw[j] = dw[j];
            row b = {L->model, L->name, "backward-weights", iname,
                     time_kernel(d->bwd, &k, budget), mm, 0};
            print_row(&b);
        }
        pml_conv_backend(PML_CONV_AUTO);
    }
    free(x), free(y), free(dy), free(dx), free(ws), free(aux);
    for (int j = 0; j < n.nparam; j++) free(w[j]), free(dw[j]);
    return true;
}

int cmd_bench_kernels(int argc, char **argv)
{
    cli c;
    cli_start(&c, "bench kernels", argc, argv, kernels_opts);
    int N = 32;
    double budget = 0.3;
    const char *a, *only = NULL;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            cli_error(&c, "unexpected argument '%s'", a);
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, kernels_intro, kernels_opts, NULL);
            return 0;
        } else if (cli_is(&c, "--batch")) {
            N = (int)cli_long(&c, 1, 4096);
        } else if (cli_is(&c, "--seconds")) {
            budget = cli_double(&c, 0, 60, true, false);
        } else if (cli_is(&c, "--only")) {
            only = cli_str(&c);
        } else if (cli_is(&c, "--json")) {
            json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    pml_blas_single_thread();
    sg_a = buf(512 * 512, 1, false), sg_b = buf(512 * 512, 1, false), sg_c = buf(512 * 512, 0, false);
    adam_n = (size_t)30976 * 128; /* flowers' dense layer */
    adam_p = buf(adam_n, 1, false), adam_g = buf(adam_n, 0.001f, false);
    pml_optim_defaults(&adam, PML_OPTIM_ADAM);
    if (!sg_a || !sg_b || !sg_c || !adam_p || !adam_g || pml_optim_alloc(&adam, adam_n) != PML_OK) {
        fprintf(stderr, "pml bench kernels: out of memory\n");
        return 1;
    }
    adam.t = 1;
    const double tsg = time_kernel(run_sgemm, NULL, budget);
    ceiling = 2.0 * 512 * 512 * 512 / tsg;
    if (json) {
        cli_json_begin(stdout);
        printf(",\"batch\":%d,\"sgemm_gflops\":%.2f,\"dnnl\":%s,\"isa\":\"%s\",\"kernels\":[", N,
               ceiling * 1e-9, pml_conv_dnnl_available() ? "true" : "false", pml_kernels_isa());
    } else {
        printf("batch %d, one core; its sgemm (512x512x512): %.1f GFLOP/s; oneDNN %s; pml's loops "
               "for %s\n"
               "%-8s %-7s %-16s %-5s %10s %9s %9s\n",
               N, ceiling * 1e-9, pml_conv_dnnl_available() ? "built in" : "not built in",
               pml_kernels_isa(), "model",
               "layer", "kernel", "impl", "ms", "GFLOP/s", "of sgemm");
    }
    bool ok = true;
    for (size_t li = 0; li < sizeof layers / sizeof layers[0] && ok; li++) {
        char name[64];
        snprintf(name, sizeof name, "%s %s", layers[li].model, layers[li].name);
        if (!only || strstr(name, only)) ok = bench_layer(&layers[li], N, budget);
    }
    if (ok && (!only || strstr("flowers dense adam", only))) { /* Adam: ~12 FLOPs and 8 floats moved a parameter (p, g, m, v read; p, m, v
              * written; g zeroed) */
        row r = {"flowers", "dense", "adam", "-", time_kernel(run_adam, NULL, budget),
                 12.0 * (double)adam_n, 4.0 * 8 * (double)adam_n};
        print_row(&r);
    }
    if (json) printf("\n]}\n");
    free(sg_a), free(sg_b), free(sg_c), free(adam_p), free(adam_g);
    pml_optim_free(&adam);
    if (!ok) fprintf(stderr, "pml bench kernels: out of memory\n");
    return ok ? 0 : 1;
}
