/* pml — planner: this machine. Its topology from hwloc (one CPU device per core, as any CPU
 * topology: machine.c), its numbers measured: single-threaded OpenBLAS sgemm 512x512x512, best of
 * 3, for flops; a 32 MiB memcpy, best of 4, for the link bandwidth of a core to its package hub
 * and mem_bw (bytes read + written per second: 2x the copy rate). Measured on a quiet machine and
 * cached in the cache folder (pml_cache_dir) in machine-FINGERPRINT.txt: the fingerprint hashes
 * the topology and the CPU model, not the measured numbers. A cache file that does not parse, or
 * whose numbers are not plausible, is measured again and rewritten; one measured on a busy
 * machine, or contradicted by a later probe, too (see below). */
#include "machine_int.h"

#include <pthread.h>
#include <stdatomic.h>

#include <cblas.h>
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

/* ---------------------------------------------------------------- calibration
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

/* ---------------------------------------------------------------- hand-offs between cores
 *
 * What it costs for a core to pass work to another: one thread writes a flag, the other, pinned
 * to another core and spinning on it, sees it and answers (a ping-pong of cache lines: the best
 * case of a worker handing a task to another). It differs from machine to machine and day to
 * day (0.1 to 0.7 us seen on 2-core VMs of one kind), so it is measured at every load, in a few
 * milliseconds, and becomes the latency of the core links: the simulator charges it on every
 * dependency between tasks on different cores. */

#define HANDOFF_ROUNDS 4000
#define PML_MAX_CORES_PROBED 1024

typedef struct pingpong {
    _Atomic int turn; /* 0: the first thread's, 1: the second's; -1: stop */
    hwloc_topology_t topo;
    int core;
    int touch; /* on its turn the second thread: 0 answers, 1 rewrites buf, 2 reads it */
    float *buf;
    size_t n;
    float sink;
} pingpong;

void pml__pin_core(hwloc_topology_t topo, int core)
{
    hwloc_obj_t o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)core);
    if (!o) o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, (unsigned)core);
    if (o && o->cpuset) hwloc_set_cpubind(topo, o->cpuset, HWLOC_CPUBIND_THREAD);
}

static void *ponger(void *arg)
{
    pingpong *pp = arg;
    pml__pin_core(pp->topo, pp->core);
    for (;;) {
        int t;
        while ((t = atomic_load_explicit(&pp->turn, memory_order_acquire)) == 0) {
        }
        if (t < 0) break;
        if (pp->touch == 1)
            for (size_t i = 0; i < pp->n; i++) pp->buf[i] += 1.0f;
        else if (pp->touch == 2)
            for (size_t i = 0; i < pp->n; i++) pp->sink += pp->buf[i];
        atomic_store_explicit(&pp->turn, 0, memory_order_release);
    }
    return NULL;
}

/* Starts pp's second thread (pinned to pp->core) and pins the calling thread to core a, keeping
 * its binding in *old for partner_stop. \return false when the thread cannot start. */
static bool partner_start(pingpong *pp, int a, pthread_t *th, hwloc_cpuset_t *old)
{
    atomic_store(&pp->turn, 0);
    *old = hwloc_bitmap_alloc();
    if (*old) hwloc_get_cpubind(pp->topo, *old, HWLOC_CPUBIND_THREAD);
    if (pthread_create(th, NULL, ponger, pp) != 0) {
        hwloc_bitmap_free(*old);
        return false;
    }
    pml__pin_core(pp->topo, a);
    return true;
}

/* Gives the second thread its turn (answer, rewrite or read, by pp->touch) and waits for it. */
static void partner_turn(pingpong *pp)
{
    atomic_store_explicit(&pp->turn, 1, memory_order_release);
    while (atomic_load_explicit(&pp->turn, memory_order_acquire) != 0) {
    }
}

/* Ends the second thread and gives the calling thread its binding back. */
static void partner_stop(pingpong *pp, pthread_t th, hwloc_cpuset_t old)
{
    atomic_store_explicit(&pp->turn, -1, memory_order_release);
    pthread_join(th, NULL);
    if (old) {
        hwloc_set_cpubind(pp->topo, old, HWLOC_CPUBIND_THREAD);
        hwloc_bitmap_free(old);
    }
}

/* ---------------------------------------------------------------- traffic between cores
 *
 * What it costs a core to rewrite data another core touched last (an optimizer's update, a sum
 * of gradients, a backward pass accumulating into a buffer another core zeroed): the other
 * core, pinned, either rewrites a 256 KiB buffer (its lines are then modified in its cache) or
 * reads it (shared), then this core reads and rewrites it. Per byte, the best of a few rounds,
 * within 50 ms. On the 2-core VMs pml was built on: ~30 GB/s after a write, ~6 GB/s after a
 * read (each line's other copy invalidated, one at a time), against ~100 GB/s from its own
 * cache. The simulator charges it on the bytes a task rewrites that another core touched
 * (planner/taskgraph.c). */

#define TRAFFIC_FLOATS 65536

static double traffic_bw(hwloc_topology_t topo, int a, int b, int touch)
{
    pingpong pp = {.topo = topo, .core = b, .touch = touch, .n = TRAFFIC_FLOATS};
    pp.buf = aligned_alloc(64, TRAFFIC_FLOATS * sizeof(float));
    if (!pp.buf) return 0;
    for (size_t i = 0; i < pp.n; i++) pp.buf[i] = (float)(i & 255);
    pthread_t th;
    hwloc_cpuset_t old;
    if (!partner_start(&pp, a, &th, &old)) {
        free(pp.buf);
        return 0;
    }
    double best = INFINITY;
    const double deadline = pml_now() + 0.05;
    for (int round = 0; round < 40 && pml_now() < deadline; round++) {
        partner_turn(&pp);
        const double t0 = pml_now();
        float *restrict x = pp.buf;
        for (size_t i = 0; i < pp.n; i++) x[i] = x[i] * 0.5f + 1.0f;
        const double t = pml_now() - t0;
        if (round > 0 && t < best) best = t;
    }
    partner_stop(&pp, th, old);
    free(pp.buf);
    return isfinite(best) && best > 0 ? TRAFFIC_FLOATS * sizeof(float) / best : 0;
}

/* What the optimizer's update of parameters another core holds read costs beyond the same update
 * alone, as bytes of parameters a second: Adam over TRAFFIC_FLOATS parameters (its gradients
 * just written, its state this core's), right after the other core read the parameters, and
 * alone, in turn; the medians of a few dozen rounds within 50 ms. The plain rewrite above
 * misses part of it: the update's other streams hold up the invalidations (the data-parallel
 * mlp's update of a share ran 60 us a step, 35 us by the plain rewrite's rate). Nothing beyond
 * the update alone: 1e15. 0 when it cannot be measured. */
static double update_bw(hwloc_topology_t topo, int a, int b)
{
    const size_t n = TRAFFIC_FLOATS;
    pingpong pp = {.topo = topo, .core = b, .touch = 2, .n = n};
    float *mem = aligned_alloc(64, 4 * n * sizeof(float));
    if (!mem) return 0;
    pp.buf = mem;
    float *g = mem + n;
    pml_optim o;
    pml_optim_defaults(&o, PML_OPTIM_ADAM);
    o.m = g + n;
    o.v = o.m + n;
    o.n = n;
    for (size_t i = 0; i < n; i++) mem[i] = (float)(i & 255) / 256.0f;
    memset(o.m, 0, 2 * n * sizeof(float));
    pml_optim_begin_step(&o);
    pthread_t th;
    hwloc_cpuset_t old;
    if (!partner_start(&pp, a, &th, &old)) {
        free(mem);
        return 0;
    }
    enum { ROUNDS = 41 };
    double shared[ROUNDS], alone[ROUNDS];
    int k = 0;
    const double deadline = pml_now() + 0.05;
    for (int round = 0; round <= ROUNDS && pml_now() < deadline; round++) {
        for (int other = 1; other >= 0; other--) {
            if (other) partner_turn(&pp);
            for (size_t i = 0; i < n; i++) g[i] = 1e-3f * (float)((i * 2654435761u) >> 24) - 0.1f;
            const double t0 = pml_now();
            pml_optim_apply(&o, mem, g, 0, n);
            memset(g, 0, n * sizeof(float));
            const double t = pml_now() - t0;
            if (round > 0) (other ? shared : alone)[k] = t; /* the first warms up */
        }
        if (round > 0) k++;
    }
    partner_stop(&pp, th, old);
    free(mem);
    if (k < 3) return 0;
    const double extra = pml_median(shared, k) - pml_median(alone, k);
    return extra > 0 ? n * sizeof(float) / extra : 1e15;
}

/* Seconds of one hand-off between cores a and b (hwloc logical core indices): the best of a few
 * batches of round trips, each round trip two hand-offs. 0 when it cannot be measured. */
static double handoff_seconds(hwloc_topology_t topo, int a, int b)
{
    pingpong pp = {.topo = topo, .core = b};
    pthread_t th;
    hwloc_cpuset_t old;
    if (!partner_start(&pp, a, &th, &old)) return 0;
    /* A core that another process keeps busy answers once per time slice: the batches stop at
     * a deadline, so that costs 50 ms, not seconds, and the hand-off measured is that slow. */
    double best = INFINITY;
    const double deadline = pml_now() + 0.05;
    for (int batch = 0; batch < 5; batch++) {
        const double t0 = pml_now();
        int i = 0;
        while (i < HANDOFF_ROUNDS / 5) {
            partner_turn(&pp);
            if (++i % 64 == 0 && pml_now() > deadline) break;
        }
        const double t = (pml_now() - t0) / (2.0 * i);
        if ((batch > 0 || i < HANDOFF_ROUNDS / 5) && t < best) best = t; /* the first warms up */
        if (pml_now() > deadline) break;
    }
    partner_stop(&pp, th, old);
    return isfinite(best) ? best : 0;
}

/* The median hand-off between the first core and up to three others; the core links' latency
 * becomes half of it (a route from core to core crosses two). */
static void calibrate_handoff(pml_machine *m, const pml_calib_opts *o)
{
    if (o->measure) return; /* fake measurements in tests: defaults */
    int cores[PML_MAX_CORES_PROBED], nc = 0; /* the present CPU devices (before finalize) */
    for (int d = 0; d < m->ndev && nc < PML_MAX_CORES_PROBED; d++)
        if (m->dev[d].present && m->dev[d].kind == PML_DEV_CPU) cores[nc++] = d;
    if (nc < 2) return;
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) return;
    if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        return;
    }
    hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)m->dev[cores[0]].first_core);
    double l2 = 0; /* the largest cache above the core that covers it alone */
    for (hwloc_obj_t up = core ? core->parent : NULL; up; up = up->parent)
        if (hwloc_obj_type_is_cache(up->type) && up->attr &&
            hwloc_bitmap_isequal(up->cpuset, core->cpuset))
            l2 = (double)up->attr->cache.size;
    double h[3], wb[3], rb[3], ub[3];
    int n = 0, nw = 0, nr = 0, nu = 0;
    const int a = m->dev[cores[0]].first_core;
    for (int k = 1; k < nc && n < 3; k += (nc + 2) / 3) {
        const int b = m->dev[cores[k]].first_core;
        const double t = handoff_seconds(topo, a, b), w = traffic_bw(topo, a, b, 1),
                     r = traffic_bw(topo, a, b, 2), u = update_bw(topo, a, b);
        if (t > 0) h[n++] = t;
        if (u > 0) ub[nu++] = u;
        if (w > 0) wb[nw++] = w;
        if (r > 0) rb[nr++] = r;
    }
    hwloc_topology_destroy(topo);
    if (nw > 0) m->xcore_bw = pml_median(wb, nw);
    m->core_cache = l2 > 0 ? l2 : 1 << 20;
    if (nr > 0) m->xshared_bw = pml_median(rb, nr);
    if (nu > 0) m->xupdate_bw = pml_median(ub, nu);
    if (n == 0) return;
    const double handoff = pml_median(h, n);
    m->handoff = handoff;
    for (int l = 0; l < m->nlink; l++) {
        const pml_device *x = &m->dev[m->link[l].a], *y = &m->dev[m->link[l].b];
        if ((x->present && x->kind == PML_DEV_CPU) || (y->present && y->kind == PML_DEV_CPU))
            m->link[l].latency = handoff / 2;
    }
}

/* The CPU's name, part of the fingerprint: the kernel's (/proc/cpuinfo "model name", read once
 * at boot), else hwloc's; trimmed. hwloc's differs from load to load on some VMs (the CPUID
 * brand string from its x86 backend, or the kernel's name when that backend gives up), which
 * would change the fingerprint and lose every cache. */
static void cpu_model(char *out, size_t cap, const char *hwloc_model)
{
    char line[512];
    const char *name = NULL;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && !name && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *c = strchr(line, ':');
        if (c) name = c + 1;
    }
    if (f) fclose(f);
    if (!name || !*name) name = hwloc_model;
    while (*name == ' ' || *name == '\t') name++;
    size_t n = strlen(name);
    while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t' || name[n - 1] == '\n')) n--;
    if (n == 0) snprintf(out, cap, "unknown CPU");
    else snprintf(out, cap, "%.*s", (int)n, name);
}

/* This machine's devices and links from hwloc, numbers not measured yet, and its fingerprint. */
static pml_status build_this(pml_machine *m)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) return pml_fail(PML_ENOMEM, "this machine: out of memory");
    pml__cpu_topo t;
    pml_status st;
    if (hwloc_topology_load(topo) != 0)
        st = pml_fail(PML_EIO, "this machine: hwloc cannot read the topology: %s", strerror(errno));
    else
        st = pml__cpu_topo_from_hwloc(topo, "this machine", &t);
    hwloc_topology_destroy(topo);
    if (st != PML_OK) return st;
    /* some VMs put less memory in their NUMA nodes than the system has */
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (phys > t.mem) t.mem = phys;
    pml__cpu_params cp = pml__cpu_defaults;
    cp.present = true;
    cp.flops = cp.core_mem_bw = cp.core_bw = 1; /* placeholders until measured */
    st = pml__machine_from_cpu_topo(m, "this", &t, &cp, "this machine");
    cpu_model(m->cpu_model, sizeof m->cpu_model, t.model);
    pml__cpu_topo_free(&t);
    if (st != PML_OK) return st;
    pml__machine_fingerprint(m); /* hashes the topology and the CPU model only: the cache key */
    return PML_OK;
}

static pml_status load_this(pml_machine *m, const pml_calib_opts *o)
{
    pml_status st = build_this(m);
    if (st != PML_OK) return st;
    measured x = {0, 0};
    if ((st = calibrate(m, o, &x)) != PML_OK) return st;
    for (int i = 0; i < m->ndev; i++)
        if (m->dev[i].kind == PML_DEV_CPU) {
            m->dev[i].flops = x.flops;
            m->dev[i].mem_bw = 2 * x.copy_bw; /* bytes read and written */
        }
    for (int l = 0; l < m->nlink; l++)
        if (m->dev[m->link[l].a].present || m->dev[m->link[l].b].present) m->link[l].bw = x.copy_bw;
    calibrate_handoff(m, o);
    return pml__machine_finalize_src(m, "this machine");
}

static pthread_once_t this_fp_once = PTHREAD_ONCE_INIT;
static char this_fp[17];

static void find_this_fp(void)
{
    pml_machine m;
    memset(&m, 0, sizeof m);
    if (build_this(&m) == PML_OK) memcpy(this_fp, m.fingerprint, sizeof this_fp);
    pml_machine_free(&m);
}

const char *pml_machine_this_fingerprint(void)
{
    pthread_once(&this_fp_once, find_this_fp);
    return this_fp;
}

pml_status pml_machine_load_this(pml_machine *m, const pml_calib_opts *o)
{
    memset(m, 0, sizeof *m);
    pml_calib_opts opts = o ? *o : pml_calib_opts_default();
    pml_status st = load_this(m, &opts);
    if (st != PML_OK) pml_machine_free(m);
    return st;
}

