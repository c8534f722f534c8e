/* Task-runtime tests: the workers run DAGs in dependency order on several workers, again and
 * again, subsets, failures stop a run without a hang, cycles are refused. */
#include "models/models.h"
#include "planner/planner.h"
#include "runtime/exec.h"
#include "runtime/runtime.h"
#include "runtime/workers.h"
#include "test.h"

#include <math.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct dagbuf {
    int n;
    int *worker, *npred, *succ_off, *succ;
    pml__dag d;
} dagbuf;

/* a random DAG: edges only from lower to higher ids */
static void make_dag(dagbuf *b, int n, int workers, int fanout, uint64_t seed)
{
    b->n = n;
    b->worker = malloc((size_t)n * sizeof *b->worker);
    b->npred = calloc((size_t)n, sizeof *b->npred);
    b->succ_off = malloc((size_t)(n + 1) * sizeof *b->succ_off);
    b->succ = malloc((size_t)n * fanout * sizeof *b->succ);
    int e = 0;
    for (int t = 0; t < n; t++) {
        b->worker[t] = (int)(pml_rand_u64(seed, 1, (uint64_t)t) % (uint64_t)workers);
        b->succ_off[t] = e;
        for (int k = 0; k < fanout && t + 1 < n; k++) {
            int u = t + 1 + (int)(pml_rand_u64(seed, 2, (uint64_t)(t * fanout + k)) % (uint64_t)(n - t - 1 < 8 ? n - t - 1 : 8));
            bool dup = false;
            for (int j = b->succ_off[t]; j < e; j++) dup |= b->succ[j] == u;
            if (dup) continue;
            b->succ[e++] = u;
            b->npred[u]++;
        }
    }
    b->succ_off[n] = e;
    b->d = (pml__dag){n, b->worker, b->npred, b->succ_off, b->succ, NULL, NULL, NULL, NULL};
}

static void free_dag(dagbuf *b)
{
    free(b->worker);
    free(b->npred);
    free(b->succ_off);
    free(b->succ);
}

typedef struct order_ctx {
    const dagbuf *b;
    _Atomic int clock;
    int *done_at;        /* completion tick of each task */
    _Atomic int bad;     /* a task ran before a predecessor finished, or on the wrong worker */
    int fail_task;       /* this task fails (-1: none) */
} order_ctx;

static pml_status order_fn(void *ctx, int task, int worker)
{
    order_ctx *c = ctx;
    const dagbuf *b = c->b;
    if (worker != b->worker[task]) atomic_fetch_add(&c->bad, 1);
    /* every predecessor has finished: scan the edges into this task */
    for (int t = 0; t < task; t++)
        for (int k = b->succ_off[t]; k < b->succ_off[t + 1]; k++)
            if (b->succ[k] == task && (!b->d.run || b->d.run[t]) && c->done_at[t] < 0)
                atomic_fetch_add(&c->bad, 1);
    if (task == c->fail_task) return pml_fail(PML_ENUMERIC, "task %d failed on purpose", task);
    c->done_at[task] = atomic_fetch_add(&c->clock, 1);
    return PML_OK;
}

static void run_checked(pml__workers *s, dagbuf *b, int runs)
{
    order_ctx c = {.b = b, .fail_task = -1};
    c.done_at = malloc((size_t)b->n * sizeof *c.done_at);
    double *st = malloc((size_t)b->n * sizeof *st), *en = malloc((size_t)b->n * sizeof *en);
    for (int r = 0; r < runs; r++) {
        for (int t = 0; t < b->n; t++) c.done_at[t] = -1;
        atomic_store(&c.clock, 0);
        CHECK_OK(pml__workers_run(s, &b->d, order_fn, &c, st, en));
        int ran = 0;
        for (int t = 0; t < b->n; t++) {
            bool want = !b->d.run || b->d.run[t];
            ran += c.done_at[t] >= 0;
            CHECK((c.done_at[t] >= 0) == want);
            if (want) CHECK(st[t] >= 0 && en[t] >= st[t]);
        }
        CHECK(atomic_load(&c.clock) == ran);
    }
    CHECK(atomic_load(&c.bad) == 0);
    free(c.done_at);
    free(st);
    free(en);
}

static void t_runs_in_order(void)
{
    for (int workers = 1; workers <= 3; workers++) {
        pml__workers *s = NULL;
        CHECK_OK(pml__workers_create(workers, NULL, &s));
        if (!s) return;
        dagbuf b;
        make_dag(&b, 300, workers, 3, 42 + (uint64_t)workers);
        run_checked(s, &b, 20);
        free_dag(&b);
        pml__workers_destroy(s);
    }
}

static void t_chain_and_wide(void)
{
    pml__workers *s = NULL;
    CHECK_OK(pml__workers_create(2, NULL, &s));
    if (!s) return;
    /* a chain alternating between the workers */
    enum { N = 2000 };
    dagbuf b;
    b.n = N;
    b.worker = malloc(N * sizeof(int));
    b.npred = malloc(N * sizeof(int));
    b.succ_off = malloc((N + 1) * sizeof(int));
    b.succ = malloc(N * sizeof(int));
    for (int t = 0; t < N; t++) {
        b.worker[t] = t % 2;
        b.npred[t] = t > 0;
        b.succ_off[t] = t;
        b.succ[t] = t + 1;
    }
    b.succ_off[N] = N - 1;
    b.d = (pml__dag){N, b.worker, b.npred, b.succ_off, b.succ, NULL, NULL, NULL, NULL};
    run_checked(s, &b, 3);
    /* a wide graph: task 0 -> 1..N-2 -> N-1 */
    free(b.succ);
    b.succ = malloc(2 * N * sizeof(int));
    int e = 0;
    for (int t = 0; t < N; t++) {
        b.succ_off[t] = e;
        if (t == 0)
            for (int u = 1; u < N - 1; u++) b.succ[e++] = u;
        else if (t < N - 1)
            b.succ[e++] = N - 1;
        b.npred[t] = t == 0 ? 0 : (t == N - 1 ? N - 2 : 1);
    }
    b.succ_off[N] = e;
    b.d = (pml__dag){N, b.worker, b.npred, b.succ_off, b.succ, NULL, NULL, NULL, NULL};
    run_checked(s, &b, 3);
    free_dag(&b);
    pml__workers_destroy(s);
}

static void t_subset(void)
{
    pml__workers *s = NULL;
    CHECK_OK(pml__workers_create(2, NULL, &s));
    if (!s) return;
    dagbuf b;
    make_dag(&b, 200, 2, 2, 7);
    bool *run = malloc(200 * sizeof *run);
    for (int t = 0; t < 200; t++) run[t] = t < 120; /* a prefix is closed under predecessors */
    b.d.run = run;
    run_checked(s, &b, 5);
    b.d.run = NULL;
    run_checked(s, &b, 2);
    free(run);
    free_dag(&b);
    pml__workers_destroy(s);
}

static void t_failure_stops(void)
{
    pml__workers *s = NULL;
    CHECK_OK(pml__workers_create(2, NULL, &s));
    if (!s) return;
    dagbuf b;
    make_dag(&b, 500, 2, 2, 9);
    order_ctx c = {.b = &b, .fail_task = 250};
    c.done_at = malloc(500 * sizeof *c.done_at);
    for (int r = 0; r < 5; r++) {
        for (int t = 0; t < 500; t++) c.done_at[t] = -1;
        pml_status st = pml__workers_run(s, &b.d, order_fn, &c, NULL, NULL);
        CHECK(st == PML_ENUMERIC && strstr(pml_errmsg(), "task 250 failed"));
        CHECK(c.done_at[499] < 0 || c.done_at[499] >= 0); /* ran or not: no hang is the point */
    }
    /* and the workers still work */
    c.fail_task = -1;
    for (int t = 0; t < 500; t++) c.done_at[t] = -1;
    CHECK_OK(pml__workers_run(s, &b.d, order_fn, &c, NULL, NULL));
    for (int t = 0; t < 500; t++) CHECK(c.done_at[t] >= 0);
    free(c.done_at);
    free_dag(&b);
    pml__workers_destroy(s);
}

static void t_bad_dags(void)
{
    pml__workers *s = NULL;
    CHECK_OK(pml__workers_create(2, NULL, &s));
    if (!s) return;
    /* 0 -> 1 -> 2 -> 1: a cycle behind a root */
    int worker[3] = {0, 1, 0}, npred[3] = {0, 2, 1}, off[4] = {0, 1, 2, 3}, succ[3] = {1, 2, 1};
    pml__dag d = {3, worker, npred, off, succ, NULL, NULL, NULL, NULL};
    order_ctx c = {.fail_task = -1};
    int done[3];
    c.done_at = done;
    dagbuf b = {.n = 3, .worker = worker, .npred = npred, .succ_off = off, .succ = succ, .d = d};
    c.b = &b;
    CHECK(pml__workers_run(s, &d, order_fn, &c, NULL, NULL) == PML_EINVAL &&
          strstr(pml_errmsg(), "cycle"));
    /* 0 -> 1 -> 2, with task 1 on a worker that does not exist */
    worker[1] = 5;
    npred[1] = 1;
    off[3] = 2;
    CHECK(pml__workers_run(s, &d, order_fn, &c, NULL, NULL) == PML_EINVAL &&
          strstr(pml_errmsg(), "worker 5"));
    pml__workers_destroy(s);
    CHECK(pml__workers_create(0, NULL, &s) == PML_EINVAL);
}

/* Tasks that also wait for events outside the run (messages from another process): released
 * from another thread, started by the run's begin hook; none runs before its release. */
typedef struct ext_ctx {
    pml__workers *s;
    pthread_t thr;
    _Atomic int released[4], ran_after[4], seq;
    int order[4];
} ext_ctx;

static void *ext_releaser(void *arg)
{
    ext_ctx *c = arg;
    const int which[2] = {2, 3};
    for (int k = 0; k < 2; k++) {
        struct timespec ts = {0, 2000000}; /* 2 ms: the workers have gone to sleep */
        nanosleep(&ts, NULL);
        atomic_store(&c->released[which[k]], 1);
        pml__workers_release(c->s, which[k]);
    }
    return NULL;
}

static void ext_begin(void *arg)
{
    ext_ctx *c = arg;
    CHECK(pthread_create(&c->thr, NULL, ext_releaser, c) == 0);
}

static pml_status ext_task(void *ctx, int task, int worker)
{
    (void)worker;
    ext_ctx *c = ctx;
    c->order[task] = atomic_fetch_add(&c->seq, 1);
    atomic_store(&c->ran_after[task], task < 2 || atomic_load(&c->released[task]));
    return PML_OK;
}

static void t_outside_events(void)
{
    pml__workers *s = NULL;
    CHECK_OK(pml__workers_create(2, NULL, &s));
    if (!s) return;
    /* 0 -> 1 -> 3, 2 -> 3; task 2 waits for one outside event, task 3 for one more */
    int worker[4] = {0, 1, 1, 0}, npred[4] = {0, 1, 0, 2}, off[5] = {0, 1, 2, 3, 3},
        succ[3] = {1, 3, 3}, ext[4] = {0, 0, 1, 1};
    for (int round = 0; round < 20; round++) {
        ext_ctx c;
        memset(&c, 0, sizeof c);
        c.s = s;
        pml__dag d = {4, worker, npred, off, succ, NULL, ext, ext_begin, &c};
        CHECK_OK(pml__workers_run(s, &d, ext_task, &c, NULL, NULL));
        pthread_join(c.thr, NULL);
        for (int t = 0; t < 4; t++) CHECK(atomic_load(&c.ran_after[t]));
        CHECK(c.order[3] == 3 && c.order[0] < c.order[1]);
    }
    pml__workers_destroy(s);
}

/* ---------------------------------------------------------------- plans against the reference */

/* n samples into x; the rest of the batch (a short step's padding) NaN, as junk a buffer may
 * hold: a plan's padding samples must not spread it into the gradients */
static void fill_into(pml_exec *e, float *x, const pml_graph *g, int n, uint64_t seed)
{
    size_t sz = pml_shape_size(g->nodes[g->input].out);
    int32_t *y = pml_exec_labels(e);
    for (size_t i = 0; i < (size_t)n * sz; i++) x[i] = pml_rand_unif(seed, 1, i);
    for (size_t i = (size_t)n * sz; i < (size_t)e->batch * sz; i++) x[i] = NAN;
    for (int i = 0; i < n; i++) y[i] = (int32_t)(pml_rand_u64(seed, 2, (uint64_t)i) % (uint64_t)g->classes);
}

static void fill(pml_exec *e, const pml_graph *g, int n, uint64_t seed)
{
    fill_into(e, pml_exec_input(e), g, n, seed);
}

/* losses of `steps` Adam steps, batch b (the last one short when n < b); every other step reads
 * its batch from a buffer of the caller's (pml_exec_use_input), the executor's own holding NaN */
static bool losses(const pml_graph *g, const pml_exec_opts *o, int steps, int short_n, double *out)
{
    pml_exec *e = NULL;
    pml_optim opt;
    pml_status st = pml_exec_create(g, o, &e);
    CHECK_MSG(st == PML_OK, "%s", pml_errmsg());
    if (st != PML_OK) return false;
    pml_optim_defaults(&opt, PML_OPTIM_ADAM);
    CHECK_OK(pml_optim_alloc(&opt, g->nparams));
    bool ok = true;
    const size_t sz = (size_t)o->batch * pml_shape_size(g->nodes[g->input].out);
    /* the second of two batches laid end to end, as a loader's chunk holds them */
    const size_t stride = pml_exec_input_stride(o->batch, pml_shape_size(g->nodes[g->input].out));
    CHECK(stride >= sz && stride < sz + 16 && stride % 16 == 0);
    float *chunk = aligned_alloc(64, 2 * stride * sizeof *chunk), *mine = chunk ? chunk + stride : NULL;
    CHECK(mine != NULL);
    for (int s = 0; s < steps && ok && mine; s++) {
        int n = s == steps - 1 && short_n ? short_n : o->batch;
        if (s % 2) {
            for (size_t i = 0; i < sz; i++) pml_exec_input(e)[i] = NAN;
            fill_into(e, mine, g, n, 1000 + (uint64_t)(s % 3));
            pml_exec_use_input(e, mine);
        } else {
            pml_exec_use_input(e, NULL);
            fill(e, g, n, 1000 + (uint64_t)(s % 3));
        }
        pml_step_result r;
        st = pml_exec_train_step(e, n, &opt, &r);
        CHECK_MSG(st == PML_OK, "step %d: %s", s, pml_errmsg());
        ok = st == PML_OK;
        out[s] = r.loss_sum / n;
    }
    if (ok) { /* and inference */
        pml_step_result r;
        pml_exec_use_input(e, NULL);
        fill(e, g, o->batch, 7);
        CHECK_OK(pml_exec_forward(e, o->batch, false, &r));
        out[steps] = r.loss_sum / o->batch;
    }
    pml_optim_free(&opt);
    pml_exec_destroy(e);
    free(chunk);
    return ok;
}

typedef enum { PLAN_DATA, PLAN_PARAM, PLAN_ATTR, PLAN_LAYERS, PLAN_MIXED } plan_kind;
static const char *const plan_names[] = {"data", "param", "attr", "layers", "mixed"};

static void make_plan(const pml_graph *g, const pml_machine *m, int batch, plan_kind k,
                      uint64_t seed, pml_plan *p)
{
    if (k == PLAN_LAYERS) {
        /* operators alternate between the devices: every edge crosses */
        CHECK_OK(pml_plan_init(p, g, batch));
        for (int i = 0; i < g->nnodes; i++) p->cfg[g->order[i]].dev[0] = (int16_t)(i % m->ncompute);
        return;
    }
    CHECK_OK(pml_plan_data_parallel(p, g, m, batch));
    for (int v = 0; v < g->nnodes; v++) {
        const pml_node *n = &g->nodes[v];
        pml_opcfg c;
        memset(&c, 0, sizeof c);
        c.deg[0] = c.deg[1] = c.deg[2] = 1;
        const unsigned ok = pml_ops[n->op].splits;
        const int D = m->ncompute;
        if (k == PLAN_MIXED) {
            pml_opcfg_random(g, m, batch, v, seed, (uint64_t)v, &c);
            if ((pml_ops[n->op].approx_splits & (c.deg[0] > 1 ? PML_SPLIT_SAMPLE : 0)) ||
                (pml_ops[n->op].approx_splits & (c.deg[2] > 1 ? PML_SPLIT_ATTR : 0)))
                continue; /* keep numerics exact */
        } else if (k == PLAN_PARAM && (ok & PML_SPLIT_PARAM) && n->out.c % D == 0) {
            c.deg[1] = D;
        } else if (k == PLAN_ATTR && (ok & PML_SPLIT_ATTR) && n->out.h % D == 0 && n->out.h > 1) {
            c.deg[2] = D;
        } else if (k != PLAN_DATA) {
            c.dev[0] = (int16_t)(v % D); /* whole, on some device */
        } else {
            continue;
        }
        for (int q = pml_opcfg_parts(&c); k != PLAN_MIXED && q-- > 0;) c.dev[q] = (int16_t)q;
        p->cfg[v] = c;
    }
    CHECK_OK(pml_plan_check(p, g, m));
}

static void plans_match_reference(const char *spec, int batch, int steps, bool learns)
{
    pml_graph g;
    pml_machine m;
    CHECK_OK(pml_model_load(spec, &g));
    CHECK_OK(pml_machine_load("synthetic:pack:1 core:2 pu:1", &m));
    /* a synthetic machine is not present: use this machine when it has 2 cores, else skip the
     * plan runs (the simulator tests cover the rest) */
    pml_machine here;
    CHECK_OK(pml_machine_load(NULL, &here));
    if (here.ncompute < 2) {
        SKIP("this machine has one core: plan runs need two");
        pml_machine_free(&here);
        pml_machine_free(&m);
        pml_graph_free(&g);
        return;
    }
    double ref[64], got[64];
    pml_exec_opts o = {.batch = batch, .threads = 1, .seed = 5, .reference = true};
    if (!losses(&g, &o, steps, batch - 1, ref)) goto out;
    for (int k = PLAN_DATA; k <= PLAN_MIXED; k++) {
        pml_plan p;
        make_plan(&g, &here, batch, (plan_kind)k, 11, &p);
        pml_exec_opts po = {.batch = batch, .seed = 5, .machine = &here, .plan = &p};
        if (losses(&g, &po, steps, batch - 1, got)) {
            int bad = 0;
            for (int s = 0; s <= steps; s++)
                if (!(fabs(got[s] - ref[s]) <= 1e-4 * fmax(1.0, fabs(ref[s])))) {
                    if (bad++ < 2)
                        fprintf(stderr, "  %s, %s plan, step %d: loss %.8g, reference %.8g\n", spec,
                                plan_names[k], s, got[s], ref[s]);
                }
            CHECK_MSG(bad == 0, "%s, %s plan: %d steps differ", spec, plan_names[k], bad);
        }
        pml_plan_free(&p);
    }
    if (learns) CHECK(ref[steps - 2] < ref[0]); /* it learns (the last step is short) */
out:
    pml_machine_free(&here);
    pml_machine_free(&m);
    pml_graph_free(&g);
}

static void t_plan_mlp(void) { plans_match_reference("mlp:units=32,layers=2,size=8", 8, 50, true); }
static void t_plan_fashion(void)
{
    plans_match_reference("fashion-cnn:size=12,filters=4,units=16", 8, 50, true);
}
static void t_plan_flowers(void) { plans_match_reference("flowers-cnn:size=16", 4, 50, true); }
/* dropout masks follow the step and element, whatever the split */
static void t_plan_dropout(void)
{
    plans_match_reference("mlp:units=16,layers=2,size=6,dropout=0.25", 6, 20, false);
}
/* concat of rows and columns: a part reads its share of each input's rows */
static void t_plan_concat_axes(void)
{
    plans_match_reference("fixtures/models/good_concat_axes.dot", 4, 30, true);
}

/* adds with a learned addend: replicas sum its gradient, a channel part owns its block */
static void t_plan_addend(void)
{
    plans_match_reference("fixtures/models/good_addend.dot", 4, 30, true);
}

/* 3-D windows, activations and a mul by a value per channel: a row part reads the planes its
 * planes' windows span (that it learns, test_exec checks: batches of 4 and a squeeze-and-
 * excitation block take longer than these steps) */
static void t_plan_volumetric(void)
{
    plans_match_reference("fixtures/models/good_volumetric.dot", 4, 30, false);
}

/* matmul both ways: a part of rows or matrices reads its rows of the first input, and all
 * of the second's or its matrices */
static void t_plan_matmul(void)
{
    plans_match_reference("fixtures/models/good_matmul.dot", 4, 30, true);
}

/* ---------------------------------------------------------------- gradient-ready hook */

/* What the hook saw: each node's parameter gradient when it was called (it must be final then),
 * and how often it was called (once per node with parameters and step). */
typedef struct hook_seen {
    const pml_graph *g;
    pml_exec *e;
    float *snap; /* nparams */
    _Atomic int *calls; /* [node] */
} hook_seen;

static void hook_copy(void *ctx, int v)
{
    hook_seen *h = ctx;
    const pml_node *n = &h->g->nodes[v];
    const float *gr = pml_exec_grads(h->e);
    for (int j = 0; j < n->nparam; j++)
        memcpy(h->snap + n->param_off[j], gr + n->param_off[j], n->param_size[j] * sizeof(float));
    atomic_fetch_add(&h->calls[v], 1);
}

/* Runs 3 steps (gradients, then updates) with the hook and checks what it saw. \return false
 * when the executor cannot give its gradients in one block (a plan updating elsewhere). */
static bool hook_run(const pml_graph *g, const pml_exec_opts *o, const char *what)
{
    pml_exec *e = NULL;
    CHECK_OK(pml_exec_create(g, o, &e));
    if (!e) return false;
    hook_seen h = {g, e, calloc(g->nparams + 1, sizeof(float)), calloc((size_t)g->nnodes, sizeof(_Atomic int))};
    e->grad_ready = hook_copy;
    e->grad_ready_ctx = &h;
    pml_optim opt;
    pml_optim_defaults(&opt, PML_OPTIM_ADAM);
    CHECK_OK(pml_optim_alloc(&opt, g->nparams));
    bool ran = true;
    for (int s = 0; s < 3 && ran; s++) {
        for (int v = 0; v < g->nnodes; v++) atomic_store(&h.calls[v], 0);
        memset(h.snap, 0, g->nparams * sizeof(float));
        fill(e, g, o->batch, 40 + (uint64_t)s);
        pml_step_result r;
        pml_status st = pml_exec_grad_step(e, o->batch, &r);
        if (st == PML_EUNSUPPORTED) {
            ran = false;
            break;
        }
        CHECK_MSG(st == PML_OK, "%s: %s", what, pml_errmsg());
        const float *gr = pml_exec_grads(e);
        for (int v = 0; v < g->nnodes; v++) {
            const pml_node *n = &g->nodes[v];
            const int want = n->nparam > 0;
            CHECK_MSG(atomic_load(&h.calls[v]) == want, "%s, step %d, node %s: %d calls", what, s,
                      n->name, atomic_load(&h.calls[v]));
            size_t diff = 0;
            for (int j = 0; j < n->nparam; j++)
                for (size_t i = 0; i < n->param_size[j]; i++)
                    diff += h.snap[n->param_off[j] + i] != gr[n->param_off[j] + i];
            CHECK_MSG(diff == 0, "%s, step %d, node %s: %zu gradients changed after the hook", what,
                      s, n->name, diff);
        }
        CHECK_OK(pml_exec_apply(e, &opt));
    }
    pml_optim_free(&opt);
    free(h.snap);
    free((void *)h.calls);
    pml_exec_destroy(e);
    return ran;
}

static void t_grad_ready_hook(void)
{
    pml_graph g;
    CHECK_OK(pml_model_build("fashion-cnn:size=12,filters=4,units=16", &g));
    pml_exec_opts o = {.batch = 8, .threads = 2, .seed = 5};
    hook_run(&g, &o, "per-operator, 2 threads");
    pml_machine here;
    CHECK_OK(pml_machine_load(NULL, &here));
    int ran = 0;
    for (int k = PLAN_DATA; here.ncompute >= 2 && k <= PLAN_MIXED; k++) {
        pml_plan p;
        make_plan(&g, &here, 8, (plan_kind)k, 11, &p);
        pml_exec_opts po = {.batch = 8, .seed = 5, .machine = &here, .plan = &p};
        ran += hook_run(&g, &po, plan_names[k]);
        pml_plan_free(&p);
    }
    if (here.ncompute >= 2) CHECK_MSG(ran >= 2, "%d plans gave their gradients in one block", ran);
    pml_machine_free(&here);
    pml_graph_free(&g);
}

static const pml_test tests[] = {
    {"runs_in_order", t_runs_in_order},
    {"chain_and_wide", t_chain_and_wide},
    {"subset", t_subset},
    {"failure_stops", t_failure_stops},
    {"bad_dags", t_bad_dags},
    {"outside_events", t_outside_events},
    {"plan_mlp", t_plan_mlp},
    {"plan_fashion", t_plan_fashion},
    {"plan_flowers", t_plan_flowers},
    {"plan_dropout", t_plan_dropout},
    {"plan_concat_axes", t_plan_concat_axes},
    {"plan_addend", t_plan_addend},
    {"plan_volumetric", t_plan_volumetric},
    {"plan_matmul", t_plan_matmul},
    {"grad_ready_hook", t_grad_ready_hook},
    {0, 0},
};

PML_TEST_MAIN(tests)
