/* pml — DOT files: the one reader and writer every pml graph goes through (models here, machines
 * and plans in the planner, drawings in viz.c). Reading parses the text with Graphviz's cgraph,
 * under one lock and with its messages caught, into a plain snapshot (pml_dot): the graph's name
 * and attributes, its nodes and edges in file order with the attributes that have a value.
 * Readers walk the snapshot and never see cgraph. Writing: DOT IDs quoted as cgraph quotes them,
 * names DOT can carry both ways, and the shared checks (Graphviz's own attributes, integers).
 * Files are written atomically by the callers (pml_write_file_atomic). */
#include "cg.h"
#include "models/models.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

const char *pml_dot_brief(const char *s)
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
#define P(s) pml_dot_brief(s)

/* ---------------------------------------------------------------- DOT text -> snapshot */

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

/* The snapshot's storage: its arrays and strings, in a list of blocks freed together. */
typedef struct block {
    struct block *next;
    max_align_t data[];
} block;

static void *take(pml_dot *d, size_t bytes)
{
    block *b = malloc(sizeof *b + (bytes ? bytes : 1));
    if (!b) return NULL;
    b->next = d->blocks_;
    d->blocks_ = b;
    return b->data;
}

static const char *keep(pml_dot *d, const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = take(d, n);
    if (c) memcpy(c, s, n);
    return c;
}

static int count_syms(Agraph_t *ag, int kind)
{
    int n = 0;
    for (Agsym_t *s = agnxtattr(ag, kind, NULL); s; s = agnxtattr(ag, kind, s)) n++;
    return n;
}

/* The attributes of obj (graph, node or edge) that have a value, in the order the file declared
 * their names; inherited: the value is a non-empty default from `node [...]` (or `edge [...]`). */
static bool attrs_of(pml_dot *d, Agraph_t *ag, void *obj, int kind, int *n, const pml_dot_attr **out)
{
    int cap = count_syms(ag, kind), k = 0;
    pml_dot_attr *a = take(d, (size_t)(cap ? cap : 1) * sizeof *a);
    if (!a) return false;
    for (Agsym_t *sym = agnxtattr(ag, kind, NULL); sym; sym = agnxtattr(ag, kind, sym)) {
        const char *val = agxget(obj, sym);
        if (!val || !*val) continue;
        a[k].name = keep(d, sym->name);
        a[k].value = keep(d, val);
        a[k].inherited = kind != AGRAPH && sym->defval && *sym->defval && strcmp(val, sym->defval) == 0;
        if (!a[k].name || !a[k].value) return false;
        k++;
    }
    *n = k;
    *out = a;
    return true;
}

typedef struct node_rec {
    Agrec_t h;
    int id;
} node_rec;

static int cmp_edge_seq(const void *a, const void *b)
{
    Agedge_t *x = *(Agedge_t *const *)a, *y = *(Agedge_t *const *)b;
    return AGSEQ(x) < AGSEQ(y) ? -1 : AGSEQ(x) > AGSEQ(y);
}

/* Fills d from ag; caller holds the lock. */
static pml_status snapshot(Agraph_t *ag, pml_dot *d)
{
    const char *id = agnameof(ag);
    if (id && *id && id[0] != '%' && !(d->name = keep(d, id))) goto nomem;
    d->nsyms[0] = count_syms(ag, AGRAPH);
    d->nsyms[1] = count_syms(ag, AGNODE);
    d->nsyms[2] = count_syms(ag, AGEDGE);
    if (d->nsyms[0] > PML_DOT_MAX_ATTRS || d->nsyms[1] > PML_DOT_MAX_ATTRS ||
        d->nsyms[2] > PML_DOT_MAX_ATTRS)
        return pml_fail(PML_EFORMAT, "%s: more than %d distinct attribute names", d->source,
                        PML_DOT_MAX_ATTRS);
    if (!attrs_of(d, ag, ag, AGRAPH, &d->nattr, &d->attr)) goto nomem;
    const int nn = agnnodes(ag), ne = agnedges(ag);
    if (nn > PML_DOT_MAX_NODES || ne > PML_DOT_MAX_NODES)
        return pml_fail(PML_EFORMAT, "%s: %d nodes and %d edges (at most %d of each)", d->source,
                        nn, ne, PML_DOT_MAX_NODES);
    pml_dot_node *nodes = take(d, (size_t)(nn ? nn : 1) * sizeof *nodes);
    pml_dot_edge *edges = take(d, (size_t)(ne ? ne : 1) * sizeof *edges);
    Agedge_t **order = malloc((size_t)(ne ? ne : 1) * sizeof *order);
    if (!nodes || !edges || !order) {
        free(order);
        goto nomem;
    }
    aginit(ag, AGNODE, "pmldot", sizeof(node_rec), 0);
    int k = 0;
    bool ok = true;
    for (Agnode_t *an = agfstnode(ag); an && ok; an = agnxtnode(ag, an), k++) {
        ((node_rec *)aggetrec(an, "pmldot", 0))->id = k;
        nodes[k].name = keep(d, agnameof(an));
        ok = nodes[k].name && attrs_of(d, ag, an, AGNODE, &nodes[k].nattr, &nodes[k].attr);
    }
    int m = 0;
    for (Agnode_t *an = agfstnode(ag); an && ok; an = agnxtnode(ag, an))
        for (Agedge_t *e = agfstout(ag, an); e && m < ne; e = agnxtout(ag, e)) order[m++] = e;
    qsort(order, (size_t)m, sizeof *order, cmp_edge_seq); /* file order */
    for (int i = 0; i < m && ok; i++) {
        edges[i].tail = ((node_rec *)aggetrec(agtail(order[i]), "pmldot", 0))->id;
        edges[i].head = ((node_rec *)aggetrec(aghead(order[i]), "pmldot", 0))->id;
        ok = attrs_of(d, ag, order[i], AGEDGE, &edges[i].nattr, &edges[i].attr);
    }
    agclean(ag, AGNODE, "pmldot");
    free(order);
    if (!ok) goto nomem;
    d->nodes = nodes;
    d->nnodes = nn;
    d->edges = edges;
    d->nedges = m;
    return PML_OK;
nomem:
    return pml_fail(PML_ENOMEM, "%s: out of memory reading the DOT graph", d->source);
}

pml_status pml_dot_parse(const char *text, size_t len, const char *source, pml_dot *d)
{
    memset(d, 0, sizeof *d);
    if (!source) source = "<dot>";
    if (!(d->source = keep(d, source))) return pml_fail(PML_ENOMEM, "out of memory");
    pml_status st = PML_OK;
    if (len > PML_DOT_MAX_BYTES) {
        st = pml_fail(PML_EFORMAT, "%s: too large for a DOT file (%zu bytes, at most %u)", source,
                      len, PML_DOT_MAX_BYTES);
        goto out;
    }
    size_t bad = text_check((const unsigned char *)text, len);
    if (bad < len) {
        st = pml_fail(PML_EFORMAT,
                      "%s: not a DOT file: byte %zu (0x%02x) is not UTF-8 text (binary data?)",
                      source, bad, (unsigned char)text[bad]);
        goto out;
    }
    Agiodisc_t io = AgIoDisc;
    io.afread = mem_read;
    Agdisc_t disc = {&AgMemDisc, &AgIdDisc, &io};
    mem_reader r = {text, len, 0};
    char file[256];
    snprintf(file, sizeof file, "%s", source);

    pml__cg_begin();
    agsetfile(file);
    Agraph_t *g = agread(&r, &disc);
    Agraph_t *more = g ? agread(&r, &disc) : NULL; /* drains the input; a second graph is an error */
    if (aaglex_destroy) aaglex_destroy();
    if (pml__cg_count())
        st = pml_fail(PML_EFORMAT, "%s: %s", source, pml__cg_first(file));
    else if (!g)
        st = pml_fail(PML_EFORMAT, "%s: no graph in the file (it is empty or holds only comments)",
                      source);
    else if (more)
        st = pml_fail(PML_EFORMAT, "%s: holds more than one graph ('%s' and '%s'); one is allowed",
                      source, P(agnameof(g)), P(agnameof(more)));
    else if (!agisdirected(g))
        st = pml_fail(PML_EFORMAT, "%s: '%s' is an undirected graph; pml graphs are digraphs",
                      source, P(agnameof(g)));
    if (st == PML_OK) st = snapshot(g, d);
    if (more) agclose(more);
    if (g) agclose(g);
    static char none[] = "<none>";
    agsetfile(none);
    pml__cg_end();
out:
    if (st != PML_OK) pml_dot_free(d);
    return st;
}

pml_status pml_dot_read(const char *path, pml_dot *d)
{
    char *text;
    size_t len;
    memset(d, 0, sizeof *d);
    pml_status st = pml_read_file(path, PML_DOT_MAX_BYTES, &text, &len);
    if (st != PML_OK) return st;
    st = pml_dot_parse(text, len, path, d);
    free(text);
    return st;
}

void pml_dot_free(pml_dot *d)
{
    if (!d) return;
    for (block *b = d->blocks_, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    memset(d, 0, sizeof *d);
}

const char *pml_dot_get(int nattr, const pml_dot_attr *attr, const char *name)
{
    for (int i = 0; i < nattr; i++)
        if (strcmp(attr[i].name, name) == 0) return attr[i].value;
    return NULL;
}

const char *pml_dot_kind(const pml_dot *d)
{
    const char *k = pml_dot_get(d->nattr, d->attr, "kind");
    return k ? k : "model";
}

/* ---------------------------------------------------------------- shared checks */

/* Graphviz's own attributes (graphviz.org/doc/info/attrs.html): a pml file may carry them for
 * looks; readers ignore them. Any other attribute pml does not know is an error (a typo). */
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

bool pml_dot_is_graphviz_attr(const char *name)
{
    for (size_t i = 0; i < sizeof graphviz_attrs / sizeof graphviz_attrs[0]; i++)
        if (strcmp(graphviz_attrs[i], name) == 0) return true;
    return false;
}

bool pml_dot_name_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\') return false;
    return true;
}

bool pml_dot_int(const char *s, long lo, long hi, int *v)
{
    const char *p = s;
    if (*p == '-') p++;
    if (*p < '0' || *p > '9') return false;
    errno = 0;
    char *e;
    long x = strtol(s, &e, 10);
    if (errno || *e || x < lo || x > hi) return false;
    *v = (int)x;
    return true;
}

/* ---------------------------------------------------------------- writing */

static bool is_keyword(const char *s)
{
    static const char *const kw[] = {"node", "edge", "strict", "graph", "digraph", "subgraph"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (strcasecmp(s, kw[i]) == 0) return true;
    return false;
}

/* As cgraph's agcanon: unquoted when s is an ID (letters, digits, '_' and non-ASCII bytes, not
 * starting with a digit) or a numeral and not a keyword; else quoted with '"' escaped. */
const char *pml_dot_id(const char *s, char *buf, size_t cap)
{
    if (!*s) return "\"\"";
    size_t o = 0;
    bool needs_quotes = false, dot_seen = false;
    unsigned char c0 = (unsigned char)*s;
    bool maybe_num = isdigit(c0) || c0 == '.' || c0 == '-';
    int cnt = 0;
    if (o < cap) buf[o++] = '"';
    for (const char *p = s; *p; p++, cnt++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            if (o < cap) buf[o++] = '\\';
            needs_quotes = true;
        } else if (maybe_num) {
            if (c == '-') {
                if (cnt) maybe_num = false, needs_quotes = true;
            } else if (c == '.') {
                if (dot_seen)
                    maybe_num = false, needs_quotes = true;
                else
                    dot_seen = true;
            } else if (!isdigit(c)) {
                maybe_num = false, needs_quotes = true;
            }
        } else if (!(isalnum(c) || c == '_' || c >= 0x80)) {
            needs_quotes = true;
        }
        if (o < cap) buf[o++] = (char)c;
    }
    if (o + 1 >= cap) { /* too long for buf: the caller's buffer is sized for names */
        if (cap) buf[0] = 0;
        return buf;
    }
    buf[o++] = '"';
    buf[o] = 0;
    if (needs_quotes || (cnt == 1 && (*s == '.' || *s == '-')) || is_keyword(s)) return buf;
    return s;
}

void pml_dot_put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void pml_dot_source_name(const char *source, const char *fallback, char *name, size_t cap)
{
    if (!cap) return;
    const char *base = strrchr(source, '/');
    base = base ? base + 1 : source;
    size_t n = strcspn(base, ".");
    if (n == 0) base = fallback, n = strlen(fallback);
    if (n >= cap) n = cap - 1;
    memcpy(name, base, n);
    name[n] = 0;
    if (!pml_dot_name_ok(name)) snprintf(name, cap, "%s", fallback);
}
