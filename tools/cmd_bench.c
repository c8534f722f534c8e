/* pml bench — benchmarks (speed lives here, never in tests). */
#include "cli.h"

#include "models.h"
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char bench_help[] =
    "usage: pml bench train MODEL [options]\n"
    "\n"
    "Times training steps of MODEL on synthetic data of its input shape (data loading not\n"
    "included) and prints the median step time, samples per second and achieved GFLOP/s\n"
    "(a training step counted as 3x the forward FLOPs).\n"
    "\n"
    "options:\n"
    "  --batch N      mini-batch size (default 32)\n"
    "  --threads N    worker threads (default: all cores)\n"
    "  --steps N      timed steps (default 50)\n"
    "  --warmup N     untimed steps first (default 5)\n"
    "  --profile      also print each node's forward and backward time per step\n"
    "  --json         one JSON object on stdout\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_train(int argc, char **argv)
{
    cli c;
    cli_init(&c, "bench train", argc, argv);
    const char *model = NULL;
    int batch = 32, threads = pml_machine_cores(), steps = 50, warmup = 5;
    bool profile = false, json = false;
    const char *a;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (model) cli_error(&c, "unexpected argument '%s' (one MODEL)", a);
            model = a;
        } else if (cli_is(&c, "-h") || cli_is(&c, "--help")) {
            fputs(bench_help, stdout);
            return 0;
        } else if (cli_is(&c, "--batch")) {
            batch = (int)cli_long(&c, 1, 1 << 20);
        } else if (cli_is(&c, "--threads")) {
            threads = (int)cli_long(&c, 1, 64);
        } else if (cli_is(&c, "--steps")) {
            steps = (int)cli_long(&c, 1, 1 << 20);
        } else if (cli_is(&c, "--warmup")) {
            warmup = (int)cli_long(&c, 0, 1 << 20);
        } else if (cli_is(&c, "--profile")) {
            profile = true;
        } else if (cli_is(&c, "--json")) {
            json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    if (!model) {
        fprintf(stderr, "pml bench train: missing MODEL\n");
        return EXIT_USAGE;
    }
    pml_graph g;
    if (pml_model_load(model, &g) != PML_OK) {
        fprintf(stderr, "pml bench train: %s\n", pml_errmsg());
        return 1;
    }
    int rc = 1;
    pml_exec *e = NULL;
    pml_dataset d;
    pml_optim o;
    double *times = calloc((size_t)steps, sizeof *times);
    double *pf = calloc((size_t)g.nnodes, sizeof *pf), *pb = calloc((size_t)g.nnodes, sizeof *pb);
    int32_t *idx = calloc((size_t)batch, sizeof *idx);
    pml_optim_defaults(&o, PML_OPTIM_ADAM);
    memset(&d, 0, sizeof d);
    pml_exec_opts eo = {.batch = batch, .threads = threads, .seed = 1};
    if (!times || !pf || !pb || !idx) goto out;
    if (pml_data_synthetic(g.nodes[g.input].out, g.classes, batch, 1, &d) != PML_OK ||
        pml_exec_create(&g, &eo, &e) != PML_OK || pml_optim_alloc(&o, g.nparams) != PML_OK) {
        fprintf(stderr, "pml bench train: %s\n", pml_errmsg());
        goto out;
    }
    for (int i = 0; i < batch; i++) idx[i] = i;
    pml_data_gather(&d, idx, batch, pml_exec_input(e), pml_exec_labels(e));
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup && profile) pml_exec_set_profiling(e, true);
        double t0 = now_s();
        pml_step_result r;
        if (pml_exec_train_step(e, batch, &o, &r) != PML_OK) {
            fprintf(stderr, "pml bench train: %s\n", pml_errmsg());
            goto out;
        }
        if (s >= warmup) times[s - warmup] = now_s() - t0;
    }
    double total = 0;
    for (int s = 0; s < steps; s++) total += times[s];
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double med = times[steps / 2];
    double flops = 3.0 * pml_graph_flops(&g) * batch;
    if (json) {
        printf("{\"model\":\"%s\",\"threads\":%d,\"batch\":%d,\"steps\":%d,\"median_step_seconds\":%.6g,"
               "\"mean_step_seconds\":%.6g,\"samples_per_second\":%.6g,\"gflops\":%.6g}\n",
               model, threads, batch, steps, med, total / steps, batch / med, flops / med / 1e9);
    } else {
        printf("%s: batch %d, %d thread%s: median step %.3f ms (min %.3f, mean %.3f), %.1f "
               "samples/s, %.1f GFLOP/s\n",
               model, batch, threads, threads == 1 ? "" : "s", 1e3 * med, 1e3 * times[0],
               1e3 * total / steps, batch / med, flops / med / 1e9);
    }
    if (profile) {
        double upd;
        pml_exec_profile(e, pf, pb, &upd);
        FILE *f = json ? stderr : stdout;
        fprintf(f, "%-28s %-12s %10s %10s %8s\n", "node", "op", "fwd ms", "bwd ms", "GFLOP/s");
        for (int k = 0; k < g.nnodes; k++) {
            int v = g.order[k];
            double t = (pf[v] + pb[v]) / steps, fl = 3.0 * pml_node_flops(&g, v) * batch;
            fprintf(f, "%-28s %-12s %10.3f %10.3f %8.1f\n", g.nodes[v].name,
                    pml_op_name(g.nodes[v].op), 1e3 * pf[v] / steps, 1e3 * pb[v] / steps,
                    t > 0 ? fl / t / 1e9 : 0.0);
        }
        fprintf(f, "%-28s %-12s %10.3f\n", "(optimizer update)", "", 1e3 * upd / steps);
    }
    rc = 0;
out:
    pml_optim_free(&o);
    pml_exec_destroy(e);
    pml_data_free(&d);
    pml_graph_free(&g);
    free(times);
    free(pf);
    free(pb);
    free(idx);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(bench_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "train") == 0) return bench_train(argc - 1, argv + 1);
    fprintf(stderr, "pml bench: unknown benchmark '%s' (see pml bench --help)\n", argv[1]);
    return EXIT_USAGE;
}
