/* pml — internal: a fork-join pool of pinned worker threads.
 *
 * pml__pool_run(p, fn, ctx) runs fn(ctx, tid, nthreads) on every thread (tid 0 is the caller) and
 * returns when all have finished. Workers spin briefly between jobs (a job follows the last one
 * within microseconds during a training step), then sleep on a futex. */
#ifndef PML_RUNTIME_POOL_H
#define PML_RUNTIME_POOL_H

#include "ops.h"

typedef struct pml__pool pml__pool;
typedef void (*pml__pool_fn)(void *ctx, int tid, int nthreads);

/** Starts threads - 1 workers; with \p pin, binds thread t to the t-th core (hwloc) when the
 * machine has that many cores. */
pml_status pml__pool_create(int threads, bool pin, pml__pool **out);
void pml__pool_destroy(pml__pool *p);
int pml__pool_threads(const pml__pool *p);
void pml__pool_run(pml__pool *p, pml__pool_fn fn, void *ctx);

/** Splits [0, n) into nparts nearly equal ranges; \return the start of part i (i = nparts gives n). */
static inline long pml__part_start(long n, int nparts, int i)
{
    return (long)((__int128)n * i / nparts);
}

#endif
