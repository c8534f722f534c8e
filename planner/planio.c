/* pml — plan files: the model's DOT file (kind=plan) plus, per operator, its parallel config and
 * device list, and the machine, batch and gradient synchronisation as graph attributes. The
 * format is documented in planner.h; the model part is read and written by models/dot.c
 * (pml_model_dot_ext), this file adds and checks the rest. */
#include "models/models.h"
#include "planner/planner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P(s) pml_dot_brief(s)

static const char *const plan_node_attrs[] = {"config", "devices", NULL};
static const char *const plan_graph_attrs[] = {"machine", "fingerprint",  "batch", "strategy",
                                               "sync",    "bucket_bytes", NULL};

#define MAX_BATCH (1 << 30)
#define MAX_DEVICE 32767 /* pml_opcfg.dev is int16_t */
#define MAX_BUCKET 1e15

static const char dim_key[PML_NDIMS] = {'n', 'c', 'h'};

/* ---------------------------------------------------------------- values */

static bool is_sep(char c)
{
    return c == ' ' || c == ',' || c == '\t';
}

/* the start of s for a message: at most 12 bytes, not cut inside a UTF-8 character, control
 * characters as '?' */
static const char *excerpt(const char *s)
{
    static _Thread_local char b[16];
    size_t n = 0;
    for (; s[n] && n < 12; n++) b[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    if (s[n])
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
    b[n] = 0;
    return b;
}

/* "n=2 c=1 h=1": a degree per dimension (1 for one left out), separated by spaces or commas. */
static bool parse_config(const char *s, int deg[PML_NDIMS], char *why, size_t cap)
{
    bool seen[PML_NDIMS] = {false, false, false};
    int count = 0;
    deg[0] = deg[1] = deg[2] = 1;
    for (const char *q = s;;) {
        while (is_sep(*q)) q++;
        if (!*q) break;
        int d = 0;
        while (d < PML_NDIMS && dim_key[d] != *q) d++;
        if (d == PML_NDIMS || q[1] != '=') {
            snprintf(why, cap, "'%s' is not n=, c= or h=", excerpt(q));
            return false;
        }
        if (seen[d]) {
            snprintf(why, cap, "%c= is given twice", dim_key[d]);
            return false;
        }
        q += 2;
        long v = 0;
        const char *digits = q;
        while (*q >= '0' && *q <= '9' && v <= PML_MAX_PARTS) v = v * 10 + (*q++ - '0');
        if (q == digits || (*q && !is_sep(*q)) || v < 1 || v > PML_MAX_PARTS) {
            snprintf(why, cap, "%c= needs an integer in [1, %d]", dim_key[d], PML_MAX_PARTS);
            return false;
        }
        deg[d] = (int)v;
        seen[d] = true;
        count++;
    }
    if (!count) {
        snprintf(why, cap, "it is empty");
        return false;
    }
    long parts = (long)deg[0] * deg[1] * deg[2];
    if (parts > PML_MAX_PARTS) {
        snprintf(why, cap, "%ld parts, at most %d", parts, PML_MAX_PARTS);
        return false;
    }
    return true;
}

/* "0,1,2" or "0-3, 8": compute-device indices; *n receives how many (at most PML_MAX_PARTS). */
static bool parse_devices(const char *s, int16_t *dev, int *n, char *why, size_t cap)
{
    *n = 0;
    const char *q = s;
    for (;;) {
        while (*q == ' ' || *q == '\t') q++;
        long a = 0, b;
        const char *digits = q;
        while (*q >= '0' && *q <= '9' && a <= MAX_DEVICE) a = a * 10 + (*q++ - '0');
        if (q == digits) {
            snprintf(why, cap, *q ? "'%s' is not a device index" : "a device index is missing",
                     excerpt(q));
            return false;
        }
        if (a > MAX_DEVICE) {
            snprintf(why, cap, "device indices are at most %d", MAX_DEVICE);
            return false;
        }
        b = a;
        if (*q == '-') {
            q++;
            const char *d2 = q;
            b = 0;
            while (*q >= '0' && *q <= '9' && b <= MAX_DEVICE) b = b * 10 + (*q++ - '0');
            if (q == d2 || b > MAX_DEVICE || b < a) {
                snprintf(why, cap, "a range a-b needs device indices a <= b <= %d", MAX_DEVICE);
                return false;
            }
        }
        for (long d = a; d <= b; d++) {
            if (*n == PML_MAX_PARTS) {
                snprintf(why, cap, "more than %d devices", PML_MAX_PARTS);
                return false;
            }
            dev[(*n)++] = (int16_t)d;
        }
        while (*q == ' ' || *q == '\t') q++;
        if (!*q) return true;
        if (*q != ',') {
            snprintf(why, cap, "'%s' is not a device index", excerpt(q));
            return false;
        }
        q++;
    }
}

void pml_plan_format_devices(const int16_t *dev, int n, char *buf, size_t cap)
{
    size_t l = 0;
    buf[0] = 0;
    for (int i = 0; i < n && l < cap;) {
        int j = i;
        while (j + 1 < n && dev[j + 1] == dev[j] + 1) j++;
        if (j - i >= 2) {
            l += (size_t)snprintf(buf + l, cap - l, "%s%d-%d", i ? "," : "", dev[i], dev[j]);
            i = j + 1;
        } else {
            l += (size_t)snprintf(buf + l, cap - l, "%s%d", i ? "," : "", dev[i]);
            i++;
        }
    }
}

static void format_config(const pml_opcfg *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "n=%d c=%d h=%d", c->deg[0], c->deg[1], c->deg[2]);
}

/* A name DOT can hold in quotes and pml writes back as it is: printable, no '"' or '\'. */
static bool writable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\') return false;
    return true;
}

/* pml_opcfg_check needs a machine only for its number of compute devices: without one, any
 * index a plan file can hold exists. */
static pml_status check_cfg(const pml_graph *g, const pml_machine *m, int batch, int id,
                            const pml_opcfg *c)
{
    pml_machine any;
    if (!m) {
        memset(&any, 0, sizeof any);
        snprintf(any.name, sizeof any.name, "any");
        any.ncompute = MAX_DEVICE + 1;
        m = &any;
    }
    return pml_opcfg_check(g, m, batch, id, c);
}

/* ---------------------------------------------------------------- reading */

/* The file's model against the caller's: the same operators (by name) with the same op, output,
 * inputs, parameters and FLOPs. */
static pml_status same_model(const char *src, const pml_graph *f, const pml_graph *g)
{
    for (int i = 0; i < f->nnodes; i++)
        if (pml_graph_find(g, f->nodes[i].name) < 0)
            return pml_fail(PML_EINVAL,
                            "%s: the plan is for another model: operator '%s' (%s) is not in "
                            "model '%s'",
                            src, P(f->nodes[i].name), pml_op_name(f->nodes[i].op), P(g->name));
    for (int i = 0; i < g->nnodes; i++) {
        const pml_node *a = &g->nodes[i];
        int j = pml_graph_find(f, a->name);
        if (j < 0)
            return pml_fail(PML_EINVAL,
                            "%s: the plan is for another model: it has no operator '%s' (%s) of "
                            "model '%s'",
                            src, P(a->name), pml_op_name(a->op), P(g->name));
        const pml_node *b = &f->nodes[j];
        if (a->op != b->op)
            return pml_fail(PML_EINVAL,
                            "%s: the plan is for another model: operator '%s' is a %s in the plan, "
                            "a %s in model '%s'",
                            src, P(a->name), pml_op_name(b->op), pml_op_name(a->op), P(g->name));
        if (!pml_shape_eq(a->out, b->out))
            return pml_fail(PML_EINVAL,
                            "%s: the plan is for another model: operator '%s' (%s) outputs "
                            "%dx%dx%d in the plan, %dx%dx%d in model '%s'",
                            src, P(a->name), pml_op_name(a->op), b->out.c, b->out.h, b->out.w,
                            a->out.c, a->out.h, a->out.w, P(g->name));
        bool inputs = a->nin == b->nin;
        for (int k = 0; inputs && k < a->nin; k++)
            inputs = strcmp(g->nodes[a->in[k]].name, f->nodes[b->in[k]].name) == 0;
        if (!inputs)
            return pml_fail(PML_EINVAL,
                            "%s: the plan is for another model: operator '%s' (%s) has other "
                            "inputs than in model '%s'",
                            src, P(a->name), pml_op_name(a->op), P(g->name));
        bool params = a->nparam == b->nparam && pml_node_flops(g, i) == pml_node_flops(f, j);
        for (int k = 0; params && k < a->nparam; k++) params = a->param_size[k] == b->param_size[k];
        if (!params)
            return pml_fail(PML_EINVAL,
                            "%s: the plan is for another model: operator '%s' (%s) has other "
                            "parameters or FLOPs than in model '%s'",
                            src, P(a->name), pml_op_name(a->op), P(g->name));
    }
    return PML_OK;
}

/* What the reader takes from the cgraph graph, copied out under the Graphviz lock. */
typedef struct raw_plan {
    char *gattr[6]; /* plan_graph_attrs, NULL when absent or empty */
    char **config;  /* per node of the target model, NULL when absent */
    char **devices;
    int n;
} raw_plan;

static void raw_free(raw_plan *r)
{
    for (int k = 0; k < 6; k++) free(r->gattr[k]);
    for (int i = 0; i < r->n; i++) {
        if (r->config) free(r->config[i]);
        if (r->devices) free(r->devices[i]);
    }
    free(r->config);
    free(r->devices);
    memset(r, 0, sizeof *r);
}

static int cmp_node_name(const void *a, const void *b, void *ud)
{
    const pml_dot *d = ud;
    return strcmp(d->nodes[*(const int *)a].name, d->nodes[*(const int *)b].name);
}

/* The plan's graph attributes and each operator's config and devices, by operator name. */
static bool raw_get(const pml_dot *d, const pml_graph *g, raw_plan *r)
{
    memset(r, 0, sizeof *r);
    r->config = calloc((size_t)g->nnodes + 1, sizeof *r->config);
    r->devices = calloc((size_t)g->nnodes + 1, sizeof *r->devices);
    int *byname = malloc((size_t)(d->nnodes ? d->nnodes : 1) * sizeof *byname);
    if (!r->config || !r->devices || !byname) {
        free(byname);
        return false;
    }
    r->n = g->nnodes;
    bool ok = true;
    for (int k = 0; k < 6; k++) {
        const char *v = pml_dot_get(d->nattr, d->attr, plan_graph_attrs[k]);
        if (v && !(r->gattr[k] = strdup(v))) ok = false;
    }
    for (int i = 0; i < d->nnodes; i++) byname[i] = i;
    qsort_r(byname, (size_t)d->nnodes, sizeof *byname, cmp_node_name, (void *)d);
    for (int i = 0; i < g->nnodes && ok; i++) {
        int lo = 0, hi = d->nnodes - 1, at = -1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2, c = strcmp(d->nodes[byname[mid]].name, g->nodes[i].name);
            if (c == 0) {
                at = byname[mid];
                break;
            }
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid - 1;
        }
        if (at < 0) continue;
        const pml_dot_node *dn = &d->nodes[at];
        const char *cv = pml_dot_get(dn->nattr, dn->attr, "config");
        const char *dv = pml_dot_get(dn->nattr, dn->attr, "devices");
        if (cv && !(r->config[i] = strdup(cv))) ok = false;
        if (dv && !(r->devices[i] = strdup(dv))) ok = false;
    }
    free(byname);
    return ok;
}

enum { G_MACHINE, G_FINGERPRINT, G_BATCH, G_STRATEGY, G_SYNC, G_BUCKET };

static pml_status read_graph_attrs(const char *src, const raw_plan *r, pml_plan *p,
                                   pml_plan_info *info)
{
    const char *v;
    if ((v = r->gattr[G_MACHINE])) {
        if (strlen(v) >= sizeof info->machine || !writable(v))
            return pml_fail(PML_EFORMAT,
                            "%s: graph attribute machine='%s' must be a machine name of at most "
                            "%zu characters without quotes, backslashes or control characters",
                            src, P(v), sizeof info->machine - 1);
        snprintf(info->machine, sizeof info->machine, "%s", v);
    }
    if ((v = r->gattr[G_FINGERPRINT])) {
        bool hex = strlen(v) == 16;
        for (int k = 0; hex && k < 16; k++)
            hex = (v[k] >= '0' && v[k] <= '9') || (v[k] >= 'a' && v[k] <= 'f');
        if (!hex)
            return pml_fail(PML_EFORMAT,
                            "%s: graph attribute fingerprint='%s' must be 16 hexadecimal digits "
                            "(as pml topo prints)",
                            src, P(v));
        snprintf(info->fingerprint, sizeof info->fingerprint, "%s", v);
    }
    if (!(v = r->gattr[G_BATCH]))
        return pml_fail(PML_EFORMAT,
                        "%s: missing graph attribute batch (the global batch, e.g. batch=256)",
                        src);
    char *e;
    errno = 0;
    long b = strtol(v, &e, 10);
    if (errno || e == v || *e || v[0] == '-' || v[0] == '+' || v[0] == ' ' || b < 1 ||
        b > MAX_BATCH)
        return pml_fail(PML_EFORMAT, "%s: graph attribute batch='%s' must be an integer in [1, %d]",
                        src, P(v), MAX_BATCH);
    p->batch = (int)b;
    snprintf(p->strategy, sizeof p->strategy, "file");
    if ((v = r->gattr[G_STRATEGY])) {
        if (strlen(v) >= sizeof p->strategy || !writable(v))
            return pml_fail(PML_EFORMAT,
                            "%s: graph attribute strategy='%s' must be a word of at most %zu "
                            "characters (search, data, model, owt, mesh, ...)",
                            src, P(v), sizeof p->strategy - 1);
        snprintf(p->strategy, sizeof p->strategy, "%s", v);
    }
    if ((v = r->gattr[G_SYNC])) {
        if (strcmp(v, "allreduce") == 0)
            p->sync = PML_SYNC_ALLREDUCE;
        else if (strcmp(v, "ps") == 0)
            p->sync = PML_SYNC_PS;
        else
            return pml_fail(PML_EFORMAT,
                            "%s: graph attribute sync='%s' must be allreduce or ps (parameter "
                            "servers)",
                            src, P(v));
    }
    if ((v = r->gattr[G_BUCKET])) {
        errno = 0;
        double x = strtod(v, &e);
        if (errno || e == v || *e || !(x > 0) || !(x <= MAX_BUCKET) || v[0] == ' ')
            return pml_fail(PML_EFORMAT,
                            "%s: graph attribute bucket_bytes='%s' must be a number of bytes in "
                            "(0, 1e15] (all-reduce bucket size, e.g. 25000000)",
                            src, P(v));
        p->bucket_bytes = x;
    }
    return PML_OK;
}

static pml_status read_node_cfg(const char *src, const pml_graph *g, int id, const char *config,
                                const char *devices, pml_opcfg *c)
{
    const pml_node *n = &g->nodes[id];
    char why[96];
    if (!config)
        return pml_fail(PML_EFORMAT,
                        "%s: operator '%s' (%s) has no config attribute (e.g. config=\"n=1 c=1 "
                        "h=1\")",
                        src, P(n->name), pml_op_name(n->op));
    if (!parse_config(config, c->deg, why, sizeof why))
        return pml_fail(PML_EFORMAT,
                        "%s: operator '%s' (%s): config='%s' must be like \"n=2 c=1 h=1\" "
                        "(degrees along samples, output channels, output rows): %s",
                        src, P(n->name), pml_op_name(n->op), P(config), why);
    if (!devices)
        return pml_fail(PML_EFORMAT,
                        "%s: operator '%s' (%s) has no devices attribute (the compute device of "
                        "each part, e.g. devices=\"0,1\")",
                        src, P(n->name), pml_op_name(n->op));
    int nd;
    if (!parse_devices(devices, c->dev, &nd, why, sizeof why))
        return pml_fail(PML_EFORMAT,
                        "%s: operator '%s' (%s): devices='%s' must list device indices like "
                        "\"0,1\" or \"0-3\": %s",
                        src, P(n->name), pml_op_name(n->op), P(devices), why);
    const int parts = pml_opcfg_parts(c);
    if (nd != parts)
        return pml_fail(PML_EINVAL,
                        "%s: operator '%s' (%s): config \"n=%d c=%d h=%d\" has %d part%s, but "
                        "devices lists %d device%s (one per part)",
                        src, P(n->name), pml_op_name(n->op), c->deg[0], c->deg[1], c->deg[2], parts,
                        parts == 1 ? "" : "s", nd, nd == 1 ? "" : "s");
    return PML_OK;
}

pml_status pml_plan_from_dot(const pml_dot *d, const pml_plan_read_opts *o, const pml_machine *m,
                             pml_graph *g, pml_plan *p, pml_plan_info *info)
{
    static const pml_plan_read_opts none = {NULL, 0, false};
    pml_plan_info scratch;
    if (!o) o = &none;
    const char *source = d->source ? d->source : "<plan>";
    if (!info) info = &scratch;
    memset(info, 0, sizeof *info);
    memset(p, 0, sizeof *p);
    if (!o->model) {
        if (!g) return pml_fail(PML_EINVAL, "%s: no graph to read the plan's model into", source);
        pml_graph_init(g, NULL);
    } else if (!o->model->finalized) {
        return pml_fail(PML_EINVAL, "%s: model '%s' is not finalised", source, o->model->name);
    }
    pml_graph file;
    const pml_model_dot_ext ext = {
        .kind = "plan", .node_attrs = plan_node_attrs, .graph_attrs = plan_graph_attrs};
    pml_status st = pml_model_from_dot_ext(d, &ext, &file);
    if (st != PML_OK) return st;
    const pml_graph *target = o->model ? o->model : &file;
    raw_plan raw;
    memset(&raw, 0, sizeof raw);
    if (o->model && (st = same_model(source, &file, o->model)) != PML_OK) goto fail;
    if ((st = pml_plan_init(p, target, 1)) != PML_OK) goto fail;
    if (!raw_get(d, target, &raw)) {
        st = pml_fail(PML_ENOMEM, "%s: out of memory", source);
        goto fail;
    }
    if ((st = read_graph_attrs(source, &raw, p, info)) != PML_OK) goto fail;
    if (o->batch > 0 && p->batch != o->batch) {
        st = pml_fail(PML_EINVAL, "%s: the plan is for a global batch of %d, not %d", source,
                      p->batch, o->batch);
        goto fail;
    }
    if (m && !o->any_machine && info->fingerprint[0] &&
        strcmp(info->fingerprint, m->fingerprint) != 0) {
        st = pml_fail(PML_EINVAL,
                      "%s: the plan is for machine '%s' (fingerprint %s), not for machine '%s' "
                      "(fingerprint %s)",
                      source, info->machine[0] ? info->machine : "?", info->fingerprint, P(m->name),
                      m->fingerprint);
        goto fail;
    }
    /* every operator, in topological order: the first fault met reading down the model */
    for (int k = 0; k < target->nnodes; k++) {
        const int id = target->order[k];
        pml_opcfg *c = &p->cfg[id];
        if ((st = read_node_cfg(source, target, id, raw.config[id], raw.devices[id], c)) != PML_OK)
            goto fail;
        if ((st = check_cfg(target, m, p->batch, id, c)) != PML_OK) {
            pml_fail_ctx(st, "%s: ", source);
            goto fail;
        }
    }
    raw_free(&raw);
    if (o->model)
        pml_graph_free(&file);
    else
        *g = file;
    return PML_OK;
fail:
    raw_free(&raw);
    pml_graph_free(&file);
    pml_plan_free(p);
    if (!o->model) pml_graph_init(g, NULL);
    memset(info, 0, sizeof *info);
    return st;
}

pml_status pml_plan_parse(const char *text, size_t len, const char *source,
                          const pml_plan_read_opts *o, const pml_machine *m, pml_graph *g,
                          pml_plan *p, pml_plan_info *info)
{
    pml_dot d;
    memset(p, 0, sizeof *p);
    if (info) memset(info, 0, sizeof *info);
    if ((!o || !o->model) && g) pml_graph_init(g, NULL);
    pml_status st = pml_dot_parse(text, len, source, &d);
    if (st != PML_OK) return st;
    st = pml_plan_from_dot(&d, o, m, g, p, info);
    pml_dot_free(&d);
    return st;
}

pml_status pml_plan_read_ext(const char *path, const pml_plan_read_opts *o, const pml_machine *m,
                             pml_graph *g, pml_plan *p, pml_plan_info *info)
{
    char *text;
    size_t len;
    memset(p, 0, sizeof *p);
    if (info) memset(info, 0, sizeof *info);
    if ((!o || !o->model) && g) pml_graph_init(g, NULL);
    pml_status st = pml_read_file(path, PML_DOT_MAX_BYTES, &text, &len);
    if (st != PML_OK) return st;
    st = pml_plan_parse(text, len, path, o, m, g, p, info);
    free(text);
    return st;
}

pml_status pml_plan_read(const char *path, const pml_graph *g, const pml_machine *m, pml_plan *p)
{
    const pml_plan_read_opts o = {.model = g};
    return pml_plan_read_ext(path, &o, m, NULL, p, NULL);
}

pml_status pml_plan_load(const char *path, pml_graph *g, const pml_machine *m, pml_plan *p)
{
    return pml_plan_read_ext(path, NULL, m, g, p, NULL);
}

/* ---------------------------------------------------------------- writing */

typedef struct writer {
    const pml_plan *p;
} writer;

/* ", config=\"n=2 c=1 h=1\", devices=\"0,1\"": at most 256 devices of 5 digits and a comma,
 * which fits the 2048 bytes models/dot.c gives a node's extra text */
static void node_text(void *ud, int id, char *buf, size_t cap)
{
    const writer *w = ud;
    char cfg[48], dev[6 * PML_MAX_PARTS + 1];
    format_config(&w->p->cfg[id], cfg, sizeof cfg);
    pml_plan_format_devices(w->p->cfg[id].dev, pml_opcfg_parts(&w->p->cfg[id]), dev, sizeof dev);
    snprintf(buf, cap, ", config=\"%s\", devices=\"%s\"", cfg, dev);
}


pml_status pml_plan_format(const pml_plan *p, const pml_graph *g, const pml_machine *m, char **text,
                           size_t *len)
{
    *text = NULL;
    *len = 0;
    if (!g->finalized)
        return pml_fail(PML_EINVAL, "model '%s': finalize the graph before writing a plan",
                        P(g->name));
    if (p->nnodes != g->nnodes || !p->cfg)
        return pml_fail(PML_EINVAL, "the plan has %d operators, model '%s' has %d", p->nnodes,
                        P(g->name), g->nnodes);
    if (p->batch < 1 || p->batch > MAX_BATCH)
        return pml_fail(PML_EINVAL, "the plan's batch %d is not in [1, %d]", p->batch, MAX_BATCH);
    if (!(p->bucket_bytes > 0 && p->bucket_bytes <= MAX_BUCKET))
        return pml_fail(PML_EINVAL, "the plan's bucket_bytes %g is not in (0, 1e15]",
                        p->bucket_bytes);
    if ((unsigned)p->sync > PML_SYNC_PS)
        return pml_fail(PML_EINVAL, "the plan's sync %d is not allreduce or ps", (int)p->sync);
    if (!writable(p->strategy) || !p->strategy[0])
        return pml_fail(PML_EINVAL, "the plan's strategy '%s' cannot be written", P(p->strategy));
    if (m && !writable(m->name))
        return pml_fail(PML_EINVAL,
                        "machine '%s': the name cannot be written in a plan (quote, "
                        "backslash or control character)",
                        P(m->name));
    for (int i = 0; i < g->nnodes; i++) {
        pml_status st = check_cfg(g, m, p->batch, i, &p->cfg[i]);
        if (st != PML_OK) return st;
    }
    /* graph attributes */
    char gtext[512], bucket[64];
    if (p->bucket_bytes == floor(p->bucket_bytes))
        snprintf(bucket, sizeof bucket, "%.0f", p->bucket_bytes);
    else
        snprintf(bucket, sizeof bucket, "\"%.17g\"", p->bucket_bytes);
    size_t gl = 0;
    if (m)
        gl += (size_t)snprintf(gtext, sizeof gtext, "machine=\"%s\", fingerprint=\"%s\", ", m->name,
                               m->fingerprint);
    snprintf(gtext + gl, sizeof gtext - gl, "batch=%d, strategy=\"%s\", sync=%s, bucket_bytes=%s",
             p->batch, p->strategy, p->sync == PML_SYNC_PS ? "ps" : "allreduce", bucket);
    writer w = {p};
    const pml_model_dot_ext ext = {
        .kind = "plan", .graph_text = gtext, .node_text = node_text, .ud = &w};
    char *model;
    size_t mlen;
    pml_status st = pml_model_format_dot_ext(g, &ext, &model, &mlen);
    if (st != PML_OK) return st;
    /* a header that explains the plan part and names the devices */
    FILE *f = open_memstream(text, len);
    if (!f) {
        free(model);
        return pml_fail(PML_ENOMEM, "out of memory writing a plan");
    }
    char how[64] = "parameter servers";
    if (p->sync == PML_SYNC_ALLREDUCE) {
        char bb[32];
        pml_fmt_si(bb, sizeof bb, p->bucket_bytes, "B");
        snprintf(how, sizeof how, "all-reduce in %s buckets", bb);
    }
    fprintf(f, "// pml plan of model '%s'", P(g->name));
    if (m) fprintf(f, " for machine '%s' (%d compute devices)", P(m->name), m->ncompute);
    fprintf(f, ",\n// global batch %d, strategy %s, gradients synchronised by %s.\n", p->batch,
            P(p->strategy), how);
    fputs("// Per operator: config=\"n=N c=C h=H\" splits it into N x C x H parts along samples,\n"
          "// output channels and output rows; devices=\"...\" gives the compute device of each\n"
          "// part, parts in (n, c, h) row-major order (h fastest), a-b for a range. Edit them\n"
          "// and run pml simulate on the file. Format: planner/planner.h.\n",
          f);
    if (m) {
        fprintf(f, "// Compute devices of machine '%s':\n//  ", P(m->name));
        int col = 4;
        for (int c = 0; c < m->ncompute; c++) {
            char item[96];
            int n = snprintf(item, sizeof item, " %d=%s", c, P(m->dev[m->compute[c]].name));
            if (col + n > 96) {
                fputs("\n//  ", f);
                col = 4;
            }
            fputs(item, f);
            col += n;
        }
        fputc('\n', f);
    }
    fwrite(model, 1, mlen, f);
    free(model);
    if (fclose(f) != 0 || !*text) {
        free(*text);
        *text = NULL;
        *len = 0;
        return pml_fail(PML_ENOMEM, "out of memory writing a plan");
    }
    return PML_OK;
}

pml_status pml_plan_write(const char *path, const pml_plan *p, const pml_graph *g,
                          const pml_machine *m)
{
    char *text;
    size_t len;
    pml_status st = pml_plan_format(p, g, m, &text, &len);
    if (st != PML_OK) return pml_fail_ctx(st, "%s: ", path);
    st = pml_write_file_atomic(path, text, len);
    free(text);
    return st;
}
