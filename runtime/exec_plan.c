/* pml — the plan executor: the planner's task graph of one training step, run on the workers
 * (runtime/workers.c: one pinned worker per compute device of this machine).
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
 *   - parameters have one copy; gradients are summed per device; each replica's core adds a
 *     share of the replicas' gradients into the first replica's block (a sync a share), then
 *     updates that share.
 * Every buffer is allocated when the executor is made: a step allocates nothing. */
#include "exec.h"
#include "link.h"


#include <limits.h>
#include <math.h>
#include <stdatomic.h>
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

typedef struct plan_exec {
    pml_exec e; /* first: a pml_exec * is a plan_exec * */
    const pml_machine *machine;
    pml_plan plan;
    pml_taskgraph *taskgraph;
    int ndev, nnodes;
    bool *wants_grad; /* [node]: its output needs a gradient */
    /* the task table, in program order */
    int ntasks;
    const pml_task **task;
    int *worker, *npred, *succ_off, *succ;
    bool *fwd_subset, *grad_subset, *update_subset;
    pml__dag dag_step, dag_infer; /* a training step; an inference pass (forward tasks only) */
    pml__dag dag_grad, dag_update; /* a step without its updates; the updates alone */
    bool grads_whole; /* every update takes its gradient from device 0's block */
    /* buffers (e.out[node] holds the outputs) */
    float **out_grad;      /* [node * ndev + dev]: the output gradient summed on a device */
    float **staging;       /* [(node * PML_MAX_INPUTS + input) * ndev + dev]: input gradients of
                              parts whose region other devices' producer parts share */
    bool **split_edge;     /* [node * PML_MAX_INPUTS + input][part]: that part stages */
    pull ***pulls;         /* [node][part]: staged pieces the part adds in, npulls[node][part] */
    int **npulls;
    float **aux;           /* [node]: the parts' aux buffers, one after another */
    float ***replica_stats; /* [node][part]: batchnorm running stats of non-first replicas */
    float **dev_grad;      /* [dev]: parameter gradients summed on a device */
    float **workspace;     /* [dev] */
    void **allocs;
    int nallocs, capallocs;
    pml_optim *optim; /* the step's */
    int *grad_tasks;          /* [node]: tasks that add to its parameter gradient in a step */
    _Atomic int *grad_left;   /* [node]: of those, not yet done in the step running */
    /* timing */
    double *tstart, *tend;
    trace_ev *trace;
    long ntrace, maxtrace;
    /* a plan across ranks (pml_exec_opts.dist): this rank runs the tasks of node `rank`'s
     * devices; the others' results come as messages (link.h) */
    int rank, nranks;   /* nranks 1: every device is here */
    int *dev_rank;      /* [dev]: the rank that runs it */
    int *local;         /* [dev]: its worker here, -1 on another rank */
    int *local_dev;     /* [worker]: its device */
    int nlocal;
    pml__link *link;
    unsigned char *role; /* [task]: ROLE_* */
    int *msg;           /* [task]: its message, -1 none */
    float **xbuf;       /* [task]: the packed region it sends or receives, or the slices it sums */
    int *leader;        /* [task] SYNC across ranks: the device here that sums */
    int *rel_off, *rel; /* [task] SYNC across ranks: the tasks here its sum releases */
    int16_t *upd_share, *upd_nshare, *upd_gdev; /* [task] UPDATE: share, of, gradients' device */
    bool *run_step, *run_infer;
    int *ext_step, *ext_infer;
    unsigned char *param_own, *state_own; /* [float]: this rank keeps it current */
} plan_exec;

enum {
    ROLE_HERE,  /* runs here as on one machine */
    ROLE_AWAY,  /* another rank's */
    ROLE_SEND,  /* a transfer from here to another rank: packs and sends */
    ROLE_RECV,  /* a transfer from another rank to here: unpacks (adds a gradient) */
    ROLE_SUM,   /* a sync across ranks: sums the replicas here, then over the ranks */
    ROLE_NONE,  /* a transfer of the input, which every rank has */
};
enum { RUN_STEP = 1u, RUN_INFER = 2u };

/* ---------------------------------------------------------------- allocation */

static void *px_alloc(plan_exec *x, size_t bytes)
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
 * [c0, c1) of node v: one range per parameter tensor (a linear weight is stored (out, in), a
 * convolution's (out, in, kh, kw), a bias or batchnorm's per channel). */
typedef void (*range_fn)(void *ud, size_t a, size_t b);

static void slice_ranges(const pml_graph *g, int v, int c0, int c1, range_fn fn, void *ud)
{
    const pml_node *n = &g->nodes[v];
    const int O = n->out.c;
    for (int j = 0; j < n->nparam; j++) {
        size_t off = n->param_off[j], per = n->param_size[j] / (size_t)O;
        fn(ud, off + per * c0, off + per * c1);
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

/* The floats of task t's slice (channels t->r.c0 .. c1 of its node) that it covers: a server's
 * piece (pml_task.piece0, piece1), else share `share` of `nshare` equal shares. */
static void task_slice(const pml_graph *g, const pml_task *t, int share, int nshare, range_fn fn,
                       void *ud)
{
    if (!(t->piece1 > 0)) {
        slice_share(g, t->node, t->r.c0, t->r.c1, share, nshare, fn, ud);
        return;
    }
    size_t total = 0;
    slice_ranges(g, t->node, t->r.c0, t->r.c1, count_range, &total);
    const size_t lo = (size_t)floor((double)total * t->piece0),
                 hi = t->piece1 >= 1 ? total : (size_t)floor((double)total * t->piece1);
    share_ctx c = {lo, hi > lo ? hi : lo, 0, fn, ud};
    slice_ranges(g, t->node, t->r.c0, t->r.c1, share_range, &c);
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

static size_t region_floats(pml_shape s, pml_region r)
{
    size_t n = 0;
    FOR_ROWS(r, s, off, len)
    {
        (void)off;
        n += len;
    }
    return n;
}

/* region r of p, packed (to: p -> buf), or back (buf -> p: copied, or added when add) */
static void region_pack(float *p, float *buf, pml_shape s, pml_region r, int dir, bool add)
{
    FOR_ROWS(r, s, off, len)
    {
        if (dir > 0) {
            memcpy(buf, p + off, len * sizeof *buf);
        } else if (!add) {
            memcpy(p + off, buf, len * sizeof *buf);
        } else {
            for (size_t i = 0; i < len; i++) p[off + i] += buf[i];
        }
        buf += len;
    }
}

/* ---------------------------------------------------------------- tasks */

static void task_name(const plan_exec *x, const pml_task *t, char *buf, size_t cap)
{
    const char *kind = pml_task_kind_name((pml_task_kind)t->kind);
    const char *node = t->node >= 0 ? x->e.g.nodes[t->node].name : "?";
    if (t->kind == PML_TASK_XFER)
        snprintf(buf, cap, "%s %s[%d] -> %s[%d]%s", kind, node, t->part,
                 t->cnode >= 0 ? x->e.g.nodes[t->cnode].name : "?", t->cpart, t->grad ? " (grad)" : "");
    else if (t->kind == PML_TASK_SYNC)
        snprintf(buf, cap, "%s bucket %d (%s, ...)", kind, t->part, node);
    else
        snprintf(buf, cap, "%s %s[%d]", kind, node, t->part);
}

static void kctx(const plan_exec *x, const pml_task *t, int w, pml_kctx *k)
{
    const int v = t->node;
    const pml_node *nd = &x->e.g.nodes[v];
    memset(k, 0, sizeof *k);
    k->node = nd;
    k->node_id = v;
    k->N = x->e.batch;
    k->batch_total = x->e.n;
    k->r = t->r;
    k->nin = nd->nin;
    for (int i = 0; i < nd->nin; i++) {
        k->x[i] = x->e.out[nd->in[i]];
        k->xs[i] = x->e.g.nodes[nd->in[i]].out;
    }
    k->y = x->e.out[v];
    k->aux = x->aux[v] ? x->aux[v] + 0 : NULL;
    if (x->aux[v]) {
        size_t per = nd->aux_per_sample * (size_t)x->e.batch + nd->aux_fixed;
        k->aux = x->aux[v] + per * (size_t)t->part;
    }
    for (int j = 0; j < nd->nparam; j++) k->w[j] = x->e.params + nd->param_off[j];
    for (int j = 0; j < nd->nstate; j++)
        k->state[j] = x->e.state + nd->state_off[j];
    k->labels = x->e.labels;
    k->training = x->e.training;
    k->seed = x->e.o.seed;
    k->step = x->e.step;
    k->sample0 = x->e.sample0;
    k->ws = x->workspace[w];
}

/* One of the tasks adding to node v's parameter gradient is done: the last tells the hook. */
static void grad_done(plan_exec *x, int v)
{
    if (x->e.grad_ready && x->grad_tasks[v] > 0 &&
        atomic_fetch_sub_explicit(&x->grad_left[v], 1, memory_order_acq_rel) == 1)
        x->e.grad_ready(x->e.grad_ready_ctx, v);
}

/* member k of a sync: its node, and the channel slice [*c0, *c1) */
static int member_slice(const plan_exec *x, const pml_task *t, int k, int *c0, int *c1)
{
    const int v = t->members[2 * k], pc = t->members[2 * k + 1];
    const pml_opcfg *c = &x->plan.cfg[v];
    *c0 = (int)((long)x->e.g.nodes[v].out.c * pc / c->deg[1]);
    *c1 = (int)((long)x->e.g.nodes[v].out.c * (pc + 1) / c->deg[1]);
    return v;
}

typedef struct pack_ctx {
    float *p, *buf;
    size_t pos;
    int dir; /* 1: p -> buf, -1: buf -> p, 0: count */
} pack_ctx;

static void pack_range(void *ud, size_t a, size_t b)
{
    pack_ctx *c = ud;
    if (c->dir > 0) memcpy(c->buf + c->pos, c->p + a, (b - a) * sizeof(float));
    if (c->dir < 0) memcpy(c->p + a, c->buf + c->pos, (b - a) * sizeof(float));
    c->pos += b - a;
}

/* a replica's gradient piece for a server: packed into buf, then zeroed (the next step's
 * gradient starts from zero, as after a sum here) */
static void pack_clear_range(void *ud, size_t a, size_t b)
{
    pack_ctx *c = ud;
    memcpy(c->buf + c->pos, c->p + a, (b - a) * sizeof(float));
    memset(c->p + a, 0, (b - a) * sizeof(float));
    c->pos += b - a;
}

/* a piece of gradients from another rank, added into p */
static void add_range(void *ud, size_t a, size_t b)
{
    pack_ctx *c = ud;
    for (size_t i = a; i < b; i++) c->p[i] += c->buf[c->pos + (i - a)];
    c->pos += b - a;
}

/* a sync's slices of gradient block p, packed into buf (dir 1), back (-1) or counted (0) */
static size_t sync_pack(const plan_exec *x, const pml_task *t, float *p, float *buf, int dir)
{
    pack_ctx c = {p, buf, 0, dir};
    for (int k = 0; k < t->nmembers; k++) {
        int c0, c1, v = member_slice(x, t, k, &c0, &c1);
        slice_ranges(&x->e.g, v, c0, c1, pack_range, &c);
    }
    return c.pos;
}

/* a message of a plan across ranks arrived (on the communication thread): a receive's task can
 * run; a sum goes back into its gradient block, and the updates waiting for it can run */
static void link_done(void *ctx, int task)
{
    plan_exec *x = ctx;
    if (x->role[task] == ROLE_RECV) {
        pml__workers_release(x->e.workers, task);
        return;
    }
    const pml_task *t = x->task[task];
    sync_pack(x, t, x->dev_grad[x->leader[task]], x->xbuf[task], -1);
    for (int k = x->rel_off[task]; k < x->rel_off[task + 1]; k++)
        pml__workers_release(x->e.workers, x->rel[k]);
}

static bool workers_idle(void *ctx) { return pml__workers_idle(((plan_exec *)ctx)->e.workers); }

static void begin_step(void *arg) { pml__link_begin(((plan_exec *)arg)->link, RUN_STEP); }
static void begin_infer(void *arg) { pml__link_begin(((plan_exec *)arg)->link, RUN_INFER); }

/* the parts of a plan across ranks: a transfer or sync that crosses ranks */
static pml_status run_link_task(plan_exec *x, int id)
{
    const pml_task *t = x->task[id];
    const int W = x->ndev;
    switch (x->role[id]) {
    case ROLE_NONE:
        return PML_OK;
    case ROLE_SEND: {
        if (t->node == t->cnode) { /* parameter servers: a gradient piece in, or parameters out */
            pack_ctx c = {t->grad ? x->dev_grad[t->dev] : x->e.params, x->xbuf[id], 0, 1};
            task_slice(&x->e.g, t, 0, 1, t->grad ? pack_clear_range : pack_range, &c);
            pml__link_post(x->link, x->msg[id]);
            return PML_OK;
        }
        const pml_shape s = x->e.g.nodes[t->node].out;
        float *src = t->grad ? x->staging[((size_t)t->cnode * PML_MAX_INPUTS + t->input) * W + t->dev]
                             : x->e.out[t->node];
        region_pack(src, x->xbuf[id], s, t->r, 1, false);
        pml__link_post(x->link, x->msg[id]);
        return PML_OK;
    }
    case ROLE_RECV: {
        if (t->node == t->cnode) { /* a server adds a worker's gradients; a worker takes the
                                    * server's parameters */
            pack_ctx c = {t->grad ? x->dev_grad[t->dst] : x->e.params, x->xbuf[id], 0, -1};
            task_slice(&x->e.g, t, 0, 1, t->grad ? add_range : pack_range, &c);
            return PML_OK;
        }
        const pml_shape s = x->e.g.nodes[t->node].out;
        float *dst = t->grad ? x->out_grad[(size_t)t->node * W + t->dst] : x->e.out[t->node];
        region_pack(dst, x->xbuf[id], s, t->r, -1, t->grad);
        return PML_OK;
    }
    case ROLE_SUM: {
        const int g0 = x->leader[id];
        for (int k = 0; k < t->nmembers; k++) {
            int c0, c1, v = member_slice(x, t, k, &c0, &c1);
            for (int d = 0; d < t->ngroup; d++) {
                if (t->group[d] == g0 || x->local[t->group[d]] < 0) continue;
                sum_ctx sc = {x->dev_grad[g0], x->dev_grad[t->group[d]]};
                slice_ranges(&x->e.g, v, c0, c1, sum_and_clear, &sc);
            }
        }
        sync_pack(x, t, x->dev_grad[g0], x->xbuf[id], 1);
        pml__link_post(x->link, x->msg[id]);
        return PML_OK;
    }
    default:
        return pml_fail(PML_EINVAL, "task %d has no part here", id);
    }
}

static pml_status run_task(void *ctx, int id, int w)
{
    plan_exec *x = ctx;
    const pml_task *t = x->task[id];
    const int W = x->ndev;
    if (x->role && x->role[id] != ROLE_HERE) return run_link_task(x, id);
    if (x->local_dev) w = x->local_dev[w]; /* the device (a worker here runs one device) */
    switch (t->kind) {
    case PML_TASK_FWD: {
        const pml_node *nd = &x->e.g.nodes[t->node];
        if (nd->op == PML_OP_INPUT) return PML_OK;
        pml_kctx k;
        kctx(x, t, w, &k);
        float *scratch = NULL;
        if (x->replica_stats[t->node] && (scratch = x->replica_stats[t->node][t->part]))
            for (int j = 0; j < nd->nstate; j++) k.state[j] = scratch + (size_t)j * nd->out.c;
        pml_ops[nd->op].fwd(&k);
        if (x->e.o.check_numerics && !region_finite(x->e.out[t->node], nd->out, t->r)) {
            char name[256];
            task_name(x, t, name, sizeof name);
            return pml_fail(PML_ENUMERIC, "task '%s' (device %d): output is not finite", name, w);
        }
        return PML_OK;
    }
    case PML_TASK_BWD: {
        const int v = t->node, dev = t->dev;
        const pml_node *nd = &x->e.g.nodes[v];
        pml_kctx k;
        kctx(x, t, w, &k);
        float *scratch = NULL;
        if (x->replica_stats[v] && (scratch = x->replica_stats[v][t->part]))
            for (int j = 0; j < nd->nstate; j++) k.state[j] = scratch + (size_t)j * nd->out.c;
        float *dy = x->out_grad[(size_t)v * W + dev];
        /* pieces of this gradient that consumers on this device staged */
        for (int q = 0; dy && q < x->npulls[v][t->part]; q++) {
            const pull *pl = &x->pulls[v][t->part][q];
            const float *stg = x->staging[((size_t)pl->w * PML_MAX_INPUTS + pl->i) * W + dev];
            pml_region need = pml_node_in_region(&x->e.g, pl->w, pl->i,
                                                 pml_plan_part_region(&x->e.g, pl->w,
                                                                      &x->plan.cfg[pl->w], x->e.batch, pl->p));
            pml_region ov = pml_region_meet(need, t->r);
            if (!pml_region_empty(ov)) region_add(dy, stg, nd->out, ov);
        }
        k.dy = dy;
        for (int i = 0; i < nd->nin; i++) {
            int u = nd->in[i];
            if (!x->wants_grad[u]) continue;
            if (x->split_edge[v * PML_MAX_INPUTS + i][t->part]) {
                float *stg = x->staging[((size_t)v * PML_MAX_INPUTS + i) * W + dev];
                pml_region need = pml_node_in_region(&x->e.g, v, i, t->r);
                region_zero(stg, x->e.g.nodes[u].out, need);
                k.dx[i] = stg;
            } else {
                k.dx[i] = x->out_grad[(size_t)u * W + dev];
            }
        }
        for (int j = 0; j < nd->nparam; j++) k.dw[j] = x->dev_grad[dev] + nd->param_off[j];
        pml_ops[nd->op].bwd(&k);
        if (dy) region_zero(dy, nd->out, t->r); /* consumed: zero for the next step */
        if (nd->nparam > 0) grad_done(x, v);
        return PML_OK;
    }
    case PML_TASK_XFER: {
        if (!t->grad) return PML_OK; /* shared memory: the consumer reads the producer's buffer */
        if (t->node == t->cnode) {   /* parameter server: a replica's parameter gradients */
            sum_ctx s = {x->dev_grad[t->dst], x->dev_grad[t->dev]};
            task_slice(&x->e.g, t, 0, 1, sum_and_clear, &s);
            grad_done(x, t->node);
            return PML_OK;
        }
        const float *stg = x->staging[((size_t)t->cnode * PML_MAX_INPUTS + t->input) * W + t->dev];
        float *dy = x->out_grad[(size_t)t->node * W + t->dst];
        region_add(dy, stg, x->e.g.nodes[t->node].out, t->r);
        return PML_OK;
    }
    case PML_TASK_SYNC: { /* its share of the replicas' gradients into the first's */
        const int g0 = t->group[0];
        const int share = t->nshare > 1 ? t->share : 0, nshare = t->nshare > 1 ? t->nshare : 1;
        for (int k = 0; k < t->nmembers; k++) {
            int c0, c1, v = member_slice(x, t, k, &c0, &c1);
            for (int d = 1; d < t->ngroup; d++) {
                sum_ctx s = {x->dev_grad[g0], x->dev_grad[t->group[d]]};
                slice_share(&x->e.g, v, c0, c1, share, nshare, sum_and_clear, &s);
            }
        }
        for (int k = 0; k < t->nmembers; k++) grad_done(x, t->members[2 * k]);
        return PML_OK;
    }
    case PML_TASK_UPDATE: {
        if (x->upd_gdev) { /* across ranks: shares of the replicas here */
            upd_ctx u = {x->optim, x->e.params, x->dev_grad[x->upd_gdev[id]]};
            task_slice(&x->e.g, t, x->upd_share[id], x->upd_nshare[id], update_and_clear, &u);
            return PML_OK;
        }
        upd_ctx u = {x->optim, x->e.params, x->dev_grad[t->gdev]};
        task_slice(&x->e.g, t, t->share, t->nshare, update_and_clear, &u);
        return PML_OK;
    }
    default:
        return pml_fail(PML_EINVAL, "task %d has an unknown kind %d", id, t->kind);
    }
}

/* ---------------------------------------------------------------- set-up */

typedef struct own_ctx {
    int *owner, rank;
} own_ctx;

static void own_range(void *ud, size_t a, size_t b)
{
    own_ctx *o = ud;
    for (size_t i = a; i < b; i++)
        if (o->rank < o->owner[i]) o->owner[i] = o->rank;
}

static const unsigned char *plan_owned(const pml_exec *e, bool state)
{
    const plan_exec *x = (const plan_exec *)e;
    return state ? x->state_own : x->param_own;
}

/* A plan across ranks: each task's part on this rank (role, worker), the messages, the sums'
 * communicators (every rank makes the same ones, in program order: collective) and the updates
 * that wait for a sum. */
static pml_status span_setup(plan_exec *x, pml_dist *dist)
{
    const int T = x->ntasks;
    const pml_graph *G = &x->e.g;
    x->role = calloc((size_t)T, sizeof *x->role);
    x->msg = malloc((size_t)T * sizeof *x->msg);
    x->xbuf = calloc((size_t)T, sizeof *x->xbuf);
    x->leader = malloc((size_t)T * sizeof *x->leader);
    x->rel_off = calloc((size_t)T + 1, sizeof *x->rel_off);
    x->upd_share = calloc((size_t)T, sizeof *x->upd_share);
    x->upd_nshare = calloc((size_t)T, sizeof *x->upd_nshare);
    x->upd_gdev = calloc((size_t)T, sizeof *x->upd_gdev);
    x->run_step = calloc((size_t)T, sizeof *x->run_step);
    x->run_infer = calloc((size_t)T, sizeof *x->run_infer);
    x->ext_step = calloc((size_t)T, sizeof *x->ext_step);
    x->ext_infer = calloc((size_t)T, sizeof *x->ext_infer);
    int *group = malloc((size_t)T * sizeof *group);
    uint64_t *masks = malloc((size_t)T * sizeof *masks);
    int nmasks = 0;
    pml_status st = pml__link_create(dist, link_done, x, &x->link);
    if (st != PML_OK) goto out;
    if (!x->role || !x->msg || !x->xbuf || !x->leader || !x->rel_off || !x->upd_share ||
        !x->upd_nshare || !x->upd_gdev || !x->run_step || !x->run_infer || !x->ext_step ||
        !x->ext_infer || !group || !masks) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < T; i++) {
        const pml_task *t = x->task[i];
        int role = ROLE_AWAY, dev = -1;
        x->msg[i] = x->leader[i] = group[i] = -1;
        switch (t->kind) {
        case PML_TASK_XFER: {
            const bool sl = x->local[t->dev] >= 0, dl = x->local[t->dst] >= 0;
            if (!t->grad && G->nodes[t->node].op == PML_OP_INPUT) /* every rank has the input */
                role = sl || dl ? ROLE_NONE : ROLE_AWAY, dev = dl ? t->dst : t->dev;
            else if (sl && dl)
                role = ROLE_HERE, dev = pml_task_worker(t);
            else if (sl)
                role = ROLE_SEND, dev = t->dev;
            else if (dl)
                role = ROLE_RECV, dev = t->dst;
            break;
        }
        case PML_TASK_SYNC: {
            uint64_t mask = 0;
            int lead = -1, here = 0;
            for (int d = 0; d < t->ngroup; d++) {
                mask |= 1ull << x->dev_rank[t->group[d]];
                if (x->local[t->group[d]] >= 0) {
                    here++;
                    if (lead < 0) lead = t->group[d];
                }
            }
            if (mask & (mask - 1)) { /* across ranks: a communicator of them (collective) */
                int k = 0;
                while (k < nmasks && masks[k] != mask) k++;
                if (k == nmasks) {
                    int gid;
                    if ((st = pml__link_group(x->link, mask, &gid)) != PML_OK) goto out;
                    masks[nmasks++] = mask;
                    (void)gid; /* groups are numbered as they are made: gid == k */
                }
                group[i] = k;
                if (here) role = ROLE_SUM, dev = lead, x->leader[i] = lead;
            } else if (here) {
                role = ROLE_HERE, dev = pml_task_worker(t);
            }
            break;
        }
        default:
            if (x->local[t->dev] >= 0) role = ROLE_HERE, dev = t->dev;
        }
        x->role[i] = (unsigned char)role;
        x->worker[i] = dev >= 0 ? x->local[dev] : 0;
        x->run_step[i] = role != ROLE_AWAY;
        x->run_infer[i] = x->run_step[i] && x->fwd_subset[i];
        if (t->kind == PML_TASK_UPDATE)
            x->upd_share[i] = t->share, x->upd_nshare[i] = t->nshare, x->upd_gdev[i] = t->gdev;
    }
    /* the messages; an update waits for its slice's sum across ranks, and shares it with the
     * replicas here (the others' ranks update their own copies) */
    int nrel = 0;
    for (int i = 0; i < T; i++) {
        const pml_task *t = x->task[i];
        const int role = x->role[i];
        if (role == ROLE_SEND || role == ROLE_RECV) {
            /* a parameter server's piece of parameters or gradients (a training step's only),
             * else a region of an output or its gradient */
            const bool served = t->node == t->cnode;
            size_t n = 0;
            if (served) task_slice(G, t, 0, 1, count_range, &n);
            else n = region_floats(G->nodes[t->node].out, t->r);
            if (!(x->xbuf[i] = px_alloc(x, (n + 1) * sizeof(float)))) goto nomem;
            if (role == ROLE_SEND) {
                x->msg[i] = pml__link_send(x->link, x->dev_rank[t->dst], i, x->xbuf[i], n);
            } else {
                const unsigned runs = t->grad || served ? RUN_STEP : RUN_STEP | RUN_INFER;
                x->msg[i] = pml__link_recv(x->link, x->dev_rank[t->dev], i, x->xbuf[i], n, runs, i);
                x->ext_step[i] = 1;
                x->ext_infer[i] = !t->grad && !served;
            }
        } else if (role == ROLE_SUM) {
            const size_t n = sync_pack(x, t, NULL, NULL, 0);
            if (!(x->xbuf[i] = px_alloc(x, (n + 1) * sizeof(float)))) goto nomem;
            x->msg[i] = pml__link_sum(x->link, group[i], x->xbuf[i], n, RUN_STEP, i);
            for (int k = x->succ_off[i]; k < x->succ_off[i + 1]; k++) {
                const int u = x->succ[k];
                if (x->task[u]->kind != PML_TASK_UPDATE || x->role[u] != ROLE_HERE) continue;
                nrel++;
            }
        }
    }
    x->rel = malloc((size_t)(nrel ? nrel : 1) * sizeof *x->rel);
    if (!x->rel) goto nomem;
    nrel = 0;
    for (int i = 0; i < T; i++) {
        x->rel_off[i] = nrel;
        if (x->role[i] != ROLE_SUM) continue;
        const int first = nrel;
        for (int k = x->succ_off[i]; k < x->succ_off[i + 1]; k++) {
            const int u = x->succ[k];
            const pml_task *tu = x->task[u];
            if (tu->kind != PML_TASK_UPDATE || x->role[u] != ROLE_HERE) continue;
            x->rel[nrel++] = u;
            x->ext_step[u]++;
            x->upd_gdev[u] = (int16_t)x->leader[i];
            /* the replicas here of the same slice update a share each */
            int share = 0, of = 0;
            for (int j = first; j < nrel; j++) {
                const pml_task *tj = x->task[x->rel[j]];
                if (tj->node != tu->node || tj->r.c0 != tu->r.c0 || tj->r.c1 != tu->r.c1) continue;
                of++;
            }
            share = of - 1;
            x->upd_share[u] = (int16_t)share;
            for (int j = first; j < nrel; j++) {
                const pml_task *tj = x->task[x->rel[j]];
                if (tj->node == tu->node && tj->r.c0 == tu->r.c0 && tj->r.c1 == tu->r.c1)
                    x->upd_nshare[x->rel[j]] = (int16_t)of;
            }
        }
    }
    x->rel_off[T] = nrel;
    /* which floats this rank keeps current: a parameter, the lowest rank that updates it; a
     * state (batchnorm running statistics), its channel slice's first replica's rank */
    {
        int *owner = malloc((G->nparams + 1) * sizeof *owner);
        x->param_own = px_alloc(x, G->nparams + 1);
        x->state_own = px_alloc(x, G->nstate + 1);
        if (!owner || !x->param_own || !x->state_own) {
            free(owner);
            goto nomem;
        }
        for (size_t i = 0; i < G->nparams; i++) owner[i] = INT_MAX;
        for (int i = 0; i < T; i++) {
            const pml_task *t = x->task[i];
            if (t->kind != PML_TASK_UPDATE) continue;
            own_ctx oc = {owner, x->dev_rank[t->dev]};
            task_slice(G, t, t->share, t->nshare, own_range, &oc);
        }
        for (size_t i = 0; i < G->nparams; i++) x->param_own[i] = owner[i] == x->rank;
        free(owner);
        for (int v = 0; v < G->nnodes; v++) {
            const pml_node *nd = &G->nodes[v];
            const pml_opcfg *c = &x->plan.cfg[v];
            for (int q = 0; nd->nstate && q < pml_opcfg_parts(c); q++) {
                pml_region r = pml_plan_part_region(G, v, c, x->e.batch, q);
                if (r.n0 != 0 || r.h0 != 0 || x->dev_rank[c->dev[q]] != x->rank) continue;
                for (int j = 0; j < nd->nstate; j++)
                    for (int ch = r.c0; ch < r.c1; ch++) x->state_own[nd->state_off[j] + ch] = 1;
            }
        }
    }
    pml__link_set_idle(x->link, workers_idle);
    if ((st = pml__link_start(x->link)) != PML_OK) goto out;
    x->dag_step = (pml__dag){T, x->worker, x->npred, x->succ_off, x->succ, x->run_step,
                             x->ext_step, begin_step, x};
    x->dag_infer = (pml__dag){T, x->worker, x->npred, x->succ_off, x->succ, x->run_infer,
                              x->ext_infer, begin_infer, x};
    x->grads_whole = false;
    goto out;
nomem:
    st = pml_fail(PML_ENOMEM, "out of memory: the plan's buffers do not fit");
out:
    free(group);
    free(masks);
    return st;
}

static const pml__exec_impl plan_impl;
static void plan_destroy(pml_exec *e);

pml_status pml__exec_plan_create(const pml_graph *g, const pml_exec_opts *o, pml_exec **out)
{
    *out = NULL;
    const pml_machine *m = o->machine;
    const pml_plan *p = o->plan;
    pml_status st;
    const int nranks = pml_dist_size(o->dist), rank = pml_dist_rank(o->dist);
    if (nranks > 1) { /* a plan across ranks: node r is rank r; this rank runs node `rank` */
        int nodes = 0, here = 0;
        for (int c = 0; c < m->ncompute; c++) {
            const pml_device *d = &m->dev[m->compute[c]];
            if (d->node + 1 > nodes) nodes = d->node + 1;
            if (d->node != rank) continue;
            here++;
            if (d->kind != PML_DEV_CPU)
                return pml_fail(PML_EUNSUPPORTED, "machine '%s': device %d (%s) is not a CPU core",
                                m->name, c, d->name);
        }
        if (nodes != nranks)
            return pml_fail(PML_EINVAL,
                            "machine '%s' has %d node%s, and this run %d ranks: a plan across "
                            "ranks needs a machine whose nodes are the ranks (mpirun -np %d pml "
                            "topo -o ranks.dot)",
                            m->name, nodes, nodes == 1 ? "" : "s", nranks, nranks);
        if (here < 1 || here > (o->threads > 0 ? o->threads : 1))
            return pml_fail(PML_EINVAL,
                            "machine '%s': node %d has %d cores, and rank %d only %d of this "
                            "host's (mpirun -np N pml topo makes a machine of the ranks' cores)",
                            m->name, rank, here, rank, o->threads > 0 ? o->threads : 1);
    } else {
        for (int c = 0; c < m->ncompute; c++)
            if (!m->dev[m->compute[c]].present || m->dev[m->compute[c]].kind != PML_DEV_CPU)
                return pml_fail(PML_EUNSUPPORTED,
                                "machine '%s': device %d (%s) is not a core of this machine; plans "
                                "run on this machine only (or across ranks under mpirun, on a "
                                "machine whose nodes are the ranks)",
                                m->name, c, m->dev[m->compute[c]].name);
    }
    if (o->batch != p->batch)
        return pml_fail(PML_EINVAL, "the plan is for batch %d, not %d", p->batch, o->batch);
    plan_exec *x = calloc(1, sizeof *x);
    if (!x) return pml_fail(PML_ENOMEM, "out of memory");
    if ((st = pml__exec_init(&x->e, &plan_impl, g, o)) != PML_OK) goto fail;
    x->machine = m;
    x->ndev = m->ncompute;
    x->nnodes = g->nnodes;
    x->rank = rank;
    x->nranks = nranks;
    x->dev_rank = calloc((size_t)m->ncompute, sizeof *x->dev_rank);
    x->local = calloc((size_t)m->ncompute, sizeof *x->local);
    x->local_dev = calloc((size_t)m->ncompute, sizeof *x->local_dev);
    if (!x->dev_rank || !x->local || !x->local_dev) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto fail;
    }
    for (int c = 0; c < m->ncompute; c++) {
        x->dev_rank[c] = nranks > 1 ? m->dev[m->compute[c]].node : 0;
        x->local[c] = x->dev_rank[c] == rank ? x->nlocal++ : -1;
        if (x->local[c] >= 0) x->local_dev[x->local[c]] = c;
    }
    if (nranks == 1) { /* one machine: worker = device */
        free(x->local_dev);
        x->local_dev = NULL;
    }
    if ((st = pml_plan_copy(&x->plan, p)) != PML_OK) goto fail;
    if ((st = pml_taskgraph_build(&x->e.g, m, &x->plan, NULL, &x->taskgraph)) != PML_OK) goto fail;
    const int N = x->nnodes, W = x->ndev, B = x->e.batch;
    pml_graph *G = &x->e.g;

    /* the dense task table, in program order */
    const int *order = pml_taskgraph_order(x->taskgraph, &x->ntasks);
    if (!order) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto fail;
    }
    const int T = x->ntasks;
    int *dense = malloc((size_t)pml_taskgraph_size(x->taskgraph) * sizeof *dense);
    x->task = calloc((size_t)T, sizeof *x->task);
    x->worker = calloc((size_t)T, sizeof *x->worker);
    x->npred = calloc((size_t)T, sizeof *x->npred);
    x->succ_off = calloc((size_t)T + 1, sizeof *x->succ_off);
    x->fwd_subset = calloc((size_t)T, sizeof *x->fwd_subset);
    x->grad_subset = calloc((size_t)T, sizeof *x->grad_subset);
    x->update_subset = calloc((size_t)T, sizeof *x->update_subset);
    x->wants_grad = calloc((size_t)N, sizeof *x->wants_grad);
    if (!dense || !x->task || !x->worker || !x->npred || !x->succ_off || !x->fwd_subset ||
        !x->grad_subset || !x->update_subset ||
        !x->wants_grad) {
        free(dense);
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto fail;
    }
    int edges = 0;
    for (int i = 0; i < T; i++) {
        dense[order[i]] = i;
        const pml_task *t = pml_taskgraph_task(x->taskgraph, order[i]);
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
        x->worker[i] = pml_task_worker(t); /* the same device the simulator puts it on */
        x->fwd_subset[i] = t->kind == PML_TASK_FWD ||
                           (t->kind == PML_TASK_XFER && !t->grad && t->node != t->cnode);
        x->update_subset[i] = t->kind == PML_TASK_UPDATE;
        x->grad_subset[i] = !x->update_subset[i];
    }
    x->succ_off[T] = edges;
    free(dense);
    x->dag_step = (pml__dag){T, x->worker, x->npred, x->succ_off, x->succ, NULL, NULL, NULL, NULL};
    x->dag_infer = (pml__dag){T, x->worker, x->npred, x->succ_off, x->succ, x->fwd_subset, NULL, NULL, NULL};
    x->dag_grad = (pml__dag){T, x->worker, x->npred, x->succ_off, x->succ, x->grad_subset, NULL, NULL, NULL};
    x->dag_update = (pml__dag){T, x->worker, x->npred, x->succ_off, x->succ, x->update_subset, NULL, NULL, NULL};
    x->grad_tasks = calloc((size_t)N, sizeof *x->grad_tasks);
    x->grad_left = calloc((size_t)N, sizeof *x->grad_left);
    if (!x->grad_tasks || !x->grad_left) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < T; i++) {
        const pml_task *t = x->task[i];
        if (t->kind == PML_TASK_BWD && G->nodes[t->node].nparam > 0) x->grad_tasks[t->node]++;
        if (t->kind == PML_TASK_XFER && t->grad && t->node == t->cnode) x->grad_tasks[t->node]++;
        if (t->kind == PML_TASK_SYNC)
            for (int k = 0; k < t->nmembers; k++) x->grad_tasks[t->members[2 * k]]++;
    }
    x->grads_whole = true;
    for (int i = 0; i < T; i++)
        if (x->task[i]->kind == PML_TASK_UPDATE && x->task[i]->gdev != 0) x->grads_whole = false;

    /* which outputs need gradients (as the builder decides) */
    for (int k = 0; k < N; k++) {
        int v = G->order[k];
        bool w = G->nodes[v].nparam > 0;
        for (int i = 0; i < G->nodes[v].nin; i++) w |= x->wants_grad[G->nodes[v].in[i]];
        x->wants_grad[v] = w && v != G->loss;
    }

    /* buffers */
    x->out_grad = calloc((size_t)N * W, sizeof *x->out_grad);
    x->staging = calloc((size_t)N * PML_MAX_INPUTS * W, sizeof *x->staging);
    x->split_edge = calloc((size_t)N * PML_MAX_INPUTS, sizeof *x->split_edge);
    x->pulls = calloc((size_t)N, sizeof *x->pulls);
    x->npulls = calloc((size_t)N, sizeof *x->npulls);
    x->aux = calloc((size_t)N, sizeof *x->aux);
    x->replica_stats = calloc((size_t)N, sizeof *x->replica_stats);
    x->dev_grad = calloc((size_t)W, sizeof *x->dev_grad);
    x->workspace = calloc((size_t)W, sizeof *x->workspace);
    x->tstart = calloc((size_t)T, sizeof *x->tstart);
    x->tend = calloc((size_t)T, sizeof *x->tend);
    if (!x->out_grad || !x->staging || !x->split_edge || !x->pulls || !x->npulls || !x->aux ||
        !x->replica_stats || !x->dev_grad || !x->workspace || !x->tstart || !x->tend)
        goto nomem;
    x->e.labels = px_alloc(x, (size_t)B * sizeof *x->e.labels);
    x->e.params = px_alloc(x, (G->nparams + 1) * sizeof(float));
    x->e.state = px_alloc(x, (G->nstate + 1) * sizeof(float));
    if (!x->e.labels || !x->e.params || !x->e.state) goto nomem;
    for (int d = 0; d < W; d++) /* another rank's devices have no buffers here */
        if (x->local[d] >= 0 && !(x->dev_grad[d] = px_alloc(x, (G->nparams + 1) * sizeof(float))))
            goto nomem;
    x->e.grads = x->dev_grad[x->local_dev ? x->local_dev[0] : 0];
    pml_params_init(G, x->e.params, x->e.state, o->seed);
    size_t wsmax[256] = {0};
    for (int v = 0; v < N; v++) {
        const pml_node *nd = &G->nodes[v];
        const pml_opcfg *c = &x->plan.cfg[v];
        const int P = pml_opcfg_parts(c);
        const size_t full = (size_t)B * pml_shape_size(nd->out);
        if (nd->op == PML_OP_INPUT) {
            if (!(x->e.out[v] = px_alloc(x, full * sizeof(float)))) goto nomem;
            if (v == G->input) x->e.input = x->e.out[v]; /* the others: pml_exec_output's */
        } else if (!(x->e.out[v] = px_alloc(x, full * sizeof(float)))) {
            goto nomem;
        }
        size_t aux = nd->aux_per_sample * (size_t)B + nd->aux_fixed;
        if (aux && !(x->aux[v] = px_alloc(x, aux * P * sizeof(float)))) goto nomem;
        /* batchnorm split by samples or rows: replicas other than the first keep their running
         * statistics aside (the first replica's are the model's) */
        if (nd->nstate && (c->deg[0] > 1 || c->deg[2] > 1)) {
            if (!(x->replica_stats[v] = px_alloc(x, (size_t)P * sizeof(float *)))) goto nomem;
            for (int q = 0; q < P; q++) {
                pml_region r = pml_plan_part_region(G, v, c, B, q);
                if (r.n0 == 0 && r.h0 == 0) continue;
                float *s = px_alloc(x, (size_t)nd->nstate * nd->out.c * sizeof(float));
                if (!s) goto nomem;
                for (int j = 0; j < nd->nstate; j++)
                    for (int e = 0; e < nd->out.c; e++)
                        s[(size_t)j * nd->out.c + e] = nd->state_init[j] == PML_INIT_ONES ? 1.0f : 0.0f;
                x->replica_stats[v][q] = s;
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
        if (x->local[d] >= 0 &&
            !(x->workspace[d] = px_alloc(x, (wsmax[d < 256 ? d : 0] + 16) * sizeof(float))))
            goto nomem;
    /* gradient buffers: per device of a part of u or of a consumer part; staging for split edges */
    for (int v = 0; v < N; v++) {
        const pml_node *nd = &G->nodes[v];
        const pml_opcfg *cv = &x->plan.cfg[v];
        const int Pv = pml_opcfg_parts(cv);
        if (x->wants_grad[v])
            for (int q = 0; q < Pv; q++) {
                float **b = &x->out_grad[(size_t)v * W + cv->dev[q]];
                if (!*b && !(*b = px_alloc(x, (size_t)B * pml_shape_size(nd->out) * sizeof(float))))
                    goto nomem;
            }
        for (int i = 0; i < nd->nin; i++) {
            const int u = nd->in[i];
            const pml_opcfg *cu = &x->plan.cfg[u];
            bool *sp = px_alloc(x, (size_t)Pv * sizeof *sp);
            if (!sp) goto nomem;
            x->split_edge[v * PML_MAX_INPUTS + i] = sp;
            if (!x->wants_grad[u]) continue;
            const size_t usize = (size_t)B * pml_shape_size(G->nodes[u].out);
            for (int pp = 0; pp < Pv; pp++) {
                pml_region need = pml_node_in_region(G, v, i, pml_plan_part_region(G, v, cv, B, pp));
                if (pml_region_empty(need)) continue;
                for (int q = 0; q < pml_opcfg_parts(cu); q++)
                    if (cu->dev[q] != cv->dev[pp] &&
                        !pml_region_empty(pml_region_meet(need, pml_plan_part_region(G, u, cu, B, q))))
                        sp[pp] = true;
                int d = cv->dev[pp];
                float **b = sp[pp] ? &x->staging[((size_t)v * PML_MAX_INPUTS + i) * W + d]
                                   : &x->out_grad[(size_t)u * W + d];
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
                    float **own = &x->out_grad[(size_t)u * W + d];
                    if (!*own && !(*own = px_alloc(x, usize * sizeof(float)))) goto nomem;
                }
            }
        }
    }
    int cores[256];
    for (int d = 0; d < W && d < 256; d++) cores[d] = m->dev[m->compute[d]].first_core;
    if (nranks > 1) /* this rank's cores */
        for (int k = 0; k < x->nlocal && k < 256; k++) cores[k] = (o->first_core > 0 ? o->first_core : 0) + k;
    if ((st = pml_blas_room(x->nlocal)) != PML_OK) goto fail;
    if ((st = pml__workers_create(x->nlocal, cores, &x->e.workers)) != PML_OK) goto fail;
    if (nranks > 1 && (st = span_setup(x, o->dist)) != PML_OK) goto fail;
    *out = &x->e;
    return PML_OK;
nomem:
    st = pml_fail(PML_ENOMEM, "out of memory: the plan's buffers do not fit");
fail:
    plan_destroy(&x->e);
    return st;
}

static void plan_destroy(pml_exec *e)
{
    plan_exec *x = (plan_exec *)e;
    pml__exec_fini(e); /* the workers first: nothing runs any more */
    pml__link_destroy(x->link);
    free(x->dev_rank);
    free(x->local);
    free(x->local_dev);
    free(x->role);
    free(x->msg);
    free(x->xbuf);
    free(x->leader);
    free(x->rel_off);
    free(x->rel);
    free(x->upd_share);
    free(x->upd_nshare);
    free(x->upd_gdev);
    free(x->run_step);
    free(x->run_infer);
    free(x->ext_step);
    free(x->ext_infer);
    if (x->pulls)
        for (int v = 0; v < x->nnodes; v++)
            if (x->pulls[v] && x->npulls && x->npulls[v]) {
                const int P = pml_opcfg_parts(&x->plan.cfg[v]);
                for (int q = 0; q < P; q++)
                    if (x->npulls[v][q]) free(x->pulls[v][q]);
            }
    for (int i = 0; i < x->nallocs; i++) free(x->allocs[i]);
    free(x->allocs);
    pml_taskgraph_free(x->taskgraph);
    pml_plan_free(&x->plan);
    free(x->task);
    free(x->worker);
    free(x->npred);
    free(x->succ_off);
    free(x->succ);
    free(x->fwd_subset);
    free(x->grad_subset);
    free(x->update_subset);
    free(x->wants_grad);
    free(x->grad_tasks);
    free((void *)x->grad_left);
    free(x->out_grad);
    free(x->staging);
    free(x->split_edge);
    free(x->pulls);
    free(x->npulls);
    free(x->aux);
    free(x->replica_stats);
    free(x->dev_grad);
    free(x->workspace);
    free(x->tstart);
    free(x->tend);
    free(x->trace);
    free(x);
}

/* ---------------------------------------------------------------- steps */

/* One step on the first n samples (checked by exec.c): a training step (forward, backward,
 * sync, update) when o is not NULL, else an inference forward pass. */
/* A step's tasks: d, or (NULL) a whole training step when o is given, else an inference. */
static pml_status plan_run(plan_exec *x, int n, pml_optim *o, const pml__dag *d);

static pml_status plan_step(plan_exec *x, int n, pml_optim *o)
{
    return plan_run(x, n, o, NULL);
}

static pml_status plan_run(plan_exec *x, int n, pml_optim *o, const pml__dag *d)
{
    for (int i = n; i < x->e.batch; i++) x->e.labels[i] = -1; /* padding: no loss, no gradient */
    if (n < x->e.batch) /* and inputs of zeros: a padding sample's activations stay finite, so
                         * its zero gradients add nothing (0 times an inf from junk is NaN) */
        for (int v = 0; v < x->e.g.nnodes; v++)
            if (x->e.g.nodes[v].op == PML_OP_INPUT && x->e.out[v]) {
                const size_t per = pml_shape_size(x->e.g.nodes[v].out);
                memset(x->e.out[v] + (size_t)n * per, 0, (size_t)(x->e.batch - n) * per * sizeof(float));
            }
    x->optim = o;
    const bool timed = x->e.profiling || x->trace;
    double t0 = pml_now();
    if (!d) d = o ? &x->dag_step : &x->dag_infer;
    const bool train = d != &x->dag_infer;
    if (x->e.grad_ready && d != &x->dag_infer && d != &x->dag_update)
        for (int v = 0; v < x->nnodes; v++) atomic_store(&x->grad_left[v], x->grad_tasks[v]);
    pml_status st = pml__workers_run(x->e.workers, d, run_task, x,
                                     timed ? x->tstart : NULL, timed ? x->tend : NULL);
    if (x->link) { /* the run's messages, sends included, are complete */
        pml_status ls = pml__link_end(x->link, st == PML_OK);
        if (st == PML_OK) st = ls;
    }
    if (timed) {
        for (int i = 0; i < x->ntasks; i++) {
            if (x->tstart[i] < 0) continue;
            const pml_task *t = x->task[i];
            double dt = x->tend[i] - x->tstart[i];
            if (x->e.profiling) {
                if (t->kind == PML_TASK_FWD) x->e.prof_fwd[t->node] += dt;
                else if (t->kind == PML_TASK_BWD) x->e.prof_bwd[t->node] += dt;
                else if (t->kind == PML_TASK_UPDATE || t->kind == PML_TASK_SYNC) x->e.prof_update += dt;
            }
            if (x->trace && x->ntrace < x->maxtrace)
                x->trace[x->ntrace++] = (trace_ev){i, (int)x->e.step, train,
                                                   t0 - x->e.trace_t0 + x->tstart[i],
                                                   t0 - x->e.trace_t0 + x->tend[i]};
        }
    }
    return st;
}

static pml_status whole_steps_only(void)
{
    return pml_fail(PML_EUNSUPPORTED, "a plan runs whole training steps and inference passes only");
}

static pml_status plan_forward(pml_exec *e, int n, bool training)
{
    return training ? whole_steps_only() : plan_step((plan_exec *)e, n, NULL);
}

static pml_status plan_backward(pml_exec *e, int n)
{
    (void)e, (void)n;
    return whole_steps_only();
}

static pml_status plan_update(pml_exec *e, pml_optim *o)
{
    (void)e, (void)o;
    return whole_steps_only();
}

static pml_status plan_train_step(pml_exec *e, int n, pml_optim *o)
{
    return plan_step((plan_exec *)e, n, o);
}

static pml_status across_ranks_whole(void)
{
    return pml_fail(PML_EUNSUPPORTED, "a plan across ranks runs whole training steps and "
                                      "inference passes only");
}

static pml_status plan_grad_step(pml_exec *e, int n)
{
    plan_exec *x = (plan_exec *)e;
    if (x->link) return across_ranks_whole();
    if (!x->grads_whole)
        return pml_fail(PML_EUNSUPPORTED, "the plan updates parameters on devices other than the "
                                          "first: its gradients are not in one block");
    return plan_run(x, n, NULL, &x->dag_grad);
}

static pml_status plan_apply(pml_exec *e, pml_optim *o)
{
    plan_exec *x = (plan_exec *)e;
    if (x->link) return across_ranks_whole();
    return plan_run(x, x->e.n, o, &x->dag_update);
}

/* The loss and correct count: on one machine, of every sample; across ranks, each rank's
 * sum over the samples of its loss parts, summed over the ranks (collective). */
static pml_status plan_result(const pml_exec *e, int n, pml_step_result *res)
{
    const plan_exec *x = (const plan_exec *)e;
    if (!x->link) return pml__step_sums(e, 0, n, res);
    double sum[2] = {0, 0};
    for (int i = 0; i < x->ntasks; i++) {
        const pml_task *t = x->task[i];
        if (t->kind != PML_TASK_FWD || t->node != e->g.loss || x->role[i] != ROLE_HERE ||
            t->r.c0 != 0 || t->r.h0 != 0)
            continue;
        pml_step_result r = {0, 0};
        const int hi = t->r.n1 < n ? t->r.n1 : n;
        if (t->r.n0 >= hi) continue;
        pml__step_sums(e, t->r.n0, hi, &r); /* the finiteness check follows the sum */
        sum[0] += r.loss_sum;
        sum[1] += r.correct;
    }
    pml_status st = pml_dist_sum_doubles(x->e.o.dist, sum, 2);
    if (st != PML_OK) return st;
    res->loss_sum = sum[0];
    res->correct = (int)sum[1];
    return pml__step_check(e, res);
}

/* ---------------------------------------------------------------- Chrome trace */

static pml_status plan_trace_begin(pml_exec *e, long max_events)
{
    plan_exec *x = (plan_exec *)e;
    free(x->trace);
    x->trace = malloc((size_t)(max_events > 0 ? max_events : 1) * sizeof *x->trace);
    if (!x->trace) return pml_fail(PML_ENOMEM, "out of memory for a trace of %ld tasks", max_events);
    x->maxtrace = max_events;
    x->ntrace = 0;
    x->e.trace_t0 = pml_now();
    return PML_OK;
}

/* The trace in three parts (pml__exec_trace_emit): the head (otherData and the first event,
 * process 0's name), the events of process `pid` (each line starting with a comma: they follow
 * the head, or another process's events), the end. */
static pml_status plan_trace_emit(pml_exec *e, FILE *f, int part, int pid, int ranks)
{
    plan_exec *x = (plan_exec *)e;
    if (!x->trace) return pml_fail(PML_EINVAL, "no trace was recorded");
    if (part == PML__TRACE_HEAD) {
        fprintf(f, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"model\":");
        pml_json_str(f, x->e.g.name);
        fprintf(f, ",\"machine\":");
        pml_json_str(f, x->machine->name);
        fprintf(f, ",\"fingerprint\":\"%s\",\"batch\":%d,\"strategy\":", x->machine->fingerprint,
                x->e.batch);
        pml_json_str(f, x->plan.strategy);
        fprintf(f, ",\"devices\":%d,\"parameters\":%zu,\"ranks\":%d%s},\n\"traceEvents\":[\n",
                x->ndev, pml_graph_param_count(&x->e.g), ranks, x->link ? ",\"across\":true" : "");
        fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":0,\"args\":{\"name\":\"rank 0\"}}");
        return PML_OK;
    }
    if (part == PML__TRACE_END) {
        fprintf(f, "\n]}\n");
        return PML_OK;
    }
    if (pid > 0)
        fprintf(f, ",\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}}",
                pid, pid);
    for (int d = 0; d < x->ndev; d++) {
        if (x->local[d] < 0) continue; /* another rank's */
        fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":",
                pid, d);
        pml_json_str(f, x->machine->dev[x->machine->compute[d]].name);
        fprintf(f, "}}");
    }
    for (long i = 0; i < x->ntrace; i++) {
        const trace_ev *ev = &x->trace[i];
        const pml_task *t = x->task[ev->task];
        const int dev = x->local_dev ? x->local_dev[x->worker[ev->task]] : x->worker[ev->task];
        /* across ranks, a transfer or sum shows on both ends: the simulator's is the one on
         * its worker's device, the other end is a message */
        const char *kind = x->link && dev != pml_task_worker(t)
                               ? "message"
                               : pml_task_kind_name((pml_task_kind)t->kind);
        char name[256];
        task_name(x, t, name, sizeof name);
        fprintf(f, ",\n{\"name\":");
        pml_json_str(f, name);
        fprintf(f, ",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,"
                   "\"args\":{\"step\":%d,\"phase\":\"%s\",\"kind\":\"%s\",\"node\":",
                kind, pid, dev, ev->start * 1e6, (ev->end - ev->start) * 1e6, ev->step,
                ev->train ? "train" : "eval", kind);
        pml_json_str(f, t->node >= 0 ? x->e.g.nodes[t->node].name : "");
        fprintf(f, ",\"part\":%d,\"key\":\"%016llx\"}}", t->part, (unsigned long long)t->key);
    }
    return PML_OK;
}

static pml_status plan_trace_write(pml_exec *e, const char *path)
{
    plan_exec *x = (plan_exec *)e;
    if (!x->trace) return pml_fail(PML_EINVAL, "no trace was recorded");
    pml_afile af;
    pml_status st = pml_afile_open(&af, path);
    if (st != PML_OK) return st;
    plan_trace_emit(e, af.f, PML__TRACE_HEAD, 0, 1);
    plan_trace_emit(e, af.f, PML__TRACE_EVENTS, 0, 1);
    plan_trace_emit(e, af.f, PML__TRACE_END, 0, 1);
    return pml_afile_commit(&af);
}

static const pml__exec_impl plan_impl = {
    .name = "plan",
    .destroy = plan_destroy,
    .forward = plan_forward,
    .backward = plan_backward,
    .update = plan_update,
    .train_step = plan_train_step,
    .grad_step = plan_grad_step,
    .apply = plan_apply,
    .trace_begin = plan_trace_begin,
    .trace_write = plan_trace_write,
    .trace_emit = plan_trace_emit,
    .result = plan_result,
    .owned = plan_owned,
};
