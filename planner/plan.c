/* pml — plans: one parallel config per operator, checks, and the baseline strategies. */
#include "planner/planner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pml_status pml_plan_init(pml_plan *p, const pml_graph *g, int batch)
{
    memset(p, 0, sizeof *p);
    p->cfg = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *p->cfg);
    if (!p->cfg) return pml_fail(PML_ENOMEM, "out of memory for a plan");
    p->nnodes = g->nnodes;
    p->batch = batch;
    p->sync = PML_SYNC_ALLREDUCE;
    p->bucket_bytes = 25e6;
    snprintf(p->strategy, sizeof p->strategy, "none");
    for (int i = 0; i < g->nnodes; i++) p->cfg[i].deg[0] = p->cfg[i].deg[1] = p->cfg[i].deg[2] = 1;
    return PML_OK;
}

void pml_plan_free(pml_plan *p)
{
    free(p->cfg);
    memset(p, 0, sizeof *p);
}

pml_status pml_plan_copy(pml_plan *dst, const pml_plan *src)
{
    *dst = *src;
    dst->cfg = malloc((size_t)(src->nnodes ? src->nnodes : 1) * sizeof *dst->cfg);
    if (!dst->cfg) return pml_fail(PML_ENOMEM, "out of memory copying a plan");
    memcpy(dst->cfg, src->cfg, (size_t)src->nnodes * sizeof *dst->cfg);
    return PML_OK;
}

static int slice(int n, int parts, int i) { return (int)((long)n * i / parts); }

pml_region pml_plan_part_region(const pml_graph *g, int id, const pml_opcfg *c, int batch,
                                int part)
{
    const pml_shape o = g->nodes[id].out;
    const int ph = part % c->deg[2], pc = (part / c->deg[2]) % c->deg[1],
              pn = part / (c->deg[2] * c->deg[1]);
    pml_region r = {slice(batch, c->deg[0], pn), slice(batch, c->deg[0], pn + 1),
                    slice(o.c, c->deg[1], pc), slice(o.c, c->deg[1], pc + 1),
                    slice(o.h, c->deg[2], ph), slice(o.h, c->deg[2], ph + 1)};
    return r;
}

pml_status pml_opcfg_check(const pml_graph *g, const pml_machine *m, int batch, int id,
                           const pml_opcfg *c)
{
    const pml_node *n = &g->nodes[id];
    const unsigned ok = pml_ops[n->op].splits | pml_ops[n->op].approx_splits;
    static const char *const dim[PML_NDIMS] = {"n (samples)", "c (channels)", "h (rows)"};
    const int size[PML_NDIMS] = {batch, n->out.c, n->out.h};
    const unsigned bit[PML_NDIMS] = {PML_SPLIT_SAMPLE, PML_SPLIT_PARAM, PML_SPLIT_ATTR};
    long parts = 1;
    for (int d = 0; d < PML_NDIMS; d++) {
        if (c->deg[d] < 1)
            return pml_fail(PML_EINVAL, "operator '%s': degree %s=%d must be at least 1", n->name,
                            dim[d], c->deg[d]);
        if (c->deg[d] > 1 && !(ok & bit[d]))
            return pml_fail(PML_EINVAL, "operator '%s' (%s) cannot be split along %s", n->name,
                            pml_op_name(n->op), dim[d]);
        if (size[d] % c->deg[d] != 0)
            return pml_fail(PML_EINVAL, "operator '%s': degree %s=%d does not divide %d", n->name,
                            dim[d], c->deg[d], size[d]);
        parts *= c->deg[d];
    }
    if (parts > PML_MAX_PARTS || parts > m->ncompute)
        return pml_fail(PML_EINVAL, "operator '%s': %ld parts, the machine has %d devices",
                        n->name, parts, m->ncompute);
    for (int p = 0; p < parts; p++) {
        if (c->dev[p] < 0 || c->dev[p] >= m->ncompute)
            return pml_fail(PML_EINVAL, "operator '%s': part %d on device %d, which does not exist "
                                        "(the machine has %d)",
                            n->name, p, c->dev[p], m->ncompute);
        for (int q = 0; q < p; q++)
            if (c->dev[q] == c->dev[p])
                return pml_fail(PML_EINVAL, "operator '%s': parts %d and %d are both on device %d",
                                n->name, q, p, c->dev[p]);
    }
    return PML_OK;
}

pml_status pml_plan_check(const pml_plan *p, const pml_graph *g, const pml_machine *m)
{
    if (p->nnodes != g->nnodes)
        return pml_fail(PML_EINVAL, "the plan has %d operators, model '%s' has %d", p->nnodes,
                        g->name, g->nnodes);
    if (p->batch < 1) return pml_fail(PML_EINVAL, "the plan's batch %d must be positive", p->batch);
    for (int i = 0; i < g->nnodes; i++) {
        pml_status st = pml_opcfg_check(g, m, p->batch, i, &p->cfg[i]);
        if (st != PML_OK) return st;
    }
    return PML_OK;
}

/* ---------------------------------------------------------------- baselines */

/* largest divisor of n that is <= k */
static int divisor_le(int n, int k)
{
    for (int d = k < n ? k : n; d > 1; d--)
        if (n % d == 0) return d;
    return 1;
}

static void set_cfg(pml_opcfg *c, int dn, int dc, int dh, int first_dev)
{
    c->deg[0] = dn;
    c->deg[1] = dc;
    c->deg[2] = dh;
    for (int p = 0; p < dn * dc * dh; p++) c->dev[p] = (int16_t)(first_dev + p);
}

static unsigned op_splits(const pml_node *n)
{
    return pml_ops[n->op].splits | pml_ops[n->op].approx_splits;
}

pml_status pml_plan_data_parallel(pml_plan *p, const pml_graph *g, const pml_machine *m, int batch)
{
    pml_status st = pml_plan_init(p, g, batch);
    if (st != PML_OK) return st;
    snprintf(p->strategy, sizeof p->strategy, "data");
    int d = divisor_le(batch, m->ncompute < PML_MAX_PARTS ? m->ncompute : PML_MAX_PARTS);
    for (int i = 0; i < g->nnodes; i++) set_cfg(&p->cfg[i], d, 1, 1, 0);
    return PML_OK;
}

/* The k-th worker of a node that has n comes before the j-th of a node that has m when
 * k / n < j / m: every node gives the same share of its workers. */
typedef struct worker_rank {
    int k, n, dev;
} worker_rank;

static int cmp_worker(const void *a, const void *b)
{
    const worker_rank *x = a, *y = b;
    const long l = (long)x->k * y->n, r = (long)y->k * x->n;
    if (l != r) return l < r ? -1 : 1;
    return x->dev - y->dev;
}

pml_status pml_plan_ps(pml_plan *p, const pml_graph *g, const pml_machine *m, int batch)
{
    memset(p, 0, sizeof *p);
    if (m->nserver == 0)
        return pml_fail(PML_EINVAL,
                        "strategy ps: machine '%s' has no parameter servers (devices with "
                        "role=ps, or a template's ps_nodes=K)",
                        m->name);
    if (m->nserver == m->ncompute)
        return pml_fail(PML_EINVAL,
                        "strategy ps: every compute device of machine '%s' is a parameter server; "
                        "none is left to compute",
                        m->name);
    const int W = m->ncompute - m->nserver;
    worker_rank *w = malloc((size_t)W * sizeof *w);
    if (!w) return pml_fail(PML_ENOMEM, "out of memory for a plan");
    for (int i = 0, k = 0; i < m->ncompute; i++) {
        const pml_device *d = &m->dev[m->compute[i]];
        if (d->ps) continue;
        w[k] = (worker_rank){0, 0, i};
        for (int j = 0; j < m->ncompute; j++) {
            const pml_device *e = &m->dev[m->compute[j]];
            if (e->ps || e->node != d->node) continue;
            w[k].k += j < i;
            w[k].n++;
        }
        k++;
    }
    qsort(w, (size_t)W, sizeof *w, cmp_worker);
    pml_status st = pml_plan_init(p, g, batch);
    if (st == PML_OK) {
        snprintf(p->strategy, sizeof p->strategy, "ps");
        p->sync = PML_SYNC_PS;
        const int d = divisor_le(batch, W < PML_MAX_PARTS ? W : PML_MAX_PARTS);
        for (int i = 0; i < g->nnodes; i++) {
            set_cfg(&p->cfg[i], d, 1, 1, 0);
            for (int q = 0; q < d; q++) p->cfg[i].dev[q] = (int16_t)w[q].dev;
        }
    }
    free(w);
    return st;
}

pml_status pml_plan_model_parallel(pml_plan *p, const pml_graph *g, const pml_machine *m,
                                   int batch)
{
    pml_status st = pml_plan_init(p, g, batch);
    if (st != PML_OK) return st;
    snprintf(p->strategy, sizeof p->strategy, "model");
    /* contiguous runs of the topological order, balanced by forward FLOPs */
    double total = 0;
    for (int k = 0; k < g->nnodes; k++) total += pml_node_flops(g, g->order[k]);
    const int D = m->ncompute;
    double acc = 0;
    for (int k = 0; k < g->nnodes; k++) {
        int v = g->order[k];
        double f = pml_node_flops(g, v);
        int dev = total > 0 ? (int)((acc + 0.5 * f) / total * D) : 0;
        if (dev >= D) dev = D - 1;
        acc += f;
        set_cfg(&p->cfg[v], 1, 1, 1, dev);
    }
    return PML_OK;
}

pml_status pml_plan_owt(pml_plan *p, const pml_graph *g, const pml_machine *m, int batch)
{
    pml_status st = pml_plan_data_parallel(p, g, m, batch);
    if (st != PML_OK) return st;
    snprintf(p->strategy, sizeof p->strategy, "owt");
    const int D = m->ncompute < PML_MAX_PARTS ? m->ncompute : PML_MAX_PARTS;
    for (int i = 0; i < g->nnodes; i++) {
        const pml_node *n = &g->nodes[i];
        if (n->op != PML_OP_LINEAR) continue;
        /* Krizhevsky's one weird trick: dense layers split by output units */
        set_cfg(&p->cfg[i], 1, divisor_le(n->out.c, D), 1, 0);
    }
    return PML_OK;
}

pml_status pml_plan_mesh(pml_plan *p, const pml_graph *g, const pml_machine *m, int batch,
                         const int *mesh, int nmesh, const int layout[PML_NDIMS])
{
    if (nmesh < 1 || nmesh > 4)
        return pml_fail(PML_EINVAL, "a mesh has 1 to 4 axes, not %d", nmesh);
    long size = 1;
    for (int a = 0; a < nmesh; a++) {
        if (mesh[a] < 1) return pml_fail(PML_EINVAL, "mesh axis %d has size %d", a, mesh[a]);
        size *= mesh[a];
    }
    if (size > m->ncompute || size > PML_MAX_PARTS)
        return pml_fail(PML_EINVAL, "a mesh of %ld devices does not fit machine '%s' (%d devices)",
                        size, m->name, m->ncompute);
    for (int d = 0; d < PML_NDIMS; d++) {
        if (layout[d] < -1 || layout[d] >= nmesh)
            return pml_fail(PML_EINVAL, "layout maps dimension %d to mesh axis %d, which does not "
                                        "exist",
                            d, layout[d]);
        for (int e = 0; e < d; e++)
            if (layout[d] >= 0 && layout[d] == layout[e])
                return pml_fail(PML_EINVAL, "layout maps two dimensions to mesh axis %d",
                                layout[d]);
    }
    pml_status st = pml_plan_init(p, g, batch);
    if (st != PML_OK) return st;
    snprintf(p->strategy, sizeof p->strategy, "mesh");
    const unsigned bit[PML_NDIMS] = {PML_SPLIT_SAMPLE, PML_SPLIT_PARAM, PML_SPLIT_ATTR};
    /* mesh strides: device index = sum coord[a] * stride[a], axis 0 slowest */
    int stride[4];
    stride[nmesh - 1] = 1;
    for (int a = nmesh - 2; a >= 0; a--) stride[a] = stride[a + 1] * mesh[a + 1];
    for (int i = 0; i < g->nnodes; i++) {
        const pml_node *n = &g->nodes[i];
        const int size_d[PML_NDIMS] = {batch, n->out.c, n->out.h};
        pml_opcfg *c = &p->cfg[i];
        for (int d = 0; d < PML_NDIMS; d++) {
            c->deg[d] = 1;
            int a = layout[d];
            if (a >= 0 && (op_splits(n) & bit[d]) && size_d[d] % mesh[a] == 0) c->deg[d] = mesh[a];
        }
        for (int part = 0; part < pml_opcfg_parts(c); part++) {
            int idx[PML_NDIMS] = {part / (c->deg[1] * c->deg[2]), (part / c->deg[2]) % c->deg[1],
                                  part % c->deg[2]};
            int dev = 0;
            for (int d = 0; d < PML_NDIMS; d++)
                if (c->deg[d] > 1) dev += idx[d] * stride[layout[d]];
            c->dev[part] = (int16_t)dev;
        }
    }
    return PML_OK;
}
