/* pml — the training loop: epochs of shuffled mini-batches, validation, test evaluation.
 *
 * Its control plane is a libuv loop owned by pml_train, on the calling thread (which is also
 * worker 0 of the executor's workers, so a step runs synchronously and the loop is polled between
 * steps, never woken during one):
 *   - prefetch (double buffering): while a step runs, the batches after it are gathered in
 *     libuv's thread pool into one of two chunk buffers; a step copies its batch from there
 *     into the executor's input and labels. The batches are those of the plain loop (the same
 *     shuffles, in the same order), so results are bit for bit the same;
 *   - progress: a uv_timer reports the last finished step every REPORT_MS;
 *   - signals (opts->handle_signals): SIGINT, SIGTERM and SIGHUP are caught by a handler that
 *     only records the first one (and gives all three their default action back, so a second
 *     ends the process at once); the loop sees it between steps and training stops with
 *     PML_EINTR. Compute and pool threads run with signals blocked, so the handler runs on
 *     this thread. On return the three are blocked here and the caller's handlers are back: a
 *     signal after the last step waits (pending) until the caller has printed its results. */
#include "runtime/runtime.h"

#include "exec.h"
#include "sync.h"
#include "workers.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* A prefetch chunk holds whole batches, at least this many bytes of them (else one batch): small
 * samples are gathered several batches at a time, so the cost of a work item (waking a pool
 * thread, then the loop) is spread over several steps. */
#define CHUNK_BYTES (1 << 20)
#define REPORT_MS 100


/* a dataset feeds one input: a model of several (pml infer runs those) is refused */
static pml_status one_input(const pml_graph *g)
{
    for (int v = 0; v < g->nnodes; v++)
        if (g->nodes[v].op == PML_OP_INPUT && v != g->input)
            return pml_fail(PML_EUNSUPPORTED,
                            "model '%s' has several inputs ('%s', '%s'); a dataset feeds one: pml "
                            "trains and evaluates models of one input (pml infer runs the others)",
                            g->name, g->nodes[g->input].name, g->nodes[v].name);
    return PML_OK;
}

static pml_status check_data(const pml_graph *g, const pml_dataset *d, const char *what)
{
    pml_status st = one_input(g);
    if (st != PML_OK) return st;
    if (!pml_shape_eq(d->shape, g->nodes[g->input].out))
        return pml_fail(
            PML_ESHAPE, "%s data '%s' has samples of %dx%dx%d, model '%s' takes %dx%dx%d", what,
            d->name, d->shape.c, d->shape.h, d->shape.w, g->name, g->nodes[g->input].out.c,
            g->nodes[g->input].out.h, g->nodes[g->input].out.w);
    if (d->classes > g->classes)
        return pml_fail(PML_ESHAPE, "%s data '%s' has %d classes, model '%s' predicts %d", what,
                        d->name, d->classes, g->name, g->classes);
    if (d->n < 1) return pml_fail(PML_EINVAL, "%s data '%s' has no samples", what, d->name);
    return PML_OK;
}

pml_status pml_evaluate(pml_exec *e, const pml_dataset *d, int batch, double *loss,
                        double *accuracy)
{
    pml_status ds = one_input(&e->g);
    if (ds != PML_OK) return ds;
    ds = pml_data_wait(d); /* an image folder still decoding: all of it first */
    if (ds != PML_OK) return ds;
    int32_t *idx = malloc((size_t)batch * sizeof *idx);
    if (!idx) return pml_fail(PML_ENOMEM, "out of memory");
    double s = 0;
    long correct = 0;
    pml_status st = PML_OK;
    for (int i = 0; i < d->n && st == PML_OK; i += batch) {
        int n = d->n - i < batch ? d->n - i : batch;
        for (int j = 0; j < n; j++) idx[j] = i + j;
        pml_data_gather(d, idx, n, pml_exec_input(e), pml_exec_labels(e));
        pml_step_result r;
        st = pml_exec_forward(e, n, false, &r);
        s += r.loss_sum;
        correct += r.correct;
    }
    free(idx);
    if (st != PML_OK) return st;
    *loss = s / d->n;
    *accuracy = (double)correct / d->n;
    return PML_OK;
}

pml_status pml_predict(pml_exec *e, const pml_dataset *d, int batch, int32_t *cls, float *prob,
                       int32_t *label)
{
    pml_status ds = pml_data_wait(d); /* an image folder still decoding: all of it first */
    if (ds != PML_OK) return ds;
    int32_t *idx = malloc((size_t)batch * sizeof *idx);
    if (!idx) return pml_fail(PML_ENOMEM, "out of memory");
    const pml_graph *g = &e->g;
    const int C = g->nodes[g->logits].out.c;
    pml_status st = PML_OK;
    for (int i = 0; i < d->n && st == PML_OK; i += batch) {
        int n = d->n - i < batch ? d->n - i : batch;
        for (int j = 0; j < n; j++) idx[j] = i + j;
        pml_data_gather(d, idx, n, pml_exec_input(e), pml_exec_labels(e));
        if ((st = pml_exec_forward(e, n, false, NULL)) != PML_OK) break;
        const float *z = pml_exec_output(e, g->logits);
        for (int j = 0; j < n; j++) {
            cls[i + j] = pml_logits_class(z + (size_t)j * C, C, &prob[i + j]);
            if (label) label[i + j] = pml_exec_labels(e)[j];
        }
    }
    free(idx);
    return st;
}

/* ---------------------------------------------------------------- prefetch */

typedef struct batch_ref {
    const pml_dataset *d;
    const int32_t *idx; /* n indices into d */
    int n;
} batch_ref;

/* The b-th batch of a sequence (training: all steps of all epochs; evaluation: a dataset in
 * order). \return false past the end. *last: b ends a segment (an epoch), which a chunk does not
 * cross. Runs on the loop's thread, in order of b. */
typedef bool (*locate_fn)(void *ud, long b, batch_ref *r, bool *last);

struct feeder;

typedef struct chunk {
    uv_work_t work; /* work.data: this chunk */
    struct feeder *f;
    float *x; /* cap batches, each f->batch samples apart */
    int32_t *y;
    batch_ref *ref; /* cap */
    long first;     /* sequence index of its first batch; -1: empty */
    int count;      /* batches it holds */
    bool busy;      /* queued or being gathered (loop thread only) */
} chunk;

/* Two chunks: the steps take their batches from one while the pool fills the other. */
typedef struct feeder {
    uv_loop_t *loop;
    chunk c[2];
    int cap;     /* batches per chunk */
    int batch;   /* samples per batch (at most) */
    size_t stride; /* floats from a batch to the next in a chunk: a whole number of lines */
    locate_fn locate;
    void *ud;
    long next; /* the next batch to queue */
    bool done; /* the sequence has no more */
    chunk *spent; /* emptied, but its last batch is the step's input until the next take */
    /* gather on the loop's thread when the chunk is refilled, not in the pool: set while the
     * workers take every core, where a pool thread would take a core from a worker in the
     * middle of a step and the other workers wait for it (the gather itself is a few
     * microseconds a batch, spent between two steps) */
    bool here;
} feeder;

/* pool thread */
static void gather_chunk(uv_work_t *w)
{
    chunk *c = w->data;
    const size_t stride = c->f->stride;
    for (int k = 0; k < c->count; k++)
        pml_data_gather(c->ref[k].d, c->ref[k].idx, c->ref[k].n, c->x + (size_t)k * stride,
                        c->y + (size_t)k * (size_t)c->f->batch);
}

/* loop thread: the pool's mutex orders the gather's writes before this */
static void gathered(uv_work_t *w, int status)
{
    (void)status;
    chunk *c = w->data;
    c->busy = false;
}

static pml_status feeder_init(feeder *f, uv_loop_t *loop, int batch, size_t size, long most)
{
    memset(f, 0, sizeof *f);
    f->loop = loop;
    f->batch = batch;
    f->stride = pml_exec_input_stride(batch, size);
    size_t bytes = f->stride * sizeof(float);
    long cap = bytes >= CHUNK_BYTES ? 1 : (long)((CHUNK_BYTES + bytes - 1) / bytes);
    f->cap = (int)(cap < most ? cap : most > 0 ? most : 1);
    for (int i = 0; i < 2; i++) {
        chunk *c = &f->c[i];
        c->f = f;
        c->work.data = c;
        c->first = -1;
        c->x = aligned_alloc(64, (size_t)f->cap * f->stride * sizeof *c->x);
        c->y = malloc((size_t)f->cap * (size_t)batch * sizeof *c->y);
        c->ref = malloc((size_t)f->cap * sizeof *c->ref);
        if (!c->x || !c->y || !c->ref) return pml_fail(PML_ENOMEM, "out of memory");
    }
    return PML_OK;
}

/* waits for the chunks in the pool (they are cheap: no cancelling) */
static void feeder_drain(feeder *f)
{
    for (int i = 0; i < 2; i++)
        while (f->c[i].busy) uv_run(f->loop, UV_RUN_ONCE);
}

static void feeder_free(feeder *f)
{
    for (int i = 0; i < 2; i++) {
        assert(!f->c[i].busy);
        free(f->c[i].x);
        free(f->c[i].y);
        free(f->c[i].ref);
    }
    memset(f, 0, sizeof *f);
}

/* fills chunk c with the next batches of the sequence, in the pool */
static void refill(feeder *f, chunk *c)
{
    assert(!c->busy);
    c->first = -1;
    c->count = 0;
    long first = f->next;
    while (!f->done && c->count < f->cap) {
        bool last = false;
        if (!f->locate(f->ud, f->next, &c->ref[c->count], &last)) {
            f->done = true;
            break;
        }
        c->count++;
        f->next++;
        if (last) break;
    }
    if (!c->count) return;
    c->first = first;
    if (f->here) { /* between two steps, on this thread */
        gather_chunk(&c->work);
        return;
    }
    c->busy = true;
    /* fails only for a NULL work callback */
    int r = uv_queue_work(f->loop, &c->work, gather_chunk, gathered);
    assert(r == 0);
    (void)r;
}

/* starts a sequence: both chunks go to the pool */
static void feeder_start(feeder *f, locate_fn locate, void *ud, long from)
{
    feeder_drain(f);
    f->locate = locate;
    f->ud = ud;
    f->next = from;
    f->done = false;
    f->spent = NULL;
    refill(f, &f->c[0]);
    refill(f, &f->c[1]);
}

/* batch b (the next one): its *n samples stay in the chunk, where the step reads them (copying
 * them into the executor's input would write every line the other cores read the step before);
 * its labels are copied into y. The chunk emptied by the previous take is refilled now. */
static float *feeder_take(feeder *f, long b, int32_t *y, int *n)
{
    if (f->spent) {
        refill(f, f->spent);
        f->spent = NULL;
    }
    chunk *c = NULL;
    for (int i = 0; i < 2; i++)
        if (f->c[i].first >= 0 && b >= f->c[i].first && b < f->c[i].first + f->c[i].count)
            c = &f->c[i];
    assert(c); /* batches are taken in order */
    while (c->busy) uv_run(f->loop, UV_RUN_ONCE);
    int k = (int)(b - c->first);
    *n = c->ref[k].n;
    memcpy(y, c->y + (size_t)k * (size_t)f->batch, (size_t)*n * sizeof *y);
    if (k == c->count - 1) f->spent = c;
    return c->x + (size_t)k * f->stride;
}

/* ---------------------------------------------------------------- the control plane */

typedef struct comm_ev {
    long step;
    int bucket;
    double post, done; /* pml_now() */
} comm_ev;

typedef struct trainer {
    const pml_train_opts *o;
    uv_loop_t loop;
    bool loop_ok;
    uv_timer_t timer;
    bool timer_ok;
    struct sigaction old_sa[3]; /* the caller's handlers of stop_signals */
    bool sig_ok;
    int signum; /* the first signal caught */
    feeder feed, evf;
    bool feed_ok, evf_ok;
    int cores; /* this machine's */
    int rank, ranks; /* this process's part of every batch (pml_train_opts.dist) */
    int part, parts;  /* its part of each batch (-1 on a parameter server: none) of parts */
    bool spans;       /* a plan across ranks: every rank takes every batch (part 0 of 1) */
    pml_dist_ps *ps;  /* parameter servers across ranks (pml_train_opts.ps_servers) */
    /* gradient buckets summed across the ranks during the backward pass (NULL red: after it) */
    pml_dist_reducer *red;
    int nbuckets;
    int *bucket_of;          /* [node]: its bucket, -1 without parameters */
    int *bucket_nodes;       /* [bucket]: nodes with parameters in it */
    _Atomic int *bucket_left; /* [bucket]: of those, gradients not yet complete this step */
    size_t *bucket_lo, *bucket_hi; /* bucket b: gradients [bucket_lo[b], bucket_hi[b]) */
    double ar_seconds, ar_hidden; /* summing buckets: seconds, and those before backward ended */
    /* the same for the rank that ended its backward pass last, step by step (the others wait
     * for it in the last bucket's sum): each rank's figures of a step go out in the next step's
     * sums (step_ar, when step_ar_ok), and the least seconds of the ranks count */
    double step_ar[2];
    bool step_ar_ok;
    double ar_last_seconds, ar_last_hidden;
    double *t_post, *t_done;      /* [bucket]: the last step's times */
    comm_ev *comm;                /* with a trace: every bucket of every step */
    long ncomm, maxcomm;
    /* data-parallel ranks: the samples of a full batch rank r takes, share[r] from step
     * share_from on, old_share[r] before (a new split starts at a step no feeder has located);
     * equal (old_equal): that split is the equal one. balance: re-split by the ranks' speeds,
     * measured from step win_from on: win_sec[r], win_n[r] seconds and samples of rank r's
     * passes over win_steps steps; sums: a step's loss, correct count, failures and the
     * ranks' seconds, summed over the ranks */
    int *share, *old_share, *new_share;
    long share_from;
    bool equal, old_equal, balance;
    int share_cap;
    double *win_sec, *sums;
    long *win_n;
    long win_from;
    int win_steps, tries, changes;
    double win_slowest; /* the window's sum of each step's slowest pass */
    /* a split on trial, new_share, runs every other step of [tr_from, tr_to) (the steps
     * tr_from, tr_from + 2, ...), share the steps between: arm[0] and arm[1] sum their full
     * steps' slowest passes, arm_n count them */
    bool trial;
    long tr_from, tr_to;
    double arm[2];
    int arm_n[2];
    int backoff; /* the windows' length, in BALANCE_STEPS and BALANCE_SECONDS */
    /* training batches: step b of the run is step b % spe of epoch b / spe + 1 */
    const pml_dataset *tr;
    int32_t *perm[2]; /* shuffles of odd and even epochs: at most two epochs are in flight */
    int perm_ep[2];   /* the epoch each holds (0: none yet) */
    long first_step;  /* the run's first step: 0, or the one a checkpoint resumes at */
    /* checkpoints: the copy the pool writes while training goes on */
    uv_work_t ck_work;
    pml_ckpt ck;
    bool ck_busy;
    pml_status ck_st;
    char ck_err[1024];
    long ck_last;     /* the step of the last checkpoint queued (-1: none) */
    pml_dist *ck_dist; /* across ranks: the checkpoints' own communicator (the pool writes) */
    pml_ckpt_ranges ck_ranges[4]; /* across ranks: the floats this rank writes (params m v state) */
    size_t ck_cap[4];
    long spe, limit;
    /* evaluation batches */
    const pml_dataset *ev;
    int32_t *ident;
    /* the last finished step, for the progress timer */
    bool fresh;
    double next_turn; /* pml_now() from which poll_stop gives the control loop a turn */
    int r_epoch;
    long r_step;
    double r_loss, r_acc, r_elapsed;
} trainer;

/* This rank's equal part [lo, hi) of m samples (none on a parameter server) */
static void equal_range(const trainer *t, int m, int *lo, int *hi)
{
    *lo = t->part < 0 ? 0 : (int)pml__part_start(m, t->parts, t->part);
    *hi = t->part < 0 ? 0 : (int)pml__part_start(m, t->parts, t->part + 1);
}

/* step b runs the split on trial */
static bool on_trial(const trainer *t, long b)
{
    return t->trial && b >= t->tr_from && b < t->tr_to && ((b - t->tr_from) & 1) == 0;
}

/* The samples of a full batch rank q takes at step b (share and old_share hold the equal split
 * when it is that) */
static int share_of(const trainer *t, long b, int q)
{
    if (!t->share)
        return (int)(pml__part_start(t->o->batch, t->parts, q + 1) -
                     pml__part_start(t->o->batch, t->parts, q));
    if (on_trial(t, b)) return t->new_share[q];
    return b >= t->share_from ? t->share[q] : t->old_share[q];
}

/* This rank's samples [lo, hi) of step b's m: its share, in proportion when m is short (an
 * equal split as it always was: a short batch's parts stay where they were) */
static void part_range(const trainer *t, long b, int m, int *lo, int *hi)
{
    const bool now = b >= t->share_from;
    if (t->part < 0 || !t->share || (!on_trial(t, b) && (now ? t->equal : t->old_equal))) {
        equal_range(t, m, lo, hi);
    } else {
        long c = 0;
        for (int q = 0; q < t->part; q++) c += share_of(t, b, q);
        *lo = (int)((long)m * c / t->o->batch);
        *hi = (int)((long)m * (c + share_of(t, b, t->part)) / t->o->batch);
    }
}

static bool locate_train(void *ud, long b, batch_ref *r, bool *last)
{
    trainer *t = ud;
    if (b >= t->limit) return false;
    int ep = (int)(b / t->spe) + 1;
    long s = b % t->spe;
    int32_t *perm = t->perm[ep & 1];
    /* the other buffer holds the epoch before, whose batches may be in the pool; a run resumed
     * mid-epoch makes its epoch's shuffle at its first batch */
    if (t->perm_ep[ep & 1] != ep) {
        pml_data_shuffle(perm, t->tr->n, t->o->seed, ep);
        t->perm_ep[ep & 1] = ep;
    }
    int i0 = (int)(s * t->o->batch);
    const int m = t->tr->n - i0 < t->o->batch ? t->tr->n - i0 : t->o->batch;
    /* this rank's part of the global batch (all of it in a world of one) */
    int lo, hi;
    part_range(t, b, m, &lo, &hi);
    r->d = t->tr;
    r->idx = perm + i0 + lo;
    r->n = hi - lo;
    *last = s == t->spe - 1;
    return true;
}

static bool locate_eval(void *ud, long b, batch_ref *r, bool *last)
{
    trainer *t = ud;
    long i0 = b * t->o->batch;
    if (i0 >= t->ev->n) return false;
    const int m = t->ev->n - i0 < t->o->batch ? (int)(t->ev->n - i0) : t->o->batch;
    int lo, hi;
    equal_range(t, m, &lo, &hi);
    r->d = t->ev;
    r->idx = t->ident + i0 + lo;
    r->n = hi - lo;
    *last = false;
    return true;
}

/* Several ranks stop together: a stop (a signal, a request) on any of them is every rank's,
 * at the same step (their collectives must match). */
static pml_status poll_stop_all(trainer *t, pml_status st)
{
    if (t->ranks == 1) return st;
    double flag = st != PML_OK;
    pml_status ds = pml_dist_sum_doubles(t->o->dist, &flag, 1);
    if (ds != PML_OK) return ds;
    if (flag > 0 && st == PML_OK) return pml_fail(PML_EINTR, "interrupted: another rank stopped");
    return st;
}

static void report(trainer *t)
{
    if (!t->fresh || !t->o->cb.step) return;
    t->fresh = false;
    t->o->cb.step(t->o->cb.ud, t->r_epoch, t->r_step, t->spe, t->r_loss, t->r_acc, t->r_elapsed);
}

static void on_timer(uv_timer_t *h)
{
    report(h->data);
}

/* ---------------------------------------------------------------- signals */

static const int stop_signals[3] = {SIGINT, SIGTERM, SIGHUP};
/* The first stop signal since signals_start; one pml_train at a time handles signals. */
static volatile sig_atomic_t caught;

static void on_stop_signal(int sig) /* async-signal-safe: sigaction only */
{
    int saved = errno;
    if (!caught) caught = sig;
    static const struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int i = 0; i < 3; i++) sigaction(stop_signals[i], &dfl, NULL); /* a second one ends pml */
    errno = saved;
}

static pml_status signals_start(trainer *t)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    caught = 0;
    for (int i = 0; i < 3; i++)
        if (sigaction(stop_signals[i], &sa, &t->old_sa[i]) != 0) {
            pml_status st = pml_fail(PML_EIO, "cannot handle signal %d: %s", stop_signals[i],
                                     strerror(errno));
            while (i-- > 0) sigaction(stop_signals[i], &t->old_sa[i], NULL);
            return st;
        }
    t->sig_ok = true;
    /* delivered here (a previous pml_train returned with them blocked) */
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < 3; i++) sigaddset(&set, stop_signals[i]);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return PML_OK;
}

/* Blocks the stop signals on this thread, then gives the caller's handlers back (a signal that
 * comes now stays pending: no moment with the default action, which would end the process before
 * the caller prints what the run gave). */
static void signals_end(trainer *t)
{
    if (!t->sig_ok) return;
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < 3; i++) sigaddset(&set, stop_signals[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (!t->signum) t->signum = caught;
    for (int i = 0; i < 3; i++) sigaction(stop_signals[i], &t->old_sa[i], NULL);
    t->sig_ok = false;
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

/* polls the loop; \return PML_EINTR when a signal came or the caller asks to stop (the message
 * ends with `where`), else PML_OK */
#define LOOP_TURN 1e-3
static pml_status poll_stop(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static pml_status poll_stop(trainer *t, const char *fmt, ...)
{
    /* the loop's turn (timers, the pool's finished work) at most every LOOP_TURN seconds: a
     * small model's step is ~100 us, the turn a system call */
    const double now = pml_now();
    if (now >= t->next_turn) {
        uv_run(&t->loop, UV_RUN_NOWAIT);
        t->next_turn = now + LOOP_TURN;
    }
    const pml_train_cb *cb = &t->o->cb;
    const bool asked = cb->should_stop && cb->should_stop(cb->ud);
    if (t->sig_ok && !t->signum) t->signum = caught;
    if (!t->signum && !asked) return PML_OK;
    char where[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof where, fmt, ap);
    va_end(ap);
    if (t->signum)
        return pml_fail(PML_EINTR, "interrupted by %s %s", signal_name(t->signum), where);
    return pml_fail(PML_EINTR, "interrupted %s", where);
}

/* libuv 1.44 takes six descriptors for a loop (epoll, the wake-up eventfd, two pipes for its
 * signal handling) and abort()s when it cannot make its process-wide signal pipe. */
#define LOOP_FDS 6

/* \return PML_OK when LOOP_FDS descriptors are free, checked by taking and giving them back. */
static pml_status check_fds(void)
{
    int fd[LOOP_FDS], n = 0;
    while (n < LOOP_FDS && (fd[n] = fcntl(0, F_DUPFD_CLOEXEC, 3)) >= 0) n++;
    int err = errno;
    for (int i = 0; i < n; i++) close(fd[i]);
    if (n == LOOP_FDS) return PML_OK;
    if (err == EBADF) { /* no descriptor 0 to copy: try files instead */
        n = 0;
        while (n < LOOP_FDS && (fd[n] = open("/", O_RDONLY | O_CLOEXEC)) >= 0) n++;
        err = errno;
        for (int i = 0; i < n; i++) close(fd[i]);
        if (n == LOOP_FDS) return PML_OK;
    }
    struct rlimit rl;
    if (err == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
        return pml_fail(PML_EIO,
                        "cannot start the event loop: it needs %d free file descriptors, %d are "
                        "(ulimit -n is %llu)",
                        LOOP_FDS, n, (unsigned long long)rl.rlim_cur);
    return pml_fail(PML_EIO, "cannot start the event loop: %s", strerror(err));
}

static pml_status loop_start(trainer *t)
{
    pml_status st = check_fds();
    if (st != PML_OK) return st;
    int r = uv_loop_init(&t->loop);
    if (r) return pml_fail(PML_EIO, "cannot start the event loop: %s", uv_strerror(r));
    t->loop_ok = true;
    if (t->o->cb.step) {
        uv_timer_init(&t->loop, &t->timer);
        t->timer.data = t;
        t->timer_ok = true;
        uv_timer_start(&t->timer, on_timer, REPORT_MS, REPORT_MS);
    }
    if (t->o->handle_signals) return signals_start(t);
    return PML_OK;
}

static void loop_close(trainer *t)
{
    if (!t->loop_ok) return;
    if (t->feed_ok) feeder_drain(&t->feed);
    if (t->evf_ok) feeder_drain(&t->evf);
    if (t->timer_ok) uv_close((uv_handle_t *)&t->timer, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    int r = uv_loop_close(&t->loop);
    assert(r == 0);
    (void)r;
    t->loop_ok = false;
}

/* A feeder's batches are gathered between steps (feeder.here) when e's workers, or the ranks,
 * take every core; an image folder still decoding stays in the pool. */
static bool gather_here(const trainer *t, pml_exec *e, const pml_dataset *d)
{
    return !d->stream && (t->ranks > 1 || pml__workers_count(e->workers) >= t->cores);
}

/* evaluation with prefetch and stop requests; `what` names it in messages */
static pml_status evaluate(trainer *t, pml_exec *e, const pml_dataset *d, double *loss,
                           double *accuracy, const char *what)
{
    t->ev = d;
    t->evf.here = gather_here(t, e, d);
    feeder_start(&t->evf, locate_eval, t, 0);
    double s = 0;
    long correct = 0;
    pml_status st = PML_OK;
    for (long b = 0; b * t->o->batch < d->n; b++) {
        if ((st = poll_stop_all(t, poll_stop(t, "during %s", what))) != PML_OK) break;
        int n;
        pml_exec_use_input(e, feeder_take(&t->evf, b, pml_exec_labels(e), &n));
        pml_step_result r = {0, 0};
        if (n > 0 && (st = pml_exec_forward(e, n, false, &r)) != PML_OK) {
            pml_fail_ctx(st, "%s: ", what);
            break;
        }
        s += r.loss_sum;
        correct += r.correct;
    }
    feeder_drain(&t->evf);
    pml_exec_use_input(e, NULL); /* the chunks are the next evaluation's */
    if (st == PML_OK && t->ranks > 1 && !t->spans) { /* every rank's part */
        double sum[2] = {s, (double)correct};
        st = pml_dist_sum_doubles(t->o->dist, sum, 2);
        s = sum[0];
        correct = (long)sum[1];
    }
    if (st != PML_OK) return st;
    *loss = s / d->n;
    *accuracy = (double)correct / d->n;
    return PML_OK;
}

/* ---------------------------------------------------------------- data parallel across ranks */

/* Buckets of about pml_train_opts.bucket_bytes, whole nodes in backward order (the last
 * layer's gradients, complete first, go first), as contiguous ranges of the gradient block:
 * parameters are laid out in topological order. By default an eighth of the gradients, from
 * 64 KiB (a bucket's fixed cost stays small beside its bytes) to 4 MiB. */
static double bucket_bytes(const pml_train_opts *o, const pml_graph *g)
{
    if (o->bucket_bytes > 0) return o->bucket_bytes;
    const double b = (double)g->nparams * sizeof(float) / 8;
    return b < 65536 ? 65536 : b > 4194304 ? 4194304 : b;
}

static void bucket_hook(void *ctx, int v)
{
    trainer *t = ctx;
    const int b = t->bucket_of[v];
    if (b >= 0 && atomic_fetch_sub_explicit(&t->bucket_left[b], 1, memory_order_acq_rel) == 1)
        pml_dist_reducer_ready(t->red, b);
}

static pml_status buckets_start(trainer *t, const pml_graph *g, pml_exec *e)
{
    const int N = g->nnodes;
    t->bucket_of = malloc((size_t)N * sizeof *t->bucket_of);
    t->bucket_nodes = calloc((size_t)N, sizeof *t->bucket_nodes);
    t->bucket_left = calloc((size_t)N, sizeof *t->bucket_left);
    t->bucket_lo = calloc((size_t)N, sizeof *t->bucket_lo);
    t->bucket_hi = calloc((size_t)N, sizeof *t->bucket_hi);
    if (!t->bucket_of || !t->bucket_nodes || !t->bucket_left || !t->bucket_lo || !t->bucket_hi)
        return pml_fail(PML_ENOMEM, "out of memory");
    int nb = 0;
    size_t hi = g->nparams;
    const double cap = bucket_bytes(t->o, g);
    for (int k = N - 1; k >= 0; k--) {
        const int v = g->order[k];
        const pml_node *nd = &g->nodes[v];
        t->bucket_of[v] = -1;
        if (nd->nparam == 0) continue;
        t->bucket_of[v] = nb;
        t->bucket_nodes[nb]++;
        const size_t lo = nd->param_off[0];
        if ((double)(hi - lo) * sizeof(float) >= cap) {
            t->bucket_lo[nb] = lo;
            t->bucket_hi[nb++] = hi;
            hi = lo;
        }
    }
    if (nb < N && t->bucket_nodes[nb] > 0) {
        t->bucket_lo[nb] = 0;
        t->bucket_hi[nb++] = hi;
    }
    t->nbuckets = nb;
    t->t_post = calloc((size_t)nb + 1, sizeof *t->t_post);
    t->t_done = calloc((size_t)nb + 1, sizeof *t->t_done);
    if (!t->t_post || !t->t_done) return pml_fail(PML_ENOMEM, "out of memory");
    if (t->o->trace_path) {
        t->maxcomm = 1000000;
        if (!(t->comm = malloc((size_t)t->maxcomm * sizeof *t->comm)))
            return pml_fail(PML_ENOMEM, "out of memory");
    }
    pml_status st = t->ps ? pml_dist_reducer_create_ps(t->ps, pml_exec_grads(e), t->bucket_lo,
                                                       t->bucket_hi, nb, &t->red)
                          : pml_dist_reducer_create(t->o->dist, pml_exec_grads(e), t->bucket_lo,
                                                    t->bucket_hi, nb, &t->red);
    if (st == PML_OK && t->red) {
        e->grad_ready = bucket_hook;
        e->grad_ready_ctx = t;
    }
    return st;
}

static void buckets_end(trainer *t)
{
    pml_dist_reducer_destroy(t->red);
    free(t->bucket_of);
    free(t->bucket_nodes);
    free((void *)t->bucket_left);
    free(t->bucket_lo);
    free(t->bucket_hi);
    free(t->t_post);
    free(t->t_done);
    free(t->comm);
}

/* Before a step: every bucket waits for its nodes' gradients; each is scaled by pre before it
 * goes (summed or pushed) as soon as it is complete, and by post once summed */
static void buckets_begin(trainer *t, float pre, float post)
{
    for (int k = 0; k < t->nbuckets; k++) atomic_store(&t->bucket_left[k], t->bucket_nodes[k]);
    pml_dist_reducer_begin(t->red, pre, post);
}

/* The last step's buckets: how long each was summed, and how much of that before the backward
 * pass ended (at grad_end); recorded for the trace when there is one. */
static void buckets_account(trainer *t, long step, double grad_end)
{
    const int n = pml_dist_reducer_times(t->red, t->t_post, t->t_done);
    double secs = 0, hidden = 0;
    for (int b = 0; b < n; b++) {
        const double p = t->t_post[b], d = t->t_done[b];
        if (!(d >= p)) continue;
        secs += d - p;
        hidden += fmax(0, fmin(d, grad_end) - p);
        if (t->comm && t->ncomm < t->maxcomm) t->comm[t->ncomm++] = (comm_ev){step, b, p, d};
    }
    t->ar_seconds += secs;
    t->ar_hidden += hidden;
    t->step_ar[0] = secs;
    t->step_ar[1] = hidden;
    t->step_ar_ok = true;
}

/* A run across ranks writes one trace: rank 0 gathers every rank's events (a process each, the
 * summing of gradient buckets on a thread of its own beside the workers) and writes the file. */
static pml_status trace_write_ranks(trainer *t, pml_exec *e, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    pml_status st = f ? pml__exec_trace_emit(e, f, PML__TRACE_EVENTS, t->rank, t->ranks)
                      : pml_fail(PML_ENOMEM, "out of memory");
    if (f) {
        const int tid = pml__workers_count(e->workers);
        fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,"
                   "\"args\":{\"name\":\"communication\"}}",
                t->rank, tid);
        for (long i = 0; i < t->ncomm; i++) {
            const comm_ev *c = &t->comm[i];
            const char *kind = t->ps ? "push" : "allreduce"; /* to the servers, or a sum */
            fprintf(f,
                    ",\n{\"name\":\"%s bucket %d\",\"cat\":\"%s\",\"ph\":\"X\","
                    "\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"step\":%ld,"
                    "\"phase\":\"train\",\"kind\":\"%s\",\"bucket\":%d,\"bytes\":%zu}}",
                    kind, c->bucket, kind, t->rank, tid, (c->post - e->trace_t0) * 1e6,
                    (c->done - c->post) * 1e6, c->step, kind, c->bucket,
                    (t->bucket_hi[c->bucket] - t->bucket_lo[c->bucket]) * sizeof(float));
        }
        if (fclose(f) != 0 && st == PML_OK) st = pml_fail(PML_ENOMEM, "out of memory");
    }
    /* every rank takes part in the gathering, a failed one with nothing */
    char *all = NULL;
    size_t alllen = 0;
    pml_status gs = pml_dist_gather(t->o->dist, st == PML_OK ? text : "", st == PML_OK ? len : 0,
                                    &all, &alllen);
    free(text);
    if (st == PML_OK) st = gs;
    if (st == PML_OK && t->rank == 0) {
        pml_afile af;
        if ((st = pml_afile_open(&af, path)) == PML_OK) {
            pml__exec_trace_emit(e, af.f, PML__TRACE_HEAD, 0, t->ranks);
            fwrite(all, 1, alllen, af.f);
            pml__exec_trace_emit(e, af.f, PML__TRACE_END, 0, t->ranks);
            st = pml_afile_commit(&af);
        }
    }
    free(all);
    return st;
}

/* The global batch of step b: its samples. */
static int step_samples(const trainer *t, long b)
{
    const int i0 = (int)(b % t->spe * t->o->batch);
    return t->tr->n - i0 < t->o->batch ? t->tr->n - i0 : t->o->batch;
}

/* This rank's gradient of its n samples of the step (zeros without samples: a server, or a
 * short last batch), then the global loss sum and correct count into *r. A rank that failed
 * still takes part in the sum (else the others would wait for it for ever), with its error
 * kept; every rank then fails alike. *grad_end: when the backward pass ended here. */
static pml_status rank_grads(trainer *t, pml_exec *e, size_t np, int n, pml_step_result *r,
                             double *grad_end)
{
    pml_step_result mine = {0, 0};
    pml_status st = PML_OK;
    const double g0 = pml_now();
    if (n > 0)
        st = pml_exec_grad_step(e, n, &mine);
    else
        memset(pml_exec_grads(e), 0, np * sizeof(float));
    *grad_end = pml_now();
    /* with balancing, every rank learns every rank's pass time in the same sum; with buckets
     * summed across data-parallel ranks, every rank's summing seconds of the step before (the
     * same on every rank: the options, and every rank's steps, are alike) */
    const bool summed = t->red && !t->ps && t->sums;
    double one[3], *sums = t->balance || summed ? t->sums : one;
    int nsums = 3;
    sums[0] = mine.loss_sum;
    sums[1] = (double)mine.correct;
    sums[2] = st != PML_OK;
    if (t->balance) {
        memset(sums + 3, 0, (size_t)t->ranks * sizeof *sums);
        double took = *grad_end - g0;
        if (t->o->cb.pass_seconds) took = t->o->cb.pass_seconds(t->o->cb.ud, t->rank, n, took);
        sums[3 + t->rank] = took;
        nsums += t->ranks;
    }
    const int ao = nsums;
    if (summed) {
        memset(sums + ao, 0, 2 * (size_t)t->ranks * sizeof *sums);
        if (t->step_ar_ok) {
            sums[ao + 2 * t->rank] = t->step_ar[0];
            sums[ao + 2 * t->rank + 1] = t->step_ar[1];
        }
        t->step_ar_ok = false;
        nsums += 2 * t->ranks;
    }
    pml_status ds = pml_dist_sum_doubles(t->o->dist, sums, nsums);
    if (ds != PML_OK) return ds;
    if (summed) { /* the step before: the rank that summed least ended its pass last */
        int k = -1;
        for (int q = 0; q < t->ranks; q++)
            if (sums[ao + 2 * q] > 0 && (k < 0 || sums[ao + 2 * q] < sums[ao + 2 * k])) k = q;
        if (k >= 0) {
            t->ar_last_seconds += sums[ao + 2 * k];
            t->ar_last_hidden += sums[ao + 2 * k + 1];
        }
    }
    if (st != PML_OK) return st;
    if (sums[2] > 0) return pml_fail(PML_EIO, "another rank failed at this step");
    if (!isfinite(sums[0])) return pml_fail(PML_ENUMERIC, "the loss is not finite");
    r->loss_sum = sums[0];
    r->correct = (int)sums[1];
    return PML_OK;
}

/* Balancing data-parallel ranks. A window of at least BALANCE_STEPS full steps and
 * BALANCE_SECONDS of the slowest rank's passes (times `backoff`), from BALANCE_WARM steps
 * after the run's start (the first steps allocate and warm caches) or after a new split took
 * effect, measures each rank's samples per second. When a split by those speeds would shorten
 * the slowest rank's pass by BALANCE_GAIN (the ranks' speeds drift by a few per cent from window
 * to window: less would re-split for noise), it goes on trial against the split it would
 * replace, the two taking turns step by step for as long again as a window, so that the
 * machine's own drift (its speed moves by tens of per cent within minutes when it is shared)
 * falls on both alike: the new split is kept when its steps' slowest passes were shorter by
 * half of BALANCE_GAIN, else the windows get twice as long (to BALANCE_BACKOFF times), so a
 * machine whose ranks only seem to differ is left alone. A pass's time is not quite
 * proportional to its samples, nor are a rank's speeds independent of the others' (they share
 * caches and memory): the trial decides. */
#define BALANCE_WARM 8
#define BALANCE_STEPS 16
#define BALANCE_SECONDS 0.2
#define BALANCE_GAIN 0.04
#define BALANCE_BACKOFF 16

static void window_reset(trainer *t, long from)
{
    t->win_from = from;
    t->win_steps = 0;
    t->win_slowest = 0;
    memset(t->win_sec, 0, (size_t)t->parts * sizeof *t->win_sec);
    memset(t->win_n, 0, (size_t)t->parts * sizeof *t->win_n);
}

/* the first step the feeder has not located yet after step b (the same on every rank: the
 * chunks are as large everywhere): a new split may start there */
static long next_free(const trainer *t, long b)
{
    return t->feed.next > b + 1 ? t->feed.next : b + 1;
}

/* the split on trial, ending with full step b: kept from the next free step on, or dropped
 * (the steps after the trial run share already) */
static void trial_end(trainer *t, long b)
{
    const int P = t->parts;
    t->trial = false;
    const bool measured = t->arm_n[0] > 0 && t->arm_n[1] > 0;
    const double tried = measured ? t->arm[0] / t->arm_n[0] : 0;
    const double before = measured ? t->arm[1] / t->arm_n[1] : 0;
    if (measured && tried < (1 - BALANCE_GAIN / 2) * before) {
        memcpy(t->old_share, t->share, (size_t)P * sizeof *t->share);
        memcpy(t->share, t->new_share, (size_t)P * sizeof *t->share);
        t->old_equal = t->equal;
        t->equal = false;
        t->share_from = next_free(t, b);
        t->backoff = 1;
        t->changes++;
        if (t->o->cb.shares) t->o->cb.shares(t->o->cb.ud, t->share_from, t->share, P);
        window_reset(t, t->share_from + 2);
    } else {
        t->backoff = t->backoff * 2 < BALANCE_BACKOFF ? t->backoff * 2 : BALANCE_BACKOFF;
        window_reset(t, b + 1);
    }
}

/* After full step b (t->sums holds every rank's pass seconds): a split on trial counts the
 * step to its turn and is decided after its last; else the window grows and, once long
 * enough, the ranks' speeds may propose a split. Every rank sees the same sums and decides
 * alike. */
static void balance_after(trainer *t, long b)
{
    const int P = t->parts;
    double step_slowest = 0;
    for (int r = 0; r < P; r++)
        if (t->sums[3 + r] > step_slowest) step_slowest = t->sums[3 + r];
    if (t->trial) {
        if (b < t->tr_from) return;
        if (b < t->tr_to) {
            const int k = on_trial(t, b) ? 0 : 1;
            t->arm[k] += step_slowest;
            t->arm_n[k]++;
        }
        if (b >= t->tr_to - 1) trial_end(t, b);
        return;
    }
    if (t->win_from < 0) t->win_from = b + BALANCE_WARM;
    if (b < t->win_from) return;
    double slowest = 0;
    for (int r = 0; r < P; r++) {
        t->win_sec[r] += t->sums[3 + r];
        t->win_n[r] += share_of(t, b, r);
        if (t->win_sec[r] > slowest) slowest = t->win_sec[r];
    }
    t->win_slowest += step_slowest;
    if (++t->win_steps < BALANCE_STEPS * t->backoff || slowest < BALANCE_SECONDS * t->backoff)
        return;
    const double mean_slowest = t->win_slowest / t->win_steps;
    double *rate = t->sums; /* the step's sums are used: rates in their place */
    for (int r = 0; r < P; r++) {
        if (!(t->win_sec[r] > 0) || t->win_n[r] <= 0) { /* no measure: try again */
            window_reset(t, b + 1);
            return;
        }
        rate[r] = (double)t->win_n[r] / t->win_sec[r];
    }
    const double before = pml__shares_time(rate, P, t->share);
    const double after = pml__shares_balance(rate, P, t->o->batch, t->share_cap, t->new_share);
    if (!(after > 0) || after > (1 - BALANCE_GAIN) * before) {
        window_reset(t, b + 1);
        return;
    }
    /* each split's turns as long as a window: BALANCE_STEPS and BALANCE_SECONDS (times
     * backoff) at the steps' pace so far */
    long turns = (long)BALANCE_STEPS * t->backoff / 2;
    const double need = BALANCE_SECONDS * t->backoff / 2 / mean_slowest;
    if (mean_slowest > 0 && need > (double)turns) turns = need < 4096 ? (long)ceil(need) : 4096;
    t->trial = true;
    t->tries++;
    t->tr_from = next_free(t, b);
    t->tr_to = t->tr_from + 2 * turns;
    memset(t->arm, 0, sizeof t->arm);
    memset(t->arm_n, 0, sizeof t->arm_n);
}

/* One step of a data-parallel run across ranks: each rank's gradient of its part (n of the
 * global batch's m samples), summed over the ranks as sum_r (n_r / m) g_r, the gradient of the
 * mean loss over the global batch; then every rank applies the same update. r receives the
 * global loss sum and correct count, *samples the global batch's samples. */
static pml_status dist_step(trainer *t, pml_exec *e, size_t np, int n, pml_optim *o, long b,
                            pml_step_result *r, int *samples)
{
    const int m = step_samples(t, b);
    float *grads = pml_exec_grads(e);
    int lo, hi;
    part_range(t, b, m, &lo, &hi);
    e->sample0 = (uint64_t)lo; /* dropout masks */
    if (t->red) buckets_begin(t, (float)n, 1.0f / (float)m); /* each sums (n_r / m) g_r */
    double grad_end;
    pml_status st = rank_grads(t, e, np, n, r, &grad_end);
    if (st != PML_OK) return st;
    if (t->red) {
        if ((st = pml_dist_reducer_finish(t->red)) != PML_OK) return st;
        buckets_account(t, b, grad_end);
    } else {
        for (size_t k = 0; k < np; k++) grads[k] *= (float)n;
        if ((st = pml_dist_sum_floats(t->o->dist, grads, np)) != PML_OK) return st;
        const float inv = 1.0f / (float)m;
        for (size_t k = 0; k < np; k++) grads[k] *= inv;
    }
    *samples = m;
    if (t->balance && m == t->o->batch) balance_after(t, b);
    return pml_exec_apply(e, o);
}

/* One step with parameter servers across ranks: the workers' gradients of their parts, scaled
 * by their samples, are summed on the servers (each its shard), which scale by the global
 * batch, update their shard and send it back; every rank then holds the same parameters. The
 * optimizer's state of a shard lives on its server only (the workers' copy stays unused). */
static pml_status ps_step(trainer *t, pml_exec *e, size_t np, int n, pml_optim *o, long b,
                          pml_step_result *r, int *samples)
{
    const int m = step_samples(t, b);
    float *grads = pml_exec_grads(e), *params = pml_exec_params(e);
    int first, end;
    equal_range(t, m, &first, &end);
    e->sample0 = (uint64_t)first; /* dropout masks */
    if (t->red) buckets_begin(t, (float)n, 1.0f); /* each pushed, scaled by n */
    double grad_end;
    pml_status st = rank_grads(t, e, np, n, r, &grad_end);
    if (st != PML_OK) return st;
    if (t->red) {
        if ((st = pml_dist_reducer_finish(t->red)) != PML_OK) return st;
        buckets_account(t, b, grad_end);
    } else {
        if (n > 0)
            for (size_t k = 0; k < np; k++) grads[k] *= (float)n;
        if ((st = pml_dist_ps_push(t->ps, grads)) != PML_OK) return st;
    }
    size_t lo, hi;
    pml_optim_begin_step(o);
    if (pml_dist_ps_shard(t->ps, &lo, &hi)) {
        const float inv = 1.0f / (float)m;
        for (size_t k = lo; k < hi; k++) grads[k] *= inv;
        pml_optim_apply(o, params, grads, lo, hi);
    }
    if ((st = pml_dist_ps_pull(t->ps, params)) != PML_OK) return st;
    memset(grads, 0, np * sizeof *grads); /* the next step starts from zero, as after an update */
    e->step++;                            /* dropout masks follow the updates done */
    *samples = m;
    return PML_OK;
}

/* ---------------------------------------------------------------- checkpoints */

static uint64_t model_hash(const pml_graph *g)
{
    char *text = NULL;
    size_t len = 0;
    if (pml_model_format_dot(g, &text, &len) != PML_OK) return 0;
    uint64_t h = pml_hash(PML_HASH_INIT, text, len);
    free(text);
    return h;
}

/* How executor e runs: its plan's strategy and a hash of its configs, or "none THREADS" (the
 * per-operator executor). Two runs of the same plan round alike. */
static void plan_name(const pml_exec *e, char *buf, size_t cap)
{
    const pml_plan *p = e->o.plan;
    if (!p) {
        snprintf(buf, cap, "none %d", e->o.threads);
        return;
    }
    uint64_t h = PML_HASH_INIT;
    for (int v = 0; v < p->nnodes; v++) { /* field by field: no padding bytes */
        const pml_opcfg *c = &p->cfg[v];
        h = pml_hash(h, c->deg, sizeof c->deg);
        h = pml_hash(h, c->dev, (size_t)pml_opcfg_parts(c) * sizeof c->dev[0]);
    }
    h = pml_hash(h, &p->batch, sizeof p->batch);
    h = pml_hash(h, &p->sync, sizeof p->sync);
    snprintf(buf, cap, "%.40s %016llx", p->strategy[0] ? p->strategy : "plan", (unsigned long long)h);
}

/* Writes t->ck now: one file, or across ranks this rank's part (and on rank 0 the manifest) */
static pml_status ck_run(trainer *t)
{
    const int keep = t->o->checkpoint_keep > 0 ? t->o->checkpoint_keep : 3;
    return t->ck_dist ? pml_ckpt_write_ranks(t->o->checkpoint_dir, &t->ck, t->ck_ranges, t->ck_dist, keep)
                      : pml_ckpt_write(t->o->checkpoint_dir, &t->ck, keep);
}

/* pool thread */
static void ck_write(uv_work_t *w)
{
    trainer *t = w->data;
    t->ck_st = ck_run(t);
    if (t->ck_st != PML_OK) snprintf(t->ck_err, sizeof t->ck_err, "%s", pml_errmsg());
}

/* loop thread */
static void ck_written(uv_work_t *w, int status)
{
    (void)status;
    trainer *t = w->data;
    t->ck_busy = false;
}

/* Waits for the checkpoint in flight; one that could not be written is said (cb), and training
 * goes on: the checkpoints before it are as they were */
static void ck_wait(trainer *t, pml_train_result *res)
{
    const double t0 = pml_now();
    while (t->ck_busy) uv_run(&t->loop, UV_RUN_ONCE);
    res->checkpoint_wait += pml_now() - t0;
    if (t->ck_st != PML_OK) {
        t->ck_st = PML_OK;
        res->checkpoints_failed++;
        if (t->o->cb.checkpoint_failed) t->o->cb.checkpoint_failed(t->o->cb.ud, t->ck.step, t->ck_err);
    }
}

/* Appends [lo, lo + n) to r (joined to the last range when they touch) */
static pml_status range_add(pml_ckpt_ranges *r, size_t *cap, size_t lo, size_t n)
{
    if (!n) return PML_OK;
    if (r->count && r->lo[r->count - 1] + r->n[r->count - 1] == lo) {
        r->n[r->count - 1] += n;
        return PML_OK;
    }
    if (r->count == *cap) {
        const size_t c = *cap ? 2 * *cap : 16;
        size_t *a = realloc(r->lo, c * sizeof *a);
        if (a) r->lo = a;
        size_t *b = a ? realloc(r->n, c * sizeof *b) : NULL;
        if (!b) return pml_fail(PML_ENOMEM, "out of memory");
        r->n = b;
        *cap = c;
    }
    r->lo[r->count] = lo;
    r->n[r->count++] = n;
    return PML_OK;
}

/* Across ranks, the floats this rank writes of a checkpoint, each float by one rank: with a
 * plan across the ranks, those it keeps current (its partitions'); parameter servers, the
 * optimizer's state of their shard; what every rank holds alike (data-parallel parameters and
 * optimizer state; the parameters beside servers) in nearly equal shares, rank r the r-th
 * (the writing is spread, the values are the same); the state (batchnorm's running statistics,
 * which data-parallel ranks keep each of its own batches) rank 0's, as one process would have. */
static pml_status ck_ranges(trainer *t, pml_exec *e, const pml_optim *o)
{
    const pml_ckpt *c = &t->ck;
    const size_t n[4] = {c->nparams, o->m ? c->nparams : 0, o->v ? c->nparams : 0, c->nstate};
    pml_status st = PML_OK;
    for (int k = 0; k < 4; k++) t->ck_ranges[k].count = 0;
    size_t slo = 0, shi = 0;
    const bool server = t->ps && pml_dist_ps_shard(t->ps, &slo, &shi);
    for (int k = 0; k < 4 && st == PML_OK; k++) {
        pml_ckpt_ranges *r = &t->ck_ranges[k];
        const unsigned char *own = t->spans ? pml__exec_owned(e, k == 3) : NULL;
        if (own) {
            for (size_t i = 0; i < n[k] && st == PML_OK;) {
                size_t j = i;
                while (j < n[k] && own[j]) j++;
                st = range_add(r, &t->ck_cap[k], i, j - i);
                for (i = j; i < n[k] && !own[i]; i++) {}
            }
        } else if (k == 3 || t->spans) { /* the state; a plan across ranks that keeps all */
            if (t->rank == 0) st = range_add(r, &t->ck_cap[k], 0, n[k]);
        } else if (t->ps && k > 0) {
            if (server) st = range_add(r, &t->ck_cap[k], slo, shi - slo);
        } else {
            const size_t lo = n[k] * (size_t)t->rank / (size_t)t->ranks,
                         hi = n[k] * (size_t)(t->rank + 1) / (size_t)t->ranks;
            st = range_add(r, &t->ck_cap[k], lo, hi - lo);
        }
    }
    return st;
}

/* Of n floats, those this rank keeps current (own[i]) and zeros, summed over the ranks into
 * out: each float from the rank that keeps it */
static pml_status gather_owned(trainer *t, const float *v, const unsigned char *own, size_t n,
                               float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = own && !own[i] ? 0.0f : v[i];
    return n > 0 ? pml_dist_sum_floats(t->o->dist, out, n) : PML_OK;
}

/* The trained model (pml train --save). Across ranks rank 0 writes it: with a plan across the
 * ranks each rank keeps only its partitions current, so every float comes from the rank that
 * keeps it (one sum over the ranks); data-parallel ranks and the workers beside parameter
 * servers hold every parameter current, rank 0 too. Every rank calls this (the sum is
 * collective); one that failed before takes part and fails alike. */
static pml_status save_model(trainer *t, const pml_graph *g, pml_exec *e, pml_status st)
{
    const char *path = t->o->save_path;
    const float *p = pml_exec_params(e), *s = pml_exec_state(e);
    if (t->ranks == 1) return pml_saved_write(path, g, p, s); /* called only when st is PML_OK */
    float *pa = NULL, *sa = NULL;
    if (t->spans) {
        pa = malloc((g->nparams + 1) * sizeof *pa);
        sa = malloc((g->nstate + 1) * sizeof *sa);
        double flag = st != PML_OK || !pa || !sa;
        pml_status ds = pml_dist_sum_doubles(t->o->dist, &flag, 1);
        if (ds == PML_OK && flag == 0) {
            ds = gather_owned(t, p, pml__exec_owned(e, false), g->nparams, pa);
            if (ds == PML_OK) ds = gather_owned(t, s, pml__exec_owned(e, true), g->nstate, sa);
        } else if (ds == PML_OK && st == PML_OK) {
            ds = pa && sa ? pml_fail(PML_EIO, "another rank failed before saving the model")
                          : pml_fail(PML_ENOMEM, "out of memory gathering the model to save");
        }
        if (st == PML_OK) st = ds;
        p = pa;
        s = sa;
    }
    if (st == PML_OK && t->rank == 0) st = pml_saved_write(path, g, p, s);
    free(pa);
    free(sa);
    return st;
}

/* A checkpoint of the run after `step` updates: copied now (at a step boundary), written by the
 * pool while training goes on (sync: written before returning, the run's last). Across ranks
 * each rank copies and writes its part; rank 0 writes the manifest once every part is in. */
static pml_status ck_take(trainer *t, pml_exec *e, const pml_optim *o, long step, bool sync,
                          pml_train_result *res)
{
    if (!t->o->checkpoint_dir || step == t->ck_last) return PML_OK;
    ck_wait(t, res);
    pml_status st = PML_OK;
    const double t0 = pml_now();
    pml_ckpt *c = &t->ck;
    float *dst[4] = {c->params, c->m, c->v, c->state};
    const float *src[4] = {pml_exec_params(e), o->m, o->v, pml_exec_state(e)};
    if (t->ck_dist) { /* the floats of its part (an executor tried in the run keeps others) */
        if ((st = ck_ranges(t, e, o)) != PML_OK) return st;
        for (int k = 0; k < 4; k++)
            for (size_t i = 0; i < t->ck_ranges[k].count; i++)
                memcpy(dst[k] + t->ck_ranges[k].lo[i], src[k] + t->ck_ranges[k].lo[i],
                       t->ck_ranges[k].n[i] * sizeof(float));
    } else {
        const size_t n[4] = {c->nparams, c->m ? c->nparams : 0, c->v ? c->nparams : 0, c->nstate};
        for (int k = 0; k < 4; k++)
            if (n[k]) memcpy(dst[k], src[k], n[k] * sizeof(float));
    }
    c->optim = *o;
    c->optim.m = c->optim.v = NULL;
    c->step = step;
    plan_name(e, c->plan, sizeof c->plan);
    t->ck_last = step;
    res->checkpoints++;
    if (sync) { /* the run's last: its failure is the run's */
        st = ck_run(t);
        res->checkpoint_wait += pml_now() - t0;
        if (st != PML_OK) res->checkpoints_failed++;
        return st;
    }
    if (t->ck_dist && !pml_dist_threaded(t->o->dist)) {
        /* MPI takes calls from one thread only: written here, and a failure said as the pool's */
        ck_write(&(uv_work_t){.data = t});
        ck_wait(t, res);
        res->checkpoint_wait += pml_now() - t0;
        return PML_OK;
    }
    t->ck_busy = true;
    t->ck_work.data = t;
    int r = uv_queue_work(&t->loop, &t->ck_work, ck_write, ck_written);
    assert(r == 0);
    (void)r;
    res->checkpoint_wait += pml_now() - t0;
    return PML_OK;
}

/* Collective across ranks (the checkpoints' communicator is made here) */
static pml_status ck_setup(trainer *t, const pml_graph *g, const pml_optim *o)
{
    pml_ckpt *c = &t->ck;
    memset(c, 0, sizeof *c);
    t->ck_last = -1;
    if (!t->o->checkpoint_dir) return PML_OK;
    c->model_hash = model_hash(g);
    snprintf(c->model_name, sizeof c->model_name, "%.63s", g->name); /* a token when written */
    c->seed = t->o->seed;
    c->batch = t->o->batch;
    pml_status st;
    if (t->ranks > 1 && (st = pml_dist_dup(t->o->dist, &t->ck_dist)) != PML_OK) return st;
    /* across ranks only the part's floats are copied: the others' pages are never touched */
    return pml_ckpt_alloc(c, g->nparams, g->nstate, o->m != NULL, o->v != NULL);
}

static void ck_end(trainer *t)
{
    pml_ckpt_free(&t->ck);
    pml_dist_finalize(t->ck_dist);
    t->ck_dist = NULL;
    for (int k = 0; k < 4; k++) {
        free(t->ck_ranges[k].lo);
        free(t->ck_ranges[k].n);
    }
}

/* Goes on from a checkpoint: read and checked before the run starts (its step places the data),
 * applied to the executor and optimizer once they are made */
static pml_status resume_read(trainer *t, const pml_graph *g, const pml_optim *o, pml_ckpt *out)
{
    const char *from = t->o->resume_from;
    char path[4096];
    struct stat sb;
    pml_status st;
    if (stat(from, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if ((st = pml_ckpt_newest(from, path, sizeof path)) != PML_OK) return st;
    } else {
        snprintf(path, sizeof path, "%s", from);
    }
    pml_ckpt c;
    if ((st = pml_ckpt_read(path, &c)) != PML_OK) return st;
    if (c.model_hash != model_hash(g) || c.nparams != g->nparams || c.nstate != g->nstate) {
        st = pml_fail(PML_EINVAL, "checkpoint '%s' is of model '%s', not of this '%s' (its "
                                  "operators, shapes or parameters differ)",
                      path, c.model_name, g->name);
    } else if (c.seed != t->o->seed || c.batch != t->o->batch) {
        st = pml_fail(PML_EINVAL, "checkpoint '%s' was made with --seed %llu --batch %d, not "
                                  "--seed %llu --batch %d (the data order follows them)",
                      path, (unsigned long long)c.seed, c.batch, (unsigned long long)t->o->seed,
                      t->o->batch);
    } else if (c.optim.kind != o->kind) {
        st = pml_fail(PML_EINVAL, "checkpoint '%s' was made with --optimizer %s, not %s", path,
                      c.optim.kind == PML_OPTIM_ADAM ? "adam" : "sgd",
                      o->kind == PML_OPTIM_ADAM ? "adam" : "sgd");
    }
    if (st != PML_OK) {
        pml_ckpt_free(&c);
        return st;
    }
    t->first_step = c.step;
    *out = c;
    return PML_OK;
}

static void resume_apply(trainer *t, const pml_ckpt *c, pml_exec *e, pml_optim *o,
                         pml_train_result *res)
{
    memcpy(pml_exec_params(e), c->params, c->nparams * sizeof(float));
    if (c->nstate) memcpy(pml_exec_state(e), c->state, c->nstate * sizeof(float));
    if (c->m && o->m) memcpy(o->m, c->m, c->nparams * sizeof(float));
    if (c->v && o->v) memcpy(o->v, c->v, c->nparams * sizeof(float));
    o->t = c->optim.t;
    e->step = (uint64_t)c->step;
    char now[sizeof c->plan];
    plan_name(e, now, sizeof now);
    if (strcmp(now, c->plan) != 0) snprintf(res->resumed_plan, sizeof res->resumed_plan, "%s", c->plan);
    t->ck_last = c->step; /* it is on disk */
    res->resumed_step = c->step;
}

/* ---------------------------------------------------------------- watching the steps */

#define MAX_ALTERNATIVES 16
#define WINDOW_SECONDS 0.15 /* a re-check's window of one choice: about this long */

/* A run's steps as the epoch pays them (the step, waiting for its batch, the control loop's
 * turn), against the prediction and the trial the running choice won. A trial of the
 * alternatives on their own can be wrong the same way for all of them (the data prefetch and
 * the control loop compete with the workers of a plan that takes every core, and a trial
 * without them does not see it), so a run that is much slower than its trial said tries the
 * alternatives in the run itself, a short window each, and goes on with the fastest measured
 * there.
 * A shared machine's speed also drifts by itself (a slow spell of a second or more slows every
 * choice alike), and the window that set the re-check off is the slowest the running choice had:
 * against it, any alternative tried next looks faster. So the running choice runs its own
 * windows among the others', and the others twice: two passes, each choice's faster one
 * counting, in the same spells as its rivals'. */
typedef struct watch {
    double t[PML_WATCH_STEPS]; /* the last steps' seconds */
    int n;                     /* steps since the last look */
    bool warned;
    int rechecks;
    /* trying the alternatives in the run */
    bool exploring;
    int from;                           /* the choice before */
    int order[2 * MAX_ALTERNATIVES];    /* the windows still to run, whose choice in this order */
    int norder, next;
    int window;                         /* steps each runs (at most: see WINDOW_SECONDS) */
    double sum;                         /* seconds of the steps since the last look */
    double inrun[MAX_ALTERNATIVES];     /* their seconds per step in this run (0: not tried) */
    pml_cpu_snap began;                 /* when the windows began: what others used meanwhile */
} watch;

/* Goes on with alternative k: a new executor given the parameters, state and step count of the
 * one running. */
static pml_status switch_to(const pml_graph *g, const pml_train_opts *o, int k, int *current,
                            pml_exec **e)
{
    if (k == *current) return PML_OK;
    const pml_candidate *c = &o->alternatives[k];
    pml_exec_opts eo = {.batch = o->batch,
                        .threads = c->threads,
                        .seed = o->seed,
                        .check_numerics = o->check_numerics,
                        .machine = c->plan ? c->machine : NULL,
                        .plan = c->plan};
    pml_exec *ne;
    pml_status st = pml_exec_create(g, &eo, &ne);
    if (st != PML_OK) return st;
    pml__exec_copy_state(ne, *e);
    pml_exec_destroy(*e);
    *e = ne;
    *current = k;
    return PML_OK;
}

/* After each step: every PML_WATCH_STEPS steps, their mean against the prediction (cb.slow,
 * once) and against what the running choice measured (its trial, or this run); over 1.5x
 * that, the alternatives and the running choice run `window` steps each in turn, twice over
 * (see watch), and the run goes on with the fastest, whose `measured` times are then this
 * run's. */
static pml_status watch_step(watch *w, double seconds, const pml_graph *g,
                             const pml_train_opts *o, int *current, pml_exec **e)
{
    w->t[w->n++] = seconds;
    w->sum += seconds;
    /* a window ends after its steps, or sooner when they took its time: on a core another
     * process keeps busy a step of a plan that needs it can take a time slice (milliseconds) */
    if (w->exploring ? w->n < w->window && (w->n < 3 || w->sum < WINDOW_SECONDS)
                     : w->n < PML_WATCH_STEPS)
        return PML_OK;
    w->sum = 0;
    double mean = 0;
    for (int i = 0; i < w->n; i++) mean += w->t[i] / w->n;
    w->n = 0;
    pml_candidate *alt = o->alternatives;
    if (w->exploring) {
        if (!(w->inrun[*current] > 0) || mean < w->inrun[*current]) w->inrun[*current] = mean;
        if (w->next < w->norder) return switch_to(g, o, w->order[w->next++], current, e);
        int best = w->from;
        const double others = pml_foreign_load_since(&w->began);
        for (int k = 0; k < o->nalternatives; k++) {
            alt[k].others = others; /* (a choice measured beside others is provisional) */
            if (w->inrun[k] > 0) alt[k].measured = w->inrun[k];
            if (w->inrun[k] > 0 && w->inrun[k] < w->inrun[best]) best = k;
        }
        w->exploring = false;
        pml_status st = switch_to(g, o, best, current, e);
        if (st == PML_OK && o->cb.rechecked) o->cb.rechecked(o->cb.ud, &alt[w->from], &alt[best]);
        return st;
    }
    if (!w->warned && o->predicted_step > 0 && mean > 1.5 * o->predicted_step) {
        w->warned = true;
        if (o->cb.slow) o->cb.slow(o->cb.ud, mean, o->predicted_step);
    }
    if (alt && o->nalternatives > 1 && o->nalternatives <= MAX_ALTERNATIVES && w->rechecks < 3 &&
        !o->trace_path && mean > 1.5 * alt[*current].measured) {
        w->rechecks++;
        w->exploring = true;
        pml_cpu_snap_take(&w->began);
        w->from = *current;
        memset(w->inrun, 0, sizeof w->inrun);
        /* the others, then the running choice; twice (the window that set this off does not
         * count: it is the running choice's slowest) */
        w->norder = w->next = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (int k = 0; k < o->nalternatives; k++)
                if (k != w->from) w->order[w->norder++] = k;
            w->order[w->norder++] = w->from;
        }
        /* about WINDOW_SECONDS each, 10 to 100 steps at the speed that set this off */
        w->window = mean > 0 ? (int)(WINDOW_SECONDS / mean) : PML_WATCH_STEPS;
        w->window = w->window < 10 ? 10 : w->window > PML_WATCH_STEPS ? PML_WATCH_STEPS : w->window;
        return switch_to(g, o, w->order[w->next++], current, e);
    }
    return PML_OK;
}

static pml_status check_shares(const pml_train_opts *o, bool dp, int ranks)
{
    if (!dp)
        return pml_fail(PML_EINVAL, "shares of a batch are for data-parallel ranks under mpirun "
                                    "(without parameter servers or a plan across the ranks)");
    if (o->plan)
        return pml_fail(PML_EINVAL, "shares of a batch: the ranks run a plan made for equal "
                                    "parts; shares need the per-operator executor (no plan)");
    if (o->nshares != ranks)
        return pml_fail(PML_EINVAL, "%d shares of a batch for %d ranks", o->nshares, ranks);
    long sum = 0;
    for (int r = 0; r < ranks; r++) {
        if (o->shares[r] < 0)
            return pml_fail(PML_EINVAL, "rank %d's share of a batch is %d samples", r,
                            o->shares[r]);
        sum += o->shares[r];
    }
    if (sum != o->batch)
        return pml_fail(PML_EINVAL, "the shares of a batch add up to %ld samples, not batch=%d",
                        sum, o->batch);
    return PML_OK;
}

/* Data-parallel ranks: the split of every batch, fixed (pml_train_opts.shares), or equal and
 * then balanced; the executor holds the largest share a rank may take: half as much again
 * as an equal one (a rank twice as fast as the other of two takes 2/3 of a batch). */
static pml_status shares_init(trainer *t, const pml_graph *g, pml_train_result *res)
{
    const pml_train_opts *o = t->o;
    const int P = t->parts, eq = (o->batch + P - 1) / P;
    bool bn = false;
    for (int v = 0; v < g->nnodes; v++) bn |= g->nodes[v].op == PML_OP_BATCHNORM;
    t->balance = !o->shares && !o->equal_shares && !o->plan && !bn;
    t->share = calloc((size_t)P, sizeof *t->share);
    t->old_share = calloc((size_t)P, sizeof *t->old_share);
    t->new_share = calloc((size_t)P, sizeof *t->new_share);
    t->win_sec = calloc((size_t)P, sizeof *t->win_sec);
    t->win_n = calloc((size_t)P, sizeof *t->win_n);
    t->sums = calloc((size_t)(3 + 3 * t->ranks), sizeof *t->sums);
    res->shares = calloc((size_t)P, sizeof *res->shares);
    if (!t->share || !t->old_share || !t->new_share || !t->win_sec || !t->win_n ||
        !t->sums || !res->shares)
        return pml_fail(PML_ENOMEM, "out of memory");
    res->nshares = P;
    t->equal = t->old_equal = !o->shares;
    t->share_cap = eq;
    for (int r = 0; r < P; r++) {
        t->share[r] = o->shares ? o->shares[r]
                                : (int)(pml__part_start(o->batch, P, r + 1) -
                                        pml__part_start(o->batch, P, r));
        if (t->share[r] > t->share_cap) t->share_cap = t->share[r];
    }
    if (t->balance) {
        const int more = eq + (eq / 2 > 1 ? eq / 2 : 1);
        t->share_cap = more < o->batch ? more : o->batch;
    }
    memcpy(t->old_share, t->share, (size_t)P * sizeof *t->share);
    t->backoff = 1;
    window_reset(t, -1); /* BALANCE_WARM steps after the run's first */
    return PML_OK;
}

static void shares_end(trainer *t, pml_train_result *res)
{
    if (res->shares && t->share)
        for (int r = 0; r < t->parts; r++) res->shares[r] = t->share[r];
    res->share_changes = t->changes;
    res->share_tries = t->tries;
    free(t->share);
    free(t->old_share);
    free(t->new_share);
    free(t->win_sec);
    free(t->win_n);
    free(t->sums);
}

pml_status pml_train(const pml_graph *g, pml_dataset *train, const pml_dataset *test,
                     const pml_train_opts *opts, pml_train_result *res)
{
    memset(res, 0, sizeof *res);
    if (opts->epochs < 1) return pml_fail(PML_EINVAL, "epochs=%d must be at least 1", opts->epochs);
    if (opts->batch < 1) return pml_fail(PML_EINVAL, "batch=%d must be at least 1", opts->batch);
    if (opts->max_steps < 0)
        return pml_fail(PML_EINVAL, "max-steps=%ld must not be negative", opts->max_steps);
    pml_status st;
    if ((st = check_data(g, train, "training")) != PML_OK) return st;
    if (test && (st = check_data(g, test, "test")) != PML_OK) return st;
    /* an image folder decoded while training runs: across ranks each rank has it all first (a
     * bad file found by one rank's part of a batch would stop it alone) */
    if (pml_dist_size(opts->dist) > 1 && ((st = pml_data_wait(train)) != PML_OK ||
                                          (test && (st = pml_data_wait(test)) != PML_OK)))
        return st;

    pml_dataset tr = *train, val;
    tr.owner = NULL; /* a view: the caller keeps the storage */
    bool has_val = opts->validation_split > 0;
    if (has_val && (st = pml_data_split(&tr, opts->validation_split, &val)) != PML_OK) return st;

    trainer t;
    memset(&t, 0, sizeof t);
    pml_ckpt from; /* a checkpoint to go on from */
    memset(&from, 0, sizeof from);
    t.o = opts;
    t.tr = &tr;
    t.rank = pml_dist_rank(opts->dist);
    t.ranks = pml_dist_size(opts->dist);
    t.part = t.rank;
    t.parts = t.ranks;
    if (opts->ps_servers > 0) { /* the last ranks serve; the others split each batch */
        if (opts->ps_servers >= t.ranks)
            return pml_fail(PML_EINVAL, "%d parameter server%s need at least %d ranks, not %d",
                            opts->ps_servers, opts->ps_servers == 1 ? "" : "s",
                            opts->ps_servers + 1, t.ranks);
        t.parts = t.ranks - opts->ps_servers;
        if (t.rank >= t.parts) t.part = -1;
    }
    if (opts->plan_across_ranks && t.ranks > 1) {
        if (opts->ps_servers > 0)
            return pml_fail(PML_EINVAL, "a plan across ranks sums its own gradients: it takes no "
                                        "parameter-server ranks");
        if (!opts->plan || !opts->machine)
            return pml_fail(PML_EINVAL, "a plan across ranks needs the plan and its machine");
        t.spans = true;
        t.part = 0;
        t.parts = 1;
    }
    if (opts->batch < t.parts)
        return pml_fail(PML_EINVAL, "batch=%d is smaller than the %d ranks it is split over",
                        opts->batch, t.parts);
    const bool dp = t.ranks > 1 && opts->ps_servers == 0 && !t.spans; /* data-parallel ranks */
    if (opts->shares && (st = check_shares(opts, dp, t.ranks)) != PML_OK) return st;
    if (opts->checkpoint_every < 0)
        return pml_fail(PML_EINVAL, "checkpoint-every=%ld must not be negative",
                        opts->checkpoint_every);
    t.spe = (tr.n + opts->batch - 1) / opts->batch;
    t.limit = (long)opts->epochs * t.spe;
    if (opts->max_steps && opts->max_steps < t.limit) t.limit = opts->max_steps;
    int nev = has_val ? val.n : 0;
    if (test && test->n > nev) nev = test->n;

    pml_exec *e = NULL;
    pml_optim optim = opts->optim;
    optim.m = optim.v = NULL;
    t.perm[0] = malloc((size_t)tr.n * sizeof *t.perm[0]);
    t.perm[1] = malloc((size_t)tr.n * sizeof *t.perm[1]);
    t.ident = malloc((size_t)(nev > 0 ? nev : 1) * sizeof *t.ident);
    res->epochs = calloc((size_t)opts->epochs, sizeof *res->epochs);
    if (dp && (st = shares_init(&t, g, res)) != PML_OK) goto done;
    if (!t.perm[0] || !t.perm[1] || !t.ident || !res->epochs) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < nev; i++) t.ident[i] = i;
    t.ck_last = -1;
    const double r0 = pml_now();
    if (opts->resume_from && (st = resume_read(&t, g, &optim, &from)) != PML_OK) goto done;
    res->resume_seconds = opts->resume_from ? pml_now() - r0 : 0;
    if (opts->checkpoint_dir && t.rank == 0) { /* a folder that takes files, before training */
        struct stat sb;
        const char *d = opts->checkpoint_dir;
        if (mkdir(d, 0777) != 0 && errno != EEXIST)
            st = pml_fail(PML_EIO, "checkpoint folder '%s': %s", d, strerror(errno));
        else if (stat(d, &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = pml_fail(PML_EINVAL, "checkpoint folder '%s' is not a folder", d);
        else if (access(d, W_OK | X_OK) != 0)
            st = pml_fail(PML_EIO, "checkpoint folder '%s': %s", d, strerror(errno));
        if (st != PML_OK) goto done;
    }
    if ((st = loop_start(&t)) != PML_OK) goto done;
    t.cores = pml_machine_cores();
    const size_t size = pml_shape_size(tr.shape);
    t.feed_ok = true; /* feeder_free releases what feeder_init got */
    if ((st = feeder_init(&t.feed, &t.loop, opts->batch, size, t.spe)) != PML_OK) goto done;
    t.evf_ok = nev > 0;
    if (nev > 0 && (st = feeder_init(&t.evf, &t.loop, opts->batch, size,
                                     (nev + opts->batch - 1) / opts->batch)) != PML_OK)
        goto done;
    /* before the executor pins this thread: libuv's pool threads, started by the first work
     * item of the process, take the binding of the thread that starts them, and its signal
     * mask: all blocked, so signals come to this thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    feeder_start(&t.feed, locate_train, &t, t.first_step);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    /* each rank runs its part of every batch */
    pml_exec_opts eo = {.batch = t.share ? t.share_cap : (opts->batch + t.parts - 1) / t.parts,
                        .threads = opts->threads,
                        .first_core = opts->first_core,
                        .seed = opts->seed,
                        .check_numerics = opts->check_numerics,
                        .machine = opts->machine,
                        .plan = opts->plan,
                        .dist = t.spans ? opts->dist : NULL};
    if ((st = pml_exec_create(g, &eo, &e)) != PML_OK) goto done;
    if (opts->ps_servers > 0 &&
        (st = pml_dist_ps_create(opts->dist, opts->ps_servers, g->nparams, &t.ps)) != PML_OK)
        goto done;
    if (t.ranks > 1 && !t.spans && opts->bucket_bytes >= 0 &&
        (st = buckets_start(&t, g, e)) != PML_OK)
        goto done;
    /* the ranks' traces share a time 0: the moment they all got here */
    if (opts->trace_path && t.ranks > 1 && (st = pml_dist_barrier(opts->dist)) != PML_OK) goto done;
    if (opts->trace_path && (st = pml_exec_trace_begin(e, 4000000)) != PML_OK) goto done;
    if ((st = pml_optim_alloc(&optim, g->nparams)) != PML_OK) goto done;
    if (opts->init_params) memcpy(pml_exec_params(e), opts->init_params, g->nparams * sizeof(float));
    if (opts->init_state && g->nstate)
        memcpy(pml_exec_state(e), opts->init_state, g->nstate * sizeof(float));
    if (opts->resume_from) resume_apply(&t, &from, e, &optim, res);
    if ((st = ck_setup(&t, g, &optim)) != PML_OK) goto done;
    const long every = opts->checkpoint_every > 0 ? opts->checkpoint_every : 500;

    long total_steps = t.first_step;
    watch w;
    memset(&w, 0, sizeof w);
    int current = opts->current;
    const int first_ep = (int)(t.first_step / t.spe) + 1;
    for (int ep = 1; ep < first_ep && ep <= opts->epochs; ep++) res->epochs[ep - 1].epoch = ep;
    for (int ep = first_ep; ep <= opts->epochs && st == PML_OK; ep++) {
        pml_epoch_stats *s = &res->epochs[ep - 1];
        s->epoch = ep;
        double loss_sum = 0, t0 = pml_now(), elapsed = 0;
        long correct = 0;
        const long begin = ep == first_ep ? t.first_step % t.spe : 0; /* resumed mid-epoch */
        s->resumed_at = begin;
        for (long step = begin; step < t.spe; step++) {
            if (total_steps >= t.limit) break;
            /* the epoch line counts the steps done: the message says the same */
            st = step ? poll_stop(&t, "at epoch %d, after step %ld/%ld", ep, step, t.spe)
                      : poll_stop(&t, "at epoch %d, before its first step", ep);
            if ((st = poll_stop_all(&t, st)) != PML_OK) break;
            int n;
            t.feed.here = gather_here(&t, e, &tr);
            pml_exec_use_input(e, feeder_take(&t.feed, total_steps, pml_exec_labels(e), &n));
            if ((st = pml_data_check(&tr)) != PML_OK) break; /* a bad file: before it trains */
            pml_step_result r;
            /* the step alone, as the trial and the simulator time it: the loader's share is the
             * same whichever way the steps run, so it says nothing about another choice */
            const double s0 = pml_now();
            if (t.ps) {
                st = ps_step(&t, e, g->nparams, n, &optim, total_steps, &r, &n);
            } else if (t.ranks > 1 && !t.spans) {
                st = dist_step(&t, e, g->nparams, n, &optim, total_steps, &r, &n);
            } else {
                st = pml_exec_train_step(e, n, &optim, &r);
            }
            if (st != PML_OK) {
                pml_fail_ctx(st, "epoch %d, step %ld: ", ep, step + 1);
                break;
            }
            double took = pml_now() - s0;
            if (opts->cb.step_seconds)
                took = opts->cb.step_seconds(opts->cb.ud, opts->alternatives ? current : -1, took);
            if (n == opts->batch && t.ranks == 1 &&
                (st = watch_step(&w, took, g, opts, &current, &e)) != PML_OK) {
                pml_fail_ctx(st, "epoch %d, after step %ld: ", ep, step + 1);
                break;
            }
            loss_sum += r.loss_sum;
            correct += r.correct;
            s->samples += n;
            s->steps++;
            total_steps++;
            if (opts->checkpoint_dir && total_steps % every == 0 &&
                (st = pml_data_wait(&tr)) != PML_OK) /* no checkpoint before every file is good */
                break;
            if (opts->checkpoint_dir && total_steps % every == 0 &&
                (st = ck_take(&t, e, &optim, total_steps, false, res)) != PML_OK) {
                pml_fail_ctx(st, "epoch %d, a checkpoint after step %ld: ", ep, step + 1);
                break;
            }
            elapsed = pml_now() - t0;
            t.fresh = true;
            t.r_epoch = ep;
            t.r_step = step + 1;
            t.r_loss = loss_sum / s->samples;
            t.r_acc = (double)correct / s->samples;
            t.r_elapsed = elapsed;
        }
        s->seconds = elapsed;
        if (s->samples == 0) break;
        s->loss = loss_sum / s->samples;
        s->accuracy = (double)correct / s->samples;
        res->epochs_run = ep;
        if (st != PML_OK) break;
        if ((st = pml_data_wait(&tr)) != PML_OK) break; /* its line: every file decoded */
        if (begin + s->steps == t.spe) report(&t); /* the whole epoch, before its line */
        if (has_val) {
            char what[64];
            snprintf(what, sizeof what, "validation after epoch %d", ep);
            if ((st = evaluate(&t, e, &val, &s->val_loss, &s->val_accuracy, what)) != PML_OK) break;
            s->has_val = true;
        }
        s->complete = begin + s->steps == t.spe;
        if (opts->cb.epoch) opts->cb.epoch(opts->cb.ud, s);
        if (total_steps >= t.limit) break;
    }
    if (st == PML_OK) st = pml_data_wait(&tr); /* no output before every file is decoded */
    if (st == PML_OK && test) st = pml_data_wait(test);
    if (opts->save_path && e && (st == PML_OK || t.ranks > 1)) /* the trained model, its weights */
        st = save_model(&t, g, e, st);
    /* the run's last checkpoint: at its end, or where a signal or --max-steps stopped it */
    if (opts->checkpoint_dir && e && (st == PML_OK || st == PML_EINTR)) {
        pml_status cs = ck_take(&t, e, &optim, total_steps, true, res);
        if (cs != PML_OK && st == PML_OK) st = pml_fail_ctx(cs, "the last checkpoint: ");
    }
    if (st == PML_OK && test) {
        st = evaluate(&t, e, test, &res->test_loss, &res->test_accuracy, "the test evaluation");
        res->has_test = st == PML_OK;
    }
    if (opts->trace_path && e) {
        pml_status ts = t.ranks > 1 ? trace_write_ranks(&t, e, opts->trace_path)
                                    : pml_exec_trace_write(e, opts->trace_path);
        if (st == PML_OK) st = ts;
    }
    res->allreduce_seconds = t.ar_seconds;
    res->allreduce_hidden = t.ar_hidden;
    res->allreduce_last_seconds = t.ar_last_seconds;
    res->allreduce_last_hidden = t.ar_last_hidden;
    res->buckets = t.red ? t.nbuckets : 0;
done:
    if (st != PML_OK && res->epochs_run == 0) { /* nothing to report: nothing to free */
        free(res->epochs);
        res->epochs = NULL;
    }
    if (t.ck_busy) ck_wait(&t, res); /* a failed run: the checkpoint in flight ends first */
    ck_end(&t);
    pml_ckpt_free(&from);
    loop_close(&t);
    if (t.feed_ok) feeder_free(&t.feed);
    if (t.evf_ok) feeder_free(&t.evf);
    pml_optim_free(&optim);
    buckets_end(&t); /* before the executor: a worker may still name a bucket */
    pml_dist_ps_destroy(t.ps);
    pml_exec_destroy(e);
    signals_end(&t); /* after the workers are gone */
    res->signal = st == PML_EINTR ? t.signum : 0;
    free(t.perm[0]);
    free(t.perm[1]);
    free(t.ident);
    shares_end(&t, res);
    return st;
}

void pml_train_result_free(pml_train_result *r)
{
    free(r->epochs);
    free(r->shares);
    memset(r, 0, sizeof *r);
}
