/* pml — internal: the task scheduler. Runs a DAG of tasks on one worker per device: each worker
 * is pinned to its core, owns a first-come-first-served ready queue, and a task becomes ready the
 * moment an atomic counter of its unfinished predecessors reaches zero — no barrier per operator
 * or per layer. The calling thread is worker 0 (so a step costs no wake-up of the caller); the
 * other workers are libuv threads that spin briefly between tasks, then sleep on a futex.
 *
 * A DAG is given in compressed form (pml__dag) and may be run many times (one training step per
 * run). The first run of a DAG checks that it has no cycle; a DAG whose arrays are changed in
 * place must get a new pml__dag value (other arrays or a different subset) to be checked again. A task function that fails stops the run: the remaining tasks are skipped and
 * pml__sched_run returns the failure. */
#ifndef PML_RUNTIME_SCHEDULER_H
#define PML_RUNTIME_SCHEDULER_H

#include "ops.h"

typedef struct pml__sched pml__sched;

/* Runs task `task` on worker `worker`; returns PML_OK or an error (with pml_fail's message). */
typedef pml_status (*pml__task_fn)(void *ctx, int task, int worker);

typedef struct pml__dag {
    int n;                /* tasks */
    const int *worker;    /* worker of each task */
    const int *npred;     /* predecessors of each task */
    const int *succ_off;  /* successors of task t: succ[succ_off[t] .. succ_off[t + 1]) */
    const int *succ;
    /* a subset to run (NULL: all): only tasks with run[t] run; predecessors outside the subset
     * count as done */
    const bool *run;
} pml__dag;

/** Starts workers - 1 threads. cores[w] is the hwloc logical core to pin worker w to (-1: do not
 * pin); cores may be NULL. */
pml_status pml__sched_create(int workers, const int *cores, pml__sched **out);
void pml__sched_destroy(pml__sched *s);
int pml__sched_workers(const pml__sched *s);

/** Runs the DAG once. Per-task start and end times (seconds since the run began, or -1 for
 * tasks that did not run) go to start[] and end[] when they are not NULL.
 * \return PML_OK, or the first task failure (its message names the task), or PML_EINVAL for a
 * malformed DAG (a cycle, or a task on a worker that does not exist). */
pml_status pml__sched_run(pml__sched *s, const pml__dag *d, pml__task_fn fn, void *ctx,
                          double *start, double *end);

#endif
