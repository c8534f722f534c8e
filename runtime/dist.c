/* pml — processes working on one training run (mpirun, srun): a world of ranks over Open MPI,
 * or a world of one when pml was not started so (or built without MPI). Data-parallel training
 * sums its gradients across the ranks with MPI's own all-reduce; nothing home-made carries the
 * bytes. A rank that fails ends every rank (pml_dist_abort, MPI_Abort): never a hang. */
#include "runtime/runtime.h"

#include "dist_int.h"
#include "sync.h"
#include "workers.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Started by a launcher that set up an MPI world of several processes? (Open MPI, PMIx/Slurm,
 * MPICH's hydra.) A plain run is a world of one without touching MPI at all. */
static bool launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

#ifdef PML_HAVE_MPI
pml_status pml__mpi_fail(int code, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", code);
    return pml_fail(PML_EIO, "MPI: %s: %s", what, msg);
}
#endif

pml_status pml_dist_init(int *argc, char ***argv, pml_dist **out)
{
    *out = NULL;
    pml_dist *d = calloc(1, sizeof *d);
    if (!d) return pml_fail(PML_ENOMEM, "out of memory");
    d->size = d->local_size = 1;
    if (!launched()) {
        *out = d;
        return PML_OK;
    }
#ifdef PML_HAVE_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
        free(d);
        return pml_fail(PML_EIO, "MPI could not start (MPI_Init_thread)");
    }
    d->mpi = true;
    d->comm = MPI_COMM_WORLD;
    /* errors come back as codes: pml says what failed, then ends every rank */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL,
                                 &d->local);
    if (rc != MPI_SUCCESS) {
        pml_status st = pml__mpi_fail(rc, "splitting the ranks by host");
        pml_dist_finalize(d);
        return st;
    }
    MPI_Comm_rank(d->local, &d->local_rank);
    MPI_Comm_size(d->local, &d->local_size);
    d->threaded = provided >= MPI_THREAD_MULTIPLE;
    *out = d;
    return PML_OK;
#else
    (void)argc, (void)argv;
    free(d);
    return pml_fail(PML_EUNSUPPORTED,
                    "pml was started by an MPI launcher but built without MPI (meson option mpi)");
#endif
}

pml_status pml_dist_dup(pml_dist *d, pml_dist **out)
{
    *out = NULL;
    pml_dist *c = calloc(1, sizeof *c);
    if (!c) return pml_fail(PML_ENOMEM, "out of memory");
    if (d) *c = *d;
    else c->size = c->local_size = 1;
    c->mpi = false; /* MPI stays the parent's to finalise */
    c->dup = true;
#ifdef PML_HAVE_MPI
    if (d && d->mpi) {
        c->local = MPI_COMM_NULL;
        int rc = MPI_Comm_dup(d->comm, &c->comm); /* collective: every rank makes one */
        if (rc != MPI_SUCCESS) {
            free(c);
            return pml__mpi_fail(rc, "a communicator of its own");
        }
        MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
        c->comm_owned = true;
    }
#endif
    *out = c;
    return PML_OK;
}

bool pml_dist_threaded(const pml_dist *d) { return !d || d->size == 1 || d->threaded; }
int pml_dist_rank(const pml_dist *d) { return d ? d->rank : 0; }
int pml_dist_size(const pml_dist *d) { return d ? d->size : 1; }
int pml_dist_local_rank(const pml_dist *d) { return d ? d->local_rank : 0; }
int pml_dist_local_size(const pml_dist *d) { return d ? d->local_size : 1; }

pml_status pml_dist_sum_floats(pml_dist *d, float *buf, size_t n)
{
    if (!d || d->size == 1 || n == 0) return PML_OK;
#ifdef PML_HAVE_MPI
    /* MPI counts are ints: big blocks go in pieces */
    for (size_t off = 0; off < n;) {
        const int k = n - off > (size_t)1 << 30 ? 1 << 30 : (int)(n - off);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, d->comm);
        if (rc != MPI_SUCCESS) return pml__mpi_fail(rc, "summing gradients across the ranks");
        off += (size_t)k;
    }
    return PML_OK;
#else
    (void)buf;
    return pml_fail(PML_EUNSUPPORTED, "built without MPI");
#endif
}

pml_status pml_dist_sum_doubles(pml_dist *d, double *buf, int n)
{
    if (!d || d->size == 1 || n == 0) return PML_OK;
#ifdef PML_HAVE_MPI
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, d->comm);
    return rc == MPI_SUCCESS ? PML_OK : pml__mpi_fail(rc, "summing losses across the ranks");
#else
    (void)buf;
    return pml_fail(PML_EUNSUPPORTED, "built without MPI");
#endif
}

pml_status pml_dist_check_same(pml_dist *d, uint64_t value, const char *what)
{
    if (!d || d->size == 1) return PML_OK;
#ifdef PML_HAVE_MPI
    uint64_t *all = malloc((size_t)d->size * sizeof *all);
    if (!all) return pml_fail(PML_ENOMEM, "out of memory");
    int rc = MPI_Allgather(&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, d->comm);
    pml_status st = PML_OK;
    if (rc != MPI_SUCCESS) {
        st = pml__mpi_fail(rc, "comparing the ranks");
    } else {
        for (int r = 1; r < d->size; r++)
            if (all[r] != all[0]) {
                st = pml_fail(PML_EINVAL, "rank %d has another %s than rank 0 (every rank must "
                                          "run the same)",
                              r, what);
                break;
            }
    }
    free(all);
    return st;
#else
    (void)value, (void)what;
    return PML_OK;
#endif
}

pml_status pml_dist_barrier(pml_dist *d)
{
    if (!d || d->size == 1) return PML_OK;
#ifdef PML_HAVE_MPI
    /* MPI_Barrier would spin on this core while it waits: test now and then, asleep between */
    MPI_Request q;
    int flag = 0, rc = MPI_Ibarrier(d->comm, &q);
    while (rc == MPI_SUCCESS) {
        rc = MPI_Test(&q, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || flag) break;
        const struct timespec nap = {0, 100000}; /* 0.1 ms */
        nanosleep(&nap, NULL);
    }
    return rc == MPI_SUCCESS ? PML_OK : pml__mpi_fail(rc, "waiting for every rank");
#else
    return PML_OK;
#endif
}

pml_status pml_dist_gather(pml_dist *d, const char *buf, size_t len, char **all, size_t *alllen)
{
    *all = NULL;
    *alllen = 0;
    if (!d || d->size == 1) {
        if (!(*all = malloc(len + 1))) return pml_fail(PML_ENOMEM, "out of memory");
        memcpy(*all, buf, len);
        (*all)[len] = 0;
        *alllen = len;
        return PML_OK;
    }
#ifdef PML_HAVE_MPI
    /* a part over 2 GiB is refused by every rank alike: the counts go first */
    long mine = len > (size_t)INT_MAX ? -1 : (long)len;
    long *lens = malloc((size_t)d->size * sizeof *lens);
    int *counts = malloc((size_t)d->size * sizeof *counts), *displs = malloc((size_t)d->size * sizeof *displs);
    pml_status st = PML_OK;
    if (!lens || !counts || !displs) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        mine = -1; /* the others must still hear it */
    }
    long dummy[1];
    int rc = MPI_Allgather(&mine, 1, MPI_LONG, lens ? lens : dummy, lens ? 1 : 0, MPI_LONG, d->comm);
    if (rc != MPI_SUCCESS) st = pml__mpi_fail(rc, "gathering the ranks' sizes");
    long total = 0;
    for (int r = 0; st == PML_OK && r < d->size; r++) {
        if (lens[r] < 0 || total + lens[r] > INT_MAX) {
            st = pml_fail(PML_EINVAL, "rank %d's part is too large to gather (over 2 GiB in all)", r);
            break;
        }
        counts[r] = (int)lens[r];
        displs[r] = (int)total;
        total += lens[r];
    }
    char *out = NULL;
    if (st == PML_OK && d->rank == 0 && !(out = malloc((size_t)total + 1)))
        st = pml_fail(PML_ENOMEM, "out of memory for %ld bytes from the ranks", total);
    /* every rank agrees whether to go on: rank 0's allocation decides for all */
    int go = st == PML_OK, all_go = 0;
    if (MPI_Allreduce(&go, &all_go, 1, MPI_INT, MPI_MIN, d->comm) != MPI_SUCCESS) all_go = 0;
    if (all_go) {
        rc = MPI_Gatherv(buf, (int)len, MPI_CHAR, out, counts, displs, MPI_CHAR, 0, d->comm);
        if (rc != MPI_SUCCESS) st = pml__mpi_fail(rc, "gathering the ranks' parts");
    } else if (st == PML_OK) {
        st = pml_fail(PML_EIO, "another rank could not gather its part");
    }
    if (st == PML_OK && out) {
        out[total] = 0;
        *all = out;
        *alllen = (size_t)total;
        out = NULL;
    }
    free(out);
    free(lens);
    free(counts);
    free(displs);
    return st;
#else
    return PML_OK;
#endif
}

pml_status pml_dist_bcast_text(pml_dist *d, char **text, size_t *len)
{
    if (!d || d->size == 1) return PML_OK;
#ifdef PML_HAVE_MPI
    /* rank 0's length first (-1: it has nothing to send, and every rank fails alike) */
    long n = d->rank == 0 ? (*text && *len <= (size_t)INT_MAX ? (long)*len : -1) : 0;
    int rc = MPI_Bcast(&n, 1, MPI_LONG, 0, d->comm);
    if (rc != MPI_SUCCESS) return pml__mpi_fail(rc, "sending rank 0's text");
    if (n < 0) return pml_fail(PML_EIO, "rank 0 failed before it could send what every rank needs (its "
                                    "message says why)");
    char *buf = d->rank == 0 ? *text : malloc((size_t)n + 1);
    int ok = buf != NULL, all = 0;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, d->comm) != MPI_SUCCESS || !all) {
        if (d->rank != 0) free(buf);
        return pml_fail(PML_ENOMEM, "out of memory for rank 0's text (%ld bytes)", n);
    }
    rc = MPI_Bcast(buf, (int)n, MPI_CHAR, 0, d->comm);
    if (rc != MPI_SUCCESS) {
        if (d->rank != 0) free(buf);
        return pml__mpi_fail(rc, "sending rank 0's text");
    }
    if (d->rank != 0) {
        buf[n] = 0;
        *text = buf;
        *len = (size_t)n;
    }
    return PML_OK;
#else
    (void)text, (void)len;
    return PML_OK;
#endif
}

/* ---------------------------------------------------------------- the network between ranks
 *
 * Every pair of ranks in turn (all pairs up to 16 ranks, else each rank with the next and the
 * one half way round): the lower rank sends 8 bytes and waits for 8 back (ROUNDS times: half the
 * best round trip is the latency), then 4 MiB and waits for 8 bytes back (the best of a few:
 * the bytes over the time less a latency). The others wait at a barrier between pairs. */

#define NET_BYTES (4u << 20)
#define NET_PINGS 50
#define NET_SENDS 4

pml_status pml_dist_measure_network(pml_dist *d, double *bw, double *latency)
{
    *bw = *latency = 0;
    if (!d || d->size == 1) return PML_OK;
#ifdef PML_HAVE_MPI
    const int n = d->size, me = d->rank;
    char *big = calloc(NET_BYTES, 1);
    int npairs = 0, cap = n * n;
    int *pa = malloc((size_t)cap * sizeof *pa), *pb = malloc((size_t)cap * sizeof *pb);
    double *lat = calloc((size_t)cap, sizeof *lat), *bws = calloc((size_t)cap, sizeof *bws);
    if (!big || !pa || !pb || !lat || !bws) {
        free(big), free(pa), free(pb), free(lat), free(bws);
        return pml_fail(PML_ENOMEM, "out of memory"); /* every rank alike: same sizes */
    }
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (n <= 16 || b == (a + 1) % n || b == (a + n / 2) % n || a == (b + 1) % n)
                pa[npairs] = a, pb[npairs++] = b;
    int rc = MPI_SUCCESS;
    char word[8] = {0};
    for (int k = 0; k < npairs && rc == MPI_SUCCESS; k++) {
        const int a = pa[k], b = pb[k];
        if (me == a || me == b) {
            const int peer = me == a ? b : a;
            double best_rtt = INFINITY, best_big = INFINITY;
            for (int i = 0; i < NET_PINGS + NET_SENDS && rc == MPI_SUCCESS; i++) {
                const bool ping = i < NET_PINGS;
                const int bytes = ping ? 8 : (int)NET_BYTES;
                if (me == a) {
                    const double t0 = pml_now();
                    rc = MPI_Send(ping ? word : big, bytes, MPI_BYTE, peer, 7, MPI_COMM_WORLD);
                    if (rc == MPI_SUCCESS)
                        rc = MPI_Recv(word, 8, MPI_BYTE, peer, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    const double t = pml_now() - t0;
                    if (ping && t < best_rtt) best_rtt = t;
                    if (!ping && t < best_big) best_big = t;
                } else {
                    rc = MPI_Recv(ping ? word : big, bytes, MPI_BYTE, peer, 7, MPI_COMM_WORLD,
                                  MPI_STATUS_IGNORE);
                    if (rc == MPI_SUCCESS) rc = MPI_Send(word, 8, MPI_BYTE, peer, 8, MPI_COMM_WORLD);
                }
            }
            if (me == a && rc == MPI_SUCCESS) {
                lat[k] = best_rtt / 2;
                const double t = best_big - best_rtt; /* the bytes' time, less a round trip */
                bws[k] = t > 0 ? NET_BYTES / t : NET_BYTES / best_big;
            }
        }
        if (rc == MPI_SUCCESS) rc = MPI_Barrier(MPI_COMM_WORLD);
    }
    if (rc == MPI_SUCCESS) rc = MPI_Allreduce(MPI_IN_PLACE, lat, npairs, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS) rc = MPI_Allreduce(MPI_IN_PLACE, bws, npairs, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    pml_status st = PML_OK;
    if (rc != MPI_SUCCESS) {
        st = pml__mpi_fail(rc, "measuring the network between the ranks");
    } else {
        *latency = pml_median(lat, npairs);
        *bw = pml_median(bws, npairs);
    }
    free(big), free(pa), free(pb), free(lat), free(bws);
    return st;
#else
    return PML_OK;
#endif
}

/* ---------------------------------------------------------------- parameter servers
 *
 * The last K ranks are servers; server s holds shard s of the parameters (K nearly equal
 * contiguous ranges, 16-float aligned). Per server a communicator of the workers and that server
 * (the server last, the root): workers push their gradients' piece of each shard with
 * MPI_Ireduce (summed on the server), servers send their shard back with MPI_Ibcast. */

struct pml_dist_ps {
    pml_dist *d;
    int servers, workers;
    size_t *lo, *hi; /* [server]: its shard */
#ifdef PML_HAVE_MPI
    MPI_Comm *comm;      /* [server]: workers + that server; MPI_COMM_NULL when not a member */
    MPI_Request *req;
#endif
};

pml_status pml_dist_ps_create(pml_dist *d, int servers, size_t nparams, pml_dist_ps **out)
{
    *out = NULL;
    const int n = pml_dist_size(d);
    if (servers < 1 || servers >= n)
        return pml_fail(PML_EINVAL,
                        "parameter servers need more ranks than servers: %d server%s, %d rank%s",
                        servers, servers == 1 ? "" : "s", n, n == 1 ? "" : "s");
#ifdef PML_HAVE_MPI
    pml_dist_ps *p = calloc(1, sizeof *p);
    if (!p) return pml_fail(PML_ENOMEM, "out of memory");
    p->d = d;
    p->servers = servers;
    p->workers = n - servers;
    p->lo = calloc((size_t)servers, sizeof *p->lo);
    p->hi = calloc((size_t)servers, sizeof *p->hi);
    p->comm = calloc((size_t)servers, sizeof *p->comm);
    p->req = calloc((size_t)servers, sizeof *p->req);
    int *members = malloc((size_t)(p->workers + 1) * sizeof *members);
    if (!p->lo || !p->hi || !p->comm || !p->req || !members) {
        free(members);
        pml_dist_ps_destroy(p);
        return pml_fail(PML_ENOMEM, "out of memory");
    }
    for (int s = 0; s < servers; s++) {
        p->comm[s] = MPI_COMM_NULL;
        /* nearly equal, starting on 64-byte boundaries as the parameter blocks do */
        p->lo[s] = (size_t)pml__part_start((long)nparams, servers, s) & ~(size_t)15;
        p->hi[s] = s + 1 == servers
                       ? nparams
                       : (size_t)pml__part_start((long)nparams, servers, s + 1) & ~(size_t)15;
        if (p->hi[s] - p->lo[s] > (size_t)INT_MAX) {
            free(members);
            pml_dist_ps_destroy(p);
            return pml_fail(PML_EINVAL, "a parameter shard of over 2^31 floats: use more servers");
        }
    }
    MPI_Group world;
    int rc = MPI_Comm_group(MPI_COMM_WORLD, &world);
    for (int w = 0; w < p->workers; w++) members[w] = w;
    for (int s = 0; s < servers && rc == MPI_SUCCESS; s++) {
        members[p->workers] = p->workers + s; /* the server last: the root */
        MPI_Group g;
        rc = MPI_Group_incl(world, p->workers + 1, members, &g);
        if (rc == MPI_SUCCESS) rc = MPI_Comm_create(MPI_COMM_WORLD, g, &p->comm[s]); /* collective */
        if (rc == MPI_SUCCESS) MPI_Group_free(&g);
        if (rc == MPI_SUCCESS && p->comm[s] != MPI_COMM_NULL)
            MPI_Comm_set_errhandler(p->comm[s], MPI_ERRORS_RETURN);
    }
    if (rc == MPI_SUCCESS) MPI_Group_free(&world);
    free(members);
    if (rc != MPI_SUCCESS) {
        pml_dist_ps_destroy(p);
        return pml__mpi_fail(rc, "the parameter servers' communicators");
    }
    *out = p;
    return PML_OK;
#else
    (void)nparams;
    return pml_fail(PML_EUNSUPPORTED, "built without MPI");
#endif
}

void pml_dist_ps_destroy(pml_dist_ps *p)
{
    if (!p) return;
#ifdef PML_HAVE_MPI
    for (int s = 0; p->comm && s < p->servers; s++)
        if (p->comm[s] != MPI_COMM_NULL) MPI_Comm_free(&p->comm[s]);
    free(p->comm);
    free(p->req);
#endif
    free(p->lo);
    free(p->hi);
    free(p);
}

int pml_dist_ps_workers(const pml_dist_ps *p) { return p->workers; }

bool pml_dist_ps_shard(const pml_dist_ps *p, size_t *lo, size_t *hi)
{
    const int s = pml_dist_rank(p->d) - p->workers;
    if (s < 0) return false;
    *lo = p->lo[s];
    *hi = p->hi[s];
    return true;
}

#ifdef PML_HAVE_MPI
/* Posts one collective per server this rank takes part in, then waits for all of them. */
static pml_status ps_round(pml_dist_ps *p, float *buf, bool push)
{
    const int me = pml_dist_rank(p->d), nreq_max = p->servers;
    int rc = MPI_SUCCESS, nreq = 0;
    for (int s = 0; s < nreq_max && rc == MPI_SUCCESS; s++) {
        if (p->comm[s] == MPI_COMM_NULL) continue;
        const bool server = me == p->workers + s;
        float *x = buf + p->lo[s];
        const int k = (int)(p->hi[s] - p->lo[s]);
        if (push)
            rc = MPI_Ireduce(server ? MPI_IN_PLACE : x, server ? x : NULL, k, MPI_FLOAT, MPI_SUM,
                             p->workers, p->comm[s], &p->req[nreq++]);
        else
            rc = MPI_Ibcast(x, k, MPI_FLOAT, p->workers, p->comm[s], &p->req[nreq++]);
    }
    if (rc == MPI_SUCCESS) rc = MPI_Waitall(nreq, p->req, MPI_STATUSES_IGNORE);
    return rc == MPI_SUCCESS ? PML_OK
                             : pml__mpi_fail(rc, push ? "pushing gradients to the parameter servers"
                                                 : "pulling parameters from the servers");
}
#endif

pml_status pml_dist_ps_push(pml_dist_ps *p, float *grads)
{
#ifdef PML_HAVE_MPI
    return ps_round(p, grads, true);
#else
    (void)p, (void)grads;
    return PML_OK;
#endif
}

pml_status pml_dist_ps_pull(pml_dist_ps *p, float *params)
{
#ifdef PML_HAVE_MPI
    return ps_round(p, params, false);
#else
    (void)p, (void)params;
    return PML_OK;
#endif
}

void pml_dist_abort(pml_dist *d, int code)
{
#ifdef PML_HAVE_MPI
    if (d && d->mpi) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)d, (void)code;
#endif
}

void pml_dist_finalize(pml_dist *d)
{
    if (!d) return;
#ifdef PML_HAVE_MPI
    if (d->comm_owned) MPI_Comm_free(&d->comm);
    if (d->mpi) {
        if (d->local != MPI_COMM_NULL && d->local != 0) MPI_Comm_free(&d->local);
        MPI_Finalize();
    }
#endif
    free(d);
}

/* ---------------------------------------------------------------- gradient buckets
 *
 * The reducer sums a gradient block across the ranks in buckets while the backward pass still
 * runs (as PyTorch DDP and Horovod do). Buckets are ranges of the block; the executor says when
 * a bucket is complete on this rank (pml_dist_reducer_ready, from any worker), and one
 * communication thread per rank scales it, posts MPI_Iallreduce on a communicator of its own
 * (so the caller's collectives never interleave with these) and progresses the requests with
 * MPI_Test and short sleeps: the compute cores are never busy polling MPI. Every rank posts
 * its buckets in bucket order, whatever order they became ready in, so that the collectives
 * match across ranks. */

/* While the backward pass runs, the thread makes progress calls for 30 us, then sleeps, from
 * 20 us doubling to 0.5 ms while nothing completes (each wake-up takes the core from a worker);
 * once the pass is over, pml_dist_reducer_finish drives what is left from the caller's thread,
 * whose core has nothing else to do then. */
#define REDUCER_NAP_MIN_NS 20000L
#define REDUCER_NAP_MAX_NS 500000L
#define REDUCER_BURST_S 30e-6 /* progress calls for this long per wake-up */

struct pml_dist_reducer {
    float *buf;
    size_t *lo, *hi; /* bucket b is buf[lo[b] .. hi[b]) */
    int n;
    uv_thread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    bool quit, failed;
    bool caller_drives; /* the caller completes the requests (after the backward pass) */
    bool testing;       /* the thread is in an MPI call on the requests */
    unsigned char *ready; /* [bucket]: complete on this rank */
    int posted;           /* buckets [0, posted) are posted, in order */
    int done;             /* buckets [0, done) are summed (collectives complete in order) */
    float pre, post;
    char err[256];
    double *t_post, *t_done; /* [bucket]: this step's times (pml_now) */
    pml_dist_ps *ps; /* not NULL: each bucket is pushed to the parameter servers, not summed */
    int per;         /* requests per bucket: 1, or a server each */
#ifdef PML_HAVE_MPI
    MPI_Comm comm;
    MPI_Request *req; /* [bucket * per + k] */
#endif
};

#ifdef PML_HAVE_MPI
static void scale(float *p, size_t n, float s)
{
    if (s != 1.0f)
        for (size_t i = 0; i < n; i++) p[i] *= s;
}

static void reducer_fail(pml_dist_reducer *r, int rc, const char *what, int b)
{
    if (!r->failed) {
        r->failed = true;
        snprintf(r->err, sizeof r->err, "%s gradient bucket %d across the ranks failed (error %d)",
                 what, b, rc);
    }
    pthread_cond_broadcast(&r->cv);
}

/* Bucket b's sum arrived: scale it, note the time. Called with mu held by whoever completed it. */
static void bucket_done(pml_dist_reducer *r, int b)
{
    scale(r->buf + r->lo[b], r->hi[b] - r->lo[b], r->post);
    r->t_done[b] = pml_now();
    r->done = b + 1;
    pthread_cond_broadcast(&r->cv);
}

/* Posts bucket b: its sum across the ranks (MPI_Iallreduce), or with parameter servers its
 * part in each server's shard summed on that server (MPI_Ireduce on the communicator of the
 * workers and that server; every member posts its buckets' parts in bucket order, and a bucket
 * that misses a shard posts nothing there, on every member alike). */
static int post_bucket(pml_dist_reducer *r, int b)
{
    float *p = r->buf + r->lo[b];
    if (!r->ps)
        return MPI_Iallreduce(MPI_IN_PLACE, p, (int)(r->hi[b] - r->lo[b]), MPI_FLOAT, MPI_SUM,
                              r->comm, &r->req[b]);
    const pml_dist_ps *ps = r->ps;
    const int me = pml_dist_rank(ps->d);
    for (int s = 0; s < ps->servers; s++) {
        MPI_Request *q = &r->req[(size_t)b * r->per + s];
        *q = MPI_REQUEST_NULL;
        const size_t lo = r->lo[b] > ps->lo[s] ? r->lo[b] : ps->lo[s];
        const size_t hi = r->hi[b] < ps->hi[s] ? r->hi[b] : ps->hi[s];
        if (ps->comm[s] == MPI_COMM_NULL || lo >= hi) continue;
        const bool server = me == ps->workers + s;
        float *x = r->buf + lo;
        int rc = MPI_Ireduce(server ? MPI_IN_PLACE : x, server ? x : NULL, (int)(hi - lo),
                             MPI_FLOAT, MPI_SUM, ps->workers, ps->comm[s], q);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

static void reducer_main(void *arg)
{
    pml_dist_reducer *r = arg;
    long nap = REDUCER_NAP_MIN_NS;
    pthread_mutex_lock(&r->mu);
    while (!r->quit) {
        /* post, in bucket order, what is ready */
        if (!r->failed && r->posted < r->n && r->ready[r->posted]) {
            const int b = r->posted;
            r->testing = true;
            pthread_mutex_unlock(&r->mu);
            float *p = r->buf + r->lo[b];
            scale(p, r->hi[b] - r->lo[b], r->pre);
            const double t = pml_now();
            int rc = post_bucket(r, b);
            pthread_mutex_lock(&r->mu);
            r->testing = false;
            r->t_post[b] = t;
            r->posted = b + 1;
            if (rc != MPI_SUCCESS) reducer_fail(r, rc, "posting the sum of", b);
            pthread_cond_broadcast(&r->cv);
            nap = REDUCER_NAP_MIN_NS;
            continue;
        }
        if (r->failed || r->caller_drives || r->done == r->posted) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        /* progress: the oldest request (collectives complete in order) */
        const int b = r->done;
        r->testing = true;
        pthread_mutex_unlock(&r->mu);
        /* a burst of progress calls per wake-up: a large bucket goes in many fragments */
        int flag = 0, rc;
        const double burst_end = pml_now() + REDUCER_BURST_S;
        do rc = MPI_Testall(r->per, &r->req[(size_t)b * r->per], &flag, MPI_STATUSES_IGNORE);
        while (rc == MPI_SUCCESS && !flag && pml_now() < burst_end);
        pthread_mutex_lock(&r->mu);
        r->testing = false;
        pthread_cond_broadcast(&r->cv);
        if (rc != MPI_SUCCESS) {
            reducer_fail(r, rc, "summing", b);
        } else if (flag) {
            bucket_done(r, b);
            nap = REDUCER_NAP_MIN_NS;
        } else {
            /* a nap, cut short by a bucket becoming ready or by the caller taking over */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += nap;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&r->cv, &r->mu, &until);
            if (nap < REDUCER_NAP_MAX_NS) nap *= 2;
        }
    }
    pthread_mutex_unlock(&r->mu);
}
#endif

static pml_status reducer_create(pml_dist *d, pml_dist_ps *ps, float *buf, const size_t *lo,
                                 const size_t *hi, int n, pml_dist_reducer **out);

pml_status pml_dist_reducer_create(pml_dist *d, float *buf, const size_t *lo, const size_t *hi,
                                   int n, pml_dist_reducer **out)
{
    return reducer_create(d, NULL, buf, lo, hi, n, out);
}

pml_status pml_dist_reducer_create_ps(pml_dist_ps *ps, float *buf, const size_t *lo,
                                      const size_t *hi, int n, pml_dist_reducer **out)
{
    return reducer_create(ps->d, ps, buf, lo, hi, n, out);
}

static pml_status reducer_create(pml_dist *d, pml_dist_ps *ps, float *buf, const size_t *lo,
                                 const size_t *hi, int n, pml_dist_reducer **out)
{
    *out = NULL;
    if (!d || d->size == 1 || n < 1) return PML_OK;
#ifdef PML_HAVE_MPI
    if (!d->threaded) return PML_OK; /* no thread of our own: the caller sums after the step */
    pml_dist_reducer *r = calloc(1, sizeof *r);
    if (!r) return pml_fail(PML_ENOMEM, "out of memory");
    r->buf = buf;
    r->n = n;
    r->ps = ps;
    r->per = ps ? ps->servers : 1;
    r->lo = malloc((size_t)n * sizeof *r->lo);
    r->hi = malloc((size_t)n * sizeof *r->hi);
    r->ready = calloc((size_t)n, 1);
    r->t_post = calloc((size_t)n, sizeof *r->t_post);
    r->t_done = calloc((size_t)n, sizeof *r->t_done);
    r->req = calloc((size_t)n * r->per, sizeof *r->req);
    r->comm = MPI_COMM_NULL;
    if (!r->lo || !r->hi || !r->ready || !r->t_post || !r->t_done || !r->req) {
        pml_dist_reducer_destroy(r);
        return pml_fail(PML_ENOMEM, "out of memory");
    }
    memcpy(r->lo, lo, (size_t)n * sizeof *r->lo);
    memcpy(r->hi, hi, (size_t)n * sizeof *r->hi);
    for (int b = 0; b < n; b++)
        if (hi[b] < lo[b] || hi[b] - lo[b] > (size_t)INT_MAX) {
            pml_dist_reducer_destroy(r);
            return pml_fail(PML_EINVAL, "gradient bucket %d is malformed or too large", b);
        }
    for (size_t q = 0; q < (size_t)n * r->per; q++) r->req[q] = MPI_REQUEST_NULL;
    /* collective: every rank makes one (the servers' communicators are the pushes' own) */
    int rc = ps ? MPI_SUCCESS : MPI_Comm_dup(MPI_COMM_WORLD, &r->comm);
    if (rc != MPI_SUCCESS) {
        r->comm = MPI_COMM_NULL;
        pml_dist_reducer_destroy(r);
        return pml__mpi_fail(rc, "a communicator for the gradient buckets");
    }
    if (!ps) MPI_Comm_set_errhandler(r->comm, MPI_ERRORS_RETURN);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    /* a thread that takes no signal, as the workers; on the caller's cores (a rank's worker 0
     * is pinned by now): the gradients are in their caches, and another rank's cores are left
     * alone */
    cpu_set_t cpus;
    const bool pin = pthread_getaffinity_np(pthread_self(), sizeof cpus, &cpus) == 0;
    rc = pml__thread_start(&r->thread, reducer_main, r);
    if (rc == 0 && pin) pthread_setaffinity_np(r->thread, sizeof cpus, &cpus);
    if (rc != 0) {
        pml_dist_reducer_destroy(r);
        return pml_fail(PML_ENOMEM, "cannot start the communication thread: %s", uv_strerror(rc));
    }
    r->started = true;
    *out = r;
    return PML_OK;
#else
    (void)ps, (void)buf, (void)lo, (void)hi;
    return PML_OK;
#endif
}

void pml_dist_reducer_destroy(pml_dist_reducer *r)
{
    if (!r) return;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->quit = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        uv_thread_join(&r->thread);
    }
#ifdef PML_HAVE_MPI
    if (r->req && r->comm != MPI_COMM_NULL) {
        /* requests still in flight (a rank failed mid-step) are left to MPI_Abort */
        bool idle = true;
        for (size_t q = 0; q < (size_t)r->n * r->per; q++)
            idle &= r->req[q] == MPI_REQUEST_NULL || r->req[q] == 0;
        if (idle && !r->failed) MPI_Comm_free(&r->comm);
    }
#endif
    if (r->started) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
    }
    free(r->lo);
    free(r->hi);
    free(r->ready);
    free(r->t_post);
    free(r->t_done);
#ifdef PML_HAVE_MPI
    free(r->req);
#endif
    free(r);
}

void pml_dist_reducer_begin(pml_dist_reducer *r, float pre, float post)
{
    pthread_mutex_lock(&r->mu);
    memset(r->ready, 0, (size_t)r->n);
    for (int b = 0; b < r->n; b++) r->t_post[b] = r->t_done[b] = 0;
    r->posted = r->done = 0;
    r->caller_drives = false;
    r->pre = pre;
    r->post = post;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void pml_dist_reducer_ready(pml_dist_reducer *r, int bucket)
{
    pthread_mutex_lock(&r->mu);
    r->ready[bucket] = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

pml_status pml_dist_reducer_finish(pml_dist_reducer *r)
{
    pthread_mutex_lock(&r->mu);
    for (int b = 0; b < r->n; b++) r->ready[b] = 1; /* a bucket nobody marked (no gradient) */
    pthread_cond_broadcast(&r->cv);
    /* the thread posts everything, then the caller completes what is in flight */
    while (!r->failed && (r->posted < r->n || r->testing)) pthread_cond_wait(&r->cv, &r->mu);
    r->caller_drives = true;
#ifdef PML_HAVE_MPI
    while (!r->failed && r->done < r->n) {
        const int b = r->done;
        pthread_mutex_unlock(&r->mu);
        int rc = MPI_Waitall(r->per, &r->req[(size_t)b * r->per], MPI_STATUSES_IGNORE);
        pthread_mutex_lock(&r->mu);
        if (rc != MPI_SUCCESS) reducer_fail(r, rc, "summing", b);
        else bucket_done(r, b);
    }
#endif
    pml_status st = r->failed ? pml_fail(PML_EIO, "MPI: %s", r->err) : PML_OK;
    pthread_mutex_unlock(&r->mu);
    return st;
}

int pml_dist_reducer_times(const pml_dist_reducer *r, double *t_post, double *t_done)
{
    pml_dist_reducer *m = (pml_dist_reducer *)r;
    pthread_mutex_lock(&m->mu);
    memcpy(t_post, r->t_post, (size_t)r->n * sizeof *t_post);
    memcpy(t_done, r->t_done, (size_t)r->n * sizeof *t_done);
    pthread_mutex_unlock(&m->mu);
    return r->n;
}
