/* pml — the command line: the plan a training run or benchmark runs. */
#include "cli.h"

#include "models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* FNV-1a, 64 bits */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* $XDG_CACHE_HOME/pml/plans or ~/.cache/pml/plans, created; "" when there is no home */
static void plan_cache_dir(char *dir, size_t cap)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(dir, cap, "%s/pml/plans", xdg);
    else if (home && *home)
        snprintf(dir, cap, "%s/.cache/pml/plans", home);
    else {
        dir[0] = 0;
        return;
    }
    /* mkdir -p */
    for (char *s = dir + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(dir, 0755);
            *s = '/';
        }
    mkdir(dir, 0755);
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
    uint64_t h = fnv(0xcbf29ce484222325ull, version, sizeof version);
    h = fnv(h, text, len);
    free(text);
    h = fnv(h, m->fingerprint, strlen(m->fingerprint));
    h = fnv(h, &batch, sizeof batch);
    char dir[3072], path[4096];
    plan_cache_dir(dir, sizeof dir);
    if (dir[0]) {
        snprintf(path, sizeof path, "%s/%.64s-b%d-%016llx.dot", dir, g->name, batch,
                 (unsigned long long)h);
        if (access(path, R_OK) == 0 && pml_plan_read(path, g, m, p) == PML_OK &&
            p->batch == batch) {
            snprintf(desc, cap, "%s", path);
            return PML_OK;
        }
        pml_plan_free(p); /* absent, stale or unreadable: plan again */
    }
    if ((st = cli_plan_for("search", g, m, batch, budget, p)) != PML_OK) return st;
    if (dir[0] && pml_plan_write(path, p, g, m) == PML_OK)
        snprintf(desc, cap, "%s", path);
    else
        snprintf(desc, cap, "search");
    return PML_OK;
}
