/* pml — region mapping: which region of each input an output region reads. The planner uses it
 * to find which parts of producers a part depends on (and what to transfer); the op harness
 * checks it by poisoning everything outside the declared input region. */
#include "kernels.h"

static pml_region none(void) { return (pml_region){0, 0, 0, 0, 0, 0}; }

static pml_region whole(pml_region out, pml_shape in)
{
    return (pml_region){out.n0, out.n1, 0, in.c, 0, in.h};
}

/* input rows read by output rows [h0, h1) of a window op */
static void window_rows(const pml_node *n, pml_shape in, pml_region out, int *lo, int *hi)
{
    const int dh = n->a.dh > 1 ? n->a.dh : 1; /* conv2d's and maxpool2d's dilation */
    if (n->a.depth > 0 && n->a.od > 0) { /* 3-D: the input planes the output planes read */
        const int ho = n->out.h / n->a.od, hp = in.h / n->a.depth;
        const int dd = n->a.dd > 1 ? n->a.dd : 1;
        int a = out.h0 / ho * n->a.sd - n->a.pf;
        int b = (out.h1 - 1) / ho * n->a.sd - n->a.pf + dd * (n->a.kd - 1) + 1;
        a = a < 0 ? 0 : a;
        b = b > n->a.depth ? n->a.depth : b;
        *lo = a * hp;
        *hi = b > a ? b * hp : *lo;
        return;
    }
    int a = out.h0 * n->a.sh - n->a.pt, b = (out.h1 - 1) * n->a.sh - n->a.pt + dh * (n->a.kh - 1) + 1;
    *lo = a < 0 ? 0 : a;
    *hi = b > in.h ? in.h : b;
    if (*hi < *lo) *hi = *lo;
}

pml_region pml__input_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                pml_region out)
{
    return none();
}

pml_region pml__linear_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                 pml_region out)
{
    return whole(out, in[0]);
}

/* matmul: one matrix a sample (axis 0): output rows (channels) [c0, c1) read those rows of
 * input 0 and all of input 1's, output columns (rows h) [h0, h1) those columns of input 1; C
 * matrices (axis 1): output channels read the same channels of both, output rows those rows of
 * input 0 and all of input 1's */
pml_region pml__matmul_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                 pml_region out)
{
    pml_region r = whole(out, in[i]);
    if (n->a.axis == 0) {
        if (i == 0) r.c0 = out.c0, r.c1 = out.c1;
        else r.h0 = out.h0, r.h1 = out.h1;
    } else {
        r.c0 = out.c0, r.c1 = out.c1;
        if (i == 0) r.h0 = out.h0, r.h1 = out.h1;
    }
    return r;
}

pml_region pml__softmax_xent_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                       pml_region out)
{
    return whole(out, in[0]);
}

pml_region pml__conv2d_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                 pml_region out)
{
    pml_region r = whole(out, in[0]);
    window_rows(n, in[0], out, &r.h0, &r.h1);
    const int G = n->a.groups > 1 ? n->a.groups : 1;
    if (G > 1 && out.c1 > out.c0) { /* the input channels of the groups out's channels touch */
        const int og = n->out.c / G, cg = in[0].c / G;
        r.c0 = out.c0 / og * cg;
        r.c1 = ((out.c1 - 1) / og + 1) * cg;
    }
    return r;
}

static pml_region pool_region(const pml_node *n, const pml_shape *in, pml_region out)
{
    pml_region r = {out.n0, out.n1, out.c0, out.c1, 0, in[0].h};
    if (!n->a.global) window_rows(n, in[0], out, &r.h0, &r.h1);
    return r;
}

pml_region pml__maxpool2d_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                    pml_region out)
{
    return pool_region(n, in, out);
}

pml_region pml__avgpool2d_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                    pml_region out)
{
    return pool_region(n, in, out);
}

/* element-wise: the same region */
pml_region pml__relu_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                               pml_region out)
{
    return out;
}
pml_region pml__activation_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                     pml_region out)
{
    return out;
}
/* mul: the same region of input 0; of a value per channel, the region's channels (mul splits by
 * samples and channels only: parts of rows would add to the same value's gradient) */
pml_region pml__mul_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                              pml_region out)
{
    if (i == 1 && pml__mul_per_channel(in))
        return (pml_region){out.n0, out.n1, out.c0, out.c1, 0, out.h1 > out.h0 ? 1 : 0};
    return out;
}
pml_region pml__add_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                              pml_region out)
{
    return out;
}
pml_region pml__dropout_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                  pml_region out)
{
    return out;
}
pml_region pml__batchnorm_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                    pml_region out)
{
    return out;
}

/* features [c0, c1) of the flattened vector come from whole rows of these input channels */
pml_region pml__flatten_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                  pml_region out)
{
    const int plane = in[0].h * in[0].w;
    pml_region r = {out.n0, out.n1, out.c0 / plane, (out.c1 + plane - 1) / plane, 0, in[0].h};
    if (in[0].c == 1 || out.c1 - out.c0 >= plane || out.c0 / plane != (out.c1 - 1) / plane)
        return r;
    /* within one channel: only the rows that hold those features */
    const int c0 = out.c0 - r.c0 * plane, c1 = out.c1 - r.c0 * plane;
    r.h0 = c0 / in[0].w;
    r.h1 = (c1 + in[0].w - 1) / in[0].w;
    return r;
}

/* concat: input i's share of the output's channels or rows (axis 0 or 1); along columns every
 * input gives part of each row, so the same channels and rows */
pml_region pml__concat_in_region(const pml_node *n, const pml_shape *in, int nin, int i,
                                 pml_region out)
{
    const int ax = n->a.axis;
    if (ax == 2) return out;
    int base = 0, len = ax == 0 ? in[i].c : in[i].h;
    for (int j = 0; j < i; j++) base += ax == 0 ? in[j].c : in[j].h;
    const int lo = ax == 0 ? out.c0 : out.h0, hi = ax == 0 ? out.c1 : out.h1;
    int a = lo > base ? lo - base : 0;
    int b = hi - base < len ? hi - base : len;
    if (b <= a) return none();
    if (ax == 0) return (pml_region){out.n0, out.n1, a, b, out.h0, out.h1};
    return (pml_region){out.n0, out.n1, out.c0, out.c1, a, b};
}

pml_region pml_node_in_region(const pml_graph *g, int id, int i, pml_region out)
{
    const pml_node *n = &g->nodes[id];
    pml_shape in[PML_MAX_INPUTS];
    for (int j = 0; j < n->nin; j++) in[j] = g->nodes[n->in[j]].out;
    return pml_ops[n->op].in_region(n, in, n->nin, i, out);
}
