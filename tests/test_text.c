/* Text for terminals and JSON (ops/text.c): escaping what echoes input, and JSON strings. */
#include "ops/ops.h"
#include "test.h"

#include <stdio.h>
#include <string.h>

static const char *esc(const char *s)
{
    static char buf[256];
    pml_escape(buf, sizeof buf, s);
    return buf;
}

#define CHECK_ESC(in, want) CHECK_MSG(strcmp(esc(in), want) == 0, "'%s', want '%s'", esc(in), want)

static void t_escape(void)
{
    CHECK_ESC("plain text, (x) = 1", "plain text, (x) = 1");
    CHECK_ESC("a\033[31mb", "a\\x1b[31mb");      /* ESC: a terminal command */
    CHECK_ESC("l1\nl2\tt\r", "l1\\nl2\\tt\\r");  /* one line */
    CHECK_ESC("del\x7f", "del\\x7f");
    CHECK_ESC("\xc2\x9b" "31m", "\\u009b31m");   /* C1 CSI: ESC [ in one character */
    CHECK_ESC("x\xe2\x80\xae" "gpj.exe", "x\\u202egpj.exe"); /* right-to-left override */
    CHECK_ESC("\xe2\x81\xa6" "i", "\\u2066i");   /* left-to-right isolate */
    CHECK_ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82");
    CHECK_ESC("bad\xff\xc3", "bad\\xff\\xc3");   /* not UTF-8: the bytes */
    CHECK_ESC("\xc0\xaf", "\\xc0\\xaf");         /* overlong '/' */
    CHECK_ESC("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* a surrogate */
    CHECK_ESC("back\\slash", "back\\slash");     /* kept: escaping twice changes nothing */
    char once[256], twice[256];
    pml_escape(once, sizeof once, "a\033b\xe2\x80\xae\xff");
    pml_escape(twice, sizeof twice, once);
    CHECK(strcmp(once, twice) == 0);
    /* cut at a whole escape or character, always terminated */
    char small[8];
    CHECK(pml_escape(small, sizeof small, "abcd\033") == 4 && strcmp(small, "abcd") == 0);
    CHECK(pml_escape(small, sizeof small, "abcde\xc3\xa9x") == 7 && strcmp(small, "abcde\xc3\xa9") == 0);
    CHECK(pml_escape(small, sizeof small, "abcdef\xc3\xa9") == 6 && strcmp(small, "abcdef") == 0);
    CHECK(pml_escape(small, 1, "abc") == 0 && small[0] == 0);
}

static void t_messages_escaped(void)
{
    /* what a message echoes from a file or argv reaches a terminal as text */
    pml_fail(PML_EFORMAT, "model '%s': unknown op '%s'", "m\033[2J", "op\xc2\x9b");
    CHECK_MSG(strcmp(pml_errmsg(), "model 'm\\x1b[2J': unknown op 'op\\u009b'") == 0, "%s",
              pml_errmsg());
    pml_fail_ctx(PML_EFORMAT, "%s: ", "f\xe2\x80\xae.dot");
    CHECK_MSG(strncmp(pml_errmsg(), "f\\u202e.dot: model 'm\\x1b[2J'", 28) == 0, "%s",
              pml_errmsg());
    /* saving and restoring a message keeps it as it was */
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", pml_errmsg());
    pml_fail(PML_OK, "%s", saved);
    CHECK(strcmp(pml_errmsg(), saved) == 0);
}

static const char *json(const char *s)
{
    static char buf[256];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    pml_json_str(f, s);
    fclose(f);
    return buf;
}

#define CHECK_JSON(in, want) CHECK_MSG(strcmp(json(in), want) == 0, "%s, want %s", json(in), want)

static void t_json(void)
{
    CHECK_JSON("a", "\"a\"");
    CHECK_JSON("q\"b\\s/", "\"q\\\"b\\\\s/\"");
    CHECK_JSON("\033\n\x01", "\"\\u001b\\u000a\\u0001\"");
    CHECK_JSON("\xc2\x9b\xe2\x80\xae", "\"\\u009b\\u202e\"");
    CHECK_JSON("\xff" "a\xc3", "\"\\ufffda\\ufffd\""); /* still valid JSON */
    CHECK_JSON("\xc3\xa9", "\"\xc3\xa9\"");
    CHECK_JSON("", "\"\"");
}

static void t_statistics(void)
{
    double v[] = {3, 1, 2};
    CHECK(pml_median(v, 3) == 2 && v[0] == 1); /* sorted */
    double w[] = {4, 1, 3, 2};
    CHECK(pml_median(w, 4) == 2.5);
    CHECK(isnan(pml_median(w, 0)));
    double x[] = {1, 2, 3, 4, 5}, y[] = {10, 20, 30, 40, 50}, z[] = {5, 4, 3, 2, 1};
    CHECK_NEAR(pml_spearman(x, y, 5), 1.0, 1e-12);
    CHECK_NEAR(pml_spearman(x, z, 5), -1.0, 1e-12);
    double t[] = {1, 1, 2, 3}, r[4];
    pml_ranks(t, 4, r);
    CHECK(r[0] == 1.5 && r[1] == 1.5 && r[2] == 3 && r[3] == 4); /* ties share their mean rank */
    double u[] = {1, 3, 2, 4};
    CHECK_NEAR(pml_spearman(x, u, 4), 0.8, 1e-12); /* 1 - 6*2/(4*15) */
    double flat[] = {7, 7, 7};
    CHECK(isnan(pml_spearman(x, flat, 3)) && isnan(pml_spearman(x, y, 1)));
    CHECK(pml_hash(PML_HASH_INIT, "a", 1) == 0xaf63dc4c8601ec8cull); /* FNV-1a of "a" */
    CHECK(pml_hash_str(PML_HASH_INIT, "") == PML_HASH_INIT);
    char b[32];
    CHECK(strcmp(pml_fmt_count(b, sizeof b, 25557032), "25,557,032") == 0);
    CHECK(strcmp(pml_fmt_si(b, sizeof b, 8.24e9, "FLOP"), "8.24 GFLOP") == 0);
    CHECK(strcmp(pml_fmt_seconds(b, sizeof b, 2.5e-5, 3), "25 us") == 0);
    CHECK(strcmp(pml_fmt_seconds(b, sizeof b, 0, 3), "0 s") == 0);
}

static const pml_test tests[] = {
    {"escape", t_escape}, {"messages_escaped", t_messages_escaped}, {"json", t_json},
    {"statistics", t_statistics}, {0}};
PML_TEST_MAIN(tests)
