/* pml — a tiny test harness: tests are functions registered in one list per executable.
 *
 *   static void t_something(void) { CHECK(x == 1); CHECK_NEAR(a, b, 1e-5); }
 *   static const pml_test tests[] = {{"something", t_something}, {0}};
 *   PML_TEST_MAIN(tests)
 *
 * Each test prints "ok NAME" or "FAIL NAME"; the executable exits non-zero if any failed. A test
 * that cannot check on this machine (not root, a file system without a feature) calls
 * SKIP("why") and returns: it prints "skip NAME" (tests/run counts it), never "ok".
 * `./test-x NAME...` runs only the named tests. */
#ifndef PML_TEST_H
#define PML_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pml_test {
    const char *name;
    void (*fn)(void);
} pml_test;

static int pml__test_failed, pml__test_skipped;

/* this test cannot check here: say why (stderr) and return */
#define SKIP(why)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "  skip: %s\n", (why));                                                    \
        pml__test_skipped = 1;                                                                     \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);            \
            pml__test_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            pml__test_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double pml__a = (double)(a), pml__b = (double)(b);                                         \
        double pml__s = fabs(pml__b) > 1.0 ? fabs(pml__b) : 1.0;                                   \
        if (!(fabs(pml__a - pml__b) <= (tol) * pml__s)) {                                          \
            fprintf(stderr, "  %s:%d: %s = %.8g, expected %s = %.8g (tol %g)\n", __FILE__,        \
                    __LINE__, #a, pml__a, #b, pml__b, (double)(tol));                             \
            pml__test_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

/* a call returning pml_status must succeed */
#define CHECK_OK(call)                                                                             \
    do {                                                                                           \
        pml_status pml__st = (call);                                                               \
        if (pml__st != PML_OK) {                                                                   \
            fprintf(stderr, "  %s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,                \
                    pml_errmsg());                                                                 \
            pml__test_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

static inline int pml__test_main(const pml_test *tests, int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    for (const pml_test *t = tests; t->name; t++) {
        if (argc > 1) {
            int want = 0;
            for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], t->name) == 0) want = 1;
            if (!want) continue;
        }
        pml__test_failed = pml__test_skipped = 0;
        t->fn();
        printf("%s %s\n", pml__test_failed ? "FAIL" : pml__test_skipped ? "skip" : "ok", t->name);
        fflush(stdout);
        if (pml__test_failed)
            failed++;
        else if (pml__test_skipped)
            skipped++;
        else
            passed++;
    }
    printf("# %d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

#define PML_TEST_MAIN(list)                                                                        \
    int main(int argc, char **argv) { return pml__test_main(list, argc, argv); }

#endif
