/* pml — the search: Metropolis-Hastings over parallel configs (FlexFlow's MCMC), scored by the
 * delta simulator.
 *
 * Each proposal picks a random operator and gives it a random config: random degrees that
 * divide its dimensions, on a block of devices (aligned, shifted or, rarely, scattered), or the
 * config of a neighbouring operator (so neighbours agree and transfers vanish). A proposal that
 * makes the simulated step dt slower is accepted with probability exp(-beta * dt / t_current).
 * Chains run on their own threads from different starts (data parallel, the best baseline, ...)
 * and share the cost model; the best plan of all chains wins. */
#include "planner.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
    if (u < 0.6) { /* an aligned block */
        int blocks = D / P, start = rnd_int(r, blocks) * P;
        for (int p = 0; p < P; p++) c->dev[p] = (int16_t)(start + p);
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

typedef struct chain {
    const pml_graph *g;
    const pml_machine *m;
    pml_costmodel *cost;
    const pml_plan *start;
    const pml_search_opts *o;
    double deadline;
    int index;
    pml_plan best;
    double best_step, start_step;
    long iterations, accepted;
    pml_status st;
    char err[512];
} chain;

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
    ch->best_step = ch->start_step = cur;
    rng r = {ch->o->seed, 0x5ea7c4ull + (uint64_t)ch->index, 0};
    const double beta = ch->o->beta > 0 ? ch->o->beta : 40.0;
    pml_opcfg c, old;
    for (long it = 0;; it++) {
        if (ch->o->iterations > 0 ? it >= ch->o->iterations : (it % 16 == 0 && now_s() >= ch->deadline))
            break;
        ch->iterations++;
        int v = rnd_int(&r, g->nnodes);
        const pml_plan *p = pml_sim_plan(s);
        bool ok = rnd_unif(&r) < 0.3 && neighbour_config(g, ch->m, p, v, &r, &c);
        if (!ok) random_config(g, ch->m, p->batch, v, &r, &c);
        if (memcmp(&c, &p->cfg[v], sizeof c) == 0) continue;
        old = p->cfg[v];
        pml_status st = pml_sim_change(s, v, &c);
        if (st != PML_OK) {
            if (st == PML_ENOMEM && strstr(pml_errmsg(), "needs")) continue; /* does not fit */
            if (st == PML_EINVAL) continue;
            ch->st = st;
            snprintf(ch->err, sizeof ch->err, "%s", pml_errmsg());
            break;
        }
        double next = pml_sim_step_seconds(s);
        if (next <= cur || rnd_unif(&r) < exp(-beta * (next - cur) / cur)) {
            cur = next;
            ch->accepted++;
            if (cur < ch->best_step) {
                ch->best_step = cur;
                memcpy(ch->best.cfg, pml_sim_plan(s)->cfg, (size_t)g->nnodes * sizeof *ch->best.cfg);
            }
        } else if ((st = pml_sim_change(s, v, &old)) != PML_OK) {
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
    const double t0 = now_s();
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
        return pml_fail(PML_ENOMEM, "no baseline plan of model '%s' fits machine '%s' at batch %d",
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
        /* never worse than the best baseline */
        if (ch[win].best_step <= bt[bb]) {
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
    stats->seconds = now_s() - t0;
    return st;
}
