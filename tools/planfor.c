/* pml — the command line: the plan a training run or benchmark runs. */
#include "cli.h"

#include "models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pml_status cli_plan_for(const char *spec, const pml_graph *g, const pml_machine *m, int batch,
                        double budget, pml_plan *p)
{
    memset(p, 0, sizeof *p);
    if (strcmp(spec, "data") == 0) return pml_plan_data_parallel(p, g, m, batch);
    if (strcmp(spec, "model") == 0) return pml_plan_model_parallel(p, g, m, batch);
    if (strcmp(spec, "owt") == 0) return pml_plan_owt(p, g, m, batch);
    if (strcmp(spec, "search") == 0) {
        pml_costmodel *c = NULL;
        pml_status st = pml_cost_create(g, m, NULL, &c);
        if (st != PML_OK) return st;
        pml_search_opts o = {.budget_seconds = budget > 0 ? budget : 5, .seed = 1, .chains = 1};
        pml_search_stats s;
        st = pml_search(g, m, c, batch, &o, p, &s);
        if (st == PML_OK) pml_cost_save(c);
        pml_cost_destroy(c);
        return st;
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

pml_status cli_plan_cached(const pml_graph *g, const pml_machine *m, int batch, double budget,
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
    /* a new version of the planner (search, simulator, cost model) plans again */
    static const char version[] = "pml " PML_VERSION " planner 5";
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
    st = cli_plan_for("search", g, m, batch, budget, p);
    if (st == PML_OK && lock.fd >= 0 && pml_plan_write(path, p, g, m) == PML_OK)
        snprintf(desc, cap, "%s", path);
    else
        snprintf(desc, cap, "search");
    pml_cache_unlock(&lock);
    free(dir);
    return st;
}
