/* Cache module tests (ops/cache.c): the cache-folder rule (absolute XDG_CACHE_HOME, a relative one
 * ignored, HOME, neither), the sweep of dead processes' temporary files (a dead PID's goes, a live
 * one's and other names stay, once per folder and process), the lock (exclusive between open
 * files, a bounded wait that gives up on a holder that never lets go, no lock through a link or
 * a FIFO), and stamps telling versions of a file apart. No timing. */
#include "ops/ops.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[256];

static void make_tmp(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/pml-test-cache-XXXXXX");
    CHECK(mkdtemp(tmp) != NULL);
}

static void remove_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
}

static bool exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static void touch(const char *dir, const char *name)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    CHECK_MSG(f != NULL, "%s", p);
    if (f) fclose(f);
}

static bool has(const char *dir, const char *name)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return exists(p);
}

/* a PID that is no process: a child's, reaped */
static long dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    CHECK(pid > 0);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(kill(pid, 0) != 0 && errno == ESRCH);
    return (long)pid;
}

/* setenv, or unsetenv for NULL */
static void env(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

/* ---------------------------------------------------------------- the folder */

static void t_dir_rule(void)
{
    make_tmp();
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char *old_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    char xdg[300], home[300], want[400];
    snprintf(xdg, sizeof xdg, "%s/xdg", tmp);
    snprintf(home, sizeof home, "%s/home", tmp);

    /* an absolute XDG_CACHE_HOME: XDG/pml, created with its parents */
    env("XDG_CACHE_HOME", xdg);
    env("HOME", home);
    char *d = pml_cache_dir(NULL);
    snprintf(want, sizeof want, "%s/pml", xdg);
    CHECK_MSG(d && strcmp(d, want) == 0, "%s", d ? d : "(none)");
    CHECK(exists(want));
    free(d);
    d = pml_cache_dir("plans");
    snprintf(want, sizeof want, "%s/pml/plans", xdg);
    CHECK_MSG(d && strcmp(d, want) == 0, "%s", d ? d : "(none)");
    CHECK(exists(want));
    free(d);

    /* a relative XDG_CACHE_HOME is ignored: HOME/.cache/pml */
    env("XDG_CACHE_HOME", "relative/cache");
    d = pml_cache_dir(NULL);
    snprintf(want, sizeof want, "%s/.cache/pml", home);
    CHECK_MSG(d && strcmp(d, want) == 0, "%s", d ? d : "(none)");
    CHECK(exists(want) && !exists("relative"));
    free(d);
    env("XDG_CACHE_HOME", "");
    d = pml_cache_dir(NULL);
    CHECK(d && strcmp(d, want) == 0);
    free(d);

    /* no absolute HOME either: no disk cache, no error */
    env("XDG_CACHE_HOME", NULL);
    env("HOME", "home");
    CHECK(pml_cache_dir(NULL) == NULL);
    env("HOME", NULL);
    CHECK(pml_cache_dir(NULL) == NULL && pml_cache_dir("plans") == NULL);

    /* a folder that cannot be made: none */
    touch(tmp, "file");
    snprintf(want, sizeof want, "%s/file", tmp);
    env("XDG_CACHE_HOME", want);
    CHECK(pml_cache_dir(NULL) == NULL);
    CHECK(!pml_cache_open(want) && !pml_cache_open("") && !pml_cache_open(NULL));

    env("HOME", old_home);
    env("XDG_CACHE_HOME", old_xdg);
    free(old_home);
    free(old_xdg);
    remove_tmp();
}

/* ---------------------------------------------------------------- the sweep */

static void t_sweep(void)
{
    make_tmp();
    long dead = dead_pid(), live = (long)getpid();
    char plans[300], name[128];
    snprintf(plans, sizeof plans, "%s/plans", tmp);
    CHECK(mkdir(plans, 0755) == 0);
    /* a dead process's temporary files, here and in plans/ */
    snprintf(name, sizeof name, ".x.tmp-%ld-1", dead);
    touch(tmp, name);
    touch(plans, name);
    char dead_name[128];
    snprintf(dead_name, sizeof dead_name, "%s", name);
    snprintf(name, sizeof name, ".costs-0123.tsv.tmp-%ld-17", dead);
    touch(tmp, name);
    char dead_name2[128];
    snprintf(dead_name2, sizeof dead_name2, "%s", name);
    /* a live process's, and names that are not pml's temporary files */
    char keep[8][128];
    snprintf(keep[0], sizeof keep[0], ".x.tmp-%ld-1", live);
    snprintf(keep[1], sizeof keep[1], "x.tmp-%ld-1", dead);   /* no leading dot */
    snprintf(keep[2], sizeof keep[2], ".x.tmp-%ld", dead);    /* no counter */
    snprintf(keep[3], sizeof keep[3], ".x.tmp-%ld-1a", dead); /* junk after it */
    snprintf(keep[4], sizeof keep[4], "..tmp-%ld-1", dead);   /* no name */
    snprintf(keep[5], sizeof keep[5], ".x.tmp--1");           /* no PID */
    snprintf(keep[6], sizeof keep[6], ".x.tmp-0-1");          /* PID 0: the process group */
    snprintf(keep[7], sizeof keep[7], "machine-0123.txt.lock");
    for (int i = 0; i < 8; i++) touch(tmp, keep[i]);
    /* not regular files: a folder and a link with a dead PID's name */
    char p[512], folder[128], link[128];
    snprintf(folder, sizeof folder, ".d.tmp-%ld-2", dead);
    snprintf(p, sizeof p, "%s/%s", tmp, folder);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(link, sizeof link, ".l.tmp-%ld-3", dead);
    snprintf(p, sizeof p, "%s/%s", tmp, link);
    CHECK(symlink("/nonexistent", p) == 0);

    CHECK_MSG(pml_cache_sweep(tmp) == 3, "removed other than 3");
    CHECK(!has(tmp, dead_name) && !has(plans, dead_name) && !has(tmp, dead_name2));
    for (int i = 0; i < 8; i++) CHECK_MSG(has(tmp, keep[i]), "%s was removed", keep[i]);
    CHECK(has(tmp, folder) && has(tmp, link));
    CHECK(pml_cache_sweep(tmp) == 0);
    remove_tmp();
}

/* The folder is swept when this process opens it first, and only then. */
static void t_sweep_once(void)
{
    make_tmp();
    long dead = dead_pid();
    char name[128];
    snprintf(name, sizeof name, ".plan.dot.tmp-%ld-1", dead);
    touch(tmp, name);
    CHECK(pml_cache_open(tmp));
    CHECK(!has(tmp, name));
    touch(tmp, name);
    CHECK(pml_cache_open(tmp));
    CHECK(has(tmp, name)); /* opened before: not swept again */
    /* pml_cache_dir sweeps its folder and plans/ */
    char *old_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    char xdg[300], pml[320], plans[400];
    snprintf(xdg, sizeof xdg, "%s/xdg", tmp);
    snprintf(pml, sizeof pml, "%s/pml", xdg);
    snprintf(plans, sizeof plans, "%s/plans", pml);
    CHECK(mkdir(xdg, 0755) == 0 && mkdir(pml, 0755) == 0 && mkdir(plans, 0755) == 0);
    touch(pml, name);
    touch(plans, name);
    env("XDG_CACHE_HOME", xdg);
    char *d = pml_cache_dir("plans");
    CHECK(d != NULL);
    free(d);
    CHECK(!has(pml, name) && !has(plans, name));
    env("XDG_CACHE_HOME", old_xdg);
    free(old_xdg);
    remove_tmp();
}

/* ---------------------------------------------------------------- the lock */

static void t_lock(void)
{
    make_tmp();
    pml_cache_lock a, b;
    CHECK(pml_cache_lock_take(&a, tmp, "costs-x.tsv", 1));
    CHECK(a.fd >= 0 && !a.waited && !a.timed_out && has(tmp, "costs-x.tsv.lock"));
    /* another entry's lock is another lock */
    CHECK(pml_cache_lock_take(&b, tmp, "machine-x.txt", 0));
    pml_cache_unlock(&b);
    /* held (by another open file, as another process would): the bounded wait gives up */
    CHECK(!pml_cache_lock_take(&b, tmp, "costs-x.tsv", 0.05));
    CHECK(b.fd < 0 && b.waited && b.timed_out);
    CHECK(!pml_cache_lock_take(&b, tmp, "costs-x.tsv", 0));
    CHECK(b.timed_out);
    /* ... also against another process */
    pid_t kid = fork();
    if (kid == 0) {
        pml_cache_lock c;
        bool got = pml_cache_lock_take(&c, tmp, "costs-x.tsv", 0.05);
        _exit(!got && c.timed_out ? 0 : 1);
    }
    int status = -1;
    CHECK(kid > 0 && waitpid(kid, &status, 0) == kid && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    /* let go: taken at once */
    pml_cache_unlock(&a);
    CHECK(a.fd < 0);
    pml_cache_unlock(&a); /* twice: nothing */
    CHECK(pml_cache_lock_take(&b, tmp, "costs-x.tsv", 0) && !b.waited);
    pml_cache_unlock(&b);
    /* a holder that lets go while another waits: the waiter gets it */
    CHECK(pml_cache_lock_take(&a, tmp, "e", 0));
    kid = fork();
    if (kid == 0) {
        usleep(100000);
        _exit(0);
    }
    /* the child shares the open file (and the lock) until it exits */
    pml_cache_unlock(&a);
    CHECK(pml_cache_lock_take(&b, tmp, "e", 30));
    CHECK(b.waited && !b.timed_out);
    pml_cache_unlock(&b);
    CHECK(kid > 0 && waitpid(kid, &status, 0) == kid);
    /* no folder, a bad name, a link or a FIFO where the lock file goes: no lock, no wait */
    CHECK(!pml_cache_lock_take(&b, NULL, "x", 0) && !b.timed_out);
    CHECK(!pml_cache_lock_take(&b, "", "x", 0) && !pml_cache_lock_take(&b, tmp, "a/b", 0));
    CHECK(!pml_cache_lock_take(&b, "/nonexistent/pml", "x", 0) && !b.timed_out);
    char p[2048];
    snprintf(p, sizeof p, "%s/l.lock", tmp);
    CHECK(symlink("target", p) == 0);
    CHECK(!pml_cache_lock_take(&b, tmp, "l", 0) && !b.timed_out);
    CHECK(!has(tmp, "target"));
    snprintf(p, sizeof p, "%s/f.lock", tmp);
    CHECK(mkfifo(p, 0644) == 0);
    CHECK(!pml_cache_lock_take(&b, tmp, "f", 0) && !b.timed_out);
    remove_tmp();
}

/* ---------------------------------------------------------------- stamps */

static void t_stamps(void)
{
    make_tmp();
    char p[300];
    snprintf(p, sizeof p, "%s/entry", tmp);
    pml_cache_stamp none = pml_cache_stamp_of(p), none2 = pml_cache_stamp_of(NULL);
    CHECK(!none.exists && pml_cache_stamp_same(&none, &none2));
    CHECK_OK(pml_write_file_atomic(p, "a", 1));
    pml_cache_stamp one = pml_cache_stamp_of(p), again = pml_cache_stamp_of(p);
    CHECK(one.exists && pml_cache_stamp_same(&one, &again) && !pml_cache_stamp_same(&one, &none));
    /* rewritten with the same size and content: a new file, another stamp */
    CHECK_OK(pml_write_file_atomic(p, "a", 1));
    pml_cache_stamp two = pml_cache_stamp_of(p);
    CHECK(!pml_cache_stamp_same(&one, &two));
    remove_tmp();
}

static const pml_test tests[] = {
    {"dir_rule", t_dir_rule},
    {"sweep", t_sweep},
    {"sweep_once", t_sweep_once},
    {"lock", t_lock},
    {"stamps", t_stamps},
    {0},
};

PML_TEST_MAIN(tests)
