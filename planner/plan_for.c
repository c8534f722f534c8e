/* pml — planner: plans by name. A strategy name (data, model, owt, search, and the hand-made
 * splits the benchmarks and tests use) or a plan file gives a plan for a model, machine and
 * batch; the plan cache keeps searched plans on disk; pml_plan_here plans for this machine (or
 * its first cores), as pml train does. */
#include "planner/planner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const strategies[] = {"data",  "model",  "owt",    "search", "param",
                                         "attr", "layers", "random", "one",    NULL};

const char *const *pml_plan_strategies(void) { return strategies; }

bool pml_plan_is_strategy(const char *name)
{
    for (const char *const *s = strategies; *s; s++)
        if (strcmp(*s, name) == 0) return true;
    return strcmp(name, "mesh") == 0 || strcmp(name, "ps") == 0;
}

/* Every operator split along dimension dim (PML_DIM_PARAM or PML_DIM_ATTR) over all devices
 * where the op allows it and the size divides, the others as in data parallelism. */
static pml_status split_plan(pml_plan *p, const pml_graph *g, const pml_machine *m, int batch,
                             int dim)
{
    pml_status st = pml_plan_data_parallel(p, g, m, batch);
    if (st != PML_OK) return st;
    const int D = m->ncompute;
    const unsigned bit = dim == PML_DIM_PARAM ? PML_SPLIT_PARAM : PML_SPLIT_ATTR;
    for (int v = 0; v < g->nnodes; v++) {
        const pml_node *n = &g->nodes[v];
        const int size = dim == PML_DIM_PARAM ? n->out.c : n->out.h;
        if (!(pml_ops[n->op].splits & bit) || size % D != 0 || size < D) continue;
        if (n->op == PML_OP_FLATTEN || n->op == PML_OP_INPUT) continue;
        pml_opcfg c;
        memset(&c, 0, sizeof c);
        c.deg[0] = c.deg[1] = c.deg[2] = 1;
        c.deg[dim] = D;
        for (int q = 0; q < D; q++) c.dev[q] = (int16_t)q;
        if (pml_opcfg_check(g, m, batch, v, &c) == PML_OK) p->cfg[v] = c;
    }
    return pml_plan_check(p, g, m);
}

static pml_status search(const pml_graph *g, const pml_machine *m, int batch,
                         const pml_strategy_opts *o, pml_plan *p)
{
    pml_costmodel *c = o->cost;
    pml_status st = PML_OK;
    if (!c && (st = pml_cost_create(g, m, NULL, &c)) != PML_OK) return st;
    pml_search_opts so = {.budget_seconds = o->iterations ? 0 : o->budget > 0 ? o->budget : 5,
                          .iterations = o->iterations,
                          .seed = o->seed ? o->seed : 1,
                          .chains = o->chains > 0 ? o->chains : 1};
    pml_search_stats stats;
    st = pml_search(g, m, c, batch, &so, p, &stats);
    if (!o->cost) {
        if (st == PML_OK) pml_cost_save(c); /* a cache that cannot be written is no error */
        pml_cost_destroy(c);
    }
    return st;
}

pml_status pml_plan_strategy(const char *name, const pml_graph *g, const pml_machine *m, int batch,
                             const pml_strategy_opts *o, pml_plan *p)
{
    static const pml_strategy_opts none = {0};
    if (!o) o = &none;
    memset(p, 0, sizeof *p);
    pml_status st;
    if (strcmp(name, "data") == 0) return pml_plan_data_parallel(p, g, m, batch);
    if (strcmp(name, "model") == 0) return pml_plan_model_parallel(p, g, m, batch);
    if (strcmp(name, "owt") == 0) return pml_plan_owt(p, g, m, batch);
    if (strcmp(name, "ps") == 0) return pml_plan_ps(p, g, m, batch);
    if (strcmp(name, "search") == 0) return search(g, m, batch, o, p);
    if (strcmp(name, "mesh") == 0) {
        if (!o->mesh || o->nmesh < 1)
            return pml_fail(PML_EINVAL, "strategy mesh needs the mesh's axis sizes");
        static const int by_samples[PML_NDIMS] = {0, 1, -1};
        return pml_plan_mesh(p, g, m, batch, o->mesh, o->nmesh, o->layout ? o->layout : by_samples);
    }
    if (strcmp(name, "param") == 0) {
        st = split_plan(p, g, m, batch, PML_DIM_PARAM);
    } else if (strcmp(name, "attr") == 0) {
        st = split_plan(p, g, m, batch, PML_DIM_ATTR);
    } else if (strcmp(name, "layers") == 0) { /* operators alternate: every edge crosses */
        if ((st = pml_plan_init(p, g, batch)) != PML_OK) return st;
        for (int i = 0; i < g->nnodes; i++) p->cfg[g->order[i]].dev[0] = (int16_t)(i % m->ncompute);
        st = pml_plan_check(p, g, m);
    } else if (strcmp(name, "random") == 0) {
        if ((st = pml_plan_init(p, g, batch)) != PML_OK) return st;
        for (int v = 0; v < g->nnodes; v++)
            pml_opcfg_random(g, m, batch, v, o->seed ? o->seed : 7, (uint64_t)v, &p->cfg[v]);
        st = pml_plan_check(p, g, m);
    } else if (strcmp(name, "one") == 0) { /* everything on device 0 */
        if ((st = pml_plan_init(p, g, batch)) != PML_OK) return st;
        st = pml_plan_check(p, g, m);
    } else {
        return pml_fail(PML_EINVAL,
                        "unknown strategy '%s' (data, model, owt, search, mesh, ps, param, "
                        "attr, layers, random, one)",
                        name);
    }
    if (st == PML_OK)
        snprintf(p->strategy, sizeof p->strategy, "%s", name);
    else
        pml_plan_free(p);
    return st;
}

pml_status pml_plan_for(const char *spec, const pml_graph *g, const pml_machine *m, int batch,
                        double budget, pml_plan *p)
{
    memset(p, 0, sizeof *p);
    if (pml_plan_is_strategy(spec)) {
        pml_strategy_opts o = {.budget = budget};
        return pml_plan_strategy(spec, g, m, batch, &o, p);
    }
    /* a word that is no strategy and no file: a strategy misspelt */
    if (!strchr(spec, '/') && !strchr(spec, '.') && access(spec, F_OK) != 0) {
        char known[160] = "";
        for (const char *const *k = strategies; *k; k++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s, ", *k);
        return pml_fail(PML_EUNKNOWN, "unknown plan '%s' (a plan file, or a strategy: %smesh, ps)",
                        spec, known);
    }
    pml_status st = pml_plan_read(spec, g, m, p);
    if (st != PML_OK) return st;
    if (p->batch != batch) {
        int b = p->batch;
        pml_plan_free(p);
        return pml_fail(PML_EINVAL, "%s: the plan is for batch %d, not %d", spec, b, batch);
    }
    return PML_OK;
}

pml_status pml_plan_cached(const pml_graph *g, const pml_machine *m, int batch, double budget,
                           pml_plan *p, char *desc, size_t cap)
{
    memset(p, 0, sizeof *p);
    if (m->ncompute == 1) { /* one core: nothing to split */
        snprintf(desc, cap, "data (one core)");
        return pml_plan_data_parallel(p, g, m, batch);
    }
    char *text = NULL;
    size_t len = 0;
    pml_status st = pml_model_format_dot(g, &text, &len);
    if (st != PML_OK) return st;
    /* the key: the planner's version (a new search, simulator or cost model plans again), the
     * model as its DOT text, the machine's fingerprint and the batch */
    static const char version[] = "pml " PML_VERSION " planner " PML_PLANNER_VERSION;
    uint64_t h = pml_hash(PML_HASH_INIT, version, sizeof version);
    h = pml_hash(h, text, len);
    free(text);
    h = pml_hash(h, m->fingerprint, strlen(m->fingerprint));
    h = pml_hash(h, &batch, sizeof batch);
    /* the cache folder's plans/; none: plan every time */
    char *dir = pml_cache_dir("plans"), name[160], path[4096];
    snprintf(name, sizeof name, "%.64s-b%d-%016llx.dot", g->name, batch, (unsigned long long)h);
    if (dir && (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        free(dir);
        dir = NULL;
    }
    pml_cache_lock lock = {.fd = -1};
    for (int pass = 0; dir && pass < 2; pass++) {
        /* the second look is under the lock: a run that held it may have just planned */
        if (pass == 1 && !pml_cache_lock_take(&lock, dir, name, PML_CACHE_LOCK_WAIT)) break;
        if (access(path, R_OK) == 0 && pml_plan_read(path, g, m, p) == PML_OK &&
            p->batch == batch) {
            pml_cache_unlock(&lock);
            free(dir);
            snprintf(desc, cap, "%s", path);
            return PML_OK;
        }
        pml_plan_free(p); /* absent, stale or unreadable: plan again */
    }
    /* runs started together search once: the others wait for this plan (a holder that takes
     * too long is not waited for: then the plan is searched here and not cached) */
    pml_strategy_opts o = {.budget = budget};
    st = pml_plan_strategy("search", g, m, batch, &o, p);
    if (st == PML_OK && lock.fd >= 0 && pml_plan_write(path, p, g, m) == PML_OK)
        snprintf(desc, cap, "%s", path);
    else
        snprintf(desc, cap, "search");
    pml_cache_unlock(&lock);
    free(dir);
    return st;
}

pml_status pml_plan_here(const pml_graph *g, const char *spec, int threads, int batch,
                         pml_machine *here, pml_plan *p, char *desc, size_t cap)
{
    memset(here, 0, sizeof *here);
    memset(p, 0, sizeof *p);
    pml_machine full;
    pml_status st = pml_machine_load(NULL, &full);
    if (st != PML_OK) return st;
    if (threads <= 0) threads = full.ncompute;
    if (threads > full.ncompute) {
        st = pml_fail(PML_EINVAL, "%d threads: this machine has %d cores", threads, full.ncompute);
        pml_machine_free(&full);
        return st;
    }
    if (threads == full.ncompute) { /* all of it: loaded (and calibrated) once */
        *here = full;
    } else {
        st = pml_machine_first_cores(&full, threads, here);
        pml_machine_free(&full);
        if (st != PML_OK) return st;
    }
    if (spec) {
        st = pml_plan_for(spec, g, here, batch, 5, p);
        snprintf(desc, cap, "%s", spec);
    } else {
        st = pml_plan_cached(g, here, batch, 3, p, desc, cap);
    }
    if (st != PML_OK) pml_machine_free(here);
    return st;
}
