/* pml — planner: cluster files (FILE.dot), the named machines, and the cluster file writer.
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
 *                  linked at 40 GB/s. Default CPU numbers as in machine.c.
 *   reference-cluster  the cluster of the reference study's distributed TensorFlow run: a master
 *                  of 32 vCPUs (16 cores, 120 GB), 6 workers of 16 vCPUs (8 cores, 60 GB) and 3
 *                  parameter servers of 8 vCPUs (4 cores, 30 GB), cloud VMs on Skylake. Assumed:
 *                  64 GFLOP/s a core (one AVX-512 FMA unit at 2.0 GHz, as the cloud's Xeon Gold
 *                  and Silver parts have), 40 GB/s of memory a VM, 10 Gb/s and 50 us between VMs
 *                  (what such VMs were given). The 3 servers' cores are parameter servers
 *                  (ps_nodes=3): pml_plan_ps computes on the other 7 VMs.
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
 *                    hwloc XML export (a path relative to the cluster file); or nodes of
 *                    several kinds, "K*TOPOLOGY; K*TOPOLOGY; ...", K nodes of each in turn (K*
 *                    may be left out: 1; then they count the nodes, and nodes= must agree),
 *                    giving CPU devices
 *                    and package hubs as above, with cpu_flops (per core, default 80G),
 *                    cpu_mem_bw (per package, shared by its cores, default 100G), core_bw and
 *                    core_latency (core to package hub, default 10G, 0.1us), upi_bw and
 *                    upi_latency (between packages, default 40G, 0.1us)
 *   ps_nodes         K: the last K nodes are parameter servers (their compute devices get
 *                    role=ps, below), as a cluster spec lists its workers, then its servers
 *                    (default 0; 0..nodes)
 *   cores_of         (either form) the fingerprint of the machine whose cores the CPU devices
 *                    are (pml topo under mpirun writes it when every rank runs on its host): on
 *                    that machine their kernels are measured, elsewhere costed from cpu_flops
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
 *   role             cpu, gpu: worker (default) or ps, a parameter server: under sync=ps it
 *                    holds and updates a shard of the parameters (planner/taskgraph.c)
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

/* ---------------------------------------------------------------- cluster files: shared */

typedef struct reader {
    const char *src; /* the file (or spec) for messages */
    const pml_dot *d;
    pml__builder b;
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
    T_PS_NODES,
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
    [T_PS_NODES] = {"ps_nodes", V_INT, 0},
};

typedef struct tmpl {
    bool set[T_COUNT];
    int i[T_COUNT];
    double v[T_COUNT];
    const char *s[T_COUNT];
} tmpl;

static void tattr_list(char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "kind, cores_of");
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

static pml_status tmpl_topology(reader *r, const char *val, pml__cpu_topo *t)
{
    char what[600];
    snprintf(what, sizeof what, "%s: topology='%s'", r->src, P(val));
    if (strncmp(val, "synthetic:", 10) == 0) return pml__cpu_topo_synthetic(val + 10, what, t);
    size_t n = strlen(val);
    if (n > 4 && strcasecmp(val + n - 4, ".xml") == 0) {
        char path[4096];
        char dir[2048];
        dir_of(r->src, dir, sizeof dir);
        snprintf(path, sizeof path, "%s%s", val[0] == '/' ? "" : dir, val);
        pml_status st = pml__cpu_topo_xml(path, t);
        if (st != PML_OK) pml_fail_ctx(st, "%s: ", what);
        return st;
    }
    return pml_fail(PML_EFORMAT,
                    "%s must be \"synthetic:DESC\" (a hwloc synthetic topology, e.g. "
                    "\"synthetic:pack:1 core:8 pu:1\") or a hwloc XML file (FILE.xml)",
                    what);
}

/* topology="K*DESC; K*DESC; ...": nodes of different kinds, K of each in turn (K* may be left
 * out: 1). At most MAX_GROUPS kinds. */
#define MAX_GROUPS 16

typedef struct groups {
    int n;
    int count[MAX_GROUPS];
    pml__cpu_topo t[MAX_GROUPS];
} groups;

static void groups_free(groups *G)
{
    for (int i = 0; i < G->n; i++) pml__cpu_topo_free(&G->t[i]);
    G->n = 0;
}

static pml_status tmpl_groups(reader *r, const char *val, groups *G)
{
    memset(G, 0, sizeof *G);
    const char *p = val;
    for (;;) {
        while (*p == ' ') p++;
        const char *end = strchr(p, ';');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[1024];
        if (len == 0 || len >= sizeof item || G->n == MAX_GROUPS) {
            groups_free(G);
            return pml_fail(PML_EFORMAT,
                            "%s: topology='%s' must be one topology or up to %d \"K*TOPOLOGY\" "
                            "separated by ';' (an empty or too long part)",
                            r->src, P(val), MAX_GROUPS);
        }
        memcpy(item, p, len);
        item[len] = 0;
        for (size_t k = len; k > 0 && item[k - 1] == ' '; k--) item[k - 1] = 0;
        int count = 1;
        const char *desc = item;
        char *star = strchr(item, '*');
        if (star && (strncmp(item, "synthetic:", 10) != 0 || star < item + 10)) {
            *star = 0;
            if (!pml_dot_int(item, 1, MAX_NODES, &count)) {
                groups_free(G);
                return pml_fail(PML_EFORMAT,
                                "%s: topology='%s': '%s' before '*' must be a node count in "
                                "[1, %d]",
                                r->src, P(val), P(item), MAX_NODES);
            }
            desc = star + 1;
            while (*desc == ' ') desc++;
        }
        pml_status st = tmpl_topology(r, desc, &G->t[G->n]);
        if (st != PML_OK) {
            groups_free(G);
            return st;
        }
        G->count[G->n++] = count;
        if (!end) break;
        p = end + 1;
    }
    return PML_OK;
}

static pml_status build_template(reader *r, tmpl *T)
{
    pml__builder *b = &r->b;
    pml_status st;
    int nodes = T->set[T_NODES] ? T->i[T_NODES] : 1;
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
    groups G = {0};
    pml__cpu_params cp = pml__cpu_defaults;
    int maxpkg = 1;
    if (cpus) {
        if ((st = tmpl_groups(r, T->s[T_TOPOLOGY], &G)) != PML_OK) return st;
        double total = 0, devs = 0;
        for (int i = 0; i < G.n; i++) {
            total += G.count[i];
            devs += (double)G.count[i] * (G.t[i].ncore + gpus);
            if (G.t[i].npkg > maxpkg) maxpkg = G.t[i].npkg;
        }
        if (G.n > 1 || G.count[0] > 1) { /* node kinds given: they count the nodes */
            if (T->set[T_NODES] && T->i[T_NODES] != (int)total) {
                groups_free(&G);
                return pml_fail(PML_EFORMAT, "%s: nodes=%d, but topology counts %.0f nodes",
                                r->src, T->i[T_NODES], total);
            }
            if (total > MAX_NODES) {
                groups_free(&G);
                return pml_fail(PML_EFORMAT, "%s: topology counts %.0f nodes, more than %d",
                                r->src, total, MAX_NODES);
            }
            nodes = (int)total;
        } else {
            devs = (double)nodes * (G.t[0].ncore + gpus);
        }
        if (devs > MAX_COMPUTE) {
            groups_free(&G);
            return pml_fail(PML_EFORMAT, "%s: %d nodes of %s%s are more than %d devices", r->src,
                            nodes, G.n > 1 ? "their cores" : "these cores",
                            gpus ? " and GPUs" : "", MAX_COMPUTE);
        }
        if (T->set[T_CPU_FLOPS]) cp.flops = T->v[T_CPU_FLOPS];
        if (T->set[T_CPU_MEM_BW]) cp.pkg_mem_bw = T->v[T_CPU_MEM_BW];
        if (T->set[T_CORE_BW]) cp.core_bw = T->v[T_CORE_BW];
        if (T->set[T_CORE_LAT]) cp.core_lat = T->v[T_CORE_LAT];
        if (T->set[T_UPI_BW]) cp.upi_bw = T->v[T_UPI_BW];
        if (T->set[T_UPI_LAT]) cp.upi_lat = T->v[T_UPI_LAT];
    }
    const int servers = T->set[T_PS_NODES] ? T->i[T_PS_NODES] : 0;
    if (servers > nodes) {
        groups_free(&G);
        return pml_fail(PML_EFORMAT, "%s: ps_nodes=%d, but the machine has %d node%s", r->src,
                        servers, nodes, nodes == 1 ? "" : "s");
    }
    const double intra_lat = T->set[T_INTRA_LAT] ? T->v[T_INTRA_LAT]
                             : nvlink            ? DEF_NVLINK_LAT
                                                 : DEF_PCIE_LAT;
    const double pcie_bw = T->set[T_PCIE_BW] ? T->v[T_PCIE_BW] : DEF_PCIE_BW;
    const double pcie_lat = T->set[T_PCIE_LAT] ? T->v[T_PCIE_LAT] : DEF_PCIE_LAT;
    const double net_lat = (T->set[T_NET_LAT] ? T->v[T_NET_LAT] : DEF_NET_LAT) / 2;
    const bool nic = nodes > 1 || (cpus && gpus);
    int *hubs = calloc((size_t)maxpkg, sizeof *hubs);
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
        const int node_first = b->m->ndev;
        for (int g = 0; g < gpus; g++) {
            int id = pml__add_dev(b, PML_DEV_GPU, n, "%sgpu%d", prefix, g);
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
        const pml__cpu_topo *t = NULL; /* this node's kind */
        for (int i = 0, first = 0; cpus && i < G.n && !t; first += G.count[i], i++)
            if (n < first + G.count[i] || G.n == 1) t = &G.t[i];
        if (cpus && (st = pml__add_cpu_part(b, t, &cp, n, prefix, hubs)) != PML_OK) goto done;
        if (gpus && !nvlink && (pcie = pml__add_dev(b, PML_DEV_HUB, n, "%spcie", prefix)) < 0) {
            st = PML_EFORMAT;
            goto done;
        }
        if (nic && (nicid = pml__add_dev(b, PML_DEV_HUB, n, "%snic", prefix)) < 0) {
            st = PML_EFORMAT;
            goto done;
        }
        nics[n] = nicid;
        for (int g = 0; g < gpus && st == PML_OK; g++) {
            if (nvlink) {
                for (int h = g + 1; h < gpus && st == PML_OK; h++)
                    st = pml__add_link(b, gpu_ids[g], gpu_ids[h], T->v[T_INTRA_BW], intra_lat);
                if (nic && st == PML_OK) st = pml__add_link(b, gpu_ids[g], nicid, pcie_bw, pcie_lat);
            } else {
                st = pml__add_link(b, gpu_ids[g], pcie, T->v[T_INTRA_BW], intra_lat);
            }
        }
        if (st == PML_OK && gpus && !nvlink && nic)
            st = pml__add_link(b, pcie, nicid, pcie_bw, pcie_lat);
        for (int p = 0; cpus && nic && p < t->npkg && st == PML_OK; p++)
            st = pml__add_link(b, hubs[p], nicid, pcie_bw, pcie_lat);
        for (int id = node_first; n >= nodes - servers && id < b->m->ndev; id++)
            b->m->dev[id].ps = b->m->dev[id].kind != PML_DEV_HUB;
    }
    if (st == PML_OK && nodes > 1) {
        int net = pml__add_dev(b, PML_DEV_HUB, -1, "network");
        if (net < 0) {
            st = PML_EFORMAT;
            goto done;
        }
        for (int n = 0; n < nodes && st == PML_OK; n++)
            st = pml__add_link(b, nics[n], net, T->v[T_NET_BW], net_lat);
    }
done:
    free(hubs);
    free(gpu_ids);
    free(nics);
    groups_free(&G);
    return st;
}

/* ---------------------------------------------------------------- cluster files: the reader */

static const char *where_dev(reader *r, int id)
{
    static _Thread_local char b[128];
    const pml_device *d = &r->b.m->dev[id];
    snprintf(b, sizeof b, "device '%s' (%s)", P(d->name), pml__dev_kind_names[d->kind]);
    return b;
}

enum { D_NODE, D_FLOPS, D_MEM_BW, D_MEM, D_CORES, D_ROLE, D_COUNT };
static const char *const dattr_names[D_COUNT] = {"node_id", "flops", "mem_bw", "mem", "cores",
                                                 "role"};

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
    while (k < PML_DEV_KIND_COUNT && strcmp(pml__dev_kind_names[k], kind) != 0) k++;
    if (k == PML_DEV_KIND_COUNT)
        return pml_fail(PML_EFORMAT, "%s: device '%s': unknown kind '%s' (kinds: cpu, gpu, hub)",
                        r->src, P(name), P(kind));
    if (strlen(name) >= sizeof r->b.m->dev[0].name)
        return pml_fail(PML_EFORMAT, "%s: device '%s': the name is longer than %zu characters",
                        r->src, P(name), sizeof r->b.m->dev[0].name - 1);
    if (pml__add_dev(&r->b, (pml_dev_kind)k, 0, "%s", name) != id) return PML_EFORMAT;
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
                            "mem_bw, mem, cores, role)",
                            r->src, where_dev(r, id), P(sym->name));
        }
        bool applies =
            a == D_NODE || (k != PML_DEV_HUB && a != D_CORES) || (k == PML_DEV_CPU && a == D_CORES);
        if (!applies) {
            if (inherited) continue; /* a `node [...]` default meant for other kinds */
            return pml_fail(PML_EFORMAT, "%s: %s: attribute '%s' does not apply to a %s", r->src,
                            where_dev(r, id), P(sym->name), pml__dev_kind_names[k]);
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
        case D_ROLE:
            ok = strcmp(val, "worker") == 0 || strcmp(val, "ps") == 0;
            d->ps = strcmp(val, "ps") == 0;
            expect = "worker or ps (a parameter server)";
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
            st = pml__add_link(&r->b, a, b, bw, lat);
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
    pml_dot_source_name(r->src, "machine", name, cap);
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
        if (strcmp(sym->name, "cores_of") == 0) { /* either form: whose cores the CPUs are */
            size_t len = strspn(v, "0123456789abcdef");
            if (len != 16 || v[16])
                return pml_fail(PML_EFORMAT,
                                "%s: graph attribute cores_of='%s' must be a machine fingerprint "
                                "(16 hex digits, as pml topo prints)",
                                r->src, P(v));
            memcpy(r->b.m->cores_of, v, 17);
            continue;
        }
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
            ok = a == T_NODES
                     ? pml_dot_int(v, 1, MAX_NODES, &T.i[a])
                     : pml_dot_int(v, 0, a == T_PS_NODES ? MAX_NODES : MAX_COMPUTE, &T.i[a]);
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
    if (st == PML_OK) st = pml__machine_finalize_src(m, r.src);
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
    {"reference-cluster",
     "digraph \"reference-cluster\" { graph [kind=machine, "
     "topology=\"1*synthetic:pack:1 numa:1(memory=120GB) core:16 pu:2; "
     "6*synthetic:pack:1 numa:1(memory=60GB) core:8 pu:2; "
     "3*synthetic:pack:1 numa:1(memory=30GB) core:4 pu:2\", ps_nodes=3, cpu_flops=\"64G\", "
     "cpu_mem_bw=\"40G\", network_bw=\"10Gb\", network_latency=\"50us\"]; }"},
};

#define NNAMED (sizeof named_machines / sizeof named_machines[0])

const char *const *pml_machine_names(void)
{
    static const char *const names[] = {"flexflow-p100", "flexflow-k80", "cpu-1socket",
                                        "cpu-2socket", "reference-cluster", NULL};
    _Static_assert(sizeof names / sizeof names[0] == NNAMED + 1, "named machines");
    return names;
}

int pml__named_machine(const char *name)
{
    for (size_t k = 0; k < NNAMED; k++)
        if (name && strcmp(name, named_machines[k].name) == 0) return (int)k;
    return -1;
}

pml_status pml__load_named(int k, pml_machine *m)
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
            "// One node per device (kind=cpu|gpu|hub, node_id, flops, mem_bw, mem, cores, role),\n"
            "// one edge per full-duplex link (bw, latency). Format: planner/machine_file.c.\n",
            m->name, m->fingerprint, nkind[PML_DEV_CPU], nkind[PML_DEV_GPU], nkind[PML_DEV_HUB],
            m->nlink);
    fputs("digraph ", f);
    pml_dot_put_quoted(f, m->name);
    fputs(" {\n    graph [kind=machine", f);
    if (m->cores_of[0]) fprintf(f, ", cores_of=\"%s\"", m->cores_of);
    fputs("];\n\n", f);
    char b1[64], b2[64], b3[64];
    for (int i = 0; i < m->ndev; i++) {
        const pml_device *d = &m->dev[i];
        fputs("    ", f);
        pml_dot_put_quoted(f, d->name);
        fprintf(f, " [kind=%s, node_id=%d", pml__dev_kind_names[d->kind], d->node);
        if (d->kind != PML_DEV_HUB) {
            fmt_qty(b1, sizeof b1, d->flops, Q_FLOPS);
            fmt_qty(b2, sizeof b2, d->mem_bw, Q_BW);
            fmt_qty(b3, sizeof b3, d->mem_bytes, Q_BYTES);
            fprintf(f, ", flops=\"%s\", mem_bw=\"%s\", mem=\"%s\"", b1, b2, b3);
            if (d->kind == PML_DEV_CPU) fprintf(f, ", cores=%d", d->cores);
            if (d->ps) fputs(", role=ps", f);
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

