/* pml — drawings. A view is a cgraph digraph in pml's drawing style; a view builder turns a pml
 * object into one (here: models; the planner adds plans and machines), and pml_viz_render lays
 * it out with gvc's dot engine, top to bottom, and renders it as svg, png, pdf or laid-out dot. */
#include "cg.h"
#include "models/models.h"

#include <graphviz/gvc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- formats */

static const char *const fmt_ext[PML_VIZ_FORMAT_COUNT] = {"svg", "png", "pdf", "dot"};
/* gvc's renderer names; "dot" is DOT with the layout's positions */
static const char *const fmt_gvc[PML_VIZ_FORMAT_COUNT] = {"svg", "png", "pdf", "dot"};

pml_status pml_viz_format_of(const char *path, pml_viz_format *f)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    if (dot && dot[1])
        for (int i = 0; i < PML_VIZ_FORMAT_COUNT; i++)
            if (strcasecmp(dot + 1, fmt_ext[i]) == 0 ||
                (i == PML_VIZ_DOT && strcasecmp(dot + 1, "gv") == 0)) {
                *f = (pml_viz_format)i;
                return PML_OK;
            }
    return pml_fail(PML_EINVAL, "'%s': unknown drawing format '%s' (use .svg, .png, .pdf or .dot)",
                    pml_dot_brief(path), dot ? pml_dot_brief(dot) : "(no extension)");
}


/* ---------------------------------------------------------------- views */

/* A view is a cgraph graph; its objects are cgraph graphs, subgraphs, nodes and edges. */
#define G(v) ((Agraph_t *)(void *)(v))
#define OBJ(x) ((pml_viz_obj *)(void *)(x))

pml_viz *pml_viz_new(const char *name, const char *title)
{
    pml__cg_begin();
    Agraph_t *v = agopen((char *)(name && *name ? name : "view"), Agdirected, NULL);
    if (v) {
        agattr(v, AGRAPH, "rankdir", "TB");
        agattr(v, AGRAPH, "label", (char *)(title ? title : ""));
        agattr(v, AGRAPH, "labelloc", "t");
        agattr(v, AGRAPH, "fontname", "Helvetica");
        agattr(v, AGRAPH, "fontsize", "16");
        agattr(v, AGRAPH, "nodesep", "0.2");
        agattr(v, AGRAPH, "ranksep", "0.3");
        agattr(v, AGNODE, "shape", "box");
        agattr(v, AGNODE, "style", "rounded,filled");
        agattr(v, AGNODE, "fillcolor", "white");
        agattr(v, AGNODE, "fontname", "Helvetica");
        agattr(v, AGNODE, "fontsize", "10");
        agattr(v, AGNODE, "margin", "0.1,0.04");
        agattr(v, AGNODE, "height", "0.3");
        agattr(v, AGNODE, "label", "\\N");
        agattr(v, AGNODE, "tooltip", "");
        agattr(v, AGEDGE, "fontname", "Helvetica");
        agattr(v, AGEDGE, "fontsize", "8");
        agattr(v, AGEDGE, "fontcolor", "#555555");
        agattr(v, AGEDGE, "color", "#666666");
        agattr(v, AGEDGE, "arrowsize", "0.6");
        agattr(v, AGEDGE, "label", "");
    }
    pml__cg_end();
    return (pml_viz *)(void *)v;
}

pml_viz_obj *pml_viz_root(pml_viz *v) { return OBJ(v); }

pml_viz_obj *pml_viz_cluster(pml_viz *v, const char *id, const char *label)
{
    pml__cg_begin();
    Agraph_t *s = agsubg(G(v), (char *)id, 1);
    if (s) {
        agsafeset(s, "label", (char *)label, "");
        agsafeset(s, "style", "rounded,dashed", "");
        agsafeset(s, "color", "#999999", "");
        agsafeset(s, "fontsize", "12", "");
    }
    pml__cg_end();
    return OBJ(s);
}

pml_viz_obj *pml_viz_node(pml_viz_obj *in, const char *id, const char *label, const char *fill)
{
    pml__cg_begin();
    Agnode_t *n = agnode(G(in), (char *)id, 1);
    if (n) {
        if (label) agset(n, "label", (char *)label);
        if (fill) agset(n, "fillcolor", (char *)fill);
    }
    pml__cg_end();
    return OBJ(n);
}

pml_viz_obj *pml_viz_find_node(pml_viz *v, const char *id)
{
    pml__cg_begin();
    Agnode_t *n = agnode(G(v), (char *)id, 0);
    pml__cg_end();
    return OBJ(n);
}

pml_viz_obj *pml_viz_edge(pml_viz *v, pml_viz_obj *a, pml_viz_obj *b, const char *label)
{
    pml__cg_begin();
    Agnode_t *na = (Agnode_t *)(void *)a, *nb = (Agnode_t *)(void *)b;
    Agedge_t *e = agfstout(G(v), na);
    while (e && aghead(e) != nb) e = agnxtout(G(v), e); /* one edge per pair */
    if (!e) {
        e = agedge(G(v), na, nb, NULL, 1);
        if (e && label) agset(e, "label", (char *)label);
    }
    pml__cg_end();
    return OBJ(e);
}

pml_viz_obj *pml_viz_find_edge(pml_viz *v, pml_viz_obj *a, pml_viz_obj *b)
{
    pml__cg_begin();
    Agedge_t *e = agedge(G(v), (Agnode_t *)(void *)a, (Agnode_t *)(void *)b, NULL, 0);
    pml__cg_end();
    return OBJ(e);
}

void pml_viz_set(pml_viz_obj *obj, const char *attr, const char *value)
{
    pml__cg_begin();
    agsafeset(obj, (char *)attr, (char *)value, "");
    pml__cg_end();
}

void pml_viz_set_html(pml_viz_obj *obj, const char *attr, const char *html)
{
    pml__cg_begin();
    Agraph_t *root = agroot(obj);
    char *h = agstrdup_html(root, (char *)html);
    if (h) {
        agsafeset(obj, (char *)attr, "", "");
        agset(obj, (char *)attr, h);
        agstrfree(root, h);
    }
    pml__cg_end();
}

const char *pml_viz_get(pml_viz_obj *obj, const char *attr)
{
    pml__cg_begin();
    const char *v = agget(obj, (char *)attr);
    pml__cg_end();
    return v;
}

void pml_viz_free(pml_viz *v)
{
    if (!v) return;
    pml__cg_begin();
    agclose(G(v));
    pml__cg_end();
}

/* ---------------------------------------------------------------- rendering */

static GVC_t *gvc; /* Graphviz's context: plugins loaded once, kept for the process */

pml_status pml_viz_render(pml_viz *view, pml_viz_format f, char **data, size_t *len)
{
    Agraph_t *v = G(view);
    *data = NULL;
    *len = 0;
    if ((unsigned)f >= PML_VIZ_FORMAT_COUNT)
        return pml_fail(PML_EINVAL, "pml_viz_render: format %d is not a drawing format", (int)f);
    pml_status st = PML_OK;
    pml__cg_begin();
    if (!gvc) gvc = gvContext();
    if (!gvc) {
        pml__cg_end();
        return pml_fail(PML_EUNSUPPORTED, "Graphviz could not start (gvContext failed)");
    }
    pml__cg_clear();
    if (gvLayout(gvc, v, "dot") != 0) {
        st = pml_fail(PML_EUNSUPPORTED, "Graphviz could not lay out '%s': %s",
                      pml_dot_brief(agnameof(v)), pml__cg_first(NULL));
    } else {
        char *buf = NULL;
        unsigned int n = 0;
        pml__cg_clear();
        if (gvRenderData(gvc, v, fmt_gvc[f], &buf, &n) != 0 || !buf) {
            st = pml_fail(PML_EUNSUPPORTED, "Graphviz cannot render %s: %s", fmt_ext[f],
                          pml__cg_first(NULL));
        } else {
            *data = malloc((size_t)n + 1);
            if (!*data) {
                st = pml_fail(PML_ENOMEM, "out of memory rendering '%s'",
                              pml_dot_brief(agnameof(v)));
            } else {
                memcpy(*data, buf, n);
                (*data)[n] = 0;
                *len = n;
            }
        }
        if (buf) gvFreeRenderData(buf);
        gvFreeLayout(gvc, v);
    }
    pml__cg_end();
    return st;
}

pml_status pml_viz_write(pml_viz *v, const char *path)
{
    pml_viz_format f;
    pml_status st = pml_viz_format_of(path, &f);
    if (st != PML_OK) return st;
    char *data;
    size_t len;
    if ((st = pml_viz_render(v, f, &data, &len)) != PML_OK) return st;
    st = pml_write_file_atomic(path, data, len);
    free(data);
    return st;
}

/* ---------------------------------------------------------------- blocks (--collapse) */

typedef struct adj {
    int *start, *list; /* consumers of node i: list[start[i] .. start[i+1]) */
} adj;

static bool adj_build(const pml_graph *g, adj *a)
{
    int n = g->nnodes, e = 0;
    for (int i = 0; i < n; i++) e += g->nodes[i].nin;
    a->start = calloc((size_t)n + 1, sizeof *a->start);
    a->list = malloc(((size_t)e + 1) * sizeof *a->list);
    if (!a->start || !a->list) return false;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i].nin; j++) a->start[g->nodes[i].in[j] + 1]++;
    for (int i = 0; i < n; i++) a->start[i + 1] += a->start[i];
    int *fill = calloc((size_t)n, sizeof *fill);
    if (!fill) return false;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i].nin; j++) {
            int u = g->nodes[i].in[j];
            a->list[a->start[u] + fill[u]++] = i;
        }
    free(fill);
    return true;
}

static void adj_free(adj *a)
{
    free(a->start);
    free(a->list);
}

/* name is P or starts with "P." */
static bool under(const char *name, const char *p, size_t plen)
{
    return strncmp(name, p, plen) == 0 && (name[plen] == 0 || name[plen] == '.');
}

typedef struct scratch {
    char *in;   /* member of the candidate block */
    char *seen; /* search marks */
    int *stack;
} scratch;

/* Marks in s->seen what is reachable from node `from` inside the block (forward along consumers
 * or backward along inputs), not passing through `avoid`. */
static void reach(const pml_graph *g, const adj *a, const scratch *s, int from, bool forward,
                  int avoid)
{
    int sp = 0;
    s->stack[sp++] = from;
    while (sp) {
        int u = s->stack[--sp];
        if (forward) {
            for (int k = a->start[u]; k < a->start[u + 1]; k++) {
                int v = a->list[k];
                if (s->in[v] && v != avoid && !s->seen[v]) s->seen[v] = 1, s->stack[sp++] = v;
            }
        } else {
            for (int j = 0; j < g->nodes[u].nin; j++) {
                int v = g->nodes[u].in[j];
                if (s->in[v] && v != avoid && !s->seen[v]) s->seen[v] = 1, s->stack[sp++] = v;
            }
        }
    }
}

/* Is prefix p a block? See pml_model_blocks. */
static bool is_block(const pml_graph *g, const adj *a, scratch *s, const char *p, size_t plen)
{
    int n = g->nnodes, members = 0, merges = 0, entry = -1, exit = -1;
    for (int i = 0; i < n; i++) {
        s->in[i] = under(g->nodes[i].name, p, plen);
        members += s->in[i];
    }
    if (members < 2) return false;
    for (int i = 0; i < n; i++) {
        if (!s->in[i]) continue;
        const pml_node *nd = &g->nodes[i];
        if (nd->op == PML_OP_INPUT || nd->op == PML_OP_SOFTMAX_XENT) return false;
        if (nd->nin >= 2) merges++;
        for (int j = 0; j < nd->nin; j++)
            if (!s->in[nd->in[j]]) {
                if (entry >= 0 && entry != nd->in[j]) return false; /* two ways in */
                entry = nd->in[j];
            }
        bool out = a->start[i] == a->start[i + 1];
        for (int k = a->start[i]; k < a->start[i + 1]; k++) out |= !s->in[a->list[k]];
        if (out) {
            if (exit >= 0) return false; /* two ways out */
            exit = i;
        }
    }
    if (entry < 0 || exit < 0 || merges == 0) return false;
    /* A stage (layer1 = layer1.0 -> layer1.1 -> ...) is a chain of blocks: some member c that
     * every path from the entry to the exit crosses has a merge at or before it and another
     * merge after it. */
    for (int c = 0; c < n; c++) {
        if (!s->in[c] || c == exit) continue;
        memset(s->seen, 0, (size_t)n);
        s->in[entry] = 1; /* search from the entry */
        reach(g, a, s, entry, true, c);
        s->in[entry] = 0;
        if (s->seen[exit]) continue; /* not a cut: the exit is reachable around c */
        memset(s->seen, 0, (size_t)n);
        s->seen[c] = 1;
        reach(g, a, s, c, false, -1);
        bool before = false, after = false;
        for (int i = 0; i < n; i++)
            if (s->seen[i] && s->in[i] && g->nodes[i].nin >= 2) before = true;
        memset(s->seen, 0, (size_t)n);
        reach(g, a, s, c, true, -1);
        for (int i = 0; i < n; i++)
            if (s->seen[i] && s->in[i] && g->nodes[i].nin >= 2) after = true;
        if (before && after) return false;
    }
    return true;
}

int pml_model_blocks(const pml_graph *g, int *block, char (*names)[PML_NAME_MAX])
{
    int n = g->nnodes, nb = 0;
    adj a = {NULL, NULL};
    scratch s = {calloc((size_t)n + 1, 1), calloc((size_t)n + 1, 1),
                 malloc(((size_t)n + 1) * sizeof(int))};
    /* prefixes already judged: name -> block index, or -1 when not a block */
    char(*tried)[PML_NAME_MAX] = malloc(((size_t)n + 1) * 4 * sizeof *tried);
    int *verdict = malloc(((size_t)n + 1) * 4 * sizeof *verdict);
    int ntried = 0, cap = (n + 1) * 4;
    if (!s.in || !s.seen || !s.stack || !tried || !verdict || !adj_build(g, &a)) {
        nb = -1;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        block[i] = -1;
        const char *name = g->nodes[i].name;
        size_t len = strlen(name);
        /* candidate prefixes, shortest first: up to each '.', then the whole name */
        for (size_t plen = 1; plen <= len && block[i] < 0; plen++) {
            if (plen < len && name[plen] != '.') continue;
            int t = 0;
            while (t < ntried && !(strlen(tried[t]) == plen && strncmp(tried[t], name, plen) == 0))
                t++;
            if (t == ntried) {
                if (ntried == cap) break;
                memcpy(tried[t], name, plen);
                tried[t][plen] = 0;
                verdict[t] = -1;
                if (is_block(g, &a, &s, name, plen)) {
                    verdict[t] = nb;
                    memcpy(names[nb], tried[t], plen + 1);
                    nb++;
                }
                ntried++;
            }
            block[i] = verdict[t];
        }
    }
out:
    adj_free(&a);
    free(s.in);
    free(s.seen);
    free(s.stack);
    free(tried);
    free(verdict);
    return nb;
}

/* ---------------------------------------------------------------- the model view */

static const char *op_fill(pml_op_type op)
{
    switch (op) {
    case PML_OP_INPUT:
    case PML_OP_SOFTMAX_XENT:
        return "#e6e6e6";
    case PML_OP_CONV2D:
        return "#cfe2f3";
    case PML_OP_LINEAR:
        return "#fce5cd";
    case PML_OP_MAXPOOL2D:
    case PML_OP_AVGPOOL2D:
        return "#d9ead3";
    case PML_OP_BATCHNORM:
        return "#ead1dc";
    case PML_OP_ADD:
    case PML_OP_CONCAT:
        return "#fff2cc";
    default:
        return "#f8f8f8";
    }
}

static void shape_str(char *buf, size_t cap, pml_shape s)
{
    if (s.h == 1 && s.w == 1)
        snprintf(buf, cap, "%d", s.c);
    else
        snprintf(buf, cap, "%dx%dx%d", s.c, s.h, s.w);
}

/* "3x3/2 pad 1" */
static void window_str(char *buf, size_t cap, const pml_attrs *a)
{
    char k[24], s[24] = "", p[32] = "";
    snprintf(k, sizeof k, "%dx%d", a->kh, a->kw);
    if (a->sh != 1 || a->sw != 1) {
        if (a->sh == a->sw)
            snprintf(s, sizeof s, "/%d", a->sh);
        else
            snprintf(s, sizeof s, "/%dx%d", a->sh, a->sw);
    }
    if (a->pad_mode == PML_PAD_SAME)
        snprintf(p, sizeof p, " same");
    else if (a->pad_mode == PML_PAD_SAME_LOWER)
        snprintf(p, sizeof p, " same_lower");
    else if (a->pad_mode == PML_PAD_EXPLICIT && (a->ph || a->pw)) {
        if (a->ph == a->pw)
            snprintf(p, sizeof p, " pad %d", a->ph);
        else
            snprintf(p, sizeof p, " pad %dx%d", a->ph, a->pw);
    }
    snprintf(buf, cap, "%s%s%s", k, s, p);
}

/* The op line of a node's label: "conv2d 64, 3x3/2 pad 1, relu". */
static void op_str(char *buf, size_t cap, const pml_node *n)
{
    const pml_attrs *a = &n->a;
    char w[80];
    switch (n->op) {
    case PML_OP_LINEAR:
        snprintf(buf, cap, "linear %d%s%s", a->out, a->act == PML_ACT_RELU ? ", relu" : "",
                 a->bias ? "" : ", no bias");
        break;
    case PML_OP_CONV2D:
        window_str(w, sizeof w, a);
        snprintf(buf, cap, "conv2d %d, %s%s%s", a->out, w, a->act == PML_ACT_RELU ? ", relu" : "",
                 a->bias ? "" : ", no bias");
        break;
    case PML_OP_MAXPOOL2D:
    case PML_OP_AVGPOOL2D:
        if (a->global) {
            snprintf(buf, cap, "%s global", pml_op_name(n->op));
        } else {
            window_str(w, sizeof w, a);
            snprintf(buf, cap, "%s %s%s", pml_op_name(n->op), w, a->ceil_mode ? ", ceil" : "");
        }
        break;
    case PML_OP_BATCHNORM:
        snprintf(buf, cap, "batchnorm, eps %g", (double)a->eps);
        break;
    case PML_OP_DROPOUT:
        snprintf(buf, cap, "dropout %g%s", (double)a->rate, a->always ? ", always" : "");
        break;
    case PML_OP_ACTIVATION:
        snprintf(buf, cap, "%s", pml_fn_name(a->fn) ? pml_fn_name(a->fn) : "activation");
        break;
    case PML_OP_ADD:
    case PML_OP_CONCAT:
        snprintf(buf, cap, "%s of %d%s", pml_op_name(n->op), n->nin,
                 n->op == PML_OP_ADD ? (a->addend ? " + addend" : "")
                 : a->axis == 0      ? ""
                 : a->axis == 1      ? " rows"
                                     : " columns");
        break;
    default:
        snprintf(buf, cap, "%s", pml_op_name(n->op));
    }
}

static size_t node_params(const pml_node *n)
{
    size_t c = 0;
    for (int j = 0; j < n->nparam; j++) c += n->param_size[j];
    return c;
}

/* "64x56x56, 36,864 params" */
static void out_str(char *buf, size_t cap, pml_shape s, size_t params)
{
    char sh[48], p[32];
    shape_str(sh, sizeof sh, s);
    if (params) {
        pml_fmt_count(p, sizeof p, (double)params);
        snprintf(buf, cap, "%s, %s params", sh, p);
    } else {
        snprintf(buf, cap, "%s", sh);
    }
}

pml_status pml_viz_model(const pml_graph *g, const pml_viz_opts *o, pml_viz **view)
{
    *view = NULL;
    if (!g->finalized)
        return pml_fail(PML_EINVAL, "model '%s': finalize the graph before drawing it", g->name);
    const int n = g->nnodes;
    bool collapse = o && o->collapse;
    int *block = malloc((size_t)n * sizeof *block);
    char(*bnames)[PML_NAME_MAX] = malloc((size_t)n * sizeof *bnames);
    pml_viz_obj **vn = calloc((size_t)n, sizeof *vn);
    size_t *bparams = NULL;
    double *bflops = NULL;
    int nb = 0;
    pml_status st = PML_OK;
    if (!block || !bnames || !vn) goto nomem;
    for (int i = 0; i < n; i++) block[i] = -1;
    if (collapse && (nb = pml_model_blocks(g, block, bnames)) < 0) goto nomem;
    bparams = calloc((size_t)nb + 1, sizeof *bparams);
    bflops = calloc((size_t)nb + 1, sizeof *bflops);
    if (!bparams || !bflops) goto nomem;

    char title[512], params[32], flops[32];
    pml_fmt_count(params, sizeof params, (double)pml_graph_param_count(g));
    pml_fmt_si(flops, sizeof flops, pml_graph_flops(g), "FLOP");
    const pml_shape in = g->nodes[g->input].out;
    snprintf(title, sizeof title,
             "%s\n%s parameters, %s per sample (forward)\ninput %dx%dx%d, %d classes%s", g->name,
             params, flops, in.c, in.h, in.w, g->classes, nb ? ", repeated blocks folded" : "");
    pml_viz *v = pml_viz_new(g->name, title);
    if (!v) goto nomem;

    char label[512], line2[160], line3[96];
    /* blocks: one node each, labelled with their op counts, output and parameters */
    int *bexit = malloc(((size_t)nb + 1) * sizeof *bexit);
    int(*opcount)[PML_OP_COUNT] = calloc((size_t)nb + 1, sizeof *opcount);
    if (!bexit || !opcount) {
        free(bexit);
        free(opcount);
        pml_viz_free(v);
        goto nomem;
    }
    for (int b = 0; b < nb; b++) bexit[b] = -1;
    for (int i = 0; i < n; i++) {
        int b = block[i];
        if (b < 0) continue;
        bparams[b] += node_params(&g->nodes[i]);
        bflops[b] += pml_node_flops(g, i);
        opcount[b][g->nodes[i].op]++;
    }
    /* the exit: the member whose output leaves the block, the last in topological order */
    for (int k = 0; k < n; k++) {
        int i = g->order[k];
        if (block[i] >= 0) bexit[block[i]] = i;
    }
    for (int b = 0; b < nb; b++) {
        int total = 0;
        size_t l = 0;
        line2[0] = 0;
        for (int op = 0; op < PML_OP_COUNT; op++) total += opcount[b][op];
        for (int op = 0; op < PML_OP_COUNT; op++)
            if (opcount[b][op] && l < sizeof line2)
                l += (size_t)snprintf(line2 + l, sizeof line2 - l, "%s%d %s", l ? ", " : "",
                                      opcount[b][op], pml_op_name((pml_op_type)op));
        char fl[32];
        pml_fmt_si(fl, sizeof fl, bflops[b], "FLOP");
        out_str(line3, sizeof line3, g->nodes[bexit[b]].out, bparams[b]);
        snprintf(label, sizeof label, "%s\nblock of %d ops: %s\n%s, %s", bnames[b], total, line2,
                 line3, fl);
        pml_viz_obj *bn = pml_viz_node(pml_viz_root(v), bnames[b], label, "#d0e0e3");
        if (!bn) {
            free(bexit);
            free(opcount);
            pml_viz_free(v);
            goto nomem;
        }
        pml_viz_set(bn, "style", "filled,bold");
        for (int i = 0; i < n; i++)
            if (block[i] == b) vn[i] = bn;
    }
    free(bexit);
    free(opcount);
    for (int i = 0; i < n; i++) {
        if (vn[i]) continue;
        const pml_node *nd = &g->nodes[i];
        op_str(line2, sizeof line2, nd);
        out_str(line3, sizeof line3, nd->out, node_params(nd));
        if (nd->op == PML_OP_INPUT)
            snprintf(label, sizeof label, "%s\n%s", nd->name, line3);
        else if (nd->op == PML_OP_SOFTMAX_XENT || strcmp(line2, nd->name) == 0)
            snprintf(label, sizeof label, "%s\n%s", nd->name,
                     nd->op == PML_OP_SOFTMAX_XENT ? line2 : line3); /* "flatten\n784" */
        else
            snprintf(label, sizeof label, "%s\n%s\n%s", nd->name, line2, line3);
        vn[i] = pml_viz_node(pml_viz_root(v), nd->name, label, op_fill(nd->op));
        if (!vn[i]) {
            pml_viz_free(v);
            goto nomem;
        }
    }
    for (int i = 0; i < n; i++) {
        const pml_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->nin; j++) {
            int u = nd->in[j];
            if (vn[u] == vn[i]) continue;
            char sh[48];
            shape_str(sh, sizeof sh, g->nodes[u].out);
            if (!pml_viz_edge(v, vn[u], vn[i], sh)) {
                pml_viz_free(v);
                goto nomem;
            }
        }
    }
    *view = v;
    goto out;
nomem:
    st = pml_fail(PML_ENOMEM, "out of memory drawing model '%s'", g->name);
out:
    free(block);
    free(bnames);
    free(vn);
    free(bparams);
    free(bflops);
    return st;
}
