/* pml — internal to planner/: what the machine files share. machine.c builds machines (devices,
 * links, CPU topologies from hwloc), checks them, routes and fingerprints them, and loads a
 * machine by name or file; machine_this.c measures this machine; machine_file.c reads and writes
 * cluster files and holds the named machines. */
#ifndef PML_PLANNER_MACHINE_INT_H
#define PML_PLANNER_MACHINE_INT_H

#include "planner/planner.h"

#include <hwloc.h>

/* ---------------------------------------------------------------- limits and defaults */

#define MAX_DEV 4096
#define MAX_COMPUTE 1024
#define MAX_LINK 65536
#define MAX_PUS 8192        /* largest hwloc topology pml builds (processing units) */
#define MAX_NODES 1024      /* template */
#define MAX_XML (64u << 20) /* largest hwloc XML file */

/* CPU topologies from a description (not measured) */
#define DEF_CPU_FLOPS 80e9   /* per core */
#define DEF_PKG_MEM_BW 100e9 /* per package, shared by its cores */
#define DEF_CORE_BW 10e9     /* core <-> package hub */
#define DEF_CORE_LAT 0.1e-6
#define DEF_UPI_BW 40e9 /* package <-> package */
#define DEF_UPI_LAT 0.1e-6
/* templates */
#define DEF_PCIE_BW 12e9
#define DEF_PCIE_LAT 2.5e-6
#define DEF_NVLINK_LAT 2e-6
#define DEF_NET_LAT 5e-6

extern const char *const pml__dev_kind_names[PML_DEV_KIND_COUNT];

/* ---------------------------------------------------------------- building (machine.c) */

typedef struct pml__builder {
    pml_machine *m;
    int devcap, linkcap;
    const char *src; /* names the source in messages */
} pml__builder;

/** Adds a device named by fmt; \return its id, or -1 (message set). */
int pml__add_dev(pml__builder *b, pml_dev_kind kind, int node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Adds a full-duplex link between devices a and c. */
pml_status pml__add_link(pml__builder *b, int a, int c, double bw, double lat);

/* ---------------------------------------------------------------- CPU topologies (machine.c) */

typedef struct pml__cpu_topo {
    int npkg, ncore;
    int *core_pkg;   /* package of each core, 0..npkg-1 */
    int *core_index; /* hwloc logical index of each core (or PU) */
    double mem;      /* the machine's memory, bytes (0: unknown) */
    char model[96];  /* CPU model ("" when hwloc does not say) */
} pml__cpu_topo;

void pml__cpu_topo_free(pml__cpu_topo *t);
/** Binds the calling thread to core \p core of \p topo (hwloc logical index; a PU's when the
 * topology has no cores); nothing when there is no such core. For measurements on chosen cores
 * (machine_this.c, cost_measure.c). */
void pml__pin_core(hwloc_topology_t topo, int core);
/** Summarises a loaded hwloc topology; \p src names it in messages. */
pml_status pml__cpu_topo_from_hwloc(hwloc_topology_t topo, const char *src, pml__cpu_topo *t);
/** A hwloc synthetic topology ("pack:2 core:8 pu:1"); \p what names it in messages. */
pml_status pml__cpu_topo_synthetic(const char *desc, const char *what, pml__cpu_topo *t);
/** A hwloc XML export. */
pml_status pml__cpu_topo_xml(const char *path, pml__cpu_topo *t);

typedef struct pml__cpu_params {
    double flops;       /* per core */
    double pkg_mem_bw;  /* per package, shared by its cores */
    double core_mem_bw; /* > 0: per core (measured), instead of the package's share */
    double core_bw, core_lat;
    double upi_bw, upi_lat;
    bool present;
} pml__cpu_params;

/** Numbers of a CPU topology that is not measured (see machine.c's opening comment). */
extern const pml__cpu_params pml__cpu_defaults;

/** Adds the devices and links of a CPU topology; pkg_hub[] (npkg entries, caller's) receives the
 * package hubs' ids. \p prefix starts every name ("" or "node3/"). */
pml_status pml__add_cpu_part(pml__builder *b, const pml__cpu_topo *t, const pml__cpu_params *cp,
                             int node, const char *prefix, int *pkg_hub);
/** A machine of one CPU topology. */
pml_status pml__machine_from_cpu_topo(pml_machine *m, const char *name, const pml__cpu_topo *t,
                                      const pml__cpu_params *cp, const char *src);

/* ---------------------------------------------------------------- finishing (machine.c) */

/** Sets m->fingerprint (see machine.c). */
void pml__machine_fingerprint(pml_machine *m);
/** pml_machine_finalize, naming \p src in messages. */
pml_status pml__machine_finalize_src(pml_machine *m, const char *src);

/* ---------------------------------------------------------------- named machines (machine_file.c) */

/** \return the index of named machine \p name, or -1. */
int pml__named_machine(const char *name);
/** Loads named machine \p k (an index from pml__named_machine). */
pml_status pml__load_named(int k, pml_machine *m);

#endif
