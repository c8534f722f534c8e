/* pml — planner: the cost model. Seconds for one part of an op's forward and backward kernels,
 * for optimizer updates, gradient sums and zeroing, on each compute device of a machine:
 * measured on this machine's cores (the kernels the executors run, timed on the part's own
 * sub-shape, warm and cold; updates and sums calibrated at a few sizes), a roofline elsewhere.
 * Measurements are cached in memory and on disk (shared between processes under a lock), keyed
 * by everything that determines the time, so a plan is costed the same way in every run; each
 * section below says how its numbers come about.
 *
 * Thread-safety: every query takes one mutex; measurements run under it, so two search chains
 * never measure at the same time (on a 2-core machine they would disturb each other). */
#include "cost_int.h"


#include <cblas.h>
#include <hwloc.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* names of the calibrations in the cache file */
static const char *const cal_name[CAL_KINDS] = {"adam+clear", "sum", "sum+clear", "zero"};

/* the roofline of each device kind (see analytic_part) */
static const roofline roof_gpu = {0.65, 0.75, 0.30, 0.80, 5e-6, 20e-6, 5e-6, 0, 0};
static const roofline roof_cpu = {0.60, 0.75, 0.30, 0.60, 1e-6, 5e-6, 0.0, 4 << 20, 3.0};

/* ---------------------------------------------------------------- small helpers */

static uint64_t hash_str(const char *s)
{
    return pml_hash_str(PML_HASH_INIT, s);
}

static uint64_t hash_q(int id, int cls, int n, int ce, int he)
{
    int v[5] = {id, cls, n, ce, he};
    uint64_t h = pml_hash(PML_HASH_INIT, v, sizeof v);
    return h ^ (h >> 29);
}


/* ---------------------------------------------------------------- tables */

static bool q_grow(pml_costmodel *c)
{
    size_t ncap = c->qcap ? 2 * c->qcap : 1024;
    qent *nq = calloc(ncap, sizeof *nq);
    if (!nq) return false;
    for (size_t i = 0; i < c->qcap; i++) {
        qent *e = &c->q[i];
        if (!e->used) continue;
        size_t j = hash_q(e->id, e->cls, e->n, e->ce, e->he) & (ncap - 1);
        while (nq[j].used) j = (j + 1) & (ncap - 1);
        nq[j] = *e;
    }
    free(c->q);
    c->q = nq;
    c->qcap = ncap;
    return true;
}

static qent *q_find(pml_costmodel *c, int id, int cls, int n, int ce, int he)
{
    if (!c->qcap) return NULL;
    size_t j = hash_q(id, cls, n, ce, he) & (c->qcap - 1);
    for (; c->q[j].used; j = (j + 1) & (c->qcap - 1)) {
        qent *e = &c->q[j];
        if (e->id == id && e->cls == cls && e->n == n && e->ce == ce && e->he == he) return e;
    }
    return NULL;
}

/* Remembers an answer; a full table only costs a recomputation later. */
static void q_put(pml_costmodel *c, int id, int cls, int n, int ce, int he, double fwd, double bwd)
{
    if (2 * (c->qn + 1) > c->qcap && !q_grow(c)) return;
    size_t j = hash_q(id, cls, n, ce, he) & (c->qcap - 1);
    while (c->q[j].used) j = (j + 1) & (c->qcap - 1);
    c->q[j] = (qent){id, cls, n, ce, he, true, fwd, bwd};
    c->qn++;
}

static bool m_grow(ment **tab, size_t *cap)
{
    size_t ncap = *cap ? 2 * *cap : 256;
    ment *nt = calloc(ncap, sizeof *nt);
    if (!nt) return false;
    for (size_t i = 0; i < *cap; i++) {
        if (!(*tab)[i].key) continue;
        size_t j = hash_str((*tab)[i].key) & (ncap - 1);
        while (nt[j].key) j = (j + 1) & (ncap - 1);
        nt[j] = (*tab)[i];
    }
    free(*tab);
    *tab = nt;
    *cap = ncap;
    return true;
}

static ment *m_find(ment *tab, size_t cap, const char *key)
{
    if (!cap) return NULL;
    size_t j = hash_str(key) & (cap - 1);
    for (; tab[j].key; j = (j + 1) & (cap - 1))
        if (strcmp(tab[j].key, key) == 0) return &tab[j];
    return NULL;
}

/* Inserts or replaces; \return false when out of memory. */
static bool m_put(ment **tab, size_t *cap, size_t *n, const char *key, const double v[4])
{
    ment *e = m_find(*tab, *cap, key);
    if (e) {
        memcpy(e->v, v, sizeof e->v);
        return true;
    }
    if (2 * (*n + 1) > *cap && !m_grow(tab, cap)) return false;
    char *k = strdup(key);
    if (!k) return false;
    size_t j = hash_str(key) & (*cap - 1);
    while ((*tab)[j].key) j = (j + 1) & (*cap - 1);
    (*tab)[j].key = k;
    memcpy((*tab)[j].v, v, sizeof(*tab)[j].v);
    (*n)++;
    return true;
}

static void m_free(ment *tab, size_t cap)
{
    for (size_t i = 0; i < cap; i++) free(tab[i].key);
    free(tab);
}

/* ---------------------------------------------------------------- disk cache */

/* Results are keyed by everything that determines the time: op, attributes, input shapes
 *   (and whether they hold relu output), output shape, which inputs get dx, n, ce, he. They are
 *   cached in memory and on disk, in CACHE_DIR/costs-FINGERPRINT.tsv (a text file: a version
 *   line, one "key TAB fwd TAB bwd TAB cold-fwd TAB cold-bwd" line per measurement, "-" for a
 *   time not measured, an "end TAB count" trailer). Processes share the file under its cache
 *   lock (pml_cache_lock_take): a measurement first takes the lock and reads what others wrote
 *   since (a part another process measured meanwhile is not measured again), and is written
 *   (atomically, merged with the file) before the lock is let go, so concurrent runs measure
 *   each part once and lose no line. A lock that cannot be had within PML_CACHE_LOCK_WAIT (a
 *   stuck holder) leaves this model without the disk from then on. A file that is not exactly
 *   that (another version or machine, garbage, truncated, non-finite or negative values) is
 *   ignored as a whole and overwritten at the next write. */


static bool key_ok(const char *s, size_t len)
{
    if (len == 0 || len > KEY_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return false;
    return true;
}

/* seconds, or "-": not measured (NAN) */
static bool parse_seconds(const char *s, const char *end, double *out)
{
    if (end - s == 1 && *s == '-') {
        *out = NAN;
        return true;
    }
    if (s == end || end - s > 40) return false;
    char buf[48];
    memcpy(buf, s, (size_t)(end - s));
    buf[end - s] = 0;
    char *e;
    errno = 0;
    double v = strtod(buf, &e);
    if (*e || errno || !isfinite(v) || v < 0 || v > 1e6) return false;
    *out = v;
    return true;
}

/* Parses a cache file into a table; \return false (and an empty table) unless the whole file
 * is valid. */
static bool parse_cache(const char *text, size_t len, const char *header, ment **tab, size_t *cap,
                        size_t *n)
{
    *tab = NULL;
    *cap = *n = 0;
    const char *p = text, *end = text + len;
    size_t hl = strlen(header);
    if (len < hl + 1 || memcmp(p, header, hl) != 0 || p[hl] != '\n') return false;
    p += hl + 1;
    char key[KEY_MAX + 1];
    bool ended = false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || ended) goto bad; /* truncated line, or data after the trailer */
        const char *t1 = memchr(p, '\t', (size_t)(nl - p));
        if (!t1) goto bad;
        if ((size_t)(t1 - p) == 3 && memcmp(p, "end", 3) == 0) {
            char *e;
            errno = 0;
            unsigned long long cnt = strtoull(t1 + 1, &e, 10);
            if (e != nl || errno || t1 + 1 == nl || cnt != *n) goto bad;
            ended = true;
            p = nl + 1;
            continue;
        }
        if (!key_ok(p, (size_t)(t1 - p))) goto bad;
        double v[4];
        const char *f = t1 + 1;
        for (int i = 0; i < 4; i++) {
            const char *fe = i < 3 ? memchr(f, '\t', (size_t)(nl - f)) : nl;
            if (!fe || (i == 3 && memchr(f, '\t', (size_t)(nl - f))) ||
                !parse_seconds(f, fe, &v[i]))
                goto bad;
            f = fe + 1;
        }
        if (isnan(v[0]) && isnan(v[2])) goto bad; /* we never write an entry without a time */
        memcpy(key, p, (size_t)(t1 - p));
        key[t1 - p] = 0;
        if (m_find(*tab, *cap, key)) goto bad; /* we never write a key twice */
        if (!m_put(tab, cap, n, key, v)) goto bad;
        p = nl + 1;
    }
    if (!ended) goto bad;
    return true;
bad:
    m_free(*tab, *cap);
    *tab = NULL;
    *cap = *n = 0;
    return false;
}

/* Reads the cache file at path. \return 1 valid (table filled), 0 no file, -1 invalid. */
static int read_cache(const pml_costmodel *c, const char *path, ment **tab, size_t *cap, size_t *n)
{
    *tab = NULL;
    *cap = *n = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    char *text;
    size_t len;
    if (pml_read_file(path, CACHE_MAX_BYTES, &text, &len) != PML_OK) return -1;
    bool ok = parse_cache(text, len, c->header, tab, cap, n);
    free(text);
    return ok ? 1 : -1;
}

static int cmp_ment_key(const void *a, const void *b)
{
    return strcmp(((const ment *)a)->key, ((const ment *)b)->key);
}

/* Brings in what other processes wrote to the file since memory last matched it: entries memory
 * lacks, and times it has not measured. Caller holds the mutex and the file's lock. */
static void disk_refresh(pml_costmodel *c)
{
    pml_cache_stamp now = pml_cache_stamp_of(c->path);
    if (pml_cache_stamp_same(&now, &c->disk)) return;
    ment *disk;
    size_t dcap, dn;
    int rc = read_cache(c, c->path, &disk, &dcap, &dn);
    if (rc < 0) c->dirty = true; /* replace a bad file */
    for (size_t i = 0; rc == 1 && i < dcap; i++) {
        if (!disk[i].key) continue;
        ment *m = m_find(c->m, c->mcap, disk[i].key);
        if (!m) {
            m_put(&c->m, &c->mcap, &c->mn, disk[i].key, disk[i].v);
            continue;
        }
        for (int j = 0; j < 4; j++) {
            if (!isnan(m->v[j])) continue;
            if (!isnan(disk[i].v[j])) m->v[j] = disk[i].v[j];
        }
        /* a time the file lacks that memory has: write it */
        for (int j = 0; j < 4; j++) c->dirty |= isnan(disk[i].v[j]) && !isnan(m->v[j]);
    }
    /* entries the file lacks (a writer that did not merge, a file removed): write them */
    c->dirty |= c->mn > (rc == 1 ? dn : 0);
    if (rc == 1) m_free(disk, dcap);
    c->disk = now;
}

/* Takes the file's lock and refreshes memory from the file. \return false when the lock cannot
 * be had: then the model goes on without the disk (a stuck holder is not waited for twice).
 * Caller holds the mutex. */
static bool disk_lock(pml_costmodel *c, pml_cache_lock *l)
{
    if (!c->path || c->lock_state != LOCK_OK) return false;
    if (!pml_cache_lock_take(l, c->dir, c->name, c->o.lock_wait)) {
        c->lock_state = l->timed_out ? LOCK_TIMED_OUT : LOCK_UNUSABLE;
        return false;
    }
    disk_refresh(c);
    return true;
}

/* Writes the table (sorted, so files diff well) with header and trailer: all of the file and
 * what this process measured. Caller holds the mutex and the file's lock, and refreshed. */
static pml_status write_cache(pml_costmodel *c)
{
    ment *list = malloc((c->mn ? c->mn : 1) * sizeof *list);
    if (!list) return pml_fail(PML_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < c->mcap; i++)
        if (c->m[i].key) list[k++] = c->m[i];
    qsort(list, k, sizeof *list, cmp_ment_key);
    pml_afile af;
    pml_status st;
    if ((st = pml_afile_open(&af, c->path)) != PML_OK) {
        free(list);
        return st;
    }
    fprintf(af.f, "%s\n", c->header);
    for (size_t i = 0; i < k; i++) {
        fputs(list[i].key, af.f);
        for (int j = 0; j < 4; j++) {
            if (isnan(list[i].v[j]))
                fputs("\t-", af.f);
            else
                fprintf(af.f, "\t%.9g", list[i].v[j]);
        }
        fputc('\n', af.f);
    }
    fprintf(af.f, "end\t%zu\n", k);
    free(list);
    if (ferror(af.f)) {
        st = pml_fail(PML_EIO, "cannot write '%s': %s", c->path, strerror(errno ? errno : EIO));
        pml_afile_abort(&af);
        return st;
    }
    if ((st = pml_afile_commit(&af)) != PML_OK) return st;
    c->disk = pml_cache_stamp_of(c->path);
    c->dirty = false;
    return PML_OK;
}

/* Writes what memory has that the file lacks, and lets the lock go. A write that fails is tried
 * again at pml_cost_save(), which reports it. Caller holds the mutex. */
static void disk_unlock(pml_costmodel *c, pml_cache_lock *l)
{
    if (c->dirty) {
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", pml_errmsg());
        if (write_cache(c) != PML_OK) pml_fail(PML_OK, "%s", saved);
    }
    pml_cache_unlock(l);
}

/* The cache folder for \p o (created), or NULL (no disk cache). */
static char *cache_folder(const pml_cost_opts *o)
{
    if (!o->cache_dir) return pml_cache_dir(NULL);
    if (!o->cache_dir[0]) return NULL;
    char *dir = strdup(o->cache_dir);
    if (!dir) return NULL;
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') dir[--len] = 0;
    pml_cache_open(dir); /* one that cannot be created fails the first write, which says so */
    return dir;
}

/* ---------------------------------------------------------------- keys */

/* Everything that determines a part's time, as text (no tabs). */
static void node_key(const pml_costmodel *c, int id, int n, int ce, int he, char *buf, size_t cap)
{
    const pml_graph *g = &c->g;
    const pml_node *nd = &g->nodes[id];
    const pml_attrs *a = &nd->a;
    size_t k = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(buf + k, k < cap ? cap - k : 0, __VA_ARGS__);                            \
        if (w_ > 0) k += (size_t)w_;                                                               \
    } while (0)
    PUT("%s", pml_op_name(nd->op));
    for (int i = 0; i < nd->nin; i++) {
        const int u = nd->in[i];
        const pml_shape s = g->nodes[u].out;
        PUT(" in=%dx%dx%d%s%s", s.c, s.h, s.w, c->nonneg[u] ? "+" : "", c->wants[u] ? "d" : "");
    }
    PUT(" out=%dx%dx%d", nd->out.c, nd->out.h, nd->out.w);
    PUT(" k=%dx%d s=%dx%d p=%d,%d,%d,%d act=%d bias=%d g=%d cp=%d cm=%d r=%.6g bwd=%d", a->kh,
        a->kw, a->sh, a->sw, a->pt, a->pb, a->pl, a->pr, a->act, a->bias, a->global, a->count_pad,
        a->ceil_mode, (double)a->rate, c->run_bwd[id] ? 1 : 0);
    if (a->groups > 1 || a->dh > 1 || a->dw > 1)
        PUT(" groups=%d d=%dx%d", a->groups, a->dh, a->dw);
    if (a->axis != 0) PUT(" axis=%d", a->axis); /* concat along rows or columns */
    if (nd->op == PML_OP_ACTIVATION) /* the function: an exponential costs more than a max */
        PUT(" fn=%s", pml_fn_name(a->fn));
    if (a->depth > 0) /* 3-D: planes and the depth's window */
        PUT(" depth=%d kd=%d sd=%d dd=%d pd=%d,%d", a->depth, a->kd, a->sd, a->dd, a->pf, a->pk);
    PUT(" n=%d c=%d h=%d", n, ce, he);
#undef PUT
    if (k >= cap) buf[cap - 1] = 0;
}

/* ---------------------------------------------------------------- analytic */

/* Analytic (devices not present, or opts.measure false): a roofline per part
 *   t = launch + max(flops / (peak * eff * u_f), bytes / (mem_bw * bw_eff * u_b))
 *   flops  pml_ops[op].flops per sample x n x the part's fraction of the output (ce/C x he/H);
 *          backward of conv/linear = 2x forward (dW and dX gemms), 1x when dx is not needed;
 *          other ops' backward = 1x forward (at least one op per output element).
 *   bytes  forward: the input regions the part reads (pml_node_in_region) + its output +
 *          its slice of the parameters (params are per output channel) + aux written;
 *          backward: dy + the inputs it reads + 2x each dx region (read-modify-write) +
 *          parameters + 2x their gradients, + y when a fused relu or max-pool masks with it.
 *   eff    kernel efficiency against peak, bw_eff against memory bandwidth (roof_gpu, roof_cpu).
 *   launch a kernel's fixed cost (roof_gpu, roof_cpu).
 *   caches (CPU): a part whose bytes fit in the caches streams faster than memory allows:
 *          mem_bw x (1 + 3 / (1 + bytes / 4 MiB)), from 4x for small parts to 1x for huge ones
 *          (time stays monotonic in bytes).
 *   small parts: a device reaches its efficiency only with enough work in flight (FlexFlow
 *          measures this: halving a small layer's batch does not halve its time on a GPU).
 *          u = min(1, sqrt(work / work_sat)), work_sat = what the device does at peak in
 *          20 us (GPU) / 5 us (CPU compute); GPU memory traffic likewise with 5 us of bytes.
 *          Time stays monotonic in the part's size, and half a small part costs ~0.71x.
 *   update (Adam, then the gradients zeroed): 16 bytes read + 16 written per float; reduce
 *          (y += x): 12 bytes per float; sync (y += x, x = 0): 16 bytes per float; zeroing: 4. */

static double region_floats(pml_region r, int w)
{
    if (pml_region_empty(r)) return 0;
    return (double)(r.n1 - r.n0) * (r.c1 - r.c0) * (r.h1 - r.h0) * w;
}

/* u = min(1, sqrt(work / sat)): the small-part efficiency factor. */
static double small_part(double work, double sat)
{
    if (sat <= 0 || work >= sat) return 1.0;
    if (work <= 0) return 1.0;
    return sqrt(work / sat);
}

static double roof_time(const roofline *rf, double peak, double bw, double eff, double flops,
                        double bytes)
{
    double tc = flops > 0 ? flops / (peak * eff * small_part(flops, peak * rf->sat_compute)) : 0;
    double cache = rf->cache_bytes > 0 ? 1.0 + rf->cache_gain / (1.0 + bytes / rf->cache_bytes) : 1;
    double tm =
        bytes > 0 ? bytes / (bw * cache * rf->bw_eff * small_part(bytes, bw * rf->sat_bytes)) : 0;
    return rf->launch + (tc > tm ? tc : tm);
}

static void device_peaks(const devinfo *d, const roofline **rf, double *peak, double *bw)
{
    const bool gpu = d->kind == PML_DEV_GPU;
    *rf = gpu ? &roof_gpu : &roof_cpu;
    *peak = d->flops > 0 ? d->flops : gpu ? DEFAULT_GPU_FLOPS : DEFAULT_CPU_FLOPS;
    *bw = d->mem_bw > 0 ? d->mem_bw : gpu ? DEFAULT_GPU_BW : DEFAULT_CPU_BW;
}

/* The floats node id's part covering region r reads and writes: the forward's into *fb, the
 * backward's into *bb (bytes), and its forward and backward flops. */
static void part_traffic_bytes(const pml_costmodel *c, int id, pml_region r, double *fb,
                               double *bb, double *ff, double *bf)
{
    const pml_graph *g = &c->g;
    const pml_node *nd = &g->nodes[id];
    const int nin = nd->nin;
    pml_shape in[PML_MAX_INPUTS];
    for (int i = 0; i < nin; i++) in[i] = g->nodes[nd->in[i]].out;
    const double n = r.n1 - r.n0;
    const double frac = ((double)(r.c1 - r.c0) / nd->out.c) * ((double)(r.h1 - r.h0) / nd->out.h);
    const double out_f = region_floats(r, nd->out.w);
    const double flops = pml_ops[nd->op].flops(nd, in, nin) * n * frac;
    double in_f = 0, dx_f = 0;
    for (int i = 0; i < nin; i++) {
        double f = region_floats(pml_node_in_region(g, id, i, r), in[i].w);
        in_f += f;
        if (c->wants[nd->in[i]]) dx_f += f;
    }
    double par_f = 0;
    for (int j = 0; j < nd->nparam; j++)
        par_f += (double)nd->param_size[j] * (double)(r.c1 - r.c0) / nd->out.c;
    const double aux_f = (double)nd->aux_per_sample * n * frac;
    const bool gemm = nd->op == PML_OP_CONV2D || nd->op == PML_OP_LINEAR ||
                      nd->op == PML_OP_MATMUL;
    *ff = flops;
    *fb = 4.0 * (in_f + out_f + par_f + aux_f);
    *bf = gemm ? flops * (dx_f > 0 ? 2.0 : 1.0) : (flops > out_f ? flops : out_f);
    bool reads_x = nd->op != PML_OP_ADD && nd->op != PML_OP_CONCAT && nd->op != PML_OP_FLATTEN &&
                   nd->op != PML_OP_DROPOUT;
    bool reads_y = nd->a.act == PML_ACT_RELU || nd->op == PML_OP_MAXPOOL2D;
    *bb = 4.0 * (out_f + (reads_x ? in_f : 0) + 2.0 * dx_f + 3.0 * par_f + aux_f +
                 (reads_y ? out_f : 0));
}

/* Roofline seconds of node id's part covering region r on device d. */
static void analytic_part(const pml_costmodel *c, int id, const devinfo *d, pml_region r,
                          double *tf, double *tb)
{
    const pml_node *nd = &c->g.nodes[id];
    double fbytes, bbytes, flops, bflops;
    part_traffic_bytes(c, id, r, &fbytes, &bbytes, &flops, &bflops);
    const roofline *rf;
    double peak, bw;
    device_peaks(d, &rf, &peak, &bw);
    const double eff = nd->op == PML_OP_CONV2D   ? rf->eff_conv
                       : nd->op == PML_OP_LINEAR ? rf->eff_linear
                                                 : rf->eff_other;
    *tf = roof_time(rf, peak, bw, eff, flops, fbytes);
    *tb = c->run_bwd[id] ? roof_time(rf, peak, bw, eff, bflops, bbytes) : 0;
}

/* ---------------------------------------------------------------- queries */

/* Warm and cold caches. Run again and again, a kernel finds its weights and inputs in the
 *   caches; inside a training step it finds them there only when the step's working set fits in
 *   the last-level cache (the MLP, the Fashion CNN at batch 32), not when it is much larger (the
 *   flowers CNN: its dense layer's 16 MB of weights come from memory, 1.3x slower). So a part
 *   is timed warm, and, when its graph's working set at that n exceeds half the last-level cache,
 *   cold too: before each cold run 64 MiB are streamed through the caches and then the data the
 *   producer just wrote is read (forward: the inputs; backward: dy). The answer blends the two:
 *   t = warm + f (cold - warm), f = 0 while W <= L/2, 1 from W >= 2L, log-linear between, with
 *   W = 4 (n A + 2 P) bytes (A: activation floats per sample, y and dy; P: parameters, with their
 *   gradients) and L the last-level cache (hwloc; pml_cost_opts.cache_bytes overrides). */

/* Bytes a training step of n samples touches (see the top of the file). */
static double working_set(const pml_costmodel *c, double n)
{
    return 4.0 * (n * c->act_floats + 2.0 * c->param_floats);
}

/* How cold the caches are for a step touching \p bytes: 0 warm ... 1 cold. */
static double cold_fraction(const pml_costmodel *c, double bytes)
{
    const double lo = 0.5 * c->llc, hi = 2.0 * c->llc;
    if (bytes <= lo) return 0;
    if (bytes >= hi) return 1;
    return log(bytes / lo) / log(hi / lo);
}

/* fwd and bwd seconds of a part; caller holds the lock. */
static void part_cost(pml_costmodel *c, int id, int dev, pml_region r, double *tf, double *tb)
{
    const pml_node *nd = &c->g.nodes[id];
    *tf = *tb = 0;
    if (nd->op == PML_OP_INPUT) return;
    /* the part's extents; positions do not change the time enough to key on them */
    int n = r.n1 - r.n0, ce = r.c1 - r.c0, he = r.h1 - r.h0;
    if (n <= 0 || ce <= 0 || he <= 0) return;
    if (ce > nd->out.c) ce = nd->out.c;
    if (he > nd->out.h) he = nd->out.h;
    const devinfo *d = &c->dev[dev];
    qent *e = q_find(c, id, d->cls, n, ce, he);
    if (e) {
        *tf = e->fwd;
        *tb = e->bwd;
        return;
    }
    bool done = false;
    if (d->measured) {
        char key[KEY_MAX + 32];
        node_key(c, id, n, ce, he, key, sizeof key);
        const double f = cold_fraction(c, working_set(c, n));
        ment *m = m_find(c->m, c->mcap, key);
        double v[4] = {NAN, NAN, NAN, NAN};
        if (m) memcpy(v, m->v, sizeof v);
        bool need_warm = f < 1 && isnan(v[0]), need_cold = f > 0 && isnan(v[2]);
        pml_cache_lock lock;
        if ((need_warm || need_cold) && disk_lock(c, &lock)) {
            /* another process may have measured it meanwhile */
            if ((m = m_find(c->m, c->mcap, key))) memcpy(v, m->v, sizeof v);
            need_warm = f < 1 && isnan(v[0]);
            need_cold = f > 0 && isnan(v[2]);
        } else {
            lock.fd = -1;
        }
        done = !need_warm && !need_cold;
        if (!done && pml__cost_measure_part(c, id, n, ce, he, need_warm, need_cold, v)) {
            if (m_put(&c->m, &c->mcap, &c->mn, key, v)) c->dirty = true;
            done = true;
        }
        if (lock.fd >= 0) disk_unlock(c, &lock);
        if (done) {
            *tf = f <= 0 ? v[0] : f >= 1 ? v[2] : v[0] + f * (v[2] - v[0]);
            *tb = f <= 0 ? v[1] : f >= 1 ? v[3] : v[1] + f * (v[3] - v[1]);
        }
    }
    if (!done) {
        /* analytic (or out of memory for a measurement: the roofline is the best we have) */
        pml_region rr = {0, n, 0, ce, 0, he};
        analytic_part(c, id, d, rr, tf, tb);
    }
    q_put(c, id, d->cls, n, ce, he, *tf, *tb);
}

static bool valid_query(const pml_costmodel *c, int id, int dev)
{
    return c && id >= 0 && id < c->g.nnodes && dev >= 0 && dev < c->ndev;
}

double pml_cost_fwd(pml_costmodel *c, int id, int dev, pml_region r)
{
    if (!valid_query(c, id, dev)) return INFINITY;
    double tf, tb;
    pthread_mutex_lock(&c->mu);
    part_cost(c, id, dev, r, &tf, &tb);
    pthread_mutex_unlock(&c->mu);
    return tf;
}

double pml_cost_bwd(pml_costmodel *c, int id, int dev, pml_region r)
{
    if (!valid_query(c, id, dev)) return INFINITY;
    double tf, tb;
    pthread_mutex_lock(&c->mu);
    part_cost(c, id, dev, r, &tf, &tb);
    pthread_mutex_unlock(&c->mu);
    return tb;
}

/* ---------------------------------------------------------------- update, reduce, sync */

/* Updates, reductions, syncs and zeroing on present devices are measured once at a few sizes,
 * doing what the plan executor does (pml_optim_apply with Adam, then the gradients zeroed;
 * y += x; y += x with x zeroed; memset), and interpolated linearly between them; a slice made of
 * many ranges (a parameter-split linear layer's weights: a range per input row; a band of rows
 * of a tensor: a range per sample and channel) adds a range's cost, timed on 1024 ranges of 64
 * floats against one range of as many. Updates and syncs are timed warm (from the shared cache,
 * the core's private caches emptied first, when a step's working set passes those: see
 * cal_private_bytes), and cold with the
 * parameters, optimizer state and sums evicted from the caches and the gradients warm, and
 * blended as above with the working set of a batch of 32; a reduction (partials just written)
 * and zeroing are blended by their own size (warm while their data fit in the caches). Each is
 * timed in two passes over the sizes and the faster kept (a burst of other work on a shared
 * machine rarely spoils both). Replicas in shared memory update shares of a slice at the same
 * time: warm, each core has its caches (a share's own time); cold, they stream from memory
 * together, and memory bandwidth that one core already takes does not grow with cores (on this
 * 2-core VM a flowers-cnn dense layer's two shares each took as long as the whole update alone),
 * so each share is charged the whole slice's cold time. */

/* Piecewise-linear interpolation of the calibration, extended by its last slope. */
static double cal_eval(const double *t, double f)
{
    if (f <= cal_size[0]) return t[0];
    for (int i = 1; i < NCAL; i++)
        if (f <= cal_size[i])
            return t[i - 1] +
                   (t[i] - t[i - 1]) * (f - cal_size[i - 1]) / (cal_size[i] - cal_size[i - 1]);
    double slope = (t[NCAL - 1] - t[NCAL - 2]) / (cal_size[NCAL - 1] - cal_size[NCAL - 2]);
    return t[NCAL - 1] + slope * (f - cal_size[NCAL - 1]);
}

/* How cold the caches are for a calibration of kind: an update's and a sync's as in a step of
 * UPDATE_BATCH samples, whose working set also holds the optimizer state; a reduction's by its
 * own size (the partials and the sum: warm when they fit in the caches), so both are timed
 * (0.5 here). */
static double cal_cold_fraction(const pml_costmodel *c, int kind)
{
    if (kind == CAL_REDUCE || kind == CAL_ZERO) return 0.5;
    return cold_fraction(c, working_set(c, UPDATE_BATCH) + 8.0 * c->param_floats);
}

/* Bytes of the eviction that empties a core's private caches before a warm run of an update or a
 * sync, when a step's working set (as cal_cold_fraction's) passes them: between two updates of a
 * slice the step's other work has pushed it out to the shared cache, and a warm run repeated on
 * its own finds it in the core's (the mlp's halves of dense1, 800 KB of parameters, gradients
 * and optimizer state: 8.9 us timed warm, 10.3 us with the private caches emptied, 13-17 us in a
 * step of two cores). Twice the private caches, within half the shared one; 0: warm runs as they
 * are. */
static size_t cal_private_bytes(const pml_costmodel *c, int kind)
{
    if (!(kind == CAL_UPDATE || kind == CAL_SYNC) || !(c->l2 > 0)) return 0;
    if (working_set(c, UPDATE_BATCH) + 8.0 * c->param_floats <= c->l2) return 0;
    return (size_t)fmin(2.0 * c->l2, 0.5 * c->llc); /* (at most the eviction buffer's) */
}

/* Measures (or loads) the calibration of kind; caller holds the lock. \return false when out of
 * memory. Contiguous ranges of the calibration sizes, and CAL_ROWS ranges of CAL_ROW floats for
 * the cost of a range. */
static bool calibrate(pml_costmodel *c, int kind)
{
    if (c->have_cal[kind]) return true;
    const double f = cal_cold_fraction(c, kind);
    const size_t priv = cal_private_bytes(c, kind);
    /* warm runs after evicting the private caches are another measurement: another key */
    const char *warm_in = priv ? " private-evicted" : "";
    char key[NCAL + 1][80];
    double v[NCAL + 1][4];
    bool need_warm = false, need_cold = false;
    pml_cache_lock lock = {.fd = -1};
    for (int pass = 0; pass < 2; pass++) {
        /* the second look is under the file's lock, after reading what others wrote */
        if (pass == 1 && !((need_warm || need_cold) && disk_lock(c, &lock))) break;
        need_warm = need_cold = false;
        for (int i = 0; i <= NCAL; i++) {
            if (i < NCAL)
                snprintf(key[i], sizeof key[i], "%s floats=%.0f%s", cal_name[kind], cal_size[i],
                         warm_in);
            else
                snprintf(key[i], sizeof key[i], "%s rows=%dx%d%s", cal_name[kind], CAL_ROWS,
                         CAL_ROW, warm_in);
            const ment *m = m_find(c->m, c->mcap, key[i]);
            for (int j = 0; j < 4; j++) v[i][j] = m ? m->v[j] : NAN;
            need_warm |= f < 1 && isnan(v[i][0]);
            need_cold |= f > 0 && isnan(v[i][2]);
        }
    }
    if (need_warm || need_cold) {
        if (!pml__cost_time_calibration(c, kind, need_warm, need_cold, priv, v)) {
            if (lock.fd >= 0) disk_unlock(c, &lock);
            return false;
        }
        for (int i = 0; i <= NCAL; i++)
            if (m_put(&c->m, &c->mcap, &c->mn, key[i], v[i])) c->dirty = true;
        c->measurements++;
    }
    if (lock.fd >= 0) disk_unlock(c, &lock);
    for (int state = 0; state < 2; state++) {
        double *t = c->cal[kind][state];
        for (int i = 0; i < NCAL; i++) {
            t[i] = v[i][2 * state];
            if (i > 0 && t[i] < t[i - 1]) t[i] = t[i - 1]; /* monotonic */
        }
        /* a range's cost: the strided ranges against the same floats in one range */
        const double strided = v[NCAL][2 * state],
                     contiguous = cal_eval(t, (double)CAL_ROWS * CAL_ROW);
        c->cal_range[kind][state] = strided > contiguous ? (strided - contiguous) / CAL_ROWS : 0.0;
    }
    c->have_cal[kind] = true;
    return true;
}

/* the calibration of kind for `floats` in `ranges` ranges, f cold (0 warm .. 1 cold) */
static double cal_blend(const pml_costmodel *c, int kind, double f, double floats, double ranges)
{
    double t[2] = {0, 0};
    for (int state = 0; state < 2; state++) {
        if (state == 0 ? f >= 1 : f <= 0) continue;
        t[state] = cal_eval(c->cal[kind][state], floats);
        if (ranges > 1) t[state] += (ranges - 1) * c->cal_range[kind][state];
    }
    return f <= 0 ? t[0] : f >= 1 ? t[1] : t[0] + f * (t[1] - t[0]);
}

/* Seconds of kind for `floats` in `ranges` ranges on dev, one of `shares` replicas doing as
 * much at the same time (updates). */
static double crowd_memory_locked(pml_costmodel *c, int dev);

static double stream_cost(pml_costmodel *c, int dev, double floats, double ranges, int shares,
                          int kind)
{
    if (!c || dev < 0 || dev >= c->ndev) return INFINITY;
    if (!(floats > 0)) return 0;
    const devinfo *d = &c->dev[dev];
    if (d->measured) {
        pthread_mutex_lock(&c->mu);
        bool ok = calibrate(c, kind);
        double t = 0;
        if (ok && (kind == CAL_REDUCE || kind == CAL_ZERO)) {
            /* the partials and the sum, 8 bytes a float (a zeroed buffer, 4): warm while they
             * fit in the caches */
            const double bytes = (kind == CAL_ZERO ? 4.0 : 8.0) * floats;
            t = cal_blend(c, kind, cold_fraction(c, bytes), floats, ranges);
        } else if (ok) {
            /* Shares stream at the same time. Warm, each core has its caches; cold, from memory,
             * as fast as the cores stream together: a share's own time, slowed by the memory
             * crowding measured on this machine (every core streaming against one alone), and
             * never longer than the whole slice alone. */
            /* (Each core's slice is one block of rows: no core writes between another's.) */
            const double f = cal_cold_fraction(c, kind), k = shares > 1 ? shares : 1;
            const double w = f < 1 ? cal_blend(c, kind, 0, floats, ranges) : 0;
            double cold = f > 0 ? cal_blend(c, kind, 1, floats, ranges) : 0;
            if (f > 0 && k > 1)
                cold = fmin(cold * crowd_memory_locked(c, dev),
                            cal_blend(c, kind, 1, k * floats, k * ranges));
            t = f <= 0 ? w : f >= 1 ? cold : w + f * (cold - w);
        }
        pthread_mutex_unlock(&c->mu);
        if (ok) return t;
    }
    const roofline *rf;
    double peak, bw;
    device_peaks(d, &rf, &peak, &bw);
    static const double bytes_per_float[CAL_KINDS] = {32.0, 12.0, 16.0, 4.0};
    return roof_time(rf, peak, bw, rf->eff_other, 0, bytes_per_float[kind] * floats);
}

double pml_cost_update(pml_costmodel *c, int dev, double floats)
{
    return stream_cost(c, dev, floats, 1, 1, CAL_UPDATE);
}

double pml_cost_update_share(pml_costmodel *c, int dev, double floats, double ranges, int shares)
{
    return stream_cost(c, dev, floats, ranges, shares, CAL_UPDATE);
}

double pml_cost_reduce(pml_costmodel *c, int dev, double floats)
{
    return stream_cost(c, dev, floats, 1, 1, CAL_REDUCE);
}

double pml_cost_reduce_ranges(pml_costmodel *c, int dev, double floats, double ranges)
{
    return stream_cost(c, dev, floats, ranges, 1, CAL_REDUCE);
}

double pml_cost_sync(pml_costmodel *c, int dev, double floats, double ranges)
{
    return stream_cost(c, dev, floats, ranges, 1, CAL_SYNC);
}

double pml_cost_sync_share(pml_costmodel *c, int dev, double floats, double ranges, int shares)
{
    return stream_cost(c, dev, floats, ranges, shares, CAL_SYNC);
}

double pml_cost_zero(pml_costmodel *c, int dev, double floats, double ranges)
{
    return stream_cost(c, dev, floats, ranges, 1, CAL_ZERO);
}

/* ---------------------------------------------------------------- crowding */

/* Crowding (see cost_measure.c) is measured once per machine, kept in the cache file under the
 * key "crowd cores=N" (the factors in its first two fields); an entry whose factors are not in
 * [1, 4] is measured again. Caller holds the lock. */
static void crowd_load(pml_costmodel *c)
{
    char key[64];
    snprintf(key, sizeof key, "crowd cores=%d", c->ncrowd);
    double v[4] = {1, 1, NAN, NAN};
    pml_cache_lock lock = {.fd = -1};
    bool have = false;
    for (int pass = 0; pass < 2 && !have; pass++) {
        /* the second look is under the file's lock, after reading what others wrote */
        if (pass == 1 && !disk_lock(c, &lock)) break;
        const ment *m = m_find(c->m, c->mcap, key);
        have = m && m->v[0] >= 1 && m->v[0] <= 4 && m->v[1] >= 1 && m->v[1] <= 4;
        if (have) memcpy(v, m->v, sizeof v);
    }
    /* (m_put replaces a bad entry) */
    if (!have && pml__cost_time_crowding(c, c->crowd_cores, c->ncrowd, v) &&
        m_put(&c->m, &c->mcap, &c->mn, key, v))
        c->dirty = true;
    if (lock.fd >= 0) disk_unlock(c, &lock);
    c->crowd[0] = v[0];
    c->crowd[1] = v[1];
    c->have_crowd = true;
}

/* The last-level cache a step can use (see cost_measure.c): measured once per machine, kept in
 * the cache file under the key "llc hw=BYTES" (hwloc's size) in MiB (the file's numbers stay
 * small); an entry outside [1 MiB, hwloc's size] is measured again. */
static void llc_load(pml_costmodel *c, double hw)
{
    char key[64];
    snprintf(key, sizeof key, "llc hw=%.0f", hw);
    const double MiB = 1 << 20;
    double v[4] = {hw / MiB, NAN, NAN, NAN};
    pml_cache_lock lock = {.fd = -1};
    bool have = false;
    for (int pass = 0; pass < 2 && !have; pass++) {
        if (pass == 1 && !disk_lock(c, &lock)) break;
        const ment *m = m_find(c->m, c->mcap, key);
        have = m && m->v[0] >= 1 && m->v[0] * MiB <= hw;
        if (have) v[0] = m->v[0];
    }
    if (!have) {
        v[0] = pml__cost_time_llc(c, hw) / MiB;
        if (m_put(&c->m, &c->mcap, &c->mn, key, v)) c->dirty = true;
    }
    if (lock.fd >= 0) disk_unlock(c, &lock);
    c->llc = v[0] * MiB;
}

/* Whether work on device dev can crowd: a CPU, whose factors the options give, or one of the
 * several cores measured here. */
static bool crowds(const pml_costmodel *c, int dev)
{
    if (!c || dev < 0 || dev >= c->ndev || c->dev[dev].kind != PML_DEV_CPU) return false;
    return c->o.crowd_compute > 0 || c->o.crowd_memory > 0 ||
           (c->dev[dev].measured && c->ncrowd >= 2);
}

/* pml_cost_crowding, with c->mu held */
static void crowding_locked(pml_costmodel *c, int dev, double *compute, double *memory)
{
    *compute = *memory = 1;
    if (!crowds(c, dev)) return;
    if (c->o.crowd_compute > 0 || c->o.crowd_memory > 0) {
        *compute = c->o.crowd_compute > 1 ? c->o.crowd_compute : 1;
        *memory = c->o.crowd_memory > 1 ? c->o.crowd_memory : 1;
        return;
    }
    if (!c->have_crowd) crowd_load(c);
    *compute = c->crowd[0];
    *memory = c->crowd[1];
}

static double crowd_memory_locked(pml_costmodel *c, int dev)
{
    double fc, fm;
    crowding_locked(c, dev, &fc, &fm);
    return fm;
}

void pml_cost_crowding(pml_costmodel *c, int dev, double *compute, double *memory)
{
    if (c) pthread_mutex_lock(&c->mu);
    crowding_locked(c, dev, compute, memory);
    if (c) pthread_mutex_unlock(&c->mu);
}

double pml_cost_memory_share(pml_costmodel *c, int id, int dev, pml_region r, bool bwd)
{
    if (!valid_query(c, id, dev) || c->g.nodes[id].op == PML_OP_INPUT || !crowds(c, dev)) return 0;
    double tf, tb, bf, bb, ff, fbw;
    pthread_mutex_lock(&c->mu);
    part_cost(c, id, dev, r, &tf, &tb);
    part_traffic_bytes(c, id, r, &bf, &bb, &ff, &fbw);
    pthread_mutex_unlock(&c->mu);
    const roofline *rf;
    double peak, bw;
    device_peaks(&c->dev[dev], &rf, &peak, &bw);
    const double t = bwd ? tb : tf, bytes = bwd ? bb : bf;
    if (!(t > 0) || !(bytes > 0)) return 0;
    /* bytes from memory only as far as the step's working set misses the caches (see
     * cold_fraction): the mlp's kernels find theirs in the caches, and do not crowd as a
     * stream from memory does */
    const double share = cold_fraction(c, working_set(c, r.n1 - r.n0)) * bytes / bw / t;
    return share < 1 ? share : 1;
}

/* ---------------------------------------------------------------- create / destroy / save */

/* This machine's caches (hwloc), from one load of its topology: *llc the largest data cache
 * (DEFAULT_LLC when none is known), *l2 a core's level-2 cache (0 when none is known). Not the
 * machine's core_cache (the largest cache that covers one core alone) for l2: a VM may show each
 * core a last-level cache of its own. */
static void hw_caches(double *llc, double *l2)
{
    *llc = 0;
    *l2 = 0;
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) == 0) {
        if (hwloc_topology_load(t) == 0) {
            const int depth = hwloc_topology_get_depth(t);
            for (int d = 0; d < depth; d++) {
                hwloc_obj_t o = hwloc_get_obj_by_depth(t, d, 0);
                if (o && hwloc_obj_type_is_dcache(o->type) && (double)o->attr->cache.size > *llc)
                    *llc = (double)o->attr->cache.size;
            }
            hwloc_obj_t o = hwloc_get_obj_by_type(t, HWLOC_OBJ_L2CACHE, 0);
            if (o && o->attr) *l2 = (double)o->attr->cache.size;
        }
        hwloc_topology_destroy(t);
    }
    if (!(*llc > 0)) *llc = DEFAULT_LLC;
}

pml_cost_opts pml_cost_opts_default(void)
{
    pml_cost_opts o = {.measure = true, .cache_dir = NULL, .repeats = 5, .cache_bytes = 0};
    return o;
}

pml_status pml_cost_create(const pml_graph *g, const pml_machine *m, const pml_cost_opts *o,
                           pml_costmodel **out)
{
    *out = NULL;
    if (!g || !g->finalized)
        return pml_fail(PML_EINVAL, "cost model: graph '%s' is not finalised", g ? g->name : "");
    if (!m || m->ncompute < 1 || !m->compute)
        return pml_fail(PML_EINVAL, "cost model: machine '%s' has no compute devices (finalise it)",
                        m ? m->name : "");
    pml_cost_opts opts = o ? *o : pml_cost_opts_default();
    if (opts.repeats == 0) opts.repeats = 5;
    if (opts.lock_wait == 0) opts.lock_wait = PML_CACHE_LOCK_WAIT;
    if (!(opts.lock_wait >= 0) || !isfinite(opts.lock_wait))
        return pml_fail(PML_EINVAL, "cost model: lock_wait=%g must be >= 0", opts.lock_wait);
    if (!(opts.cache_bytes >= 0) || !isfinite(opts.cache_bytes))
        return pml_fail(PML_EINVAL, "cost model: cache_bytes=%g must be >= 0", opts.cache_bytes);
    if (!(opts.private_bytes >= 0) || !isfinite(opts.private_bytes))
        return pml_fail(PML_EINVAL, "cost model: private_bytes=%g must be >= 0",
                        opts.private_bytes);
    if (!(opts.crowd_compute >= 0) || !isfinite(opts.crowd_compute) || !(opts.crowd_memory >= 0) ||
        !isfinite(opts.crowd_memory))
        return pml_fail(PML_EINVAL, "cost model: crowding factors %g, %g must be >= 0",
                        opts.crowd_compute, opts.crowd_memory);
    if (opts.repeats < 1 || opts.repeats > MAX_REPEATS)
        return pml_fail(PML_EINVAL, "cost model: repeats=%d must be in [1, %d]", opts.repeats,
                        MAX_REPEATS);
    for (int i = 0; i < m->ncompute; i++)
        if (m->compute[i] < 0 || m->compute[i] >= m->ndev)
            return pml_fail(PML_EINVAL,
                            "cost model: machine '%s': compute device %d is not a device", m->name,
                            i);
    pml_costmodel *c = calloc(1, sizeof *c);
    if (!c) return pml_fail(PML_ENOMEM, "out of memory");
    pml_status st = pml_graph_copy(&c->g, g);
    if (st != PML_OK) {
        free(c);
        return st;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->o = opts;
    c->o.cache_dir = NULL; /* not kept: the caller owns the string */
    const int N = g->nnodes;
    c->ndev = m->ncompute;
    c->dev = calloc((size_t)c->ndev, sizeof *c->dev);
    c->wants = calloc((size_t)N, sizeof *c->wants);
    c->run_bwd = calloc((size_t)N, sizeof *c->run_bwd);
    c->nonneg = calloc((size_t)N, sizeof *c->nonneg);
    c->crowd_cores = calloc((size_t)c->ndev, sizeof *c->crowd_cores);
    if (!c->dev || !c->wants || !c->run_bwd || !c->nonneg || !c->crowd_cores) goto nomem;
    /* a machine file whose CPUs are this machine's cores (cores_of): measured as present ones */
    const bool ours = opts.measure && m->cores_of[0] &&
                      strcmp(m->cores_of, pml_machine_this_fingerprint()) == 0;
    int next = 0; /* ours: their cores, in turn (a rank's cores are its host's next ones) */
    for (int i = 0; i < c->ndev; i++) {
        const pml_device *pd = &m->dev[m->compute[i]];
        devinfo *d = &c->dev[i];
        d->kind = pd->kind;
        d->flops = pd->flops;
        d->mem_bw = pd->mem_bw;
        d->measured = opts.measure && (pd->present || ours) && pd->kind == PML_DEV_CPU;
        d->core = pd->present ? pd->first_core : next;
        if (!pd->present && d->measured) next += pd->cores > 0 ? pd->cores : 1;
        d->cls = d->measured ? 0 : 1 + i;
        c->any_measured |= d->measured;
        if (d->measured) c->crowd_cores[c->ncrowd++] = d->core;
    }
    /* as the executor decides: an output wants a gradient iff a parameterised op is upstream */
    const pml_graph *cg = &c->g;
    for (int k = 0; k < N; k++) {
        int v = cg->order[k];
        const pml_node *nd = &cg->nodes[v];
        bool w = nd->nparam > 0, nn = true;
        for (int i = 0; i < nd->nin; i++) {
            w |= c->wants[nd->in[i]];
            nn &= c->nonneg[nd->in[i]];
        }
        c->wants[v] = v == cg->loss ? false : w;
        switch (nd->op) {
        case PML_OP_INPUT:
        case PML_OP_RELU:
            c->nonneg[v] = true;
            break;
        case PML_OP_CONV2D:
        case PML_OP_LINEAR:
            c->nonneg[v] = nd->a.act == PML_ACT_RELU;
            break;
        case PML_OP_MAXPOOL2D:
        case PML_OP_AVGPOOL2D:
        case PML_OP_FLATTEN:
        case PML_OP_DROPOUT:
        case PML_OP_CONCAT:
        case PML_OP_ADD:
            c->nonneg[v] = nn && nd->nin > 0;
            break;
        default:
            c->nonneg[v] = false;
        }
    }
    for (int v = 0; v < N; v++) {
        const pml_node *nd = &cg->nodes[v];
        c->run_bwd[v] = c->wants[v] || (v == cg->loss && cg->logits >= 0 && c->wants[cg->logits]);
        c->act_floats +=
            (double)pml_shape_size(nd->out) * (c->wants[v] ? 2 : 1) + (double)nd->aux_per_sample;
    }
    c->param_floats = (double)cg->nparams;
    c->llc = opts.cache_bytes > 0 ? opts.cache_bytes : DEFAULT_LLC;

    if (c->any_measured) {
        pml_blas_single_thread();
        c->l2 = opts.private_bytes;
        if (!(opts.cache_bytes > 0) || !(c->l2 > 0)) { /* hwloc's where the options say none */
            double llc, l2;
            hw_caches(&llc, &l2);
            if (!(opts.cache_bytes > 0)) c->llc = llc;
            if (!(c->l2 > 0)) c->l2 = l2;
        }
        snprintf(c->header, sizeof c->header, "%s %s", CACHE_HEADER, m->fingerprint);
        c->dir = m->fingerprint[0] ? cache_folder(&opts) : NULL;
        if (c->dir && asprintf(&c->path, "%s/costs-%s.tsv", c->dir, m->fingerprint) < 0)
            c->path = NULL;
        if (c->path) {
            c->name = strrchr(c->path, '/') + 1;
            /* read without the lock: writers rename whole files over it */
            c->disk = pml_cache_stamp_of(c->path);
            int rc = read_cache(c, c->path, &c->m, &c->mcap, &c->mn);
            c->dirty = rc < 0; /* a bad file is ignored, and replaced at the next write */
        }
        if (!(opts.cache_bytes > 0)) llc_load(c, c->llc);
    }
    *out = c;
    return PML_OK;
nomem:
    pml_cost_destroy(c);
    return pml_fail(PML_ENOMEM, "out of memory creating the cost model");
}

void pml_cost_destroy(pml_costmodel *c)
{
    if (!c) return;
    pthread_mutex_destroy(&c->mu);
    m_free(c->m, c->mcap);
    free(c->q);
    free(c->path);
    free(c->dir);
    free(c->dev);
    free(c->wants);
    free(c->run_bwd);
    free(c->nonneg);
    free(c->crowd_cores);
    free(c->scratch);
    free(c->ramp);
    free(c->labels);
    pml_graph_free(&c->g);
    free(c);
}

pml_status pml_cost_save(pml_costmodel *c)
{
    if (!c) return pml_fail(PML_EINVAL, "pml_cost_save: no cost model");
    pthread_mutex_lock(&c->mu);
    pml_status st = PML_OK;
    pml_cache_lock lock;
    if (c->path && c->dirty) {
        if (disk_lock(c, &lock)) {
            if (c->dirty) st = write_cache(c);
            pml_cache_unlock(&lock);
        } else if (c->lock_state == LOCK_UNUSABLE) {
            st = pml_fail(PML_EIO, "cannot write '%s': cannot lock it (%s.lock)", c->path, c->path);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

long pml_cost_measurements(const pml_costmodel *c)
{
    if (!c) return 0;
    pml_costmodel *mc = (pml_costmodel *)c;
    pthread_mutex_lock(&mc->mu);
    long n = c->measurements;
    pthread_mutex_unlock(&mc->mu);
    return n;
}

double pml_cost_cache_bytes(const pml_costmodel *c)
{
    return c ? c->llc : 0;
}

const char *pml_cost_cache_file(const pml_costmodel *c)
{
    return c && c->path ? c->path : "";
}
