/* pml — the task-graph builder: (model, machine, plan) -> the tasks of one training step.
 *
 * Tasks
 *   FWD(v,p), BWD(v,p)  the kernels of part p of operator v, on the part's device.
 *   XFER                a region of an activation (forward) or of a gradient contribution
 *                       (backward) moving between two devices; the receiver of a gradient sums it
 *                       in. Parts on the same device depend on each other directly.
 *   SYNC                gradient all-reduce of one bucket among the devices holding replicas of
 *                       the same parameter slices (buckets of ~25 MB in reverse topological order,
 *                       as PyTorch DDP, so synchronisation overlaps the backward pass).
 *   UPDATE              the optimizer on one part's parameter slice, after its sync.
 *   With parameter servers (PML_SYNC_PS) a slice's gradients move to the server replica, which
 *   updates and sends the parameters back (XFER tasks), instead of SYNC. On a machine whose
 *   devices say role=ps, those devices are the servers instead, each holding a shard of every
 *   parameter (build_served).
 *
 * Program order. Every task has a key that fixes its place: forward tasks by their operator's
 * topological position, backward tasks in reverse, updates last. Keys are a topological order of
 * the task graph, depend only on the task's identity (never on when it was built), and every
 * resource runs its tasks in key order. That makes a simulation a longest-path sweep in key
 * order, and lets a change to one operator rebuild only that operator's tasks. */
#include "tg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[PML_TASK_KIND_COUNT] = {"fwd", "bwd", "xfer", "sync",
                                                            "update"};

const char *pml_task_kind_name(pml_task_kind k)
{
    return (unsigned)k < PML_TASK_KIND_COUNT ? kind_names[k] : "?";
}

/* ---------------------------------------------------------------- small vectors */

static bool iv_push(pml__ivec *v, int x)
{
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 8;
        int *a = realloc(v->a, (size_t)cap * sizeof *a);
        if (!a) return false;
        v->a = a;
        v->cap = cap;
    }
    v->a[v->n++] = x;
    return true;
}

static void iv_free(pml__ivec *v)
{
    free(v->a);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- keys */

/* phase (2 bits) | major (16 bits: the operator's position) | minor (4 bits: kind of task at
 * that position) | sub (42 bits: which part, input and peer) */
#define KEY(phase, major, minor, sub)                                                              \
    (((uint64_t)(phase) << 62) | ((uint64_t)(major) << 46) | ((uint64_t)(minor) << 42) |          \
     (uint64_t)(sub))
enum { PH_FWD = 0, PH_BWD = 1, PH_UPD = 2 };

/* ---------------------------------------------------------------- slots */

static int new_task(pml_taskgraph *tg, pml_task_kind kind, uint64_t key)
{
    int id;
    if (tg->freeslots.n) {
        id = tg->freeslots.a[--tg->freeslots.n];
    } else {
        if (tg->nslots == tg->cap) {
            const size_t cap = tg->cap ? 2 * (size_t)tg->cap : 1024;
            if (!pml__resize(&tg->t, cap, sizeof *tg->t) ||
                !pml__resize(&tg->pcap, cap, sizeof *tg->pcap) ||
                !pml__resize(&tg->scap, cap, sizeof *tg->scap) ||
                !pml__resize(&tg->live, cap, sizeof *tg->live) ||
                !pml__resize(&tg->born, cap, sizeof *tg->born) ||
                !pml__resize(&tg->seen, cap, sizeof *tg->seen))
                return -1;
            tg->cap = (int)cap;
        }
        id = tg->nslots++;
        memset(&tg->t[id], 0, sizeof tg->t[id]);
        tg->pcap[id] = tg->scap[id] = 0;
        tg->seen[id] = -1;
    }
    tg->born[id] = tg->epoch;
    pml_task *t = &tg->t[id];
    int *pred = t->pred, *succ = t->succ; /* keep capacity of a reused slot */
    int *res = t->res;
    int16_t *group = t->group;
    int *members = t->members;
    memset(t, 0, sizeof *t);
    t->pred = pred;
    t->succ = succ;
    t->res = res;
    t->group = group;
    t->members = members;
    t->kind = (uint8_t)kind;
    t->key = key;
    t->dev = t->dst = -1;
    t->cnode = t->cpart = -1;
    t->node = t->part = -1;
    tg->live[id] = true;
    if (key < tg->kmin) tg->kmin = key;
    if (!iv_push(&tg->added, id)) return -1;
    return id;
}

/* an old task whose predecessors change: it must be simulated again from its old ready time */
static void touch(pml_taskgraph *tg, int id)
{
    if (tg->born[id] == tg->epoch || tg->seen[id] == tg->epoch) return;
    tg->seen[id] = tg->epoch;
    iv_push(&tg->touched, id); /* a failed push only loses precision: tmin covers it */
    if (tg->old_ready && tg->old_ready[id] < tg->tmin) tg->tmin = tg->old_ready[id];
    if (!tg->old_ready) tg->tmin = 0;
}

static bool add_edge(pml_taskgraph *tg, int from, int to)
{
    touch(tg, to);
    pml_task *a = &tg->t[from], *b = &tg->t[to];
    if (a->nsucc == tg->scap[from]) {
        int cap = tg->scap[from] ? 2 * tg->scap[from] : 4;
        int *s = realloc(a->succ, (size_t)cap * sizeof *s);
        if (!s) return false;
        a->succ = s;
        tg->scap[from] = cap;
    }
    if (b->npred == tg->pcap[to]) {
        int cap = tg->pcap[to] ? 2 * tg->pcap[to] : 4;
        int *p = realloc(b->pred, (size_t)cap * sizeof *p);
        if (!p) return false;
        b->pred = p;
        tg->pcap[to] = cap;
    }
    a->succ[a->nsucc++] = to;
    b->pred[b->npred++] = from;
    return true;
}

static void drop_from(int *a, int *n, int x)
{
    for (int i = 0; i < *n; i++)
        if (a[i] == x) {
            a[i] = a[--*n];
            return;
        }
}

/* position of the first entry with key >= k in a key-sorted list */
static int lower_bound(const pml_taskgraph *tg, const pml__ivec *v, uint64_t k)
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

static bool res_insert(pml_taskgraph *tg, int r, int id)
{
    pml__ivec *v = &tg->res[r];
    if (!iv_push(v, id)) return false;
    int at = lower_bound(tg, v, tg->t[id].key);
    memmove(v->a + at + 1, v->a + at, (size_t)(v->n - 1 - at) * sizeof *v->a);
    v->a[at] = id;
    return true;
}

static void res_remove(pml_taskgraph *tg, int r, int id)
{
    pml__ivec *v = &tg->res[r];
    int at = lower_bound(tg, v, tg->t[id].key);
    if (at < v->n && v->a[at] == id) {
        memmove(v->a + at, v->a + at + 1, (size_t)(v->n - at - 1) * sizeof *v->a);
        v->n--;
    }
}

/* Memory a task keeps on a compute device: its output (and the output's gradient), saved state,
 * the parameter slice with its gradient (FWD), the optimizer state (UPDATE), a received copy
 * (XFER). Computed once when the task is made, so removing it subtracts exactly that. */
static double task_mem(const pml_taskgraph *tg, const pml_task *t)
{
    const pml_node *n = t->node >= 0 ? &tg->g->nodes[t->node] : NULL;
    double bytes = 0;
    switch (t->kind) {
    case PML_TASK_FWD: {
        double out = (double)(t->r.n1 - t->r.n0) * (t->r.c1 - t->r.c0) * (t->r.h1 - t->r.h0) * n->out.w;
        bytes = 4.0 * out * (tg->wants[t->node] ? 2 : 1);
        bytes += 4.0 * (double)n->aux_per_sample * (t->r.n1 - t->r.n0) + 4.0 * (double)n->aux_fixed;
        const pml_opcfg *c = &tg->p->cfg[t->node];
        for (int j = 0; j < n->nparam; j++) bytes += 8.0 * (double)n->param_size[j] / c->deg[1];
        break;
    }
    case PML_TASK_XFER:
        bytes = t->bytes;
        break;
    case PML_TASK_UPDATE: {
        if (t->bytes > 0) { /* a server's piece: parameters, their summed gradient, the state */
            bytes = 4.0 * t->bytes;
            break;
        }
        const pml_opcfg *c = &tg->p->cfg[t->node];
        for (int j = 0; j < n->nparam; j++) bytes += 8.0 * (double)n->param_size[j] / c->deg[1];
        break;
    }
    default:
        break;
    }
    return bytes;
}

static void mem_add(pml_taskgraph *tg, int id, double sign)
{
    pml_task *t = &tg->t[id];
    if (sign > 0) t->mem = task_mem(tg, t);
    int dev = t->kind == PML_TASK_XFER ? t->dst : t->dev;
    if (dev >= 0 && t->mem != 0) tg->mem[dev] += sign * t->mem;
}

static void free_task(pml_taskgraph *tg, int id)
{
    pml_task *t = &tg->t[id];
    if (!tg->live[id]) return;
    if (t->key < tg->kmin) tg->kmin = t->key;
    if (tg->born[id] != tg->epoch) {
        if (!tg->old_ready)
            tg->tmin = 0;
        else if (tg->old_ready[id] < tg->tmin)
            tg->tmin = tg->old_ready[id];
    }
    for (int i = 0; i < t->npred; i++) {
        pml_task *p = &tg->t[t->pred[i]];
        drop_from(p->succ, &p->nsucc, id);
    }
    for (int i = 0; i < t->nsucc; i++) {
        pml_task *s = &tg->t[t->succ[i]];
        drop_from(s->pred, &s->npred, id);
        touch(tg, t->succ[i]);
    }
    for (int i = 0; i < t->nres; i++) res_remove(tg, t->res[i], id);
    mem_add(tg, id, -1.0);
    t->npred = t->nsucc = t->nres = 0;
    t->ngroup = 0;
    tg->live[id] = false;
    tg->removed_any = true;
    iv_push(&tg->freeslots, id); /* never shrinks below its high-water mark: cannot fail */
}

/* t->res becomes {resources}; registers in resource lists */
static bool set_res(pml_taskgraph *tg, int id, const int *r, int n)
{
    pml_task *t = &tg->t[id];
    if (n > 0) {
        int *a = realloc(t->res, (size_t)n * sizeof *a);
        if (!a) return false;
        t->res = a;
        memcpy(a, r, (size_t)n * sizeof *a);
    }
    t->nres = n;
    for (int i = 0; i < n; i++)
        if (!res_insert(tg, r[i], id)) return false;
    return true;
}

/* ---------------------------------------------------------------- costs */

static double xfer_seconds(const pml_taskgraph *tg, int src, int dst, double bytes)
{
    const pml_machine *m = tg->m;
    int k = src * m->ncompute + dst;
    return m->route_lat[k] + bytes / m->route_bw[k];
}

/* ring all-reduce over devices grp[0..k) (sorted); fills the directed link resources used */
static double allreduce_seconds(const pml_taskgraph *tg, const int16_t *grp, int k, double bytes,
                                pml__ivec *res)
{
    const pml_machine *m = tg->m;
    const int L = 2 * m->nlink;
    int *use = calloc((size_t)(L ? L : 1), sizeof *use);
    if (!use) return INFINITY;
    double lat = 0;
    for (int i = 0; i < k; i++) {
        int a = grp[i], b = grp[(i + 1) % k], len;
        const int *route = pml_machine_route(m, a, b, &len);
        for (int j = 0; j < len; j++) use[route[j]]++;
        double l = m->route_lat[a * m->ncompute + b];
        if (l > lat) lat = l;
    }
    double bw = INFINITY;
    res->n = 0;
    for (int r = 0; r < L; r++) {
        if (!use[r]) continue;
        double b = m->link[r / 2].bw / use[r];
        if (b < bw) bw = b;
        iv_push(res, tg->m->ncompute + r);
    }
    free(use);
    double flat = 2.0 * (k - 1) / k * bytes / bw + 2.0 * (k - 1) * lat;
    /* hierarchical: within nodes, then across nodes (NCCL picks the faster) */
    int nodes = 0, per = 0;
    for (int i = 0; i < k; i++) {
        int node = m->dev[m->compute[grp[i]]].node;
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= m->dev[m->compute[grp[j]]].node == node;
        if (!seen) nodes++;
    }
    if (nodes > 1 && k % nodes == 0 && (per = k / nodes) > 1) {
        double intra_bw = INFINITY, intra_lat = 0, inter_bw = INFINITY, inter_lat = 0;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                if (i == j) continue;
                int idx = grp[i] * m->ncompute + grp[j];
                bool same = m->dev[m->compute[grp[i]]].node == m->dev[m->compute[grp[j]]].node;
                double *bwp = same ? &intra_bw : &inter_bw, *lp = same ? &intra_lat : &inter_lat;
                if (m->route_bw[idx] < *bwp) *bwp = m->route_bw[idx];
                if (m->route_lat[idx] > *lp) *lp = m->route_lat[idx];
            }
        double h = 2.0 * (per - 1) / per * bytes / intra_bw + 2.0 * (per - 1) * intra_lat +
                   2.0 * (nodes - 1) / nodes * bytes / inter_bw + 2.0 * (nodes - 1) * inter_lat;
        if (h < flat) flat = h;
    }
    return flat;
}

/* ---------------------------------------------------------------- building */

static int parts_of(const pml_taskgraph *tg, int v) { return pml_opcfg_parts(&tg->p->cfg[v]); }

static pml_region part_region(const pml_taskgraph *tg, int v, int p)
{
    return pml_plan_part_region(tg->g, v, &tg->p->cfg[v], tg->p->batch, p);
}

static size_t region_floats(const pml_graph *g, int v, pml_region r)
{
    if (pml_region_empty(r)) return 0;
    return (size_t)(r.n1 - r.n0) * (size_t)(r.c1 - r.c0) * (size_t)(r.h1 - r.h0) *
           (size_t)g->nodes[v].out.w;
}

static double region_blocks(const pml_taskgraph *tg, int v, pml_region r);

/* Does part p of consumer v need, for input i, a region that producer parts on another device
 * hold (a "split" edge part)? */
static bool split_part(const pml_taskgraph *tg, int v, int i, int p, pml_region need)
{
    const int u = tg->g->nodes[v].in[i];
    const pml_opcfg *cu = &tg->p->cfg[u];
    const int dv = tg->p->cfg[v].dev[p];
    for (int q = 0; q < parts_of(tg, u); q++)
        if (cu->dev[q] != dv && !pml_region_empty(pml_region_meet(need, part_region(tg, u, q))))
            return true;
    return false;
}

/* The plan executor's work in backward part q of node x around split edges, in shared memory:
 * for each input whose needed region producer parts on other devices hold, it zeroes its staging
 * region of that input before the kernel; for each consumer part on its device that staged a
 * piece of x's output gradient, it adds (pulls) that piece into its own gradient first. It
 * depends on the configs of x and of its neighbours, so it is computed from the plan alone, in a
 * fixed order: a delta rebuild gives the full build's numbers. */
static double split_work(const pml_taskgraph *tg, int x, int q)
{
    const pml_graph *g = tg->g;
    const pml_opcfg *cx = &tg->p->cfg[x];
    const int dev = cx->dev[q];
    if (!tg->cost || !pml__shared_memory(tg->m, dev, dev)) return 0;
    const pml_region rq = part_region(tg, x, q);
    double t = 0;
    for (int i = 0; i < g->nodes[x].nin; i++) { /* staging zeroed */
        const int u = g->nodes[x].in[i];
        if (!tg->wants[u]) continue;
        const pml_region need = pml_node_in_region(g, x, i, rq);
        if (pml_region_empty(need) || !split_part(tg, x, i, q, need)) continue;
        t += pml_cost_zero(tg->cost, dev, (double)region_floats(g, u, need),
                           region_blocks(tg, u, need));
    }
    if (!tg->wants[x]) return t;
    for (int k = tg->cons_off[x]; k < tg->cons_off[x + 1]; k++) { /* pieces pulled */
        const int w = tg->cons[2 * k], i = tg->cons[2 * k + 1];
        if (!tg->run_bwd[w]) continue;
        const pml_opcfg *cw = &tg->p->cfg[w];
        for (int p = 0; p < parts_of(tg, w); p++) {
            if (cw->dev[p] != dev) continue;
            const pml_region need = pml_node_in_region(g, w, i, part_region(tg, w, p));
            const pml_region ov = pml_region_meet(need, rq);
            if (pml_region_empty(ov) || !split_part(tg, w, i, p, need)) continue;
            t += pml_cost_reduce_ranges(tg->cost, dev, (double)region_floats(g, x, ov),
                                        region_blocks(tg, x, ov));
        }
    }
    return t;
}

static double part_traffic(const pml_taskgraph *tg, int v, int p);
static double foreign(const pml_taskgraph *tg, double bytes, bool shared);

/* Sets the cost of node x's backward parts again (their split-edge work changed with a
 * neighbour's config), and marks them for the simulator. */
static void recost_bwd(pml_taskgraph *tg, int x)
{
    if (!tg->cost || !tg->run_bwd[x] || !tg->bwd_id[x]) return;
    for (int q = 0; q < parts_of(tg, x) && q < tg->nparts[x]; q++) {
        const int b = tg->bwd_id[x][q];
        if (b < 0 || !tg->live[b]) continue;
        pml_task *t = &tg->t[b];
        const double c =
            pml_cost_bwd(tg->cost, x, t->dev, t->r) + split_work(tg, x, q) + part_traffic(tg, x, q);
        if (c != t->cost) {
            t->cost = c;
            touch(tg, b);
        }
    }
}

/* FWD and BWD tasks of node v */
static pml_status build_parts(pml_taskgraph *tg, int v)
{
    const int P = parts_of(tg, v);
    const pml_opcfg *c = &tg->p->cfg[v];
    if (tg->nparts[v] < P) {
        int *f = realloc(tg->fwd_id[v], (size_t)P * sizeof *f);
        if (!f) return pml_fail(PML_ENOMEM, "out of memory building tasks");
        tg->fwd_id[v] = f;
        int *b = realloc(tg->bwd_id[v], (size_t)P * sizeof *b);
        if (!b) return pml_fail(PML_ENOMEM, "out of memory building tasks");
        tg->bwd_id[v] = b;
        tg->nparts[v] = P;
    }
    const int pos = tg->pos[v], N = tg->N;
    const bool is_input = tg->g->nodes[v].op == PML_OP_INPUT;
    for (int p = 0; p < P; p++) {
        pml_region r = part_region(tg, v, p);
        int dev = c->dev[p];
        int f = new_task(tg, PML_TASK_FWD, KEY(PH_FWD, pos, 2, p));
        if (f < 0) return pml_fail(PML_ENOMEM, "out of memory building tasks");
        pml_task *t = &tg->t[f];
        t->node = v;
        t->part = p;
        t->dev = (int16_t)dev;
        t->r = r;
        t->cost = tg->cost && !is_input ? pml_cost_fwd(tg->cost, v, dev, r) + part_traffic(tg, v, p)
                                        : 0.0;
        t->membound = tg->cost && !is_input ? pml_cost_memory_share(tg->cost, v, dev, r, false) : 0;
        if (!set_res(tg, f, &dev, 1)) return pml_fail(PML_ENOMEM, "out of memory building tasks");
        mem_add(tg, f, 1.0);
        tg->fwd_id[v][p] = f;
        tg->bwd_id[v][p] = -1;
        if (!tg->run_bwd[v]) continue;
        int b = new_task(tg, PML_TASK_BWD, KEY(PH_BWD, N - 1 - pos, 2, p));
        if (b < 0) return pml_fail(PML_ENOMEM, "out of memory building tasks");
        t = &tg->t[b];
        t->node = v;
        t->part = p;
        t->dev = (int16_t)dev;
        t->r = r;
        t->cost = tg->cost ? pml_cost_bwd(tg->cost, v, dev, r) + split_work(tg, v, p) +
                                 part_traffic(tg, v, p)
                           : 0.0;
        t->membound = tg->cost ? pml_cost_memory_share(tg->cost, v, dev, r, true) : 0;
        if (!set_res(tg, b, &dev, 1) || !add_edge(tg, f, b))
            return pml_fail(PML_ENOMEM, "out of memory building tasks");
        tg->bwd_id[v][p] = b;
    }
    return PML_OK;
}

static void drop_parts(pml_taskgraph *tg, int v)
{
    for (int p = 0; p < tg->nparts[v]; p++) {
        if (tg->fwd_id[v] && tg->fwd_id[v][p] >= 0) free_task(tg, tg->fwd_id[v][p]);
        if (tg->bwd_id[v] && tg->bwd_id[v][p] >= 0) free_task(tg, tg->bwd_id[v][p]);
        tg->fwd_id[v][p] = tg->bwd_id[v][p] = -1;
    }
}

/* a transfer task between compute devices src -> dst */
/* Cores of one node share memory: an activation needs no copy (the consumer reads the
 * producer's buffer; the transfer is only a dependency), a gradient contribution is summed into
 * the receiver's buffer by the receiver, replicas share one parameter copy. */
bool pml__shared_memory(const pml_machine *m, int a, int b)
{
    const pml_device *x = &m->dev[m->compute[a]], *y = &m->dev[m->compute[b]];
    return x->kind == PML_DEV_CPU && y->kind == PML_DEV_CPU && x->node == y->node;
}

bool pml__same_host(const pml_machine *m, int a, int b)
{
    const pml_device *x = &m->dev[m->compute[a]], *y = &m->dev[m->compute[b]];
    return x->kind == PML_DEV_CPU && y->kind == PML_DEV_CPU &&
           (x->node == y->node || m->cores_of[0]);
}

/* Contiguous blocks of region r of node v's output, as the plan executor sums it: one for
 * whole samples, one per sample for whole channels, else one per (sample, channel). */
static double region_blocks(const pml_taskgraph *tg, int v, pml_region r)
{
    const pml_shape s = tg->g->nodes[v].out;
    if (pml_region_empty(r)) return 1;
    if (r.h0 == 0 && r.h1 == s.h) return r.c0 == 0 && r.c1 == s.c ? 1 : r.n1 - r.n0;
    return (double)(r.n1 - r.n0) * (r.c1 - r.c0);
}

/* A transfer of `bytes`; a gradient is summed into the receiver's buffer in `ranges` contiguous
 * ranges. */
static int make_xfer(pml_taskgraph *tg, uint64_t key, int src, int dst, double bytes, bool grad,
                     double ranges)
{
    int x = new_task(tg, PML_TASK_XFER, key);
    if (x < 0) return -1;
    pml_task *t = &tg->t[x];
    t->dev = (int16_t)src;
    t->dst = (int16_t)dst;
    t->grad = grad;
    t->bytes = bytes;
    if (pml__shared_memory(tg->m, src, dst)) {
        /* nothing is copied: the receiving core reads the lines the sender wrote (sums them,
         * for a gradient); the hand-off between the cores is the edge's (sim.c). And a step
         * later the sender rewrites them while the receiver's caches still hold them read:
         * each line's copy is invalidated first (mlp's units split over two cores: its flatten
         * of the 100 KB batch, read by both halves of dense1, ran 11 us a step against 3 us
         * on one core, the far hand-off's 8 GB/s). Charged here, where the receiver waits. */
        t->cost = foreign(tg, bytes, false) + foreign(tg, bytes, true);
        if (grad && tg->cost) t->cost += pml_cost_reduce_ranges(tg->cost, dst, bytes / 4.0, ranges);
        if (t->cost <= 0) return x;
        return set_res(tg, x, &dst, 1) ? x : -1;
    }
    t->cost = xfer_seconds(tg, src, dst, bytes);
    if (grad && tg->cost) t->cost += pml_cost_reduce_ranges(tg->cost, dst, bytes / 4.0, ranges);
    int len;
    const int *route = pml_machine_route(tg->m, src, dst, &len);
    int rs[64 + 1], n = 0;
    for (int i = 0; i < len && n < 64; i++) rs[n++] = tg->m->ncompute + route[i];
    /* a CPU core copies with its own loads and stores */
    if (tg->m->dev[tg->m->compute[dst]].kind == PML_DEV_CPU) rs[n++] = dst;
    if (!set_res(tg, x, rs, n)) return -1;
    return x;
}

/* the parts along one dimension (n items in deg slices) that meet [a, b): *lo .. *hi - 1 */
static void slice_range(int n, int deg, int a, int b, int *lo, int *hi)
{
    int i = (int)((long)a * deg / n);
    while (i + 1 < deg && (long)n * (i + 1) / deg <= a) i++;
    while (i > 0 && (long)n * i / deg > a) i--;
    *lo = i;
    while (i < deg && (long)n * i / deg < b) i++;
    *hi = i;
}

/* The edge from producer u into input i of consumer v: forward transfers (or direct
 * dependencies) from u's parts to v's parts, and gradient contributions back. */
static pml_status build_edge(pml_taskgraph *tg, int v, int i)
{
    const pml_graph *g = tg->g;
    const int u = g->nodes[v].in[i];
    pml__ivec *own = &tg->edge[v * PML_MAX_INPUTS + i];
    const int Pv = parts_of(tg, v);
    const pml_opcfg *cu = &tg->p->cfg[u], *cv = &tg->p->cfg[v];
    const int posv = tg->pos[v], posu = tg->pos[u], N = tg->N;
    const bool grads = tg->wants[u] && tg->run_bwd[v];
    const pml_shape uo = g->nodes[u].out;
    for (int p = 0; p < Pv; p++) {
        pml_region need = pml_node_in_region(g, v, i, part_region(tg, v, p));
        if (pml_region_empty(need)) continue;
        /* only the producer parts whose slices meet the needed region, dimension by dimension */
        int n0, n1, c0, c1, h0, h1;
        slice_range(tg->p->batch, cu->deg[0], need.n0, need.n1, &n0, &n1);
        slice_range(uo.c, cu->deg[1], need.c0, need.c1, &c0, &c1);
        slice_range(uo.h, cu->deg[2], need.h0, need.h1, &h0, &h1);
        for (int qn = n0; qn < n1; qn++)
        for (int qc = c0; qc < c1; qc++)
        for (int qh = h0; qh < h1; qh++) {
            const int q = (qn * cu->deg[1] + qc) * cu->deg[2] + qh;
            pml_region ov = pml_region_meet(need, part_region(tg, u, q));
            if (pml_region_empty(ov)) continue;
            const double bytes = 4.0 * (double)region_floats(g, u, ov);
            const int fu = tg->fwd_id[u][q], fv = tg->fwd_id[v][p];
            if (cu->dev[q] == cv->dev[p]) {
                if (!add_edge(tg, fu, fv)) goto nomem;
            } else {
                uint64_t key = KEY(PH_FWD, posv, 1, ((uint64_t)p << 24) | ((uint64_t)i << 16) | q);
                int x = make_xfer(tg, key, cu->dev[q], cv->dev[p], bytes, false, 1);
                if (x < 0 || !iv_push(own, x)) goto nomem;
                pml_task *t = &tg->t[x];
                t->node = u;
                t->part = q;
                t->cnode = v;
                t->cpart = p;
                t->input = i;
                t->r = ov;
                mem_add(tg, x, 1.0);
                if (!add_edge(tg, fu, x) || !add_edge(tg, x, fv)) goto nomem;
            }
            if (!grads) continue;
            const int bv = tg->bwd_id[v][p], bu = tg->bwd_id[u][q];
            if (cu->dev[q] == cv->dev[p]) {
                if (!add_edge(tg, bv, bu)) goto nomem;
            } else {
                uint64_t key = KEY(PH_BWD, N - 1 - posu, 1,
                                   ((uint64_t)q << 34) | ((uint64_t)posv << 11) |
                                       ((uint64_t)i << 8) | (uint64_t)p);
                int x = make_xfer(tg, key, cv->dev[p], cu->dev[q], bytes, true,
                                  region_blocks(tg, u, ov));
                if (x < 0 || !iv_push(own, x)) goto nomem;
                pml_task *t = &tg->t[x];
                t->node = u;
                t->part = q;
                t->cnode = v;
                t->cpart = p;
                t->input = i;
                t->r = ov;
                mem_add(tg, x, 1.0);
                if (!add_edge(tg, bv, x) || !add_edge(tg, x, bu)) goto nomem;
            }
        }
    }
    return PML_OK;
nomem:
    return pml_fail(PML_ENOMEM, "out of memory building tasks");
}

static void drop_edge(pml_taskgraph *tg, int v, int i)
{
    pml__ivec *own = &tg->edge[v * PML_MAX_INPUTS + i];
    for (int k = 0; k < own->n; k++) free_task(tg, own->a[k]);
    own->n = 0;
}

static double slice_floats(const pml_taskgraph *tg, int v)
{
    const pml_node *n = &tg->g->nodes[v];
    double f = 0;
    for (int j = 0; j < n->nparam; j++) f += (double)n->param_size[j];
    return f / tg->p->cfg[v].deg[1];
}

/* Contiguous ranges of the parameter block that hold one channel slice of v, as the plan
 * executor lays them out: one per parameter tensor (a linear weight is stored (out, in), so a
 * parameter split's slice is a block of rows). */
static double slice_ranges(const pml_taskgraph *tg, int v)
{
    return tg->g->nodes[v].nparam;
}

/* parts of v holding channel slice pc (replicas), in part order */
static int replicas(const pml_taskgraph *tg, int v, int pc, int *parts)
{
    const pml_opcfg *c = &tg->p->cfg[v];
    int k = 0;
    for (int pn = 0; pn < c->deg[0]; pn++)
        for (int ph = 0; ph < c->deg[2]; ph++) parts[k++] = (pn * c->deg[1] + pc) * c->deg[2] + ph;
    return k;
}

/* ---------------------------------------------------------------- traffic between cores
 *
 * Cores of a node share memory, but a cache line another core wrote last, or holds a copy of,
 * must move or be invalidated before this core rewrites it: measured per machine (xcore_bw after
 * a write there, xshared_bw after reads there; planner/machine_this.c) and charged on what
 * all-reduce data parallelism moves between the cores of a node every step:
 *   forward of a replica    reads the parameter shares the other replicas' cores updated;
 *   backward of a replica   accumulates into its gradient buffer, which the other cores zeroed
 *                           (the first replica's buffer: the shares the other cores summed in);
 *   sync of a share         reads and zeroes the other replicas' gradients of it (the first
 *                           replica's: adds into them);
 *   update of a share       rewrites parameters every replica read (the sum is its core's;
 *                           at xupdate_bw, the optimizer's own rate, where measured);
 *   transfer between cores  the consumer reads what the producer wrote, which the producer
 *                           rewrites a step later (the consumer's copies invalidated).
 * At most a core's private caches' worth of a buffer is charged (core_cache): the rest has left
 * the other core's caches and costs no more than one's own. A machine without these
 * measurements (a cluster file, a named machine) charges nothing. */
static double foreign_at(const pml_taskgraph *tg, double bytes, double bw)
{
    const double held = tg->m->core_cache > 0 && bytes > tg->m->core_cache ? tg->m->core_cache : bytes;
    return bw > 0 && held > 0 ? held / bw : 0;
}

static double foreign(const pml_taskgraph *tg, double bytes, bool shared)
{
    return foreign_at(tg, bytes, shared ? tg->m->xshared_bw : tg->m->xcore_bw);
}

/* Part p of v in an all-reduce group of replicas in shared memory: how many replicas, how many
 * on other cores than p's, and the core that sums them (the lowest). false otherwise. */
static bool shm_replicas(const pml_taskgraph *tg, int v, int p, int *nr, int *others, int *sumdev)
{
    if (tg->p->sync == PML_SYNC_PS || slice_floats(tg, v) <= 0) return false;
    const pml_opcfg *c = &tg->p->cfg[v];
    const int pc = (p / c->deg[2]) % c->deg[1];
    int parts[PML_MAX_PARTS];
    const int k = replicas(tg, v, pc, parts);
    if (k < 2) return false;
    int lo = c->dev[parts[0]], o = 0;
    for (int r = 0; r < k; r++) {
        const int d = c->dev[parts[r]];
        if (!pml__shared_memory(tg->m, c->dev[p], d)) return false;
        if (d < lo) lo = d;
        o += d != c->dev[p];
    }
    *nr = k;
    *others = o;
    *sumdev = lo;
    return true;
}

/* Seconds part p of v spends on lines other cores touched, forward or backward (above): the
 * shares of the parameters the other cores updated; the shares of its gradient buffer the other
 * cores' syncs zeroed or summed into. */
static double part_traffic(const pml_taskgraph *tg, int v, int p)
{
    int nr, others, sumdev;
    if (!shm_replicas(tg, v, p, &nr, &others, &sumdev)) return 0;
    return foreign(tg, 4.0 * slice_floats(tg, v) * others / nr, false);
}

static int cmp_i16(const void *a, const void *b)
{
    return *(const int16_t *)a - *(const int16_t *)b;
}

/* The cores of dev's node that update a part of v's parameters: they run at the same time
 * (whether replicas' shares of one slice or slices of a parameter split) and share the
 * node's memory bandwidth. */
static int concurrent_updates(const pml_taskgraph *tg, int v, int dev)
{
    const pml_opcfg *c = &tg->p->cfg[v];
    const int P = parts_of(tg, v);
    int k = 0;
    for (int p = 0; p < P; p++) {
        if (!pml__shared_memory(tg->m, dev, c->dev[p])) continue;
        bool seen = false;
        for (int q = 0; q < p && !seen; q++) seen = c->dev[q] == c->dev[p];
        k += !seen;
    }
    return k > 0 ? k : 1;
}

/* the update of part p's slice; with `nshare` replicas in shared memory, this one updates share
 * `share` of the gradient summed on device gdev */
static int make_update(pml_taskgraph *tg, pml__ivec *own, int v, int p, int share, int nshare,
                       int gdev)
{
    const pml_opcfg *c = &tg->p->cfg[v];
    int dev = c->dev[p];
    int u = new_task(tg, PML_TASK_UPDATE, KEY(PH_UPD, tg->pos[v], 1, p));
    if (u < 0 || !iv_push(own, u)) return -1;
    pml_task *t = &tg->t[u];
    t->node = v;
    t->part = p;
    t->dev = (int16_t)dev;
    t->r = part_region(tg, v, p);
    t->share = (int16_t)share;
    t->nshare = (int16_t)nshare;
    t->gdev = (int16_t)gdev;
    const double ranges = slice_ranges(tg, v) / nshare;
    const int streams = concurrent_updates(tg, v, dev);
    t->cost = tg->cost ? pml_cost_update_share(tg->cost, dev, slice_floats(tg, v) / nshare,
                                               ranges > 1 ? ranges : 1,
                                               streams > nshare ? streams : nshare)
                       : 0.0;
    if (tg->cost && nshare > 1) /* parameters the replicas read (its core summed the share), at
                                 * the optimizer's own rate where measured */
        t->cost += foreign_at(tg, 4.0 * slice_floats(tg, v) / nshare,
                              tg->m->xupdate_bw > 0 ? tg->m->xupdate_bw : tg->m->xshared_bw);
    if (!set_res(tg, u, &dev, 1)) return -1;
    mem_add(tg, u, 1.0);
    return u;
}

/* Channel slice pc of v with parameter servers on the machine (devices with role=ps). The model's
 * parameters, laid end to end in topological order, are cut into one equal shard per server,
 * as a parameter-server system spreads its variables over the servers: a small slice lies in
 * one shard, a large one is cut over several. The slice's replicas that share memory (the cores
 * of one node: one worker process) first sum their gradients (a SYNC: each of their cores sums
 * an equal share, as a worker's threads would); the lowest core pushes the sum's piece of each
 * shard to its server (XFER), the server adds up the pushes of every node and updates its piece
 * (UPDATE), then sends the parameters back (XFER), where the node's other replicas read them.
 * A server's cores share their node's memory bandwidth while they update. Everything here
 * depends on v's config and the machine only: a delta rebuild of v's bucket gives the full
 * build's tasks. */
static pml_status build_served(pml_taskgraph *tg, pml__ivec *own, int v, int pc, const int *parts,
                               int nr)
{
    const pml_opcfg *c = &tg->p->cfg[v];
    const int N = tg->N, S = tg->nserver;
    const double floats = slice_floats(tg, v), ranges = slice_ranges(tg, v);
    const double lo = tg->param_off[v] + pc * floats, hi = lo + floats;
    /* the replicas by device; a group per set that shares memory, led by its lowest device */
    int by_dev[PML_MAX_PARTS], lead[PML_MAX_PARTS], gate[PML_MAX_PARTS], ngroup = 0;
    for (int r = 0; r < nr; r++) {
        int k = r;
        while (k > 0 && c->dev[parts[by_dev[k - 1]]] > c->dev[parts[r]]) {
            by_dev[k] = by_dev[k - 1];
            k--;
        }
        by_dev[k] = r;
    }
    bool *placed = calloc((size_t)nr, sizeof *placed);
    int16_t *members = malloc((size_t)nr * sizeof *members);
    double *piece = malloc((size_t)S * sizeof *piece);
    if (!placed || !members || !piece) goto nomem;
    for (int i = 0; i < nr; i++) {
        if (placed[i]) continue;
        const int p0 = parts[by_dev[i]], d0 = c->dev[p0];
        int k = 0;
        for (int j = i; j < nr; j++)
            if (!placed[j] && pml__shared_memory(tg->m, d0, c->dev[parts[by_dev[j]]])) {
                placed[j] = true;
                members[k++] = (int16_t)by_dev[j];
            }
        lead[ngroup] = p0;
        gate[ngroup] = tg->bwd_id[v][p0];
        if (k > 1) {
            const int gi = ngroup;
            int s =
                new_task(tg, PML_TASK_SYNC,
                         KEY(PH_BWD, N - 1 - tg->pos[v], 3, ((uint64_t)pc << 10) | (uint64_t)gi));
            if (s < 0 || !iv_push(own, s)) goto nomem;
            pml_task *t = &tg->t[s];
            t->node = v;
            t->part = tg->bucket_of[v];
            t->bytes = 4.0 * floats;
            t->cost = tg->cost
                          ? pml_cost_sync(tg->cost, d0, (k - 1) * floats / k, (k - 1) * ranges) +
                                foreign(tg, (k - 1) * 4.0 * floats / k, false)
                          : 0;
            t->group = malloc((size_t)k * sizeof *t->group);
            t->members = malloc(2 * sizeof *t->members);
            if (!t->group || !t->members) goto nomem;
            int cores[PML_MAX_PARTS];
            for (int j = 0; j < k; j++)
                t->group[j] = (int16_t)(cores[j] = c->dev[parts[members[j]]]);
            t->ngroup = k;
            t->members[0] = v;
            t->members[1] = pc;
            t->nmembers = 1;
            if (!set_res(tg, s, cores, k)) goto nomem;
            for (int j = 0; j < k; j++)
                if (!add_edge(tg, tg->bwd_id[v][parts[members[j]]], s)) goto nomem;
            gate[ngroup] = s;
        }
        ngroup++;
    }
    for (int s = 0; s < S; s++) {
        const double a = fmax(lo, tg->param_total * s / S),
                     b = fmin(hi, tg->param_total * (s + 1) / S);
        piece[s] = b > a ? b - a : 0;
    }
    for (int s = 0; s < S; s++) {
        if (piece[s] <= 0) continue;
        const int sdev = tg->server[s];
        int streams = 0; /* the servers of this node updating a piece of the slice: >= 1 */
        for (int q = 0; q < S; q++)
            streams += piece[q] > 0 && pml__shared_memory(tg->m, sdev, tg->server[q]);
        int u =
            new_task(tg, PML_TASK_UPDATE,
                     KEY(PH_UPD, tg->pos[v], 1, (1ull << 40) | ((uint64_t)pc << 10) | (uint64_t)s));
        if (u < 0 || !iv_push(own, u)) goto nomem;
        pml_task *t = &tg->t[u];
        t->node = v;
        t->part = parts[0];
        t->dev = (int16_t)sdev;
        t->r = part_region(tg, v, parts[0]);
        t->nshare = 1;
        t->gdev = (int16_t)sdev;
        t->bytes = 4.0 * piece[s];
        /* the piece as fractions of the slice (the next piece starts where this one ends) */
        const double f0 = (fmax(lo, tg->param_total * s / S) - lo) / (hi - lo),
                     f1 = (fmin(hi, tg->param_total * (s + 1) / S) - lo) / (hi - lo);
        t->piece0 = f0;
        t->piece1 = f1;
        t->cost = tg->cost ? pml_cost_update_share(tg->cost, sdev, piece[s], 1, streams) : 0.0;
        if (!set_res(tg, u, &sdev, 1)) goto nomem;
        mem_add(tg, u, 1.0);
        for (int gi = 0; gi < ngroup; gi++) {
            const int dev = c->dev[lead[gi]];
            const uint64_t sub = ((uint64_t)pc << 20) | ((uint64_t)gi << 10) | (uint64_t)s;
            int x = make_xfer(tg, KEY(PH_BWD, N - 1 - tg->pos[v], 4, sub), dev, sdev,
                              4.0 * piece[s], true, 1);
            if (x < 0 || !iv_push(own, x)) goto nomem;
            t = &tg->t[x];
            t->node = t->cnode = v;
            t->part = lead[gi];
            t->cpart = parts[0];
            t->r = part_region(tg, v, lead[gi]);
            t->piece0 = f0;
            t->piece1 = f1;
            if (!add_edge(tg, gate[gi], x) || !add_edge(tg, x, u)) goto nomem;
            int y =
                make_xfer(tg, KEY(PH_UPD, tg->pos[v], 2, sub), sdev, dev, 4.0 * piece[s], false, 1);
            if (y < 0 || !iv_push(own, y)) goto nomem;
            t = &tg->t[y];
            t->node = t->cnode = v;
            t->part = parts[0];
            t->cpart = lead[gi];
            t->r = part_region(tg, v, lead[gi]);
            t->piece0 = f0;
            t->piece1 = f1;
            if (!add_edge(tg, u, y)) goto nomem;
        }
    }
    free(placed);
    free(members);
    free(piece);
    return PML_OK;
nomem:
    free(placed);
    free(members);
    free(piece);
    return pml_fail(PML_ENOMEM, "out of memory building tasks");
}

/* the SYNC / UPDATE (/ parameter-server) tasks of bucket b */
static pml_status build_bucket(pml_taskgraph *tg, int b)
{
    const pml_graph *g = tg->g;
    pml__ivec *own = &tg->btasks[b];
    const int N = tg->N, close = tg->bucket_close[b];
    int parts[PML_MAX_PARTS];
    /* groups of identical replica sets, with their members (v, pc) */
    typedef struct group {
        int16_t dev[PML_MAX_PARTS];
        int k;
        double bytes, ranges;
        int first_v, first_pc;
        int sync[PML_MAX_PARTS]; /* its SYNC tasks: in shared memory one a replica's core */
        int nmemb;
        int *memb;
    } group;
    group *gr = NULL;
    int ngr = 0, cap = 0;
    pml_status st = PML_OK;
    for (int k = N - 1; k >= 0 && st == PML_OK; k--) {
        int v = g->order[k];
        if (tg->bucket_of[v] != b) continue;
        const pml_opcfg *c = &tg->p->cfg[v];
        for (int pc = 0; pc < c->deg[1]; pc++) {
            int nr = replicas(tg, v, pc, parts);
            if (tg->p->sync == PML_SYNC_PS && tg->nserver > 0) {
                if (build_served(tg, own, v, pc, parts, nr) != PML_OK) goto nomem;
                continue;
            }
            if (nr == 1) {
                int u = make_update(tg, own, v, parts[0], 0, 1, c->dev[parts[0]]);
                if (u < 0 || !add_edge(tg, tg->bwd_id[v][parts[0]], u)) goto nomem;
                continue;
            }
            if (tg->p->sync == PML_SYNC_PS) {
                /* the first replica is the server: gradients in, update, parameters out */
                const int ps = parts[0], psdev = c->dev[ps];
                const double bytes = 4.0 * slice_floats(tg, v);
                int u = make_update(tg, own, v, ps, 0, 1, psdev);
                if (u < 0 || !add_edge(tg, tg->bwd_id[v][ps], u)) goto nomem;
                for (int r = 1; r < nr; r++) {
                    int dev = c->dev[parts[r]];
                    int x =
                        make_xfer(tg, KEY(PH_BWD, N - 1 - tg->pos[v], 4, ((uint64_t)pc << 16) | r),
                                  dev, psdev, bytes, true, slice_ranges(tg, v));
                    if (x < 0 || !iv_push(own, x)) goto nomem;
                    pml_task *t = &tg->t[x];
                    t->node = t->cnode = v;
                    t->part = parts[r];
                    t->cpart = ps;
                    t->r = part_region(tg, v, parts[r]);
                    if (!add_edge(tg, tg->bwd_id[v][parts[r]], x) || !add_edge(tg, x, u))
                        goto nomem;
                    int y = make_xfer(tg, KEY(PH_UPD, tg->pos[v], 2, ((uint64_t)pc << 16) | r),
                                      psdev, dev, bytes, false, 1);
                    if (y < 0 || !iv_push(own, y)) goto nomem;
                    t = &tg->t[y];
                    t->node = t->cnode = v;
                    t->part = ps;
                    t->cpart = parts[r];
                    t->r = part_region(tg, v, parts[r]);
                    if (!add_edge(tg, u, y)) goto nomem;
                }
                continue;
            }
            int16_t set[PML_MAX_PARTS];
            for (int r = 0; r < nr; r++) set[r] = c->dev[parts[r]];
            qsort(set, (size_t)nr, sizeof *set, cmp_i16);
            int gi = 0;
            while (gi < ngr && !(gr[gi].k == nr && memcmp(gr[gi].dev, set, (size_t)nr * sizeof *set) == 0))
                gi++;
            if (gi == ngr) {
                if (ngr == cap) {
                    cap = cap ? 2 * cap : 4;
                    group *ng = realloc(gr, (size_t)cap * sizeof *ng);
                    if (!ng) goto nomem;
                    gr = ng;
                }
                memset(&gr[ngr], 0, sizeof gr[ngr]);
                memcpy(gr[ngr].dev, set, (size_t)nr * sizeof *set);
                gr[ngr].k = nr;
                gr[ngr].first_v = v;
                gr[ngr].first_pc = pc;
                ngr++;
            }
            gr[gi].bytes += 4.0 * slice_floats(tg, v);
            gr[gi].ranges += slice_ranges(tg, v);
            int *mb = realloc(gr[gi].memb, (size_t)(gr[gi].nmemb + 1) * 2 * sizeof *mb);
            if (!mb) goto nomem;
            gr[gi].memb = mb;
            mb[2 * gr[gi].nmemb] = v;
            mb[2 * gr[gi].nmemb + 1] = pc;
            gr[gi].nmemb++;
        }
    }
    /* the SYNC of each group, after the backward of every member replica; updates after it. In
     * shared memory each replica's core sums a share (the share its updates take: the sum is in
     * its caches then), as the executor does; across nodes, one all-reduce. */
    pml__ivec res = {0, 0, 0};
    for (int gi = 0; gi < ngr; gi++) {
        group *G = &gr[gi];
        bool shm = true;
        for (int i = 1; i < G->k; i++) shm &= pml__shared_memory(tg->m, G->dev[0], G->dev[i]);
        const int ns = shm ? G->k : 1;
        for (int j = 0; j < ns; j++) {
            int s = new_task(tg, PML_TASK_SYNC,
                             KEY(PH_BWD, N - 1 - tg->pos[close], 3,
                                 ((uint64_t)j << 28) | ((uint64_t)tg->pos[G->first_v] << 12) |
                                     (uint64_t)G->first_pc));
            if (s < 0 || !iv_push(own, s)) goto nomem_res;
            pml_task *t = &tg->t[s];
            t->node = G->first_v;
            t->part = b;
            t->bytes = G->bytes;
            t->share = (int16_t)j;
            t->nshare = (int16_t)ns;
            if (shm) { /* share j of the other replicas' gradients, from their cores' caches */
                t->dev = G->dev[j];
                res.n = 0;
                iv_push(&res, G->dev[j]);
                const double k = G->k, ranges = (k - 1) * G->ranges / k;
                t->cost = tg->cost ? pml_cost_sync_share(tg->cost, G->dev[j],
                                                         (k - 1) * G->bytes / 4.0 / k,
                                                         ranges > 1 ? ranges : 1, G->k) +
                                         foreign(tg, (k - 1) * G->bytes / k, false)
                                   : 0;
            } else {
                t->cost = allreduce_seconds(tg, G->dev, G->k, G->bytes, &res);
            }
            t->group = malloc((size_t)G->k * sizeof *t->group);
            t->members = malloc((size_t)(2 * G->nmemb) * sizeof *t->members);
            if (!t->group || !t->members) goto nomem_res;
            memcpy(t->group, G->dev, (size_t)G->k * sizeof *t->group);
            t->ngroup = G->k;
            memcpy(t->members, G->memb, (size_t)(2 * G->nmemb) * sizeof *t->members);
            t->nmembers = G->nmemb;
            if (!set_res(tg, s, res.a, res.n)) goto nomem_res;
            G->sync[j] = s;
        }
    }
    iv_free(&res);
    for (int k = N - 1; k >= 0 && tg->p->sync != PML_SYNC_PS; k--) {
        int v = g->order[k];
        if (tg->bucket_of[v] != b) continue;
        const pml_opcfg *c = &tg->p->cfg[v];
        for (int pc = 0; pc < c->deg[1]; pc++) {
            int nr = replicas(tg, v, pc, parts);
            if (nr == 1) continue;
            int16_t set[PML_MAX_PARTS];
            for (int r = 0; r < nr; r++) set[r] = c->dev[parts[r]];
            qsort(set, (size_t)nr, sizeof *set, cmp_i16);
            int gi = 0;
            while (memcmp(gr[gi].dev, set, (size_t)nr * sizeof *set) != 0 || gr[gi].k != nr) gi++;
            bool shm = true;
            for (int r = 1; r < nr; r++) shm &= pml__shared_memory(tg->m, set[0], set[r]);
            const int ns = shm ? nr : 1;
            for (int r = 0; r < nr; r++) {
                for (int j = 0; j < ns; j++)
                    if (!add_edge(tg, tg->bwd_id[v][parts[r]], gr[gi].sync[j])) goto nomem;
                /* in shared memory, share j: the one the SYNC on this replica's core summed
                 * (an operator's parts are on distinct devices) */
                int j = 0;
                while (shm && set[j] != c->dev[parts[r]]) j++;
                int u = shm ? make_update(tg, own, v, parts[r], j, nr, set[0])
                            : make_update(tg, own, v, parts[r], 0, 1, c->dev[parts[r]]);
                if (u < 0 || !add_edge(tg, gr[gi].sync[j], u)) goto nomem;
            }
        }
    }
    for (int gi = 0; gi < ngr; gi++) free(gr[gi].memb);
    free(gr);
    return st;
nomem_res:
    iv_free(&res);
nomem:
    for (int gi = 0; gi < ngr; gi++) free(gr[gi].memb);
    free(gr);
    return pml_fail(PML_ENOMEM, "out of memory building tasks");
}

static void drop_bucket(pml_taskgraph *tg, int b)
{
    pml__ivec *own = &tg->btasks[b];
    for (int k = 0; k < own->n; k++) {
        pml_task *t = &tg->t[own->a[k]];
        free(t->group);
        t->group = NULL;
        free(t->members);
        t->members = NULL;
        t->nmembers = 0;
        free_task(tg, own->a[k]);
    }
    own->n = 0;
}

/* ---------------------------------------------------------------- program order */

static int cmp_key(const void *a, const void *b, void *ctx)
{
    const pml_taskgraph *tg = ctx;
    uint64_t x = tg->t[*(const int *)a].key, y = tg->t[*(const int *)b].key;
    return (x > y) - (x < y);
}

/* keys of a and b, for merging */
static inline uint64_t key_of(const pml_taskgraph *tg, int id) { return tg->t[id].key; }

pml_status pml__tg_commit(pml_taskgraph *tg)
{
    pml__ivec *o = &tg->order;
    if (!tg->removed_any && tg->added.n == 0) return PML_OK;
    if (o->cap < o->n + tg->added.n) {
        int cap = o->n + tg->added.n;
        cap += cap / 4;
        int *a = realloc(o->a, (size_t)cap * sizeof *a);
        if (!a) return pml_fail(PML_ENOMEM, "out of memory ordering tasks");
        o->a = a;
        o->cap = cap;
    }
    /* The added ids still live, sorted and deduplicated. A slot freed and reused since the last
     * commit is in both lists, under a new key: it is dropped from the old order below. */
    int na = 0;
    for (int i = 0; i < tg->added.n; i++)
        if (tg->live[tg->added.a[i]]) tg->added.a[na++] = tg->added.a[i];
    qsort_r(tg->added.a, (size_t)na, sizeof *tg->added.a, cmp_key, tg);
    int nd = 0;
    for (int i = 0; i < na; i++)
        if (nd == 0 || tg->added.a[nd - 1] != tg->added.a[i]) tg->added.a[nd++] = tg->added.a[i];
    na = nd;
    /* keep the old entries that are live and not re-added (re-added slots are marked dead for a
     * moment, then restored) */
    for (int i = 0; i < na; i++) tg->live[tg->added.a[i]] = false;
    int n = 0;
    for (int i = 0; i < o->n; i++)
        if (tg->live[o->a[i]]) o->a[n++] = o->a[i];
    for (int i = 0; i < na; i++) tg->live[tg->added.a[i]] = true;
    o->n = n;
    /* merge (capacity reserved above) */
    int total = o->n + na;
    int i = o->n - 1, j = na - 1, k = total - 1;
    while (j >= 0) {
        if (i >= 0 && key_of(tg, o->a[i]) > key_of(tg, tg->added.a[j]))
            o->a[k--] = o->a[i--];
        else
            o->a[k--] = tg->added.a[j--];
    }
    o->n = total;
    tg->added.n = 0;
    tg->removed_any = false;
    return PML_OK;
}

/* ---------------------------------------------------------------- whole graph */

static pml_status build_node(pml_taskgraph *tg, int v)
{
    return build_parts(tg, v);
}

void pml__tg_reset_changes(pml_taskgraph *tg)
{
    tg->kmin = UINT64_MAX;
    tg->tmin = INFINITY;
    tg->touched.n = 0;
    tg->epoch++;
}

pml_status pml__tg_rebuild_node(pml_taskgraph *tg, int v)
{
    const pml_graph *g = tg->g;
    pml_status st;
    /* everything that involves v: its edges both ways, its parts, its bucket */
    for (int i = 0; i < g->nodes[v].nin; i++) drop_edge(tg, v, i);
    for (int w = 0; w < g->nnodes; w++)
        for (int i = 0; i < g->nodes[w].nin; i++)
            if (g->nodes[w].in[i] == v) drop_edge(tg, w, i);
    int b = tg->bucket_of[v];
    if (b >= 0) drop_bucket(tg, b);
    drop_parts(tg, v);
    if ((st = build_node(tg, v)) != PML_OK) return st;
    for (int i = 0; i < g->nodes[v].nin; i++)
        if ((st = build_edge(tg, v, i)) != PML_OK) return st;
    for (int w = 0; w < g->nnodes; w++)
        for (int i = 0; i < g->nodes[w].nin; i++)
            if (g->nodes[w].in[i] == v && (st = build_edge(tg, w, i)) != PML_OK) return st;
    if (b >= 0 && (st = build_bucket(tg, b)) != PML_OK) return st;
    /* the neighbours' backward parts: their split-edge work depends on v's config */
    for (int i = 0; i < g->nodes[v].nin; i++) recost_bwd(tg, g->nodes[v].in[i]);
    for (int k = tg->cons_off[v]; k < tg->cons_off[v + 1]; k++) recost_bwd(tg, tg->cons[2 * k]);
    return PML_OK;
}

pml_status pml_taskgraph_build(const pml_graph *g, const pml_machine *m, const pml_plan *p,
                               pml_costmodel *c, pml_taskgraph **out)
{
    *out = NULL;
    pml_status st = pml_plan_check(p, g, m);
    if (st != PML_OK) return st;
    pml_taskgraph *tg = calloc(1, sizeof *tg);
    if (!tg) return pml_fail(PML_ENOMEM, "out of memory building tasks");
    tg->g = g;
    tg->m = m;
    tg->p = p;
    tg->cost = c;
    tg->N = g->nnodes;
    tg->kmin = UINT64_MAX;
    tg->tmin = INFINITY;
    if (g->nnodes >= 65536) {
        free(tg);
        return pml_fail(PML_EUNSUPPORTED, "model '%s' has %d operators; the planner takes at most "
                                          "65535",
                        g->name, g->nnodes);
    }
    const int N = g->nnodes;
    tg->pos = calloc((size_t)N, sizeof *tg->pos);
    tg->wants = calloc((size_t)N, sizeof *tg->wants);
    tg->run_bwd = calloc((size_t)N, sizeof *tg->run_bwd);
    tg->fwd_id = calloc((size_t)N, sizeof *tg->fwd_id);
    tg->bwd_id = calloc((size_t)N, sizeof *tg->bwd_id);
    tg->nparts = calloc((size_t)N, sizeof *tg->nparts);
    tg->edge = calloc((size_t)N * PML_MAX_INPUTS, sizeof *tg->edge);
    tg->bucket_of = calloc((size_t)N, sizeof *tg->bucket_of);
    tg->bucket_close = calloc((size_t)N, sizeof *tg->bucket_close);
    tg->btasks = calloc((size_t)N, sizeof *tg->btasks);
    tg->nres = m->ncompute + 2 * m->nlink;
    tg->res = calloc((size_t)tg->nres, sizeof *tg->res);
    tg->mem = calloc((size_t)m->ncompute, sizeof *tg->mem);
    tg->cons_off = calloc((size_t)N + 1, sizeof *tg->cons_off);
    int nedges = 0;
    for (int v = 0; v < N; v++) nedges += g->nodes[v].nin;
    tg->cons = malloc((size_t)(2 * nedges + 1) * sizeof *tg->cons);
    tg->param_off = calloc((size_t)N, sizeof *tg->param_off);
    tg->server = malloc((size_t)(m->nserver ? m->nserver : 1) * sizeof *tg->server);
    if (!tg->pos || !tg->wants || !tg->run_bwd || !tg->fwd_id || !tg->bwd_id || !tg->nparts ||
        !tg->edge || !tg->bucket_of || !tg->bucket_close || !tg->btasks || !tg->res || !tg->mem ||
        !tg->cons_off || !tg->cons || !tg->param_off || !tg->server) {
        pml_taskgraph_free(tg);
        return pml_fail(PML_ENOMEM, "out of memory building tasks");
    }
    /* consumers of each node: (consumer, input) pairs, in node order */
    for (int v = 0; v < N; v++)
        for (int i = 0; i < g->nodes[v].nin; i++) tg->cons_off[g->nodes[v].in[i] + 1]++;
    for (int v = 0; v < N; v++) tg->cons_off[v + 1] += tg->cons_off[v];
    {
        int *fill = calloc((size_t)N + 1, sizeof *fill);
        if (!fill) {
            pml_taskgraph_free(tg);
            return pml_fail(PML_ENOMEM, "out of memory building tasks");
        }
        for (int v = 0; v < N; v++)
            for (int i = 0; i < g->nodes[v].nin; i++) {
                const int u = g->nodes[v].in[i], k = tg->cons_off[u] + fill[u]++;
                tg->cons[2 * k] = v;
                tg->cons[2 * k + 1] = i;
            }
        free(fill);
    }
    for (int k = 0; k < N; k++) {
        int v = g->order[k];
        const pml_node *nd = &g->nodes[v];
        tg->pos[v] = k;
        bool w = nd->nparam > 0;
        for (int i = 0; i < nd->nin; i++) w |= tg->wants[nd->in[i]];
        tg->wants[v] = w && v != g->loss;
        tg->run_bwd[v] = tg->wants[v] || (v == g->loss && tg->wants[g->logits]);
        tg->param_off[v] = tg->param_total;
        for (int j = 0; j < nd->nparam; j++) tg->param_total += (double)nd->param_size[j];
    }
    for (int i = 0; i < m->ncompute && p->sync == PML_SYNC_PS && tg->nserver < m->nserver; i++)
        if (m->dev[m->compute[i]].ps) tg->server[tg->nserver++] = (int16_t)i;
    /* buckets: parameters in reverse topological order, bucket_bytes each (fixed by the model,
     * so a config change touches one bucket) */
    double acc = 0;
    int b = -1;
    for (int k = N - 1; k >= 0; k--) {
        int v = g->order[k];
        tg->bucket_of[v] = -1;
        const pml_node *nd = &g->nodes[v];
        if (nd->nparam == 0) continue;
        if (b < 0 || acc >= p->bucket_bytes) {
            b++;
            acc = 0;
        }
        for (int j = 0; j < nd->nparam; j++) acc += 4.0 * (double)nd->param_size[j];
        tg->bucket_of[v] = b;
        tg->bucket_close[b] = v; /* the last assigned has the smallest position */
    }
    tg->nbuckets = b + 1;
    for (int k = 0; k < N && st == PML_OK; k++) st = build_node(tg, g->order[k]);
    for (int v = 0; v < N && st == PML_OK; v++)
        for (int i = 0; i < g->nodes[v].nin && st == PML_OK; i++) st = build_edge(tg, v, i);
    for (int bb = 0; bb < tg->nbuckets && st == PML_OK; bb++) st = build_bucket(tg, bb);
    if (st != PML_OK) {
        pml_taskgraph_free(tg);
        return st;
    }
    if ((st = pml__tg_commit(tg)) != PML_OK) {
        pml_taskgraph_free(tg);
        return st;
    }
    tg->kmin = UINT64_MAX;
    *out = tg;
    return PML_OK;
}

void pml_taskgraph_free(pml_taskgraph *tg)
{
    if (!tg) return;
    for (int i = 0; i < tg->nslots; i++) {
        free(tg->t[i].pred);
        free(tg->t[i].succ);
        free(tg->t[i].res);
        free(tg->t[i].group);
        free(tg->t[i].members);
    }
    for (int v = 0; v < tg->N; v++) {
        if (tg->fwd_id) free(tg->fwd_id[v]);
        if (tg->bwd_id) free(tg->bwd_id[v]);
        if (tg->btasks) iv_free(&tg->btasks[v]);
        for (int i = 0; tg->edge && i < PML_MAX_INPUTS; i++) iv_free(&tg->edge[v * PML_MAX_INPUTS + i]);
    }
    for (int r = 0; tg->res && r < tg->nres; r++) iv_free(&tg->res[r]);
    free(tg->t);
    free(tg->pcap);
    free(tg->scap);
    free(tg->live);
    free(tg->born);
    free(tg->seen);
    iv_free(&tg->touched);
    iv_free(&tg->freeslots);
    iv_free(&tg->order);
    iv_free(&tg->added);
    free(tg->pos);
    free(tg->wants);
    free(tg->run_bwd);
    free(tg->fwd_id);
    free(tg->bwd_id);
    free(tg->nparts);
    free(tg->edge);
    free(tg->bucket_of);
    free(tg->bucket_close);
    free(tg->btasks);
    free(tg->res);
    free(tg->mem);
    free(tg->cons_off);
    free(tg->cons);
    free(tg->param_off);
    free(tg->server);
    free(tg);
}

int pml_taskgraph_size(const pml_taskgraph *tg) { return tg->nslots; }

const pml_task *pml_taskgraph_task(const pml_taskgraph *tg, int id)
{
    if (id < 0 || id >= tg->nslots || !tg->live[id]) return NULL;
    return &tg->t[id];
}

const int *pml_taskgraph_order(pml_taskgraph *tg, int *n)
{
    if (pml__tg_commit(tg) != PML_OK) {
        *n = 0;
        return NULL;
    }
    *n = tg->order.n;
    return tg->order.a;
}

int pml_taskgraph_resources(const pml_taskgraph *tg) { return tg->nres; }
