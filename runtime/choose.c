/* pml — choosing how to run by measuring: the simulator ranks plans, but a machine pml was not
 * tuned on (slower hand-offs between cores, a core another process keeps busy) can make the
 * best-predicted plan slower than one core. pml_choose runs a short trial of each candidate
 * (the searched plan, data parallel, the per-operator executor, one core) on the real training
 * data and picks the fastest measured; the choice is cached by model, batch and machine so the
 * next run starts at once. The trial trains nothing that is kept: each candidate runs on an
 * executor of its own, made from the seed, which is destroyed afterwards. */
#include "runtime/runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRIAL_BYTES (1 << 20) /* the batches a trial cycles through, at most */

static double mean(const double *t, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += t[i];
    return n ? s / n : NAN;
}

/* Mean seconds of a training step of candidate c: `warmup` steps, then steps until both
 * `min_steps` and `min_seconds` are reached (at most `max_steps`), on the first batches of d.
 * The mean, not the median: training pays every step, and on a core another process keeps busy
 * a step is slow whenever the other process has the core (half the steps, say), which a
 * median can hide while the epoch pays for it. */
static pml_status measure(void *ud, const pml_graph *g, const pml_candidate *c,
                          const pml_dataset *d, int batch, const pml_choose_opts *o,
                          double *seconds)
{
    (void)ud;
    const bool across = pml_dist_size(o->dist) > 1;
    pml_exec_opts eo = {.batch = batch,
                        .threads = c->threads > 0 ? c->threads : 1,
                        .seed = o->seed,
                        .machine = c->plan ? c->machine : NULL,
                        .plan = c->plan,
                        .first_core = o->first_core,
                        .dist = across ? o->dist : NULL};
    pml_exec *e = NULL;
    pml_optim opt;
    pml_optim_defaults(&opt, PML_OPTIM_ADAM);
    const int max_steps = o->max_steps > 0 ? o->max_steps : 200;
    double *t = calloc((size_t)max_steps, sizeof *t);
    int32_t *idx = malloc((size_t)batch * sizeof *idx);
    /* the batches, gathered before the steps as training's loader does (the pool fills one
     * chunk of batches while the steps read the other in place): TRIAL_BYTES of them, in turn */
    const size_t size = pml_shape_size(g->nodes[g->input].out);
    const size_t stride = pml_exec_input_stride(batch, size);
    const int nb = (d->n + batch - 1) / batch;
    int held = (int)(TRIAL_BYTES / (stride * sizeof(float)));
    held = held < 1 ? 1 : held > nb ? nb : held;
    float *xs = aligned_alloc(64, (size_t)held * stride * sizeof *xs);
    int32_t *ys = malloc((size_t)held * batch * sizeof *ys);
    int *ms = malloc((size_t)held * sizeof *ms);
    pml_status st = !t || !idx || !xs || !ys || !ms ? pml_fail(PML_ENOMEM, "out of memory") : PML_OK;
    for (int b = 0; st == PML_OK && b < held; b++) {
        const int i0 = b * batch;
        ms[b] = d->n - i0 < batch ? d->n - i0 : batch;
        for (int i = 0; i < ms[b]; i++) idx[i] = i0 + i;
        pml_data_gather(d, idx, ms[b], xs + (size_t)b * stride, ys + (size_t)b * batch);
    }
    if (st == PML_OK) st = pml_optim_alloc(&opt, g->nparams);
    if (st == PML_OK) st = pml_exec_create(g, &eo, &e);
    int n = 0, warmup = o->warmup;
    double begin = 0;
    for (int k = 0; st == PML_OK && n < max_steps; k++) {
        if (k == warmup) begin = pml_now();
        if (across && k >= o->warmup + (o->min_steps > 0 ? o->min_steps : 10)) break;
        if (!across && n >= 1 && pml_trial_done(o, n, pml_now() - begin, mean(t, n))) break;
        const int b = k % held, m = ms[b];
        pml_exec_use_input(e, xs + (size_t)b * stride);
        memcpy(pml_exec_labels(e), ys + (size_t)b * batch, (size_t)m * sizeof *ys);
        const double t0 = pml_now();
        st = pml_exec_train_step(e, m, &opt, NULL);
        const double dt = pml_now() - t0;
        if (!across && k == 0 && dt > 0.05 && warmup > 1) warmup = 1; /* a slow model */
        if (k >= warmup && (m == batch || across)) t[n++] = dt;
    }
    if (st == PML_OK) *seconds = mean(t, n);
    if (st == PML_OK && across) { /* the ranks' mean: every rank decides alike */
        double sum = *seconds;
        st = pml_dist_sum_doubles(o->dist, &sum, 1);
        *seconds = sum / pml_dist_size(o->dist);
    }
    pml_exec_destroy(e);
    pml_optim_free(&opt);
    free(t);
    free(idx);
    free(xs);
    free(ys);
    free(ms);
    return st;
}

bool pml_trial_done(const pml_choose_opts *o, int n, double spent, double mean)
{
    if (n >= o->min_steps && spent >= o->min_seconds) return true;
    if (n >= 3 && spent >= o->max_seconds) return true; /* a slow model: a few steps tell */
    if (n >= 1 && o->long_seconds > 0 && spent >= o->long_seconds) return true;
    if (o->cutoff > 0 && n >= 3 && mean > 1.5 * o->cutoff)
        return true; /* clearly slower than the best so far: it cannot win */
    if (o->cutoff > 0 && n >= 1 && spent >= o->max_seconds && mean > 2 * o->cutoff)
        return true; /* a slow step twice the best's: one tells */
    return false;
}

bool pml_trial_worth(int ncands, double step, long run_steps)
{
    if (!(step > 0) || run_steps <= 0) return true;
    /* a heavy model's candidates take a warm-up step and one more each (pml_trial_done), one
     * core about twice as long */
    const double trial = (2.0 * ncands + 2.0) * step, run = (double)run_steps * step;
    return !(trial > 10.0 && trial > 0.25 * run);
}

pml_choose_opts pml_choose_opts_default(void)
{
    return (pml_choose_opts){.warmup = 2,
                             .min_steps = 10,
                             .max_steps = 200,
                             .min_seconds = 0.1,
                             .max_seconds = 0.4,
                             .long_seconds = 2.0,
                             .rounds = 2,
                             .round_seconds = 1.0,
                             .seed = 1,
                             .measure = measure,
                             .others = -1};
}

/* The share of the machine other processes used since s0 (or the one a test gives) */
static double foreign_load(const pml_choose_opts *o, const pml_cpu_snap *s0)
{
    return o->others >= 0 ? o->others : pml_foreign_load_since(s0);
}

pml_status pml_choose(const pml_graph *g, const pml_dataset *train, int batch, pml_candidate *c,
                      int n, const pml_choose_opts *opts, int *best)
{
    pml_choose_opts o = opts ? *opts : pml_choose_opts_default();
    if (!o.measure) o.measure = measure;
    if (o.rounds < 1) o.rounds = 1;
    *best = -1;
    if (n < 1) return pml_fail(PML_EINVAL, "no candidate to choose from");
    for (int i = 0; i < n; i++) c[i].measured = INFINITY;
    double *sum = calloc((size_t)n, sizeof *sum);
    if (!sum) return pml_fail(PML_ENOMEM, "out of memory");
    pml_cpu_snap s0;
    pml_cpu_snap_take(&s0);
    /* rounds, each candidate once a round: the machine's speed drifts, a candidate's best round
     * is what it can do; a round that took long is enough (a slow model). But while other
     * processes are busy, a candidate's figure is a draw of their time slices (see
     * PML_CHOICE_MARGIN): then every round runs (unless one took 10 s) and their mean counts */
    int rounds = 0;
    for (int r = 0; r < o.rounds; r++) {
        const double r0 = pml_now();
        for (int i = 0; i < n; i++) {
            double s = NAN;
            o.cutoff = INFINITY;
            for (int j = 0; j < n; j++)
                if (j != i && c[j].measured < o.cutoff) o.cutoff = c[j].measured;
            if (!isfinite(o.cutoff) || o.dist) o.cutoff = 0;
            pml_status st = o.measure(o.ud, g, &c[i], train, batch, &o, &s);
            if (st != PML_OK) {
                free(sum);
                return pml_fail_ctx(st, "trial of %s: ", c[i].name);
            }
            if (s < c[i].measured) c[i].measured = s;
            sum[i] += s;
        }
        rounds++;
        const double took = pml_now() - r0;
        if (!o.dist && o.round_seconds > 0 && took > o.round_seconds &&
            (foreign_load(&o, &s0) < PML_CHOICE_QUIET || took > 10.0))
            break;
    }
    const double others = foreign_load(&o, &s0);
    /* not across ranks, whose measured times agree but whose neighbours need not */
    const bool busy = !o.dist && others >= PML_CHOICE_QUIET;
    if (busy)
        for (int i = 0; i < n; i++) c[i].measured = sum[i] / rounds;
    free(sum);
    for (int i = 0; i < n; i++) c[i].others = others;
    int b = 0, few = 0; /* the fastest; the fastest on the fewest cores */
    for (int i = 1; i < n; i++) {
        if (c[i].measured < c[b].measured) b = i;
        if (c[i].threads < c[few].threads ||
            (c[i].threads == c[few].threads && c[i].measured < c[few].measured))
            few = i;
    }
    if (!isfinite(c[b].measured)) return pml_fail(PML_EINVAL, "the trial measured no step");
    /* a busy machine: more cores must win by a margin (see PML_CHOICE_MARGIN) */
    if (busy && c[b].threads > c[few].threads && isfinite(c[few].measured) &&
        c[b].measured * (1 + PML_CHOICE_MARGIN) > c[few].measured)
        b = few;
    *best = b;
    return PML_OK;
}

/* ---------------------------------------------------------------- the cache of choices */

#define CHOICE_HEADER "pml choice 2" /* 2: mean step times (1: medians) */

static char *choice_path(const pml_graph *g, const pml_machine *m, int batch, char *name,
                         size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    if (pml_model_format_dot(g, &text, &len) != PML_OK) return NULL;
    static const char version[] = "pml " PML_VERSION " planner " PML_PLANNER_VERSION;
    uint64_t h = pml_hash(PML_HASH_INIT, version, sizeof version);
    h = pml_hash(h, text, len);
    free(text);
    h = pml_hash(h, m->fingerprint, strlen(m->fingerprint));
    h = pml_hash(h, &batch, sizeof batch);
    snprintf(name, cap, "%.64s-b%d-%016llx.txt", g->name, batch, (unsigned long long)h);
    return pml_cache_dir("choices");
}

int pml_choice_load(const pml_graph *g, const pml_machine *m, int batch, pml_candidate *c, int n)
{
    char name[160], path[4096], *text = NULL;
    char *dir = choice_path(g, m, batch, name, sizeof name);
    int found = -1;
    size_t len;
    if (!dir) return -1;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path &&
        pml_read_file(path, 4096, &text, &len) == PML_OK) {
        size_t hl = strlen(CHOICE_HEADER);
        if (len > hl && memcmp(text, CHOICE_HEADER "\nwinner ", hl + 8) == 0 &&
            !strstr(text, "\nprovisional\n")) {
            const char *w = text + hl + 8;
            size_t wl = strcspn(w, "\n");
            for (int i = 0; i < n; i++)
                if (strlen(c[i].name) == wl && memcmp(c[i].name, w, wl) == 0) found = i;
            /* what the trial measured: "candidate NAME SECONDS" lines */
            for (const char *l = strstr(text, "\ncandidate "); found >= 0 && l;
                 l = strstr(l + 1, "\ncandidate ")) {
                const char *nm = l + 11, *end = strchr(nm, '\n');
                const char *sp = end ? end : nm + strlen(nm);
                while (sp > nm && sp[-1] != ' ') sp--;
                if (sp <= nm) continue;
                char *e;
                double v = strtod(sp, &e);
                if (e == sp || !(v > 0) || !isfinite(v)) continue;
                for (int i = 0; i < n; i++)
                    if (strlen(c[i].name) == (size_t)(sp - 1 - nm) &&
                        memcmp(c[i].name, nm, (size_t)(sp - 1 - nm)) == 0)
                        c[i].measured = v;
            }
        }
    }
    free(text);
    free(dir);
    return found;
}

void pml_choice_save(const pml_graph *g, const pml_machine *m, int batch, const pml_candidate *c,
                     int n, int best)
{
    char name[160], path[4096];
    char *dir = choice_path(g, m, batch, name, sizeof name);
    if (!dir) return;
    char buf[4096];
    size_t k = (size_t)snprintf(buf, sizeof buf, CHOICE_HEADER "\nwinner %s\n", c[best].name);
    bool busy = false;
    for (int i = 0; i < n && k < sizeof buf; i++) {
        k += (size_t)snprintf(buf + k, sizeof buf - k, "candidate %s %.6g\n", c[i].name,
                              c[i].measured);
        busy |= c[i].others >= PML_CHOICE_QUIET;
    }
    if (busy && k < sizeof buf) k += (size_t)snprintf(buf + k, sizeof buf - k, "provisional\n");
    if (k < sizeof buf && (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path) {
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", pml_errmsg());
        if (pml_write_file_atomic(path, buf, k) != PML_OK)
            pml_fail(PML_OK, "%s", saved); /* a cache that cannot be written is no error */
    }
    free(dir);
}

/* ---------------------------------------------------------------- the candidates */

double pml_plan_predict(const pml_graph *g, const pml_machine *m, const pml_plan *p)
{
    pml_costmodel *c = NULL;
    pml_sim *s = NULL;
    double t = 0;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", pml_errmsg());
    if (pml_cost_create(g, m, NULL, &c) == PML_OK && pml_sim_create(g, m, p, c, &s) == PML_OK)
        t = pml_sim_step_seconds(s);
    pml_sim_destroy(s);
    if (c) pml_cost_save(c);
    pml_cost_destroy(c);
    pml_fail(PML_OK, "%s", saved); /* a prediction that cannot be made is no error */
    return t;
}

static void add(pml_candidates *cs, const char *name, const pml_machine *m, const pml_plan *p,
                int threads, double predicted)
{
    pml_candidate *c = &cs->c[cs->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->machine = m;
    c->plan = p;
    c->threads = threads;
    c->predicted = predicted;
    c->measured = INFINITY;
}

pml_status pml_candidates_make(const pml_graph *g, const pml_machine *here, const pml_plan *plan,
                               int batch, pml_candidates *out)
{
    memset(out, 0, sizeof *out);
    const int n = here->ncompute;
    const bool data = strcmp(plan->strategy, "data") == 0;
    char name[48];
    snprintf(name, sizeof name, "%s plan", data ? "data-parallel" : plan->strategy);
    add(out, name, here, plan, n, pml_plan_predict(g, here, plan));
    if (n == 1) return PML_OK;
    pml_status st = PML_OK;
    for (int k = 0; k < 2; k++)
        if (!(out->owned[k] = calloc(1, sizeof *out->owned[k]))) st = PML_ENOMEM;
    if (!(out->one = calloc(1, sizeof *out->one))) st = PML_ENOMEM;
    if (st != PML_OK) {
        pml_candidates_free(out);
        return pml_fail(st, "out of memory");
    }
    if (!data) {
        if ((st = pml_plan_data_parallel(out->owned[0], g, here, batch)) != PML_OK) goto fail;
        add(out, "data parallel", here, out->owned[0], n, pml_plan_predict(g, here, out->owned[0]));
    }
    add(out, "per-operator", NULL, NULL, n, 0);
    if ((st = pml_machine_first_cores(here, 1, out->one)) != PML_OK) goto fail;
    if ((st = pml_plan_data_parallel(out->owned[1], g, out->one, batch)) != PML_OK) goto fail;
    add(out, "one core", out->one, out->owned[1], 1, 0);
    return PML_OK;
fail:
    pml_candidates_free(out);
    return st;
}

void pml_candidates_free(pml_candidates *cs)
{
    for (int k = 0; k < 2; k++)
        if (cs->owned[k]) {
            pml_plan_free(cs->owned[k]);
            free(cs->owned[k]);
        }
    if (cs->one) {
        pml_machine_free(cs->one);
        free(cs->one);
    }
    memset(cs, 0, sizeof *cs);
}
