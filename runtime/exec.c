/* pml — the executor: runs a graph forward and backward in topological order.
 *
 * threads = 1 is the reference path: one thread, one kernel call per node over the full region
 * (with opts->reference, the naive reference kernels: the oracle later plan execution is checked
 * against). threads > 1 splits each node's work into one part per thread along a dimension the op
 * declares splittable (sample, parameter or attribute), on a fork-join pool of pinned workers.
 * Gradients that a split makes partial go to per-thread private buffers and are summed: input
 * gradients right after the node, parameter gradients once at the end of the backward pass.
 * Every buffer a step needs is allocated here, once. */
#include "runtime.h"

#include "planexec.h"
#include "pool.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct node_rt {
    float *y, *dy, *aux;
    size_t size;         /* per-sample output floats */
    bool wants;          /* the output needs a gradient (some parameter lies upstream) */
    bool run_bwd;        /* the node's backward runs */
    int zero_before;     /* backward position whose job zeroes this node's dy (-1: pre-pass) */
    unsigned split;      /* this call's split (0: one part) */
    int parts;
    bool dw_private;     /* this backward wrote parameter partials to private blocks */
} node_rt;

struct pml_exec {
    pml_graph g;
    pml_exec_opts o;
    int T;
    pml__pool *pool;
    node_rt *rt;
    int *bwd_order; /* nodes whose backward runs, in backward order */
    int nbwd;
    float *params, *grads, *state;
    float *gpriv[64];  /* per-thread parameter-gradient partials (gpriv[0] = grads) */
    float *dxpriv[64]; /* per-thread input-gradient partials */
    float *ws[64];
    int32_t *labels;
    void *arena;
    /* per call */
    int n;
    bool training;
    uint64_t step;
    int cur, cur_pos;
    pml_optim *optim;
    pml__px *px; /* plan mode */
    /* profiling */
    bool profiling;
    double *prof_fwd, *prof_bwd, prof_update;
};

#include <time.h>
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define ALIGN_FLOATS 16

/* ---------------------------------------------------------------- split choice */

static double node_flops(const pml_exec *e, int v) { return pml_node_flops(&e->g, v); }

/* Chooses how node v's work is split for n samples: one part when the work is too small to pay
 * for a fork-join (a few microseconds), otherwise a split whose extra reduction is cheapest. */
static void choose_split(pml_exec *e, int v, int n)
{
    node_rt *r = &e->rt[v];
    const pml_node *nd = &e->g.nodes[v];
    const int T = e->T;
    r->split = 0;
    r->parts = 1;
    if (T == 1 || nd->op == PML_OP_INPUT) return;
    const unsigned ok = pml_ops[nd->op].splits;
    const pml_shape o = nd->out;
    const unsigned force = e->o.force_split;
    if (force) {
        const unsigned pref[3] = {force, PML_SPLIT_SAMPLE, PML_SPLIT_PARAM};
        for (int i = 0; i < 3 && !r->split; i++) {
            unsigned s = pref[i] & ok;
            if ((s == PML_SPLIT_SAMPLE && n >= T) || (s == PML_SPLIT_PARAM && o.c >= T) ||
                (s == PML_SPLIT_ATTR && o.h >= T))
                r->split = s;
        }
        if (r->split) r->parts = T;
        return;
    }
    const double work = node_flops(e, v) * n * (e->training ? 3.0 : 1.0);
    const double bytes = 8.0 * (double)r->size * n;
    if (work < 4e5 && bytes < 2.5e5) return;
    if (nd->op == PML_OP_LINEAR) {
        const pml_shape in = e->g.nodes[nd->in[0]].out;
        bool dx = e->rt[nd->in[0]].wants;
        double cost_sample = (double)in.c * o.c;          /* dW partials */
        double cost_param = dx ? (double)n * in.c : 0.0;  /* dX partials */
        if (o.c >= 8 * T && (cost_param <= cost_sample || n < T)) {
            r->split = PML_SPLIT_PARAM;
        } else if (n >= T) {
            r->split = PML_SPLIT_SAMPLE;
        } else {
            return;
        }
        r->parts = T;
        return;
    }
    if ((ok & PML_SPLIT_SAMPLE) && n >= T)
        r->split = PML_SPLIT_SAMPLE;
    else if ((ok & PML_SPLIT_PARAM) && o.c >= T)
        r->split = PML_SPLIT_PARAM;
    else if ((ok & PML_SPLIT_ATTR) && o.h >= T)
        r->split = PML_SPLIT_ATTR;
    else
        return;
    r->parts = T;
}

static pml_region part_region(const pml_exec *e, int v, int part, int n)
{
    const node_rt *r = &e->rt[v];
    pml_region g = pml_region_full(&e->g.nodes[v], n);
    if (r->parts <= 1) return g;
    if (r->split == PML_SPLIT_SAMPLE) {
        g.n0 = (int)pml__part_start(n, r->parts, part);
        g.n1 = (int)pml__part_start(n, r->parts, part + 1);
    } else if (r->split == PML_SPLIT_PARAM) {
        int C = g.c1;
        g.c0 = (int)pml__part_start(C, r->parts, part);
        g.c1 = (int)pml__part_start(C, r->parts, part + 1);
    } else {
        int H = g.h1;
        g.h0 = (int)pml__part_start(H, r->parts, part);
        g.h1 = (int)pml__part_start(H, r->parts, part + 1);
    }
    return g;
}

/* ---------------------------------------------------------------- kernel context */

static void fill_ctx(const pml_exec *e, int v, pml_kctx *k)
{
    const pml_node *nd = &e->g.nodes[v];
    const node_rt *r = &e->rt[v];
    memset(k, 0, sizeof *k);
    k->node = nd;
    k->node_id = v;
    k->N = e->n;
    k->batch_total = e->n;
    k->nin = nd->nin;
    for (int i = 0; i < nd->nin; i++) {
        k->x[i] = e->rt[nd->in[i]].y;
        k->xs[i] = e->g.nodes[nd->in[i]].out;
    }
    k->y = r->y;
    k->aux = r->aux;
    for (int j = 0; j < nd->nparam; j++) k->w[j] = e->params + nd->param_off[j];
    for (int j = 0; j < nd->nstate; j++) k->state[j] = e->state + nd->state_off[j];
    k->labels = e->labels;
    k->training = e->training;
    k->seed = e->o.seed;
    k->step = e->step;
}

static inline pml_kernel_fn fwd_fn(const pml_exec *e, pml_op_type op)
{
    return e->o.reference ? pml_ops[op].fwd_ref : pml_ops[op].fwd;
}
static inline pml_kernel_fn bwd_fn(const pml_exec *e, pml_op_type op)
{
    return e->o.reference ? pml_ops[op].bwd_ref : pml_ops[op].bwd;
}

/* zero this thread's slice of [p, p + len) */
static void zero_slice(float *p, size_t len, int tid, int T)
{
    size_t a = (size_t)pml__part_start((long)len, T, tid), b = (size_t)pml__part_start((long)len, T, tid + 1);
    if (b > a) memset(p + a, 0, (b - a) * sizeof *p);
}

/* Zeroes (in slices across threads) the output gradients due to be zeroed at backward position
 * pos: the inputs of the node that runs at pos + 1 whose first consumer that is. */
static void zero_due(pml_exec *e, int pos, int tid, int T)
{
    if (pos + 1 >= e->nbwd) return;
    const pml_node *nd = &e->g.nodes[e->bwd_order[pos + 1]];
    for (int i = 0; i < nd->nin; i++) {
        node_rt *u = &e->rt[nd->in[i]];
        if (u->wants && u->zero_before == pos) zero_slice(u->dy, (size_t)e->n * u->size, tid, T);
    }
}

/* ---------------------------------------------------------------- jobs */

static void fwd_job(void *ctx, int tid, int T)
{
    pml_exec *e = ctx;
    const int v = e->cur;
    if (tid >= e->rt[v].parts) return;
    pml_kctx k;
    fill_ctx(e, v, &k);
    k.r = part_region(e, v, tid, e->n);
    k.ws = e->ws[tid];
    fwd_fn(e, e->g.nodes[v].op)(&k);
}

static void bwd_job(void *ctx, int tid, int T)
{
    pml_exec *e = ctx;
    const int v = e->cur;
    node_rt *r = &e->rt[v];
    const pml_node *nd = &e->g.nodes[v];
    if (tid < r->parts) {
        pml_kctx k;
        fill_ctx(e, v, &k);
        k.r = part_region(e, v, tid, e->n);
        k.ws = e->ws[tid];
        k.dy = r->dy;
        const bool split = r->parts > 1;
        const bool dxp = split && (pml_ops[nd->op].dx_partial & r->split);
        const bool dwp = split && (pml_ops[nd->op].dw_partial & r->split);
        for (int i = 0; i < nd->nin; i++) {
            node_rt *u = &e->rt[nd->in[i]];
            if (!u->wants) continue;
            if (dxp && tid > 0) {
                size_t len = (size_t)e->n * u->size;
                memset(e->dxpriv[tid], 0, len * sizeof(float));
                k.dx[i] = e->dxpriv[tid];
            } else {
                k.dx[i] = u->dy;
            }
        }
        for (int j = 0; j < nd->nparam; j++) {
            if (dwp && tid > 0) {
                float *p = e->gpriv[tid] + nd->param_off[j];
                memset(p, 0, nd->param_size[j] * sizeof(float));
                k.dw[j] = p;
            } else {
                k.dw[j] = e->grads + nd->param_off[j];
            }
        }
        bwd_fn(e, nd->op)(&k);
    }
    zero_due(e, e->cur_pos, tid, T);
}

/* shared input gradient += private partials of parts 1.. */
static void dx_reduce_job(void *ctx, int tid, int T)
{
    pml_exec *e = ctx;
    const int v = e->cur;
    const pml_node *nd = &e->g.nodes[v];
    node_rt *u = &e->rt[nd->in[0]];
    size_t len = (size_t)e->n * u->size;
    size_t a = (size_t)pml__part_start((long)len, T, tid), b = (size_t)pml__part_start((long)len, T, tid + 1);
    for (int t = 1; t < e->rt[v].parts; t++)
        cblas_saxpy((int)(b - a), 1.0f, e->dxpriv[t] + a, 1, u->dy + a, 1);
}

static void bwd_start_job(void *ctx, int tid, int T)
{
    pml_exec *e = ctx;
    zero_slice(e->grads, e->g.nparams, tid, T);
    zero_due(e, -1, tid, T);
}

/* grads += private parameter partials, for the nodes that wrote them; sliced by threads */
static void dw_reduce_job(void *ctx, int tid, int T)
{
    pml_exec *e = ctx;
    for (int v = 0; v < e->g.nnodes; v++) {
        const node_rt *r = &e->rt[v];
        if (!r->dw_private) continue;
        const pml_node *nd = &e->g.nodes[v];
        for (int j = 0; j < nd->nparam; j++) {
            size_t len = nd->param_size[j], off = nd->param_off[j];
            size_t a = (size_t)pml__part_start((long)len, T, tid), b = (size_t)pml__part_start((long)len, T, tid + 1);
            for (int t = 1; t < r->parts; t++)
                cblas_saxpy((int)(b - a), 1.0f, e->gpriv[t] + off + a, 1, e->grads + off + a, 1);
        }
    }
}

static void update_job(void *ctx, int tid, int T)
{
    pml_exec *e = ctx;
    size_t n = e->g.nparams;
    size_t a = (size_t)pml__part_start((long)n, T, tid), b = (size_t)pml__part_start((long)n, T, tid + 1);
    /* keep slices on cache-line boundaries */
    a &= ~(size_t)(ALIGN_FLOATS - 1);
    if (tid + 1 < T) b &= ~(size_t)(ALIGN_FLOATS - 1);
    pml_optim_apply(e->optim, e->params, e->grads, a, b);
}

/* ---------------------------------------------------------------- create / destroy */

static size_t up(size_t n) { return (n + ALIGN_FLOATS - 1) & ~(size_t)(ALIGN_FLOATS - 1); }

pml_status pml_exec_create(const pml_graph *g, const pml_exec_opts *opts, pml_exec **out)
{
    *out = NULL;
    if (!g->finalized) return pml_fail(PML_EINVAL, "graph '%s' is not finalised", g->name);
    if (opts->plan) {
        if (!opts->machine) return pml_fail(PML_EINVAL, "a plan needs the machine it runs on");
        pml_exec *e = calloc(1, sizeof *e);
        if (!e) return pml_fail(PML_ENOMEM, "out of memory");
        e->o = *opts;
        pml_status st = pml__px_create(g, opts->machine, opts->plan, opts, &e->px);
        if (st != PML_OK) {
            free(e);
            return st;
        }
        e->g.nnodes = g->nnodes; /* for bounds checks; the plan executor owns its copy */
        *out = e;
        return PML_OK;
    }
    if (opts->batch < 1) return pml_fail(PML_EINVAL, "batch=%d must be at least 1", opts->batch);
    if (opts->threads < 1 || opts->threads > 64)
        return pml_fail(PML_EINVAL, "threads=%d must be in [1, 64]", opts->threads);
    pml_exec *e = calloc(1, sizeof *e);
    if (!e) return pml_fail(PML_ENOMEM, "out of memory");
    pml_status st = pml_graph_copy(&e->g, g);
    if (st != PML_OK) {
        free(e);
        return st;
    }
    e->o = *opts;
    e->T = opts->reference ? 1 : opts->threads;
    const int B = opts->batch, N = g->nnodes, T = e->T;
    e->rt = calloc((size_t)N, sizeof *e->rt);
    e->bwd_order = calloc((size_t)N, sizeof *e->bwd_order);
    e->prof_fwd = calloc((size_t)N, sizeof *e->prof_fwd);
    e->prof_bwd = calloc((size_t)N, sizeof *e->prof_bwd);
    if (!e->rt || !e->bwd_order || !e->prof_fwd || !e->prof_bwd) goto nomem;

    /* which outputs need gradients, and the backward order */
    for (int k = 0; k < N; k++) {
        int v = g->order[k];
        const pml_node *nd = &g->nodes[v];
        node_rt *r = &e->rt[v];
        r->size = pml_shape_size(nd->out);
        r->wants = nd->nparam > 0;
        for (int i = 0; i < nd->nin; i++) r->wants |= e->rt[nd->in[i]].wants;
        if (v == g->loss) r->wants = false;
        r->run_bwd = r->wants || (v == g->loss && e->rt[g->logits].wants);
        r->zero_before = -2;
    }
    for (int k = N - 1; k >= 0; k--) {
        int v = g->order[k];
        if (!e->rt[v].run_bwd) continue;
        /* this node's inputs are zeroed by the job before it, if it is their first consumer */
        const pml_node *nd = &g->nodes[v];
        for (int i = 0; i < nd->nin; i++) {
            node_rt *u = &e->rt[nd->in[i]];
            if (u->wants && u->zero_before == -2) u->zero_before = e->nbwd - 1;
        }
        e->bwd_order[e->nbwd++] = v;
    }

    /* sizes */
    size_t total = 0, wsmax = 0, dxmax = 0;
    for (int v = 0; v < N; v++) {
        const pml_node *nd = &g->nodes[v];
        node_rt *r = &e->rt[v];
        total += up((size_t)B * r->size);                               /* y */
        if (r->wants) total += up((size_t)B * r->size);                 /* dy */
        total += up(nd->aux_per_sample * (size_t)B + nd->aux_fixed);   /* aux */
        pml_shape in[PML_MAX_INPUTS];
        for (int i = 0; i < nd->nin; i++) in[i] = g->nodes[nd->in[i]].out;
        size_t w = pml_ops[nd->op].ws_floats(nd, in, nd->nin, pml_region_full(nd, B));
        if (w > wsmax) wsmax = w;
        if (nd->nin == 1 && pml_ops[nd->op].dx_partial) {
            size_t d = (size_t)B * pml_shape_size(in[0]);
            if (d > dxmax) dxmax = d;
        }
    }
    total += up((size_t)B) + 2 * up(g->nparams) + up(g->nstate) + T * up(wsmax);
    if (T > 1) total += (size_t)(T - 1) * (up(g->nparams) + up(dxmax));
    e->arena = aligned_alloc(64, (total + ALIGN_FLOATS) * sizeof(float));
    if (!e->arena) {
        pml_exec_destroy(e);
        return pml_fail(PML_ENOMEM, "out of memory: graph '%s' at batch %d needs %.1f MiB",
                        g->name, B, (double)total * 4 / 1048576.0);
    }
    float *p = e->arena;
#define TAKE(n) (p += up(n), p - up(n))
    for (int v = 0; v < N; v++) {
        const pml_node *nd = &g->nodes[v];
        node_rt *r = &e->rt[v];
        r->y = TAKE((size_t)B * r->size);
        if (r->wants) r->dy = TAKE((size_t)B * r->size);
        r->aux = TAKE(nd->aux_per_sample * (size_t)B + nd->aux_fixed);
    }
    e->labels = (int32_t *)TAKE((size_t)B);
    e->params = TAKE(g->nparams);
    e->grads = TAKE(g->nparams);
    e->state = TAKE(g->nstate);
    e->gpriv[0] = e->grads;
    for (int t = 0; t < T; t++) e->ws[t] = TAKE(wsmax);
    for (int t = 1; t < T; t++) {
        e->gpriv[t] = TAKE(g->nparams);
        e->dxpriv[t] = TAKE(dxmax);
    }
#undef TAKE
    memset(e->labels, 0, (size_t)B * sizeof *e->labels);
    memset(e->rt[g->input].y, 0, (size_t)B * e->rt[g->input].size * sizeof(float));
    memset(e->grads, 0, g->nparams * sizeof(float));
    pml_params_init(g, e->params, e->state, opts->seed);
    pml_blas_single_thread();
    if ((st = pml_blas_room(T)) != PML_OK || (st = pml__pool_create(T, T > 1, &e->pool)) != PML_OK) {
        pml_exec_destroy(e);
        return st;
    }
    *out = e;
    return PML_OK;
nomem:
    pml_exec_destroy(e);
    return pml_fail(PML_ENOMEM, "out of memory creating the executor");
}

void pml_exec_destroy(pml_exec *e)
{
    if (!e) return;
    if (e->px) {
        pml__px_destroy(e->px);
        free(e);
        return;
    }
    pml__pool_destroy(e->pool);
    free(e->arena);
    free(e->rt);
    free(e->bwd_order);
    free(e->prof_fwd);
    free(e->prof_bwd);
    pml_graph_free(&e->g);
    free(e);
}

float *pml_exec_input(pml_exec *e) { return e->px ? pml__px_input(e->px) : e->rt[e->g.input].y; }
int32_t *pml_exec_labels(pml_exec *e) { return e->px ? pml__px_labels(e->px) : e->labels; }
float *pml_exec_params(pml_exec *e) { return e->px ? pml__px_params(e->px) : e->params; }
float *pml_exec_grads(pml_exec *e) { return e->px ? pml__px_grads(e->px) : e->grads; }
float *pml_exec_state(pml_exec *e) { return e->px ? pml__px_state(e->px) : e->state; }
const float *pml_exec_output(pml_exec *e, int id)
{
    if (e->px) return pml__px_output(e->px, id);
    if (id < 0 || id >= e->g.nnodes) return NULL;
    return e->rt[id].y;
}

static pml_status plan_only_whole_steps(void)
{
    return pml_fail(PML_EUNSUPPORTED, "a plan runs whole training steps and inference passes only");
}

pml_status pml_exec_trace_begin(pml_exec *e, long max_events)
{
    if (!e->px) return pml_fail(PML_EUNSUPPORTED, "traces are recorded when a plan runs");
    return pml__px_trace_begin(e->px, max_events);
}

pml_status pml_exec_trace_write(pml_exec *e, const char *path)
{
    if (!e->px) return pml_fail(PML_EUNSUPPORTED, "traces are recorded when a plan runs");
    return pml__px_trace_write(e->px, path);
}

/* ---------------------------------------------------------------- passes */

static pml_status check_n(const pml_exec *e, int n)
{
    if (n < 1 || n > e->o.batch)
        return pml_fail(PML_EINVAL, "a step of %d samples does not fit batch %d", n, e->o.batch);
    return PML_OK;
}

static bool all_finite(const float *p, size_t n)
{
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += p[i] * 0.0f;
    return acc == 0.0f;
}

pml_status pml__check_labels(const pml_graph *g, const int32_t *labels, int n)
{
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= g->classes)
            return pml_fail(PML_EINVAL, "label %d of sample %d is outside [0, %d)", labels[i], i,
                            g->classes);
    return PML_OK;
}

pml_status pml__step_result(const pml_graph *g, const float *loss, const float *logits,
                            const int32_t *labels, int n, pml_step_result *res)
{
    const int C = g->classes;
    double s = 0;
    int correct = 0;
    for (int i = 0; i < n; i++) {
        s += loss[i];
        const float *zi = logits + (size_t)i * C;
        int best = 0;
        for (int j = 1; j < C; j++)
            if (zi[j] > zi[best]) best = j;
        correct += best == labels[i];
    }
    res->loss_sum = s;
    res->correct = correct;
    if (!isfinite(s))
        return pml_fail(PML_ENUMERIC, "node '%s' (softmax_xent): the loss is not finite",
                        g->nodes[g->loss].name);
    return PML_OK;
}

pml_status pml_exec_forward(pml_exec *e, int n, bool training, pml_step_result *res)
{
    if (e->px) return training ? plan_only_whole_steps() : pml__px_step(e->px, n, NULL, res);
    pml_status st = check_n(e, n);
    if (st != PML_OK) return st;
    const pml_graph *g = &e->g;
    if ((st = pml__check_labels(g, e->labels, n)) != PML_OK) return st;
    e->n = n;
    e->training = training;
    for (int k = 0; k < g->nnodes; k++) {
        int v = g->order[k];
        if (v == g->input) continue;
        choose_split(e, v, n);
        e->cur = v;
        double t0 = e->profiling ? now_s() : 0;
        pml__pool_run(e->pool, fwd_job, e);
        if (e->profiling) e->prof_fwd[v] += now_s() - t0;
        if (e->o.check_numerics && !all_finite(e->rt[v].y, (size_t)n * e->rt[v].size))
            return pml_fail(PML_ENUMERIC, "node '%s' (%s): output is not finite",
                            g->nodes[v].name, pml_op_name(g->nodes[v].op));
    }
    if (res) return pml__step_result(g, e->rt[g->loss].y, e->rt[g->logits].y, e->labels, n, res);
    return PML_OK;
}

pml_status pml_exec_backward(pml_exec *e, int n)
{
    if (e->px) return plan_only_whole_steps();
    if (n != e->n || !e->training)
        return pml_fail(PML_EINVAL, "backward needs a training forward pass of the same %d samples",
                        n);
    for (int v = 0; v < e->g.nnodes; v++) e->rt[v].dw_private = false;
    pml__pool_run(e->pool, bwd_start_job, e);
    bool any_private = false;
    for (int pos = 0; pos < e->nbwd; pos++) {
        int v = e->bwd_order[pos];
        node_rt *r = &e->rt[v];
        const pml_node *nd = &e->g.nodes[v];
        e->cur = v;
        e->cur_pos = pos;
        double t0 = e->profiling ? now_s() : 0;
        pml__pool_run(e->pool, bwd_job, e);
        if (r->parts > 1 && (pml_ops[nd->op].dx_partial & r->split) && e->rt[nd->in[0]].wants)
            pml__pool_run(e->pool, dx_reduce_job, e);
        if (e->profiling) e->prof_bwd[v] += now_s() - t0;
        if (r->parts > 1 && (pml_ops[nd->op].dw_partial & r->split) && nd->nparam > 0) {
            r->dw_private = true;
            any_private = true;
        }
    }
    if (any_private) pml__pool_run(e->pool, dw_reduce_job, e);
    if (e->o.check_numerics)
        for (int v = 0; v < e->g.nnodes; v++) {
            const pml_node *nd = &e->g.nodes[v];
            for (int j = 0; j < nd->nparam; j++)
                if (!all_finite(e->grads + nd->param_off[j], nd->param_size[j]))
                    return pml_fail(PML_ENUMERIC, "node '%s' (%s): gradient is not finite",
                                    nd->name, pml_op_name(nd->op));
        }
    return PML_OK;
}

pml_status pml_exec_update(pml_exec *e, pml_optim *o)
{
    if (e->px) return plan_only_whole_steps();
    if (o->n != e->g.nparams)
        return pml_fail(PML_EINVAL, "optimizer state is for %zu parameters, the graph has %zu",
                        o->n, e->g.nparams);
    pml_optim_begin_step(o);
    e->optim = o;
    double t0 = e->profiling ? now_s() : 0;
    pml__pool_run(e->pool, update_job, e);
    if (e->profiling) e->prof_update += now_s() - t0;
    e->step++;
    return PML_OK;
}

void pml_exec_set_profiling(pml_exec *e, bool on)
{
    if (e->px) {
        pml__px_set_profiling(e->px, on);
        return;
    }
    if (on && !e->profiling) {
        memset(e->prof_fwd, 0, (size_t)e->g.nnodes * sizeof *e->prof_fwd);
        memset(e->prof_bwd, 0, (size_t)e->g.nnodes * sizeof *e->prof_bwd);
        e->prof_update = 0;
    }
    e->profiling = on;
}

void pml_exec_profile(const pml_exec *e, double *fwd, double *bwd, double *update)
{
    if (e->px) {
        pml__px_profile(e->px, fwd, bwd, update);
        return;
    }
    for (int v = 0; v < e->g.nnodes; v++) {
        if (fwd) fwd[v] = e->prof_fwd[v];
        if (bwd) bwd[v] = e->prof_bwd[v];
    }
    if (update) *update = e->prof_update;
}

pml_status pml_exec_train_step(pml_exec *e, int n, pml_optim *o, pml_step_result *res)
{
    if (e->px) return pml__px_step(e->px, n, o, res);
    pml_status st = pml_exec_forward(e, n, true, res);
    if (st == PML_OK) st = pml_exec_backward(e, n);
    if (st == PML_OK) st = pml_exec_update(e, o);
    return st;
}
