/* pml — the command line: shared flag parsing. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static char usage_error[1024]; /* the last cli_error's message */
static bool json_printed;      /* the command printed a JSON object */
static bool json_asked;        /* the command was given --json (or a prefix of it) */

bool cli_positional(cli *c, const char **slot, const char *arg, const char *what)
{
    if (*slot) {
        cli_error(c, "unexpected argument '%s' (one %s)", arg, what);
        return false;
    }
    *slot = arg;
    return true;
}

void cli_error(cli *c, const char *fmt, ...)
{
    if (c->failed) return; /* one message */
    char raw[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    snprintf(usage_error, sizeof usage_error, "%s", raw);
    fprintf(stderr, "pml %s: %s\n", c->cmd, cli_safe(raw));
    c->failed = true;
}

const char *cli_safe(const char *s)
{
    static _Thread_local char bufs[8][1024];
    static _Thread_local unsigned next;
    char *b = bufs[next++ % 8];
    pml_escape(b, sizeof bufs[0], s ? s : "(null)");
    return b;
}

void cli_start(cli *c, const char *cmd, int argc, char **argv, const cli_opt *opts)
{
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    c->argc = argc;
    c->argv = argv;
    c->opts = opts;
    char *s = c->optstring;
    *s++ = '-'; /* positionals in their order */
    *s++ = ':'; /* a missing value is told from an unknown option */
    int n = 0;
    for (const cli_opt *o = opts; o->name; o++, n++) {
        if (n + 1 >= (int)(sizeof c->longs / sizeof c->longs[0]) ||
            s + 3 > c->optstring + sizeof c->optstring) {
            fprintf(stderr, "pml %s: too many options\n", cmd); /* a table to split */
            abort();
        }
        /* an arg "[=DIR]": an optional value, given as --name=DIR */
        const int has = !o->arg ? no_argument : o->arg[0] == '[' ? optional_argument
                                                                  : required_argument;
        c->longs[n] = (struct option){o->name, has, NULL, 0x100 + n};
        if (o->short_name) {
            *s++ = o->short_name;
            if (o->arg) *s++ = ':';
        }
    }
    *s = 0;
    c->longs[n] = (struct option){0};
    optind = 0; /* a new scan (another command may have parsed before in this process) */
    opterr = 0; /* our own messages */
}

/* the option of getopt_long's val \p v (a short name or 0x100 + its index), or NULL */
static const cli_opt *opt_of(const cli *c, int v)
{
    if (v >= 0x100) return &c->opts[v - 0x100];
    for (const cli_opt *o = c->opts; v && o->name; o++)
        if (o->short_name == v) return o;
    return NULL;
}

/* "--e is ambiguous (--epochs, --eval)", or "unknown option '--e'": \p arg as given */
static void bad_option(cli *c, const char *arg)
{
    char name[64], list[512] = "";
    snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
    size_t len = strlen(name) - 2, at = 0;
    int matches = 0;
    for (const cli_opt *o = c->opts; o->name && len; o++)
        if (strncmp(o->name, name + 2, len) == 0) {
            at += (size_t)snprintf(list + at, at < sizeof list ? sizeof list - at : 0, "%s--%s",
                                   matches++ ? ", " : "", o->name);
            if (at >= sizeof list) at = sizeof list;
        }
    if (matches > 1)
        cli_error(c, "%s is ambiguous (%s)", name, list);
    else
        cli_error(c, "unknown option '%s' (see pml %s --help)", name, c->cmd);
}

/* cli_next by the option table, through getopt_long */
static const char *next_opt(cli *c)
{
    if (c->rest) return optind < c->argc ? c->argv[optind++] : NULL;
    static char flag[72]; /* "--name" */
    const int before = optind ? optind : 1;
    const int r = getopt_long(c->argc, c->argv, c->optstring, c->longs, NULL);
    if (r == -1) { /* the end, or "--": the rest are positionals */
        c->rest = true;
        return optind < c->argc ? c->argv[optind++] : NULL;
    }
    if (r == 1) return optarg;
    const cli_opt *o = opt_of(c, r == ':' || r == '?' ? optopt : r);
    const char *given = c->argv[optind > before ? optind - 1 : before];
    if (r == ':') { /* as given: -o or --output */
        if (given[0] == '-' && given[1] == '-')
            cli_error(c, "--%s needs a value", o ? o->name : "?");
        else
            cli_error(c, "-%c needs a value", optopt);
        return NULL;
    }
    if (r == '?') {
        if (o && given[0] == '-' && given[1] == '-')
            cli_error(c, "--%s takes no value", o->name);
        else if (optopt)
            cli_error(c, "unknown option '-%c' (see pml %s --help)", optopt, c->cmd);
        else
            bad_option(c, given);
        return NULL;
    }
    snprintf(flag, sizeof flag, "--%s", o->name);
    json_asked |= strcmp(o->name, "json") == 0;
    c->flag = flag;
    c->value = optarg;
    return flag;
}

const char *cli_next(cli *c)
{
    c->flag = c->value = NULL;
    if (c->failed) return NULL;
    return next_opt(c);
}

bool cli_is(cli *c, const char *name) { return c->flag && strcmp(c->flag, name) == 0; }

const char *cli_str(cli *c)
{
    if (!c->value) cli_error(c, "%s needs a value", c->flag); /* an optional value not given */
    return c->value;
}

long cli_long(cli *c, long lo, long hi)
{
    const char *s = cli_str(c);
    if (!s) return lo;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        if (hi == 0x7fffffffL || hi == 0x7fffffffffffffffL)
            cli_error(c, "%s '%s' must be an integer >= %ld", c->flag, s, lo);
        else
            cli_error(c, "%s '%s' must be an integer in [%ld, %ld]", c->flag, s, lo, hi);
        return lo;
    }
    return v;
}

uint64_t cli_u64(cli *c)
{
    const char *s = cli_str(c);
    if (!s) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        cli_error(c, "%s '%s' must be a non-negative integer", c->flag, s);
        return 0;
    }
    return (uint64_t)v;
}

double cli_double(cli *c, double lo, double hi, bool lo_open, bool hi_open)
{
    const char *s = cli_str(c);
    if (!s) return lo;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    bool ok = !errno && end != s && !*end && isfinite(v) && (lo_open ? v > lo : v >= lo) &&
              (hi_open ? v < hi : v <= hi);
    if (!ok) {
        cli_error(c, "%s '%s' must be a number in %c%g, %g%c", c->flag, s, lo_open ? '(' : '[',
                  lo, hi, hi_open ? ')' : ']');
        return lo;
    }
    return v;
}

void cli_help(FILE *f, const char *intro, const cli_opt *opts, const char *examples)
{
    char left[64 + 72];
    int col = 0;
    for (int pass = 0; pass < 2; pass++) { /* the widest left part, then the entries */
        if (pass) fprintf(f, "%soptions:\n", intro);
        for (const cli_opt *o = opts; o->name; o++) {
            int n = o->short_name
                        ? snprintf(left, sizeof left, "  -%c, --%s", o->short_name, o->name)
                        : snprintf(left, sizeof left, "  --%s", o->name);
            if (o->arg)
                n += snprintf(left + n, sizeof left - (size_t)n, o->arg[0] == '[' ? "%s" : " %s",
                              o->arg);
            if (!pass) {
                if (n + 2 > col) col = n + 2;
                continue;
            }
            const char *h = o->help;
            fprintf(f, "%-*s%s", col, left, *h ? "" : "\n");
            for (size_t len; *h; h += len + (h[len] == '\n')) {
                len = strcspn(h, "\n");
                fprintf(f, "%.*s\n", (int)len, h);
                if (h[len] && h[len + 1]) fprintf(f, "%*s", col, "");
            }
        }
    }
    if (examples) fprintf(f, "\n%s", examples);
}

void cli_unknown(cli *c)
{
    cli_error(c, "unknown option '%s' (see pml %s --help)", c->flag, c->cmd);
}

void cli_json_str(FILE *f, const char *s) { pml_json_str(f, s); }

int cli_exit_code(pml_status st) { return st == PML_EUNKNOWN ? EXIT_USAGE : 1; }

void cli_json_begin(FILE *f)
{
    json_printed = true;
    fputs("{\"version\":\"" PML_VERSION "\"", f);
}

void cli_json_failure(const char *cmd, int argc, char **argv, int rc)
{
    if (rc == 0 || json_printed) return;
    bool json = json_asked; /* parsed; or spelt out after where a usage error stopped parsing */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) json |= strcmp(argv[i], "--json") == 0;
    if (!json) return;
    cli_json_begin(stdout);
    fputs(",\"command\":", stdout);
    cli_json_str(stdout, cmd);
    printf(",\"exit\":%d,\"error\":", rc);
    cli_json_str(stdout, usage_error[0] ? usage_error : *pml_errmsg() ? pml_errmsg() : "failed");
    fputs("}\n", stdout);
}

int cli_close_stdout(const char *cmd, int rc)
{
    /* what a full disk or a closed pipe did to buffered output shows only now */
    errno = 0;
    bool bad = fflush(stdout) != 0 || ferror(stdout);
    int err = errno;
    if (fclose(stdout) != 0 && !bad) {
        bad = true;
        err = errno;
    }
    if (bad && rc == 0) { /* a command that failed already said why */
        fprintf(stderr, "pml%s%s: cannot write to standard output: %s\n", cmd ? " " : "",
                cmd ? cmd : "", strerror(err ? err : EIO));
        rc = 1;
    }
    return rc;
}

int cli_rank_cores(const pml_dist *d, int *first)
{
    const int ncores = pml_machine_cores(), local = pml_dist_local_size(d),
              lr = pml_dist_local_rank(d);
    *first = local > ncores ? lr % ncores : lr * (ncores / local);
    return ncores / local > 0 ? ncores / local : 1;
}

/* Under mpirun (or srun): the machine of the run. Each rank measures its share of its host's
 * cores (the share pml train gives it) and the ranks measure the network between them through
 * MPI; the result is a cluster template of one node per rank (rank 0's numbers; the ranks'
 * medians for the network), loaded like any cluster file: `-o ranks.dot` keeps it for pml
 * compile --machine ranks.dot. */
static pml_status measure_ranks(pml_dist *d, pml_machine *here_, pml_status st, pml_machine *m,
                                char *note, size_t cap);

/* The cache of the machines of runs: rank 0 names the ranks' hosts (name, machine fingerprint,
 * cores) and looks for a machine measured before for them; what it found (or "") goes to every
 * rank. *path: where rank 0 caches (empty: nowhere). Collective. */
static pml_status ranks_cached(pml_dist *d, const pml_machine *here, pml_status here_st,
                               char **text, size_t *len, char *path, size_t cap)
{
    char host[256] = "?", mine[512];
    gethostname(host, sizeof host - 1);
    int first;
    const int per = cli_rank_cores(d, &first);
    snprintf(mine, sizeof mine, "%s %s %d %d\n", host, here_st == PML_OK ? here->fingerprint : "-",
             per, first);
    char *all = NULL;
    size_t alen = 0;
    pml_status st = pml_dist_gather(d, mine, strlen(mine), &all, &alen);
    if (st != PML_OK) return st;
    *text = NULL;
    *len = 0;
    path[0] = 0;
    if (pml_dist_rank(d) == 0) {
        /* (the salt changed when the ranks began to measure their hand-offs in turn: a machine
         * cached before, measured at once, is measured again) */
        uint64_t h = pml_hash_str(PML_HASH_INIT, "pml " PML_VERSION " ranks machine 2");
        h = pml_hash(h, all, alen);
        char *dir = here_st == PML_OK ? pml_cache_dir("machines") : NULL;
        if (dir && (size_t)snprintf(path, cap, "%s/ranks%d-%016llx.dot", dir, pml_dist_size(d),
                                    (unsigned long long)h) >= cap)
            path[0] = 0;
        free(dir);
        if (!path[0] || pml_read_file(path, 1 << 20, text, len) != PML_OK) {
            *text = strdup("");
            *len = 0;
        }
    }
    free(all);
    if (pml_dist_rank(d) == 0 && !*text) return pml_fail(PML_ENOMEM, "out of memory");
    return pml_dist_bcast_text(d, text, len);
}

pml_status cli_machine_load_ranks(pml_dist *d, pml_machine *m)
{
    const int size = pml_dist_size(d);
    if (size <= 1) return pml_machine_load(NULL, m);
    /* the same number of barriers on every rank: one a round, whatever its host */
    pml_status st = PML_OK;
    for (int round = 0; round < size; round++) {
        if (pml_dist_local_rank(d) == round) st = pml_machine_load(NULL, m);
        pml_status bs = pml_dist_barrier(d);
        if (bs != PML_OK) {
            if (st == PML_OK && pml_dist_local_rank(d) <= round) pml_machine_free(m);
            return bs;
        }
    }
    return st;
}

pml_status cli_ranks_machine(pml_dist *d, bool cached, pml_machine *m, char *note, size_t cap)
{
    pml_machine here;
    pml_status st = cli_machine_load_ranks(d, &here);
    if (cached) { /* measured before for these hosts: no measurement */
        char *text = NULL, path[4096];
        size_t len = 0;
        pml_status cs = ranks_cached(d, &here, st, &text, &len, path, sizeof path);
        /* every rank reads the same text: all use it, or all measure (a cache spoilt) */
        if (cs == PML_OK && len > 0 &&
            pml_machine_parse_dot(text, len, path[0] ? path : "the cached machine", m) == PML_OK) {
            free(text);
            snprintf(note, cap, "the machine of this run: %d ranks, measured before (%s)\n",
                     pml_dist_size(d), path[0] ? path : "cached");
            if (st == PML_OK) pml_machine_free(&here);
            return PML_OK;
        }
        free(text);
        if (cs != PML_OK) {
            if (st == PML_OK) pml_machine_free(&here);
            return cs;
        }
        pml_status ms = measure_ranks(d, &here, st, m, note, cap);
        if (ms == PML_OK && path[0]) pml_machine_write_dot(m, path); /* a cache: no error */
        return ms;
    }
    return measure_ranks(d, &here, st, m, note, cap);
}

static pml_status measure_ranks(pml_dist *d, pml_machine *here_, pml_status st, pml_machine *m,
                                char *note, size_t cap)
{
    pml_machine here = *here_;
    double bw = 0, lat = 0;
    /* every rank takes part in the measurement, even one that could not load its machine */
    pml_status ns = pml_dist_measure_network(d, &bw, &lat);
    if (st != PML_OK) return st;
    if (ns != PML_OK) {
        pml_machine_free(&here);
        return ns;
    }
    const int local = pml_dist_local_size(d), ranks = pml_dist_size(d);
    int first;
    const int per = cli_rank_cores(d, &first);
    const pml_device *c = &here.dev[here.compute[0]];
    const double core_bw = here.nlink ? here.link[0].bw : c->mem_bw / 2;
    double host_mem = 0; /* the host's memory, shared by its ranks */
    for (int i = 0; i < here.ndev; i++)
        if (here.dev[i].kind == PML_DEV_CPU) host_mem += here.dev[i].mem_bytes;
    if (!(host_mem > 0)) host_mem = 1e9 * local;
    char text[1100], ours[40] = "";
    /* every rank on this host: their cores are this machine's, whose kernels can be measured */
    if (local == ranks) snprintf(ours, sizeof ours, "cores_of=\"%s\", ", here.fingerprint);
    /* the path from a core to the network: its package hub, then the node's NIC, which on one
     * host is memory too (pcie at the cores' bandwidth); the network is what MPI measured */
    snprintf(text, sizeof text,
             "digraph ranks { graph [kind=machine, %snodes=%d, "
             "topology=\"synthetic:pack:1 numa:1(memory=%.0fMB) core:%d pu:1\", "
             "cpu_flops=\"%.6g\", "
             "cpu_mem_bw=\"%.6g\", core_bw=\"%.6g\", core_latency=\"%.6gus\", "
             "pcie_bw=\"%.6g\", pcie_latency=\"0us\", network_bw=\"%.6g\", "
             "network_latency=\"%.6gus\"]; }",
             ours, ranks, host_mem / 1e6 / local, per, c->flops, c->mem_bw * per, core_bw, here.handoff > 0 ? here.handoff * 1e6 / 2 : 0.1,
             core_bw, bw, lat * 1e6);
    char b1[32], b2[32];
    snprintf(note, cap,
             "the machine of this run: %d ranks of %d core%s each (%s); between ranks (measured "
             "through MPI now): %s, %s one way\n",
             ranks, per, per == 1 ? "" : "s", here.cpu_model, pml_fmt_si(b1, sizeof b1, bw, "B/s"),
             pml_fmt_seconds(b2, sizeof b2, lat, 3));
    pml_machine_free(&here);
    return pml_machine_parse_dot(text, strlen(text), "ranks", m);
}

bool cli_dot_name(const char *path)
{
    return pml_ends_with(path, ".dot") || pml_ends_with(path, ".gv");
}
