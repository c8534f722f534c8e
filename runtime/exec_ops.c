/* pml — the per-operator executor: runs a graph forward and backward in topological order.
 *
 * threads = 1 is the reference path: one thread, one kernel call per node over the full region
 * (with opts->reference, the naive reference kernels: the oracle later plan execution is checked
 * against). threads > 1 splits each node's work into one part per thread along a dimension the op
 * declares splittable (sample, parameter or attribute), in fork-join runs of the pinned workers.
 * Gradients that a split makes partial go to per-thread private buffers and are summed: input
 * gradients right after the node, parameter gradients once at the end of the backward pass.
 * Every buffer a step needs is allocated here, once. */
#include "exec.h"

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

typedef struct ops_exec {
    pml_exec e; /* first: a pml_exec * is an ops_exec * */
    int T;      /* threads */
    node_rt *rt;
    int *bwd_order; /* nodes whose backward runs, in backward order */
    int nbwd;
    float *grad_part[64]; /* per-thread parameter-gradient partials (grad_part[0] = grads) */
    float *dx_part[64];   /* per-thread input-gradient partials */
    float *workspace[64]; /* per-thread kernel workspace */
    void *arena;          /* every buffer above, one allocation */
    /* the job running */
    int cur, cur_pos;
    pml_optim *optim;
} ops_exec;

#define ALIGN_FLOATS 16

/* ---------------------------------------------------------------- split choice */

static double node_flops(const ops_exec *x, int v) { return pml_node_flops(&x->e.g, v); }

/* Chooses how node v's work is split for n samples: one part when the work is too small to pay
 * for a fork-join (a few microseconds), otherwise a split whose extra reduction is cheapest. */
static void choose_split(ops_exec *x, int v, int n)
{
    node_rt *r = &x->rt[v];
    const pml_node *nd = &x->e.g.nodes[v];
    const int T = x->T;
    r->split = 0;
    r->parts = 1;
    if (T == 1 || nd->op == PML_OP_INPUT) return;
    const unsigned ok = pml_ops[nd->op].splits;
    const pml_shape o = nd->out;
    const unsigned force = x->e.o.force_split;
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
    const double work = node_flops(x, v) * n * (x->e.training ? 3.0 : 1.0);
    const double bytes = 8.0 * (double)r->size * n;
    if (work < 4e5 && bytes < 2.5e5) return;
    if (nd->op == PML_OP_LINEAR) {
        const pml_shape in = x->e.g.nodes[nd->in[0]].out;
        bool dx = x->rt[nd->in[0]].wants;
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

static pml_region part_region(const ops_exec *x, int v, int part, int n)
{
    const node_rt *r = &x->rt[v];
    pml_region g = pml_region_full(&x->e.g.nodes[v], n);
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

static void fill_ctx(const ops_exec *x, int v, pml_kctx *k)
{
    const pml_node *nd = &x->e.g.nodes[v];
    const node_rt *r = &x->rt[v];
    memset(k, 0, sizeof *k);
    k->node = nd;
    k->node_id = v;
    k->N = x->e.n;
    k->batch_total = x->e.n;
    k->nin = nd->nin;
    for (int i = 0; i < nd->nin; i++) {
        k->x[i] = x->e.out[nd->in[i]]; /* the data input: pml_exec_use_input's */
        k->xs[i] = x->e.g.nodes[nd->in[i]].out;
    }
    k->y = x->e.out[v];
    k->aux = r->aux;
    for (int j = 0; j < nd->nparam; j++) k->w[j] = x->e.params + nd->param_off[j];
    for (int j = 0; j < nd->nstate; j++) k->state[j] = x->e.state + nd->state_off[j];
    k->labels = x->e.labels;
    k->training = x->e.training;
    k->seed = x->e.o.seed;
    k->step = x->e.step;
    k->sample0 = x->e.sample0;
}

static inline pml_kernel_fn fwd_fn(const ops_exec *x, pml_op_type op)
{
    return x->e.o.reference ? pml_ops[op].fwd_ref : pml_ops[op].fwd;
}
static inline pml_kernel_fn bwd_fn(const ops_exec *x, pml_op_type op)
{
    return x->e.o.reference ? pml_ops[op].bwd_ref : pml_ops[op].bwd;
}

/* zero this thread's slice of [p, p + len) */
static void zero_slice(float *p, size_t len, int tid, int T)
{
    size_t a = (size_t)pml__part_start((long)len, T, tid), b = (size_t)pml__part_start((long)len, T, tid + 1);
    if (b > a) memset(p + a, 0, (b - a) * sizeof *p);
}

/* Zeroes (in slices across threads) the output gradients due to be zeroed at backward position
 * pos: the inputs of the node that runs at pos + 1 whose first consumer that is. */
static void zero_due(ops_exec *x, int pos, int tid, int T)
{
    if (pos + 1 >= x->nbwd) return;
    const pml_node *nd = &x->e.g.nodes[x->bwd_order[pos + 1]];
    for (int i = 0; i < nd->nin; i++) {
        node_rt *u = &x->rt[nd->in[i]];
        if (u->wants && u->zero_before == pos) zero_slice(u->dy, (size_t)x->e.n * u->size, tid, T);
    }
}

/* ---------------------------------------------------------------- jobs */

static void fwd_job(void *ctx, int tid, int T)
{
    ops_exec *x = ctx;
    const int v = x->cur;
    if (tid >= x->rt[v].parts) return;
    pml_kctx k;
    fill_ctx(x, v, &k);
    k.r = part_region(x, v, tid, x->e.n);
    k.ws = x->workspace[tid];
    fwd_fn(x, x->e.g.nodes[v].op)(&k);
}

static void bwd_job(void *ctx, int tid, int T)
{
    ops_exec *x = ctx;
    const int v = x->cur;
    node_rt *r = &x->rt[v];
    const pml_node *nd = &x->e.g.nodes[v];
    if (tid < r->parts) {
        pml_kctx k;
        fill_ctx(x, v, &k);
        k.r = part_region(x, v, tid, x->e.n);
        k.ws = x->workspace[tid];
        k.dy = r->dy;
        const bool split = r->parts > 1;
        const bool dxp = split && (pml_ops[nd->op].dx_partial & r->split);
        const bool dwp = split && (pml_ops[nd->op].dw_partial & r->split);
        size_t off = 0; /* the inputs' partials one after another */
        for (int i = 0; i < nd->nin; i++) {
            node_rt *u = &x->rt[nd->in[i]];
            const size_t len = (size_t)x->e.n * u->size;
            if (u->wants && dxp && tid > 0) {
                memset(x->dx_part[tid] + off, 0, len * sizeof(float));
                k.dx[i] = x->dx_part[tid] + off;
            } else if (u->wants) {
                k.dx[i] = u->dy;
            }
            off += len;
        }
        for (int j = 0; j < nd->nparam; j++) {
            if (dwp && tid > 0) {
                float *p = x->grad_part[tid] + nd->param_off[j];
                memset(p, 0, nd->param_size[j] * sizeof(float));
                k.dw[j] = p;
            } else {
                k.dw[j] = x->e.grads + nd->param_off[j];
            }
        }
        bwd_fn(x, nd->op)(&k);
    }
    zero_due(x, x->cur_pos, tid, T);
}

/* shared input gradients += private partials of parts 1.. (each input's, one after another) */
static void dx_reduce_job(void *ctx, int tid, int T)
{
    ops_exec *x = ctx;
    const int v = x->cur;
    const pml_node *nd = &x->e.g.nodes[v];
    size_t off = 0;
    for (int i = 0; i < nd->nin; i++) {
        node_rt *u = &x->rt[nd->in[i]];
        const size_t len = (size_t)x->e.n * u->size;
        const size_t a = (size_t)pml__part_start((long)len, T, tid);
        const size_t b = (size_t)pml__part_start((long)len, T, tid + 1);
        for (int t = 1; u->wants && t < x->rt[v].parts; t++)
            cblas_saxpy((int)(b - a), 1.0f, x->dx_part[t] + off + a, 1, u->dy + a, 1);
        off += len;
    }
}

/* does any input of node v want its gradient? */
static bool any_wants(const ops_exec *x, const pml_node *nd)
{
    bool w = false;
    for (int i = 0; i < nd->nin; i++) w |= x->rt[nd->in[i]].wants;
    return w;
}

static void bwd_start_job(void *ctx, int tid, int T)
{
    ops_exec *x = ctx;
    zero_slice(x->e.grads, x->e.g.nparams, tid, T);
    zero_due(x, -1, tid, T);
}

/* grads += private parameter partials, for the nodes that wrote them; sliced by threads */
static void dw_reduce_job(void *ctx, int tid, int T)
{
    ops_exec *x = ctx;
    for (int v = 0; v < x->e.g.nnodes; v++) {
        const node_rt *r = &x->rt[v];
        if (!r->dw_private) continue;
        const pml_node *nd = &x->e.g.nodes[v];
        for (int j = 0; j < nd->nparam; j++) {
            size_t len = nd->param_size[j], off = nd->param_off[j];
            size_t a = (size_t)pml__part_start((long)len, T, tid), b = (size_t)pml__part_start((long)len, T, tid + 1);
            for (int t = 1; t < r->parts; t++)
                cblas_saxpy((int)(b - a), 1.0f, x->grad_part[t] + off + a, 1, x->e.grads + off + a, 1);
        }
    }
}

static void update_job(void *ctx, int tid, int T)
{
    ops_exec *x = ctx;
    size_t n = x->e.g.nparams;
    size_t a = (size_t)pml__part_start((long)n, T, tid), b = (size_t)pml__part_start((long)n, T, tid + 1);
    /* keep slices on cache-line boundaries */
    a &= ~(size_t)(ALIGN_FLOATS - 1);
    if (tid + 1 < T) b &= ~(size_t)(ALIGN_FLOATS - 1);
    pml_optim_apply(x->optim, x->e.params, x->e.grads, a, b);
}


/* ---------------------------------------------------------------- passes */

static pml_status ops_forward(pml_exec *e, int n, bool training)
{
    ops_exec *x = (ops_exec *)e;
    const pml_graph *g = &e->g;
    for (int k = 0; k < g->nnodes; k++) {
        int v = g->order[k];
        if (g->nodes[v].op == PML_OP_INPUT) continue; /* filled by the caller */
        choose_split(x, v, n);
        x->cur = v;
        double t0 = e->profiling ? pml_now() : 0;
        pml__workers_fork(e->workers, fwd_job, x);
        if (e->profiling) e->prof_fwd[v] += pml_now() - t0;
        if (e->o.check_numerics && !pml__all_finite(x->rt[v].y, (size_t)n * x->rt[v].size))
            return pml_fail(PML_ENUMERIC, "node '%s' (%s): output is not finite",
                            g->nodes[v].name, pml_op_name(g->nodes[v].op));
    }
    (void)training;
    return PML_OK;
}

static pml_status ops_backward(pml_exec *e, int n)
{
    ops_exec *x = (ops_exec *)e;
    (void)n;
    for (int v = 0; v < e->g.nnodes; v++) x->rt[v].dw_private = false;
    pml__workers_fork(e->workers, bwd_start_job, x);
    bool any_private = false;
    for (int pos = 0; pos < x->nbwd; pos++) {
        int v = x->bwd_order[pos];
        node_rt *r = &x->rt[v];
        const pml_node *nd = &e->g.nodes[v];
        x->cur = v;
        x->cur_pos = pos;
        double t0 = e->profiling ? pml_now() : 0;
        pml__workers_fork(e->workers, bwd_job, x);
        if (r->parts > 1 && (pml_ops[nd->op].dx_partial & r->split) && any_wants(x, nd))
            pml__workers_fork(e->workers, dx_reduce_job, x);
        if (e->profiling) e->prof_bwd[v] += pml_now() - t0;
        if (r->parts > 1 && (pml_ops[nd->op].dw_partial & r->split) && nd->nparam > 0) {
            r->dw_private = true;
            any_private = true;
        } else if (nd->nparam > 0 && e->grad_ready) {
            e->grad_ready(e->grad_ready_ctx, v);
        }
    }
    if (any_private) pml__workers_fork(e->workers, dw_reduce_job, x);
    if (any_private && e->grad_ready)
        for (int pos = 0; pos < x->nbwd; pos++)
            if (x->rt[x->bwd_order[pos]].dw_private)
                e->grad_ready(e->grad_ready_ctx, x->bwd_order[pos]);
    if (e->o.check_numerics)
        for (int v = 0; v < e->g.nnodes; v++) {
            const pml_node *nd = &e->g.nodes[v];
            for (int j = 0; j < nd->nparam; j++)
                if (!pml__all_finite(e->grads + nd->param_off[j], nd->param_size[j]))
                    return pml_fail(PML_ENUMERIC, "node '%s' (%s): gradient is not finite",
                                    nd->name, pml_op_name(nd->op));
        }
    return PML_OK;
}

static pml_status ops_update(pml_exec *e, pml_optim *o)
{
    ops_exec *x = (ops_exec *)e;
    x->optim = o;
    pml__workers_fork(e->workers, update_job, x);
    return PML_OK;
}

/* ---------------------------------------------------------------- create / destroy */

static void ops_destroy(pml_exec *e)
{
    ops_exec *x = (ops_exec *)e;
    pml__exec_fini(e);
    free(x->arena);
    free(x->rt);
    free(x->bwd_order);
    free(x);
}

static const pml__exec_impl ops_impl = {
    .name = "per-operator",
    .destroy = ops_destroy,
    .forward = ops_forward,
    .backward = ops_backward,
    .update = ops_update,
};

static size_t up(size_t n) { return (n + ALIGN_FLOATS - 1) & ~(size_t)(ALIGN_FLOATS - 1); }

pml_status pml__exec_ops_create(const pml_graph *g, const pml_exec_opts *opts, pml_exec **out)
{
    ops_exec *x = calloc(1, sizeof *x);
    if (!x) return pml_fail(PML_ENOMEM, "out of memory");
    pml_exec *e = &x->e;
    pml_status st = pml__exec_init(e, &ops_impl, g, opts);
    if (st != PML_OK) {
        ops_destroy(e);
        return st;
    }
    x->T = opts->reference ? 1 : opts->threads;
    const int B = opts->batch, N = g->nnodes, T = x->T;
    x->rt = calloc((size_t)N, sizeof *x->rt);
    x->bwd_order = calloc((size_t)N, sizeof *x->bwd_order);
    if (!x->rt || !x->bwd_order) goto nomem;

    /* which outputs need gradients, and the backward order */
    for (int k = 0; k < N; k++) {
        int v = g->order[k];
        const pml_node *nd = &g->nodes[v];
        node_rt *r = &x->rt[v];
        r->size = pml_shape_size(nd->out);
        r->wants = nd->nparam > 0;
        for (int i = 0; i < nd->nin; i++) r->wants |= x->rt[nd->in[i]].wants;
        if (v == g->loss) r->wants = false;
        r->run_bwd = r->wants || (v == g->loss && x->rt[g->logits].wants);
        r->zero_before = -2;
    }
    for (int k = N - 1; k >= 0; k--) {
        int v = g->order[k];
        if (!x->rt[v].run_bwd) continue;
        /* this node's inputs are zeroed by the job before it, if it is their first consumer */
        const pml_node *nd = &g->nodes[v];
        for (int i = 0; i < nd->nin; i++) {
            node_rt *u = &x->rt[nd->in[i]];
            if (u->wants && u->zero_before == -2) u->zero_before = x->nbwd - 1;
        }
        x->bwd_order[x->nbwd++] = v;
    }

    /* sizes */
    size_t total = 0, wsmax = 0, dxmax = 0;
    for (int v = 0; v < N; v++) {
        const pml_node *nd = &g->nodes[v];
        node_rt *r = &x->rt[v];
        total += up((size_t)B * r->size);                               /* y */
        if (r->wants) total += up((size_t)B * r->size);                 /* dy */
        total += up(nd->aux_per_sample * (size_t)B + nd->aux_fixed);   /* aux */
        pml_shape in[PML_MAX_INPUTS];
        for (int i = 0; i < nd->nin; i++) in[i] = g->nodes[nd->in[i]].out;
        size_t w = pml_ops[nd->op].ws_floats(nd, in, nd->nin, pml_region_full(nd, B));
        if (w > wsmax) wsmax = w;
        if (pml_ops[nd->op].dx_partial) { /* every input's partial */
            size_t d = 0;
            for (int i = 0; i < nd->nin; i++) d += (size_t)B * pml_shape_size(in[i]);
            if (d > dxmax) dxmax = d;
        }
    }
    total += up((size_t)B) + 2 * up(g->nparams) + up(g->nstate) + T * up(wsmax);
    if (T > 1) total += (size_t)(T - 1) * (up(g->nparams) + up(dxmax));
    x->arena = aligned_alloc(64, (total + ALIGN_FLOATS) * sizeof(float));
    if (!x->arena) {
        ops_destroy(e);
        return pml_fail(PML_ENOMEM, "out of memory: graph '%s' at batch %d needs %.1f MiB",
                        g->name, B, (double)total * 4 / 1048576.0);
    }
    float *p = x->arena;
#define TAKE(n) (p += up(n), p - up(n))
    for (int v = 0; v < N; v++) {
        const pml_node *nd = &g->nodes[v];
        node_rt *r = &x->rt[v];
        r->y = e->out[v] = TAKE((size_t)B * r->size);
        if (r->wants) r->dy = TAKE((size_t)B * r->size);
        r->aux = TAKE(nd->aux_per_sample * (size_t)B + nd->aux_fixed);
    }
    e->input = x->rt[g->input].y;
    e->labels = (int32_t *)TAKE((size_t)B);
    e->params = TAKE(g->nparams);
    e->grads = TAKE(g->nparams);
    e->state = TAKE(g->nstate);
    x->grad_part[0] = e->grads;
    for (int t = 0; t < T; t++) x->workspace[t] = TAKE(wsmax);
    for (int t = 1; t < T; t++) {
        x->grad_part[t] = TAKE(g->nparams);
        x->dx_part[t] = TAKE(dxmax);
    }
#undef TAKE
    memset(e->labels, 0, (size_t)B * sizeof *e->labels);
    for (int v = 0; v < N; v++) /* every input node, the first being e->input */
        if (g->nodes[v].op == PML_OP_INPUT)
            memset(x->rt[v].y, 0, (size_t)B * x->rt[v].size * sizeof(float));
    memset(e->grads, 0, g->nparams * sizeof(float));
    pml_params_init(g, e->params, e->state, opts->seed);
    pml_blas_single_thread();
    /* one worker per thread, pinned to the first cores when the machine has enough */
    int cores[64];
    const int first = opts->first_core > 0 ? opts->first_core : 0;
    const bool pin = (T > 1 || first > 0) && pml_machine_cores() >= first + T;
    for (int t = 0; t < T; t++) cores[t] = first + t;
    if ((st = pml_blas_room(T)) != PML_OK ||
        (st = pml__workers_create(T, pin ? cores : NULL, &e->workers)) != PML_OK) {
        ops_destroy(e);
        return st;
    }
    *out = e;
    return PML_OK;
nomem:
    ops_destroy(e);
    return pml_fail(PML_ENOMEM, "out of memory creating the executor");
}
