/* Task-runtime tests: the scheduler runs DAGs in dependency order on several workers, again and
 * again, subsets, failures stop a run without a hang, cycles are refused. */
#include "scheduler.h"
#include "test.h"

#include <stdatomic.h>
#include <stdlib.h>

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
    b->d = (pml__dag){n, b->worker, b->npred, b->succ_off, b->succ, NULL};
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

static void run_checked(pml__sched *s, dagbuf *b, int runs)
{
    order_ctx c = {.b = b, .fail_task = -1};
    c.done_at = malloc((size_t)b->n * sizeof *c.done_at);
    double *st = malloc((size_t)b->n * sizeof *st), *en = malloc((size_t)b->n * sizeof *en);
    for (int r = 0; r < runs; r++) {
        for (int t = 0; t < b->n; t++) c.done_at[t] = -1;
        atomic_store(&c.clock, 0);
        CHECK_OK(pml__sched_run(s, &b->d, order_fn, &c, st, en));
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
        pml__sched *s = NULL;
        CHECK_OK(pml__sched_create(workers, NULL, &s));
        if (!s) return;
        dagbuf b;
        make_dag(&b, 300, workers, 3, 42 + (uint64_t)workers);
        run_checked(s, &b, 20);
        free_dag(&b);
        pml__sched_destroy(s);
    }
}

static void t_chain_and_wide(void)
{
    pml__sched *s = NULL;
    CHECK_OK(pml__sched_create(2, NULL, &s));
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
    b.d = (pml__dag){N, b.worker, b.npred, b.succ_off, b.succ, NULL};
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
    b.d = (pml__dag){N, b.worker, b.npred, b.succ_off, b.succ, NULL};
    run_checked(s, &b, 3);
    free_dag(&b);
    pml__sched_destroy(s);
}

static void t_subset(void)
{
    pml__sched *s = NULL;
    CHECK_OK(pml__sched_create(2, NULL, &s));
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
    pml__sched_destroy(s);
}

static void t_failure_stops(void)
{
    pml__sched *s = NULL;
    CHECK_OK(pml__sched_create(2, NULL, &s));
    if (!s) return;
    dagbuf b;
    make_dag(&b, 500, 2, 2, 9);
    order_ctx c = {.b = &b, .fail_task = 250};
    c.done_at = malloc(500 * sizeof *c.done_at);
    for (int r = 0; r < 5; r++) {
        for (int t = 0; t < 500; t++) c.done_at[t] = -1;
        pml_status st = pml__sched_run(s, &b.d, order_fn, &c, NULL, NULL);
        CHECK(st == PML_ENUMERIC && strstr(pml_errmsg(), "task 250 failed"));
        CHECK(c.done_at[499] < 0 || c.done_at[499] >= 0); /* ran or not: no hang is the point */
    }
    /* and the scheduler still works */
    c.fail_task = -1;
    for (int t = 0; t < 500; t++) c.done_at[t] = -1;
    CHECK_OK(pml__sched_run(s, &b.d, order_fn, &c, NULL, NULL));
    for (int t = 0; t < 500; t++) CHECK(c.done_at[t] >= 0);
    free(c.done_at);
    free_dag(&b);
    pml__sched_destroy(s);
}

static void t_bad_dags(void)
{
    pml__sched *s = NULL;
    CHECK_OK(pml__sched_create(2, NULL, &s));
    if (!s) return;
    /* 0 -> 1 -> 2 -> 1: a cycle behind a root */
    int worker[3] = {0, 1, 0}, npred[3] = {0, 2, 1}, off[4] = {0, 1, 2, 3}, succ[3] = {1, 2, 1};
    pml__dag d = {3, worker, npred, off, succ, NULL};
    order_ctx c = {.fail_task = -1};
    int done[3];
    c.done_at = done;
    dagbuf b = {.n = 3, .worker = worker, .npred = npred, .succ_off = off, .succ = succ, .d = d};
    c.b = &b;
    CHECK(pml__sched_run(s, &d, order_fn, &c, NULL, NULL) == PML_EINVAL &&
          strstr(pml_errmsg(), "cycle"));
    /* 0 -> 1 -> 2, with task 1 on a worker that does not exist */
    worker[1] = 5;
    npred[1] = 1;
    off[3] = 2;
    CHECK(pml__sched_run(s, &d, order_fn, &c, NULL, NULL) == PML_EINVAL &&
          strstr(pml_errmsg(), "worker 5"));
    pml__sched_destroy(s);
    CHECK(pml__sched_create(0, NULL, &s) == PML_EINVAL);
}

static const pml_test tests[] = {
    {"runs_in_order", t_runs_in_order},
    {"chain_and_wide", t_chain_and_wide},
    {"subset", t_subset},
    {"failure_stops", t_failure_stops},
    {"bad_dags", t_bad_dags},
    {0, 0},
};

PML_TEST_MAIN(tests)
