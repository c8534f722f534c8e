/* pml — the executor interface: checks each call's arguments once, then calls the
 * implementation (exec_ops.c or exec_plan.c); and the step module both share (labels, the
 * step's loss and accuracy, finiteness, profiling totals). See exec.h. */
#include "exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the step module */

pml_status pml__exec_init(pml_exec *e, const pml__exec_impl *impl, const pml_graph *g,
                          const pml_exec_opts *o)
{
    e->impl = impl;
    e->o = *o;
    e->batch = o->batch;
    pml_status st = pml_graph_copy(&e->g, g);
    if (st != PML_OK) return st;
    const size_t N = (size_t)g->nnodes;
    e->out = calloc(N, sizeof *e->out);
    e->prof_fwd = calloc(N, sizeof *e->prof_fwd);
    e->prof_bwd = calloc(N, sizeof *e->prof_bwd);
    if (!e->out || !e->prof_fwd || !e->prof_bwd)
        return pml_fail(PML_ENOMEM, "out of memory creating the executor");
    return PML_OK;
}

void pml__exec_fini(pml_exec *e)
{
    pml__workers_destroy(e->workers);
    e->workers = NULL;
    free(e->out);
    free(e->prof_fwd);
    free(e->prof_bwd);
    pml_graph_free(&e->g);
}

void pml__exec_copy_state(pml_exec *dst, const pml_exec *src)
{
    memcpy(dst->params, src->params, src->g.nparams * sizeof(float));
    memcpy(dst->state, src->state, src->g.nstate * sizeof(float));
    dst->step = src->step;
}

bool pml__all_finite(const float *p, size_t n)
{
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += p[i] * 0.0f;
    return acc == 0.0f;
}

static pml_status check_labels(const pml_exec *e, int n)
{
    for (int i = 0; i < n; i++)
        if (e->labels[i] < 0 || e->labels[i] >= e->g.classes)
            return pml_fail(PML_EINVAL, "label %d of sample %d is outside [0, %d)", e->labels[i],
                            i, e->g.classes);
    return PML_OK;
}

static pml_status check_step(const pml_exec *e, int n)
{
    if (n < 1 || n > e->batch)
        return pml_fail(PML_EINVAL, "a step of %d samples does not fit batch %d", n, e->batch);
    return check_labels(e, n);
}

static pml_status check_optim(const pml_exec *e, const pml_optim *o)
{
    if (o->n != e->g.nparams)
        return pml_fail(PML_EINVAL, "optimizer state is for %zu parameters, the graph has %zu",
                        o->n, e->g.nparams);
    return PML_OK;
}

pml_status pml__step_sums(const pml_exec *e, int lo, int hi, pml_step_result *res)
{
    const pml_graph *g = &e->g;
    const float *loss = e->out[g->loss], *logits = e->out[g->logits];
    const int C = g->nodes[g->logits].out.c;
    double s = 0;
    int correct = 0;
    for (int i = lo; i < hi; i++) {
        s += loss[i];
        float p;
        correct += pml_logits_class(logits + (size_t)i * C, C, &p) == e->labels[i];
    }
    res->loss_sum = s;
    res->correct = correct;
    return pml__step_check(e, res);
}

pml_status pml__step_check(const pml_exec *e, const pml_step_result *res)
{
    if (!isfinite(res->loss_sum))
        return pml_fail(PML_ENUMERIC, "node '%s' (softmax_xent): the loss is not finite",
                        e->g.nodes[e->g.loss].name);
    return PML_OK;
}

pml_status pml__step_result(const pml_exec *e, int n, pml_step_result *res)
{
    if (e->impl->result) return e->impl->result(e, n, res);
    return pml__step_sums(e, 0, n, res);
}

/* ---------------------------------------------------------------- the interface */

pml_status pml_exec_create(const pml_graph *g, const pml_exec_opts *opts, pml_exec **out)
{
    *out = NULL;
    if (!g->finalized) return pml_fail(PML_EINVAL, "graph '%s' is not finalised", g->name);
    if (opts->plan) {
        if (!opts->machine) return pml_fail(PML_EINVAL, "a plan needs the machine it runs on");
        return pml__exec_plan_create(g, opts, out);
    }
    if (opts->batch < 1) return pml_fail(PML_EINVAL, "batch=%d must be at least 1", opts->batch);
    if (opts->threads < 1 || opts->threads > 64)
        return pml_fail(PML_EINVAL, "threads=%d must be in [1, 64]", opts->threads);
    return pml__exec_ops_create(g, opts, out);
}

void pml_exec_destroy(pml_exec *e)
{
    if (e) e->impl->destroy(e);
}

float *pml_exec_input(pml_exec *e) { return e->input; }
void pml_exec_use_input(pml_exec *e, float *x)
{
    /* both executors read an operator's inputs from e->out when its task runs */
    e->out[e->g.input] = x ? x : e->input;
}
size_t pml_exec_input_stride(int batch, size_t size)
{
    return ((size_t)batch * size + 15) / 16 * 16;
}
int32_t *pml_exec_labels(pml_exec *e) { return e->labels; }
float *pml_exec_params(pml_exec *e) { return e->params; }
float *pml_exec_grads(pml_exec *e) { return e->grads; }
float *pml_exec_state(pml_exec *e) { return e->state; }
const float *pml_exec_output(pml_exec *e, int id)
{
    return id >= 0 && id < e->g.nnodes ? e->out[id] : NULL;
}

pml_status pml_exec_forward(pml_exec *e, int n, bool training, pml_step_result *res)
{
    pml_status st = check_step(e, n);
    if (st != PML_OK) return st;
    e->n = n;
    e->training = training;
    if ((st = e->impl->forward(e, n, training)) != PML_OK) return st;
    return res ? pml__step_result(e, n, res) : PML_OK;
}

pml_status pml_exec_backward(pml_exec *e, int n)
{
    if (n != e->n || !e->training)
        return pml_fail(PML_EINVAL, "backward needs a training forward pass of the same %d samples",
                        n);
    return e->impl->backward(e, n);
}

pml_status pml_exec_update(pml_exec *e, pml_optim *o)
{
    pml_status st = check_optim(e, o);
    if (st != PML_OK) return st;
    pml_optim_begin_step(o);
    double t0 = e->profiling ? pml_now() : 0;
    if ((st = e->impl->update(e, o)) != PML_OK) return st;
    if (e->profiling) e->prof_update += pml_now() - t0;
    e->step++;
    return PML_OK;
}

pml_status pml_exec_train_step(pml_exec *e, int n, pml_optim *o, pml_step_result *res)
{
    if (!e->impl->train_step) {
        pml_status st = pml_exec_forward(e, n, true, res);
        if (st == PML_OK) st = pml_exec_backward(e, n);
        if (st == PML_OK) st = pml_exec_update(e, o);
        return st;
    }
    pml_status st = check_step(e, n);
    if (st == PML_OK) st = check_optim(e, o);
    if (st != PML_OK) return st;
    e->n = n;
    e->training = true;
    pml_optim_begin_step(o);
    if ((st = e->impl->train_step(e, n, o)) != PML_OK) return st;
    e->step++;
    return res ? pml__step_result(e, n, res) : PML_OK;
}

pml_status pml_exec_grad_step(pml_exec *e, int n, pml_step_result *res)
{
    if (!e->impl->grad_step) {
        pml_status st = pml_exec_forward(e, n, true, res);
        return st == PML_OK ? pml_exec_backward(e, n) : st;
    }
    pml_status st = check_step(e, n);
    if (st != PML_OK) return st;
    e->n = n;
    e->training = true;
    if ((st = e->impl->grad_step(e, n)) != PML_OK) return st;
    return res ? pml__step_result(e, n, res) : PML_OK;
}

pml_status pml_exec_apply(pml_exec *e, pml_optim *o)
{
    if (!e->impl->apply) return pml_exec_update(e, o);
    if (!e->training) return pml_fail(PML_EINVAL, "apply needs a step's gradients first");
    pml_status st = check_optim(e, o);
    if (st != PML_OK) return st;
    pml_optim_begin_step(o);
    if ((st = e->impl->apply(e, o)) != PML_OK) return st;
    e->step++;
    return PML_OK;
}

void pml_exec_set_profiling(pml_exec *e, bool on)
{
    if (on && !e->profiling) {
        memset(e->prof_fwd, 0, (size_t)e->g.nnodes * sizeof *e->prof_fwd);
        memset(e->prof_bwd, 0, (size_t)e->g.nnodes * sizeof *e->prof_bwd);
        e->prof_update = 0;
    }
    e->profiling = on;
}

void pml_exec_profile(const pml_exec *e, double *fwd, double *bwd, double *update)
{
    for (int v = 0; v < e->g.nnodes; v++) {
        if (fwd) fwd[v] = e->prof_fwd[v];
        if (bwd) bwd[v] = e->prof_bwd[v];
    }
    if (update) *update = e->prof_update;
}

pml_status pml_exec_trace_begin(pml_exec *e, long max_events)
{
    if (!e->impl->trace_begin) return pml_fail(PML_EUNSUPPORTED, "traces are recorded when a plan runs");
    return e->impl->trace_begin(e, max_events);
}

pml_status pml_exec_trace_write(pml_exec *e, const char *path)
{
    if (!e->impl->trace_write) return pml_fail(PML_EUNSUPPORTED, "traces are recorded when a plan runs");
    return e->impl->trace_write(e, path);
}

pml_status pml__exec_trace_emit(pml_exec *e, FILE *f, int part, int pid, int ranks)
{
    if (!e->impl->trace_emit) return pml_fail(PML_EUNSUPPORTED, "traces are recorded when a plan runs");
    return e->impl->trace_emit(e, f, part, pid, ranks);
}

const unsigned char *pml__exec_owned(const pml_exec *e, bool state)
{
    return e->impl->owned ? e->impl->owned(e, state) : NULL;
}
