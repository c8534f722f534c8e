/* pml — internal: plan execution (the executor's plan mode, runtime/exec.c dispatches to it). */
#ifndef PML_RUNTIME_PLANEXEC_H
#define PML_RUNTIME_PLANEXEC_H

#include "planner.h"
#include "runtime.h"

/* Shared by both executors (runtime/exec.c). */

/** Checks the first n labels are classes of g. */
pml_status pml__check_labels(const pml_graph *g, const int32_t *labels, int n);
/** Sums the per-sample losses and counts the samples whose largest logit is the label. */
pml_status pml__step_result(const pml_graph *g, const float *loss, const float *logits,
                            const int32_t *labels, int n, pml_step_result *res);

typedef struct pml__px pml__px;

pml_status pml__px_create(const pml_graph *g, const pml_machine *m, const pml_plan *p,
                          const pml_exec_opts *o, pml__px **out);
void pml__px_destroy(pml__px *x);
float *pml__px_input(pml__px *x);
int32_t *pml__px_labels(pml__px *x);
float *pml__px_params(pml__px *x);
float *pml__px_grads(pml__px *x);
float *pml__px_state(pml__px *x);
const float *pml__px_output(pml__px *x, int id);
/** One step on the first n samples: a training step (forward, backward, sync, update) when
 * \p o is not NULL, else an inference forward pass. */
pml_status pml__px_step(pml__px *x, int n, pml_optim *o, pml_step_result *res);
void pml__px_set_profiling(pml__px *x, bool on);
void pml__px_profile(const pml__px *x, double *fwd, double *bwd, double *update);
pml_status pml__px_trace_begin(pml__px *x, long max_events);
pml_status pml__px_trace_write(pml__px *x, const char *path);

#endif
