/* bench-cost — how close the cost model's single-part predictions are to the executor: for each
 * MODEL, the measured cost model's forward and backward seconds per node (one part: the whole
 * batch) next to the executor's per-node profile on one thread (what `pml bench train MODEL
 * --threads 1 --profile` prints), and the optimizer update. A benchmark, not a test:
 *
 *   bench-cost [--batch N] [--steps N] [--cache DIR] MODEL...
 *
 * Without --cache the cost model measures afresh (no disk cache). */
#include "models.h"
#include "planner.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* This machine's first core, built by hand (one present CPU device). */
static void one_core(pml_machine *m, pml_device *dev, int *compute, int *compute_of)
{
    memset(m, 0, sizeof *m);
    memset(dev, 0, sizeof *dev);
    snprintf(dev->name, sizeof dev->name, "core0");
    dev->kind = PML_DEV_CPU;
    dev->cores = 1;
    dev->present = true;
    snprintf(m->name, sizeof m->name, "this");
    snprintf(m->fingerprint, sizeof m->fingerprint, "0000bench0000001");
    m->ndev = 1;
    m->dev = dev;
    m->ncompute = 1;
    compute[0] = 0;
    compute_of[0] = 0;
    m->compute = compute;
    m->compute_of = compute_of;
}

static int bench(const char *model, int batch, int steps, const char *cache)
{
    pml_graph g;
    if (pml_model_load(model, &g) != PML_OK) {
        fprintf(stderr, "bench-cost: %s\n", pml_errmsg());
        return 1;
    }
    int rc = 1;
    pml_machine m;
    pml_device dev;
    int compute[1], compute_of[1];
    one_core(&m, &dev, compute, compute_of);
    pml_cost_opts co = pml_cost_opts_default();
    co.cache_dir = cache;
    pml_costmodel *c = NULL;
    pml_exec *e = NULL;
    pml_dataset d;
    pml_optim o;
    memset(&d, 0, sizeof d);
    pml_optim_defaults(&o, PML_OPTIM_ADAM);
    double *pf = calloc((size_t)g.nnodes, sizeof *pf), *pb = calloc((size_t)g.nnodes, sizeof *pb);
    double *cf = calloc((size_t)g.nnodes, sizeof *cf), *cb = calloc((size_t)g.nnodes, sizeof *cb);
    int32_t *idx = calloc((size_t)batch, sizeof *idx);
    if (!pf || !pb || !cf || !cb || !idx) goto out;
    if (pml_cost_create(&g, &m, &co, &c) != PML_OK) {
        fprintf(stderr, "bench-cost: %s\n", pml_errmsg());
        goto out;
    }
    double t0 = now_s();
    for (int v = 0; v < g.nnodes; v++) {
        pml_region r = pml_region_full(&g.nodes[v], batch);
        cf[v] = pml_cost_fwd(c, v, 0, r);
        cb[v] = pml_cost_bwd(c, v, 0, r);
    }
    double cupd = pml_cost_update(c, 0, (double)g.nparams);
    double tmeasure = now_s() - t0;
    if (cache && pml_cost_save(c) != PML_OK) fprintf(stderr, "bench-cost: %s\n", pml_errmsg());

    pml_exec_opts eo = {.batch = batch, .threads = 1, .seed = 1};
    if (pml_data_synthetic(g.nodes[g.input].out, g.classes, batch, 1, &d) != PML_OK ||
        pml_exec_create(&g, &eo, &e) != PML_OK || pml_optim_alloc(&o, g.nparams) != PML_OK) {
        fprintf(stderr, "bench-cost: %s\n", pml_errmsg());
        goto out;
    }
    for (int i = 0; i < batch; i++) idx[i] = i;
    pml_data_gather(&d, idx, batch, pml_exec_input(e), pml_exec_labels(e));
    const int warmup = 5;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) pml_exec_set_profiling(e, true);
        pml_step_result res;
        if (pml_exec_train_step(e, batch, &o, &res) != PML_OK) {
            fprintf(stderr, "bench-cost: %s\n", pml_errmsg());
            goto out;
        }
    }
    double upd;
    pml_exec_profile(e, pf, pb, &upd);
    printf("%s, batch %d, one part per node (measuring took %.2f s, %ld measurements)\n", model,
           batch, tmeasure, pml_cost_measurements(c));
    printf("%-12s %-12s %9s %9s %7s %9s %9s %7s\n", "node", "op", "pred fwd", "prof fwd", "ratio",
           "pred bwd", "prof bwd", "ratio");
    double sp = 0, sm = 0;
    for (int k = 0; k < g.nnodes; k++) {
        int v = g.order[k];
        if (v == g.input) continue;
        double mf = pf[v] / steps, mb = pb[v] / steps;
        sp += cf[v] + cb[v];
        sm += mf + mb;
        printf("%-12s %-12s %9.4f %9.4f %7.2f %9.4f %9.4f %7.2f\n", g.nodes[v].name,
               pml_op_name(g.nodes[v].op), 1e3 * cf[v], 1e3 * mf, mf > 0 ? cf[v] / mf : NAN,
               1e3 * cb[v], 1e3 * mb, mb > 0 ? cb[v] / mb : NAN);
    }
    printf("%-25s %9.4f %9.4f %7.2f\n", "(optimizer update)", 1e3 * cupd, 1e3 * upd / steps,
           cupd / (upd / steps));
    sp += cupd;
    sm += upd / steps;
    printf("%-25s %9.4f %9.4f %7.2f   (ms; ratio = predicted / profiled)\n\n", "step total",
           1e3 * sp, 1e3 * sm, sp / sm);
    rc = 0;
out:
    pml_optim_free(&o);
    pml_exec_destroy(e);
    pml_data_free(&d);
    pml_cost_destroy(c);
    pml_graph_free(&g);
    free(pf);
    free(pb);
    free(cf);
    free(cb);
    free(idx);
    return rc;
}

int main(int argc, char **argv)
{
    int batch = 32, steps = 30, rc = 0, models = 0;
    const char *cache = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            batch = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc) {
            cache = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench-cost [--batch N] [--steps N] [--cache DIR] MODEL...\n");
            return 2;
        } else {
            models++;
            rc |= bench(argv[i], batch, steps, cache);
        }
    }
    if (batch < 1 || steps < 1 || !models) {
        fprintf(stderr, "usage: bench-cost [--batch N] [--steps N] [--cache DIR] MODEL...\n");
        return 2;
    }
    return rc;
}
