/* pml — element-wise and layout ops: relu, activation (sigmoid, tanh, leaky relu, ...), flatten,
 * add, concat, dropout.
 * The fast kernels walk a region as contiguous row blocks; the reference kernels index every
 * element through its (n, c, h, w) coordinates. */
#include "kernels.h"

#include <math.h>
#include <string.h>

/* Calls body(offset, len) for each contiguous block of region r of a (C,H,W) tensor. */
#define FOR_BLOCKS(r, s, off, len)                                                                 \
    for (int bn_ = (r).n0; bn_ < (r).n1; bn_++)                                                    \
        for (int bc_ = (r).c0; bc_ < (r).c1; bc_++)                                                \
            for (size_t off = (((size_t)bn_ * (s).c + bc_) * (s).h + (r).h0) * (s).w,             \
                        len = (size_t)((r).h1 - (r).h0) * (s).w, once_ = 1;                       \
                 once_; once_ = 0)

#define FOR_ELEMS(r, s, idx)                                                                       \
    for (int en_ = (r).n0; en_ < (r).n1; en_++)                                                    \
        for (int ec_ = (r).c0; ec_ < (r).c1; ec_++)                                                \
            for (int eh_ = (r).h0; eh_ < (r).h1; eh_++)                                            \
                for (int ew_ = 0; ew_ < (s).w; ew_++)                                              \
                    for (size_t idx = (((size_t)en_ * (s).c + ec_) * (s).h + eh_) * (s).w + ew_,  \
                                once_ = 1;                                                         \
                         once_; once_ = 0)

static size_t no_ws(void) { return 0; }

const char *pml_kernels_isa(void)
{
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* as the load-time resolvers of PML_HOT's clones decide */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
#endif
    return "baseline";
}

/* ---------------------------------------------------------------- relu */

pml_status pml__relu_infer(pml_node *n, const pml_shape *in, int nin)
{
    n->out = in[0];
    return PML_OK;
}
double pml__relu_flops(const pml_node *n, const pml_shape *in, int nin)
{
    return (double)pml_shape_size(in[0]);
}
size_t pml__relu_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return no_ws(); }

/* Both loads unconditional: a select of two loaded vectors, on every instruction set (a load
 * under the condition vectorises only with masked loads, and is a branch without them). */
PML_HOT void pml__relu_mask(float *restrict m, const float *restrict y, const float *restrict dy,
                            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float d = dy[i];
        m[i] = y[i] > 0.0f ? d : 0.0f;
    }
}
void pml__relu_mask_rows(float *m, const float *y, const float *dy, size_t ld, size_t rows,
                         size_t len)
{
    if (len == ld) {
        pml__relu_mask(m, y, dy, rows * len);
        return;
    }
    for (size_t r = 0; r < rows; r++) pml__relu_mask(m + r * len, y + r * ld, dy + r * ld, len);
}

PML_HOT static void relu_f(float *restrict y, const float *restrict x, size_t len)
{
    for (size_t i = 0; i < len; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
PML_HOT static void relu_b(float *restrict dx, const float *restrict dy, const float *restrict x,
                           size_t len)
{
    for (size_t i = 0; i < len; i++) {
        const float d = dy[i];
        dx[i] += x[i] > 0.0f ? d : 0.0f;
    }
}

// x (N,C,H,W) -> y (N,C,H,W)
void pml__relu_fwd(const pml_kctx *k)
{
    FOR_BLOCKS(k->r, k->node->out, off, len) relu_f(k->y + off, k->x[0] + off, len);
}
void pml__relu_bwd(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    FOR_BLOCKS(k->r, k->node->out, off, len) relu_b(k->dx[0] + off, k->dy + off, k->x[0] + off, len);
}
void pml__relu_fwd_ref(const pml_kctx *k)
{
    FOR_ELEMS(k->r, k->node->out, i) k->y[i] = k->x[0][i] > 0 ? k->x[0][i] : 0;
}
void pml__relu_bwd_ref(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    FOR_ELEMS(k->r, k->node->out, i) if (k->x[0][i] > 0) k->dx[0][i] += k->dy[i];
}

/* ---------------------------------------------------------------- activation */

pml_status pml__activation_infer(pml_node *n, const pml_shape *in, int nin)
{
    const pml_attrs *a = &n->a;
    if (a->fn < 0 || a->fn >= PML_FN_COUNT)
        return pml_fail(PML_EFORMAT, "node '%s' (activation): function %d is not one of pml's",
                        n->name, a->fn);
    if (!isfinite(a->alpha) || !isfinite(a->beta))
        return pml_fail(PML_EFORMAT, "node '%s' (activation): alpha %g and beta %g must be finite",
                        n->name, (double)a->alpha, (double)a->beta);
    if (a->fn == PML_FN_CLIP && a->alpha > a->beta)
        return pml_fail(PML_EFORMAT, "node '%s' (activation): clip's alpha %g (min) is above beta "
                        "%g (max)", n->name, (double)a->alpha, (double)a->beta);
    n->out = in[0];
    return PML_OK;
}
double pml__activation_flops(const pml_node *n, const pml_shape *in, int nin)
{
    /* an exponential or tanh counts as a few operations */
    const int fn = n->a.fn;
    const bool cheap = fn == PML_FN_LEAKY_RELU || fn == PML_FN_HARD_SIGMOID ||
                       fn == PML_FN_THRESHOLDED_RELU || fn == PML_FN_SOFTSIGN ||
                       fn == PML_FN_HARD_SWISH || fn == PML_FN_CLIP;
    return (double)pml_shape_size(in[0]) * (cheap ? 2.0 : 8.0);
}
size_t pml__activation_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    return no_ws();
}

/* y = f(x) over len elements */
PML_HOT static void act_f(int fn, float al, float be, float *restrict y, const float *restrict x,
                          size_t len)
{
    switch (fn) {
    case PML_FN_SIGMOID:
        for (size_t i = 0; i < len; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case PML_FN_TANH:
        for (size_t i = 0; i < len; i++) y[i] = tanhf(x[i]);
        break;
    case PML_FN_LEAKY_RELU:
        for (size_t i = 0; i < len; i++) y[i] = x[i] < 0.0f ? al * x[i] : x[i];
        break;
    case PML_FN_ELU:
        for (size_t i = 0; i < len; i++) y[i] = x[i] < 0.0f ? al * expm1f(x[i]) : x[i];
        break;
    case PML_FN_SELU:
        for (size_t i = 0; i < len; i++) y[i] = be * (x[i] <= 0.0f ? al * expm1f(x[i]) : x[i]);
        break;
    case PML_FN_SOFTPLUS: /* without overflow: max(x, 0) + log1p(e^-|x|) */
        for (size_t i = 0; i < len; i++)
            y[i] = (x[i] > 0.0f ? x[i] : 0.0f) + log1pf(expf(-fabsf(x[i])));
        break;
    case PML_FN_SOFTSIGN:
        for (size_t i = 0; i < len; i++) y[i] = x[i] / (1.0f + fabsf(x[i]));
        break;
    case PML_FN_HARD_SIGMOID:
        for (size_t i = 0; i < len; i++) {
            const float v = al * x[i] + be;
            y[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
        break;
    case PML_FN_THRESHOLDED_RELU:
        for (size_t i = 0; i < len; i++) y[i] = x[i] > al ? x[i] : 0.0f;
        break;
    case PML_FN_HARD_SWISH:
        for (size_t i = 0; i < len; i++) {
            const float v = x[i] * (1.0f / 6.0f) + 0.5f;
            y[i] = x[i] * (v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v);
        }
        break;
    case PML_FN_SILU:
        for (size_t i = 0; i < len; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    case PML_FN_CLIP:
        for (size_t i = 0; i < len; i++) y[i] = x[i] < al ? al : x[i] > be ? be : x[i];
        break;
    default:
        break;
    }
}

/* dx += dy f'(x) over len elements (y = f(x) where that is cheaper) */
PML_HOT static void act_b(int fn, float al, float be, float *restrict dx, const float *restrict dy,
                          const float *restrict x, const float *restrict y, size_t len)
{
    switch (fn) {
    case PML_FN_SIGMOID:
        for (size_t i = 0; i < len; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
        break;
    case PML_FN_TANH:
        for (size_t i = 0; i < len; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
        break;
    case PML_FN_LEAKY_RELU:
        for (size_t i = 0; i < len; i++) dx[i] += x[i] < 0.0f ? al * dy[i] : dy[i];
        break;
    case PML_FN_ELU:
        for (size_t i = 0; i < len; i++) dx[i] += x[i] < 0.0f ? dy[i] * al * expf(x[i]) : dy[i];
        break;
    case PML_FN_SELU:
        for (size_t i = 0; i < len; i++)
            dx[i] += be * (x[i] <= 0.0f ? dy[i] * al * expf(x[i]) : dy[i]);
        break;
    case PML_FN_SOFTPLUS:
        for (size_t i = 0; i < len; i++) dx[i] += dy[i] / (1.0f + expf(-x[i]));
        break;
    case PML_FN_SOFTSIGN:
        for (size_t i = 0; i < len; i++) {
            const float d = 1.0f + fabsf(x[i]);
            dx[i] += dy[i] / (d * d);
        }
        break;
    case PML_FN_HARD_SIGMOID:
        for (size_t i = 0; i < len; i++) {
            const float v = al * x[i] + be;
            dx[i] += v > 0.0f && v < 1.0f ? al * dy[i] : 0.0f;
        }
        break;
    case PML_FN_THRESHOLDED_RELU:
        for (size_t i = 0; i < len; i++) dx[i] += x[i] > al ? dy[i] : 0.0f;
        break;
    case PML_FN_HARD_SWISH:
        for (size_t i = 0; i < len; i++)
            dx[i] += x[i] < -3.0f ? 0.0f : x[i] > 3.0f ? dy[i] : dy[i] * (x[i] * (1.0f / 3.0f) + 0.5f);
        break;
    case PML_FN_SILU:
        for (size_t i = 0; i < len; i++) {
            const float sg = 1.0f / (1.0f + expf(-x[i]));
            dx[i] += dy[i] * sg * (1.0f + x[i] * (1.0f - sg));
        }
        break;
    case PML_FN_CLIP:
        for (size_t i = 0; i < len; i++) dx[i] += x[i] > al && x[i] < be ? dy[i] : 0.0f;
        break;
    default:
        break;
    }
}

// x (N,C,H,W) -> y (N,C,H,W)
void pml__activation_fwd(const pml_kctx *k)
{
    const pml_attrs *a = &k->node->a;
    FOR_BLOCKS(k->r, k->node->out, off, len)
    act_f(a->fn, a->alpha, a->beta, k->y + off, k->x[0] + off, len);
}
void pml__activation_bwd(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    const pml_attrs *a = &k->node->a;
    FOR_BLOCKS(k->r, k->node->out, off, len)
    act_b(a->fn, a->alpha, a->beta, k->dx[0] + off, k->dy + off, k->x[0] + off, k->y + off, len);
}

/* the reference: each function and its derivative from x alone, in double */
static double act_ref(int fn, double al, double be, double x, double *d)
{
    switch (fn) {
    case PML_FN_SIGMOID: {
        const double s = 1.0 / (1.0 + exp(-x));
        *d = s * (1.0 - s);
        return s;
    }
    case PML_FN_TANH: {
        const double t = tanh(x);
        *d = 1.0 - t * t;
        return t;
    }
    case PML_FN_LEAKY_RELU:
        *d = x < 0 ? al : 1.0;
        return x < 0 ? al * x : x;
    case PML_FN_ELU:
        *d = x < 0 ? al * exp(x) : 1.0;
        return x < 0 ? al * (exp(x) - 1.0) : x;
    case PML_FN_SELU:
        *d = be * (x <= 0 ? al * exp(x) : 1.0);
        return be * (x <= 0 ? al * (exp(x) - 1.0) : x);
    case PML_FN_SOFTPLUS:
        *d = 1.0 / (1.0 + exp(-x));
        return x > 30 ? x + log1p(exp(-x)) : log1p(exp(x));
    case PML_FN_SOFTSIGN:
        *d = 1.0 / ((1.0 + fabs(x)) * (1.0 + fabs(x)));
        return x / (1.0 + fabs(x));
    case PML_FN_HARD_SIGMOID: {
        const double v = al * x + be;
        *d = v > 0 && v < 1 ? al : 0.0;
        return v < 0 ? 0.0 : v > 1 ? 1.0 : v;
    }
    case PML_FN_THRESHOLDED_RELU:
        *d = x > al ? 1.0 : 0.0;
        return x > al ? x : 0.0;
    case PML_FN_HARD_SWISH: /* x relu6(x + 3) / 6 */
        *d = x < -3 ? 0.0 : x > 3 ? 1.0 : (2.0 * x + 3.0) / 6.0;
        return x * fmin(fmax(x + 3.0, 0.0), 6.0) / 6.0;
    case PML_FN_SILU: {
        const double sg = 1.0 / (1.0 + exp(-x));
        *d = sg + x * sg * (1.0 - sg);
        return x * sg;
    }
    case PML_FN_CLIP:
        *d = x > al && x < be ? 1.0 : 0.0;
        return x < al ? al : x > be ? be : x;
    default:
        *d = 0;
        return 0;
    }
}
void pml__activation_fwd_ref(const pml_kctx *k)
{
    const pml_attrs *a = &k->node->a;
    double d;
    FOR_ELEMS(k->r, k->node->out, i)
    k->y[i] = (float)act_ref(a->fn, a->alpha, a->beta, k->x[0][i], &d);
}
void pml__activation_bwd_ref(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    const pml_attrs *a = &k->node->a;
    FOR_ELEMS(k->r, k->node->out, i)
    {
        double d;
        act_ref(a->fn, a->alpha, a->beta, k->x[0][i], &d);
        k->dx[0][i] += (float)(k->dy[i] * d);
    }
}

/* ---------------------------------------------------------------- mul */

/* The product of two inputs: of equal shapes, or the second one value per channel (C, 1, 1),
 * the same for all of a channel's rows and columns (a squeeze-and-excitation block's scale). */

bool pml__mul_per_channel(const pml_shape *in)
{
    return in[1].h == 1 && in[1].w == 1 && (in[0].h > 1 || in[0].w > 1);
}

pml_status pml__mul_infer(pml_node *n, const pml_shape *in, int nin)
{
    if (nin != 2)
        return pml_fail(PML_EFORMAT, "node '%s' (mul): takes 2 inputs, has %d", n->name, nin);
    if (!pml_shape_eq(in[1], in[0]) && !(in[1].c == in[0].c && in[1].h == 1 && in[1].w == 1))
        return pml_fail(PML_ESHAPE,
                        "node '%s' (mul): input 1 is %dx%dx%d; input 0 is %dx%dx%d (input 1 "
                        "must be its shape or %dx1x1, a value per channel)",
                        n->name, in[1].c, in[1].h, in[1].w, in[0].c, in[0].h, in[0].w, in[0].c);
    n->out = in[0];
    return PML_OK;
}
double pml__mul_flops(const pml_node *n, const pml_shape *in, int nin)
{
    return (double)pml_shape_size(in[0]);
}
size_t pml__mul_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return no_ws(); }

// x0 (N,C,H,W) * x1 (N,C,H,W or 1,1) -> y
void pml__mul_fwd(const pml_kctx *k)
{
    const pml_region r = k->r;
    const pml_shape s = k->node->out;
    const bool pc = pml__mul_per_channel(k->xs);
    for (int n = r.n0; n < r.n1; n++)
        for (int c = r.c0; c < r.c1; c++) {
            const size_t off = (((size_t)n * s.c + c) * s.h + r.h0) * s.w;
            const size_t len = (size_t)(r.h1 - r.h0) * s.w;
            const float *restrict a = k->x[0] + off;
            float *restrict y = k->y + off;
            if (pc) {
                const float v = k->x[1][(size_t)n * s.c + c];
                for (size_t i = 0; i < len; i++) y[i] = a[i] * v;
            } else {
                const float *restrict b = k->x[1] + off;
                for (size_t i = 0; i < len; i++) y[i] = a[i] * b[i];
            }
        }
}
// dy -> dx0 += dy x1, dx1 += dy x0 (per channel: summed over the channel's rows and columns)
void pml__mul_bwd(const pml_kctx *k)
{
    const pml_region r = k->r;
    const pml_shape s = k->node->out;
    const bool pc = pml__mul_per_channel(k->xs);
    for (int n = r.n0; n < r.n1; n++)
        for (int c = r.c0; c < r.c1; c++) {
            const size_t off = (((size_t)n * s.c + c) * s.h + r.h0) * s.w;
            const size_t len = (size_t)(r.h1 - r.h0) * s.w;
            const float *restrict a = k->x[0] + off, *restrict dy = k->dy + off;
            if (pc) {
                const size_t at = (size_t)n * s.c + c;
                const float v = k->x[1][at];
                if (k->dx[0])
                    for (size_t i = 0; i < len; i++) k->dx[0][off + i] += dy[i] * v;
                if (k->dx[1]) {
                    float sum = 0;
                    for (size_t i = 0; i < len; i++) sum += dy[i] * a[i];
                    k->dx[1][at] += sum;
                }
            } else {
                const float *restrict b = k->x[1] + off;
                if (k->dx[0])
                    for (size_t i = 0; i < len; i++) k->dx[0][off + i] += dy[i] * b[i];
                if (k->dx[1])
                    for (size_t i = 0; i < len; i++) k->dx[1][off + i] += dy[i] * a[i];
            }
        }
}
void pml__mul_fwd_ref(const pml_kctx *k)
{
    const pml_shape s = k->node->out;
    const size_t plane = (size_t)s.h * s.w;
    const bool pc = pml__mul_per_channel(k->xs);
    FOR_ELEMS(k->r, s, e)
    k->y[e] = (float)((double)k->x[0][e] * k->x[1][pc ? e / plane : e]);
}
void pml__mul_bwd_ref(const pml_kctx *k)
{
    const pml_shape s = k->node->out;
    const size_t plane = (size_t)s.h * s.w;
    const bool pc = pml__mul_per_channel(k->xs);
    FOR_ELEMS(k->r, s, e)
    {
        const size_t j = pc ? e / plane : e;
        if (k->dx[0]) k->dx[0][e] += (float)((double)k->dy[e] * k->x[1][j]);
        if (k->dx[1]) k->dx[1][j] += (float)((double)k->dy[e] * k->x[0][e]);
    }
}

/* ---------------------------------------------------------------- flatten */

pml_status pml__flatten_infer(pml_node *n, const pml_shape *in, int nin)
{
    size_t sz = pml_shape_size(in[0]);
    if (sz > (size_t)1 << 30)
        return pml_fail(PML_ESHAPE, "node '%s' (flatten): %zu features is too many", n->name, sz);
    n->out = (pml_shape){(int)sz, 1, 1};
    return PML_OK;
}
double pml__flatten_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__flatten_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    return no_ws();
}

PML_HOT static void acc(float *restrict d, const float *restrict s, size_t len)
{
    for (size_t i = 0; i < len; i++) d[i] += s[i];
}

// x (N,C,H,W) -> y (N,C*H*W,1,1): rows n, features [c0,c1)
void pml__flatten_fwd(const pml_kctx *k)
{
    const size_t F = (size_t)k->node->out.c, len = (size_t)(k->r.c1 - k->r.c0);
    for (int i = k->r.n0; i < k->r.n1; i++)
        memcpy(k->y + i * F + k->r.c0, k->x[0] + i * F + k->r.c0, len * sizeof(float));
}
void pml__flatten_bwd(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    const size_t F = (size_t)k->node->out.c, len = (size_t)(k->r.c1 - k->r.c0);
    for (int i = k->r.n0; i < k->r.n1; i++) acc(k->dx[0] + i * F + k->r.c0, k->dy + i * F + k->r.c0, len);
}
void pml__flatten_fwd_ref(const pml_kctx *k)
{
    pml_shape s = k->xs[0];
    for (int i = k->r.n0; i < k->r.n1; i++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) {
                    size_t f = ((size_t)c * s.h + h) * s.w + w;
                    if ((int)f < k->r.c0 || (int)f >= k->r.c1) continue;
                    k->y[(size_t)i * k->node->out.c + f] =
                        k->x[0][(((size_t)i * s.c + c) * s.h + h) * s.w + w];
                }
}
void pml__flatten_bwd_ref(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    const size_t F = (size_t)k->node->out.c;
    for (int i = k->r.n0; i < k->r.n1; i++)
        for (int f = k->r.c0; f < k->r.c1; f++) k->dx[0][i * F + f] += k->dy[i * F + f];
}

/* ---------------------------------------------------------------- add */

/* The sum of its inputs (of equal shapes) and, with a.addend, of a learned tensor of a sample's
 * shape (parameter 0, zeros at first): a bias of every element, added to each sample alike (an
 * ONNX Add of a constant broadcast over the batch, a learned position embedding). Each channel's
 * addend is a contiguous block, so a parameter split owns its channels' block. */

pml_status pml__add_infer(pml_node *n, const pml_shape *in, int nin)
{
    if (n->a.addend != 0 && n->a.addend != 1)
        return pml_fail(PML_EFORMAT, "node '%s' (add): addend=%d must be 0 or 1", n->name,
                        n->a.addend);
    if (nin + n->a.addend < 2)
        return pml_fail(PML_EFORMAT, "node '%s' (add): one input and no addend adds nothing",
                        n->name);
    for (int i = 1; i < nin; i++)
        if (!pml_shape_eq(in[i], in[0]))
            return pml_fail(PML_ESHAPE, "node '%s' (add): input %d is %dx%dx%d, input 0 is %dx%dx%d",
                            n->name, i, in[i].c, in[i].h, in[i].w, in[0].c, in[0].h, in[0].w);
    n->out = in[0];
    if (n->a.addend) pml__node_param(n, 0, pml_shape_size(in[0]), PML_INIT_ZEROS, 0, 0);
    return PML_OK;
}
double pml__add_flops(const pml_node *n, const pml_shape *in, int nin)
{
    return (double)(nin - 1 + n->a.addend) * pml_shape_size(in[0]);
}
size_t pml__add_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r) { return no_ws(); }

PML_HOT static void add2(float *restrict y, const float *restrict a, const float *restrict b,
                         size_t len)
{
    for (size_t i = 0; i < len; i++) y[i] = a[i] + b[i];
}

// x0..x_{k-1} (N,C,H,W) [+ addend (C,H,W)] -> y = sum (N,C,H,W)
void pml__add_fwd(const pml_kctx *k)
{
    const size_t per = pml_shape_size(k->node->out);
    const float *b = k->node->a.addend ? k->w[0] : NULL;
    FOR_BLOCKS(k->r, k->node->out, off, len)
    {
        if (k->nin > 1)
            add2(k->y + off, k->x[0] + off, k->x[1] + off, len);
        else
            memcpy(k->y + off, k->x[0] + off, len * sizeof(float));
        for (int i = 2; i < k->nin; i++) acc(k->y + off, k->x[i] + off, len);
        if (b) acc(k->y + off, b + off % per, len);
    }
}
// dy (N,C,H,W) -> dx_i +=, d addend (C,H,W) += the sum over the samples
void pml__add_bwd(const pml_kctx *k)
{
    const size_t per = pml_shape_size(k->node->out);
    float *db = k->node->a.addend ? k->dw[0] : NULL;
    FOR_BLOCKS(k->r, k->node->out, off, len)
    {
        for (int i = 0; i < k->nin; i++)
            if (k->dx[i]) acc(k->dx[i] + off, k->dy + off, len);
        if (db) acc(db + off % per, k->dy + off, len);
    }
}
void pml__add_fwd_ref(const pml_kctx *k)
{
    const size_t per = pml_shape_size(k->node->out);
    FOR_ELEMS(k->r, k->node->out, e)
    {
        double s = k->node->a.addend ? k->w[0][e % per] : 0;
        for (int i = 0; i < k->nin; i++) s += k->x[i][e];
        k->y[e] = (float)s;
    }
}
void pml__add_bwd_ref(const pml_kctx *k)
{
    const size_t per = pml_shape_size(k->node->out);
    FOR_ELEMS(k->r, k->node->out, e)
    {
        for (int i = 0; i < k->nin; i++)
            if (k->dx[i]) k->dx[i][e] += k->dy[e];
        if (k->node->a.addend && k->dw[0]) k->dw[0][e % per] += k->dy[e];
    }
}

/* ---------------------------------------------------------------- concat */

/* Joins its inputs along one per-sample axis (a.axis: 0 channels, 1 rows, 2 columns); the other
 * two must agree. */

static int cat_dim(pml_shape s, int axis)
{
    return axis == 0 ? s.c : axis == 1 ? s.h : s.w;
}

pml_status pml__concat_infer(pml_node *n, const pml_shape *in, int nin)
{
    static const char *const names[3] = {"channels", "rows", "columns"};
    const int ax = n->a.axis;
    if (ax < 0 || ax > 2)
        return pml_fail(PML_EFORMAT,
                        "node '%s' (concat): axis=%d must be 0 (channels), 1 (rows) "
                        "or 2 (columns)",
                        n->name, ax);
    long len = 0;
    for (int i = 0; i < nin; i++) {
        if ((ax != 0 && in[i].c != in[0].c) || (ax != 1 && in[i].h != in[0].h) ||
            (ax != 2 && in[i].w != in[0].w))
            return pml_fail(PML_ESHAPE,
                            "node '%s' (concat of %s): input %d is %dx%dx%d, input 0 is "
                            "%dx%dx%d",
                            n->name, names[ax], i, in[i].c, in[i].h, in[i].w, in[0].c, in[0].h,
                            in[0].w);
        len += cat_dim(in[i], ax);
    }
    if (len > (1 << 24))
        return pml_fail(PML_ESHAPE, "node '%s' (concat): too many %s", n->name, names[ax]);
    n->out = in[0];
    if (ax == 0)
        n->out.c = (int)len;
    else if (ax == 1)
        n->out.h = (int)len;
    else
        n->out.w = (int)len;
    return PML_OK;
}
double pml__concat_flops(const pml_node *n, const pml_shape *in, int nin) { return 0; }
size_t pml__concat_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    return no_ws();
}

/* For output channels (axis 0) or rows (axis 1) [lo,hi), visits each input i's overlapping range
 * [a,b) (in the input's numbering) with its offset base in the output. */
#define FOR_CONCAT_PARTS(k, lo, hi, i, a, b, base)                                                 \
    for (int i = 0, base = 0, ax_ = (k)->node->a.axis; i < (k)->nin;                               \
         base += cat_dim((k)->xs[i], ax_), i++)                                                    \
        for (int a = (lo) > base ? (lo)-base : 0,                                                  \
                 b = ((hi)-base < cat_dim((k)->xs[i], ax_) ? (hi)-base                             \
                                                           : cat_dim((k)->xs[i], ax_)),            \
                 once_ = 1;                                                                        \
             once_ && a < b; once_ = 0)

/* Copies (fwd) or accumulates (bwd: into dx from dy) region r between y and the inputs. */
static void concat_run(const pml_kctx *k, bool bwd)
{
    const pml_shape o = k->node->out;
    const pml_region r = k->r;
    const size_t plane = (size_t)o.h * o.w;
    switch (k->node->a.axis) {
    case 0: { /* whole channels: rows [h0, h1) of each */
        const size_t rows = (size_t)(r.h1 - r.h0) * o.w, at = (size_t)r.h0 * o.w;
        FOR_CONCAT_PARTS(k, r.c0, r.c1, i, a, b, base)
        for (int n = r.n0; n < r.n1; n++)
            for (int c = a; c < b; c++) {
                const size_t yo = ((size_t)n * o.c + base + c) * plane + at;
                const size_t xo = ((size_t)n * k->xs[i].c + c) * plane + at;
                if (!bwd)
                    memcpy(k->y + yo, k->x[i] + xo, rows * sizeof(float));
                else if (k->dx[i])
                    acc(k->dx[i] + xo, k->dy + yo, rows);
            }
        break;
    }
    case 1: /* rows: each input's rows within [h0, h1) */
        FOR_CONCAT_PARTS(k, r.h0, r.h1, i, a, b, base)
        {
            const size_t xplane = (size_t)k->xs[i].h * o.w, rows = (size_t)(b - a) * o.w;
            for (int n = r.n0; n < r.n1; n++)
                for (int c = r.c0; c < r.c1; c++) {
                    const size_t yo = ((size_t)n * o.c + c) * plane + (size_t)(base + a) * o.w;
                    const size_t xo = ((size_t)n * o.c + c) * xplane + (size_t)a * o.w;
                    if (!bwd)
                        memcpy(k->y + yo, k->x[i] + xo, rows * sizeof(float));
                    else if (k->dx[i])
                        acc(k->dx[i] + xo, k->dy + yo, rows);
                }
        }
        break;
    default: /* columns: each input's part of every row */
        for (int n = r.n0; n < r.n1; n++)
            for (int c = r.c0; c < r.c1; c++)
                for (int h = r.h0; h < r.h1; h++) {
                    const size_t yo = (((size_t)n * o.c + c) * o.h + h) * o.w;
                    for (int i = 0, base = 0; i < k->nin; base += k->xs[i].w, i++) {
                        const int wi = k->xs[i].w;
                        const size_t xo = (((size_t)n * o.c + c) * o.h + h) * wi;
                        if (!bwd)
                            memcpy(k->y + yo + base, k->x[i] + xo, (size_t)wi * sizeof(float));
                        else if (k->dx[i])
                            acc(k->dx[i] + xo, k->dy + yo + base, (size_t)wi);
                    }
                }
    }
}

// x_i (N,C_i,H,W) -> y (N,sum C_i,H,W); rows: (N,C,H_i,W) -> (N,C,sum H_i,W); columns likewise
void pml__concat_fwd(const pml_kctx *k)
{
    concat_run(k, false);
}
void pml__concat_bwd(const pml_kctx *k)
{
    concat_run(k, true);
}

/* the input holding output element (c, h, w), and that element's index in it */
static int concat_src(const pml_kctx *k, int n, int c, int h, int w, size_t *idx)
{
    const int ax = k->node->a.axis;
    int pos = ax == 0 ? c : ax == 1 ? h : w, i = 0;
    while (pos >= cat_dim(k->xs[i], ax)) pos -= cat_dim(k->xs[i++], ax);
    if (ax == 0)
        c = pos;
    else if (ax == 1)
        h = pos;
    else
        w = pos;
    const pml_shape s = k->xs[i];
    *idx = (((size_t)n * s.c + c) * s.h + h) * s.w + w;
    return i;
}
void pml__concat_fwd_ref(const pml_kctx *k)
{
    FOR_ELEMS(k->r, k->node->out, e)
    {
        size_t j;
        int i = concat_src(k, en_, ec_, eh_, ew_, &j);
        k->y[e] = k->x[i][j];
    }
}
void pml__concat_bwd_ref(const pml_kctx *k)
{
    FOR_ELEMS(k->r, k->node->out, e)
    {
        size_t j;
        int i = concat_src(k, en_, ec_, eh_, ew_, &j);
        if (k->dx[i]) k->dx[i][j] += k->dy[e];
    }
}

/* ---------------------------------------------------------------- dropout */

/* Inverted dropout (Keras): in training y = x * keep / (1 - rate), keep ~ Bernoulli(1 - rate);
 * in inference y = x (unless `always`: an ONNX training-mode node). The mask is a function of
 * (seed, step, node, element index), so every split of the work draws the same mask and
 * backward recomputes it instead of storing it. A seeded node (seed >= 0) draws ONNX's
 * reference mask instead: MT19937 from its seed, one double an element of the batch in order
 * (a generator run from the batch's first element to the region's last). */

pml_status pml__dropout_infer(pml_node *n, const pml_shape *in, int nin)
{
    if (!(n->a.rate >= 0.0f && n->a.rate < 1.0f))
        return pml_fail(PML_EFORMAT, "node '%s' (dropout): rate=%g must be in [0, 1)", n->name,
                        (double)n->a.rate);
    if (n->a.seed < -1)
        return pml_fail(PML_EFORMAT, "node '%s' (dropout): seed=%d must be -1 (pml's masks) or "
                        "at least 0", n->name, n->a.seed);
    n->out = in[0];
    return PML_OK;
}
double pml__dropout_flops(const pml_node *n, const pml_shape *in, int nin)
{
    return (double)pml_shape_size(in[0]);
}
size_t pml__dropout_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    return no_ws();
}

static inline uint64_t drop_stream(const pml_kctx *k)
{
    return (k->step << 20) ^ (uint64_t)k->node_id;
}

static bool drop_on(const pml_kctx *k)
{
    return (k->training || k->node->a.always) && k->node->a.rate > 0.0f;
}

/* keep threshold on 24-bit uniforms */
static void drop_apply(const pml_kctx *k, float *restrict d, const float *restrict s, size_t off,
                       size_t len, bool accumulate)
{
    const uint32_t thr = (uint32_t)ceil((double)k->node->a.rate * 16777216.0);
    const float scale = 1.0f / (1.0f - k->node->a.rate);
    const uint64_t stream = drop_stream(k);
    off += k->sample0 * pml_shape_size(k->node->out); /* the element's place in the global batch */
    for (size_t i = 0; i < len; i++) {
        uint32_t u = (uint32_t)(pml_rand_u64(k->seed, stream, off + i) >> 40);
        float v = u >= thr ? s[i] * scale : 0.0f;
        if (accumulate)
            d[i] += v;
        else
            d[i] = v;
    }
}

/* A seeded node's mask over its region: one generator walks the blocks in order. */
static void drop_apply_seeded(const pml_kctx *k, float *d, const float *s, bool accumulate)
{
    const double rate = k->node->a.rate;
    const float scale = 1.0f / (1.0f - k->node->a.rate);
    const uint64_t base = k->sample0 * pml_shape_size(k->node->out);
    pml_mt19937 mt;
    pml_mt_seed(&mt, (uint32_t)k->node->a.seed);
    uint64_t at = 0; /* the generator's next element */
    FOR_BLOCKS(k->r, k->node->out, off, len)
    {
        pml_mt_skip(&mt, base + off - at);
        for (size_t i = 0; i < len; i++) {
            float v = pml_mt_double(&mt) >= rate ? s[off + i] * scale : 0.0f;
            if (accumulate)
                d[off + i] += v;
            else
                d[off + i] = v;
        }
        at = base + off + len;
    }
}

void pml__dropout_fwd(const pml_kctx *k)
{
    const bool on = drop_on(k);
    if (on && k->node->a.seed >= 0) {
        drop_apply_seeded(k, k->y, k->x[0], false);
        return;
    }
    FOR_BLOCKS(k->r, k->node->out, off, len)
    {
        if (on)
            drop_apply(k, k->y + off, k->x[0] + off, off, len, false);
        else
            memcpy(k->y + off, k->x[0] + off, len * sizeof(float));
    }
}
void pml__dropout_bwd(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    const bool on = drop_on(k);
    if (on && k->node->a.seed >= 0) {
        drop_apply_seeded(k, k->dx[0], k->dy, true);
        return;
    }
    FOR_BLOCKS(k->r, k->node->out, off, len)
    {
        if (on)
            drop_apply(k, k->dx[0] + off, k->dy + off, off, len, true);
        else
            acc(k->dx[0] + off, k->dy + off, len);
    }
}
static float drop_mask_ref(const pml_kctx *k, size_t e)
{
    if (!drop_on(k)) return 1.0f;
    e += k->sample0 * pml_shape_size(k->node->out);
    double u;
    if (k->node->a.seed >= 0) { /* element e's draw: the generator run from the start */
        pml_mt19937 mt;
        pml_mt_seed(&mt, (uint32_t)k->node->a.seed);
        for (size_t i = 0; i < e; i++) pml_mt_double(&mt);
        u = pml_mt_double(&mt);
    } else {
        u = (double)(pml_rand_u64(k->seed, drop_stream(k), e) >> 40) / 16777216.0;
    }
    return u >= (double)k->node->a.rate ? 1.0f / (1.0f - k->node->a.rate) : 0.0f;
}
void pml__dropout_fwd_ref(const pml_kctx *k)
{
    FOR_ELEMS(k->r, k->node->out, e) k->y[e] = k->x[0][e] * drop_mask_ref(k, e);
}
void pml__dropout_bwd_ref(const pml_kctx *k)
{
    if (!k->dx[0]) return;
    FOR_ELEMS(k->r, k->node->out, e) k->dx[0][e] += k->dy[e] * drop_mask_ref(k, e);
}
