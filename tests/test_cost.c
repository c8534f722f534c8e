/* Cost model tests: the roofline against hand-computed values and its shape (linear in n, backward
 * above forward, halves below the whole), measured costs (positive, deterministic, cached in
 * memory and on disk, a second model measures nothing), bad cache files ignored and rewritten, no
 * disk cache when asked, processes saving at once losing no line, a cache lock held too long.
 * Shapes are tiny: measurements run under ASan too. No timing ratios. */
#include "planner/planner.h"
#include "test.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- fixtures */

/* A machine built by hand (what the cost model reads: compute devices and the fingerprint). */
typedef struct hand_machine {
    pml_machine m;
    pml_device dev[8];
    int compute[8], compute_of[8];
} hand_machine;

static void hand_init(hand_machine *h, const char *name, const char *fp, int n, pml_dev_kind kind,
                      double flops, double bw, bool present)
{
    memset(h, 0, sizeof *h);
    snprintf(h->m.name, sizeof h->m.name, "%s", name);
    snprintf(h->m.fingerprint, sizeof h->m.fingerprint, "%s", fp);
    for (int i = 0; i < n; i++) {
        pml_device *d = &h->dev[i];
        snprintf(d->name, sizeof d->name, "%s%d", kind == PML_DEV_GPU ? "gpu" : "core", i);
        d->kind = kind;
        d->flops = flops;
        d->mem_bw = bw;
        d->cores = 1;
        d->first_core = i;
        d->present = present;
        h->compute[i] = i;
        h->compute_of[i] = i;
    }
    h->m.ndev = n;
    h->m.dev = h->dev;
    h->m.ncompute = n;
    h->m.compute = h->compute;
    h->m.compute_of = h->compute_of;
}

/* Four P100s as in flexflow-p100: 9.3 TFLOP/s, 732 GB/s, not present. */
static void p100(hand_machine *h)
{
    hand_init(h, "p100", "00000000000p1000", 4, PML_DEV_GPU, 9.3e12, 732e9, false);
}

/* This machine's two cores, present (measured). */
static void cores(hand_machine *h)
{
    hand_init(h, "this", "0000000000c0de02", 2, PML_DEV_CPU, 50e9, 10e9, true);
}

static int add(pml_graph *g, const char *name, pml_op_type op, pml_attrs a, int nin, const int *in)
{
    int id = pml_graph_add(g, name, op, &a, nin, in);
    CHECK_MSG(id >= 0, "%s", pml_errmsg());
    return id;
}

static pml_attrs conv_attrs(int out, int act)
{
    pml_attrs a = pml_attrs_default(PML_OP_CONV2D);
    a.out = out;
    a.kh = a.kw = 3;
    a.pad_mode = PML_PAD_SAME;
    a.act = act;
    return a;
}

static pml_attrs pool_attrs(pml_op_type op)
{
    pml_attrs a = pml_attrs_default(op);
    a.kh = a.kw = a.sh = a.sw = 2;
    return a;
}

/* input 64x56x56 -> conv1 (relu) -> conv2 -> maxpool -> flatten -> linear 10 -> loss */
static void big_cnn(pml_graph *g, int *conv1, int *conv2, int *pool)
{
    pml_graph_init(g, "big");
    pml_attrs a = pml_attrs_default(PML_OP_INPUT);
    a.shape = (pml_shape){64, 56, 56};
    int x = add(g, "input", PML_OP_INPUT, a, 0, NULL);
    *conv1 = x = add(g, "conv1", PML_OP_CONV2D, conv_attrs(64, PML_ACT_RELU), 1, &x);
    *conv2 = x = add(g, "conv2", PML_OP_CONV2D, conv_attrs(64, PML_ACT_NONE), 1, &x);
    *pool = x = add(g, "pool", PML_OP_MAXPOOL2D, pool_attrs(PML_OP_MAXPOOL2D), 1, &x);
    x = add(g, "flatten", PML_OP_FLATTEN, pml_attrs_default(PML_OP_FLATTEN), 1, &x);
    pml_attrs l = pml_attrs_default(PML_OP_LINEAR);
    l.out = 10;
    x = add(g, "logits", PML_OP_LINEAR, l, 1, &x);
    add(g, "loss", PML_OP_SOFTMAX_XENT, pml_attrs_default(PML_OP_SOFTMAX_XENT), 1, &x);
    CHECK_OK(pml_graph_finalize(g));
}

/* Every op, tiny: input 3x8x8, conv relu, batchnorm, relu, maxpool, conv, add, concat, avgpool,
 * dropout, flatten, linear relu, linear, loss. */
static void every_op(pml_graph *g)
{
    pml_graph_init(g, "every");
    pml_attrs a = pml_attrs_default(PML_OP_INPUT);
    a.shape = (pml_shape){3, 8, 8};
    int x = add(g, "input", PML_OP_INPUT, a, 0, NULL);
    x = add(g, "conv1", PML_OP_CONV2D, conv_attrs(4, PML_ACT_RELU), 1, &x);
    x = add(g, "bn", PML_OP_BATCHNORM, pml_attrs_default(PML_OP_BATCHNORM), 1, &x);
    x = add(g, "relu", PML_OP_RELU, pml_attrs_default(PML_OP_RELU), 1, &x);
    int p = add(g, "pool", PML_OP_MAXPOOL2D, pool_attrs(PML_OP_MAXPOOL2D), 1, &x);
    int c2 = add(g, "conv2", PML_OP_CONV2D, conv_attrs(4, PML_ACT_NONE), 1, &p);
    int s[2] = {c2, p};
    int sum = add(g, "add", PML_OP_ADD, pml_attrs_default(PML_OP_ADD), 2, s);
    int cc[2] = {sum, p};
    x = add(g, "concat", PML_OP_CONCAT, pml_attrs_default(PML_OP_CONCAT), 2, cc);
    x = add(g, "avg", PML_OP_AVGPOOL2D, pool_attrs(PML_OP_AVGPOOL2D), 1, &x);
    pml_attrs d = pml_attrs_default(PML_OP_DROPOUT);
    d.rate = 0.25f;
    x = add(g, "drop", PML_OP_DROPOUT, d, 1, &x);
    x = add(g, "flatten", PML_OP_FLATTEN, pml_attrs_default(PML_OP_FLATTEN), 1, &x);
    pml_attrs l = pml_attrs_default(PML_OP_LINEAR);
    l.out = 6;
    l.act = PML_ACT_RELU;
    x = add(g, "dense", PML_OP_LINEAR, l, 1, &x);
    l.out = 3;
    l.act = PML_ACT_NONE;
    x = add(g, "logits", PML_OP_LINEAR, l, 1, &x);
    add(g, "loss", PML_OP_SOFTMAX_XENT, pml_attrs_default(PML_OP_SOFTMAX_XENT), 1, &x);
    CHECK_OK(pml_graph_finalize(g));
}

static char tmp[256];

static void make_tmp(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/pml-test-cost-XXXXXX");
    CHECK(mkdtemp(tmp) != NULL);
}

static void remove_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
}

/* files under dir (recursively), but the caches' lock files (NAME.lock) */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".lock")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            n += count_files(p);
        else
            n++;
    }
    closedir(d);
    return n;
}

/* The cache sizes are given: these tests check the file's entries for kernels and calibrations,
 * not the measurement of the cache a step can use (t_llc_cache does); no step passes the private
 * caches (t_private_cache's). */
static pml_cost_opts opts_in(const char *dir, int repeats)
{
    pml_cost_opts o = pml_cost_opts_default();
    o.cache_dir = dir;
    o.repeats = repeats;
    o.cache_bytes = 32 << 20;
    o.private_bytes = 1e15;
    return o;
}

static pml_region region(int n0, int n1, int c0, int c1, int h0, int h1)
{
    pml_region r = {n0, n1, c0, c1, h0, h1};
    return r;
}

/* ---------------------------------------------------------------- analytic */

static void t_analytic_conv_p100(void)
{
    pml_graph g;
    int c1, c2, pool;
    big_cnn(&g, &c1, &c2, &pool);
    pml_machine mm, *m = &mm;
    CHECK_OK(pml_machine_load("flexflow-p100", m));
    CHECK(m->ncompute == 16 && m->dev[m->compute[15]].kind == PML_DEV_GPU);
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, m, NULL, &c));
    pml_machine_free(m); /* the cost model keeps what it needs */
    if (!c) return;
    const int N = 32;
    /* conv2 forward: 2*64*9 flops per output + bias; compute-bound at 65% of 9.3 TFLOP/s */
    double outs = 64.0 * 56 * 56;
    double flops = N * (2.0 * outs * 64 * 9 + outs);
    double bytes = 4.0 * (N * outs * 2 + 64.0 * 64 * 9 + 64);
    double tc = flops / (9.3e12 * 0.65), tm = bytes / (732e9 * 0.80);
    double want = 5e-6 + (tc > tm ? tc : tm);
    double got = pml_cost_fwd(c, c2, 0, pml_region_full(&g.nodes[c2], N));
    CHECK_NEAR(got / want, 1.0, 1e-9);
    CHECK(tc > tm); /* this layer is compute-bound */
    /* backward with dx: twice the flops */
    double gotb = pml_cost_bwd(c, c2, 0, pml_region_full(&g.nodes[c2], N));
    CHECK_NEAR(gotb / (5e-6 + 2 * tc), 1.0, 1e-9);
    /* conv1 reads the graph input: no dx, so its backward is one gemm's worth */
    double f1 = pml_cost_fwd(c, c1, 0, pml_region_full(&g.nodes[c1], N));
    double b1 = pml_cost_bwd(c, c1, 0, pml_region_full(&g.nodes[c1], N));
    CHECK(b1 >= f1 && b1 < 1.5 * f1);
    /* max-pool forward: memory-bound, reads the input rows it needs and writes its output */
    double pin = N * 64.0 * 56 * 56, pout = N * 64.0 * 28 * 28;
    double pf = pml_cost_fwd(c, pool, 13, pml_region_full(&g.nodes[pool], N));
    double ptm = 4.0 * (pin + pout) / (732e9 * 0.80), ptc = pout * 4 / (9.3e12 * 0.30);
    CHECK(ptm > ptc);
    CHECK_NEAR(pf / (5e-6 + ptm), 1.0, 1e-9);
    CHECK(pml_cost_measurements(c) == 0);
    CHECK(strcmp(pml_cost_cache_file(c), "") == 0); /* nothing measured: no cache file */
    pml_cost_destroy(c);
    pml_graph_free(&g);
}

static void t_analytic_shape(void)
{
    pml_graph g;
    int c1, c2, pool;
    big_cnn(&g, &c1, &c2, &pool);
    hand_machine h;
    p100(&h);
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, NULL, &c));
    if (!c) return;
    for (int v = 0; v < g.nnodes; v++) {
        const pml_node *nd = &g.nodes[v];
        if (nd->op == PML_OP_INPUT) {
            CHECK(pml_cost_fwd(c, v, 0, pml_region_full(nd, 32)) == 0);
            continue;
        }
        /* linear in n for large parts */
        double f256 = pml_cost_fwd(c, v, 0, pml_region_full(nd, 256));
        double f512 = pml_cost_fwd(c, v, 0, pml_region_full(nd, 512));
        double b256 = pml_cost_bwd(c, v, 0, pml_region_full(nd, 256));
        CHECK(f256 > 0 && isfinite(f256) && b256 > 0);
        if (nd->op == PML_OP_CONV2D || nd->op == PML_OP_MAXPOOL2D)
            CHECK_MSG(fabs(f512 / f256 - 2.0) < 0.02, "%s: %g / %g", nd->name, f512, f256);
        CHECK(f512 >= f256);
        /* backward costs more than forward when it computes dx (conv2, pool, flatten, ...) */
        if (v != c1) CHECK_MSG(b256 > f256, "%s: bwd %g, fwd %g", nd->name, b256, f256);
        /* each half of a split costs less than the whole, and the halves at least as much */
        pml_region w = pml_region_full(nd, 32);
        double whole = pml_cost_fwd(c, v, 0, w), wholeb = pml_cost_bwd(c, v, 0, w);
        pml_region halves[3][2] = {
            {region(0, 16, 0, w.c1, 0, w.h1), region(16, 32, 0, w.c1, 0, w.h1)},
            {region(0, 32, 0, w.c1 / 2, 0, w.h1), region(0, 32, w.c1 / 2, w.c1, 0, w.h1)},
            {region(0, 32, 0, w.c1, 0, w.h1 / 2), region(0, 32, 0, w.c1, w.h1 / 2, w.h1)},
        };
        for (int s = 0; s < 3; s++) {
            if ((s == 1 && w.c1 < 2) || (s == 2 && w.h1 < 2)) continue;
            double a = pml_cost_fwd(c, v, 0, halves[s][0]), b = pml_cost_fwd(c, v, 0, halves[s][1]);
            double ab = pml_cost_bwd(c, v, 0, halves[s][0]);
            CHECK_MSG(a < whole && b < whole && a + b >= whole * (1 - 1e-12),
                      "%s split %d: %g + %g vs %g", nd->name, s, a, b, whole);
            CHECK(ab < wholeb);
        }
    }
    /* small parts run below the device's efficiency: half a tiny part costs more than half */
    pml_region tiny = region(0, 1, 0, 64, 0, 4);
    double t1 = pml_cost_fwd(c, c2, 0, tiny) - 5e-6;
    tiny.h1 = 2;
    double t2 = pml_cost_fwd(c, c2, 0, tiny) - 5e-6;
    CHECK(t2 < t1 && t2 > 0.6 * t1);
    /* updates (gradients zeroed after), reductions, syncs, zeroing: 32, 12, 16, 4 bytes a float at
     * 80% of the memory bandwidth, less for fewer bytes than the GPU moves in 5 us */
    for (double f = 1e3; f <= 1e9; f *= 10) {
        double bu = 32 * f, br = 12 * f, bs = 16 * f, sat = 732e9 * 5e-6;
        double uu = bu < sat ? sqrt(bu / sat) : 1, ur = br < sat ? sqrt(br / sat) : 1;
        double us = bs < sat ? sqrt(bs / sat) : 1;
        CHECK_NEAR(pml_cost_update(c, 2, f) / (5e-6 + bu / (732e9 * 0.8 * uu)), 1.0, 1e-9);
        CHECK_NEAR(pml_cost_update_share(c, 2, f, 7, 2) / pml_cost_update(c, 2, f), 1.0, 1e-12);
        CHECK_NEAR(pml_cost_reduce(c, 3, f) / (5e-6 + br / (732e9 * 0.8 * ur)), 1.0, 1e-9);
        CHECK_NEAR(pml_cost_sync(c, 3, f, 1) / (5e-6 + bs / (732e9 * 0.8 * us)), 1.0, 1e-9);
        double bz = 4 * f, uz = bz < sat ? sqrt(bz / sat) : 1;
        CHECK_NEAR(pml_cost_zero(c, 3, f, 1) / (5e-6 + bz / (732e9 * 0.8 * uz)), 1.0, 1e-9);
    }
    double u1 = pml_cost_update(c, 0, 1e8), u2 = pml_cost_update(c, 0, 2e8),
           u3 = pml_cost_update(c, 0, 3e8);
    CHECK_NEAR(u3 - u2, u2 - u1, 1e-12);
    CHECK(pml_cost_update(c, 0, 0) == 0 && pml_cost_reduce(c, 0, 0) == 0);
    CHECK(pml_cost_measurements(c) == 0);
    pml_cost_destroy(c);
    pml_graph_free(&g);
}

/* measure = false on present cores: the roofline with the cores' figures, nothing measured */
static void t_analytic_cpu(void)
{
    pml_graph g;
    int c1, c2, pool;
    big_cnn(&g, &c1, &c2, &pool);
    hand_machine h;
    cores(&h);
    make_tmp();
    pml_cost_opts o = opts_in(tmp, 3);
    o.measure = false;
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    double outs = 64.0 * 56 * 56, flops = 8 * (2.0 * outs * 64 * 9 + outs);
    double got = pml_cost_fwd(c, c2, 1, pml_region_full(&g.nodes[c2], 8));
    CHECK_NEAR(got / (1e-6 + flops / (50e9 * 0.60)), 1.0, 1e-9);
    /* a memory-bound part streams faster from the caches: 1 + 3 / (1 + bytes / 4 MiB) */
    double pin = 8 * 64.0 * 56 * 56, pout = 8 * 64.0 * 28 * 28, pb = 4 * (pin + pout);
    double gain = 1 + 3 / (1 + pb / (4 << 20));
    CHECK_NEAR(pml_cost_fwd(c, pool, 0, pml_region_full(&g.nodes[pool], 8)) /
                   (1e-6 + pb / (10e9 * 0.6 * gain)),
               1.0, 1e-9);
    CHECK(pml_cost_update(c, 0, 1e6) > 0);
    CHECK(pml_cost_measurements(c) == 0);
    CHECK_OK(pml_cost_save(c));
    CHECK(count_files(tmp) == 0);
    pml_cost_destroy(c);
    remove_tmp();
    pml_graph_free(&g);
}

/* ---------------------------------------------------------------- measured */

/* Queries every node on a few parts of a batch of 4; fills vals[node][part][fwd/bwd]. */
#define NPARTS 4
static void query_all(pml_costmodel *c, const pml_graph *g, int dev, double vals[][NPARTS][2])
{
    for (int v = 0; v < g->nnodes; v++) {
        const pml_node *nd = &g->nodes[v];
        pml_region w = pml_region_full(nd, 4);
        pml_region parts[NPARTS] = {w, w, w, w};
        parts[1].n1 = 2;
        parts[2].c1 = (w.c1 + 1) / 2;
        parts[3].h0 = w.h1 / 2;
        for (int p = 0; p < NPARTS; p++) {
            vals[v][p][0] = pml_cost_fwd(c, v, dev, parts[p]);
            vals[v][p][1] = pml_cost_bwd(c, v, dev, parts[p]);
        }
    }
}

/* The every-op graph on two measured cores, and a cost model measuring them with a disk cache
 * in a new tmp folder (NULL on failure, reported). */
static pml_costmodel *measured_model(pml_graph *g, hand_machine *h, int repeats)
{
    every_op(g);
    cores(h);
    make_tmp();
    pml_cost_opts o = opts_in(tmp, repeats);
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(g, &h->m, &o, &c));
    return c;
}

/* A machine file whose CPUs are this machine's cores (cores_of) is measured; another's not. */
static void t_cores_of(void)
{
    pml_graph g;
    every_op(&g);
    make_tmp();
    const pml_cost_opts o = opts_in(tmp, 1);
    for (int ours = 0; ours < 2; ours++) {
        char text[512];
        snprintf(text, sizeof text,
                 "digraph r { graph [kind=machine, cores_of=\"%s\", nodes=2, "
                 "topology=\"synthetic:pack:1 core:1 pu:1\", network_bw=\"4G\"]; }",
                 ours ? pml_machine_this_fingerprint() : "0123456789abcdef");
        pml_machine m;
        if (ours && !pml_machine_this_fingerprint()[0]) continue; /* hwloc could not tell */
        CHECK_OK(pml_machine_parse_dot(text, strlen(text), "r.dot", &m));
        pml_costmodel *c = NULL;
        CHECK_OK(pml_cost_create(&g, &m, &o, &c));
        if (c) {
            const double t = pml_cost_fwd(c, 1, 1, pml_region_full(&g.nodes[1], 8));
            CHECK(isfinite(t) && t > 0);
            CHECK_MSG((pml_cost_measurements(c) > 0) == (ours == 1), "cores_of %s: %ld measured",
                      ours ? "this machine" : "another", pml_cost_measurements(c));
        }
        pml_cost_destroy(c);
        pml_machine_free(&m);
    }
    pml_graph_free(&g);
    remove_tmp();
}

static void t_measured(void)
{
    pml_graph g;
    hand_machine h;
    pml_costmodel *c = measured_model(&g, &h, 3);
    if (!c) return;
    const pml_cost_opts o = opts_in(tmp, 3);
    CHECK(strncmp(pml_cost_cache_file(c), tmp, strlen(tmp)) == 0);
    double a[32][NPARTS][2], b[32][NPARTS][2];
    CHECK(g.nnodes <= 32);
    query_all(c, &g, 0, a);
    long n1 = pml_cost_measurements(c);
    CHECK(n1 > 0);
    for (int v = 0; v < g.nnodes; v++) {
        const pml_node *nd = &g.nodes[v];
        for (int p = 0; p < NPARTS; p++) {
            CHECK(isfinite(a[v][p][0]) && isfinite(a[v][p][1]));
            if (nd->op == PML_OP_INPUT) {
                CHECK(a[v][p][0] == 0 && a[v][p][1] == 0);
                continue;
            }
            CHECK_MSG(a[v][p][0] > 0, "%s part %d fwd %g", nd->name, p, a[v][p][0]);
            /* every node but the input computes a backward here (conv1 has parameters) */
            CHECK_MSG(a[v][p][1] > 0, "%s part %d bwd %g", nd->name, p, a[v][p][1]);
        }
    }
    /* the same queries again, and on the other core: answered from memory */
    query_all(c, &g, 0, b);
    CHECK(memcmp(a, b, sizeof(double) * (size_t)g.nnodes * NPARTS * 2) == 0);
    query_all(c, &g, 1, b);
    CHECK(memcmp(a, b, sizeof(double) * (size_t)g.nnodes * NPARTS * 2) == 0);
    CHECK(pml_cost_measurements(c) == n1);
    double u = pml_cost_update(c, 0, 1e5), r = pml_cost_reduce(c, 1, 1e5);
    CHECK(u > 0 && r > 0 && isfinite(u) && isfinite(r));
    CHECK(pml_cost_update(c, 0, 1e7) >= u && pml_cost_reduce(c, 0, 1e7) >= r);
    CHECK(pml_cost_update(c, 0, 1) > 0 && pml_cost_update(c, 0, 1e9) > pml_cost_update(c, 0, 1e8));
    /* a sync (sum and zero); slices of many ranges cost at least as much as one range */
    double sy = pml_cost_sync(c, 0, 1e5, 1);
    CHECK(sy > 0 && isfinite(sy) && pml_cost_sync(c, 0, 1e5, 1000) >= sy);
    CHECK(pml_cost_update_share(c, 0, 1e5, 1000, 1) >= u);
    CHECK(pml_cost_update_share(c, 0, 1e5, 1, 2) >= u); /* shares stream together */
    /* half a slice (one block of rows each) updated by each of two cores: never more than the
     * whole on one core (cold, memory-bound: as much) */
    CHECK(pml_cost_update_share(c, 0, 5e4, 1, 2) <= pml_cost_update_share(c, 0, 1e5, 1, 1) * (1 + 1e-9));
    CHECK(pml_cost_reduce_ranges(c, 0, 1e5, 1000) >= pml_cost_reduce(c, 0, 1e5));
    double z = pml_cost_zero(c, 0, 1e5, 1);
    CHECK(z > 0 && isfinite(z) && pml_cost_zero(c, 0, 1e5, 1000) >= z);
    long n2 = pml_cost_measurements(c);
    CHECK(n2 == n1 + 4);
    /* each measurement is written as it is made (for a concurrent run to use), so the save has
     * nothing left to write */
    CHECK(count_files(tmp) == 1);
    struct stat before, after;
    CHECK(stat(pml_cost_cache_file(c), &before) == 0);
    CHECK_OK(pml_cost_save(c));
    CHECK(count_files(tmp) == 1);
    CHECK(stat(pml_cost_cache_file(c), &after) == 0 && after.st_ino == before.st_ino);
    pml_cost_destroy(c);

    /* a second model on the same cache: no measurement, the same answers */
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    query_all(c, &g, 1, b);
    for (int v = 0; v < g.nnodes; v++)
        for (int p = 0; p < NPARTS; p++) {
            CHECK_NEAR(b[v][p][0], a[v][p][0], 1e-7);
            CHECK_NEAR(b[v][p][1], a[v][p][1], 1e-7);
        }
    CHECK_NEAR(pml_cost_update(c, 1, 1e5), u, 1e-7);
    CHECK_NEAR(pml_cost_reduce(c, 0, 1e5), r, 1e-7);
    CHECK_NEAR(pml_cost_sync(c, 1, 1e5, 1), sy, 1e-7);
    CHECK_NEAR(pml_cost_zero(c, 1, 1e5, 1), z, 1e-7);
    CHECK(pml_cost_measurements(c) == 0);
    CHECK_OK(pml_cost_save(c)); /* nothing new: nothing written, no temporary left */
    CHECK(count_files(tmp) == 1);
    pml_cost_destroy(c);
    remove_tmp();
    pml_graph_free(&g);
}

/* A step whose working set exceeds the last-level cache finds its data in memory: such parts are
 * also timed cold, and the answer blends warm and cold by the working set. */
static void t_cold_caches(void)
{
    pml_graph g;
    every_op(&g);
    hand_machine h;
    cores(&h);
    make_tmp();
    pml_cost_opts o = opts_in(tmp, 1);
    int conv2 = pml_graph_find(&g, "conv2"), dense = pml_graph_find(&g, "dense");
    const int ids[2] = {conv2, dense};
    double cold[2][2], warm[2][2];
    /* a 1 KiB cache: everything is cold */
    o.cache_bytes = 1024;
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    for (int i = 0; i < 2; i++) {
        pml_region r = pml_region_full(&g.nodes[ids[i]], 4);
        cold[i][0] = pml_cost_fwd(c, ids[i], 0, r);
        cold[i][1] = pml_cost_bwd(c, ids[i], 1, r);
        CHECK(cold[i][0] > 0 && cold[i][1] > 0 && isfinite(cold[i][0]) && isfinite(cold[i][1]));
    }
    CHECK(pml_cost_update(c, 0, 1e4) > 0);
    CHECK(pml_cost_measurements(c) == 3);
    CHECK_OK(pml_cost_save(c));
    pml_cost_destroy(c);
    /* a huge cache: everything is warm, which was not measured yet */
    o.cache_bytes = 1e15;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    for (int i = 0; i < 2; i++) {
        pml_region r = pml_region_full(&g.nodes[ids[i]], 4);
        warm[i][0] = pml_cost_fwd(c, ids[i], 1, r);
        warm[i][1] = pml_cost_bwd(c, ids[i], 0, r);
        CHECK(warm[i][0] > 0 && warm[i][1] > 0);
    }
    CHECK(pml_cost_update(c, 0, 1e4) > 0);
    CHECK(pml_cost_measurements(c) == 3);
    CHECK_OK(pml_cost_save(c));
    pml_cost_destroy(c);
    /* both known now: nothing measured, and a cache of the working set's size blends the two */
    double ws = 0;
    for (int v = 0; v < g.nnodes; v++)
        ws += (double)pml_shape_size(g.nodes[v].out) * (v == g.input || v == g.loss ? 1 : 2);
    o.cache_bytes = 4.0 * (4 * ws + 2.0 * (double)g.nparams);
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    for (int i = 0; i < 2; i++) {
        pml_region r = pml_region_full(&g.nodes[ids[i]], 4);
        double t = pml_cost_fwd(c, ids[i], 0, r), lo = fmin(warm[i][0], cold[i][0]),
               hi = fmax(warm[i][0], cold[i][0]);
        CHECK_MSG(t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9), "%g not in [%g, %g]", t, lo, hi);
        /* 1 KiB and 1e15 answers are the pure ones */
    }
    CHECK(pml_cost_update(c, 1, 1e4) > 0);
    CHECK(pml_cost_measurements(c) == 0);
    pml_cost_destroy(c);
    o.cache_bytes = -1;
    CHECK(pml_cost_create(&g, &h.m, &o, &c) == PML_EINVAL && !c);
    remove_tmp();
    pml_graph_free(&g);
}

/* A machine with another fingerprint uses another file; the same graph node measured as part of
 * a different graph with the same shapes is found under the same key. */
static void t_cache_keys(void)
{
    pml_graph g;
    every_op(&g);
    hand_machine h, h2;
    cores(&h);
    hand_init(&h2, "other", "00000000000ther2", 1, PML_DEV_CPU, 0, 0, true);
    make_tmp();
    pml_cost_opts o = opts_in(tmp, 1);
    pml_costmodel *c = NULL, *c2 = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    CHECK_OK(pml_cost_create(&g, &h2.m, &o, &c2));
    if (!c || !c2) return;
    CHECK(strcmp(pml_cost_cache_file(c), pml_cost_cache_file(c2)) != 0);
    int conv2 = pml_graph_find(&g, "conv2");
    double t = pml_cost_fwd(c, conv2, 0, pml_region_full(&g.nodes[conv2], 2));
    CHECK_OK(pml_cost_save(c));
    CHECK(pml_cost_fwd(c2, conv2, 0, pml_region_full(&g.nodes[conv2], 2)) > 0);
    CHECK(pml_cost_measurements(c2) == 1); /* the other machine measures for itself */
    pml_cost_destroy(c2);
    pml_cost_destroy(c);

    /* a copy of the graph with renamed nodes: same keys, nothing measured */
    pml_graph g2;
    CHECK_OK(pml_graph_copy(&g2, &g));
    for (int v = 0; v < g2.nnodes; v++) g2.nodes[v].name[0] = 'X';
    CHECK_OK(pml_cost_create(&g2, &h.m, &o, &c));
    if (!c) return;
    CHECK_NEAR(pml_cost_fwd(c, conv2, 1, pml_region_full(&g2.nodes[conv2], 2)), t, 1e-7);
    CHECK(pml_cost_measurements(c) == 0);
    pml_cost_destroy(c);
    pml_graph_free(&g2);
    remove_tmp();
    pml_graph_free(&g);
}

static bool write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(text, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Bad cache files are ignored without error, and replaced by a good one at the next save. */
static void t_bad_cache_files(void)
{
    pml_graph g;
    every_op(&g);
    hand_machine h;
    cores(&h);
    make_tmp();
    pml_cost_opts o = opts_in(tmp, 1);
    int conv2 = pml_graph_find(&g, "conv2");
    pml_region r = pml_region_full(&g.nodes[conv2], 2);
    /* a good file to corrupt */
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    char path[512];
    snprintf(path, sizeof path, "%s", pml_cost_cache_file(c));
    pml_cost_fwd(c, conv2, 0, r);
    int dense = pml_graph_find(&g, "dense");
    pml_cost_fwd(c, dense, 0, pml_region_full(&g.nodes[dense], 2));
    CHECK_OK(pml_cost_save(c));
    pml_cost_destroy(c);
    char *good;
    size_t len;
    CHECK_OK(pml_read_file(path, 1 << 20, &good, &len));
    if (!good) return;
    char *first_tab = strchr(good, '\t'), *nl1 = strchr(good, '\n');
    CHECK(first_tab && nl1);

    enum { NBAD = 13 };
    char bad[NBAD][4096];
    size_t blen[NBAD];
    int k = 0;
    /* binary garbage */
    for (int i = 0; i < 300; i++) bad[k][i] = (char)(i * 37 + 11);
    blen[k++] = 300;
    /* empty */
    blen[k++] = 0;
    /* truncated in the middle of a line, and at a line end (no trailer) */
    memcpy(bad[k], good, len / 2);
    blen[k++] = len / 2;
    {
        const char *end = strstr(good, "end\t");
        CHECK(end != NULL);
        blen[k] = end ? (size_t)(end - good) : 0;
        memcpy(bad[k], good, blen[k]);
        k++;
    }
    /* another version, another machine */
    blen[k] =
        (size_t)snprintf(bad[k], sizeof bad[k], "pml-costs 999 0000000000c0de02\n%s", nl1 + 1);
    k++;
    blen[k] = (size_t)snprintf(bad[k], sizeof bad[k], "pml-costs 1 0000000000c0dfff\n%s", nl1 + 1);
    k++;
    /* NaN, negative, infinite and junk values in the first entry */
    const char *values[4] = {"nan", "-1e-3", "inf", "1e-3x"};
    for (int i = 0; i < 4; i++) {
        char *tab2 = strchr(nl1 + 1, '\t');
        CHECK(tab2 != NULL);
        if (!tab2) return;
        char *tab3 = strchr(tab2 + 1, '\t');
        int pre = (int)(tab2 + 1 - good);
        blen[k] = (size_t)snprintf(bad[k], sizeof bad[k], "%.*s%s%s", pre, good, values[i], tab3);
        k++;
    }
    /* the first entry without any time; with three fields (the first version's) */
    {
        const char *nl2 = strchr(nl1 + 1, '\n');
        CHECK(nl2 != NULL);
        if (!nl2) return;
        const char *lines[2] = {"conv2d x\t-\t-\t-\t-", "conv2d x\t1e-3\t2e-3"};
        for (int i = 0; i < 2; i++) {
            blen[k] = (size_t)snprintf(bad[k], sizeof bad[k], "%.*s%s%s", (int)(nl1 + 1 - good),
                                       good, lines[i], nl2);
            k++;
        }
    }
    /* the trailer's count disagrees */
    blen[k] = (size_t)snprintf(bad[k], sizeof bad[k], "%.*send\t999\n",
                               (int)(strstr(good, "end\t") - good), good);
    k++;
    CHECK(k == NBAD);
    for (int i = 0; i < NBAD; i++) {
        CHECK(write_text(path, bad[i], blen[i]));
        CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
        if (!c) continue;
        double t = pml_cost_fwd(c, conv2, 0, r);
        CHECK_MSG(pml_cost_measurements(c) == 1 && t > 0 && isfinite(t), "bad file %d: %ld", i,
                  pml_cost_measurements(c));
        CHECK_OK(pml_cost_save(c));
        pml_cost_destroy(c);
        /* rewritten: a new model trusts it */
        CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
        if (!c) continue;
        pml_cost_fwd(c, conv2, 0, r);
        CHECK_MSG(pml_cost_measurements(c) == 0, "bad file %d was not rewritten", i);
        pml_cost_destroy(c);
        CHECK(count_files(tmp) == 1);
    }
    /* a folder where the file should be: an error from save, no crash */
    CHECK(unlink(path) == 0);
    CHECK(mkdir(path, 0755) == 0);
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (c) {
        CHECK(pml_cost_fwd(c, conv2, 0, r) > 0);
        pml_status st = pml_cost_save(c);
        CHECK(st == PML_EIO && strstr(pml_errmsg(), "costs-") != NULL);
        pml_cost_destroy(c);
    }
    free(good);
    remove_tmp();
    pml_graph_free(&g);
}

/* cache_dir "" writes nothing anywhere; NULL uses $XDG_CACHE_HOME/pml, else ~/.cache/pml */
static void t_cache_dirs(void)
{
    pml_graph g;
    every_op(&g);
    hand_machine h;
    cores(&h);
    make_tmp();
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char *old_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    setenv("HOME", tmp, 1);
    unsetenv("XDG_CACHE_HOME");
    int conv2 = pml_graph_find(&g, "conv2");
    pml_region r = pml_region_full(&g.nodes[conv2], 1);

    pml_cost_opts o = opts_in("", 1);
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (c) {
        CHECK(strcmp(pml_cost_cache_file(c), "") == 0);
        CHECK(pml_cost_fwd(c, conv2, 0, r) > 0);
        CHECK_OK(pml_cost_save(c));
        pml_cost_destroy(c);
    }
    CHECK(count_files(tmp) == 0);

    o = opts_in(NULL, 1);
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (c) {
        char want[512];
        snprintf(want, sizeof want, "%s/.cache/pml/costs-0000000000c0de02.tsv", tmp);
        CHECK_MSG(strcmp(pml_cost_cache_file(c), want) == 0, "%s", pml_cost_cache_file(c));
        CHECK(pml_cost_fwd(c, conv2, 0, r) > 0);
        CHECK_OK(pml_cost_save(c)); /* creates the folders */
        pml_cost_destroy(c);
        CHECK(access(want, R_OK) == 0);
    }
    char xdg[300];
    snprintf(xdg, sizeof xdg, "%s/xdg", tmp);
    setenv("XDG_CACHE_HOME", xdg, 1);
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (c) {
        char want[512];
        snprintf(want, sizeof want, "%s/pml/costs-0000000000c0de02.tsv", xdg);
        CHECK_MSG(strcmp(pml_cost_cache_file(c), want) == 0, "%s", pml_cost_cache_file(c));
        pml_cost_destroy(c);
    }
    /* a machine without a fingerprint has no cache file */
    hand_machine nf;
    hand_init(&nf, "nofp", "", 1, PML_DEV_CPU, 0, 0, true);
    CHECK_OK(pml_cost_create(&g, &nf.m, &o, &c));
    if (c) {
        CHECK(strcmp(pml_cost_cache_file(c), "") == 0);
        CHECK_OK(pml_cost_save(c));
        pml_cost_destroy(c);
    }
    if (old_home) setenv("HOME", old_home, 1);
    if (old_xdg)
        setenv("XDG_CACHE_HOME", old_xdg, 1);
    else
        unsetenv("XDG_CACHE_HOME");
    free(old_home);
    free(old_xdg);
    remove_tmp();
    pml_graph_free(&g);
}

/* Processes measuring and saving at once on one cache file (distinct parts each): every line
 * reaches the file, so a model made afterwards measures nothing. */
static void t_concurrent_saves(void)
{
    pml_graph g;
    every_op(&g);
    hand_machine h;
    cores(&h);
    make_tmp();
    pml_cost_opts o = opts_in(tmp, 1);
    const int dense = pml_graph_find(&g, "dense");
    enum { KIDS = 4, ROUNDS = 10 };
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t kid[KIDS];
    for (int k = 0; k < KIDS; k++) {
        kid[k] = fork();
        CHECK(kid[k] >= 0);
        if (kid[k] != 0) continue;
        close(go[1]);
        pml_costmodel *c = NULL;
        if (pml_cost_create(&g, &h.m, &o, &c) != PML_OK) _exit(10);
        char ch;
        if (read(go[0], &ch, 1) != 1) _exit(11);
        for (int r = 0; r < ROUNDS; r++) {
            pml_region part = pml_region_full(&g.nodes[dense], 1 + k * ROUNDS + r);
            if (!(pml_cost_fwd(c, dense, 0, part) > 0)) _exit(12);
            if (pml_cost_save(c) != PML_OK) _exit(13);
        }
        int rc = pml_cost_measurements(c) == ROUNDS ? 0 : 14;
        pml_cost_destroy(c);
        _exit(rc);
    }
    close(go[0]);
    char all[KIDS];
    memset(all, 'g', sizeof all);
    CHECK(write(go[1], all, sizeof all) == (ssize_t)sizeof all);
    close(go[1]);
    for (int k = 0; k < KIDS; k++) {
        int status = -1;
        CHECK(kid[k] > 0 && waitpid(kid[k], &status, 0) == kid[k]);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %#x", k, status);
    }
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (c) {
        for (int n = 1; n <= KIDS * ROUNDS; n++)
            pml_cost_fwd(c, dense, 0, pml_region_full(&g.nodes[dense], n));
        CHECK_MSG(pml_cost_measurements(c) == 0, "%ld parts lost from the file",
                  pml_cost_measurements(c));
        pml_cost_destroy(c);
    }
    CHECK(count_files(tmp) == 1);
    remove_tmp();
    pml_graph_free(&g);
}

/* A holder of the cost cache's lock that never lets go: the model waits as long as it was told
 * (once), measures without the disk cache from then on, writes nothing, and its save is no error. */
static void t_lock_held(void)
{
    pml_graph g;
    every_op(&g);
    hand_machine h;
    cores(&h);
    make_tmp();
    pml_cost_opts o = opts_in(tmp, 1);
    o.lock_wait = 0.1;
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    char path[512];
    snprintf(path, sizeof path, "%s", pml_cost_cache_file(c));
    const char *slash = strrchr(path, '/');
    pml_cache_lock held;
    CHECK(slash && pml_cache_lock_take(&held, tmp, slash + 1, 0));
    const int conv2 = pml_graph_find(&g, "conv2"), dense = pml_graph_find(&g, "dense");
    CHECK(pml_cost_fwd(c, conv2, 0, pml_region_full(&g.nodes[conv2], 2)) > 0);
    CHECK(pml_cost_fwd(c, dense, 0, pml_region_full(&g.nodes[dense], 2)) > 0);
    CHECK(pml_cost_measurements(c) == 2);
    CHECK_OK(pml_cost_save(c));
    CHECK(access(path, F_OK) != 0);
    pml_cache_unlock(&held);
    CHECK_OK(pml_cost_save(c)); /* gave up the disk: still nothing */
    CHECK(access(path, F_OK) != 0);
    pml_cost_destroy(c);
    remove_tmp();
    pml_graph_free(&g);
}

/* ---------------------------------------------------------------- threads, bad calls */

typedef struct chain {
    pml_costmodel *c;
    const pml_graph *g;
    int dev;
    double vals[32][NPARTS][2];
} chain;

static void *chain_run(void *arg)
{
    chain *ch = arg;
    query_all(ch->c, ch->g, ch->dev, ch->vals);
    return NULL;
}

static void t_threads(void)
{
    pml_graph g;
    every_op(&g);
    hand_machine h;
    cores(&h);
    pml_cost_opts o = opts_in("", 1);
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    static chain ch[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        ch[i].c = c;
        ch[i].g = &g;
        ch[i].dev = i % 2;
        CHECK(pthread_create(&th[i], NULL, chain_run, &ch[i]) == 0);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    size_t sz = sizeof(double) * (size_t)g.nnodes * NPARTS * 2;
    CHECK(memcmp(ch[0].vals, ch[1].vals, sz) == 0 && memcmp(ch[0].vals, ch[2].vals, sz) == 0);
    pml_cost_destroy(c);
    pml_graph_free(&g);
}

static void t_bad_calls(void)
{
    pml_graph g;
    every_op(&g);
    hand_machine h;
    p100(&h);
    pml_costmodel *c = NULL;
    pml_cost_opts o = pml_cost_opts_default();
    o.repeats = -2;
    CHECK(pml_cost_create(&g, &h.m, &o, &c) == PML_EINVAL && !c);
    CHECK(strstr(pml_errmsg(), "repeats") != NULL);
    o.repeats = 1000;
    CHECK(pml_cost_create(&g, &h.m, &o, &c) == PML_EINVAL && !c);
    pml_machine empty;
    memset(&empty, 0, sizeof empty);
    CHECK(pml_cost_create(&g, &empty, NULL, &c) == PML_EINVAL && !c);
    pml_graph raw;
    pml_graph_init(&raw, "raw");
    CHECK(pml_cost_create(&raw, &h.m, NULL, &c) == PML_EINVAL && !c);
    CHECK(strstr(pml_errmsg(), "raw") != NULL);
    pml_graph_free(&raw);
    CHECK_OK(pml_cost_create(&g, &h.m, NULL, &c));
    if (c) {
        pml_region r = pml_region_full(&g.nodes[1], 2);
        CHECK(isinf(pml_cost_fwd(c, -1, 0, r)) && isinf(pml_cost_bwd(c, g.nnodes, 0, r)));
        CHECK(isinf(pml_cost_fwd(c, 1, 4, r)) && isinf(pml_cost_update(c, -1, 10)));
        CHECK(pml_cost_fwd(c, 1, 0, region(0, 0, 0, 4, 0, 8)) == 0); /* empty part */
        CHECK_OK(pml_cost_save(c)); /* no disk cache: nothing to do */
        pml_cost_destroy(c);
    }
    pml_cost_destroy(NULL);
    pml_graph_free(&g);
}

/* Rewrites the fields of the cache file's line starting with `key` (same field count: the
 * trailer's count stays right). \return false when there is no such line. */
static bool set_line(const char *path, const char *key, const char *fields)
{
    char *text;
    size_t len;
    if (pml_read_file(path, 1 << 20, &text, &len) != PML_OK) return false;
    char *at = strstr(text, key), *nl = at ? strchr(at, '\n') : NULL;
    bool ok = at && nl && (at == text || at[-1] == '\n');
    if (ok) {
        char *out = malloc(len + strlen(fields) + strlen(key) + 2);
        ok = out != NULL;
        if (ok) {
            size_t head = (size_t)(at - text);
            memcpy(out, text, head);
            int k = sprintf(out + head, "%s\t%s", key, fields);
            size_t tail = len - (size_t)(nl - text);
            memcpy(out + head + (size_t)k, nl, tail);
            ok = write_text(path, out, head + (size_t)k + tail);
            free(out);
        }
    }
    free(text);
    return ok;
}

/* The cache a step can use is measured once per machine and kept in the cache file: read back as
 * written, measured again when out of range; the options' size wins; analytic models keep
 * hwloc's. */
static void t_llc_cache(void)
{
    pml_graph g;
    hand_machine h;
    every_op(&g);
    cores(&h);
    make_tmp();
    pml_cost_opts o = opts_in(tmp, 1);
    o.cache_bytes = 0;
    pml_costmodel *c = NULL;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    const double llc = pml_cost_cache_bytes(c);
    CHECK_OK(pml_cost_save(c));
    char path[512];
    snprintf(path, sizeof path, "%s", pml_cost_cache_file(c));
    pml_cost_destroy(c);
    char *text = NULL, key[64] = "";
    size_t len;
    double hw = 0, kept = 0;
    CHECK_OK(pml_read_file(path, 1 << 20, &text, &len));
    const char *at = text ? strstr(text, "\nllc hw=") : NULL;
    CHECK_MSG(at && sscanf(at + 1, "llc hw=%lf\t%lf", &hw, &kept) == 2, "%s",
              text ? text : "(no file)");
    free(text);
    CHECK_MSG(llc >= (1 << 20) && llc <= hw && kept * (1 << 20) == llc, "measured %g of %g, kept %g MiB",
              llc, hw, kept);
    snprintf(key, sizeof key, "llc hw=%.0f", hw);
    /* what the file says is what a new model uses */
    CHECK(set_line(path, key, "2\t-\t-\t-")); /* MiB */
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    CHECK_MSG(c && pml_cost_cache_bytes(c) == 2097152, "%g", c ? pml_cost_cache_bytes(c) : -1.0);
    pml_cost_destroy(c);
    /* out of range: measured again */
    CHECK(set_line(path, key, "0.5\t-\t-\t-"));
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    CHECK(c && pml_cost_cache_bytes(c) >= (1 << 20) && pml_cost_cache_bytes(c) <= hw);
    pml_cost_destroy(c);
    /* the options' size; analytic: hwloc's (or the default), nothing measured */
    o.cache_bytes = 3 << 20;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    CHECK(c && pml_cost_cache_bytes(c) == 3 << 20);
    pml_cost_destroy(c);
    o.cache_bytes = 0;
    o.measure = false;
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    CHECK(c && pml_cost_cache_bytes(c) > 0 && pml_cost_measurements(c) == 0);
    pml_cost_destroy(c);
    remove_tmp();
    pml_graph_free(&g);
}

/* Whether a line of the cache file starts with key followed by a tab. */
static bool has_key(const char *text, const char *key)
{
    const size_t n = strlen(key);
    for (const char *at = text; at && *at; at = strchr(at, '\n'), at = at ? at + 1 : NULL)
        if (!strncmp(at, key, n) && at[n] == '\t') return true;
    return false;
}

/* When a step's working set passes a core's private cache, updates and syncs are calibrated
 * with that cache emptied first: entries of their own ("... private-evicted"), measured beside
 * the warm ones; reductions and zeroing are never. */
static void t_private_cache(void)
{
    pml_graph g;
    hand_machine h;
    every_op(&g);
    cores(&h);
    make_tmp();
    char path[512] = "";
    for (int k = 0; k < 2; k++) {
        pml_cost_opts o = opts_in(tmp, 1);
        o.private_bytes = k == 0 ? 1024 : 1e15; /* every step passes 1 KiB; none 1e15 */
        pml_costmodel *c = NULL;
        CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
        if (!c) break;
        const double u = pml_cost_update(c, 0, 1e4), sy = pml_cost_sync(c, 1, 1e4, 1),
                     r = pml_cost_reduce(c, 0, 1e4);
        CHECK_MSG(u > 0 && isfinite(u) && sy > 0 && isfinite(sy) && r > 0 && isfinite(r),
                  "update %g, sync %g, reduce %g", u, sy, r);
        /* the first model measures all three; the second update and sync only */
        CHECK_MSG(pml_cost_measurements(c) == (k == 0 ? 3 : 2), "model %d: %ld measurements", k,
                  pml_cost_measurements(c));
        CHECK_OK(pml_cost_save(c));
        snprintf(path, sizeof path, "%s", pml_cost_cache_file(c));
        pml_cost_destroy(c);
        char *text = NULL;
        size_t len;
        CHECK_OK(pml_read_file(path, 1 << 20, &text, &len));
        if (!text) break;
        CHECK(has_key(text, "adam+clear floats=4096 private-evicted"));
        CHECK(has_key(text, "sum+clear floats=65536 private-evicted"));
        CHECK(has_key(text, "adam+clear rows=1024x64 private-evicted"));
        CHECK(has_key(text, "sum floats=4096"));
        CHECK(!has_key(text, "sum floats=4096 private-evicted"));
        CHECK(has_key(text, "adam+clear floats=4096") == (k == 1));
        CHECK(has_key(text, "sum+clear floats=65536") == (k == 1));
        free(text);
    }
    pml_cost_opts o = opts_in(tmp, 1);
    o.private_bytes = -1;
    pml_costmodel *c = NULL;
    CHECK(pml_cost_create(&g, &h.m, &o, &c) == PML_EINVAL && !c);
    o.private_bytes = NAN;
    CHECK(pml_cost_create(&g, &h.m, &o, &c) == PML_EINVAL && !c);
    remove_tmp();
    pml_graph_free(&g);
}

/* Cores updating their shares of a slice from memory at once: each share takes its own time
 * slowed by the memory crowding, never longer than the whole slice alone. */
static void t_update_shares(void)
{
    pml_graph g;
    hand_machine h;
    every_op(&g);
    cores(&h);
    make_tmp();
    const double N = 1e5;
    double alone = 0, whole = 0;
    for (int k = 0; k < 3; k++) {
        pml_cost_opts o = opts_in(tmp, 1);
        o.cache_bytes = 1; /* every step's data comes from memory */
        o.crowd_compute = 1;
        o.crowd_memory = k == 0 ? 1 : k == 1 ? 1.5 : 4;
        pml_costmodel *c = NULL;
        CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
        if (!c) break;
        const double share = pml_cost_update_share(c, 0, N, 1, 2);
        if (k == 0) {
            alone = pml_cost_update(c, 0, N);
            whole = pml_cost_update_share(c, 0, 2 * N, 2, 1); /* both shares' ranges */
            CHECK_MSG(alone > 0 && whole > alone && share == alone, "%g alone, %g a share",
                      alone, share);
        } else {
            const double want = fmin(o.crowd_memory * alone, whole);
            /* (the calibration read back from the file: 9 digits) */
            CHECK_MSG(fabs(share - want) <= 1e-7 * want, "crowded %g: %g, want %g",
                      o.crowd_memory, share, want);
        }
        CHECK_OK(pml_cost_save(c));
        pml_cost_destroy(c);
    }
    remove_tmp();
    pml_graph_free(&g);
}

/* Crowding (kernels with the other cores busy) is measured once per machine and kept in the
 * cache file: read back as written, measured again when its entry is out of range; two cores
 * that are not measured (analytic) have none, and the options' factors replace it. */
static void t_crowding_cache(void)
{
    pml_graph g;
    hand_machine h;
    pml_costmodel *c = measured_model(&g, &h, 1);
    if (!c) return;
    pml_cost_opts o = opts_in(tmp, 1);
    double fc = 0, fm = 0;
    pml_cost_crowding(c, 0, &fc, &fm);
    CHECK_MSG(fc >= 1 && fc <= 4 && fm >= 1 && fm <= 4, "measured %g %g", fc, fm);
    CHECK_OK(pml_cost_save(c));
    char path[512];
    snprintf(path, sizeof path, "%s", pml_cost_cache_file(c));
    pml_cost_destroy(c);
    /* what the file says is what a new model uses */
    CHECK(set_line(path, "crowd cores=2", "1.5\t2.5\t-\t-"));
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    pml_cost_crowding(c, 1, &fc, &fm);
    CHECK(fc == 1.5 && fm == 2.5);
    pml_cost_destroy(c);
    /* out of range: measured again, and the file mended */
    CHECK(set_line(path, "crowd cores=2", "0.25\t9\t-\t-"));
    CHECK_OK(pml_cost_create(&g, &h.m, &o, &c));
    if (!c) return;
    pml_cost_crowding(c, 0, &fc, &fm);
    CHECK_MSG(fc >= 1 && fc <= 4 && fm >= 1 && fm <= 4, "measured again: %g %g", fc, fm);
    CHECK_OK(pml_cost_save(c));
    pml_cost_destroy(c);
    char *text = NULL;
    size_t len;
    CHECK_OK(pml_read_file(path, 1 << 20, &text, &len));
    CHECK(text && strstr(text, "crowd cores=2\t0.25") == NULL && strstr(text, "crowd cores=2\t") != NULL);
    free(text);
    /* not measured: none; the options' factors: those */
    pml_cost_opts a = opts_in(tmp, 1);
    a.measure = false;
    CHECK_OK(pml_cost_create(&g, &h.m, &a, &c));
    if (c) {
        pml_cost_crowding(c, 0, &fc, &fm);
        CHECK(fc == 1 && fm == 1);
        pml_cost_destroy(c);
    }
    a.crowd_compute = NAN;
    CHECK(pml_cost_create(&g, &h.m, &a, &c) == PML_EINVAL && !c);
    a.crowd_compute = 1.2;
    a.crowd_memory = 0.5; /* below 1: 1 */
    CHECK_OK(pml_cost_create(&g, &h.m, &a, &c));
    if (c) {
        pml_cost_crowding(c, 1, &fc, &fm);
        CHECK(fc == 1.2 && fm == 1);
        pml_cost_crowding(c, 2, &fc, &fm); /* no such device */
        CHECK(fc == 1 && fm == 1);
        pml_cost_destroy(c);
    }
    remove_tmp();
    pml_graph_free(&g);
}

static const pml_test tests[] = {
    {"analytic_conv_p100", t_analytic_conv_p100},
    {"analytic_shape", t_analytic_shape},
    {"analytic_cpu", t_analytic_cpu},
    {"measured", t_measured},
    {"cores_of", t_cores_of},
    {"llc_cache", t_llc_cache},
    {"update_shares", t_update_shares},
    {"private_cache", t_private_cache},
    {"cold_caches", t_cold_caches},
    {"cache_keys", t_cache_keys},
    {"bad_cache_files", t_bad_cache_files},
    {"crowding_cache", t_crowding_cache},
    {"cache_dirs", t_cache_dirs},
    {"concurrent_saves", t_concurrent_saves},
    {"lock_held", t_lock_held},
    {"threads", t_threads},
    {"bad_calls", t_bad_calls},
    {0},
};

PML_TEST_MAIN(tests)
