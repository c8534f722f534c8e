/* pml — softmax cross-entropy on logits with integer labels (Keras
 * SparseCategoricalCrossentropy(from_logits=True)). Output: the per-sample loss. Backward ignores
 * dy and accumulates the gradient of the MEAN loss over batch_total samples. A negative label
 * marks a padding sample (a short last batch run by a plan made for a full one): its loss is 0
 * and it has no gradient. A single logit z is the logits (0, z): a binary classifier (labels 0 and
 * 1) whose loss is softplus(z) - [label = 1] z, as Keras' BinaryCrossentropy(from_logits=True) and
 * PyTorch's BCEWithLogitsLoss. */
#include "kernels.h"

#include <math.h>

pml_status pml__softmax_xent_infer(pml_node *n, const pml_shape *in, int nin)
{
    if (in[0].h != 1 || in[0].w != 1)
        return pml_fail(PML_ESHAPE,
                        "node '%s' (softmax_xent): logits are %dx%dx%d, need a vector (flatten or "
                        "pool first)",
                        n->name, in[0].c, in[0].h, in[0].w);
    n->out = (pml_shape){1, 1, 1};
    return PML_OK;
}

double pml__softmax_xent_flops(const pml_node *n, const pml_shape *in, int nin)
{
    return 4.0 * in[0].c;
}

size_t pml__softmax_xent_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    return 0;
}

static inline int label_of(const pml_kctx *k, int i, int C)
{
    int l = k->labels ? k->labels[i] : 0;
    return (l >= 0 && l < (C > 1 ? C : 2)) ? l : 0;
}

/* one logit z, the logits (0, z): log(1 + e^z) without overflow, and its gradient's sigmoid */
static inline double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }
static inline double sigmoid(double z)
{
    return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

static inline bool padding(const pml_kctx *k, int i) { return k->labels && k->labels[i] < 0; }

// logits (N,C) -> loss (N,1)
void pml__softmax_xent_fwd(const pml_kctx *k)
{
    const int C = k->xs[0].c;
    for (int i = k->r.n0; i < k->r.n1; i++) {
        if (padding(k, i)) {
            k->y[i] = 0.0f;
            continue;
        }
        const float *z = k->x[0] + (size_t)i * C;
        if (C == 1) {
            k->y[i] = (float)(softplus(z[0]) - (label_of(k, i, C) == 1 ? z[0] : 0.0));
            continue;
        }
        float mx = z[0];
        for (int j = 1; j < C; j++) mx = z[j] > mx ? z[j] : mx;
        float s = 0;
        for (int j = 0; j < C; j++) s += expf(z[j] - mx);
        k->y[i] = logf(s) + mx - z[label_of(k, i, C)];
    }
}

void pml__softmax_xent_bwd(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    const int C = k->xs[0].c;
    const float inv = 1.0f / (float)(k->batch_total > 0 ? k->batch_total : k->N);
    for (int i = k->r.n0; i < k->r.n1; i++) {
        if (padding(k, i)) continue;
        const float *z = k->x[0] + (size_t)i * C;
        float *d = k->dx[0] + (size_t)i * C;
        if (C == 1) {
            d[0] += (float)(sigmoid(z[0]) - (label_of(k, i, C) == 1)) * inv;
            continue;
        }
        float mx = z[0];
        for (int j = 1; j < C; j++) mx = z[j] > mx ? z[j] : mx;
        float s = 0;
        for (int j = 0; j < C; j++) s += expf(z[j] - mx);
        const float rs = inv / s;
        for (int j = 0; j < C; j++) d[j] += expf(z[j] - mx) * rs;
        d[label_of(k, i, C)] -= inv;
    }
}

void pml__softmax_xent_fwd_ref(const pml_kctx *k)
{
    const int C = k->xs[0].c;
    for (int i = k->r.n0; i < k->r.n1; i++) {
        if (padding(k, i)) {
            k->y[i] = 0.0f;
            continue;
        }
        const float *z = k->x[0] + (size_t)i * C;
        if (C == 1) { /* the logits (0, z) */
            k->y[i] = (float)(log(1.0 + exp((double)z[0])) - (label_of(k, i, C) == 1 ? z[0] : 0));
            continue;
        }
        double s = 0;
        for (int j = 0; j < C; j++) s += exp((double)z[j]);
        k->y[i] = (float)(log(s) - z[label_of(k, i, C)]);
    }
}

void pml__softmax_xent_bwd_ref(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    const int C = k->xs[0].c;
    const double B = k->batch_total > 0 ? k->batch_total : k->N;
    for (int i = k->r.n0; i < k->r.n1; i++) {
        if (padding(k, i)) continue;
        const float *z = k->x[0] + (size_t)i * C;
        if (C == 1) { /* d/dz of log(1 + e^z) - [label = 1] z */
            const double e = exp((double)z[0]);
            k->dx[0][i] += (float)((e / (1.0 + e) - (label_of(k, i, C) == 1)) / B);
            continue;
        }
        double s = 0;
        for (int j = 0; j < C; j++) s += exp((double)z[j]);
        for (int j = 0; j < C; j++)
            k->dx[0][(size_t)i * C + j] +=
                (float)((exp((double)z[j]) / s - (j == label_of(k, i, C))) / B);
    }
}
