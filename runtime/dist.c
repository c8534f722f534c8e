/* pml — processes working on one training run (mpirun, srun): a world of ranks over Open MPI,
 * or a world of one when pml was not started so (or built without MPI). Data-parallel training
 * sums its gradients across the ranks with MPI's own all-reduce; nothing home-made carries the
 * bytes. A rank that fails ends every rank (pml_dist_abort, MPI_Abort): never a hang. */
#include "runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PML_HAVE_MPI
#include <mpi.h>
#endif

struct pml_dist {
    int rank, size, local_rank, local_size;
    bool mpi; /* MPI was initialised here (finalised by pml_dist_finalize) */
#ifdef PML_HAVE_MPI
    MPI_Comm local;
#endif
};

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
static pml_status mpi_fail(int code, const char *what)
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
    /* errors come back as codes: pml says what failed, then ends every rank */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL,
                                 &d->local);
    if (rc != MPI_SUCCESS) {
        pml_status st = mpi_fail(rc, "splitting the ranks by host");
        pml_dist_finalize(d);
        return st;
    }
    MPI_Comm_rank(d->local, &d->local_rank);
    MPI_Comm_size(d->local, &d->local_size);
    (void)provided;
    *out = d;
    return PML_OK;
#else
    (void)argc, (void)argv;
    free(d);
    return pml_fail(PML_EUNSUPPORTED,
                    "pml was started by an MPI launcher but built without MPI (meson option mpi)");
#endif
}

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
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "summing gradients across the ranks");
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
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? PML_OK : mpi_fail(rc, "summing losses across the ranks");
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
    int rc = MPI_Allgather(&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    pml_status st = PML_OK;
    if (rc != MPI_SUCCESS) {
        st = mpi_fail(rc, "comparing the ranks");
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
    if (d->mpi) {
        if (d->local != MPI_COMM_NULL && d->local != 0) MPI_Comm_free(&d->local);
        MPI_Finalize();
    }
#endif
    free(d);
}
