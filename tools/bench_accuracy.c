/* pml bench accuracy — the simulator against measurement on this machine: many plans of the
 * mlp, the Fashion CNN and the flowers CNN (baselines, hand-made splits, random and searched
 * plans), each simulated with this machine's cost model and run for K training steps with a
 * trace; predicted vs measured step time (pml_trace_compare), the median relative error and
 * the Spearman rank correlation between predicted and measured step times. */
#include "cli.h"

#include "models/models.h"
#include "planner/planner.h"
#include "runtime/runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char accuracy_intro[] =
    "usage: pml bench accuracy [--steps K] [--warmup N] [--rounds R] [--only TEXT] [--out DIR]\n"
    "                          [--cached-costs] [--quiet F] [--patience S] [--json]\n"
    "\n"
    "The simulator against measurement on this machine. Plan by plan, each of the plans below\n"
    "(batch 32) is simulated with a cost model whose kernels are measured right then (in\n"
    "memory; with --cached-costs, from the cost cache where it has them), then runs on this\n"
    "machine's cores for N + K steps or more (at least --min-seconds) on synthetic data with a\n"
    "trace, and pml simulate --compare's figures are taken: measured = median over the steps\n"
    "after the first N of a step's makespan. With --rounds R all of it is done R times and the\n"
    "medians over the rounds of the predicted and of the measured step times are compared\n"
    "(every other round runs the plans in reverse order). A plan's kernels, and the hand-off\n"
    "and traffic between the cores, are measured right before its run: a shared machine's speed\n"
    "drifts by tens of per cent in minutes.\n"
    "This machine may be shared: the benchmark waits for a quiet machine (other processes using\n"
    "less than --quiet of it) before measuring kernels or running a plan, and does either again\n"
    "when others were busy meanwhile (a run up to 4 times, the quietest kept).\n"
    "Prints a table (plan, tasks, predicted ms, measured ms, error, others' share, and the\n"
    "error of the summed task time per kind), then the median |predicted - measured| / measured,\n"
    "the mean error and the Spearman rank correlation of predicted and measured step times.\n"
    "Plans: mlp, fashion-cnn, flowers-cnn (180x180) and flowers-cnn:size=64, each under data\n"
    "parallel, layer placement (model), one weird trick (owt), a parameter split (conv/dense\n"
    "output channels), an attribute split (conv/pool rows), operators alternating between the\n"
    "cores (layers), a random plan, everything on one core, and a searched plan (2,000\n"
    "iterations, seed 1); not every model has every plan.\n"
    "\n";

static const cli_opt accuracy_opts[] = {
    {"steps", 0, "K", "measured steps per plan, at least (default 30)"},
    {"min-seconds", 0, "S", "run a plan at least S seconds (default 0.5: small steps are many)"},
    {"warmup", 0, "N", "steps run first and not measured (default 3)"},
    {"rounds", 0, "R",
     "predict and run every plan R times (default 1): the machine's speed drifts"},
    {"only", 0, "TEXT", "only the plans whose name contains TEXT (e.g. flowers, /data)"},
    {"out", 0, "DIR", "keep each plan (NAME.dot) and its last trace (NAME.json) in DIR"},
    {"cached-costs", 0, NULL,
     "use kernel times from the cost cache (~/.cache/pml) where it has them"},
    {"quiet", 0, "F", "the share of the machine others may use (default 0.1)"},
    {"patience", 0, "S", "how long to wait for a quiet machine (default 300 s)"},
    {"json", 0, NULL,
     "one JSON object: {\"machine\", \"cpu\", \"plans\": [{\"name\", \"model\",\n"
     "\"plan\", \"tasks\", \"predicted_step_seconds\", \"measured_step_seconds\",\n"
     "\"relative_error\", \"others\", \"kinds\": {...}}, ...], \"median_abs_error\",\n"
     "\"mean_error\", \"spearman\"}"},
    {"help", 'h', NULL, "this help"},
    {0},
};

typedef enum {
    P_DATA,
    P_MODEL,
    P_OWT,
    P_PARAM,
    P_ATTR,
    P_LAYERS,
    P_RANDOM,
    P_ONE,
    P_SEARCH,
    P_KIND_COUNT
} plan_kind;

static const char *const kind_names[P_KIND_COUNT] = {"data",   "model",  "owt", "param", "attr",
                                                     "layers", "random", "one", "search"};

typedef struct bench_plan {
    const char *model;
    plan_kind kind;
} bench_plan;

static const bench_plan plans[] = {
    {"mlp", P_DATA},
    {"mlp", P_MODEL},
    {"mlp", P_OWT},
    {"mlp", P_ONE},
    {"mlp", P_RANDOM},
    {"mlp", P_SEARCH},
    {"fashion-cnn", P_DATA},
    {"fashion-cnn", P_MODEL},
    {"fashion-cnn", P_OWT},
    {"fashion-cnn", P_PARAM},
    {"fashion-cnn", P_ATTR},
    {"fashion-cnn", P_LAYERS},
    {"fashion-cnn", P_RANDOM},
    {"fashion-cnn", P_ONE},
    {"fashion-cnn", P_SEARCH},
    {"flowers-cnn", P_DATA},
    {"flowers-cnn", P_MODEL},
    {"flowers-cnn", P_OWT},
    {"flowers-cnn", P_ATTR},
    {"flowers-cnn", P_PARAM},
    {"flowers-cnn", P_ONE},
    {"flowers-cnn", P_SEARCH},
    {"flowers-cnn:size=64", P_DATA},
    {"flowers-cnn:size=64", P_ATTR},
    {"flowers-cnn:size=64", P_RANDOM},
    {"flowers-cnn:size=64", P_SEARCH},
};
enum { NPLANS = sizeof plans / sizeof plans[0] };

#define BATCH 32
#define SEARCH_ITERATIONS 2000

/* This machine may be shared: another process running on a core while a plan runs (or while its
 * kernels are measured) slows it down, and the figures would be about that process. So the CPU
 * time others use is watched (pml_cpu_snap_take, pml_foreign_load), as a fraction of all cores. */

static pml_status make_plan(plan_kind k, const pml_graph *g, const pml_machine *m,
                            pml_costmodel *cost, pml_plan *p)
{
    pml_strategy_opts o = {.iterations = SEARCH_ITERATIONS, .seed = 1, .chains = 1, .cost = cost};
    return pml_plan_strategy(kind_names[k], g, m, BATCH, &o, p);
}

typedef struct result {
    char name[96];
    int tasks, steps;
    double pred, meas, others;
    double kind_pred[PML_TASK_KIND_COUNT], kind_meas[PML_TASK_KIND_COUNT];
    /* per round */
    double *r_pred, *r_meas, *r_others, (*r_kind_pred)[PML_TASK_KIND_COUNT],
        (*r_kind_meas)[PML_TASK_KIND_COUNT];
} result;

/* Runs plan p of model g for warmup + at least `steps` training steps (more until min_s seconds
 * have passed) with a trace in trace_path and compares it with simulation s. */
static pml_status measure(const pml_graph *g, const pml_machine *m, const pml_plan *p,
                          const pml_sim *s, int warmup, int steps, double min_s,
                          const char *trace_path, pml_trace_cmp *cmp)
{
    memset(cmp, 0, sizeof *cmp);
    pml_exec_opts eo = {.batch = BATCH, .seed = 1, .machine = m, .plan = p};
    pml_exec *e = NULL;
    pml_dataset d;
    pml_optim o;
    pml_optim_defaults(&o, PML_OPTIM_ADAM);
    memset(&d, 0, sizeof d);
    int32_t idx[BATCH];
    const int max_steps = steps > 20000 ? steps : 20000;
    pml_status st = pml_data_synthetic(g->nodes[g->input].out, g->classes, BATCH, 1, &d);
    if (st == PML_OK) st = pml_optim_alloc(&o, g->nparams);
    if (st == PML_OK) st = pml_exec_create(g, &eo, &e);
    int T = 0;
    pml_taskgraph_order((pml_taskgraph *)pml_sim_taskgraph(s), &T);
    if (st == PML_OK) st = pml_exec_trace_begin(e, (long)(warmup + max_steps) * T);
    if (st == PML_OK) {
        for (int i = 0; i < BATCH; i++) idx[i] = i;
        pml_data_gather(&d, idx, BATCH, pml_exec_input(e), pml_exec_labels(e));
    }
    double t0 = 0;
    for (int k = 0; st == PML_OK; k++) {
        if (k == warmup) t0 = pml_now();
        if (k >= warmup + steps && (pml_now() - t0 >= min_s || k >= warmup + max_steps)) break;
        st = pml_exec_train_step(e, BATCH, &o, NULL);
    }
    if (st == PML_OK) st = pml_exec_trace_write(e, trace_path);
    pml_exec_destroy(e);
    pml_optim_free(&o);
    pml_data_free(&d);
    if (st != PML_OK) return st;
    pml_trace t;
    if ((st = pml_trace_read(trace_path, &t)) != PML_OK) return st;
    st = pml_trace_compare(&t, trace_path, g, m, s, warmup, cmp);
    pml_trace_free(&t);
    return st;
}

static bool wanted(const char *name, const char *only)
{
    return !only || strstr(name, only);
}

typedef struct bench {
    pml_machine m;
    const char *only, *outdir, *dir;
    bool cached, tty, json;
    int ncpu, warmup, steps, rounds;
    double min_s, quiet, patience;
    bool sel[NPLANS];
    result res[NPLANS];
    pml_graph g[NPLANS];
    pml_plan pl[NPLANS];
    pml_sim *sim[NPLANS];
    int n;
    double pred_others; /* the most others used while kernels were measured */
} bench;

/* a cost model for plan i's model: from the cost cache with --cached-costs, else measured now
 * (no disk cache: every round measures afresh) */
static pml_status cost_model(bench *b, int i, pml_costmodel **c)
{
    pml_cost_opts o = pml_cost_opts_default();
    if (!b->cached) o.cache_dir = "";
    return pml_cost_create(&b->g[i], &b->m, &o, c);
}

/* every selected plan made (the searched ones with a cost model of their own) */
static pml_status make_plans(bench *b)
{
    for (int i = 0; i < NPLANS; i++) {
        result *r = &b->res[i];
        snprintf(r->name, sizeof r->name, "%s/%s", plans[i].model, kind_names[plans[i].kind]);
        if (!(b->sel[i] = wanted(r->name, b->only))) continue;
        pml_costmodel *c = NULL;
        pml_status st = pml_model_build(plans[i].model, &b->g[i]);
        if (st == PML_OK && plans[i].kind == P_SEARCH) st = cost_model(b, i, &c);
        if (st == PML_OK) st = make_plan(plans[i].kind, &b->g[i], &b->m, c, &b->pl[i]);
        if (c && b->cached) pml_cost_save(c);
        pml_cost_destroy(c);
        if (st == PML_OK && b->outdir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s-%s.dot", b->outdir, plans[i].model,
                     kind_names[plans[i].kind]);
            st = pml_plan_write(path, &b->pl[i], &b->g[i], &b->m);
        }
        if (st != PML_OK) return pml_fail_ctx(st, "%s: ", r->name);
        b->n++;
    }
    if (b->n == 0)
        return pml_fail(PML_EINVAL, "no plan's name contains '%s'", b->only ? b->only : "");
    return PML_OK;
}

/* Plan i in round `round`: its kernels measured now (again when others were busy meanwhile),
 * its prediction, then its run right after (again, up to 4 times, when others were busy): the
 * machine's own speed, which drifts by tens of per cent within minutes when it is shared, moves
 * little between the two. */
static pml_status plan_round(bench *b, int i, int round, double t0)
{
    result *r = &b->res[i];
    pml_costmodel *cost = NULL;
    pml_status st = PML_OK;
    /* the hand-off and the traffic between the cores, measured at every load of the machine,
     * right before the plan's kernels too: where a VM's cores run changes within minutes */
    pml_machine fresh;
    if (pml_machine_load(NULL, &fresh) == PML_OK) {
        if (strcmp(fresh.fingerprint, b->m.fingerprint) == 0) {
            pml_machine_free(&b->m);
            b->m = fresh;
        } else {
            pml_machine_free(&fresh);
        }
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        pml_sim_destroy(b->sim[i]);
        b->sim[i] = NULL;
        pml_cost_destroy(cost);
        cost = NULL;
        if (b->tty)
            fprintf(stderr, "\r\033[Kround %d/%d: %s: measuring kernels (%.0f s)", round + 1,
                    b->rounds, r->name, pml_now() - t0);
        pml_wait_quiet(attempt ? b->patience : 5, b->quiet, b->ncpu);
        pml_cpu_snap s0, s1;
        pml_cpu_snap_take(&s0);
        st = cost_model(b, i, &cost);
        if (st == PML_OK) st = pml_sim_create(&b->g[i], &b->m, &b->pl[i], cost, &b->sim[i]);
        pml_cpu_snap_take(&s1);
        if (st != PML_OK) {
            pml_fail_ctx(st, "%s: ", r->name);
            goto out;
        }
        const double others = pml_foreign_load(&s0, &s1, b->ncpu);
        if (others > b->pred_others) b->pred_others = others;
        if (others < b->quiet || b->cached) break;
    }
    if (b->cached) pml_cost_save(cost);
    int T;
    pml_taskgraph_order((pml_taskgraph *)pml_sim_taskgraph(b->sim[i]), &T);
    r->tasks = T;
    r->r_pred[round] = pml_sim_step_seconds(b->sim[i]);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%s.json", b->dir, plans[i].model,
             kind_names[plans[i].kind]);
    double best = INFINITY;
    for (int attempt = 0; attempt < 4; attempt++) {
        if (b->tty)
            fprintf(stderr, "\r\033[Kround %d/%d: %s (%.0f s)", round + 1, b->rounds, r->name,
                    pml_now() - t0);
        pml_wait_quiet(attempt ? b->patience : 5, b->quiet, b->ncpu);
        pml_trace_cmp cmp;
        pml_cpu_snap s0, s1;
        pml_cpu_snap_take(&s0);
        st = measure(&b->g[i], &b->m, &b->pl[i], b->sim[i], b->warmup, b->steps, b->min_s, path,
                     &cmp);
        pml_cpu_snap_take(&s1);
        if (!b->outdir) unlink(path);
        if (st != PML_OK) {
            pml_fail_ctx(st, "%s: ", r->name);
            goto out;
        }
        const double others = pml_foreign_load(&s0, &s1, b->ncpu);
        if (others < best) {
            best = others;
            r->r_meas[round] = cmp.measured_step;
            r->r_others[round] = others;
            r->steps = cmp.used;
            for (int k = 0; k < PML_TASK_KIND_COUNT; k++) {
                r->r_kind_meas[round][k] = cmp.measured_kind[k];
                r->r_kind_pred[round][k] = cmp.predicted_kind[k];
            }
        }
        pml_trace_cmp_free(&cmp);
        if (others < b->quiet) break;
    }
out:
    pml_sim_destroy(b->sim[i]);
    b->sim[i] = NULL;
    pml_cost_destroy(cost);
    return st;
}

static void print_results(const bench *b, double med, double mean_err, double rho)
{
    if (b->json) {
        cli_json_begin(stdout);
        printf(",\"machine\":");
        pml_json_str(stdout, b->m.name);
        printf(",\"cpu\":");
        pml_json_str(stdout, b->m.cpu_model);
        printf(",\"batch\":%d,\"steps\":%d,\"warmup\":%d,\"rounds\":%d,\"fresh_costs\":%s,"
               "\"others_while_predicting\":%.4f,\"plans\":[",
               BATCH, b->steps, b->warmup, b->rounds, b->cached ? "false" : "true", b->pred_others);
        bool first = true;
        for (int i = 0; i < NPLANS; i++) {
            if (!b->sel[i]) continue;
            const result *r = &b->res[i];
            printf("%s{\"name\":\"%s\",\"model\":\"%s\",\"plan\":\"%s\",\"tasks\":%d,"
                   "\"predicted_step_seconds\":%.9g,\"measured_step_seconds\":%.9g,"
                   "\"relative_error\":%.6g,\"steps\":%d,\"others\":%.4f,\"kinds\":{",
                   first ? "" : ",", r->name, plans[i].model, kind_names[plans[i].kind], r->tasks,
                   r->pred, r->meas, (r->pred - r->meas) / r->meas, r->steps, r->others);
            for (int k = 0; k < PML_TASK_KIND_COUNT; k++)
                printf("%s\"%s\":{\"predicted\":%.9g,\"measured\":%.9g}", k ? "," : "",
                       pml_task_kind_name((pml_task_kind)k), r->kind_pred[k], r->kind_meas[k]);
            printf("}}");
            first = false;
        }
        printf("],\"median_abs_error\":%.6g,\"mean_error\":%.6g,\"spearman\":", med, mean_err);
        if (isfinite(rho))
            printf("%.6g}\n", rho);
        else
            printf("null}\n"); /* fewer than 2 plans, or all equal */
        return;
    }
    printf("machine %s (%s, %d cores), batch %d, >= %d steps (>= %.1f s) measured after %d, "
           "%d round%s, kernels measured %s; others used at most %.0f%% of the machine while "
           "kernels were measured\n\n",
           b->m.name, b->m.cpu_model, b->ncpu, BATCH, b->steps, b->min_s, b->warmup, b->rounds,
           b->rounds == 1 ? "" : "s",
           b->cached ? "or taken from the cost cache" : "afresh before each plan's run",
           100 * b->pred_others);
    printf("%-28s %5s %11s %11s %8s %7s  %s\n", "plan", "tasks", "predicted", "measured", "error",
           "others", "error of the time per kind: fwd bwd xfer sync update");
    for (int i = 0; i < NPLANS; i++) {
        if (!b->sel[i]) continue;
        const result *r = &b->res[i];
        printf("%-28s %5d %8.3f ms %8.3f ms %+7.1f%% %6.0f%% ", r->name, r->tasks, 1e3 * r->pred,
               1e3 * r->meas, 100 * (r->pred - r->meas) / r->meas, 100 * r->others);
        for (int k = 0; k < PML_TASK_KIND_COUNT; k++) {
            if (r->kind_meas[k] > 0)
                printf(" %+5.0f%%", 100 * (r->kind_pred[k] - r->kind_meas[k]) / r->kind_meas[k]);
            else
                printf(" %6s", "-");
        }
        putchar('\n');
    }
    printf("\n%d plans: median |error| %.1f%%, mean error %+.1f%%, Spearman %.3f\n", b->n,
           100 * med, 100 * mean_err, rho);
    printf("(predicted and measured: medians over the rounds; others: the share of the machine "
           "other processes used during the run, the least of up to 4 tries)\n");
}

int cmd_bench_accuracy(int argc, char **argv)
{
    cli c;
    cli_start(&c, "bench accuracy", argc, argv, accuracy_opts);
    bench *b = calloc(1, sizeof *b);
    if (!b) {
        fprintf(stderr, "pml bench accuracy: out of memory\n");
        return 1;
    }
    b->steps = 30;
    b->warmup = 3;
    b->rounds = 1;
    b->min_s = 0.5;
    b->quiet = 0.1;
    b->patience = 300;
    const char *a;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            cli_error(&c, "unexpected argument '%s'", a);
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, accuracy_intro, accuracy_opts, NULL);
            free(b);
            return 0;
        } else if (cli_is(&c, "--steps")) {
            b->steps = (int)cli_long(&c, 1, 1 << 20);
        } else if (cli_is(&c, "--warmup")) {
            b->warmup = (int)cli_long(&c, 0, 1 << 20);
        } else if (cli_is(&c, "--rounds")) {
            b->rounds = (int)cli_long(&c, 1, 1000);
        } else if (cli_is(&c, "--min-seconds")) {
            b->min_s = cli_double(&c, 0, 3600, false, false);
        } else if (cli_is(&c, "--quiet")) {
            b->quiet = cli_double(&c, 0, 1, true, false);
        } else if (cli_is(&c, "--patience")) {
            b->patience = cli_double(&c, 0, 86400, false, false);
        } else if (cli_is(&c, "--cached-costs")) {
            b->cached = true;
        } else if (cli_is(&c, "--only")) {
            b->only = cli_str(&c);
        } else if (cli_is(&c, "--out")) {
            b->outdir = cli_str(&c);
        } else if (cli_is(&c, "--json")) {
            b->json = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) {
        free(b);
        return EXIT_USAGE;
    }
    int rc = 1;
    char tmpdir[] = "/tmp/pml-accuracy-XXXXXX";
    bool have_tmp = false;
    double *pred = NULL, *meas = NULL, *err = NULL, *col = NULL;
    b->tty = !b->json && isatty(fileno(stderr));
    if (b->outdir && mkdir(b->outdir, 0755) != 0) {
        struct stat sb;
        if (stat(b->outdir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "pml bench accuracy: cannot create the folder '%s'\n", cli_safe(b->outdir));
            free(b);
            return 1;
        }
    }
    if (pml_machine_load(NULL, &b->m) != PML_OK) {
        fprintf(stderr, "pml bench accuracy: %s\n", pml_errmsg());
        free(b);
        return 1;
    }
    b->ncpu = b->m.ncompute;
    if (b->ncpu < 2) {
        fprintf(stderr, "pml bench accuracy: this machine has %d core; the plans need 2\n",
                b->ncpu);
        goto out;
    }
    if (!b->outdir) {
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "pml bench accuracy: cannot create a temporary folder\n");
            goto out;
        }
        have_tmp = true;
    }
    b->dir = b->outdir ? b->outdir : tmpdir;
    if (b->tty) fprintf(stderr, "\r\033[Kmaking the plans...");
    if (make_plans(b) != PML_OK) {
        fprintf(stderr, "%spml bench accuracy: %s\n", b->tty ? "\r\033[K" : "", pml_errmsg());
        goto out;
    }
    for (int i = 0; i < NPLANS; i++) {
        result *r = &b->res[i];
        if (!b->sel[i]) continue;
        const size_t R = (size_t)b->rounds;
        r->r_pred = calloc(R, sizeof *r->r_pred);
        r->r_meas = calloc(R, sizeof *r->r_meas);
        r->r_others = calloc(R, sizeof *r->r_others);
        r->r_kind_pred = calloc(R, sizeof *r->r_kind_pred);
        r->r_kind_meas = calloc(R, sizeof *r->r_kind_meas);
        if (!r->r_pred || !r->r_meas || !r->r_others || !r->r_kind_pred || !r->r_kind_meas)
            goto nomem;
    }
    /* round by round, plan by plan: its kernels measured, the plan simulated, then run right
     * after (the machine's speed drifts over minutes: a prediction made with kernels measured
     * for a model's first plan would be about another moment by its last); every other round
     * in reverse order */
    const double t0 = pml_now();
    for (int round = 0; round < b->rounds; round++)
        for (int j = 0; j < NPLANS; j++) {
            const int i = round % 2 ? NPLANS - 1 - j : j;
            if (!b->sel[i] || plan_round(b, i, round, t0) == PML_OK) continue;
            fprintf(stderr, "%spml bench accuracy: %s\n", b->tty ? "\r\033[K" : "", pml_errmsg());
            goto out;
        }
    if (b->tty) fprintf(stderr, "\r\033[K");
    const int n = b->n;
    pred = calloc((size_t)n, sizeof *pred);
    meas = calloc((size_t)n, sizeof *meas);
    err = calloc((size_t)n, sizeof *err);
    col = calloc((size_t)b->rounds, sizeof *col);
    if (!pred || !meas || !err || !col) goto nomem;
    int k = 0;
    double mean_err = 0;
    for (int i = 0; i < NPLANS; i++) {
        if (!b->sel[i]) continue;
        result *r = &b->res[i];
        const size_t R = (size_t)b->rounds;
        memcpy(col, r->r_pred, R * sizeof *col);
        r->pred = pml_median(col, b->rounds);
        memcpy(col, r->r_meas, R * sizeof *col);
        r->meas = pml_median(col, b->rounds);
        memcpy(col, r->r_others, R * sizeof *col);
        r->others = pml_median(col, b->rounds);
        for (int kk = 0; kk < PML_TASK_KIND_COUNT; kk++) {
            for (int q = 0; q < b->rounds; q++) col[q] = r->r_kind_pred[q][kk];
            r->kind_pred[kk] = pml_median(col, b->rounds);
            for (int q = 0; q < b->rounds; q++) col[q] = r->r_kind_meas[q][kk];
            r->kind_meas[kk] = pml_median(col, b->rounds);
        }
        pred[k] = r->pred;
        meas[k] = r->meas;
        err[k] = fabs(r->pred - r->meas) / r->meas;
        mean_err += (r->pred - r->meas) / r->meas / n;
        k++;
    }
    const double rho = pml_spearman(pred, meas, n);
    print_results(b, pml_median(err, n), mean_err, rho);
    rc = 0;
    goto out;
nomem:
    fprintf(stderr, "pml bench accuracy: out of memory\n");
out:
    for (int i = 0; i < NPLANS; i++) {
        result *r = &b->res[i];
        free(r->r_pred);
        free(r->r_meas);
        free(r->r_others);
        free(r->r_kind_pred);
        free(r->r_kind_meas);
        pml_sim_destroy(b->sim[i]);
        pml_plan_free(&b->pl[i]);
        if (b->g[i].nnodes) pml_graph_free(&b->g[i]);
    }
    free(pred), free(meas), free(err), free(col);
    if (have_tmp) rmdir(tmpdir);
    pml_machine_free(&b->m);
    free(b);
    return rc;
}
