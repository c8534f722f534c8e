/* pml — planner: the machine model. Devices and full-duplex links from five sources (this machine,
 * measured: machine_this.c; named machines and cluster DOT files: machine_file.c; hwloc synthetic
 * strings and XML exports: here), validation, routes between compute devices, the fingerprint,
 * and loading a machine by spec.
 *
 * ---------------------------------------------------------------- devices of a CPU topology
 * A hwloc topology (this machine, "synthetic:DESC", FILE.xml, or a cluster node's topology=)
 * becomes one CPU device per core ("core0", ...: hwloc's logical core index; PUs when the
 * topology has no cores), one hub per package ("pkg0/mem": the socket's memory) linked to each of
 * its cores, and a link between every two packages (UPI). Each core's mem_bytes is its share of
 * the machine's memory (the NUMA nodes' sizes over the cores; on this machine the system's memory
 * when that is more), so a plan that fits every core fits the machine. Numbers:
 *   this machine   measured (machine_this.c).
 *   other sources  (not present) 80 GFLOP/s per core, 100 GB/s memory bandwidth per package
 *                  shared by its cores (mem_bw = 100 GB/s / cores of the package), core links
 *                  10 GB/s, inter-package links 40 GB/s; memory as hwloc gives it (a synthetic
 *                  topology has 1 GiB per NUMA node unless it says numa:1(memory=256GB)).
 *   latencies      0.1 us per core link (core to core through the package hub: 0.2 us) and per
 *                  inter-package link. */
#include "machine_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define P(s) pml_dot_brief(s)

const char *const pml__dev_kind_names[PML_DEV_KIND_COUNT] = {"cpu", "gpu", "hub"};
_Static_assert(sizeof pml__dev_kind_names / sizeof pml__dev_kind_names[0] == PML_DEV_KIND_COUNT,
               "device kinds");

/* ---------------------------------------------------------------- building */

int pml__add_dev(pml__builder *b, pml_dev_kind kind, int node, const char *fmt, ...)
{
    pml_machine *m = b->m;
    if (m->ndev >= MAX_DEV) {
        pml_fail(PML_EFORMAT, "%s: more than %d devices", b->src, MAX_DEV);
        return -1;
    }
    if (m->ndev == b->devcap) {
        int cap = b->devcap ? 2 * b->devcap : 16;
        pml_device *d = realloc(m->dev, (size_t)cap * sizeof *d);
        if (!d) {
            pml_fail(PML_ENOMEM, "%s: out of memory", b->src);
            return -1;
        }
        m->dev = d;
        b->devcap = cap;
    }
    pml_device *d = &m->dev[m->ndev];
    memset(d, 0, sizeof *d);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->name, sizeof d->name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof d->name) {
        pml_fail(PML_EFORMAT, "%s: device name '%s...' is longer than %zu characters", b->src,
                 P(d->name), sizeof d->name - 1);
        return -1;
    }
    d->kind = kind;
    d->node = node;
    d->cores = kind == PML_DEV_CPU ? 1 : 0;
    return m->ndev++;
}

pml_status pml__add_link(pml__builder *b, int a, int c, double bw, double lat)
{
    pml_machine *m = b->m;
    if (m->nlink >= MAX_LINK)
        return pml_fail(PML_EFORMAT, "%s: more than %d links", b->src, MAX_LINK);
    if (m->nlink == b->linkcap) {
        int cap = b->linkcap ? 2 * b->linkcap : 16;
        pml_link *l = realloc(m->link, (size_t)cap * sizeof *l);
        if (!l) return pml_fail(PML_ENOMEM, "%s: out of memory", b->src);
        m->link = l;
        b->linkcap = cap;
    }
    m->link[m->nlink++] = (pml_link){a, c, bw, lat};
    return PML_OK;
}

/* ---------------------------------------------------------------- CPU topologies (hwloc) */


void pml__cpu_topo_free(pml__cpu_topo *t)
{
    free(t->core_pkg);
    free(t->core_index);
    memset(t, 0, sizeof *t);
}

/* Summarises a loaded topology. */
pml_status pml__cpu_topo_from_hwloc(hwloc_topology_t topo, const char *src, pml__cpu_topo *t)
{
    memset(t, 0, sizeof *t);
    hwloc_obj_type_t unit = HWLOC_OBJ_CORE;
    int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (n <= 0) {
        unit = HWLOC_OBJ_PU;
        n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    }
    if (n <= 0) return pml_fail(PML_EFORMAT, "%s: the topology has no cores", src);
    if (n > MAX_COMPUTE)
        return pml_fail(PML_EFORMAT, "%s: the topology has %d cores (pml models at most %d)", src,
                        n, MAX_COMPUTE);
    int npkg = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    t->npkg = npkg > 0 ? npkg : 1;
    t->ncore = n;
    t->core_pkg = calloc((size_t)n, sizeof *t->core_pkg);
    t->core_index = calloc((size_t)n, sizeof *t->core_index);
    if (!t->core_pkg || !t->core_index) {
        pml__cpu_topo_free(t);
        return pml_fail(PML_ENOMEM, "%s: out of memory", src);
    }
    for (int i = 0; i < n; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, unit, (unsigned)i);
        hwloc_obj_t pkg = o ? hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, o) : NULL;
        t->core_index[i] = o ? (int)o->logical_index : i;
        t->core_pkg[i] = pkg && (int)pkg->logical_index < t->npkg ? (int)pkg->logical_index : 0;
    }
    int nnuma = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    for (int i = 0; i < nnuma; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
        if (o && o->attr) t->mem += (double)o->attr->numanode.local_memory;
    }
    if (t->mem == 0) t->mem = (double)hwloc_get_root_obj(topo)->total_memory;
    hwloc_obj_t pkg0 = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
    const char *model = pkg0 ? hwloc_obj_get_info_by_name(pkg0, "CPUModel") : NULL;
    if (!model) model = hwloc_obj_get_info_by_name(hwloc_get_root_obj(topo), "CPUModel");
    snprintf(t->model, sizeof t->model, "%s", model ? model : "");
    return PML_OK;
}

/* The number of leaves a synthetic description asks for (product of its arities), capped. */
static double synthetic_size(const char *desc)
{
    double n = 1;
    const char *p = desc;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        const char *tok = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') p++;
        const char *num = NULL;
        if (*tok >= '0' && *tok <= '9')
            num = tok;
        else
            for (const char *q = tok; q < p; q++)
                if (*q == ':') {
                    num = q + 1;
                    break;
                }
        if (num && *num >= '0' && *num <= '9') {
            double a = strtod(num, NULL);
            if (a > 1) n *= a;
        }
        if (n > 1e9) return n;
    }
    return n;
}

/* Loads a hwloc synthetic topology ("pack:2 core:8 pu:1"). \p what names it in messages. */
pml_status pml__cpu_topo_synthetic(const char *desc, const char *what, pml__cpu_topo *t)
{
    memset(t, 0, sizeof *t);
    if (!*desc)
        return pml_fail(PML_EFORMAT,
                        "%s: empty hwloc synthetic description (e.g. \"synthetic:pack:2 core:8 "
                        "pu:1\")",
                        what);
    double leaves = synthetic_size(desc);
    if (leaves > MAX_PUS)
        return pml_fail(PML_EFORMAT,
                        "%s: the synthetic topology '%s' has %.0f processing units (at most %d)",
                        what, P(desc), leaves, MAX_PUS);
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) return pml_fail(PML_ENOMEM, "%s: out of memory", what);
    pml_status st;
    if (hwloc_topology_set_synthetic(topo, desc) != 0)
        st = pml_fail(PML_EFORMAT,
                      "%s: '%s' is not a valid hwloc synthetic description (e.g. \"pack:2 core:8 "
                      "pu:1\": levels of type:count, top to bottom)",
                      what, P(desc));
    else if (hwloc_topology_load(topo) != 0)
        st = pml_fail(PML_EFORMAT, "%s: hwloc could not build the synthetic topology '%s'", what,
                      P(desc));
    else
        st = pml__cpu_topo_from_hwloc(topo, what, t);
    hwloc_topology_destroy(topo);
    return st;
}

/* Loads a hwloc XML export. */
pml_status pml__cpu_topo_xml(const char *path, pml__cpu_topo *t)
{
    memset(t, 0, sizeof *t);
    char *text;
    size_t len;
    pml_status st = pml_read_file(path, MAX_XML, &text, &len);
    if (st != PML_OK) return st;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
        i++;
    if (len == 0 || text[i] != '<' || memchr(text, 0, len) || !strstr(text, "<topology")) {
        free(text);
        return pml_fail(PML_EFORMAT, "%s: not a hwloc XML topology (no <topology> element)", path);
    }
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) {
        free(text);
        return pml_fail(PML_ENOMEM, "%s: out of memory", path);
    }
    if (hwloc_topology_set_xmlbuffer(topo, text, (int)len + 1) != 0 ||
        hwloc_topology_load(topo) != 0)
        st = pml_fail(PML_EFORMAT, "%s: malformed hwloc XML topology (hwloc cannot read it)", path);
    else
        st = pml__cpu_topo_from_hwloc(topo, path, t);
    hwloc_topology_destroy(topo);
    free(text);
    return st;
}


const pml__cpu_params pml__cpu_defaults = {DEF_CPU_FLOPS, DEF_PKG_MEM_BW, 0,           DEF_CORE_BW,
                                        DEF_CORE_LAT,  DEF_UPI_BW,     DEF_UPI_LAT, false};

/* Adds the devices and links of a CPU topology; pkg_hub[] (npkg entries, caller's) receives the
 * package hubs' ids. \p prefix starts every name ("" or "node3/"). */
pml_status pml__add_cpu_part(pml__builder *b, const pml__cpu_topo *t, const pml__cpu_params *cp, int node,
                               const char *prefix, int *pkg_hub)
{
    pml_status st;
    int *pkg_cores = calloc((size_t)t->npkg, sizeof *pkg_cores);
    int first = b->m->ndev;
    if (!pkg_cores) return pml_fail(PML_ENOMEM, "%s: out of memory", b->src);
    for (int i = 0; i < t->ncore; i++) pkg_cores[t->core_pkg[i]]++;
    for (int i = 0; i < t->ncore; i++) {
        int id = pml__add_dev(b, PML_DEV_CPU, node, "%score%d", prefix, t->core_index[i]);
        if (id < 0) {
            free(pkg_cores);
            return PML_EFORMAT;
        }
        pml_device *d = &b->m->dev[id];
        d->flops = cp->flops;
        d->mem_bw =
            cp->core_mem_bw > 0 ? cp->core_mem_bw : cp->pkg_mem_bw / pkg_cores[t->core_pkg[i]];
        d->mem_bytes = t->mem / t->ncore;
        d->cores = 1;
        d->first_core = t->core_index[i];
        d->present = cp->present;
    }
    free(pkg_cores);
    for (int p = 0; p < t->npkg; p++)
        if ((pkg_hub[p] = pml__add_dev(b, PML_DEV_HUB, node, "%spkg%d/mem", prefix, p)) < 0)
            return PML_EFORMAT;
    for (int i = 0; i < t->ncore; i++)
        if ((st = pml__add_link(b, first + i, pkg_hub[t->core_pkg[i]], cp->core_bw, cp->core_lat)) !=
            PML_OK)
            return st;
    for (int p = 0; p < t->npkg; p++)
        for (int q = p + 1; q < t->npkg; q++)
            if ((st = pml__add_link(b, pkg_hub[p], pkg_hub[q], cp->upi_bw, cp->upi_lat)) != PML_OK)
                return st;
    return PML_OK;
}

pml_status pml__machine_from_cpu_topo(pml_machine *m, const char *name, const pml__cpu_topo *t,
                                        const pml__cpu_params *cp, const char *src)
{
    pml__builder b = {m, 0, 0, src};
    snprintf(m->name, sizeof m->name, "%s", name);
    int *hubs = calloc((size_t)t->npkg, sizeof *hubs);
    if (!hubs) return pml_fail(PML_ENOMEM, "%s: out of memory", src);
    pml_status st = pml__add_cpu_part(&b, t, cp, 0, "", hubs);
    free(hubs);
    return st;
}

/* ---------------------------------------------------------------- fingerprint */

typedef struct fnv {
    uint64_t h;
} fnv;

static void fnv_printf(fnv *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fnv_printf(fnv *f, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) f->h = pml_hash(f->h, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* FNV-1a 64 over a canonical description: devices (name, kind, node, numbers, cores, present,
 * parameter server) and links in id order. Numbers measured on this machine (present devices and
 * their links) and its memory size are left out and the CPU model put in, so that the fingerprint
 * changes with the hardware only. */
void pml__machine_fingerprint(pml_machine *m)
{
    fnv f = {PML_HASH_INIT};
    bool here = false;
    for (int i = 0; i < m->ndev; i++) here |= m->dev[i].present;
    fnv_printf(&f, "pml-machine 1\n");
    if (here) fnv_printf(&f, "cpu_model %s\n", m->cpu_model);
    if (m->cores_of[0]) fnv_printf(&f, "cores_of %s\n", m->cores_of); /* others keep theirs */
    for (int i = 0; i < m->ndev; i++) {
        const pml_device *d = &m->dev[i];
        fnv_printf(&f, "dev %s %d %d", d->name, (int)d->kind, d->node);
        if (d->kind != PML_DEV_HUB) {
            /* on this machine the memory hwloc reports moves (a VM's balloon): left out too */
            if (d->present)
                fnv_printf(&f, " measured %d", d->first_core);
            else
                fnv_printf(&f, " %.17g %.17g %.17g", d->flops, d->mem_bw, d->mem_bytes);
            fnv_printf(&f, " %d %d", d->kind == PML_DEV_CPU ? d->cores : 0, d->present);
            if (d->ps) fnv_printf(&f, " ps"); /* only when set: other machines keep theirs */
        }
        fnv_printf(&f, "\n");
    }
    for (int l = 0; l < m->nlink; l++) {
        const pml_link *k = &m->link[l];
        if (m->dev[k->a].present || m->dev[k->b].present)
            fnv_printf(&f, "link %d %d measured\n", k->a, k->b); /* bw and latency measured */
        else
            fnv_printf(&f, "link %d %d %.17g %.17g\n", k->a, k->b, k->bw, k->latency);
    }
    snprintf(m->fingerprint, sizeof m->fingerprint, "%016llx", (unsigned long long)f.h);
}

/* ---------------------------------------------------------------- finalize: checks and routes */

static void free_derived(pml_machine *m)
{
    free(m->compute);
    free(m->compute_of);
    free(m->route_off);
    free(m->route_len);
    free(m->route_res);
    free(m->route_bw);
    free(m->route_lat);
    m->compute = m->compute_of = m->route_off = m->route_len = m->route_res = NULL;
    m->route_bw = m->route_lat = NULL;
    m->ncompute = m->nserver = 0;
}

static int cmp_name(const void *a, const void *b, void *ud)
{
    const pml_device *dev = ud;
    return strcmp(dev[*(const int *)a].name, dev[*(const int *)b].name);
}

static int cmp_pair(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

/* Checks everything finalize relies on; messages start with src. */
static pml_status check_machine(const pml_machine *m, const char *src)
{
    if (m->ndev <= 0 || !m->dev)
        return pml_fail(PML_EFORMAT, "%s: the machine has no devices", src);
    if (m->ndev > MAX_DEV)
        return pml_fail(PML_EFORMAT, "%s: %d devices (at most %d)", src, m->ndev, MAX_DEV);
    if (m->nlink < 0 || m->nlink > MAX_LINK || (m->nlink && !m->link))
        return pml_fail(PML_EFORMAT, "%s: %d links (at most %d)", src, m->nlink, MAX_LINK);
    int ncompute = 0;
    for (int i = 0; i < m->ndev; i++) {
        const pml_device *d = &m->dev[i];
        if (!memchr(d->name, 0, sizeof d->name) || !d->name[0])
            return pml_fail(PML_EFORMAT, "%s: device %d has an empty or unterminated name", src, i);
        if ((unsigned)d->kind >= PML_DEV_KIND_COUNT)
            return pml_fail(PML_EFORMAT, "%s: device '%s' has an unknown kind %d", src, P(d->name),
                            (int)d->kind);
        if (d->node < -1)
            return pml_fail(PML_EFORMAT, "%s: device '%s': node %d must be >= -1", src, P(d->name),
                            d->node);
        if (d->kind == PML_DEV_HUB && d->ps)
            return pml_fail(PML_EFORMAT,
                            "%s: device '%s' is a hub: it runs no task and cannot be a parameter "
                            "server",
                            src, P(d->name));
        if (d->kind == PML_DEV_HUB) continue;
        ncompute++;
        const char *k = pml__dev_kind_names[d->kind];
        if (!(d->flops > 0) || !isfinite(d->flops))
            return pml_fail(PML_EFORMAT, "%s: device '%s' (%s): flops=%g must be > 0 and finite",
                            src, P(d->name), k, d->flops);
        if (!(d->mem_bw > 0) || !isfinite(d->mem_bw))
            return pml_fail(PML_EFORMAT, "%s: device '%s' (%s): mem_bw=%g must be > 0 and finite",
                            src, P(d->name), k, d->mem_bw);
        if (!(d->mem_bytes >= 0) || !isfinite(d->mem_bytes))
            return pml_fail(PML_EFORMAT,
                            "%s: device '%s' (%s): mem_bytes=%g must be >= 0 and finite", src,
                            P(d->name), k, d->mem_bytes);
        if (d->kind == PML_DEV_CPU && d->cores < 1)
            return pml_fail(PML_EFORMAT, "%s: device '%s' (cpu): cores=%d must be >= 1", src,
                            P(d->name), d->cores);
    }
    if (ncompute == 0)
        return pml_fail(PML_EFORMAT, "%s: no compute device (every device is a hub)", src);
    if (ncompute > MAX_COMPUTE)
        return pml_fail(PML_EFORMAT, "%s: %d compute devices (at most %d)", src, ncompute,
                        MAX_COMPUTE);
    /* unique names */
    int *ord = malloc((size_t)m->ndev * sizeof *ord);
    if (!ord) return pml_fail(PML_ENOMEM, "%s: out of memory", src);
    for (int i = 0; i < m->ndev; i++) ord[i] = i;
    qsort_r(ord, (size_t)m->ndev, sizeof *ord, cmp_name, m->dev);
    for (int i = 1; i < m->ndev; i++)
        if (strcmp(m->dev[ord[i - 1]].name, m->dev[ord[i]].name) == 0) {
            pml_status st =
                pml_fail(PML_EFORMAT, "%s: two devices are called '%s' (%d and %d)", src,
                         P(m->dev[ord[i]].name), ord[i - 1] < ord[i] ? ord[i - 1] : ord[i],
                         ord[i - 1] < ord[i] ? ord[i] : ord[i - 1]);
            free(ord);
            return st;
        }
    free(ord);
    /* links */
    for (int l = 0; l < m->nlink; l++) {
        const pml_link *k = &m->link[l];
        if (k->a < 0 || k->a >= m->ndev || k->b < 0 || k->b >= m->ndev)
            return pml_fail(PML_EFORMAT,
                            "%s: link %d joins device %d and %d, but there are %d "
                            "devices",
                            src, l, k->a, k->b, m->ndev);
        const char *a = P(m->dev[k->a].name), *b = P(m->dev[k->b].name);
        if (k->a == k->b)
            return pml_fail(PML_EFORMAT, "%s: link '%s' -- '%s' joins a device to itself", src, a,
                            b);
        if (!(k->bw > 0) || !isfinite(k->bw))
            return pml_fail(PML_EFORMAT,
                            "%s: link '%s' -- '%s': bandwidth %g must be > 0 and "
                            "finite",
                            src, a, b, k->bw);
        if (!(k->latency >= 0) || !isfinite(k->latency))
            return pml_fail(PML_EFORMAT,
                            "%s: link '%s' -- '%s': latency %g must be >= 0 and "
                            "finite",
                            src, a, b, k->latency);
    }
    if (m->nlink > 1) {
        uint64_t *pairs = malloc((size_t)m->nlink * sizeof *pairs);
        if (!pairs) return pml_fail(PML_ENOMEM, "%s: out of memory", src);
        for (int l = 0; l < m->nlink; l++) {
            uint64_t a = (uint64_t)m->link[l].a, b = (uint64_t)m->link[l].b;
            pairs[l] = a < b ? a << 32 | b : b << 32 | a;
        }
        qsort(pairs, (size_t)m->nlink, sizeof *pairs, cmp_pair);
        for (int l = 1; l < m->nlink; l++)
            if (pairs[l] == pairs[l - 1]) {
                pml_status st = pml_fail(
                    PML_EFORMAT,
                    "%s: devices '%s' and '%s' are linked twice (give one link with the total "
                    "bandwidth)",
                    src, P(m->dev[pairs[l] >> 32].name), P(m->dev[pairs[l] & 0xffffffffu].name));
                free(pairs);
                return st;
            }
        free(pairs);
    }
    return PML_OK;
}

typedef struct router {
    const pml_machine *m;
    int *adj_off, *adj;      /* incident links of each device (CSR), in link order */
    int *dist, *order, *par; /* per source */
    double *wide, *lat, *thr;
    int res_len, res_cap;
} router;

static int other_end(const pml_link *k, int v)
{
    return k->a == v ? k->b : k->a;
}

/* Routes from compute device s (compute index i) to every other: fewest hops, then the largest
 * bottleneck bandwidth, then the smallest summed latency. The widest of the shortest routes is a
 * dynamic programme over the BFS layers (min is monotone); the lowest latency among the shortest
 * routes with bottleneck >= B is another, run once per distinct bottleneck B of the targets. */
static pml_status route_from(router *r, pml_machine *m, int i, const char *src)
{
    const int V = m->ndev, C = m->ncompute, s = m->compute[i];
    for (int v = 0; v < V; v++) r->dist[v] = -1;
    int head = 0, tail = 0;
    r->dist[s] = 0;
    r->order[tail++] = s;
    while (head < tail) {
        int u = r->order[head++];
        for (int e = r->adj_off[u]; e < r->adj_off[u + 1]; e++) {
            int v = other_end(&m->link[r->adj[e]], u);
            if (r->dist[v] < 0) {
                r->dist[v] = r->dist[u] + 1;
                r->order[tail++] = v;
            }
        }
    }
    const int nreach = tail;
    for (int j = 0; j < C; j++)
        if (r->dist[m->compute[j]] < 0)
            return pml_fail(PML_EFORMAT,
                            "%s: compute devices '%s' and '%s' are not connected (no chain of "
                            "links joins them)",
                            src, P(m->dev[s].name), P(m->dev[m->compute[j]].name));
    /* widest shortest routes */
    r->wide[s] = INFINITY;
    for (int k = 1; k < nreach; k++) {
        int v = r->order[k];
        double w = 0;
        for (int e = r->adj_off[v]; e < r->adj_off[v + 1]; e++) {
            const pml_link *l = &m->link[r->adj[e]];
            int u = other_end(l, v);
            if (r->dist[u] == r->dist[v] - 1) {
                double x = fmin(r->wide[u], l->bw);
                if (x > w) w = x;
            }
        }
        r->wide[v] = w;
    }
    int nthr = 0;
    for (int j = 0; j < C; j++)
        if (j != i) r->thr[nthr++] = r->wide[m->compute[j]];
    qsort(r->thr, (size_t)nthr, sizeof *r->thr, cmp_desc);
    int u_thr = 0;
    for (int k = 0; k < nthr; k++)
        if (u_thr == 0 || r->thr[k] != r->thr[u_thr - 1]) r->thr[u_thr++] = r->thr[k];
    for (int t = 0; t < u_thr; t++) {
        const double B = r->thr[t];
        for (int k = 0; k < nreach; k++) {
            r->lat[r->order[k]] = INFINITY;
            r->par[r->order[k]] = -1;
        }
        r->lat[s] = 0;
        for (int k = 1; k < nreach; k++) {
            int v = r->order[k];
            for (int e = r->adj_off[v]; e < r->adj_off[v + 1]; e++) {
                const pml_link *l = &m->link[r->adj[e]];
                int u = other_end(l, v);
                if (r->dist[u] != r->dist[v] - 1 || l->bw < B || r->lat[u] == INFINITY) continue;
                if (r->lat[u] + l->latency < r->lat[v]) {
                    r->lat[v] = r->lat[u] + l->latency;
                    r->par[v] = r->adj[e];
                }
            }
        }
        for (int j = 0; j < C; j++) {
            int d = m->compute[j];
            if (j == i || r->wide[d] != B) continue;
            int len = r->dist[d];
            if (r->res_len + len > r->res_cap) {
                int cap = r->res_cap ? r->res_cap : 256;
                while (cap < r->res_len + len) cap *= 2;
                int *res = realloc(m->route_res, (size_t)cap * sizeof *res);
                if (!res) return pml_fail(PML_ENOMEM, "%s: out of memory", src);
                m->route_res = res;
                r->res_cap = cap;
            }
            const int k = i * C + j;
            m->route_off[k] = r->res_len;
            m->route_len[k] = len;
            double bw = INFINITY, lat = 0;
            int v = d;
            for (int h = len - 1; h >= 0; h--) {
                int li = r->par[v];
                assert(li >= 0);
                const pml_link *l = &m->link[li];
                int u = other_end(l, v);
                m->route_res[r->res_len + h] = 2 * li + (l->a == u ? 0 : 1);
                bw = fmin(bw, l->bw);
                lat += l->latency;
                v = u;
            }
            assert(v == s);
            r->res_len += len;
            m->route_bw[k] = bw;
            m->route_lat[k] = lat;
        }
    }
    return PML_OK;
}

pml_status pml__machine_finalize_src(pml_machine *m, const char *src)
{
    free_derived(m);
    pml_status st = check_machine(m, src);
    if (st != PML_OK) return st;
    const int V = m->ndev;
    int C = 0;
    for (int i = 0; i < V; i++) C += m->dev[i].kind != PML_DEV_HUB;
    const size_t CC = (size_t)C * (size_t)C;
    m->compute = malloc((size_t)C * sizeof *m->compute);
    m->compute_of = malloc((size_t)V * sizeof *m->compute_of);
    m->route_off = calloc(CC, sizeof *m->route_off);
    m->route_len = calloc(CC, sizeof *m->route_len);
    m->route_bw = malloc(CC * sizeof *m->route_bw);
    m->route_lat = calloc(CC, sizeof *m->route_lat);
    router r = {m, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0};
    r.adj_off = calloc((size_t)V + 1, sizeof *r.adj_off);
    r.adj = malloc((size_t)(2 * m->nlink + 1) * sizeof *r.adj);
    r.dist = malloc((size_t)V * sizeof *r.dist);
    r.order = malloc((size_t)V * sizeof *r.order);
    r.par = malloc((size_t)V * sizeof *r.par);
    r.wide = malloc((size_t)V * sizeof *r.wide);
    r.lat = malloc((size_t)V * sizeof *r.lat);
    r.thr = malloc((size_t)C * sizeof *r.thr);
    if (!m->compute || !m->compute_of || !m->route_off || !m->route_len || !m->route_bw ||
        !m->route_lat || !r.adj_off || !r.adj || !r.dist || !r.order || !r.par || !r.wide ||
        !r.lat || !r.thr) {
        st = pml_fail(PML_ENOMEM, "%s: out of memory", src);
        goto done;
    }
    m->ncompute = C;
    for (int i = 0, c = 0; i < V; i++) {
        m->compute_of[i] = m->dev[i].kind == PML_DEV_HUB ? -1 : c;
        if (m->dev[i].kind != PML_DEV_HUB) m->compute[c++] = i;
        m->nserver += m->dev[i].ps;
    }
    for (size_t k = 0; k < CC; k++) m->route_bw[k] = INFINITY;
    for (int l = 0; l < m->nlink; l++) r.adj_off[m->link[l].a + 1]++, r.adj_off[m->link[l].b + 1]++;
    for (int v = 0; v < V; v++) r.adj_off[v + 1] += r.adj_off[v];
    for (int v = 0; v < V; v++) r.dist[v] = r.adj_off[v]; /* fill cursor */
    for (int l = 0; l < m->nlink; l++) {
        r.adj[r.dist[m->link[l].a]++] = l;
        r.adj[r.dist[m->link[l].b]++] = l;
    }
    for (int i = 0; i < C && st == PML_OK; i++) st = route_from(&r, m, i, src);
    if (st == PML_OK) pml__machine_fingerprint(m);
done:
    free(r.adj_off);
    free(r.adj);
    free(r.dist);
    free(r.order);
    free(r.par);
    free(r.wide);
    free(r.lat);
    free(r.thr);
    if (st != PML_OK) free_derived(m);
    return st;
}

pml_status pml_machine_finalize(pml_machine *m)
{
    char src[96];
    snprintf(src, sizeof src, "machine '%s'", P(m->name));
    return pml__machine_finalize_src(m, src);
}

pml_status pml_machine_first_cores(const pml_machine *m, int n, pml_machine *out)
{
    return pml_machine_some_cores(m, 0, n, out);
}

pml_status pml_machine_some_cores(const pml_machine *m, int first, int n, pml_machine *out)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || first < 0 || first + n > m->ncompute)
        return pml_fail(PML_EINVAL, "machine '%s' has %d compute devices; %d from device %d asked for",
                        m->name, m->ncompute, n, first);
    int *map = malloc((size_t)m->ndev * sizeof *map);
    out->dev = calloc((size_t)m->ndev, sizeof *out->dev);
    out->link = calloc((size_t)(m->nlink ? m->nlink : 1), sizeof *out->link);
    if (!map || !out->dev || !out->link) {
        free(map);
        pml_machine_free(out);
        return pml_fail(PML_ENOMEM, "out of memory");
    }
    for (int d = 0; d < m->ndev; d++) {
        map[d] = -1;
        bool keep = m->dev[d].kind == PML_DEV_HUB ||
                    (m->compute_of[d] >= first && m->compute_of[d] < first + n);
        if (keep) {
            map[d] = out->ndev;
            out->dev[out->ndev++] = m->dev[d];
        }
    }
    for (int l = 0; l < m->nlink; l++)
        if (map[m->link[l].a] >= 0 && map[m->link[l].b] >= 0) {
            out->link[out->nlink] = m->link[l];
            out->link[out->nlink].a = map[m->link[l].a];
            out->link[out->nlink].b = map[m->link[l].b];
            out->nlink++;
        }
    free(map);
    if (first == 0)
        snprintf(out->name, sizeof out->name, "%.50s:%d", m->name, n);
    else
        snprintf(out->name, sizeof out->name, "%.40s:%d-%d", m->name, first, first + n - 1);
    memcpy(out->cpu_model, m->cpu_model, sizeof out->cpu_model);
    out->measured = m->measured;
    out->busy = m->busy;
    out->handoff = m->handoff;
    out->xcore_bw = m->xcore_bw;
    out->xshared_bw = m->xshared_bw;
    out->xupdate_bw = m->xupdate_bw;
    out->core_cache = m->core_cache;
    memcpy(out->cores_of, m->cores_of, sizeof out->cores_of);
    pml_status st = pml_machine_finalize(out);
    if (st != PML_OK) pml_machine_free(out);
    return st;
}

void pml_machine_free(pml_machine *m)
{
    if (!m) return;
    free_derived(m);
    free(m->dev);
    free(m->link);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- loading */

static bool ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcasecmp(s + n - k, suffix) == 0;
}

static pml_status load_dot_file(const char *path, pml_machine *m)
{
    pml_dot d;
    pml_status st = pml_dot_read(path, &d);
    if (st != PML_OK) return st;
    st = pml_machine_from_dot(&d, m);
    pml_dot_free(&d);
    return st;
}

static pml_status load_xml_file(const char *path, pml_machine *m)
{
    pml__cpu_topo t;
    pml_status st = pml__cpu_topo_xml(path, &t);
    if (st != PML_OK) return st;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
    if (!name[0] || !pml_dot_name_ok(name)) snprintf(name, sizeof name, "xml");
    st = pml__machine_from_cpu_topo(m, name, &t, &pml__cpu_defaults, path);
    pml__cpu_topo_free(&t);
    return st == PML_OK ? pml__machine_finalize_src(m, path) : st;
}

bool pml_machine_is_spec(const char *spec)
{
    if (!spec || !*spec || strcmp(spec, "this") == 0 || strncmp(spec, "synthetic:", 10) == 0)
        return true;
    return pml__named_machine(spec) >= 0;
}

static pml_status load_spec(const char *spec, pml_machine *m)
{
    if (!spec || !*spec || strcmp(spec, "this") == 0) return pml_machine_load_this(m, NULL);
    if (strncmp(spec, "this:", 5) == 0) { /* this machine's first N cores (measured as this) */
        char *end;
        long n = strtol(spec + 5, &end, 10);
        if (end == spec + 5 || *end || n < 1 || n > 4096)
            return pml_fail(PML_EINVAL, "machine '%s': this:N takes a number of cores, 1 or more",
                            P(spec));
        pml_machine all;
        pml_status st = pml_machine_load_this(&all, NULL);
        if (st != PML_OK) return st;
        if (n > all.ncompute) {
            st = pml_fail(PML_EINVAL, "machine '%s': this machine has %d cores", P(spec),
                          all.ncompute);
            pml_machine_free(&all);
            return st;
        }
        st = pml_machine_first_cores(&all, (int)n, m);
        pml_machine_free(&all);
        return st;
    }
    int k = pml__named_machine(spec);
    if (k >= 0) return pml__load_named(k, m);
    if (strncmp(spec, "synthetic:", 10) == 0) {
        pml__cpu_topo t;
        char what[128];
        snprintf(what, sizeof what, "machine '%s'", P(spec));
        pml_status st = pml__cpu_topo_synthetic(spec + 10, what, &t);
        if (st != PML_OK) return st;
        st = pml__machine_from_cpu_topo(m, "synthetic", &t, &pml__cpu_defaults, what);
        if (st == PML_OK) snprintf(m->name, sizeof m->name, "%s", spec);
        pml__cpu_topo_free(&t);
        return st == PML_OK ? pml__machine_finalize_src(m, what) : st;
    }
    if (ends_with_ci(spec, ".xml")) return load_xml_file(spec, m);
    if (ends_with_ci(spec, ".dot") || ends_with_ci(spec, ".gv")) return load_dot_file(spec, m);
    struct stat sb;
    if (strchr(spec, '/') || stat(spec, &sb) == 0) {
        /* a file without a telling extension: hwloc XML starts with '<' */
        char *text;
        size_t len;
        pml_status st = pml_read_file(spec, PML_DOT_MAX_BYTES, &text, &len);
        if (st != PML_OK) return st;
        size_t i = strspn(text, " \t\r\n");
        bool xml = text[i] == '<';
        free(text);
        return xml ? load_xml_file(spec, m) : load_dot_file(spec, m);
    }
    char known[256] = "this";
    for (const char *const *n = pml_machine_names(); *n; n++)
        snprintf(known + strlen(known), sizeof known - strlen(known), ", %s", *n);
    return pml_fail(PML_EUNKNOWN,
                    "unknown machine '%s' (known: %s; or synthetic:DESC, FILE.xml, FILE.dot)",
                    P(spec), known);
}

pml_status pml_machine_load(const char *spec, pml_machine *m)
{
    memset(m, 0, sizeof *m);
    pml_status st = load_spec(spec, m);
    if (st != PML_OK) pml_machine_free(m);
    return st;
}
