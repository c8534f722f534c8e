/* pml — parameter initialisation and optimizers (Keras semantics). */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void pml_params_init(const pml_graph *g, float *params, float *state, uint64_t seed)
{
    if (g->nparams) memset(params, 0, g->nparams * sizeof *params);
    if (g->nstate && state) memset(state, 0, g->nstate * sizeof *state);
    for (int i = 0; i < g->nnodes; i++) {
        const pml_node *n = &g->nodes[i];
        for (int j = 0; j < n->nparam; j++) {
            float *p = params + n->param_off[j];
            size_t sz = n->param_size[j];
            switch (n->param_init[j]) {
            case PML_INIT_ONES:
                for (size_t e = 0; e < sz; e++) p[e] = 1.0f;
                break;
            case PML_INIT_GLOROT: {
                /* Glorot/Xavier uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)) */
                double l = sqrt(6.0 / (double)(n->param_fan_in[j] + n->param_fan_out[j]));
                uint64_t stream = ((uint64_t)i << 8) | (uint64_t)j;
                if (n->op == PML_OP_LINEAR && j == 0) {
                    /* W (out, in) draws the values of Keras' kernel (in, out), transposed: the
                     * same initial model whichever way it is stored */
                    const size_t O = (size_t)n->out.c, K = O ? sz / O : 0;
                    for (size_t o = 0; o < O; o++)
                        for (size_t k = 0; k < K; k++)
                            p[o * K + k] =
                                (float)((2.0 * pml_rand_unif(seed, stream, k * O + o) - 1.0) * l);
                    break;
                }
                for (size_t e = 0; e < sz; e++)
                    p[e] = (float)((2.0 * pml_rand_unif(seed, stream, e) - 1.0) * l);
                break;
            }
            default:
                break;
            }
        }
        if (!state) continue;
        for (int j = 0; j < n->nstate; j++) {
            if (n->state_init[j] != PML_INIT_ONES) continue;
            float *s = state + n->state_off[j];
            for (size_t e = 0; e < n->state_size[j]; e++) s[e] = 1.0f;
        }
    }
}

pml_status pml_params_from_in_out(const pml_graph *g, float *params)
{
    for (int i = 0; i < g->nnodes; i++) {
        const pml_node *n = &g->nodes[i];
        if (n->op != PML_OP_LINEAR || n->nparam < 1) continue;
        const size_t O = (size_t)n->out.c, sz = n->param_size[0], K = O ? sz / O : 0;
        float *w = params + n->param_off[0], *t = malloc((sz ? sz : 1) * sizeof *t);
        if (!t) return pml_fail(PML_ENOMEM, "out of memory");
        for (size_t k = 0; k < K; k++)
            for (size_t o = 0; o < O; o++) t[o * K + k] = w[k * O + o];
        memcpy(w, t, sz * sizeof *t);
        free(t);
    }
    return PML_OK;
}

void pml_optim_defaults(pml_optim *o, pml_optim_kind kind)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->lr = kind == PML_OPTIM_ADAM ? 1e-3f : 1e-2f;
    o->momentum = 0.0f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-7f;
}

pml_status pml_optim_alloc(pml_optim *o, size_t n)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
    o->n = n;
    o->t = 0;
    size_t bytes = (n ? n : 1) * sizeof(float);
    o->m = calloc(1, bytes);
    if (o->kind == PML_OPTIM_ADAM) o->v = calloc(1, bytes);
    if (!o->m || (o->kind == PML_OPTIM_ADAM && !o->v)) {
        pml_optim_free(o);
        return pml_fail(PML_ENOMEM, "out of memory for optimizer state (%zu parameters)", n);
    }
    return PML_OK;
}

void pml_optim_free(pml_optim *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
    o->n = 0;
}

void pml_optim_begin_step(pml_optim *o)
{
    o->t++;
    double t = (double)o->t;
    double c2 = sqrt(1.0 - pow((double)o->beta2, t));
    o->lr_t = (float)((double)o->lr * c2 / (1.0 - pow((double)o->beta1, t)));
    o->eps_t = (float)(o->eps * c2);
}

PML_HOT
static void sgd_apply(float *restrict w, const float *restrict g, float *restrict vel, size_t n,
                      float lr, float mom)
{
    if (mom == 0.0f) {
        for (size_t i = 0; i < n; i++) w[i] -= lr * g[i];
        return;
    }
    /* Keras: v = momentum * v - lr * g; w = w + v */
    for (size_t i = 0; i < n; i++) {
        vel[i] = mom * vel[i] - lr * g[i];
        w[i] += vel[i];
    }
}

PML_HOT
static void adam_apply(float *restrict w, const float *restrict g, float *restrict m,
                       float *restrict v, size_t n, float lr_t, float b1, float b2, float eps_hat)
{
    /* Keras (TF2) Adam: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t);
     * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr_t * m / (sqrt(v) + eps_hat),
     * eps_hat = eps * sqrt(1 - b2^t). */
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= lr_t * mi / (sqrtf(vi) + eps_hat);
    }
}

void pml_optim_apply(const pml_optim *o, float *params, const float *grads, size_t i0, size_t i1)
{
    if (i1 <= i0) return;
    size_t n = i1 - i0;
    if (o->kind == PML_OPTIM_SGD) {
        sgd_apply(params + i0, grads + i0, o->m + i0, n, o->lr, o->momentum);
        return;
    }
    if (o->t < 1) return; /* pml_optim_begin_step() first */
    adam_apply(params + i0, grads + i0, o->m + i0, o->v + i0, n, o->lr_t, o->beta1, o->beta2,
               o->eps_t);
}
