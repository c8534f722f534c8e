/* pml — planner: the machine model. Devices and full-duplex links from five sources (this machine
 * through hwloc with measured numbers cached on disk, named machines, hwloc synthetic strings,
 * hwloc XML exports, cluster DOT files), validation, routes between compute devices, the
 * fingerprint, and the cluster file writer.
 *
 * ---------------------------------------------------------------- devices of a CPU topology
 * A hwloc topology (this machine, "synthetic:DESC", FILE.xml, or a cluster node's topology=)
 * becomes one CPU device per core ("core0", ...: hwloc's logical core index; PUs when the
 * topology has no cores), one hub per package ("pkg0/mem": the socket's memory) linked to each of
 * its cores, and a link between every two packages (UPI). Each core's mem_bytes is its share of
 * the machine's memory (the NUMA nodes' sizes over the cores; on this machine the system's memory
 * when that is more), so a plan that fits every core fits the machine. Numbers:
 *   this machine   flops: single-threaded OpenBLAS sgemm 512x512x512, best of 3;
 *                  link bandwidth (core to its package hub): a 32 MiB memcpy, best of 4;
 *                  mem_bw: bytes read + written per second by that memcpy (2x the copy rate);
 *                  measured on a quiet machine and cached in the cache folder (pml_cache_dir),
 *                  in machine-FINGERPRINT.txt: the fingerprint hashes the topology and the CPU
 *                  model, not the measured numbers. A cache file that does not parse, or whose
 *                  numbers are not plausible, is measured again and rewritten; one measured on a
 *                  busy machine, or contradicted by a later probe, too (see "this machine").
 *   other sources  (not present) 80 GFLOP/s per core, 100 GB/s memory bandwidth per package
 *                  shared by its cores (mem_bw = 100 GB/s / cores of the package), core links
 *                  10 GB/s, inter-package links 40 GB/s; memory as hwloc gives it (a synthetic
 *                  topology has 1 GiB per NUMA node unless it says numa:1(memory=256GB)).
 *   latencies      0.1 us per core link (core to core through the package hub: 0.2 us) and per
 *                  inter-package link.
 *
 * ---------------------------------------------------------------- named machines
 *   flexflow-p100  4 nodes x 4 GPUs (9.3 TFLOP/s, 732 GB/s, 16 GB); within a node every pair of
 *                  GPUs is linked by NVLink (20 GB/s, 2 us); each GPU links to its node's NIC hub
 *                  by PCIe (12 GB/s, 2.5 us); each NIC to the "network" hub by 100 Gb/s
 *                  InfiniBand (12.5 GB/s, 2.5 us: 5 us NIC to NIC).
 *   flexflow-k80   16 nodes x 4 GPUs (4.4 TFLOP/s, 240 GB/s, 12 GB); the GPUs of a node link to
 *                  its PCIe switch hub (12 GB/s, 2.5 us), the switch to the NIC hub (12 GB/s,
 *                  2.5 us), the NIC to "network" by 56 Gb/s InfiniBand (7 GB/s, 3.5 us: 7 us NIC
 *                  to NIC).
 *   cpu-1socket    one package of 16 cores, 256 GB; cpu-2socket: two such packages (512 GB)
 *                  linked at 40 GB/s. Default CPU numbers as above.
 * They are cluster templates (below), written in named_machines[].
 *
 * ---------------------------------------------------------------- cluster files (FILE.dot)
 * A DOT digraph with graph attribute kind=machine (optional when read as a machine; any other
 * kind is refused). Its ID names the machine (an anonymous digraph takes the file's base name).
 * Two forms:
 *
 * Template: no nodes, only graph attributes; N identical cluster nodes.
 *     digraph k80 {
 *         graph [kind=machine, nodes=16, gpus_per_node=4, gpu_flops="4.4T", gpu_mem_bw="240G",
 *                gpu_mem="12G", intra=pcie, intra_bw="12G", intra_latency="2.5us",
 *                network_bw="56Gb", network_latency="7us"];
 *     }
 *   nodes            cluster nodes, 1..1024 (default 1)
 *   gpus_per_node    GPUs per node, 0..1024 (default 0)
 *   gpu_flops, gpu_mem_bw   per GPU (required with GPUs); gpu_mem per GPU (default 0: unlimited)
 *   intra            pcie (default): the GPUs of a node link to its PCIe switch hub "nodeI/pcie"
 *                    at intra_bw; nvlink: every two GPUs of a node are linked at intra_bw
 *   intra_bw         required with GPUs; intra_latency (default 2.5us pcie, 2us nvlink)
 *   pcie_bw, pcie_latency   links to the node's NIC hub "nodeI/nic" from the PCIe switch (pcie),
 *                    from each GPU (nvlink) and from each CPU package (default 12G, 2.5us)
 *   network_bw       each NIC to the shared hub "network" (required with nodes > 1)
 *   network_latency  NIC to NIC (default 5us; half on each NIC's link)
 *   topology         the CPUs of each node: "synthetic:DESC" (a hwloc synthetic string) or a
 *                    hwloc XML export (a path relative to the cluster file), giving CPU devices
 *                    and package hubs as above, with cpu_flops (per core, default 80G),
 *                    cpu_mem_bw (per package, shared by its cores, default 100G), core_bw and
 *                    core_latency (core to package hub, default 10G, 0.1us), upi_bw and
 *                    upi_latency (between packages, default 40G, 0.1us)
 *   Devices are named "nodeI/gpuJ", "nodeI/coreK", "nodeI/pkgP/mem", "nodeI/pcie", "nodeI/nic"
 *   and "network"; with nodes=1 without the "node0/" prefix. A NIC exists when nodes > 1 or a
 *   node has both CPUs and GPUs (it then joins them). A template needs GPUs or a topology.
 *
 * Explicit: one node per device and one edge per link (what pml_machine_write_dot writes).
 *     digraph small {
 *         graph [kind=machine];
 *         "node0/gpu0" [kind=gpu, node_id=0, flops="9.3 TFLOP/s", mem_bw="732 GB/s", mem="16 GB"];
 *         "node0/nic" [kind=hub, node_id=0];
 *         network [kind=hub, node_id=-1];
 *         "node0/gpu0" -> "node0/nic" [bw="12 GB/s", latency="2.5 us"];
 *         "node0/nic" -> network [bw="100 Gb/s", latency="2.5 us"];
 *     }
 *   kind             cpu, gpu or hub (required)
 *   node_id          cluster node (default 0; -1 for a hub shared by the nodes)
 *   flops, mem_bw    peak FLOP/s and memory bandwidth (required for cpu and gpu; not for hubs)
 *   mem              memory (cpu, gpu; default 0: unlimited); cores (cpu; default 1)
 *   edge bw          bandwidth in each direction (required), latency (default 0)
 *   A link is full duplex: an edge's direction does not matter; two edges between the same two
 *   devices are an error. Devices keep the order in which they first appear, links the file's
 *   order. Every device named in an edge needs its own node statement with kind=.
 *
 * `node` is a DOT keyword: node=... is a syntax error, so pml says node_id (devices) and
 * topology (templates); a quoted "node"=... is accepted for either. Units: plain numbers are
 * bytes/s, FLOP/s, bytes and seconds; K M G T P multiply by 10^3 .. 10^15, Ki Mi Gi Ti Pi by
 * 2^10 .. 2^50; a bandwidth may end in B, B/s or Bps (bytes) or in b, b/s or bps (bits: "56Gb" is
 * 7 GB/s); FLOP/s in FLOPS or FLOP/s (any case); sizes in B; times are s, ms, us (or µs) or ns.
 * One space may separate the number and the unit. Graphviz's own attributes (label, color, ...)
 * are ignored; any other attribute, and any value that does not parse, is an error naming the
 * file, the device, link or graph, and the attribute. */
#include "models.h"
#include "planner.h"

#include <assert.h>
#include <cblas.h>
#include <errno.h>
#include <hwloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define P(s) pml_dot_brief(s)

/* ---------------------------------------------------------------- limits and defaults */

#define MAX_DEV 4096
#define MAX_COMPUTE 1024
#define MAX_LINK 65536
#define MAX_PUS 8192        /* largest hwloc topology pml builds (processing units) */
#define MAX_NODES 1024      /* template */
#define MAX_XML (64u << 20) /* largest hwloc XML file */

/* CPU topologies from a description (not measured) */
#define DEF_CPU_FLOPS 80e9   /* per core */
#define DEF_PKG_MEM_BW 100e9 /* per package, shared by its cores */
#define DEF_CORE_BW 10e9     /* core <-> package hub */
#define DEF_CORE_LAT 0.1e-6
#define DEF_UPI_BW 40e9 /* package <-> package */
#define DEF_UPI_LAT 0.1e-6
/* templates */
#define DEF_PCIE_BW 12e9
#define DEF_PCIE_LAT 2.5e-6
#define DEF_NVLINK_LAT 2e-6
#define DEF_NET_LAT 5e-6

static const char *const kind_names[PML_DEV_KIND_COUNT] = {"cpu", "gpu", "hub"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == PML_DEV_KIND_COUNT, "device kinds");

/* ---------------------------------------------------------------- building */

typedef struct builder {
    pml_machine *m;
    int devcap, linkcap;
    const char *src; /* names the source in messages */
} builder;

/* \return the new device's id, or -1 (message set). */
static int add_dev(builder *b, pml_dev_kind kind, int node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int add_dev(builder *b, pml_dev_kind kind, int node, const char *fmt, ...)
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

static pml_status add_link(builder *b, int a, int c, double bw, double lat)
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

/* ---------------------------------------------------------------- numbers with units */

typedef enum qty { Q_BW, Q_FLOPS, Q_BYTES, Q_TIME, Q_COUNT } qty;

static const struct {
    double lo, hi;
    bool lo_open;
    const char *what;
} qty_info[Q_COUNT] = {
    [Q_BW] = {0, 1e18, true,
              "a bandwidth > 0 in bytes/s, or with a unit: 12G, \"12 GB/s\", \"100 Gb/s\" (bits), "
              "\"16 GiB/s\""},
    [Q_FLOPS] = {0, 1e21, true, "FLOP/s > 0: 9.3e12, \"9.3T\", \"9.3 TFLOP/s\", \"80 GFLOPS\""},
    [Q_BYTES] = {0, 1e21, false,
                 "a size >= 0 in bytes, or with a unit: 16e9, \"16G\", \"16 GB\", "
                 "\"16 GiB\""},
    [Q_TIME] = {0, 1e3, false,
                "a time >= 0 in seconds, or with a unit: \"5us\", \"0.2 us\", \"1ms\", \"100ns\""},
};

/* Parses "12", "1.5e3", ".5" followed by an optional unit for quantity q. The decimal exponent of
 * a K/M/G/... prefix is added to the number's text before strtod, so "4.4T" is exactly 4.4e12. */
static bool parse_qty(const char *s, qty q, double *out)
{
    const char *p = s;
    char sig[64];
    size_t n = 0;
    if (*p == '-' || *p == '+') sig[n++] = *p++;
    size_t digits = 0;
    while ((*p >= '0' && *p <= '9') || *p == '.') {
        if (n >= sizeof sig - 1) return false;
        if (*p != '.') digits++;
        sig[n++] = *p++;
    }
    sig[n] = 0;
    if (!digits || strchr(sig, '.') != strrchr(sig, '.')) return false;
    long exp10 = 0;
    if ((*p == 'e' || *p == 'E') &&
        ((p[1] >= '0' && p[1] <= '9') ||
         ((p[1] == '-' || p[1] == '+') && p[2] >= '0' && p[2] <= '9'))) {
        p++;
        int sign = 1;
        if (*p == '-' || *p == '+') sign = *p++ == '-' ? -1 : 1;
        while (*p >= '0' && *p <= '9') {
            if (exp10 < 10000) exp10 = exp10 * 10 + (*p - '0');
            p++;
        }
        exp10 *= sign;
    }
    if (*p == ' ') p++;
    int dec = 0, bin = 0;
    bool bits = false;
    if (q == Q_TIME) {
        if (!*p || strcmp(p, "s") == 0)
            dec = 0;
        else if (strcmp(p, "ms") == 0)
            dec = -3;
        else if (strcmp(p, "us") == 0 || strcmp(p, "\xc2\xb5s") == 0 || strcmp(p, "\xce\xbcs") == 0)
            dec = -6;
        else if (strcmp(p, "ns") == 0)
            dec = -9;
        else
            return false;
    } else {
        static const char prefixes[] = "KMGTP";
        /* lower-case k always; g, m, t, p too in FLOP/s, whose unit has any case ("80gflops") */
        char c = *p == 'k' || (q == Q_FLOPS && *p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
        const char *k = c ? strchr(prefixes, c) : NULL;
        if (k) {
            int i = (int)(k - prefixes) + 1;
            p++;
            if (*p == 'i' && q != Q_FLOPS) {
                bin = 10 * i;
                p++;
            } else {
                dec = 3 * i;
            }
        }
        if (q == Q_BW) {
            if (!*p || strcmp(p, "B") == 0 || strcmp(p, "B/s") == 0 || strcmp(p, "Bps") == 0)
                bits = false;
            else if (strcmp(p, "b") == 0 || strcmp(p, "b/s") == 0 || strcmp(p, "bps") == 0 ||
                     strcmp(p, "bit/s") == 0)
                bits = true;
            else
                return false;
        } else if (q == Q_FLOPS) {
            if (*p && strcasecmp(p, "FLOPS") != 0 && strcasecmp(p, "FLOP/s") != 0) return false;
        } else if (*p && strcmp(p, "B") != 0) {
            return false;
        }
    }
    if (p > s && p[-1] == ' ' && !*p) return false; /* a trailing space */
    char buf[96];
    snprintf(buf, sizeof buf, "%se%ld", sig, exp10 + dec);
    errno = 0;
    char *e;
    double v = strtod(buf, &e);
    if (*e) return false;
    v = ldexp(v, bin - (bits ? 3 : 0));
    if (!isfinite(v) || (qty_info[q].lo_open ? !(v > qty_info[q].lo) : !(v >= qty_info[q].lo)) ||
        !(v <= qty_info[q].hi))
        return false;
    *out = v;
    return true;
}

/* Formats v as "12 GB/s", "9.3 TFLOP/s", "16 GB", "2.5 us": the shortest text that parse_qty
 * reads back as exactly v. */
static void fmt_qty(char *buf, size_t cap, double v, qty q)
{
    static const char *const dec_units[4][6] = {
        [Q_BW] = {"B/s", "KB/s", "MB/s", "GB/s", "TB/s", "PB/s"},
        [Q_FLOPS] = {"FLOP/s", "KFLOP/s", "MFLOP/s", "GFLOP/s", "TFLOP/s", "PFLOP/s"},
        [Q_BYTES] = {"B", "KB", "MB", "GB", "TB", "PB"},
    };
    const char *unit;
    double scale;
    if (q == Q_TIME) {
        static const char *const tu[] = {"s", "ms", "us", "ns"};
        int i = 0;
        while (i < 3 && v > 0 && v < pow(10, -3 * i) * (1 - 1e-12)) i++;
        unit = tu[i];
        scale = pow(10, -3 * i);
    } else {
        int i = 0;
        while (i < 5 && v >= pow(10, 3 * (i + 1))) i++;
        unit = dec_units[q][i];
        scale = pow(10, 3 * i);
    }
    double x;
    for (int prec = 3; prec <= 17; prec++) { /* the mantissa is below 1000: no exponent */
        snprintf(buf, cap, "%.*g %s", prec, v / scale, unit);
        if (!strchr(buf, 'e') && parse_qty(buf, q, &x) && x == v) return;
    }
    snprintf(buf, cap, "%.17g", v);
}

/* ---------------------------------------------------------------- CPU topologies (hwloc) */

typedef struct cpu_topo {
    int npkg, ncore;
    int *core_pkg;   /* package of each core, 0..npkg-1 */
    int *core_index; /* hwloc logical index of each core (or PU) */
    double mem;      /* the machine's memory, bytes (0: unknown) */
    char model[96];  /* CPU model ("" when hwloc does not say) */
} cpu_topo;

static void cpu_topo_free(cpu_topo *t)
{
    free(t->core_pkg);
    free(t->core_index);
    memset(t, 0, sizeof *t);
}

/* Summarises a loaded topology. */
static pml_status cpu_topo_from_hwloc(hwloc_topology_t topo, const char *src, cpu_topo *t)
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
        cpu_topo_free(t);
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
static pml_status cpu_topo_synthetic(const char *desc, const char *what, cpu_topo *t)
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
        st = cpu_topo_from_hwloc(topo, what, t);
    hwloc_topology_destroy(topo);
    return st;
}

/* Loads a hwloc XML export. */
static pml_status cpu_topo_xml(const char *path, cpu_topo *t)
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
        st = cpu_topo_from_hwloc(topo, path, t);
    hwloc_topology_destroy(topo);
    free(text);
    return st;
}

typedef struct cpu_params {
    double flops;       /* per core */
    double pkg_mem_bw;  /* per package, shared by its cores */
    double core_mem_bw; /* > 0: per core (measured), instead of the package's share */
    double core_bw, core_lat;
    double upi_bw, upi_lat;
    bool present;
} cpu_params;

static const cpu_params cpu_defaults = {DEF_CPU_FLOPS, DEF_PKG_MEM_BW, 0,           DEF_CORE_BW,
                                        DEF_CORE_LAT,  DEF_UPI_BW,     DEF_UPI_LAT, false};

/* Adds the devices and links of a CPU topology; pkg_hub[] (npkg entries, caller's) receives the
 * package hubs' ids. \p prefix starts every name ("" or "node3/"). */
static pml_status add_cpu_part(builder *b, const cpu_topo *t, const cpu_params *cp, int node,
                               const char *prefix, int *pkg_hub)
{
    pml_status st;
    int *pkg_cores = calloc((size_t)t->npkg, sizeof *pkg_cores);
    int first = b->m->ndev;
    if (!pkg_cores) return pml_fail(PML_ENOMEM, "%s: out of memory", b->src);
    for (int i = 0; i < t->ncore; i++) pkg_cores[t->core_pkg[i]]++;
    for (int i = 0; i < t->ncore; i++) {
        int id = add_dev(b, PML_DEV_CPU, node, "%score%d", prefix, t->core_index[i]);
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
        if ((pkg_hub[p] = add_dev(b, PML_DEV_HUB, node, "%spkg%d/mem", prefix, p)) < 0)
            return PML_EFORMAT;
    for (int i = 0; i < t->ncore; i++)
        if ((st = add_link(b, first + i, pkg_hub[t->core_pkg[i]], cp->core_bw, cp->core_lat)) !=
            PML_OK)
            return st;
    for (int p = 0; p < t->npkg; p++)
        for (int q = p + 1; q < t->npkg; q++)
            if ((st = add_link(b, pkg_hub[p], pkg_hub[q], cp->upi_bw, cp->upi_lat)) != PML_OK)
                return st;
    return PML_OK;
}

static pml_status machine_from_cpu_topo(pml_machine *m, const char *name, const cpu_topo *t,
                                        const cpu_params *cp, const char *src)
{
    builder b = {m, 0, 0, src};
    snprintf(m->name, sizeof m->name, "%s", name);
    int *hubs = calloc((size_t)t->npkg, sizeof *hubs);
    if (!hubs) return pml_fail(PML_ENOMEM, "%s: out of memory", src);
    pml_status st = add_cpu_part(&b, t, cp, 0, "", hubs);
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

/* FNV-1a 64 over a canonical description: devices (name, kind, node, numbers, cores, present)
 * and links in id order. Numbers measured on this machine (present devices and their links) and
 * its memory size are left out and the CPU model put in, so that the fingerprint changes with the
 * hardware only. */
static void fingerprint(pml_machine *m)
{
    fnv f = {PML_HASH_INIT};
    bool here = false;
    for (int i = 0; i < m->ndev; i++) here |= m->dev[i].present;
    fnv_printf(&f, "pml-machine 1\n");
    if (here) fnv_printf(&f, "cpu_model %s\n", m->cpu_model);
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
        }
        fnv_printf(&f, "\n");
    }
    for (int l = 0; l < m->nlink; l++) {
        const pml_link *k = &m->link[l];
        if (m->dev[k->a].present || m->dev[k->b].present)
            fnv_printf(&f, "link %d %d measured %.17g\n", k->a, k->b, k->latency);
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
    m->ncompute = 0;
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
        if (d->kind == PML_DEV_HUB) continue;
        ncompute++;
        const char *k = kind_names[d->kind];
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

static pml_status finalize_src(pml_machine *m, const char *src)
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
    if (st == PML_OK) fingerprint(m);
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
    return finalize_src(m, src);
}

pml_status pml_machine_first_cores(const pml_machine *m, int n, pml_machine *out)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || n > m->ncompute)
        return pml_fail(PML_EINVAL, "machine '%s' has %d compute devices; %d asked for", m->name,
                        m->ncompute, n);
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
        bool keep = m->dev[d].kind == PML_DEV_HUB || m->compute_of[d] < n;
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
    snprintf(out->name, sizeof out->name, "%.50s:%d", m->name, n);
    memcpy(out->cpu_model, m->cpu_model, sizeof out->cpu_model);
    out->measured = m->measured;
    out->busy = m->busy;
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

/* ---------------------------------------------------------------- this machine
 *
 * Calibration: memcpy bandwidth and single-core sgemm FLOP/s. Other processes only ever slow
 * a measurement down, so it is trusted, and cached for good, only when they left the machine
 * quiet while it ran (pml_calib_opts.quiet: 0.15 of a core, above what /proc/stat's 10 ms ticks
 * blur over a 0.25 s window); otherwise it is measured again after a short wait, and when the
 * machine never gets quiet the best numbers seen (this run's tries and a provisional cache's)
 * serve this run and are cached as provisional: the next load measures again, once. A cached
 * final calibration is checked by a probe of a few ms (the same sgemm): a machine clearly faster
 * than the cache says (pml_calib_opts.contradict: 15%, more than the probe's own noise) was
 * measured under load, and is measured again; slower is what a busy machine looks like, and
 * keeps the cache. Measuring and writing happen under the cache entry's lock: a process that
 * waited for it reads what the holder wrote instead of measuring again. */

static void sleep_seconds(double s)
{
    if (!(s > 0)) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

typedef struct measured {
    double copy_bw; /* memcpy: bytes copied per second */
    double flops;   /* single-threaded sgemm 512^3 */
} measured;

static bool plausible(const measured *x)
{
    return isfinite(x->copy_bw) && x->copy_bw >= 1e7 && x->copy_bw <= 1e14 && isfinite(x->flops) &&
           x->flops >= 1e7 && x->flops <= 1e15;
}

static double round3(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.3g", v);
    return strtod(buf, NULL);
}

#define SGEMM_N 512

/* FLOP/s of the best of reps - 1 timed sgemm 512^3 after a warm-up, on private matrices. */
static pml_status sgemm_rate(int reps, double *flops)
{
    const int n = SGEMM_N;
    float *A = malloc((size_t)n * n * sizeof *A), *B = malloc((size_t)n * n * sizeof *B),
          *Cm = malloc((size_t)n * n * sizeof *Cm);
    pml_status st = PML_OK;
    if (!A || !B || !Cm) {
        st = pml_fail(PML_ENOMEM, "this machine: out of memory measuring it");
        goto done;
    }
    for (int i = 0; i < n * n; i++) {
        A[i] = (float)(i % 7) * 0.25f;
        B[i] = (float)(i % 5) * 0.5f;
    }
    pml_blas_single_thread();
    double best = INFINITY;
    for (int rep = 0; rep < reps; rep++) { /* the first is a warm-up */
        double t0 = pml_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, Cm,
                    n);
        double t = pml_now() - t0;
        if (rep > 0 && t < best) best = t;
    }
    *flops = 2.0 * n * n * n / best;
done:
    free(A);
    free(B);
    free(Cm);
    return st;
}

/* The full measurement, about 0.05 s on a current core. */
static pml_status measure_real(void *ctx, double *copy_bw, double *flops)
{
    (void)ctx;
    pml_status room = pml_blas_room_here();
    if (room != PML_OK) return pml_fail_ctx(room, "this machine: ");
    const size_t bytes = 32u << 20;
    char *a = malloc(bytes), *b = malloc(bytes);
    if (!a || !b) {
        free(a);
        free(b);
        return pml_fail(PML_ENOMEM, "this machine: out of memory measuring it");
    }
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = INFINITY;
    for (int rep = 0; rep < 5; rep++) { /* the first is a warm-up */
        double t0 = pml_now();
        memcpy(b, a, bytes);
        double t = pml_now() - t0;
        a[rep] = b[bytes - 1 - (size_t)rep]; /* keep the copies */
        if (rep > 0 && t < best) best = t;
    }
    free(a);
    free(b);
    *copy_bw = (double)bytes / best;
    pml_status st = sgemm_rate(4, flops);
    /* three significant digits: the rest is noise, and the numbers print as people write them */
    *copy_bw = round3(*copy_bw);
    *flops = round3(*flops);
    return st;
}

/* The check of a cached calibration: a few ms. */
static pml_status probe_real(void *ctx, double *flops)
{
    (void)ctx;
    pml_status room = pml_blas_room_here();
    if (room != PML_OK) return pml_fail_ctx(room, "this machine: ");
    return sgemm_rate(3, flops);
}

pml_calib_opts pml_calib_opts_default(void)
{
    pml_calib_opts o = {.quiet = 0.15,
                        .window = 0.25,
                        .tries = 3,
                        .retry_wait = 0.1,
                        .contradict = 0.15,
                        .lock_wait = PML_CACHE_LOCK_WAIT};
    return o;
}

static void take_snap(const pml_calib_opts *o, pml_cpu_snap *s)
{
    if (o->snap)
        o->snap(o->ctx, s);
    else
        pml_cpu_snap_take(s);
}

/* One measurement, watching for at least o->window seconds how many cores' worth of CPU time
 * other processes used meanwhile (*others). */
static pml_status measure_watched(const pml_calib_opts *o, measured *x, double *others)
{
    pml_cpu_snap a, b;
    take_snap(o, &a);
    const double t0 = pml_now();
    pml_status st = o->measure ? o->measure(o->ctx, &x->copy_bw, &x->flops)
                               : measure_real(NULL, &x->copy_bw, &x->flops);
    if (st != PML_OK) return st;
    if (!plausible(x))
        return pml_fail(
            PML_ENUMERIC,
            "this machine: implausible measurement (memcpy %.3g B/s, sgemm %.3g FLOP/s)",
            x->copy_bw, x->flops);
    sleep_seconds(o->window - (pml_now() - t0));
    take_snap(o, &b);
    *others = pml_foreign_load(&a, &b, 1);
    return PML_OK;
}

static measured best_of(measured a, measured b)
{
    measured r = {fmax(a.copy_bw, b.copy_bw), fmax(a.flops, b.flops)};
    return r;
}

/* Up to `tries` measurements, until one ran while others left the machine quiet (*quiet): that
 * one is the answer. When none did, the best of each number: others only slow a run down. */
static pml_status measure_quiet(const pml_calib_opts *o, int tries, measured *x, bool *quiet)
{
    measured best = {0, 0};
    *quiet = false;
    for (int t = 0; t < tries; t++) {
        if (t > 0) sleep_seconds(o->retry_wait * t);
        measured y;
        double others = 0;
        pml_status st = measure_watched(o, &y, &others);
        if (st != PML_OK) return st;
        if (others <= o->quiet) {
            *x = y;
            *quiet = true;
            return PML_OK;
        }
        best = best_of(best, y);
    }
    *x = best;
    return PML_OK;
}

/* ---------------------------------------------------------------- this machine: the cache */

static const char cache_magic[] = "pml machine cache 1";
enum { CACHE_NONE = 0, CACHE_FINAL = 1, CACHE_PROVISIONAL = 2 };

/* Reads a cache file. \return CACHE_FINAL or CACHE_PROVISIONAL (with *x), or CACHE_NONE when
 * it is missing, malformed or implausible. */
static int cache_read(const char *path, const char *model, measured *x)
{
    char *text;
    size_t len;
    if (pml_read_file(path, 4096, &text, &len) != PML_OK) return CACHE_NONE;
    int state = CACHE_NONE;
    bool provisional = false;
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    measured v = {NAN, NAN};
    int got = 0;
    if (!line || strcmp(line, cache_magic) != 0) goto done;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *sp = strchr(line, ' ');
        if (!sp) goto done;
        *sp++ = 0;
        char *e;
        if (strcmp(line, "cpu_model") == 0) {
            if (strcmp(sp, model) != 0) goto done;
            got |= 1;
        } else if (strcmp(line, "copy_bw") == 0) {
            v.copy_bw = strtod(sp, &e);
            if (e == sp || *e) goto done;
            got |= 2;
        } else if (strcmp(line, "flops") == 0) {
            v.flops = strtod(sp, &e);
            if (e == sp || *e) goto done;
            got |= 4;
        } else if (strcmp(line, "provisional") == 0) {
            /* measured while others were busy: the next load measures again */
            if (strcmp(sp, "1") != 0) goto done;
            provisional = true;
        } else {
            goto done;
        }
    }
    if (got == 7 && plausible(&v)) {
        *x = v;
        state = provisional ? CACHE_PROVISIONAL : CACHE_FINAL;
    }
done:
    free(text);
    return state;
}

static void cache_write(const char *path, const char *model, const measured *x, bool provisional)
{
    char buf[512];
    int n =
        snprintf(buf, sizeof buf, "%s\ncpu_model %s\ncopy_bw %.17g\nflops %.17g\n%s", cache_magic,
                 model, x->copy_bw, x->flops, provisional ? "provisional 1\n" : "");
    if (n > 0 && (size_t)n < sizeof buf) {
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", pml_errmsg());
        if (pml_write_file_atomic(path, buf, (size_t)n) != PML_OK)
            pml_fail(PML_OK, "%s", saved); /* a cache that cannot be written is no error */
    }
}

/* This machine's numbers into *x: from the cache, or measured (see above). Sets m->measured and
 * m->busy. */
static pml_status calibrate(pml_machine *m, const pml_calib_opts *o, measured *x)
{
    char *dir = NULL, *path = NULL, name[64];
    snprintf(name, sizeof name, "machine-%s.txt", m->fingerprint);
    if (!o->cache_dir)
        dir = pml_cache_dir(NULL);
    else if (o->cache_dir[0] && pml_cache_open(o->cache_dir))
        dir = strdup(o->cache_dir);
    if (dir && asprintf(&path, "%s/%s", dir, name) < 0) path = NULL;
    pml_status st = PML_OK;
    const pml_cache_stamp seen = pml_cache_stamp_of(path);
    measured old = {0, 0};
    int state = path ? cache_read(path, m->cpu_model, &old) : CACHE_NONE;
    double probed = 0;
    if (state == CACHE_FINAL) {
        /* slower than cached: others are busy now, which says nothing about the cache */
        pml_status pst = o->probe ? o->probe(o->ctx, &probed) : probe_real(NULL, &probed);
        if (pst != PML_OK || !isfinite(probed)) probed = 0; /* no probe: trust the cache */
        if (!(probed > old.flops * (1 + o->contradict))) {
            *x = old;
            m->measured = 2;
            goto out;
        }
    }
    /* measure, under the lock; a process that held it may have written what we need */
    pml_cache_lock lock;
    bool held = path && pml_cache_lock_take(&lock, dir, name, o->lock_wait);
    if (held) {
        pml_cache_stamp now = pml_cache_stamp_of(path);
        measured theirs;
        int s;
        if (!pml_cache_stamp_same(&now, &seen) && (s = cache_read(path, m->cpu_model, &theirs))) {
            *x = theirs;
            m->measured = 2;
            m->busy = s == CACHE_PROVISIONAL;
            pml_cache_unlock(&lock);
            goto out;
        }
    }
    bool quiet;
    measured y;
    /* a provisional cache was measured on a busy machine: one more try per load, not a wait */
    st = measure_quiet(o, state == CACHE_PROVISIONAL ? 1 : (o->tries > 1 ? o->tries : 1), &y,
                       &quiet);
    if (st == PML_OK) {
        if (!quiet) {
            if (state != CACHE_NONE) y = best_of(y, old);
            if (probed > y.flops) y.flops = round3(probed);
        }
        *x = y;
        m->measured = 1;
        m->busy = !quiet;
        if (held) cache_write(path, m->cpu_model, x, !quiet);
    }
    if (held) pml_cache_unlock(&lock);
out:
    free(dir);
    free(path);
    return st;
}

static pml_status load_this(pml_machine *m, const pml_calib_opts *o)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) return pml_fail(PML_ENOMEM, "this machine: out of memory");
    cpu_topo t;
    pml_status st;
    if (hwloc_topology_load(topo) != 0)
        st = pml_fail(PML_EIO, "this machine: hwloc cannot read the topology: %s", strerror(errno));
    else
        st = cpu_topo_from_hwloc(topo, "this machine", &t);
    hwloc_topology_destroy(topo);
    if (st != PML_OK) return st;
    /* some VMs put less memory in their NUMA nodes than the system has */
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (phys > t.mem) t.mem = phys;
    cpu_params cp = cpu_defaults;
    cp.present = true;
    cp.flops = cp.core_mem_bw = cp.core_bw = 1; /* placeholders until measured */
    st = machine_from_cpu_topo(m, "this", &t, &cp, "this machine");
    snprintf(m->cpu_model, sizeof m->cpu_model, "%s", t.model[0] ? t.model : "unknown CPU");
    cpu_topo_free(&t);
    if (st != PML_OK) return st;
    fingerprint(m); /* hashes the topology and the CPU model only: the cache key */
    measured x = {0, 0};
    if ((st = calibrate(m, o, &x)) != PML_OK) return st;
    for (int i = 0; i < m->ndev; i++)
        if (m->dev[i].kind == PML_DEV_CPU) {
            m->dev[i].flops = x.flops;
            m->dev[i].mem_bw = 2 * x.copy_bw; /* bytes read and written */
        }
    for (int l = 0; l < m->nlink; l++)
        if (m->dev[m->link[l].a].present || m->dev[m->link[l].b].present) m->link[l].bw = x.copy_bw;
    return finalize_src(m, "this machine");
}

pml_status pml_machine_load_this(pml_machine *m, const pml_calib_opts *o)
{
    memset(m, 0, sizeof *m);
    pml_calib_opts opts = o ? *o : pml_calib_opts_default();
    pml_status st = load_this(m, &opts);
    if (st != PML_OK) pml_machine_free(m);
    return st;
}

/* ---------------------------------------------------------------- cluster files: shared */

typedef struct reader {
    const char *src; /* the file (or spec) for messages */
    const pml_dot *d;
    builder b;
} reader;

/* ---------------------------------------------------------------- cluster files: templates */

enum {
    T_NODES,
    T_GPUS,
    T_GPU_FLOPS,
    T_GPU_MEM_BW,
    T_GPU_MEM,
    T_INTRA,
    T_INTRA_BW,
    T_INTRA_LAT,
    T_PCIE_BW,
    T_PCIE_LAT,
    T_NET_BW,
    T_NET_LAT,
    T_TOPOLOGY,
    T_CPU_FLOPS,
    T_CPU_MEM_BW,
    T_CORE_BW,
    T_CORE_LAT,
    T_UPI_BW,
    T_UPI_LAT,
    T_COUNT
};

enum { V_INT, V_STR, V_INTRA, V_QTY };

static const struct {
    const char *name;
    int type;
    qty q;
} tattrs[T_COUNT] = {
    [T_NODES] = {"nodes", V_INT, 0},
    [T_GPUS] = {"gpus_per_node", V_INT, 0},
    [T_GPU_FLOPS] = {"gpu_flops", V_QTY, Q_FLOPS},
    [T_GPU_MEM_BW] = {"gpu_mem_bw", V_QTY, Q_BW},
    [T_GPU_MEM] = {"gpu_mem", V_QTY, Q_BYTES},
    [T_INTRA] = {"intra", V_INTRA, 0},
    [T_INTRA_BW] = {"intra_bw", V_QTY, Q_BW},
    [T_INTRA_LAT] = {"intra_latency", V_QTY, Q_TIME},
    [T_PCIE_BW] = {"pcie_bw", V_QTY, Q_BW},
    [T_PCIE_LAT] = {"pcie_latency", V_QTY, Q_TIME},
    [T_NET_BW] = {"network_bw", V_QTY, Q_BW},
    [T_NET_LAT] = {"network_latency", V_QTY, Q_TIME},
    [T_TOPOLOGY] = {"topology", V_STR, 0},
    [T_CPU_FLOPS] = {"cpu_flops", V_QTY, Q_FLOPS},
    [T_CPU_MEM_BW] = {"cpu_mem_bw", V_QTY, Q_BW},
    [T_CORE_BW] = {"core_bw", V_QTY, Q_BW},
    [T_CORE_LAT] = {"core_latency", V_QTY, Q_TIME},
    [T_UPI_BW] = {"upi_bw", V_QTY, Q_BW},
    [T_UPI_LAT] = {"upi_latency", V_QTY, Q_TIME},
};

typedef struct tmpl {
    bool set[T_COUNT];
    int i[T_COUNT];
    double v[T_COUNT];
    const char *s[T_COUNT];
} tmpl;

static void tattr_list(char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "kind");
    for (int a = 0; a < T_COUNT && n < cap; a++)
        n += (size_t)snprintf(buf + n, cap - n, ", %s", tattrs[a].name);
}

/* The folder of the file src names, for paths in topology= ("" when none). */
static void dir_of(const char *src, char *buf, size_t cap)
{
    const char *slash = strrchr(src, '/');
    if (!slash)
        buf[0] = 0;
    else
        snprintf(buf, cap, "%.*s", (int)(slash - src + 1), src);
}

static pml_status tmpl_topology(reader *r, const char *val, cpu_topo *t)
{
    char what[600];
    snprintf(what, sizeof what, "%s: topology='%s'", r->src, P(val));
    if (strncmp(val, "synthetic:", 10) == 0) return cpu_topo_synthetic(val + 10, what, t);
    size_t n = strlen(val);
    if (n > 4 && strcasecmp(val + n - 4, ".xml") == 0) {
        char path[4096];
        char dir[2048];
        dir_of(r->src, dir, sizeof dir);
        snprintf(path, sizeof path, "%s%s", val[0] == '/' ? "" : dir, val);
        pml_status st = cpu_topo_xml(path, t);
        if (st != PML_OK) pml_fail_ctx(st, "%s: ", what);
        return st;
    }
    return pml_fail(PML_EFORMAT,
                    "%s must be \"synthetic:DESC\" (a hwloc synthetic topology, e.g. "
                    "\"synthetic:pack:1 core:8 pu:1\") or a hwloc XML file (FILE.xml)",
                    what);
}

static pml_status build_template(reader *r, tmpl *T)
{
    builder *b = &r->b;
    pml_status st;
    const int nodes = T->set[T_NODES] ? T->i[T_NODES] : 1;
    const int gpus = T->set[T_GPUS] ? T->i[T_GPUS] : 0;
    const bool cpus = T->set[T_TOPOLOGY];
    const bool nvlink = T->set[T_INTRA] && T->i[T_INTRA] == 1;
#define NEED(a, why)                                                                               \
    if (!T->set[a])                                                                                \
        return pml_fail(PML_EFORMAT, "%s: missing graph attribute %s (%s)", r->src,                \
                        tattrs[a].name, why);
    if (!gpus && !cpus)
        return pml_fail(PML_EFORMAT,
                        "%s: the template describes no compute device: give gpus_per_node=N "
                        "(with gpu_flops, gpu_mem_bw, intra_bw) or topology=\"synthetic:...\"",
                        r->src);
    if (gpus) {
        NEED(T_GPU_FLOPS, "each GPU's peak FLOP/s, e.g. gpu_flops=\"9.3T\"");
        NEED(T_GPU_MEM_BW, "each GPU's memory bandwidth, e.g. gpu_mem_bw=\"732G\"");
        NEED(T_INTRA_BW, "the bandwidth between the GPUs of a node, e.g. intra_bw=\"12G\"");
    }
    if (nodes > 1) NEED(T_NET_BW, "the network bandwidth of a node, e.g. network_bw=\"56Gb\"");
#undef NEED
    if ((double)nodes * gpus > MAX_COMPUTE)
        return pml_fail(PML_EFORMAT,
                        "%s: nodes=%d x gpus_per_node=%d is more than %d compute devices", r->src,
                        nodes, gpus, MAX_COMPUTE);
    if (nvlink && (double)nodes * gpus * (gpus - 1) / 2 > MAX_LINK)
        return pml_fail(PML_EFORMAT, "%s: nvlink between %d GPUs in %d nodes is more than %d links",
                        r->src, gpus, nodes, MAX_LINK);
    cpu_topo t = {0};
    cpu_params cp = cpu_defaults;
    if (cpus) {
        if ((st = tmpl_topology(r, T->s[T_TOPOLOGY], &t)) != PML_OK) return st;
        if ((double)nodes * (t.ncore + gpus) > MAX_COMPUTE) {
            cpu_topo_free(&t);
            return pml_fail(PML_EFORMAT, "%s: %d nodes of %d cores%s are more than %d devices",
                            r->src, nodes, t.ncore, gpus ? " and GPUs" : "", MAX_COMPUTE);
        }
        if (T->set[T_CPU_FLOPS]) cp.flops = T->v[T_CPU_FLOPS];
        if (T->set[T_CPU_MEM_BW]) cp.pkg_mem_bw = T->v[T_CPU_MEM_BW];
        if (T->set[T_CORE_BW]) cp.core_bw = T->v[T_CORE_BW];
        if (T->set[T_CORE_LAT]) cp.core_lat = T->v[T_CORE_LAT];
        if (T->set[T_UPI_BW]) cp.upi_bw = T->v[T_UPI_BW];
        if (T->set[T_UPI_LAT]) cp.upi_lat = T->v[T_UPI_LAT];
    }
    const double intra_lat = T->set[T_INTRA_LAT] ? T->v[T_INTRA_LAT]
                             : nvlink            ? DEF_NVLINK_LAT
                                                 : DEF_PCIE_LAT;
    const double pcie_bw = T->set[T_PCIE_BW] ? T->v[T_PCIE_BW] : DEF_PCIE_BW;
    const double pcie_lat = T->set[T_PCIE_LAT] ? T->v[T_PCIE_LAT] : DEF_PCIE_LAT;
    const double net_lat = (T->set[T_NET_LAT] ? T->v[T_NET_LAT] : DEF_NET_LAT) / 2;
    const bool nic = nodes > 1 || (cpus && gpus);
    int *hubs = calloc((size_t)(t.npkg > 0 ? t.npkg : 1), sizeof *hubs);
    int *gpu_ids = calloc((size_t)(gpus > 0 ? gpus : 1), sizeof *gpu_ids);
    int *nics = calloc((size_t)nodes, sizeof *nics);
    st = PML_OK;
    if (!hubs || !gpu_ids || !nics) {
        st = pml_fail(PML_ENOMEM, "%s: out of memory", r->src);
        goto done;
    }
    for (int n = 0; n < nodes && st == PML_OK; n++) {
        char prefix[32] = "";
        if (nodes > 1) snprintf(prefix, sizeof prefix, "node%d/", n);
        int pcie = -1, nicid = -1;
        for (int g = 0; g < gpus; g++) {
            int id = add_dev(b, PML_DEV_GPU, n, "%sgpu%d", prefix, g);
            if (id < 0) {
                st = PML_EFORMAT;
                goto done;
            }
            pml_device *d = &b->m->dev[id];
            d->flops = T->v[T_GPU_FLOPS];
            d->mem_bw = T->v[T_GPU_MEM_BW];
            d->mem_bytes = T->set[T_GPU_MEM] ? T->v[T_GPU_MEM] : 0;
            gpu_ids[g] = id;
        }
        if (cpus && (st = add_cpu_part(b, &t, &cp, n, prefix, hubs)) != PML_OK) goto done;
        if (gpus && !nvlink && (pcie = add_dev(b, PML_DEV_HUB, n, "%spcie", prefix)) < 0) {
            st = PML_EFORMAT;
            goto done;
        }
        if (nic && (nicid = add_dev(b, PML_DEV_HUB, n, "%snic", prefix)) < 0) {
            st = PML_EFORMAT;
            goto done;
        }
        nics[n] = nicid;
        for (int g = 0; g < gpus && st == PML_OK; g++) {
            if (nvlink) {
                for (int h = g + 1; h < gpus && st == PML_OK; h++)
                    st = add_link(b, gpu_ids[g], gpu_ids[h], T->v[T_INTRA_BW], intra_lat);
                if (nic && st == PML_OK) st = add_link(b, gpu_ids[g], nicid, pcie_bw, pcie_lat);
            } else {
                st = add_link(b, gpu_ids[g], pcie, T->v[T_INTRA_BW], intra_lat);
            }
        }
        if (st == PML_OK && gpus && !nvlink && nic)
            st = add_link(b, pcie, nicid, pcie_bw, pcie_lat);
        for (int p = 0; cpus && nic && p < t.npkg && st == PML_OK; p++)
            st = add_link(b, hubs[p], nicid, pcie_bw, pcie_lat);
    }
    if (st == PML_OK && nodes > 1) {
        int net = add_dev(b, PML_DEV_HUB, -1, "network");
        if (net < 0) {
            st = PML_EFORMAT;
            goto done;
        }
        for (int n = 0; n < nodes && st == PML_OK; n++)
            st = add_link(b, nics[n], net, T->v[T_NET_BW], net_lat);
    }
done:
    free(hubs);
    free(gpu_ids);
    free(nics);
    cpu_topo_free(&t);
    return st;
}

/* ---------------------------------------------------------------- cluster files: the reader */

static const char *where_dev(reader *r, int id)
{
    static _Thread_local char b[128];
    const pml_device *d = &r->b.m->dev[id];
    snprintf(b, sizeof b, "device '%s' (%s)", P(d->name), kind_names[d->kind]);
    return b;
}

enum { D_NODE, D_FLOPS, D_MEM_BW, D_MEM, D_CORES, D_COUNT };
static const char *const dattr_names[D_COUNT] = {"node_id", "flops", "mem_bw", "mem", "cores"};

/* \return the first link that names device id, or NULL */
static const pml_dot_edge *first_link(const pml_dot *d, int id)
{
    for (int e = 0; e < d->nedges; e++)
        if (d->edges[e].tail == id || d->edges[e].head == id) return &d->edges[e];
    return NULL;
}

static pml_status read_device(reader *r, const pml_dot_node *an, int id)
{
    const char *name = an->name;
    if (!name || !*name) return pml_fail(PML_EFORMAT, "%s: a device has an empty name", r->src);
    if (!pml_dot_name_ok(name))
        return pml_fail(PML_EFORMAT,
                        "%s: device '%s': the name holds a backslash or a control character",
                        r->src, P(name));
    const char *kind = pml_dot_get(an->nattr, an->attr, "kind");
    if (!kind) {
        const pml_dot_edge *e = first_link(r->d, id);
        if (e)
            return pml_fail(PML_EFORMAT,
                            "%s: link '%s' -> '%s': device '%s' is not declared (give it a node "
                            "statement with kind=cpu, gpu or hub)",
                            r->src, P(r->d->nodes[e->tail].name), P(r->d->nodes[e->head].name),
                            P(name));
        return pml_fail(PML_EFORMAT, "%s: device '%s' has no kind (cpu, gpu or hub)", r->src,
                        P(name));
    }
    int k = 0;
    while (k < PML_DEV_KIND_COUNT && strcmp(kind_names[k], kind) != 0) k++;
    if (k == PML_DEV_KIND_COUNT)
        return pml_fail(PML_EFORMAT, "%s: device '%s': unknown kind '%s' (kinds: cpu, gpu, hub)",
                        r->src, P(name), P(kind));
    if (strlen(name) >= sizeof r->b.m->dev[0].name)
        return pml_fail(PML_EFORMAT, "%s: device '%s': the name is longer than %zu characters",
                        r->src, P(name), sizeof r->b.m->dev[0].name - 1);
    if (add_dev(&r->b, (pml_dev_kind)k, 0, "%s", name) != id) return PML_EFORMAT;
    pml_device *d = &r->b.m->dev[id];
    bool set[D_COUNT] = {false};
    for (int k2 = 0; k2 < an->nattr; k2++) {
        const pml_dot_attr *sym = &an->attr[k2];
        if (strcmp(sym->name, "kind") == 0) continue;
        const char *val = sym->value;
        bool inherited = sym->inherited;
        int a = 0;
        if (strcmp(sym->name, "node") == 0)
            a = D_NODE;
        else
            while (a < D_COUNT && strcmp(dattr_names[a], sym->name) != 0) a++;
        if (a == D_COUNT) {
            if (pml_dot_is_graphviz_attr(sym->name)) continue;
            return pml_fail(PML_EFORMAT,
                            "%s: %s: unknown attribute '%s' (devices take: kind, node_id, flops, "
                            "mem_bw, mem, cores)",
                            r->src, where_dev(r, id), P(sym->name));
        }
        bool applies =
            a == D_NODE || (k != PML_DEV_HUB && a != D_CORES) || (k == PML_DEV_CPU && a == D_CORES);
        if (!applies) {
            if (inherited) continue; /* a `node [...]` default meant for other kinds */
            return pml_fail(PML_EFORMAT, "%s: %s: attribute '%s' does not apply to a %s", r->src,
                            where_dev(r, id), P(sym->name), kind_names[k]);
        }
        if (set[a])
            return pml_fail(PML_EFORMAT, "%s: %s: give node_id or \"node\", not both", r->src,
                            where_dev(r, id));
        set[a] = true;
        bool ok;
        const char *expect;
        switch (a) {
        case D_NODE:
            ok = pml_dot_int(val, -1, 1 << 20, &d->node);
            expect = "an integer in [-1, 1048576] (-1: a hub shared by the nodes)";
            break;
        case D_CORES:
            ok = pml_dot_int(val, 1, 1 << 16, &d->cores);
            expect = "an integer in [1, 65536]";
            break;
        default: {
            qty q = a == D_FLOPS ? Q_FLOPS : a == D_MEM_BW ? Q_BW : Q_BYTES;
            double *dst = a == D_FLOPS ? &d->flops : a == D_MEM_BW ? &d->mem_bw : &d->mem_bytes;
            ok = parse_qty(val, q, dst);
            expect = qty_info[q].what;
        }
        }
        if (!ok)
            return pml_fail(PML_EFORMAT, "%s: %s: %s='%s' must be %s", r->src, where_dev(r, id),
                            P(sym->name), P(val), expect);
    }
    if (k != PML_DEV_HUB) {
        if (!set[D_FLOPS])
            return pml_fail(PML_EFORMAT,
                            "%s: %s: missing attribute flops (peak FLOP/s, e.g. flops=\"9.3T\")",
                            r->src, where_dev(r, id));
        if (!set[D_MEM_BW])
            return pml_fail(PML_EFORMAT,
                            "%s: %s: missing attribute mem_bw (memory bandwidth, e.g. "
                            "mem_bw=\"732G\")",
                            r->src, where_dev(r, id));
    }
    return PML_OK;
}

static pml_status read_links(reader *r)
{
    const pml_dot *d = r->d;
    if (d->nedges > MAX_LINK)
        return pml_fail(PML_EFORMAT, "%s: %d links (at most %d)", r->src, d->nedges, MAX_LINK);
    pml_status st = PML_OK;
    for (int i = 0; i < d->nedges && st == PML_OK; i++) { /* file order */
        const pml_dot_edge *e = &d->edges[i];
        int a = e->tail, b = e->head;
        const char *an = P(d->nodes[a].name), *bn = P(d->nodes[b].name);
        double bw = 0, lat = 0;
        bool has_bw = false;
        for (int k2 = 0; k2 < e->nattr && st == PML_OK; k2++) {
            const pml_dot_attr *sym = &e->attr[k2];
            const char *val = sym->value;
            if (strcmp(sym->name, "bw") == 0) {
                has_bw = true;
                if (!parse_qty(val, Q_BW, &bw))
                    st = pml_fail(PML_EFORMAT, "%s: link '%s' -> '%s': bw='%s' must be %s", r->src,
                                  an, bn, P(val), qty_info[Q_BW].what);
            } else if (strcmp(sym->name, "latency") == 0) {
                if (!parse_qty(val, Q_TIME, &lat))
                    st = pml_fail(PML_EFORMAT, "%s: link '%s' -> '%s': latency='%s' must be %s",
                                  r->src, an, bn, P(val), qty_info[Q_TIME].what);
            } else if (!pml_dot_is_graphviz_attr(sym->name)) {
                st = pml_fail(PML_EFORMAT,
                              "%s: link '%s' -> '%s': unknown attribute '%s' (links take: bw, "
                              "latency)",
                              r->src, an, bn, P(sym->name));
            }
        }
        if (st != PML_OK) break;
        if (!has_bw)
            st = pml_fail(PML_EFORMAT,
                          "%s: link '%s' -> '%s': missing attribute bw (bandwidth, e.g. "
                          "bw=\"12 GB/s\")",
                          r->src, an, bn);
        else if (a == b)
            st = pml_fail(PML_EFORMAT, "%s: link '%s' -> '%s' joins a device to itself", r->src, an,
                          bn);
        else
            st = add_link(&r->b, a, b, bw, lat);
    }
    return st;
}

/* The machine's name: the digraph's ID, or the file's base name for an anonymous digraph. */
static void machine_name(reader *r, char *name, size_t cap)
{
    const char *id = r->d->name;
    if (id && *id && pml_dot_name_ok(id) && strlen(id) < cap) {
        snprintf(name, cap, "%s", id);
        return;
    }
    const char *base = strrchr(r->src, '/');
    base = base ? base + 1 : r->src;
    size_t n = strcspn(base, ".");
    if (n == 0) base = "machine", n = 7;
    if (n >= cap) n = cap - 1;
    memcpy(name, base, n);
    name[n] = 0;
    if (!pml_dot_name_ok(name)) snprintf(name, cap, "machine");
}

static pml_status from_dot(reader *r)
{
    pml_status st;
    const pml_dot *d = r->d;
    const char *kind = pml_dot_get(d->nattr, d->attr, "kind");
    if (kind && strcmp(kind, "machine") != 0)
        return pml_fail(PML_EFORMAT, "%s: kind=%s: this is not a machine file (kind=machine)",
                        r->src, P(kind));
    machine_name(r, r->b.m->name, sizeof r->b.m->name);
    const int nn = d->nnodes;
    /* graph attributes: a template, or nothing besides kind */
    tmpl T;
    memset(&T, 0, sizeof T);
    int ntmpl = 0;
    for (int k = 0; k < d->nattr; k++) {
        const pml_dot_attr *sym = &d->attr[k];
        const char *v = sym->value;
        if (strcmp(sym->name, "kind") == 0) continue;
        int a = 0;
        if (strcmp(sym->name, "node") == 0)
            a = T_TOPOLOGY;
        else
            while (a < T_COUNT && strcmp(tattrs[a].name, sym->name) != 0) a++;
        if (a == T_COUNT) {
            if (pml_dot_is_graphviz_attr(sym->name)) continue;
            char known[400];
            tattr_list(known, sizeof known);
            return pml_fail(PML_EFORMAT, "%s: unknown graph attribute '%s' (a machine takes: %s)",
                            r->src, P(sym->name), known);
        }
        if (T.set[a])
            return pml_fail(PML_EFORMAT, "%s: give topology or \"node\", not both", r->src);
        T.set[a] = true;
        ntmpl++;
        bool ok = true;
        const char *expect = "";
        switch (tattrs[a].type) {
        case V_INT:
            ok = a == T_NODES ? pml_dot_int(v, 1, MAX_NODES, &T.i[a])
                              : pml_dot_int(v, 0, MAX_COMPUTE, &T.i[a]);
            expect = a == T_NODES ? "an integer in [1, 1024]" : "an integer in [0, 1024]";
            break;
        case V_INTRA:
            ok = strcmp(v, "pcie") == 0 || strcmp(v, "nvlink") == 0;
            T.i[a] = v[0] == 'n';
            expect = "pcie or nvlink";
            break;
        case V_STR:
            T.s[a] = v;
            break;
        case V_QTY:
            ok = parse_qty(v, tattrs[a].q, &T.v[a]);
            expect = qty_info[tattrs[a].q].what;
            break;
        }
        if (!ok)
            return pml_fail(PML_EFORMAT, "%s: graph attribute %s='%s' must be %s", r->src,
                            P(sym->name), P(v), expect);
    }
    if (nn == 0) {
        if (!ntmpl)
            return pml_fail(
                PML_EFORMAT,
                "%s: the file describes no machine: give devices and links, or template "
                "graph attributes (nodes, gpus_per_node, gpu_flops, ...)",
                r->src);
        return build_template(r, &T);
    }
    if (ntmpl)
        return pml_fail(PML_EFORMAT,
                        "%s: the file has devices and template graph attributes; give one or the "
                        "other",
                        r->src);
    if (nn > MAX_DEV)
        return pml_fail(PML_EFORMAT, "%s: %d devices (at most %d)", r->src, nn, MAX_DEV);
    for (int id = 0; id < nn; id++)
        if ((st = read_device(r, &d->nodes[id], id)) != PML_OK) return st;
    return read_links(r);
}

pml_status pml_machine_from_dot(const pml_dot *d, pml_machine *m)
{
    memset(m, 0, sizeof *m);
    reader r = {d->source ? d->source : "<machine>", d, {m, 0, 0, NULL}};
    r.b.src = r.src;
    pml_status st = from_dot(&r);
    if (st == PML_OK) st = finalize_src(m, r.src);
    if (st != PML_OK) pml_machine_free(m);
    return st;
}

pml_status pml_machine_parse_dot(const char *text, size_t len, const char *source, pml_machine *m)
{
    memset(m, 0, sizeof *m);
    pml_dot d;
    pml_status st = pml_dot_parse(text, len, source, &d);
    if (st != PML_OK) return st;
    st = pml_machine_from_dot(&d, m);
    pml_dot_free(&d);
    return st;
}

/* ---------------------------------------------------------------- named machines */

static const struct {
    const char *name, *dot;
} named_machines[] = {
    {"flexflow-p100",
     "digraph \"flexflow-p100\" { graph [kind=machine, nodes=4, gpus_per_node=4, "
     "gpu_flops=\"9.3T\", gpu_mem_bw=\"732G\", gpu_mem=\"16G\", intra=nvlink, intra_bw=\"20G\", "
     "intra_latency=\"2us\", pcie_bw=\"12G\", pcie_latency=\"2.5us\", network_bw=\"100Gb\", "
     "network_latency=\"5us\"]; }"},
    {"flexflow-k80",
     "digraph \"flexflow-k80\" { graph [kind=machine, nodes=16, gpus_per_node=4, "
     "gpu_flops=\"4.4T\", gpu_mem_bw=\"240G\", gpu_mem=\"12G\", intra=pcie, intra_bw=\"12G\", "
     "intra_latency=\"2.5us\", pcie_bw=\"12G\", pcie_latency=\"2.5us\", network_bw=\"56Gb\", "
     "network_latency=\"7us\"]; }"},
    {"cpu-1socket", "digraph \"cpu-1socket\" { graph [kind=machine, "
                    "topology=\"synthetic:pack:1 numa:1(memory=256GB) core:16 pu:1\"]; }"},
    {"cpu-2socket", "digraph \"cpu-2socket\" { graph [kind=machine, "
                    "topology=\"synthetic:pack:2 numa:1(memory=256GB) core:16 pu:1\", "
                    "upi_bw=\"40G\"]; }"},
};

#define NNAMED (sizeof named_machines / sizeof named_machines[0])

const char *const *pml_machine_names(void)
{
    static const char *const names[] = {"flexflow-p100", "flexflow-k80", "cpu-1socket",
                                        "cpu-2socket", NULL};
    _Static_assert(sizeof names / sizeof names[0] == NNAMED + 1, "named machines");
    return names;
}

static pml_status load_named(size_t k, pml_machine *m)
{
    const char *t = named_machines[k].dot;
    return pml_machine_parse_dot(t, strlen(t), named_machines[k].name, m);
}

/* ---------------------------------------------------------------- the writer */

pml_status pml_machine_format_dot(const pml_machine *m, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    if (!m->compute || m->ndev <= 0)
        return pml_fail(PML_EINVAL, "machine '%s': finalize the machine before writing it",
                        P(m->name));
    if (!pml_dot_name_ok(m->name))
        return pml_fail(PML_EINVAL, "machine '%s': the name cannot be written in DOT", P(m->name));
    for (int i = 0; i < m->ndev; i++)
        if (!pml_dot_name_ok(m->dev[i].name))
            return pml_fail(PML_EINVAL,
                            "machine '%s': device '%s': the name cannot be written in DOT "
                            "(backslash or control character)",
                            P(m->name), P(m->dev[i].name));
    FILE *f = open_memstream(text, len);
    if (!f) return pml_fail(PML_ENOMEM, "machine '%s': out of memory", P(m->name));
    int nkind[PML_DEV_KIND_COUNT] = {0};
    for (int i = 0; i < m->ndev; i++) nkind[m->dev[i].kind]++;
    fprintf(f,
            "// pml machine '%s' (fingerprint %s): %d cpu, %d gpu, %d hub devices, %d links.\n"
            "// One node per device (kind=cpu|gpu|hub, node_id, flops, mem_bw, mem, cores), one\n"
            "// edge per full-duplex link (bw, latency). Format: planner/machine.c.\n",
            m->name, m->fingerprint, nkind[PML_DEV_CPU], nkind[PML_DEV_GPU], nkind[PML_DEV_HUB],
            m->nlink);
    fputs("digraph ", f);
    pml_dot_put_quoted(f, m->name);
    fputs(" {\n    graph [kind=machine];\n\n", f);
    char b1[64], b2[64], b3[64];
    for (int i = 0; i < m->ndev; i++) {
        const pml_device *d = &m->dev[i];
        fputs("    ", f);
        pml_dot_put_quoted(f, d->name);
        fprintf(f, " [kind=%s, node_id=%d", kind_names[d->kind], d->node);
        if (d->kind != PML_DEV_HUB) {
            fmt_qty(b1, sizeof b1, d->flops, Q_FLOPS);
            fmt_qty(b2, sizeof b2, d->mem_bw, Q_BW);
            fmt_qty(b3, sizeof b3, d->mem_bytes, Q_BYTES);
            fprintf(f, ", flops=\"%s\", mem_bw=\"%s\", mem=\"%s\"", b1, b2, b3);
            if (d->kind == PML_DEV_CPU) fprintf(f, ", cores=%d", d->cores);
        }
        fputs("];\n", f);
    }
    fputc('\n', f);
    for (int l = 0; l < m->nlink; l++) {
        const pml_link *k = &m->link[l];
        fputs("    ", f);
        pml_dot_put_quoted(f, m->dev[k->a].name);
        fputs(" -> ", f);
        pml_dot_put_quoted(f, m->dev[k->b].name);
        fmt_qty(b1, sizeof b1, k->bw, Q_BW);
        fmt_qty(b2, sizeof b2, k->latency, Q_TIME);
        fprintf(f, " [bw=\"%s\", latency=\"%s\"];\n", b1, b2);
    }
    fputs("}\n", f);
    if (fclose(f) != 0 || !*text) {
        free(*text);
        *text = NULL;
        *len = 0;
        return pml_fail(PML_ENOMEM, "machine '%s': out of memory", P(m->name));
    }
    return PML_OK;
}

pml_status pml_machine_write_dot(const pml_machine *m, const char *path)
{
    char *text;
    size_t len;
    pml_status st = pml_machine_format_dot(m, &text, &len);
    if (st != PML_OK) return st;
    st = pml_write_file_atomic(path, text, len);
    free(text);
    return st;
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
    cpu_topo t;
    pml_status st = cpu_topo_xml(path, &t);
    if (st != PML_OK) return st;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
    if (!name[0] || !pml_dot_name_ok(name)) snprintf(name, sizeof name, "xml");
    st = machine_from_cpu_topo(m, name, &t, &cpu_defaults, path);
    cpu_topo_free(&t);
    return st == PML_OK ? finalize_src(m, path) : st;
}

bool pml_machine_is_spec(const char *spec)
{
    if (!spec || !*spec || strcmp(spec, "this") == 0 || strncmp(spec, "synthetic:", 10) == 0)
        return true;
    for (size_t k = 0; k < NNAMED; k++)
        if (strcmp(spec, named_machines[k].name) == 0) return true;
    return false;
}

static pml_status load_spec(const char *spec, pml_machine *m)
{
    if (!spec || !*spec || strcmp(spec, "this") == 0) {
        pml_calib_opts o = pml_calib_opts_default();
        return load_this(m, &o);
    }
    for (size_t k = 0; k < NNAMED; k++)
        if (strcmp(spec, named_machines[k].name) == 0) return load_named(k, m);
    if (strncmp(spec, "synthetic:", 10) == 0) {
        cpu_topo t;
        char what[128];
        snprintf(what, sizeof what, "machine '%s'", P(spec));
        pml_status st = cpu_topo_synthetic(spec + 10, what, &t);
        if (st != PML_OK) return st;
        st = machine_from_cpu_topo(m, "synthetic", &t, &cpu_defaults, what);
        if (st == PML_OK) snprintf(m->name, sizeof m->name, "%s", spec);
        cpu_topo_free(&t);
        return st == PML_OK ? finalize_src(m, what) : st;
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
    for (size_t k = 0; k < NNAMED; k++)
        snprintf(known + strlen(known), sizeof known - strlen(known), ", %s",
                 named_machines[k].name);
    return pml_fail(PML_ENOTFOUND,
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
