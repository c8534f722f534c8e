/* pml — the workers (see workers.h).
 *
 * A DAG run: counters[t] = unfinished predecessors (in the subset). Each worker has a ready
 * queue: a ring of capacity = its task count, where producers claim a slot with an atomic ticket
 * and publish the task id, and the owner consumes in order — so each worker runs its ready tasks
 * first come, first served, as the simulator assumes. A worker with nothing ready spins, then
 * sleeps on its queue's futex; a producer wakes it only if it is asleep.
 * A fork-join run: every worker calls the function once. Either way the caller starts a run by
 * bumping the generation (the idle workers' futex word) and waits for `finished`. */
#include "workers.h"
#include "sync.h"

#include "runtime/runtime.h"

#include <hwloc.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define SPIN 4000 /* polls of an empty queue before sleeping (a few microseconds) */

typedef struct queue {
    _Atomic uint32_t tail; /* tickets handed out */
    uint32_t head;         /* next ticket to consume (owner only) */
    _Atomic int *slot;     /* ring: task id + 1, 0 = not yet published */
    int cap;
    _Atomic int asleep;    /* the owner sleeps (or is about to) on bell */
    _Atomic uint32_t bell; /* futex word: rung to wake the owner */
    char pad[64];
} queue;

struct pml__workers {
    int nw;
    uv_thread_t *thr;
    struct warg *args;
    queue *q;
    int *per;
    int *cores;
    hwloc_topology_t topo;
    bool have_topo;
    hwloc_cpuset_t caller_old;
    /* the run being executed: what every task reads (set before a run starts) ... */
    _Alignas(64) const pml__dag *dag; /* NULL: a fork-join run of fork_fn */
    pml__task_fn fn;
    pml__fork_fn fork_fn;
    void *ctx;
    _Atomic int *count;
    int count_cap;
    /* ... and what the workers write as it goes, on cache lines of their own */
    _Alignas(64) _Atomic int remaining; /* tasks of the run not yet finished */
    _Atomic int failed;
    _Alignas(64) _Atomic uint32_t gen; /* run generation: workers wait for it to change; futex */
    _Atomic int idle_asleep;           /* workers asleep on gen */
    _Atomic int stop;
    _Atomic int finished;              /* workers done with the run */
    _Atomic int caller_asleep;
    char pad_[64];
    pml__dag checked[2]; /* the last two DAGs found acyclic (a step's and an inference pass's) */
    double *start, *end;
    double t0;
    pml_status err;
    char errmsg[1024];
    atomic_flag errlock;
};

struct warg {
    pml__workers *s;
    int w;
};



static void pin(pml__workers *s, int w)
{
    if (!s->have_topo || !s->cores || s->cores[w] < 0) return;
    hwloc_obj_t core = hwloc_get_obj_by_type(s->topo, HWLOC_OBJ_CORE, (unsigned)s->cores[w]);
    if (core && core->cpuset) hwloc_set_cpubind(s->topo, core->cpuset, HWLOC_CPUBIND_THREAD);
}

/* wakes worker w if it sleeps (Dekker with the sleeper: it sets asleep, reads the bell, then
 * checks its queue and the run; whoever changes those rings after) */
static void ring(pml__workers *s, int w)
{
    queue *q = &s->q[w];
    if (atomic_load(&q->asleep)) {
        atomic_fetch_add(&q->bell, 1);
        pml__futex_wake(&q->bell);
    }
}

static void push(pml__workers *s, int w, int task)
{
    queue *q = &s->q[w];
    uint32_t t = atomic_fetch_add(&q->tail, 1);
    atomic_store_explicit(&q->slot[t % (uint32_t)q->cap], task + 1, memory_order_release);
    ring(s, w);
}

static void record_error(pml__workers *s, pml_status st)
{
    while (atomic_flag_test_and_set(&s->errlock)) pml__cpu_relax();
    if (!atomic_load(&s->failed)) {
        snprintf(s->errmsg, sizeof s->errmsg, "%s", pml_errmsg());
        s->err = st;
        atomic_store(&s->failed, 1);
    }
    atomic_flag_clear(&s->errlock);
}

/* Tasks run with denormals flushed to zero (as TensorFlow's and PyTorch's CPU workers may):
 * Adam's first moment of a weight whose gradient stays 0 decays by 0.9 a step and is denormal
 * after some 800 steps, and arithmetic on denormals is many times slower (the mlp's update took
 * twice as long after step 600). The caller's mode is restored after its share of a run. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FTZ_DAZ 0x8040u /* MXCSR: flush to zero, denormals are zero */
static unsigned flush_denormals(void)
{
    unsigned old = _mm_getcsr();
    _mm_setcsr(old | FTZ_DAZ);
    return old;
}
static void restore_denormals(unsigned old) { _mm_setcsr(old); }
#else
static unsigned flush_denormals(void) { return 0; }
static void restore_denormals(unsigned old) { (void)old; }
#endif

/* runs worker w's share of the current run */
static void work(pml__workers *s, int w)
{
    queue *q = &s->q[w];
    const pml__dag *d = s->dag;
    pml_blas_single_thread();
    const unsigned fp_mode = flush_denormals();
    for (;;) {
        if (atomic_load_explicit(&s->remaining, memory_order_acquire) <= 0 ||
            atomic_load_explicit(&s->failed, memory_order_relaxed))
            break;
        /* the next published task, in ticket order */
        int spins = 0, task = -1;
        for (;;) {
            if (q->head != atomic_load_explicit(&q->tail, memory_order_acquire)) {
                _Atomic int *sl = &q->slot[q->head % (uint32_t)q->cap];
                int v = atomic_load_explicit(sl, memory_order_acquire);
                if (v) {
                    atomic_store_explicit(sl, 0, memory_order_relaxed);
                    q->head++;
                    task = v - 1;
                    break;
                }
            }
            if (atomic_load_explicit(&s->remaining, memory_order_acquire) <= 0 ||
                atomic_load_explicit(&s->failed, memory_order_relaxed))
                break;
            if (++spins < SPIN) {
                pml__cpu_relax();
                continue;
            }
            atomic_store(&q->asleep, 1);
            uint32_t bell = atomic_load(&q->bell);
            if (q->head == atomic_load(&q->tail) && atomic_load(&s->remaining) > 0 &&
                !atomic_load(&s->failed))
                pml__futex_wait(&q->bell, bell);
            atomic_store(&q->asleep, 0);
            spins = 0;
        }
        if (task < 0) break;
        double t0 = s->start ? pml_now() : 0;
        pml_status st = s->fn(s->ctx, task, w);
        if (s->start) {
            s->start[task] = t0 - s->t0;
            s->end[task] = pml_now() - s->t0;
        }
        if (st != PML_OK) {
            record_error(s, st);
            for (int x = 0; x < s->nw; x++) /* the run is over */
                if (x != w) ring(s, x);
            break;
        }
        for (int k = d->succ_off[task]; k < d->succ_off[task + 1]; k++) {
            int u = d->succ[k];
            if (d->run && !d->run[u]) continue;
            if (atomic_fetch_sub_explicit(&s->count[u], 1, memory_order_acq_rel) == 1)
                push(s, d->worker[u], u);
        }
        if (atomic_fetch_sub(&s->remaining, 1) == 1)
            for (int x = 0; x < s->nw; x++) /* the run is complete */
                if (x != w) ring(s, x);
    }
    restore_denormals(fp_mode);
}

static void worker_main(void *arg)
{
    struct warg *a = arg;
    pml__workers *s = a->s;
    pin(s, a->w);
    pml_blas_single_thread();
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = atomic_load_explicit(&s->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < 20 * SPIN; i++) {
            pml__cpu_relax();
            g = atomic_load_explicit(&s->gen, memory_order_acquire);
        }
        while (g == seen) {
            atomic_fetch_add(&s->idle_asleep, 1);
            pml__futex_wait(&s->gen, seen);
            atomic_fetch_sub(&s->idle_asleep, 1);
            g = atomic_load_explicit(&s->gen, memory_order_acquire);
        }
        seen = g;
        if (atomic_load(&s->stop)) break;
        if (s->dag)
            work(s, a->w);
        else
            s->fork_fn(s->ctx, a->w, s->nw);
        if (atomic_fetch_add(&s->finished, 1) + 1 == s->nw - 1 && atomic_load(&s->caller_asleep))
            pml__futex_wake((_Atomic uint32_t *)&s->finished);
    }
}

pml_status pml__workers_create(int workers, const int *cores, pml__workers **out)
{
    *out = NULL;
    if (workers < 1 || workers > 256)
        return pml_fail(PML_EINVAL, "%d workers: the runtime takes 1 to 256", workers);
    pml__workers *s = aligned_alloc(64, (sizeof *s + 63) & ~(size_t)63); /* its cache lines */
    if (s) memset(s, 0, sizeof *s);
    if (!s) return pml_fail(PML_ENOMEM, "out of memory starting the runtime");
    s->nw = workers;
    atomic_flag_clear(&s->errlock);
    s->q = calloc((size_t)workers, sizeof *s->q);
    s->thr = calloc((size_t)workers, sizeof *s->thr);
    s->args = calloc((size_t)workers, sizeof *s->args);
    s->per = calloc((size_t)workers, sizeof *s->per);
    if (!s->q || !s->thr || !s->args || !s->per) goto nomem;
    if (cores) {
        s->cores = malloc((size_t)workers * sizeof *s->cores);
        if (!s->cores) goto nomem;
        memcpy(s->cores, cores, (size_t)workers * sizeof *cores);
        if (hwloc_topology_init(&s->topo) == 0) {
            if (hwloc_topology_load(s->topo) == 0) {
                s->have_topo = true;
                s->caller_old = hwloc_bitmap_alloc();
                if (s->caller_old &&
                    hwloc_get_cpubind(s->topo, s->caller_old, HWLOC_CPUBIND_THREAD) != 0) {
                    hwloc_bitmap_free(s->caller_old);
                    s->caller_old = NULL;
                }
            } else {
                hwloc_topology_destroy(s->topo);
            }
        }
    }
    for (int w = 1; w < workers; w++) {
        s->args[w] = (struct warg){s, w};
        if (pml__thread_start(&s->thr[w], worker_main, &s->args[w]) != 0) {
            s->nw = w;
            pml__workers_destroy(s);
            return pml_fail(PML_ENOMEM, "cannot start worker thread %d", w);
        }
    }
    pin(s, 0);
    *out = s;
    return PML_OK;
nomem:
    pml__workers_destroy(s);
    return pml_fail(PML_ENOMEM, "out of memory starting the runtime");
}

void pml__workers_destroy(pml__workers *s)
{
    if (!s) return;
    if (s->thr && s->nw > 1) {
        atomic_store(&s->stop, 1);
        atomic_fetch_add(&s->gen, 1);
        pml__futex_wake(&s->gen);
        for (int w = 1; w < s->nw; w++) uv_thread_join(&s->thr[w]);
    }
    if (s->have_topo) {
        if (s->caller_old) {
            hwloc_set_cpubind(s->topo, s->caller_old, HWLOC_CPUBIND_THREAD);
            hwloc_bitmap_free(s->caller_old);
        }
        hwloc_topology_destroy(s->topo);
    }
    if (s->q)
        for (int w = 0; w < s->nw; w++) free(s->q[w].slot);
    free(s->q);
    free(s->thr);
    free(s->args);
    free(s->per);
    free(s->cores);
    free(s->count);
    free(s);
}

int pml__workers_count(const pml__workers *s) { return s->nw; }

/* Kahn's algorithm over the subset, on a copy of the counters (set up by the caller) */
static bool acyclic(pml__workers *s, const pml__dag *d, int total)
{
    int *cnt = malloc((size_t)d->n * sizeof *cnt), *stack = malloc((size_t)d->n * sizeof *stack);
    if (!cnt || !stack) {
        free(cnt);
        free(stack);
        return true; /* cannot check: run it (a cycle then shows as tasks never ready) */
    }
    int top = 0, seen = 0;
    for (int t = 0; t < d->n; t++) {
        cnt[t] = atomic_load_explicit(&s->count[t], memory_order_relaxed);
        if ((!d->run || d->run[t]) && cnt[t] == 0) stack[top++] = t;
    }
    while (top > 0) {
        int t = stack[--top];
        seen++;
        for (int k = d->succ_off[t]; k < d->succ_off[t + 1]; k++) {
            int u = d->succ[k];
            if ((!d->run || d->run[u]) && --cnt[u] == 0) stack[top++] = u;
        }
    }
    free(cnt);
    free(stack);
    return seen == total;
}

/* the caller: waits until the other workers are done with the run */
static void wait_finished(pml__workers *s)
{
    uint32_t f = (uint32_t)atomic_load(&s->finished);
    for (int i = 0; f < (uint32_t)(s->nw - 1) && i < 20 * SPIN; i++) {
        pml__cpu_relax();
        f = (uint32_t)atomic_load(&s->finished);
    }
    while (f < (uint32_t)(s->nw - 1)) {
        atomic_store(&s->caller_asleep, 1);
        pml__futex_wait((_Atomic uint32_t *)&s->finished, f);
        atomic_store(&s->caller_asleep, 0);
        f = (uint32_t)atomic_load(&s->finished);
    }
}

void pml__workers_fork(pml__workers *s, pml__fork_fn fn, void *ctx)
{
    if (s->nw == 1) {
        fn(ctx, 0, 1);
        return;
    }
    s->dag = NULL;
    s->fork_fn = fn;
    s->ctx = ctx;
    atomic_store(&s->finished, 0);
    atomic_fetch_add(&s->gen, 1); /* release: publishes fn and ctx */
    if (atomic_load(&s->idle_asleep) > 0) pml__futex_wake(&s->gen);
    fn(ctx, 0, s->nw);
    wait_finished(s);
}

pml_status pml__workers_run(pml__workers *s, const pml__dag *d, pml__task_fn fn, void *ctx,
                            double *start, double *end)
{
    /* sizes: counters, queue rings (a worker's ring holds all its tasks) */
    if (d->n > s->count_cap) {
        _Atomic int *c = realloc(s->count, (size_t)d->n * sizeof *c);
        if (!c) return pml_fail(PML_ENOMEM, "out of memory running tasks");
        s->count = c;
        s->count_cap = d->n;
    }
    int *per = s->per; /* tasks per worker (allocated with the workers: a run allocates
                        * nothing once the DAG has been seen) */
    memset(per, 0, (size_t)s->nw * sizeof *per);
    int total = 0;
    for (int t = 0; t < d->n; t++) {
        if (d->run && !d->run[t]) continue;
        if (d->worker[t] < 0 || d->worker[t] >= s->nw) {
            return pml_fail(PML_EINVAL, "task %d is on worker %d; the runtime has %d", t,
                            d->worker[t], s->nw);
        }
        per[d->worker[t]]++;
        total++;
    }
    for (int w = 0; w < s->nw; w++) {
        queue *q = &s->q[w];
        int cap = per[w] + 1;
        if (cap > q->cap) {
            _Atomic int *sl = realloc(q->slot, (size_t)cap * sizeof *sl);
            if (!sl) return pml_fail(PML_ENOMEM, "out of memory running tasks");
            q->slot = sl;
            q->cap = cap;
        }
        for (int i = 0; i < q->cap; i++) atomic_store_explicit(&q->slot[i], 0, memory_order_relaxed);
        atomic_store(&q->tail, 0);
        q->head = 0;
    }
    /* counters: predecessors inside the subset */
    for (int t = 0; t < d->n; t++) {
        atomic_store_explicit(&s->count[t], 0, memory_order_relaxed);
        if (start) start[t] = end[t] = -1;
    }
    for (int t = 0; t < d->n; t++) {
        if (d->run && !d->run[t]) continue;
        for (int k = d->succ_off[t]; k < d->succ_off[t + 1]; k++) {
            int u = d->succ[k];
            if (!d->run || d->run[u]) atomic_fetch_add_explicit(&s->count[u], 1, memory_order_relaxed);
        }
    }
    if (total == 0) {
        if (d->begin) d->begin(d->begin_arg);
        return PML_OK;
    }
    if (memcmp(&s->checked[0], d, sizeof *d) != 0 && memcmp(&s->checked[1], d, sizeof *d) != 0) {
        if (!acyclic(s, d, total)) return pml_fail(PML_EINVAL, "the task graph has a cycle");
        s->checked[1] = s->checked[0];
        s->checked[0] = *d;
    }
    if (d->ext)
        for (int t = 0; t < d->n; t++)
            if (!d->run || d->run[t]) atomic_fetch_add_explicit(&s->count[t], d->ext[t], memory_order_relaxed);
    s->dag = d;
    s->fn = fn;
    s->ctx = ctx;
    s->start = start;
    s->end = end;
    s->t0 = pml_now();
    atomic_store(&s->remaining, total);
    atomic_store(&s->failed, 0);
    atomic_store(&s->finished, 0);
    for (int t = 0; t < d->n; t++)
        if ((!d->run || d->run[t]) && atomic_load_explicit(&s->count[t], memory_order_relaxed) == 0)
            push(s, d->worker[t], t);
    if (d->begin) d->begin(d->begin_arg);
    /* start the other workers, work as worker 0, wait for the others */
    atomic_fetch_add(&s->gen, 1); /* release: publishes the run */
    if (atomic_load(&s->idle_asleep) > 0) pml__futex_wake(&s->gen);
    work(s, 0);
    if (s->nw > 1) {
        for (int w = 1; w < s->nw; w++) ring(s, w); /* none stays asleep on its queue */
        wait_finished(s);
    }
    if (atomic_load(&s->failed)) return pml_fail(s->err, "%s", s->errmsg);
    if (atomic_load(&s->remaining) > 0)
        return pml_fail(PML_EINVAL, "the task graph has a cycle (%d tasks never became ready)",
                        atomic_load(&s->remaining));
    return PML_OK;
}

bool pml__workers_idle(const pml__workers *s)
{
    for (int w = 0; w < s->nw; w++)
        if (!atomic_load_explicit(&s->q[w].asleep, memory_order_relaxed)) return false;
    return true;
}

void pml__workers_release(pml__workers *s, int task)
{
    if (atomic_fetch_sub_explicit(&s->count[task], 1, memory_order_acq_rel) == 1)
        push(s, s->dag->worker[task], task);
}

/* ---------------------------------------------------------------- overhead benchmark */

static pml_status empty_task(void *ctx, int task, int worker) { return PML_OK; }

pml_status pml_runtime_overhead(const char *shape, int ntasks, int reps, double *per_task)
{
    if (ntasks < 3 || reps < 1) return pml_fail(PML_EINVAL, "need at least 3 tasks and 1 run");
    const bool chain1 = strcmp(shape, "chain") == 0, chain2 = strcmp(shape, "chain2") == 0,
               wide = strcmp(shape, "wide") == 0;
    if (!chain1 && !chain2 && !wide)
        return pml_fail(PML_EINVAL, "unknown graph shape '%s' (chain, chain2 or wide)", shape);
    const int workers = chain1 ? 1 : 2, n = ntasks;
    int *worker = malloc((size_t)n * sizeof *worker), *npred = malloc((size_t)n * sizeof *npred);
    int *off = malloc((size_t)(n + 1) * sizeof *off), *succ = malloc((size_t)2 * n * sizeof *succ);
    pml__workers *s = NULL;
    pml_status st = PML_OK;
    if (!worker || !npred || !off || !succ) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto out;
    }
    int e = 0;
    for (int t = 0; t < n; t++) {
        off[t] = e;
        if (wide) { /* 0 -> 1..n-2 -> n-1, the middle spread over both workers */
            worker[t] = t % 2;
            npred[t] = t == 0 ? 0 : (t == n - 1 ? n - 2 : 1);
            if (t == 0)
                for (int u = 1; u < n - 1; u++) succ[e++] = u;
            else if (t < n - 1)
                succ[e++] = n - 1;
        } else { /* a chain: one worker, or alternating between two */
            worker[t] = chain2 ? t % 2 : 0;
            npred[t] = t > 0;
            if (t + 1 < n) succ[e++] = t + 1;
        }
    }
    off[n] = e;
    pml__dag d = {n, worker, npred, off, succ, NULL, NULL, NULL, NULL};
    if ((st = pml__workers_create(workers, NULL, &s)) != PML_OK) goto out;
    if ((st = pml__workers_run(s, &d, empty_task, NULL, NULL, NULL)) != PML_OK) goto out; /* warm */
    double best = INFINITY;
    for (int r = 0; r < reps && st == PML_OK; r++) {
        double t0 = pml_now();
        st = pml__workers_run(s, &d, empty_task, NULL, NULL, NULL);
        double t = pml_now() - t0;
        if (t < best) best = t;
    }
    *per_task = best / n;
out:
    pml__workers_destroy(s);
    free(worker);
    free(npred);
    free(off);
    free(succ);
    return st;
}

int pml_machine_cores(void)
{
    hwloc_topology_t topo;
    int n = 1;
    if (hwloc_topology_init(&topo) != 0) return 1;
    if (hwloc_topology_load(topo) == 0) n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    hwloc_topology_destroy(topo);
    return n > 0 ? n : 1;
}
