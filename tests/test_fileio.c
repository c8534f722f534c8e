/* Atomic file writes and whole-file reads: the target is the old file or the new one, temporary
 * files never stay behind, errors name the file. */
#include "ops.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/pml-test-fileio-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

/* entries in dir besides . and .. */
static int entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static bool has(const char *path, const char *want)
{
    char *t;
    size_t len;
    if (pml_read_file(path, 1 << 20, &t, &len) != PML_OK) return false;
    bool ok = len == strlen(want) && memcmp(t, want, len) == 0 && t[len] == 0;
    free(t);
    return ok;
}

static void t_write_and_replace(void)
{
    make_dir();
    char path[300];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    CHECK_OK(pml_write_file_atomic(path, "first\n", 6));
    CHECK(has(path, "first\n"));
    CHECK_OK(pml_write_file_atomic(path, "second, longer\n", 15));
    CHECK(has(path, "second, longer\n"));
    CHECK_OK(pml_write_file_atomic(path, "", 0));
    CHECK(has(path, ""));
    CHECK(entries() == 1); /* no temporary file left */
    /* permissions as for any new file: 0666 less the umask */
    mode_t mask = umask(0);
    umask(mask);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == (0666 & ~mask));
    remove_dir();
}

static void t_abort_keeps_old(void)
{
    make_dir();
    char path[300];
    snprintf(path, sizeof path, "%s/keep.txt", dir);
    CHECK_OK(pml_write_file_atomic(path, "old", 3));
    pml_afile af;
    CHECK_OK(pml_afile_open(&af, path));
    fputs("new, half-written", af.f);
    fflush(af.f);
    CHECK(entries() == 2); /* the target and the temporary file beside it */
    CHECK(has(path, "old"));
    pml_afile_abort(&af);
    CHECK(af.f == NULL && af.tmp == NULL);
    pml_afile_abort(&af); /* twice is harmless */
    CHECK(has(path, "old"));
    CHECK(entries() == 1);
    /* commit replaces */
    CHECK_OK(pml_afile_open(&af, path));
    fputs("new", af.f);
    CHECK_OK(pml_afile_commit(&af));
    CHECK(has(path, "new") && entries() == 1);
    remove_dir();
}

static void t_errors(void)
{
    make_dir();
    char path[300];
    /* a missing folder */
    snprintf(path, sizeof path, "%s/no/such/dir/x.svg", dir);
    pml_status st = pml_write_file_atomic(path, "x", 1);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), path) && strstr(pml_errmsg(), "No such file"));
    /* a folder as the target: the temporary file is removed again */
    snprintf(path, sizeof path, "%s/sub", dir);
    CHECK(mkdir(path, 0755) == 0);
    st = pml_write_file_atomic(path, "x", 1);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), "sub"));
    CHECK(entries() == 1);
    snprintf(path, sizeof path, "%s/sub/", dir);
    st = pml_write_file_atomic(path, "x", 1);
    CHECK(st == PML_EINVAL && strstr(pml_errmsg(), "folder"));
    /* an unwritable folder (root may write anywhere: only checked for other users) */
    if (geteuid() != 0) {
        snprintf(path, sizeof path, "%s/sub", dir);
        CHECK(chmod(path, 0555) == 0);
        snprintf(path, sizeof path, "%s/sub/x", dir);
        st = pml_write_file_atomic(path, "x", 1);
        CHECK(st == PML_EIO && strstr(pml_errmsg(), "Permission denied"));
    }
    st = pml_write_file_atomic("", "x", 1);
    CHECK(st == PML_EINVAL);
    remove_dir();
}

static void t_read(void)
{
    make_dir();
    char path[300], *t;
    size_t len;
    snprintf(path, sizeof path, "%s/r.txt", dir);
    CHECK_OK(pml_write_file_atomic(path, "0123456789", 10));
    CHECK_OK(pml_read_file(path, 10, &t, &len));
    CHECK(len == 10 && memcmp(t, "0123456789", 11) == 0);
    free(t);
    pml_status st = pml_read_file(path, 9, &t, &len);
    CHECK(st == PML_EFORMAT && strstr(pml_errmsg(), "too large") && t == NULL);
    st = pml_read_file(dir, 100, &t, &len);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), "folder"));
    snprintf(path, sizeof path, "%s/missing", dir);
    st = pml_read_file(path, 100, &t, &len);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), "missing") && strstr(pml_errmsg(), "No such"));
    /* not a regular file: read to the end all the same */
    CHECK_OK(pml_read_file("/dev/null", 100, &t, &len));
    CHECK(len == 0 && t[0] == 0);
    free(t);
    remove_dir();
}

static const pml_test tests[] = {
    {"write_and_replace", t_write_and_replace},
    {"abort_keeps_old", t_abort_keeps_old},
    {"errors", t_errors},
    {"read", t_read},
    {0},
};
PML_TEST_MAIN(tests)
