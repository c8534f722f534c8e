/* pml — the search: Metropolis-Hastings over parallel configs (FlexFlow's MCMC), scored by the
 * delta simulator.
 *
 * Each proposal picks a random operator and gives it a random config: random degrees that
 * divide its dimensions, on a block of devices (aligned, shifted or, rarely, scattered), or the
 * config of a neighbouring operator (so neighbours agree and transfers vanish); one proposal in
 * five gives the same config to a chain of operators that follow it (a block move). The first
 * chain starts with a coordinate descent (each operator's best aligned config, alone and as a
 * block move) before its random walk. A proposal that
 * makes the simulated step dt slower is accepted with probability exp(-beta * dt / t_current).
 * Chains run on their own threads from different starts (data parallel, the best baseline, ...)
 * and share the cost model; the best plan of all chains wins. */
#include "planner/planner.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


typedef struct rng {
    uint64_t seed, stream, n;
} rng;

static uint64_t rnd(rng *r) { return pml_rand_u64(r->seed, r->stream, r->n++); }
static int rnd_int(rng *r, int n) { return n <= 1 ? 0 : (int)(rnd(r) % (uint64_t)n); }
static double rnd_unif(rng *r) { return (double)(rnd(r) >> 11) * (1.0 / 9007199254740992.0); }

/* divisors of n up to k, into d; returns count */
static int divisors(int n, int k, int *d)
{
    int c = 0;
    for (int x = 1; x <= n && x <= k; x++)
        if (n % x == 0) d[c++] = x;
    return c;
}

static unsigned splits_of(const pml_node *n)
{
    return pml_ops[n->op].splits | pml_ops[n->op].approx_splits;
}

/* a random legal config for node v */
static void random_config(const pml_graph *g, const pml_machine *m, int batch, int v, rng *r,
                          pml_opcfg *c);

void pml_opcfg_random(const pml_graph *g, const pml_machine *m, int batch, int id, uint64_t seed,
                      uint64_t n, pml_opcfg *c)
{
    rng r = {seed, 0xc0f16ull, n * 64};
    random_config(g, m, batch, id, &r, c);
}

static void random_config(const pml_graph *g, const pml_machine *m, int batch, int v, rng *r,
                          pml_opcfg *c)
{
    const pml_node *n = &g->nodes[v];
    const int D = m->ncompute < PML_MAX_PARTS ? m->ncompute : PML_MAX_PARTS;
    const unsigned bit[PML_NDIMS] = {PML_SPLIT_SAMPLE, PML_SPLIT_PARAM, PML_SPLIT_ATTR};
    const int size[PML_NDIMS] = {batch, n->out.c, n->out.h};
    int order[PML_NDIMS] = {0, 1, 2};
    for (int i = PML_NDIMS - 1; i > 0; i--) {
        int j = rnd_int(r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int left = D;
    memset(c, 0, sizeof *c); /* unused device slots stay 0: configs compare with memcmp */
    c->deg[0] = c->deg[1] = c->deg[2] = 1;
    int dv[PML_MAX_PARTS + 1];
    for (int k = 0; k < PML_NDIMS; k++) {
        int d = order[k];
        if (!(splits_of(n) & bit[d])) continue;
        int nd = divisors(size[d], left, dv);
        /* favour no split of the later dims a little less than uniform */
        c->deg[d] = dv[rnd_int(r, nd)];
        left /= c->deg[d];
    }
    const int P = pml_opcfg_parts(c);
    double u = rnd_unif(r);
    if (u < 0.45) { /* an aligned block */
        int blocks = D / P, start = rnd_int(r, blocks) * P;
        for (int p = 0; p < P; p++) c->dev[p] = (int16_t)(start + p);
    } else if (u < 0.65) { /* spread evenly over the devices: on a cluster, one part a node */
        const int stride = D / P, start = rnd_int(r, stride);
        for (int p = 0; p < P; p++) c->dev[p] = (int16_t)(start + p * stride);
    } else if (u < 0.9) { /* a block from anywhere, wrapping */
        int start = rnd_int(r, D);
        for (int p = 0; p < P; p++) c->dev[p] = (int16_t)((start + p) % D);
    } else { /* scattered */
        int16_t perm[PML_MAX_PARTS];
        for (int i = 0; i < D; i++) perm[i] = (int16_t)i;
        for (int i = 0; i < P; i++) {
            int j = i + rnd_int(r, D - i);
            int16_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
            c->dev[i] = perm[i];
        }
    }
}

/* the config of a random neighbour of v, if it is legal for v */
static bool neighbour_config(const pml_graph *g, const pml_machine *m, const pml_plan *p, int v,
                             rng *r, pml_opcfg *c)
{
    int nb[2 * PML_MAX_INPUTS + 8], k = 0;
    const pml_node *n = &g->nodes[v];
    for (int i = 0; i < n->nin; i++) nb[k++] = n->in[i];
    for (int w = 0; w < g->nnodes && k < (int)(sizeof nb / sizeof nb[0]); w++)
        for (int i = 0; i < g->nodes[w].nin; i++)
            if (g->nodes[w].in[i] == v) {
                nb[k++] = w;
                break;
            }
    if (k == 0) return false;
    *c = p->cfg[nb[rnd_int(r, k)]];
    return pml_opcfg_check(g, m, p->batch, v, c) == PML_OK;
}

/* the operator after w in a chain: w's only consumer, if w is that consumer's only input */
static int chain_next(const pml_graph *g, int w)
{
    int next = -1, uses = 0;
    for (int x = 0; x < g->nnodes; x++)
        for (int i = 0; i < g->nodes[x].nin; i++)
            if (g->nodes[x].in[i] == w) {
                next = x;
                uses++;
            }
    return uses == 1 && g->nodes[next].nin == 1 ? next : -1;
}

enum { MAXMOVE = 12 };

/* Gives config c to v and up to len - 1 operators of the chain after it (while c is legal for
 * them). Records what changed in moved/olds. \return PML_OK, or the first failure (the changes
 * made before it stay recorded). */
static pml_status apply_move(pml_sim *s, const pml_graph *g, const pml_machine *m, int v, int len,
                             const pml_opcfg *c, int *moved, pml_opcfg *olds, int *nm)
{
    const pml_plan *p = pml_sim_plan(s);
    pml_status st = PML_OK;
    *nm = 0;
    for (int w = v; *nm < len && w >= 0; w = chain_next(g, w)) {
        if (pml_opcfg_check(g, m, p->batch, w, c) != PML_OK) break;
        if (memcmp(c, &p->cfg[w], sizeof *c) == 0) continue;
        olds[*nm] = p->cfg[w];
        if ((st = pml_sim_change(s, w, c)) != PML_OK) break;
        moved[(*nm)++] = w;
    }
    return st;
}

/* undoes a move, last change first */
static pml_status undo_move(pml_sim *s, const int *moved, const pml_opcfg *olds, int nm)
{
    for (int k = nm - 1; k >= 0; k--) {
        pml_status st = pml_sim_change(s, moved[k], &olds[k]);
        if (st != PML_OK) return st;
    }
    return PML_OK;
}

typedef struct chain {
    const pml_graph *g;
    const pml_machine *m;
    pml_costmodel *cost;
    const pml_plan *start;
    const pml_search_opts *o;
    double deadline;
    double t0, next_report; /* progress (chain 0) */
    int index;
    pml_plan best;
    double best_step, start_step;
    long iterations, accepted;
    pml_status st;
    char err[512];
} chain;

/* candidate configs for node v: degrees that are powers of two dividing each dimension the op
 * can split, with a product P of at most D, on the first P devices and, when P < D, spread
 * evenly over all D (on a cluster, one part a node: each part has its node's network link) */
static int candidates(const pml_graph *g, const pml_machine *m, int batch, int v, pml_opcfg *out,
                      int cap)
{
    const pml_node *n = &g->nodes[v];
    const int D = m->ncompute < PML_MAX_PARTS ? m->ncompute : PML_MAX_PARTS;
    const unsigned ok = splits_of(n);
    const int size[PML_NDIMS] = {batch, n->out.c, n->out.h};
    const unsigned bit[PML_NDIMS] = {PML_SPLIT_SAMPLE, PML_SPLIT_PARAM, PML_SPLIT_ATTR};
    int deg[PML_NDIMS][16], nd[PML_NDIMS];
    for (int d = 0; d < PML_NDIMS; d++) {
        nd[d] = 0;
        deg[d][nd[d]++] = 1;
        if (!(ok & bit[d])) continue;
        for (int x = 2; x <= D && x <= size[d] && nd[d] < 15; x *= 2)
            if (size[d] % x == 0) deg[d][nd[d]++] = x;
    }
    int k = 0;
    for (int a = 0; a < nd[0]; a++)
        for (int b = 0; b < nd[1]; b++)
            for (int e = 0; e < nd[2]; e++) {
                int P = deg[0][a] * deg[1][b] * deg[2][e];
                if (P > D) continue;
                for (int spread = 0; spread < (P < D ? 2 : 1) && k < cap; spread++) {
                    const int stride = spread ? D / P : 1;
                    pml_opcfg *c = &out[k++];
                    memset(c, 0, sizeof *c);
                    c->deg[0] = deg[0][a];
                    c->deg[1] = deg[1][b];
                    c->deg[2] = deg[2][e];
                    for (int q = 0; q < P; q++) c->dev[q] = (int16_t)(q * stride);
                }
            }
    return k;
}

/* Every 16 iterations: progress (chain 0, on the calling thread) and a stop asked for. */
static bool stop_asked(chain *ch, long it)
{
    const pml_search_opts *o = ch->o;
    if (it % 16) return false;
    if (ch->index == 0 && o->progress) {
        const double now = pml_now();
        if (now >= ch->next_report) {
            ch->next_report = now + 0.2;
            o->progress(o->ud, ch->best_step, ch->iterations, now - ch->t0);
        }
    }
    return o->should_stop && o->should_stop(o->ud);
}

/* Coordinate descent before the random walk: each operator in turn gets the best of its
 * candidate configs (alone, and as a block move down its chain); sweeps repeat while they
 * improve, for at most 40% of the budget. Counts each tried move as an iteration. */
static pml_status greedy(chain *ch, pml_sim *s, rng *r, double *cur, long *it)
{
    const pml_graph *g = ch->g;
    const double stop = ch->o->iterations > 0 ? 0 : pml_now() + 0.4 * (ch->deadline - pml_now());
    const long maxit = ch->o->iterations > 0 ? ch->o->iterations * 2 / 5 : 0;
    enum { CAP = 128, TRY = 24 };
    pml_opcfg cand[CAP], best;
    int moved[MAXMOVE], nm;
    pml_opcfg olds[MAXMOVE];
    for (bool improved = true; improved;) {
        improved = false;
        for (int k = 0; k < g->nnodes; k++) {
            const int v = g->order[k];
            int n = candidates(g, ch->m, pml_sim_plan(s)->batch, v, cand, CAP);
            /* many candidates: a random sample of them */
            for (int i = 0; i < n && n > TRY; i++) {
                int j = i + rnd_int(r, n - i);
                pml_opcfg t = cand[i];
                cand[i] = cand[j];
                cand[j] = t;
            }
            if (n > TRY) n = TRY;
            double bt = *cur;
            int blen = 0;
            for (int i = 0; i < n; i++)
                for (int len = 1; len <= MAXMOVE; len += MAXMOVE - 1) {
                    if (maxit ? *it >= maxit : pml_now() >= stop) return PML_OK;
                    if (stop_asked(ch, *it)) return PML_OK;
                    (*it)++;
                    ch->iterations++;
                    pml_status st = apply_move(s, g, ch->m, v, len, &cand[i], moved, olds, &nm);
                    double t = pml_sim_step_seconds(s);
                    if (st == PML_OK && nm > 0 && t < bt) {
                        bt = t;
                        best = cand[i];
                        blen = len;
                    }
                    if (st != PML_OK && st != PML_ENOFIT && st != PML_EINVAL) return st;
                    if ((st = undo_move(s, moved, olds, nm)) != PML_OK) return st;
                }
            if (blen > 0) {
                pml_status st = apply_move(s, g, ch->m, v, blen, &best, moved, olds, &nm);
                if (st != PML_OK) return st;
                *cur = pml_sim_step_seconds(s);
                ch->accepted++;
                improved = true;
                if (*cur < ch->best_step) {
                    ch->best_step = *cur;
                    memcpy(ch->best.cfg, pml_sim_plan(s)->cfg, (size_t)g->nnodes * sizeof *ch->best.cfg);
                }
            }
        }
    }
    return PML_OK;
}

static void *run_chain(void *arg)
{
    chain *ch = arg;
    const pml_graph *g = ch->g;
    pml_sim *s = NULL;
    ch->st = pml_sim_create(g, ch->m, ch->start, ch->cost, &s);
    if (ch->st == PML_OK) ch->st = pml_plan_copy(&ch->best, ch->start);
    if (ch->st != PML_OK) {
        snprintf(ch->err, sizeof ch->err, "%s", pml_errmsg());
        pml_sim_destroy(s);
        return NULL;
    }
    double cur = pml_sim_step_seconds(s);
    pml_status st0;
    ch->best_step = ch->start_step = cur;
    rng r = {ch->o->seed, 0x5ea7c4ull + (uint64_t)ch->index, 0};
    const double beta = ch->o->beta > 0 ? ch->o->beta : 40.0;
    pml_opcfg c;
    int moved[MAXMOVE], nm = 0;
    pml_opcfg olds[MAXMOVE];
    long it = 0;
    if (ch->index == 0 && (st0 = greedy(ch, s, &r, &cur, &it)) != PML_OK) {
        ch->st = st0;
        snprintf(ch->err, sizeof ch->err, "%s", pml_errmsg());
    }
    for (; ch->st == PML_OK; it++) {
        if (ch->o->iterations > 0 ? it >= ch->o->iterations : (it % 16 == 0 && pml_now() >= ch->deadline))
            break;
        if (stop_asked(ch, it)) break;
        ch->iterations++;
        int v = rnd_int(&r, g->nnodes);
        const pml_plan *p = pml_sim_plan(s);
        const double u = rnd_unif(&r);
        bool ok = u < 0.3 && neighbour_config(g, ch->m, p, v, &r, &c);
        if (!ok) random_config(g, ch->m, p->batch, v, &r, &c);
        /* a block move (1 in 5): the same config for v and the chain of single consumers after
         * it, so neighbours change together (no transfers between them in the middle) */
        int len = u > 0.8 ? 2 + rnd_int(&r, MAXMOVE - 1) : 1;
        pml_status st = apply_move(s, g, ch->m, v, len, &c, moved, olds, &nm);
        if (st != PML_OK && st != PML_ENOFIT && st != PML_EINVAL) {
            ch->st = st;
            snprintf(ch->err, sizeof ch->err, "%s", pml_errmsg());
            break;
        }
        if (nm == 0) continue;
        double next = pml_sim_step_seconds(s);
        if (st == PML_OK && (next <= cur || rnd_unif(&r) < exp(-beta * (next - cur) / cur))) {
            cur = next;
            ch->accepted++;
            if (cur < ch->best_step) {
                ch->best_step = cur;
                memcpy(ch->best.cfg, pml_sim_plan(s)->cfg, (size_t)g->nnodes * sizeof *ch->best.cfg);
            }
            continue;
        }
        if ((st = undo_move(s, moved, olds, nm)) != PML_OK) {
            ch->st = st;
            snprintf(ch->err, sizeof ch->err, "%s", pml_errmsg());
            break;
        }
    }
    pml_sim_destroy(s);
    return NULL;
}

static double simulate(const pml_graph *g, const pml_machine *m, pml_costmodel *c,
                       const pml_plan *p, pml_status *st)
{
    pml_sim *s = NULL;
    *st = pml_sim_create(g, m, p, c, &s);
    double t = *st == PML_OK ? pml_sim_step_seconds(s) : INFINITY;
    pml_sim_destroy(s);
    return t;
}

pml_status pml_search(const pml_graph *g, const pml_machine *m, pml_costmodel *c, int batch,
                      const pml_search_opts *o, pml_plan *best, pml_search_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    memset(best, 0, sizeof *best);
    if (o->budget_seconds <= 0 && o->iterations <= 0)
        return pml_fail(PML_EINVAL, "the search needs a time budget or an iteration count");
    const double t0 = pml_now();
    /* starts: data parallel and the best baseline */
    pml_plan base[3];
    double bt[3];
    int nbase = 0;
    pml_status st = pml_plan_data_parallel(&base[nbase], g, m, batch);
    if (st != PML_OK) return st;
    bt[nbase] = simulate(g, m, c, &base[nbase], &st);
    nbase++;
    if (pml_plan_owt(&base[nbase], g, m, batch) == PML_OK) {
        bt[nbase] = simulate(g, m, c, &base[nbase], &st);
        nbase++;
    }
    if (pml_plan_model_parallel(&base[nbase], g, m, batch) == PML_OK) {
        bt[nbase] = simulate(g, m, c, &base[nbase], &st);
        nbase++;
    }
    int bb = 0;
    for (int i = 1; i < nbase; i++)
        if (bt[i] < bt[bb]) bb = i;
    if (!isfinite(bt[bb])) {
        for (int i = 0; i < nbase; i++) pml_plan_free(&base[i]);
        return pml_fail(PML_ENOFIT, "no baseline plan of model '%s' fits machine '%s' at batch %d",
                        g->name, m->name, batch);
    }
    int chains = o->chains > 0 ? o->chains : 2;
    if (chains > 16) chains = 16;
    chain ch[16];
    pthread_t th[16];
    memset(ch, 0, sizeof ch);
    for (int i = 0; i < chains; i++) {
        ch[i].g = g;
        ch[i].m = m;
        ch[i].cost = c;
        ch[i].o = o;
        ch[i].index = i;
        ch[i].deadline = t0 + o->budget_seconds;
        ch[i].t0 = ch[i].next_report = t0;
        /* chain 0 from data parallel; the others from the best baseline (if it fits) */
        int from = i == 0 || !isfinite(bt[bb]) ? 0 : bb;
        if (!isfinite(bt[from])) from = bb;
        ch[i].start = &base[from];
    }
    int started = 0;
    for (int i = 1; i < chains; i++)
        if (pthread_create(&th[i], NULL, run_chain, &ch[i]) == 0) started |= 1 << i;
    run_chain(&ch[0]);
    for (int i = 1; i < chains; i++)
        if (started & (1 << i))
            pthread_join(th[i], NULL);
        else
            ch[i].st = PML_EINVAL; /* never ran */
    int win = -1;
    st = PML_OK;
    for (int i = 0; i < chains; i++) {
        if (ch[i].st != PML_OK) {
            if (ch[i].st != PML_EINVAL && st == PML_OK) {
                st = ch[i].st;
                pml_fail(st, "%s", ch[i].err);
            }
            continue;
        }
        stats->iterations += ch[i].iterations;
        stats->accepted += ch[i].accepted;
        if (win < 0 || ch[i].best_step < ch[win].best_step) win = i;
    }
    if (win >= 0 && st == PML_OK) {
        /* never worse than the best baseline, and replacing it only for a clear gain */
        const double gain = o->min_gain == 0 ? 0.01 : o->min_gain > 0 ? o->min_gain : 0;
        if (ch[win].best_step <= bt[bb] * (1 - gain)) {
            *best = ch[win].best;
            ch[win].best.cfg = NULL;
            stats->best_step = ch[win].best_step;
        } else {
            st = pml_plan_copy(best, &base[bb]);
            stats->best_step = bt[bb];
        }
        snprintf(best->strategy, sizeof best->strategy, "search");
        stats->start_step = bt[bb];
    } else if (st == PML_OK) {
        st = pml_fail(PML_EINVAL, "no search chain could run");
    }
    for (int i = 0; i < chains; i++) pml_plan_free(&ch[i].best);
    for (int i = 0; i < nbase; i++) pml_plan_free(&base[i]);
    stats->seconds = pml_now() - t0;
    return st;
}
