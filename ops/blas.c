/* pml — BLAS set-up. pml runs its own pinned workers and calls BLAS single-threaded from each;
 * OpenBLAS's own threads are never wanted (the command sets OPENBLAS_NUM_THREADS=1 before the
 * library loads, see tools/pml.c). */
#include "ops/ops.h"

#include <cblas.h>
#include <sys/mman.h>
#include <sys/resource.h>

void pml_blas_single_thread(void) { openblas_set_num_threads(1); }

/* OpenBLAS (Debian's x86-64 build) maps a 128 MiB work buffer for each thread on that thread's
 * first call and, when the mapping fails, retries for ever at 100% CPU. A thread's stack takes
 * 8 MiB more. */
#define BLAS_BUFFER_BYTES ((size_t)128 << 20)
#define THREAD_BYTES ((size_t)8 << 20)
#define SPARE_BYTES ((size_t)64 << 20)

pml_status pml_blas_room(int threads)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return PML_OK;
    if (threads < 1) threads = 1;
    size_t need = (size_t)threads * (BLAS_BUFFER_BYTES + THREAD_BYTES) + SPARE_BYTES;
    /* address space, not memory: PROT_NONE and NORESERVE cost nothing but count against the limit */
    void *p = mmap(NULL, need, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
        munmap(p, need);
        return PML_OK;
    }
    return pml_fail(PML_ENOMEM,
                    "out of address space: BLAS on %d thread%s needs %zu MiB more than the limit "
                    "leaves (ulimit -v %llu kB); raise the limit or use fewer threads",
                    threads, threads == 1 ? "" : "s", need >> 20,
                    (unsigned long long)(rl.rlim_cur >> 10));
}

pml_status pml_blas_room_here(void)
{
    static _Thread_local bool ready;
    if (ready) return PML_OK;
    pml_status st = pml_blas_room(1);
    ready = st == PML_OK;
    return st;
}
