/* pml — internal: the executor interface (runtime.h's pml_exec_*) and what its two
 * implementations share.
 *
 * A pml_exec is the common part below followed by an implementation's own state: the
 * per-operator executor (exec_ops.c: each node split across the workers as it comes, fork-join)
 * or the plan executor (exec_plan.c: the planner's task graph of a step on one worker per
 * device). exec.c holds the public functions, which check their arguments once and call the
 * implementation, and the step module both use: label checks, the step's loss and accuracy,
 * finiteness checks and per-node profiling totals. */
#ifndef PML_RUNTIME_EXEC_H
#define PML_RUNTIME_EXEC_H

#include "planner/planner.h"
#include "runtime/runtime.h"
#include "workers.h"

typedef struct pml__exec_impl {
    const char *name; /* "per-operator", "plan" */
    void (*destroy)(pml_exec *e);
    /* n is checked (1..batch) and the labels are classes of the graph */
    pml_status (*forward)(pml_exec *e, int n, bool training);
    pml_status (*backward)(pml_exec *e, int n);
    /* o->n is the graph's parameter count; pml_optim_begin_step(o) was called */
    pml_status (*update)(pml_exec *e, pml_optim *o);
    /* a whole step (forward, backward, update); NULL: the three calls above */
    pml_status (*train_step)(pml_exec *e, int n, pml_optim *o);
    /* a step without its updates, leaving every gradient in e->grads; and the updates alone
     * (NULL: forward and backward; update) */
    pml_status (*grad_step)(pml_exec *e, int n);
    pml_status (*apply)(pml_exec *e, pml_optim *o);
    pml_status (*trace_begin)(pml_exec *e, long max_events); /* NULL: not supported */
    pml_status (*trace_write)(pml_exec *e, const char *path);
    /* one part of the trace (PML__TRACE_*) to f, the events as process pid of `ranks` */
    pml_status (*trace_emit)(pml_exec *e, FILE *f, int part, int pid, int ranks);
    /* the loss sum and correct count of the first n samples (NULL: pml__step_result) */
    pml_status (*result)(const pml_exec *e, int n, pml_step_result *res);
    /* a plan across ranks: which parameter and state floats this rank keeps current (each float
     * is one rank's, the lowest that updates it); NULL: all of them */
    const unsigned char *(*owned)(const pml_exec *e, bool state);
} pml__exec_impl;

enum { PML__TRACE_HEAD, PML__TRACE_EVENTS, PML__TRACE_END };

struct pml_exec {
    const pml__exec_impl *impl;
    pml_graph g;     /* the executor's own copy */
    pml_exec_opts o;
    int batch;       /* the largest step */
    pml__workers *workers;
    /* buffers the caller sees */
    float *input;    /* batch * input size */
    int32_t *labels; /* batch */
    float *params, *grads, *state;
    float **out;     /* [node]: batch * output size */
    /* the step running */
    int n;
    bool training;
    uint64_t step;   /* updates done (dropout masks follow it) */
    double trace_t0; /* pml_now() when the trace began: its time 0 */
    uint64_t sample0; /* the global index of the step's sample 0 (dropout masks follow it) */
    /* when set, called once per training step for each node with parameters, as soon as its
     * parameter gradient in `grads` is complete (from whichever thread completed it): a
     * caller can start summing it across processes while the backward pass goes on */
    void (*grad_ready)(void *ctx, int node);
    void *grad_ready_ctx;
    /* profiling: per-node seconds since it was turned on */
    bool profiling;
    double *prof_fwd, *prof_bwd, prof_update;
};

/** Sets up the common part: a copy of \p g, the options, profiling arrays. */
pml_status pml__exec_init(pml_exec *e, const pml__exec_impl *impl, const pml_graph *g,
                          const pml_exec_opts *o);
/** Releases what pml__exec_init made and the workers. */
void pml__exec_fini(pml_exec *e);

/** The per-operator executor and the plan executor. */
pml_status pml__exec_ops_create(const pml_graph *g, const pml_exec_opts *o, pml_exec **out);
pml_status pml__exec_plan_create(const pml_graph *g, const pml_exec_opts *o, pml_exec **out);

/** Writes part \p part (PML__TRACE_*) of the recorded trace to \p f, the events as process
 * \p pid of \p ranks (a run across ranks: one trace, a process per rank). */
pml_status pml__exec_trace_emit(pml_exec *e, FILE *f, int part, int pid, int ranks);

/** The floats of the parameter block (state false) or the state this rank keeps current: NULL
 * when it keeps them all (one process, or data parallel ranks). */
const unsigned char *pml__exec_owned(const pml_exec *e, bool state);

/** Gives \p dst the parameters, non-trainable state and step count of \p src (same graph): a
 * run goes on on another executor. */
void pml__exec_copy_state(pml_exec *dst, const pml_exec *src);

/** \return true when every float of p[0..n) is finite. */
bool pml__all_finite(const float *p, size_t n);
/** Sums the per-sample losses of the first n samples and counts those whose largest logit is
 * the label (from e->out of the loss and logits nodes). */
pml_status pml__step_result(const pml_exec *e, int n, pml_step_result *res);
/** The same over samples [lo, hi) of e->out (checked for a finite loss). */
pml_status pml__step_sums(const pml_exec *e, int lo, int hi, pml_step_result *res);
/** PML_ENUMERIC naming the loss node when res's loss is not finite. */
pml_status pml__step_check(const pml_exec *e, const pml_step_result *res);

/** Shares of a batch of \p m samples among \p parts data-parallel ranks that take
 * 1 / rate[r] seconds a sample (rate > 0): each in [1, cap], summing to m, with the largest
 * share[r] / rate[r] as small as it can be (the lower rank first on ties). m >= parts,
 * parts * cap >= m. \return that largest share / rate, the step's predicted seconds. */
double pml__shares_balance(const double *rate, int parts, int m, int cap, int *share);
/** max over r of share[r] / rate[r] */
double pml__shares_time(const double *rate, int parts, const int *share);

#endif
