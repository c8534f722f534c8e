/* pml — Chrome traces of plan runs read back, and compared with the simulator's prediction.
 *
 * The reader takes what pml train --trace writes: one JSON object with "otherData" {model,
 * machine, fingerprint, batch, strategy, devices, parameters} and "traceEvents", an array of
 * events. The complete ("ph":"X") events are tasks: "tid" (the worker), "ts" and "dur"
 * (microseconds) and "args" {step, phase, kind, node, part, key}; other events (thread names) and
 * other members are skipped. A trace of a run across ranks has a process ("pid") per rank:
 * rank 0's tasks are read, or every rank's for a plan across ranks (otherData.across: the tids
 * are then the plan's devices); communication events (args.kind "allreduce", "message": a
 * rank's bucket sums, the other end of a transfer or sum between ranks) are not tasks. The parser (pml_json, ops/json.c: strict RFC 8259 syntax, nesting at
 * most 64 deep) fills the events as it goes, so a trace of millions of tasks needs no tree:
 * malformed or truncated text is refused with its line and column, a JSON file that is not such a
 * trace says so, and every message names the file.
 *
 * The comparison matches each task event to the simulator's task with the same program-order
 * key (the runtime and the simulator build the same task graph, one task for one), checking
 * kind, operator, part and worker: a trace of another model, batch, machine or plan is refused.
 * Measured figures are medians over the training steps after a warm-up: a step's makespan (first
 * start to last end), the summed durations of each kind's tasks, each task's duration. */
#include "runtime/runtime.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TRACE_BYTES ((size_t)4 << 30)

/* ---------------------------------------------------------------- the trace */

static bool is(const char *key, const char *name)
{
    return strcmp(key, name) == 0;
}

typedef struct reader {
    pml_trace *t;
    bool have_other, have_events;
    long ncap;
    /* node names: open addressing on the names table */
    int *hash;
    int hcap;
    int namecap;
} reader;


/* index of node name s in t->names (added when new), or -1 when out of memory */
static int intern(reader *r, const char *s)
{
    pml_trace *t = r->t;
    if (2 * (t->nnames + 1) > r->hcap) {
        int cap = r->hcap ? 2 * r->hcap : 256;
        int *h = malloc((size_t)cap * sizeof *h);
        if (!h) return -1;
        for (int i = 0; i < cap; i++) h[i] = -1;
        for (int i = 0; i < t->nnames; i++) {
            size_t k = pml_hash_str(PML_HASH_INIT, t->names[i]) & (size_t)(cap - 1);
            while (h[k] >= 0) k = (k + 1) & (size_t)(cap - 1);
            h[k] = i;
        }
        free(r->hash);
        r->hash = h;
        r->hcap = cap;
    }
    size_t k = pml_hash_str(PML_HASH_INIT, s) & (size_t)(r->hcap - 1);
    for (; r->hash[k] >= 0; k = (k + 1) & (size_t)(r->hcap - 1))
        if (strcmp(t->names[r->hash[k]], s) == 0) return r->hash[k];
    if (t->nnames == r->namecap) {
        int cap = r->namecap ? 2 * r->namecap : 64;
        char(*nn)[PML_NAME_MAX] = realloc(t->names, (size_t)cap * sizeof *nn);
        if (!nn) return -1;
        t->names = nn;
        r->namecap = cap;
    }
    snprintf(t->names[t->nnames], PML_NAME_MAX, "%s", s);
    r->hash[k] = t->nnames;
    return t->nnames++;
}

static pml_status other_member(pml_json *j, void *ctx, const char *key, size_t kl)
{
    (void)kl;
    pml_trace *t = ((reader *)ctx)->t;
    long v;
    pml_status st;
    if (is(key, "model")) return pml_json_name(j, t->model, sizeof t->model, "otherData.model");
    if (is(key, "machine")) return pml_json_name(j, t->machine, sizeof t->machine, "otherData.machine");
    if (is(key, "strategy")) return pml_json_name(j, t->strategy, sizeof t->strategy, "otherData.strategy");
    if (is(key, "fingerprint"))
        return pml_json_name(j, t->fingerprint, sizeof t->fingerprint, "otherData.fingerprint");
    if (is(key, "batch")) {
        if ((st = pml_json_int(j, 1, 1L << 30, "otherData.batch", &v)) == PML_OK) t->batch = (int)v;
        return st;
    }
    if (is(key, "parameters")) {
        if ((st = pml_json_int(j, 0, 1L << 52, "otherData.parameters", &v)) == PML_OK)
            t->parameters = (double)v;
        return st;
    }
    if (is(key, "across")) {
        pml_json_ws(j);
        if (j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
            t->across = true;
            j->p += 4;
            return PML_OK;
        }
        return pml_json_skip(j);
    }
    if (is(key, "devices")) {
        if ((st = pml_json_int(j, 1, 1 << 20, "otherData.devices", &v)) == PML_OK) t->devices = (int)v;
        return st;
    }
    return pml_json_skip(j);
}

/* one event, being read */
typedef struct evbuf {
    reader *r;
    char ph[8];
    bool has_tid, has_ts, has_dur, has_args, has_pid;
    double tid, ts, dur, pid;
    /* args */
    bool has_step, has_phase, has_kind, has_node, has_part, has_key;
    long step, part;
    char phase[16], kind[16], node[PML_NAME_MAX], key[24];
} evbuf;

static pml_status args_member(pml_json *j, void *ctx, const char *key, size_t kl)
{
    (void)kl;
    evbuf *e = ctx;
    if (is(key, "step")) {
        e->has_step = true;
        return pml_json_int(j, 0, 1L << 40, "args.step", &e->step);
    }
    if (is(key, "part")) {
        e->has_part = true;
        return pml_json_int(j, -1, 1 << 30, "args.part", &e->part);
    }
    if (is(key, "phase")) {
        e->has_phase = true;
        return pml_json_name(j, e->phase, sizeof e->phase, "args.phase");
    }
    if (is(key, "kind")) {
        e->has_kind = true;
        return pml_json_name(j, e->kind, sizeof e->kind, "args.kind");
    }
    if (is(key, "node")) {
        e->has_node = true;
        return pml_json_name(j, e->node, sizeof e->node, "args.node");
    }
    if (is(key, "key")) {
        e->has_key = true;
        return pml_json_name(j, e->key, sizeof e->key, "args.key");
    }
    return pml_json_skip(j);
}

static pml_status event_member(pml_json *j, void *ctx, const char *key, size_t kl)
{
    (void)kl;
    evbuf *e = ctx;
    if (is(key, "ph")) return pml_json_name(j, e->ph, sizeof e->ph, "an event's ph");
    if (is(key, "tid") || is(key, "ts") || is(key, "dur") || is(key, "pid")) {
        /* numbers in a task event; anything in others (checked after, for "X" events) */
        pml_json_ws(j);
        if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
            double v;
            pml_status st = pml_json_number(j, &v);
            if (st != PML_OK) return st;
            if (is(key, "pid"))
                e->has_pid = true, e->pid = v;
            else if (is(key, "tid"))
                e->has_tid = true, e->tid = v;
            else if (is(key, "ts"))
                e->has_ts = true, e->ts = v;
            else
                e->has_dur = true, e->dur = v;
            return PML_OK;
        }
        return pml_json_skip(j);
    }
    if (is(key, "args")) {
        pml_json_ws(j);
        if (j->p < j->end && *j->p == '{') {
            e->has_args = true;
            return pml_json_object(j, args_member, e);
        }
        return pml_json_skip(j);
    }
    return pml_json_skip(j);
}

static pml_status add_event(pml_json *j, reader *r, const evbuf *e, const char *at)
{
    pml_trace *t = r->t;
    const long n = t->nevents;
    const char *miss = !e->has_tid     ? "tid"
                       : !e->has_ts    ? "ts"
                       : !e->has_dur   ? "dur"
                       : !e->has_args  ? "args"
                       : !e->has_step  ? "args.step"
                       : !e->has_phase ? "args.phase"
                       : !e->has_kind  ? "args.kind"
                       : !e->has_node  ? "args.node"
                       : !e->has_part  ? "args.part"
                       : !e->has_key   ? "args.key"
                                       : NULL;
    int line, col;
    if (miss) {
        pml_json_where(j, at, &line, &col);
        return pml_fail(PML_EFORMAT,
                        "%s: the task event at line %d has no %s: not a trace written by pml train "
                        "--trace",
                        j->src, line, miss);
    }
    int kind = -1;
    for (int k = 0; k < PML_TASK_KIND_COUNT; k++)
        if (is(e->kind, pml_task_kind_name((pml_task_kind)k))) kind = k;
    const char *why = NULL;
    if (kind < 0)
        why = "an unknown args.kind";
    else if (!is(e->phase, "train") && !is(e->phase, "eval"))
        why = "args.phase neither train nor eval";
    else if (!(e->tid >= 0 && e->tid < (1 << 20) && e->tid == floor(e->tid)))
        why = "a bad tid";
    else if (!isfinite(e->ts) || !isfinite(e->dur) || e->dur < 0)
        why = "a bad ts or dur";
    unsigned long long key = 0;
    for (int k = 0; !why && k < 16; k++) {
        int h = pml_hex_digit(e->key[k]);
        if (h < 0) why = "an args.key that is not 16 hex digits";
        key = key << 4 | (unsigned)h;
    }
    if (!why && e->key[16]) why = "an args.key that is not 16 hex digits";
    if (why) {
        pml_json_where(j, at, &line, &col);
        return pml_fail(PML_EFORMAT, "%s: the task event at line %d has %s", j->src, line, why);
    }
    if (n == r->ncap) {
        long cap = r->ncap ? 2 * r->ncap : 4096;
        pml_trace_event *ev = realloc(t->ev, (size_t)cap * sizeof *ev);
        if (!ev) return pml_fail(PML_ENOMEM, "%s: out of memory reading the trace", j->src);
        t->ev = ev;
        r->ncap = cap;
    }
    int node = intern(r, e->node);
    if (node < 0) return pml_fail(PML_ENOMEM, "%s: out of memory reading the trace", j->src);
    t->ev[n] = (pml_trace_event){.key = key,
                                 .start = 1e-6 * e->ts,
                                 .dur = 1e-6 * e->dur,
                                 .step = (int)(e->step > 0x7fffffff ? 0x7fffffff : e->step),
                                 .tid = (int)e->tid,
                                 .part = (int)e->part,
                                 .node = node,
                                 .kind = (uint8_t)kind,
                                 .train = is(e->phase, "train")};
    t->nevents = n + 1;
    return PML_OK;
}

static pml_status event_elem(pml_json *j, void *ctx, int i)
{
    (void)i;
    reader *r = ctx;
    pml_json_ws(j);
    const char *at = j->p;
    evbuf e;
    memset(&e, 0, sizeof e);
    e.r = r;
    if (j->p < j->end && *j->p != '{') return pml_json_bad(j, "an event must be an object");
    pml_status st = pml_json_object(j, event_member, &e);
    if (st != PML_OK) return st;
    /* a run across ranks: rank 0's tasks (process 0), or with a plan across ranks every
     * rank's; communication (a rank's bucket sums, the other end of a message) is not a task */
    const bool task = is(e.ph, "X") && (r->t->across || !(e.has_pid && e.pid != 0)) &&
                      !(e.has_kind && (is(e.kind, "allreduce") || is(e.kind, "message")));
    return task ? add_event(j, r, &e, at) : PML_OK;
}

static pml_status events(pml_json *j, reader *r)
{
    pml_json_ws(j);
    if (j->p < j->end && *j->p != '[') return pml_json_bad(j, "traceEvents must be an array");
    return pml_json_array(j, event_elem, r);
}

static pml_status top_member(pml_json *j, void *ctx, const char *key, size_t kl)
{
    (void)kl;
    reader *r = ctx;
    if (is(key, "otherData")) {
        pml_json_ws(j);
        if (j->p < j->end && *j->p != '{') return pml_json_bad(j, "otherData must be an object");
        r->have_other = true;
        return pml_json_object(j, other_member, r);
    }
    if (is(key, "traceEvents")) {
        r->have_events = true;
        return events(j, r);
    }
    return pml_json_skip(j);
}

void pml_trace_free(pml_trace *t)
{
    if (!t) return;
    free(t->ev);
    free(t->names);
    memset(t, 0, sizeof *t);
}

pml_status pml_trace_parse(const char *text, size_t len, const char *source, pml_trace *t)
{
    memset(t, 0, sizeof *t);
    pml_json j = {text, text, text + len, source, "trace", 0};
    reader r;
    memset(&r, 0, sizeof r);
    r.t = t;
    pml_status st;
    pml_json_ws(&j);
    if (j.p >= j.end) {
        st = pml_fail(PML_EFORMAT, "%s: the file is empty, not a trace", source);
        goto fail;
    }
    if (*j.p != '{') {
        st = pml_fail(PML_EFORMAT,
                      "%s: not a trace written by pml train --trace (it is not a JSON object)",
                      source);
        goto fail;
    }
    if ((st = pml_json_object(&j, top_member, &r)) != PML_OK) goto fail;
    pml_json_ws(&j);
    if (j.p < j.end) {
        st = pml_json_bad(&j, "text after the trace object");
        goto fail;
    }
    if (!r.have_events || !r.have_other || !t->model[0]) {
        st = pml_fail(PML_EFORMAT, "%s: not a trace written by pml train --trace (no %s)", source,
                      !r.have_events ? "traceEvents" : "otherData.model");
        goto fail;
    }
    if (t->batch < 1 || t->devices < 1) {
        st = pml_fail(PML_EFORMAT, "%s: the trace has no otherData.%s", source,
                      t->batch < 1 ? "batch" : "devices");
        goto fail;
    }
    free(r.hash);
    return PML_OK;
fail:
    free(r.hash);
    pml_trace_free(t);
    return st;
}

pml_status pml_trace_read(const char *path, pml_trace *t)
{
    memset(t, 0, sizeof *t);
    char *text;
    size_t len;
    pml_status st = pml_read_file(path, MAX_TRACE_BYTES, &text, &len);
    if (st != PML_OK) return st;
    st = pml_trace_parse(text, len, path, t);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- comparison */




void pml_trace_cmp_free(pml_trace_cmp *c)
{
    if (!c) return;
    free(c->task);
    free(c->predicted);
    free(c->measured);
    memset(c, 0, sizeof *c);
}

pml_status pml_trace_compare(const pml_trace *t, const char *source, const pml_graph *g,
                             const pml_machine *m, const pml_sim *s, int warmup, pml_trace_cmp *out)
{
    memset(out, 0, sizeof *out);
    const pml_plan *p = pml_sim_plan(s);
    /* the trace's run: same model, batch, machine, devices, plan */
    if (strcmp(t->model, g->name) != 0)
        return pml_fail(PML_EINVAL, "%s: the trace is of model '%s', the plan of model '%s'",
                        source, t->model, g->name);
    if (t->parameters > 0 && t->parameters != (double)pml_graph_param_count(g))
        return pml_fail(PML_EINVAL,
                        "%s: the trace is of a model '%s' with %.0f parameters, the plan's has %zu",
                        source, t->model, t->parameters, pml_graph_param_count(g));
    if (t->batch != p->batch)
        return pml_fail(PML_EINVAL, "%s: the trace ran batch %d, the plan is for batch %d", source,
                        t->batch, p->batch);
    if (t->fingerprint[0] && m->fingerprint[0] && strcmp(t->fingerprint, m->fingerprint) != 0)
        return pml_fail(PML_EINVAL,
                        "%s: the trace ran on machine '%s' (fingerprint %s), the plan is simulated "
                        "on machine '%s' (fingerprint %s)",
                        source, t->machine, t->fingerprint, m->name, m->fingerprint);
    if (t->devices != m->ncompute)
        return pml_fail(PML_EINVAL, "%s: the trace ran on %d devices, the machine has %d", source,
                        t->devices, m->ncompute);
    if (t->strategy[0] && strcmp(t->strategy, p->strategy) != 0)
        return pml_fail(PML_EINVAL, "%s: the trace ran a '%s' plan, the plan is a '%s' plan",
                        source, t->strategy, p->strategy);

    pml_taskgraph *tg = (pml_taskgraph *)pml_sim_taskgraph(s); /* committed: order is current */
    int T;
    const int *order = pml_taskgraph_order(tg, &T);
    if (!order || T < 1) return pml_fail(PML_ENOMEM, "out of memory");
    /* training steps present */
    int smin = 0x7fffffff, smax = -1;
    long ntrain = 0;
    for (long i = 0; i < t->nevents; i++) {
        const pml_trace_event *e = &t->ev[i];
        if (!e->train) continue;
        ntrain++;
        if (e->step < smin) smin = e->step;
        if (e->step > smax) smax = e->step;
    }
    if (ntrain == 0)
        return pml_fail(PML_EINVAL, "%s: the trace has no training steps (no task of phase train)",
                        source);
    if ((long)(smax - smin) + 1 > ntrain)
        return pml_fail(PML_EINVAL,
                        "%s: training steps %d to %d hold only %ld tasks: steps are missing",
                        source, smin, smax, ntrain);
    const int S = smax - smin + 1;
    double *dur = malloc((size_t)S * T * sizeof *dur);
    double *t0 = malloc((size_t)S * sizeof *t0), *t1 = malloc((size_t)S * sizeof *t1);
    int *seen = calloc((size_t)S, sizeof *seen);
    double *kind = calloc((size_t)S * PML_TASK_KIND_COUNT, sizeof *kind);
    double *col = malloc((size_t)S * sizeof *col);
    pml_status st = PML_OK;
    if (!dur || !t0 || !t1 || !seen || !kind || !col) {
        st = pml_fail(PML_ENOMEM, "out of memory comparing the trace");
        goto out;
    }
    for (long i = 0; i < (long)S * T; i++) dur[i] = -1;
    for (int k = 0; k < S; k++) t0[k] = INFINITY, t1[k] = -INFINITY;
    for (long i = 0; i < t->nevents; i++) {
        const pml_trace_event *e = &t->ev[i];
        if (!e->train) continue;
        /* the task with this key: binary search in program order */
        int lo = 0, hi = T;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (pml_taskgraph_task(tg, order[mid])->key < e->key)
                lo = mid + 1;
            else
                hi = mid;
        }
        const pml_task *task = lo < T ? pml_taskgraph_task(tg, order[lo]) : NULL;
        const char *tnode =
            task && task->node >= 0 && task->node < g->nnodes ? g->nodes[task->node].name : "";
        if (!task || task->key != e->key || task->kind != e->kind || task->part != e->part ||
            strcmp(tnode, t->names[e->node]) != 0 || pml_task_worker(task) != e->tid) {
            st = pml_fail(PML_EINVAL,
                          "%s: task %016llx (%s %s[%d] on worker %d, step %d) is not a task of the "
                          "plan: the trace is of another plan",
                          source, (unsigned long long)e->key,
                          pml_task_kind_name((pml_task_kind)e->kind), t->names[e->node], e->part,
                          e->tid, e->step);
            goto out;
        }
        const int k = e->step - smin;
        double *d = &dur[(long)k * T + lo];
        if (*d >= 0) {
            st = pml_fail(PML_EINVAL, "%s: step %d holds task %016llx (%s %s[%d]) twice", source,
                          e->step, (unsigned long long)e->key,
                          pml_task_kind_name((pml_task_kind)e->kind), t->names[e->node], e->part);
            goto out;
        }
        *d = e->dur;
        seen[k]++;
        kind[k * PML_TASK_KIND_COUNT + e->kind] += e->dur;
        if (e->start < t0[k]) t0[k] = e->start;
        if (e->start + e->dur > t1[k]) t1[k] = e->start + e->dur;
    }
    /* complete steps; only the last may be cut short (the trace's event limit) */
    int complete = 0;
    for (int k = 0; k < S; k++) {
        if (seen[k] == T) {
            complete++;
            continue;
        }
        if (k == S - 1 && seen[k] < T && complete > 0) break;
        st = pml_fail(PML_EINVAL,
                      "%s: training step %d has %d of the plan's %d tasks: the trace is of another "
                      "plan",
                      source, smin + k, seen[k], T);
        goto out;
    }
    int skip = warmup < 0 ? 0 : warmup;
    if (skip > complete - 1) skip = complete - 1;
    const int used = complete - skip;
    out->steps = complete;
    out->used = used;
    out->ntasks = T;
    out->task = malloc((size_t)T * sizeof *out->task);
    out->predicted = malloc((size_t)T * sizeof *out->predicted);
    out->measured = malloc((size_t)T * sizeof *out->measured);
    if (!out->task || !out->predicted || !out->measured) {
        st = pml_fail(PML_ENOMEM, "out of memory comparing the trace");
        goto out;
    }
    for (int k = 0; k < used; k++) col[k] = t1[skip + k] - t0[skip + k];
    out->measured_step = pml_median(col, used);
    for (int c = 0; c < PML_TASK_KIND_COUNT; c++) {
        for (int k = 0; k < used; k++) col[k] = kind[(skip + k) * PML_TASK_KIND_COUNT + c];
        out->measured_kind[c] = pml_median(col, used);
    }
    for (int i = 0; i < T; i++) {
        for (int k = 0; k < used; k++) col[k] = dur[(long)(skip + k) * T + i];
        out->task[i] = order[i];
        out->measured[i] = pml_median(col, used);
        out->predicted[i] = pml_sim_task_seconds(s, order[i]);
    }
    pml_sim_result r;
    if ((st = pml_sim_result_get(s, &r)) != PML_OK) goto out;
    out->predicted_step = r.step_seconds;
    memcpy(out->predicted_kind, r.kind_seconds, sizeof out->predicted_kind);
    pml_sim_result_free(&r);
out:
    free(dur);
    free(t0);
    free(t1);
    free(seen);
    free(kind);
    free(col);
    if (st != PML_OK) pml_trace_cmp_free(out);
    return st;
}
