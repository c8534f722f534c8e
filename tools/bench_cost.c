/* bench-cost — how close the cost model's single-part predictions are to the executor: for each
 * MODEL, the measured cost model's forward and backward seconds per node (one part: the whole
 * batch) next to the executor's per-node profile on one thread (what `pml bench train MODEL
 * --threads 1 --profile` prints), and the optimizer update. A benchmark, not a test:
 *
 *   bench-cost [--batch N] [--steps N] [--threads T] [--split sample|param|attr] [--cache DIR]
 *              MODEL...
 *
 * With --threads T > 1 the executor splits every node into T parts run at once on T cores (by
 * samples, or with --split param|attr by channels or rows where the op allows, as the executor's
 * forced split picks), and the prediction for a node is its slowest part measured alone: this
 * shows what running beside another core costs (shared caches and memory bandwidth). The update
 * is then split T ways too. Without --cache the cost model measures afresh (no disk cache). The
 * executor is profiled in 7 chunks of --steps steps (default 10); a node's figure is the median of
 * the chunks' means, so a chunk disturbed by another process does not count. */
#include "models/models.h"
#include "planner/planner.h"
#include "runtime/runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define CHUNKS 7



/* The split the executor forces (runtime/exec.c, choose_split with force_split): the preferred
 * split, else samples, else channels, where the op allows it and the dim has T rows. */
static unsigned forced_split(const pml_node *nd, int batch, int T, unsigned prefer)
{
    const unsigned ok = pml_ops[nd->op].splits,
                   pref[3] = {prefer, PML_SPLIT_SAMPLE, PML_SPLIT_PARAM};
    if (T == 1 || nd->op == PML_OP_INPUT) return 0;
    for (int i = 0; i < 3; i++) {
        unsigned s = pref[i] & ok;
        if ((s == PML_SPLIT_SAMPLE && batch >= T) || (s == PML_SPLIT_PARAM && nd->out.c >= T) ||
            (s == PML_SPLIT_ATTR && nd->out.h >= T))
            return s;
    }
    return 0;
}

static pml_region part_of(const pml_node *nd, int batch, unsigned split, int parts, int i)
{
    pml_region r = pml_region_full(nd, batch);
    int *lo = split == PML_SPLIT_SAMPLE ? &r.n0 : split == PML_SPLIT_PARAM ? &r.c0 : &r.h0;
    int *hi = split == PML_SPLIT_SAMPLE ? &r.n1 : split == PML_SPLIT_PARAM ? &r.c1 : &r.h1;
    const long len = *hi;
    *lo = (int)(len * i / parts);
    *hi = (int)(len * (i + 1) / parts);
    return r;
}

static int bench(const char *model, int batch, int steps, int threads, unsigned prefer,
                 const char *cache)
{
    pml_graph g;
    if (pml_model_load(model, &g) != PML_OK) {
        fprintf(stderr, "bench-cost: %s\n", pml_errmsg());
        return 1;
    }
    int rc = 1;
    pml_machine m;
    if (pml_machine_load(NULL, &m) != PML_OK) {
        fprintf(stderr, "bench-cost: %s\n", pml_errmsg());
        pml_graph_free(&g);
        return 1;
    }
    pml_cost_opts co = pml_cost_opts_default();
    co.cache_dir = cache;
    pml_costmodel *c = NULL, *ca = NULL;
    pml_exec *e = NULL;
    pml_dataset d;
    pml_optim o;
    memset(&d, 0, sizeof d);
    pml_optim_defaults(&o, PML_OPTIM_ADAM);
    double *pf = calloc((size_t)g.nnodes, sizeof *pf), *pb = calloc((size_t)g.nnodes, sizeof *pb);
    double *cf = calloc((size_t)g.nnodes, sizeof *cf), *cb = calloc((size_t)g.nnodes, sizeof *cb);
    double *af = calloc((size_t)g.nnodes, sizeof *af), *ab = calloc((size_t)g.nnodes, sizeof *ab);
    int32_t *idx = calloc((size_t)batch, sizeof *idx);
    if (!pf || !pb || !cf || !cb || !af || !ab || !idx) goto out;
    pml_cost_opts ao = co;
    ao.measure = false;
    if (pml_cost_create(&g, &m, &co, &c) != PML_OK || pml_cost_create(&g, &m, &ao, &ca) != PML_OK) {
        fprintf(stderr, "bench-cost: %s\n", pml_errmsg());
        goto out;
    }
    double t0 = pml_now();
    for (int v = 0; v < g.nnodes; v++) {
        unsigned split = forced_split(&g.nodes[v], batch, threads, prefer);
        for (int i = 0; i < (split ? threads : 1); i++) {
            pml_region r = part_of(&g.nodes[v], batch, split, split ? threads : 1, i);
            cf[v] = fmax(cf[v], pml_cost_fwd(c, v, 0, r));
            cb[v] = fmax(cb[v], pml_cost_bwd(c, v, 0, r));
            af[v] = fmax(af[v], pml_cost_fwd(ca, v, 0, r));
            ab[v] = fmax(ab[v], pml_cost_bwd(ca, v, 0, r));
        }
    }
    double cupd = pml_cost_update(c, 0, ceil((double)g.nparams / threads));
    double aupd = pml_cost_update(ca, 0, ceil((double)g.nparams / threads));
    double tmeasure = pml_now() - t0;
    if (cache && pml_cost_save(c) != PML_OK) fprintf(stderr, "bench-cost: %s\n", pml_errmsg());

    pml_exec_opts eo = {
        .batch = batch, .threads = threads, .seed = 1, .force_split = threads > 1 ? prefer : 0};
    if (pml_data_synthetic(g.nodes[g.input].out, g.classes, batch, 1, &d) != PML_OK ||
        pml_exec_create(&g, &eo, &e) != PML_OK || pml_optim_alloc(&o, g.nparams) != PML_OK) {
        fprintf(stderr, "bench-cost: %s\n", pml_errmsg());
        goto out;
    }
    for (int i = 0; i < batch; i++) idx[i] = i;
    pml_data_gather(&d, idx, batch, pml_exec_input(e), pml_exec_labels(e));
    /* profile in CHUNKS chunks of steps; per node the median of the chunks' means, so that a
     * chunk disturbed by another process does not count */
    const int warmup = 5;
    double *chf = calloc((size_t)CHUNKS * g.nnodes, sizeof *chf);
    double *chb = calloc((size_t)CHUNKS * g.nnodes, sizeof *chb), chu[CHUNKS];
    if (!chf || !chb) {
        free(chf);
        free(chb);
        goto out;
    }
    for (int s = 0; s < warmup + CHUNKS * steps; s++) {
        if (s >= warmup && (s - warmup) % steps == 0) pml_exec_set_profiling(e, true);
        pml_step_result res;
        if (pml_exec_train_step(e, batch, &o, &res) != PML_OK) {
            fprintf(stderr, "bench-cost: %s\n", pml_errmsg());
            free(chf);
            free(chb);
            goto out;
        }
        if (s >= warmup && (s - warmup) % steps == steps - 1) {
            int k = (s - warmup) / steps;
            pml_exec_profile(e, chf + (size_t)k * g.nnodes, chb + (size_t)k * g.nnodes, &chu[k]);
            pml_exec_set_profiling(e, false);
        }
    }
    double col[CHUNKS];
    for (int v = 0; v < g.nnodes; v++) {
        for (int k = 0; k < CHUNKS; k++) col[k] = chf[(size_t)k * g.nnodes + v];
        pf[v] = pml_median(col, CHUNKS);
        for (int k = 0; k < CHUNKS; k++) col[k] = chb[(size_t)k * g.nnodes + v];
        pb[v] = pml_median(col, CHUNKS);
    }
    double upd = pml_median(chu, CHUNKS);
    free(chf);
    free(chb);
    printf("%s, batch %d, %d thread%s, %s (measuring took %.2f s, %ld measurements)\n", model,
           batch, threads, threads > 1 ? "s" : "",
           threads == 1                 ? "one part per node"
           : prefer == PML_SPLIT_SAMPLE ? "sample split, slowest part"
           : prefer == PML_SPLIT_PARAM  ? "channel split where allowed, slowest part"
                                        : "row split where allowed, slowest part",
           tmeasure, pml_cost_measurements(c));
    printf("%-12s %-12s %9s %9s %6s %9s %9s %6s | %6s %6s\n", "node", "op", "pred fwd", "prof fwd",
           "ratio", "pred bwd", "prof bwd", "ratio", "roof f", "roof b");
    double sp = 0, sm = 0, sa = 0;
    for (int k = 0; k < g.nnodes; k++) {
        int v = g.order[k];
        if (v == g.input) continue;
        double mf = pf[v] / steps, mb = pb[v] / steps;
        sp += cf[v] + cb[v];
        sm += mf + mb;
        sa += af[v] + ab[v];
        printf("%-12s %-12s %9.4f %9.4f %6.2f %9.4f %9.4f %6.2f | %6.2f %6.2f\n", g.nodes[v].name,
               pml_op_name(g.nodes[v].op), 1e3 * cf[v], 1e3 * mf, mf > 0 ? cf[v] / mf : NAN,
               1e3 * cb[v], 1e3 * mb, mb > 0 ? cb[v] / mb : NAN, mf > 0 ? af[v] / mf : NAN,
               mb > 0 ? ab[v] / mb : NAN);
    }
    printf("%-25s %9.4f %9.4f %6.2f %28s | %6.2f\n", "(optimizer update)", 1e3 * cupd,
           1e3 * upd / steps, cupd / (upd / steps), "", aupd / (upd / steps));
    sp += cupd;
    sm += upd / steps;
    sa += aupd;
    printf("%-25s %9.4f %9.4f %6.2f %28s | %6.2f\n", "step total", 1e3 * sp, 1e3 * sm, sp / sm, "",
           sa / sm);
    printf("(ms; ratio = predicted / profiled; roof: the roofline with this machine's figures, "
           "as for a machine not present)\n\n");
    rc = 0;
out:
    pml_optim_free(&o);
    pml_exec_destroy(e);
    pml_data_free(&d);
    pml_cost_destroy(c);
    pml_cost_destroy(ca);
    pml_machine_free(&m);
    pml_graph_free(&g);
    free(pf);
    free(pb);
    free(cf);
    free(cb);
    free(af);
    free(ab);
    free(idx);
    return rc;
}

int main(int argc, char **argv)
{
    int batch = 32, steps = 10, threads = 1, rc = 0, models = 0;
    unsigned prefer = PML_SPLIT_SAMPLE;
    const char *cache = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            batch = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads < 1 || threads > 64) threads = 0;
        } else if (strcmp(argv[i], "--split") == 0 && i + 1 < argc) {
            i++;
            prefer = !strcmp(argv[i], "sample")  ? PML_SPLIT_SAMPLE
                     : !strcmp(argv[i], "param") ? PML_SPLIT_PARAM
                     : !strcmp(argv[i], "attr")  ? PML_SPLIT_ATTR
                                                 : 0;
            if (!prefer) threads = 0; /* usage */
        } else if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc) {
            cache = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench-cost [--batch N] [--steps N] [--threads T] [--split "
                            "sample|param|attr] "
                            "[--cache DIR] MODEL...\n");
            return 2;
        } else {
            models++;
            if (batch >= 1 && steps >= 1 && threads >= 1)
                rc |= bench(argv[i], batch, steps, threads, prefer, cache);
        }
    }
    if (batch < 1 || steps < 1 || threads < 1 || !models) {
        fprintf(
            stderr,
            "usage: bench-cost [--batch N] [--steps N] [--threads T] [--split sample|param|attr] "
            "[--cache DIR] MODEL...\n");
        return 2;
    }
    return rc;
}
