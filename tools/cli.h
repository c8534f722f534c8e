/* pml — the command line: shared flag parsing. Every command is a thin layer over the library;
 * only this folder prints and exits. */
#ifndef PML_TOOLS_CLI_H
#define PML_TOOLS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "planner/planner.h"
#include "runtime/runtime.h"

/* A rank's share of its host's cores under mpirun (pml train runs on it, pml topo describes it):
 * the host's ranks split them evenly, a core each when there are more ranks than cores.
 * \return how many; *first: the first. A world of one: all of them from core 0. */
int cli_rank_cores(const pml_dist *d, int *first);
/* This machine (pml_machine_load(NULL)), loaded by the ranks of each host one at a time, the
 * others asleep: loading measures the hand-off between cores, which another rank's threads on
 * those cores would slow to a time slice (4 ms measured for 0.2 us). Collective. */
pml_status cli_machine_load_ranks(pml_dist *d, pml_machine *m);

/* Under mpirun: the machine of the run, a node per rank (each rank's share of its host's cores,
 * the network between ranks measured through MPI); collective. cached: the one measured before
 * for the same hosts (names, machine fingerprints, cores), if any, else measured now and kept in
 * the cache folder's machines/. note: one line saying which. */
pml_status cli_ranks_machine(pml_dist *d, bool cached, pml_machine *m, char *note, size_t cap);

/* Exit statuses of every command. */
enum { EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };
/** The exit status of a command that failed with \p st: EXIT_USAGE for an unknown name (a
 * model, machine or strategy: PML_EUNKNOWN), else 1. */
int cli_exit_code(pml_status st);

/* One option of a command: its table (ended by an entry whose name is NULL) drives both the
 * parsing (getopt_long) and the help's options section. */
typedef struct cli_opt {
    const char *name; /* "epochs": the long name, without -- */
    char short_name;  /* 'o', or 0 */
    const char *arg;  /* "N", "FILE"; "[=DIR]": an optional value; NULL: a flag without one */
    const char *help; /* its description; may have several lines (\n) */
} cli_opt;

/* Walks argv of one command with getopt_long, by its option table (cli_start): an option is
 * "--name VALUE", "--name=VALUE", a unique prefix of the name, "-o VALUE" or "-oVALUE"; an
 * optional value ("[=DIR]") only "--name=VALUE"; "--" ends the options. */
typedef struct cli {
    const char *cmd; /* "train" */
    int argc;
    char **argv;
    const char *flag;  /* the option being parsed, by its long name ("--epochs" for --ep) */
    const char *value; /* its value, or NULL */
    bool failed;
    const cli_opt *opts; /* the option table */
    bool rest;           /* after "--": positionals only */
    char optstring[128]; /* getopt_long's */
    struct option longs[64];
} cli;

/** Starts parsing argv of command \p cmd with getopt_long by the option table \p opts. */
void cli_start(cli *c, const char *cmd, int argc, char **argv, const cli_opt *opts);
/** \return the next argument: an option ("--name", with c->flag set: always the long name) or a
 * positional, or NULL at the end or after an error. */
const char *cli_next(cli *c);
/** \return true when the current flag is \p name (e.g. "--epochs"). */
bool cli_is(cli *c, const char *name);
/** Parsers for the current flag's value; on a bad value they print one message and set failed. */
const char *cli_str(cli *c);
long cli_long(cli *c, long lo, long hi);
uint64_t cli_u64(cli *c);
double cli_double(cli *c, double lo, double hi, bool lo_open, bool hi_open);
/** A positional argument \p arg for the one slot a command has (its MODEL, PLAN...): taken
 * into *slot when it is empty, else one message, "unexpected argument 'ARG' (one WHAT)", and
 * false. */
bool cli_positional(cli *c, const char **slot, const char *arg, const char *what);
/** Prints a command's help on \p f: \p intro (usage and description), "options:" with one
 * entry per option of \p opts ("  -o, --output FILE  description", the descriptions in one
 * column), then \p examples (may be NULL). */
void cli_help(FILE *f, const char *intro, const cli_opt *opts, const char *examples);
/** Reports a usage error (printf-style) and sets failed (cli_json_failure's message). */
void cli_error(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** A flag the flag loop does not know: reports it unless it is a boolean it handled. */
void cli_unknown(cli *c);
/** \return \p s with what a terminal would act on escaped (pml_escape), for printing a name or
 * path that came from input; in one of 8 rotating buffers of this thread (1 KiB each). */
const char *cli_safe(const char *s);
/** \return true when \p path names a DOT file by its extension (.dot or .gv). */
bool cli_dot_name(const char *path);
/** Writes \p s as a JSON string (quoted, escaped). */
void cli_json_str(FILE *f, const char *s);
/** Starts a JSON object of a command's output on \p f: writes {"version":"VERSION" (the
 * members follow, each after a comma) and notes that the command printed its JSON. */
void cli_json_begin(FILE *f);
/** For main, after command \p cmd returned \p rc: when it failed, was asked for --json and
 * printed no JSON object, prints {"version","command","exit","error"} on standard output, the
 * error being the message it gave. */
void cli_json_failure(const char *cmd, int argc, char **argv, int rc);

/** Flushes and closes standard output at the end of command \p cmd (NULL: pml itself).
 * \return \p rc, or 1 with a message when \p rc was 0 and the output could not be written
 * (a full disk, a closed pipe). */
int cli_close_stdout(const char *cmd, int rc);

int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/** pml bench accuracy (tools/bench_accuracy.c): the simulator against measurement. */
int cmd_bench_accuracy(int argc, char **argv);
/** pml bench kernels (tools/bench_kernels.c): each kernel against this core's sgemm. */
int cmd_bench_kernels(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_viz(int argc, char **argv);
int cmd_topo(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
/** pml sweep (tools/cmd_sweep.c): a grid of pml train runs, tables and plots. */
int cmd_sweep(int argc, char **argv);
/** pml summary (tools/cmd_summary.c): a model as Keras' model.summary() shows one. */
int cmd_summary(int argc, char **argv);

#endif
