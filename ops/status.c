/* pml — status codes and the per-thread error message. */
#include "ops/ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_str[] = {
#define PML__X(name, str) str,
    PML_STATUS_MAP(PML__X)
#undef PML__X
};
_Static_assert(sizeof status_str / sizeof status_str[0] == PML_STATUS_COUNT, "status map");

static _Thread_local char errbuf[1024];

const char *pml_status_str(pml_status st)
{
    if ((unsigned)st >= PML_STATUS_COUNT) return "unknown status";
    return status_str[st];
}

const char *pml_errmsg(void) { return errbuf; }

pml_status pml_fail(pml_status st, const char *fmt, ...)
{
    char raw[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    pml_escape(errbuf, sizeof errbuf, raw);
    return st;
}

pml_status pml_fail_ctx(pml_status st, const char *fmt, ...)
{
    char raw[512], prefix[512], old[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    pml_escape(prefix, sizeof prefix, raw);
    memcpy(old, errbuf, sizeof old);
    size_t n = strlen(prefix);
    memcpy(errbuf, prefix, n + 1);
    if (n < sizeof errbuf - 1) {
        size_t m = strlen(old);
        if (m > sizeof errbuf - 1 - n) m = sizeof errbuf - 1 - n;
        memcpy(errbuf + n, old, m);
        errbuf[n + m] = 0;
    }
    return st;
}
