/* Atomic file writes and whole-file reads: the target is the old file or the new one, temporary
 * files never stay behind, errors name the file; what is not a regular file (a device, a FIFO, a
 * pipe, stdout) is written through and stays what it is; links are followed. Device nodes are our
 * own (mknod in a temporary folder, root only), never the system's. */
#include "ops/ops.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
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
    /* the target, and the temporary file beside it unless it has no name */
    CHECK(af.how == PML_AFILE_UNNAMED || af.how == PML_AFILE_NAMED);
    CHECK(entries() == (af.how == PML_AFILE_UNNAMED ? 1 : 2));
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

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* st_ino of path (0 when it does not exist) */
static ino_t inode(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0 ? sb.st_ino : 0;
}

static bool is_link_to(const char *link, const char *want)
{
    char buf[512];
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    if (n < 0) return false;
    buf[n] = 0;
    return strcmp(buf, want) == 0;
}

/* a process id that is no longer alive: a child that exited and was reaped */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    CHECK(pid > 0 && waitpid(pid, NULL, 0) == pid);
    return pid;
}

static void touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
}

/* the temporary file has no name: a writer killed before commit leaves nothing in the folder */
static void t_unnamed_tmp(void)
{
    make_dir();
    char path[300];
    path_in(path, sizeof path, "out.txt");
    pml_afile af;
    CHECK_OK(pml_afile_open(&af, path));
    pml_afile_how how = af.how;
    pml_afile_abort(&af);
    CHECK(how == PML_AFILE_UNNAMED || how == PML_AFILE_NAMED);
    if (how == PML_AFILE_NAMED) {
        SKIP("this file system has no O_TMPFILE (the named temporary file is checked elsewhere)");
        remove_dir();
        return;
    }
    CHECK(entries() == 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (pml_afile_open(&af, path) != PML_OK) _exit(1);
        fputs("half", af.f);
        fflush(af.f);
        raise(SIGKILL);
        _exit(2);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(entries() == 0);
    /* and a commit leaves only the target */
    CHECK_OK(pml_afile_open(&af, path));
    CHECK(entries() == 0);
    fputs("whole", af.f);
    CHECK_OK(pml_afile_commit(&af));
    CHECK(has(path, "whole") && entries() == 1);
    remove_dir();
}

/* stale ".NAME.tmp-PID-N" of dead processes go when NAME is written; nothing else does */
static void t_sweep(void)
{
    make_dir();
    char name[100], path[400], p[400];
    long dead = (long)dead_pid(), live = (long)getpid();
    const char *keep[] = {
        ".out.txt.tmp-%ld-3x", ".out.txt.tmp-%ld",    "out.txt.tmp-%ld-3",
        ".out.txt.tmp-0%ld-3", ".out.txt.tmp-%ld-03", ".out.txt.tmp-%ld-",
        "..tmp-%ld-3",         ".out.txt.tmp--%ld-3", ".out.txtXtmp-%ld-3",
    };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        snprintf(name, sizeof name, keep[i], dead);
        path_in(p, sizeof p, name);
        touch(p);
    }
    snprintf(name, sizeof name, ".out.txt.tmp-%ld-3", dead);
    char stale[400], alive[400], other[400], link[400], folder[400];
    path_in(stale, sizeof stale, name);
    touch(stale);
    snprintf(name, sizeof name, ".out.txt.tmp-%ld-3", live);
    path_in(alive, sizeof alive, name);
    touch(alive);
    snprintf(name, sizeof name, ".other.bin.tmp-%ld-7", dead); /* another NAME */
    path_in(other, sizeof other, name);
    touch(other);
    snprintf(name, sizeof name, ".out.txt.tmp-%ld-4", dead); /* not a regular file */
    path_in(link, sizeof link, name);
    CHECK(symlink("out.txt", link) == 0);
    snprintf(name, sizeof name, ".out.txt.tmp-%ld-5", dead);
    path_in(folder, sizeof folder, name);
    CHECK(mkdir(folder, 0755) == 0);
    int before = entries();
    path_in(path, sizeof path, "out.txt");
    CHECK_OK(pml_write_file_atomic(path, "x", 1));
    CHECK(access(stale, F_OK) != 0 && errno == ENOENT);
    CHECK(access(alive, F_OK) == 0 && access(other, F_OK) == 0 && inode(link) && inode(folder));
    CHECK(entries() == before); /* out.txt came, the stale one went */
    /* every NAME */
    CHECK_OK(pml_tmp_sweep(dir, NULL));
    CHECK(access(other, F_OK) != 0 && access(alive, F_OK) == 0);
    CHECK(entries() == before - 1);
    path_in(path, sizeof path, "missing");
    CHECK(pml_tmp_sweep(path, NULL) == PML_EIO && strstr(pml_errmsg(), "missing"));
    remove_dir();
}

/* a device node is written through and stays a device node; a device that fails says so */
static void t_char_device(void)
{
    make_dir();
    char null[300], full[300], link[300];
    path_in(null, sizeof null, "null");
    path_in(full, sizeof full, "full");
    if (geteuid() != 0 || mknod(null, S_IFCHR | 0666, makedev(1, 3)) != 0 ||
        mknod(full, S_IFCHR | 0666, makedev(1, 7)) != 0) {
        SKIP("cannot make device nodes here (not root)");
        remove_dir();
        return;
    }
    CHECK_OK(pml_write_file_atomic(null, "data", 4));
    struct stat sb;
    CHECK(lstat(null, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(1, 3));
    pml_afile af;
    CHECK_OK(pml_afile_open(&af, null));
    CHECK(af.how == PML_AFILE_THROUGH);
    fputs("more", af.f);
    pml_afile_abort(&af); /* nothing to take back, and the node stays */
    CHECK(lstat(null, &sb) == 0 && S_ISCHR(sb.st_mode));
    /* through a link */
    path_in(link, sizeof link, "to-null");
    CHECK(symlink("null", link) == 0);
    CHECK_OK(pml_write_file_atomic(link, "data", 4));
    CHECK(is_link_to(link, "null") && lstat(null, &sb) == 0 && S_ISCHR(sb.st_mode));
    /* /dev/full: the failure is reported, the node stays */
    pml_status st = pml_write_file_atomic(full, "data", 4);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), full) && strstr(pml_errmsg(), "No space"));
    CHECK(lstat(full, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(1, 7));
    CHECK(entries() == 3); /* no temporary file */
    remove_dir();
}

/* a FIFO: a reader gets the bytes, the FIFO stays */
static void t_fifo(void)
{
    make_dir();
    char fifo[300];
    path_in(fifo, sizeof fifo, "fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    /* the reader first (without waiting for a writer), so the writer's open does not wait */
    int fd = open(fifo, O_RDONLY | O_NONBLOCK);
    CHECK(fd >= 0);
    pid_t pid = fork();
    if (pid == 0) _exit(pml_write_file_atomic(fifo, "through the fifo\n", 17) == PML_OK ? 0 : 1);
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    char buf[64];
    size_t n = 0;
    for (ssize_t r; fd >= 0 && n < sizeof buf && (r = read(fd, buf + n, sizeof buf - n)) > 0;)
        n += (size_t)r;
    if (fd >= 0) close(fd);
    CHECK(n == 17 && memcmp(buf, "through the fifo\n", 17) == 0);
    struct stat sb;
    CHECK(lstat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode) && entries() == 1);
    remove_dir();
}

/* a link to a regular file stays a link; its target is replaced atomically (a new inode); a
 * chain of links (relative to each link's folder) ends at the file that is replaced */
static void t_symlinks(void)
{
    make_dir();
    char target[300], link[300], p[300];
    path_in(p, sizeof p, "sub");
    CHECK(mkdir(p, 0755) == 0);
    path_in(p, sizeof p, "other");
    CHECK(mkdir(p, 0755) == 0);
    path_in(target, sizeof target, "sub/real.txt");
    CHECK_OK(pml_write_file_atomic(target, "old", 3));
    ino_t old = inode(target);
    path_in(link, sizeof link, "link.txt");
    CHECK(symlink("sub/real.txt", link) == 0);
    pml_afile af;
    CHECK_OK(pml_afile_open(&af, link));
    fputs("new", af.f);
    CHECK(has(target, "old")); /* atomic: the old file until commit */
    CHECK_OK(pml_afile_commit(&af));
    CHECK(is_link_to(link, "sub/real.txt") && has(target, "new") && has(link, "new"));
    CHECK(inode(target) != old);
    /* other/l2 -> ../link.txt -> sub/real.txt */
    char l2[300];
    path_in(l2, sizeof l2, "other/l2");
    CHECK(symlink("../link.txt", l2) == 0);
    CHECK_OK(pml_write_file_atomic(l2, "chain", 5));
    CHECK(is_link_to(l2, "../link.txt") && is_link_to(link, "sub/real.txt"));
    CHECK(has(target, "chain"));
    /* nothing else in any of the folders */
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    CHECK(n == 3);
    path_in(p, sizeof p, "sub");
    d = opendir(p);
    n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    CHECK(n == 1);
    /* a loop */
    char a[300], b[300];
    path_in(a, sizeof a, "loop-a");
    path_in(b, sizeof b, "loop-b");
    CHECK(symlink("loop-b", a) == 0 && symlink("loop-a", b) == 0);
    pml_status st = pml_write_file_atomic(a, "x", 1);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), "loop-a") && is_link_to(a, "loop-b"));
    remove_dir();
}

/* a dangling link gets its target created where it points; into a missing folder, a message
 * naming both */
static void t_dangling_symlink(void)
{
    make_dir();
    char link[300], target[300];
    path_in(link, sizeof link, "link.txt");
    path_in(target, sizeof target, "made.txt");
    CHECK(symlink("made.txt", link) == 0);
    CHECK_OK(pml_write_file_atomic(link, "made", 4));
    CHECK(is_link_to(link, "made.txt") && has(target, "made") && entries() == 2);
    path_in(link, sizeof link, "nowhere.txt");
    CHECK(symlink("no/such/dir/x.txt", link) == 0);
    pml_status st = pml_write_file_atomic(link, "x", 1);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), "nowhere.txt") &&
          strstr(pml_errmsg(), "no/such/dir/x.txt") && strstr(pml_errmsg(), "No such file"));
    CHECK(is_link_to(link, "no/such/dir/x.txt") && entries() == 3);
    remove_dir();
}

/* a folder, directly or through a link, is refused and stays */
static void t_folder(void)
{
    make_dir();
    char sub[300], link[300];
    path_in(sub, sizeof sub, "sub");
    CHECK(mkdir(sub, 0755) == 0);
    path_in(link, sizeof link, "to-sub");
    CHECK(symlink("sub", link) == 0);
    pml_status st = pml_write_file_atomic(sub, "x", 1);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), sub) && strstr(pml_errmsg(), "folder"));
    st = pml_write_file_atomic(link, "x", 1);
    CHECK(st == PML_EIO && strstr(pml_errmsg(), link) && strstr(pml_errmsg(), "folder"));
    struct stat sb;
    CHECK(lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode) && is_link_to(link, "sub"));
    CHECK(entries() == 2);
    remove_dir();
}

/* a link to /proc/self/fd/N: a pipe behind it is written through; a regular file behind it is
 * replaced by its name */
static void t_proc_fd_link(void)
{
    make_dir();
    char link[300], proc[64], buf[64];
    int p[2];
    CHECK(pipe(p) == 0);
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", p[1]);
    path_in(link, sizeof link, "to-pipe");
    CHECK(symlink(proc, link) == 0);
    CHECK_OK(pml_write_file_atomic(link, "piped", 5));
    close(p[1]);
    ssize_t n = read(p[0], buf, sizeof buf);
    close(p[0]);
    CHECK(n == 5 && memcmp(buf, "piped", 5) == 0);
    CHECK(is_link_to(link, proc) && entries() == 1);
    char file[300];
    path_in(file, sizeof file, "file.txt");
    CHECK_OK(pml_write_file_atomic(file, "old", 3));
    int fd = open(file, O_RDONLY);
    CHECK(fd >= 0);
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    path_in(link, sizeof link, "to-file");
    CHECK(symlink(proc, link) == 0);
    CHECK_OK(pml_write_file_atomic(link, "new", 3));
    close(fd);
    CHECK(has(file, "new") && is_link_to(link, proc) && entries() == 3);
    remove_dir();
}

/* "-" is standard output, written through and left open */
static void t_stdout_dash(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(stdout);
    int saved = dup(1);
    CHECK(saved >= 0 && dup2(p[1], 1) == 1);
    close(p[1]);
    pml_status st = pml_write_file_atomic("-", "to stdout\n", 10);
    fflush(stdout);
    CHECK(dup2(saved, 1) == 1);
    close(saved);
    char buf[64];
    ssize_t n = read(p[0], buf, sizeof buf);
    close(p[0]);
    CHECK(st == PML_OK && n == 10 && memcmp(buf, "to stdout\n", 10) == 0);
    CHECK(fcntl(1, F_GETFD) != -1 && !ferror(stdout));
}

/* a regular file larger than the limit is refused by its size, before a byte is read (a sparse
 * file: no disk used); streams (a FIFO) are read up to the limit */
static void t_read_size_first(void)
{
    make_dir();
    char path[300], *t = NULL;
    size_t len = 7;
    path_in(path, sizeof path, "huge.json");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)5 << 30) == 0);
    close(fd);
    pml_status st = pml_read_file(path, (size_t)4 << 30, &t, &len);
    CHECK(st == PML_EFORMAT && t == NULL && len == 0);
    CHECK(strstr(pml_errmsg(), path) && strstr(pml_errmsg(), "5368709120 bytes") &&
          strstr(pml_errmsg(), "4294967296"));
    /* exactly the limit is fine */
    CHECK_OK(pml_write_file_atomic(path, "0123456789", 10));
    CHECK_OK(pml_read_file(path, 10, &t, &len));
    CHECK(len == 10);
    free(t);
    /* a FIFO: read until more than max has come */
    char fifo[300];
    path_in(fifo, sizeof fifo, "fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        char big[3000];
        memset(big, 'x', sizeof big);
        int w = open(fifo, O_WRONLY);
        ssize_t r = w >= 0 ? write(w, big, sizeof big) : -1;
        _exit(r == (ssize_t)sizeof big ? 0 : 1);
    }
    st = pml_read_file(fifo, 100, &t, &len);
    CHECK(st == PML_EFORMAT && strstr(pml_errmsg(), "fifo") && strstr(pml_errmsg(), "100"));
    int status;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    remove_dir();
}

static const pml_test tests[] = {
    {"write_and_replace", t_write_and_replace},
    {"abort_keeps_old", t_abort_keeps_old},
    {"errors", t_errors},
    {"read", t_read},
    {"unnamed_tmp", t_unnamed_tmp},
    {"sweep", t_sweep},
    {"char_device", t_char_device},
    {"fifo", t_fifo},
    {"symlinks", t_symlinks},
    {"dangling_symlink", t_dangling_symlink},
    {"folder", t_folder},
    {"proc_fd_link", t_proc_fd_link},
    {"stdout_dash", t_stdout_dash},
    {"read_size_first", t_read_size_first},
    {0},
};
PML_TEST_MAIN(tests)
