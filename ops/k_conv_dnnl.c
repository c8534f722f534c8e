/* pml — conv2d on oneDNN (Debian libdnnl-dev), an optional second implementation of the fast
 * conv2d kernels, built when meson finds the library (option dnnl, auto).
 *
 * oneDNN's JIT convolutions (AVX2, AVX-512) run 1.5-3x faster than im2col + sgemm on the CNN
 * layers pml trains, but only on channel-blocked layouts (nChw16c): a call reorders the input
 * from pml's NCHW into a blocked buffer, convolves, and reorders the result back (the backward:
 * dy in, dW and dx out, both accumulated as pml's kernels accumulate, with a "sum" post-op on the
 * reorder). The reorders stream memory, so on some shapes (one input channel, small images) the
 * sgemm kernel stays faster. Hence the choice is measured, per layer shape and region, the first
 * time it runs on a CPU: both implementations on private buffers of that shape, a few runs
 * each with the caches as a training step leaves them, and the faster one is kept, in the process and in the cache folder for later runs
 * (pml_conv_backend() forces either).
 *
 * Regions: a sample range and an output-channel range run here; a row range (an attribute
 * split) runs on the sgemm kernel. oneDNN runs single-threaded on the calling worker (its
 * OpenMP team is one thread), with a user-managed scratchpad in the task's workspace, so
 * workers run primitives concurrently. Primitives are made once per shape and kept for the
 * process's life (a shape table under a mutex). */
#include "kernels.h"

#include <stdatomic.h>
#include <stdint.h>

static _Atomic int conv_backend = PML_CONV_AUTO;

void pml_conv_backend(pml_conv_backend_kind b)
{
    atomic_store(&conv_backend, (int)b);
}

bool pml_conv_dnnl_available(void)
{
#ifdef PML_HAVE_DNNL
    return true;
#else
    return false;
#endif
}

#ifndef PML_HAVE_DNNL

bool pml__conv2d_dnnl(const pml_kctx *k, bool bwd)
{
    (void)k;
    (void)bwd;
    return false;
}

size_t pml__conv2d_dnnl_ws(const pml_node *n, const pml_shape *in, pml_region r)
{
    (void)n;
    (void)in;
    (void)r;
    return 0;
}

#else

#include <dnnl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- shapes */

/* convolutions without groups or dilation (the others run on im2col + sgemm) */
static bool plain(const pml_node *n)
{
    return n->a.groups <= 1 && n->a.dh <= 1 && n->a.dw <= 1 && n->a.depth == 0;
}

typedef struct dkey {
    int bwd, N, C, H, W, O, Oall, Ho, Wo, kh, kw, sh, sw, pt, pl, pb, pr, bias, relu;
} dkey;

enum { CH_UNDECIDED, CH_BLAS, CH_DNNL, CH_FAILED };

/* A reorder between a user layout and the primitive's: NULL when they are the same layout (the
 * primitive reads or writes the user's buffer; never for accumulated outputs). */
typedef struct reo {
    dnnl_primitive_t p;
    size_t off, bytes; /* the blocked buffer in the workspace */
} reo;

typedef struct dconv {
    dkey key;
    int choice;
    dnnl_primitive_desc_t fwd_pd;
    dnnl_primitive_t prim, prim2; /* forward; or backward weights, backward data */
    reo src, wei, dst;            /* forward: x in, w in, y out */
    reo bsrc, bdy_w, bdy_d, bwei, bdw, bdx; /* backward */
    bool dy_shared; /* the data pass reads dy in the weights pass's layout: bdy_w's buffer */
    size_t scratch_off, scratch2_off, db_off, dym_off;
    size_t ws_bytes;
    struct dconv *next;
} dconv;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static dconv *table;
static dnnl_engine_t engine;

static dkey key_of(const pml_node *n, pml_shape in, pml_region r, bool bwd)
{
    const pml_attrs *a = &n->a;
    dkey k;
    memset(&k, 0, sizeof k);
    k.bwd = bwd;
    k.N = r.n1 - r.n0;
    k.C = in.c, k.H = in.h, k.W = in.w;
    k.O = r.c1 - r.c0, k.Oall = n->out.c, k.Ho = n->out.h, k.Wo = n->out.w;
    k.kh = a->kh, k.kw = a->kw, k.sh = a->sh, k.sw = a->sw;
    k.pt = a->pt, k.pl = a->pl, k.pb = a->pb, k.pr = a->pr;
    k.bias = a->bias, k.relu = a->act == PML_ACT_RELU;
    return k;
}

/* ---------------------------------------------------------------- making primitives */

#define OK(x) ((x) == dnnl_success)
#define ALIGN_BYTES 64

static size_t take(size_t *top, size_t bytes)
{
    size_t at = *top;
    *top += (bytes + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
    return at;
}

static bool make_reorder(reo *r, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                         bool sum, bool always, size_t blocked_bytes, size_t *top)
{
    memset(r, 0, sizeof *r);
    if (!always && dnnl_memory_desc_equal(from, to)) return true;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    bool ok = true;
    if (sum) {
        ok = OK(dnnl_primitive_attr_create(&attr)) && OK(dnnl_post_ops_create(&po)) &&
             OK(dnnl_post_ops_append_sum(po, 1.0f)) &&
             OK(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    dnnl_primitive_desc_t pd = NULL;
    ok = ok && OK(dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr));
    ok = ok && OK(dnnl_primitive_create(&r->p, pd));
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (ok && blocked_bytes) {
        r->bytes = blocked_bytes;
        r->off = take(top, blocked_bytes);
    }
    return ok;
}

static bool user_scratch(dnnl_primitive_attr_t *attr, bool relu)
{
    if (!OK(dnnl_primitive_attr_create(attr))) return false;
    if (!OK(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user)))
        return false;
    if (!relu) return true;
    dnnl_post_ops_t po;
    if (!OK(dnnl_post_ops_create(&po))) return false;
    bool ok = OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f)) &&
              OK(dnnl_primitive_attr_set_post_ops(*attr, po));
    dnnl_post_ops_destroy(po);
    return ok;
}

static size_t scratch_bytes(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *m = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return m ? dnnl_memory_desc_get_size(m) : 0;
}

static const dnnl_memory_desc_t *md_of(const_dnnl_primitive_desc_t pd, dnnl_query_t q)
{
    return dnnl_primitive_desc_query_md(pd, q, 0);
}

/* The user (pml) layouts of a shape: x (N,C,H,W) dense; y, dy (N,O,Ho,Wo) of a tensor with Oall
 * channels; w (O,C,kh,kw) dense (a slice of whole output channels); b (O). */
typedef struct umd {
    dnnl_memory_desc_t x, y, ydense, w, b;
} umd;

static bool user_mds(const dkey *k, umd *u)
{
    dnnl_dims_t xd = {k->N, k->C, k->H, k->W}, yd = {k->N, k->O, k->Ho, k->Wo},
                ys = {(dnnl_dim_t)k->Oall * k->Ho * k->Wo, (dnnl_dim_t)k->Ho * k->Wo, k->Wo, 1},
                wd = {k->O, k->C, k->kh, k->kw}, bd = {k->O};
    return OK(dnnl_memory_desc_init_by_tag(&u->x, 4, xd, dnnl_f32, dnnl_nchw)) &&
           OK(dnnl_memory_desc_init_by_strides(&u->y, 4, yd, dnnl_f32, ys)) &&
           OK(dnnl_memory_desc_init_by_tag(&u->ydense, 4, yd, dnnl_f32, dnnl_nchw)) &&
           OK(dnnl_memory_desc_init_by_tag(&u->w, 4, wd, dnnl_f32, dnnl_oihw)) &&
           OK(dnnl_memory_desc_init_by_tag(&u->b, 1, bd, dnnl_f32, dnnl_x));
}

static bool fwd_desc(const dkey *k, dnnl_convolution_desc_t *cd, umd *u)
{
    dnnl_memory_desc_t xa, wa, ya;
    dnnl_dims_t xd = {k->N, k->C, k->H, k->W}, yd = {k->N, k->O, k->Ho, k->Wo},
                wd = {k->O, k->C, k->kh, k->kw}, st = {k->sh, k->sw}, pl = {k->pt, k->pl},
                pr = {k->pb, k->pr};
    return user_mds(k, u) &&
           OK(dnnl_memory_desc_init_by_tag(&xa, 4, xd, dnnl_f32, dnnl_format_tag_any)) &&
           OK(dnnl_memory_desc_init_by_tag(&wa, 4, wd, dnnl_f32, dnnl_format_tag_any)) &&
           OK(dnnl_memory_desc_init_by_tag(&ya, 4, yd, dnnl_f32, dnnl_format_tag_any)) &&
           OK(dnnl_convolution_forward_desc_init(cd, dnnl_forward_training,
                                                 dnnl_convolution_direct, &xa, &wa,
                                                 k->bias ? &u->b : NULL, &ya, st, pl, pr));
}

static bool make_fwd(dconv *d)
{
    const dkey *k = &d->key;
    dnnl_convolution_desc_t cd;
    umd u;
    dnnl_primitive_attr_t attr = NULL;
    size_t top = 0;
    bool ok = fwd_desc(k, &cd, &u) && user_scratch(&attr, k->relu) &&
              OK(dnnl_primitive_desc_create(&d->fwd_pd, &cd, attr, engine, NULL)) &&
              OK(dnnl_primitive_create(&d->prim, d->fwd_pd));
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) return false;
    const_dnnl_primitive_desc_t pd = d->fwd_pd;
    const dnnl_memory_desc_t *xs = md_of(pd, dnnl_query_src_md), *ws = md_of(pd, dnnl_query_weights_md),
                             *ys = md_of(pd, dnnl_query_dst_md);
    ok = make_reorder(&d->src, &u.x, xs, false, false, dnnl_memory_desc_get_size(xs), &top) &&
         make_reorder(&d->wei, &u.w, ws, false, false, dnnl_memory_desc_get_size(ws), &top) &&
         make_reorder(&d->dst, ys, &u.y, false, false, dnnl_memory_desc_get_size(ys), &top);
    if (!ok) return false;
    if (!d->dst.p) return false; /* a plain layout: the sgemm kernel does the same */
    d->scratch_off = take(&top, scratch_bytes(pd));
    d->ws_bytes = top;
    return true;
}

static bool make_bwd(dconv *d)
{
    const dkey *k = &d->key;
    dnnl_convolution_desc_t cd, bw, bdd;
    umd u;
    dnnl_primitive_attr_t attr = NULL, attr2 = NULL;
    size_t top = 0;
    dnnl_primitive_desc_t pw = NULL, pdd = NULL;
    dnnl_memory_desc_t xa, wa, ya;
    dnnl_dims_t xd = {k->N, k->C, k->H, k->W}, yd = {k->N, k->O, k->Ho, k->Wo},
                wd = {k->O, k->C, k->kh, k->kw}, st = {k->sh, k->sw}, pl = {k->pt, k->pl},
                pr = {k->pb, k->pr};
    bool ok = fwd_desc(k, &cd, &u) && user_scratch(&attr, false) &&
              OK(dnnl_primitive_desc_create(&d->fwd_pd, &cd, attr, engine, NULL)) &&
              OK(dnnl_memory_desc_init_by_tag(&xa, 4, xd, dnnl_f32, dnnl_format_tag_any)) &&
              OK(dnnl_memory_desc_init_by_tag(&wa, 4, wd, dnnl_f32, dnnl_format_tag_any)) &&
              OK(dnnl_memory_desc_init_by_tag(&ya, 4, yd, dnnl_f32, dnnl_format_tag_any)) &&
              OK(dnnl_convolution_backward_weights_desc_init(&bw, dnnl_convolution_direct, &xa,
                                                             &wa, k->bias ? &u.b : NULL, &ya, st,
                                                             pl, pr)) &&
              OK(dnnl_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &xa, &wa,
                                                          &ya, st, pl, pr)) &&
              user_scratch(&attr2, false) &&
              OK(dnnl_primitive_desc_create(&pw, &bw, attr2, engine, d->fwd_pd)) &&
              OK(dnnl_primitive_desc_create(&pdd, &bdd, attr2, engine, d->fwd_pd)) &&
              OK(dnnl_primitive_create(&d->prim, pw)) && OK(dnnl_primitive_create(&d->prim2, pdd));
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (attr2) dnnl_primitive_attr_destroy(attr2);
    if (ok) {
        const dnnl_memory_desc_t *xs = md_of(pw, dnnl_query_src_md),
                                 *dws = md_of(pw, dnnl_query_diff_weights_md),
                                 *dyw = md_of(pw, dnnl_query_diff_dst_md),
                                 *dyd = md_of(pdd, dnnl_query_diff_dst_md),
                                 *wsd = md_of(pdd, dnnl_query_weights_md),
                                 *dxs = md_of(pdd, dnnl_query_diff_src_md);
        /* dy comes dense (masked by the relu into the workspace) or as y's strided view */
        const dnnl_memory_desc_t *dyu = k->relu ? &u.ydense : &u.y;
        /* both passes read dy blocked alike (so far always): reordered once, for both */
        d->dy_shared = dnnl_memory_desc_equal(dyw, dyd);
        ok = make_reorder(&d->bsrc, &u.x, xs, false, false, dnnl_memory_desc_get_size(xs), &top) &&
             make_reorder(&d->bdy_w, dyu, dyw, false, false, dnnl_memory_desc_get_size(dyw), &top) &&
             (d->dy_shared || make_reorder(&d->bdy_d, dyu, dyd, false, false,
                                           dnnl_memory_desc_get_size(dyd), &top)) &&
             make_reorder(&d->bwei, &u.w, wsd, false, false, dnnl_memory_desc_get_size(wsd), &top) &&
             make_reorder(&d->bdw, dws, &u.w, true, true, dnnl_memory_desc_get_size(dws), &top) &&
             make_reorder(&d->bdx, dxs, &u.x, true, true, dnnl_memory_desc_get_size(dxs), &top);
        if (ok) {
            d->scratch_off = take(&top, scratch_bytes(pw));
            d->scratch2_off = take(&top, scratch_bytes(pdd));
            d->db_off = take(&top, (size_t)k->O * sizeof(float));
            d->dym_off = k->relu ? take(&top, dnnl_memory_desc_get_size(&u.ydense)) : 0;
            d->ws_bytes = top;
        }
    }
    if (pw) dnnl_primitive_desc_destroy(pw);
    if (pdd) dnnl_primitive_desc_destroy(pdd);
    return ok;
}

/* The shape's entry, made when first asked for; NULL when oneDNN cannot run it. */
static dconv *entry(const dkey *k)
{
    pthread_mutex_lock(&table_lock);
    dconv *d = table;
    while (d && memcmp(&d->key, k, sizeof *k) != 0) d = d->next;
    if (!d) {
        if (!engine && !OK(dnnl_engine_create(&engine, dnnl_cpu, 0))) engine = NULL;
        d = calloc(1, sizeof *d);
        if (d) {
            d->key = *k;
            omp_set_num_threads(1);
            bool ok = engine && (k->bwd ? make_bwd(d) : make_fwd(d));
            d->choice = ok ? CH_UNDECIDED : CH_FAILED;
            d->next = table;
            table = d;
        }
    }
    if (d && d->choice == CH_FAILED) d = NULL;
    pthread_mutex_unlock(&table_lock);
    return d;
}

/* ---------------------------------------------------------------- choices kept across runs
 *
 * A choice measured once is kept in the cache folder's conv/, a line per shape in a file per
 * CPU (its model name and feature flags from /proc/cpuinfo, with pml's and oneDNN's versions):
 * later runs start without measuring, and choose alike (two kernels round differently, so a
 * choice made anew by every run made runs of one seed differ). Under table_lock. */
typedef struct kept {
    dkey key;
    int choice;
    struct kept *next;
} kept;
_Static_assert(sizeof(dkey) == 19 * sizeof(int), "a kept line has 19 numbers");
static kept *kept_list;
static bool kept_loaded;
static char kept_path[4096];

static void kept_load(void)
{
    kept_loaded = true;
    char *dir = pml_cache_dir("conv");
    if (!dir) return;
    /* 3: a first layer's forward without columns (2: measured as in a training step; 1: on
     * warm caches) */
    uint64_t h = pml_hash_str(PML_HASH_INIT, "pml " PML_VERSION " conv choices 3");
    const dnnl_version_t *v = dnnl_version();
    const int ver[3] = {v ? v->major : 0, v ? v->minor : 0, v ? v->patch : 0};
    h = pml_hash(h, ver, sizeof ver);
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    bool model = false, flags = false;
    while (f && fgets(line, sizeof line, f) && !(model && flags)) {
        if (!model && strncmp(line, "model name", 10) == 0) model = true;
        else if (!flags && strncmp(line, "flags", 5) == 0) flags = true;
        else continue;
        h = pml_hash_str(h, line);
    }
    if (f) fclose(f);
    if ((size_t)snprintf(kept_path, sizeof kept_path, "%s/%016llx.txt", dir,
                         (unsigned long long)h) >= sizeof kept_path)
        kept_path[0] = 0;
    free(dir);
    if (!kept_path[0] || !(f = fopen(kept_path, "r"))) return;
    while (fgets(line, sizeof line, f)) { /* a line that does not read is skipped */
        kept k;
        int *q = &k.key.bwd, n = 0;
        char what[8];
        const char *p = line;
        int i = 0;
        for (; i < 19 && sscanf(p, "%d%n", &q[i], &n) == 1; i++) p += n;
        if (i != 19 || sscanf(p, "%7s", what) != 1) continue;
        k.choice = strcmp(what, "dnnl") == 0 ? CH_DNNL : strcmp(what, "blas") == 0 ? CH_BLAS : 0;
        kept *e = k.choice ? malloc(sizeof *e) : NULL;
        if (!e) continue;
        *e = k;
        e->next = kept_list;
        kept_list = e;
    }
    fclose(f);
}

static int kept_find(const dkey *k)
{
    if (!kept_loaded) kept_load();
    for (const kept *e = kept_list; e; e = e->next)
        if (memcmp(&e->key, k, sizeof *k) == 0) return e->choice;
    return CH_UNDECIDED;
}

static void kept_add(const dkey *k, int choice)
{
    if (!kept_path[0]) return;
    char line[512];
    int n = 0;
    const int *q = &k->bwd;
    for (int i = 0; i < 19; i++) n += snprintf(line + n, sizeof line - (size_t)n, "%d ", q[i]);
    snprintf(line + n, sizeof line - (size_t)n, "%s\n", choice == CH_DNNL ? "dnnl" : "blas");
    FILE *f = fopen(kept_path, "a"); /* one short write: lines of two processes do not mix */
    if (!f) return;
    setvbuf(f, NULL, _IOFBF, sizeof line);
    fputs(line, f);
    fclose(f);
}

/* ---------------------------------------------------------------- running */

typedef struct exec {
    dnnl_stream_t s;
    dnnl_memory_t mem[16];
    int nmem;
    bool ok;
} exec;

static dnnl_memory_t mem(exec *e, const dnnl_memory_desc_t *md, void *p)
{
    dnnl_memory_t m = NULL;
    if (!e->ok || e->nmem == 16 || !OK(dnnl_memory_create(&m, md, engine, p))) {
        e->ok = false;
        return NULL;
    }
    e->mem[e->nmem++] = m;
    return m;
}

static const dnnl_memory_desc_t *prim_md(const dnnl_primitive_t p, dnnl_query_t q, int i)
{
    const_dnnl_primitive_desc_t pd;
    if (!OK(dnnl_primitive_get_primitive_desc(p, &pd))) return NULL;
    return dnnl_primitive_desc_query_md(pd, q, i);
}

static void run(exec *e, dnnl_primitive_t p, int n, const dnnl_exec_arg_t *a)
{
    for (int i = 0; i < n; i++) e->ok &= a[i].memory != NULL;
    if (e->ok) e->ok = OK(dnnl_primitive_execute(p, e->s, n, a));
}

/* Reorders user data at \p p into r's blocked buffer (or hands p on when r has no reorder);
 * \return the blocked memory (user-layout memory when no reorder). */
static dnnl_memory_t in(exec *e, const reo *r, char *ws, const dnnl_memory_desc_t *user,
                        const void *p, const dnnl_memory_desc_t *blocked)
{
    dnnl_memory_t u = mem(e, user, (void *)p);
    if (!r->p) return u;
    dnnl_memory_t b = mem(e, blocked, ws + r->off);
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, u}, {DNNL_ARG_TO, b}};
    run(e, r->p, 2, a);
    return b;
}

static void out(exec *e, const reo *r, dnnl_memory_t blocked, const dnnl_memory_desc_t *user,
                void *p)
{
    dnnl_memory_t u = mem(e, user, p);
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, blocked}, {DNNL_ARG_TO, u}};
    run(e, r->p, 2, a);
}

static bool run_fwd(const dconv *d, const pml_kctx *k)
{
    const dkey *q = &d->key;
    const pml_region r = k->r;
    const size_t HWo = (size_t)q->Ho * q->Wo, HW = (size_t)q->H * q->W, K = (size_t)q->C * q->kh * q->kw;
    char *ws = (char *)k->ws;
    umd u;
    exec e = {.ok = user_mds(q, &u)};
    e.ok = e.ok && OK(dnnl_stream_create(&e.s, engine, dnnl_stream_default_flags));
    const_dnnl_primitive_desc_t pd = d->fwd_pd;
    dnnl_memory_t x = in(&e, &d->src, ws, &u.x, k->x[0] + (size_t)r.n0 * q->C * HW,
                         md_of(pd, dnnl_query_src_md));
    dnnl_memory_t w = in(&e, &d->wei, ws, &u.w, k->w[0] + (size_t)r.c0 * K,
                         md_of(pd, dnnl_query_weights_md));
    dnnl_memory_t y = mem(&e, md_of(pd, dnnl_query_dst_md), ws + d->dst.off);
    dnnl_memory_t sp = mem(&e, md_of(pd, dnnl_query_scratchpad_md), ws + d->scratch_off);
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, x},
                            {DNNL_ARG_WEIGHTS, w},
                            {DNNL_ARG_DST, y},
                            {DNNL_ARG_SCRATCHPAD, sp},
                            {DNNL_ARG_BIAS, NULL}};
    int na = 4;
    if (q->bias) a[na++].memory = mem(&e, &u.b, (void *)(k->w[1] + r.c0));
    run(&e, d->prim, na, a);
    out(&e, &d->dst, y, &u.y, k->y + (size_t)r.n0 * q->Oall * HWo + (size_t)r.c0 * HWo);
    if (e.s) {
        if (e.ok) e.ok = OK(dnnl_stream_wait(e.s));
        dnnl_stream_destroy(e.s);
    }
    for (int i = 0; i < e.nmem; i++) dnnl_memory_destroy(e.mem[i]);
    return e.ok;
}

static bool run_bwd(const dconv *d, const pml_kctx *k)
{
    const dkey *q = &d->key;
    const pml_region r = k->r;
    const size_t HWo = (size_t)q->Ho * q->Wo, HW = (size_t)q->H * q->W, K = (size_t)q->C * q->kh * q->kw;
    float *dw = k->dw[0] ? k->dw[0] + (size_t)r.c0 * K : NULL;
    float *db = q->bias && k->dw[1] ? k->dw[1] + r.c0 : NULL;
    float *dx = k->dx[0] ? k->dx[0] + (size_t)r.n0 * q->C * HW : NULL;
    if (!dw && !db && !dx) return true;
    char *ws = (char *)k->ws;
    const size_t yoff = (size_t)r.n0 * q->Oall * HWo + (size_t)r.c0 * HWo;
    const float *dy = k->dy + yoff;
    if (q->relu) { /* dy masked by y > 0, dense */
        float *m = (float *)(ws + d->dym_off);
        const float *y = k->y + yoff;
        /* a sample's channels of the region are contiguous */
        pml__relu_mask_rows(m, y, dy, (size_t)q->Oall * HWo, (size_t)q->N, (size_t)q->O * HWo);
        dy = m;
    }
    umd u;
    exec e = {.ok = user_mds(q, &u)};
    e.ok = e.ok && OK(dnnl_stream_create(&e.s, engine, dnnl_stream_default_flags));
    const dnnl_memory_desc_t *dyu = q->relu ? &u.ydense : &u.y;
    dnnl_memory_t gs = NULL; /* dy as the weights pass read it (blocked, or the user's) */
    if (dw || db) {
        dnnl_primitive_t p = d->prim;
        dnnl_memory_t x = in(&e, &d->bsrc, ws, &u.x, k->x[0] + (size_t)r.n0 * q->C * HW,
                             prim_md(p, dnnl_query_src_md, 0));
        dnnl_memory_t g = gs = in(&e, &d->bdy_w, ws, dyu, dy,
                                  prim_md(p, dnnl_query_diff_dst_md, 0));
        dnnl_memory_t gw = mem(&e, prim_md(p, dnnl_query_diff_weights_md, 0), ws + d->bdw.off);
        dnnl_memory_t sp = mem(&e, prim_md(p, dnnl_query_scratchpad_md, 0), ws + d->scratch_off);
        float *dbs = (float *)(ws + d->db_off);
        dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, x},
                                {DNNL_ARG_DIFF_DST, g},
                                {DNNL_ARG_DIFF_WEIGHTS, gw},
                                {DNNL_ARG_SCRATCHPAD, sp},
                                {DNNL_ARG_DIFF_BIAS, NULL}};
        int na = 4;
        if (q->bias) a[na++].memory = mem(&e, &u.b, dbs);
        run(&e, p, na, a);
        if (dw) out(&e, &d->bdw, gw, &u.w, dw);
        if (e.ok) e.ok = OK(dnnl_stream_wait(e.s));
        if (e.ok && db)
            for (int o = 0; o < q->O; o++) db[o] += dbs[o];
    }
    if (dx) {
        dnnl_primitive_t p = d->prim2;
        dnnl_memory_t g = d->dy_shared && gs
                              ? gs
                              : in(&e, d->dy_shared ? &d->bdy_w : &d->bdy_d, ws, dyu, dy,
                                   prim_md(p, dnnl_query_diff_dst_md, 0));
        dnnl_memory_t w = in(&e, &d->bwei, ws, &u.w, k->w[0] + (size_t)r.c0 * K,
                             prim_md(p, dnnl_query_weights_md, 0));
        dnnl_memory_t gx = mem(&e, prim_md(p, dnnl_query_diff_src_md, 0), ws + d->bdx.off);
        dnnl_memory_t sp = mem(&e, prim_md(p, dnnl_query_scratchpad_md, 0), ws + d->scratch2_off);
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_DIFF_DST, g},
                                {DNNL_ARG_WEIGHTS, w},
                                {DNNL_ARG_DIFF_SRC, gx},
                                {DNNL_ARG_SCRATCHPAD, sp}};
        run(&e, p, 4, a);
        out(&e, &d->bdx, gx, &u.x, dx);
    }
    if (e.s) {
        if (e.ok) e.ok = OK(dnnl_stream_wait(e.s));
        dnnl_stream_destroy(e.s);
    }
    for (int i = 0; i < e.nmem; i++) dnnl_memory_destroy(e.mem[i]);
    return e.ok;
}

/* ---------------------------------------------------------------- the choice */

/* The buffer that evicts the caches before each timed run (pml_caches_as_in_a_step), made once,
 * at the first choice, under table_lock. */
static unsigned char *evict_buf;

/* Times both implementations of d's shape on private buffers (region rebased to sample 0), with
 * the caches as in a training step (pml_caches_as_in_a_step: on warm caches oneDNN's reorders cost
 * little, in a step they stream memory, and oneDNN's choice made warm was up to 2x slower there
 * on small layers): five rounds, the two in turn (so a slow moment of the machine falls on both),
 * the median of each. */
static int decide(const dconv *d, const pml_kctx *k)
{
    const dkey *q = &d->key;
    const size_t HWo = (size_t)q->Ho * q->Wo, HW = (size_t)q->H * q->W,
                 K = (size_t)q->C * q->kh * q->kw;
    const size_t nx = (size_t)q->N * q->C * HW, ny = (size_t)q->N * q->Oall * HWo,
                 nw = (size_t)q->Oall * K;
    const size_t nws = pml__conv2d_ws_blas(k->node, k->xs, k->r) * sizeof(float) + d->ws_bytes;
    float *buf = malloc(sizeof(float) * (2 * nx + 3 * ny + 2 * nw + 2 * (size_t)q->Oall) + nws + ALIGN_BYTES);
    if (!buf) return CH_BLAS;
    float *x = buf, *dx = x + nx, *y = dx + nx, *dy = y + ny, *y2 = dy + ny, *w = y2 + ny,
          *dw = w + nw, *b = dw + nw, *db = b + q->Oall;
    float *ws = (float *)(((uintptr_t)(db + q->Oall) + ALIGN_BYTES - 1) & ~(uintptr_t)(ALIGN_BYTES - 1));
    for (size_t i = 0; i < nx; i++) x[i] = (float)((i * 2654435761u) >> 24) / 256.0f;
    for (size_t i = 0; i < nw; i++) w[i] = (float)((i * 40503u) & 255) / 2048.0f - 0.06f;
    for (size_t i = 0; i < ny; i++) dy[i] = (float)((i * 69069u) & 255) / 4096.0f - 0.03f;
    memset(b, 0, sizeof(float) * q->Oall);
    pml_kctx c = *k;
    c.r.n0 = 0;
    c.r.n1 = q->N;
    c.N = q->N;
    c.x[0] = x;
    c.w[0] = w;
    c.w[1] = b;
    c.y = q->bwd ? y2 : y;
    c.dy = dy;
    c.dx[0] = k->dx[0] ? dx : NULL;
    c.dw[0] = dw;
    c.dw[1] = db;
    c.ws = ws;
    if (q->bwd) { /* a forward output for the relu mask */
        pml_kctx f = c;
        f.y = y2;
        pml__conv2d_fwd_blas(&f);
    }
    if (!evict_buf && (evict_buf = malloc(PML_EVICT_BYTES))) memset(evict_buf, 0, PML_EVICT_BYTES);
    enum { ROUNDS = 5 };
    double t[2][ROUNDS];
    bool ok = true;
    for (int i = 0; i <= ROUNDS; i++) /* round 0 warms both up */
        for (int j = 0; j < 2; j++) {
            const int impl = (i + j) % 2;
            memset(dw, 0, sizeof(float) * nw);
            memset(dx, 0, sizeof(float) * nx);
            const float *fresh = q->bwd ? dy : x;
            const size_t nfresh = q->bwd ? ny : nx;
            pml_caches_as_in_a_step(evict_buf, &fresh, &nfresh, 1);
            const double t0 = pml_now();
            if (impl == 0) {
                if (q->bwd) pml__conv2d_bwd_blas(&c);
                else pml__conv2d_fwd_blas(&c);
            } else {
                ok &= q->bwd ? run_bwd(d, &c) : run_fwd(d, &c);
            }
            if (i > 0) t[impl][i - 1] = pml_now() - t0;
        }
    free(buf);
    if (!ok) return CH_FAILED;
    return pml_median(t[1], ROUNDS) < pml_median(t[0], ROUNDS) ? CH_DNNL : CH_BLAS;
}

size_t pml__conv2d_dnnl_ws(const pml_node *n, const pml_shape *in, pml_region r)
{
    if (atomic_load(&conv_backend) == PML_CONV_BLAS || !plain(n)) return 0;
    if (r.h0 != 0 || r.h1 != n->out.h || r.n1 <= r.n0 || r.c1 <= r.c0) return 0;
    size_t most = 0;
    for (int bwd = 0; bwd < 2; bwd++) {
        const dkey k = key_of(n, in[0], r, bwd);
        const dconv *d = entry(&k);
        if (d && d->ws_bytes > most) most = d->ws_bytes;
    }
    return (most + sizeof(float) - 1) / sizeof(float);
}

bool pml__conv2d_dnnl(const pml_kctx *k, bool bwd)
{
    const int mode = atomic_load(&conv_backend);
    const pml_region r = k->r;
    if (mode == PML_CONV_BLAS || !plain(k->node) || r.h0 != 0 || r.h1 != k->node->out.h ||
        r.n1 <= r.n0 || r.c1 <= r.c0)
        return false;
    const dkey key = key_of(k->node, k->xs[0], r, bwd);
    dconv *d = entry(&key);
    if (!d) return false;
    /* the workspace was sized by pml__conv2d_ws for this region: it has room for d */
    if (omp_get_max_threads() != 1) omp_set_num_threads(1);
    if (mode == PML_CONV_AUTO) {
        pthread_mutex_lock(&table_lock);
        if (d->choice == CH_UNDECIDED && (d->choice = kept_find(&d->key)) == CH_UNDECIDED) {
            d->choice = decide(d, k);
            if (d->choice == CH_DNNL || d->choice == CH_BLAS) kept_add(&d->key, d->choice);
        }
        const int ch = d->choice;
        pthread_mutex_unlock(&table_lock);
        if (ch != CH_DNNL) return false;
    }
    return bwd ? run_bwd(d, k) : run_fwd(d, k);
}

#endif
