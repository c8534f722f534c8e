/* pml — checkpoints: everything a training run needs to go on exactly where it stopped.
 *
 * A checkpoint is one file, DIR/step-NNNNNNNNNNNN.ckpt (the updates done, 12 digits: names sort
 * in step order; a run across MPI ranks writes a folder of that name instead, a part per rank
 * and a manifest written last: "checkpoints across ranks" below), written as every pml file is (ops' pml_afile: a temporary file, flushed, fsynced
 * and renamed over the name, then the folder fsynced): a crash leaves the older checkpoints and
 * either all of the new one or none of it. The format (version 2; version 1 stored linear
 * weights (in, out) and is refused, as its Adam state cannot be resumed into another layout by
 * a copy):
 *
 *   pml checkpoint 2\n
 *   model HASH NAME\n          the model's signature (FNV-1a of its DOT text, 16 hex digits)
 *   run SEED BATCH STEP\n      seed (initialisation, shuffles, dropout), global batch, updates done
 *   plan PLAN\n                how it ran: "STRATEGY HASH" of its plan, or "none THREADS"
 *   optimizer KIND LR MOMENTUM BETA1 BETA2 EPS T\n   adam|sgd; floats in C's %a (exact); T steps
 *   tensor NAME COUNT CRC\n    params, m, v (Adam's moments; SGD: its velocity in m), state
 *   ...                        (batchnorm running statistics), in that order, each COUNT floats
 *   data CRC\n                 CRC-32C of the header above; then the tensors' bytes, float32
 *                              little-endian, one after another
 *
 * The data order of a run is a function of (seed, epoch), so the step count places the run in
 * its data; dropout masks follow the step and each sample's place; the plan and kernels are the
 * run's. A checkpoint resumed with the same plan gives the losses of an uninterrupted run, bit
 * for bit. Everything read is checked (format, signature, sizes, each tensor's CRC-32C): a file
 * that does not check is refused with its name and what is wrong. */
#include "runtime/runtime.h"

#include "models/models.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <stddef.h>

#define CKPT_MAGIC "pml checkpoint 2"
#define CKPT_NAME "step-%012ld.ckpt"
#define CKPT_TMP_NAME ".step-%012ld.ckpt.tmp" /* a checkpoint across ranks being written */
#define CKPT_OLD_NAME ".step-%012ld.ckpt.old" /* one of the same step it replaces */
#define CKPT_PART_NAME "part-%05d.ckpt"
#define CKPT_MANIFEST "manifest"
#define CKPT_PART_MAGIC "pml checkpoint part 2"
#define CKPT_MANIFEST_MAGIC "pml checkpoint manifest 2"
#define CKPT_MAX_HEADER 4096
#define CKPT_MAX_DOT ((size_t)256 << 20) /* a saved model's DOT text */

static const char *const tensor_names[4] = {"params", "m", "v", "state"};

/* CRC-32C (Castagnoli, as iSCSI and ext4 use): the SSE4.2 instruction where the CPU has it
 * (8 bytes a cycle or so: a checkpoint's checksum costs little beside its write), else a table */
static uint32_t crc32c_table[256];

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[i] = c;
    }
}

static uint32_t crc32c_sw(uint32_t c, const unsigned char *p, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc32c_init);
    for (size_t i = 0; i < n; i++) c = crc32c_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t c, const unsigned char *p,
                                                             size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
    }
    c = (uint32_t)c64;
    for (; n > 0; n--, p++) c = _mm_crc32_u8(c, *p);
    return c;
}
#endif

/* the running CRC-32C c (start from 0) extended by n bytes */
static uint32_t crc32c(uint32_t c, const void *data, size_t n)
{
    c = ~c;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return ~crc32c_hw(c, data, n);
#endif
    return ~crc32c_sw(c, data, n);
}

static uint32_t crc(const float *p, size_t n) { return crc32c(0, p, n * sizeof *p); }

/* a name as one header token: what would split it becomes '_' */
static void header_token(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src[0] ? src : "-");
    for (char *p = dst; *p; p++)
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') *p = '_';
}

/* The header lines a checkpoint file, a part and a manifest share, parsed into c: false when
 * malformed */
static bool parse_model(const char *line, pml_ckpt *c)
{
    return sscanf(line, "model %16" SCNx64 " %63s", &c->model_hash, c->model_name) == 2;
}

static bool parse_run(const char *line, pml_ckpt *c)
{
    return sscanf(line, "run %" SCNu64 " %d %ld", &c->seed, &c->batch, &c->step) == 3 &&
           c->batch >= 1 && c->step >= 0;
}

static bool parse_optimizer(const char *line, pml_ckpt *c)
{
    char kind[16];
    double lr, mom, b1, b2, eps;
    if (sscanf(line, "optimizer %15s %la %la %la %la %la %" SCNd64, kind, &lr, &mom, &b1, &b2,
               &eps, &c->optim.t) != 7 ||
        (strcmp(kind, "adam") != 0 && strcmp(kind, "sgd") != 0) || c->optim.t < 0)
        return false;
    c->optim.kind = strcmp(kind, "adam") == 0 ? PML_OPTIM_ADAM : PML_OPTIM_SGD;
    c->optim.lr = (float)lr;
    c->optim.momentum = (float)mom;
    c->optim.beta1 = (float)b1;
    c->optim.beta2 = (float)b2;
    c->optim.eps = (float)eps;
    return true;
}

/* The header lines a checkpoint file and a manifest share: model, run, plan and optimizer */
static int format_meta(char *head, size_t cap, const pml_ckpt *c)
{
    char name[sizeof c->model_name];
    header_token(name, sizeof name, c->model_name);
    return snprintf(head, cap,
                    "model %016" PRIx64 " %s\nrun %" PRIu64 " %d %ld\nplan %s\n"
                    "optimizer %s %a %a %a %a %a %" PRId64 "\n",
                    c->model_hash, name, c->seed, c->batch, c->step, c->plan[0] ? c->plan : "-",
                    c->optim.kind == PML_OPTIM_ADAM ? "adam" : "sgd", (double)c->optim.lr,
                    (double)c->optim.momentum, (double)c->optim.beta1, (double)c->optim.beta2,
                    (double)c->optim.eps, c->optim.t);
}

/* Memory for a tensor of a checkpoint: in 2 MiB huge pages where the kernel gives them (a page
 * fault per 2 MiB instead of per 4 KiB: on some virtual machines faulting in a large model's
 * fresh memory took longer than reading it from the disk) */
static float *big_alloc(size_t n)
{
    const size_t huge = (size_t)2 << 20, bytes = ((n ? n : 1) * sizeof(float) + huge - 1) & ~(huge - 1);
    float *p = aligned_alloc(huge, bytes);
    if (p && bytes >= huge) madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

pml_status pml_ckpt_alloc(pml_ckpt *c, size_t nparams, size_t nstate, bool m, bool v)
{
    c->nparams = nparams;
    c->nstate = nstate;
    c->params = big_alloc(nparams);
    c->state = big_alloc(nstate);
    c->m = m ? big_alloc(nparams) : NULL;
    c->v = v ? big_alloc(nparams) : NULL;
    if (!c->params || !c->state || (m && !c->m) || (v && !c->v)) {
        pml_ckpt_free(c);
        return pml_fail(PML_ENOMEM, "out of memory for a checkpoint of %zu parameters", nparams);
    }
    return PML_OK;
}

void pml_ckpt_free(pml_ckpt *c)
{
    free(c->params);
    free(c->m);
    free(c->v);
    free(c->state);
    memset(c, 0, sizeof *c);
}

static pml_status sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return pml_fail(PML_EIO, "%s: %s", dir, strerror(errno));
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r != 0 && e != EINVAL && e != EROFS) return pml_fail(PML_EIO, "%s: fsync: %s", dir, strerror(e));
    return PML_OK;
}

/* The step in a name fmt makes (its literal prefix skip characters long, then one %012ld), or
 * -1 for any other name */
static long name_step(const char *name, const char *fmt, size_t skip)
{
    if (strncmp(name, fmt, skip) != 0 || name[skip] < '0' || name[skip] > '9') return -1;
    char *end;
    errno = 0;
    const long s = strtol(name + skip, &end, 10);
    if (errno || s < 0) return -1;
    char want[64];
    snprintf(want, sizeof want, fmt, s);
    return strcmp(want, name) == 0 ? s : -1;
}

/* dir/name is a checkpoint that counts: a file, or a folder (across ranks) with its manifest.
 * *folder: it is a folder. */
static bool complete(const char *dir, const char *name, bool *folder)
{
    char p[4096];
    struct stat sb;
    *folder = false;
    if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, name) >= sizeof p || stat(p, &sb) != 0)
        return false;
    if (S_ISREG(sb.st_mode)) return true;
    if (!S_ISDIR(sb.st_mode)) return false;
    *folder = true;
    if ((size_t)snprintf(p, sizeof p, "%s/%s/" CKPT_MANIFEST, dir, name) >= sizeof p) return false;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Removes path: a file, or a folder of files (a checkpoint across ranks) */
static void remove_path(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    rmdir(path);
}

static void sort_steps(long *a, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort: a few names */
        for (int j = i; j > 0 && a[j - 1] > a[j]; j--) {
            const long t = a[j];
            a[j] = a[j - 1];
            a[j - 1] = t;
        }
}

/* The steps in dir, ascending, *n of them (malloc'd): of the checkpoints that count (all true),
 * or of what a checkpoint across ranks left unfinished (all false: a folder step-N.ckpt without
 * its manifest, a temporary .step-N.ckpt.tmp or .step-N.ckpt.old) */
static pml_status list_steps_which(const char *dir, bool counted, long **steps, int *n)
{
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return pml_fail(PML_EIO, "checkpoint folder '%s': %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    pml_status st = PML_OK;
    while ((e = readdir(d))) {
        long s = name_step(e->d_name, CKPT_NAME, 5);
        bool folder, keep;
        if (s >= 0) {
            const bool done = complete(dir, e->d_name, &folder);
            keep = counted ? done : !done && folder;
        } else {
            s = name_step(e->d_name, CKPT_TMP_NAME, 6);
            if (s < 0) s = name_step(e->d_name, CKPT_OLD_NAME, 6);
            keep = !counted && s >= 0;
        }
        if (!keep) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            long *a = realloc(*steps, (size_t)cap * sizeof *a);
            if (!a) {
                st = pml_fail(PML_ENOMEM, "out of memory");
                break;
            }
            *steps = a;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (st != PML_OK) {
        free(*steps);
        *steps = NULL;
        *n = 0;
        return st;
    }
    sort_steps(*steps, *n);
    return PML_OK;
}

static pml_status list_steps(const char *dir, long **steps, int *n)
{
    return list_steps_which(dir, true, steps, n);
}

/* With the checkpoint of `step` in place: the older ones beyond `keep` go (0: none), and what
 * checkpoints across ranks left unfinished up to `step` (a run killed while writing one) */
static void prune(const char *dir, int keep, long step)
{
    long *steps;
    int count;
    char old[4096];
    if (keep > 0 && list_steps(dir, &steps, &count) == PML_OK) {
        for (int i = 0; i + keep < count; i++)
            if ((size_t)snprintf(old, sizeof old, "%s/" CKPT_NAME, dir, steps[i]) < sizeof old)
                remove_path(old);
        free(steps);
    }
    if (list_steps_which(dir, false, &steps, &count) == PML_OK) {
        for (int i = 0; i < count; i++) {
            bool folder;
            const char *const names[3] = {CKPT_NAME, CKPT_TMP_NAME, CKPT_OLD_NAME};
            for (int k = 0; k < 3; k++) {
                if ((size_t)snprintf(old, sizeof old, "%s/", dir) >= sizeof old - 64) break;
                char *leaf = old + strlen(old);
                snprintf(leaf, 64, names[k], steps[i]);
                if (access(old, F_OK) != 0) continue;
                /* a folder without a manifest is never one being written (that has a temporary
                 * name); a temporary one past `step` may be, by another rank already */
                if (k == 0 ? !complete(dir, leaf, &folder) && folder : steps[i] <= step)
                    remove_path(old);
            }
        }
        free(steps);
    }
}

/* a checkpoint file (or part) is written as every pml file is, and only as a regular file */
static pml_status open_regular(pml_afile *af, const char *what, const char *path)
{
    pml_status st = pml_afile_open(af, path);
    if (st != PML_OK) return st;
    if (af->how != PML_AFILE_NAMED && af->how != PML_AFILE_UNNAMED) {
        pml_afile_abort(af);
        return pml_fail(PML_EINVAL, "%s '%s' must be a regular file", what, path);
    }
    return PML_OK;
}

/* The data written after the header: its four checksums and the header's own go into the
 * header's places (at[k], "data " at data_at), and the header is written again over the first.
 * *header_sum (when not NULL): the header's checksum. On failure the file is abandoned. */
static pml_status finish_header(pml_afile *af, const char *path, char *head, int len,
                                const int at[4], int data_at, const uint32_t sum[4],
                                uint32_t *header_sum)
{
    char hex[9];
    for (int k = 0; k < 4; k++) {
        snprintf(hex, sizeof hex, "%08" PRIx32, sum[k]);
        memcpy(head + at[k], hex, 8);
    }
    const uint32_t hs = crc32c(0, head, (size_t)data_at);
    if (header_sum) *header_sum = hs;
    snprintf(hex, sizeof hex, "%08" PRIx32, hs);
    memcpy(head + data_at + 5, hex, 8);
    if (!ferror(af->f) && fseek(af->f, 0, SEEK_SET) == 0) fwrite(head, 1, (size_t)len, af->f);
    if (ferror(af->f) || fflush(af->f) != 0) {
        const int e = errno;
        pml_afile_abort(af);
        return pml_fail(PML_EIO, "%s: writing failed: %s", path, strerror(e));
    }
    return PML_OK;
}

pml_status pml_ckpt_write(const char *dir, const pml_ckpt *c, int keep)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return pml_fail(PML_EIO, "checkpoint folder '%s': %s", dir, strerror(errno));
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/" CKPT_NAME, dir, c->step) >= sizeof path)
        return pml_fail(PML_EINVAL, "checkpoint folder '%s': the name is too long", dir);
    const float *t[4] = {c->params, c->m, c->v, c->state};
    const size_t n[4] = {c->nparams, c->m ? c->nparams : 0, c->v ? c->nparams : 0, c->nstate};
    /* a folder of the same step (a run across ranks wrote it): moved aside, removed once this
     * one is in place */
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        char old[4096];
        if ((size_t)snprintf(old, sizeof old, "%s/" CKPT_OLD_NAME, dir, c->step) >= sizeof old)
            return pml_fail(PML_EINVAL, "checkpoint folder '%s': the name is too long", dir);
        remove_path(old);
        if (rename(path, old) != 0)
            return pml_fail(PML_EIO, "checkpoint '%s': cannot replace it: %s", path, strerror(errno));
    }
    pml_afile af;
    pml_status st = open_regular(&af, "checkpoint", path);
    if (st != PML_OK) return st;
    /* the header, in memory: its checksums are filled in once the data is out, then it is
     * written again in place (same length); the data line's checksum covers the header */
    char head[CKPT_MAX_HEADER];
    int len = snprintf(head, sizeof head, CKPT_MAGIC "\n");
    len += format_meta(head + len, sizeof head - (size_t)len, c);
    int at[4];
    for (int k = 0; k < 4 && len > 0 && len < (int)sizeof head - 64; k++) {
        len += snprintf(head + len, sizeof head - (size_t)len, "tensor %s %zu ", tensor_names[k], n[k]);
        at[k] = len;
        len += snprintf(head + len, sizeof head - (size_t)len, "00000000\n");
    }
    if (len <= 0 || len > (int)sizeof head - 16) {
        pml_afile_abort(&af);
        return pml_fail(PML_EINVAL, "%s: the header does not fit", path);
    }
    const int data_at = len;
    len += snprintf(head + len, sizeof head - (size_t)len, "data 00000000\n");
    fwrite(head, 1, (size_t)len, af.f);
    uint32_t sum[4] = {0, 0, 0, 0};
    enum { CHUNK = 1 << 18 }; /* floats: 1 MiB, summed while in cache, then written */
    for (int k = 0; k < 4 && !ferror(af.f); k++)
        for (size_t i = 0; i < n[k]; i += CHUNK) {
            const size_t m = n[k] - i < CHUNK ? n[k] - i : CHUNK;
            sum[k] = crc32c(sum[k], t[k] + i, m * sizeof(float));
            if (fwrite(t[k] + i, sizeof(float), m, af.f) != m) break;
        }
    if ((st = finish_header(&af, path, head, len, at, data_at, sum, NULL)) != PML_OK) return st;
    if ((st = pml_afile_commit(&af)) != PML_OK) return st;
    if ((st = sync_dir(dir)) != PML_OK) return st;
    prune(dir, keep, c->step); /* only now, with the new one in place */
    return PML_OK;
}

pml_status pml_ckpt_newest(const char *dir, char *path, size_t cap)
{
    /* a checkpoint across ranks (a folder step-N.ckpt) named itself: that one */
    char leaf[4096];
    if ((size_t)snprintf(leaf, sizeof leaf, "%s", dir) >= sizeof leaf)
        return pml_fail(PML_EINVAL, "checkpoint folder '%s': the name is too long", dir);
    for (size_t k = strlen(leaf); k > 1 && leaf[k - 1] == '/'; k--) leaf[k - 1] = 0;
    const char *base = strrchr(leaf, '/');
    if (name_step(base ? base + 1 : leaf, CKPT_NAME, 5) >= 0) {
        if ((size_t)snprintf(path, cap, "%s", dir) >= cap)
            return pml_fail(PML_EINVAL, "checkpoint '%s': the name is too long", dir);
        return PML_OK;
    }
    long *steps;
    int n;
    pml_status st = list_steps(dir, &steps, &n);
    if (st != PML_OK) return st;
    if (n == 0) {
        free(steps);
        return pml_fail(PML_EINVAL, "checkpoint folder '%s' has no checkpoint (step-N.ckpt)", dir);
    }
    const long s = steps[n - 1];
    free(steps);
    if ((size_t)snprintf(path, cap, "%s/" CKPT_NAME, dir, s) >= cap)
        return pml_fail(PML_EINVAL, "checkpoint folder '%s': the name is too long", dir);
    return PML_OK;
}

static pml_status bad_in(const char *kind, const char *path, const char *what)
{
    return pml_fail(PML_EFORMAT, "%s '%s': %s", kind, path, what);
}

static pml_status bad(const char *path, const char *what) { return bad_in("checkpoint", path, what); }

/* The next n floats of f, checked against their CRC-32C, into *out (huge pages; NULL when n is
 * 0); kind names the file in messages ("checkpoint", "saved model") */
static pml_status read_tensor(FILE *f, const char *kind, const char *path, const char *name,
                              size_t n, uint32_t sum, float **out)
{
    *out = NULL;
    if (!n) return PML_OK;
    if (!(*out = big_alloc(n)))
        return pml_fail(PML_ENOMEM, "out of memory reading %s '%s'", kind, path);
    if (fread(*out, sizeof(float), n, f) != n) return bad_in(kind, path, "cut short in its data");
    if (crc(*out, n) != sum) {
        char m[96];
        snprintf(m, sizeof m, "tensor '%s' does not match its checksum (the file is damaged)", name);
        return bad_in(kind, path, m);
    }
    return PML_OK;
}

static pml_status read_ranks(const char *path, pml_ckpt *c);

pml_status pml_ckpt_read(const char *path, pml_ckpt *c)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return read_ranks(path, c);
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) return pml_fail(PML_EIO, "checkpoint '%s': %s", path, strerror(errno));
    pml_status st = PML_OK;
    char line[CKPT_MAX_HEADER];
    size_t n[4] = {0};
    uint32_t sum[4] = {0};
    char head[CKPT_MAX_HEADER];
    size_t hlen = 0; /* the header so far: its checksum is on the data line */
#define LINE(what) \
    if (!fgets(line, sizeof line, f) || !strchr(line, '\n') || \
        hlen + strlen(line) >= sizeof head) { st = bad(path, what); goto out; } \
    memcpy(head + hlen, line, strlen(line)); \
    hlen += strlen(line);
    LINE("not a pml checkpoint (empty or cut short)");
    if (strcmp(line, CKPT_MAGIC "\n") != 0) {
        st = bad(path, strncmp(line, "pml checkpoint ", 15) == 0
                           ? strcmp(line, "pml checkpoint 1\n") == 0
                                 ? "a checkpoint format this pml does not read (version 1, of an "
                                   "older pml; it reads version 2: start the run again)"
                                 : "a checkpoint format this pml does not read (it reads version 2)"
                           : "not a pml checkpoint");
        goto out;
    }
    LINE("cut short in its header");
    if (!parse_model(line, c)) {
        st = bad(path, "a malformed model line");
        goto out;
    }
    LINE("cut short in its header");
    if (!parse_run(line, c)) {
        st = bad(path, "a malformed run line");
        goto out;
    }
    LINE("cut short in its header");
    if (sscanf(line, "plan %79[^\n]", c->plan) != 1) {
        st = bad(path, "a malformed plan line");
        goto out;
    }
    LINE("cut short in its header");
    if (!parse_optimizer(line, c)) {
        st = bad(path, "a malformed optimizer line");
        goto out;
    }
    for (int k = 0; k < 4; k++) {
        LINE("cut short in its header");
        char name[16];
        if (sscanf(line, "tensor %15s %zu %8" SCNx32, name, &n[k], &sum[k]) != 3 ||
            strcmp(name, tensor_names[k]) != 0 || n[k] > ((size_t)1 << 40)) {
            char m[96];
            snprintf(m, sizeof m, "a malformed line for tensor '%s'", tensor_names[k]);
            st = bad(path, m);
            goto out;
        }
    }
    LINE("cut short in its header");
    uint32_t hsum;
    if (sscanf(line, "data %8" SCNx32, &hsum) != 1 || strlen(line) != 14) {
        st = bad(path, "no data line after the tensors");
        goto out;
    }
    if (crc32c(0, head, hlen - strlen(line)) != hsum) {
        st = bad(path, "its header does not match its checksum (the file is damaged)");
        goto out;
    }
    c->nparams = n[0];
    c->nstate = n[3];
    if ((n[1] && n[1] != n[0]) || (n[2] && n[2] != n[0]) ||
        (c->optim.kind == PML_OPTIM_ADAM && (!n[1] || !n[2]))) {
        st = bad(path, "its optimizer state does not match its parameters");
        goto out;
    }
    float **dst[4] = {&c->params, &c->m, &c->v, &c->state};
    for (int k = 0; k < 4; k++)
        if ((st = read_tensor(f, "checkpoint", path, tensor_names[k], n[k], sum[k], dst[k])) != PML_OK)
            goto out;
    if (fgetc(f) != EOF) st = bad(path, "bytes after its data");
#undef LINE
out:
    fclose(f);
    if (st != PML_OK) pml_ckpt_free(c);
    return st;
}

/* ---------------------------------------------------------------- checkpoints across ranks
 *
 * A run across MPI ranks writes a checkpoint as a folder, DIR/step-NNNNNNNNNNNN.ckpt/, first under
 * the temporary name DIR/.step-NNNNNNNNNNNN.ckpt.tmp: each rank writes its part,
 * part-RRRRR.ckpt (the floats it keeps: ranges of each tensor), fsynced and renamed into the
 * folder as any pml file; rank 0 gathers every part's size and checksum, writes the manifest
 * last, fsyncs it and the folder, renames the folder into place and fsyncs DIR. Only a folder
 * with its manifest counts: a run killed while writing leaves a temporary or manifest-less
 * folder, which resuming passes over and the next checkpoint's pruning removes.
 *
 *   pml checkpoint part 2\n
 *   model HASH NAME\n  run SEED BATCH STEP\n   as the manifest's
 *   part R N\n                 rank R of N wrote it
 *   tensor NAME RANGES COUNT CRC\n   params, m, v, state: RANGES (offset, floats) pairs, uint64
 *   ...                        little-endian, then COUNT floats (the ranges' floats in order);
 *                              CRC-32C of both
 *   data CRC\n                 CRC-32C of the header above; then each tensor's ranges and floats
 *
 *   pml checkpoint manifest 2\n
 *   model, run, plan, optimizer lines as a checkpoint file's
 *   tensor NAME COUNT\n        params, m, v, state: the whole tensors' floats
 *   parts N\n
 *   part part-RRRRR.ckpt BYTES CRC\n   one a rank: its size and the CRC-32C on its data line (the
 *   ...                        checksum of its header, which holds its tensors' checksums)
 *   end CRC\n                  CRC-32C of the manifest above
 *
 * A float no part holds is 0 (the ranks keep no value there: padding). */

static const char *const tensor_line[4] = {"params", "m", "v", "state"};

/* Writes this rank's part into folder tmp: its size and header checksum into *bytes, *sum */
static pml_status write_part(const char *tmp, const pml_ckpt *c, const pml_ckpt_ranges r[4],
                             int rank, int ranks, size_t *bytes, uint32_t *sum)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/" CKPT_PART_NAME, tmp, rank) >= sizeof path)
        return pml_fail(PML_EINVAL, "checkpoint folder '%s': the name is too long", tmp);
    const float *t[4] = {c->params, c->m, c->v, c->state};
    size_t floats[4] = {0, 0, 0, 0};
    const size_t n[4] = {c->nparams, c->m ? c->nparams : 0, c->v ? c->nparams : 0, c->nstate};
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < r[k].count; i++) {
            if (!t[k] || r[k].lo[i] > n[k] || r[k].n[i] > n[k] - r[k].lo[i])
                return pml_fail(PML_EINVAL, "checkpoint part '%s': a range of tensor '%s' "
                                            "beyond its %zu floats", path, tensor_line[k], n[k]);
            floats[k] += r[k].n[i];
        }
    pml_afile af;
    pml_status st = open_regular(&af, "checkpoint part", path);
    if (st != PML_OK) return st;
    char head[CKPT_MAX_HEADER], name[sizeof c->model_name];
    header_token(name, sizeof name, c->model_name);
    int len = snprintf(head, sizeof head,
                       CKPT_PART_MAGIC "\nmodel %016" PRIx64 " %s\nrun %" PRIu64 " %d %ld\n"
                                       "part %d %d\n",
                       c->model_hash, name, c->seed, c->batch, c->step, rank, ranks);
    int at[4];
    for (int k = 0; k < 4; k++) {
        len += snprintf(head + len, sizeof head - (size_t)len, "tensor %s %zu %zu ", tensor_line[k],
                        r[k].count, floats[k]);
        at[k] = len;
        len += snprintf(head + len, sizeof head - (size_t)len, "00000000\n");
    }
    const int data_at = len;
    len += snprintf(head + len, sizeof head - (size_t)len, "data 00000000\n");
    fwrite(head, 1, (size_t)len, af.f);
    size_t total = (size_t)len;
    uint32_t crcs[4] = {0, 0, 0, 0};
    enum { CHUNK = 1 << 18 };
    for (int k = 0; k < 4 && !ferror(af.f); k++) {
        for (size_t i = 0; i < r[k].count && !ferror(af.f); i++) {
            const uint64_t pair[2] = {r[k].lo[i], r[k].n[i]}; /* little-endian on x86-64 */
            crcs[k] = crc32c(crcs[k], pair, sizeof pair);
            fwrite(pair, sizeof pair, 1, af.f);
            total += sizeof pair;
        }
        for (size_t i = 0; i < r[k].count && !ferror(af.f); i++)
            for (size_t j = 0; j < r[k].n[i]; j += CHUNK) {
                const size_t m = r[k].n[i] - j < CHUNK ? r[k].n[i] - j : CHUNK;
                const float *p = t[k] + r[k].lo[i] + j;
                crcs[k] = crc32c(crcs[k], p, m * sizeof(float));
                if (fwrite(p, sizeof(float), m, af.f) != m) break;
                total += m * sizeof(float);
            }
    }
    st = finish_header(&af, path, head, len, at, data_at, crcs, sum);
    if (st != PML_OK) return st;
    *bytes = total;
    return pml_afile_commit(&af); /* fsynced, renamed, the folder fsynced */
}

/* Rank 0, every part written (parts[r]: its size and checksum): the manifest, then the folder
 * into place */
static pml_status commit_ranks(const char *dir, const char *tmp, const pml_ckpt *c, int ranks,
                               const size_t *bytes, const uint32_t *sums)
{
    char path[4096], final[4096], old[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/" CKPT_MANIFEST, tmp) >= sizeof path ||
        (size_t)snprintf(final, sizeof final, "%s/" CKPT_NAME, dir, c->step) >= sizeof final ||
        (size_t)snprintf(old, sizeof old, "%s/" CKPT_OLD_NAME, dir, c->step) >= sizeof old)
        return pml_fail(PML_EINVAL, "checkpoint folder '%s': the name is too long", dir);
    const size_t cap = 1024 + (size_t)ranks * 64;
    char *text = malloc(cap);
    if (!text) return pml_fail(PML_ENOMEM, "out of memory");
    size_t len = (size_t)snprintf(text, cap, CKPT_MANIFEST_MAGIC "\n");
    len += (size_t)format_meta(text + len, cap - len, c);
    const size_t n[4] = {c->nparams, c->m ? c->nparams : 0, c->v ? c->nparams : 0, c->nstate};
    for (int k = 0; k < 4; k++)
        len += (size_t)snprintf(text + len, cap - len, "tensor %s %zu\n", tensor_line[k], n[k]);
    len += (size_t)snprintf(text + len, cap - len, "parts %d\n", ranks);
    for (int r = 0; r < ranks; r++)
        len += (size_t)snprintf(text + len, cap - len, "part " CKPT_PART_NAME " %zu %08" PRIx32 "\n",
                                r, bytes[r], sums[r]);
    len += (size_t)snprintf(text + len, cap - len, "end %08" PRIx32 "\n", crc32c(0, text, len));
    pml_status st = len < cap ? pml_write_file_atomic(path, text, len)
                              : pml_fail(PML_EINVAL, "%s: the manifest does not fit", path);
    free(text);
    if (st != PML_OK) return st;
    if ((st = sync_dir(tmp)) != PML_OK) return st;
    /* the same step already there (a run resumed before it): moved aside, then replaced */
    struct stat sb;
    const bool was = lstat(final, &sb) == 0;
    if (was) {
        remove_path(old);
        if (rename(final, old) != 0)
            return pml_fail(PML_EIO, "checkpoint '%s': cannot replace it: %s", final, strerror(errno));
    }
    if (rename(tmp, final) != 0)
        return pml_fail(PML_EIO, "checkpoint '%s': cannot rename '%s' to it: %s", final, tmp,
                        strerror(errno));
    if ((st = sync_dir(dir)) != PML_OK) return st;
    if (was) remove_path(old);
    return PML_OK;
}

pml_status pml_ckpt_write_ranks(const char *dir, const pml_ckpt *c, const pml_ckpt_ranges r[4],
                                pml_dist *d, int keep)
{
    const int rank = pml_dist_rank(d), ranks = pml_dist_size(d);
    char tmp[4096];
    pml_status st = PML_OK;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/" CKPT_TMP_NAME, dir, c->step) >= sizeof tmp)
        st = pml_fail(PML_EINVAL, "checkpoint folder '%s': the name is too long", dir);
    else if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        st = pml_fail(PML_EIO, "checkpoint folder '%s': %s", dir, strerror(errno));
    else if (mkdir(tmp, 0777) != 0 && errno != EEXIST) /* every rank: whoever comes first */
        st = pml_fail(PML_EIO, "checkpoint folder '%s': %s", tmp, strerror(errno));
    size_t bytes = 0;
    uint32_t sum = 0;
    if (st == PML_OK) st = write_part(tmp, c, r, rank, ranks, &bytes, &sum);
    /* every rank's outcome to rank 0, a line each: "R BYTES CRC", or "R ! MESSAGE" */
    char line[1200];
    int len;
    if (st == PML_OK) {
        len = snprintf(line, sizeof line, "%d %zu %08" PRIx32 "\n", rank, bytes, sum);
    } else {
        len = snprintf(line, sizeof line, "%d ! %.1100s", rank, pml_errmsg());
        for (char *p = line; *p; p++)
            if (*p == '\n') *p = ' ';
        len = (int)strlen(line);
        line[len++] = '\n';
        line[len] = 0;
    }
    char *all = NULL;
    size_t alllen = 0;
    pml_status gs = pml_dist_gather(d, line, (size_t)len, &all, &alllen);
    if (gs != PML_OK) return gs;
    if (rank != 0) {
        free(all);
        return st;
    }
    size_t *sizes = calloc((size_t)ranks, sizeof *sizes);
    uint32_t *sums = calloc((size_t)ranks, sizeof *sums);
    if (!sizes || !sums) st = pml_fail(PML_ENOMEM, "out of memory");
    const char *p = all;
    for (int i = 0; st == PML_OK && i < ranks; i++) {
        const char *nl = strchr(p, '\n');
        const size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        int who = -1;
        size_t b;
        uint32_t s;
        if (sscanf(p, "%d %zu %8" SCNx32, &who, &b, &s) == 3 && who == i) {
            sizes[i] = b;
            sums[i] = s;
        } else {
            const char *msg = memmem(p, ll, " ! ", 3);
            st = pml_fail(PML_EIO, "rank %d could not write its part: %.*s", i,
                          msg ? (int)(ll - (size_t)(msg + 3 - p)) : 12, msg ? msg + 3 : "(no message)");
        }
        p = nl ? nl + 1 : p + ll;
    }
    free(all);
    if (st == PML_OK) st = commit_ranks(dir, tmp, c, ranks, sizes, sums);
    free(sizes);
    free(sums);
    if (st != PML_OK) {
        remove_path(tmp); /* every rank is done with it */
        return st;
    }
    prune(dir, keep, c->step);
    return PML_OK;
}

/* ---------------------------------------------------------------- reading one across ranks */

/* One part of a checkpoint across ranks, checked against its manifest (its size and header
 * checksum, m's model, run) and its own checksums, into c's tensors */
static pml_status read_part(const char *path, const pml_ckpt *m, int rank, int ranks, size_t bytes,
                            uint32_t want, pml_ckpt *c)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return pml_fail(errno == ENOENT ? PML_EFORMAT : PML_EIO,
                        "checkpoint part '%s': %s (its manifest lists it)", path,
                        errno == ENOENT ? "missing" : strerror(errno));
    if (!S_ISREG(sb.st_mode) || (size_t)sb.st_size != bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "%lld bytes, its manifest says %zu (the file is damaged or cut short)",
                 (long long)sb.st_size, bytes);
        return bad_in("checkpoint part", path, msg);
    }
    FILE *f = fopen(path, "rb");
    if (!f) return pml_fail(PML_EIO, "checkpoint part '%s': %s", path, strerror(errno));
    pml_status st = PML_OK;
    char line[CKPT_MAX_HEADER], head[CKPT_MAX_HEADER];
    size_t hlen = 0, nr[4], nf[4];
    uint32_t sums[4];
    pml_ckpt h;
    memset(&h, 0, sizeof h);
    int pr = -1, pn = -1;
    uint64_t *pairs = NULL;
    const size_t n[4] = {c->nparams, c->m ? c->nparams : 0, c->v ? c->nparams : 0, c->nstate};
    float *dst[4] = {c->params, c->m, c->v, c->state};
#define PLINE(what) \
    if (!fgets(line, sizeof line, f) || !strchr(line, '\n') || \
        hlen + strlen(line) >= sizeof head) { st = bad_in("checkpoint part", path, what); goto out; } \
    memcpy(head + hlen, line, strlen(line)); \
    hlen += strlen(line);
    PLINE("not a pml checkpoint part (empty or cut short)");
    if (strcmp(line, CKPT_PART_MAGIC "\n") != 0) {
        st = bad_in("checkpoint part", path, "not a pml checkpoint part");
        goto out;
    }
    PLINE("cut short in its header");
    if (!parse_model(line, &h)) { st = bad_in("checkpoint part", path, "a malformed model line"); goto out; }
    PLINE("cut short in its header");
    if (!parse_run(line, &h)) { st = bad_in("checkpoint part", path, "a malformed run line"); goto out; }
    PLINE("cut short in its header");
    if (sscanf(line, "part %d %d", &pr, &pn) != 2) {
        st = bad_in("checkpoint part", path, "a malformed part line");
        goto out;
    }
    for (int k = 0; k < 4; k++) {
        PLINE("cut short in its header");
        char name[16];
        if (sscanf(line, "tensor %15s %zu %zu %8" SCNx32, name, &nr[k], &nf[k], &sums[k]) != 4 ||
            strcmp(name, tensor_line[k]) != 0 || nr[k] > bytes / 16 || nf[k] > bytes / 4) {
            char msg[96];
            snprintf(msg, sizeof msg, "a malformed line for tensor '%s'", tensor_line[k]);
            st = bad_in("checkpoint part", path, msg);
            goto out;
        }
    }
    PLINE("cut short in its header");
    uint32_t hsum;
    if (sscanf(line, "data %8" SCNx32, &hsum) != 1 || strlen(line) != 14) {
        st = bad_in("checkpoint part", path, "no data line after the tensors");
        goto out;
    }
#undef PLINE
    if (crc32c(0, head, hlen - strlen(line)) != hsum) {
        st = bad_in("checkpoint part", path, "its header does not match its checksum (the file is damaged)");
        goto out;
    }
    if (hsum != want) {
        st = bad_in("checkpoint part", path, "not the part its manifest lists (their checksums differ)");
        goto out;
    }
    if (h.model_hash != m->model_hash || h.step != m->step || h.seed != m->seed ||
        h.batch != m->batch || pr != rank || pn != ranks) {
        st = bad_in("checkpoint part", path, "of another checkpoint than its manifest");
        goto out;
    }
    size_t expect = hlen;
    for (int k = 0; k < 4; k++) expect += nr[k] * 16 + nf[k] * 4;
    if (expect != bytes) {
        st = bad_in("checkpoint part", path, "its header does not add up to its size");
        goto out;
    }
    for (int k = 0; k < 4; k++) {
        free(pairs);
        if (!(pairs = malloc(nr[k] ? nr[k] * 16 : 1))) {
            st = pml_fail(PML_ENOMEM, "out of memory reading checkpoint part '%s'", path);
            goto out;
        }
        if (fread(pairs, 16, nr[k], f) != nr[k]) {
            st = bad_in("checkpoint part", path, "cut short in its data");
            goto out;
        }
        uint32_t s = crc32c(0, pairs, nr[k] * 16);
        size_t got = 0;
        bool ok = true;
        for (size_t i = 0; i < nr[k] && ok; i++) {
            const uint64_t lo = pairs[2 * i], cnt = pairs[2 * i + 1];
            if (lo > n[k] || cnt > n[k] - lo || cnt > nf[k] - got) {
                ok = false;
                break;
            }
            if (fread(dst[k] + lo, sizeof(float), cnt, f) != cnt) {
                st = bad_in("checkpoint part", path, "cut short in its data");
                goto out;
            }
            s = crc32c(s, dst[k] + lo, cnt * sizeof(float));
            got += cnt;
        }
        if (!ok || got != nf[k] || s != sums[k]) {
            char msg[128];
            snprintf(msg, sizeof msg, ok && got == nf[k]
                                          ? "tensor '%s' does not match its checksum (the file is damaged)"
                                          : "tensor '%s' has ranges beyond the checkpoint's tensor",
                     tensor_line[k]);
            st = bad_in("checkpoint part", path, msg);
            goto out;
        }
    }
out:
    free(pairs);
    fclose(f);
    return st;
}

/* A checkpoint across ranks, folder path: its manifest, then every part it lists */
static pml_status read_ranks(const char *path, pml_ckpt *c)
{
    memset(c, 0, sizeof *c);
    char mpath[4096];
    if ((size_t)snprintf(mpath, sizeof mpath, "%s/" CKPT_MANIFEST, path) >= sizeof mpath)
        return pml_fail(PML_EINVAL, "checkpoint '%s': the name is too long", path);
    FILE *f = fopen(mpath, "rb");
    if (!f)
        return errno == ENOENT
                   ? bad(path, "a folder without a manifest (a checkpoint across ranks whose "
                               "writing was cut short: it does not count)")
                   : pml_fail(PML_EIO, "checkpoint '%s': %s", mpath, strerror(errno));
    struct stat sb;
    char *text = NULL;
    pml_status st = PML_OK;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size > (64 << 20)) {
        st = bad_in("checkpoint manifest", mpath, "not a manifest (too large)");
        goto out;
    }
    const size_t size = (size_t)sb.st_size;
    if (!(text = malloc(size + 1))) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto out;
    }
    if (fread(text, 1, size, f) != size) {
        st = pml_fail(PML_EIO, "checkpoint manifest '%s': cannot read it", mpath);
        goto out;
    }
    text[size] = 0;
    if (size < 14 || text[size - 1] != '\n' || strlen(text) != size) {
        st = bad_in("checkpoint manifest", mpath, "not a pml checkpoint manifest (cut short?)");
        goto out;
    }
    /* the last line: its checksum */
    size_t last = size - 1;
    while (last > 0 && text[last - 1] != '\n') last--;
    uint32_t want;
    if (sscanf(text + last, "end %8" SCNx32, &want) != 1 || size - last != 13) {
        st = bad_in("checkpoint manifest", mpath, "no end line (cut short or damaged)");
        goto out;
    }
    if (crc32c(0, text, last) != want) {
        st = bad_in("checkpoint manifest", mpath, "does not match its checksum (the file is damaged)");
        goto out;
    }
    char *lines[10];
    char *q = text;
    for (int i = 0; i < 10; i++) {
        char *nl = strchr(q, '\n');
        if (!nl || (size_t)(q - text) >= last) {
            st = bad_in("checkpoint manifest", mpath, "cut short in its header");
            goto out;
        }
        *nl = 0;
        lines[i] = q;
        q = nl + 1;
    }
    size_t n[4];
    int ranks = 0;
    if (strcmp(lines[0], CKPT_MANIFEST_MAGIC) != 0) {
        st = bad_in("checkpoint manifest", mpath, strncmp(lines[0], "pml checkpoint manifest ", 24) == 0
                                                       ? "a manifest format this pml does not read (it reads version 2)"
                                                       : "not a pml checkpoint manifest");
        goto out;
    }
    if (!parse_model(lines[1], c) || !parse_run(lines[2], c) ||
        sscanf(lines[3], "plan %79[^\n]", c->plan) != 1 || !parse_optimizer(lines[4], c)) {
        st = bad_in("checkpoint manifest", mpath, "a malformed header");
        goto out;
    }
    for (int k = 0; k < 4; k++) {
        char name[16];
        if (sscanf(lines[5 + k], "tensor %15s %zu", name, &n[k]) != 2 ||
            strcmp(name, tensor_line[k]) != 0 || n[k] > ((size_t)1 << 40)) {
            st = bad_in("checkpoint manifest", mpath, "a malformed tensor line");
            goto out;
        }
    }
    if (sscanf(lines[9], "parts %d", &ranks) != 1 || ranks < 1 || ranks > (1 << 20)) {
        st = bad_in("checkpoint manifest", mpath, "a malformed parts line");
        goto out;
    }
    if ((n[1] && n[1] != n[0]) || (n[2] && n[2] != n[0]) ||
        (c->optim.kind == PML_OPTIM_ADAM && (!n[1] || !n[2]))) {
        st = bad_in("checkpoint manifest", mpath, "its optimizer state does not match its parameters");
        goto out;
    }
    pml_ckpt meta = *c;
    if ((st = pml_ckpt_alloc(c, n[0], n[3], n[1] != 0, n[2] != 0)) != PML_OK) goto out;
    memcpy(c, &meta, offsetof(pml_ckpt, nparams)); /* pml_ckpt_alloc left the header alone */
    memset(c->params, 0, n[0] * sizeof(float));
    memset(c->state, 0, n[3] * sizeof(float));
    if (c->m) memset(c->m, 0, n[0] * sizeof(float));
    if (c->v) memset(c->v, 0, n[0] * sizeof(float));
    for (int r = 0; r < ranks; r++) {
        char *nl = strchr(q, '\n');
        char name[32], want_name[32];
        size_t bytes;
        uint32_t sum;
        if (nl) *nl = 0;
        snprintf(want_name, sizeof want_name, CKPT_PART_NAME, r);
        if (!nl || (size_t)(q - text) >= last ||
            sscanf(q, "part %31s %zu %8" SCNx32, name, &bytes, &sum) != 3 || strcmp(name, want_name) != 0) {
            st = bad_in("checkpoint manifest", mpath, "a malformed part line");
            goto out;
        }
        q = nl + 1;
        char ppath[4096];
        if ((size_t)snprintf(ppath, sizeof ppath, "%s/%s", path, name) >= sizeof ppath) {
            st = pml_fail(PML_EINVAL, "checkpoint '%s': the name is too long", path);
            goto out;
        }
        if ((st = read_part(ppath, c, r, ranks, bytes, sum, c)) != PML_OK) goto out;
    }
    if ((size_t)(q - text) != last) st = bad_in("checkpoint manifest", mpath, "lines after its parts");
out:
    free(text);
    fclose(f);
    if (st != PML_OK) pml_ckpt_free(c);
    return st;
}

/* ---------------------------------------------------------------- saved models
 *
 * A saved model (pml train --save) is the model's DOT text and its weights, one file, written
 * atomically as a checkpoint is:
 *
 *   pml model 2\n     (version 1, whose linear weights were (in, out), is read and transposed)
 *   model HASH NAME\n
 *   dot LEN\n  then LEN bytes of DOT text (pml_model_read_dot reads the model from here)
 *   tensor params COUNT CRC (CRC-32C, 8 hex digits)\n
 *   tensor state COUNT CRC\n
 *   data\n     then the tensors, float32 little-endian. */

pml_status pml_saved_write(const char *path, const pml_graph *g, const float *params,
                           const float *state)
{
    char *text = NULL;
    size_t len = 0;
    pml_status st = pml_model_format_dot(g, &text, &len);
    if (st != PML_OK) return st;
    pml_afile af;
    if ((st = pml_afile_open(&af, path)) != PML_OK) {
        free(text);
        return st;
    }
    char name[64];
    header_token(name, sizeof name, g->name);
    fprintf(af.f, PML_SAVED_MAGIC "\nmodel %016" PRIx64 " %s\ndot %zu\n", pml_hash(PML_HASH_INIT, text, len),
            name, len);
    fwrite(text, 1, len, af.f);
    free(text);
    fprintf(af.f, "tensor params %zu %08" PRIx32 "\n", g->nparams, g->nparams ? crc(params, g->nparams) : 0u);
    fprintf(af.f, "tensor state %zu %08" PRIx32 "\ndata\n", g->nstate, g->nstate ? crc(state, g->nstate) : 0u);
    if (g->nparams) fwrite(params, sizeof(float), g->nparams, af.f);
    if (g->nstate) fwrite(state, sizeof(float), g->nstate, af.f);
    if (ferror(af.f)) {
        pml_afile_abort(&af);
        return pml_fail(PML_EIO, "%s: writing failed (disk full?)", path);
    }
    return pml_afile_commit(&af);
}

pml_status pml_saved_read(const char *path, pml_graph *g, float **params, float **state)
{
    *params = *state = NULL;
    pml_graph_init(g, NULL);
    char head[32] = "";
    FILE *f = fopen(path, "rb");
    if (!f) return pml_fail(PML_EIO, "cannot read '%s': %s", path, strerror(errno));
    const bool got = fgets(head, sizeof head, f) != NULL;
    const bool v1 = got && strcmp(head, PML_SAVED_MAGIC_V1 "\n") == 0;
    const bool saved = v1 || (got && strcmp(head, PML_SAVED_MAGIC "\n") == 0);
    fclose(f);
    if (!saved)
        return bad_in("saved model", path, strncmp(head, "pml checkpoint", 14) == 0
                             ? "a checkpoint, not a saved model (pml train --save writes them; "
                               "pml train --resume reads checkpoints)"
                             : "not a saved model (pml train --save writes them)");
    f = fopen(path, "rb");
    if (!f) return pml_fail(PML_EIO, "saved model '%s': %s", path, strerror(errno));
    pml_status st = PML_OK;
    char line[CKPT_MAX_HEADER];
    size_t len = 0, n[2];
    uint32_t sum[2];
    uint64_t hash = 0;
    float *t[2] = {NULL, NULL};
    char *text = NULL;
    if (!fgets(line, sizeof line, f) || strcmp(line, v1 ? PML_SAVED_MAGIC_V1 "\n" : PML_SAVED_MAGIC "\n") != 0) {
        st = bad_in("saved model", path, "not a saved model (pml train --save writes them)");
        goto out;
    }
    if (!fgets(line, sizeof line, f) || sscanf(line, "model %16" SCNx64, &hash) != 1 ||
        !fgets(line, sizeof line, f) || sscanf(line, "dot %zu", &len) != 1 || len > CKPT_MAX_DOT) {
        st = bad_in("saved model", path, "a malformed header");
        goto out;
    }
    /* the model's text against its hash: a damaged model is never read as another one */
    if (!(text = malloc(len ? len : 1))) {
        st = pml_fail(PML_ENOMEM, "out of memory");
        goto out;
    }
    if (fread(text, 1, len, f) != len) {
        st = bad_in("saved model", path, "cut short in its model's text");
        goto out;
    }
    if (pml_hash(PML_HASH_INIT, text, len) != hash) {
        st = bad_in("saved model", path, "its model's text is damaged (its hash differs)");
        goto out;
    }
    if ((st = pml_model_read_dot(path, g)) != PML_OK) goto out;
    for (int k = 0; k < 2; k++) {
        char name[16];
        if (!fgets(line, sizeof line, f) ||
            sscanf(line, "tensor %15s %zu %8" SCNx32, name, &n[k], &sum[k]) != 3 ||
            strcmp(name, k ? "state" : "params") != 0) {
            st = bad_in("saved model", path, "a malformed tensor line");
            goto out;
        }
    }
    if (!fgets(line, sizeof line, f) || strcmp(line, "data\n") != 0) {
        st = bad_in("saved model", path, "no data line after the tensors");
        goto out;
    }
    if (n[0] != g->nparams || n[1] != g->nstate) {
        st = bad_in("saved model", path, "its weights do not fit its model");
        goto out;
    }
    for (int k = 0; k < 2; k++)
        if ((st = read_tensor(f, "saved model", path, k ? "state" : "params", n[k], sum[k], &t[k])) !=
            PML_OK)
            goto out;
    if (fgetc(f) != EOF) st = bad_in("saved model", path, "bytes after its weights");
    if (st == PML_OK && v1) st = pml_params_from_in_out(g, t[0]);
out:
    free(text);
    fclose(f);
    if (st != PML_OK) {
        free(t[0]);
        free(t[1]);
        pml_graph_free(g);
        return st;
    }
    *params = t[0];
    *state = t[1];
    return PML_OK;
}
