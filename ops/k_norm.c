/* pml — batch normalisation over (N, H, W) per channel.
 * Training: batch statistics (biased variance to normalise, unbiased for the running estimate),
 * running = momentum * running + (1 - momentum) * batch (Keras; PyTorch momentum 0.1 = 0.9 here).
 * Inference: running statistics, or the batch's with batch_stats (an ONNX training-mode node;
 * the running statistics are then left as they are). Only a channel split is exact; a part of a
 * sample or row split (an approximate split, as PyTorch DDP does it) normalises with its own
 * region's statistics. */
#include "kernels.h"

#include <math.h>

pml_status pml__batchnorm_infer(pml_node *n, const pml_shape *in, int nin)
{
    if (!(n->a.eps > 0.0f))
        return pml_fail(PML_EFORMAT, "node '%s' (batchnorm): eps=%g must be positive", n->name,
                        (double)n->a.eps);
    if (!(n->a.momentum >= 0.0f && n->a.momentum < 1.0f))
        return pml_fail(PML_EFORMAT, "node '%s' (batchnorm): momentum=%g must be in [0, 1)",
                        n->name, (double)n->a.momentum);
    const int C = in[0].c;
    n->out = in[0];
    pml__node_param(n, 0, (size_t)C, PML_INIT_ONES, 0, 0);  /* gamma */
    pml__node_param(n, 1, (size_t)C, PML_INIT_ZEROS, 0, 0); /* beta */
    pml__node_state(n, 0, (size_t)C, PML_INIT_ZEROS);       /* running mean */
    pml__node_state(n, 1, (size_t)C, PML_INIT_ONES);        /* running variance */
    n->aux_fixed = 2 * (size_t)C;                           /* batch mean, 1/std */
    return PML_OK;
}

double pml__batchnorm_flops(const pml_node *n, const pml_shape *in, int nin)
{
    return 4.0 * (double)pml_shape_size(in[0]);
}

size_t pml__batchnorm_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    return 0;
}

PML_HOT static void plane_sums(const float *restrict x, size_t len, double *s, double *s2)
{
    float a = 0, b = 0;
    for (size_t i = 0; i < len; i++) {
        a += x[i];
        b += x[i] * x[i];
    }
    *s += a;
    *s2 += b;
}

PML_HOT static void plane_affine(float *restrict y, const float *restrict x, size_t len, float mul,
                                 float add)
{
    for (size_t i = 0; i < len; i++) y[i] = x[i] * mul + add;
}

/* sums of dy and of dy * (x - mean): centred, so the two do not cancel when |mean| >> std */
PML_HOT static void plane_grad_sums(const float *restrict dy, const float *restrict x, size_t len,
                                    float mean, double *sdy, double *sdyx)
{
    float a = 0, b = 0;
    for (size_t i = 0; i < len; i++) {
        a += dy[i];
        b += dy[i] * (x[i] - mean);
    }
    *sdy += a;
    *sdyx += b;
}

PML_HOT static void plane_dx(float *restrict dx, const float *restrict dy, const float *restrict x,
                             size_t len, float a, float b, float mean, float c)
{
    /* dx += a * dy + b * (x - mean) + c */
    for (size_t i = 0; i < len; i++) dx[i] += a * dy[i] + b * (x[i] - mean) + c;
}

/* Batch mean and variance of channel c over all N samples; shifted by the first element for
 * accuracy with plain sums. */
static void channel_stats(const pml_kctx *k, int c, double *mean, double *var)
{
    const pml_shape s = k->xs[0];
    const size_t plane = (size_t)s.h * s.w, rows = (size_t)(k->r.h1 - k->r.h0) * s.w,
                 roff = (size_t)k->r.h0 * s.w, M = rows * (size_t)(k->r.n1 - k->r.n0);
    const float *x0 = k->x[0] + ((size_t)k->r.n0 * s.c + c) * plane + roff;
    double shift = x0[0], s1 = 0, s2 = 0;
    for (int n = k->r.n0; n < k->r.n1; n++) {
        const float *x = k->x[0] + (((size_t)n * s.c + c) * plane + roff);
        double a = 0, b = 0;
        float buf[256];
        for (size_t i = 0; i < rows; i += 256) {
            size_t len = rows - i < 256 ? rows - i : 256;
            for (size_t j = 0; j < len; j++) buf[j] = x[i + j] - (float)shift;
            plane_sums(buf, len, &a, &b);
        }
        s1 += a;
        s2 += b;
    }
    double m = s1 / (double)M;
    *mean = shift + m;
    double v = s2 / (double)M - m * m;
    *var = v > 0 ? v : 0;
}

// x (N,C,H,W) -> y (N,C,H,W); region: channels [c0,c1), all samples and rows
void pml__batchnorm_fwd(const pml_kctx *k)
{
    const pml_node *nd = k->node;
    const pml_shape s = k->xs[0];
    const size_t plane = (size_t)s.h * s.w, rows = (size_t)(k->r.h1 - k->r.h0) * s.w,
                 roff = (size_t)k->r.h0 * s.w, M = rows * (size_t)(k->r.n1 - k->r.n0);
    float *rmean = k->state[0], *rvar = k->state[1];
    float *bmean = k->aux, *binv = k->aux + s.c;
    for (int c = k->r.c0; c < k->r.c1; c++) {
        double mean, var;
        if (k->training || nd->a.batch_stats) {
            channel_stats(k, c, &mean, &var);
            double unbiased = M > 1 ? var * (double)M / (double)(M - 1) : var;
            float m = nd->a.momentum;
            if (k->training) {
                rmean[c] = m * rmean[c] + (1.0f - m) * (float)mean;
                rvar[c] = m * rvar[c] + (1.0f - m) * (float)unbiased;
            }
        } else {
            mean = rmean[c];
            var = rvar[c];
        }
        double inv = 1.0 / sqrt(var + nd->a.eps);
        bmean[c] = (float)mean;
        binv[c] = (float)inv;
        float mul = (float)(k->w[0][c] * inv), add = (float)(k->w[1][c] - mean * inv * k->w[0][c]);
        for (int n = k->r.n0; n < k->r.n1; n++) {
            size_t off = (((size_t)n * s.c + c) * plane + roff);
            plane_affine(k->y + off, k->x[0] + off, rows, mul, add);
        }
    }
}

void pml__batchnorm_bwd(const pml_kctx *k)
{
    const pml_shape s = k->xs[0];
    const size_t plane = (size_t)s.h * s.w, rows = (size_t)(k->r.h1 - k->r.h0) * s.w,
                 roff = (size_t)k->r.h0 * s.w, M = rows * (size_t)(k->r.n1 - k->r.n0);
    const float *bmean = k->aux, *binv = k->aux + s.c;
    for (int c = k->r.c0; c < k->r.c1; c++) {
        double sdy = 0, sdyx = 0;
        for (int n = k->r.n0; n < k->r.n1; n++) {
            size_t off = (((size_t)n * s.c + c) * plane + roff);
            plane_grad_sums(k->dy + off, k->x[0] + off, rows, bmean[c], &sdy, &sdyx);
        }
        const double mean = bmean[c], inv = binv[c], g = k->w[0][c];
        /* sum dy * xhat = inv * sum dy (x - mean) */
        double dgamma = inv * sdyx, dbeta = sdy;
        if (k->dw[0]) k->dw[0][c] += (float)dgamma;
        if (k->dw[1]) k->dw[1][c] += (float)dbeta;
        if (!k->dx[0]) continue;
        double a, b, cc;
        if (k->training || k->node->a.batch_stats) {
            /* dx = g inv / M (M dy - dbeta - xhat dgamma), xhat = (x - mean) inv */
            a = g * inv;
            b = -g * inv * inv * dgamma / (double)M;
            cc = -g * inv * dbeta / (double)M;
        } else {
            a = g * inv;
            b = 0;
            cc = 0;
        }
        for (int n = k->r.n0; n < k->r.n1; n++) {
            size_t off = (((size_t)n * s.c + c) * plane + roff);
            plane_dx(k->dx[0] + off, k->dy + off, k->x[0] + off, rows, (float)a, (float)b,
                     (float)mean, (float)cc);
        }
    }
}

void pml__batchnorm_fwd_ref(const pml_kctx *k)
{
    const pml_node *nd = k->node;
    const pml_shape s = k->xs[0];
    const size_t plane = (size_t)s.h * s.w, rows = (size_t)(k->r.h1 - k->r.h0) * s.w,
                 roff = (size_t)k->r.h0 * s.w, M = rows * (size_t)(k->r.n1 - k->r.n0);
    for (int c = k->r.c0; c < k->r.c1; c++) {
        double mean = 0, var = 0;
        if (k->training || nd->a.batch_stats) {
            for (int n = k->r.n0; n < k->r.n1; n++)
                for (size_t i = 0; i < rows; i++) mean += k->x[0][(((size_t)n * s.c + c) * plane + roff) + i];
            mean /= (double)M;
            for (int n = k->r.n0; n < k->r.n1; n++)
                for (size_t i = 0; i < rows; i++) {
                    double d = k->x[0][(((size_t)n * s.c + c) * plane + roff) + i] - mean;
                    var += d * d;
                }
            var /= (double)M;
            double unbiased = M > 1 ? var * (double)M / (double)(M - 1) : var;
            if (k->training) {
                k->state[0][c] = nd->a.momentum * k->state[0][c] + (1 - nd->a.momentum) * (float)mean;
                k->state[1][c] =
                    nd->a.momentum * k->state[1][c] + (1 - nd->a.momentum) * (float)unbiased;
            }
        } else {
            mean = k->state[0][c];
            var = k->state[1][c];
        }
        double inv = 1.0 / sqrt(var + nd->a.eps);
        k->aux[c] = (float)mean;
        k->aux[s.c + c] = (float)inv;
        for (int n = k->r.n0; n < k->r.n1; n++)
            for (size_t i = 0; i < rows; i++) {
                size_t e = (((size_t)n * s.c + c) * plane + roff) + i;
                k->y[e] = (float)((k->x[0][e] - mean) * inv * k->w[0][c] + k->w[1][c]);
            }
    }
}

void pml__batchnorm_bwd_ref(const pml_kctx *k)
{
    const pml_shape s = k->xs[0];
    const size_t plane = (size_t)s.h * s.w, rows = (size_t)(k->r.h1 - k->r.h0) * s.w,
                 roff = (size_t)k->r.h0 * s.w, M = rows * (size_t)(k->r.n1 - k->r.n0);
    for (int c = k->r.c0; c < k->r.c1; c++) {
        const double mean = k->aux[c], inv = k->aux[s.c + c], g = k->w[0][c];
        double dgamma = 0, dbeta = 0;
        for (int n = k->r.n0; n < k->r.n1; n++)
            for (size_t i = 0; i < rows; i++) {
                size_t e = (((size_t)n * s.c + c) * plane + roff) + i;
                dbeta += k->dy[e];
                dgamma += k->dy[e] * (k->x[0][e] - mean) * inv;
            }
        if (k->dw[0]) k->dw[0][c] += (float)dgamma;
        if (k->dw[1]) k->dw[1][c] += (float)dbeta;
        if (!k->dx[0]) continue;
        for (int n = k->r.n0; n < k->r.n1; n++)
            for (size_t i = 0; i < rows; i++) {
                size_t e = (((size_t)n * s.c + c) * plane + roff) + i;
                double xhat = (k->x[0][e] - mean) * inv, d;
                if (k->training || k->node->a.batch_stats)
                    d = g * inv / (double)M * ((double)M * k->dy[e] - dbeta - xhat * dgamma);
                else
                    d = g * inv * k->dy[e];
                k->dx[0][e] += (float)d;
            }
    }
}
