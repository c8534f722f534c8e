/* pml — internal: a world of ranks (runtime/dist.c), for the modules that carry a run's bytes
 * between them (runtime/link.c). */
#ifndef PML_RUNTIME_DIST_INT_H
#define PML_RUNTIME_DIST_INT_H

#include "runtime/runtime.h"

#ifdef PML_HAVE_MPI
#include <mpi.h>
#endif

struct pml_dist {
    int rank, size, local_rank, local_size;
    bool mpi;      /* MPI was initialised here (finalised by pml_dist_finalize) */
    bool threaded; /* MPI_THREAD_MULTIPLE: a communication thread may call MPI beside the caller */
    bool dup;      /* made by pml_dist_dup: its communicator is its own, MPI is the parent's */
    bool comm_owned; /* comm is a duplicate, freed with it */
#ifdef PML_HAVE_MPI
    MPI_Comm comm; /* the collectives of pml_dist_*: MPI_COMM_WORLD, or a duplicate of it */
    MPI_Comm local;
#endif
};

#ifdef PML_HAVE_MPI
/** PML_EIO with MPI's message for \p code, after "MPI: what: ". */
pml_status pml__mpi_fail(int code, const char *what);
#endif

#endif
