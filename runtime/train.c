/* pml — the training loop: epochs of shuffled mini-batches, validation, test evaluation. */
#include "runtime.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static pml_status check_data(const pml_graph *g, const pml_dataset *d, const char *what)
{
    if (!pml_shape_eq(d->shape, g->nodes[g->input].out))
        return pml_fail(PML_ESHAPE,
                        "%s data '%s' has samples of %dx%dx%d, model '%s' takes %dx%dx%d", what,
                        d->name, d->shape.c, d->shape.h, d->shape.w, g->name,
                        g->nodes[g->input].out.c, g->nodes[g->input].out.h,
                        g->nodes[g->input].out.w);
    if (d->classes > g->classes)
        return pml_fail(PML_ESHAPE, "%s data '%s' has %d classes, model '%s' predicts %d", what,
                        d->name, d->classes, g->name, g->classes);
    if (d->n < 1) return pml_fail(PML_EINVAL, "%s data '%s' has no samples", what, d->name);
    return PML_OK;
}

pml_status pml_evaluate(pml_exec *e, const pml_dataset *d, int batch, double *loss,
                        double *accuracy)
{
    int32_t *idx = malloc((size_t)batch * sizeof *idx);
    if (!idx) return pml_fail(PML_ENOMEM, "out of memory");
    double s = 0;
    long correct = 0;
    pml_status st = PML_OK;
    for (int i = 0; i < d->n && st == PML_OK; i += batch) {
        int n = d->n - i < batch ? d->n - i : batch;
        for (int j = 0; j < n; j++) idx[j] = i + j;
        pml_data_gather(d, idx, n, pml_exec_input(e), pml_exec_labels(e));
        pml_step_result r;
        st = pml_exec_forward(e, n, false, &r);
        s += r.loss_sum;
        correct += r.correct;
    }
    free(idx);
    if (st != PML_OK) return st;
    *loss = s / d->n;
    *accuracy = (double)correct / d->n;
    return PML_OK;
}

pml_status pml_train(const pml_graph *g, pml_dataset *train, const pml_dataset *test,
                     const pml_train_opts *opts, pml_train_result *res)
{
    memset(res, 0, sizeof *res);
    if (opts->epochs < 1) return pml_fail(PML_EINVAL, "epochs=%d must be at least 1", opts->epochs);
    if (opts->batch < 1) return pml_fail(PML_EINVAL, "batch=%d must be at least 1", opts->batch);
    if (opts->max_steps < 0)
        return pml_fail(PML_EINVAL, "max-steps=%ld must not be negative", opts->max_steps);
    pml_status st;
    if ((st = check_data(g, train, "training")) != PML_OK) return st;
    if (test && (st = check_data(g, test, "test")) != PML_OK) return st;

    pml_dataset tr = *train, val;
    tr.owner = NULL; /* a view: the caller keeps the storage */
    bool has_val = opts->validation_split > 0;
    if (has_val && (st = pml_data_split(&tr, opts->validation_split, &val)) != PML_OK) return st;

    pml_exec *e = NULL;
    pml_optim optim = opts->optim;
    optim.m = optim.v = NULL;
    int32_t *perm = malloc((size_t)tr.n * sizeof *perm);
    res->epochs = calloc((size_t)opts->epochs, sizeof *res->epochs);
    if (!perm || !res->epochs) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto done;
    }
    pml_exec_opts eo = {.batch = opts->batch,
                        .threads = opts->threads,
                        .seed = opts->seed,
                        .check_numerics = opts->check_numerics,
                        .machine = opts->machine,
                        .plan = opts->plan};
    if ((st = pml_exec_create(g, &eo, &e)) != PML_OK) goto done;
    if (opts->trace_path && (st = pml_exec_trace_begin(e, 4000000)) != PML_OK) goto done;
    if ((st = pml_optim_alloc(&optim, g->nparams)) != PML_OK) goto done;

    const long steps_per_epoch = (tr.n + opts->batch - 1) / opts->batch;
    long total_steps = 0;
    for (int ep = 1; ep <= opts->epochs && st == PML_OK; ep++) {
        pml_epoch_stats *s = &res->epochs[ep - 1];
        s->epoch = ep;
        pml_data_shuffle(perm, tr.n, opts->seed, ep);
        double loss_sum = 0, t0 = now_seconds(), elapsed = 0;
        long correct = 0;
        for (long step = 0; step < steps_per_epoch; step++) {
            if (opts->max_steps && total_steps >= opts->max_steps) break;
            if (opts->cb.should_stop && opts->cb.should_stop(opts->cb.ud)) {
                st = pml_fail(PML_EINTR, "interrupted at epoch %d, step %ld", ep, step + 1);
                break;
            }
            int i0 = (int)(step * opts->batch);
            int n = tr.n - i0 < opts->batch ? tr.n - i0 : opts->batch;
            pml_data_gather(&tr, perm + i0, n, pml_exec_input(e), pml_exec_labels(e));
            pml_step_result r;
            if ((st = pml_exec_train_step(e, n, &optim, &r)) != PML_OK) {
                pml_fail_ctx(st, "epoch %d, step %ld: ", ep, step + 1);
                break;
            }
            loss_sum += r.loss_sum;
            correct += r.correct;
            s->samples += n;
            s->steps++;
            total_steps++;
            elapsed = now_seconds() - t0;
            if (opts->cb.step)
                opts->cb.step(opts->cb.ud, ep, step + 1, steps_per_epoch, loss_sum / s->samples,
                              (double)correct / s->samples, elapsed);
        }
        s->seconds = elapsed;
        if (s->samples == 0) break;
        s->loss = loss_sum / s->samples;
        s->accuracy = (double)correct / s->samples;
        res->epochs_run = ep;
        if (st != PML_OK) break;
        if (has_val) {
            s->has_val = true;
            if ((st = pml_evaluate(e, &val, opts->batch, &s->val_loss, &s->val_accuracy)) !=
                PML_OK)
                break;
        }
        if (opts->cb.epoch) opts->cb.epoch(opts->cb.ud, s);
        if (opts->max_steps && total_steps >= opts->max_steps) break;
    }
    if (st == PML_OK && test) {
        st = pml_evaluate(e, test, opts->batch, &res->test_loss, &res->test_accuracy);
        res->has_test = st == PML_OK;
    }
    if (opts->trace_path && e) {
        pml_status ts = pml_exec_trace_write(e, opts->trace_path);
        if (st == PML_OK) st = ts;
    }
done:
    pml_optim_free(&optim);
    pml_exec_destroy(e);
    free(perm);
    return st;
}

void pml_train_result_free(pml_train_result *r)
{
    free(r->epochs);
    memset(r, 0, sizeof *r);
}
