/* pml — internal: the task graph's storage, shared by the builder (taskgraph.c) and the
 * simulator (sim.c). */
#ifndef PML_PLANNER_TG_H
#define PML_PLANNER_TG_H

#include "planner/planner.h"
#include <stdlib.h>
#include <string.h>

/* Resizes the array that *(T **)pp points to to n elements of size bytes each; on failure it
 * stays as it was. \return false when out of memory. */
static inline bool pml__resize(void *pp, size_t n, size_t size)
{
    void *old, *p;
    memcpy(&old, pp, sizeof old);
    if (!(p = realloc(old, n * size))) return false;
    memcpy(pp, &p, sizeof p);
    return true;
}

typedef struct pml__ivec {
    int *a;
    int n, cap;
} pml__ivec;

struct pml_taskgraph {
    const pml_graph *g;
    const pml_machine *m;
    const pml_plan *p; /* the plan the tasks follow (owned by the caller) */
    pml_costmodel *cost;
    int N;             /* graph nodes */
    int *pos;          /* node -> position in topological order */
    bool *wants;       /* node output needs a gradient */
    bool *run_bwd;     /* node has backward tasks */
    int *cons_off, *cons; /* consumers of node u: (node, input) pairs cons[2k], cons[2k + 1] for
                           * k in [cons_off[u], cons_off[u + 1]) */

    /* task slots */
    pml_task *t;
    int *pcap, *scap;  /* capacities of pred / succ arrays */
    bool *live;
    int nslots, cap;
    pml__ivec freeslots;

    /* ownership, for rebuilding one node's tasks */
    int **fwd_id, **bwd_id;  /* node -> part -> task id (-1: none) */
    int *nparts;             /* parts the id arrays hold */
    pml__ivec *edge;         /* node * PML_MAX_INPUTS + input: transfer tasks of that edge */
    int nbuckets;
    int *bucket_of;          /* node -> gradient bucket, -1 without parameters */
    int *bucket_close;       /* bucket -> member with the smallest topological position */
    pml__ivec *btasks;       /* bucket -> its SYNC / UPDATE / parameter-server tasks */
    /* parameter servers: with sync=ps on a machine that names them (role=ps), their compute
     * indices; the model's parameters laid end to end in topological order, one equal shard
     * per server (taskgraph.c) */
    int nserver;
    int16_t *server;
    double *param_off;  /* node -> floats of the parameters before its own */
    double param_total; /* floats of all parameters */

    /* resources: compute devices, then directed link resources */
    int nres;
    pml__ivec *res;          /* resource -> task ids sorted by key */

    /* program order: live task ids sorted by key */
    pml__ivec order;

    /* per compute device: bytes held (activations, received copies, parameters, state) */
    double *mem;

    /* change tracking for delta simulation */
    uint64_t kmin;           /* smallest key added or removed since the last reset */
    pml__ivec added;         /* ids added since the last reset (to merge into order) */
    bool removed_any;
    const double *old_ready; /* the simulator's ready times of the last simulation, or NULL */
    double tmin;             /* smallest old ready time of a removed or touched task */
    pml__ivec touched;       /* old tasks whose predecessors changed since the last reset */
    int epoch;               /* incremented by each rebuild */
    int *born;               /* slot -> epoch it was (re)created in */
    int *seen;               /* slot -> epoch it was last put on touched */
};

/** Removes every task owned by node \p id (its parts, the transfers on its edges, its bucket's
 * tasks) and builds them again for the plan's current config of the node. Updates resource lists
 * and program order, and lowers tg->kmin to the smallest key touched. */
pml_status pml__tg_rebuild_node(pml_taskgraph *tg, int id);
/** Starts a new round of change tracking (kmin, tmin, touched, epoch). */
void pml__tg_reset_changes(pml_taskgraph *tg);
/** Brings tg->order up to date after changes (merges added ids, drops removed ones). */
pml_status pml__tg_commit(pml_taskgraph *tg);

/** Compute devices a and b share memory (cores of one node): a transfer between them moves
 * nothing, and a dependency between their tasks costs the hand-off (their route's latency). */
bool pml__shared_memory(const pml_machine *m, int a, int b);
/** Whether compute devices a and b (compute indices) are CPUs of one host, whose caches and
 * memory they share: of one node, or of a machine whose CPUs are all one machine's cores
 * (cores_of: the ranks of an mpirun on one host). Such cores crowd each other. */
bool pml__same_host(const pml_machine *m, int a, int b);

#endif
