/* pml — planner: machine model, cost model, parallel configs and plans, the task-graph builder,
 * the execution simulator (with delta simulation) and the search.
 *
 * A machine is a graph of devices (cores or core groups, accelerators, and hubs such as a
 * socket's memory, a PCIe switch or a network, which only carry traffic) and full-duplex links.
 * A plan gives every operator a parallel config: a degree per splittable dimension (sample,
 * parameter = output channels, attribute = output rows) and the compute device of each part.
 * The task-graph builder turns (model, machine, plan) into forward, backward, transfer,
 * gradient-sync and update tasks; the simulator times them; the runtime (next layer) executes
 * the same tasks. */
#ifndef PML_PLANNER_H
#define PML_PLANNER_H

#include "models/models.h"
#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ machine */

typedef enum pml_dev_kind {
    PML_DEV_CPU = 0, /* a core or a group of cores */
    PML_DEV_GPU = 1, /* an accelerator (simulated unless present) */
    PML_DEV_HUB = 2, /* memory, switch, NIC, network: carries traffic, runs no task */
    PML_DEV_KIND_COUNT
} pml_dev_kind;

typedef struct pml_device {
    char name[64];       /* unique: "core0", "node3/gpu1", "node3/pcie", "network" */
    pml_dev_kind kind;
    int node;            /* cluster node (0 for a single machine; -1 for a shared network hub) */
    double flops;        /* peak fp32 FLOP/s (compute devices) */
    double mem_bw;       /* device memory bandwidth, bytes/s (compute devices) */
    double mem_bytes;    /* memory capacity, bytes (compute devices; 0 = unlimited) */
    int cores;           /* CPU device: cores in the group */
    int first_core;      /* CPU device on this machine: hwloc logical index of its first core */
    bool present;        /* on this machine: its kernels can be measured and run */
    bool ps;             /* a parameter server (role=ps): under sync=ps it holds and updates a
                          * shard of the parameters, which replicas push gradients to and pull
                          * parameters from (planner/taskgraph.c); pml_plan_ps computes on the
                          * other devices. Other plans use it as any compute device */
} pml_device;

typedef struct pml_link {
    int a, b;            /* device ids */
    double bw;           /* bytes/s in each direction (full duplex) */
    double latency;      /* seconds */
} pml_link;

typedef struct pml_machine {
    char name[64];
    char fingerprint[17];  /* 16 hex digits: a hash of everything that shapes costs */
    int ndev;
    pml_device *dev;
    int nlink;
    pml_link *link;
    /* filled by pml_machine_finalize(): */
    int ncompute;          /* devices that run tasks (CPU, GPU), in device-id order */
    int *compute;          /* compute index -> device id */
    int *compute_of;       /* device id -> compute index, or -1 for hubs */
    int nserver;           /* compute devices that are parameter servers (pml_device.ps) */
    /* Routes between compute devices, as directed link resources: resource 2*l is link l in
     * its a->b direction, 2*l+1 is b->a. route(i, j) for compute indices i != j. */
    int *route_off, *route_len, *route_res;
    double *route_bw;      /* bottleneck bandwidth of the route (bytes/s) */
    double *route_lat;     /* summed latency of the route (seconds) */
    /* this machine only (pml_machine_load of NULL / "" / "this"): */
    char cpu_model[96];    /* hwloc's CPUModel; hashed into the fingerprint instead of the
                            * measured numbers, so it changes with the hardware only */
    int measured;          /* 1: numbers measured by this load, 2: read from the disk cache,
                            * 0: not measured (any other source) */
    bool busy;             /* measured (1) while other processes kept the machine busy: the
                            * numbers are the best seen so far, cached as provisional and
                            * measured again by the next load */
    double handoff;        /* this machine: seconds for a core to hand work to another,
                            * measured at every load (0: not measured); its core links carry
                            * half of it as latency, so a route between cores costs it */
    double xcore_bw;       /* this machine: bytes/s at which a core reads and rewrites data
                            * another core of its node last wrote (cache lines move between
                            * the cores); 0: not measured, not charged */
    double xshared_bw;     /* this machine: bytes/s at which a core rewrites data other cores
                            * hold read (each line's other copies invalidated first: an optimizer
                            * updating parameters every replica read); 0: not charged */
    double xupdate_bw;     /* this machine: the same for the optimizer itself (Adam over the
                            * parameters other cores read, with its gradients and state): per byte
                            * of parameters, the time it takes beyond the same update alone;
                            * 0: not measured (xshared_bw is charged) */
    double core_cache;     /* this machine: bytes of a core's private caches (L2): what another
                            * core can still hold of data it touched (more has gone to the shared
                            * cache or memory, and costs a core no more than its own data) */
    /* a machine file's (graph attribute cores_of): its CPU devices are cores of the machine with
     * this fingerprint ("" when not said), as the ranks of an mpirun on one host are: on that
     * machine the cost model measures their kernels rather than costing them from peak numbers */
    char cores_of[17];
} pml_machine;

/** Loads a machine. \p spec is:
 *  "this:N"            this machine's first N cores (their costs measured as this machine's);
 *  NULL, "" or "this"  this machine, from hwloc: one CPU device per core, a memory hub per
 *                      package (NUMA), links measured once with a memcpy and cached on disk;
 *  a named machine     "flexflow-p100", "flexflow-k80", "cpu-1socket", "cpu-2socket",
 *                      "reference-cluster" (see pml_machine_names());
 *  "synthetic:DESC"    a hwloc synthetic topology, e.g. "synthetic:pack:2 core:8 pu:1";
 *  FILE.xml            a hwloc XML export;
 *  FILE.dot            a cluster description (see the README).
 * Errors name the file or spec and the thing at fault. \return PML_OK or an error; on error
 * \p m is empty. */
pml_status pml_machine_load(const char *spec, pml_machine *m);
/* ---------------------------------------------------------------- other processes' load */

/** CPU time at one moment: busy seconds of all CPUs (/proc/stat, steal included; 0 when it
 * cannot be read), this process's own CPU seconds, and a monotonic wall clock in seconds. */
typedef struct pml_cpu_snap {
    double busy, self, wall;
} pml_cpu_snap;

/** Takes a snapshot of this machine's CPU time (planner/load.c). */
void pml_cpu_snap_take(pml_cpu_snap *s);
/** \return the share of \p ncpu cores that other processes used between snapshots \p a and
 * \p b (with ncpu 1: cores' worth, 0.5 = half a core), 0 when unknown. /proc/stat counts 10 ms
 * ticks: windows shorter than about 0.2 s cannot tell a tenth of a core from nothing (never
 * more than all the machine's cores, though a short window can count a whole tick in it). */
double pml_foreign_load(const pml_cpu_snap *a, const pml_cpu_snap *b, int ncpu);
/** pml_foreign_load from \p a to now, as a share of all this machine's online CPUs. */
double pml_foreign_load_since(const pml_cpu_snap *a);
/** Waits (up to \p max_s seconds) for a half second in which others use less than \p quiet of
 * \p ncpu cores. \return the last half second's foreign load. */
double pml_wait_quiet(double max_s, double quiet, int ncpu);

/* ---------------------------------------------------------------- this machine's calibration */

/** How this machine is calibrated: memcpy bandwidth and single-core sgemm FLOP/s, measured
 * while other processes leave the machine quiet, under the cache entry's lock (one process
 * measures, concurrent ones wait and read its result), cached by fingerprint, and checked by a
 * short sgemm probe at every load: a machine clearly faster than its cache says was measured
 * under load, and is measured again. The hooks let tests replace the measurement, the probe
 * and the load source; ctx is passed to each. */
typedef struct pml_calib_opts {
    const char *cache_dir; /* NULL: pml_cache_dir(NULL); "": no disk cache */
    /* the full measurement (about 0.05 s); NULL: memcpy 32 MiB best of 4, sgemm 512^3 best of 3 */
    pml_status (*measure)(void *ctx, double *copy_bw, double *flops);
    /* the short check of cached numbers (a few ms); NULL: sgemm 512^3, best of 2 after one */
    pml_status (*probe)(void *ctx, double *flops);
    /* CPU time snapshots for the quiet check; NULL: pml_cpu_snap_take */
    void (*snap)(void *ctx, pml_cpu_snap *s);
    void *ctx;
    double quiet;        /* cores others may use while measuring (0.15) */
    double window;       /* seconds a quiet check watches at least (0.25; see pml_foreign_load) */
    int tries;           /* measurements before settling for a busy one (3; a provisional cache
                          * is measured again once per load) */
    double retry_wait;   /* seconds before a second try, twice that before a third... (0.1) */
    double contradict;   /* a probe this much faster than the cache re-measures (0.15) */
    double lock_wait;    /* seconds to wait for another process's calibration (PML_CACHE_LOCK_WAIT) */
} pml_calib_opts;

/** \return the default calibration options (values in parentheses above). */
pml_calib_opts pml_calib_opts_default(void);
/** pml_machine_load("this") with calibration options \p o (NULL: the defaults). */
pml_status pml_machine_load_this(pml_machine *m, const pml_calib_opts *o);

/** \return this machine's fingerprint (as pml_machine_load("this") gives it, from hwloc alone:
 * nothing is measured), "" when hwloc cannot read the topology. Found once a process. */
const char *pml_machine_this_fingerprint(void);
/** \return a NULL-terminated list of the named machines. */
const char *const *pml_machine_names(void);
/** Checks devices and links (positive bandwidths, connected compute devices, ...), computes the
 * compute list, routes and fingerprint. Called by every loader; call it after building a
 * machine by hand. */
pml_status pml_machine_finalize(pml_machine *m);
void pml_machine_free(pml_machine *m);
/** A machine of \p m's first \p n compute devices (in compute order) and every hub, named
 * "NAME:n" (pml train --threads N runs on the first N cores of this machine). */
pml_status pml_machine_first_cores(const pml_machine *m, int n, pml_machine *out);
/** As pml_machine_first_cores, with compute devices first .. first + n - 1 (a process that
 * shares this machine with others takes its own cores). */
pml_status pml_machine_some_cores(const pml_machine *m, int first, int n, pml_machine *out);
/** Writes the machine as a cluster DOT file (atomically), in the explicit form: loading it
 * gives the same devices, links and fingerprint (for this machine: the same numbers, but its
 * devices load as not present, so the fingerprint differs). */
pml_status pml_machine_write_dot(const pml_machine *m, const char *path);
/** The cluster DOT text of a finalised machine in a malloc'd, NUL-terminated buffer (*len bytes
 * without the NUL). \return PML_OK, PML_EINVAL (not finalised, unwritable name) or PML_ENOMEM. */
pml_status pml_machine_format_dot(const pml_machine *m, char **text, size_t *len);
/** Reads a cluster DOT text (\p source names it in messages, and its folder is where a template's
 * topology="FILE.xml" is looked for). \return PML_OK or an error; on error \p m is empty. */
pml_status pml_machine_parse_dot(const char *text, size_t len, const char *source, pml_machine *m);
/** A machine from a parsed cluster DOT file (pml_dot_parse), e.g. for pml viz. */
pml_status pml_machine_from_dot(const pml_dot *d, pml_machine *m);
/** \return true when \p spec names a machine without a file: "this", a named machine or
 * "synthetic:DESC". */
bool pml_machine_is_spec(const char *spec);
/** A drawing of a finalised machine for pml_viz_render / pml_viz_write (models.h): devices
 * coloured by kind, grouped by cluster node, links labelled with bandwidth and latency. Free the
 * view with pml_viz_free(). \return PML_OK or an error. */
pml_status pml_viz_machine(const pml_machine *m, pml_viz **view);
/** Route between compute devices i and j (compute indices): *len directed link resources. */
static inline const int *pml_machine_route(const pml_machine *m, int i, int j, int *len)
{
    int k = i * m->ncompute + j;
    *len = m->route_len[k];
    return m->route_res + m->route_off[k];
}

/* ================================================================ cost model */

/* Seconds for the kernels of one part of an op, and for moving bytes. Measured on this machine's
 * cores (cached on disk by machine fingerprint), analytic (roofline) for devices not present. */
typedef struct pml_costmodel pml_costmodel;

typedef struct pml_cost_opts {
    bool measure;          /* measure present devices (default true); false: analytic everywhere */
    const char *cache_dir; /* NULL: pml_cache_dir(NULL); "" = no disk cache */
    int repeats;           /* timed runs per measurement (median), default 5 */
    double cache_bytes;    /* last-level cache, for warm/cold blending of measurements;
                            * 0: this machine's (hwloc) */
    double private_bytes;  /* a core's private (level-2) cache: when a step's working set passes
                            * it, updates and syncs are timed from the shared cache; 0: this
                            * machine's (hwloc; none known: timed warm) */
    double lock_wait;      /* seconds to wait for another process holding the cache file's lock
                            * (then the model goes on without the disk); 0: PML_CACHE_LOCK_WAIT */
    double crowd_compute;  /* > 0: pml_cost_crowding's factors for every CPU device, instead of */
    double crowd_memory;   /* measuring them (both at least 1; 0: measured) */
} pml_cost_opts;

pml_status pml_cost_create(const pml_graph *g, const pml_machine *m, const pml_cost_opts *o,
                           pml_costmodel **out);
void pml_cost_destroy(pml_costmodel *c);
/** Forward and backward seconds of node \p id on compute device \p dev for the part covering
 * region \p r (of a batch of \p r.n1 - r.n0 samples). Cached in memory. Kernel time only: the
 * runtime's per-task overhead and zeroing the gradient buffers a backward accumulates into are
 * not included; the backward is 0 for a node whose backward does not run (no parameter
 * upstream or in it), the input's costs are 0. An invalid id or device gives INFINITY. */
double pml_cost_fwd(pml_costmodel *c, int id, int dev, pml_region r);
double pml_cost_bwd(pml_costmodel *c, int id, int dev, pml_region r);
/** How much slower work on compute device \p dev runs while every other core of its node runs
 * too (they share memory bandwidth and the last-level cache): *compute for arithmetic (sgemm in
 * the caches), *memory for streaming from memory; each >= 1. Measured once per machine (a
 * second's fraction; cached with the kernels) for this machine's cores, 1 and 1 for devices
 * not measured (see pml_cost_opts.crowd_compute). */
void pml_cost_crowding(pml_costmodel *c, int dev, double *compute, double *memory);
/** The share (0..1) of the forward (\p bwd false) or backward time of node \p id's part on
 * \p dev covering \p r that moving its bytes at the device's memory bandwidth takes, as far as
 * a step's working set misses the caches (0 when it fits): how much of it crowding slows as
 * memory (0 on a device that does not crowd: see pml_cost_crowding). */
double pml_cost_memory_share(pml_costmodel *c, int id, int dev, pml_region r, bool bwd);
/** Seconds for the optimizer update of \p floats parameters on compute device \p dev, zeroing
 * their gradients after (as the plan executor does), the parameters in one contiguous range. */
double pml_cost_update(pml_costmodel *c, int dev, double floats);
/** pml_cost_update() of parameters in \p ranges contiguous ranges (a parameter-split linear
 * layer's weight slice is a range per input row), one of \p shares cores of a node updating as
 * many at the same time (replicas' shares of a slice, or the slices of a parameter split): they
 * share the memory bandwidth. */
double pml_cost_update_share(pml_costmodel *c, int dev, double floats, double ranges, int shares);
/** Seconds to sum \p floats partial values into a buffer on \p dev (gradient accumulation). */
double pml_cost_reduce(pml_costmodel *c, int dev, double floats);
/** pml_cost_reduce() of values in \p ranges contiguous ranges (a region of rows of a tensor is
 * a range per sample and channel). */
double pml_cost_reduce_ranges(pml_costmodel *c, int dev, double floats, double ranges);
/** Seconds to add \p floats gradients of replicas into the first replica's buffer on \p dev,
 * zeroing them (a sync in shared memory), in \p ranges contiguous ranges. */
double pml_cost_sync(pml_costmodel *c, int dev, double floats, double ranges);
/** pml_cost_sync() of one of \p shares cores of a node summing as many shares of the same
 * gradients at the same time (a sync in shared memory split between the replicas' cores): they
 * share the memory bandwidth. */
double pml_cost_sync_share(pml_costmodel *c, int dev, double floats, double ranges, int shares);
/** Seconds to zero \p floats values in \p ranges contiguous ranges on \p dev. */
double pml_cost_zero(pml_costmodel *c, int dev, double floats, double ranges);
/** Writes to the disk cache what is not there yet (atomically, under the cache file's lock,
 * merged with what other processes wrote). Each measurement is written as it is made, so this
 * only retries a write that failed then (and reports it) or replaces a bad file. Call it after
 * planning. \return PML_OK (also when another process held the lock too long: nothing is
 * written), or PML_EIO naming the file. */
pml_status pml_cost_save(pml_costmodel *c);
/** \return the default options (measure, default cache folder, 5 repeats); a NULL \p o in
 * pml_cost_create means these. */
pml_cost_opts pml_cost_opts_default(void);
/** \return how many measurements this cost model has made (one per part timed, forward and
 * backward together, and one per update or reduce calibration); 0 when every answer came from
 * the disk cache or the roofline. */
long pml_cost_measurements(const pml_costmodel *c);
/** \return the disk cache file, or "" when there is none (cache_dir "", no measured device, or
 * a machine without a fingerprint). */
const char *pml_cost_cache_file(const pml_costmodel *c);
/** \return the bytes of last-level cache the model takes a training step to have: the options'
 * cache_bytes, else, when it measures, what this machine's cores can use (measured once, kept in
 * the cache file: on a shared machine less than hwloc's size), else hwloc's size. */
double pml_cost_cache_bytes(const pml_costmodel *c);

/* ================================================================ plans */

#define PML_MAX_PARTS 256

enum { PML_DIM_SAMPLE = 0, PML_DIM_PARAM = 1, PML_DIM_ATTR = 2, PML_NDIMS = 3 };

typedef struct pml_opcfg {
    int deg[PML_NDIMS];          /* parts along sample, param (channels), attribute (rows) */
    int16_t dev[PML_MAX_PARTS];  /* compute index of each part; parts in (n, c, h) row-major */
} pml_opcfg;

static inline int pml_opcfg_parts(const pml_opcfg *c) { return c->deg[0] * c->deg[1] * c->deg[2]; }

typedef enum pml_sync_kind {
    PML_SYNC_ALLREDUCE = 0, /* bucketed ring all-reduce (hierarchical across nodes) */
    PML_SYNC_PS = 1,        /* parameter servers: push gradients, update on the server, pull */
} pml_sync_kind;

typedef struct pml_plan {
    char strategy[32];      /* "data", "model", "owt", "mesh", "search", "file" */
    int batch;              /* global batch */
    int nnodes;             /* = graph nnodes */
    pml_opcfg *cfg;         /* one per graph node, indexed by node id */
    pml_sync_kind sync;
    double bucket_bytes;    /* all-reduce bucket size (DDP default 25 MB) */
} pml_plan;

pml_status pml_plan_init(pml_plan *p, const pml_graph *g, int batch);
void pml_plan_free(pml_plan *p);
pml_status pml_plan_copy(pml_plan *dst, const pml_plan *src);
/** Region of part \p part of node \p id under config \p c, for a global batch. */
pml_region pml_plan_part_region(const pml_graph *g, int id, const pml_opcfg *c, int batch,
                                int part);
/** Checks one config: degrees divide the dims and are allowed by the op, devices exist and are
 * distinct. The message names the node. */
pml_status pml_opcfg_check(const pml_graph *g, const pml_machine *m, int batch, int id,
                           const pml_opcfg *c);
/** Checks every config of a plan. */
pml_status pml_plan_check(const pml_plan *p, const pml_graph *g, const pml_machine *m);

/* Baselines (pml_plan_init'd by the caller or here). */
pml_status pml_plan_data_parallel(pml_plan *p, const pml_graph *g, const pml_machine *m, int batch);
pml_status pml_plan_model_parallel(pml_plan *p, const pml_graph *g, const pml_machine *m,
                                   int batch);
pml_status pml_plan_owt(pml_plan *p, const pml_graph *g, const pml_machine *m, int batch);
/** The parameter-server layout of a machine that names its servers (pml_device.ps): data
 * parallel with sync=ps over the other compute devices, the batch split over as many of them as
 * divide it, every node giving the same share of its devices (so each worker node computes),
 * the servers holding and updating the parameters. \return PML_OK, or PML_EINVAL when the
 * machine has no server or nothing but servers. */
pml_status pml_plan_ps(pml_plan *p, const pml_graph *g, const pml_machine *m, int batch);
/** Mesh-TensorFlow-style layout: devices as a mesh (dims mesh[0..nmesh)), and for each of
 * sample/param/attr the mesh axis it maps to (-1: not split). */
pml_status pml_plan_mesh(pml_plan *p, const pml_graph *g, const pml_machine *m, int batch,
                         const int *mesh, int nmesh, const int layout[PML_NDIMS]);

/* ---------------------------------------------------------------- plan files
 *
 * A plan file is the model's DOT file (models/models.h) with kind=plan, so the model can be
 * rebuilt from it, plus:
 *   graph attributes  machine="flexflow-k80"      the machine's name (optional)
 *                     fingerprint="5b601b70cbccaaa6"  its fingerprint (optional: a plan written
 *                                                  by hand may leave it out; then not checked)
 *                     batch=1024                   the global batch (required)
 *                     strategy=search              how it was made (optional; default "file")
 *                     sync=allreduce|ps            gradient synchronisation (default allreduce)
 *                     bucket_bytes=25000000        all-reduce bucket size (default 25e6; > 0)
 *   per operator      config="n=2 c=1 h=1"         degrees along samples (n), output channels
 *                                                  (c) and output rows (h); a degree left out is 1
 *                     devices="0,1"                the compute-device index (0 .. ncompute-1, as
 *                                                  pml topo lists them) of each part, parts in
 *                                                  (n, c, h) row-major order (h fastest); "a-b"
 *                                                  is the range a, a+1, ..., b
 * Every operator (the input and the loss too) needs both. The writer adds comments naming the
 * compute devices; editing a config or device list by hand gives a plan that reads and
 * simulates as long as it is valid. Reading checks everything and names the file and the
 * operator at fault: missing or malformed config/devices, degrees that do not divide the
 * dimension or splits the op cannot do, device lists too short or too long for the degrees,
 * duplicate devices, devices the machine lacks, another model (operators missing, extra, or
 * with another op, output, inputs or parameters), another batch, another machine. */

typedef struct pml_plan_read_opts {
    const pml_graph *model; /* non-NULL: the plan must be for this model; the plan's configs are
                             * indexed by its node ids. NULL: the model the file carries */
    int batch;              /* > 0: the plan must be for this global batch */
    bool any_machine;       /* accept a plan whose fingerprint is another machine's, as long as
                             * its devices exist on the machine given (what-if simulations) */
} pml_plan_read_opts;

/** What a plan file says about the machine it was made for. */
typedef struct pml_plan_info {
    char machine[64];      /* its machine= ("" when absent) */
    char fingerprint[17];  /* its fingerprint= ("" when absent) */
} pml_plan_info;

/** Reads a plan file. \p o may be NULL (no model, any batch, same machine). \p m may be NULL:
 * then devices are only checked to be distinct and as many as the parts, and the fingerprint is
 * not checked. \p g receives the model the file carries (finalised) when o->model is NULL, and is
 * not touched otherwise (it may then be NULL); \p p is initialised here; \p info may be NULL.
 * \return PML_OK or an error naming \p path and the operator; on error \p g and \p p are empty. */
pml_status pml_plan_read_ext(const char *path, const pml_plan_read_opts *o, const pml_machine *m,
                             pml_graph *g, pml_plan *p, pml_plan_info *info);
/** pml_plan_read_ext() on \p len bytes of DOT text; \p source names it in messages. */
pml_status pml_plan_parse(const char *text, size_t len, const char *source,
                          const pml_plan_read_opts *o, const pml_machine *m, pml_graph *g,
                          pml_plan *p, pml_plan_info *info);
/** pml_plan_read_ext() on a parsed DOT file (pml_dot_parse), e.g. for pml viz. */
pml_status pml_plan_from_dot(const pml_dot *d, const pml_plan_read_opts *o, const pml_machine *m,
                             pml_graph *g, pml_plan *p, pml_plan_info *info);
/** Reads a plan for model \p g (finalised) and machine \p m (may be NULL; see above). */
pml_status pml_plan_read(const char *path, const pml_graph *g, const pml_machine *m, pml_plan *p);
/** Reads a plan and the model it carries into \p g (initialised here); \p m may be NULL. */
pml_status pml_plan_load(const char *path, pml_graph *g, const pml_machine *m, pml_plan *p);
/** The plan file text of \p p for model \p g and machine \p m (may be NULL: no machine attributes)
 * in a malloc'd, NUL-terminated buffer (*len bytes without the NUL). The plan is checked first.
 * \return PML_OK, PML_EINVAL (an invalid plan, names that cannot be written) or PML_ENOMEM. */
pml_status pml_plan_format(const pml_plan *p, const pml_graph *g, const pml_machine *m, char **text,
                           size_t *len);
/** Writes pml_plan_format()'s text to \p path atomically (pml_write_file_atomic): on error the
 * old file, if any, is left as it was. */
pml_status pml_plan_write(const char *path, const pml_plan *p, const pml_graph *g,
                          const pml_machine *m);
/** A device list as plan files spell it, in part order: "0-3,8,9" (runs of three or more
 * consecutive devices as ranges), NUL-terminated in \p buf, cut at \p cap bytes. */
void pml_plan_format_devices(const int16_t *dev, int n, char *buf, size_t cap);
/** A drawing of plan \p p of model \p g for pml_viz_render / pml_viz_write (models.h): the model's
 * view (pml_viz_model, honouring o->collapse) with each operator filled with the colour of its
 * device (several devices: stripes, one per part), its parallel config and device list added to
 * its label, a legend of the devices used, and a title naming the machine, batch and strategy.
 * \p m (may be NULL) names the devices; \p info (may be NULL) names the machine without it.
 * \return PML_OK or an error; free the view with pml_viz_free(). */
pml_status pml_viz_plan(const pml_graph *g, const pml_plan *p, const pml_machine *m,
                        const pml_plan_info *info, const pml_viz_opts *o, pml_viz **view);

/* ================================================================ task graph */

typedef enum pml_task_kind {
    PML_TASK_FWD = 0,   /* forward kernel of one part */
    PML_TASK_BWD,       /* backward kernel of one part (input and parameter gradients) */
    PML_TASK_XFER,      /* move a region of an activation or gradient between devices */
    PML_TASK_SYNC,      /* gradient synchronisation: an all-reduce bucket, or a PS push/pull */
    PML_TASK_UPDATE,    /* optimizer update of one part's parameter slice */
    PML_TASK_KIND_COUNT
} pml_task_kind;

const char *pml_task_kind_name(pml_task_kind k);

typedef struct pml_task {
    uint8_t kind;
    uint8_t grad;        /* XFER: carries a gradient (backward direction) */
    int16_t dev;         /* FWD/BWD/UPDATE: compute index; XFER: source compute index */
    int16_t dst;         /* XFER: destination compute index */
    int node;            /* FWD/BWD/UPDATE: the op; XFER: the tensor's producer; SYNC: first op */
    int part;            /* FWD/BWD/UPDATE: part index; XFER: producer part; SYNC: bucket */
    int cpart;           /* XFER: consumer part (fwd) / producing consumer part (grad); else -1 */
    int cnode;           /* XFER: consumer node; else -1 */
    int input;           /* XFER between operators: which input of cnode the tensor is */
    pml_region r;        /* FWD/BWD/UPDATE: part region; XFER: region of the producer tensor */
    double bytes;        /* XFER/SYNC: bytes moved per device */
    double cost;         /* seconds */
    double mem;          /* bytes it keeps on its device (dst for XFER) for the step */
    double membound;     /* FWD/BWD: the share (0..1) of its kernel's time that is memory traffic
                          * (pml_cost_memory_share; 0 where nothing crowds): crowding slows that
                          * share as memory */
    uint64_t key;        /* program order: a topological order of the task graph */
    int npred, nsucc;
    int *succ;           /* nsucc successor task ids */
    int *pred;           /* npred predecessor task ids */
    int nres;            /* resources it occupies: compute device(s) or directed links */
    int *res;            /* resource ids: compute index c -> c; directed link resource r -> ncompute + r */
    /* SYNC: the compute devices taking part, and the parameter slices it sums: members[2k] is
     * an operator, members[2k+1] its channel slice. In shared memory a SYNC per replica: the
     * one on device `dev` sums share `share` of `nshare` of the slices into group[0]'s
     * gradients (the share that device's updates take); else one (dev -1), across the group */
    int ngroup;
    int16_t *group;
    int nmembers;
    int *members;
    /* UPDATE: this replica updates share `share` of `nshare` equal shares of the slice (replicas
     * in shared memory split the work), reading the gradient summed on device `gdev` (by the
     * SYNC of the same share, on its device) */
    int16_t share, nshare, gdev;
    /* with parameter servers on role=ps devices (a slice cut over the servers' shards): the
     * UPDATE and the XFERs in and out of one server cover [piece0, piece1) of the slice's floats
     * (as fractions of them, in the order the executor lays them out); 0, 0: all of it */
    double piece0, piece1;
} pml_task;

/** The compute device (index) that runs task \p t, as the plan executor assigns it: a compute
 * task on its device, a transfer on the receiver's (a gradient is summed into its buffer; in
 * shared memory a forward transfer is a bare dependency, which the receiver takes at once: on
 * the producer's core it would wait behind whatever else the producer's output readied there,
 * as the simulator, which runs it on the receiver, does not assume), a sync on its device (a
 * share's in shared memory), else the first replica's. */
static inline int pml_task_worker(const pml_task *t)
{
    if (t->kind == PML_TASK_XFER) return t->dst;
    if (t->kind == PML_TASK_SYNC) return t->dev >= 0 || t->ngroup == 0 ? t->dev : t->group[0];
    return t->dev;
}

typedef struct pml_taskgraph pml_taskgraph;

/** Builds the task graph of one training step of plan \p p (costs from \p c; \p c may be NULL for
 * a graph without costs, e.g. for the runtime before measuring). */
pml_status pml_taskgraph_build(const pml_graph *g, const pml_machine *m, const pml_plan *p,
                               pml_costmodel *c, pml_taskgraph **out);
void pml_taskgraph_free(pml_taskgraph *tg);
/** Number of task slots (some may be free after delta updates); pml_taskgraph_task returns NULL
 * for a free slot. */
int pml_taskgraph_size(const pml_taskgraph *tg);
const pml_task *pml_taskgraph_task(const pml_taskgraph *tg, int id);
/** Tasks in program order (a topological order), *n of them. */
const int *pml_taskgraph_order(pml_taskgraph *tg, int *n);
int pml_taskgraph_resources(const pml_taskgraph *tg);

/* ================================================================ simulator */

typedef struct pml_sim_result {
    double step_seconds;
    int ndevices;
    double *busy;            /* per compute device: seconds running tasks */
    double *peak_memory;     /* per compute device: bytes */
    double kind_seconds[PML_TASK_KIND_COUNT]; /* summed task time per kind */
    double critical_kind[PML_TASK_KIND_COUNT]; /* time per kind on the critical path */
    int critical_len;
    int *critical;           /* task ids on the critical path, first to last */
} pml_sim_result;

typedef struct pml_sim pml_sim;

/** Builds the task graph of \p p and simulates one step. The plan is copied. A plan that does
 * not fit a device's memory is rejected (PML_ENOFIT naming the device and bytes). */
pml_status pml_sim_create(const pml_graph *g, const pml_machine *m, const pml_plan *p,
                          pml_costmodel *c, pml_sim **out);
void pml_sim_destroy(pml_sim *s);
double pml_sim_step_seconds(const pml_sim *s);
/** Delta simulation: changes node \p id's config, rebuilds only the tasks that depend on it and
 * re-times only what follows them. Gives exactly what a full simulation of the new plan gives.
 * On error (e.g. memory) the simulator is unchanged. */
pml_status pml_sim_change(pml_sim *s, int id, const pml_opcfg *c);
const pml_plan *pml_sim_plan(const pml_sim *s);
const pml_taskgraph *pml_sim_taskgraph(const pml_sim *s);
/** The seconds task \p id (of pml_sim_taskgraph) runs in the simulated step: its cost, or more
 * for a kernel that crowding slowed (see pml_cost_crowding). */
double pml_sim_task_seconds(const pml_sim *s, int id);
/** Fills \p r (free with pml_sim_result_free). */
pml_status pml_sim_result_get(const pml_sim *s, pml_sim_result *r);
void pml_sim_result_free(pml_sim_result *r);
/** Per-task start and end seconds of the last simulation (NULL for free slots' entries). */
const double *pml_sim_start(const pml_sim *s);
const double *pml_sim_end(const pml_sim *s);

/* ================================================================ search */

typedef struct pml_search_opts {
    double budget_seconds;   /* stop after this long (0: use iterations) */
    long iterations;         /* per chain (0: use the time budget) */
    uint64_t seed;
    int chains;              /* independent chains (threads); default: cores */
    double beta;             /* acceptance exp(-beta * dt / t_current); 0: default */
    double min_gain;         /* the plan found replaces the best baseline only when it is at
                                least this fraction faster; 0: the default, 1% (closer than
                                the simulator's error, the baseline's fewer transfers are the
                                safer bet); negative: any gain */
    /* on the calling thread, about every 0.2 s: the best step time its chain has found so far,
     * its iterations, the seconds since the start (NULL: none) */
    void (*progress)(void *ud, double best_step, long iterations, double seconds);
    /* polled by every chain every 16 iterations, from its thread: non-zero ends the search
     * now, with the best plan found so far (NULL: none) */
    int (*should_stop)(void *ud);
    void *ud;
} pml_search_opts;

typedef struct pml_search_stats {
    long iterations, accepted;
    double seconds;
    double start_step, best_step;
} pml_search_stats;

/** A random legal config for node \p id, fixed by (seed, n): random degrees that divide its
 * dimensions, on a block of devices (the search's proposal). */
void pml_opcfg_random(const pml_graph *g, const pml_machine *m, int batch, int id, uint64_t seed,
                      uint64_t n, pml_opcfg *c);

/** MCMC (Metropolis-Hastings) over parallel configs, starting from data parallel and from the
 * best baseline; \p best receives the best plan found (never slower in simulation than the best
 * baseline, which it replaces only when faster by pml_search_opts.min_gain). */
pml_status pml_search(const pml_graph *g, const pml_machine *m, pml_costmodel *c, int batch,
                      const pml_search_opts *o, pml_plan *best, pml_search_stats *stats);

/* ================================================================ plans by name (plan_for.c) */

/** The planner's version, part of the plan cache's key: bump it when a change to the search, the
 * simulator or the cost model changes which plan is chosen, so cached plans are searched again. */
#define PML_PLANNER_VERSION "6"

typedef struct pml_strategy_opts {
    double budget;       /* search: seconds (0: 5) */
    long iterations;     /* search: iterations per chain instead of a budget (0: the budget) */
    uint64_t seed;       /* search (0: 1) and random (0: 7) */
    int chains;          /* search (0: 1) */
    pml_costmodel *cost; /* search: this cost model (NULL: one made here, saved to the cache) */
    const int *mesh;     /* mesh: axis sizes */
    int nmesh;
    const int *layout;   /* mesh: dimension of each axis (NULL: samples, then channels) */
} pml_strategy_opts;

/** The strategy names pml_plan_strategy takes besides mesh and ps, NULL-terminated: data, model,
 * owt (baselines), search, and hand-made plans: param and attr (every operator split by output
 * channels or rows over all devices where it divides, the rest data parallel), layers
 * (operators alternating between devices), random, one (everything on device 0). */
const char *const *pml_plan_strategies(void);
/** \return true when \p name is a strategy (one of pml_plan_strategies(), mesh, or ps: the
 * parameter-server layout of a machine that names its servers, pml_plan_ps). */
bool pml_plan_is_strategy(const char *name);
/** The plan of strategy \p name for model \p g on machine \p m at \p batch; \p o may be NULL.
 * \return PML_OK, PML_EINVAL for an unknown name (the message lists them), or the planner's
 * error. */
pml_status pml_plan_strategy(const char *name, const pml_graph *g, const pml_machine *m, int batch,
                             const pml_strategy_opts *o, pml_plan *p);
/** A strategy name (a search gets \p budget seconds) or a plan file (which must be for \p batch
 * and, when it names one, for this machine's fingerprint). */
pml_status pml_plan_for(const char *spec, const pml_graph *g, const pml_machine *m, int batch,
                        double budget, pml_plan *p);
/** The plan pml train runs when none is given: a search (\p budget seconds), cached in the
 * cache folder's plans/ (pml_cache_dir) by the planner's version, the model's DOT text, the
 * machine's fingerprint and the batch; concurrent runs search once (the cache entry's lock).
 * One device: data parallel, not cached. \p desc receives the plan file, or "search" when it
 * could not be cached. */
pml_status pml_plan_cached(const pml_graph *g, const pml_machine *m, int batch, double budget,
                           pml_plan *p, char *desc, size_t cap);
/** This machine, or its first \p threads cores (0: all), in \p here, and the plan \p spec names
 * for it (pml_plan_for with a 5-second search; NULL: pml_plan_cached with 3 seconds); \p desc
 * receives what the plan is. \return PML_OK, PML_EINVAL when the machine has fewer cores than
 * \p threads, or the error of loading or planning (then \p here and \p p are empty). */
pml_status pml_plan_here(const pml_graph *g, const char *spec, int threads, int batch,
                         pml_machine *here, pml_plan *p, char *desc, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
