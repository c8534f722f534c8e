/* pml — files: whole-file reads and atomic writes (temporary file in the same folder, fsync,
 * rename), for every layer: model files, drawings, plans, checkpoints, caches. */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folder part of path ("." when there is none), malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

pml_status pml_afile_open(pml_afile *af, const char *path)
{
    memset(af, 0, sizeof *af);
    if (!path || !*path) return pml_fail(PML_EINVAL, "no output file name given");
    size_t len = strlen(path);
    if (path[len - 1] == '/')
        return pml_fail(PML_EINVAL, "cannot write '%s': it names a folder", path);
    af->path = strdup(path);
    af->tmp = malloc(len + 64);
    if (!af->path || !af->tmp) goto nomem;
    /* ".NAME.tmp-PID-N" beside the target: same file system, so rename() is atomic */
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    static unsigned counter; /* only makes names unique; races are resolved by O_EXCL */
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        snprintf(af->tmp, len + 64, "%.*s.%s.tmp-%ld-%u", (int)dlen, path, path + dlen,
                 (long)getpid(), n);
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        pml_status st = pml_fail(PML_EIO, "cannot write '%s': %s", path, strerror(errno));
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof *af);
        return st;
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        unlink(af->tmp);
        goto nomem;
    }
    return PML_OK;
nomem:
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
    return pml_fail(PML_ENOMEM, "out of memory opening '%s'", path);
}

void pml_afile_abort(pml_afile *af)
{
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

pml_status pml_afile_commit(pml_afile *af)
{
    if (!af->f) return pml_fail(PML_EINVAL, "pml_afile_commit: the file is not open");
    int err = 0;
    if (fflush(af->f) != 0 || ferror(af->f))
        err = errno ? errno : EIO;
    else if (fsync(fileno(af->f)) != 0)
        err = errno;
    int cerr = fclose(af->f);
    af->f = NULL;
    if (!err && cerr != 0) err = errno;
    if (!err && rename(af->tmp, af->path) != 0) err = errno;
    if (err) {
        pml_status st = pml_fail(PML_EIO, "cannot write '%s': %s", af->path, strerror(err));
        pml_afile_abort(af);
        return st;
    }
    /* make the rename itself durable; not every file system can sync a folder */
    char *dir = dir_of(af->path);
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
    return PML_OK;
}

pml_status pml_write_file_atomic(const char *path, const void *data, size_t len)
{
    pml_afile af;
    pml_status st = pml_afile_open(&af, path);
    if (st != PML_OK) return st;
    if (len && fwrite(data, 1, len, af.f) != len) {
        st = pml_fail(PML_EIO, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
        pml_afile_abort(&af);
        return st;
    }
    return pml_afile_commit(&af);
}

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
    size_t cap = S_ISREG(sb.st_mode) && (size_t)sb.st_size < max ? (size_t)sb.st_size + 1 : 4096;
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
