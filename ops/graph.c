/* pml — the graph IR: building, checking, topological order, shape inference, parameter layout. */
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
#define PML__X(name, str) str,
    PML_OP_MAP(PML__X)
#undef PML__X
};
_Static_assert(sizeof op_names / sizeof op_names[0] == PML_OP_COUNT, "op name map");

const char *pml_op_name(pml_op_type op)
{
    if ((unsigned)op >= PML_OP_COUNT) return NULL;
    return op_names[op];
}

pml_op_type pml_op_from_name(const char *name)
{
    for (int i = 0; i < PML_OP_COUNT; i++)
        if (strcmp(op_names[i], name) == 0) return (pml_op_type)i;
    return PML_OP_COUNT;
}

pml_attrs pml_attrs_default(pml_op_type op)
{
    pml_attrs a;
    memset(&a, 0, sizeof a);
    a.sh = a.sw = 1;
    a.kh = a.kw = 1;
    a.pad_mode = PML_PAD_VALID;
    a.bias = 1;
    a.eps = 1e-3f;
    a.momentum = 0.99f;
    a.rate = 0.5f;
    a.seed = -1;
    a.groups = 1;
    a.dh = a.dw = 1;
    a.kd = a.sd = a.dd = 1;
    pml_fn_defaults(PML_FN_SIGMOID, &a.alpha, &a.beta);
    if (op == PML_OP_MAXPOOL2D || op == PML_OP_AVGPOOL2D) {
        a.kh = a.kw = 2;
        a.sh = a.sw = 2;
    }
    return a;
}

static const char *const fn_names[PML_FN_COUNT] = {
    "sigmoid", "tanh", "leaky_relu", "elu", "selu", "softplus", "softsign", "hard_sigmoid",
    "thresholded_relu", "hard_swish", "silu", "clip"};

const char *pml_fn_name(int fn)
{
    return fn >= 0 && fn < PML_FN_COUNT ? fn_names[fn] : NULL;
}

int pml_fn_parse(const char *name)
{
    for (int i = 0; i < PML_FN_COUNT; i++)
        if (strcmp(name, fn_names[i]) == 0) return i;
    return PML_FN_COUNT;
}

void pml_fn_defaults(int fn, float *alpha, float *beta)
{
    *alpha = fn == PML_FN_LEAKY_RELU     ? 0.01f
             : fn == PML_FN_SELU         ? 1.67326319217681884765625f
             : fn == PML_FN_HARD_SIGMOID ? 0.2f
             : fn == PML_FN_CLIP         ? 0.0f
                                         : 1.0f;
    *beta = fn == PML_FN_SELU           ? 1.05070102214813232421875f
            : fn == PML_FN_HARD_SIGMOID ? 0.5f
            : fn == PML_FN_CLIP         ? 6.0f
                                        : 0.0f;
}

void pml_graph_init(pml_graph *g, const char *name)
{
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name ? name : "model");
    g->input = g->loss = g->logits = -1;
}

void pml_graph_free(pml_graph *g)
{
    free(g->nodes);
    free(g->order);
    memset(g, 0, sizeof *g);
    g->input = g->loss = g->logits = -1;
}

int pml_graph_find(const pml_graph *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return i;
    return -1;
}

int pml_graph_add(pml_graph *g, const char *name, pml_op_type op, const pml_attrs *a, int nin,
                  const int *in)
{
    if ((unsigned)op >= PML_OP_COUNT) {
        pml_fail(PML_EINVAL, "node '%s': unknown op", name ? name : "?");
        return -1;
    }
    if (!name || !*name || strlen(name) >= PML_NAME_MAX) {
        pml_fail(PML_EINVAL, "node name '%s' is empty or longer than %d characters",
                 name ? name : "", PML_NAME_MAX - 1);
        return -1;
    }
    if (pml_graph_find(g, name) >= 0) {
        pml_fail(PML_EINVAL, "node '%s' is defined twice", name);
        return -1;
    }
    if (nin < 0 || nin > PML_MAX_INPUTS) {
        pml_fail(PML_EINVAL, "node '%s': %d inputs (at most %d)", name, nin, PML_MAX_INPUTS);
        return -1;
    }
    if (g->nnodes == g->cap) {
        int cap = g->cap ? 2 * g->cap : 16;
        pml_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) {
            pml_fail(PML_ENOMEM, "out of memory adding node '%s'", name);
            return -1;
        }
        g->nodes = nn;
        g->cap = cap;
    }
    pml_node *n = &g->nodes[g->nnodes];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->op = op;
    n->a = a ? *a : pml_attrs_default(op);
    n->nin = nin;
    for (int i = 0; i < nin; i++) n->in[i] = in[i];
    g->finalized = false;
    return g->nnodes++;
}

void pml__node_param(pml_node *n, int i, size_t size, int init, int fan_in, int fan_out)
{
    n->param_size[i] = size;
    n->param_init[i] = init;
    n->param_fan_in[i] = fan_in;
    n->param_fan_out[i] = fan_out;
    if (n->nparam < i + 1) n->nparam = i + 1;
}

void pml__node_state(pml_node *n, int i, size_t size, int init)
{
    n->state_size[i] = size;
    n->state_init[i] = init;
    if (n->nstate < i + 1) n->nstate = i + 1;
}

pml_status pml__depth_window(pml_node *n, pml_shape x, const char *op, int ceil_mode, int *rows)
{
    pml_attrs *a = &n->a;
    *rows = x.h;
    if (a->depth == 0) {
        a->od = a->pf = a->pk = 0;
        return PML_OK;
    }
    if (a->depth < 0 || a->depth > x.h || x.h % a->depth)
        return pml_fail(PML_ESHAPE,
                        "node '%s' (%s): depth=%d does not divide the input's %d rows (a 3-D "
                        "input holds its planes' rows one after another)",
                        n->name, op, a->depth, x.h);
    if (a->kd <= 0 || a->sd <= 0 || a->dd <= 0 || a->pd < 0 || a->kd > 1 << 16 ||
        a->sd > 1 << 16 || a->dd > 1 << 16 || a->pd > 1 << 16)
        return pml_fail(PML_EFORMAT,
                        "node '%s' (%s): depth kernel %d, stride %d, dilation %d must be positive "
                        "and padding %d not negative",
                        n->name, op, a->kd, a->sd, a->dd, a->pd);
    const int ekd = a->dd * (a->kd - 1) + 1;
    a->od = pml__window_out(a->depth, ekd, a->sd, a->pad_mode, a->pd, ceil_mode, &a->pf, &a->pk);
    if (a->od <= 0)
        return pml_fail(PML_ESHAPE,
                        "node '%s' (%s): kernel depth %d is larger than the padded input's %d "
                        "planes",
                        n->name, op, ekd, a->depth + 2 * (a->pad_mode == PML_PAD_EXPLICIT ? a->pd : 0));
    *rows = x.h / a->depth;
    return PML_OK;
}

int pml__window_out(int in, int k, int s, int mode, int pexp, int ceil_mode, int *pbefore,
                    int *pafter)
{
    int pb = 0, pa = 0, out;
    if (k <= 0 || s <= 0 || in <= 0) return 0;
    if (mode == PML_PAD_SAME || mode == PML_PAD_SAME_LOWER) {
        out = (in + s - 1) / s;
        int total = (out - 1) * s + k - in;
        if (total < 0) total = 0;
        pb = total / 2;
        pa = total - pb;
        if (mode == PML_PAD_SAME_LOWER) { /* the odd cell before */
            pa = total / 2;
            pb = total - pa;
        }
    } else {
        if (mode == PML_PAD_EXPLICIT) pb = pa = pexp;
        int span = in + pb + pa - k;
        if (span < 0) return 0;
        out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
        /* PyTorch: the last window must start inside the input or left padding */
        if (ceil_mode && (out - 1) * s >= in + pb) out--;
        if (ceil_mode) {
            int need = (out - 1) * s + k - (in + pb);
            pa = need > pa ? need : pa;
        }
    }
    if (pbefore) *pbefore = pb;
    if (pafter) *pafter = pa;
    return out;
}

/* Kahn's algorithm; on a cycle names one node on it. */
static pml_status topo_sort(pml_graph *g)
{
    int n = g->nnodes;
    int *indeg = calloc((size_t)n, sizeof *indeg);
    int *order = malloc((size_t)n * sizeof *order);
    if (!indeg || !order) {
        free(indeg);
        free(order);
        return pml_fail(PML_ENOMEM, "out of memory ordering the graph");
    }
    for (int i = 0; i < n; i++) indeg[i] = g->nodes[i].nin;
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (indeg[i] == 0) order[tail++] = i;
    while (head < tail) {
        int u = order[head++];
        for (int v = 0; v < n; v++)
            for (int j = 0; j < g->nodes[v].nin; j++)
                if (g->nodes[v].in[j] == u && --indeg[v] == 0) order[tail++] = v;
    }
    if (tail < n) {
        int bad = 0;
        for (int i = 0; i < n; i++)
            if (indeg[i] > 0) {
                bad = i;
                break;
            }
        free(indeg);
        free(order);
        return pml_fail(PML_EFORMAT, "node '%s' is part of a cycle", g->nodes[bad].name);
    }
    free(indeg);
    free(g->order);
    g->order = order;
    return PML_OK;
}

pml_status pml_graph_finalize(pml_graph *g)
{
    pml_status st;
    if (g->nnodes == 0) return pml_fail(PML_EFORMAT, "the graph has no nodes");
    g->input = g->loss = -1;
    for (int i = 0; i < g->nnodes; i++) {
        pml_node *n = &g->nodes[i];
        const pml_op_def *d = &pml_ops[n->op];
        if (n->nin < d->min_in || n->nin > d->max_in) {
            if (d->min_in == d->max_in)
                return pml_fail(PML_EFORMAT, "node '%s' (%s) has %d inputs, needs %d", n->name,
                                d->name, n->nin, d->min_in);
            return pml_fail(PML_EFORMAT, "node '%s' (%s) has %d inputs, needs %d to %d", n->name,
                            d->name, n->nin, d->min_in, d->max_in);
        }
        for (int j = 0; j < n->nin; j++) {
            if (n->in[j] < 0 || n->in[j] >= g->nnodes)
                return pml_fail(PML_EFORMAT, "node '%s': input %d refers to no node", n->name, j);
            if (n->in[j] == i) return pml_fail(PML_EFORMAT, "node '%s' is part of a cycle", n->name);
        }
        /* several inputs: each its own per-sample shape, the batch shared; g->input is the
         * first (the one a dataset feeds) */
        if (n->op == PML_OP_INPUT && g->input < 0) g->input = i;
        if (n->op == PML_OP_SOFTMAX_XENT) {
            if (g->loss >= 0)
                return pml_fail(PML_EFORMAT,
                                "nodes '%s' and '%s' are both losses; one is allowed",
                                g->nodes[g->loss].name, n->name);
            g->loss = i;
        }
    }
    if (g->input < 0) return pml_fail(PML_EFORMAT, "the graph has no input node (op=input)");
    if (g->loss < 0) return pml_fail(PML_EFORMAT, "the graph has no loss node (op=softmax_xent)");
    /* every node but the loss must feed something */
    for (int i = 0; i < g->nnodes; i++) {
        if (i == g->loss) continue;
        bool used = false;
        for (int v = 0; v < g->nnodes && !used; v++)
            for (int j = 0; j < g->nodes[v].nin; j++)
                if (g->nodes[v].in[j] == i) used = true;
        if (!used)
            return pml_fail(PML_EFORMAT, "node '%s': its output is used by no node (only the loss "
                                         "may be a sink)",
                            g->nodes[i].name);
    }
    if ((st = topo_sort(g)) != PML_OK) return st;

    size_t off = 0, soff = 0;
    for (int k = 0; k < g->nnodes; k++) {
        pml_node *n = &g->nodes[g->order[k]];
        pml_shape in[PML_MAX_INPUTS];
        for (int j = 0; j < n->nin; j++) in[j] = g->nodes[n->in[j]].out;
        n->nparam = n->nstate = 0;
        n->aux_per_sample = n->aux_fixed = 0;
        memset(n->param_size, 0, sizeof n->param_size);
        memset(n->state_size, 0, sizeof n->state_size);
        if ((st = pml_ops[n->op].infer(n, in, n->nin)) != PML_OK) return st;
        if (n->out.c <= 0 || n->out.h <= 0 || n->out.w <= 0)
            return pml_fail(PML_ESHAPE, "node '%s' (%s): output shape %dx%dx%d is empty", n->name,
                            pml_op_name(n->op), n->out.c, n->out.h, n->out.w);
        for (int j = 0; j < n->nparam; j++) {
            n->param_off[j] = off;
            off += (n->param_size[j] + 15) & ~(size_t)15; /* 64-byte aligned slices */
        }
        for (int j = 0; j < n->nstate; j++) {
            n->state_off[j] = soff;
            soff += (n->state_size[j] + 15) & ~(size_t)15;
        }
    }
    g->nparams = off;
    g->nstate = soff;
    g->logits = g->nodes[g->loss].in[0];
    g->classes = g->nodes[g->logits].out.c;
    if (g->classes == 1) g->classes = 2; /* one logit z: the logits (0, z) */
    g->finalized = true;
    return PML_OK;
}

int pml_logits_class(const float *z, int C, float *prob)
{
    if (C == 1) { /* the logits (0, z) */
        const double e = exp(-fabs((double)z[0]));
        *prob = (float)(1.0 / (1.0 + e));
        return z[0] > 0;
    }
    int best = 0;
    for (int k = 1; k < C; k++)
        if (z[k] > z[best]) best = k;
    double sum = 0;
    for (int k = 0; k < C; k++) sum += exp((double)z[k] - z[best]);
    *prob = (float)(1.0 / sum);
    return best;
}

size_t pml_graph_param_count(const pml_graph *g)
{
    size_t c = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nparam; j++) c += g->nodes[i].param_size[j];
    return c;
}

double pml_node_flops(const pml_graph *g, int id)
{
    const pml_node *n = &g->nodes[id];
    pml_shape in[PML_MAX_INPUTS];
    for (int j = 0; j < n->nin; j++) in[j] = g->nodes[n->in[j]].out;
    return pml_ops[n->op].flops(n, in, n->nin);
}

double pml_graph_flops(const pml_graph *g)
{
    double f = 0;
    for (int i = 0; i < g->nnodes; i++) f += pml_node_flops(g, i);
    return f;
}

pml_status pml_graph_copy(pml_graph *dst, const pml_graph *src)
{
    pml_graph_init(dst, src->name);
    *dst = *src;
    dst->nodes = NULL;
    dst->order = NULL;
    if (src->nnodes) {
        dst->nodes = malloc((size_t)src->cap * sizeof *dst->nodes);
        if (!dst->nodes) goto fail;
        memcpy(dst->nodes, src->nodes, (size_t)src->nnodes * sizeof *dst->nodes);
    }
    if (src->order) {
        dst->order = malloc((size_t)src->nnodes * sizeof *dst->order);
        if (!dst->order) goto fail;
        memcpy(dst->order, src->order, (size_t)src->nnodes * sizeof *dst->order);
    }
    return PML_OK;
fail:
    pml_graph_free(dst);
    return pml_fail(PML_ENOMEM, "out of memory copying graph '%s'", src->name);
}
