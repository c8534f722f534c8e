/* Text for terminals and JSON (ops/text.c): escaping what echoes input, and JSON strings. */
#include "ops.h"
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

static const pml_test tests[] = {
    {"escape", t_escape}, {"messages_escaped", t_messages_escaped}, {"json", t_json}, {0}};
PML_TEST_MAIN(tests)
