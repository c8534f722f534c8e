/* pml — internal: the workers. One pinned thread per core (the calling thread is worker 0, so
 * a step costs no wake-up of the caller; the others are libuv threads started with signals
 * blocked), which spin briefly between runs, then sleep on a futex. Both executors run on them:
 *
 *   - a DAG of tasks (the plan executor): each worker owns a first-come-first-served ready queue
 *     and a task becomes ready the moment an atomic counter of its unfinished predecessors
 *     reaches zero — no barrier per operator or per layer. A DAG is given in compressed form
 *     (pml__dag) and may be run many times (one training step per run). The first run of a DAG
 *     checks that it has no cycle; a DAG whose arrays are changed in place must get a new
 *     pml__dag value (other arrays or a different subset) to be checked again. A task function
 *     that fails stops the run: the remaining tasks are skipped and the run returns the failure.
 *     Tasks run with denormals flushed to zero (see workers.c).
 *   - fork-join (the per-operator executor): fn(ctx, w, nworkers) on every worker, returning
 *     when all have finished. */
#ifndef PML_RUNTIME_WORKERS_H
#define PML_RUNTIME_WORKERS_H

#include "ops/ops.h"

typedef struct pml__workers pml__workers;

/* Runs task `task` on worker `worker`; returns PML_OK or an error (with pml_fail's message). */
typedef pml_status (*pml__task_fn)(void *ctx, int task, int worker);
/* Worker w's share of a fork-join run of n workers. */
typedef void (*pml__fork_fn)(void *ctx, int w, int n);

typedef struct pml__dag {
    int n;                /* tasks */
    const int *worker;    /* worker of each task */
    const int *npred;     /* predecessors of each task */
    const int *succ_off;  /* successors of task t: succ[succ_off[t] .. succ_off[t + 1]) */
    const int *succ;
    /* a subset to run (NULL: all): only tasks with run[t] run; predecessors outside the subset
     * count as done */
    const bool *run;
    /* events outside the run each task also waits for (NULL: none), each released once by
     * pml__workers_release (a message from another process); begin(begin_arg) is called once
     * the run is set up, before any release may come */
    const int *ext;
    void (*begin)(void *arg);
    void *begin_arg;
} pml__dag;

/** Starts n - 1 threads. cores[w] is the hwloc logical core to pin worker w to (-1: do not
 * pin); cores NULL pins nothing. \return PML_OK, or an error (n outside [1, 256], no memory,
 * a thread that cannot start). */
pml_status pml__workers_create(int n, const int *cores, pml__workers **out);
/** Stops the threads and gives the caller its CPU binding back. Safe on NULL. */
void pml__workers_destroy(pml__workers *w);
int pml__workers_count(const pml__workers *w);

/** Runs the DAG once. Per-task start and end times (seconds since the run began, or -1 for
 * tasks that did not run) go to start[] and end[] when they are not NULL.
 * \return PML_OK, or the first task failure (its message names the task), or PML_EINVAL for a
 * malformed DAG (a cycle, or a task on a worker that does not exist). */
pml_status pml__workers_run(pml__workers *w, const pml__dag *d, pml__task_fn fn, void *ctx,
                            double *start, double *end);

/** One of the outside events task \p task of the running DAG waits for (pml__dag.ext) has
 * happened: from any thread, after the DAG's begin call and before the run ends. */
void pml__workers_release(pml__workers *w, int task);

/** \return true when every worker has nothing to run and sleeps (a DAG run waiting for outside
 * events, or no run): another thread may then use their cores. */
bool pml__workers_idle(const pml__workers *w);

/** Fork-join: fn(ctx, w, n) on every worker w (0 is the caller); returns when all are done. */
void pml__workers_fork(pml__workers *w, pml__fork_fn fn, void *ctx);

/** Splits [0, n) into nparts nearly equal ranges; \return the start of part i (i = nparts gives n). */
static inline long pml__part_start(long n, int nparts, int i)
{
    return (long)((__int128)n * i / nparts);
}

#endif
