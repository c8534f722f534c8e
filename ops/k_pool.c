/* pml — maxpool2d and avgpool2d (2-D pooling, PyTorch semantics).
 *
 *   x (N,C,H,W) -> y (N,C,Ho,Wo), window kh x kw, stride sh x sw, padding pt/pb/pl/pr,
 *   maxpool: dilation dh x dw (the window's cells dh rows and dw columns apart)
 *
 * - maxpool: padded cells are -inf; backward routes dy to the FIRST maximal cell of each window
 *   (row-major order), recomputed from x (no aux storage). A dilated window may miss the input
 *   altogether: its output is -inf and it routes nothing back.
 * - avgpool: divides by the number of real input cells in the window, or with count_pad by the
 *   window clipped to the padded input (PyTorch count_include_pad=True: padded cells count but
 *   contribute 0; window cells beyond the padding that ceil_mode adds do not count).
 * - global: pools the whole map to 1x1 (kernel, stride and padding are ignored).
 * - 3-D (a.depth > 0): x (N,C,D*H,W), a channel's D planes of H rows one after another; the
 *   window also spans kd planes (stride sd, maxpool's dilation dd, padding pf before the first);
 *   output row i is row i % Ho of plane i / Ho. Plain loops over the clipped window.
 * Explicit padding must be smaller than the kernel (ONNX allows that; PyTorch at most half), so
 * every window holds at least one real cell. */
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* AVX-512 rows for 2x2 pools (below), where the CPU has AVX-512, picked when pml runs; not
 * under the sanitizers (their checks do not follow masked loads), as PML_HOT */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__) &&                \
    !defined(__SANITIZE_THREAD__)
#define PML_POOL_AVX512 1
#include <immintrin.h>
#else
#define PML_POOL_AVX512 0
#endif

/* ---------------------------------------------------------------- geometry */

typedef struct pgeom {
    int C, H, W, Ho, Wo;
    int kh, kw, sh, sw, pt, pl, dh, dw;
    int hlim, wlim; /* count_pad: windows are clipped to rows [-pt, hlim), cols [-pl, wlim) */
    bool count_pad;
    bool d3;                            /* a 3-D window (not global) */
    int D, Hp, Hop, kd, sd, dd, pf, dlim; /* 3-D: planes, rows a plane in and out, the depth's
                                           * window; count_pad: planes [-pf, dlim) */
} pgeom;

static pgeom pgeom_of(const pml_node *n, pml_shape in)
{
    const pml_attrs *a = &n->a;
    pgeom g;
    g.C = in.c;
    g.H = in.h;
    g.W = in.w;
    g.Ho = n->out.h;
    g.Wo = n->out.w;
    g.count_pad = a->count_pad != 0;
    g.dh = g.dw = 1;
    g.d3 = a->depth > 0 && !a->global;
    g.D = 1, g.Hp = g.H, g.Hop = g.Ho, g.kd = g.sd = g.dd = 1, g.pf = 0, g.dlim = 1;
    if (a->global) {
        g.kh = in.h;
        g.kw = in.w;
        g.sh = g.sw = 1;
        g.pt = g.pl = 0;
        g.hlim = in.h;
        g.wlim = in.w;
        return g;
    }
    g.kh = a->kh;
    g.kw = a->kw;
    g.sh = a->sh;
    g.sw = a->sw;
    g.pt = a->pt;
    g.pl = a->pl;
    g.dh = a->dh > 1 ? a->dh : 1;
    g.dw = a->dw > 1 ? a->dw : 1;
    /* nominal padding after: the one the user asked for, without ceil_mode's extra */
    const bool same = a->pad_mode == PML_PAD_SAME || a->pad_mode == PML_PAD_SAME_LOWER;
    int ph = a->pad_mode == PML_PAD_EXPLICIT ? a->ph : same ? a->pb : 0;
    int pw = a->pad_mode == PML_PAD_EXPLICIT ? a->pw : same ? a->pr : 0;
    if (g.d3) {
        g.D = a->depth, g.Hp = in.h / a->depth, g.Hop = n->out.h / a->od;
        g.kd = a->kd, g.sd = a->sd, g.dd = a->dd > 1 ? a->dd : 1, g.pf = a->pf;
        int pd = a->pad_mode == PML_PAD_EXPLICIT ? a->pd : same ? a->pk : 0;
        g.dlim = a->depth + pd;
        g.hlim = g.Hp + ph;
    } else {
        g.hlim = in.h + ph;
    }
    g.wlim = in.w + pw;
    return g;
}

static inline int imax(int a, int b)
{
    return a > b ? a : b;
}
static inline int imin(int a, int b)
{
    return a < b ? a : b;
}

/* ---------------------------------------------------------------- shape inference */

static pml_status pool_infer(pml_node *n, const pml_shape *in, const char *op)
{
    pml_attrs *a = &n->a;
    pml_shape x = in[0];
    if (x.c <= 0 || x.h <= 0 || x.w <= 0)
        return pml_fail(PML_ESHAPE, "node '%s' (%s): input shape %dx%dx%d is empty", n->name, op,
                        x.c, x.h, x.w);
    if (a->global) {
        a->pt = a->pb = a->pl = a->pr = a->pf = a->pk = 0;
        a->od = a->depth > 0; /* a 3-D global pool: one plane of one cell */
        n->out = (pml_shape){x.c, 1, 1};
        return PML_OK;
    }
    int rows; /* a plane's rows (3-D), or all */
    pml_status st = pml__depth_window(n, x, op, a->ceil_mode, &rows);
    if (st != PML_OK) return st;
    if (a->depth > 0 && a->dd > 1 && n->op != PML_OP_MAXPOOL2D)
        return pml_fail(PML_EFORMAT, "node '%s' (%s): depth dilation %d: only maxpool2d dilates",
                        n->name, op, a->dd);
    if (a->depth > 0 && a->pad_mode == PML_PAD_EXPLICIT && a->pd >= a->kd)
        return pml_fail(PML_EFORMAT,
                        "node '%s' (%s): depth padding %d must be smaller than the kernel's %d",
                        n->name, op, a->pd, a->kd);
    if (a->kh <= 0 || a->kw <= 0)
        return pml_fail(PML_EFORMAT, "node '%s' (%s): kernel %dx%d must be positive", n->name, op,
                        a->kh, a->kw);
    if (a->sh <= 0 || a->sw <= 0)
        return pml_fail(PML_EFORMAT, "node '%s' (%s): stride %dx%d must be positive", n->name, op,
                        a->sh, a->sw);
    if (a->pad_mode != PML_PAD_VALID && a->pad_mode != PML_PAD_SAME &&
        a->pad_mode != PML_PAD_SAME_LOWER &&
        a->pad_mode != PML_PAD_EXPLICIT)
        return pml_fail(PML_EFORMAT,
                        "node '%s' (%s): padding mode %d is not valid, same or explicit", n->name,
                        op, a->pad_mode);
    if (a->dh < 0 || a->dw < 0 || a->dh > 1 << 16 || a->dw > 1 << 16)
        return pml_fail(PML_EFORMAT, "node '%s' (%s): dilation %dx%d must be positive", n->name,
                        op, a->dh, a->dw);
    const int dh = a->dh > 1 ? a->dh : 1, dw = a->dw > 1 ? a->dw : 1;
    if ((dh > 1 || dw > 1) && n->op != PML_OP_MAXPOOL2D)
        return pml_fail(PML_EFORMAT, "node '%s' (%s): dilation %dx%d: only maxpool2d dilates",
                        n->name, op, dh, dw);
    const int ekh = dh * (a->kh - 1) + 1, ekw = dw * (a->kw - 1) + 1; /* the window's extent */
    if (a->pad_mode == PML_PAD_EXPLICIT) {
        if (a->ph < 0 || a->pw < 0)
            return pml_fail(PML_EFORMAT, "node '%s' (%s): padding %dx%d must not be negative",
                            n->name, op, a->ph, a->pw);
        if (a->ph >= a->kh || a->pw >= a->kw)
            return pml_fail(PML_EFORMAT,
                            "node '%s' (%s): padding %dx%d must be smaller than the kernel %dx%d",
                            n->name, op, a->ph, a->pw, a->kh, a->kw);
    }
    int ho = pml__window_out(rows, ekh, a->sh, a->pad_mode, a->ph, a->ceil_mode, &a->pt, &a->pb);
    int wo = pml__window_out(x.w, ekw, a->sw, a->pad_mode, a->pw, a->ceil_mode, &a->pl, &a->pr);
    if (ho <= 0 || wo <= 0) {
        int ph = a->pad_mode == PML_PAD_EXPLICIT ? a->ph : 0;
        int pw = a->pad_mode == PML_PAD_EXPLICIT ? a->pw : 0;
        return pml_fail(PML_ESHAPE,
                        "node '%s' (%s): kernel %dx%d is larger than the padded input %dx%d "
                        "(input %dx%d, padding %dx%d)",
                        n->name, op, ekh, ekw, rows + 2 * ph, x.w + 2 * pw, rows, x.w, ph, pw);
    }
    n->out = (pml_shape){x.c, ho * (a->depth > 0 ? a->od : 1), wo};
    return PML_OK;
}

pml_status pml__maxpool2d_infer(pml_node *n, const pml_shape *in, int nin)
{
    (void)nin;
    return pool_infer(n, in, "maxpool2d");
}

pml_status pml__avgpool2d_infer(pml_node *n, const pml_shape *in, int nin)
{
    (void)nin;
    return pool_infer(n, in, "avgpool2d");
}

static double pool_flops(const pml_node *n, const pml_shape *in)
{
    if (n->a.global) return (double)pml_shape_size(in[0]);
    return (double)pml_shape_size(n->out) * n->a.kh * n->a.kw * (n->a.depth > 0 ? n->a.kd : 1);
}

double pml__maxpool2d_flops(const pml_node *n, const pml_shape *in, int nin)
{
    (void)nin;
    return pool_flops(n, in);
}

double pml__avgpool2d_flops(const pml_node *n, const pml_shape *in, int nin)
{
    (void)nin;
    return pool_flops(n, in) + (double)pml_shape_size(n->out);
}

size_t pml__maxpool2d_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    (void)n, (void)in, (void)nin, (void)r;
    return 0;
}

size_t pml__avgpool2d_ws(const pml_node *n, const pml_shape *in, int nin, pml_region r)
{
    (void)n, (void)in, (void)nin, (void)r;
    return 0;
}

/* ---------------------------------------------------------------- 3-D windows, fast */

/* The first cell >= lo of lo + k * step (k >= 0): a dilated window's first row or column
 * inside the input. */
static inline int first_in(int lo, int step)
{
    return lo >= 0 ? lo : lo + (-lo + step - 1) / step * step;
}

/* Offset in a channel's D*H*W cells of the first maximum (planes, rows, columns in order) of 3-D
 * window (plane od, row i, column j), or -1 when a dilated window misses the input. */
static long max_index3(const pgeom *g, const float *xc, int od, int i, int j)
{
    const int zs = od * g->sd - g->pf, ys = i * g->sh - g->pt, xs = j * g->sw - g->pl;
    long best = -1;
    float m = -INFINITY;
    for (int iz = first_in(zs, g->dd); iz < imin(zs + (g->kd - 1) * g->dd + 1, g->D); iz += g->dd)
        for (int iy = first_in(ys, g->dh); iy < imin(ys + (g->kh - 1) * g->dh + 1, g->Hp);
             iy += g->dh) {
            const long row = ((long)iz * g->Hp + iy) * g->W;
            for (int ix = first_in(xs, g->dw); ix < imin(xs + (g->kw - 1) * g->dw + 1, g->W);
                 ix += g->dw)
                if (best < 0 || xc[row + ix] > m) {
                    m = xc[row + ix];
                    best = row + ix;
                }
        }
    return best;
}

/* The cells of 3-D window (od, i, j) an average divides by. */
static float avg_div3(const pgeom *g, int od, int i, int j)
{
    const int zs = od * g->sd - g->pf, ys = i * g->sh - g->pt, xs = j * g->sw - g->pl;
    if (g->count_pad)
        return (float)(imin(zs + g->kd, g->dlim) - zs) * (float)(imin(ys + g->kh, g->hlim) - ys) *
               (float)(imin(xs + g->kw, g->wlim) - xs);
    return (float)(imin(zs + g->kd, g->D) - imax(zs, 0)) *
           (float)(imin(ys + g->kh, g->Hp) - imax(ys, 0)) *
           (float)(imin(xs + g->kw, g->W) - imax(xs, 0));
}

/* 3-D pooling of region r: forward (dx NULL) or backward; max or average */
static void pool3(const pml_kctx *k, const pgeom *g, bool max, bool bwd)
{
    const pml_region r = k->r;
    const size_t plane = (size_t)g->H * g->W, oplane = (size_t)g->Ho * g->Wo;
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++) {
            const size_t xo = ((size_t)s * g->C + c) * plane, yo = ((size_t)s * g->C + c) * oplane;
            const float *xc = k->x[0] + xo;
            for (int i = r.h0; i < r.h1; i++) {
                const int od = i / g->Hop, io = i % g->Hop;
                for (int j = 0; j < g->Wo; j++) {
                    const size_t yi = yo + (size_t)i * g->Wo + j;
                    if (max) {
                        const long at = max_index3(g, xc, od, io, j);
                        if (!bwd)
                            k->y[yi] = at >= 0 ? xc[at] : -INFINITY;
                        else if (at >= 0)
                            k->dx[0][xo + (size_t)at] += k->dy[yi];
                        continue;
                    }
                    const int zs = od * g->sd - g->pf, ys = io * g->sh - g->pt;
                    const int xs = j * g->sw - g->pl;
                    const float div = avg_div3(g, od, io, j);
                    const float d = bwd ? k->dy[yi] / div : 0.0f;
                    float acc = 0;
                    for (int iz = imax(zs, 0); iz < imin(zs + g->kd, g->D); iz++)
                        for (int iy = imax(ys, 0); iy < imin(ys + g->kh, g->Hp); iy++) {
                            const size_t row = ((size_t)iz * g->Hp + iy) * g->W;
                            for (int ix = imax(xs, 0); ix < imin(xs + g->kw, g->W); ix++) {
                                if (bwd)
                                    k->dx[0][xo + row + ix] += d;
                                else
                                    acc += xc[row + ix];
                            }
                        }
                    if (!bwd) k->y[yi] = acc / div;
                }
            }
        }
}

/* ---------------------------------------------------------------- maxpool, fast */


/* Index (iy*W + ix) of the first maximum of dilated window (i, j), or -1 when it misses the input. */
static int max_index_dilated(const pgeom *g, const float *xc, int i, int j)
{
    const int ys = i * g->sh - g->pt, xs = j * g->sw - g->pl;
    const int y1 = imin(ys + (g->kh - 1) * g->dh + 1, g->H), x1 = imin(xs + (g->kw - 1) * g->dw + 1, g->W);
    int best = -1;
    float m = -INFINITY;
    for (int iy = first_in(ys, g->dh); iy < y1; iy += g->dh)
        for (int ix = first_in(xs, g->dw); ix < x1; ix += g->dw)
            if (best < 0 || xc[iy * g->W + ix] > m) {
                m = xc[iy * g->W + ix];
                best = iy * g->W + ix;
            }
    return best;
}

/* Index (iy*W + ix) of the first maximum of window (i, j) of one channel plane, clipped (-1: a
 * dilated window that misses the input). */
static inline int max_index(const pgeom *g, const float *xc, int i, int j)
{
    if (g->dh > 1 || g->dw > 1) return max_index_dilated(g, xc, i, j);
    int y0 = imax(i * g->sh - g->pt, 0), y1 = imin(i * g->sh - g->pt + g->kh, g->H);
    int x0 = imax(j * g->sw - g->pl, 0), x1 = imin(j * g->sw - g->pl + g->kw, g->W);
    int best = y0 * g->W + x0;
    float m = -INFINITY;
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++)
            if (xc[iy * g->W + ix] > m) {
                m = xc[iy * g->W + ix];
                best = iy * g->W + ix;
            }
    return best;
}

/* \return v when on is 1, +0 when 0, without a branch. */
static inline float masked(float v, unsigned on)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u &= 0u - on;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* The 2x2 stride-2 unpadded case covers windows (i, j) with i < H/2, j < W/2 completely. */
static inline bool is_k2s2(const pgeom *g)
{
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->pt == 0 && g->pl == 0 &&
           g->dh == 1 && g->dw == 1;
}

/* ---------------------------------------------------------------- 2x2 rows, AVX-512
 *
 * A row of 2x2 windows: 16 windows a vector, the last vector masked. Compilers vectorise the
 * loops below (16 or 8 windows at once) but finish a row in scalar code, and fashion-cnn's rows
 * are 13 and 5 windows long: its first pool's backward ran 12% of a step. The AVX-512 form takes
 * a short row in one masked vector (masked loads do not touch the lanes left out): `pml bench
 * kernels`, fashion-cnn's first pool backward 0.20-0.27 ms against 0.68-1.07. Rows of 16 windows
 * or more keep the compiled loops (flowers-cnn's rows of 45 and 90 ran 5-20% slower with their
 * masked last vector). The same order of comparisons as the loops, so the same maxima, the same
 * first maximum, NaN alike. */
#if PML_POOL_AVX512
#define AVX512_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), noinline))

/* the CPU runs PML_HOT's x86-64-v4 clones (AVX-512 F, BW, DQ, VL) */
static bool pool_avx512(void)
{
    return strcmp(pml_kernels_isa(), "x86-64-v4") == 0;
}

/* masks of the first w windows (w <= 16): the window lanes, the lanes of the 32 cells in two */
static inline void lane_masks(int w, __mmask16 *win, __mmask16 *lo, __mmask16 *hi)
{
    *win = (__mmask16)((1u << w) - 1u);
    *lo = (__mmask16)(w >= 8 ? 0xffffu : (1u << (2 * w)) - 1u);
    *hi = (__mmask16)(w > 8 ? (1u << (2 * w - 16)) - 1u : 0u);
}

/* the windows' four cells (a0 a1 / b0 b1) of w windows from rows a and b */
#define LOAD_CELLS(a, b, lo, hi, a0, a1, b0, b1)                                                  \
    do {                                                                                           \
        const __m512 al = _mm512_maskz_loadu_ps(lo, a), ah = _mm512_maskz_loadu_ps(hi, (a) + 16); \
        const __m512 bl = _mm512_maskz_loadu_ps(lo, b), bh = _mm512_maskz_loadu_ps(hi, (b) + 16); \
        a0 = _mm512_permutex2var_ps(al, even, ah);                                                 \
        a1 = _mm512_permutex2var_ps(al, odd, ah);                                                  \
        b0 = _mm512_permutex2var_ps(bl, even, bh);                                                 \
        b1 = _mm512_permutex2var_ps(bl, odd, bh);                                                  \
    } while (0)

/* max as the loops take it: m = a0, then m = c > m ? c : m for a1, b0, b1 */
#define WINDOW_MAX(a0, a1, b0, b1)                                                                 \
    _mm512_max_ps(b1, _mm512_max_ps(b0, _mm512_max_ps(a1, a0)))

#define PERM_IDX                                                                                   \
    const __m512i even =                                                                           \
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);              \
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1)

/* 16 windows from j on (masks all ones: plain loads and stores once inlined), or the last w */
#define AVX512_INLINE __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), always_inline))

AVX512_INLINE static inline void fwd16(const float *a, const float *b, float *y, __mmask16 win,
                                       __mmask16 lo, __mmask16 hi)
{
    PERM_IDX;
    __m512 a0, a1, b0, b1;
    LOAD_CELLS(a, b, lo, hi, a0, a1, b0, b1);
    _mm512_mask_storeu_ps(y, win, WINDOW_MAX(a0, a1, b0, b1));
}

AVX512_TARGET static void k2s2_fwd_row_avx512(const float *a, const float *b, float *y, int n)
{
    int j = 0;
    for (; j + 16 <= n; j += 16) fwd16(a + 2 * j, b + 2 * j, y + j, 0xffff, 0xffff, 0xffff);
    if (j < n) {
        __mmask16 win, lo, hi;
        lane_masks(n - j, &win, &lo, &hi);
        fwd16(a + 2 * j, b + 2 * j, y + j, win, lo, hi);
    }
}

/* dy of each window added to its first maximal cell in da (row a) and db (row b) */
AVX512_INLINE static inline void bwd16(const float *a, const float *b, const float *dy, float *pa,
                                       float *pb, __mmask16 win, __mmask16 lo, __mmask16 hi)
{
    PERM_IDX;
    /* interleaving two vectors of windows back into cells: low and high halves */
    const __m512i il = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i ih =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    __m512 a0, a1, b0, b1;
    LOAD_CELLS(a, b, lo, hi, a0, a1, b0, b1);
    const __m512 m = WINDOW_MAX(a0, a1, b0, b1);
    const __m512 d = _mm512_maskz_loadu_ps(win, dy);
    /* in mask registers throughout (a detour through integer registers cost 15%) */
    const __mmask16 s0 = _mm512_cmp_ps_mask(a0, m, _CMP_EQ_OQ);
    const __mmask16 s1 = _mm512_mask_cmp_ps_mask(_knot_mask16(s0), a1, m, _CMP_EQ_OQ);
    const __mmask16 s01 = _kor_mask16(s0, s1);
    const __mmask16 s2 = _mm512_mask_cmp_ps_mask(_knot_mask16(s01), b0, m, _CMP_EQ_OQ);
    const __mmask16 s3 = _knot_mask16(_kor_mask16(s01, s2));
    const __m512 c0 = _mm512_maskz_mov_ps(s0, d), c1 = _mm512_maskz_mov_ps(s1, d);
    const __m512 c2 = _mm512_maskz_mov_ps(s2, d), c3 = _mm512_maskz_mov_ps(s3, d);
    _mm512_mask_storeu_ps(pa, lo, _mm512_add_ps(_mm512_maskz_loadu_ps(lo, pa),
                                                _mm512_permutex2var_ps(c0, il, c1)));
    _mm512_mask_storeu_ps(pa + 16, hi, _mm512_add_ps(_mm512_maskz_loadu_ps(hi, pa + 16),
                                                     _mm512_permutex2var_ps(c0, ih, c1)));
    _mm512_mask_storeu_ps(pb, lo, _mm512_add_ps(_mm512_maskz_loadu_ps(lo, pb),
                                                _mm512_permutex2var_ps(c2, il, c3)));
    _mm512_mask_storeu_ps(pb + 16, hi, _mm512_add_ps(_mm512_maskz_loadu_ps(hi, pb + 16),
                                                     _mm512_permutex2var_ps(c2, ih, c3)));
}

AVX512_TARGET static void k2s2_bwd_row_avx512(const float *a, const float *b, const float *dy,
                                              float *da, float *db, int n)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        bwd16(a + 2 * j, b + 2 * j, dy + j, da + 2 * j, db + 2 * j, 0xffff, 0xffff, 0xffff);
    if (j < n) {
        __mmask16 win, lo, hi;
        lane_masks(n - j, &win, &lo, &hi);
        bwd16(a + 2 * j, b + 2 * j, dy + j, da + 2 * j, db + 2 * j, win, lo, hi);
    }
}
#undef LOAD_CELLS
#undef WINDOW_MAX
#undef PERM_IDX
#endif

// x (N,C,H,W) -> y (N,C,Ho,Wo) on region r
PML_HOT void pml__maxpool2d_fwd(const pml_kctx *k)
{
    const pml_region r = k->r;
    pgeom g = pgeom_of(k->node, k->xs[0]);
    if (g.d3) {
        pool3(k, &g, true, false);
        return;
    }
    const bool k2 = is_k2s2(&g);
#if PML_POOL_AVX512
    const bool avx512 = k2 && g.W / 2 < 16 && pool_avx512(); /* short rows: see above */
#endif
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++) {
            const float *xc = k->x[0] + ((size_t)s * g.C + c) * g.H * g.W;
            float *yc = k->y + ((size_t)s * g.C + c) * g.Ho * g.Wo;
            for (int i = r.h0; i < r.h1; i++) {
                float *yr = yc + (size_t)i * g.Wo;
                int jfull = 0;
                if (k2 && 2 * i + 1 < g.H) {
                    const float *a = xc + (size_t)(2 * i) * g.W, *b = a + g.W;
                    jfull = imin(g.Wo, g.W / 2);
#if PML_POOL_AVX512
                    if (avx512)
                        k2s2_fwd_row_avx512(a, b, yr, jfull);
                    else
#endif
                    for (int j = 0; j < jfull; j++) {
                        float m = a[2 * j];
                        m = a[2 * j + 1] > m ? a[2 * j + 1] : m;
                        m = b[2 * j] > m ? b[2 * j] : m;
                        m = b[2 * j + 1] > m ? b[2 * j + 1] : m;
                        yr[j] = m;
                    }
                }
                for (int j = jfull; j < g.Wo; j++) {
                    const int at = max_index(&g, xc, i, j);
                    yr[j] = at >= 0 ? xc[at] : -INFINITY;
                }
            }
        }
}

// dy (N,C,Ho,Wo) on region r -> dx (N,C,H,W), accumulated at each window's first maximum
PML_HOT void pml__maxpool2d_bwd(const pml_kctx *k)
{
    const pml_region r = k->r;
    if (!k->dx[0]) return;
    pgeom g = pgeom_of(k->node, k->xs[0]);
    if (g.d3) {
        pool3(k, &g, true, true);
        return;
    }
    const bool k2 = is_k2s2(&g);
#if PML_POOL_AVX512
    const bool avx512 = k2 && g.W / 2 < 16 && pool_avx512(); /* short rows: see above */
#endif
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++) {
            size_t xo = ((size_t)s * g.C + c) * g.H * g.W;
            const float *xc = k->x[0] + xo;
            float *dxc = k->dx[0] + xo;
            const float *dyc = k->dy + ((size_t)s * g.C + c) * g.Ho * g.Wo;
            for (int i = r.h0; i < r.h1; i++) {
                const float *dyr = dyc + (size_t)i * g.Wo;
                int jfull = 0;
                if (k2 && 2 * i + 1 < g.H) {
                    /* branch-free (ties and random maxima defeat branch prediction): the first
                     * cell equal to the window's maximum takes dy */
                    const float *a = xc + (size_t)(2 * i) * g.W, *b = a + g.W;
                    float *da = dxc + (size_t)(2 * i) * g.W, *db = da + g.W;
                    jfull = imin(g.Wo, g.W / 2);
#if PML_POOL_AVX512
                    if (avx512)
                        k2s2_bwd_row_avx512(a, b, dyr, da, db, jfull);
                    else
#endif
                    for (int j = 0; j < jfull; j++) {
                        float a0 = a[2 * j], a1 = a[2 * j + 1], b0 = b[2 * j], b1 = b[2 * j + 1];
                        float m = a0;
                        m = a1 > m ? a1 : m;
                        m = b0 > m ? b0 : m;
                        m = b1 > m ? b1 : m;
                        const float d = dyr[j];
                        const unsigned s0 = a0 == m, s1 = !s0 & (a1 == m);
                        const unsigned s2 = !(s0 | s1) & (b0 == m), s3 = !(s0 | s1 | s2);
                        da[2 * j] += masked(d, s0);
                        da[2 * j + 1] += masked(d, s1);
                        db[2 * j] += masked(d, s2);
                        db[2 * j + 1] += masked(d, s3);
                    }
                }
                for (int j = jfull; j < g.Wo; j++) {
                    const int at = max_index(&g, xc, i, j);
                    if (at >= 0) dxc[at] += dyr[j];
                }
            }
        }
}

/* ---------------------------------------------------------------- avgpool, fast */

/* Divisor of window (i, j). */
static inline float avg_div(const pgeom *g, int i, int j)
{
    int ys = i * g->sh - g->pt, xs = j * g->sw - g->pl;
    if (g->count_pad)
        return (float)((imin(ys + g->kh, g->hlim) - ys) * (imin(xs + g->kw, g->wlim) - xs));
    return (float)((imin(ys + g->kh, g->H) - imax(ys, 0)) * (imin(xs + g->kw, g->W) - imax(xs, 0)));
}

// x (N,C,H,W) -> y (N,C,Ho,Wo) on region r
PML_HOT void pml__avgpool2d_fwd(const pml_kctx *k)
{
    const pml_region r = k->r;
    pgeom g = pgeom_of(k->node, k->xs[0]);
    if (g.d3) {
        pool3(k, &g, false, false);
        return;
    }
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++) {
            const float *xc = k->x[0] + ((size_t)s * g.C + c) * g.H * g.W;
            float *yc = k->y + ((size_t)s * g.C + c) * g.Ho * g.Wo;
            for (int i = r.h0; i < r.h1; i++) {
                int y0 = imax(i * g.sh - g.pt, 0), y1 = imin(i * g.sh - g.pt + g.kh, g.H);
                for (int j = 0; j < g.Wo; j++) {
                    int x0 = imax(j * g.sw - g.pl, 0), x1 = imin(j * g.sw - g.pl + g.kw, g.W);
                    float acc = 0;
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) acc += xc[(size_t)iy * g.W + ix];
                    yc[(size_t)i * g.Wo + j] = acc / avg_div(&g, i, j);
                }
            }
        }
}

// dy (N,C,Ho,Wo) on region r -> dx (N,C,H,W), accumulated
PML_HOT void pml__avgpool2d_bwd(const pml_kctx *k)
{
    const pml_region r = k->r;
    if (!k->dx[0]) return;
    pgeom g = pgeom_of(k->node, k->xs[0]);
    if (g.d3) {
        pool3(k, &g, false, true);
        return;
    }
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++) {
            float *dxc = k->dx[0] + ((size_t)s * g.C + c) * g.H * g.W;
            const float *dyc = k->dy + ((size_t)s * g.C + c) * g.Ho * g.Wo;
            for (int i = r.h0; i < r.h1; i++) {
                int y0 = imax(i * g.sh - g.pt, 0), y1 = imin(i * g.sh - g.pt + g.kh, g.H);
                for (int j = 0; j < g.Wo; j++) {
                    int x0 = imax(j * g.sw - g.pl, 0), x1 = imin(j * g.sw - g.pl + g.kw, g.W);
                    float d = dyc[(size_t)i * g.Wo + j] / avg_div(&g, i, j);
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) dxc[(size_t)iy * g.W + ix] += d;
                }
            }
        }
}

/* ---------------------------------------------------------------- reference kernels */

/* Visits every cell of window (i, j) of the padded input; padded cells have iz, iy or ix outside
 * the input. Naive on purpose: no clipping arithmetic shared with the fast kernels. Output row
 * i is row i % Hop of plane i / Hop (2-D: one plane). */

// x (N,C,H,W) -> y (N,C,Ho,Wo)
void pml__maxpool2d_fwd_ref(const pml_kctx *k)
{
    const pml_region r = k->r;
    pgeom g = pgeom_of(k->node, k->xs[0]);
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++)
            for (int i = r.h0; i < r.h1; i++)
                for (int j = 0; j < g.Wo; j++) {
                    float m = -INFINITY;
                    for (int e = 0; e < g.kd; e++)
                    for (int p = 0; p < g.kh; p++)
                        for (int q = 0; q < g.kw; q++) {
                            int iz = i / g.Hop * g.sd - g.pf + e * g.dd;
                            int iy = i % g.Hop * g.sh - g.pt + p * g.dh, ix = j * g.sw - g.pl + q * g.dw;
                            if (iz < 0 || iz >= g.D || iy < 0 || iy >= g.Hp || ix < 0 || ix >= g.W)
                                continue;
                            float v = k->x[0][(((size_t)s * g.C + c) * g.H + iz * g.Hp + iy) * g.W +
                                              ix];
                            if (v > m) m = v;
                        }
                    k->y[(((size_t)s * g.C + c) * g.Ho + i) * g.Wo + j] = m;
                }
}

// dy (N,C,Ho,Wo) -> dx (N,C,H,W), accumulated
void pml__maxpool2d_bwd_ref(const pml_kctx *k)
{
    const pml_region r = k->r;
    if (!k->dx[0]) return;
    pgeom g = pgeom_of(k->node, k->xs[0]);
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++)
            for (int i = r.h0; i < r.h1; i++)
                for (int j = 0; j < g.Wo; j++) {
                    float m = -INFINITY;
                    size_t at = (size_t)-1;
                    for (int e = 0; e < g.kd; e++)
                    for (int p = 0; p < g.kh; p++)
                        for (int q = 0; q < g.kw; q++) {
                            int iz = i / g.Hop * g.sd - g.pf + e * g.dd;
                            int iy = i % g.Hop * g.sh - g.pt + p * g.dh, ix = j * g.sw - g.pl + q * g.dw;
                            if (iz < 0 || iz >= g.D || iy < 0 || iy >= g.Hp || ix < 0 || ix >= g.W)
                                continue;
                            size_t xi = (((size_t)s * g.C + c) * g.H + iz * g.Hp + iy) * g.W + ix;
                            if (at == (size_t)-1 || k->x[0][xi] > m) {
                                m = k->x[0][xi];
                                at = xi;
                            }
                        }
                    if (at != (size_t)-1)
                        k->dx[0][at] += k->dy[(((size_t)s * g.C + c) * g.Ho + i) * g.Wo + j];
                }
}

void pml_maxpool2d_indices(const pml_node *node, pml_shape in, const float *x, int n,
                           int64_t first, bool column_major, int64_t *idx)
{
    pgeom g = pgeom_of(node, in);
    const int64_t plane = (int64_t)g.H * g.W;
    for (int s = 0; s < n; s++)
        for (int c = 0; c < g.C; c++) {
            const float *xc = x + ((size_t)s * g.C + c) * (size_t)plane;
            const int64_t base = ((first + s) * g.C + c) * plane;
            int64_t *yc = idx + ((size_t)s * g.C + c) * (size_t)g.Ho * g.Wo;
            for (int i = 0; i < g.Ho; i++)
                for (int j = 0; j < g.Wo; j++) {
                    const int at = max_index(&g, xc, i, j);
                    yc[i * g.Wo + j] = at < 0                ? -1
                                       : !column_major ? base + at
                                                       : base + (int64_t)(at % g.W) * g.H + at / g.W;
                }
        }
}

/* Divisor by counting: real cells, or with count_pad cells inside the nominally padded input. */
static int avg_count_ref(const pgeom *g, int i, int j)
{
    int cnt = 0;
    for (int e = 0; e < g->kd; e++)
    for (int p = 0; p < g->kh; p++)
        for (int q = 0; q < g->kw; q++) {
            int iz = i / g->Hop * g->sd - g->pf + e;
            int iy = i % g->Hop * g->sh - g->pt + p, ix = j * g->sw - g->pl + q;
            if (g->count_pad) /* iz >= -pf, iy >= -pt, ix >= -pl always */
                cnt += iz < g->dlim && iy < g->hlim && ix < g->wlim;
            else
                cnt += iz >= 0 && iz < g->D && iy >= 0 && iy < g->Hp && ix >= 0 && ix < g->W;
        }
    return cnt;
}

// x (N,C,H,W) -> y (N,C,Ho,Wo)
void pml__avgpool2d_fwd_ref(const pml_kctx *k)
{
    const pml_region r = k->r;
    pgeom g = pgeom_of(k->node, k->xs[0]);
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++)
            for (int i = r.h0; i < r.h1; i++)
                for (int j = 0; j < g.Wo; j++) {
                    double acc = 0;
                    for (int e = 0; e < g.kd; e++)
                    for (int p = 0; p < g.kh; p++)
                        for (int q = 0; q < g.kw; q++) {
                            int iz = i / g.Hop * g.sd - g.pf + e;
                            int iy = i % g.Hop * g.sh - g.pt + p, ix = j * g.sw - g.pl + q;
                            if (iz < 0 || iz >= g.D || iy < 0 || iy >= g.Hp || ix < 0 || ix >= g.W)
                                continue;
                            acc += k->x[0][(((size_t)s * g.C + c) * g.H + iz * g.Hp + iy) * g.W +
                                           ix];
                        }
                    k->y[(((size_t)s * g.C + c) * g.Ho + i) * g.Wo + j] =
                        (float)(acc / avg_count_ref(&g, i, j));
                }
}

// dy (N,C,Ho,Wo) -> dx (N,C,H,W), accumulated
void pml__avgpool2d_bwd_ref(const pml_kctx *k)
{
    const pml_region r = k->r;
    if (!k->dx[0]) return;
    pgeom g = pgeom_of(k->node, k->xs[0]);
    for (int s = r.n0; s < r.n1; s++)
        for (int c = r.c0; c < r.c1; c++)
            for (int i = r.h0; i < r.h1; i++)
                for (int j = 0; j < g.Wo; j++) {
                    float d = k->dy[(((size_t)s * g.C + c) * g.Ho + i) * g.Wo + j] /
                              (float)avg_count_ref(&g, i, j);
                    for (int e = 0; e < g.kd; e++)
                    for (int p = 0; p < g.kh; p++)
                        for (int q = 0; q < g.kw; q++) {
                            int iz = i / g.Hop * g.sd - g.pf + e;
                            int iy = i % g.Hop * g.sh - g.pt + p, ix = j * g.sw - g.pl + q;
                            if (iz < 0 || iz >= g.D || iy < 0 || iy >= g.Hp || ix < 0 || ix >= g.W)
                                continue;
                            k->dx[0][(((size_t)s * g.C + c) * g.H + iz * g.Hp + iy) * g.W + ix] += d;
                        }
                }
}
