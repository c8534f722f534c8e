/* pml — the messages of a plan that spans ranks (see link.h). */
#include "link.h"

#include "dist_int.h"
#include "sync.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINK_NAP_MIN_NS 5000L
#define LINK_NAP_MAX_NS 200000L
#define LINK_BURST_S 30e-6 /* progress calls for this long per wake-up */

enum { MSG_RECV, MSG_SEND, MSG_SUM };

typedef struct msg {
    int kind, peer; /* peer: a rank (RECV, SEND) or a group (SUM) */
    int tag, arg;
    float *buf;
    int n;
    unsigned runs;
    bool ready; /* a sum: its buffer is complete on this rank (under mu) */
#ifdef PML_HAVE_MPI
    MPI_Request req;
#endif
} msg;

struct pml__link {
    pml_dist *d;
    pml__link_fn done;
    bool (*idle)(void *ctx);
    void *ctx;
    msg *m;
    int nmsg, capmsg;
    char err[256]; /* a registration that failed */
    int ngroup;
    uv_thread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool locks;
    /* under mu */
    bool quit, failed, running, broken;
    unsigned run;
    int *sums, nsum, next_sum; /* the run's sums in order; [0, next_sum) posted */
    int pending;               /* the run's receives and sums not yet complete */
    char why[256];
    /* the thread's own: requests in flight */
    int *omsg, nout;
    int *idx;
    long tag_ub;
#ifdef PML_HAVE_MPI
    MPI_Comm comm;
    MPI_Comm *group;
    MPI_Request *oreq;
#endif
};

static int add(pml__link *l, msg m)
{
    if (l->err[0]) return -1;
    if (m.n < 0) {
        snprintf(l->err, sizeof l->err, "a message of over 2^31 floats");
        return -1;
    }
    if (m.kind != MSG_SUM && (m.tag < 0 || m.tag > l->tag_ub)) {
        snprintf(l->err, sizeof l->err, "message tag %d is above MPI's limit %ld (too many tasks)",
                 m.tag, l->tag_ub);
        return -1;
    }
    if (l->nmsg == l->capmsg) {
        int cap = l->capmsg ? 2 * l->capmsg : 64;
        msg *a = realloc(l->m, (size_t)cap * sizeof *a);
        if (!a) {
            snprintf(l->err, sizeof l->err, "out of memory");
            return -1;
        }
        l->m = a;
        l->capmsg = cap;
    }
#ifdef PML_HAVE_MPI
    m.req = MPI_REQUEST_NULL;
#endif
    l->m[l->nmsg] = m;
    return l->nmsg++;
}

static int count(size_t n) { return n > (size_t)INT_MAX ? -1 : (int)n; }

int pml__link_recv(pml__link *l, int from, int tag, float *buf, size_t n, unsigned runs, int arg)
{
    return add(l, (msg){.kind = MSG_RECV, .peer = from, .tag = tag, .arg = arg, .buf = buf,
                        .n = count(n), .runs = runs});
}

int pml__link_send(pml__link *l, int to, int tag, float *buf, size_t n)
{
    return add(l, (msg){.kind = MSG_SEND, .peer = to, .tag = tag, .buf = buf, .n = count(n), .runs = ~0u});
}

int pml__link_sum(pml__link *l, int group, float *buf, size_t n, unsigned runs, int arg)
{
    if (group < 0 || group >= l->ngroup) {
        snprintf(l->err, sizeof l->err, "a sum over group %d, which does not exist", group);
        return -1;
    }
    return add(l, (msg){.kind = MSG_SUM, .peer = group, .arg = arg, .buf = buf, .n = count(n), .runs = runs});
}

#ifdef PML_HAVE_MPI
static void link_fail(pml__link *l, int rc, const char *what)
{
    if (!l->failed) {
        char m[MPI_MAX_ERROR_STRING];
        int len = 0;
        if (MPI_Error_string(rc, m, &len) != MPI_SUCCESS) snprintf(m, sizeof m, "error %d", rc);
        snprintf(l->why, sizeof l->why, "MPI: %s: %.160s", what, m);
        l->failed = true;
    }
    pthread_cond_broadcast(&l->cv);
}

static void link_main(void *arg)
{
    pml__link *l = arg;
    long nap = LINK_NAP_MIN_NS;
    pthread_mutex_lock(&l->mu);
    while (!l->quit) {
        if (!l->running || l->failed) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        /* the sums that are ready, in order */
        if (l->next_sum < l->nsum && l->m[l->sums[l->next_sum]].ready) {
            const int k = l->sums[l->next_sum++];
            msg *m = &l->m[k];
            pthread_mutex_unlock(&l->mu);
            int rc = MPI_Iallreduce(MPI_IN_PLACE, m->buf, m->n, MPI_FLOAT, MPI_SUM,
                                    l->group[m->peer], &l->oreq[l->nout]);
            pthread_mutex_lock(&l->mu);
            if (rc != MPI_SUCCESS) link_fail(l, rc, "posting a gradient sum across ranks");
            else l->omsg[l->nout++] = k;
            nap = LINK_NAP_MIN_NS;
            continue;
        }
        if (l->pending == 0) {
            l->running = false;
            pthread_cond_broadcast(&l->cv);
            continue;
        }
        if (l->nout == 0) { /* a sum not ready yet */
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        pthread_mutex_unlock(&l->mu);
        int got = 0, rc;
        const double end = pml_now() + LINK_BURST_S;
        do rc = MPI_Testsome(l->nout, l->oreq, &got, l->idx, MPI_STATUSES_IGNORE);
        while (rc == MPI_SUCCESS && (got == 0 || got == MPI_UNDEFINED) && pml_now() < end);
        if (rc == MPI_SUCCESS && got > 0 && got != MPI_UNDEFINED) {
            for (int i = 0; i < got; i++) l->done(l->ctx, l->m[l->omsg[l->idx[i]]].arg);
            int k = 0; /* the requests still in flight, in order */
            for (int i = 0; i < l->nout; i++)
                if (l->oreq[i] != MPI_REQUEST_NULL) {
                    l->oreq[k] = l->oreq[i];
                    l->omsg[k++] = l->omsg[i];
                }
            l->nout = k;
        }
        pthread_mutex_lock(&l->mu);
        if (rc != MPI_SUCCESS) {
            link_fail(l, rc, "receiving from another rank");
        } else if (got > 0 && got != MPI_UNDEFINED) {
            l->pending -= got;
            nap = LINK_NAP_MIN_NS;
        } else if (l->idle && l->idle(l->ctx)) {
            sched_yield(); /* the workers wait for a message: poll on, but let them have a core */
        } else {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += nap;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&l->cv, &l->mu, &until);
            if (nap < LINK_NAP_MAX_NS) nap *= 2;
        }
    }
    pthread_mutex_unlock(&l->mu);
}
#endif

pml_status pml__link_create(pml_dist *d, pml__link_fn done, void *ctx, pml__link **out)
{
    *out = NULL;
#ifdef PML_HAVE_MPI
    if (!d || d->size < 2) return pml_fail(PML_EINVAL, "a plan across ranks needs several ranks");
    if (!d->threaded)
        return pml_fail(PML_EUNSUPPORTED, "a plan across ranks needs MPI with MPI_THREAD_MULTIPLE; "
                                          "this MPI gives less");
    if (d->size > 64) return pml_fail(PML_EUNSUPPORTED, "a plan across ranks takes at most 64 ranks");
    pml__link *l = calloc(1, sizeof *l);
    if (!l) return pml_fail(PML_ENOMEM, "out of memory");
    l->d = d;
    l->done = done;
    l->ctx = ctx;
    l->comm = MPI_COMM_NULL;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &l->comm);
    if (rc != MPI_SUCCESS) {
        l->comm = MPI_COMM_NULL;
        pml__link_destroy(l);
        return pml__mpi_fail(rc, "a communicator for the plan's messages");
    }
    MPI_Comm_set_errhandler(l->comm, MPI_ERRORS_RETURN);
    void *ub = NULL;
    int flag = 0;
    MPI_Comm_get_attr(l->comm, MPI_TAG_UB, &ub, &flag);
    l->tag_ub = flag && ub ? *(int *)ub : 32767;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->locks = true;
    *out = l;
    return PML_OK;
#else
    (void)d, (void)done, (void)ctx;
    return pml_fail(PML_EUNSUPPORTED, "a plan across ranks needs pml built with MPI");
#endif
}

void pml__link_set_idle(pml__link *l, bool (*idle)(void *ctx)) { l->idle = idle; }

pml_status pml__link_group(pml__link *l, uint64_t ranks, int *group)
{
#ifdef PML_HAVE_MPI
    MPI_Comm *g = realloc(l->group, (size_t)(l->ngroup + 1) * sizeof *g);
    if (!g) return pml_fail(PML_ENOMEM, "out of memory"); /* the others wait in the split: */
    l->group = g;                                          /* the caller ends the run */
    const bool in = (ranks >> l->d->rank) & 1;
    g[l->ngroup] = MPI_COMM_NULL;
    int rc = MPI_Comm_split(l->comm, in ? 0 : MPI_UNDEFINED, l->d->rank, &g[l->ngroup]);
    if (rc != MPI_SUCCESS) return pml__mpi_fail(rc, "a communicator for a gradient sum");
    if (g[l->ngroup] != MPI_COMM_NULL) MPI_Comm_set_errhandler(g[l->ngroup], MPI_ERRORS_RETURN);
    *group = l->ngroup++;
    return PML_OK;
#else
    (void)l, (void)ranks, (void)group;
    return pml_fail(PML_EUNSUPPORTED, "built without MPI");
#endif
}

pml_status pml__link_start(pml__link *l)
{
    if (l->err[0]) return pml_fail(PML_EINVAL, "a plan across ranks: %s", l->err);
#ifdef PML_HAVE_MPI
    const size_t n = (size_t)(l->nmsg ? l->nmsg : 1);
    l->sums = malloc(n * sizeof *l->sums);
    l->omsg = malloc(n * sizeof *l->omsg);
    l->idx = malloc(n * sizeof *l->idx);
    l->oreq = malloc(n * sizeof *l->oreq);
    if (!l->sums || !l->omsg || !l->idx || !l->oreq) return pml_fail(PML_ENOMEM, "out of memory");
    /* on the caller's cores (a rank's worker 0 is pinned by now), taking no signal */
    cpu_set_t cpus;
    const bool pin = pthread_getaffinity_np(pthread_self(), sizeof cpus, &cpus) == 0;
    int rc = pml__thread_start(&l->thread, link_main, l);
    if (rc != 0)
        return pml_fail(PML_ENOMEM, "cannot start the communication thread: %s", uv_strerror(rc));
    if (pin) pthread_setaffinity_np(l->thread, sizeof cpus, &cpus);
    l->started = true;
    return PML_OK;
#else
    return pml_fail(PML_EUNSUPPORTED, "built without MPI");
#endif
}

void pml__link_begin(pml__link *l, unsigned run)
{
#ifdef PML_HAVE_MPI
    pthread_mutex_lock(&l->mu);
    l->run = run;
    l->nsum = l->next_sum = l->pending = 0;
    l->nout = 0;
    for (int k = 0; k < l->nmsg && !l->failed; k++) {
        msg *m = &l->m[k];
        m->ready = false;
        if (!(m->runs & run)) continue;
        if (m->kind == MSG_SUM) {
            l->sums[l->nsum++] = k;
            l->pending++;
        } else if (m->kind == MSG_RECV) {
            int rc = MPI_Irecv(m->buf, m->n, MPI_FLOAT, m->peer, m->tag, l->comm, &l->oreq[l->nout]);
            if (rc != MPI_SUCCESS) {
                link_fail(l, rc, "posting a receive from another rank");
                break;
            }
            l->omsg[l->nout++] = k;
            l->pending++;
        }
    }
    l->running = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
#else
    (void)l, (void)run;
#endif
}

void pml__link_post(pml__link *l, int k)
{
#ifdef PML_HAVE_MPI
    msg *m = &l->m[k];
    if (m->kind == MSG_SEND) {
        int rc = MPI_Isend(m->buf, m->n, MPI_FLOAT, m->peer, m->tag, l->comm, &m->req);
        if (rc != MPI_SUCCESS) {
            pthread_mutex_lock(&l->mu);
            link_fail(l, rc, "sending to another rank");
            pthread_mutex_unlock(&l->mu);
        }
        return;
    }
    pthread_mutex_lock(&l->mu);
    m->ready = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
#else
    (void)l, (void)k;
#endif
}

pml_status pml__link_end(pml__link *l, bool ok)
{
#ifdef PML_HAVE_MPI
    pthread_mutex_lock(&l->mu);
    if (!ok) { /* a task failed: what is in flight stays so; MPI_Abort ends it */
        l->broken = true;
        l->running = false;
        pthread_mutex_unlock(&l->mu);
        return PML_OK;
    }
    while (l->running && !l->failed) pthread_cond_wait(&l->cv, &l->mu);
    pml_status st = PML_OK;
    if (l->failed) {
        l->broken = true;
        st = pml_fail(PML_EIO, "%s", l->why);
    }
    pthread_mutex_unlock(&l->mu);
    for (int k = 0; st == PML_OK && k < l->nmsg; k++) {
        msg *m = &l->m[k];
        if (m->kind != MSG_SEND || m->req == MPI_REQUEST_NULL) continue;
        int rc = MPI_Wait(&m->req, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            l->broken = true;
            st = pml__mpi_fail(rc, "sending to another rank");
        }
    }
    return st;
#else
    (void)l, (void)ok;
    return PML_OK;
#endif
}

void pml__link_destroy(pml__link *l)
{
    if (!l) return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->quit = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        uv_thread_join(&l->thread);
    }
#ifdef PML_HAVE_MPI
    if (!l->broken) { /* requests in flight after a failure are left to MPI_Abort */
        for (int k = 0; k < l->ngroup; k++)
            if (l->group[k] != MPI_COMM_NULL) MPI_Comm_free(&l->group[k]);
        if (l->comm != MPI_COMM_NULL) MPI_Comm_free(&l->comm);
    }
    free(l->group);
    free(l->oreq);
#endif
    if (l->locks) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    free(l->m);
    free(l->sums);
    free(l->omsg);
    free(l->idx);
    free(l);
}
