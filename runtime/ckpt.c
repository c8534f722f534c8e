/* pml — checkpoints: everything a training run needs to go on exactly where it stopped.
 *
 * A checkpoint is one file, DIR/step-NNNNNNNNNNNN.ckpt (the updates done, 12 digits: names sort
 * in step order), written as every pml file is (ops' pml_afile: a temporary file, flushed, fsynced
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

#define CKPT_MAGIC "pml checkpoint 2"
#define CKPT_NAME "step-%012ld.ckpt"
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

/* the steps of the checkpoints in dir, ascending; *n of them (malloc'd) */
static pml_status list_steps(const char *dir, long **steps, int *n)
{
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return pml_fail(PML_EIO, "checkpoint folder '%s': %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    pml_status st = PML_OK;
    while ((e = readdir(d))) {
        long s;
        char tail[8];
        if (sscanf(e->d_name, "step-%ld.ckp%1s", &s, tail) != 2 || strcmp(tail, "t") != 0 || s < 0)
            continue;
        char want[64];
        snprintf(want, sizeof want, CKPT_NAME, s);
        if (strcmp(want, e->d_name) != 0) continue;
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
    for (int i = 1; i < *n; i++) /* insertion sort: a few files */
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            long t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    if (st != PML_OK) {
        free(*steps);
        *steps = NULL;
        *n = 0;
    }
    return st;
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
    pml_afile af;
    pml_status st = pml_afile_open(&af, path);
    if (st != PML_OK) return st;
    if (af.how != PML_AFILE_NAMED && af.how != PML_AFILE_UNNAMED) {
        pml_afile_abort(&af);
        return pml_fail(PML_EINVAL, "checkpoint '%s' must be a regular file", path);
    }
    /* the header, in memory: its checksums are filled in once the data is out, then it is
     * written again in place (same length); the data line's checksum covers the header */
    char head[CKPT_MAX_HEADER], name[sizeof c->model_name];
    header_token(name, sizeof name, c->model_name);
    int len = snprintf(head, sizeof head,
                       CKPT_MAGIC "\nmodel %016" PRIx64 " %s\nrun %" PRIu64 " %d %ld\nplan %s\n"
                                  "optimizer %s %a %a %a %a %a %" PRId64 "\n",
                       c->model_hash, name, c->seed, c->batch,
                       c->step, c->plan[0] ? c->plan : "-", c->optim.kind == PML_OPTIM_ADAM ? "adam" : "sgd",
                       (double)c->optim.lr, (double)c->optim.momentum, (double)c->optim.beta1,
                       (double)c->optim.beta2, (double)c->optim.eps, c->optim.t);
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
    char hex[9];
    for (int k = 0; k < 4; k++) {
        snprintf(hex, sizeof hex, "%08" PRIx32, sum[k]);
        memcpy(head + at[k], hex, 8);
    }
    snprintf(hex, sizeof hex, "%08" PRIx32, crc32c(0, head, (size_t)data_at));
    memcpy(head + data_at + 5, hex, 8);
    if (!ferror(af.f) && fseek(af.f, 0, SEEK_SET) == 0) fwrite(head, 1, (size_t)len, af.f);
    if (ferror(af.f) || fflush(af.f) != 0) {
        const int e = errno;
        pml_afile_abort(&af);
        return pml_fail(PML_EIO, "%s: writing failed: %s", path, strerror(e));
    }
    if ((st = pml_afile_commit(&af)) != PML_OK) return st;
    if ((st = sync_dir(dir)) != PML_OK) return st;
    /* only now, with the new one in place: the older beyond `keep` go */
    long *steps;
    int count;
    if (keep > 0 && list_steps(dir, &steps, &count) == PML_OK) {
        for (int i = 0; i + keep < count; i++) {
            char old[4096];
            if ((size_t)snprintf(old, sizeof old, "%s/" CKPT_NAME, dir, steps[i]) < sizeof old)
                unlink(old);
        }
        free(steps);
    }
    return PML_OK;
}

pml_status pml_ckpt_newest(const char *dir, char *path, size_t cap)
{
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


pml_status pml_ckpt_read(const char *path, pml_ckpt *c)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) return pml_fail(PML_EIO, "checkpoint '%s': %s", path, strerror(errno));
    pml_status st = PML_OK;
    char line[CKPT_MAX_HEADER];
    char kind[16];
    double lr, mom, b1, b2, eps;
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
    if (sscanf(line, "model %16" SCNx64 " %63s", &c->model_hash, c->model_name) != 2) {
        st = bad(path, "a malformed model line");
        goto out;
    }
    LINE("cut short in its header");
    if (sscanf(line, "run %" SCNu64 " %d %ld", &c->seed, &c->batch, &c->step) != 3 ||
        c->batch < 1 || c->step < 0) {
        st = bad(path, "a malformed run line");
        goto out;
    }
    LINE("cut short in its header");
    if (sscanf(line, "plan %79[^\n]", c->plan) != 1) {
        st = bad(path, "a malformed plan line");
        goto out;
    }
    LINE("cut short in its header");
    if (sscanf(line, "optimizer %15s %la %la %la %la %la %" SCNd64, kind, &lr, &mom, &b1, &b2,
               &eps, &c->optim.t) != 7 ||
        (strcmp(kind, "adam") != 0 && strcmp(kind, "sgd") != 0) || c->optim.t < 0) {
        st = bad(path, "a malformed optimizer line");
        goto out;
    }
    c->optim.kind = strcmp(kind, "adam") == 0 ? PML_OPTIM_ADAM : PML_OPTIM_SGD;
    c->optim.lr = (float)lr;
    c->optim.momentum = (float)mom;
    c->optim.beta1 = (float)b1;
    c->optim.beta2 = (float)b2;
    c->optim.eps = (float)eps;
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
