/* pml — plan execution: the planner's task graph of one training step, run on the task
 * scheduler (one pinned worker per compute device of this machine).
 *
 * The tasks are the simulator's tasks, one for one. On this machine the cores share memory, so:
 *   - activations live in one buffer per operator; every part writes its region and consumers
 *     read it in place (a forward transfer is only a dependency);
 *   - output gradients are summed per device: a backward part adds its input gradient into its
 *     device's buffer for that input, unless the region it produces also belongs to producer parts
 *     on other devices ("split" edge): then it goes to a staging buffer of the edge, and gradient
 *     transfers add the pieces into the receivers' buffers, while a producer part on the same
 *     device pulls its piece before it runs;
 *   - a backward part zeroes the gradient it consumed, so buffers are zero at the next step
 *     without a pass over memory;
 *   - parameters have one copy; gradients are summed per device; a sync adds the replicas'
 *     gradients into the first replica's block; replicas then update a share each.
 * Every buffer is allocated when the executor is made: a step allocates nothing. */
#include "planexec.h"

#include "scheduler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pull {
    int w, i, p; /* consumer w's input i, part p: its staging region to add in */
} pull;

typedef struct trace_ev {
    int task;
    int step;
    bool train; /* a training step (else an inference pass) */
    double start, end;
} trace_ev;

struct pml__px {
    pml_graph g;
    const pml_machine *m;
    pml_plan plan;
    pml_taskgraph *tg;
    int W, B, N;
    bool *wants;
    /* dense task table in program order */
    int T;
    const pml_task **task;
    int *worker, *npred, *succ_off, *succ;
    bool *fwd_subset;
    pml__dag all, fwd;
    pml__sched *sched;
    /* buffers */
    float *input;
    int32_t *labels;
    float **Y;       /* [node] */
    float **DY;      /* [node * W + dev] */
    float **STG;     /* [(node * PML_MAX_INPUTS + input) * W + dev] */
    bool **split;    /* [node * PML_MAX_INPUTS + input][part] */
    pull ***pulls;   /* [node][part]: list, npulls[node][part] entries */
    int **npulls;
    float **AUX;     /* [node][part] */
    float ***SCRATCH; /* [node][part]: batchnorm running stats of non-first replicas */
    float *params, *state;
    float **GRAD;    /* [dev] */
    float **WS;      /* [dev] */
    void **allocs;
    int nallocs, capallocs;
    /* the step */
    int n;
    bool training;
    uint64_t step, seed;
    bool check;
    pml_optim *optim;
    /* timing */
    double *tstart, *tend;
    bool profiling;
    double *prof_fwd, *prof_bwd, prof_update;
    trace_ev *trace;
    long ntrace, maxtrace;
    double trace_t0, run_t0;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- allocation */

static void *px_alloc(pml__px *x, size_t bytes)
{
    if (x->nallocs == x->capallocs) {
        int cap = x->capallocs ? 2 * x->capallocs : 64;
        void **a = realloc(x->allocs, (size_t)cap * sizeof *a);
        if (!a) return NULL;
        x->allocs = a;
        x->capallocs = cap;
    }
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) return NULL;
    memset(p, 0, bytes);
    x->allocs[x->nallocs++] = p;
    return p;
}

/* ---------------------------------------------------------------- parameter slices */

/* Calls fn on each contiguous range [a, b) of the parameter block that holds channel slice
 * [c0, c1) of node v (a linear weight's slice is one column block: a range per row). */
typedef void (*range_fn)(void *ud, size_t a, size_t b);

static void slice_ranges(const pml_graph *g, int v, int c0, int c1, range_fn fn, void *ud)
{
    const pml_node *n = &g->nodes[v];
    const int O = n->out.c;
    for (int j = 0; j < n->nparam; j++) {
        size_t off = n->param_off[j], size = n->param_size[j];
        if (n->op == PML_OP_LINEAR && j == 0 && !(c0 == 0 && c1 == O)) {
            size_t K = size / (size_t)O;
            for (size_t r = 0; r < K; r++) fn(ud, off + r * O + c0, off + r * O + c1);
        } else {
            size_t per = size / (size_t)O;
            fn(ud, off + per * c0, off + per * c1);
        }
    }
}

/* share `share` of `nshare` of the slice, by cumulative position */
typedef struct share_ctx {
    size_t lo, hi, pos; /* wanted [lo, hi) of the concatenated ranges; pos: cumulative */
    range_fn fn;
    void *ud;
} share_ctx;

static void share_range(void *ud, size_t a, size_t b)
{
    share_ctx *s = ud;
    size_t len = b - a, p0 = s->pos, p1 = s->pos + len;
    s->pos = p1;
    size_t x0 = p0 > s->lo ? p0 : s->lo, x1 = p1 < s->hi ? p1 : s->hi;
    if (x0 < x1) s->fn(s->ud, a + (x0 - p0), a + (x1 - p0));
}

static void count_range(void *ud, size_t a, size_t b) { *(size_t *)ud += b - a; }

static void slice_share(const pml_graph *g, int v, int c0, int c1, int share, int nshare,
                        range_fn fn, void *ud)
{
    size_t total = 0;
    slice_ranges(g, v, c0, c1, count_range, &total);
    share_ctx s = {total * (size_t)share / (size_t)nshare, total * (size_t)(share + 1) / (size_t)nshare,
                   0, fn, ud};
    slice_ranges(g, v, c0, c1, share_range, &s);
}

typedef struct sum_ctx {
    float *dst, *src;
} sum_ctx;

static void sum_and_clear(void *ud, size_t a, size_t b)
{
    sum_ctx *s = ud;
    for (size_t i = a; i < b; i++) {
        s->dst[i] += s->src[i];
        s->src[i] = 0.0f;
    }
}

typedef struct upd_ctx {
    const pml_optim *o;
    float *params, *grads;
} upd_ctx;

static void update_and_clear(void *ud, size_t a, size_t b)
{
    upd_ctx *u = ud;
    pml_optim_apply(u->o, u->params, u->grads, a, b);
    memset(u->grads + a, 0, (b - a) * sizeof(float));
}

/* ---------------------------------------------------------------- regions */

/* The contiguous blocks of region r of a (C,H,W) tensor: a block per (sample, channel) for a
 * band of rows, per sample for whole channels, one for whole samples (a (C,1,1) tensor's region
 * is then a few blocks, not one per feature). Block i starts at base + (i / per) sn + (i % per) sc.
 */
typedef struct rblocks {
    size_t base, len, sn, sc;
    int per, count;
} rblocks;

static inline rblocks rblocks_of(pml_shape s, pml_region r)
{
    const size_t W = (size_t)s.w, HW = (size_t)s.h * W, CHW = (size_t)s.c * HW;
    rblocks b = {0, 0, CHW, HW, 1, 0};
    if (pml_region_empty(r)) return b;
    const int nc = r.c1 - r.c0, nn = r.n1 - r.n0;
    if (r.h0 == 0 && r.h1 == s.h && nc == s.c) {
        b.base = (size_t)r.n0 * CHW, b.len = (size_t)nn * CHW, b.count = 1;
    } else if (r.h0 == 0 && r.h1 == s.h) {
        b.base = ((size_t)r.n0 * s.c + r.c0) * HW, b.len = (size_t)nc * HW, b.count = nn;
    } else {
        b.base = (((size_t)r.n0 * s.c + r.c0) * s.h + r.h0) * W;
        b.len = (size_t)(r.h1 - r.h0) * W, b.per = nc, b.count = nn * nc;
    }
    return b;
}

/* Runs the statement after it with (off, len) for each contiguous block of region r of a tensor
 * of shape s */
#define FOR_ROWS(r, s, off, len)                                                                   \
    for (rblocks b_ = rblocks_of(s, r); b_.count > 0; b_.count = 0)                                \
        for (int i_ = 0; i_ < b_.count; i_++)                                                      \
            for (size_t off = b_.base + (size_t)(i_ / b_.per) * b_.sn +                            \
                              (size_t)(i_ % b_.per) * b_.sc,                                       \
                        len = b_.len, once_ = 1;                                                   \
                 once_; once_ = 0)

static void region_zero(float *p, pml_shape s, pml_region r)
{
    FOR_ROWS(r, s, off, len) memset(p + off, 0, len * sizeof(float));
}

static void region_add(float *dst, const float *src, pml_shape s, pml_region r)
{
    FOR_ROWS(r, s, off, len)
    {
        float *d = dst + off;
        const float *x = src + off;
        for (size_t i = 0; i < len; i++) d[i] += x[i];
    }
}

static bool region_finite(const float *p, pml_shape s, pml_region r)
{
    float acc = 0;
    FOR_ROWS(r, s, off, len)
    for (size_t i = 0; i < len; i++) acc += p[off + i] * 0.0f;
    return acc == 0.0f;
}

/* ---------------------------------------------------------------- tasks */

static void task_name(const pml__px *x, const pml_task *t, char *buf, size_t cap)
{
    const char *kind = pml_task_kind_name((pml_task_kind)t->kind);
    const char *node = t->node >= 0 ? x->g.nodes[t->node].name : "?";
    if (t->kind == PML_TASK_XFER)
        snprintf(buf, cap, "%s %s[%d] -> %s[%d]%s", kind, node, t->part,
                 t->cnode >= 0 ? x->g.nodes[t->cnode].name : "?", t->cpart, t->grad ? " (grad)" : "");
    else if (t->kind == PML_TASK_SYNC)
        snprintf(buf, cap, "%s bucket %d (%s, ...)", kind, t->part, node);
    else
        snprintf(buf, cap, "%s %s[%d]", kind, node, t->part);
}

static void kctx(const pml__px *x, const pml_task *t, int w, pml_kctx *k)
{
    const int v = t->node;
    const pml_node *nd = &x->g.nodes[v];
    memset(k, 0, sizeof *k);
    k->node = nd;
    k->node_id = v;
    k->N = x->B;
    k->batch_total = x->n;
    k->r = t->r;
    k->nin = nd->nin;
    for (int i = 0; i < nd->nin; i++) {
        k->x[i] = x->Y[nd->in[i]];
        k->xs[i] = x->g.nodes[nd->in[i]].out;
    }
    k->y = x->Y[v];
    k->aux = x->AUX[v] ? x->AUX[v] + 0 : NULL;
    if (x->AUX[v]) {
        size_t per = nd->aux_per_sample * (size_t)x->B + nd->aux_fixed;
        k->aux = x->AUX[v] + per * (size_t)t->part;
    }
    for (int j = 0; j < nd->nparam; j++) k->w[j] = x->params + nd->param_off[j];
    for (int j = 0; j < nd->nstate; j++)
        k->state[j] = x->state + nd->state_off[j];
    k->labels = x->labels;
    k->training = x->training;
    k->seed = x->seed;
    k->step = x->step;
    k->ws = x->WS[w];
}

static pml_status run_task(void *ctx, int id, int w)
{
    pml__px *x = ctx;
    const pml_task *t = x->task[id];
    const int W = x->W;
    switch (t->kind) {
    case PML_TASK_FWD: {
        const pml_node *nd = &x->g.nodes[t->node];
        if (nd->op == PML_OP_INPUT) return PML_OK;
        pml_kctx k;
        kctx(x, t, w, &k);
        float *scratch = NULL;
        if (x->SCRATCH[t->node] && (scratch = x->SCRATCH[t->node][t->part]))
            for (int j = 0; j < nd->nstate; j++) k.state[j] = scratch + (size_t)j * nd->out.c;
        pml_ops[nd->op].fwd(&k);
        if (x->check && !region_finite(x->Y[t->node], nd->out, t->r)) {
            char name[256];
            task_name(x, t, name, sizeof name);
            return pml_fail(PML_ENUMERIC, "task '%s' (device %d): output is not finite", name, w);
        }
        return PML_OK;
    }
    case PML_TASK_BWD: {
        const int v = t->node, dev = t->dev;
        const pml_node *nd = &x->g.nodes[v];
        pml_kctx k;
        kctx(x, t, w, &k);
        float *scratch = NULL;
        if (x->SCRATCH[v] && (scratch = x->SCRATCH[v][t->part]))
            for (int j = 0; j < nd->nstate; j++) k.state[j] = scratch + (size_t)j * nd->out.c;
        float *dy = x->DY[(size_t)v * W + dev];
        /* pieces of this gradient that consumers on this device staged */
        for (int q = 0; dy && q < x->npulls[v][t->part]; q++) {
            const pull *pl = &x->pulls[v][t->part][q];
            const float *stg = x->STG[((size_t)pl->w * PML_MAX_INPUTS + pl->i) * W + dev];
            pml_region need = pml_node_in_region(&x->g, pl->w, pl->i,
                                                 pml_plan_part_region(&x->g, pl->w,
                                                                      &x->plan.cfg[pl->w], x->B, pl->p));
            pml_region ov = pml_region_meet(need, t->r);
            if (!pml_region_empty(ov)) region_add(dy, stg, nd->out, ov);
        }
        k.dy = dy;
        for (int i = 0; i < nd->nin; i++) {
            int u = nd->in[i];
            if (!x->wants[u]) continue;
            if (x->split[v * PML_MAX_INPUTS + i][t->part]) {
                float *stg = x->STG[((size_t)v * PML_MAX_INPUTS + i) * W + dev];
                pml_region need = pml_node_in_region(&x->g, v, i, t->r);
                region_zero(stg, x->g.nodes[u].out, need);
                k.dx[i] = stg;
            } else {
                k.dx[i] = x->DY[(size_t)u * W + dev];
            }
        }
        for (int j = 0; j < nd->nparam; j++) k.dw[j] = x->GRAD[dev] + nd->param_off[j];
        pml_ops[nd->op].bwd(&k);
        if (dy) region_zero(dy, nd->out, t->r); /* consumed: zero for the next step */
        return PML_OK;
    }
    case PML_TASK_XFER: {
        if (!t->grad) return PML_OK; /* shared memory: the consumer reads the producer's buffer */
        if (t->node == t->cnode) {   /* parameter server: a replica's parameter gradients */
            const pml_opcfg *c = &x->plan.cfg[t->node];
            pml_region r = pml_plan_part_region(&x->g, t->node, c, x->B, t->part);
            sum_ctx s = {x->GRAD[t->dst], x->GRAD[t->dev]};
            slice_ranges(&x->g, t->node, r.c0, r.c1, sum_and_clear, &s);
            return PML_OK;
        }
        const float *stg = x->STG[((size_t)t->cnode * PML_MAX_INPUTS + t->input) * W + t->dev];
        float *dy = x->DY[(size_t)t->node * W + t->dst];
        region_add(dy, stg, x->g.nodes[t->node].out, t->r);
        return PML_OK;
    }
    case PML_TASK_SYNC: {
        const int g0 = t->group[0];
        for (int k = 0; k < t->nmembers; k++) {
            int v = t->members[2 * k], pc = t->members[2 * k + 1];
            const pml_opcfg *c = &x->plan.cfg[v];
            int c0 = (int)((long)x->g.nodes[v].out.c * pc / c->deg[1]);
            int c1 = (int)((long)x->g.nodes[v].out.c * (pc + 1) / c->deg[1]);
            for (int d = 1; d < t->ngroup; d++) {
                sum_ctx s = {x->GRAD[g0], x->GRAD[t->group[d]]};
                slice_ranges(&x->g, v, c0, c1, sum_and_clear, &s);
            }
        }
        return PML_OK;
    }
    case PML_TASK_UPDATE: {
        upd_ctx u = {x->optim, x->params, x->GRAD[t->gdev]};
        slice_share(&x->g, t->node, t->r.c0, t->r.c1, t->share, t->nshare, update_and_clear, &u);
        return PML_OK;
    }
    default:
        return pml_fail(PML_EINVAL, "task %d has an unknown kind %d", id, t->kind);
    }
}

/* ---------------------------------------------------------------- set-up */

pml_status pml__px_create(const pml_graph *g, const pml_machine *m, const pml_plan *p,
                          const pml_exec_opts *o, pml__px **out)
{
    *out = NULL;
    pml_status st;
    for (int c = 0; c < m->ncompute; c++)
        if (!m->dev[m->compute[c]].present || m->dev[m->compute[c]].kind != PML_DEV_CPU)
            return pml_fail(PML_EUNSUPPORTED,
                            "machine '%s': device %d (%s) is not a core of this machine; plans run "
                            "on this machine only",
                            m->name, c, m->dev[m->compute[c]].name);
    if (o->batch != p->batch)
        return pml_fail(PML_EINVAL, "the plan is for batch %d, not %d", p->batch, o->batch);
    pml__px *x = calloc(1, sizeof *x);
    if (!x) return pml_fail(PML_ENOMEM, "out of memory");
    if ((st = pml_graph_copy(&x->g, g)) != PML_OK) {
        free(x);
        return st;
    }
    x->m = m;
    x->W = m->ncompute;
    x->B = p->batch;
    x->N = g->nnodes;
    x->seed = o->seed;
    x->check = o->check_numerics;
    if ((st = pml_plan_copy(&x->plan, p)) != PML_OK) goto fail;
    if ((st = pml_taskgraph_build(&x->g, m, &x->plan, NULL, &x->tg)) != PML_OK) goto fail;
    const int N = x->N, W = x->W, B = x->B;
    pml_graph *G = &x->g;

    /* the dense task table, in program order */
    const int *order = pml_taskgraph_order(x->tg, &x->T);
    if (!order) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto fail;
    }
    const int T = x->T;
    int *dense = malloc((size_t)pml_taskgraph_size(x->tg) * sizeof *dense);
    x->task = calloc((size_t)T, sizeof *x->task);
    x->worker = calloc((size_t)T, sizeof *x->worker);
    x->npred = calloc((size_t)T, sizeof *x->npred);
    x->succ_off = calloc((size_t)T + 1, sizeof *x->succ_off);
    x->fwd_subset = calloc((size_t)T, sizeof *x->fwd_subset);
    x->wants = calloc((size_t)N, sizeof *x->wants);
    if (!dense || !x->task || !x->worker || !x->npred || !x->succ_off || !x->fwd_subset ||
        !x->wants) {
        free(dense);
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto fail;
    }
    int edges = 0;
    for (int i = 0; i < T; i++) {
        dense[order[i]] = i;
        const pml_task *t = pml_taskgraph_task(x->tg, order[i]);
        x->task[i] = t;
        edges += t->nsucc;
    }
    x->succ = malloc((size_t)(edges ? edges : 1) * sizeof *x->succ);
    if (!x->succ) {
        free(dense);
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto fail;
    }
    edges = 0;
    for (int i = 0; i < T; i++) {
        const pml_task *t = x->task[i];
        x->succ_off[i] = edges;
        for (int k = 0; k < t->nsucc; k++) x->succ[edges++] = dense[t->succ[k]];
        x->npred[i] = t->npred;
        /* who runs it: compute tasks on their device, a gradient sum on the receiver, a sync on
         * the first replica's core, a bare dependency on the producer's */
        int wk = t->dev;
        if (t->kind == PML_TASK_XFER) wk = t->grad ? t->dst : t->dev;
        if (t->kind == PML_TASK_SYNC) wk = t->group[0];
        x->worker[i] = wk;
        x->fwd_subset[i] = t->kind == PML_TASK_FWD || (t->kind == PML_TASK_XFER && !t->grad);
    }
    x->succ_off[T] = edges;
    free(dense);
    x->all = (pml__dag){T, x->worker, x->npred, x->succ_off, x->succ, NULL};
    x->fwd = (pml__dag){T, x->worker, x->npred, x->succ_off, x->succ, x->fwd_subset};

    /* which outputs need gradients (as the builder decides) */
    for (int k = 0; k < N; k++) {
        int v = G->order[k];
        bool w = G->nodes[v].nparam > 0;
        for (int i = 0; i < G->nodes[v].nin; i++) w |= x->wants[G->nodes[v].in[i]];
        x->wants[v] = w && v != G->loss;
    }

    /* buffers */
    x->Y = calloc((size_t)N, sizeof *x->Y);
    x->DY = calloc((size_t)N * W, sizeof *x->DY);
    x->STG = calloc((size_t)N * PML_MAX_INPUTS * W, sizeof *x->STG);
    x->split = calloc((size_t)N * PML_MAX_INPUTS, sizeof *x->split);
    x->pulls = calloc((size_t)N, sizeof *x->pulls);
    x->npulls = calloc((size_t)N, sizeof *x->npulls);
    x->AUX = calloc((size_t)N, sizeof *x->AUX);
    x->SCRATCH = calloc((size_t)N, sizeof *x->SCRATCH);
    x->GRAD = calloc((size_t)W, sizeof *x->GRAD);
    x->WS = calloc((size_t)W, sizeof *x->WS);
    x->tstart = calloc((size_t)T, sizeof *x->tstart);
    x->tend = calloc((size_t)T, sizeof *x->tend);
    x->prof_fwd = calloc((size_t)N, sizeof *x->prof_fwd);
    x->prof_bwd = calloc((size_t)N, sizeof *x->prof_bwd);
    if (!x->Y || !x->DY || !x->STG || !x->split || !x->pulls || !x->npulls || !x->AUX ||
        !x->SCRATCH || !x->GRAD || !x->WS || !x->tstart || !x->tend || !x->prof_fwd ||
        !x->prof_bwd)
        goto nomem;
    x->labels = px_alloc(x, (size_t)B * sizeof *x->labels);
    x->params = px_alloc(x, (G->nparams + 1) * sizeof(float));
    x->state = px_alloc(x, (G->nstate + 1) * sizeof(float));
    if (!x->labels || !x->params || !x->state) goto nomem;
    for (int d = 0; d < W; d++)
        if (!(x->GRAD[d] = px_alloc(x, (G->nparams + 1) * sizeof(float)))) goto nomem;
    pml_params_init(G, x->params, x->state, o->seed);
    size_t wsmax[256] = {0};
    for (int v = 0; v < N; v++) {
        const pml_node *nd = &G->nodes[v];
        const pml_opcfg *c = &x->plan.cfg[v];
        const int P = pml_opcfg_parts(c);
        const size_t full = (size_t)B * pml_shape_size(nd->out);
        if (nd->op == PML_OP_INPUT) {
            if (!(x->Y[v] = x->input = px_alloc(x, full * sizeof(float)))) goto nomem;
        } else if (!(x->Y[v] = px_alloc(x, full * sizeof(float)))) {
            goto nomem;
        }
        size_t aux = nd->aux_per_sample * (size_t)B + nd->aux_fixed;
        if (aux && !(x->AUX[v] = px_alloc(x, aux * P * sizeof(float)))) goto nomem;
        /* batchnorm split by samples or rows: replicas other than the first keep their running
         * statistics aside (the first replica's are the model's) */
        if (nd->nstate && (c->deg[0] > 1 || c->deg[2] > 1)) {
            if (!(x->SCRATCH[v] = px_alloc(x, (size_t)P * sizeof(float *)))) goto nomem;
            for (int q = 0; q < P; q++) {
                pml_region r = pml_plan_part_region(G, v, c, B, q);
                if (r.n0 == 0 && r.h0 == 0) continue;
                float *s = px_alloc(x, (size_t)nd->nstate * nd->out.c * sizeof(float));
                if (!s) goto nomem;
                for (int j = 0; j < nd->nstate; j++)
                    for (int e = 0; e < nd->out.c; e++)
                        s[(size_t)j * nd->out.c + e] = nd->state_init[j] == PML_INIT_ONES ? 1.0f : 0.0f;
                x->SCRATCH[v][q] = s;
            }
        }
        if (!(x->npulls[v] = px_alloc(x, (size_t)P * sizeof(int)))) goto nomem;
        if (!(x->pulls[v] = px_alloc(x, (size_t)P * sizeof(pull *)))) goto nomem;
        pml_shape in[PML_MAX_INPUTS];
        for (int i = 0; i < nd->nin; i++) in[i] = G->nodes[nd->in[i]].out;
        for (int q = 0; q < P; q++) {
            int d = c->dev[q];
            size_t ws = pml_ops[nd->op].ws_floats(nd, in, nd->nin, pml_plan_part_region(G, v, c, B, q));
            if (d < 256 && ws > wsmax[d]) wsmax[d] = ws;
        }
    }
    for (int d = 0; d < W; d++)
        if (!(x->WS[d] = px_alloc(x, (wsmax[d < 256 ? d : 0] + 16) * sizeof(float)))) goto nomem;
    /* gradient buffers: per device of a part of u or of a consumer part; staging for split edges */
    for (int v = 0; v < N; v++) {
        const pml_node *nd = &G->nodes[v];
        const pml_opcfg *cv = &x->plan.cfg[v];
        const int Pv = pml_opcfg_parts(cv);
        if (x->wants[v])
            for (int q = 0; q < Pv; q++) {
                float **b = &x->DY[(size_t)v * W + cv->dev[q]];
                if (!*b && !(*b = px_alloc(x, (size_t)B * pml_shape_size(nd->out) * sizeof(float))))
                    goto nomem;
            }
        for (int i = 0; i < nd->nin; i++) {
            const int u = nd->in[i];
            const pml_opcfg *cu = &x->plan.cfg[u];
            bool *sp = px_alloc(x, (size_t)Pv * sizeof *sp);
            if (!sp) goto nomem;
            x->split[v * PML_MAX_INPUTS + i] = sp;
            if (!x->wants[u]) continue;
            const size_t usize = (size_t)B * pml_shape_size(G->nodes[u].out);
            for (int pp = 0; pp < Pv; pp++) {
                pml_region need = pml_node_in_region(G, v, i, pml_plan_part_region(G, v, cv, B, pp));
                if (pml_region_empty(need)) continue;
                for (int q = 0; q < pml_opcfg_parts(cu); q++)
                    if (cu->dev[q] != cv->dev[pp] &&
                        !pml_region_empty(pml_region_meet(need, pml_plan_part_region(G, u, cu, B, q))))
                        sp[pp] = true;
                int d = cv->dev[pp];
                float **b = sp[pp] ? &x->STG[((size_t)v * PML_MAX_INPUTS + i) * W + d]
                                   : &x->DY[(size_t)u * W + d];
                if (!*b && !(*b = px_alloc(x, usize * sizeof(float)))) goto nomem;
                if (!sp[pp]) continue;
                /* producer parts on this device pull their piece of the staging buffer */
                for (int q = 0; q < pml_opcfg_parts(cu); q++) {
                    if (cu->dev[q] != d ||
                        pml_region_empty(pml_region_meet(need, pml_plan_part_region(G, u, cu, B, q))))
                        continue;
                    pull *pl = realloc(x->pulls[u][q], (size_t)(x->npulls[u][q] + 1) * sizeof *pl);
                    if (!pl) goto nomem;
                    x->pulls[u][q] = pl;
                    pl[x->npulls[u][q]++] = (pull){v, i, pp};
                    float **own = &x->DY[(size_t)u * W + d];
                    if (!*own && !(*own = px_alloc(x, usize * sizeof(float)))) goto nomem;
                }
            }
        }
    }
    int cores[256];
    for (int d = 0; d < W && d < 256; d++) cores[d] = m->dev[m->compute[d]].first_core;
    if ((st = pml_blas_room(W)) != PML_OK) goto fail;
    if ((st = pml__sched_create(W, cores, &x->sched)) != PML_OK) goto fail;
    *out = x;
    return PML_OK;
nomem:
    st = pml_fail(PML_ENOMEM, "out of memory: the plan's buffers do not fit");
fail:
    pml__px_destroy(x);
    return st;
}

void pml__px_destroy(pml__px *x)
{
    if (!x) return;
    pml__sched_destroy(x->sched);
    if (x->pulls)
        for (int v = 0; v < x->N; v++)
            if (x->pulls[v] && x->npulls && x->npulls[v]) {
                const int P = pml_opcfg_parts(&x->plan.cfg[v]);
                for (int q = 0; q < P; q++)
                    if (x->npulls[v][q]) free(x->pulls[v][q]);
            }
    for (int i = 0; i < x->nallocs; i++) free(x->allocs[i]);
    free(x->allocs);
    pml_taskgraph_free(x->tg);
    pml_plan_free(&x->plan);
    pml_graph_free(&x->g);
    free(x->task);
    free(x->worker);
    free(x->npred);
    free(x->succ_off);
    free(x->succ);
    free(x->fwd_subset);
    free(x->wants);
    free(x->Y);
    free(x->DY);
    free(x->STG);
    free(x->split);
    free(x->pulls);
    free(x->npulls);
    free(x->AUX);
    free(x->SCRATCH);
    free(x->GRAD);
    free(x->WS);
    free(x->tstart);
    free(x->tend);
    free(x->prof_fwd);
    free(x->prof_bwd);
    free(x->trace);
    free(x);
}

float *pml__px_input(pml__px *x) { return x->input; }
int32_t *pml__px_labels(pml__px *x) { return x->labels; }
float *pml__px_params(pml__px *x) { return x->params; }
float *pml__px_grads(pml__px *x) { return x->GRAD[0]; }
float *pml__px_state(pml__px *x) { return x->state; }
const float *pml__px_output(pml__px *x, int id)
{
    return id >= 0 && id < x->N ? x->Y[id] : NULL;
}

/* ---------------------------------------------------------------- steps */

pml_status pml__px_step(pml__px *x, int n, pml_optim *o, pml_step_result *res)
{
    if (n < 1 || n > x->B)
        return pml_fail(PML_EINVAL, "a step of %d samples does not fit the plan's batch %d", n,
                        x->B);
    const pml_graph *g = &x->g;
    pml_status lst = pml__check_labels(g, x->labels, n);
    if (lst != PML_OK) return lst;
    for (int i = n; i < x->B; i++) x->labels[i] = -1; /* padding: no loss, no gradient */
    x->n = n;
    x->training = o != NULL;
    x->optim = o;
    if (o) {
        if (o->n != g->nparams)
            return pml_fail(PML_EINVAL, "optimizer state is for %zu parameters, the graph has %zu",
                            o->n, g->nparams);
        pml_optim_begin_step(o);
    }
    const bool timed = x->profiling || x->trace;
    double t0 = now_s();
    pml_status st = pml__sched_run(x->sched, o ? &x->all : &x->fwd, run_task, x,
                                   timed ? x->tstart : NULL, timed ? x->tend : NULL);
    if (timed) {
        for (int i = 0; i < x->T; i++) {
            if (x->tstart[i] < 0) continue;
            const pml_task *t = x->task[i];
            double d = x->tend[i] - x->tstart[i];
            if (x->profiling) {
                if (t->kind == PML_TASK_FWD) x->prof_fwd[t->node] += d;
                else if (t->kind == PML_TASK_BWD) x->prof_bwd[t->node] += d;
                else if (t->kind == PML_TASK_UPDATE || t->kind == PML_TASK_SYNC) x->prof_update += d;
            }
            if (x->trace && x->ntrace < x->maxtrace)
                x->trace[x->ntrace++] = (trace_ev){i, (int)x->step, o != NULL,
                                                   t0 - x->trace_t0 + x->tstart[i],
                                                   t0 - x->trace_t0 + x->tend[i]};
        }
    }
    if (st != PML_OK) return st;
    if (o) x->step++;
    if (res) return pml__step_result(g, x->Y[g->loss], x->Y[g->logits], x->labels, n, res);
    return PML_OK;
}

void pml__px_set_profiling(pml__px *x, bool on)
{
    if (on && !x->profiling) {
        memset(x->prof_fwd, 0, (size_t)x->N * sizeof *x->prof_fwd);
        memset(x->prof_bwd, 0, (size_t)x->N * sizeof *x->prof_bwd);
        x->prof_update = 0;
    }
    x->profiling = on;
}

void pml__px_profile(const pml__px *x, double *fwd, double *bwd, double *update)
{
    for (int v = 0; v < x->N; v++) {
        if (fwd) fwd[v] = x->prof_fwd[v];
        if (bwd) bwd[v] = x->prof_bwd[v];
    }
    if (update) *update = x->prof_update;
}

/* ---------------------------------------------------------------- Chrome trace */

pml_status pml__px_trace_begin(pml__px *x, long max_events)
{
    free(x->trace);
    x->trace = malloc((size_t)(max_events > 0 ? max_events : 1) * sizeof *x->trace);
    if (!x->trace) return pml_fail(PML_ENOMEM, "out of memory for a trace of %ld tasks", max_events);
    x->maxtrace = max_events;
    x->ntrace = 0;
    x->trace_t0 = now_s();
    return PML_OK;
}

pml_status pml__px_trace_write(pml__px *x, const char *path)
{
    if (!x->trace) return pml_fail(PML_EINVAL, "no trace was recorded");
    pml_afile af;
    pml_status st = pml_afile_open(&af, path);
    if (st != PML_OK) return st;
    FILE *f = af.f;
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"model\":");
    pml_json_str(f, x->g.name);
    fprintf(f, ",\"machine\":");
    pml_json_str(f, x->m->name);
    fprintf(f, ",\"fingerprint\":\"%s\",\"batch\":%d,\"strategy\":", x->m->fingerprint, x->B);
    pml_json_str(f, x->plan.strategy);
    fprintf(f, ",\"devices\":%d,\"parameters\":%zu},\n\"traceEvents\":[\n", x->W,
            pml_graph_param_count(&x->g));
    for (int d = 0; d < x->W; d++) {
        fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":0,\"tid\":%d,\"args\":{\"name\":", d);
        pml_json_str(f, x->m->dev[x->m->compute[d]].name);
        fprintf(f, "}},\n");
    }
    for (long e = 0; e < x->ntrace; e++) {
        const trace_ev *ev = &x->trace[e];
        const pml_task *t = x->task[ev->task];
        char name[256];
        task_name(x, t, name, sizeof name);
        fprintf(f, "{\"name\":");
        pml_json_str(f, name);
        fprintf(f, ",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":0,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,"
                   "\"args\":{\"step\":%d,\"phase\":\"%s\",\"kind\":\"%s\",\"node\":",
                pml_task_kind_name((pml_task_kind)t->kind), x->worker[ev->task], ev->start * 1e6,
                (ev->end - ev->start) * 1e6, ev->step, ev->train ? "train" : "eval",
                pml_task_kind_name((pml_task_kind)t->kind));
        pml_json_str(f, t->node >= 0 ? x->g.nodes[t->node].name : "");
        fprintf(f, ",\"part\":%d,\"key\":\"%016llx\"}}%s\n", t->part,
                (unsigned long long)t->key, e + 1 < x->ntrace ? "," : "");
    }
    fprintf(f, "]}\n");
    return pml_afile_commit(&af);
}
