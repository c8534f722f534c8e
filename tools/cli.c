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
    va_list ap;
    fprintf(stderr, "pml %s: ", c->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    c->failed = true;
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

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}
