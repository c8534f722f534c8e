/* pml — the execution simulator.
 *
 * Event-driven list scheduling: a task becomes ready when its predecessors have ended; ready
 * tasks are taken in order of ready time (ties: program order, the task key), and each starts as
 * soon as every resource it needs (its compute device, or the directed links of its route) is
 * free, holding them until it ends:
 *     ready(t) = max(end(p) for p in pred(t)),
 *     start(t) = max(ready(t), free(r) for r in res(t)),   end(t) = start(t) + cost(t).
 * That is what a runtime with a first-come-first-served queue per device and per link does.
 * A transfer streams through the links of its route at once (cut-through): each link is busy
 * for bytes / its bandwidth, starting no earlier than the link before it, and the transfer ends
 * when the last byte has crossed the slowest link, plus the route's latency. A CPU receiver is
 * busy for the whole copy.
 *
 * Crowding: a forward or backward kernel that starts while other cores of its node are busy runs
 * slower, as they share memory bandwidth and the last-level cache (pml_cost_crowding: factors
 * measured with every core running, one for arithmetic, one for memory; the task's memory share
 * picks between them): cost x (1 + (f - 1) x busy / others), fixed at its start.
 *
 * Delta simulation: a change to one operator rebuilds its tasks, then finds T, the earliest
 * ready time at which anything changed (removed tasks and tasks whose predecessors changed, at
 * their old ready times; new tasks at the ready time their predecessors give). Every task that
 * was ready before T is scheduled exactly as before, so only the rest is simulated again, from
 * the resource state at T. The result is exactly the full simulation's. */
#include "tg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PML__HOPS 8

/* a ready-queue entry: ordered by ready time, then program order */
struct hent {
    double ready;
    uint64_t key;
    int id;
};

struct pml_sim {
    const pml_graph *g;
    const pml_machine *m;
    pml_costmodel *cost;
    pml_plan plan;
    pml_taskgraph *tg;
    double *ready, *start, *end;
    int *pending;
    struct hent *heap;
    double (*hop)[PML__HOPS]; /* transfers: when each resource was released */
    int cap;
    double *res_free;
    double step;
    bool broken; /* an allocation failed half-way through a change */
    /* crowding, per compute device: its factors, and the other devices of its node */
    bool crowded; /* any factor above 1 */
    double *crowd_c, *crowd_m;
    int *peer_off, *peers;
};

static pml_status grow_times(pml_sim *s)
{
    int n = s->tg->nslots;
    if (n <= s->cap) return PML_OK;
    const int cap = n + n / 4 + 64;
    const size_t c = (size_t)cap;
    /* on a failure the arrays grown so far stay grown; s->cap stays the old size */
    if (!pml__resize(&s->ready, c, sizeof *s->ready) ||
        !pml__resize(&s->start, c, sizeof *s->start) || !pml__resize(&s->end, c, sizeof *s->end) ||
        !pml__resize(&s->pending, c, sizeof *s->pending) ||
        !pml__resize(&s->heap, c, sizeof *s->heap) || !pml__resize(&s->hop, c, sizeof *s->hop))
        return pml_fail(PML_ENOMEM, "out of memory simulating");
    for (int i = s->cap; i < cap; i++) s->ready[i] = s->start[i] = s->end[i] = 0;
    s->cap = cap;
    s->tg->old_ready = s->ready;
    return PML_OK;
}

/* When task u may start as far as its predecessor p is concerned: p's end, plus the hand-off
 * when they run on different cores that share memory (a dependency that crosses cores costs
 * the route's latency between them: on this machine the hand-off the calibration measured).
 * Across nodes the transfer tasks carry the latency themselves. */
static inline double after(const pml_sim *s, int p, int u)
{
    const pml_task *tp = &s->tg->t[p], *tu = &s->tg->t[u];
    const int a = pml_task_worker(tp), b = pml_task_worker(tu);
    if (a == b || !pml__shared_memory(s->m, a, b)) return s->end[p];
    return s->end[p] + s->m->route_lat[a * s->m->ncompute + b];
}

/* ---------------------------------------------------------------- the ready queue */

static inline bool before(const struct hent *a, const struct hent *b)
{
    if (a->ready != b->ready) return a->ready < b->ready;
    return a->key < b->key;
}

static void heap_push(pml_sim *s, int *n, int id)
{
    struct hent *h = s->heap, e = {s->ready[id], s->tg->t[id].key, id};
    int i = (*n)++;
    while (i > 0) {
        int up = (i - 1) / 2;
        if (!before(&e, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = e;
}

static int heap_pop(pml_sim *s, int *n)
{
    struct hent *h = s->heap, last = h[--*n];
    int top = h[0].id, i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && before(&h[c + 1], &h[c])) c++;
        if (!before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

/* A transfer ready at b: cut-through along its route; fills start, the per-resource release
 * times, and \return its end. */
static double transfer(pml_sim *s, int id, double b)
{
    const pml_task *t = &s->tg->t[id];
    const pml_machine *m = s->m;
    const int src = t->dev, dst = t->dst, nc = m->ncompute;
    const double lat = m->route_lat[src * nc + dst];
    const double copy = t->cost - lat; /* the whole copy at the route's bottleneck (+ any sum) */
    double hs = b, last = b, first = -1;
    for (int k = 0; k < t->nres; k++) {
        const int r = t->res[k];
        const double dur = r < nc ? copy : t->bytes / m->link[(r - nc) / 2].bw;
        if (s->res_free[r] > hs) hs = s->res_free[r];
        if (first < 0) first = hs;
        const double he = hs + dur;
        s->res_free[r] = he;
        s->hop[id][k] = he;
        if (he > last) last = he;
    }
    s->start[id] = first < 0 ? b : first;
    double e = last + lat;
    if (e < s->start[id] + t->cost) e = s->start[id] + t->cost;
    return e;
}

/* Whether compute device d runs a task at time b, for a task ready at r <= b: it holds one past
 * b, or a task of its own ready by r waits in the queue (tasks are taken in order of ready
 * time: it starts by b too, so two parts of a data-parallel layer ready at once crowd each other,
 * whichever the simulation takes first). Only tasks ready by r: whatever a delta simulation
 * keeps (ready before the change's T) must see what the full one sees. */
static bool busy_at(const pml_sim *s, int d, double r, double b, int nheap)
{
    if (s->res_free[d] > b) return true;
    for (int i = 0; i < nheap; i++) {
        const pml_task *u = &s->tg->t[s->heap[i].id];
        if (s->heap[i].ready <= r && u->nres == 1 && u->res[0] == d) return true;
    }
    return false;
}

/* The seconds task t, ready at r, takes when it starts at b (nheap tasks wait in the queue): its
 * cost, slowed by the busy cores of its node (see the top of the file). */
static inline double task_seconds(const pml_sim *s, const pml_task *t, double r, double b,
                                  int nheap)
{
    if (!s->crowded || (t->kind != PML_TASK_FWD && t->kind != PML_TASK_BWD) || t->nres != 1 ||
        t->dev < 0)
        return t->cost;
    const int d = t->dev, n = s->peer_off[d + 1] - s->peer_off[d];
    const double f = s->crowd_c[d] + (s->crowd_m[d] - s->crowd_c[d]) * t->membound;
    if (n == 0 || !(f > 1)) return t->cost;
    int busy = 0;
    for (int k = s->peer_off[d]; k < s->peer_off[d + 1]; k++)
        busy += busy_at(s, s->peers[k], r, b, nheap);
    return t->cost * (1.0 + (f - 1.0) * busy / n);
}

/* Schedules every task not kept (kept[id] true: already scheduled, times final). pending and
 * ready of the others, and res_free, must be set up by the caller. */
static void run(pml_sim *s, int nheap)
{
    pml_taskgraph *tg = s->tg;
    while (nheap > 0) {
        const int id = heap_pop(s, &nheap);
        const pml_task *t = &tg->t[id];
        double b = s->ready[id], e;
        if (t->kind == PML_TASK_XFER && t->nres <= PML__HOPS) {
            e = transfer(s, id, b);
        } else {
            for (int k = 0; k < t->nres; k++)
                if (s->res_free[t->res[k]] > b) b = s->res_free[t->res[k]];
            e = b + task_seconds(s, t, s->ready[id], b, nheap);
            s->start[id] = b;
            for (int k = 0; k < t->nres; k++) s->res_free[t->res[k]] = e;
        }
        s->end[id] = e;
        for (int k = 0; k < t->nsucc; k++) {
            int u = t->succ[k];
            const double r = after(s, id, u);
            if (r > s->ready[u]) s->ready[u] = r;
            if (--s->pending[u] == 0) heap_push(s, &nheap, u);
        }
    }
}

static void finish(pml_sim *s)
{
    pml_taskgraph *tg = s->tg;
    double step = 0;
    for (int id = 0; id < tg->nslots; id++)
        if (tg->live[id] && s->end[id] > step) step = s->end[id];
    s->step = step;
}

/* the whole step */
static pml_status simulate_all(pml_sim *s)
{
    pml_taskgraph *tg = s->tg;
    pml_status st = grow_times(s);
    if (st != PML_OK) return st;
    for (int r = 0; r < tg->nres; r++) s->res_free[r] = 0;
    int nheap = 0;
    for (int id = 0; id < tg->nslots; id++) {
        if (!tg->live[id]) continue;
        s->ready[id] = 0;
        s->pending[id] = tg->t[id].npred;
    }
    for (int id = 0; id < tg->nslots; id++)
        if (tg->live[id] && s->pending[id] == 0) heap_push(s, &nheap, id);
    run(s, nheap);
    finish(s);
    return PML_OK;
}

/* after a rebuild: everything ready at or after the first changed ready time */
static pml_status simulate_from_change(pml_sim *s)
{
    pml_taskgraph *tg = s->tg;
    pml_status st = grow_times(s);
    if (st != PML_OK) return st;
    /* T: old ready times of removed and touched tasks (tg->tmin), and the ready time that new
     * and touched tasks get from predecessors that are all old */
    double T = tg->tmin;
    const pml__ivec *lists[2] = {&tg->added, &tg->touched};
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < lists[l]->n; i++) {
            int id = lists[l]->a[i];
            if (!tg->live[id]) continue;
            const pml_task *t = &tg->t[id];
            double r = 0;
            bool old_preds = true;
            for (int k = 0; k < t->npred && old_preds; k++) {
                int p = t->pred[k];
                if (tg->born[p] == tg->epoch) old_preds = false;
                else if (after(s, p, id) > r) r = after(s, p, id);
            }
            if (old_preds && r < T) T = r;
        }
    if (T <= 0) return simulate_all(s);
    /* kept: old tasks ready before T; their reservations are the resource state at T */
    for (int r = 0; r < tg->nres; r++) s->res_free[r] = 0;
    for (int id = 0; id < tg->nslots; id++) {
        if (!tg->live[id]) continue;
        if (tg->born[id] != tg->epoch && s->ready[id] < T) {
            s->pending[id] = -1; /* kept */
            const pml_task *t = &tg->t[id];
            const bool hops = t->kind == PML_TASK_XFER && t->nres <= PML__HOPS;
            for (int k = 0; k < t->nres; k++) {
                double rel = hops ? s->hop[id][k] : s->end[id];
                if (rel > s->res_free[t->res[k]]) s->res_free[t->res[k]] = rel;
            }
        } else {
            s->pending[id] = 0;
        }
    }
    int nheap = 0;
    for (int id = 0; id < tg->nslots; id++) {
        if (!tg->live[id] || s->pending[id] < 0) continue;
        const pml_task *t = &tg->t[id];
        double r = 0;
        int pend = 0;
        for (int k = 0; k < t->npred; k++) {
            int p = t->pred[k];
            if (s->pending[p] < 0) {
                if (after(s, p, id) > r) r = after(s, p, id);
            } else {
                pend++;
            }
        }
        s->ready[id] = r;
        s->pending[id] = pend;
    }
    for (int id = 0; id < tg->nslots; id++)
        if (tg->live[id] && s->pending[id] == 0) heap_push(s, &nheap, id);
    run(s, nheap);
    finish(s);
    return PML_OK;
}

static pml_status check_memory(const pml_sim *s)
{
    const pml_machine *m = s->m;
    for (int c = 0; c < m->ncompute; c++) {
        const pml_device *d = &m->dev[m->compute[c]];
        if (d->mem_bytes > 0 && s->tg->mem[c] > d->mem_bytes)
            return pml_fail(PML_ENOFIT,
                            "the plan needs %.2f GB on device %d (%s), which has %.2f GB",
                            s->tg->mem[c] / 1e9, c, d->name, d->mem_bytes / 1e9);
    }
    return PML_OK;
}

/* The crowding factors of each compute device and the devices of its host. */
static pml_status crowding_setup(pml_sim *s)
{
    const pml_machine *m = s->m;
    const int nc = m->ncompute;
    s->crowd_c = calloc((size_t)nc, sizeof *s->crowd_c);
    s->crowd_m = calloc((size_t)nc, sizeof *s->crowd_m);
    s->peer_off = calloc((size_t)nc + 1, sizeof *s->peer_off);
    if (!s->crowd_c || !s->crowd_m || !s->peer_off) return pml_fail(PML_ENOMEM, "out of memory simulating");
    int total = 0;
    for (int d = 0; d < nc; d++) {
        pml_cost_crowding(s->cost, d, &s->crowd_c[d], &s->crowd_m[d]);
        const bool any = s->crowd_c[d] > 1 || s->crowd_m[d] > 1;
        s->peer_off[d] = total;
        for (int e = 0; any && e < nc; e++) total += e != d && pml__same_host(m, d, e);
        s->crowded |= any && total > s->peer_off[d];
    }
    s->peer_off[nc] = total;
    if (!s->crowded) return PML_OK;
    s->peers = malloc((size_t)total * sizeof *s->peers);
    if (!s->peers) return pml_fail(PML_ENOMEM, "out of memory simulating");
    for (int d = 0; d < nc; d++)
        for (int e = 0, k = s->peer_off[d]; k < s->peer_off[d + 1]; e++)
            if (e != d && pml__same_host(m, d, e)) s->peers[k++] = e;
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
    if (st == PML_OK && c) st = crowding_setup(s);
    if (st == PML_OK) st = pml_taskgraph_build(g, m, &s->plan, c, &s->tg);
    if (st == PML_OK) {
        s->res_free = calloc((size_t)s->tg->nres + 1, sizeof *s->res_free);
        if (!s->res_free) st = pml_fail(PML_ENOMEM, "out of memory simulating");
    }
    if (st == PML_OK) st = check_memory(s);
    if (st == PML_OK) st = simulate_all(s);
    if (st == PML_OK) pml__tg_reset_changes(s->tg);
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
    free(s->ready);
    free(s->start);
    free(s->end);
    free(s->pending);
    free(s->heap);
    free(s->hop);
    free(s->res_free);
    free(s->crowd_c);
    free(s->crowd_m);
    free(s->peer_off);
    free(s->peers);
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
    st = simulate_from_change(s);
    if (st == PML_OK) st = pml__tg_commit(s->tg);
    if (st != PML_OK) {
        s->broken = true;
        return st;
    }
    pml__tg_reset_changes(s->tg);
    return fits;
}

/* ---------------------------------------------------------------- results */

/* The seconds task id ran: crowding may have slowed a kernel past its cost. */
static double ran(const pml_sim *s, int id)
{
    const pml_task *t = &s->tg->t[id];
    if (t->kind != PML_TASK_FWD && t->kind != PML_TASK_BWD) return t->cost;
    return s->end[id] - s->start[id];
}

double pml_sim_task_seconds(const pml_sim *s, int id) { return ran(s, id); }

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
        const double dt = ran(s, id);
        r->kind_seconds[t->kind] += dt;
        for (int k = 0; k < t->nres; k++)
            if (t->res[k] < m->ncompute) r->busy[t->res[k]] += dt;
        if (last < 0 || s->end[id] > s->end[last]) last = id;
    }
    /* the critical path: from the last task back through whatever bound each start: the
     * predecessor that ended last, or the task that released a resource it waited for */
    int n = 0;
    for (int id = last; id >= 0 && n < tg->order.n;) {
        r->critical[n++] = id;
        const pml_task *t = &tg->t[id];
        r->critical_kind[t->kind] += ran(s, id);
        const double st = s->start[id];
        int next = -1;
        double best = -1;
        for (int k = 0; k < t->npred; k++)
            if (s->end[t->pred[k]] > best) {
                best = s->end[t->pred[k]];
                next = t->pred[k];
            }
        if (best < st) { /* it waited for a resource */
            for (int k = 0; k < t->nres; k++) {
                const pml__ivec *v = &tg->res[t->res[k]];
                for (int j = 0; j < v->n; j++) {
                    int o = v->a[j];
                    if (o == id || s->start[o] >= st) continue;
                    double rel = s->end[o];
                    const pml_task *to = &tg->t[o];
                    if (to->kind == PML_TASK_XFER && to->nres <= PML__HOPS)
                        for (int h = 0; h < to->nres; h++)
                            if (to->res[h] == t->res[k]) rel = s->hop[o][h];
                    if (rel <= st && rel > best) {
                        best = rel;
                        next = o;
                    }
                }
            }
        }
        if (best <= 0) next = -1;
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
