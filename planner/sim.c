/* pml — the execution simulator.
 *
 * Each resource (a compute device, a direction of a link) runs its tasks in program order (task
 * keys); a task starts when its predecessors have ended and its resources have finished the
 * tasks before it:
 *     start(t) = max(end(p) for p in pred(t), end(prev_r(t)) for r in res(t)),
 *     end(t)   = start(t) + cost(t).
 * Because keys are a topological order, one sweep in key order computes every time. A delta
 * simulation rebuilds one operator's tasks and sweeps again from the smallest key it touched:
 * everything before that key is unchanged, so the result is exactly the full simulation's. */
#include "tg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pml_sim {
    const pml_graph *g;
    const pml_machine *m;
    pml_costmodel *cost;
    pml_plan plan;
    pml_taskgraph *tg;
    double *start, *end;
    int cap;
    double *res_free;
    double step;
    bool broken; /* an allocation failed half-way through a change */
};

static pml_status grow_times(pml_sim *s)
{
    int n = s->tg->nslots;
    if (n <= s->cap) return PML_OK;
    int cap = n + n / 4 + 64;
    double *a = realloc(s->start, (size_t)cap * sizeof *a);
    if (!a) return pml_fail(PML_ENOMEM, "out of memory simulating");
    s->start = a;
    double *b = realloc(s->end, (size_t)cap * sizeof *b);
    if (!b) return pml_fail(PML_ENOMEM, "out of memory simulating");
    s->end = b;
    for (int i = s->cap; i < cap; i++) s->start[i] = s->end[i] = 0;
    s->cap = cap;
    return PML_OK;
}

static int lower_bound_key(const pml_taskgraph *tg, const pml__ivec *v, uint64_t k)
{
    int lo = 0, hi = v->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (tg->t[v->a[mid]].key < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* times of every task with key >= kmin */
static pml_status sweep(pml_sim *s, uint64_t kmin)
{
    pml_taskgraph *tg = s->tg;
    pml_status st = pml__tg_commit(tg);
    if (st == PML_OK) st = grow_times(s);
    if (st != PML_OK) return st;
    for (int r = 0; r < tg->nres; r++) {
        const pml__ivec *v = &tg->res[r];
        int at = kmin == 0 ? 0 : lower_bound_key(tg, v, kmin);
        s->res_free[r] = at > 0 ? s->end[v->a[at - 1]] : 0.0;
    }
    const pml__ivec *o = &tg->order;
    int i0 = kmin == 0 ? 0 : lower_bound_key(tg, o, kmin);
    for (int i = i0; i < o->n; i++) {
        const int id = o->a[i];
        const pml_task *t = &tg->t[id];
        double b = 0;
        for (int k = 0; k < t->npred; k++)
            if (s->end[t->pred[k]] > b) b = s->end[t->pred[k]];
        for (int k = 0; k < t->nres; k++)
            if (s->res_free[t->res[k]] > b) b = s->res_free[t->res[k]];
        double e = b + t->cost;
        s->start[id] = b;
        s->end[id] = e;
        for (int k = 0; k < t->nres; k++) s->res_free[t->res[k]] = e;
    }
    double step = 0;
    for (int i = 0; i < o->n; i++)
        if (s->end[o->a[i]] > step) step = s->end[o->a[i]];
    s->step = step;
    tg->kmin = UINT64_MAX;
    return PML_OK;
}

static pml_status check_memory(const pml_sim *s)
{
    const pml_machine *m = s->m;
    for (int c = 0; c < m->ncompute; c++) {
        const pml_device *d = &m->dev[m->compute[c]];
        if (d->mem_bytes > 0 && s->tg->mem[c] > d->mem_bytes)
            return pml_fail(PML_ENOMEM,
                            "the plan needs %.2f GB on device %d (%s), which has %.2f GB",
                            s->tg->mem[c] / 1e9, c, d->name, d->mem_bytes / 1e9);
    }
    return PML_OK;
}

pml_status pml_sim_create(const pml_graph *g, const pml_machine *m, const pml_plan *p,
                          pml_costmodel *c, pml_sim **out)
{
    *out = NULL;
    pml_sim *s = calloc(1, sizeof *s);
    if (!s) return pml_fail(PML_ENOMEM, "out of memory simulating");
    s->g = g;
    s->m = m;
    s->cost = c;
    pml_status st = pml_plan_copy(&s->plan, p);
    if (st == PML_OK) st = pml_taskgraph_build(g, m, &s->plan, c, &s->tg);
    if (st == PML_OK) {
        s->res_free = calloc((size_t)s->tg->nres + 1, sizeof *s->res_free);
        if (!s->res_free) st = pml_fail(PML_ENOMEM, "out of memory simulating");
    }
    if (st == PML_OK) st = check_memory(s);
    if (st == PML_OK) st = sweep(s, 0);
    if (st != PML_OK) {
        pml_sim_destroy(s);
        return st;
    }
    *out = s;
    return PML_OK;
}

void pml_sim_destroy(pml_sim *s)
{
    if (!s) return;
    pml_taskgraph_free(s->tg);
    pml_plan_free(&s->plan);
    free(s->start);
    free(s->end);
    free(s->res_free);
    free(s);
}

double pml_sim_step_seconds(const pml_sim *s) { return s->step; }
const pml_plan *pml_sim_plan(const pml_sim *s) { return &s->plan; }
const pml_taskgraph *pml_sim_taskgraph(const pml_sim *s) { return s->tg; }
const double *pml_sim_start(const pml_sim *s) { return s->start; }
const double *pml_sim_end(const pml_sim *s) { return s->end; }

pml_status pml_sim_change(pml_sim *s, int id, const pml_opcfg *c)
{
    if (s->broken) return pml_fail(PML_ENOMEM, "the simulator ran out of memory earlier");
    if (id < 0 || id >= s->g->nnodes) return pml_fail(PML_EINVAL, "no operator %d", id);
    pml_status st = pml_opcfg_check(s->g, s->m, s->plan.batch, id, c);
    if (st != PML_OK) return st;
    pml_opcfg old = s->plan.cfg[id];
    s->plan.cfg[id] = *c;
    if ((st = pml__tg_rebuild_node(s->tg, id)) != PML_OK) {
        s->broken = true; /* an allocation failed half-way */
        return st;
    }
    pml_status fits = check_memory(s);
    if (fits != PML_OK) {
        /* put the old config back: the simulator is as it was */
        s->plan.cfg[id] = old;
        if ((st = pml__tg_rebuild_node(s->tg, id)) != PML_OK) {
            s->broken = true;
            return st;
        }
    }
    if ((st = sweep(s, s->tg->kmin)) != PML_OK) {
        s->broken = true;
        return st;
    }
    return fits;
}

/* ---------------------------------------------------------------- results */

pml_status pml_sim_result_get(const pml_sim *s, pml_sim_result *r)
{
    memset(r, 0, sizeof *r);
    const pml_taskgraph *tg = s->tg;
    const pml_machine *m = s->m;
    r->step_seconds = s->step;
    r->ndevices = m->ncompute;
    r->busy = calloc((size_t)m->ncompute, sizeof *r->busy);
    r->peak_memory = calloc((size_t)m->ncompute, sizeof *r->peak_memory);
    r->critical = malloc((size_t)(tg->order.n ? tg->order.n : 1) * sizeof *r->critical);
    if (!r->busy || !r->peak_memory || !r->critical) {
        pml_sim_result_free(r);
        return pml_fail(PML_ENOMEM, "out of memory");
    }
    memcpy(r->peak_memory, tg->mem, (size_t)m->ncompute * sizeof *r->peak_memory);
    int last = -1;
    for (int i = 0; i < tg->order.n; i++) {
        int id = tg->order.a[i];
        const pml_task *t = &tg->t[id];
        r->kind_seconds[t->kind] += t->cost;
        for (int k = 0; k < t->nres; k++)
            if (t->res[k] < m->ncompute) r->busy[t->res[k]] += t->cost;
        if (last < 0 || s->end[id] > s->end[last]) last = id;
    }
    /* the critical path: from the last task back through whatever bound each start */
    int n = 0;
    for (int id = last; id >= 0 && n < tg->order.n;) {
        r->critical[n++] = id;
        const pml_task *t = &tg->t[id];
        r->critical_kind[t->kind] += t->cost;
        double st = s->start[id];
        int next = -1;
        if (st <= 0) break;
        for (int k = 0; k < t->npred && next < 0; k++)
            if (s->end[t->pred[k]] == st) next = t->pred[k];
        for (int k = 0; k < t->nres && next < 0; k++) {
            const pml__ivec *v = &tg->res[t->res[k]];
            int at = lower_bound_key(tg, v, t->key);
            if (at > 0 && s->end[v->a[at - 1]] == st) next = v->a[at - 1];
        }
        id = next;
    }
    /* first to last */
    for (int i = 0; i < n / 2; i++) {
        int x = r->critical[i];
        r->critical[i] = r->critical[n - 1 - i];
        r->critical[n - 1 - i] = x;
    }
    r->critical_len = n;
    return PML_OK;
}

void pml_sim_result_free(pml_sim_result *r)
{
    free(r->busy);
    free(r->peak_memory);
    free(r->critical);
    memset(r, 0, sizeof *r);
}
