/* pml simulate — simulates one training step of a plan file (written by pml compile or by hand)
 * and prints the step time and its breakdown: per device, per task kind, the critical path; or,
 * with --compare, the prediction next to a measured run's Chrome trace. */
#include "cli.h"

#include "models/models.h"
#include "planner/planner.h"
#include "runtime/runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char simulate_intro[] =
    "usage: pml simulate PLAN.dot [--machine M] [--force] [--json]\n"
    "       pml simulate PLAN.dot --compare TRACE.json [--warmup N] [--ops] [--json]\n"
    "\n"
    "Simulates one training step of PLAN (a plan file from pml compile, or one edited or written\n"
    "by hand: see planner/planner.h) on the machine it was made for, and prints:\n"
    "  - the step time and throughput (samples/s);\n"
    "  - per task kind (fwd, bwd, xfer, sync, update) the seconds summed over all devices and\n"
    "    the seconds on the critical path;\n"
    "  - the critical path: its length, its time per kind and its first and last tasks;\n"
    "  - per compute device: seconds of compute (forward, backward, update), of transfers it\n"
    "    sends or receives, of gradient syncs it takes part in, how busy it is (its own\n"
    "    resource: compute and, on CPUs, copies in) and its peak memory.\n"
    "A plan that does not fit a device's memory is refused, naming the device.\n"
    "\n"
    "With --compare, TRACE is a Chrome trace of the same plan run on this machine (pml train\n"
    "MODEL --plan PLAN.dot --trace TRACE.json); it prints predicted vs measured step time and\n"
    "seconds per task kind, with the relative error (predicted - measured) / measured. Measured:\n"
    "medians over the training steps after the warm-up, of a step's makespan (first task start\n"
    "to last task end) and of its summed task durations per kind. Tasks are matched to the\n"
    "simulation by their keys (the runtime runs the simulator's task graph): a trace of another\n"
    "model, batch, machine or plan is refused.\n"
    "\n";

static const cli_opt simulate_opts[] = {
    {"machine", 'm', "M",
     "simulate on M (see pml topo --help) instead of the machine the plan\n"
     "names (needed when that is a file); it must be the same machine (same\n"
     "fingerprint) unless --force"},
    {"force", 0, NULL,
     "simulate the plan on a machine with another fingerprint (what if this\n"
     "plan ran there?), as long as every device it uses exists"},
    {"json", 0, NULL,
     "print one JSON object: {\"step_seconds\", \"samples_per_second\",\n"
     "\"devices\": [{\"name\", \"busy\", \"compute\", \"transfer\", \"sync\",\n"
     "\"memory\", \"memory_capacity\"}, ...], \"kinds\": {...},\n"
     "\"critical_path\": {\"seconds\", \"tasks\", \"kinds\", \"first\", \"last\"}, ...}"},
    {"compare", 0, "TRACE", "compare with a measured run (see above)"},
    {"warmup", 0, "N",
     "--compare: training steps skipped at the start (default 2; fewer when\n"
     "the trace has no more)"},
    {"ops", 0, NULL,
     "--compare: also predicted vs measured per operator and task kind\n"
     "(summed over its parts)\n"
     "--compare --json prints {\"predicted_step_seconds\",\n"
     "\"measured_step_seconds\", \"relative_error\", \"steps\",\n"
     "\"kinds\": {\"fwd\": {\"predicted\", \"measured\", \"relative_error\"},\n"
     "...}, ...} (relative_error null where nothing was measured)"},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const char simulate_examples[] =
    "examples:\n"
    "  pml compile alexnet --machine flexflow-k80 --batch 1024 -o a.dot && pml simulate a.dot\n"
    "  pml simulate a.dot --machine my-cluster.dot --force --json\n"
    "  pml compile mlp --batch 32 -o m.dot && pml train mlp --plan m.dot --max-steps 30 \\\n"
    "      --trace m.json && pml simulate m.dot --compare m.json\n";

/* The critical path's first and last tasks shown */
enum { SHOW = 5 };



/* Per compute device: seconds of the tasks it takes part in, by what they do. */
typedef struct dev_times {
    double compute, transfer, sync;
} dev_times;

static void device_times(const pml_sim *s, const pml_machine *m, dev_times *d)
{
    const pml_taskgraph *tg = pml_sim_taskgraph(s);
    memset(d, 0, (size_t)m->ncompute * sizeof *d);
    for (int id = 0; id < pml_taskgraph_size(tg); id++) {
        const pml_task *t = pml_taskgraph_task(tg, id);
        if (!t) continue;
        switch (t->kind) {
        case PML_TASK_FWD:
        case PML_TASK_BWD:
        case PML_TASK_UPDATE:
            if (t->dev >= 0) d[t->dev].compute += t->cost;
            break;
        case PML_TASK_XFER:
            if (t->dev >= 0) d[t->dev].transfer += t->cost;
            if (t->dst >= 0 && t->dst != t->dev) d[t->dst].transfer += t->cost;
            break;
        case PML_TASK_SYNC:
            if (t->dev >= 0) /* a share, in shared memory */
                d[t->dev].sync += t->cost;
            else
                for (int k = 0; k < t->ngroup; k++) d[t->group[k]].sync += t->cost;
            break;
        default:
            break;
        }
    }
}

/* "fwd conv1 part 2/4 on 3", "xfer conv1 -> conv2 (grad) 0 -> 4, 1.2 MB", "sync fc6 ... on 64" */
static void task_str(const pml_task *t, const pml_graph *g, const pml_machine *m, char *buf,
                     size_t cap)
{
    char b[32];
    const char *kind = pml_task_kind_name((pml_task_kind)t->kind);
    const char *op = t->node >= 0 && t->node < g->nnodes ? g->nodes[t->node].name : "?";
    switch (t->kind) {
    case PML_TASK_XFER: {
        const char *to = t->cnode >= 0 && t->cnode < g->nnodes ? g->nodes[t->cnode].name : "?";
        if (t->cnode == t->node)
            snprintf(buf, cap, "%s %s parameter %s, %d -> %d, %s", kind, op,
                     t->grad ? "gradients" : "values", t->dev, t->dst,
                     pml_fmt_si(b, sizeof b, t->bytes, "B"));
        else if (t->grad)
            snprintf(buf, cap, "%s gradient %s <- %s, %d -> %d, %s", kind, op, to, t->dev, t->dst,
                     pml_fmt_si(b, sizeof b, t->bytes, "B"));
        else
            snprintf(buf, cap, "%s %s -> %s, %d -> %d, %s", kind, op, to, t->dev, t->dst,
                     pml_fmt_si(b, sizeof b, t->bytes, "B"));
        break;
    }
    case PML_TASK_SYNC:
        snprintf(buf, cap, "%s bucket %d (from %s) on %d devices, %s", kind, t->part, op, t->ngroup,
                 pml_fmt_si(b, sizeof b, t->bytes, "B"));
        break;
    default:
        snprintf(buf, cap, "%s %s part %d on %d (%s)", kind, op, t->part, t->dev,
                 t->dev >= 0 && t->dev < m->ncompute ? m->dev[m->compute[t->dev]].name : "?");
    }
}

static void json_task(FILE *f, const pml_task *t, int id, const pml_sim *s, const pml_graph *g)
{
    fprintf(f, "{\"kind\":\"%s\",\"op\":", pml_task_kind_name((pml_task_kind)t->kind));
    cli_json_str(f, t->node >= 0 && t->node < g->nnodes ? g->nodes[t->node].name : "");
    fprintf(f, ",\"part\":%d,\"device\":%d", t->part, t->kind == PML_TASK_SYNC ? -1 : t->dev);
    if (t->kind == PML_TASK_XFER) {
        fprintf(f, ",\"to\":%d,\"to_op\":", t->dst);
        cli_json_str(f, t->cnode >= 0 && t->cnode < g->nnodes ? g->nodes[t->cnode].name : "");
    }
    if (t->kind == PML_TASK_XFER || t->kind == PML_TASK_SYNC)
        fprintf(f, ",\"bytes\":%.17g", t->bytes);
    fprintf(f, ",\"start\":%.9g,\"end\":%.9g}", pml_sim_start(s)[id], pml_sim_end(s)[id]);
}

/* devices a and b have the same numbers (and the same kind of device) */
static bool same_row(const pml_machine *m, const pml_sim_result *r, const dev_times *d, int a,
                     int b)
{
    const pml_device *x = &m->dev[m->compute[a]], *y = &m->dev[m->compute[b]];
    return x->kind == y->kind && x->mem_bytes == y->mem_bytes && d[a].compute == d[b].compute &&
           d[a].transfer == d[b].transfer && d[a].sync == d[b].sync && r->busy[a] == r->busy[b] &&
           r->peak_memory[a] == r->peak_memory[b];
}

typedef struct sim_args {
    const char *plan, *machine, *compare;
    bool json, force, ops;
    int warmup;
} sim_args;

static void print_text(const sim_args *a, const pml_graph *g, const pml_machine *m,
                       const pml_plan *p, const pml_sim *s, const pml_sim_result *r,
                       const dev_times *d)
{
    char b1[32], b2[32], b3[32], b4[32], b5[32];
    const pml_taskgraph *tg = pml_sim_taskgraph(s);
    char sync[64] = "parameter servers";
    if (p->sync == PML_SYNC_ALLREDUCE)
        snprintf(sync, sizeof sync, "all-reduce in %s buckets",
                 pml_fmt_si(b1, sizeof b1, p->bucket_bytes, "B"));
    printf("plan %s: model %s on machine %s (%d devices), global batch %d, strategy %s, %s\n",
           a->plan, g->name, m->name, m->ncompute, p->batch, p->strategy, sync);
    char tput[32];
    pml_fmt_count(tput, sizeof tput, round(p->batch / r->step_seconds));
    printf("step time %s (%s samples/s)\n\n", pml_fmt_seconds(b1, sizeof b1, r->step_seconds, 4), tput);
    printf("%-8s %14s %16s\n", "kind", "all devices", "critical path");
    for (int k = 0; k < PML_TASK_KIND_COUNT; k++)
        printf("%-8s %14s %16s\n", pml_task_kind_name((pml_task_kind)k),
               pml_fmt_seconds(b1, sizeof b1, r->kind_seconds[k], 4), pml_fmt_seconds(b2, sizeof b2, r->critical_kind[k], 4));
    double on_path = 0;
    for (int k = 0; k < PML_TASK_KIND_COUNT; k++) on_path += r->critical_kind[k];
    printf("\ncritical path: %d tasks running %s of the %s step\n", r->critical_len,
           pml_fmt_seconds(b1, sizeof b1, on_path, 4), pml_fmt_seconds(b2, sizeof b2, r->step_seconds, 4));
    for (int i = 0; i < r->critical_len; i++) {
        if (i == SHOW && r->critical_len > 2 * SHOW) {
            printf("  ... %d more\n", r->critical_len - 2 * SHOW);
            i = r->critical_len - SHOW;
        }
        int id = r->critical[i];
        const pml_task *t = pml_taskgraph_task(tg, id);
        if (!t) continue;
        char what[256];
        task_str(t, g, m, what, sizeof what);
        printf("  %10s - %-10s %s\n", pml_fmt_seconds(b1, sizeof b1, pml_sim_start(s)[id], 4),
               pml_fmt_seconds(b2, sizeof b2, pml_sim_end(s)[id], 4), what);
    }
    /* one row per device; consecutive devices with the same numbers share a row */
    printf("\n%-7s %-*s %11s %11s %11s %6s  %s\n", "devices", 24, "", "compute", "transfer", "sync",
           "busy", "peak memory");
    for (int c0 = 0; c0 < m->ncompute;) {
        int c1 = c0;
        while (c1 + 1 < m->ncompute && same_row(m, r, d, c0, c1 + 1)) c1++;
        const pml_device *dv = &m->dev[m->compute[c0]];
        char mem[96], ids[32], names[160];
        if (dv->mem_bytes > 0)
            snprintf(mem, sizeof mem, "%s of %s", pml_fmt_si(b4, sizeof b4, r->peak_memory[c0], "B"),
                     pml_fmt_si(b5, sizeof b5, dv->mem_bytes, "B"));
        else
            snprintf(mem, sizeof mem, "%s", pml_fmt_si(b4, sizeof b4, r->peak_memory[c0], "B"));
        if (c1 > c0) {
            snprintf(ids, sizeof ids, "%d-%d", c0, c1);
            snprintf(names, sizeof names, "%.40s..%.40s", dv->name, m->dev[m->compute[c1]].name);
        } else {
            snprintf(ids, sizeof ids, "%d", c0);
            snprintf(names, sizeof names, "%.80s", dv->name);
        }
        printf("%7s %-24s %11s %11s %11s %5.0f%%  %s\n", ids, names,
               pml_fmt_seconds(b1, sizeof b1, d[c0].compute, 4), pml_fmt_seconds(b2, sizeof b2, d[c0].transfer, 4),
               pml_fmt_seconds(b3, sizeof b3, d[c0].sync, 4),
               r->step_seconds > 0 ? 100 * r->busy[c0] / r->step_seconds : 0.0, mem);
        c0 = c1 + 1;
    }
}

static void print_json(const sim_args *a, const pml_graph *g, const pml_machine *m,
                       const pml_plan *p, const pml_sim *s, const pml_sim_result *r,
                       const dev_times *d)
{
    FILE *f = stdout;
    const pml_taskgraph *tg = pml_sim_taskgraph(s);
    cli_json_begin(f);
    fputs(",\"plan\":", f);
    cli_json_str(f, a->plan);
    fputs(",\"model\":", f);
    cli_json_str(f, g->name);
    fputs(",\"machine\":", f);
    cli_json_str(f, m->name);
    fputs(",\"fingerprint\":", f);
    cli_json_str(f, m->fingerprint);
    fprintf(f, ",\"batch\":%d,\"strategy\":", p->batch);
    cli_json_str(f, p->strategy);
    fprintf(f, ",\"sync\":\"%s\",\"step_seconds\":%.9g,\"samples_per_second\":%.9g",
            p->sync == PML_SYNC_PS ? "ps" : "allreduce", r->step_seconds,
            p->batch / r->step_seconds);
    fputs(",\"devices\":[", f);
    for (int c = 0; c < m->ncompute; c++) {
        const pml_device *dv = &m->dev[m->compute[c]];
        fputs(c ? ",{\"name\":" : "{\"name\":", f);
        cli_json_str(f, dv->name);
        fprintf(f,
                ",\"busy\":%.9g,\"compute\":%.9g,\"transfer\":%.9g,\"sync\":%.9g,\"memory\":%.17g,"
                "\"memory_capacity\":%.17g}",
                r->busy[c], d[c].compute, d[c].transfer, d[c].sync, r->peak_memory[c],
                dv->mem_bytes);
    }
    fputs("],\"kinds\":{", f);
    for (int k = 0; k < PML_TASK_KIND_COUNT; k++)
        fprintf(f, "%s\"%s\":%.9g", k ? "," : "", pml_task_kind_name((pml_task_kind)k),
                r->kind_seconds[k]);
    double on_path = 0;
    for (int k = 0; k < PML_TASK_KIND_COUNT; k++) on_path += r->critical_kind[k];
    fprintf(f, "},\"critical_path\":{\"seconds\":%.9g,\"tasks\":%d,\"kinds\":{", on_path,
            r->critical_len);
    for (int k = 0; k < PML_TASK_KIND_COUNT; k++)
        fprintf(f, "%s\"%s\":%.9g", k ? "," : "", pml_task_kind_name((pml_task_kind)k),
                r->critical_kind[k]);
    fputs("},\"first\":[", f);
    int nf = r->critical_len < SHOW ? r->critical_len : SHOW;
    for (int i = 0; i < nf; i++) {
        if (i) fputc(',', f);
        json_task(f, pml_taskgraph_task(tg, r->critical[i]), r->critical[i], s, g);
    }
    fputs("],\"last\":[", f);
    int l0 = r->critical_len - SHOW < 0 ? 0 : r->critical_len - SHOW;
    for (int i = l0; i < r->critical_len; i++) {
        if (i > l0) fputc(',', f);
        json_task(f, pml_taskgraph_task(tg, r->critical[i]), r->critical[i], s, g);
    }
    fputs("]}}\n", f);
}

/* ---------------------------------------------------------------- --compare */

/* (predicted - measured) / measured; NAN when nothing was measured */
static double rel_err(double pred, double meas)
{
    return meas > 0 ? (pred - meas) / meas : NAN;
}

static const char *pct(char *buf, size_t cap, double e)
{
    if (isnan(e))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%+.1f%%", 100 * e);
    return buf;
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

/* per operator and kind: summed predicted and measured seconds of its tasks */
typedef struct op_row {
    double pred, meas;
} op_row;

static void print_compare(const sim_args *a, const pml_graph *g, const pml_machine *m,
                          const pml_plan *p, const pml_trace_cmp *c, const pml_taskgraph *tg)
{
    char b1[32], b2[32], b3[32];
    printf("plan %s vs trace %s: model %s on machine %s (%d devices), global batch %d, strategy "
           "%s\n",
           a->plan, a->compare, g->name, m->name, m->ncompute, p->batch, p->strategy);
    printf("%d training steps measured (%d warm-up step%s skipped), %d tasks a step\n\n", c->used,
           c->steps - c->used, c->steps - c->used == 1 ? "" : "s", c->ntasks);
    printf("%-8s %12s %12s %8s\n", "", "predicted", "measured", "error");
    printf("%-8s %12s %12s %8s\n", "step", pml_fmt_seconds(b1, sizeof b1, c->predicted_step, 4),
           pml_fmt_seconds(b2, sizeof b2, c->measured_step, 4),
           pct(b3, sizeof b3, rel_err(c->predicted_step, c->measured_step)));
    for (int k = 0; k < PML_TASK_KIND_COUNT; k++)
        printf("%-8s %12s %12s %8s\n", pml_task_kind_name((pml_task_kind)k),
               pml_fmt_seconds(b1, sizeof b1, c->predicted_kind[k], 4), pml_fmt_seconds(b2, sizeof b2, c->measured_kind[k], 4),
               pct(b3, sizeof b3, rel_err(c->predicted_kind[k], c->measured_kind[k])));
    if (!a->ops) return;
    op_row *rows = calloc((size_t)g->nnodes * PML_TASK_KIND_COUNT, sizeof *rows);
    if (!rows) return;
    for (int i = 0; i < c->ntasks; i++) {
        const pml_task *t = pml_taskgraph_task(tg, c->task[i]);
        if (!t || t->node < 0 || t->node >= g->nnodes) continue;
        op_row *r = &rows[t->node * PML_TASK_KIND_COUNT + t->kind];
        r->pred += c->predicted[i];
        r->meas += c->measured[i];
    }
    printf("\n%-24s %-7s %12s %12s %8s\n", "operator", "kind", "predicted", "measured", "error");
    for (int k = 0; k < g->nnodes; k++) {
        const int v = g->order[k];
        for (int kind = 0; kind < PML_TASK_KIND_COUNT; kind++) {
            const op_row *r = &rows[v * PML_TASK_KIND_COUNT + kind];
            if (r->pred == 0 && r->meas == 0) continue;
            printf("%-24.24s %-7s %12s %12s %8s\n", g->nodes[v].name,
                   pml_task_kind_name((pml_task_kind)kind), pml_fmt_seconds(b1, sizeof b1, r->pred, 4),
                   pml_fmt_seconds(b2, sizeof b2, r->meas, 4), pct(b3, sizeof b3, rel_err(r->pred, r->meas)));
        }
    }
    free(rows);
}

static void print_compare_json(const sim_args *a, const pml_graph *g, const pml_machine *m,
                               const pml_plan *p, const pml_trace_cmp *c)
{
    FILE *f = stdout;
    cli_json_begin(f);
    fputs(",\"plan\":", f);
    cli_json_str(f, a->plan);
    fputs(",\"trace\":", f);
    cli_json_str(f, a->compare);
    fputs(",\"model\":", f);
    cli_json_str(f, g->name);
    fputs(",\"machine\":", f);
    cli_json_str(f, m->name);
    fprintf(f, ",\"batch\":%d,\"strategy\":", p->batch);
    cli_json_str(f, p->strategy);
    fprintf(f, ",\"steps\":%d,\"warmup\":%d,\"tasks\":%d,\"predicted_step_seconds\":", c->used,
            c->steps - c->used, c->ntasks);
    json_num(f, c->predicted_step);
    fputs(",\"measured_step_seconds\":", f);
    json_num(f, c->measured_step);
    fputs(",\"relative_error\":", f);
    json_num(f, rel_err(c->predicted_step, c->measured_step));
    fputs(",\"kinds\":{", f);
    for (int k = 0; k < PML_TASK_KIND_COUNT; k++) {
        fprintf(f, "%s\"%s\":{\"predicted\":", k ? "," : "", pml_task_kind_name((pml_task_kind)k));
        json_num(f, c->predicted_kind[k]);
        fputs(",\"measured\":", f);
        json_num(f, c->measured_kind[k]);
        fputs(",\"relative_error\":", f);
        json_num(f, rel_err(c->predicted_kind[k], c->measured_kind[k]));
        fputc('}', f);
    }
    fputs("}}\n", f);
}

/* --compare: \return the exit status */
static int compare(const sim_args *a, const pml_graph *g, const pml_machine *m, const pml_plan *p,
                   const pml_sim *sim)
{
    pml_trace t;
    pml_trace_cmp c;
    pml_status st = pml_trace_read(a->compare, &t);
    if (st == PML_OK) {
        st = pml_trace_compare(&t, a->compare, g, m, sim, a->warmup, &c);
        pml_trace_free(&t);
    }
    if (st != PML_OK) {
        fprintf(stderr, "pml simulate: %s\n", pml_errmsg());
        return 1;
    }
    if (a->json)
        print_compare_json(a, g, m, p, &c);
    else
        print_compare(a, g, m, p, &c, pml_sim_taskgraph(sim));
    pml_trace_cmp_free(&c);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "pml simulate: cannot write to standard output\n");
        return 1;
    }
    return 0;
}

int cmd_simulate(int argc, char **argv)
{
    cli c;
    cli_start(&c, "simulate", argc, argv, simulate_opts);
    sim_args a = {NULL, NULL, NULL, false, false, false, 2};
    const char *arg;
    while ((arg = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &a.plan, arg, "PLAN")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, simulate_intro, simulate_opts, simulate_examples);
            return 0;
        } else if (cli_is(&c, "--machine")) {
            a.machine = cli_str(&c);
        } else if (cli_is(&c, "--json")) {
            a.json = true;
        } else if (cli_is(&c, "--force")) {
            a.force = true;
        } else if (cli_is(&c, "--compare")) {
            a.compare = cli_str(&c);
        } else if (cli_is(&c, "--warmup")) {
            a.warmup = (int)cli_long(&c, 0, 1 << 30);
        } else if (cli_is(&c, "--ops")) {
            a.ops = true;
        } else {
            cli_unknown(&c);
        }
    }
    if (c.failed) return EXIT_USAGE;
    if (!a.plan) {
        cli_error(&c, "missing PLAN.dot (see pml simulate --help)");
        return EXIT_USAGE;
    }
    if (a.ops && !a.compare) {
        cli_error(&c, "--ops goes with --compare TRACE.json");
        return EXIT_USAGE;
    }

    pml_graph g;
    pml_plan p;
    pml_plan_info info;
    pml_machine m;
    pml_costmodel *cost = NULL;
    pml_sim *sim = NULL;
    pml_sim_result r;
    dev_times *d = NULL;
    memset(&m, 0, sizeof m);
    memset(&r, 0, sizeof r);
    /* first the file alone: is it a plan, and for which machine? */
    pml_status st = pml_plan_read_ext(a.plan, NULL, NULL, &g, &p, &info);
    if (st == PML_OK) {
        pml_plan_free(&p);
        pml_graph_free(&g);
        const char *spec = a.machine ? a.machine : info.machine;
        if (!spec[0])
            st = pml_fail(PML_EINVAL,
                          "%s: the plan names no machine (graph attribute machine); "
                          "give one with --machine M",
                          a.plan);
        else if (!a.machine && !pml_machine_is_spec(spec))
            st = pml_fail(PML_EINVAL,
                          "%s: the plan is for machine '%s', which is not a named machine; give "
                          "its file with --machine FILE.dot (or .xml)",
                          a.plan, spec);
        else
            st = pml_machine_load(spec, &m);
    }
    if (st == PML_OK && !a.force && info.fingerprint[0] &&
        strcmp(info.fingerprint, m.fingerprint) != 0)
        st = pml_fail(PML_EINVAL,
                      "%s: the plan is for machine '%s' (fingerprint %s), not for machine '%s' "
                      "(fingerprint %s); --force simulates it there anyway",
                      a.plan, info.machine[0] ? info.machine : "?", info.fingerprint, m.name,
                      m.fingerprint);
    if (st == PML_OK) {
        const pml_plan_read_opts o = {.any_machine = a.force};
        st = pml_plan_read_ext(a.plan, &o, &m, &g, &p, &info);
        if (st != PML_OK) {
            pml_machine_free(&m);
            memset(&m, 0, sizeof m);
        }
    }
    if (st != PML_OK) {
        fprintf(stderr, "pml simulate: %s\n", pml_errmsg());
        pml_machine_free(&m);
        return cli_exit_code(st);
    }
    int rc = 1;
    st = pml_cost_create(&g, &m, NULL, &cost);
    if (st == PML_OK && (st = pml_sim_create(&g, &m, &p, cost, &sim)) != PML_OK)
        pml_fail_ctx(st, "%s: ", a.plan);
    if (st == PML_OK) st = pml_sim_result_get(sim, &r);
    if (st == PML_OK && !(d = calloc((size_t)m.ncompute, sizeof *d)))
        st = pml_fail(PML_ENOMEM, "out of memory");
    if (cost && pml_cost_save(cost) != PML_OK && st == PML_OK)
        fprintf(stderr, "pml simulate: warning: cost cache not saved: %s\n", pml_errmsg());
    if (st != PML_OK) {
        fprintf(stderr, "pml simulate: %s\n", pml_errmsg());
        goto out;
    }
    if (a.compare) {
        rc = compare(&a, &g, &m, &p, sim);
        goto out;
    }
    device_times(sim, &m, d);
    if (a.json)
        print_json(&a, &g, &m, &p, sim, &r, d);
    else
        print_text(&a, &g, &m, &p, sim, &r, d);
    if (fflush(stdout) != 0)
        fprintf(stderr, "pml simulate: cannot write to standard output\n");
    else
        rc = 0;
out:
    free(d);
    pml_sim_result_free(&r);
    pml_sim_destroy(sim);
    pml_cost_destroy(cost);
    pml_plan_free(&p);
    pml_graph_free(&g);
    pml_machine_free(&m);
    return rc;
}
