/* pml — fork-join pool of pinned workers (libuv threads, hwloc binding, futex sleeping). */
#include "pool.h"
#include "sync.h"
#include "runtime.h"

#include <hwloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#define SPIN_ITERS 20000 /* ~50 us of pause instructions before sleeping */

struct pml__pool {
    int n;
    uv_thread_t *thr;
    struct worker_arg *args;
    _Atomic uint32_t gen;      /* job generation; futex word for idle workers */
    _Atomic uint32_t pending;  /* workers still running the job; futex word for the caller */
    _Atomic int sleepers;      /* workers asleep on gen */
    _Atomic int caller_asleep; /* the caller is asleep on pending */
    _Atomic int stop;
    pml__pool_fn fn;
    void *ctx;
    bool pinned;
    hwloc_topology_t topo;
    hwloc_cpuset_t caller_old; /* the caller's binding before the pool pinned it */
};

struct worker_arg {
    pml__pool *p;
    int tid;
};


static void pin_to_core(pml__pool *p, int t)
{
    if (!p->pinned) return;
    hwloc_obj_t core = hwloc_get_obj_by_type(p->topo, HWLOC_OBJ_CORE, (unsigned)t);
    if (core && core->cpuset) hwloc_set_cpubind(p->topo, core->cpuset, HWLOC_CPUBIND_THREAD);
}

static void worker_main(void *argp)
{
    struct worker_arg *a = argp;
    pml__pool *p = a->p;
    pin_to_core(p, a->tid);
    pml_blas_single_thread();
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < SPIN_ITERS; i++) {
            pml__cpu_relax();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        while (g == seen) {
            atomic_fetch_add(&p->sleepers, 1);
            pml__futex_wait(&p->gen, seen);
            atomic_fetch_sub(&p->sleepers, 1);
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->ctx, a->tid, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_asleep))
            pml__futex_wake(&p->pending);
    }
}

pml_status pml__pool_create(int threads, bool pin, pml__pool **out)
{
    *out = NULL;
    if (threads < 1 || threads > 1024)
        return pml_fail(PML_EINVAL, "threads=%d must be in [1, 1024]", threads);
    pml__pool *p = calloc(1, sizeof *p);
    if (!p) return pml_fail(PML_ENOMEM, "out of memory creating the thread pool");
    p->n = threads;
    if (pin && hwloc_topology_init(&p->topo) == 0) {
        if (hwloc_topology_load(p->topo) == 0 &&
            hwloc_get_nbobjs_by_type(p->topo, HWLOC_OBJ_CORE) >= threads) {
            p->pinned = true;
            p->caller_old = hwloc_bitmap_alloc();
            if (p->caller_old &&
                hwloc_get_cpubind(p->topo, p->caller_old, HWLOC_CPUBIND_THREAD) != 0) {
                hwloc_bitmap_free(p->caller_old);
                p->caller_old = NULL;
            }
        } else {
            hwloc_topology_destroy(p->topo);
        }
    }
    if (threads > 1) {
        p->thr = calloc((size_t)threads, sizeof *p->thr);
        p->args = calloc((size_t)threads, sizeof *p->args);
        if (!p->thr || !p->args) {
            pml__pool_destroy(p);
            return pml_fail(PML_ENOMEM, "out of memory creating the thread pool");
        }
        for (int t = 1; t < threads; t++) {
            p->args[t] = (struct worker_arg){p, t};
            if (pml__thread_start(&p->thr[t], worker_main, &p->args[t]) != 0) {
                p->n = t; /* join the ones that started */
                pml__pool_destroy(p);
                return pml_fail(PML_ENOMEM, "cannot start worker thread %d", t);
            }
        }
    }
    pin_to_core(p, 0);
    *out = p;
    return PML_OK;
}

void pml__pool_destroy(pml__pool *p)
{
    if (!p) return;
    if (p->thr) {
        atomic_store(&p->stop, 1);
        atomic_fetch_add(&p->gen, 1);
        pml__futex_wake(&p->gen);
        for (int t = 1; t < p->n; t++) uv_thread_join(&p->thr[t]);
    }
    if (p->pinned) {
        if (p->caller_old) {
            hwloc_set_cpubind(p->topo, p->caller_old, HWLOC_CPUBIND_THREAD);
            hwloc_bitmap_free(p->caller_old);
        }
        hwloc_topology_destroy(p->topo);
    }
    free(p->thr);
    free(p->args);
    free(p);
}

int pml__pool_threads(const pml__pool *p) { return p->n; }

void pml__pool_run(pml__pool *p, pml__pool_fn fn, void *ctx)
{
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, (uint32_t)(p->n - 1));
    atomic_fetch_add(&p->gen, 1); /* release: publishes fn, ctx */
    if (atomic_load(&p->sleepers) > 0) pml__futex_wake(&p->gen);
    fn(ctx, 0, p->n);
    uint32_t left = atomic_load_explicit(&p->pending, memory_order_acquire);
    for (int i = 0; left && i < SPIN_ITERS; i++) {
        pml__cpu_relax();
        left = atomic_load_explicit(&p->pending, memory_order_acquire);
    }
    while (left) {
        atomic_store(&p->caller_asleep, 1);
        pml__futex_wait(&p->pending, left);
        atomic_store(&p->caller_asleep, 0);
        left = atomic_load_explicit(&p->pending, memory_order_acquire);
    }
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
