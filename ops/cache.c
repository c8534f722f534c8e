/* pml — caches: the one rule for where pml keeps what it measured and planned (machine
 * calibration, kernel costs, plans), an advisory lock per cache entry so that concurrent runs
 * measure once and never lose each other's lines, and a sweep of temporary files that killed
 * processes left behind.
 *
 * Folder   $XDG_CACHE_HOME/pml when XDG_CACHE_HOME is an absolute path, else $HOME/.cache/pml
 *          when HOME is (the XDG base directory rule: a relative value is ignored); neither:
 *          no disk cache, which is never an error.
 * Lock     flock(LOCK_EX) on DIR/NAME.lock, polled with LOCK_NB and short sleeps for a bounded
 *          time: a holder that never lets go (a stopped process) costs a wait, then the caller
 *          goes on without writing the cache. The lock files stay (removing one would let two
 *          processes lock different files of the same name).
 * Sweep    ".NAME.tmp-PID-N" files (pml_afile_open's temporary names) whose process is gone,
 *          regular files only, in the folder and its subfolders (plans/), once per process and
 *          folder. */
#include "ops/ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* mkdir -p: \return true when the folder exists afterwards. */
static bool make_dirs(const char *dir)
{
    char *d = strdup(dir);
    if (!d) return false;
    bool ok = true;
    for (char *p = d + 1; ok; p++) {
        if (*p != '/' && *p) continue;
        char was = *p;
        *p = 0;
        ok = mkdir(d, 0777) == 0 || errno == EEXIST;
        *p = was;
        if (!was) break;
    }
    free(d);
    struct stat sb;
    return ok && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ---------------------------------------------------------------- sweep */

/* The PID in a name of the form ".NAME.tmp-PID-N" (NAME not empty), or 0. */
static long tmp_name_pid(const char *name)
{
    if (name[0] != '.') return 0;
    const char *t = NULL;
    for (const char *s = strstr(name + 1, ".tmp-"); s; s = strstr(s + 1, ".tmp-")) t = s;
    if (!t || t == name + 1) return 0;
    const char *p = t + 5;
    long pid = 0;
    const char *d = p;
    while (*d >= '0' && *d <= '9' && d - p < 12) pid = pid * 10 + (*d++ - '0');
    if (d == p || *d != '-' || pid <= 0) return 0;
    const char *n = ++d;
    while (*d >= '0' && *d <= '9') d++;
    return d > n && !*d ? pid : 0;
}

/* Sweeps the folder open as dfd; its subfolders too when depth > 0. Takes dfd. */
static int sweep_fd(int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *name = e->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
        struct stat sb;
        if (fstatat(dirfd(d), name, &sb, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            if (depth <= 0) continue;
            int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) removed += sweep_fd(sub, depth - 1);
            continue;
        }
        if (!S_ISREG(sb.st_mode)) continue;
        long pid = tmp_name_pid(name);
        if (pid <= 0 || (pid_t)pid != pid) continue;
        /* EPERM: a live process of another user; only ESRCH says it is gone */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        if (unlinkat(dirfd(d), name, 0) == 0) removed++;
    }
    closedir(d);
    return removed;
}

int pml_cache_sweep(const char *dir)
{
    if (!dir || !*dir) return 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return dfd < 0 ? 0 : sweep_fd(dfd, 1);
}

/* The folders this process has opened (and swept), so each is swept once. */
#define SWEPT_MAX 16
static pthread_mutex_t swept_mu = PTHREAD_MUTEX_INITIALIZER;
static char *swept[SWEPT_MAX];
static int nswept;

bool pml_cache_open(const char *dir)
{
    if (!dir || !*dir || !make_dirs(dir)) return false;
    pthread_mutex_lock(&swept_mu);
    bool seen = false;
    for (int i = 0; i < nswept && !seen; i++) seen = strcmp(swept[i], dir) == 0;
    /* past SWEPT_MAX folders (only tests open so many) nothing more is swept */
    bool sweep = !seen && nswept < SWEPT_MAX && (swept[nswept] = strdup(dir)) != NULL;
    if (sweep) nswept++;
    pthread_mutex_unlock(&swept_mu);
    if (sweep) pml_cache_sweep(dir);
    return true;
}

/* ---------------------------------------------------------------- folder */

char *pml_cache_dir(const char *sub)
{
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char *top = NULL;
    if (x && x[0] == '/') {
        if (asprintf(&top, "%s/pml", x) < 0) return NULL;
    } else if (home && home[0] == '/') {
        if (asprintf(&top, "%s/.cache/pml", home) < 0) return NULL;
    } else {
        return NULL;
    }
    if (!pml_cache_open(top)) {
        free(top);
        return NULL;
    }
    if (!sub || !*sub) return top;
    char *dir = NULL;
    if (asprintf(&dir, "%s/%s", top, sub) < 0) dir = NULL;
    free(top);
    if (dir && !make_dirs(dir)) {
        free(dir);
        dir = NULL;
    }
    return dir;
}

/* ---------------------------------------------------------------- stamps */

pml_cache_stamp pml_cache_stamp_of(const char *path)
{
    pml_cache_stamp s;
    memset(&s, 0, sizeof s);
    struct stat sb;
    if (path && stat(path, &sb) == 0) {
        s.exists = true;
        s.dev = (uint64_t)sb.st_dev;
        s.ino = (uint64_t)sb.st_ino;
        s.size = (int64_t)sb.st_size;
        s.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    }
    return s;
}

bool pml_cache_stamp_same(const pml_cache_stamp *a, const pml_cache_stamp *b)
{
    if (a->exists != b->exists) return false;
    return !a->exists || (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
                          a->mtime_ns == b->mtime_ns);
}

/* ---------------------------------------------------------------- lock */

static int try_flock(int fd)
{
    int r;
    while ((r = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
    }
    return r;
}

bool pml_cache_lock_take(pml_cache_lock *l, const char *dir, const char *name, double wait_s)
{
    l->fd = -1;
    l->waited = l->timed_out = false;
    if (!dir || !*dir || !name || !*name || strchr(name, '/')) return false;
    char *path = NULL;
    if (asprintf(&path, "%s/%s.lock", dir, name) < 0) return false;
    /* O_NONBLOCK: a FIFO put there does not block the open; anything but a file is refused */
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0666);
    free(path);
    if (fd < 0) return false;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return false;
    }
    if (try_flock(fd) != 0) {
        if (errno != EWOULDBLOCK) { /* no locks on this file system: no cache writes */
            close(fd);
            return false;
        }
        l->waited = true;
        const double deadline = pml_now() + (wait_s > 0 ? wait_s : 0);
        long nap_us = 1000; /* 1 ms, doubling to 50 ms: a short hold costs little waiting */
        for (;;) {
            double left = deadline - pml_now();
            if (left <= 0) {
                l->timed_out = true;
                close(fd);
                return false;
            }
            long us = nap_us < left * 1e6 ? nap_us : (long)(left * 1e6) + 1;
            struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
            nanosleep(&ts, NULL);
            if (nap_us < 50000) nap_us *= 2;
            if (try_flock(fd) == 0) break;
            if (errno != EWOULDBLOCK) {
                close(fd);
                return false;
            }
        }
    }
    l->fd = fd;
    return true;
}

void pml_cache_unlock(pml_cache_lock *l)
{
    if (l->fd >= 0) close(l->fd); /* closing the only descriptor releases the lock */
    l->fd = -1;
}
