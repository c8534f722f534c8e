/* pml — pml sweep: a grid of training runs, as the reference study swept cores, units, layers
 * and epochs. Each run is `pml train ... --json` in a child process (the same binary), so a run
 * of the sweep is exactly the command a user would type (the rows say which), its memory and
 * threads are its own, and Ctrl-C can let it finish. The rows go to DIR/results.jsonl, one line
 * appended and fsynced per run (the record a rerun resumes from); results.csv, results.md and
 * the plots are made again from those rows after every run. */
#include "cli.h"
#include "plot.h"

#include "models/models.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char sweep_intro[] =
    "usage: pml sweep MODEL --vary KEY=V1,V2,... [--vary ...] -o DIR [options]\n"
    "\n"
    "Trains MODEL once per point of a grid (and --repeat times each), each run the command\n"
    "`pml train MODEL ... --json` with the same seed and data, and writes in DIR:\n"
    "  results.jsonl   one line per run: the parameters, loss, accuracy, val_loss and\n"
    "                  val_accuracy (last epoch), test_loss and test_accuracy, seconds (training\n"
    "                  time), predicted_seconds (the simulator's, for the plan run), wall_seconds,\n"
    "                  the plan and the command\n"
    "  results.csv     the same rows as a table\n"
    "  results.md      a table per parameter, the others at the baseline, with values relative\n"
    "                  to the baseline (as the reference study's tables), and every point when\n"
    "                  the grid is a full product\n"
    "  plots/KEY.svg, plots/KEY.png\n"
    "                  accuracy, loss and time (measured, with the repeats' spread, and\n"
    "                  predicted) against each numeric parameter\n"
    "  logs/           each run's progress lines and messages\n"
    "\n"
    "A KEY is a pml train option (threads, epochs, batch, lr, optimizer, momentum, seed, plan,\n"
    "train-samples, test-samples, validation-split) or a parameter of a zoo MODEL (mlp: units,\n"
    "layers; see pml --help). Run again with the same command, a sweep goes on where it\n"
    "stopped: the runs already in results.jsonl are not run again (a larger grid reuses them).\n"
    "Ctrl-C stops after the run under way (a second Ctrl-C stops that run too; it is not\n"
    "recorded).\n"
    "\n";

static const char passed_on[] = "passed to every run (see pml train --help)";

/* sweep's options; those described by passed_on are the pml train options a sweep may vary or
 * pass on, whose values are integers (N), numbers (X, F) or anything else */
static const cli_opt sweep_opts[] = {
    {"vary", 0, "KEY=V1,V2,...", "a parameter and its values (up to 8 parameters, 32 values each)"},
    {"one-at-a-time", 0, NULL,
     "the baseline and, for each parameter, its other values with the\n"
     "rest at the baseline (the study's design); default: every\n"
     "combination"},
    {"baseline", 0, "K=V,...", "the baseline point (default: each parameter's first value)"},
    {"repeat", 0, "N",
     "runs per point (default 1): the tables show the mean and the\n"
     "spread, the plots error bars from the fastest to the slowest"},
    {"output", 'o', "DIR", "the folder of the results (made when missing)"},
    {"epochs", 0, "N", passed_on},
    {"batch", 0, "N", passed_on},
    {"seed", 0, "N", passed_on},
    {"threads", 0, "N", passed_on},
    {"lr", 0, "X", passed_on},
    {"optimizer", 0, "adam|sgd", passed_on},
    {"momentum", 0, "X", passed_on},
    {"plan", 0, "P", passed_on},
    {"data", 0, "DIR|synthetic", passed_on},
    {"train-samples", 0, "N", passed_on},
    {"test-samples", 0, "N", passed_on},
    {"validation-split", 0, "F", passed_on},
    {"max-steps", 0, "N", passed_on},
    {"help", 'h', NULL, "this help"},
    {0},
};

static const char sweep_examples[] =
    "example (the reference study's main sweep, one parameter at a time):\n"
    "  pml sweep mlp --vary units=32,128,256,512 --vary layers=1,4,8 --vary threads=1,2\n"
    "      --vary epochs=1,5,10,20 --one-at-a-time --repeat 3 -o study\n";

#define MAX_AXES 8
#define MAX_VALUES 32
#define MAX_FIXED 32

/* \return the index in sweep_opts of pml train's option \p name, or -1 */
static int train_opt(const char *name)
{
    for (int i = 0; sweep_opts[i].name; i++)
        if (sweep_opts[i].help == passed_on && strcmp(sweep_opts[i].name, name) == 0) return i;
    return -1;
}

/* \return what pml train option \p opt takes: an integer (1), a number (2) or anything (0) */
static int train_kind(int opt)
{
    const char *arg = sweep_opts[opt].arg;
    return strcmp(arg, "N") == 0 ? 1 : strcmp(arg, "X") == 0 || strcmp(arg, "F") == 0 ? 2 : 0;
}

typedef struct axis {
    char key[32];
    int nv;
    char *v[MAX_VALUES];
    int base;     /* the baseline's value */
    bool flag;    /* a pml train option (else a model parameter) */
    bool numeric; /* every value a number: plotted */
    double x[MAX_VALUES];
} axis;

typedef struct run {
    int idx[MAX_AXES]; /* the point: a value per axis */
    int repeat;        /* 1-based */
    char *spec;        /* the model with the point's parameters */
    char *command;     /* pml train ... as one line */
    char *key;         /* command and repeat: what results.jsonl knows the run by */
    char *log;         /* its log file */
    bool done, failed;
    double loss, accuracy, val_loss, val_accuracy, test_loss, test_accuracy;
    double seconds, predicted, wall;
    char plan[160];
} run;

typedef struct sweep {
    const char *model, *dir;
    axis ax[MAX_AXES];
    int nax;
    int repeat;
    bool oat;
    int nfixed;                 /* options passed to every run: */
    int fopt[MAX_FIXED];        /* sweep_opts[] index */
    const char *fval[MAX_FIXED];
    int epochs; /* of a run when epochs does not vary */
    run *runs;
    int nruns;
    char self[4096];
} sweep;

/* a run's figures: their names in results.jsonl and results.csv (pml train's JSON has the
 * test figures under the same names) */
static const struct {
    const char *name;
    size_t off;
} figures[] = {{"loss", offsetof(run, loss)},
               {"accuracy", offsetof(run, accuracy)},
               {"val_loss", offsetof(run, val_loss)},
               {"val_accuracy", offsetof(run, val_accuracy)},
               {"test_loss", offsetof(run, test_loss)},
               {"test_accuracy", offsetof(run, test_accuracy)},
               {"seconds", offsetof(run, seconds)},
               {"predicted_seconds", offsetof(run, predicted)},
               {"wall_seconds", offsetof(run, wall)}};
enum { NFIGURES = sizeof figures / sizeof *figures };

static double *figure(run *r, int i) { return (double *)((char *)r + figures[i].off); }
static double figure_of(const run *r, int i) { return *(const double *)((const char *)r + figures[i].off); }

/* every figure not known (NaN); the training seconds are summed over the epochs from 0 */
static void figures_unknown(run *r)
{
    for (int i = 0; i < NFIGURES; i++) *figure(r, i) = NAN;
}

/* ---------------------------------------------------------------- signals */

static volatile sig_atomic_t stops;
static volatile sig_atomic_t child_pid;

static void on_signal(int sig)
{
    (void)sig;
    stops++;
    static const char first[] =
        "\npml sweep: stopping after the run under way (Ctrl-C again stops it too)\n";
    static const char again[] = "\npml sweep: stopping the run under way\n";
    if (stops == 1) {
        ssize_t w = write(2, first, sizeof first - 1);
        (void)w;
    } else {
        ssize_t w = write(2, again, sizeof again - 1);
        (void)w;
        if (child_pid > 0) kill(-child_pid, SIGINT);
    }
}

/* ---------------------------------------------------------------- text helpers */

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static bool is_number(const char *s, double *v)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(d)) return false;
    if (v) *v = d;
    return true;
}

/* a word a shell takes as it is */
static bool plain_word(const char *s)
{
    if (!*s) return false;
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:=/+@%", *p))
            return false;
    return true;
}

static void shell_word(FILE *f, const char *s)
{
    if (plain_word(s)) {
        fputs(s, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = s; *p; p++)
        if (*p == '\'') fputs("'\\''", f);
        else fputc(*p, f);
    fputc('\'', f);
}

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

/* ---------------------------------------------------------------- the grid */

static void point_name(const sweep *s, const run *r, char *buf, size_t cap, const char *sep)
{
    size_t n = 0;
    buf[0] = 0;
    for (int k = 0; k < s->nax && n < cap; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s=%s", k ? sep : "", s->ax[k].key,
                              s->ax[k].v[r->idx[k]]);
}

/* the model spec of a point: the model's own parameters, the point's overriding them */
static char *model_spec(const sweep *s, const int *idx)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    const char *colon = strchr(s->model, ':');
    fprintf(f, "%.*s", colon ? (int)(colon - s->model) : (int)strlen(s->model), s->model);
    int n = 0;
    if (colon) { /* k=v,k=v: those the point does not set */
        const char *p = colon + 1;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            const char *eq = memchr(p, '=', l);
            bool over = false;
            for (int k = 0; k < s->nax && eq; k++)
                over = over || (!s->ax[k].flag && strlen(s->ax[k].key) == (size_t)(eq - p) &&
                                memcmp(s->ax[k].key, p, (size_t)(eq - p)) == 0);
            if (!over && l) fprintf(f, "%c%.*s", n++ ? ',' : ':', (int)l, p);
            p += l + (e ? 1 : 0);
        }
    }
    for (int k = 0; k < s->nax; k++)
        if (!s->ax[k].flag) fprintf(f, "%c%s=%s", n++ ? ',' : ':', s->ax[k].key, s->ax[k].v[idx[k]]);
    return fclose(f) == 0 ? buf : (free(buf), NULL);
}

/* argv of pml train for run r (NULL-terminated; strings owned by s, r and flags) */
#define ARGV_MAX (8 + 2 * MAX_FIXED + 2 * MAX_AXES)
typedef char flag_names[MAX_FIXED + MAX_AXES][40];
static int train_argv(const sweep *s, const run *r, const char **argv, flag_names flags)
{
    int n = 0, f = 0;
    argv[n++] = "pml";
    argv[n++] = "train";
    argv[n++] = r->spec;
    for (int i = 0; i < s->nfixed; i++) {
        snprintf(flags[f], 40, "--%s", sweep_opts[s->fopt[i]].name);
        argv[n++] = flags[f++];
        argv[n++] = s->fval[i];
    }
    for (int k = 0; k < s->nax; k++)
        if (s->ax[k].flag) {
            snprintf(flags[f], 40, "--%s", s->ax[k].key);
            argv[n++] = flags[f++];
            argv[n++] = s->ax[k].v[r->idx[k]];
        }
    argv[n] = NULL;
    return n;
}

static bool in_slice(const sweep *s, const int *idx)
{
    int off = 0;
    for (int k = 0; k < s->nax; k++) off += idx[k] != s->ax[k].base;
    return off <= 1;
}

/* the runs: every combination (first axis slowest) or one at a time; each repeated */
static pml_status make_runs(sweep *s)
{
    long points = 1;
    for (int k = 0; k < s->nax; k++) points *= s->ax[k].nv;
    s->runs = calloc((size_t)(points * s->repeat), sizeof *s->runs);
    if (!s->runs) return pml_fail(PML_ENOMEM, "out of memory");
    int idx[MAX_AXES] = {0};
    for (long p = 0; p < points; p++) {
        long q = p;
        for (int k = s->nax - 1; k >= 0; k--) {
            idx[k] = (int)(q % s->ax[k].nv);
            q /= s->ax[k].nv;
        }
        if (s->oat && !in_slice(s, idx)) continue;
        char *spec = model_spec(s, idx);
        if (!spec) return pml_fail(PML_ENOMEM, "out of memory");
        for (int r = 1; r <= s->repeat; r++) {
            run *u = &s->runs[s->nruns++];
            memcpy(u->idx, idx, sizeof idx);
            u->repeat = r;
            u->spec = r == 1 ? spec : strdup(spec);
            const char *argv[ARGV_MAX];
            flag_names flags;
            train_argv(s, u, argv, flags);
            char *buf = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&buf, &len);
            for (int i = 0; f && argv[i]; i++) {
                if (i) fputc(' ', f);
                shell_word(f, argv[i]);
            }
            if (!f || fclose(f) != 0) buf = NULL;
            char pname[512];
            point_name(s, u, pname, sizeof pname, ",");
            for (char *c = pname; *c; c++)
                if (*c == '/' || *c == ' ') *c = '_';
            u->command = buf;
            u->key = buf ? dup_printf("%s #%d", buf, r) : NULL;
            u->log = dup_printf("%s/logs/%s-r%d.log", s->dir, pname, r);
            figures_unknown(u);
            if (!u->spec || !u->key || !u->log) return pml_fail(PML_ENOMEM, "out of memory");
        }
    }
    return PML_OK;
}

static void free_sweep(sweep *s)
{
    for (int i = 0; i < s->nruns; i++) {
        free(s->runs[i].spec);
        free(s->runs[i].command);
        free(s->runs[i].key);
        free(s->runs[i].log);
    }
    free(s->runs);
    for (int k = 0; k < s->nax; k++)
        for (int v = 0; v < s->ax[k].nv; v++) free(s->ax[k].v[v]);
}

/* ---------------------------------------------------------------- a run's results */


typedef struct result_reader {
    run *r;
    char key[8192];
    double steps; /* summed over the epochs */
    double predicted_step;
    bool has_error;
} result_reader;

static pml_status num_or_skip(pml_json *j, double *v)
{
    pml_json_ws(j);
    if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')))
        return pml_json_number(j, v);
    return pml_json_skip(j);
}

static pml_status epoch_member(pml_json *j, void *ctx, const char *key, size_t kl)
{
    (void)kl;
    result_reader *rr = ctx;
    run *r = rr->r;
    double v = NAN;
    pml_status st = num_or_skip(j, &v);
    if (st != PML_OK || isnan(v)) return st;
    if (strcmp(key, "loss") == 0) r->loss = v;
    else if (strcmp(key, "accuracy") == 0) r->accuracy = v;
    else if (strcmp(key, "val_loss") == 0) r->val_loss = v;
    else if (strcmp(key, "val_accuracy") == 0) r->val_accuracy = v;
    else if (strcmp(key, "seconds") == 0) r->seconds += v;
    else if (strcmp(key, "steps") == 0) rr->steps += v;
    return PML_OK;
}

static pml_status epoch_elem(pml_json *j, void *ctx, int i)
{
    (void)i;
    return pml_json_object(j, epoch_member, ctx);
}

/* the members of pml train's JSON and of a results line */
static pml_status result_member(pml_json *j, void *ctx, const char *key, size_t kl)
{
    (void)kl;
    result_reader *rr = ctx;
    run *r = rr->r;
    if (strcmp(key, "epochs") == 0) return pml_json_array(j, epoch_elem, ctx);
    if (strcmp(key, "plan") == 0) {
        size_t len;
        pml_status st = pml_json_string(j, r->plan, sizeof r->plan, &len);
        return st;
    }
    if (strcmp(key, "key") == 0) return pml_json_name(j, rr->key, sizeof rr->key, "key");
    if (strcmp(key, "error") == 0) {
        rr->has_error = true;
        return pml_json_skip(j);
    }
    if (strcmp(key, "predicted_step_seconds") == 0) return num_or_skip(j, &rr->predicted_step);
    for (int i = 0; i < NFIGURES; i++)
        if (strcmp(key, figures[i].name) == 0) return num_or_skip(j, figure(r, i));
    return pml_json_skip(j);
}

/* ---------------------------------------------------------------- results.jsonl */

static char *row_json(const sweep *s, const run *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputs("{\"version\":\"" PML_VERSION "\",\"key\":", f);
    cli_json_str(f, r->key);
    fputs(",\"model\":", f);
    cli_json_str(f, r->spec);
    fputs(",\"params\":{", f);
    for (int k = 0; k < s->nax; k++) {
        const char *v = s->ax[k].v[r->idx[k]];
        fprintf(f, "%s", k ? "," : "");
        cli_json_str(f, s->ax[k].key);
        fputc(':', f);
        if (s->ax[k].numeric) fprintf(f, "%.10g", s->ax[k].x[r->idx[k]]);
        else cli_json_str(f, v);
    }
    fprintf(f, "},\"repeat\":%d", r->repeat);
    for (int i = 0; i < NFIGURES; i++) /* a figure the run does not have is absent */
        if (isfinite(figure_of(r, i))) fprintf(f, ",\"%s\":%.10g", figures[i].name, figure_of(r, i));
    fputs(",\"plan\":", f);
    cli_json_str(f, r->plan);
    fputs(",\"command\":", f);
    cli_json_str(f, r->command);
    fputs("}\n", f);
    return fclose(f) == 0 ? buf : (free(buf), NULL);
}

/* appends one line with one write and fsyncs it: a run is in the file whole or not at all */
static pml_status append_row(const char *path, const char *line)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return pml_fail(PML_EIO, "%s: %s", path, strerror(errno));
    size_t len = strlen(line);
    ssize_t w = write(fd, line, len);
    int e = errno;
    bool ok = w == (ssize_t)len && fsync(fd) == 0;
    if (!ok && w < 0) errno = e;
    if (w >= 0 && w < (ssize_t)len) /* a short write: take it back */
        ok = false, e = ENOSPC;
    if (!ok && w > 0) {
        struct stat sb;
        if (fstat(fd, &sb) == 0 && ftruncate(fd, sb.st_size - w) != 0) { /* best effort */
        }
    }
    close(fd);
    return ok ? PML_OK : pml_fail(PML_EIO, "%s: cannot append a row: %s", path, strerror(e));
}

/* The rows of earlier runs: those of this grid mark their runs done. A last line cut short (a
 * crash while it was written) is dropped from the file; a malformed line before it is an
 * error naming it. */
static pml_status read_rows(sweep *s, const char *path, int *found)
{
    *found = 0;
    char *text = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0) return PML_OK;
    pml_status st = pml_read_file(path, (size_t)1 << 30, &text, &len);
    if (st != PML_OK) return st;
    size_t line_start = 0;
    int line = 0;
    for (size_t i = 0; i <= len && st == PML_OK; i++) {
        if (i < len && text[i] != '\n') continue;
        line++;
        size_t a = line_start, b = i;
        line_start = i + 1;
        if (b == a) continue;
        if (i == len) { /* no newline after it: cut short */
            if (truncate(path, (off_t)a) != 0) {
                st = pml_fail(PML_EIO, "%s: cannot drop the unfinished last line: %s", path,
                              strerror(errno));
            }
            break;
        }
        char src[4300];
        snprintf(src, sizeof src, "%s, line %d", path, line);
        run tmp;
        memset(&tmp, 0, sizeof tmp);
        figures_unknown(&tmp);
        result_reader *rr = calloc(1, sizeof *rr);
        if (!rr) {
            st = pml_fail(PML_ENOMEM, "out of memory");
            break;
        }
        rr->r = &tmp;
        pml_json j = {text + a, text + a, text + b, src, "results line", 0};
        st = pml_json_object(&j, result_member, rr);
        pml_json_ws(&j);
        if (st == PML_OK && j.p != j.end) st = pml_json_bad(&j, "text after the row");
        if (st == PML_OK && !rr->key[0])
            st = pml_fail(PML_EFORMAT, "%s: a row without a key", src);
        for (int k = 0; st == PML_OK && k < s->nruns; k++) {
            run *r = &s->runs[k];
            if (r->done || strcmp(r->key, rr->key) != 0) continue;
            char *keep[4] = {r->spec, r->command, r->key, r->log};
            int idx[MAX_AXES], rep = r->repeat;
            memcpy(idx, r->idx, sizeof idx);
            *r = tmp;
            r->spec = keep[0], r->command = keep[1], r->key = keep[2], r->log = keep[3];
            memcpy(r->idx, idx, sizeof idx);
            r->repeat = rep;
            r->done = true;
            (*found)++;
            break;
        }
        free(rr);
    }
    free(text);
    return st;
}

/* ---------------------------------------------------------------- running one */

/* the last line of a file (a failed run's message), into buf */
static void last_line(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    char *text = NULL;
    size_t len = 0;
    if (pml_read_file(path, (size_t)64 << 20, &text, &len) != PML_OK) return;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0;
    char *nl = strrchr(text, '\n');
    char *cr = strrchr(nl ? nl : text, '\r'); /* a progress bar's last state */
    const char *l = cr ? cr + 1 : nl ? nl + 1 : text;
    snprintf(buf, cap, "%s", l);
    free(text);
}

/* Runs r: pml train in a child of its own process group (Ctrl-C reaches this process only),
 * its stdout (the JSON) read here, its stderr into its log. \return PML_OK (r filled),
 * PML_EINTR (stopped), or an error with the run's last message. */
static pml_status run_one(sweep *s, run *r)
{
    const char *argv[ARGV_MAX];
    flag_names flags;
    int n = train_argv(s, r, argv, flags);
    argv[n++] = "--json";
    argv[n] = NULL;
    int logfd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (logfd < 0) return pml_fail(PML_EIO, "%s: %s", r->log, strerror(errno));
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        close(logfd);
        return pml_fail(PML_EIO, "pipe: %s", strerror(errno));
    }
    const double t0 = pml_now();
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd), close(pfd[0]), close(pfd[1]);
        return pml_fail(PML_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(pfd[1], 1);
        dup2(logfd, 2);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execv(s->self, (char *const *)argv);
        dprintf(2, "pml sweep: cannot run %s: %s\n", s->self, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    child_pid = pid;
    close(pfd[1]);
    close(logfd);
    char *out = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? 2 * cap : 16384;
            char *o = realloc(out, cap);
            if (!o) break;
            out = o;
        }
        ssize_t k = read(pfd[0], out + len, cap - len - 1);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        len += (size_t)k;
    }
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    child_pid = 0;
    r->wall = pml_now() - t0;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pml_status st = PML_OK;
    if (code == 130 || code == 143 || code == 129 || (WIFSIGNALED(status) && stops > 1)) {
        st = pml_fail(PML_EINTR, "stopped");
    } else if (code != 0 || !out) {
        char msg[600];
        last_line(r->log, msg, sizeof msg);
        st = pml_fail(PML_EINVAL, "%s", msg[0] ? msg : "it failed without a message");
    } else {
        out[len] = 0;
        result_reader rr = {.r = r};
        r->seconds = 0;
        char src[64];
        snprintf(src, sizeof src, "pml train's output");
        pml_json j = {out, out, out + len, src, "JSON", 0};
        st = pml_json_object(&j, result_member, &rr);
        if (st == PML_OK && rr.predicted_step > 0) r->predicted = rr.predicted_step * rr.steps;
        if (st == PML_OK && rr.has_error) st = pml_fail(PML_EINVAL, "pml train reported an error");
    }
    free(out);
    return st;
}

/* ---------------------------------------------------------------- tables and plots */

/* the figure the tables and plots show as loss and accuracy: test, else validation, else
 * training (of the last epoch) */
typedef enum { M_TEST, M_VAL, M_TRAIN } metric;

static metric pick_metric(const sweep *s)
{
    bool test = false, val = false;
    for (int i = 0; i < s->nruns; i++) {
        test = test || (s->runs[i].done && isfinite(s->runs[i].test_accuracy));
        val = val || (s->runs[i].done && isfinite(s->runs[i].val_accuracy));
    }
    return test ? M_TEST : val ? M_VAL : M_TRAIN;
}

static double m_loss(const run *r, metric m)
{
    return m == M_TEST ? r->test_loss : m == M_VAL ? r->val_loss : r->loss;
}
static double m_acc(const run *r, metric m)
{
    return m == M_TEST ? r->test_accuracy : m == M_VAL ? r->val_accuracy : r->accuracy;
}

/* mean, min and max over the repeats of point idx of f(run) */
typedef struct stat3 {
    double mean, lo, hi;
    int n;
} stat3;

static stat3 point_stat(const sweep *s, const int *idx, double (*f)(const run *, metric),
                        metric m)
{
    stat3 t = {NAN, NAN, NAN, 0};
    double sum = 0;
    for (int i = 0; i < s->nruns; i++) {
        const run *r = &s->runs[i];
        if (!r->done || memcmp(r->idx, idx, (size_t)s->nax * sizeof *idx) != 0) continue;
        double v = f(r, m);
        if (!isfinite(v)) continue;
        sum += v;
        t.lo = t.n ? fmin(t.lo, v) : v;
        t.hi = t.n ? fmax(t.hi, v) : v;
        t.n++;
    }
    if (t.n) t.mean = sum / t.n;
    return t;
}

static double f_loss(const run *r, metric m) { return m_loss(r, m); }
static double f_acc(const run *r, metric m) { return m_acc(r, m); }
static double f_tloss(const run *r, metric m) { (void)m; return r->loss; }
static double f_tacc(const run *r, metric m) { (void)m; return r->accuracy; }
static double f_secs(const run *r, metric m) { (void)m; return r->seconds; }
static double f_pred(const run *r, metric m) { (void)m; return r->predicted; }

static void md_num(FILE *f, double v, const char *fmt)
{
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("–", f);
}

static void md_row(FILE *f, const sweep *s, const int *idx, const int *base, metric m)
{
    stat3 l = point_stat(s, idx, f_loss, m), a = point_stat(s, idx, f_acc, m),
          t = point_stat(s, idx, f_secs, m), p = point_stat(s, idx, f_pred, m);
    stat3 bl = point_stat(s, base, f_loss, m), ba = point_stat(s, base, f_acc, m),
          bt = point_stat(s, base, f_secs, m);
    fputs(" | ", f);
    md_num(f, l.mean, "%.4f");
    fputs(" | ", f);
    md_num(f, a.mean, "%.4f");
    fputs(" | ", f);
    md_num(f, t.mean, "%.3g");
    if (t.n > 1) fprintf(f, " (%.3g–%.3g)", t.lo, t.hi);
    fputs(" | ", f);
    md_num(f, p.mean, "%.3g");
    fputs(" | ", f);
    md_num(f, l.mean / bl.mean, "%.3f");
    fputs(" | ", f);
    md_num(f, a.mean / ba.mean, "%.3f");
    fputs(" | ", f);
    md_num(f, t.mean / bt.mean, "%.3f");
    fputs(" |\n", f);
}

static const char *metric_name(metric m)
{
    return m == M_TEST ? "test" : m == M_VAL ? "val" : "train";
}

static char *results_md(const sweep *s, int argc, char **argv)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    const metric m = pick_metric(s);
    int done = 0, base[MAX_AXES];
    for (int i = 0; i < s->nruns; i++) done += s->runs[i].done;
    for (int k = 0; k < s->nax; k++) base[k] = s->ax[k].base;
    fprintf(f, "# pml sweep: %s\n\n", s->model);
    fputs("```\npml sweep", f);
    for (int i = 1; i < argc; i++) {
        fputc(' ', f);
        shell_word(f, argv[i]);
    }
    fprintf(f, "\n```\n\n%d of %d runs done (%d per point). Loss and accuracy are the %s set's "
               "(the last epoch's); seconds: training time (the mean, with the fastest and "
               "slowest of the repeats), predicted: the simulator's for the plan run; x base: "
               "relative to the baseline (",
            done, s->nruns, s->repeat, metric_name(m));
    for (int k = 0; k < s->nax; k++)
        fprintf(f, "%s%s=%s", k ? ", " : "", s->ax[k].key, s->ax[k].v[s->ax[k].base]);
    fputs(").\n", f);
    for (int k = 0; k < s->nax; k++) {
        fprintf(f, "\n## %s\n\n| %s | %s loss | %s accuracy | seconds | predicted s | loss x base "
                   "| accuracy x base | time x base |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
                s->ax[k].key, s->ax[k].key, metric_name(m), metric_name(m));
        int idx[MAX_AXES];
        memcpy(idx, base, sizeof idx);
        for (int v = 0; v < s->ax[k].nv; v++) {
            idx[k] = v;
            fprintf(f, "| %s%s", s->ax[k].v[v], v == s->ax[k].base ? " (baseline)" : "");
            md_row(f, s, idx, base, m);
        }
    }
    if (!s->oat && s->nax > 1) {
        fputs("\n## Every point\n\n|", f);
        for (int k = 0; k < s->nax; k++) fprintf(f, " %s |", s->ax[k].key);
        fprintf(f, " %s loss | %s accuracy | seconds | predicted s | loss x base | accuracy x "
                   "base | time x base |\n|",
                metric_name(m), metric_name(m));
        for (int k = 0; k < s->nax + 7; k++) fputs("---:|", f);
        fputc('\n', f);
        for (int i = 0; i < s->nruns; i++) {
            const run *r = &s->runs[i];
            if (r->repeat != 1) continue;
            for (int k = 0; k < s->nax; k++)
                fprintf(f, "%s %s", k ? " |" : "|", s->ax[k].v[r->idx[k]]);
            md_row(f, s, r->idx, base, m);
        }
    }
    return fclose(f) == 0 ? buf : (free(buf), NULL);
}

static char *results_csv(const sweep *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    for (int k = 0; k < s->nax; k++) {
        csv_field(f, s->ax[k].key);
        fputc(',', f);
    }
    fputs("repeat", f);
    for (int i = 0; i < NFIGURES; i++) fprintf(f, ",%s", figures[i].name);
    fputs(",plan,command\n", f);
    for (int i = 0; i < s->nruns; i++) {
        const run *r = &s->runs[i];
        if (!r->done) continue;
        for (int k = 0; k < s->nax; k++) {
            csv_field(f, s->ax[k].v[r->idx[k]]);
            fputc(',', f);
        }
        fprintf(f, "%d", r->repeat);
        for (int q = 0; q < NFIGURES; q++) {
            fputc(',', f);
            if (isfinite(figure_of(r, q))) fprintf(f, "%.10g", figure_of(r, q));
        }
        fputc(',', f);
        csv_field(f, r->plan);
        fputc(',', f);
        csv_field(f, r->command);
        fputc('\n', f);
    }
    return fclose(f) == 0 ? buf : (free(buf), NULL);
}

/* accuracy, loss and seconds against axis k (the others at the baseline), as .svg and .png */
static pml_status plot_axis(const sweep *s, int k, metric m)
{
    const axis *a = &s->ax[k];
    double x[MAX_VALUES], y[6][MAX_VALUES], lo[6][MAX_VALUES], hi[6][MAX_VALUES];
    double (*fs[6])(const run *, metric) = {f_acc, f_tacc, f_loss, f_tloss, f_secs, f_pred};
    int idx[MAX_AXES];
    for (int q = 0; q < s->nax; q++) idx[q] = s->ax[q].base;
    for (int v = 0; v < a->nv; v++) {
        idx[k] = v;
        x[v] = a->x[v];
        for (int q = 0; q < 6; q++) {
            stat3 t = point_stat(s, idx, fs[q], m);
            y[q][v] = t.mean;
            lo[q][v] = isfinite(t.lo) ? t.lo : t.mean;
            hi[q][v] = isfinite(t.hi) ? t.hi : t.mean;
        }
    }
    char l0[32], l2[32];
    snprintf(l0, sizeof l0, "%s accuracy", metric_name(m));
    snprintf(l2, sizeof l2, "%s loss", metric_name(m));
    const bool two = m != M_TRAIN;
    plot_series sa[2] = {{l0, a->nv, x, y[0], lo[0], hi[0], false},
                         {"train accuracy", a->nv, x, y[1], lo[1], hi[1], true}};
    plot_series sl[2] = {{l2, a->nv, x, y[2], lo[2], hi[2], false},
                         {"train loss", a->nv, x, y[3], lo[3], hi[3], true}};
    plot_series st[2] = {{"measured", a->nv, x, y[4], lo[4], hi[4], false},
                         {"predicted", a->nv, x, y[5], NULL, NULL, true}};
    double mn = INFINITY, mx = -INFINITY;
    for (int v = 0; v < a->nv; v++) mn = fmin(mn, x[v]), mx = fmax(mx, x[v]);
    const bool xlog = mn > 0 && mx / mn >= 8;
    plot_panel p[3] = {
        {"accuracy", a->key, "accuracy", xlog, true, two ? 2 : 1, sa},
        {"loss", a->key, "loss", xlog, true, two ? 2 : 1, sl},
        {"training time", a->key, "seconds", xlog, true, 2, st},
    };
    char title[512], others[400] = "";
    size_t n = 0;
    for (int q = 0; q < s->nax && n < sizeof others; q++)
        if (q != k)
            n += (size_t)snprintf(others + n, sizeof others - n, "%s%s=%s", n ? ", " : "",
                                  s->ax[q].key, s->ax[q].v[s->ax[q].base]);
    snprintf(title, sizeof title, "%s: %s%s%s%s", s->model, a->key, n ? " (" : "", others,
             n ? ")" : "");
    pml_status st_ = PML_OK;
    static const char *const ext[] = {"svg", "png"};
    for (int e = 0; e < 2 && st_ == PML_OK; e++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/plots/%s.%s", s->dir, a->key, ext[e]);
        st_ = plot_write(path, title, p, 3);
    }
    return st_;
}

/* results.csv, results.md and the plots, from the runs done */
static pml_status write_outputs(const sweep *s, int argc, char **argv, int *nplots)
{
    char path[4200];
    pml_status st = PML_OK;
    char *csv = results_csv(s), *md = results_md(s, argc, argv);
    if (!csv || !md) st = pml_fail(PML_ENOMEM, "out of memory");
    if (st == PML_OK) {
        snprintf(path, sizeof path, "%s/results.csv", s->dir);
        st = pml_write_file_atomic(path, csv, strlen(csv));
    }
    if (st == PML_OK) {
        snprintf(path, sizeof path, "%s/results.md", s->dir);
        st = pml_write_file_atomic(path, md, strlen(md));
    }
    free(csv);
    free(md);
    *nplots = 0;
    const metric m = pick_metric(s);
    for (int k = 0; k < s->nax && st == PML_OK; k++)
        if (s->ax[k].numeric && s->ax[k].nv > 1) {
            st = plot_axis(s, k, m);
            *nplots += st == PML_OK;
        }
    return st;
}

/* ---------------------------------------------------------------- the command */

static bool make_dir(const char *path)
{
    return mkdir(path, 0777) == 0 || errno == EEXIST;
}

static void fmt_secs(char *buf, size_t cap, double s)
{
    if (!isfinite(s) || s < 0) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* epochs of run r (for the ETA) */
static int run_epochs(const sweep *s, const run *r)
{
    for (int k = 0; k < s->nax; k++)
        if (s->ax[k].flag && strcmp(s->ax[k].key, "epochs") == 0) return atoi(s->ax[k].v[r->idx[k]]);
    return s->epochs;
}

static bool parse_vary(cli *c, sweep *s, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        cli_error(c, "--vary '%s': expected KEY=V1,V2,...", arg);
        return false;
    }
    if (s->nax == MAX_AXES) {
        cli_error(c, "more than %d --vary", MAX_AXES);
        return false;
    }
    axis *a = &s->ax[s->nax];
    memset(a, 0, sizeof *a);
    if ((size_t)(eq - arg) >= sizeof a->key) {
        cli_error(c, "--vary: the key '%.*s' is too long", (int)(eq - arg), arg);
        return false;
    }
    memcpy(a->key, arg, (size_t)(eq - arg));
    for (int k = 0; k < s->nax; k++)
        if (strcmp(s->ax[k].key, a->key) == 0) {
            cli_error(c, "--vary %s given twice", a->key);
            return false;
        }
    for (const char *p = a->key; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_')) {
            cli_error(c, "--vary: '%s' is not a parameter name", a->key);
            return false;
        }
    int opt = train_opt(a->key);
    a->flag = opt >= 0;
    if (opt >= 0 && strcmp(a->key, "data") == 0) {
        cli_error(c, "--vary data: one sweep trains on one dataset");
        return false;
    }
    s->nax++; /* owns its values from here (free_sweep) */
    const char *p = eq + 1;
    a->numeric = true;
    while (*p || p == eq + 1) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (!l) {
            cli_error(c, "--vary %s: an empty value", a->key);
            return false;
        }
        if (a->nv == MAX_VALUES) {
            cli_error(c, "--vary %s: more than %d values", a->key, MAX_VALUES);
            return false;
        }
        char *v = strndup(p, l);
        if (!v) {
            cli_error(c, "out of memory");
            return false;
        }
        a->v[a->nv] = v;
        for (int q = 0; q < a->nv; q++)
            if (strcmp(a->v[q], v) == 0) {
                a->nv++;
                cli_error(c, "--vary %s: %s given twice", a->key, v);
                return false;
            }
        a->nv++;
        double d;
        if (is_number(v, &d)) a->x[a->nv - 1] = d;
        else a->numeric = false;
        if (opt >= 0 && train_kind(opt) && !is_number(v, &d)) {
            cli_error(c, "--vary %s: '%s' is not a number", a->key, v);
            return false;
        }
        if (opt >= 0 && train_kind(opt) == 1 && (d != floor(d) || d < 1 || d > 1e9)) {
            cli_error(c, "--vary %s: '%s' is not a positive integer", a->key, v);
            return false;
        }
        if (strchr(v, ':') || (!a->flag && strchr(v, '='))) {
            cli_error(c, "--vary %s: '%s' cannot be a value", a->key, v);
            return false;
        }
        if (!e) break;
        p = e + 1;
    }
    return true;
}

static bool parse_baseline(cli *c, sweep *s, const char *spec)
{
    char *copy = strdup(spec);
    if (!copy) return false;
    bool ok = true;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && ok; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq) {
            cli_error(c, "--baseline '%s': expected KEY=VALUE,...", spec);
            ok = false;
            break;
        }
        *eq = 0;
        int k = 0;
        while (k < s->nax && strcmp(s->ax[k].key, t) != 0) k++;
        if (k == s->nax) {
            cli_error(c, "--baseline: %s is not a parameter the sweep varies", t);
            ok = false;
            break;
        }
        int v = 0;
        while (v < s->ax[k].nv && strcmp(s->ax[k].v[v], eq + 1) != 0) v++;
        if (v == s->ax[k].nv) {
            cli_error(c, "--baseline: %s=%s is not among --vary %s's values", t, eq + 1, t);
            ok = false;
            break;
        }
        s->ax[k].base = v;
    }
    free(copy);
    return ok;
}

int cmd_sweep(int argc, char **argv)
{
    cli c;
    cli_start(&c, "sweep", argc, argv, sweep_opts);
    sweep s;
    memset(&s, 0, sizeof s);
    s.repeat = 1;
    s.epochs = 5;
    const char *baseline = NULL;
    const char *a;
    while ((a = cli_next(&c))) {
        if (!c.flag) {
            if (!cli_positional(&c, &s.model, a, "MODEL")) break;
        } else if (cli_is(&c, "--help")) {
            cli_help(stdout, sweep_intro, sweep_opts, sweep_examples);
            free_sweep(&s);
            return 0;
        } else if (cli_is(&c, "--vary")) {
            const char *v = cli_str(&c);
            if (v) parse_vary(&c, &s, v);
        } else if (cli_is(&c, "--baseline")) {
            baseline = cli_str(&c);
        } else if (cli_is(&c, "--repeat")) {
            s.repeat = (int)cli_long(&c, 1, 100);
        } else if (cli_is(&c, "--one-at-a-time")) {
            s.oat = true;
        } else if (cli_is(&c, "--output")) {
            s.dir = cli_str(&c);
        } else if (train_opt(c.flag + 2) >= 0) {
            const int opt = train_opt(c.flag + 2);
            const char *v = cli_str(&c);
            if (!v) break;
            for (int i = 0; i < s.nfixed; i++)
                if (s.fopt[i] == opt) cli_error(&c, "--%s given twice", sweep_opts[opt].name);
            if (s.nfixed == MAX_FIXED) cli_error(&c, "too many options");
            if (c.failed) break;
            s.fopt[s.nfixed] = opt;
            s.fval[s.nfixed++] = v;
            if (strcmp(sweep_opts[opt].name, "epochs") == 0) s.epochs = atoi(v);
        } else {
            cli_unknown(&c);
        }
    }
    int rc = EXIT_USAGE;
    if (!c.failed && !s.model) cli_error(&c, "missing MODEL (see pml sweep --help)");
    if (!c.failed && !s.nax) cli_error(&c, "missing --vary KEY=V1,V2,... (see pml sweep --help)");
    if (!c.failed && !s.dir) cli_error(&c, "missing -o DIR (the folder of the results)");
    for (int k = 0; !c.failed && k < s.nax; k++) {
        if (!s.ax[k].flag && (cli_dot_name(s.model) || pml_model_is_onnx(s.model) ||
                              pml_model_is_saved(s.model)))
            cli_error(&c, "--vary %s: a model file has no parameters; vary a zoo model's (see "
                          "pml --help) or pml train's options", s.ax[k].key);
        for (int i = 0; !c.failed && i < s.nfixed; i++)
            if (strcmp(sweep_opts[s.fopt[i]].name, s.ax[k].key) == 0)
                cli_error(&c, "--%s is given and varied", s.ax[k].key);
    }
    if (!c.failed && baseline) parse_baseline(&c, &s, baseline);
    if (c.failed) goto out;
    /* the fixed options' values: pml train checks them, but before any run */
    for (int i = 0; i < s.nfixed; i++) {
        double d;
        if (train_kind(s.fopt[i]) && !is_number(s.fval[i], &d)) {
            cli_error(&c, "--%s: '%s' is not a number", sweep_opts[s.fopt[i]].name, s.fval[i]);
            goto out;
        }
    }
    /* the binary to run: this one */
    ssize_t n = readlink("/proc/self/exe", s.self, sizeof s.self - 1);
    if (n <= 0) {
        fprintf(stderr, "pml sweep: cannot find pml's own binary (/proc/self/exe): %s\n",
                strerror(errno));
        rc = 1;
        goto out;
    }
    s.self[n] = 0;
    pml_status st = make_runs(&s);
    /* every point's model, before anything runs */
    for (int i = 0; st == PML_OK && i < s.nruns; i++) {
        if (s.runs[i].repeat != 1 || (i && strcmp(s.runs[i].spec, s.runs[i - 1].spec) == 0))
            continue;
        pml_graph g;
        pml_graph_init(&g, NULL);
        st = pml_model_load(s.runs[i].spec, &g);
        pml_graph_free(&g);
        if (st != PML_OK) {
            char pname[512];
            point_name(&s, &s.runs[i], pname, sizeof pname, ", ");
            fprintf(stderr, "pml sweep: the point %s: %s\n", cli_safe(pname), cli_safe(pml_errmsg()));
            goto out;
        }
    }
    rc = 1;
    if (st != PML_OK) {
        fprintf(stderr, "pml sweep: %s\n", cli_safe(pml_errmsg()));
        goto out;
    }
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/logs", s.dir);
    bool dirs = make_dir(s.dir) && make_dir(sub);
    snprintf(sub, sizeof sub, "%s/plots", s.dir);
    dirs = dirs && make_dir(sub);
    if (!dirs) {
        fprintf(stderr, "pml sweep: cannot make %s: %s\n", cli_safe(sub), strerror(errno));
        goto out;
    }
    char rows[4200];
    snprintf(rows, sizeof rows, "%s/results.jsonl", s.dir);
    int found = 0;
    if ((st = read_rows(&s, rows, &found)) != PML_OK) {
        fprintf(stderr, "pml sweep: %s\n", cli_safe(pml_errmsg()));
        goto out;
    }
    printf("Sweep of %s: %d runs (%d point%s x %d)%s", s.model, s.nruns, s.nruns / s.repeat,
           s.nruns / s.repeat == 1 ? "" : "s", s.repeat, s.oat ? ", one parameter at a time" : "");
    if (found) printf("; %d already in %s, %d to go", found, rows, s.nruns - found);
    printf("\n");
    fflush(stdout);

    struct sigaction sa, old[3];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int q = 0; q < 3; q++) sigaction(sigs[q], &sa, &old[q]);

    int failed = 0, ran = 0, nplots = 0;
    double per_epoch = 0, spent_epochs = 0;
    for (int i = 0; i < s.nruns && !stops; i++) {
        run *r = &s.runs[i];
        if (r->done) continue;
        char pname[512];
        point_name(&s, r, pname, sizeof pname, " ");
        int done = 0;
        for (int q = 0; q < s.nruns; q++) done += s.runs[q].done || s.runs[q].failed;
        printf("[%d/%d] %s", done + 1, s.nruns, pname);
        if (s.repeat > 1) printf(" (repeat %d of %d)", r->repeat, s.repeat);
        fflush(stdout);
        st = run_one(&s, r);
        if (st == PML_EINTR) {
            printf(": stopped, not recorded\n");
            break;
        }
        if (st != PML_OK) {
            printf(": failed\n");
            fprintf(stderr, "pml sweep: %s failed: %s (log: %s)\n", cli_safe(pname),
                    cli_safe(pml_errmsg()), cli_safe(r->log));
            r->failed = true;
            failed++;
            continue;
        }
        char *line = row_json(&s, r);
        st = line ? append_row(rows, line) : pml_fail(PML_ENOMEM, "out of memory");
        free(line);
        if (st != PML_OK) {
            printf("\n");
            fprintf(stderr, "pml sweep: %s\n", cli_safe(pml_errmsg()));
            failed++;
            break;
        }
        r->done = true;
        ran++;
        const metric m = pick_metric(&s);
        spent_epochs += run_epochs(&s, r);
        per_epoch += r->wall;
        double eta = 0;
        for (int q = i + 1; q < s.nruns; q++)
            if (!s.runs[q].done) eta += per_epoch / spent_epochs * run_epochs(&s, &s.runs[q]);
        char etas[32];
        fmt_secs(etas, sizeof etas, eta);
        printf(": %s loss %.4f, accuracy %.4f, %.3g s", metric_name(m), m_loss(r, m), m_acc(r, m),
               r->seconds);
        if (isfinite(r->predicted)) printf(" (predicted %.3g s)", r->predicted);
        printf("; ETA %s\n", etas);
        fflush(stdout);
        if ((st = write_outputs(&s, argc, argv, &nplots)) != PML_OK) {
            fprintf(stderr, "pml sweep: %s\n", cli_safe(pml_errmsg()));
            failed++;
            break;
        }
    }
    for (int q = 0; q < 3; q++) sigaction(sigs[q], &old[q], NULL);
    if (!ran && st == PML_OK && (st = write_outputs(&s, argc, argv, &nplots)) != PML_OK) {
        fprintf(stderr, "pml sweep: %s\n", cli_safe(pml_errmsg()));
        failed++;
    }
    int done = 0;
    for (int q = 0; q < s.nruns; q++) done += s.runs[q].done;
    printf("%d of %d runs done: %s/results.csv, results.jsonl, results.md, plots/ (%d "
           "parameter%s plotted)\n",
           done, s.nruns, s.dir, nplots, nplots == 1 ? "" : "s");
    if (stops) {
        fprintf(stderr, "pml sweep: stopped; run the same command again to go on\n");
        rc = EXIT_INTERRUPTED;
    } else {
        rc = failed ? 1 : 0;
    }
out:
    free_sweep(&s);
    return rc;
}
