/* pml compile — plans a model for a machine (search or a baseline), prints the predicted step
 * time of the plan next to every baseline, and writes the plan file. */
#include "cli.h"

#include "models/models.h"
#include "planner/planner.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_BUDGET 10.0

static const char compile_intro[] =
    "usage: pml compile MODEL --batch N -o PLAN.dot [options]\n"
    "\n"
    "Plans MODEL (a zoo name with optional parameters, a model .dot file, or a plan file whose\n"
    "model is planned again) for a machine: it gives every operator a parallel config (parts\n"
    "along samples, output channels and output rows, and the device of each part), predicts\n"
    "the time of one training step with the execution simulator, and writes the plan as a DOT\n"
    "file (the model plus a config and device list per operator; see planner/planner.h). It\n"
    "prints the predicted step time and throughput of the plan next to the baselines: data\n"
    "parallel (batch split over all devices, gradients all-reduced in 25 MB buckets during the\n"
    "backward pass), model parallel (layers spread over the devices), owt (Krizhevsky's one\n"
    "weird trick: data parallel, dense layers split by output units), with --mesh, a\n"
    "Mesh-TensorFlow layout and, on a machine with parameter servers (devices with role=ps,\n"
    "as reference-cluster's last 3 nodes), ps: data parallel over the other devices, each\n"
    "node summing its replicas' gradients and pushing them to the servers, which hold the\n"
    "parameters in shards, update them and send them back.\n"
    "\n"
    "The search (FlexFlow's MCMC over the configs, scored by the delta simulator) starts from\n"
    "data parallel and from the best baseline, so its plan is never slower in simulation than\n"
    "the best baseline; it replaces that baseline only when at least 1% faster (closer than\n"
    "the simulator's error, the baseline's fewer transfers are the safer bet). Costs of this machine's cores are measured once per operator part and\n"
    "cached in $XDG_CACHE_HOME/pml (or ~/.cache/pml); other devices are costed analytically.\n"
    "\n";

static const cli_opt compile_opts[] = {
    {"machine", 'm', "M",
     "the machine (default: this; see pml topo --help): this,\n"
     "flexflow-p100, flexflow-k80, cpu-1socket, cpu-2socket,\n"
     "reference-cluster, synthetic:DESC, FILE.xml or a cluster FILE.dot"},
    {"batch", 0, "N", "the global batch (required)"},
    {"strategy", 0, "S",
     "search (default), data, model, owt, mesh or ps (a machine with\n"
     "parameter servers)"},
    {"mesh", 0, "AxB[xC[xD]]",
     "a device mesh for the mesh layout, e.g. 4x4 (at most the\n"
     "machine's devices); adds the mesh baseline; needed by --strategy mesh"},
    {"layout", 0, "RULES",
     "which mesh axis each dimension maps to, e.g. sample:0,parameter:1\n"
     "(dimensions: sample, parameter, attribute; default: sample on axis\n"
     "0, parameter on 1, attribute on 2, as the mesh has axes)"},
    {"budget", 0, "S",
     "search for S seconds (default 10); on a terminal the search\n"
     "shows its best step time so far, and Ctrl-C ends it with the\n"
     "best plan found so far (written; exit 130)"},
    {"iterations", 0, "K",
     "search K iterations per chain instead: with --seed, the same plan\n"
     "every time"},
    {"seed", 0, "N", "the search's seed (default 1)"},
    {"chains", 0, "N", "independent search chains, one thread each (default 2)"},
    {"sync", 0, "allreduce|ps",
     "gradient synchronisation: bucketed all-reduce (default) or\n"
     "parameter servers (with data, model, owt and mesh)"},
    {"output", 'o', "PLAN",
     "the plan file to write (.dot or .gv; required); written under a\n"
     "temporary name and renamed: on an error nothing is left behind\n"
     "(a device or a FIFO is written to)"},
    {"json", 0, NULL,
     "print one JSON object: {\"version\", \"model\", \"machine\", \"device_count\", \"batch\",\n"
     "\"strategy\", \"step_seconds\", \"samples_per_second\",\n"
     "\"search_seconds\", \"iterations\", \"baselines\": {\"data\", \"model\",\n"
     "\"owt\"[, \"mesh\"][, \"ps\"]}, ...}; a baseline that does not\n"
     "fit is null"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const char compile_examples[] =
    "examples:\n"
    "  pml compile alexnet --machine flexflow-k80 --batch 1024 --budget 30 -o alexnet-k80.dot\n"
    "  pml compile resnet50 --machine flexflow-p100 --batch 256 --strategy mesh --mesh 4x4 \\\n"
    "      --layout sample:0,parameter:1 -o resnet50-mesh.dot\n"
    "  pml compile fashion-cnn --batch 64 -o fashion.dot && pml simulate fashion.dot\n"
    "  pml compile flowers-cnn --machine reference-cluster --batch 32 -o flowers.dot\n";

enum { B_DATA, B_MODEL, B_OWT, B_MESH, B_PS, NBASE };
static const char *const base_name[NBASE] = {"data", "model", "owt", "mesh", "ps"};

typedef struct compile_args {
    const char *model, *machine, *out, *strategy, *mesh, *layout;
    long batch, iterations, chains;
    double budget;
    uint64_t seed;
    pml_sync_kind sync;
    bool json, seed_given, sync_given;
    int mesh_dims[4], nmesh, layout_axis[PML_NDIMS];
} compile_args;

/* "4x4" */
static bool parse_mesh(const char *s, int *dims, int *n)
{
    *n = 0;
    const char *q = s;
    for (;;) {
        char *e;
        if (*q < '0' || *q > '9') return false;
        long v = strtol(q, &e, 10);
        if (v < 1 || v > PML_MAX_PARTS || *n == 4) return false;
        dims[(*n)++] = (int)v;
        if (!*e) return true;
        if (*e != 'x') return false;
        q = e + 1;
    }
}

/* "sample:0,parameter:1" */
static bool parse_layout(const char *s, int nmesh, int axis[PML_NDIMS], char *why, size_t cap)
{
    static const char *const dims[PML_NDIMS][2] = {
        {"sample", "n"}, {"parameter", "c"}, {"attribute", "h"}};
    bool seen[PML_NDIMS] = {false, false, false};
    for (int d = 0; d < PML_NDIMS; d++) axis[d] = -1;
    const char *q = s;
    for (;;) {
        size_t len = strcspn(q, ":,");
        int d = 0;
        while (d < PML_NDIMS && !((strlen(dims[d][0]) == len && strncmp(q, dims[d][0], len) == 0) ||
                                  (strlen(dims[d][1]) == len && strncmp(q, dims[d][1], len) == 0)))
            d++;
        if (d == PML_NDIMS) {
            snprintf(why, cap, "'%.*s' is not sample, parameter or attribute", (int)len, q);
            return false;
        }
        if (seen[d]) {
            snprintf(why, cap, "%s is given twice", dims[d][0]);
            return false;
        }
        q += len;
        char *e;
        if (*q != ':' || q[1] < '0' || q[1] > '9') {
            snprintf(why, cap, "%s needs a mesh axis (%s:0)", dims[d][0], dims[d][0]);
            return false;
        }
        long a = strtol(q + 1, &e, 10);
        if (a >= nmesh) {
            snprintf(why, cap, "%s:%ld: the mesh has axes 0 to %d", dims[d][0], a, nmesh - 1);
            return false;
        }
        for (int k = 0; k < PML_NDIMS; k++)
            if (seen[k] && axis[k] == a) {
                snprintf(why, cap, "%s and %s both map to axis %ld", dims[k][0], dims[d][0], a);
                return false;
            }
        axis[d] = (int)a;
        seen[d] = true;
        if (!*e) return true;
        if (*e != ',') {
            snprintf(why, cap, "'%s' is not dimension:axis,...", e);
            return false;
        }
        q = e + 1;
    }
}

static int parse_args(compile_args *a, int argc, char **argv)
{
    cli c;
    cli_start(&c, "compile", argc, argv, compile_opts);
    memset(a, 0, sizeof *a);
    a->strategy = "search";
    a->seed = 1;
    a->sync = PML_SYNC_ALLREDUCE;
    const char *arg;
    bool budget_given = false;
    while ((arg = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &a->model, arg, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, compile_intro, compile_opts, compile_examples);
            return 0;
        } else if (cli_is(&c, "--machine")) {
            a->machine = cli_str(&c);
        } else if (cli_is(&c, "--batch")) {
            a->batch = cli_long(&c, 1, 1L << 30);
        } else if (cli_is(&c, "--strategy")) {
            a->strategy = cli_str(&c);
            if (a->strategy && strcmp(a->strategy, "search") != 0 &&
                strcmp(a->strategy, "data") != 0 && strcmp(a->strategy, "model") != 0 &&
                strcmp(a->strategy, "owt") != 0 && strcmp(a->strategy, "mesh") != 0 &&
                strcmp(a->strategy, "ps") != 0)
                cli_error(&c,
                          "--strategy '%s' must be search, data, model, owt or mesh (or ps, on a "
                          "machine with parameter servers)",
                          a->strategy);
        } else if (cli_is(&c, "--mesh")) {
            a->mesh = cli_str(&c);
            if (a->mesh && !parse_mesh(a->mesh, a->mesh_dims, &a->nmesh))
                cli_error(&c,
                          "--mesh '%s' must be 1 to 4 axis sizes in [1, %d] joined by x, e.g. "
                          "4x4",
                          a->mesh, PML_MAX_PARTS);
        } else if (cli_is(&c, "--layout")) {
            a->layout = cli_str(&c);
        } else if (cli_is(&c, "--budget")) {
            a->budget = cli_double(&c, 0, 1e6, true, false);
            budget_given = true;
        } else if (cli_is(&c, "--iterations")) {
            a->iterations = cli_long(&c, 1, 1L << 40);
        } else if (cli_is(&c, "--seed")) {
            a->seed = cli_u64(&c);
            a->seed_given = true;
        } else if (cli_is(&c, "--chains")) {
            a->chains = cli_long(&c, 1, 16);
        } else if (cli_is(&c, "--sync")) {
            const char *s = cli_str(&c);
            a->sync_given = true;
            if (s && strcmp(s, "allreduce") == 0)
                a->sync = PML_SYNC_ALLREDUCE;
            else if (s && strcmp(s, "ps") == 0)
                a->sync = PML_SYNC_PS;
            else if (s)
                cli_error(&c, "--sync '%s' must be allreduce or ps", s);
        } else if (cli_is(&c, "--output")) {
            a->out = cli_str(&c);
        } else if (cli_is(&c, "--json")) {
            a->json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    const bool search = strcmp(a->strategy, "search") == 0;
    char why[128];
    if (!a->model)
        cli_error(&c, "missing MODEL (see pml compile --help)");
    else if (!a->batch)
        cli_error(&c, "missing --batch N (the global batch)");
    else if (!a->out)
        cli_error(&c, "missing -o PLAN.dot (the plan file to write)");
    else if (!cli_dot_name(a->out))
        cli_error(&c, "-o '%s': a plan is a DOT file (.dot or .gv); to draw it use pml viz",
                  a->out);
    else if (budget_given && a->iterations)
        cli_error(&c, "--budget and --iterations: give one");
    else if (!search && (budget_given || a->iterations || a->chains || a->seed_given))
        cli_error(&c, "--budget, --iterations, --chains and --seed are for --strategy search");
    else if (strcmp(a->strategy, "mesh") == 0 && !a->mesh)
        cli_error(&c, "--strategy mesh needs --mesh (e.g. --mesh 4x4)");
    else if (a->layout && !a->mesh)
        cli_error(&c, "--layout needs --mesh");
    else if (a->layout && !parse_layout(a->layout, a->nmesh, a->layout_axis, why, sizeof why))
        cli_error(&c, "--layout '%s': %s", a->layout, why);
    else if (search && a->sync == PML_SYNC_PS)
        cli_error(&c, "--sync ps: the search plans with all-reduce; use it with --strategy data, "
                      "model, owt or mesh");
    else if (strcmp(a->strategy, "ps") == 0 && a->sync_given && a->sync != PML_SYNC_PS)
        cli_error(&c, "--strategy ps synchronises through parameter servers: not with --sync "
                      "allreduce");
    if (c.failed) return EXIT_USAGE;
    if (a->mesh && !a->layout)
        for (int d = 0; d < PML_NDIMS; d++) a->layout_axis[d] = d < a->nmesh ? d : -1;
    if (search && !a->iterations && !budget_given) a->budget = DEFAULT_BUDGET;
    return -1;
}

/* ---------------------------------------------------------------- output */

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}


/* samples/s: "12,348", "450", "3.27" */
static const char *count(char *buf, size_t cap, double v)
{
    if (!isfinite(v))
        snprintf(buf, cap, "-");
    else if (v >= 100)
        pml_fmt_count(buf, cap, round(v));
    else
        snprintf(buf, cap, "%.3g", v);
    return buf;
}

/* how many times faster than data parallel: "1.52x", "3.02e+30x", "-" */
static const char *ratio(char *buf, size_t cap, double r)
{
    if (!isfinite(r) || r <= 0)
        snprintf(buf, cap, "-");
    else if (r >= 1000 || r < 0.01)
        snprintf(buf, cap, "%.3gx", r);
    else
        snprintf(buf, cap, "%.2fx", r);
    return buf;
}

/* ---------------------------------------------------------------- planning */

typedef struct baseline {
    bool tried;
    int workers;     /* ps: the devices computing */
    double step;     /* INFINITY when it does not fit */
    char error[256]; /* why it does not fit */
} baseline;

static pml_status make_baseline(int b, const compile_args *a, const pml_graph *g,
                                const pml_machine *m, pml_plan *p)
{
    pml_strategy_opts o = {.mesh = a->mesh_dims, .nmesh = a->nmesh, .layout = a->layout_axis};
    return pml_plan_strategy(base_name[b], g, m, (int)a->batch, &o, p);
}

/* simulated step seconds of p; a plan that does not fit a device's memory gives INFINITY and
 * *why, any other error is returned */
static pml_status simulate(const pml_graph *g, const pml_machine *m, pml_costmodel *c,
                           const pml_plan *p, double *step, char *why, size_t cap)
{
    pml_sim *s;
    *step = INFINITY;
    pml_status st = pml_sim_create(g, m, p, c, &s);
    if (st == PML_ENOFIT) {
        snprintf(why, cap, "%s", pml_errmsg());
        return PML_OK;
    }
    if (st != PML_OK) return st;
    *step = pml_sim_step_seconds(s);
    pml_sim_destroy(s);
    return PML_OK;
}

/* MODEL: a zoo spec, a model file, or a plan file (its model, planned again) */
/* The search: its progress on a terminal, and Ctrl-C (SIGINT) ending it with the best plan
 * found so far (a second one ends pml at once). */
static volatile sig_atomic_t search_stop;

static void on_search_sigint(int sig)
{
    search_stop = 1;
    signal(sig, SIG_DFL);
}

static int search_should_stop(void *ud)
{
    (void)ud;
    return search_stop;
}

static void search_progress(void *ud, double best, long iterations, double seconds)
{
    const double *budget = ud;
    char b1[32], its[32];
    pml_fmt_count(its, sizeof its, (double)iterations);
    fprintf(stderr, "\r\033[Ksearching: best %s per step, %s iterations, %.1f s",
            pml_fmt_seconds(b1, sizeof b1, best, 4), its, seconds);
    if (*budget > 0) fprintf(stderr, " of %.3g (Ctrl-C: keep the best so far)", *budget);
}

static pml_status load_model(const char *model, pml_graph *g)
{
    pml_dot d;
    if (!pml_model_is_file(model) || pml_model_is_onnx(model)) return pml_model_load(model, g);
    pml_graph_init(g, NULL);
    pml_status st = pml_dot_read(model, &d);
    if (st != PML_OK) return st;
    if (strcmp(pml_dot_kind(&d), "plan") == 0) {
        pml_plan p;
        st = pml_plan_from_dot(&d, NULL, NULL, g, &p, NULL);
        pml_plan_free(&p);
    } else {
        st = pml_model_from_dot(&d, g);
    }
    pml_dot_free(&d);
    return st;
}

int cmd_compile(int argc, char **argv)
{
    compile_args a;
    int rc = parse_args(&a, argc, argv);
    if (rc >= 0) return rc;

    pml_graph g;
    pml_machine m;
    pml_costmodel *cost = NULL;
    pml_plan plan;
    memset(&plan, 0, sizeof plan);
    memset(&m, 0, sizeof m);
    baseline base[NBASE];
    memset(base, 0, sizeof base);
    pml_search_stats stats;
    memset(&stats, 0, sizeof stats);
    double step = INFINITY;
    int chosen = -1;
    pml_status st = load_model(a.model, &g);
    if (st == PML_OK) st = pml_machine_load(a.machine, &m);
    if (st == PML_OK) st = pml_cost_create(&g, &m, NULL, &cost);
    /* the baselines; ps where the machine has parameter servers */
    for (int b = 0; b < NBASE && st == PML_OK; b++) {
        if (b == B_MESH && !a.mesh) continue;
        if (b == B_PS && !m.nserver && strcmp(a.strategy, "ps") != 0) continue;
        pml_plan p;
        if ((st = make_baseline(b, &a, &g, &m, &p)) != PML_OK) break;
        if (b == B_PS)
            base[b].workers = p.cfg[0].deg[0]; /* its own sync: the servers */
        else
            p.sync = a.sync;
        base[b].tried = true;
        st = simulate(&g, &m, cost, &p, &base[b].step, base[b].error, sizeof base[b].error);
        if (st == PML_OK && strcmp(a.strategy, base_name[b]) == 0) {
            chosen = b;
            step = base[b].step;
            if (!isfinite(step)) {
                st = pml_fail(PML_ENOFIT, "the %s plan does not fit machine '%s': %s", base_name[b],
                              m.name, base[b].error);
            } else {
                plan = p;
                continue;
            }
        }
        pml_plan_free(&p);
    }
    if (st == PML_OK && chosen < 0) {
        double budget = a.iterations ? 0 : a.budget;
        const bool tty = isatty(2) != 0;
        pml_search_opts so = {.budget_seconds = budget,
                              .iterations = a.iterations,
                              .seed = a.seed,
                              .chains = (int)a.chains,
                              .beta = 0,
                              .progress = tty && !a.json ? search_progress : NULL,
                              .should_stop = search_should_stop,
                              .ud = &budget};
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_search_sigint;
        sigemptyset(&sa.sa_mask);
        search_stop = 0;
        sigaction(SIGINT, &sa, &old);
        st = pml_search(&g, &m, cost, (int)a.batch, &so, &plan, &stats);
        sigaction(SIGINT, &old, NULL);
        if (so.progress) fprintf(stderr, "\r\033[K");
        if (search_stop)
            fprintf(stderr, "pml compile: interrupted: the search stops with the best plan found "
                            "so far\n");
        if (st == PML_OK) {
            char why[256];
            plan.sync = a.sync;
            st = simulate(&g, &m, cost, &plan, &step, why, sizeof why);
            if (st == PML_OK && !isfinite(step))
                st = pml_fail(PML_ENOFIT, "the searched plan does not fit: %s", why);
        }
    }
    if (st == PML_OK) st = pml_plan_write(a.out, &plan, &g, &m);
    if (cost) {
        /* keep the measurements even when planning failed; a cache that cannot be written
         * only costs the next compile the measuring */
        pml_status cs = pml_cost_save(cost);
        if (cs != PML_OK && st == PML_OK)
            fprintf(stderr, "pml compile: warning: cost cache not saved: %s\n", pml_errmsg());
    }
    if (st != PML_OK) {
        fprintf(stderr, "pml compile: %s\n", pml_errmsg());
        rc = cli_exit_code(st);
        goto out;
    }
    const double B = (double)a.batch;
    if (a.json) {
        FILE *f = stdout;
        cli_json_begin(f);
        fputs(",\"model\":", f);
        cli_json_str(f, g.name);
        fputs(",\"machine\":", f);
        cli_json_str(f, m.name);
        fputs(",\"fingerprint\":", f);
        cli_json_str(f, m.fingerprint);
        fprintf(f, ",\"device_count\":%d,\"batch\":%ld,\"strategy\":", m.ncompute, a.batch);
        cli_json_str(f, a.strategy);
        fprintf(
            f, ",\"sync\":\"%s\",\"step_seconds\":", plan.sync == PML_SYNC_PS ? "ps" : "allreduce");
        json_num(f, step);
        fputs(",\"samples_per_second\":", f);
        json_num(f, B / step);
        fputs(",\"search_seconds\":", f);
        json_num(f, stats.seconds);
        fprintf(f, ",\"iterations\":%ld,\"accepted\":%ld,\"baselines\":{", stats.iterations,
                stats.accepted);
        bool first = true;
        for (int b = 0; b < NBASE; b++) {
            if (!base[b].tried) continue;
            fprintf(f, "%s\"%s\":", first ? "" : ",", base_name[b]);
            json_num(f, base[b].step);
            first = false;
        }
        fputs("},\"output\":", f);
        cli_json_str(f, a.out);
        fputs("}\n", f);
    } else {
        char b1[32], b2[32], b3[32];
        const double data = base[B_DATA].step;
        printf("model %s on machine %s (%d devices), global batch %ld, %s\n", cli_safe(g.name),
               cli_safe(m.name), m.ncompute, a.batch,
               a.sync == PML_SYNC_PS ? "parameter servers" : "gradients all-reduced");
        printf("  %-9s %12s %12s  %s\n", "strategy", "step time", "samples/s", "vs data");
        for (int b = 0; b < NBASE; b++) {
            if (!base[b].tried) continue;
            char name[32];
            if (b == B_MESH)
                snprintf(name, sizeof name, "mesh %s", a.mesh);
            else
                snprintf(name, sizeof name, "%s", base_name[b]);
            if (!isfinite(base[b].step)) {
                printf("  %-9s does not fit: %s\n", name, base[b].error);
                continue;
            }
            char note[96] = "";
            if (b == B_PS)
                snprintf(note, sizeof note, "   %d workers, %d parameter servers%s",
                         base[b].workers, m.nserver, b == chosen ? " <- plan" : "");
            else if (b == chosen)
                snprintf(note, sizeof note, "   <- plan");
            printf("  %-9s %12s %12s  %7s%s\n", name,
                   pml_fmt_seconds(b1, sizeof b1, base[b].step, 4),
                   count(b2, sizeof b2, B / base[b].step),
                   ratio(b3, sizeof b3, data / base[b].step), note);
        }
        if (chosen < 0) {
            char its[32];
            pml_fmt_count(its, sizeof its, (double)stats.iterations);
            printf("  %-9s %12s %12s  %7s   <- plan: %s iterations in %.1f s\n", "search",
                   pml_fmt_seconds(b1, sizeof b1, step, 4), count(b2, sizeof b2, B / step),
                   ratio(b3, sizeof b3, data / step), its, stats.seconds);
        }
        printf("wrote %s\n", cli_safe(a.out));
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "pml compile: cannot write to standard output\n");
        rc = 1;
    } else {
        rc = search_stop ? EXIT_INTERRUPTED : 0; /* the plan written is the best so far */
    }
out:
    pml_plan_free(&plan);
    pml_cost_destroy(cost);
    pml_machine_free(&m);
    pml_graph_free(&g);
    return rc;
}
