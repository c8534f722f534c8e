/* pml — conv2d: 2-D convolution (cross-correlation, like PyTorch and Keras), optional bias and
 * fused relu, channel groups and dilation.
 *
 *   x (N,C,H,W), w (O,C/G,KH,KW), b (O) -> y (N,O,Ho,Wo); output channel o is in group
 *   o / (O/G), which reads input channels [g*C/G, (g+1)*C/G):
 *   y[n,o,i,j] = act(b[o] + sum_{c,p,q} w[o,c,p,q] * x[n, g*C/G + c, i*sh - pt + p*dh,
 *                                                          j*sw - pl + q*dw])
 *
 * 3-D (a.depth > 0): x (N,C,D*H,W), the D planes of H rows of a channel one after another, w
 * (O,C/G,KD,KH,KW), y (N,O,Do*Ho,Wo); the window also spans kd planes (stride sd, dilation dd,
 * padding pf before the first). The same kernels: a column holds C*KD*KH*KW taps, and output
 * row i is row i % Ho of plane i / Ho.
 *
 * The fast kernels work per sample and per chunk of output rows: im2col of the chunk into the
 * workspace (sized so that it stays in L2), then one sgemm straight into y (row-major with
 * ldc = Ho*Wo, so a region of rows of one sample is a plain sub-matrix). 1x1 stride-1 unpadded
 * convolutions skip im2col and hand x to the gemm directly. Backward recomputes the columns,
 * accumulates dW with one gemm (beta = 1) and computes the column gradient with a second gemm
 * into the same buffer, then scatters it (col2im) into dx. Layers with few input taps (a first
 * layer's) compute their forward and weight gradient directly, without columns (fwd_direct,
 * dw_direct); depthwise layers all three. Where oneDNN is built in, a region of
 * whole rows may run there instead (k_conv_dnnl.c: measured per shape, the faster kept). */
#include "kernels.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- geometry */

typedef struct geom {
    int C, H, W;   /* input; C: one group's channels (im2col works on one group); H all rows */
    int O, Ho, Wo; /* output; Ho all rows */
    int kh, kw, sh, sw, pt, pl, dh, dw;
    int D, Hp, Do, Hop, kd, sd, dd, pf; /* planes and rows a plane, in and out (2-D: one plane) */
    int G, Og;   /* groups, output channels per group */
    int K;       /* C*kh*kw: rows of the column matrix */
    bool direct; /* 1x1, stride 1, no padding: the input is its own column matrix */
} geom;

static inline int groups_of(const pml_attrs *a) { return a->groups > 1 ? a->groups : 1; }

static geom geom_of(const pml_node *n, pml_shape in)
{
    const pml_attrs *a = &n->a;
    geom g;
    g.G = groups_of(a);
    g.C = in.c / g.G, g.H = in.h, g.W = in.w;
    g.O = n->out.c, g.Ho = n->out.h, g.Wo = n->out.w;
    g.Og = g.O / g.G;
    g.kh = a->kh, g.kw = a->kw, g.sh = a->sh, g.sw = a->sw, g.pt = a->pt, g.pl = a->pl;
    g.dh = a->dh > 1 ? a->dh : 1, g.dw = a->dw > 1 ? a->dw : 1;
    const bool d3 = a->depth > 0;
    g.D = d3 ? a->depth : 1, g.Do = d3 ? a->od : 1;
    g.Hp = g.H / g.D, g.Hop = g.Ho / g.Do;
    g.kd = d3 ? a->kd : 1, g.sd = d3 ? a->sd : 1, g.dd = d3 ? a->dd : 1, g.pf = d3 ? a->pf : 0;
    g.K = g.C * g.kd * a->kh * a->kw;
    g.direct = !d3 && a->kh == 1 && a->kw == 1 && a->sh == 1 && a->sw == 1 && a->pt == 0 &&
               a->pl == 0 && g.Ho == g.H && g.Wo == g.W;
    return g;
}

/* Column chunks hold at most this many floats (256 KiB), so the im2col output, the gemm's packed
 * panels and the output chunk stay in L2 (512 KiB on Zen 3). 32 Ki and 128 Ki floats were slower
 * and no faster on the fashion and flowers layers (pml bench kernels). */
#ifndef COL_TARGET
#define COL_TARGET 65536
#endif

/* Output rows per chunk for a region of \p rows rows. */
static int chunk_rows(const geom *g, int rows)
{
    long per_row = (long)g->K * g->Wo;
    long r = per_row > 0 ? COL_TARGET / per_row : 1;
    if (r < 1) r = 1;
    if (r > rows) r = rows;
    return (int)r;
}

/* The forward without columns (fwd_direct, below): layers with few input taps (a first layer's
 * 3 or 1 channels), rows of 64 outputs or more, stride 1 along the row. */
#define FD_MAX_K 64   /* taps at most (more: the gemm is wide enough) */
#define FD_MAX_KW 16  /* kernels at most this wide */
#define FD_OB 4       /* output channels at once */
#define FD_JB 3       /* vectors of 8 output columns at once */
#define FD_COLS (8 * FD_JB)

/* A padded input row: the output's columns in whole blocks, and the taps' reach beyond them. */
static int fd_row_len(const geom *g)
{
    return (g->Wo + FD_COLS - 1) / FD_COLS * FD_COLS + (g->kw - 1) * g->dw;
}

/* Whether the direct forward runs (a padded row must hold the left padding and the input row). */
static bool fwd_direct_ok(const geom *g)
{
    return g->sw == 1 && g->D == 1 && g->kd == 1 && !g->direct && g->K <= FD_MAX_K &&
           g->kw <= FD_MAX_KW && g->Wo >= 64 && g->Wo <= 4096 && g->pl + g->W <= fd_row_len(g);
}

/* The direct forward's workspace: the C*kh padded rows an output row reads, a block's sums. */
static size_t fd_ws(const geom *g)
{
    return (size_t)g->C * g->kh * fd_row_len(g) + FD_OB * FD_COLS;
}

/* ---------------------------------------------------------------- shape inference */

pml_status pml__conv2d_infer(pml_node *n, const pml_shape *in, int nin)
{
    pml_attrs *a = &n->a;
    pml_shape x = in[0];
    (void)nin;
    if (a->out <= 0)
        return pml_fail(PML_EFORMAT, "node '%s' (conv2d): out=%d filters must be positive", n->name,
                        a->out);
    if (a->kh <= 0 || a->kw <= 0)
        return pml_fail(PML_EFORMAT, "node '%s' (conv2d): kernel %dx%d must be positive", n->name,
                        a->kh, a->kw);
    if (a->sh <= 0 || a->sw <= 0)
        return pml_fail(PML_EFORMAT, "node '%s' (conv2d): stride %dx%d must be positive", n->name,
                        a->sh, a->sw);
    if (a->pad_mode != PML_PAD_VALID && a->pad_mode != PML_PAD_SAME &&
        a->pad_mode != PML_PAD_SAME_LOWER && a->pad_mode != PML_PAD_EXPLICIT)
        return pml_fail(PML_EFORMAT,
                        "node '%s' (conv2d): padding mode %d is not valid, same or "
                        "explicit",
                        n->name, a->pad_mode);
    if (a->pad_mode == PML_PAD_EXPLICIT && (a->ph < 0 || a->pw < 0))
        return pml_fail(PML_EFORMAT, "node '%s' (conv2d): padding %dx%d must not be negative",
                        n->name, a->ph, a->pw);
    if (a->act != PML_ACT_NONE && a->act != PML_ACT_RELU)
        return pml_fail(PML_EFORMAT, "node '%s' (conv2d): activation %d is not none or relu",
                        n->name, a->act);
    if (x.c <= 0 || x.h <= 0 || x.w <= 0)
        return pml_fail(PML_ESHAPE, "node '%s' (conv2d): input shape %dx%dx%d is empty", n->name,
                        x.c, x.h, x.w);
    int rows; /* a plane's rows (3-D), or all */
    pml_status st = pml__depth_window(n, x, "conv2d", 0, &rows);
    if (st != PML_OK) return st;
    const int kd = a->depth ? a->kd : 1;
    const int G = groups_of(a);
    if (a->groups < 0 || x.c % G || a->out % G)
        return pml_fail(PML_ESHAPE,
                        "node '%s' (conv2d): groups=%d must divide the input's %d channels and the "
                        "%d filters",
                        n->name, a->groups, x.c, a->out);
    if (a->dh < 0 || a->dw < 0 || a->dh > 1 << 16 || a->dw > 1 << 16)
        return pml_fail(PML_EFORMAT, "node '%s' (conv2d): dilation %dx%d must be positive",
                        n->name, a->dh, a->dw);
    const int dh = a->dh > 1 ? a->dh : 1, dw = a->dw > 1 ? a->dw : 1;
    const int ekh = dh * (a->kh - 1) + 1, ekw = dw * (a->kw - 1) + 1; /* the window's extent */
    const int cg = x.c / G;
    size_t wsize = (size_t)a->out * cg * kd * a->kh * a->kw;
    if (wsize > (1u << 30) || (size_t)cg * kd * a->kh * a->kw > (1u << 24))
        return pml_fail(PML_ESHAPE, "node '%s' (conv2d): weight %dx%dx%dx%d is too large", n->name,
                        a->out, cg, a->kh, a->kw);
    int ho = pml__window_out(rows, ekh, a->sh, a->pad_mode, a->ph, 0, &a->pt, &a->pb);
    int wo = pml__window_out(x.w, ekw, a->sw, a->pad_mode, a->pw, 0, &a->pl, &a->pr);
    if (ho <= 0 || wo <= 0) {
        int ph = a->pad_mode == PML_PAD_EXPLICIT ? a->ph : 0;
        int pw = a->pad_mode == PML_PAD_EXPLICIT ? a->pw : 0;
        return pml_fail(PML_ESHAPE,
                        "node '%s' (conv2d): kernel %dx%d is larger than the padded input %dx%d "
                        "(input %dx%d, padding %dx%d)",
                        n->name, ekh, ekw, rows + 2 * ph, x.w + 2 * pw, rows, x.w, ph, pw);
    }
    if ((long)ho * (a->depth ? a->od : 1) > 1 << 30)
        return pml_fail(PML_ESHAPE, "node '%s' (conv2d): output of %d planes of %d rows is too "
                        "large", n->name, a->od, ho);
    n->out = (pml_shape){a->out, ho * (a->depth ? a->od : 1), wo};
    int fan_in = cg * kd * a->kh * a->kw, fan_out = a->out / G * kd * a->kh * a->kw;
    pml__node_param(n, 0, wsize, PML_INIT_GLOROT, fan_in, fan_out);
    if (a->bias) pml__node_param(n, 1, (size_t)a->out, PML_INIT_ZEROS, 0, 0);
    return PML_OK;
}

double pml__conv2d_flops(const pml_node *n, const pml_shape *in, int nin)
{
    (void)nin;
    double outs = (double)pml_shape_size(n->out);
    double f = 2.0 * outs * (in[0].c / groups_of(&n->a)) * (n->a.depth ? n->a.kd : 1) * n->a.kh *
               n->a.kw;
    if (n->a.bias) f += outs;
    if (n->a.act == PML_ACT_RELU) f += outs;
    return f;
}

size_t pml__conv2d_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    (void)nin;
    const size_t a = pml__conv2d_ws_blas(n, in, r), b = pml__conv2d_dnnl_ws(n, in, r);
    return a > b ? a : b;
}

size_t pml__conv2d_ws_blas(const pml_node *n, const pml_shape *in, pml_region r)
{
    geom g = geom_of(n, in[0]);
    int rows = r.h1 - r.h0;
    if (rows <= 0 || r.c1 <= r.c0 || r.n1 <= r.n0) return 0;
    size_t p = (size_t)chunk_rows(&g, rows) * g.Wo;
    /* forward: columns; backward: columns (reused for their gradient) + masked dy */
    size_t col = g.direct ? 0 : (size_t)g.K * p;
    size_t bwd_col = (size_t)g.K * p; /* the column gradient always needs the buffer */
    size_t dym = n->a.act == PML_ACT_RELU ? (size_t)(r.c1 - r.c0) * p : 0;
    size_t f = col, b = bwd_col + dym;
    if (fwd_direct_ok(&g) && fd_ws(&g) > f) f = fd_ws(&g);
    return f > b ? f : b;
}

/* ---------------------------------------------------------------- im2col / col2im */

/* First and one-past-last output column j whose input column j*sw - pl + q lies in [0, W). */
static inline void valid_cols(const geom *g, int q, int *lo, int *hi)
{
    int off = g->pl - q * g->dw; /* ix = j*sw - off */
    int l = off > 0 ? (off + g->sw - 1) / g->sw : 0;
    int h = (g->W - 1 + off) >= 0 ? (g->W - 1 + off) / g->sw + 1 : 0;
    if (h > g->Wo) h = g->Wo;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

// x (C,H,W) of one sample -> col (K, (r1-r0)*Wo): output rows [r0,r1)
PML_HOT static void im2col(const geom *g, const float *restrict x, int r0, int r1,
                           float *restrict col)
{
    const int P = (r1 - r0) * g->Wo, Wo = g->Wo, sw = g->sw;
    for (int c = 0; c < g->C; c++)
        for (int e = 0; e < g->kd; e++)
        for (int p = 0; p < g->kh; p++)
            for (int q = 0; q < g->kw; q++) {
                float *restrict dst =
                    col + (size_t)(((c * g->kd + e) * g->kh + p) * g->kw + q) * P;
                int lo, hi;
                valid_cols(g, q, &lo, &hi);
                const int off = g->pl - q * g->dw; /* input column of output column j */
                for (int i = r0; i < r1; i++, dst += Wo) {
                    const int od = i / g->Hop, io = i - od * g->Hop; /* plane, its row */
                    const int iz = od * g->sd - g->pf + e * g->dd;
                    const int iy = io * g->sh - g->pt + p * g->dh;
                    if (iz < 0 || iz >= g->D || iy < 0 || iy >= g->Hp) {
                        for (int j = 0; j < Wo; j++) dst[j] = 0;
                        continue;
                    }
                    const float *restrict src = x + ((size_t)c * g->H + iz * g->Hp + iy) * g->W;
                    for (int j = 0; j < lo; j++) dst[j] = 0;
                    if (sw == 1)
                        for (int j = lo; j < hi; j++) dst[j] = src[j - off];
                    else
                        for (int j = lo; j < hi; j++) dst[j] = src[j * sw - off];
                    for (int j = hi; j < Wo; j++) dst[j] = 0;
                }
            }
}

// col (K, (r1-r0)*Wo) -> dx (C,H,W) of one sample, accumulated
PML_HOT static void col2im_add(const geom *g, const float *restrict col, int r0, int r1,
                               float *restrict dx)
{
    const int P = (r1 - r0) * g->Wo, Wo = g->Wo, sw = g->sw;
    for (int c = 0; c < g->C; c++)
        for (int e = 0; e < g->kd; e++)
        for (int p = 0; p < g->kh; p++)
            for (int q = 0; q < g->kw; q++) {
                const float *restrict src =
                    col + (size_t)(((c * g->kd + e) * g->kh + p) * g->kw + q) * P;
                int lo, hi;
                valid_cols(g, q, &lo, &hi);
                const int off = g->pl - q * g->dw;
                for (int i = r0; i < r1; i++, src += Wo) {
                    const int od = i / g->Hop, io = i - od * g->Hop;
                    const int iz = od * g->sd - g->pf + e * g->dd;
                    const int iy = io * g->sh - g->pt + p * g->dh;
                    if (iz < 0 || iz >= g->D || iy < 0 || iy >= g->Hp) continue;
                    float *restrict dst = dx + ((size_t)c * g->H + iz * g->Hp + iy) * g->W;
                    if (sw == 1)
                        for (int j = lo; j < hi; j++) dst[j - off] += src[j];
                    else
                        for (int j = lo; j < hi; j++) dst[j * sw - off] += src[j];
                }
            }
}

/* ---------------------------------------------------------------- fast kernels */

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

#define LD8(v, p) memcpy(&(v), (p), sizeof(v)) /* unaligned */

static inline float hsum8(const v8f *v)
{
    float s = 0;
    for (int t = 0; t < 8; t++) s += (*v)[t];
    return s;
}

// y rows [r0,r1) of channels [c0,c1), one sample: y = act(y + b)
PML_HOT static void bias_act(float *y, size_t ld, int nc, int len, const float *b, int relu)
{
    for (int o = 0; o < nc; o++) {
        float *yo = y + (size_t)o * ld;
        float bo = b ? b[o] : 0.0f;
        if (relu)
            for (int j = 0; j < len; j++) {
                float v = yo[j] + bo;
                yo[j] = v > 0.0f ? v : 0.0f;
            }
        else if (b)
            for (int j = 0; j < len; j++) yo[j] += bo;
    }
}

void pml__conv2d_fwd(const pml_kctx *k)
{
    if (!pml__conv2d_dnnl(k, false)) pml__conv2d_fwd_blas(k);
}

void pml__conv2d_bwd(const pml_kctx *k)
{
    if (!pml__conv2d_dnnl(k, true)) pml__conv2d_bwd_blas(k);
}

/* The groups output channels [c0, c1) touch: for each, its channels [*o0, *o1) within [c0, c1) */
#define FOR_GROUPS(g, c0, c1, gi, o0, o1)                                                          \
    for (int gi = (c0) / (g).Og, o0, o1;                                                           \
         gi < (g).G && gi * (g).Og < (c1) &&                                                       \
         (o0 = (c0) > gi * (g).Og ? (c0) : gi * (g).Og,                                            \
         o1 = (c1) < (gi + 1) * (g).Og ? (c1) : (gi + 1) * (g).Og, 1);                             \
         gi++)

/* ---------------------------------------------------------------- depthwise, direct */

/* A depthwise convolution (one input and one output channel a group, 2-D: MobileNet's,
 * EfficientNet's) is a gemm of one row a group: per sample and channel, too small for sgemm
 * (a call costs more than its 9 multiply-adds a column). Directly instead, row by row: each
 * kernel tap adds w times a shifted input row to the output row, in vectors when the stride is
 * 1. */
#define DEPTHWISE_KW 64 /* kernels at most this wide (wider: im2col and sgemm) */
static bool depthwise(const geom *g)
{
    return g->G > 1 && g->C == 1 && g->Og == 1 && g->D == 1 && g->kw <= DEPTHWISE_KW &&
           g->kh <= DEPTHWISE_KW;
}

#define DEPTHWISE_ROW 1024 /* output columns a piece of a row in the backward pass */

typedef float dwv8 __attribute__((vector_size(32)));
typedef int dwv8i __attribute__((vector_size(32)));

/* The padded passes (stride 1 or 2 along the rows, kernels up to 7x7): an input row is kept as
 * sw phase rows of Lx floats, phase f holding the padded row's columns f, f + sw, f + 2 sw ...
 * (stride 1: the row itself, pl zeros before it and zeros after), so that tap column q of output
 * columns j..j+7 is a vector at the tap's offset: phase (q dw) % sw, column j + (q dw) / sw; taps
 * outside the image read zeros instead of being checked. dy rows are kept with P = (kw-1)*dw
 * zeros before them and zeros after. Returns false when the layer is not for them. */
#define DEPTHWISE_PAD 1536 /* padded rows at most this long */
#define DEPTHWISE_S1_KW 7  /* kernels up to 7x7 (the backward keeps a sum a tap) */
static bool depthwise_rows(const geom *g, int *P, int *Ld, int *Lx)
{
    const int sw = g->sw, Wr = (g->W + 7) / 8 * 8, Wor = (g->Wo + 7) / 8 * 8;
    *P = (g->kw - 1) * g->dw;
    *Ld = *P + (Wr > Wor ? Wr : Wor) + g->pl + 8;
    *Lx = Wor + *P / sw + 8;
    const int whole = (g->W + g->pl + sw - 1) / sw; /* every column of the row has a place */
    if (*Lx < whole) *Lx = whole;
    return (sw == 1 || sw == 2) && g->kw <= DEPTHWISE_S1_KW && g->kh <= DEPTHWISE_S1_KW &&
           *Ld <= DEPTHWISE_PAD && sw * *Lx <= DEPTHWISE_PAD;
}

/* Tap column q's offset in a kept input row (see depthwise_rows) */
static inline void depthwise_offsets(const geom *g, int Lx, int *off)
{
    for (int q = 0; q < g->kw; q++) {
        const int m = q * g->dw;
        off[q] = m % g->sw * Lx + m / g->sw;
    }
}

/* The input rows [*ylo, *yhi) that region r's output rows reach (clipped to the image);
 * \return how many rows they span unclipped (a buffer of kept rows holds that many). */
static int depthwise_in_rows(const geom *g, pml_region r, int *ylo, int *yhi)
{
    const int first = r.h0 * g->sh - g->pt;
    const int span = (r.h1 - r.h0 - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    *ylo = first > 0 ? first : 0;
    *yhi = first + span < g->H ? first + span : g->H;
    return span;
}

/* One input row kept as sw phase rows of Lx floats (see depthwise_rows). */
static inline void depthwise_pad_row(float *xp, const float *x, int W, int pl, int Lx, int sw)
{
    if (sw == 1) {
        memset(xp, 0, (size_t)pl * sizeof *xp);
        memcpy(xp + pl, x, (size_t)W * sizeof *xp);
        memset(xp + pl + W, 0, (size_t)(Lx - pl - W) * sizeof *xp);
        return;
    }
    for (int f = 0; f < 2; f++) {
        float *o = xp + (size_t)f * Lx;
        int u = 0;
        for (; u < Lx && 2 * u + f - pl < 0; u++) o[u] = 0.0f;
        const float *xs = x + 2 * u + f - pl;
        int n = (W - (2 * u + f - pl) + 1) / 2; /* columns left in this phase */
        if (n > Lx - u) n = Lx - u;
        if (n < 0) n = 0;
        for (int t = 0; t < n; t++) o[u + t] = xs[2 * t];
        for (u += n; u < Lx; u++) o[u] = 0.0f;
    }
}

/* y's 8 columns from j: b plus every tap's weight times x (xrow[t]: kernel row t's kept input
 * row; off: the tap columns' offsets, NULL for 0, 1, 2 ...); inlined with kw constant for 3x3
 * and 5x5 */
static inline __attribute__((always_inline)) void depthwise_fwd_vec(const float *const *xrow,
                                                                    const float *const *wrow,
                                                                    const int *off, int np,
                                                                    int kw, int j, float b,
                                                                    dwv8 *out)
{
    dwv8 a = {b, b, b, b, b, b, b, b};
    for (int t = 0; t < np; t++)
        for (int q = 0; q < kw; q++) {
            dwv8 xv;
            memcpy(&xv, xrow[t] + (off ? off[q] : q) + j, sizeof xv);
            a += wrow[t][q] * xv;
        }
    *out = a;
}

/* An output row: depthwise_fwd_vec along it, the relu, the last vector partial */
static inline __attribute__((always_inline)) void depthwise_fwd_row(float *restrict yr,
                                                                    const float *const *xrow,
                                                                    const float *const *wrow,
                                                                    const int *off, int np,
                                                                    int kw, int Wo, float b,
                                                                    int relu)
{
    const dwv8 zero = {0};
    for (int j = 0; j < Wo; j += 8) {
        dwv8 a;
        depthwise_fwd_vec(xrow, wrow, off, np, kw, j, b, &a);
        if (relu) a = (dwv8)((dwv8i)a & (a > zero));
        if (j + 8 <= Wo)
            memcpy(yr + j, &a, sizeof a);
        else
            for (int l = 0; j + l < Wo; l++) yr[j + l] = a[l];
    }
}

/* The forward pass on kept rows (depthwise_rows): the input rows the region reads, sw Lx floats
 * each, in \p xpad; every output column in vectors of 8. */
PML_HOT static void depthwise_fwd_pad(const geom *g, const pml_kctx *k, int relu, float *xpad)
{
    const pml_region r = k->r;
    const size_t HW = (size_t)g->H * g->W, HWo = (size_t)g->Ho * g->Wo;
    const int W = g->W, Wo = g->Wo, kh = g->kh, kw = g->kw, K = kh * kw, pl = g->pl, sw = g->sw;
    int P, Ld, Lx, off[DEPTHWISE_S1_KW];
    depthwise_rows(g, &P, &Ld, &Lx);
    depthwise_offsets(g, Lx, off);
    const bool unit = sw == 1 && g->dw == 1; /* offsets 0, 1, 2 ...: constants */
    int ylo, yhi;
    depthwise_in_rows(g, r, &ylo, &yhi);
    const size_t row = (size_t)sw * Lx;
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++) {
            const float *xc = k->x[0] + ((size_t)s * g->G + c) * HW, *wc = k->w[0] + (size_t)c * K;
            const float b = k->node->a.bias ? k->w[1][c] : 0.0f;
            for (int iy = ylo; iy < yhi; iy++)
                depthwise_pad_row(xpad + (size_t)(iy - ylo) * row, xc + (size_t)iy * W, W, pl, Lx,
                                  sw);
            for (int i = r.h0; i < r.h1; i++) {
                float *restrict yr = k->y + ((size_t)s * g->O + c) * HWo + (size_t)i * Wo;
                const float *xrow[DEPTHWISE_KW], *wrow[DEPTHWISE_KW];
                int np = 0;
                for (int p = 0; p < kh; p++) {
                    const int iy = i * g->sh - g->pt + p * g->dh;
                    if (iy < 0 || iy >= g->H) continue;
                    xrow[np] = xpad + (size_t)(iy - ylo) * row;
                    wrow[np++] = wc + p * kw;
                }
                if (unit && kw == 3 && np == 3)
                    depthwise_fwd_row(yr, xrow, wrow, NULL, 3, 3, Wo, b, relu);
                else if (unit && kw == 5 && np == 5)
                    depthwise_fwd_row(yr, xrow, wrow, NULL, 5, 5, Wo, b, relu);
                else if (kw == 3 && np == 3)
                    depthwise_fwd_row(yr, xrow, wrow, off, 3, 3, Wo, b, relu);
                else
                    depthwise_fwd_row(yr, xrow, wrow, off, np, kw, Wo, b, relu);
            }
        }
}

// y rows [h0, h1) of channels [c0, c1) = act(b + w * x), one sample at a time
PML_HOT static void depthwise_fwd(const geom *g, const pml_kctx *k, int relu)
{
    const pml_region r = k->r;
    const size_t HW = (size_t)g->H * g->W, HWo = (size_t)g->Ho * g->Wo;
    const int Wo = g->Wo, sw = g->sw, K = g->kh * g->kw;
    /* interior columns [jlo, jhi): every tap inside the row; in vectors of 8 at stride 1 */
    int jlo = 0, jhi = Wo;
    for (int q = 0; q < g->kw; q++) {
        int lo, hi;
        valid_cols(g, q, &lo, &hi);
        jlo = lo > jlo ? lo : jlo;
        jhi = hi < jhi ? hi : jhi;
    }
    if (jhi < jlo) jhi = jlo;
    const int jv = sw == 1 ? jlo + (jhi - jlo) / 8 * 8 : jlo;
    const float *rows[DEPTHWISE_KW], *wrow[DEPTHWISE_KW]; /* the kernel rows inside the input */
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++) {
            const float *xc = k->x[0] + ((size_t)s * g->G + c) * HW, *wc = k->w[0] + (size_t)c * K;
            const float b = k->node->a.bias ? k->w[1][c] : 0.0f;
            for (int i = r.h0; i < r.h1; i++) {
                float *restrict yr = k->y + ((size_t)s * g->O + c) * HWo + (size_t)i * Wo;
                int np = 0;
                for (int p = 0; p < g->kh; p++) {
                    const int iy = i * g->sh - g->pt + p * g->dh;
                    if (iy < 0 || iy >= g->H) continue;
                    rows[np] = xc + (size_t)iy * g->W - g->pl;
                    wrow[np++] = wc + p * g->kw;
                }
                for (int j = jlo; j < jv; j += 8) {
                    dwv8 acc = {b, b, b, b, b, b, b, b};
                    for (int t = 0; t < np; t++)
                        for (int q = 0; q < g->kw; q++) {
                            dwv8 xv;
                            memcpy(&xv, rows[t] + j + q * g->dw, sizeof xv);
                            acc += wrow[t][q] * xv;
                        }
                    if (relu) {
                        const dwv8 zero = {0};
                        acc = (dwv8)((dwv8i)acc & (acc > zero));
                    }
                    memcpy(yr + j, &acc, sizeof acc);
                }
                for (int j = 0; j < Wo; j++) { /* the edges and the rest: taps checked */
                    if (j == jlo && jv > jlo) j = jv;
                    if (j >= Wo) break;
                    float a = b;
                    for (int t = 0; t < np; t++)
                        for (int q = 0; q < g->kw; q++) {
                            const int ix = j * sw + q * g->dw; /* rows[t] starts at -pl */
                            if (ix >= g->pl && ix < g->W + g->pl) a += wrow[t][q] * rows[t][ix];
                        }
                    yr[j] = relu && !(a > 0.0f) ? 0.0f : a;
                }
            }
        }
}

/* dw's sums of one kernel row p over one output row: acc[q] += d[j..] * xp[off[q] + j ..] (off
 * NULL: 0, 1, 2 ...); inlined with kw constant for 3x3 and 5x5, so the sums stay in registers */
static inline __attribute__((always_inline)) void depthwise_dw_row(const float *d, const float *xp,
                                                                   const int *off, int Wo, int kw,
                                                                   dwv8 *acc)
{
    dwv8 a[DEPTHWISE_S1_KW];
    for (int q = 0; q < kw; q++) a[q] = acc[q];
    for (int j = 0; j < Wo; j += 8) {
        dwv8 dv;
        memcpy(&dv, d + j, sizeof dv);
        for (int q = 0; q < kw; q++) {
            dwv8 xs;
            memcpy(&xs, xp + (off ? off[q] : q) + j, sizeof xs);
            a[q] += dv * xs;
        }
    }
    for (int q = 0; q < kw; q++) acc[q] = a[q];
}

/* dx's 8 columns from ix, stride 1: every tap's weight times dy (drow[t]: kernel row t's dy row,
 * seen at column ix + pl) */
static inline __attribute__((always_inline)) void depthwise_dx_vec(const float *const *drow,
                                                                   const float *const *wrow,
                                                                   int np, int kw, int qd, int ix,
                                                                   dwv8 *out)
{
    dwv8 a = {0};
    for (int t = 0; t < np; t++)
        for (int q = 0; q < kw; q++) {
            dwv8 dv;
            memcpy(&dv, drow[t] + ix - q * qd, sizeof dv);
            a += wrow[t][q] * dv;
        }
    *out = a;
}

/* The backward pass on kept rows (depthwise_rows), in vectors of 8 columns: the channel's dy
 * rows, masked by the relu, are kept padded with zeros (\p dpad: the region's rows, Ld floats
 * each). dw keeps a vector of sums a tap over the whole channel (one load of dy a kernel row and
 * vector; added across lanes once at the end). dx, at stride 1, gathers as a convolution of dy
 * by the flipped kernel every tap's share of 8 input columns in registers and adds them to dx
 * once; at stride 2 each tap adds w dy to a kept row of the input's shape (\p dxpad: the input
 * rows the region reaches, sw Lx floats each), added to dx at the end. */
PML_HOT static void depthwise_bwd_pad(const geom *g, const pml_kctx *k, float *dx, float *dw,
                                      float *db, int relu, float *dpad, float *dxpad)
{
    const pml_region r = k->r;
    const size_t HW = (size_t)g->H * g->W, HWo = (size_t)g->Ho * g->Wo;
    const int W = g->W, Wo = g->Wo, kh = g->kh, kw = g->kw, K = kh * kw, qd = g->dw, pl = g->pl,
              sw = g->sw, sh = g->sh;
    int P, Ld, Lx, off[DEPTHWISE_S1_KW];
    depthwise_rows(g, &P, &Ld, &Lx);
    depthwise_offsets(g, Lx, off);
    const bool unit = sw == 1 && qd == 1, gather = sw == 1 && sh == 1;
    const int rows = r.h1 - r.h0;
    const size_t row = (size_t)sw * Lx;
    int ylo, yhi; /* input rows the region's output rows reach */
    depthwise_in_rows(g, r, &ylo, &yhi);
    float xp[DEPTHWISE_PAD]; /* a kept input row */
    const dwv8 zero = {0};
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++) {
            const size_t xo = ((size_t)s * g->G + c) * HW, yo = ((size_t)s * g->O + c) * HWo;
            const float *xc = k->x[0] + xo, *wc = k->w[0] + (size_t)c * K;
            double bsum = 0;
            for (int i = r.h0; i < r.h1; i++) {
                const float *dyr = k->dy + yo + (size_t)i * Wo, *yr = k->y + yo + (size_t)i * Wo;
                float *d = dpad + (size_t)(i - r.h0) * Ld;
                memset(d, 0, (size_t)P * sizeof *d);
                for (int j = 0; j < Wo; j++) d[P + j] = relu && !(yr[j] > 0.0f) ? 0.0f : dyr[j];
                memset(d + P + Wo, 0, (size_t)(Ld - P - Wo) * sizeof *d);
                dwv8 rs = zero; /* the row's sum, 8 lanes (the zeros after it count nothing) */
                for (int j = 0; j < Wo; j += 8) {
                    dwv8 dv;
                    memcpy(&dv, d + P + j, sizeof dv);
                    rs += dv;
                }
                for (int l = 0; l < 8; l++) bsum += rs[l];
            }
            if (db) db[c] += (float)bsum;
            if (dw) {
                dwv8 acc[DEPTHWISE_S1_KW * DEPTHWISE_S1_KW];
                for (int t = 0; t < K; t++) acc[t] = zero;
                for (int iy = ylo; iy < yhi; iy++) {
                    depthwise_pad_row(xp, xc + (size_t)iy * W, W, pl, Lx, sw);
                    for (int p = 0; p < kh; p++) {
                        /* the output row whose tap row p is this row */
                        const int ip = iy + g->pt - p * g->dh;
                        if (ip < 0 || ip % sh) continue;
                        const int i = ip / sh;
                        if (i < r.h0 || i >= r.h1) continue;
                        const float *d = dpad + (size_t)(i - r.h0) * Ld + P;
                        if (unit && kw == 3)
                            depthwise_dw_row(d, xp, NULL, Wo, 3, acc + p * kw);
                        else if (unit && kw == 5)
                            depthwise_dw_row(d, xp, NULL, Wo, 5, acc + p * kw);
                        else if (kw == 3)
                            depthwise_dw_row(d, xp, off, Wo, 3, acc + p * kw);
                        else
                            depthwise_dw_row(d, xp, off, Wo, kw, acc + p * kw);
                    }
                }
                for (int t = 0; t < K; t++) {
                    float v = 0;
                    for (int l = 0; l < 8; l++) v += acc[t][l];
                    dw[(size_t)c * K + t] += v;
                }
            }
            if (!dx || !rows) continue;
            if (!gather) {
                /* each tap adds w dy to the kept rows, then they are added to dx */
                memset(dxpad, 0, (size_t)(yhi > ylo ? yhi - ylo : 0) * row * sizeof *dxpad);
                for (int i = r.h0; i < r.h1; i++) {
                    const float *d = dpad + (size_t)(i - r.h0) * Ld + P;
                    for (int p = 0; p < kh; p++) {
                        const int iy = i * sh - g->pt + p * g->dh;
                        if (iy < 0 || iy >= g->H) continue; /* the padding's rows */
                        float *ar = dxpad + (size_t)(iy - ylo) * row;
                        for (int q = 0; q < kw; q++) {
                            float *restrict o = ar + off[q];
                            const float wv = wc[p * kw + q];
                            for (int j = 0; j < Wo; j += 8) {
                                dwv8 dv, ov;
                                memcpy(&dv, d + j, sizeof dv);
                                memcpy(&ov, o + j, sizeof ov);
                                ov += wv * dv;
                                memcpy(o + j, &ov, sizeof ov);
                            }
                        }
                    }
                }
                for (int iy = ylo; iy < yhi; iy++) {
                    const float *ar = dxpad + (size_t)(iy - ylo) * row;
                    float *restrict dxr = dx + xo + (size_t)iy * W;
                    if (sw == 1) {
                        for (int ix = 0; ix < W; ix++) dxr[ix] += ar[ix + pl];
                        continue;
                    }
                    /* column ix is kept column (ix + pl) / 2 of phase (ix + pl) % 2: pairs of
                     * an even and an odd one */
                    const float *ev = ar, *od = ar + Lx;
                    int ix = 0;
                    if (pl & 1) {
                        dxr[0] += od[pl >> 1];
                        ix = 1;
                    }
                    for (; ix + 1 < W; ix += 2) {
                        const int u = (ix + pl) >> 1;
                        dxr[ix] += ev[u];
                        dxr[ix + 1] += od[u];
                    }
                    if (ix < W) dxr[ix] += ev[(ix + pl) >> 1];
                }
                continue;
            }
            for (int iy = ylo; iy < yhi; iy++) {
                const float *drow[DEPTHWISE_KW], *wrow[DEPTHWISE_KW];
                int np = 0;
                for (int p = 0; p < kh; p++) {
                    const int i = iy + g->pt - p * g->dh;
                    if (i < r.h0 || i >= r.h1) continue;
                    drow[np] = dpad + (size_t)(i - r.h0) * Ld + P + pl; /* dy column ix + pl */
                    wrow[np++] = wc + p * kw;
                }
                if (!np) continue;
                float *restrict dxr = dx + xo + (size_t)iy * W;
                for (int ix = 0; ix < W; ix += 8) {
                    dwv8 a;
                    if (kw == 3 && qd == 1 && np == 3)
                        depthwise_dx_vec(drow, wrow, 3, 3, 1, ix, &a);
                    else if (kw == 5 && qd == 1 && np == 5)
                        depthwise_dx_vec(drow, wrow, 5, 5, 1, ix, &a);
                    else
                        depthwise_dx_vec(drow, wrow, np, kw, qd, ix, &a);
                    if (ix + 8 <= W) {
                        dwv8 o;
                        memcpy(&o, dxr + ix, sizeof o);
                        o += a;
                        memcpy(dxr + ix, &o, sizeof o);
                    } else {
                        for (int l = 0; ix + l < W; l++) dxr[ix + l] += a[l];
                    }
                }
            }
        }
}

// dy rows [h0, h1) of channels [c0, c1) -> dx, dw, db (each may be NULL), accumulated
PML_HOT static void depthwise_bwd(const geom *g, const pml_kctx *k, float *dx, float *dw, float *db,
                           int relu)
{
    const pml_region r = k->r;
    const size_t HW = (size_t)g->H * g->W, HWo = (size_t)g->Ho * g->Wo;
    const int Wo = g->Wo, sw = g->sw, K = g->kh * g->kw;
    int P, Ld, Lx, ylo, yhi;
    if (depthwise_rows(g, &P, &Ld, &Lx)) {
        const size_t nd = (size_t)(r.h1 - r.h0 + 1) * (size_t)Ld;
        const size_t nx = g->sw == 1 && g->sh == 1 ? 0
                                                   : (size_t)depthwise_in_rows(g, r, &ylo, &yhi) *
                                                         (size_t)g->sw * (size_t)Lx;
        float *dpad = malloc((nd + nx) * sizeof *dpad);
        if (dpad) { /* else as below */
            depthwise_bwd_pad(g, k, dx, dw, db, relu, dpad, dpad + nd);
            free(dpad);
            return;
        }
    }
    float d[DEPTHWISE_ROW]; /* a row of dy, masked by the relu */
    int clo[DEPTHWISE_KW], chi[DEPTHWISE_KW], coff[DEPTHWISE_KW]; /* each tap column's valid j */
    for (int q = 0; q < g->kw; q++) {
        valid_cols(g, q, &clo[q], &chi[q]);
        coff[q] = g->pl - q * g->dw;
    }
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++) {
            const size_t xo = ((size_t)s * g->G + c) * HW;
            const float *xc = k->x[0] + xo, *wc = k->w[0] + (size_t)c * K;
            float *dxc = dx ? dx + xo : NULL;
            double bsum = 0;
            for (int i = r.h0; i < r.h1; i++) {
                const size_t yo = ((size_t)s * g->O + c) * HWo + (size_t)i * Wo;
                const float *dyr = k->dy + yo, *yr = k->y + yo;
                for (int j0 = 0; j0 < Wo; j0 += DEPTHWISE_ROW) { /* rows wider than d: in pieces */
                    const int j1 = j0 + DEPTHWISE_ROW < Wo ? j0 + DEPTHWISE_ROW : Wo;
                    float rs = 0;
                    for (int j = j0; j < j1; j++) {
                        d[j - j0] = relu && !(yr[j] > 0.0f) ? 0.0f : dyr[j];
                        rs += d[j - j0];
                    }
                    bsum += rs;
                    for (int p = 0; p < g->kh; p++) {
                        const int iy = i * g->sh - g->pt + p * g->dh;
                        if (iy < 0 || iy >= g->H) continue;
                        const float *restrict xr = xc + (size_t)iy * g->W;
                        float *restrict dxr = dxc ? dxc + (size_t)iy * g->W : NULL;
                        for (int q = 0; q < g->kw; q++) {
                            const int lo = clo[q] > j0 ? clo[q] : j0, hi = chi[q] < j1 ? chi[q] : j1;
                            const int off = coff[q];
                            const float wv = wc[p * g->kw + q];
                            float acc = 0;
                            if (sw == 1) {
                                dwv8 a8 = {0};
                                int j = lo;
                                for (; j + 8 <= hi; j += 8) {
                                    dwv8 dv, xv;
                                    memcpy(&dv, d + j - j0, sizeof dv);
                                    memcpy(&xv, xr + j - off, sizeof xv);
                                    a8 += dv * xv;
                                }
                                for (; j < hi; j++) acc += d[j - j0] * xr[j - off];
                                for (int t = 0; t < 8; t++) acc += a8[t];
                                if (dxr)
                                    for (j = lo; j < hi; j++) dxr[j - off] += wv * d[j - j0];
                            } else {
                                for (int j = lo; j < hi; j++) acc += d[j - j0] * xr[j * sw - off];
                                if (dxr)
                                    for (int j = lo; j < hi; j++) dxr[j * sw - off] += wv * d[j - j0];
                            }
                            if (dw) dw[(size_t)c * K + p * g->kw + q] += acc;
                        }
                    }
                }
            }
            if (db) db[c] += (float)bsum;
        }
}

/* The forward of a layer with few input taps (K = C*kh*kw small: a first layer's 3 or 1
 * channels): a gemm of nc x P over K = 27 runs at 40-45% of sgemm's speed (thin panels, and
 * the columns written and read again). Directly instead, output row by output row: the C*kh
 * input rows the row reads are copied into ws padded with zeros (t -> x[t - pl], the
 * columns in whole blocks), then for FD_OB output channels and FD_JB vectors of 8 columns at
 * once each tap adds its weight times a shifted padded row (FD_OB*FD_JB sums kept in
 * registers), and the sums go to y once, with the bias and relu. Stride 1 along the row; any
 * stride and dilation across rows, dilation along it. y: output channel 0 of the nc, row 0. */
PML_HOT static void fwd_direct(const geom *g, const float *xs, const float *wt, const float *bias,
                               int nc, float *y, size_t ldy, int r0, int r1, int relu, float *ws)
{
    const int L = fd_row_len(g), CK = g->C * g->kh, Wo = g->Wo, kw = g->kw, dw = g->dw;
    const int K = g->K;
    float *last = ws + (size_t)CK * L; /* FD_OB rows of FD_COLS: a partial block's sums */
    const v8f zero = {0};
    for (int i = r0; i < r1; i++) {
        for (int c = 0; c < g->C; c++)
            for (int p = 0; p < g->kh; p++) {
                float *xp = ws + (size_t)(c * g->kh + p) * L;
                const int iy = i * g->sh - g->pt + p * g->dh;
                if (iy < 0 || iy >= g->H) {
                    memset(xp, 0, (size_t)L * sizeof *xp);
                    continue;
                }
                depthwise_pad_row(xp, xs + ((size_t)c * g->H + iy) * g->W, g->W, g->pl, L, 1);
            }
        for (int o0 = 0; o0 < nc; o0 += FD_OB) {
            const int ob = nc - o0 < FD_OB ? nc - o0 : FD_OB;
            const float *wr[FD_OB]; /* past the last channel: the first's again, not stored */
            float bo[FD_OB];
            for (int t = 0; t < FD_OB; t++) {
                wr[t] = wt + (size_t)(o0 + (t < ob ? t : 0)) * K;
                bo[t] = bias && t < ob ? bias[o0 + t] : 0.0f;
            }
            for (int j = 0; j < Wo; j += FD_COLS) {
                v8f acc[FD_OB][FD_JB];
#pragma GCC unroll 4
                for (int t = 0; t < FD_OB; t++)
#pragma GCC unroll 3
                    for (int b = 0; b < FD_JB; b++) acc[t][b] = zero;
                for (int cp = 0; cp < CK; cp++) {
                    const float *xp = ws + (size_t)cp * L + j;
                    for (int q = 0; q < kw; q++) {
                        v8f xv[FD_JB];
#pragma GCC unroll 3
                        for (int b = 0; b < FD_JB; b++) LD8(xv[b], xp + q * dw + 8 * b);
#pragma GCC unroll 4
                        for (int t = 0; t < FD_OB; t++) {
                            const float w = wr[t][cp * kw + q];
#pragma GCC unroll 3
                            for (int b = 0; b < FD_JB; b++) acc[t][b] += w * xv[b];
                        }
                    }
                }
                const bool whole = j + FD_COLS <= Wo;
                for (int t = 0; t < ob; t++) {
                    float *yr = whole ? y + (size_t)(o0 + t) * ldy + (size_t)i * Wo + j
                                      : last + t * FD_COLS;
#pragma GCC unroll 3
                    for (int b = 0; b < FD_JB; b++) {
                        v8f v = acc[t][b] + bo[t];
                        if (relu) v = (v8f)((v8i)v & (v > zero));
                        memcpy(yr + 8 * b, &v, sizeof v);
                    }
                    if (!whole)
                        memcpy(y + (size_t)(o0 + t) * ldy + (size_t)i * Wo + j, yr,
                               (size_t)(Wo - j) * sizeof *yr);
                }
            }
        }
    }
}

// x (N,C,H,W), w (O,C/G,KH,KW), b (O) -> y (N,O,Ho,Wo) on region r
void pml__conv2d_fwd_blas(const pml_kctx *k)
{
    const pml_node *n = k->node;
    const pml_region r = k->r;
    geom g = geom_of(n, k->xs[0]);
    if (r.c1 <= r.c0 || r.h1 <= r.h0) return;
    if (depthwise(&g)) {
        int P, Ld, Lx, ylo, yhi;
        float *xpad = NULL;
        if (depthwise_rows(&g, &P, &Ld, &Lx) &&
            (xpad = malloc((size_t)depthwise_in_rows(&g, r, &ylo, &yhi) * (size_t)(g.sw * Lx) *
                           sizeof *xpad))) {
            depthwise_fwd_pad(&g, k, n->a.act == PML_ACT_RELU, xpad);
            free(xpad);
        } else {
            depthwise_fwd(&g, k, n->a.act == PML_ACT_RELU);
        }
        return;
    }
    const int cr = chunk_rows(&g, r.h1 - r.h0);
    const size_t HWo = (size_t)g.Ho * g.Wo, HW = (size_t)g.H * g.W;
    const int relu = n->a.act == PML_ACT_RELU;
    const bool direct = fwd_direct_ok(&g);
    for (int s = r.n0; s < r.n1; s++)
        FOR_GROUPS(g, r.c0, r.c1, gi, o0, o1)
        {
            const int nc = o1 - o0;
            const float *xs = k->x[0] + ((size_t)s * g.G + gi) * g.C * HW; /* the group's input */
            const float *wt = k->w[0] + (size_t)o0 * g.K;
            const float *bias = n->a.bias ? k->w[1] + o0 : NULL;
            if (direct) {
                fwd_direct(&g, xs, wt, bias, nc, k->y + (size_t)s * g.O * HWo + (size_t)o0 * HWo,
                           HWo, r.h0, r.h1, relu, k->ws);
                continue;
            }
            for (int r0 = r.h0; r0 < r.h1; r0 += cr) {
                int r1 = r0 + cr < r.h1 ? r0 + cr : r.h1;
                int P = (r1 - r0) * g.Wo;
                float *yc = k->y + (size_t)s * g.O * HWo + (size_t)o0 * HWo + (size_t)r0 * g.Wo;
                const float *col;
                int ldcol;
                if (g.direct) {
                    col = xs + (size_t)r0 * g.W;
                    ldcol = (int)HW;
                } else {
                    im2col(&g, xs, r0, r1, k->ws);
                    col = k->ws;
                    ldcol = P;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nc, P, g.K, 1.0f, wt, g.K,
                            col, ldcol, 0.0f, yc, (int)HWo);
                bias_act(yc, HWo, nc, P, bias, relu);
            }
        }
}

// db[o] += sum_j g[o,j]
PML_HOT static void bias_grad(const float *gr, size_t ld, int nc, int len, float *db)
{
    for (int o = 0; o < nc; o++) {
        const float *go = gr + (size_t)o * ld;
        float acc[8] = {0};
        int j = 0;
        for (; j + 8 <= len; j += 8)
            for (int t = 0; t < 8; t++) acc[t] += go[j + t];
        float s = 0;
        for (; j < len; j++) s += go[j];
        for (int t = 0; t < 8; t++) s += acc[t];
        db[o] += s;
    }
}

/* The weight gradient of a layer with few input taps (K = C*kh*kw small, as a first layer's
 * 3 or 1 channels): a gemm of nc x K outputs over P is too thin for sgemm (a fifth of its
 * speed) and the columns cost as much again to write. Directly instead: for 3 output channels at
 * once and the kw = 3 taps of a kernel row, the 9 sums of d[o][i][j] * x[c][iy][j + q - pl]
 * run in 8-float vectors over the row's output columns (a row of x, three rows of d, 9 FMAs a
 * column of 8): stride 1, no dilation. */
#define DW_DIRECT_K 64 /* at most this many taps; more make the gemm wide enough */
#define DW_OB 3        /* output channels at once (dw_direct's loop is written for 3) */
#define DW_MAX_W 1024  /* output rows at most this wide (a masked row of each is kept) */

static bool dw_direct_ok(const geom *g)
{
    return g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && !g->direct &&
           g->D == 1 && g->kd == 1 &&
           g->K <= DW_DIRECT_K && g->Wo >= 64 && g->Wo <= DW_MAX_W;
}

/* dw (nc, K) += d (nc planes, ld ldd; output rows [r0, r1) from d) . x's windows, one sample,
 * where d is dy masked by y > 0 (y not NULL: a fused relu) and db (not NULL) += its sums. Row by
 * row: the row's d (DW_OB rows, masked into m once) and x (C*kh rows) stay in L1 for all C*kh
 * kernel rows, while the sums of each kernel row live in acc from row to row; dy and y are
 * read once, as the arithmetic goes on. */
PML_HOT static void dw_direct(const geom *g, const float *d, const float *y, size_t ldd, int nc,
                              const float *xs, int r0, int r1, float *dw, float *db)
{
    const int Wo = g->Wo, W = g->W, pl = g->pl, CK = g->C * g->kh;
    /* output columns whose three taps all lie in the row: j - pl >= 0, j - pl + 2 < W */
    const int jlo = pl < Wo ? pl : Wo;
    int jhi = W - 3 + pl + 1;
    if (jhi > Wo) jhi = Wo;
    if (jhi < jlo) jhi = jlo;
    const int jv = jlo + (jhi - jlo) / 8 * 8; /* vector columns [jlo, jv) */
    v8f acc[DW_DIRECT_K / 3][DW_OB][3];
    float sc[DW_DIRECT_K / 3][DW_OB][3];
    float m[DW_OB][DW_MAX_W];
    for (int o0 = 0; o0 < nc; o0 += DW_OB) {
        const int ob = nc - o0 < DW_OB ? nc - o0 : DW_OB;
        memset(acc, 0, (size_t)CK * sizeof acc[0]);
        memset(sc, 0, (size_t)CK * sizeof sc[0]);
        double bs[DW_OB] = {0};
        for (int i = r0; i < r1; i++) {
            const float *dr[DW_OB];
            for (int t = 0; t < DW_OB; t++) {
                const size_t at = (size_t)(o0 + (t < ob ? t : 0)) * ldd + (size_t)(i - r0) * Wo;
                dr[t] = d + at;
                if (t >= ob || (!y && !db)) continue;
                /* in vectors: a float sum one value at a time waits on each add */
                v8f vs = {0};
                float sum = 0;
                int j = 0;
                if (y) { /* the relu's mask, once a row */
                    const float *yr = y + at;
                    const v8f zero = {0};
                    for (; j + 8 <= Wo; j += 8) {
                        v8f dv, yv;
                        LD8(dv, dr[t] + j);
                        LD8(yv, yr + j);
                        const v8f v = (v8f)((v8i)dv & (yv > zero));
                        memcpy(&m[t][j], &v, sizeof v);
                        vs += v;
                    }
                    for (; j < Wo; j++) {
                        const float v = yr[j] > 0.0f ? dr[t][j] : 0.0f;
                        m[t][j] = v;
                        sum += v;
                    }
                    dr[t] = m[t];
                } else {
                    for (; j + 8 <= Wo; j += 8) {
                        v8f dv;
                        LD8(dv, dr[t] + j);
                        vs += dv;
                    }
                    for (; j < Wo; j++) sum += dr[t][j];
                }
                bs[t] += sum + hsum8(&vs);
            }
            for (int t = ob; t < DW_OB; t++) dr[t] = dr[0];
            for (int c = 0; c < g->C; c++)
                for (int p = 0; p < g->kh; p++) {
                    const int iy = i - g->pt + p;
                    if (iy < 0 || iy >= g->H) continue;
                    const int cp = c * g->kh + p;
                    const float *xr = xs + ((size_t)c * g->H + iy) * W; /* xr[j - pl + q] */
                    v8f a00 = acc[cp][0][0], a01 = acc[cp][0][1], a02 = acc[cp][0][2];
                    v8f a10 = acc[cp][1][0], a11 = acc[cp][1][1], a12 = acc[cp][1][2];
                    v8f a20 = acc[cp][2][0], a21 = acc[cp][2][1], a22 = acc[cp][2][2];
                    for (int j = jlo; j < jv; j += 8) {
                        const float *xj = xr + (j - pl);
                        v8f x0, x1, x2, d0, d1, d2;
                        LD8(x0, xj);
                        LD8(x1, xj + 1);
                        LD8(x2, xj + 2);
                        LD8(d0, dr[0] + j);
                        LD8(d1, dr[1] + j);
                        LD8(d2, dr[2] + j);
                        a00 += d0 * x0, a01 += d0 * x1, a02 += d0 * x2;
                        a10 += d1 * x0, a11 += d1 * x1, a12 += d1 * x2;
                        a20 += d2 * x0, a21 += d2 * x1, a22 += d2 * x2;
                    }
                    acc[cp][0][0] = a00, acc[cp][0][1] = a01, acc[cp][0][2] = a02;
                    acc[cp][1][0] = a10, acc[cp][1][1] = a11, acc[cp][1][2] = a12;
                    acc[cp][2][0] = a20, acc[cp][2][1] = a21, acc[cp][2][2] = a22;
                    /* the edges: columns with a tap outside the row, and the vectors' rest */
                    for (int j = 0; j < Wo; j++) {
                        if (j == jlo) j = jv;
                        if (j >= Wo) break;
                        for (int q = 0; q < 3; q++) {
                            const int ix = j - pl + q;
                            if (ix < 0 || ix >= W) continue;
                            for (int t = 0; t < ob; t++) sc[cp][t][q] += dr[t][j] * xr[ix];
                        }
                    }
                }
        }
        if (db)
            for (int t = 0; t < ob; t++) db[o0 + t] += (float)bs[t];
        for (int cp = 0; cp < CK; cp++)
            for (int t = 0; t < ob; t++)
                for (int q = 0; q < 3; q++)
                    dw[(size_t)(o0 + t) * g->K + cp * 3 + q] +=
                        hsum8(&acc[cp][t][q]) + sc[cp][t][q];
    }
}

// dy (N,O,Ho,Wo) on region r -> dx (N,C,H,W), dw (O,C/G,KH,KW), db (O), accumulated
void pml__conv2d_bwd_blas(const pml_kctx *k)
{
    const pml_node *n = k->node;
    const pml_region r = k->r;
    geom g = geom_of(n, k->xs[0]);
    if (r.c1 <= r.c0 || r.h1 <= r.h0) return;
    const int cr = chunk_rows(&g, r.h1 - r.h0);
    const size_t HWo = (size_t)g.Ho * g.Wo, HW = (size_t)g.H * g.W;
    float *dx = k->dx[0];
    const int relu = n->a.act == PML_ACT_RELU;
    float *col = k->ws;
    float *dym = k->ws + (size_t)g.K * cr * g.Wo;
    if (!k->dw[0] && !(n->a.bias && k->dw[1]) && !dx) return;
    if (depthwise(&g)) {
        depthwise_bwd(&g, k, dx, k->dw[0], n->a.bias ? k->dw[1] : NULL, relu);
        return;
    }
    for (int s = r.n0; s < r.n1; s++)
        FOR_GROUPS(g, r.c0, r.c1, gi, o0, o1)
        {
            const int nc = o1 - o0;
            const float *xs = k->x[0] + ((size_t)s * g.G + gi) * g.C * HW;
            const float *wt = k->w[0] + (size_t)o0 * g.K;
            float *dw = k->dw[0] ? k->dw[0] + (size_t)o0 * g.K : NULL;
            float *db = n->a.bias && k->dw[1] ? k->dw[1] + o0 : NULL;
            for (int r0 = r.h0; r0 < r.h1; r0 += cr) {
                int r1 = r0 + cr < r.h1 ? r0 + cr : r.h1;
                int P = (r1 - r0) * g.Wo;
                size_t off = (size_t)s * g.O * HWo + (size_t)o0 * HWo + (size_t)r0 * g.Wo;
                const float *d = k->dy + off;
                int ldd = (int)HWo;
                if (!dx && dw && dw_direct_ok(&g)) { /* a first layer: one pass over dy and y */
                    dw_direct(&g, d, relu ? k->y + off : NULL, HWo, nc, xs, r0, r1, dw, db);
                    continue;
                }
                if (relu) {
                    pml__relu_mask_rows(dym, k->y + off, d, HWo, (size_t)nc, (size_t)P);
                    d = dym;
                    ldd = P;
                }
                if (db) bias_grad(d, (size_t)ldd, nc, P, db);
                if (dw && dw_direct_ok(&g)) {
                    dw_direct(&g, d, NULL, (size_t)ldd, nc, xs, r0, r1, dw, NULL);
                } else if (dw) {
                    const float *cm = col;
                    int ldcol = P;
                    if (g.direct) {
                        cm = xs + (size_t)r0 * g.W;
                        ldcol = (int)HW;
                    } else {
                        im2col(&g, xs, r0, r1, col);
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, g.K, P, 1.0f, d, ldd,
                                cm, ldcol, 1.0f, dw, g.K);
                }
                if (dx) {
                    float *dxs = dx + ((size_t)s * g.G + gi) * g.C * HW;
                    if (g.direct) {
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.K, P, nc, 1.0f, wt,
                                    g.K, d, ldd, 1.0f, dxs + (size_t)r0 * g.W, (int)HW);
                    } else {
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.K, P, nc, 1.0f, wt,
                                    g.K, d, ldd, 0.0f, col, P);
                        col2im_add(&g, col, r0, r1, dxs);
                    }
                }
            }
        }
}

/* ---------------------------------------------------------------- reference kernels */

// x (N,C,H,W), w (O,C/G,KH,KW), b (O) -> y (N,O,Ho,Wo): direct loops, double accumulation
void pml__conv2d_fwd_ref(const pml_kctx *k)
{
    const pml_node *n = k->node;
    const pml_region r = k->r;
    geom g = geom_of(n, k->xs[0]);
    for (int s = r.n0; s < r.n1; s++)
        for (int o = r.c0; o < r.c1; o++)
            for (int i = r.h0; i < r.h1; i++)
                for (int j = 0; j < g.Wo; j++) {
                    double acc = n->a.bias ? k->w[1][o] : 0.0;
                    const int c0 = o / g.Og * g.C; /* the group's first input channel */
                    const int od = i / g.Hop, io = i % g.Hop; /* plane, its row */
                    for (int c = 0; c < g.C; c++)
                        for (int e = 0; e < g.kd; e++)
                        for (int p = 0; p < g.kh; p++)
                            for (int q = 0; q < g.kw; q++) {
                                int iz = od * g.sd - g.pf + e * g.dd;
                                int iy = io * g.sh - g.pt + p * g.dh, ix = j * g.sw - g.pl + q * g.dw;
                                if (iz < 0 || iz >= g.D || iy < 0 || iy >= g.Hp || ix < 0 ||
                                    ix >= g.W)
                                    continue;
                                acc += (double)k->x[0][((size_t)(s * g.G * g.C + c0 + c) * g.H +
                                                        iz * g.Hp + iy) * g.W + ix] *
                                       k->w[0][(((size_t)(o * g.C + c) * g.kd + e) * g.kh + p) *
                                                   g.kw + q];
                            }
                    if (n->a.act == PML_ACT_RELU && acc < 0) acc = 0;
                    k->y[((size_t)(s * g.O + o) * g.Ho + i) * g.Wo + j] = (float)acc;
                }
}

// dy (N,O,Ho,Wo) -> dx (N,C,H,W), dw (O,C,KH,KW), db (O): direct loops, accumulated
void pml__conv2d_bwd_ref(const pml_kctx *k)
{
    const pml_node *n = k->node;
    const pml_region r = k->r;
    geom g = geom_of(n, k->xs[0]);
    for (int s = r.n0; s < r.n1; s++)
        for (int o = r.c0; o < r.c1; o++)
            for (int i = r.h0; i < r.h1; i++)
                for (int j = 0; j < g.Wo; j++) {
                    size_t yi = ((size_t)(s * g.O + o) * g.Ho + i) * g.Wo + j;
                    float d = k->dy[yi];
                    if (n->a.act == PML_ACT_RELU && !(k->y[yi] > 0)) d = 0;
                    if (n->a.bias && k->dw[1]) k->dw[1][o] += d;
                    const int c0 = o / g.Og * g.C;
                    const int od = i / g.Hop, io = i % g.Hop;
                    for (int c = 0; c < g.C; c++)
                        for (int e = 0; e < g.kd; e++)
                        for (int p = 0; p < g.kh; p++)
                            for (int q = 0; q < g.kw; q++) {
                                int iz = od * g.sd - g.pf + e * g.dd;
                                int iy = io * g.sh - g.pt + p * g.dh, ix = j * g.sw - g.pl + q * g.dw;
                                if (iz < 0 || iz >= g.D || iy < 0 || iy >= g.Hp || ix < 0 ||
                                    ix >= g.W)
                                    continue;
                                size_t xi = ((size_t)(s * g.G * g.C + c0 + c) * g.H + iz * g.Hp +
                                             iy) * g.W + ix;
                                size_t wi =
                                    (((size_t)(o * g.C + c) * g.kd + e) * g.kh + p) * g.kw + q;
                                if (k->dw[0]) k->dw[0][wi] += d * k->x[0][xi];
                                if (k->dx[0]) k->dx[0][xi] += d * k->w[0][wi];
                            }
                }
}
