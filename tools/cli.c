/* pml — the command line: shared flag parsing. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_init(cli *c, const char *cmd, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    c->argc = argc;
    c->argv = argv;
    c->i = 1;
}

void cli_error(cli *c, const char *fmt, ...)
{
    if (c->failed) return; /* one message */
    char raw[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
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

const char *cli_next(cli *c)
{
    c->flag = c->value = NULL;
    if (c->failed || c->i >= c->argc) return NULL;
    const char *a = c->argv[c->i++];
    if (strncmp(a, "--", 2) == 0 && a[2]) {
        static char name[64];
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, a, len);
        name[len] = 0;
        c->flag = name;
        c->value = eq ? eq + 1 : NULL;
        return c->flag;
    }
    if (a[0] == '-' && a[1] && strcmp(a, "-o") != 0 && strcmp(a, "-h") != 0 &&
        !(a[1] >= '0' && a[1] <= '9')) {
        c->flag = a;
        return a;
    }
    if (strcmp(a, "-o") == 0 || strcmp(a, "-h") == 0) {
        c->flag = a;
        return a;
    }
    return a;
}

bool cli_is(cli *c, const char *name) { return c->flag && strcmp(c->flag, name) == 0; }

const char *cli_str(cli *c)
{
    if (c->value) return c->value;
    if (c->i >= c->argc) {
        cli_error(c, "%s needs a value", c->flag);
        return NULL;
    }
    return c->argv[c->i++];
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

void cli_unknown(cli *c)
{
    cli_error(c, "unknown option '%s' (see pml %s --help)", c->flag, c->cmd);
}

void cli_json_str(FILE *f, const char *s) { pml_json_str(f, s); }

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
