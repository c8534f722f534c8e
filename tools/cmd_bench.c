/* pml bench — benchmarks (speed lives here, never in tests). */
#include "cli.h"

#include "models/models.h"
#include "planner/planner.h"
#include "runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static const char bench_intro[] =
    "usage: pml bench train MODEL [options]\n"
    "       pml bench sim MODEL [--machine M] [--batch N] [--changes K] [--seed N]\n"
    "       pml bench runtime [--tasks N] [--runs K]\n"
    "       pml bench accuracy [--steps K] [--rounds R] [--only TEXT] [--out DIR] [--json]\n"
    "       pml bench kernels [--batch N] [--seconds S] [--json]\n"
    "       pml bench checkpoint MODEL [--dir DIR] [--rounds N] [--json]\n"
    "\n"
    "bench checkpoint: a checkpoint of MODEL's parameters and Adam's state written (fsynced) and\n"
    "read back (checked) in DIR (default: a new folder here), against the disk's own speed for\n"
    "the same bytes (1 MiB writes and an fsync, as dd conv=fsync; then read back); both read\n"
    "from the disk (the files are dropped from the page cache first); best of N\n"
    "rounds (default 3).\n"
    "\n"
    "bench kernels: each kernel of the reference models' layers on one core against this\n"
    "core's sgemm (see pml bench kernels --help).\n"
    "\n"
    "bench accuracy: the simulator's predicted step time against measured runs of many plans\n"
    "of mlp, fashion-cnn and flowers-cnn on this machine (see pml bench accuracy --help).\n"
    "\n"
    "bench runtime: the task runtime's cost per task, on graphs of N empty tasks (default\n"
    "100000): a chain on one worker, a chain whose every dependency crosses between two\n"
    "unpinned workers, and a wide graph (one task, N-2 independent tasks on two workers,\n"
    "one task). Best of K runs (default 5).\n"
    "\n"
    "bench sim: from MODEL's data-parallel plan on machine M (default flexflow-k80, batch\n"
    "1024), makes K random one-operator changes (default 400), each delta-simulated and then\n"
    "undone (as a search's rejected proposals are), times a full simulation of every tenth\n"
    "changed plan, checks the last delta result against a full simulation of the same plan,\n"
    "and prints both mean times and the speed-up.\n"
    "\n"
    "bench train:\n"
    "Times training steps of MODEL on synthetic data of its input shape (data loading not\n"
    "included) and prints the median step time, samples per second and achieved GFLOP/s\n"
    "(a training step counted as 3x the forward FLOPs).\n"
    "\n"
    "The options below are those of the benchmark named (pml bench --help: bench train's).\n"
    "\n";

static const cli_opt bench_train_opts[] = {
    {"batch", 0, "N", "mini-batch size (default 32)"},
    {"threads", 0, "N", "worker threads (default: all cores)"},
    {"steps", 0, "N", "timed steps (default 50)"},
    {"warmup", 0, "N", "untimed steps first (default 5)"},
    {"plan", 0, "P",
     "run a plan on this machine's cores: a plan file, or data, model, owt or\n"
     "search (a 5-second search); default: the per-operator executor"},
    {"profile", 0, NULL, "also print each node's forward and backward time per step"},
    {"json", 0, NULL, "one JSON object on stdout"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const cli_opt bench_sim_opts[] = {
    {"machine", 0, "M", "the machine (default flexflow-k80)"},
    {"batch", 0, "N", "the global batch (default 1024)"},
    {"changes", 0, "K", "random one-operator changes (default 400)"},
    {"seed", 0, "N", "the changes' seed (default 1)"},
    {"json", 0, NULL, "one JSON object on stdout"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const cli_opt bench_runtime_opts[] = {
    {"tasks", 0, "N", "tasks per graph (default 100000)"},
    {"runs", 0, "K", "runs, the best kept (default 5)"},
    {"json", 0, NULL, "one JSON object on stdout"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const cli_opt bench_checkpoint_opts[] = {
    {"dir", 0, "DIR", "where to write (default: a new folder here)"},
    {"rounds", 0, "N", "rounds, the best kept (default 3)"},
    {"json", 0, NULL, "one JSON object on stdout"},
    {"help", 'h', NULL, "this help"},
    {0},
};



static int bench_train(int argc, char **argv)
{
    cli c;
    cli_start(&c, "bench train", argc, argv, bench_train_opts);
    const char *model = NULL;
    int batch = 32, threads = pml_machine_cores(), steps = 50, warmup = 5;
    bool profile = false, json = false;
    const char *plan = NULL;
    const char *a;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &model, a, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, bench_intro, bench_train_opts, NULL);
            return 0;
        } else if (cli_is(&c, "--plan")) {
            plan = cli_str(&c);
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
    pml_status lst = pml_model_load(model, &g);
    if (lst != PML_OK) {
        fprintf(stderr, "pml bench train: %s\n", pml_errmsg());
        return cli_exit_code(lst);
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
    pml_machine here;
    pml_plan pl;
    memset(&here, 0, sizeof here);
    memset(&pl, 0, sizeof pl);
    if (!times || !pf || !pb || !idx) goto out;
    if (plan) {
        if (pml_machine_load(NULL, &here) != PML_OK ||
            pml_plan_for(plan, &g, &here, batch, 5, &pl) != PML_OK) {
            fprintf(stderr, "pml bench train: %s\n", pml_errmsg());
            goto out;
        }
        eo.machine = &here;
        eo.plan = &pl;
        threads = here.ncompute;
    }
    if (pml_data_synthetic(g.nodes[g.input].out, g.classes, batch, 1, &d) != PML_OK ||
        pml_exec_create(&g, &eo, &e) != PML_OK || pml_optim_alloc(&o, g.nparams) != PML_OK) {
        fprintf(stderr, "pml bench train: %s\n", pml_errmsg());
        goto out;
    }
    for (int i = 0; i < batch; i++) idx[i] = i;
    pml_data_gather(&d, idx, batch, pml_exec_input(e), pml_exec_labels(e));
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup && profile) pml_exec_set_profiling(e, true);
        double t0 = pml_now();
        pml_step_result r;
        if (pml_exec_train_step(e, batch, &o, &r) != PML_OK) {
            fprintf(stderr, "pml bench train: %s\n", pml_errmsg());
            goto out;
        }
        if (s >= warmup) times[s - warmup] = pml_now() - t0;
    }
    double total = 0;
    for (int s = 0; s < steps; s++) total += times[s];
    double med = pml_median(times, steps);
    double flops = 3.0 * pml_graph_flops(&g) * batch;
    if (json) {
        cli_json_begin(stdout);
        fputs(",\"model\":", stdout);
        cli_json_str(stdout, model);
        printf(",\"threads\":%d,\"batch\":%d,\"steps\":%d,\"median_step_seconds\":%.6g,"
               "\"mean_step_seconds\":%.6g,\"samples_per_second\":%.6g,\"gflops\":%.6g}\n",
               threads, batch, steps, med, total / steps, batch / med, flops / med / 1e9);
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
    pml_plan_free(&pl);
    pml_machine_free(&here);
    pml_data_free(&d);
    pml_graph_free(&g);
    free(times);
    free(pf);
    free(pb);
    free(idx);
    return rc;
}

static int bench_sim(int argc, char **argv)
{
    cli c;
    cli_start(&c, "bench sim", argc, argv, bench_sim_opts);
    const char *model = NULL, *machine = "flexflow-k80";
    int batch = 1024, changes = 400;
    uint64_t seed = 1;
    bool json = false;
    const char *a;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &model, a, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, bench_intro, bench_sim_opts, NULL);
            return 0;
        } else if (cli_is(&c, "--machine")) {
            machine = cli_str(&c);
        } else if (cli_is(&c, "--batch")) {
            batch = (int)cli_long(&c, 1, 1 << 24);
        } else if (cli_is(&c, "--changes")) {
            changes = (int)cli_long(&c, 1, 1 << 24);
        } else if (cli_is(&c, "--seed")) {
            seed = cli_u64(&c);
        } else if (cli_is(&c, "--json")) {
            json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    if (!model) {
        fprintf(stderr, "pml bench sim: missing MODEL\n");
        return EXIT_USAGE;
    }
    pml_graph g;
    pml_machine m;
    memset(&m, 0, sizeof m);
    pml_costmodel *cost = NULL;
    pml_plan p;
    memset(&p, 0, sizeof p);
    pml_sim *s = NULL, *full = NULL;
    int rc = 1;
    pml_status lst = pml_model_load(model, &g);
    if (lst != PML_OK) {
        fprintf(stderr, "pml bench sim: %s\n", pml_errmsg());
        return cli_exit_code(lst);
    }
    if (pml_machine_load(machine, &m) != PML_OK || pml_cost_create(&g, &m, NULL, &cost) != PML_OK ||
        pml_plan_data_parallel(&p, &g, &m, batch) != PML_OK ||
        pml_sim_create(&g, &m, &p, cost, &s) != PML_OK) {
        fprintf(stderr, "pml bench sim: %s\n", pml_errmsg());
        goto out;
    }
    /* K proposals as a search makes them near a good plan: a random change to one operator,
     * delta-simulated; every tenth, a full simulation (task graph built from scratch) of the
     * changed plan for comparison; then the change is undone (a rejected proposal), also by
     * delta simulation. The last proposal is kept, for the exactness check. */
    long done = 0, fulls = 0;
    double tdelta_sum = 0, tfull_sum = 0;
    for (int k = 0; k < changes; k++) {
        int v = (int)(pml_rand_u64(seed, 77, (uint64_t)k) % (uint64_t)g.nnodes);
        pml_opcfg cfg, old = pml_sim_plan(s)->cfg[v];
        pml_opcfg_random(&g, &m, batch, v, seed, (uint64_t)k, &cfg);
        double t0 = pml_now();
        if (pml_sim_change(s, v, &cfg) != PML_OK) continue;
        tdelta_sum += pml_now() - t0;
        done++;
        if (k % 10 == 0) {
            pml_sim *x = NULL;
            t0 = pml_now();
            if (pml_sim_create(&g, &m, pml_sim_plan(s), cost, &x) != PML_OK) {
                fprintf(stderr, "pml bench sim: %s\n", pml_errmsg());
                goto out;
            }
            tfull_sum += pml_now() - t0;
            fulls++;
            pml_sim_destroy(x);
        }
        if (k == changes - 1) break;
        t0 = pml_now();
        if (pml_sim_change(s, v, &old) != PML_OK) {
            fprintf(stderr, "pml bench sim: %s\n", pml_errmsg());
            goto out;
        }
        tdelta_sum += pml_now() - t0;
        done++;
    }
    const double tdelta = done ? tdelta_sum / done : 0, tfull = fulls ? tfull_sum / fulls : 0;
    if (pml_sim_create(&g, &m, pml_sim_plan(s), cost, &full) != PML_OK) {
        fprintf(stderr, "pml bench sim: %s\n", pml_errmsg());
        goto out;
    }
    const bool same = pml_sim_step_seconds(full) == pml_sim_step_seconds(s);
    int ntasks;
    pml_taskgraph_order((pml_taskgraph *)pml_sim_taskgraph(full), &ntasks);
    if (json) {
        cli_json_begin(stdout);
        fputs(",\"model\":", stdout);
        cli_json_str(stdout, model);
        fputs(",\"machine\":", stdout);
        cli_json_str(stdout, m.name);
        printf(",\"batch\":%d,\"tasks\":%d,"
               "\"full_seconds\":%.6g,\"delta_seconds\":%.6g,\"speedup\":%.4g,\"changes\":%ld,"
               "\"exact\":%s}\n",
               batch, ntasks, tfull, tdelta, tdelta > 0 ? tfull / tdelta : 0.0, done,
               same ? "true" : "false");
    } else {
        printf("%s on %s, batch %d, %d tasks: full simulation %.3f ms, delta simulation %.3f ms "
               "per change (%ld changes): %.1fx faster; delta result %s the full simulation's\n",
               model, m.name, batch, ntasks, 1e3 * tfull, 1e3 * tdelta, done,
               tdelta > 0 ? tfull / tdelta : 0.0, same ? "equals" : "DIFFERS FROM");
    }
    rc = same ? 0 : 1;
out:
    pml_sim_destroy(s);
    pml_sim_destroy(full);
    pml_plan_free(&p);
    pml_cost_destroy(cost);
    pml_machine_free(&m);
    pml_graph_free(&g);
    return rc;
}

static int bench_runtime(int argc, char **argv)
{
    cli c;
    cli_start(&c, "bench runtime", argc, argv, bench_runtime_opts);
    int tasks = 100000, runs = 5;
    bool json = false;
    const char *a;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            cli_error(&c, "unexpected argument '%s'", a);
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, bench_intro, bench_runtime_opts, NULL);
            return 0;
        } else if (cli_is(&c, "--tasks")) {
            tasks = (int)cli_long(&c, 3, 1 << 24);
        } else if (cli_is(&c, "--runs")) {
            runs = (int)cli_long(&c, 1, 1000);
        } else if (cli_is(&c, "--json")) {
            json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    static const char *const shapes[3] = {"chain", "chain2", "wide"};
    double us[3];
    for (int i = 0; i < 3; i++) {
        double t;
        if (pml_runtime_overhead(shapes[i], tasks, runs, &t) != PML_OK) {
            fprintf(stderr, "pml bench runtime: %s\n", pml_errmsg());
            return 1;
        }
        us[i] = 1e6 * t;
    }
    if (json) {
        cli_json_begin(stdout);
        printf(",\"tasks\":%d,\"chain_us\":%.4f,\"chain2_us\":%.4f,\"wide_us\":%.4f}\n", tasks,
               us[0], us[1], us[2]);
    } else {
        printf("runtime cost per empty task (%d tasks, best of %d): chain on one worker %.3f us, "
               "chain across two workers %.3f us, wide graph on two workers %.3f us\n",
               tasks, runs, us[0], us[1], us[2]);
    }
    return 0;
}

/* The disk's own speed for the same bytes: a file written in 1 MiB writes and fsynced, as dd
 * if=/dev/zero bs=1M conv=fsync does, then read back. */
static pml_status raw_disk(const char *dir, size_t bytes, double *wsec, double *rsec)
{
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/.bench-raw-%d", dir, (int)getpid());
    enum { MB = 1 << 20 };
    char *buf = calloc(1, MB);
    int fd = buf ? open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600) : -1;
    if (fd < 0) {
        free(buf);
        return pml_fail(PML_EIO, "%s: %s", path, strerror(errno));
    }
    double t0 = pml_now();
    pml_status st = PML_OK;
    for (size_t done = 0; done < bytes && st == PML_OK;) {
        size_t n = bytes - done < MB ? bytes - done : MB;
        ssize_t w = write(fd, buf, n);
        if (w <= 0) st = pml_fail(PML_EIO, "%s: %s", path, strerror(errno));
        else done += (size_t)w;
    }
    if (st == PML_OK && fsync(fd) != 0) st = pml_fail(PML_EIO, "%s: fsync: %s", path, strerror(errno));
    *wsec = pml_now() - t0;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* read back from the disk, not the cache */
    close(fd);
    if (st == PML_OK && (fd = open(path, O_RDONLY)) >= 0) {
        t0 = pml_now();
        while (read(fd, buf, MB) > 0) {}
        *rsec = pml_now() - t0;
        close(fd);
    }
    unlink(path);
    free(buf);
    return st;
}

/* pml bench checkpoint MODEL: a checkpoint of the model (parameters and Adam's state) written
 * and read back, against the disk's own speed for the same bytes, measured beside it */
static int bench_checkpoint(int argc, char **argv)
{
    cli c;
    cli_start(&c, "bench checkpoint", argc, argv, bench_checkpoint_opts);
    const char *model = NULL, *dir = NULL, *a;
    int rounds = 3;
    bool json = false;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &model, a, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, bench_intro, bench_checkpoint_opts, NULL);
            return 0;
        } else if (cli_is(&c, "--dir")) {
            dir = cli_str(&c);
        } else if (cli_is(&c, "--rounds")) {
            rounds = (int)cli_long(&c, 1, 100);
        } else if (cli_is(&c, "--json")) {
            json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    if (!model) {
        fprintf(stderr, "pml bench checkpoint: missing MODEL\n");
        return EXIT_USAGE;
    }
    char tmpl[] = "pml-bench-ckpt-XXXXXX";
    char own[4096];
    if (!dir) { /* a folder of its own in the current one (the disk being measured) */
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "pml bench checkpoint: cannot make a folder here: %s\n", strerror(errno));
            return 1;
        }
        snprintf(own, sizeof own, "%s", tmpl);
        dir = own;
    }
    pml_graph g;
    pml_status st = pml_model_load(model, &g);
    if (st != PML_OK) {
        fprintf(stderr, "pml bench checkpoint: %s\n", pml_errmsg());
        if (dir == own) rmdir(own);
        return cli_exit_code(st);
    }
    pml_ckpt ck;
    memset(&ck, 0, sizeof ck);
    snprintf(ck.model_name, sizeof ck.model_name, "bench");
    pml_optim_defaults(&ck.optim, PML_OPTIM_ADAM);
    ck.batch = 1;
    double best_w = INFINITY, best_r = INFINITY, raw_w = INFINITY, raw_r = INFINITY;
    size_t bytes = (3 * g.nparams + g.nstate) * sizeof(float);
    st = pml_ckpt_alloc(&ck, g.nparams, g.nstate, true, true);
    for (size_t i = 0; st == PML_OK && i < g.nparams; i++) /* not zeros: real pages, real sums */
        ck.params[i] = ck.m[i] = ck.v[i] = (float)(i % 1000) * 1e-3f;
    for (size_t i = 0; st == PML_OK && i < g.nstate; i++) ck.state[i] = 1.0f;
    for (int r = 0; st == PML_OK && r < rounds; r++) {
        ck.step = r + 1;
        double t0 = pml_now();
        if ((st = pml_ckpt_write(dir, &ck, 1)) != PML_OK) break;
        best_w = fmin(best_w, pml_now() - t0);
        char path[4096];
        pml_ckpt back;
        if ((st = pml_ckpt_newest(dir, path, sizeof path)) != PML_OK) break;
        int fd = open(path, O_RDONLY); /* read back from the disk, not the cache */
        if (fd >= 0) {
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
        t0 = pml_now();
        if ((st = pml_ckpt_read(path, &back)) != PML_OK) break;
        best_r = fmin(best_r, pml_now() - t0);
        pml_ckpt_free(&back);
        double w = INFINITY, rd = INFINITY;
        if ((st = raw_disk(dir, bytes, &w, &rd)) != PML_OK) break;
        raw_w = fmin(raw_w, w);
        raw_r = fmin(raw_r, rd);
    }
    char path[4096];
    if (pml_ckpt_newest(dir, path, sizeof path) == PML_OK) unlink(path);
    if (dir == own) rmdir(own);
    pml_ckpt_free(&ck);
    pml_graph_free(&g);
    if (st != PML_OK) {
        fprintf(stderr, "pml bench checkpoint: %s\n", pml_errmsg());
        return 1;
    }
    const double mb = bytes / 1e6;
    if (json) {
        cli_json_begin(stdout);
        fputs(",\"model\":", stdout);
        cli_json_str(stdout, model);
        printf(",\"bytes\":%zu,\"write_seconds\":%.4g,\"read_seconds\":%.4g,"
               "\"disk_write_seconds\":%.4g,\"disk_read_seconds\":%.4g}\n",
               bytes, best_w, best_r, raw_w, raw_r);
    } else {
        printf("checkpoint of %s (parameters and Adam's state, %.0f MB), best of %d:\n"
               "  write (fsynced)  %.3f s  %6.0f MB/s   the disk (1 MiB writes, fsync) %.3f s  %6.0f MB/s"
               "  -> %.0f%%\n"
               "  read and check   %.3f s  %6.0f MB/s   the disk (read back)          %.3f s  %6.0f MB/s"
               "  -> %.0f%%\n",
               cli_safe(model), mb, rounds, best_w, mb / best_w, raw_w, mb / raw_w,
               100 * raw_w / best_w, best_r, mb / best_r, raw_r, mb / raw_r, 100 * raw_r / best_r);
    }
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        cli_help(argc < 2 ? stderr : stdout, bench_intro, bench_train_opts, NULL);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "train") == 0) return bench_train(argc - 1, argv + 1);
    if (strcmp(argv[1], "sim") == 0) return bench_sim(argc - 1, argv + 1);
    if (strcmp(argv[1], "runtime") == 0) return bench_runtime(argc - 1, argv + 1);
    if (strcmp(argv[1], "accuracy") == 0) return cmd_bench_accuracy(argc - 1, argv + 1);
    if (strcmp(argv[1], "kernels") == 0) return cmd_bench_kernels(argc - 1, argv + 1);
    if (strcmp(argv[1], "checkpoint") == 0) return bench_checkpoint(argc - 1, argv + 1);
    fprintf(stderr, "pml bench: unknown benchmark '%s' (see pml bench --help)\n", cli_safe(argv[1]));
    return EXIT_USAGE;
}
