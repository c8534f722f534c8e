/* pml — planner: the cost model's measurements on this machine's cores. A part of an operator
 * is timed by running its fast kernels on private tensors of the part's own sub-shape, warm and
 * cold; updates, sums, syncs and zeroing are timed at a few sizes for the calibrations cost.c
 * interpolates. Everything runs on the calling thread with single-threaded BLAS. */
#include "cost_int.h"
#include "machine_int.h"


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
#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#endif

/* ---------------------------------------------------------------- measurement */

/* Measured (devices present on this machine, CPU cores).
 *   A part (node, region) is timed by running the node's FAST kernel on one thread (BLAS single
 *   threaded) on private tensors of exactly the part's sub-shape: n = r.n1 - r.n0 samples of
 *   the node's input shapes, and the region {0,n, 0,ce, 0,he} with the part's channel and row
 *   extents ce, he. Data is uniform in [-1, 1] (in [0, 1] after a relu or for the graph's input,
 *   so max-pool and relu branches see realistic patterns), weights as the initialiser draws
 *   them, labels valid. One warm-up run, then the median of `repeats` timed runs (3 for runs
 *   above 20 ms, 1 above 100 ms; runs under 20 us are repeated inside each timing). Backward
 *   runs right after the forward (aux, y), into zeroed gradients, with dx only for inputs that
 *   want a gradient (some parameterised op upstream, as in the executor). Parts whose forward
 *   exceeds 4 GFLOP or whose buffers exceed 512 MiB are measured on fewer samples and scaled
 *   linearly (samples are independent: time is linear in n for such large parts).
 *   All present CPU devices share one set of measurements (one core is like another).
 *   Backward parts are timed with what the executor does after the kernel: zeroing the gradient
 * of the part's output region it consumed (so buffers are zero at the next step). A warm run
 * finds its inputs as their producers left them (in its caches), but for the graph's input,
 * which the loader wrote: flushed from the caches before each forward run. */

/* Fast uniform floats in [lo, hi) (xorshift64*). */
static void fill_uniform(float *p, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    const float scale = (hi - lo) / 16777216.0f;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        p[i] = lo + scale * (float)((s * 0x2545f4914f6cdd1dull) >> 40);
    }
}

#define ALIGN_FLOATS 16
static size_t up(size_t n)
{
    return (n + ALIGN_FLOATS - 1) & ~(size_t)(ALIGN_FLOATS - 1);
}

static bool ensure_scratch(pml_costmodel *c, size_t floats, size_t labels)
{
    if (floats > c->scratch_floats) {
        size_t want = floats + floats / 4;
        free(c->scratch);
        c->scratch_floats = 0;
        c->scratch = aligned_alloc(64, up(want) * sizeof(float));
        if (!c->scratch) return false;
        c->scratch_floats = up(want);
    }
    if (labels > c->nlabels) {
        free(c->labels);
        c->nlabels = 0;
        c->labels = malloc(labels * sizeof *c->labels);
        if (!c->labels) return false;
        c->nlabels = labels;
    }
    return true;
}

/* Keeps at most SCRATCH_KEEP floats between measurements: a huge part is rare and slow to
 * measure anyway, and the memory is better returned while the search runs. */
static void release_big_scratch(pml_costmodel *c)
{
    if (c->scratch_floats <= SCRATCH_KEEP) return;
    free(c->scratch);
    c->scratch = NULL;
    c->scratch_floats = 0;
}

/* A core that has been idle (or only ran scalar code) runs its first milliseconds of memory
 * traffic and arithmetic slowly: on the 2-core virtual machines pml was developed on, mlp's first
 * layer's sgemm took 150-200 us for the first 2-4 ms after 50 ms idle and 91 us after, where a
 * scalar loop before it changed nothing and streaming through a few MiB did. Training steps run
 * back to back, so kernels are timed on a core brought up to speed: unless it timed something
 * in the last RAMP_IDLE seconds, it writes through RAMP_BYTES for RAMP_SECONDS first. */
static void ramp_up(pml_costmodel *c)
{
    const double t0 = pml_now();
    if (c->busy_until > 0 && t0 - c->busy_until < RAMP_IDLE) return;
    if (!c->ramp && !(c->ramp = aligned_alloc(64, RAMP_BYTES))) return;
    unsigned char v = 1;
    do memset(c->ramp, v++, RAMP_BYTES);
    while (pml_now() - t0 < RAMP_SECONDS);
}

typedef void (*run_fn)(void *ctx);

/* What an empty timing measures: the median of back-to-back readings of the clock, measured
 * once. About 20-40 ns where the clock is read in user space, a microsecond where every reading
 * is a system call (a VM's clock source may be): a run timed alone (a prep before each, so it
 * cannot be repeated inside one timing) carries it, and a parameter update of 64 floats takes
 * less. */
static double clock_seconds;
static void measure_clock(void)
{
    double d[63];
    for (int i = 0; i < 63; i++) {
        const double t0 = pml_now();
        d[i] = pml_now() - t0;
    }
    const double m = pml_median(d, 63);
    clock_seconds = m > 0 && m < 1e-4 ? m : 0;
}
static double clock_overhead(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, measure_clock);
    return clock_seconds;
}

/* Median seconds of one run: a warm-up, then repeats timed runs (fewer for slow runs; tiny runs
 * repeated inside each timing, unless \p prep, which may be NULL, runs untimed before each);
 * the clock's own cost taken out (at most half of a timing: a run is never free). */
static double time_runs(run_fn fn, run_fn prep, void *ctx, int repeats)
{
    if (prep) prep(ctx);
    double t0 = pml_now();
    fn(ctx);
    double tw = pml_now() - t0;
    int reps = repeats;
    if (tw > SLOW_RUN && reps > 3) reps = 3;
    if (tw > VERY_SLOW_RUN) reps = 1;
    int inner = 1;
    if (tw < TINY_RUN && !prep) {
        inner = (int)(TINY_RUN / (tw > 1e-7 ? tw : 1e-7));
        if (inner > 64) inner = 64;
        if (inner < 1) inner = 1;
    }
    double t[MAX_REPEATS];
    for (int i = 0; i < reps; i++) {
        if (prep) prep(ctx);
        t0 = pml_now();
        for (int j = 0; j < inner; j++) fn(ctx);
        const double dt = pml_now() - t0;
        t[i] = (dt - fmin(clock_overhead(), 0.5 * dt)) / inner;
    }
    return pml_median(t, reps);
}

typedef struct kern_ctx {
    pml_kctx k;
    float *dy;      /* the output's gradient */
    float *dy_zero; /* backward: the consumed gradient, zeroed after the kernel (NULL: none) */
    unsigned char *evict;              /* cold runs: PML_EVICT_BYTES */
    const float *warm[PML_MAX_INPUTS]; /* ... read after the eviction: what the producer wrote */
    size_t warm_len[PML_MAX_INPUTS];
    int nwarm;
    size_t in_len[PML_MAX_INPUTS]; /* floats of each input (and of its gradient) */
    bool x_cold[PML_MAX_INPUTS];   /* the input is the graph's: a batch the loader wrote */
} kern_ctx;

static void run_fwd(void *ctx)
{
    const pml_kctx *k = &((kern_ctx *)ctx)->k;
    pml_ops[k->node->op].fwd(k);
}

/* Zeroes region r of a tensor of shape s, in contiguous blocks as the plan executor does. */
static void zero_region(float *p, pml_shape s, pml_region r)
{
    const size_t W = (size_t)s.w, HW = (size_t)s.h * W, CHW = (size_t)s.c * HW;
    if (r.h0 == 0 && r.h1 == s.h && r.c0 == 0 && r.c1 == s.c) {
        memset(p + (size_t)r.n0 * CHW, 0, (size_t)(r.n1 - r.n0) * CHW * sizeof(float));
    } else if (r.h0 == 0 && r.h1 == s.h) {
        for (int n = r.n0; n < r.n1; n++)
            memset(p + ((size_t)n * s.c + r.c0) * HW, 0,
                   (size_t)(r.c1 - r.c0) * HW * sizeof(float));
    } else {
        for (int n = r.n0; n < r.n1; n++)
            for (int c = r.c0; c < r.c1; c++)
                memset(p + (((size_t)n * s.c + c) * s.h + r.h0) * W, 0,
                       (size_t)(r.h1 - r.h0) * W * sizeof(float));
    }
}

static void run_bwd(void *ctx)
{
    const kern_ctx *kc = ctx;
    pml_ops[kc->k.node->op].bwd(&kc->k);
    if (kc->dy_zero) zero_region(kc->dy_zero, kc->k.node->out, kc->k.r);
}

static void prep_cold(void *ctx)
{
    kern_ctx *kc = ctx;
    pml_caches_as_in_a_step(kc->evict, kc->warm, kc->warm_len, kc->nwarm);
}

/* Flushes the lines of n floats from p out of every cache (x86: clflush; elsewhere nothing). */
static void flush_lines(const float *p, size_t n)
{
#if defined(__x86_64__) || defined(__i386__)
    const char *b = (const char *)p;
    for (size_t i = 0; i < n * sizeof(float); i += 64) _mm_clflush(b + i);
#else
    (void)p, (void)n;
#endif
}

static void flush_done(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_mfence();
#endif
}

/* Before a warm backward run: the input gradients it adds into come from memory. The plan
 * executor zeroes a gradient when its consumer is done with it, a step before the backward that
 * next adds into it: by then the lines have left the caches (a 2x2 pool's backward, which adds
 * into 2.8 MB for fashion-cnn, ran 0.8 ms in a step and 0.29 ms into a gradient just zeroed). */
static void prep_dx_cold(void *ctx)
{
    kern_ctx *kc = ctx;
    for (int j = 0; j < kc->k.nin; j++)
        if (kc->k.dx[j]) flush_lines(kc->k.dx[j], kc->in_len[j]);
    flush_done();
}

/* Before a warm forward run of a consumer of the graph's input: the batch is not in this core's
 * caches. The loader's threads wrote it a step or more before, on whichever core ran them (the
 * mlp's flatten of a 100 KB batch: 3-6.5 us a step, 1.1 us when timed on its own output of the
 * run before). */
static void prep_x_cold(void *ctx)
{
    kern_ctx *kc = ctx;
    for (int j = 0; j < kc->k.nin; j++)
        if (kc->x_cold[j]) flush_lines(kc->k.x[j], kc->in_len[j]);
    flush_done();
}

/* Whether a warm backward run flushes its input gradients first: when they are large enough
 * to matter (a small one is in a core's cache in a step too, and tiny runs are timed repeated,
 * which a flush before each run would prevent). */
#define DX_COLD_BYTES ((size_t)256 << 10)
static bool dx_cold(const kern_ctx *kc)
{
    size_t bytes = 0;
    for (int j = 0; j < kc->k.nin; j++)
        if (kc->k.dx[j]) bytes += kc->in_len[j] * sizeof(float);
    return bytes >= DX_COLD_BYTES;
}

/* Samples to measure a part of n samples on: fewer when it is huge (then scaled). */
static int measure_samples(const pml_costmodel *c, int id, int n, double per_sample_flops,
                           double per_sample_floats)
{
    int m = n;
    while (m > 1 &&
           (per_sample_flops * m > MEASURE_FLOPS || 4.0 * per_sample_floats * m > MEASURE_BYTES))
        m = (m + 1) / 2;
    (void)c, (void)id;
    return m;
}

/* Lays out one copy of the tensors of a part of node id (m samples, ce channels, he rows) from p
 * on, filled as described at the top of the file; \return the floats it takes (p NULL: only
 * counts). */
static size_t part_layout(const pml_costmodel *c, int id, int m, int ce, int he, float *p,
                          kern_ctx *kc)
{
    const pml_graph *g = &c->g;
    const pml_node *nd = &g->nodes[id];
    const int nin = nd->nin;
    pml_shape in[PML_MAX_INPUTS];
    for (int i = 0; i < nin; i++) in[i] = g->nodes[nd->in[i]].out;
    const pml_region r = {0, m, 0, ce, 0, he};
    const size_t out_size = pml_shape_size(nd->out), ws = pml_ops[nd->op].ws_floats(nd, in, nin, r);
    size_t total = 0;
#define TAKE(len) (total += up(len), p ? p + total - up(len) : NULL)
    pml_kctx *k = p ? &kc->k : NULL;
    const uint64_t seed = (uint64_t)id * 7919 + 17;
    for (int i = 0; i < nin; i++) {
        const int u = nd->in[i];
        const size_t len = pml_shape_size(in[i]) * m;
        float *x = TAKE(len);
        float *dx = c->wants[u] ? TAKE(len) : NULL;
        if (!p) continue;
        fill_uniform(x, len, seed + (uint64_t)i, -1.0f, 1.0f);
        if (g->nodes[u].op == PML_OP_INPUT || c->nonneg[u])
            /* relu output: half zeros; the graph's input: [0, 1] */
            for (size_t e = 0; e < len; e++)
                x[e] =
                    g->nodes[u].op == PML_OP_INPUT ? 0.5f * (x[e] + 1.0f) : (x[e] > 0 ? x[e] : 0);
        k->x[i] = x;
        k->xs[i] = in[i];
        k->dx[i] = dx;
        kc->in_len[i] = len;
        kc->x_cold[i] = g->nodes[u].op == PML_OP_INPUT;
    }
    float *y = TAKE(out_size * m), *dy = TAKE(out_size * m);
    const size_t aux = nd->aux_per_sample * m + nd->aux_fixed;
    float *a = TAKE(aux), *w = TAKE(ws);
    if (p) {
        k->y = y;
        fill_uniform(dy, out_size * m, seed + 101, -1.0f, 1.0f);
        k->dy = kc->dy = dy;
        k->aux = a;
        memset(a, 0, aux * sizeof(float));
        k->ws = w;
    }
    for (int j = 0; j < nd->nparam; j++) {
        float *wt = TAKE(nd->param_size[j]), *dw = TAKE(nd->param_size[j]);
        if (!p) continue;
        switch (nd->param_init[j]) {
        case PML_INIT_GLOROT: {
            float l = (float)sqrt(6.0 / (double)(nd->param_fan_in[j] + nd->param_fan_out[j]));
            fill_uniform(wt, nd->param_size[j], seed + 200 + (uint64_t)j, -l, l);
            break;
        }
        case PML_INIT_ONES:
            for (size_t e = 0; e < nd->param_size[j]; e++) wt[e] = 1.0f;
            break;
        default:
            memset(wt, 0, nd->param_size[j] * sizeof *wt);
        }
        k->w[j] = wt;
        k->dw[j] = dw;
    }
    for (int j = 0; j < nd->nstate; j++) {
        float *st = TAKE(nd->state_size[j]);
        if (!p) continue;
        const float init = nd->state_init[j] == PML_INIT_ONES ? 1.0f : 0.0f;
        for (size_t e = 0; e < nd->state_size[j]; e++) st[e] = init;
        k->state[j] = st;
    }
#undef TAKE
    if (p) {
        k->node = nd;
        k->node_id = id;
        k->N = m;
        k->batch_total = m;
        k->r = r;
        k->nin = nin;
        k->labels = c->labels;
        k->training = true;
        k->seed = 1;
        k->step = 0;
    }
    return total;
}

/* Zeroes the gradients a backward accumulates into (dx, dw) */
static void zero_grads(const pml_costmodel *c, kern_ctx *kc)
{
    const pml_node *nd = kc->k.node;
    for (int j = 0; j < nd->nin; j++)
        if (kc->k.dx[j]) memset(kc->k.dx[j], 0, kc->in_len[j] * sizeof(float));
    for (int j = 0; j < nd->nparam; j++) memset(kc->k.dw[j], 0, nd->param_size[j] * sizeof(float));
    (void)c;
}

/* Times node id's fast forward and backward kernels on a part of n samples with channel extent
 * ce and row extent he: warm into v[0..1] when \p warm, cold into v[2..3] when \p cold. Caller
 * holds the lock. \return false when out of memory. */
bool pml__cost_measure_part(pml_costmodel *c, int id, int n, int ce, int he, bool warm, bool cold,
                             double v[4])
{
    if (pml_blas_room_here() != PML_OK) return false; /* the roofline instead */
    const pml_graph *g = &c->g;
    const pml_node *nd = &g->nodes[id];
    const pml_op_def *def = &pml_ops[nd->op];
    const int nin = nd->nin;
    pml_shape in[PML_MAX_INPUTS];
    double per_sample = 0;
    for (int i = 0; i < nin; i++) {
        in[i] = g->nodes[nd->in[i]].out;
        per_sample += (c->wants[nd->in[i]] ? 2.0 : 1.0) * (double)pml_shape_size(in[i]);
    }
    const size_t out_size = pml_shape_size(nd->out);
    per_sample += 2.0 * (double)out_size + (double)nd->aux_per_sample;
    const double fps =
        def->flops(nd, in, nin) * ((double)ce / nd->out.c) * ((double)he / nd->out.h);
    const int m = measure_samples(c, id, n, fps, per_sample);

    const size_t copy = part_layout(c, id, m, ce, he, NULL, NULL);
    const size_t total = copy + (cold ? EVICT_FLOATS : 0);
    if (!ensure_scratch(c, total + ALIGN_FLOATS, (size_t)m)) return false;
    kern_ctx kc;
    memset(&kc, 0, sizeof kc);
    const int classes = nd->op == PML_OP_SOFTMAX_XENT && nin ? in[0].c : 1;
    for (int i = 0; i < m; i++)
        c->labels[i] = (int32_t)(((uint64_t)(i + 1) * 2654435761u) % (uint64_t)classes);
    part_layout(c, id, m, ce, he, c->scratch, &kc);
    kc.evict = cold ? (unsigned char *)(c->scratch + copy) : NULL;
    if (kc.evict) memset(kc.evict, 0, PML_EVICT_BYTES);
    const double scale = (double)n / m;
    ramp_up(c);
    for (int i = 0; i < 2; i++) {
        if (!(i ? cold : warm)) continue;
        /* forward: the producers just wrote the inputs; the loader, the graph's, long before */
        kc.nwarm = 0;
        bool x_cold = false;
        for (int j = 0; j < nin; j++) {
            x_cold |= kc.x_cold[j];
            if (kc.x_cold[j]) continue;
            kc.warm[kc.nwarm] = kc.k.x[j];
            kc.warm_len[kc.nwarm++] = kc.in_len[j];
        }
        run_fn prep = i ? prep_cold : x_cold ? prep_x_cold : NULL;
        v[2 * i] = scale * time_runs(run_fwd, prep, &kc, c->o.repeats);
        v[2 * i + 1] = 0;
        if (!c->run_bwd[id]) continue;
        /* backward, into zeroed gradients (it accumulates); the consumers just wrote dy */
        zero_grads(c, &kc);
        kc.nwarm = 1;
        kc.warm[0] = kc.k.dy;
        kc.warm_len[0] = out_size * m;
        kc.dy_zero = c->wants[id] ? kc.dy : NULL; /* the executor keeps wanted outputs' gradients */
        prep = i ? prep_cold : dx_cold(&kc) ? prep_dx_cold : NULL;
        v[2 * i + 1] = scale * time_runs(run_bwd, prep, &kc, c->o.repeats);
    }
    c->measurements++;
    c->busy_until = pml_now();
    release_big_scratch(c);
    return true;
}

/* What the plan executor does, timed: an update is Adam on a range of parameters and zeroing
 * the range's gradients; a reduction adds partial gradients into a buffer (y += x); a sync adds
 * a replica's gradients into the first replica's and zeroes them. Ranges: `rows` ranges of `row`
 * floats, `stride` apart (rows 0: one range of n floats). */
typedef struct cal_ctx {
    pml_optim o;
    float *a, *b; /* parameters (or the sums) and gradients (or the partials) */
    size_t n, rows, row, stride;
    unsigned char *evict; /* PML_EVICT_BYTES */
    size_t private_bytes; /* warm runs: the eviction's bytes that empty the private caches */
} cal_ctx;

/* the gradients (partials), as the backward pass just wrote them */
static void write_grads(cal_ctx *k)
{
    const size_t n = k->rows ? k->rows * k->stride : k->n;
    for (size_t i = 0; i < n; i++) k->b[i] = 1e-3f * (float)((i * 2654435761u) >> 22) - 0.5e-3f;
}

/* Before a cold run: the parameters, the optimizer state and the sums come from memory; the
 * gradients (partials) were just written by the backward pass. */
static void prep_stream(void *ctx)
{
    cal_ctx *k = ctx;
    pml_caches_as_in_a_step(k->evict, NULL, NULL, 0);
    write_grads(k);
}

/* Before a warm run when a step's other work empties the core's private caches in between: the
 * parameters, the optimizer state and the sums come from the shared cache, the gradients were
 * just written. */
static void prep_shared(void *ctx)
{
    cal_ctx *k = ctx;
    pml_caches_evict(k->evict, k->private_bytes);
    write_grads(k);
}

static void update_range(cal_ctx *k, size_t a, size_t b)
{
    pml_optim_apply(&k->o, k->a, k->b, a, b);
    memset(k->b + a, 0, (b - a) * sizeof(float));
}

static void sum_range(cal_ctx *k, size_t a, size_t b)
{
    float *restrict d = k->a;
    const float *restrict x = k->b;
    for (size_t i = a; i < b; i++) d[i] += x[i];
}

static void sum_clear_range(cal_ctx *k, size_t a, size_t b)
{
    float *restrict d = k->a, *restrict x = k->b;
    for (size_t i = a; i < b; i++) {
        d[i] += x[i];
        x[i] = 0.0f;
    }
}

static void run_ranges(cal_ctx *k, void (*fn)(cal_ctx *, size_t, size_t))
{
    if (!k->rows) {
        fn(k, 0, k->n);
        return;
    }
    for (size_t r = 0; r < k->rows; r++) fn(k, r * k->stride, r * k->stride + k->row);
}

static void zero_range(cal_ctx *k, size_t a, size_t b)
{
    memset(k->a + a, 0, (b - a) * sizeof(float));
}

static void run_zero(void *ctx)
{
    run_ranges(ctx, zero_range);
}
static void run_update(void *ctx)
{
    run_ranges(ctx, update_range);
}
static void run_sum(void *ctx)
{
    run_ranges(ctx, sum_range);
}
static void run_sum_clear(void *ctx)
{
    run_ranges(ctx, sum_clear_range);
}


/* Times calibration kind at every size of cal_size[] and on CAL_ROWS ranges of CAL_ROW floats
 * (v[i][0] warm, v[i][2] cold, as asked): two passes over the sizes, the faster of the two kept
 * (a burst of other work on a shared machine spoils one pass, rarely both). \return false when
 * out of memory. */
bool pml__cost_time_calibration(pml_costmodel *c, int kind, bool need_warm, bool need_cold,
                                size_t private_bytes, double v[NCAL + 1][4])
{
    const size_t big = (size_t)cal_size[NCAL - 1];
    if (private_bytes > PML_EVICT_BYTES) private_bytes = PML_EVICT_BYTES;
    const bool evicts = need_cold || (need_warm && private_bytes > 0);
    if (!ensure_scratch(c, 4 * up(big) + (evicts ? EVICT_FLOATS : 0), 0)) return false;
    cal_ctx k;
    memset(&k, 0, sizeof k);
    pml_optim_defaults(&k.o, PML_OPTIM_ADAM);
    k.a = c->scratch;
    k.b = k.a + up(big);
    k.o.m = k.b + up(big);
    k.o.v = k.o.m + up(big);
    if (evicts) {
        k.evict = (unsigned char *)(k.o.v + up(big));
        memset(k.evict, 0, PML_EVICT_BYTES);
    }
    k.private_bytes = private_bytes;
    k.o.t = 1;
    const run_fn run = kind == CAL_UPDATE ? run_update
                       : kind == CAL_SYNC ? run_sum_clear
                       : kind == CAL_ZERO ? run_zero
                                          : run_sum;
    /* two passes over the sizes, the faster of the two kept: a burst of other work on a
     * shared machine spoils one pass, rarely both */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i <= NCAL; i++) {
            k.rows = i < NCAL ? 0 : CAL_ROWS;
            k.row = CAL_ROW;
            k.stride = 2 * CAL_ROW;
            k.n = i < NCAL ? (size_t)cal_size[i] : (size_t)CAL_ROWS * CAL_ROW;
            const size_t span = k.rows ? k.rows * k.stride : k.n;
            k.o.n = span;
            fill_uniform(k.a, span, 7, -1.0f, 1.0f);
            fill_uniform(k.b, span, 8, -1e-3f, 1e-3f);
            memset(k.o.m, 0, span * sizeof(float));
            memset(k.o.v, 0, span * sizeof(float));
            ramp_up(c);
            if (need_warm) {
                double t = time_runs(run, private_bytes ? prep_shared : NULL, &k, c->o.repeats);
                if (pass == 0 || t < v[i][0]) v[i][0] = t;
            }
            if (need_cold) {
                double t = time_runs(run, prep_stream, &k, c->o.repeats);
                if (pass == 0 || t < v[i][2]) v[i][2] = t;
            }
            c->busy_until = pml_now();
        }
    return true;
}

/* ---------------------------------------------------------------- the cache a step can use
 *
 * hwloc gives the last-level cache's size, but on a shared machine (a VM's cores on a host whose
 * other tenants use the same cache) a working set much smaller than that already comes partly
 * from memory. So the cost model measures the cache a step can use: it streams through a buffer
 * of S bytes (x += 1: read and rewritten, as an update does), again and again, for S = 1 MiB,
 * 2 MiB, ... up to 4x hwloc's size, and times a pass of each (the best of several, after a
 * pass that brings it in). A size whose time per byte is nearer (geometrically) to the small
 * sizes' than to the largest's fits in what the step can use: the largest such S is the
 * answer (at least 1 MiB, at most hwloc's size). */

#define LLC_MIN ((size_t)1 << 20)
#define LLC_PASS_S 2e-3 /* seconds of passes timed at each size */

static double stream_pass(float *restrict x, size_t n)
{
    const double t0 = pml_now();
    for (size_t i = 0; i < n; i++) x[i] += 1.0f;
    return pml_now() - t0;
}

double pml__cost_time_llc(pml_costmodel *c, double hw)
{
    size_t top = LLC_MIN;
    while ((double)top < 4 * hw && top < ((size_t)256 << 20)) top *= 2;
    float *buf = aligned_alloc(64, top);
    if (!buf) return hw;
    memset(buf, 0, top);
    ramp_up(c);
    double rate[16];
    int ns = 0;
    for (size_t s = LLC_MIN; s <= top && ns < 16; s *= 2, ns++) {
        const size_t n = s / sizeof(float);
        stream_pass(buf, n); /* brings it into the caches (what fits) */
        double best = 1e30, spent = 0;
        for (int k = 0; k < 64 && (k < 3 || spent < LLC_PASS_S); k++) {
            const double t = stream_pass(buf, n);
            spent += t;
            if (t < best) best = t;
        }
        rate[ns] = best / (double)s;
    }
    c->busy_until = pml_now();
    /* buf's values are never read: keep the passes from being dropped */
    volatile float sink = buf[top / sizeof(float) - 1];
    (void)sink;
    free(buf);
    const double fast = rate[0] < rate[1] ? rate[0] : rate[1], slow = rate[ns - 1];
    const double mid = sqrt(fast * slow);
    double eff = (double)LLC_MIN;
    for (int i = 0; i < ns; i++)
        if (rate[i] <= mid) eff = (double)(LLC_MIN << i);
    return eff < hw ? eff : hw;
}

/* ---------------------------------------------------------------- crowding
 *
 * How much slower a core runs while the other cores of its node run too: they share the memory
 * bandwidth and the last-level cache. One thread per core (up to CROWD_THREADS), pinned; the
 * first core's thread times a kernel alone (the others wait) and then with every thread running
 * the same kernel on its own data, three rounds in turn (so a slow moment of the machine falls
 * on both), the best of each. Two kernels: an sgemm (arithmetic: 192^3, in the caches) and a
 * stream (y += a x over 2 x 32 MiB, from memory). v[0]: the sgemm's time with all against alone,
 * v[1]: the stream's (each at least 1). */

#define CROWD_THREADS 8
#define CROWD_GEMM 192
#define CROWD_STREAM ((size_t)8 << 20) /* floats per array */
#define CROWD_ROUNDS 3

typedef struct crowd_ctx {
    hwloc_topology_t topo;
    const int *cores;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int gen, done, phase, stop; /* under mu: a run's generation, the helpers done with it */
} crowd_ctx;

typedef struct crowd_arg {
    crowd_ctx *c;
    int k;
    float *a, *b, *cc, *x, *y;
} crowd_arg;

static void crowd_kernel(crowd_arg *a, int phase)
{
    if (phase == 0) {
        const int n = CROWD_GEMM;
        for (int r = 0; r < 8; r++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a->a, n, a->b, n,
                        0.0f, a->cc, n);
    } else {
        float *restrict y = a->y;
        const float *restrict x = a->x;
        for (size_t i = 0; i < CROWD_STREAM; i++) y[i] += 0.5f * x[i];
    }
}

/* a helper core: runs the kernel of each generation, until stopped */
static void *crowd_thread(void *p)
{
    crowd_arg *a = p;
    crowd_ctx *c = a->c;
    pml__pin_core(c->topo, c->cores[a->k]);
    pml_blas_single_thread();
    int seen = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->gen == seen && !c->stop) pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop) break;
        seen = c->gen;
        const int phase = c->phase;
        pthread_mutex_unlock(&c->mu);
        crowd_kernel(a, phase);
        pthread_mutex_lock(&c->mu);
        c->done++;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Seconds of the kernel of `phase` on this thread, the `helpers` others running it meanwhile. */
static double crowd_run(crowd_ctx *c, crowd_arg *self, int phase, int helpers)
{
    if (helpers > 0) {
        pthread_mutex_lock(&c->mu);
        c->phase = phase;
        c->done = 0;
        c->gen++;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    const double t0 = pml_now();
    crowd_kernel(self, phase);
    const double t = pml_now() - t0;
    if (helpers > 0) {
        pthread_mutex_lock(&c->mu);
        while (c->done < helpers) pthread_cond_wait(&c->cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
    }
    return t;
}

bool pml__cost_time_crowding(pml_costmodel *c, const int *cores, int ncores, double v[4])
{
    (void)c;
    v[0] = v[1] = 1.0;
    v[2] = v[3] = NAN;
    if (ncores < 2) return true;
    if (ncores > CROWD_THREADS) ncores = CROWD_THREADS;
    crowd_ctx cx = {.cores = cores};
    if (hwloc_topology_init(&cx.topo) != 0) return false;
    if (hwloc_topology_load(cx.topo) != 0) {
        hwloc_topology_destroy(cx.topo);
        return false;
    }
    pthread_mutex_init(&cx.mu, NULL);
    pthread_cond_init(&cx.cv, NULL);
    crowd_arg args[CROWD_THREADS];
    pthread_t th[CROWD_THREADS];
    const size_t g2 = (size_t)CROWD_GEMM * CROWD_GEMM, total = 3 * g2 + 2 * CROWD_STREAM;
    bool ok = true;
    int made = 0, started = 0;
    for (int k = 0; k < ncores && ok; k++) {
        crowd_arg *a = &args[k];
        *a = (crowd_arg){.c = &cx, .k = k};
        if (!(a->a = aligned_alloc(64, total * sizeof(float)))) {
            ok = false;
            break;
        }
        made++;
        a->b = a->a + g2;
        a->cc = a->b + g2;
        a->x = a->cc + g2;
        a->y = a->x + CROWD_STREAM;
        for (size_t i = 0; i < total; i++) a->a[i] = (float)((i * 2654435761u) >> 24) / 256.0f;
    }
    for (int k = 1; k < ncores && ok; k++) {
        if (pthread_create(&th[k], NULL, crowd_thread, &args[k]) != 0) ok = false;
        else started = k;
    }
    if (ok) { /* this thread is the first core's, for the measurement */
        hwloc_cpuset_t old = hwloc_bitmap_alloc();
        if (old) hwloc_get_cpubind(cx.topo, old, HWLOC_CPUBIND_THREAD);
        pml__pin_core(cx.topo, cores[0]);
        for (int phase = 0; phase < 2; phase++) {
            double best[2] = {INFINITY, INFINITY};
            for (int r = 0; r <= CROWD_ROUNDS; r++) /* round 0 warms up */
                for (int all = 0; all < 2; all++) {
                    const double t = crowd_run(&cx, &args[0], phase, all ? started : 0);
                    if (r > 0 && t < best[all]) best[all] = t;
                }
            const double f = best[1] / best[0];
            v[phase] = isfinite(f) && f > 1 ? (f < 4 ? f : 4) : 1.0;
        }
        if (old) {
            hwloc_set_cpubind(cx.topo, old, HWLOC_CPUBIND_THREAD);
            hwloc_bitmap_free(old);
        }
    }
    pthread_mutex_lock(&cx.mu);
    cx.stop = 1;
    pthread_cond_broadcast(&cx.cv);
    pthread_mutex_unlock(&cx.mu);
    for (int k = 1; k <= started; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < made; k++) free(args[k].a);
    pthread_cond_destroy(&cx.cv);
    pthread_mutex_destroy(&cx.mu);
    hwloc_topology_destroy(cx.topo);
    return ok;
}
