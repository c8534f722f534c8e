/* pml — models as DOT files: the cgraph glue (lock, caught messages), a strict reader of DOT text
 * into cgraph graphs, the model reader (cgraph graph -> pml_graph), the model writer, and
 * pml_model_load (zoo spec or file). The format is documented in models.h. */
#include "cg.h"
#include "models.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- cgraph glue */

static pthread_mutex_t cg_mutex = PTHREAD_MUTEX_INITIALIZER;
static char cg_buf[2048];
static size_t cg_len;
static int cg_n;
static agusererrf cg_prev_fn;
static agerrlevel_t cg_prev_level;

/* cgraph calls this with pieces of a message ("Error", ": ", "text\n"); keep the first ones. */
static int cg_catch(char *msg)
{
    if (strcmp(msg, "Error") == 0 || strcmp(msg, "Warning") == 0) cg_n++;
    size_t n = strlen(msg);
    if (n > sizeof cg_buf - 1 - cg_len) n = sizeof cg_buf - 1 - cg_len;
    memcpy(cg_buf + cg_len, msg, n);
    cg_len += n;
    cg_buf[cg_len] = 0;
    return 0;
}

void pml__cg_begin(void)
{
    pthread_mutex_lock(&cg_mutex);
    pml__cg_clear();
    cg_prev_fn = agseterrf(cg_catch);
    cg_prev_level = agseterr(AGWARN);
    agreseterrors();
}

void pml__cg_end(void)
{
    agseterrf(cg_prev_fn);
    agseterr(cg_prev_level);
    pthread_mutex_unlock(&cg_mutex);
}

void pml__cg_clear(void)
{
    cg_len = 0;
    cg_n = 0;
    cg_buf[0] = 0;
}

int pml__cg_count(void)
{
    return cg_n;
}

const char *pml__cg_first(const char *source)
{
    static char out[sizeof cg_buf];
    const char *s = cg_buf;
    if (strncmp(s, "Error: ", 7) == 0)
        s += 7;
    else if (strncmp(s, "Warning: ", 9) == 0)
        s += 9;
    size_t sl = source ? strlen(source) : 0;
    if (sl && strncmp(s, source, sl) == 0 && s[sl] == ':' && s[sl + 1] == ' ') s += sl + 2;
    size_t n = strcspn(s, "\n");
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\r')) n--;
    memcpy(out, s, n);
    out[n] = 0;
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    return out;
}

const char *pml__printable(const char *s)
{
    static _Thread_local char bufs[4][80];
    static _Thread_local int next;
    char *b = bufs[next++ & 3];
    size_t i = 0;
    for (; s[i] && i < 60; i++) b[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[i]) {
        while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80) i--; /* not inside a character */
        strcpy(b + i, "...");
    } else {
        b[i] = 0;
    }
    return b;
}
#define P(s) pml__printable(s)

/* ---------------------------------------------------------------- DOT text -> cgraph graph */

/* cgraph 2.x's flex lexer keeps its start condition from one read to the next: input that ends
 * inside a quoted string, a comment or an HTML string where a graph may start is no error, and
 * the next read (of another file) then begins inside that string. Destroying the lexer after each
 * read resets it. Weak: newer Graphviz has a reentrant lexer without this symbol. */
extern int aaglex_destroy(void) __attribute__((weak));

typedef struct mem_reader {
    const char *data;
    size_t len, pos;
} mem_reader;

static int mem_read(void *chan, char *buf, int bufsize)
{
    mem_reader *r = chan;
    if (bufsize <= 0 || r->pos >= r->len) return 0;
    size_t n = r->len - r->pos;
    if (n > (size_t)bufsize) n = (size_t)bufsize;
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    return (int)n;
}

/* \return the offset of the first byte that is not UTF-8 text (a NUL, a control character other
 * than tab, newline, CR, FF, VT, or a malformed UTF-8 sequence), or len. */
static size_t text_check(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') ||
                c == 0x7f)
                return i;
            i++;
            continue;
        }
        int n = c >= 0xc2 && c <= 0xdf   ? 1
                : c >= 0xe0 && c <= 0xef ? 2
                : c >= 0xf0 && c <= 0xf4 ? 3
                                         : -1;
        if (n < 0 || i + (size_t)n >= len) return i;
        unsigned cp = c & (0x3fu >> n);
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return i;
        i += (size_t)n + 1;
    }
    return len;
}

pml_status pml_dot_parse(const char *text, size_t len, const char *source, struct Agraph_s **out)
{
    *out = NULL;
    if (!source) source = "<dot>";
    if (len > PML_DOT_MAX_BYTES)
        return pml_fail(PML_EFORMAT, "%s: too large for a DOT file (%zu bytes, at most %u)", source,
                        len, PML_DOT_MAX_BYTES);
    size_t bad = text_check((const unsigned char *)text, len);
    if (bad < len)
        return pml_fail(PML_EFORMAT,
                        "%s: not a DOT file: byte %zu (0x%02x) is not UTF-8 text (binary data?)",
                        source, bad, (unsigned char)text[bad]);
    Agiodisc_t io = AgIoDisc;
    io.afread = mem_read;
    Agdisc_t disc = {&AgMemDisc, &AgIdDisc, &io};
    mem_reader r = {text, len, 0};
    char file[256];
    snprintf(file, sizeof file, "%s", source);

    pml__cg_begin();
    agsetfile(file);
    Agraph_t *g = agread(&r, &disc);
    Agraph_t *more =
        g ? agread(&r, &disc) : NULL; /* drains the input; a second graph is an error */
    if (aaglex_destroy) aaglex_destroy();
    int nmsg = pml__cg_count();
    pml_status st = PML_OK;
    if (nmsg)
        st = pml_fail(PML_EFORMAT, "%s: %s", source, pml__cg_first(file));
    else if (!g)
        st = pml_fail(PML_EFORMAT, "%s: no graph in the file (it is empty or holds only comments)",
                      source);
    else if (more)
        st = pml_fail(PML_EFORMAT, "%s: holds more than one graph ('%s' and '%s'); one is allowed",
                      source, P(agnameof(g)), P(agnameof(more)));
    if (more) agclose(more);
    if (st != PML_OK && g) {
        agclose(g);
        g = NULL;
    }
    static char none[] = "<none>";
    agsetfile(none);
    pml__cg_end();
    if (st != PML_OK) return st;
    if (!agisdirected(g)) {
        st = pml_fail(PML_EFORMAT, "%s: '%s' is an undirected graph; pml graphs are digraphs",
                      source, P(agnameof(g)));
        pml_dot_free(g);
        return st;
    }
    *out = g;
    return PML_OK;
}

pml_status pml_dot_read(const char *path, struct Agraph_s **out)
{
    char *text;
    size_t len;
    *out = NULL;
    pml_status st = pml_read_file(path, PML_DOT_MAX_BYTES, &text, &len);
    if (st != PML_OK) return st;
    st = pml_dot_parse(text, len, path, out);
    free(text);
    return st;
}

void pml_dot_free(struct Agraph_s *g)
{
    if (!g) return;
    pthread_mutex_lock(&cg_mutex);
    agclose(g);
    pthread_mutex_unlock(&cg_mutex);
}

const char *pml_dot_kind(struct Agraph_s *g)
{
    char *k = agget(g, "kind");
    return k && *k ? k : "model";
}

/* Graphviz's own attributes (graphviz.org/doc/info/attrs.html): a model file may carry them for
 * looks; the reader ignores them. Any other attribute pml does not know is an error (a typo). */
// clang-format off
static const char *const graphviz_attrs[] = {
    "_background", "area", "arrowhead", "arrowsize", "arrowtail", "bb", "beautify", "bgcolor",
    "center", "charset", "class", "cluster", "clusterrank", "color", "colorscheme", "comment",
    "compound", "concentrate", "constraint", "Damping", "decorate", "defaultdist", "dim", "dimen",
    "dir", "diredgeconstraints", "distortion", "dpi", "edgehref", "edgetarget", "edgetooltip",
    "edgeURL", "epsilon", "esep", "fillcolor", "fixedsize", "fontcolor", "fontname", "fontnames",
    "fontpath", "fontsize", "forcelabels", "gradientangle", "group", "head_lp", "headclip",
    "headhref", "headlabel", "headport", "headtarget", "headtooltip", "headURL", "height", "href",
    "id", "image", "imagepath", "imagepos", "imagescale", "inputscale", "K", "key", "label",
    "label_scheme", "labelangle", "labeldistance", "labelfloat", "labelfontcolor", "labelfontname",
    "labelfontsize", "labelhref", "labeljust", "labelloc", "labeltarget", "labeltooltip",
    "labelURL", "landscape", "layer", "layerlistsep", "layers", "layerselect", "layersep", "layout",
    "len", "levels", "levelsgap", "lhead", "lheight", "linelength", "lp", "ltail", "lwidth",
    "margin", "maxiter", "mclimit", "mindist", "minlen", "mode", "model", "mosek", "newrank",
    "nodesep", "nojustify", "normalize", "notranslate", "nslimit", "nslimit1", "oneblock",
    "ordering", "orientation", "outputorder", "overlap", "overlap_scaling", "overlap_shrink",
    "pack", "packmode", "pad", "page", "pagedir", "pencolor", "penwidth", "peripheries", "pin",
    "pos", "quadtree", "quantum", "radius", "rank", "rankdir", "ranksep", "ratio", "rects",
    "regular", "remincross", "repulsiveforce", "resolution", "root", "rotate", "rotation",
    "samehead", "sametail", "samplepoints", "scale", "searchsize", "sep", "shape", "shapefile",
    "showboxes", "sides", "size", "skew", "smoothing", "sortv", "splines", "start", "style",
    "stylesheet", "tail_lp", "tailclip", "tailhref", "taillabel", "tailport", "tailtarget",
    "tailtooltip", "tailURL", "target", "TBbalance", "tooltip", "truecolor", "URL", "vertices",
    "viewport", "voro_margin", "weight", "width", "xdotversion", "xlabel", "xlp", "z",
};
// clang-format on

static bool is_graphviz_attr(const char *name)
{
    for (size_t i = 0; i < sizeof graphviz_attrs / sizeof graphviz_attrs[0]; i++)
        if (strcmp(graphviz_attrs[i], name) == 0) return true;
    return false;
}

/* ---------------------------------------------------------------- value parsing */

/* A decimal integer: optional '-', digits, nothing else. */
static bool parse_long(const char *s, long *v, const char **end)
{
    const char *p = s;
    if (*p == '-') p++;
    if (*p < '0' || *p > '9') return false;
    errno = 0;
    char *e;
    long x = strtol(s, &e, 10);
    if (errno) return false;
    *v = x;
    *end = e;
    return true;
}

static bool parse_int(const char *s, long lo, long hi, int *v)
{
    long x;
    const char *e;
    if (!parse_long(s, &x, &e) || *e || x < lo || x > hi) return false;
    *v = (int)x;
    return true;
}

/* "N" or "NxM" */
static bool parse_pair(const char *s, long lo, long hi, int *a, int *b)
{
    long x, y;
    const char *e;
    if (!parse_long(s, &x, &e) || x < lo || x > hi) return false;
    if (!*e) {
        *a = *b = (int)x;
        return true;
    }
    if (*e != 'x' || !parse_long(e + 1, &y, &e) || *e || y < lo || y > hi) return false;
    *a = (int)x;
    *b = (int)y;
    return true;
}

static bool parse_float(const char *s, double lo, double hi, bool lo_open, bool hi_open, float *v)
{
    if (!*s || (*s != '-' && *s != '.' && (*s < '0' || *s > '9'))) return false;
    errno = 0;
    char *e;
    double x = strtod(s, &e);
    if (errno || *e || !isfinite(x) || (lo_open ? !(x > lo) : !(x >= lo)) ||
        (hi_open ? !(x < hi) : !(x <= hi)))
        return false;
    *v = (float)x;
    return true;
}

/* ---------------------------------------------------------------- the model reader */

#define MAX_DIM 4096      /* kernel, stride, padding */
#define MAX_OUT (1 << 24) /* units, filters, input dims, classes */

enum { K_INT, K_BOOL, K_FLOAT, K_PAIR, K_PAD, K_ACT };

#define OPB(x) (1u << PML_OP_##x)
#define POOLS (OPB(MAXPOOL2D) | OPB(AVGPOOL2D))
#define WEIGHTED (OPB(LINEAR) | OPB(CONV2D))
#define WINDOWED (OPB(CONV2D) | POOLS)

enum {
    A_OUT,
    A_KERNEL,
    A_KH,
    A_KW,
    A_STRIDE,
    A_SH,
    A_SW,
    A_PADDING,
    A_PH,
    A_PW,
    A_ACT,
    A_BIAS,
    A_GLOBAL,
    A_CEIL,
    A_COUNT_PAD,
    A_RATE,
    A_EPS,
    A_MOMENTUM,
    A_COUNT
};

typedef struct attr_def {
    const char *name;
    int kind;
    unsigned ops; /* the ops that take it */
} attr_def;

static const attr_def attr_defs[A_COUNT] = {
    [A_OUT] = {"out", K_INT, WEIGHTED},
    [A_KERNEL] = {"kernel", K_PAIR, WINDOWED},
    [A_KH] = {"kh", K_INT, WINDOWED},
    [A_KW] = {"kw", K_INT, WINDOWED},
    [A_STRIDE] = {"stride", K_PAIR, WINDOWED},
    [A_SH] = {"sh", K_INT, WINDOWED},
    [A_SW] = {"sw", K_INT, WINDOWED},
    [A_PADDING] = {"padding", K_PAD, WINDOWED},
    [A_PH] = {"ph", K_INT, WINDOWED},
    [A_PW] = {"pw", K_INT, WINDOWED},
    [A_ACT] = {"act", K_ACT, WEIGHTED},
    [A_BIAS] = {"bias", K_BOOL, WEIGHTED},
    [A_GLOBAL] = {"global", K_BOOL, POOLS},
    [A_CEIL] = {"ceil_mode", K_BOOL, POOLS},
    [A_COUNT_PAD] = {"count_pad", K_BOOL, OPB(AVGPOOL2D)},
    [A_RATE] = {"rate", K_FLOAT, OPB(DROPOUT)},
    [A_EPS] = {"eps", K_FLOAT, OPB(BATCHNORM)},
    [A_MOMENTUM] = {"momentum", K_FLOAT, OPB(BATCHNORM)},
};

/* One node's attributes as given. */
typedef struct given {
    bool set[A_COUNT];
    int i[A_COUNT][2]; /* K_INT, K_BOOL, K_ACT: [0]; K_PAIR: both; K_PAD: mode, ph, pw below */
    int pad_mode, pad_h, pad_w;
    float f[A_COUNT];
} given;

typedef struct reader {
    const char *src;
    Agraph_t *ag;
    pml_graph *g;
    Agnode_t **nodes; /* by node id */
    int n;
    const pml_model_dot_ext *ext; /* what else the file may hold, or NULL */
} reader;

static bool in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (strcmp(*list, name) == 0) return true;
    return false;
}

static const char *want_kind(const reader *r)
{
    return r->ext && r->ext->kind ? r->ext->kind : "model";
}

typedef struct node_rec {
    Agrec_t h;
    int id;
} node_rec;

#define MAX_NODES 16384
#define MAX_ATTRS 256

/* "node 'x' (conv2d): " */
static const char *where_node(const pml_node *n)
{
    static _Thread_local char b[160];
    snprintf(b, sizeof b, "node '%s' (%s)", P(n->name), pml_op_name(n->op));
    return b;
}

static void ops_taking(unsigned op, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int a = 0; a < A_COUNT; a++)
        if (attr_defs[a].ops & (1u << op)) {
            size_t l = strlen(buf);
            snprintf(buf + l, cap - l, "%s%s", l ? ", " : "", attr_defs[a].name);
        }
    if (!buf[0]) snprintf(buf, cap, "nothing besides op");
}

/* Parses one attribute value into gv. */
static pml_status parse_attr(reader *r, const pml_node *n, int a, const char *val, given *gv)
{
    const attr_def *d = &attr_defs[a];
    bool ok = false;
    const char *expect = "";
    switch (d->kind) {
    case K_INT:
        if (a == A_OUT) {
            ok = parse_int(val, 1, MAX_OUT, &gv->i[a][0]);
            expect = "an integer in [1, 16777216]";
        } else if (a == A_PH || a == A_PW) {
            ok = parse_int(val, 0, MAX_DIM, &gv->i[a][0]);
            expect = "an integer in [0, 4096]";
        } else {
            ok = parse_int(val, 1, MAX_DIM, &gv->i[a][0]);
            expect = "an integer in [1, 4096]";
        }
        break;
    case K_BOOL:
        if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0) {
            gv->i[a][0] = 0;
            ok = true;
        } else if (strcmp(val, "1") == 0 || strcmp(val, "true") == 0) {
            gv->i[a][0] = 1;
            ok = true;
        }
        expect = "0 or 1";
        break;
    case K_ACT:
        if (strcmp(val, "none") == 0 || strcmp(val, "relu") == 0) {
            gv->i[a][0] = val[0] == 'r' ? PML_ACT_RELU : PML_ACT_NONE;
            ok = true;
        }
        expect = "none or relu";
        break;
    case K_PAIR:
        ok = parse_pair(val, 1, MAX_DIM, &gv->i[a][0], &gv->i[a][1]);
        expect = "N or NxM, integers in [1, 4096]";
        break;
    case K_PAD:
        if (strcmp(val, "same") == 0) {
            gv->pad_mode = PML_PAD_SAME;
            ok = true;
        } else if (strcmp(val, "valid") == 0) {
            gv->pad_mode = PML_PAD_VALID;
            ok = true;
        } else if (strcmp(val, "explicit") == 0) {
            gv->pad_mode = PML_PAD_EXPLICIT;
            gv->pad_h = gv->pad_w = -1; /* from ph/pw */
            ok = true;
        } else if (parse_pair(val, 0, MAX_DIM, &gv->pad_h, &gv->pad_w)) {
            gv->pad_mode = PML_PAD_EXPLICIT;
            ok = true;
        }
        expect = "same, valid, explicit, N or HxW (N, H, W integers in [0, 4096])";
        break;
    case K_FLOAT:
        if (a == A_RATE) {
            ok = parse_float(val, 0, 1, false, true, &gv->f[a]);
            expect = "a number in [0, 1)";
        } else if (a == A_EPS) {
            ok = parse_float(val, 0, 1, true, false, &gv->f[a]);
            expect = "a number in (0, 1]";
        } else {
            ok = parse_float(val, 0, 1, false, true, &gv->f[a]);
            expect = "a number in [0, 1)";
        }
        break;
    }
    if (!ok)
        return pml_fail(PML_EFORMAT, "%s: %s: %s='%s' must be %s", r->src, where_node(n), d->name,
                        P(val), expect);
    gv->set[a] = true;
    return PML_OK;
}

/* Turns the given attributes into n->a (defaults for what is not given). */
static pml_status apply_attrs(reader *r, pml_node *n, const given *gv)
{
    pml_attrs *a = &n->a;
    const int op = n->op;
    const bool pool = op == PML_OP_MAXPOOL2D || op == PML_OP_AVGPOOL2D;
    *a = pml_attrs_default(n->op);
#define BOTH(x, y, z)                                                                              \
    if (gv->set[x] && (gv->set[y] || gv->set[z]))                                                  \
        return pml_fail(PML_EFORMAT, "%s: %s: give %s or %s/%s, not both", r->src, where_node(n),  \
                        attr_defs[x].name, attr_defs[y].name, attr_defs[z].name);
    BOTH(A_KERNEL, A_KH, A_KW)
    BOTH(A_STRIDE, A_SH, A_SW)
#undef BOTH
    if (op == PML_OP_LINEAR || op == PML_OP_CONV2D) {
        if (!gv->set[A_OUT])
            return pml_fail(PML_EFORMAT, "%s: %s: missing attribute out (%s)", r->src,
                            where_node(n), op == PML_OP_LINEAR ? "units" : "filters");
        a->out = gv->i[A_OUT][0];
        if (gv->set[A_ACT]) a->act = gv->i[A_ACT][0];
        if (gv->set[A_BIAS]) a->bias = gv->i[A_BIAS][0];
    }
    if (op == PML_OP_CONV2D || pool) {
        bool global = pool && gv->set[A_GLOBAL] && gv->i[A_GLOBAL][0];
        if (gv->set[A_KERNEL]) {
            a->kh = gv->i[A_KERNEL][0];
            a->kw = gv->i[A_KERNEL][1];
        } else if (gv->set[A_KH] || gv->set[A_KW]) {
            if (!gv->set[A_KH] || !gv->set[A_KW])
                return pml_fail(PML_EFORMAT, "%s: %s: give both kh and kw (or kernel)", r->src,
                                where_node(n));
            a->kh = gv->i[A_KH][0];
            a->kw = gv->i[A_KW][0];
        } else if (op == PML_OP_CONV2D) {
            return pml_fail(PML_EFORMAT, "%s: %s: missing attribute kernel (e.g. kernel=3)", r->src,
                            where_node(n));
        } else if (global) {
            a->kh = a->kw = 1;
        }
        if (gv->set[A_STRIDE]) {
            a->sh = gv->i[A_STRIDE][0];
            a->sw = gv->i[A_STRIDE][1];
        } else if (gv->set[A_SH] || gv->set[A_SW]) {
            if (!gv->set[A_SH] || !gv->set[A_SW])
                return pml_fail(PML_EFORMAT, "%s: %s: give both sh and sw (or stride)", r->src,
                                where_node(n));
            a->sh = gv->i[A_SH][0];
            a->sw = gv->i[A_SW][0];
        } else if (pool) {
            /* as in Keras and PyTorch, a pool's stride defaults to its window */
            a->sh = global ? 1 : a->kh;
            a->sw = global ? 1 : a->kw;
        }
        bool has_phw = gv->set[A_PH] || gv->set[A_PW];
        if (gv->set[A_PADDING]) {
            a->pad_mode = gv->pad_mode;
            if (gv->pad_mode == PML_PAD_EXPLICIT && gv->pad_h >= 0) {
                if (has_phw)
                    return pml_fail(PML_EFORMAT, "%s: %s: give padding=N or ph/pw, not both",
                                    r->src, where_node(n));
                a->ph = gv->pad_h;
                a->pw = gv->pad_w;
            } else if (gv->pad_mode != PML_PAD_EXPLICIT && has_phw) {
                return pml_fail(PML_EFORMAT, "%s: %s: ph/pw need padding=explicit (padding is %s)",
                                r->src, where_node(n),
                                gv->pad_mode == PML_PAD_SAME ? "same" : "valid");
            }
        } else if (has_phw) {
            a->pad_mode = PML_PAD_EXPLICIT;
        }
        if (a->pad_mode == PML_PAD_EXPLICIT && has_phw) {
            a->ph = gv->set[A_PH] ? gv->i[A_PH][0] : 0;
            a->pw = gv->set[A_PW] ? gv->i[A_PW][0] : 0;
        }
    }
    if (pool) {
        if (gv->set[A_GLOBAL]) a->global = gv->i[A_GLOBAL][0];
        if (gv->set[A_CEIL]) a->ceil_mode = gv->i[A_CEIL][0];
        if (gv->set[A_COUNT_PAD]) a->count_pad = gv->i[A_COUNT_PAD][0];
    }
    if (gv->set[A_RATE]) a->rate = gv->f[A_RATE];
    if (gv->set[A_EPS]) a->eps = gv->f[A_EPS];
    if (gv->set[A_MOMENTUM]) a->momentum = gv->f[A_MOMENTUM];
    return PML_OK;
}

/* Names with control characters or backslashes are refused: DOT cannot always write them back
 * (a backslash before a quote or at the end of a quoted string changes its meaning). */
static bool bad_name_char(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\') return true;
    return false;
}

/* Reads a node's op and attributes (its inputs come later). */
static pml_status read_node(reader *r, Agnode_t *an, pml_node *n)
{
    const char *name = agnameof(an);
    if (!name || !*name) return pml_fail(PML_EFORMAT, "%s: a node has an empty name", r->src);
    if (bad_name_char(name))
        return pml_fail(PML_EFORMAT,
                        "%s: node '%s': the name holds a backslash or a control character", r->src,
                        P(name));
    if (strlen(name) >= PML_NAME_MAX)
        return pml_fail(PML_EFORMAT, "%s: node '%s': the name is longer than %d characters", r->src,
                        P(name), PML_NAME_MAX - 1);
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    char *op = agget(an, "op");
    if (!op || !*op)
        return pml_fail(PML_EFORMAT,
                        "%s: node '%s' has no op attribute (every node needs one; a node that "
                        "appears only in an edge is a dangling edge)",
                        r->src, P(name));
    n->op = pml_op_from_name(op);
    if (n->op == PML_OP_COUNT) {
        char known[256] = "";
        for (int i = 0; i < PML_OP_COUNT; i++) {
            size_t l = strlen(known);
            snprintf(known + l, sizeof known - l, "%s%s", i ? ", " : "", pml_op_name(i));
        }
        return pml_fail(PML_EFORMAT, "%s: node '%s': unknown op '%s' (ops: %s)", r->src, P(name),
                        P(op), known);
    }
    given gv;
    memset(&gv, 0, sizeof gv);
    for (Agsym_t *sym = agnxtattr(r->ag, AGNODE, NULL); sym; sym = agnxtattr(r->ag, AGNODE, sym)) {
        if (strcmp(sym->name, "op") == 0) continue;
        const char *val = agxget(an, sym);
        if (!val || !*val) continue;
        bool inherited = sym->defval && *sym->defval && strcmp(val, sym->defval) == 0;
        int a = 0;
        while (a < A_COUNT && strcmp(attr_defs[a].name, sym->name) != 0) a++;
        if (a == A_COUNT) {
            if (is_graphviz_attr(sym->name)) continue;
            if (r->ext && in_list(r->ext->node_attrs, sym->name)) continue; /* the caller's */
            char takes[200];
            ops_taking(n->op, takes, sizeof takes);
            return pml_fail(PML_EFORMAT, "%s: %s: unknown attribute '%s' (%s takes: %s)", r->src,
                            where_node(n), P(sym->name), pml_op_name(n->op), takes);
        }
        if (!(attr_defs[a].ops & (1u << n->op))) {
            if (inherited) continue; /* a default from `node [...]` for other ops */
            char takes[200];
            ops_taking(n->op, takes, sizeof takes);
            return pml_fail(PML_EFORMAT,
                            "%s: %s: attribute '%s' does not apply to %s (it takes: %s)", r->src,
                            where_node(n), attr_defs[a].name, pml_op_name(n->op), takes);
        }
        pml_status st = parse_attr(r, n, a, val, &gv);
        if (st != PML_OK) return st;
    }
    return apply_attrs(r, n, &gv);
}

static int node_id(Agnode_t *an)
{
    return ((node_rec *)aggetrec(an, "pml", 0))->id;
}

static int cmp_edge_seq(const void *a, const void *b)
{
    Agedge_t *x = *(Agedge_t *const *)a, *y = *(Agedge_t *const *)b;
    return AGSEQ(x) < AGSEQ(y) ? -1 : AGSEQ(x) > AGSEQ(y);
}

/* Fills n->in[] from the edges into node id. */
static pml_status read_inputs(reader *r, int id)
{
    pml_node *n = &r->g->nodes[id];
    Agnode_t *an = r->nodes[id];
    Agedge_t *edges[PML_MAX_INPUTS];
    int k = 0;
    for (Agedge_t *e = agfstin(r->ag, an); e; e = agnxtin(r->ag, e)) {
        if (k == PML_MAX_INPUTS)
            return pml_fail(PML_EFORMAT, "%s: %s has more than %d inputs", r->src, where_node(n),
                            PML_MAX_INPUTS);
        edges[k++] = e;
    }
    qsort(edges, (size_t)k, sizeof edges[0], cmp_edge_seq); /* file order */
    Agsym_t *isym = agattr(r->ag, AGEDGE, "input", NULL);
    int ngiven = 0;
    int pos[PML_MAX_INPUTS];
    for (int j = 0; j < k; j++) {
        const char *v = isym ? agxget(edges[j], isym) : "";
        pos[j] = -1;
        if (!v || !*v) continue;
        ngiven++;
        if (!parse_int(v, 0, PML_MAX_INPUTS - 1, &pos[j]) || pos[j] >= k)
            return pml_fail(PML_EFORMAT,
                            "%s: edge '%s' -> '%s': input=%s must be an integer in [0, %d] ('%s' "
                            "has %d input%s)",
                            r->src, P(agnameof(agtail(edges[j]))), P(n->name), P(v), k - 1,
                            P(n->name), k, k == 1 ? "" : "s");
    }
    if (ngiven && ngiven < k)
        for (int j = 0; j < k; j++)
            if (pos[j] < 0)
                return pml_fail(PML_EFORMAT,
                                "%s: edge '%s' -> '%s' has no input attribute while other edges "
                                "into '%s' have one (give each an input=K)",
                                r->src, P(agnameof(agtail(edges[j]))), P(n->name), P(n->name));
    int at[PML_MAX_INPUTS];
    for (int j = 0; j < k; j++) at[j] = -1;
    for (int j = 0; j < k; j++) {
        int p = ngiven ? pos[j] : j;
        if (at[p] >= 0)
            return pml_fail(PML_EFORMAT,
                            "%s: edges '%s' -> '%s' and '%s' -> '%s' both have input=%d", r->src,
                            P(agnameof(agtail(edges[at[p]]))), P(n->name),
                            P(agnameof(agtail(edges[j]))), P(n->name), p);
        at[p] = j;
        n->in[p] = node_id(agtail(edges[j]));
    }
    n->nin = k;
    /* edge attributes other than input: Graphviz's own only */
    for (Agsym_t *sym = agnxtattr(r->ag, AGEDGE, NULL); sym; sym = agnxtattr(r->ag, AGEDGE, sym)) {
        if (strcmp(sym->name, "input") == 0 || is_graphviz_attr(sym->name)) continue;
        for (int j = 0; j < k; j++) {
            const char *v = agxget(edges[j], sym);
            if (v && *v)
                return pml_fail(PML_EFORMAT,
                                "%s: edge '%s' -> '%s': unknown attribute '%s' (edges take: input)",
                                r->src, P(agnameof(agtail(edges[j]))), P(n->name), P(sym->name));
        }
    }
    return PML_OK;
}

static int count_syms(Agraph_t *ag, int kind)
{
    int n = 0;
    for (Agsym_t *s = agnxtattr(ag, kind, NULL); s; s = agnxtattr(ag, kind, s)) n++;
    return n;
}

/* Graph attributes: kind, input_shape (required), classes (checked after shape inference). */
static pml_status read_graph_attrs(reader *r, pml_shape *in, int *classes)
{
    *classes = 0;
    /* the kind first: a plan read as a model is "not a model file", not "unknown attribute" */
    const char *kind = want_kind(r), *have = agget(r->ag, "kind");
    if (have && *have && strcmp(have, kind) != 0)
        return pml_fail(PML_EFORMAT, "%s: kind=%s: this is not a %s file (kind=%s)", r->src,
                        P(have), kind, kind);
    if ((!have || !*have) && strcmp(kind, "model") != 0)
        return pml_fail(PML_EFORMAT, "%s: missing graph attribute kind=%s", r->src, kind);
    for (Agsym_t *sym = agnxtattr(r->ag, AGRAPH, NULL); sym; sym = agnxtattr(r->ag, AGRAPH, sym)) {
        const char *v = agxget(r->ag, sym);
        if (!v || !*v) continue;
        if (strcmp(sym->name, "kind") == 0) {
            continue;
        } else if (r->ext && in_list(r->ext->graph_attrs, sym->name)) {
            continue; /* the caller's */
        } else if (strcmp(sym->name, "input_shape") == 0) {
            long c, h, w;
            const char *e;
            if (!(parse_long(v, &c, &e) && *e == 'x' && parse_long(e + 1, &h, &e) && *e == 'x' &&
                  parse_long(e + 1, &w, &e) && !*e && c >= 1 && h >= 1 && w >= 1 && c <= MAX_OUT &&
                  h <= MAX_OUT && w <= MAX_OUT))
                return pml_fail(PML_EFORMAT,
                                "%s: graph attribute input_shape='%s' must be CxHxW (channels x "
                                "height x width, integers in [1, 16777216]), e.g. \"3x224x224\"",
                                r->src, P(v));
            *in = (pml_shape){(int)c, (int)h, (int)w};
        } else if (strcmp(sym->name, "classes") == 0) {
            if (!parse_int(v, 2, MAX_OUT, classes))
                return pml_fail(PML_EFORMAT,
                                "%s: graph attribute classes='%s' must be an integer in [2, "
                                "16777216]",
                                r->src, P(v));
        } else if (!is_graphviz_attr(sym->name)) {
            return pml_fail(PML_EFORMAT,
                            "%s: unknown graph attribute '%s' (a model takes: kind, input_shape, "
                            "classes)",
                            r->src, P(sym->name));
        }
    }
    if (in->c == 0)
        return pml_fail(
            PML_EFORMAT,
            "%s: missing graph attribute input_shape (e.g. graph [input_shape=\"1x28x28\"])",
            r->src);
    return PML_OK;
}

/* The model's name: the digraph's ID, or the file's base name for an anonymous digraph. */
static pml_status model_name(reader *r, char *name)
{
    const char *id = agnameof(r->ag);
    if (id && *id && id[0] != '%') {
        if (bad_name_char(id) || strlen(id) >= PML_NAME_MAX)
            return pml_fail(PML_EFORMAT,
                            "%s: the digraph's name '%s' is longer than %d characters or holds a "
                            "backslash or a control character",
                            r->src, P(id), PML_NAME_MAX - 1);
        strcpy(name, id);
        return PML_OK;
    }
    const char *base = strrchr(r->src, '/');
    base = base ? base + 1 : r->src;
    size_t n = strcspn(base, ".");
    if (n == 0) base = "model", n = 5;
    if (n >= PML_NAME_MAX) n = PML_NAME_MAX - 1;
    memcpy(name, base, n);
    name[n] = 0;
    if (bad_name_char(name)) strcpy(name, "model");
    return PML_OK;
}

static pml_status from_agraph(reader *r)
{
    pml_status st;
    int nn = agnnodes(r->ag);
    if (nn == 0) return pml_fail(PML_EFORMAT, "%s: the graph has no nodes", r->src);
    if (nn > MAX_NODES)
        return pml_fail(PML_EFORMAT, "%s: the graph has %d nodes (at most %d)", r->src, nn,
                        MAX_NODES);
    if (count_syms(r->ag, AGNODE) > MAX_ATTRS || count_syms(r->ag, AGEDGE) > MAX_ATTRS ||
        count_syms(r->ag, AGRAPH) > MAX_ATTRS)
        return pml_fail(PML_EFORMAT, "%s: more than %d distinct attribute names", r->src,
                        MAX_ATTRS);
    char name[PML_NAME_MAX];
    if ((st = model_name(r, name)) != PML_OK) return st;
    pml_graph_init(r->g, name);
    pml_shape in = {0, 0, 0};
    int classes;
    if ((st = read_graph_attrs(r, &in, &classes)) != PML_OK) return st;

    r->nodes = malloc((size_t)nn * sizeof *r->nodes);
    r->g->nodes = calloc((size_t)nn, sizeof *r->g->nodes);
    if (!r->nodes || !r->g->nodes) return pml_fail(PML_ENOMEM, "%s: out of memory", r->src);
    r->g->cap = nn;
    aginit(r->ag, AGNODE, "pml", sizeof(node_rec), 0);
    int id = 0;
    for (Agnode_t *an = agfstnode(r->ag); an; an = agnxtnode(r->ag, an), id++) {
        ((node_rec *)aggetrec(an, "pml", 0))->id = id;
        r->nodes[id] = an;
    }
    r->n = nn;
    for (id = 0; id < nn; id++) {
        if ((st = read_node(r, r->nodes[id], &r->g->nodes[id])) != PML_OK) return st;
        r->g->nnodes = id + 1;
        if (r->g->nodes[id].op == PML_OP_INPUT) r->g->nodes[id].a.shape = in;
    }
    for (id = 0; id < nn; id++)
        if ((st = read_inputs(r, id)) != PML_OK) return st;
    if ((st = pml_graph_finalize(r->g)) != PML_OK) return pml_fail_ctx(st, "%s: ", r->src);
    if (classes && classes != r->g->classes)
        return pml_fail(PML_ESHAPE,
                        "%s: graph attribute classes=%d, but node '%s' gives %d classes", r->src,
                        classes, P(r->g->nodes[r->g->logits].name), r->g->classes);
    return PML_OK;
}

pml_status pml_model_from_agraph(struct Agraph_s *ag, const char *source, pml_graph *g)
{
    return pml_model_from_agraph_ext(ag, source, NULL, g);
}

pml_status pml_model_from_agraph_ext(struct Agraph_s *ag, const char *source,
                                     const pml_model_dot_ext *ext, pml_graph *g)
{
    reader r = {source ? source : "<dot>", ag, g, NULL, 0, ext};
    pml_graph_init(g, NULL);
    pthread_mutex_lock(&cg_mutex);
    pml_status st = from_agraph(&r);
    agclean(ag, AGNODE, "pml");
    pthread_mutex_unlock(&cg_mutex);
    free(r.nodes);
    if (st != PML_OK) {
        pml_graph_free(g);
        pml_graph_init(g, NULL);
    }
    return st;
}

pml_status pml_model_parse_dot(const char *text, size_t len, const char *source, pml_graph *g)
{
    Agraph_t *ag;
    pml_graph_init(g, NULL);
    pml_status st = pml_dot_parse(text, len, source, &ag);
    if (st != PML_OK) return st;
    st = pml_model_from_agraph(ag, source, g);
    pml_dot_free(ag);
    return st;
}

pml_status pml_model_read_dot(const char *path, pml_graph *g)
{
    char *text;
    size_t len;
    pml_graph_init(g, NULL);
    pml_status st = pml_read_file(path, PML_DOT_MAX_BYTES, &text, &len);
    if (st != PML_OK) return st;
    st = pml_model_parse_dot(text, len, path, g);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- the model writer */

/* The shortest decimal that reads back as exactly f; without an exponent, which DOT numerals
 * do not have, unless that takes more than 12 decimals (then quoted). */
static void fmt_float(char *buf, size_t cap, float f)
{
    for (int prec = 0; prec <= 12; prec++) {
        snprintf(buf, cap, "%.*f", prec, (double)f);
        if (strtof(buf, NULL) == f) return;
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, cap, "\"%.*g\"", prec, (double)f);
        if (strtof(buf + 1, NULL) == f) return;
    }
}

static void fmt_pair(char *buf, size_t cap, int a, int b)
{
    if (a == b)
        snprintf(buf, cap, "%d", a);
    else
        snprintf(buf, cap, "\"%dx%d\"", a, b);
}

/* A DOT ID for s (quoted when it must be). Caller holds the cgraph lock. */
static const char *dot_id(const char *s)
{
    return agcanon((char *)s, 0);
}

static const char *pad_name(int mode)
{
    return mode == PML_PAD_SAME ? "same" : "valid";
}

static void write_attrs(FILE *f, const pml_node *n, int id, const pml_model_dot_ext *ext)
{
    const pml_attrs *a = &n->a;
    char b1[32], b2[32];
    fprintf(f, " [op=%s", pml_op_name(n->op));
    switch (n->op) {
    case PML_OP_LINEAR:
        fprintf(f, ", out=%d, act=%s, bias=%d", a->out, a->act == PML_ACT_RELU ? "relu" : "none",
                a->bias ? 1 : 0);
        break;
    case PML_OP_CONV2D:
    case PML_OP_MAXPOOL2D:
    case PML_OP_AVGPOOL2D: {
        bool pool = n->op != PML_OP_CONV2D;
        if (n->op == PML_OP_CONV2D) fprintf(f, ", out=%d", a->out);
        /* a global pool needs no window; one is written only when it is not the reader's default */
        bool window = !(pool && a->global && a->kh == 1 && a->kw == 1 && a->sh == 1 && a->sw == 1 &&
                        a->pad_mode == PML_PAD_VALID);
        if (window) {
            fmt_pair(b1, sizeof b1, a->kh, a->kw);
            fmt_pair(b2, sizeof b2, a->sh, a->sw);
            fprintf(f, ", kernel=%s, stride=%s", b1, b2);
            if (a->pad_mode == PML_PAD_EXPLICIT) {
                fmt_pair(b1, sizeof b1, a->ph, a->pw);
                fprintf(f, ", padding=%s", b1);
            } else {
                fprintf(f, ", padding=%s", pad_name(a->pad_mode));
            }
        }
        if (n->op == PML_OP_CONV2D)
            fprintf(f, ", act=%s, bias=%d", a->act == PML_ACT_RELU ? "relu" : "none",
                    a->bias ? 1 : 0);
        if (pool && a->ceil_mode) fprintf(f, ", ceil_mode=1");
        if (n->op == PML_OP_AVGPOOL2D && a->count_pad) fprintf(f, ", count_pad=1");
        if (pool && a->global) fprintf(f, ", global=1");
        break;
    }
    case PML_OP_BATCHNORM:
        fmt_float(b1, sizeof b1, a->eps);
        fmt_float(b2, sizeof b2, a->momentum);
        fprintf(f, ", eps=%s, momentum=%s", b1, b2);
        break;
    case PML_OP_DROPOUT:
        fmt_float(b1, sizeof b1, a->rate);
        fprintf(f, ", rate=%s", b1);
        break;
    default:
        break;
    }
    if (ext && ext->node_text) {
        char more[2048] = ""; /* plans: a device list of up to 256 parts */
        ext->node_text(ext->ud, id, more, sizeof more);
        fputs(more, f);
    }
    fputs("];\n", f);
}

pml_status pml_model_format_dot(const pml_graph *g, char **text, size_t *len)
{
    return pml_model_format_dot_ext(g, NULL, text, len);
}

pml_status pml_model_format_dot_ext(const pml_graph *g, const pml_model_dot_ext *ext, char **text,
                                    size_t *len)
{
    const char *kind = ext && ext->kind ? ext->kind : "model";
    *text = NULL;
    *len = 0;
    if (!g->finalized)
        return pml_fail(PML_EINVAL, "model '%s': finalize the graph before writing it", g->name);
    if (bad_name_char(g->name))
        return pml_fail(PML_EINVAL,
                        "model '%s': the name cannot be written in DOT (backslash or "
                        "control character)",
                        P(g->name));
    for (int i = 0; i < g->nnodes; i++)
        if (bad_name_char(g->nodes[i].name))
            return pml_fail(PML_EINVAL,
                            "model '%s': node '%s': the name cannot be written in DOT (backslash "
                            "or control character)",
                            P(g->name), P(g->nodes[i].name));
    FILE *f = open_memstream(text, len);
    if (!f) return pml_fail(PML_ENOMEM, "model '%s': out of memory", g->name);
    char params[32], flops[32];
    pml_viz_fmt_count(params, sizeof params, (double)pml_graph_param_count(g));
    pml_viz_fmt_flops(flops, sizeof flops, pml_graph_flops(g));
    const pml_shape in = g->nodes[g->input].out;
    pthread_mutex_lock(&cg_mutex);
    fprintf(f,
            "// pml %s '%s': %s parameters, %s per sample (forward).\n"
            "// One node per operator (op=...), one edge per tensor from producer to consumer;\n"
            "// input=K numbers a consumer's inputs. Format: models/models.h.\n",
            kind, g->name, params, flops);
    fprintf(f, "digraph %s {\n", dot_id(g->name));
    fprintf(f, "    graph [kind=%s, input_shape=\"%dx%dx%d\", classes=%d", dot_id(kind), in.c, in.h,
            in.w, g->classes);
    if (ext && ext->graph_text && *ext->graph_text) fprintf(f, ", %s", ext->graph_text);
    fputs("];\n\n", f);
    for (int i = 0; i < g->nnodes; i++) {
        fprintf(f, "    %s", dot_id(g->nodes[i].name));
        write_attrs(f, &g->nodes[i], i, ext);
    }
    fputc('\n', f);
    for (int i = 0; i < g->nnodes; i++) {
        const pml_node *n = &g->nodes[i];
        for (int j = 0; j < n->nin; j++) {
            fprintf(f, "    %s -> ", dot_id(g->nodes[n->in[j]].name));
            fputs(dot_id(n->name), f);
            if (n->nin > 1) fprintf(f, " [input=%d]", j);
            fputs(";\n", f);
        }
    }
    fputs("}\n", f);
    pthread_mutex_unlock(&cg_mutex);
    if (fclose(f) != 0 || !*text) {
        free(*text);
        *text = NULL;
        *len = 0;
        return pml_fail(PML_ENOMEM, "model '%s': out of memory", g->name);
    }
    return PML_OK;
}

pml_status pml_model_write_dot(const pml_graph *g, const char *path)
{
    char *text;
    size_t len;
    pml_status st = pml_model_format_dot(g, &text, &len);
    if (st != PML_OK) return st;
    st = pml_write_file_atomic(path, text, len);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- loading */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

bool pml_model_is_file(const char *model)
{
    return ends_with(model, ".dot") || ends_with(model, ".gv") || strchr(model, '/') != NULL;
}

pml_status pml_model_load(const char *model, pml_graph *g)
{
    if (pml_model_is_file(model)) return pml_model_read_dot(model, g);
    return pml_model_build(model, g);
}
