/* pml — charts for the command line (cairo): line charts with error bars, as SVG or PNG.
 *
 * A figure is drawn once with cairo on an SVG surface (in points) or an image surface (in
 * pixels), its bytes gathered in memory and written atomically. A panel is laid out in two
 * passes: its axes for a legend inside the plot area, then, when every corner of that area
 * would cover data, again with room for the legend below the axes. */
#include "plot.h"

#include <cairo.h>
#include <cairo-svg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    MAX_TICKS = 64,  /* per axis */
    TEXT_CAP = 1024, /* bytes of a text drawn (longer ones are cut, with an ellipsis) */
};

/* Sizes in the surface's units (pixels, points) */
#define FONT_FIGURE 15.0 /* the overall title (bold) */
#define FONT_TITLE 13.0  /* a panel's title */
#define FONT_LABEL 11.5  /* axis labels */
#define FONT_TICK 10.0   /* tick labels and the legend */
#define TICK_LEN 4.0
#define LINE_W 1.5
#define CAP_HALF 4.0      /* an error bar's cap: half its width */
#define LEG_SAMPLE 22.0   /* a legend entry's line sample */
#define LEG_ROW 16.0      /* a legend row */
#define LEG_PAD 6.0       /* inside the legend's box, and between it and the axes */
#define LEG_COL_GAP 14.0  /* between entries of a legend below the axes */

/* Okabe and Ito's palette, safe for the common colour blindnesses: blue, orange, bluish green,
 * vermillion, reddish purple, sky blue, black, yellow */
static const double palette[][3] = {
    {0.000, 0.447, 0.698}, {0.902, 0.624, 0.000}, {0.000, 0.620, 0.451},
    {0.835, 0.369, 0.000}, {0.800, 0.475, 0.655}, {0.337, 0.706, 0.914},
    {0.000, 0.000, 0.000}, {0.941, 0.894, 0.259},
};
#define NCOLOURS (int)(sizeof palette / sizeof palette[0])
enum { MARKER_CIRCLE, MARKER_SQUARE, MARKER_TRIANGLE, MARKER_DIAMOND, NMARKERS };

bool plot_name_ok(const char *path)
{
    const size_t n = path ? strlen(path) : 0;
    return n > 4 && path[n - 5] != '/' &&
           (strcasecmp(path + n - 4, ".svg") == 0 || strcasecmp(path + n - 4, ".png") == 0);
}

/* ---------------------------------------------------------------- bytes in memory */

typedef struct membuf {
    unsigned char *p;
    size_t len, cap;
    bool failed; /* out of memory */
} membuf;

static bool mb_put(membuf *b, const void *data, size_t len)
{
    if (b->failed) return false;
    if (len > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap - b->len < len) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return true;
}

static bool mb_str(membuf *b, const char *s)
{
    return mb_put(b, s, strlen(s));
}

static cairo_status_t mb_write(void *closure, const unsigned char *data, unsigned int len)
{
    return mb_put(closure, data, len) ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

/* ---------------------------------------------------------------- text */

static void font(cairo_t *cr, double size, bool bold)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_w(cairo_t *cr, const char *s)
{
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

/* Sets buf (TEXT_CAP bytes) to s as text to draw: escaped as for a terminal (pml_escape: valid
 * UTF-8 without controls) and, when wider than maxw in the current font (or cut to fit buf),
 * cut at a character with an ellipsis; only the ellipsis is left when not even a character
 * fits. \return its width. */
static double fit_text(cairo_t *cr, const char *s, double maxw, char *buf)
{
    static const char ellipsis[] = "\xe2\x80\xa6"; /* U+2026 */
    const size_t len = pml_escape(buf, TEXT_CAP - sizeof ellipsis, s ? s : "");
    const bool cut = len + 8 >= TEXT_CAP - sizeof ellipsis; /* maybe: the longest escape is 6 */
    double w = text_w(cr, buf);
    if (!cut && w <= maxw) return w;
    /* the longest prefix of whole characters that fits with the ellipsis: a binary search over
     * the characters' offsets */
    unsigned short off[TEXT_CAP];
    int nc = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)buf[i] & 0xc0) != 0x80) off[nc++] = (unsigned short)i;
    off[nc] = (unsigned short)len;
    char tmp[TEXT_CAP];
    int lo = 0, hi = cut ? nc : nc - 1; /* prefixes of lo characters fit (or lo = 0) */
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        memcpy(tmp, buf, off[mid]);
        memcpy(tmp + off[mid], ellipsis, sizeof ellipsis);
        if (text_w(cr, tmp) <= maxw)
            lo = mid;
        else
            hi = mid - 1;
    }
    memcpy(buf + off[lo], ellipsis, sizeof ellipsis);
    return text_w(cr, buf);
}

/* Draws s with its baseline at y, x at its left (align 0), centre (0.5) or right (1). */
static void text_at(cairo_t *cr, double x, double y, double align, const char *s)
{
    cairo_move_to(cr, x - align * text_w(cr, s), y);
    cairo_show_text(cr, s);
}

/* fit_text, then text_at */
static void fit_text_at(cairo_t *cr, double x, double y, double align, double maxw, const char *s)
{
    char buf[TEXT_CAP];
    fit_text(cr, s, maxw, buf);
    text_at(cr, x, y, align, buf);
}

static void ink(cairo_t *cr, double grey)
{
    cairo_set_source_rgb(cr, grey, grey, grey);
}

/* ---------------------------------------------------------------- axes */

typedef struct axis {
    bool log;       /* the units below are log2 of the data's */
    double lo, hi;  /* the range shown */
    int n;          /* ticks */
    double at[MAX_TICKS];
    char label[MAX_TICKS][32];
} axis;

/* a value that can be placed: finite and not beyond what the layout's sums can take */
static bool usable(double v)
{
    return isfinite(v) && fabs(v) <= 1e300;
}

/* The range shown for values from lo to hi (in the axis's units; any: there are some): padded by
 * 5% on each side; a single value by 10% of it (1 for 0 and values near it; a factor of 2 on a
 * log axis); none as [0, 1]. Ranges below 1e-280 count as a single value: the ticks' steps stay
 * normal numbers. */
static void axis_range(axis *a, bool any, double lo, double hi)
{
    if (!any) {
        lo = 0;
        hi = 1;
    } else if (hi - lo <= fmax(1e-9 * fmax(fabs(lo), fabs(hi)), 1e-280)) { /* one value */
        const double mid = lo / 2 + hi / 2, d = a->log || fabs(mid) < 1e-270 ? 1 : 0.1 * fabs(mid);
        lo = mid - d;
        hi = mid + d;
    } else {
        const double pad = 0.05 * (hi - lo);
        lo -= pad;
        hi += pad;
    }
    a->lo = lo;
    a->hi = hi;
}

/* Formats v as "%.*g" with the exponent short: 2.5e6, 1e-7 (not 2.5e+06, 1e-07) */
static void short_exp(char *buf, size_t cap, int digits, double v)
{
    snprintf(buf, cap, "%.*g", digits, v);
    char *e = strchr(buf, 'e');
    if (!e) return;
    char *d = e + 1, *q = e + 1;
    if (*q == '+') q++;
    else if (*q == '-') *d++ = *q++;
    while (*q == '0' && q[1]) q++;
    memmove(d, q, strlen(q) + 1);
}

/* Ticks at the multiples of a 1-2-5 step (the smallest giving at most max ticks) in the range,
 * labelled with the decimals the step needs. */
static void ticks_nice(axis *a, int max)
{
    const double span = a->hi - a->lo, mag = pow(10, floor(log10(span / max)));
    static const double mult[] = {1, 2, 5, 10, 20, 50};
    double step = 0, k0 = 0, k1 = -1;
    for (int i = 0; i < (int)(sizeof mult / sizeof mult[0]); i++) {
        step = mult[i] * mag;
        k0 = ceil(a->lo / step - 1e-9); /* 3.3 / 0.1 is 32.99... */
        k1 = floor(a->hi / step + 1e-9);
        if (k1 - k0 + 1 <= max) break;
    }
    const double top = fmax(fabs(a->lo), fabs(a->hi));
    const int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    const bool sci = top >= 1e6 || decimals > 5;
    const int digits = (int)fmin(15, fmax(1, floor(log10(top)) - floor(log10(step)) + 1));
    a->n = 0;
    for (double k = k0; k <= k1 && a->n < MAX_TICKS; k++) {
        double v = k * step;
        if (fabs(v) < 1e-9 * step) v = 0; /* not -0 or 1e-17 */
        a->at[a->n] = v;
        if (sci)
            short_exp(a->label[a->n], sizeof a->label[0], digits, v);
        else
            snprintf(a->label[a->n], sizeof a->label[0], "%.*f", decimals, v);
        a->n++;
    }
}

/* Ticks at every stride-th of the distinct values v[0..nv) (ascending, in data units) */
static void ticks_at(axis *a, const double *v, int nv, int stride)
{
    a->n = 0;
    for (int i = 0; i < nv && a->n < MAX_TICKS; i += stride) {
        a->at[a->n] = a->log ? log2(v[i]) : v[i];
        snprintf(a->label[a->n], sizeof a->label[0], "%.6g", v[i]);
        a->n++;
    }
}

/* ---------------------------------------------------------------- a panel */

typedef struct chart {
    const plot_panel *p;
    double left, top, w, h; /* the panel in the figure */
    double *xs;             /* the distinct usable x values, ascending (data units) */
    int nxs;
    bool anyy;              /* a usable y value or error bar end, from ymin to ymax */
    double ymin, ymax;
    axis x, y;
    double x0, y0, x1, y1; /* the plot area */
    /* the legend: its entries (series with a label); inside: its box at (lx, ly); or below the
     * axes: ncol columns of width lcolw, nrows rows (lmore entries left out) */
    int nleg;
    bool below;
    double lx, ly, lw, lh, lcolw, lmaxw;
    int ncol, nrows, lmore;
} chart;

static double map_x(const chart *c, double v)
{
    const double u = c->x.log ? log2(v) : v;
    return c->x0 + (u - c->x.lo) / (c->x.hi - c->x.lo) * (c->x1 - c->x0);
}

static double map_y(const chart *c, double v)
{
    return c->y1 - (v - c->y.lo) / (c->y.hi - c->y.lo) * (c->y1 - c->y0);
}

static bool usable_x(const chart *c, double v)
{
    return usable(v) && (!c->x.log || v > 0);
}

/* Point i of series s on the surface: false when it is a gap */
static bool point(const chart *c, const plot_series *s, int i, double *x, double *y)
{
    if (!usable_x(c, s->x[i]) || !usable(s->y[i])) return false;
    *x = map_x(c, s->x[i]);
    *y = map_y(c, s->y[i]);
    return true;
}

/* Point i's error bar on the surface: false when it has none */
static bool bar(const chart *c, const plot_series *s, int i, double *x, double *ylo, double *yhi)
{
    if (!s->ylo || !s->yhi || !usable_x(c, s->x[i]) || !usable(s->ylo[i]) || !usable(s->yhi[i]))
        return false;
    *x = map_x(c, s->x[i]);
    *ylo = map_y(c, s->ylo[i]);
    *yhi = map_y(c, s->yhi[i]);
    return true;
}

static void take_y(chart *c, double v)
{
    c->ymin = c->anyy ? fmin(c->ymin, v) : v;
    c->ymax = c->anyy ? fmax(c->ymax, v) : v;
    c->anyy = true;
}

/* The panel's values: the distinct x in c->xs (malloc'd), the range of y. \return false when
 * out of memory. */
static bool gather(chart *c)
{
    size_t n = 0;
    for (int k = 0; k < c->p->nseries; k++) n += (size_t)c->p->s[k].n;
    if (!(c->xs = malloc((n ? n : 1) * sizeof *c->xs))) return false;
    c->nxs = 0;
    for (int k = 0; k < c->p->nseries; k++) {
        const plot_series *s = &c->p->s[k];
        for (int i = 0; i < s->n; i++) {
            if (!usable_x(c, s->x[i])) continue;
            c->xs[c->nxs++] = s->x[i];
            if (usable(s->y[i])) take_y(c, s->y[i]);
            if (s->ylo && s->yhi && usable(s->ylo[i]) && usable(s->yhi[i])) {
                take_y(c, s->ylo[i]);
                take_y(c, s->yhi[i]);
            }
        }
    }
    qsort(c->xs, (size_t)c->nxs, sizeof *c->xs, pml_cmp_double);
    int d = 0;
    for (int i = 0; i < c->nxs; i++)
        if (d == 0 || c->xs[i] != c->xs[d - 1]) c->xs[d++] = c->xs[i];
    c->nxs = d;
    return true;
}

/* true when the x ticks' labels keep a gap between neighbours and inside the panel */
static bool x_labels_fit(cairo_t *cr, const chart *c)
{
    double right = c->left + 2; /* the previous label's right end */
    for (int i = 0; i < c->x.n; i++) {
        const double w = text_w(cr, c->x.label[i]);
        const double at = c->x0 + (c->x.at[i] - c->x.lo) / (c->x.hi - c->x.lo) * (c->x1 - c->x0);
        if (at - w / 2 < right + 8) return false;
        right = at + w / 2;
    }
    return right <= c->left + c->w - 2;
}

/* Lays out the axes with `below` space under them for the legend: the plot area and the ticks */
static void layout(cairo_t *cr, chart *c, double below)
{
    const plot_panel *p = c->p;
    const bool title = p->title && p->title[0], xlabel = p->xlabel && p->xlabel[0];
    const bool ylabel = p->ylabel && p->ylabel[0];
    c->y0 = round(c->top + (title ? 30 : 12));
    c->y1 = round(c->top + c->h - (FONT_TICK + TICK_LEN + 8) - (xlabel ? FONT_LABEL + 8 : 0) -
                  below - 6);
    axis_range(&c->y, c->anyy, c->ymin, c->ymax);
    ticks_nice(&c->y, (int)fmax(2, fmin(MAX_TICKS - 2, (c->y1 - c->y0) / 35)));
    font(cr, FONT_TICK, false);
    double wmax = 0;
    for (int i = 0; i < c->y.n; i++) wmax = fmax(wmax, text_w(cr, c->y.label[i]));
    c->x0 = round(c->left + 8 + (ylabel ? FONT_LABEL + 8 : 0) + wmax + TICK_LEN + 4);
    c->x1 = round(c->left + c->w - 16);
    /* x: ticks at the data when asked and their labels have room (on a log axis: every other,
     * every third, ... until they have); else 1-2-5 ticks, as many as have room */
    const double xa = c->nxs ? c->xs[0] : 1, xb = c->nxs ? c->xs[c->nxs - 1] : 1;
    axis_range(&c->x, c->nxs > 0, c->x.log ? log2(xa) : xa, c->x.log ? log2(xb) : xb);
    if (c->x.log) { /* the last try: one tick */
        for (int stride = (c->nxs + MAX_TICKS - 1) / MAX_TICKS; stride <= c->nxs; stride++) {
            ticks_at(&c->x, c->xs, c->nxs, stride ? stride : 1);
            if (stride == 0 || x_labels_fit(cr, c)) break;
        }
        return;
    }
    if (p->xticks_at_data && c->nxs <= MAX_TICKS) {
        ticks_at(&c->x, c->xs, c->nxs, 1);
        if (x_labels_fit(cr, c)) return;
    }
    for (int max = (int)fmax(2, fmin(MAX_TICKS - 2, (c->x1 - c->x0) / 40)); max >= 2; max--) {
        ticks_nice(&c->x, max);
        if (x_labels_fit(cr, c)) break;
    }
}

/* true when the rectangle r (x0, y0, x1, y1) meets the segment from (ax, ay) to (bx, by)
 * (Liang and Barsky's clipping) */
static bool meets(const double r[4], double ax, double ay, double bx, double by)
{
    const double dx = bx - ax, dy = by - ay;
    const double p[4] = {-dx, dx, -dy, dy}, q[4] = {ax - r[0], r[2] - ax, ay - r[1], r[3] - ay};
    double t0 = 0, t1 = 1;
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return false;
            continue;
        }
        const double t = q[i] / p[i];
        if (p[i] < 0)
            t0 = fmax(t0, t);
        else
            t1 = fmin(t1, t);
        if (t0 > t1) return false;
    }
    return true;
}

/* true when a box at (x, y), w x h, covers no point, line or error bar of the panel */
static bool box_free(const chart *c, double x, double y, double w, double h)
{
    const double r[4] = {x - 4, y - 4, x + w + 4, y + h + 4}; /* a marker's reach around it */
    for (int k = 0; k < c->p->nseries; k++) {
        const plot_series *s = &c->p->s[k];
        double px = 0, py = 0, bx, blo, bhi;
        bool prev = false;
        for (int i = 0; i < s->n; i++) {
            double qx = 0, qy = 0;
            const bool here = point(c, s, i, &qx, &qy);
            if (here && meets(r, prev ? px : qx, prev ? py : qy, qx, qy)) return false;
            if (bar(c, s, i, &bx, &blo, &bhi) && meets(r, bx, blo, bx, bhi)) return false;
            prev = here;
            px = qx;
            py = qy;
        }
    }
    return true;
}

static bool has_label(const plot_series *s)
{
    return s->label && s->label[0];
}

/* Places the legend: the first of the plot area's corners (then its top and bottom centre) where
 * it covers no data; else below the axes, laid out again. */
static void place_legend(cairo_t *cr, chart *c)
{
    c->nleg = 0;
    for (int k = 0; k < c->p->nseries; k++) c->nleg += has_label(&c->p->s[k]);
    layout(cr, c, 0);
    c->below = false;
    if (!c->nleg) return;
    font(cr, FONT_TICK, false);
    const double pw = c->x1 - c->x0, ph = c->y1 - c->y0;
    /* inside: a box of one entry a row */
    double lmax = 0;
    c->lmaxw = 0.45 * pw;
    for (int k = 0; k < c->p->nseries; k++) {
        char buf[TEXT_CAP];
        if (has_label(&c->p->s[k])) lmax = fmax(lmax, fit_text(cr, c->p->s[k].label, c->lmaxw, buf));
    }
    c->lw = 2 * LEG_PAD + LEG_SAMPLE + 6 + lmax;
    c->lh = 2 * LEG_PAD + c->nleg * LEG_ROW - 4;
    if (c->lw < pw - 2 * LEG_PAD && c->lh < ph - 2 * LEG_PAD) {
        const double l = c->x0 + LEG_PAD, r = c->x1 - LEG_PAD - c->lw, m = (c->x0 + c->x1 - c->lw) / 2;
        const double t = c->y0 + LEG_PAD, b = c->y1 - LEG_PAD - c->lh;
        const double where[][2] = {{r, t}, {l, t}, {l, b}, {r, b}, {m, t}, {m, b}};
        for (int i = 0; i < 6; i++)
            if (box_free(c, where[i][0], where[i][1], c->lw, c->lh)) {
                c->lx = where[i][0];
                c->ly = where[i][1];
                return;
            }
    }
    /* below: columns as wide as the widest entry, as many as the panel holds; at most a third
     * of the panel's height of rows */
    c->below = true;
    const double room = c->w - 16;
    c->lmaxw = room - LEG_SAMPLE - 6;
    lmax = 0;
    for (int k = 0; k < c->p->nseries; k++) {
        char buf[TEXT_CAP];
        if (has_label(&c->p->s[k])) lmax = fmax(lmax, fit_text(cr, c->p->s[k].label, c->lmaxw, buf));
    }
    c->lcolw = LEG_SAMPLE + 6 + lmax + LEG_COL_GAP;
    c->ncol = (int)fmax(1, fmin(c->nleg, floor((room + LEG_COL_GAP) / c->lcolw)));
    c->nrows = (c->nleg + c->ncol - 1) / c->ncol;
    const int maxrows = (int)fmax(1, c->h / 3 / LEG_ROW);
    c->lmore = 0;
    if (c->nrows > maxrows) {
        c->nrows = maxrows;
        c->lmore = c->nleg - (maxrows * c->ncol - 1); /* the last place says "+N more" */
    }
    layout(cr, c, c->nrows * LEG_ROW + 4);
}

static void set_colour(cairo_t *cr, int k)
{
    const double *rgb = palette[k % NCOLOURS];
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
}

static void marker(cairo_t *cr, int k, double x, double y, double r)
{
    switch (k % NMARKERS) {
    case MARKER_CIRCLE:
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, r, 0, 2 * M_PI);
        break;
    case MARKER_SQUARE:
        cairo_rectangle(cr, x - 0.9 * r, y - 0.9 * r, 1.8 * r, 1.8 * r);
        break;
    case MARKER_TRIANGLE:
        cairo_move_to(cr, x, y - 1.2 * r);
        cairo_line_to(cr, x + 1.1 * r, y + 0.8 * r);
        cairo_line_to(cr, x - 1.1 * r, y + 0.8 * r);
        cairo_close_path(cr);
        break;
    default:
        cairo_move_to(cr, x, y - 1.25 * r);
        cairo_line_to(cr, x + r, y);
        cairo_line_to(cr, x, y + 1.25 * r);
        cairo_line_to(cr, x - r, y);
        cairo_close_path(cr);
        break;
    }
    cairo_fill(cr);
}

static void line_style(cairo_t *cr, const plot_series *s)
{
    static const double dash[] = {6, 3};
    cairo_set_line_width(cr, LINE_W);
    cairo_set_dash(cr, dash, s->dashed ? 2 : 0, 0);
}

/* Series k: its error bars, its line (broken at gaps), its markers */
static void draw_series(cairo_t *cr, const chart *c, int k)
{
    const plot_series *s = &c->p->s[k];
    const double r = s->n > 60 ? 2 : 3.5;
    set_colour(cr, k);
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int i = 0; i < s->n; i++) {
        double x, lo, hi;
        if (!bar(c, s, i, &x, &lo, &hi)) continue;
        cairo_move_to(cr, x, lo);
        cairo_line_to(cr, x, hi);
        cairo_move_to(cr, x - CAP_HALF, lo);
        cairo_line_to(cr, x + CAP_HALF, lo);
        cairo_move_to(cr, x - CAP_HALF, hi);
        cairo_line_to(cr, x + CAP_HALF, hi);
    }
    cairo_stroke(cr);
    line_style(cr, s);
    bool prev = false;
    for (int i = 0; i < s->n; i++) {
        double x, y;
        const bool here = point(c, s, i, &x, &y);
        if (here && prev)
            cairo_line_to(cr, x, y);
        else if (here)
            cairo_move_to(cr, x, y);
        prev = here;
    }
    cairo_stroke(cr);
    for (int i = 0; i < s->n; i++) {
        double x, y;
        if (point(c, s, i, &x, &y)) marker(cr, k, x, y, r);
    }
}

/* A legend entry of series k: its line sample with its marker at (x, y), its label after it */
static void legend_entry(cairo_t *cr, const chart *c, int k, double x, double y)
{
    const plot_series *s = &c->p->s[k];
    set_colour(cr, k);
    line_style(cr, s);
    cairo_move_to(cr, x, y);
    cairo_line_to(cr, x + LEG_SAMPLE, y);
    cairo_stroke(cr);
    marker(cr, k, x + LEG_SAMPLE / 2, y, 3.5);
    ink(cr, 0.15);
    fit_text_at(cr, x + LEG_SAMPLE + 6, y + 0.35 * FONT_TICK, 0, c->lmaxw, s->label);
}

static void draw_legend(cairo_t *cr, const chart *c)
{
    if (!c->nleg) return;
    font(cr, FONT_TICK, false);
    if (!c->below) {
        cairo_rectangle(cr, c->lx + 0.5, c->ly + 0.5, c->lw - 1, c->lh - 1);
        cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
        cairo_fill_preserve(cr);
        ink(cr, 0.8);
        cairo_set_line_width(cr, 1);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_stroke(cr);
        double y = c->ly + LEG_PAD + LEG_ROW / 2 - 2;
        for (int k = 0; k < c->p->nseries; k++)
            if (has_label(&c->p->s[k])) {
                legend_entry(cr, c, k, c->lx + LEG_PAD, y);
                y += LEG_ROW;
            }
        return;
    }
    const double w = fmin(c->ncol, c->nleg) * c->lcolw - LEG_COL_GAP;
    const double x0 = c->left + (c->w - w) / 2, y0 = c->top + c->h - 6 - c->nrows * LEG_ROW;
    int place = 0;
    const int shown = c->lmore ? c->nrows * c->ncol - 1 : c->nleg;
    for (int k = 0; k < c->p->nseries && place < shown; k++) {
        if (!has_label(&c->p->s[k])) continue;
        legend_entry(cr, c, k, x0 + (place % c->ncol) * c->lcolw,
                     y0 + (place / c->ncol) * LEG_ROW + LEG_ROW / 2);
        place++;
    }
    if (c->lmore) {
        char more[32];
        snprintf(more, sizeof more, "+%d more", c->lmore);
        ink(cr, 0.15);
        text_at(cr, x0 + (place % c->ncol) * c->lcolw,
                y0 + (place / c->ncol) * LEG_ROW + LEG_ROW / 2 + 0.35 * FONT_TICK, 0, more);
    }
}

/* One panel: title, grid, series, frame, ticks, axis labels, legend */
static void draw_panel(cairo_t *cr, chart *c)
{
    const plot_panel *p = c->p;
    place_legend(cr, c);
    const double pw = c->x1 - c->x0;
    if (p->title && p->title[0]) {
        font(cr, FONT_TITLE, false);
        ink(cr, 0.1);
        fit_text_at(cr, (c->x0 + c->x1) / 2, c->top + 20, 0.5, pw, p->title);
    }
    /* the grid, at the ticks */
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, NULL, 0, 0);
    ink(cr, 0.9);
    for (int i = 0; i < c->x.n; i++) {
        const double x = round(c->x0 + (c->x.at[i] - c->x.lo) / (c->x.hi - c->x.lo) * pw) + 0.5;
        cairo_move_to(cr, x, c->y0);
        cairo_line_to(cr, x, c->y1);
    }
    for (int i = 0; i < c->y.n; i++) {
        const double y = round(map_y(c, c->y.at[i])) + 0.5;
        cairo_move_to(cr, c->x0, y);
        cairo_line_to(cr, c->x1, y);
    }
    cairo_stroke(cr);
    /* the data, clipped to the plot area (give or take a marker) */
    cairo_save(cr);
    cairo_rectangle(cr, c->x0 - 4, c->y0 - 4, pw + 8, c->y1 - c->y0 + 8);
    cairo_clip(cr);
    for (int k = 0; k < p->nseries; k++) draw_series(cr, c, k);
    cairo_restore(cr);
    /* the frame and the ticks, with their labels */
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, NULL, 0, 0);
    ink(cr, 0.25);
    cairo_rectangle(cr, c->x0 + 0.5, c->y0 + 0.5, pw - 1, c->y1 - c->y0 - 1);
    font(cr, FONT_TICK, false);
    for (int i = 0; i < c->x.n; i++) {
        const double x = round(c->x0 + (c->x.at[i] - c->x.lo) / (c->x.hi - c->x.lo) * pw) + 0.5;
        cairo_move_to(cr, x, c->y1);
        cairo_line_to(cr, x, c->y1 + TICK_LEN);
    }
    for (int i = 0; i < c->y.n; i++) {
        const double y = round(map_y(c, c->y.at[i])) + 0.5;
        cairo_move_to(cr, c->x0, y);
        cairo_line_to(cr, c->x0 - TICK_LEN, y);
    }
    cairo_stroke(cr);
    ink(cr, 0.15);
    for (int i = 0; i < c->x.n; i++)
        text_at(cr, c->x0 + (c->x.at[i] - c->x.lo) / (c->x.hi - c->x.lo) * pw,
                c->y1 + TICK_LEN + 3 + FONT_TICK, 0.5, c->x.label[i]);
    for (int i = 0; i < c->y.n; i++)
        text_at(cr, c->x0 - TICK_LEN - 3, map_y(c, c->y.at[i]) + 0.35 * FONT_TICK, 1,
                c->y.label[i]);
    font(cr, FONT_LABEL, false);
    if (p->xlabel && p->xlabel[0])
        fit_text_at(cr, (c->x0 + c->x1) / 2, c->y1 + TICK_LEN + FONT_TICK + 8 + FONT_LABEL, 0.5,
                    pw, p->xlabel);
    if (p->ylabel && p->ylabel[0]) {
        cairo_save(cr);
        cairo_translate(cr, c->left + 8 + FONT_LABEL, (c->y0 + c->y1) / 2);
        cairo_rotate(cr, -M_PI / 2);
        fit_text_at(cr, 0, 0, 0.5, c->y1 - c->y0, p->ylabel);
        cairo_restore(cr);
    }
    draw_legend(cr, c);
}

/* The figure: a white ground, the title, the panels. \return false when out of memory. */
static bool draw_figure(cairo_t *cr, const char *title, const plot_panel *p, int npanels,
                        double w, double h)
{
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    const double top = title && title[0] ? PLOT_TITLE_H : 0;
    if (top) {
        font(cr, FONT_FIGURE, true);
        ink(cr, 0.1);
        fit_text_at(cr, w / 2, 21, 0.5, w - 16, title);
    }
    for (int i = 0; i < npanels; i++) {
        chart c;
        memset(&c, 0, sizeof c);
        c.p = &p[i];
        c.left = i * (double)PLOT_PANEL_W;
        c.top = top;
        c.w = PLOT_PANEL_W;
        c.h = h - top;
        c.x.log = p[i].xlog;
        const bool ok = gather(&c);
        if (ok) draw_panel(cr, &c);
        free(c.xs);
        if (!ok) return false;
    }
    return true;
}

/* ---------------------------------------------------------------- the SVG's text */

/* Appends s as XML character data: escaped as for a terminal (pml_escape), then &, <, >, " and
 * the non-characters U+FFFE and U+FFFF (which XML refuses) replaced. */
static bool xml_text(membuf *b, const char *s)
{
    char buf[TEXT_CAP];
    pml_escape(buf, sizeof buf, s ? s : "");
    bool ok = true;
    for (const char *q = buf; *q && ok; q++) {
        const unsigned char *u = (const unsigned char *)q;
        if (*q == '&') ok = mb_str(b, "&amp;");
        else if (*q == '<') ok = mb_str(b, "&lt;");
        else if (*q == '>') ok = mb_str(b, "&gt;");
        else if (*q == '"') ok = mb_str(b, "&quot;");
        else if (u[0] == 0xef && u[1] == 0xbf && (u[2] == 0xbe || u[2] == 0xbf)) {
            ok = mb_str(b, "?");
            q += 2;
        } else
            ok = mb_put(b, q, 1);
    }
    return ok;
}

/* cairo draws text as outlines: the figure's text goes into the SVG as its <title> and <desc>
 * (what screen readers and searches read), after the <svg> tag. \return false when out of
 * memory. */
static bool svg_text(membuf *svg, const char *title, const plot_panel *p, int npanels)
{
    const unsigned char *tag = svg->len ? memmem(svg->p, svg->len, "<svg", 4) : NULL;
    const unsigned char *end = tag ? memchr(tag, '>', svg->len - (size_t)(tag - svg->p)) : NULL;
    if (!end) return true; /* not cairo's SVG as known: left as it is */
    const size_t at = (size_t)(end + 1 - svg->p);
    membuf b = {0};
    bool ok = mb_put(&b, svg->p, at) && mb_str(&b, "\n<title>") && xml_text(&b, title) &&
              mb_str(&b, "</title>\n<desc>");
    for (int i = 0; i < npanels && ok; i++) { /* TITLE (x: XLABEL, y: YLABEL): SERIES, ... */
        const bool x = p[i].xlabel && p[i].xlabel[0], y = p[i].ylabel && p[i].ylabel[0];
        ok = mb_str(&b, i ? "\n" : "") && xml_text(&b, p[i].title) &&
             mb_str(&b, x || y ? " (" : "") && (!x || (mb_str(&b, "x: ") && xml_text(&b, p[i].xlabel))) &&
             mb_str(&b, x && y ? ", " : "") && (!y || (mb_str(&b, "y: ") && xml_text(&b, p[i].ylabel))) &&
             mb_str(&b, x || y ? "):" : ":");
        for (int k = 0; k < p[i].nseries && ok; k++)
            ok = mb_str(&b, k ? ", " : " ") && xml_text(&b, p[i].s[k].label) &&
                 mb_str(&b, p[i].s[k].dashed ? " (dashed)" : "");
    }
    ok = ok && mb_str(&b, "</desc>") && mb_put(&b, svg->p + at, svg->len - at);
    if (!ok) {
        free(b.p);
        return false;
    }
    free(svg->p);
    *svg = b;
    return true;
}

/* ---------------------------------------------------------------- writing */

pml_status plot_write(const char *path, const char *title, const plot_panel *p, int npanels)
{
    if (!plot_name_ok(path))
        return pml_fail(PML_EINVAL, "'%s': a chart is written as .svg or .png (by its name)",
                        path ? path : "");
    if (!p || npanels < 1 || npanels > PLOT_MAX_PANELS)
        return pml_fail(PML_EINVAL, "'%s': %d panels; a chart has 1 to %d", path, npanels,
                        PLOT_MAX_PANELS);
    for (int i = 0; i < npanels; i++) {
        bool ok = p[i].nseries >= 0 && (p[i].nseries == 0 || p[i].s);
        for (int k = 0; ok && k < p[i].nseries; k++)
            ok = p[i].s[k].n >= 0 && (p[i].s[k].n == 0 || (p[i].s[k].x && p[i].s[k].y));
        if (!ok) return pml_fail(PML_EINVAL, "'%s': panel %d has a series without its points", path, i + 1);
    }
    const size_t n = strlen(path);
    const bool svg = strcasecmp(path + n - 4, ".svg") == 0;
    const int w = npanels * PLOT_PANEL_W, h = PLOT_PANEL_H + (title && title[0] ? PLOT_TITLE_H : 0);
    membuf b = {0};
    cairo_surface_t *sf;
    if (svg) {
        sf = cairo_svg_surface_create_for_stream(mb_write, &b, w, h);
        cairo_svg_surface_set_document_unit(sf, CAIRO_SVG_UNIT_PT);
    } else {
        sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    }
    cairo_t *cr = cairo_create(sf);
    bool mem = draw_figure(cr, title, p, npanels, w, h);
    cairo_status_t cs = cairo_status(cr);
    cairo_destroy(cr);
    if (cs == CAIRO_STATUS_SUCCESS && mem && !svg)
        cs = cairo_surface_write_to_png_stream(sf, mb_write, &b);
    cairo_surface_finish(sf); /* an SVG is written now */
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    mem = mem && !b.failed && (!svg || cs != CAIRO_STATUS_SUCCESS || svg_text(&b, title, p, npanels));
    pml_status st;
    if (!mem || cs == CAIRO_STATUS_NO_MEMORY)
        st = pml_fail(PML_ENOMEM, "cannot draw '%s': out of memory", path);
    else if (cs != CAIRO_STATUS_SUCCESS)
        st = pml_fail(PML_EIO, "cannot draw '%s': %s", path, cairo_status_to_string(cs));
    else
        st = pml_write_file_atomic(path, b.p, b.len);
    free(b.p);
    return st;
}
