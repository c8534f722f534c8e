/* pml — internal to planner/: the cost model's state, shared by cost.c (queries, the analytic
 * model, the tables and the disk cache) and cost_measure.c (timing kernels and streams on this
 * machine's cores). */
#ifndef PML_PLANNER_COST_INT_H
#define PML_PLANNER_COST_INT_H

#include "planner/planner.h"

#include <pthread.h>

/* Bump when kernels change enough that old measurements mislead. */
#define CACHE_HEADER "pml-costs 10"
#define CACHE_MAX_BYTES ((size_t)64 << 20)
#define KEY_MAX 1000

#define MAX_REPEATS 101
#define SLOW_RUN 0.020      /* seconds: fewer repeats above */
#define VERY_SLOW_RUN 0.100 /* seconds: one timed run above */
#define TINY_RUN 2e-5       /* seconds: repeat inside each timing below */
#define MEASURE_FLOPS 4e9   /* forward flops of the largest part measured as is */
#define MEASURE_BYTES ((double)(512 << 20))
#define SCRATCH_KEEP ((size_t)64 << 20) /* floats */
#define EVICT_FLOATS (PML_EVICT_BYTES / sizeof(float))
#define DEFAULT_LLC ((double)(32 << 20))
#define UPDATE_BATCH 32 /* the working set an update is blended for */
#define RAMP_IDLE 5e-4    /* seconds: a core idle longer is brought up to speed before timing */
#define RAMP_SECONDS 4e-3 /* ... by streaming through RAMP_BYTES this long */
#define RAMP_BYTES ((size_t)4 << 20)

/* Update / reduce / sync calibration sizes (floats), and the strided layout timed for the cost of
 * a range: CAL_ROWS ranges of CAL_ROW floats, CAL_ROW apart. */
#define NCAL 6
static const double cal_size[NCAL] = {64, 4096, 65536, 262144, 1048576, 4194304};
#define CAL_ROWS 1024
#define CAL_ROW 64
enum { CAL_UPDATE = 0, CAL_REDUCE = 1, CAL_SYNC = 2, CAL_ZERO = 3, CAL_KINDS };

/* Analytic model constants, per device kind (see analytic_part): kernel efficiencies against
 * peak FLOP/s (conv, linear, other ops) and memory bandwidth, the launch cost of a kernel, the
 * work a device needs in flight to reach its efficiency, and how much faster a part streams when
 * its bytes fit in the caches. */
typedef struct roofline {
    double eff_conv, eff_linear, eff_other, bw_eff;
    double launch;
    double sat_compute, sat_bytes;  /* seconds of peak work needed for full efficiency (0: none) */
    double cache_bytes, cache_gain; /* caches: bandwidth x (1 + gain / (1 + bytes / cache_bytes)) */
} roofline;


/* Used when a CPU device gives no peak figures. */
#define DEFAULT_CPU_FLOPS 50e9
#define DEFAULT_CPU_BW 10e9
#define DEFAULT_GPU_FLOPS 10e12
#define DEFAULT_GPU_BW 500e9

typedef struct devinfo {
    pml_dev_kind kind;
    double flops, mem_bw;
    bool measured; /* present CPU device, and measuring is on */
    int core;      /* measured: hwloc logical index of its core */
    int cls;       /* query class: 0 for measured devices (all alike), 1 + compute index else */
} devinfo;

/* A query answered: (node, class, n, ce, he) -> seconds. */
typedef struct qent {
    int id, cls, n, ce, he;
    bool used;
    double fwd, bwd;
} qent;

/* A measurement by key (memory and disk): warm fwd, warm bwd, cold fwd, cold bwd; NAN for a
 * time not measured yet. Calibrations keep warm in v[0] and cold in v[2]. */
typedef struct ment {
    char *key;
    double v[4];
} ment;

struct pml_costmodel {
    pml_graph g;
    pml_cost_opts o;
    int ndev;
    devinfo *dev;
    bool any_measured;
    char *path; /* disk cache file; NULL when there is none */
    char *dir;  /* its folder, and its name (the lock's) */
    const char *name;
    pml_cache_stamp disk; /* the version of the file memory holds all of */
    int lock_state;       /* LOCK_OK; LOCK_TIMED_OUT: not written (no error); LOCK_UNUSABLE */
    char header[64];
    bool *wants, *run_bwd, *nonneg;
    double llc;        /* last-level cache bytes */
    double l2;         /* a core's level-2 cache, bytes (0: unknown) */
    double act_floats; /* per sample: every output, and its gradient where one is kept */
    double param_floats;
    pthread_mutex_t mu;
    qent *q;
    size_t qcap, qn;
    ment *m;
    size_t mcap, mn;
    bool dirty; /* the disk file needs writing */
    long measurements;
    bool have_cal[CAL_KINDS];
    /* calibrations, warm [0] and cold [1] (NAN where not measured): seconds at cal_size[], and
     * the seconds a range adds (a strided slice vs a contiguous one) */
    double cal[CAL_KINDS][2][NCAL];
    double cal_range[CAL_KINDS][2];
    /* crowding (pml_cost_crowding): compute and memory factors, over the measured devices' cores */
    bool have_crowd;
    double crowd[2];
    int ncrowd;
    int *crowd_cores;
    /* when this thread last timed something (pml_now; 0: never), and the buffer it streams
     * through to bring the core up to speed before timing (see ramp_up in cost_measure.c) */
    double busy_until;
    unsigned char *ramp;
    /* scratch, reused across measurements */
    float *scratch;
    size_t scratch_floats;
    int32_t *labels;
    size_t nlabels;
};

enum { LOCK_OK = 0, LOCK_TIMED_OUT = 1, LOCK_UNUSABLE = 2 };

/** Times node id's fast forward and backward kernels on a part of n samples (ce channels, he
 * rows): v[0], v[1] warm and v[2], v[3] cold, as asked; caller holds c->mu. \return false when
 * out of memory (the caller falls back to the roofline). */
bool pml__cost_measure_part(pml_costmodel *c, int id, int n, int ce, int he, bool warm, bool cold,
                            double v[4]);
/** Times calibration kind (CAL_*) at the calibration sizes (see cost_measure.c); warm runs with
 * the core's private caches evicted first (the first \p private_bytes of the eviction buffer
 * touched) when that is not 0. */
bool pml__cost_time_calibration(pml_costmodel *c, int kind, bool need_warm, bool need_cold,
                                size_t private_bytes, double v[NCAL + 1][4]);

/** Measures the last-level cache a step can use on this core (bytes; see cost_measure.c), at
 * most \p hw (hwloc's size), which it also returns when it cannot measure. */
double pml__cost_time_llc(pml_costmodel *c, double hw);

/** Times crowding on cores[0..ncores) (hwloc logical core indices; up to 8 are used): v[0] the
 * arithmetic factor, v[1] the memory factor (see cost_measure.c), v[2..3] NAN. \return false
 * when it could not run (memory, threads): v[0..1] are then 1. */
bool pml__cost_time_crowding(pml_costmodel *c, const int *cores, int ncores, double v[4]);

#endif
