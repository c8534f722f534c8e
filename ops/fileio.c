/* pml — files: whole-file reads and safe writes, for every layer: model files, drawings, plans,
 * traces, checkpoints, caches.
 *
 * What a write promises, by what the name is when it is opened:
 * - a regular file, or no file yet: replaced atomically. The data goes to a temporary file in the
 *   target's folder, which commit fsyncs and renames over the target: a crash leaves the old file
 *   or the new one. The temporary file is unnamed (O_TMPFILE) where the file system allows, so a
 *   killed process leaves nothing behind; it gets a name (".NAME.tmp-PID-N") only for the moment
 *   between link and rename. Elsewhere it is named from the start, and the next write of NAME
 *   sweeps what dead processes left (pml_tmp_sweep).
 * - a symbolic link (or a chain of them): followed; its final target is what is replaced, the link
 *   stays. A dangling link gets its target created where it points (as a shell's `>` would).
 * - anything else that is not a folder (a character or block device, a FIFO, a terminal, a pipe
 *   behind /proc/self/fd/N), and "-" (standard output): written through, never renamed over.
 *   Written-through data cannot be taken back when the writer fails or aborts. */
#include "ops/ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_LINKS = 40 }; /* as the kernel's limit on links followed in one path (ELOOP) */

/* The folder part of path ("." when there is none), malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ".NAME.tmp-PID-N" beside target, in buf (cap bytes) */
static void tmp_name(char *buf, size_t cap, const char *target, unsigned n)
{
    const char *base = base_of(target);
    snprintf(buf, cap, "%.*s.%s.tmp-%ld-%u", (int)(base - target), target, base, (long)getpid(), n);
}

static unsigned next_counter(void)
{
    static unsigned counter; /* only makes names unique; races are resolved by O_EXCL / EEXIST */
    return __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- stale temporary files */

/* Parses ".NAME.tmp-PID-N" (decimal PID > 0 and N, as tmp_name() writes them): \return the
 * length of NAME (> 0) and the pid, or 0 when s is not such a name. */
static size_t parse_tmp(const char *s, long *pid)
{
    size_t len = strlen(s), i = len;
    if (len < 9 || s[0] != '.') return 0;
    /* N: "0" or digits without a leading zero, at most UINT_MAX */
    size_t end = i;
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9') i--;
    if (i == end || end - i > 10 || (end - i > 1 && s[i] == '0')) return 0;
    if (strtoul(s + i, NULL, 10) > UINT_MAX) return 0;
    if (i == 0 || s[--i] != '-') return 0;
    /* PID: digits without a leading zero, 1 .. INT_MAX */
    end = i;
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9') i--;
    if (i == end || end - i > 10 || s[i] == '0') return 0;
    long p = strtol(s + i, NULL, 10);
    if (p <= 0 || p > INT_MAX) return 0;
    static const char mark[] = ".tmp-";
    if (i < 1 + 1 + sizeof mark - 1 || memcmp(s + i - (sizeof mark - 1), mark, sizeof mark - 1))
        return 0;
    *pid = p;
    return i - (sizeof mark - 1) - 1;
}

/* pml_tmp_sweep without a message: \return 0 or an errno value */
static int sweep(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (!d) return errno;
    size_t nlen = name ? strlen(name) : 0;
    for (struct dirent *e; (e = readdir(d));) {
        long pid;
        size_t len = parse_tmp(e->d_name, &pid);
        if (!len || (name && (len != nlen || memcmp(e->d_name + 1, name, nlen) != 0))) continue;
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
            continue;
        /* EPERM: alive, someone else's; 0: alive */
        if (kill((pid_t)pid, 0) == -1 && errno == ESRCH) (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    return 0;
}

pml_status pml_tmp_sweep(const char *dir, const char *name)
{
    if (!dir || !*dir) dir = ".";
    int err = sweep(dir, name);
    if (err) return pml_fail(PML_EIO, "cannot read folder '%s': %s", dir, strerror(err));
    return PML_OK;
}

/* ---------------------------------------------------------------- atomic and through writes */

/* The name a chain of symbolic links starting at path ends at (path itself when it is no link):
 * malloc'd in *out. The end may not exist (a dangling link). \return 0 or an errno value. */
static int follow_links(const char *path, char **out)
{
    char *cur = strdup(path), link[PATH_MAX];
    if (!cur) return ENOMEM;
    for (int hops = 0;; hops++) {
        struct stat lb;
        if (lstat(cur, &lb) != 0) {
            if (errno == ENOENT) break; /* the end of a dangling chain, or no file yet */
            int err = errno;
            free(cur);
            return err;
        }
        if (!S_ISLNK(lb.st_mode)) break;
        if (hops == MAX_LINKS) {
            free(cur);
            return ELOOP;
        }
        ssize_t n = readlink(cur, link, sizeof link);
        if (n <= 0 || (size_t)n >= sizeof link) {
            int err = n < 0 ? errno : n == 0 ? ENOENT : ENAMETOOLONG;
            free(cur);
            return err;
        }
        link[n] = 0;
        /* relative to the link's folder; the kernel resolves whatever the folder part holds */
        const char *slash = strrchr(cur, '/');
        size_t dlen = link[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1;
        char *next = malloc(dlen + (size_t)n + 1);
        if (!next) {
            free(cur);
            return ENOMEM;
        }
        memcpy(next, cur, dlen);
        memcpy(next + dlen, link, (size_t)n + 1);
        free(cur);
        cur = next;
    }
    *out = cur;
    return 0;
}

static void af_free(pml_afile *af)
{
    free(af->path);
    free(af->target);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

/* Opens the temporary file for af->target: unnamed where the file system allows. \return 0 or an
 * errno value. */
static int open_tmp(pml_afile *af)
{
    char *dir = dir_of(af->target);
    if (!dir) return ENOMEM;
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    free(dir);
    if (fd >= 0) {
        /* commit links it through /proc; without /proc, a named file from the start */
        char proc[64];
        struct stat sb;
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        if (lstat(proc, &sb) == 0) {
            af->how = PML_AFILE_UNNAMED;
            af->f = fdopen(fd, "wb");
            if (!af->f) {
                close(fd);
                return ENOMEM;
            }
            return 0;
        }
        close(fd);
    } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT) {
        return errno; /* EACCES, EROFS, ENOSPC ...: a named file would fail alike */
    }
    size_t cap = strlen(af->target) + 64;
    if (!(af->tmp = malloc(cap))) return ENOMEM;
    fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        tmp_name(af->tmp, cap, af->target, next_counter());
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int err = errno;
        free(af->tmp);
        af->tmp = NULL;
        return err;
    }
    af->how = PML_AFILE_NAMED;
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        unlink(af->tmp);
        return ENOMEM;
    }
    return 0;
}

pml_status pml_afile_open(pml_afile *af, const char *path)
{
    memset(af, 0, sizeof *af);
    if (!path || !*path) return pml_fail(PML_EINVAL, "no output file name given");
    size_t len = strlen(path);
    if (path[len - 1] == '/')
        return pml_fail(PML_EINVAL, "cannot write '%s': it names a folder", path);
    if (!(af->path = strdup(path))) goto nomem;
    if (strcmp(path, "-") == 0) {
        af->how = PML_AFILE_STDOUT;
        af->f = stdout;
        return PML_OK;
    }
    int err = 0;
    /* a few rounds: the name may change between looking at it and opening it */
    for (int round = 0; round < 3; round++) {
        struct stat sb;
        bool exists = stat(path, &sb) == 0; /* through every link, as the kernel allows them */
        if (!exists && errno != ENOENT) {
            err = errno;
            break;
        }
        if (exists && S_ISDIR(sb.st_mode)) {
            pml_status st = pml_fail(PML_EIO, "cannot write '%s': it is a folder", path);
            af_free(af);
            return st;
        }
        if (exists && !S_ISREG(sb.st_mode)) {
            /* a device, a FIFO (waits for a reader, as a shell's `>` does), a terminal: through */
            int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
            if (fd < 0) {
                err = errno;
                break;
            }
            struct stat fb;
            if (fstat(fd, &fb) != 0 || S_ISREG(fb.st_mode)) { /* became a regular file */
                close(fd);
                err = -1;
                continue;
            }
            if (!(af->f = fdopen(fd, "wb"))) {
                close(fd);
                goto nomem;
            }
            af->how = PML_AFILE_THROUGH;
            return PML_OK;
        }
        /* a regular file or none yet: replace what the links lead to */
        free(af->target);
        af->target = NULL;
        if ((err = follow_links(path, &af->target)) != 0) break;
        if (exists) { /* the end of the chain must be the file stat() found */
            struct stat lb;
            if (lstat(af->target, &lb) != 0 || lb.st_dev != sb.st_dev || lb.st_ino != sb.st_ino) {
                err = -1;
                continue;
            }
        }
        char *dir = dir_of(af->target);
        if (dir) {
            (void)sweep(dir, base_of(af->target)); /* what killed writers of this name left */
            free(dir);
        }
        err = open_tmp(af);
        if (!err) return PML_OK;
        break;
    }
    pml_status st;
    if (err == ENOMEM)
        goto nomem;
    else if (err == -1)
        st = pml_fail(
            PML_EIO, "cannot write '%s': the file it links to keeps changing or has no name", path);
    else if (af->target && strcmp(af->target, path) != 0)
        st = pml_fail(PML_EIO, "cannot write '%s' (a link to '%s'): %s", path, af->target,
                      strerror(err));
    else
        st = pml_fail(PML_EIO, "cannot write '%s': %s", path, strerror(err));
    af_free(af);
    return st;
nomem:
    af_free(af);
    return pml_fail(PML_ENOMEM, "out of memory opening '%s'", path);
}

void pml_afile_abort(pml_afile *af)
{
    if (af->f && af->how != PML_AFILE_STDOUT) fclose(af->f); /* an unnamed file vanishes with it */
    if (af->tmp) unlink(af->tmp);
    af_free(af);
}

/* Gives an unnamed temporary file the name af->tmp (a new ".NAME.tmp-PID-N"). \return 0 or an
 * errno value. */
static int link_unnamed(pml_afile *af, int fd)
{
    size_t cap = strlen(af->target) + 64;
    if (!(af->tmp = malloc(cap))) return ENOMEM;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    for (int attempt = 0; attempt < 100; attempt++) {
        tmp_name(af->tmp, cap, af->target, next_counter());
        int r = linkat(AT_FDCWD, proc, AT_FDCWD, af->tmp, AT_SYMLINK_FOLLOW);
        if (r != 0 && errno == ENOENT) { /* /proc went away: needs CAP_DAC_READ_SEARCH */
            r = linkat(fd, "", AT_FDCWD, af->tmp, AT_EMPTY_PATH);
            if (r != 0 && errno != EEXIST) errno = ENOENT; /* say what failed first */
        }
        if (r == 0) return 0;
        if (errno != EEXIST) break;
    }
    int err = errno;
    free(af->tmp);
    af->tmp = NULL;
    return err;
}

pml_status pml_afile_commit(pml_afile *af)
{
    if (!af->f) return pml_fail(PML_EINVAL, "pml_afile_commit: the file is not open");
    int err = 0;
    if (af->how == PML_AFILE_STDOUT) {
        errno = 0;
        if (fflush(stdout) != 0 || ferror(stdout)) err = errno ? errno : EIO;
        af->f = NULL;
        af_free(af);
        if (err) return pml_fail(PML_EIO, "cannot write to standard output: %s", strerror(err));
        return PML_OK;
    }
    errno = 0;
    if (fflush(af->f) != 0 || ferror(af->f))
        err = errno ? errno : EIO;
    else if (fsync(fileno(af->f)) != 0 &&
             !(af->how == PML_AFILE_THROUGH &&
               (errno == EINVAL || errno == EROFS || errno == ENOTSUP)))
        err = errno; /* a device or a pipe may not sync: not an error when written through */
    if (!err && af->how == PML_AFILE_UNNAMED) err = link_unnamed(af, fileno(af->f));
    int cerr = fclose(af->f);
    af->f = NULL;
    if (!err && cerr != 0) err = errno;
    if (!err && af->how != PML_AFILE_THROUGH) {
        /* never rename over what is no regular file: something may have taken the name since */
        struct stat lb;
        if (lstat(af->target, &lb) == 0 && !S_ISREG(lb.st_mode)) {
            pml_status st = pml_fail(PML_EIO,
                                     "cannot write '%s': '%s' is no longer a regular file; "
                                     "left as it is",
                                     af->path, af->target);
            pml_afile_abort(af);
            return st;
        }
        if (rename(af->tmp, af->target) != 0) err = errno;
    }
    if (err) {
        pml_status st = pml_fail(PML_EIO, "cannot write '%s': %s", af->path, strerror(err));
        pml_afile_abort(af);
        return st;
    }
    if (af->how != PML_AFILE_THROUGH) {
        /* make the rename itself durable; not every file system can sync a folder */
        char *dir = dir_of(af->target);
        if (dir) {
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
        free(af->tmp); /* renamed: nothing left to remove */
        af->tmp = NULL;
    }
    af_free(af);
    return PML_OK;
}

pml_status pml_write_file_atomic(const char *path, const void *data, size_t len)
{
    pml_afile af;
    pml_status st = pml_afile_open(&af, path);
    if (st != PML_OK) return st;
    if (len && fwrite(data, 1, len, af.f) != len) {
        st = af.how == PML_AFILE_STDOUT
                 ? pml_fail(PML_EIO, "cannot write to standard output: %s",
                            strerror(errno ? errno : EIO))
                 : pml_fail(PML_EIO, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
        pml_afile_abort(&af);
        return st;
    }
    return pml_afile_commit(&af);
}

/* ---------------------------------------------------------------- reading */

pml_status pml_read_file(const char *path, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pml_fail(PML_EIO, "cannot read '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        pml_status st = pml_fail(PML_EIO, "cannot read '%s': %s", path, strerror(errno));
        close(fd);
        return st;
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return pml_fail(PML_EIO, "cannot read '%s': it is a folder", path);
    }
    /* a regular file says its size: refuse before reading; anything else is read up to max */
    if (S_ISREG(sb.st_mode) && (uintmax_t)sb.st_size > max) {
        close(fd);
        return pml_fail(PML_EFORMAT, "'%s' is too large: %jd bytes, more than the limit of %zu",
                        path, (intmax_t)sb.st_size, max);
    }
    size_t cap = S_ISREG(sb.st_mode) && (size_t)sb.st_size >= 4096 ? (size_t)sb.st_size + 1 : 4096;
    if (cap > max + 1) cap = max + 1;
    char *buf = malloc(cap + 1);
    size_t n = 0;
    if (!buf) goto nomem;
    for (;;) {
        if (n == cap) {
            if (cap > max) break;
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) goto nomem;
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            pml_status st = pml_fail(PML_EIO, "cannot read '%s': %s", path, strerror(errno));
            free(buf);
            close(fd);
            return st;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (n > max) {
        free(buf);
        return pml_fail(PML_EFORMAT, "'%s' is too large (more than %zu bytes)", path, max);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return PML_OK;
nomem:
    free(buf);
    close(fd);
    return pml_fail(PML_ENOMEM, "out of memory reading '%s'", path);
}
