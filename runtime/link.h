/* pml — internal: the messages of a plan that spans ranks (runtime/link.c).
 *
 * A plan executor whose machine's nodes are ranks registers, once, every message its steps
 * exchange with other ranks: receives (a region of an activation or a gradient another rank
 * computes), sends (the regions this rank computes for others) and sums (a parameter slice's
 * gradient summed over the ranks that hold replicas of it, MPI_Iallreduce on a communicator of
 * those ranks). Each message belongs to some of the executor's runs (a training step, an
 * inference pass: a bit each). A run then goes:
 *   pml__link_begin(run)   posts the run's receives (called once the workers' counters are set)
 *   pml__link_post(msg)    from a worker: a send goes out now; a sum may go out
 *   done(ctx, arg)         on the communication thread: a receive or sum of the run completed
 *   pml__link_end()        after the run: waits for everything of the run, sends included.
 * One thread per rank progresses the requests (MPI_Testsome in short bursts between naps, as the
 * gradient reducer in dist.c: never a busy poll on a compute core) and posts the sums in the
 * order they were registered, which is the same on every rank, so the collectives match. */
#ifndef PML_RUNTIME_LINK_H
#define PML_RUNTIME_LINK_H

#include "runtime/runtime.h"

typedef struct pml__link pml__link;
typedef void (*pml__link_fn)(void *ctx, int arg);

/** A link over d's ranks (collective: a communicator of its own). done(ctx, arg) is called on
 * the communication thread as each receive or sum of a run completes. Needs MPI with
 * MPI_THREAD_MULTIPLE (workers send while the thread progresses). */
pml_status pml__link_create(pml_dist *d, pml__link_fn done, void *ctx, pml__link **out);
void pml__link_destroy(pml__link *l);
/** While idle(ctx) says this rank's workers have nothing to do, the thread polls without naps
 * (their cores are free, and a message is what they wait for). */
void pml__link_set_idle(pml__link *l, bool (*idle)(void *ctx));
/** A communicator of the ranks in bit mask \p ranks (rank r: bit r; at most 64 ranks): every
 * rank calls it for the same masks in the same order (collective). *group: its index. */
pml_status pml__link_group(pml__link *l, uint64_t ranks, int *group);
/** Registers a message; \return its index, or -1 (pml__link_start then fails with why). A
 * receive and its send carry the same tag. n floats at buf (kept by the caller). */
int pml__link_recv(pml__link *l, int from, int tag, float *buf, size_t n, unsigned runs, int arg);
int pml__link_send(pml__link *l, int to, int tag, float *buf, size_t n);
int pml__link_sum(pml__link *l, int group, float *buf, size_t n, unsigned runs, int arg);
/** Registration is over: starts the thread (or says what could not be registered). */
pml_status pml__link_start(pml__link *l);
void pml__link_begin(pml__link *l, unsigned run);
void pml__link_post(pml__link *l, int msg);
/** The run is over on this rank's workers (ok false: a task failed, the run is abandoned and
 * the link is left to MPI_Abort); waits for the run's messages. */
pml_status pml__link_end(pml__link *l, bool ok);

#endif
