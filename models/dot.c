/* pml — models as DOT files: the model reader (a DOT snapshot, dotfile.c -> pml_graph), the
 * model writer, and pml_model_load (zoo spec or file). The format is documented in models.h. */
#include "models/models.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P(s) pml_dot_brief(s)

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

enum { K_INT, K_BOOL, K_FLOAT, K_PAIR, K_PAD, K_ACT, K_FN };

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
    A_ALWAYS,
    A_SEED,
    A_EPS,
    A_MOMENTUM,
    A_BATCH_STATS,
    A_GROUPS,
    A_DILATION,
    A_AXIS,
    A_ADDEND,
    A_DEPTH,
    A_KD,
    A_SD,
    A_DD,
    A_PD,
    A_FN,
    A_ALPHA,
    A_BETA,
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
    [A_ALWAYS] = {"always", K_BOOL, OPB(DROPOUT)},
    [A_SEED] = {"seed", K_INT, OPB(DROPOUT)},
    [A_EPS] = {"eps", K_FLOAT, OPB(BATCHNORM)},
    [A_MOMENTUM] = {"momentum", K_FLOAT, OPB(BATCHNORM)},
    [A_BATCH_STATS] = {"batch_stats", K_BOOL, OPB(BATCHNORM)},
    [A_GROUPS] = {"groups", K_INT, OPB(CONV2D)},
    [A_DILATION] = {"dilation", K_PAIR, OPB(CONV2D) | OPB(MAXPOOL2D)},
    [A_AXIS] = {"axis", K_INT, OPB(CONCAT) | OPB(MATMUL)},
    [A_ADDEND] = {"addend", K_BOOL, OPB(ADD)},
    [A_DEPTH] = {"depth", K_INT, WINDOWED},
    [A_KD] = {"kd", K_INT, WINDOWED},
    [A_SD] = {"sd", K_INT, WINDOWED},
    [A_DD] = {"dd", K_INT, OPB(CONV2D) | OPB(MAXPOOL2D)},
    [A_PD] = {"pd", K_INT, WINDOWED},
    [A_FN] = {"fn", K_FN, OPB(ACTIVATION)},
    [A_ALPHA] = {"alpha", K_FLOAT, OPB(ACTIVATION)},
    [A_BETA] = {"beta", K_FLOAT, OPB(ACTIVATION)},
};

static const char *pad_name(int mode)
{
    return mode == PML_PAD_SAME ? "same" : mode == PML_PAD_SAME_LOWER ? "same_lower" : "valid";
}

/* One node's attributes as given. */
typedef struct given {
    bool set[A_COUNT];
    int i[A_COUNT][2]; /* K_INT, K_BOOL, K_ACT: [0]; K_PAIR: both; K_PAD: mode, ph, pw below */
    int pad_mode, pad_h, pad_w;
    float f[A_COUNT];
} given;

typedef struct reader {
    const char *src;
    const pml_dot *d;
    pml_graph *g;
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

#define MAX_NODES 16384

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
            ok = pml_dot_int(val, 1, MAX_OUT, &gv->i[a][0]);
            expect = "an integer in [1, 16777216]";
        } else if (a == A_GROUPS) {
            ok = pml_dot_int(val, 1, MAX_OUT, &gv->i[a][0]);
            expect = "an integer in [1, 16777216]";
        } else if (a == A_AXIS) {
            ok = pml_dot_int(val, 0, 2, &gv->i[a][0]);
            expect = "0 (channels), 1 (rows) or 2 (columns)";
        } else if (a == A_DEPTH) {
            ok = pml_dot_int(val, 1, MAX_OUT, &gv->i[a][0]);
            expect = "an integer in [1, 16777216]";
        } else if (a == A_PH || a == A_PW || a == A_PD) {
            ok = pml_dot_int(val, 0, MAX_DIM, &gv->i[a][0]);
            expect = "an integer in [0, 4096]";
        } else if (a == A_SEED) {
            ok = pml_dot_int(val, -1, INT_MAX, &gv->i[a][0]);
            expect = "-1 (pml's masks) or a seed in [0, 2147483647]";
        } else {
            ok = pml_dot_int(val, 1, MAX_DIM, &gv->i[a][0]);
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
    case K_FN:
        gv->i[a][0] = pml_fn_parse(val);
        ok = gv->i[a][0] < PML_FN_COUNT;
        expect = "sigmoid, tanh, leaky_relu, elu, selu, softplus, softsign, hard_sigmoid, "
                 "thresholded_relu, hard_swish, silu or clip";
        break;
    case K_PAIR:
        ok = parse_pair(val, 1, MAX_DIM, &gv->i[a][0], &gv->i[a][1]);
        expect = "N or NxM, integers in [1, 4096]";
        break;
    case K_PAD:
        if (strcmp(val, "same") == 0) {
            gv->pad_mode = PML_PAD_SAME;
            ok = true;
        } else if (strcmp(val, "same_lower") == 0) {
            gv->pad_mode = PML_PAD_SAME_LOWER;
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
        } else if (a == A_ALPHA || a == A_BETA) {
            ok = parse_float(val, -FLT_MAX, FLT_MAX, false, false, &gv->f[a]);
            expect = "a finite number";
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
                                pad_name(gv->pad_mode));
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
    if (gv->set[A_GROUPS]) a->groups = gv->i[A_GROUPS][0];
    if (gv->set[A_DILATION]) {
        a->dh = gv->i[A_DILATION][0];
        a->dw = gv->i[A_DILATION][1];
    }
    if (gv->set[A_AXIS]) a->axis = gv->i[A_AXIS][0];
    if (gv->set[A_DEPTH]) a->depth = gv->i[A_DEPTH][0];
    if (gv->set[A_KD]) a->kd = gv->i[A_KD][0];
    if (gv->set[A_SD]) a->sd = gv->i[A_SD][0];
    if (gv->set[A_DD]) a->dd = gv->i[A_DD][0];
    if (gv->set[A_PD]) a->pd = gv->i[A_PD][0];
    if ((gv->set[A_KD] || gv->set[A_SD] || gv->set[A_DD] || gv->set[A_PD]) && !a->depth)
        return pml_fail(PML_EFORMAT, "%s: %s: kd, sd, dd and pd need depth (a 3-D window)",
                        r->src, where_node(n));
    if (gv->set[A_PD] && a->pad_mode != PML_PAD_EXPLICIT)
        return pml_fail(PML_EFORMAT, "%s: %s: pd needs padding=explicit", r->src, where_node(n));
    if (gv->set[A_ADDEND]) a->addend = gv->i[A_ADDEND][0];
    if (gv->set[A_RATE]) a->rate = gv->f[A_RATE];
    if (gv->set[A_ALWAYS]) a->always = gv->i[A_ALWAYS][0];
    if (gv->set[A_SEED]) a->seed = gv->i[A_SEED][0];
    if (gv->set[A_EPS]) a->eps = gv->f[A_EPS];
    if (gv->set[A_MOMENTUM]) a->momentum = gv->f[A_MOMENTUM];
    if (gv->set[A_BATCH_STATS]) a->batch_stats = gv->i[A_BATCH_STATS][0];
    if (n->op == PML_OP_ACTIVATION) {
        if (!gv->set[A_FN])
            return pml_fail(PML_EFORMAT, "%s: %s: fn is missing (sigmoid, tanh, leaky_relu, ...)",
                            r->src, where_node(n));
        a->fn = gv->i[A_FN][0];
        pml_fn_defaults(a->fn, &a->alpha, &a->beta);
        if (gv->set[A_ALPHA]) a->alpha = gv->f[A_ALPHA];
        if (gv->set[A_BETA]) a->beta = gv->f[A_BETA];
    }
    return PML_OK;
}

/* Reads a node's op and attributes (its inputs come later). */
static pml_status read_node(reader *r, const pml_dot_node *dn, pml_node *n)
{
    const char *name = dn->name;
    if (!name || !*name) return pml_fail(PML_EFORMAT, "%s: a node has an empty name", r->src);
    if (!pml_dot_name_ok(name))
        return pml_fail(PML_EFORMAT,
                        "%s: node '%s': the name holds a backslash or a control character", r->src,
                        P(name));
    if (strlen(name) >= PML_NAME_MAX)
        return pml_fail(PML_EFORMAT, "%s: node '%s': the name is longer than %d characters", r->src,
                        P(name), PML_NAME_MAX - 1);
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    const char *op = pml_dot_get(dn->nattr, dn->attr, "op");
    if (!op)
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
    for (int k = 0; k < dn->nattr; k++) {
        const pml_dot_attr *at = &dn->attr[k];
        if (strcmp(at->name, "op") == 0) continue;
        int a = 0;
        while (a < A_COUNT && strcmp(attr_defs[a].name, at->name) != 0) a++;
        if (a == A_COUNT) {
            if (pml_dot_is_graphviz_attr(at->name)) continue;
            if (r->ext && in_list(r->ext->node_attrs, at->name)) continue; /* the caller's */
            char takes[200];
            ops_taking(n->op, takes, sizeof takes);
            return pml_fail(PML_EFORMAT, "%s: %s: unknown attribute '%s' (%s takes: %s)", r->src,
                            where_node(n), P(at->name), pml_op_name(n->op), takes);
        }
        if (!(attr_defs[a].ops & (1u << n->op))) {
            if (at->inherited) continue; /* a default from `node [...]` for other ops */
            char takes[200];
            ops_taking(n->op, takes, sizeof takes);
            return pml_fail(PML_EFORMAT,
                            "%s: %s: attribute '%s' does not apply to %s (it takes: %s)", r->src,
                            where_node(n), attr_defs[a].name, pml_op_name(n->op), takes);
        }
        pml_status st = parse_attr(r, n, a, at->value, &gv);
        if (st != PML_OK) return st;
    }
    return apply_attrs(r, n, &gv);
}

/* Fills n->in[] from the edges into node id, in file order. */
static pml_status read_inputs(reader *r, int id)
{
    pml_node *n = &r->g->nodes[id];
    const pml_dot *d = r->d;
    const pml_dot_edge *edges[PML_MAX_INPUTS];
    int k = 0;
    for (int e = 0; e < d->nedges; e++) {
        if (d->edges[e].head != id) continue;
        if (k == PML_MAX_INPUTS)
            return pml_fail(PML_EFORMAT, "%s: %s has more than %d inputs", r->src, where_node(n),
                            PML_MAX_INPUTS);
        edges[k++] = &d->edges[e];
    }
#define TAIL(j) P(d->nodes[edges[j]->tail].name)
    int ngiven = 0;
    int pos[PML_MAX_INPUTS];
    for (int j = 0; j < k; j++) {
        const char *v = pml_dot_get(edges[j]->nattr, edges[j]->attr, "input");
        pos[j] = -1;
        if (!v) continue;
        ngiven++;
        if (!pml_dot_int(v, 0, PML_MAX_INPUTS - 1, &pos[j]) || pos[j] >= k)
            return pml_fail(PML_EFORMAT,
                            "%s: edge '%s' -> '%s': input=%s must be an integer in [0, %d] ('%s' "
                            "has %d input%s)",
                            r->src, TAIL(j), P(n->name), P(v), k - 1, P(n->name), k,
                            k == 1 ? "" : "s");
    }
    if (ngiven && ngiven < k)
        for (int j = 0; j < k; j++)
            if (pos[j] < 0)
                return pml_fail(PML_EFORMAT,
                                "%s: edge '%s' -> '%s' has no input attribute while other edges "
                                "into '%s' have one (give each an input=K)",
                                r->src, TAIL(j), P(n->name), P(n->name));
    int at[PML_MAX_INPUTS];
    for (int j = 0; j < k; j++) at[j] = -1;
    for (int j = 0; j < k; j++) {
        int p = ngiven ? pos[j] : j;
        if (at[p] >= 0)
            return pml_fail(PML_EFORMAT,
                            "%s: edges '%s' -> '%s' and '%s' -> '%s' both have input=%d", r->src,
                            TAIL(at[p]), P(n->name), TAIL(j), P(n->name), p);
        at[p] = j;
        n->in[p] = edges[j]->tail;
    }
    n->nin = k;
    /* edge attributes other than input: Graphviz's own only */
    for (int j = 0; j < k; j++)
        for (int a = 0; a < edges[j]->nattr; a++) {
            const char *name = edges[j]->attr[a].name;
            if (strcmp(name, "input") == 0 || pml_dot_is_graphviz_attr(name)) continue;
            return pml_fail(PML_EFORMAT,
                            "%s: edge '%s' -> '%s': unknown attribute '%s' (edges take: input)",
                            r->src, TAIL(j), P(n->name), P(name));
        }
#undef TAIL
    return PML_OK;
}

/* Graph attributes: kind, input_shape (required), classes (checked after shape inference). */
static pml_status read_graph_attrs(reader *r, pml_shape *in, int *depth, int *classes)
{
    *classes = 0;
    *depth = 0;
    /* the kind first: a plan read as a model is "not a model file", not "unknown attribute" */
    const pml_dot *d = r->d;
    const char *kind = want_kind(r), *have = pml_dot_get(d->nattr, d->attr, "kind");
    if (have && strcmp(have, kind) != 0)
        return pml_fail(PML_EFORMAT, "%s: kind=%s: this is not a %s file (kind=%s)", r->src,
                        P(have), kind, kind);
    if (!have && strcmp(kind, "model") != 0)
        return pml_fail(PML_EFORMAT, "%s: missing graph attribute kind=%s", r->src, kind);
    for (int k = 0; k < d->nattr; k++) {
        const pml_dot_attr *sym = &d->attr[k];
        const char *v = sym->value;
        if (strcmp(sym->name, "kind") == 0) {
            continue;
        } else if (r->ext && in_list(r->ext->graph_attrs, sym->name)) {
            continue; /* the caller's */
        } else if (strcmp(sym->name, "input_shape") == 0) {
            long c, h, w, dp = 0;
            const char *e;
            bool ok = parse_long(v, &c, &e) && *e == 'x' && parse_long(e + 1, &h, &e) &&
                      *e == 'x' && parse_long(e + 1, &w, &e);
            if (ok && *e == 'x') { /* CxDxHxW: D planes (3-D) */
                dp = h, h = w;
                ok = parse_long(e + 1, &w, &e) && dp >= 1 && dp <= MAX_OUT && h <= MAX_OUT / dp;
                h *= dp;
            }
            if (!(ok && !*e && c >= 1 && h >= 1 && w >= 1 && c <= MAX_OUT && h <= MAX_OUT &&
                  w <= MAX_OUT))
                return pml_fail(PML_EFORMAT,
                                "%s: graph attribute input_shape='%s' must be CxHxW (channels x "
                                "height x width, integers in [1, 16777216]), e.g. \"3x224x224\", "
                                "or CxDxHxW (D planes)",
                                r->src, P(v));
            *in = (pml_shape){(int)c, (int)h, (int)w};
            *depth = (int)dp;
        } else if (strcmp(sym->name, "classes") == 0) {
            if (!pml_dot_int(v, 2, MAX_OUT, classes))
                return pml_fail(PML_EFORMAT,
                                "%s: graph attribute classes='%s' must be an integer in [2, "
                                "16777216]",
                                r->src, P(v));
        } else if (!pml_dot_is_graphviz_attr(sym->name)) {
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
    const char *id = r->d->name;
    if (id && *id) {
        if (!pml_dot_name_ok(id) || strlen(id) >= PML_NAME_MAX)
            return pml_fail(PML_EFORMAT,
                            "%s: the digraph's name '%s' is longer than %d characters or holds a "
                            "backslash or a control character",
                            r->src, P(id), PML_NAME_MAX - 1);
        strcpy(name, id);
        return PML_OK;
    }
    pml_dot_source_name(r->src, "model", name, PML_NAME_MAX);
    return PML_OK;
}

static pml_status from_dot(reader *r)
{
    pml_status st;
    const int nn = r->d->nnodes;
    if (nn == 0) return pml_fail(PML_EFORMAT, "%s: the graph has no nodes", r->src);
    if (nn > MAX_NODES)
        return pml_fail(PML_EFORMAT, "%s: the graph has %d nodes (at most %d)", r->src, nn,
                        MAX_NODES);
    char name[PML_NAME_MAX];
    if ((st = model_name(r, name)) != PML_OK) return st;
    pml_graph_init(r->g, name);
    pml_shape in = {0, 0, 0};
    int classes, depth;
    if ((st = read_graph_attrs(r, &in, &depth, &classes)) != PML_OK) return st;

    r->g->nodes = calloc((size_t)nn, sizeof *r->g->nodes);
    if (!r->g->nodes) return pml_fail(PML_ENOMEM, "%s: out of memory", r->src);
    r->g->cap = nn;
    for (int id = 0; id < nn; id++) {
        if ((st = read_node(r, &r->d->nodes[id], &r->g->nodes[id])) != PML_OK) return st;
        r->g->nnodes = id + 1;
        if (r->g->nodes[id].op == PML_OP_INPUT) {
            r->g->nodes[id].a.shape = in;
            r->g->nodes[id].a.depth = depth;
        }
    }
    for (int id = 0; id < nn; id++)
        if ((st = read_inputs(r, id)) != PML_OK) return st;
    if ((st = pml_graph_finalize(r->g)) != PML_OK) return pml_fail_ctx(st, "%s: ", r->src);
    for (int id = 0; id < nn; id++) /* input_shape is the one input's shape */
        if (r->g->nodes[id].op == PML_OP_INPUT && id != r->g->input)
            return pml_fail(PML_EFORMAT,
                            "%s: nodes '%s' and '%s' are both inputs; a model file has one (its "
                            "input_shape)",
                            r->src, P(r->g->nodes[r->g->input].name), P(r->g->nodes[id].name));
    if (classes && classes != r->g->classes)
        return pml_fail(PML_ESHAPE,
                        "%s: graph attribute classes=%d, but node '%s' gives %d classes", r->src,
                        classes, P(r->g->nodes[r->g->logits].name), r->g->classes);
    return PML_OK;
}

pml_status pml_model_from_dot(const pml_dot *d, pml_graph *g)
{
    return pml_model_from_dot_ext(d, NULL, g);
}

pml_status pml_model_from_dot_ext(const pml_dot *d, const pml_model_dot_ext *ext, pml_graph *g)
{
    reader r = {d->source ? d->source : "<dot>", d, g, ext};
    pml_graph_init(g, NULL);
    pml_status st = from_dot(&r);
    if (st != PML_OK) {
        pml_graph_free(g);
        pml_graph_init(g, NULL);
    }
    return st;
}

pml_status pml_model_parse_dot(const char *text, size_t len, const char *source, pml_graph *g)
{
    pml_dot d;
    pml_graph_init(g, NULL);
    pml_status st = pml_dot_parse(text, len, source, &d);
    if (st != PML_OK) return st;
    st = pml_model_from_dot(&d, g);
    pml_dot_free(&d);
    return st;
}

/* A saved model (pml train --save; runtime/ckpt.c writes it): a header, the model's DOT text,
 * then its weights, which are not the model's business here. *is: the file is one. */
static pml_status read_saved(const char *path, pml_graph *g, bool *is)
{
    *is = false;
    FILE *f = fopen(path, "rb");
    if (!f) return PML_OK; /* pml_read_file says why */
    char line[256];
    pml_status st = PML_OK;
    if (!fgets(line, sizeof line, f) ||
        (strcmp(line, PML_SAVED_MAGIC "\n") != 0 && strcmp(line, PML_SAVED_MAGIC_V1 "\n") != 0)) {
        fclose(f);
        return PML_OK;
    }
    *is = true;
    unsigned long long n = 0;
    char *text = NULL;
    if (!fgets(line, sizeof line, f) || strncmp(line, "model ", 6) != 0 || !fgets(line, sizeof line, f) ||
        sscanf(line, "dot %llu", &n) != 1 || n > PML_DOT_MAX_BYTES) {
        st = pml_fail(PML_EFORMAT, "saved model '%s': a malformed header", path);
    } else if (!(text = malloc(n + 1))) {
        st = pml_fail(PML_ENOMEM, "out of memory");
    } else if (fread(text, 1, n, f) != n) {
        st = pml_fail(PML_EFORMAT, "saved model '%s': cut short in its model", path);
    } else {
        text[n] = 0;
        st = pml_model_parse_dot(text, n, path, g);
    }
    free(text);
    fclose(f);
    return st;
}

pml_status pml_model_read_dot(const char *path, pml_graph *g)
{
    char *text;
    size_t len;
    pml_graph_init(g, NULL);
    bool saved;
    pml_status st = read_saved(path, g, &saved);
    if (saved) return st;
    st = pml_read_file(path, PML_DOT_MAX_BYTES, &text, &len);
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

/* s as a DOT ID (quoted when it must be) */
static void put_id(FILE *f, const char *s)
{
    char buf[2 * PML_NAME_MAX + 8];
    fputs(pml_dot_id(s, buf, sizeof buf), f);
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
        /* groups and dilation when they are not the reader's default (1) */
        if (n->op == PML_OP_CONV2D && a->groups > 1) fprintf(f, ", groups=%d", a->groups);
        if ((n->op == PML_OP_CONV2D || n->op == PML_OP_MAXPOOL2D) && (a->dh > 1 || a->dw > 1)) {
            fmt_pair(b1, sizeof b1, a->dh > 1 ? a->dh : 1, a->dw > 1 ? a->dw : 1);
            fprintf(f, ", dilation=%s", b1);
        }
        if (a->depth > 0) { /* 3-D */
            fprintf(f, ", depth=%d, kd=%d, sd=%d", a->depth, a->kd, a->sd);
            if (a->dd > 1) fprintf(f, ", dd=%d", a->dd);
            if (a->pad_mode == PML_PAD_EXPLICIT && a->pd) fprintf(f, ", pd=%d", a->pd);
        }
        if (pool && a->ceil_mode) fprintf(f, ", ceil_mode=1");
        if (n->op == PML_OP_AVGPOOL2D && a->count_pad) fprintf(f, ", count_pad=1");
        if (pool && a->global) fprintf(f, ", global=1");
        break;
    }
    case PML_OP_BATCHNORM:
        fmt_float(b1, sizeof b1, a->eps);
        fmt_float(b2, sizeof b2, a->momentum);
        fprintf(f, ", eps=%s, momentum=%s", b1, b2);
        if (a->batch_stats) fprintf(f, ", batch_stats=1");
        break;
    case PML_OP_DROPOUT:
        fmt_float(b1, sizeof b1, a->rate);
        fprintf(f, ", rate=%s", b1);
        if (a->always) fprintf(f, ", always=1");
        if (a->seed >= 0) fprintf(f, ", seed=%d", a->seed);
        break;
    case PML_OP_ACTIVATION:
        fmt_float(b1, sizeof b1, a->alpha);
        fmt_float(b2, sizeof b2, a->beta);
        fprintf(f, ", fn=%s, alpha=%s, beta=%s", pml_fn_name(a->fn), b1, b2);
        break;
    case PML_OP_CONCAT: /* rows or columns; channels are the reader's default */
    case PML_OP_MATMUL:
        if (a->axis != 0) fprintf(f, ", axis=%d", a->axis);
        break;
    case PML_OP_ADD: /* none is the reader's default */
        if (a->addend) fprintf(f, ", addend=1");
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
    if (!pml_dot_name_ok(g->name))
        return pml_fail(PML_EINVAL,
                        "model '%s': the name cannot be written in DOT (backslash or "
                        "control character)",
                        P(g->name));
    for (int i = 0; i < g->nnodes; i++)
        if (!pml_dot_name_ok(g->nodes[i].name))
            return pml_fail(PML_EINVAL,
                            "model '%s': node '%s': the name cannot be written in DOT (backslash "
                            "or control character)",
                            P(g->name), P(g->nodes[i].name));
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == PML_OP_INPUT && i != g->input)
            return pml_fail(PML_EUNSUPPORTED,
                            "model '%s' has several inputs ('%s', '%s'): a model file holds one "
                            "(its input_shape)",
                            P(g->name), P(g->nodes[g->input].name), P(g->nodes[i].name));
    FILE *f = open_memstream(text, len);
    if (!f) return pml_fail(PML_ENOMEM, "model '%s': out of memory", g->name);
    char params[32], flops[32];
    pml_fmt_count(params, sizeof params, (double)pml_graph_param_count(g));
    pml_fmt_si(flops, sizeof flops, pml_graph_flops(g), "FLOP");
    const pml_shape in = g->nodes[g->input].out;
    fprintf(f,
            "// pml %s '%s': %s parameters, %s per sample (forward).\n"
            "// One node per operator (op=...), one edge per tensor from producer to consumer;\n"
            "// input=K numbers a consumer's inputs. Format: models/models.h.\n",
            kind, g->name, params, flops);
    fputs("digraph ", f);
    put_id(f, g->name);
    fputs(" {\n    graph [kind=", f);
    put_id(f, kind);
    const int depth = g->nodes[g->input].a.depth;
    if (depth > 0)
        fprintf(f, ", input_shape=\"%dx%dx%dx%d\", classes=%d", in.c, depth, in.h / depth, in.w,
                g->classes);
    else
        fprintf(f, ", input_shape=\"%dx%dx%d\", classes=%d", in.c, in.h, in.w, g->classes);
    if (ext && ext->graph_text && *ext->graph_text) fprintf(f, ", %s", ext->graph_text);
    fputs("];\n\n", f);
    for (int i = 0; i < g->nnodes; i++) {
        fputs("    ", f);
        put_id(f, g->nodes[i].name);
        write_attrs(f, &g->nodes[i], i, ext);
    }
    fputc('\n', f);
    for (int i = 0; i < g->nnodes; i++) {
        const pml_node *n = &g->nodes[i];
        for (int j = 0; j < n->nin; j++) {
            fputs("    ", f);
            put_id(f, g->nodes[n->in[j]].name);
            fputs(" -> ", f);
            put_id(f, n->name);
            if (n->nin > 1) fprintf(f, " [input=%d]", j);
            fputs(";\n", f);
        }
    }
    fputs("}\n", f);
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

bool pml_model_is_file(const char *model)
{
    return pml_ends_with(model, ".dot") || pml_ends_with(model, ".gv") || pml_model_is_saved(model) ||
           pml_model_is_onnx(model) || strchr(model, '/') != NULL;
}

bool pml_model_is_saved(const char *path) { return pml_ends_with(path, ".pml"); }

bool pml_model_is_onnx(const char *path) { return pml_ends_with(path, ".onnx"); }

pml_status pml_model_load(const char *model, pml_graph *g)
{
    if (pml_model_is_onnx(model)) {
        pml_onnx m;
        pml_status st = pml_onnx_read(model, 1, &m);
        *g = m.g; /* the graph moves out; the rest is freed */
        pml_graph_init(&m.g, NULL);
        pml_onnx_free(&m);
        return st;
    }
    if (pml_model_is_file(model)) return pml_model_read_dot(model, g);
    return pml_model_build(model, g);
}
