/* pml — datasets: IDX files (gzip or plain, through zlib), synthetic images made on demand,
 * validation splits, per-epoch shuffling, and the data pml train uses (image folders:
 * data_images.c).
 *
 * Storage of a loaded dataset is ONE allocation (d->owner): the images (n * size bytes), then
 * the labels (n int32, aligned). Views (validation splits) point into it and own nothing. */
#include "runtime.h"
#include "data_int.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Hot loops are compiled for AVX2 and for the baseline, picked at load time. "avx2" dispatches on
 * the CPU's feature bits; "arch=haswell" would dispatch on the CPU model (Intel Haswell only). */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define DATA_HOT __attribute__((target_clones("avx2", "default")))
#else
#define DATA_HOT
#endif

/* ---------------------------------------------------------------- IDX files */

#define IDX_IMAGES_MAGIC 0x00000803u /* unsigned bytes, 3 dimensions (n, rows, cols) */
#define IDX_LABELS_MAGIC 0x00000801u /* unsigned bytes, 1 dimension (n) */
#define IDX_CLASSES 10               /* MNIST-style label range 0..9 */
#define IDX_MAX_PIXELS (1u << 24)    /* rows * cols of one image */
#define IDX_FIRST_CHUNK ((size_t)16 << 20)

typedef struct idx_file {
    const char *path;
    const char *what; /* "images" or "labels" */
    gzFile gz;
    off_t file_bytes; /* the file's size on disk */
    uint32_t magic;
    uint32_t dims[3];
} idx_file;

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* zlib's messages start with "path: "; drop it, the caller names the file itself. */
static const char *gz_msg(const idx_file *f, const char *msg)
{
    size_t len = strlen(f->path);
    if (msg && strncmp(msg, f->path, len) == 0 && msg[len] == ':') msg += len + 1;
    while (msg && *msg == ' ') msg++;
    return msg && *msg ? msg : "unknown error";
}

static pml_status idx_gz_fail(const idx_file *f)
{
    int err = Z_OK;
    int saved = errno;
    const char *msg = gzerror(f->gz, &err);
    if (err == Z_ERRNO) return pml_fail(PML_EIO, "%s: read error: %s", f->path, strerror(saved));
    if (err == Z_MEM_ERROR)
        return pml_fail(PML_ENOMEM, "%s: out of memory while decompressing", f->path);
    return pml_fail(PML_EFORMAT, "%s: corrupt gzip data (%s)", f->path, gz_msg(f, msg));
}

/* " (the gzip stream ends early)" after a short read of a cut gzip file, else "". */
static const char *gz_cut_note(const idx_file *f)
{
    int err = Z_OK;
    gzerror(f->gz, &err);
    return err == Z_BUF_ERROR ? " (the gzip stream ends early)" : "";
}

/* Reads up to len bytes; *got < len only at the end of the file. */
static pml_status idx_read(const idx_file *f, void *buf, size_t len, size_t *got)
{
    size_t total = 0;
    while (total < len) {
        size_t left = len - total;
        unsigned chunk = left > (1u << 30) ? (1u << 30) : (unsigned)left;
        int r = gzread(f->gz, (uint8_t *)buf + total, chunk);
        if (r < 0) {
            *got = total;
            return idx_gz_fail(f);
        }
        if (r == 0) break;
        total += (size_t)r;
    }
    *got = total;
    return PML_OK;
}

static void idx_close(idx_file *f)
{
    if (f->gz) gzclose(f->gz);
    f->gz = NULL;
}

/* Opens an IDX file and reads its header: magic 0x0000 08 ndims, then ndims big-endian sizes. */
static pml_status idx_open(idx_file *f, const char *path, const char *what, uint32_t magic)
{
    int ndims = (int)(magic & 0xff);
    const char *other = magic == IDX_IMAGES_MAGIC ? "labels" : "images";
    uint32_t other_magic = magic == IDX_IMAGES_MAGIC ? IDX_LABELS_MAGIC : IDX_IMAGES_MAGIC;
    struct stat sb;
    uint8_t hdr[12];
    size_t got = 0;
    pml_status st;

    memset(f, 0, sizeof *f);
    f->path = path;
    f->what = what;
    if (stat(path, &sb) != 0)
        return pml_fail(errno == ENOENT ? PML_ENOTFOUND : PML_EIO,
                        "%s: cannot open IDX %s file: %s", path, what, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return pml_fail(PML_EINVAL, "%s: is a folder, expected an IDX %s file", path, what);
    f->file_bytes = S_ISREG(sb.st_mode) ? sb.st_size : -1;
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz) {
        if (errno)
            return pml_fail(PML_EIO, "%s: cannot open IDX %s file: %s", path, what,
                            strerror(errno));
        return pml_fail(PML_ENOMEM, "%s: cannot open IDX %s file: out of memory", path, what);
    }
    gzbuffer(f->gz, 1u << 17);

    if ((st = idx_read(f, hdr, 4, &got)) != PML_OK) return st;
    if (got == 0)
        return pml_fail(PML_EFORMAT, "%s: empty file, expected IDX %s (magic 0x%08x)%s", path, what,
                        magic, gz_cut_note(f));
    if (got < 4)
        return pml_fail(PML_EFORMAT,
                        "%s: truncated header: the file holds %zu bytes, the magic number alone "
                        "takes 4%s",
                        path, got, gz_cut_note(f));
    f->magic = be32(hdr);
    if (hdr[0] != 0 || hdr[1] != 0)
        return pml_fail(PML_EFORMAT,
                        "%s: wrong magic 0x%08x, expected 0x%08x (IDX %s: unsigned bytes, %d "
                        "dimension%s); not an IDX file",
                        path, f->magic, magic, what, ndims, ndims == 1 ? "" : "s");
    if (hdr[2] != 0x08)
        return pml_fail(PML_EUNSUPPORTED,
                        "%s: IDX data type 0x%02x (magic 0x%08x) is not supported, expected 0x08 "
                        "unsigned bytes (magic 0x%08x)",
                        path, hdr[2], f->magic, magic);
    if (hdr[3] != ndims)
        return pml_fail(PML_EFORMAT,
                        "%s: wrong magic 0x%08x: %d dimension%s, expected %d for IDX %s (magic "
                        "0x%08x)%s%s%s",
                        path, f->magic, hdr[3], hdr[3] == 1 ? "" : "s", ndims, what, magic,
                        f->magic == other_magic ? "; this looks like an IDX " : "",
                        f->magic == other_magic ? other : "",
                        f->magic == other_magic ? " file" : "");
    if ((st = idx_read(f, hdr, 4 * (size_t)ndims, &got)) != PML_OK) return st;
    if (got < 4 * (size_t)ndims)
        return pml_fail(PML_EFORMAT,
                        "%s: truncated header: expected %d bytes of dimension sizes after the "
                        "magic number, found %zu%s",
                        path, 4 * ndims, got, gz_cut_note(f));
    for (int i = 0; i < ndims; i++) f->dims[i] = be32(hdr + 4 * i);
    return PML_OK;
}

double pml__usable_memory(void)
{
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (double)rl.rlim_cur < phys)
        phys = (double)rl.rlim_cur;
    return phys > 0 ? phys : INFINITY;
}

/* Before allocating what a header declares (count items of item_size bytes; the dataset takes
 * `keep` bytes in all): a plain file must hold it, and the machine must have the memory. A
 * compressed file's size says nothing (a few MB of gzip can expand to GBs): the memory check
 * is what stops a "bomb" before it costs anything. */
static pml_status idx_check_declared(const idx_file *f, uint32_t count, size_t item_size,
                                     double keep)
{
    const double want = (double)count * (double)item_size;
    if (gzdirect(f->gz) && f->file_bytes >= 0) {
        const double body = (double)f->file_bytes - 4.0 * (1 + (f->magic & 0xff));
        if (body < want) {
            if (item_size == 1)
                return pml_fail(PML_EFORMAT,
                                "%s: truncated: the header declares %u %s, the file holds %.0f",
                                f->path, count, f->what, body < 0 ? 0 : body);
            return pml_fail(PML_EFORMAT,
                            "%s: truncated: the header declares %u %s of %ux%u (%.0f bytes), "
                            "the file holds %.0f bytes (%.0f complete %s)",
                            f->path, count, f->what, f->dims[1], f->dims[2], want,
                            body < 0 ? 0 : body, body < 0 ? 0 : floor(body / item_size), f->what);
        }
    }
    const double mem = pml__usable_memory();
    if (keep > 0.75 * mem)
        return pml_fail(PML_ENOFIT,
                        "%s: the header declares %u %s (%.3g GB to load), more than this "
                        "machine's memory allows (%.3g GB); the header is probably corrupt",
                        f->path, count, f->what, keep / 1e9, mem / 1e9);
    return PML_OK;
}

/* Reads the body: count items of item_size bytes. The buffer grows as data arrives, so a header
 * that declares far more than the file holds costs no huge allocation. Trailing data after the
 * declared items is an error (it also makes zlib check the gzip trailer: CRC and length). */
static pml_status idx_read_body(const idx_file *f, uint32_t count, size_t item_size, uint8_t **out)
{
    size_t want = (size_t)count * item_size;
    size_t cap = want < IDX_FIRST_CHUNK ? want : IDX_FIRST_CHUNK;
    size_t have = 0, got = 0;
    uint8_t *buf = malloc(cap ? cap : 1), extra[4096];
    pml_status st;

    *out = NULL;
    if (!buf)
        return pml_fail(PML_ENOMEM, "%s: out of memory for %zu bytes of %s", f->path, cap, f->what);
    while (have < want) {
        if (have == cap) {
            size_t ncap = cap > want / 2 ? want : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return pml_fail(PML_ENOMEM, "%s: out of memory for %zu bytes of %s", f->path, ncap,
                                f->what);
            }
            buf = nb;
            cap = ncap;
        }
        if ((st = idx_read(f, buf + have, cap - have, &got)) != PML_OK) {
            free(buf);
            return st;
        }
        have += got;
        if (have < cap) break; /* end of file */
    }
    if (have < want) {
        const char *note = gz_cut_note(f);
        free(buf);
        if (item_size == 1)
            return pml_fail(PML_EFORMAT,
                            "%s: truncated: the header declares %u %s, the file holds %zu%s",
                            f->path, count, f->what, have, note);
        return pml_fail(PML_EFORMAT,
                        "%s: truncated: the header declares %u %s of %ux%u (%zu bytes), the "
                        "file holds %zu bytes (%zu complete %s)%s",
                        f->path, count, f->what, f->dims[1], f->dims[2], want, have,
                        have / item_size, f->what, note);
    }
    if ((st = idx_read(f, extra, sizeof extra, &got)) != PML_OK) {
        free(buf);
        return st;
    }
    if (got > 0) {
        free(buf);
        return pml_fail(PML_EFORMAT,
                        "%s: %s%zu byte%s of trailing data after the %u %s the header declares",
                        f->path, got == sizeof extra ? "at least " : "", got, got == 1 ? "" : "s",
                        count, f->what);
    }
    *out = buf;
    return PML_OK;
}

void pml__data_own(pml_dataset *d, const char *path, int n, pml_shape shape, int classes,
                   uint8_t *block, int32_t *labels)
{
    pml__base_name(path, d->name, sizeof d->name);
    d->n = n;
    d->first = 0;
    d->shape = shape;
    d->classes = classes;
    d->images = block;
    d->labels = labels;
    d->owner = block;
    d->stream = NULL;
}

void pml__base_name(const char *path, char *out, size_t cap)
{
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/') start--;
    size_t len = end - start;
    if (len >= cap) len = cap - 1;
    memcpy(out, path + start, len);
    out[len] = 0;
}

pml_status pml_data_load_idx(const char *images_path, const char *labels_path, pml_dataset *d)
{
    idx_file fi = {0}, fl = {0};
    uint8_t *block = NULL, *lab = NULL;
    uint32_t n, rows, cols;
    size_t size, lab_off;
    pml_status st;

    if (!d) return pml_fail(PML_EINVAL, "pml_data_load_idx: no dataset given");
    memset(d, 0, sizeof *d);
    if (!images_path || !labels_path)
        return pml_fail(PML_EINVAL, "pml_data_load_idx: no %s file given",
                        images_path ? "labels" : "images");

    if ((st = idx_open(&fi, images_path, "images", IDX_IMAGES_MAGIC)) != PML_OK) goto done;
    n = fi.dims[0];
    rows = fi.dims[1];
    cols = fi.dims[2];
    if (n == 0) {
        st = pml_fail(PML_EFORMAT, "%s: contains no images (the header declares 0)", images_path);
        goto done;
    }
    if (rows == 0 || cols == 0 || (uint64_t)rows * cols > IDX_MAX_PIXELS || rows > INT_MAX ||
        cols > INT_MAX) {
        st = pml_fail(PML_EFORMAT,
                      "%s: image size %ux%u is %s (1 to %u pixels per image); the header is "
                      "probably corrupt",
                      images_path, rows, cols, rows == 0 || cols == 0 ? "empty" : "too large",
                      IDX_MAX_PIXELS);
        goto done;
    }
    if (n > INT_MAX) {
        st = pml_fail(PML_EFORMAT,
                      "%s: declares %u images, more than the %d supported; the header is "
                      "probably corrupt",
                      images_path, n, INT_MAX);
        goto done;
    }
    if ((st = idx_open(&fl, labels_path, "labels", IDX_LABELS_MAGIC)) != PML_OK) goto done;
    if (fl.dims[0] != n) {
        st = pml_fail(PML_EFORMAT, "%s has %u images but %s has %u labels", images_path, n,
                      labels_path, fl.dims[0]);
        goto done;
    }
    size = (size_t)rows * cols;
    /* images as bytes, then labels as bytes while reading and as int32 once loaded */
    const double keep = (double)n * (double)size + 5.0 * n;
    if ((st = idx_check_declared(&fi, n, size, keep)) != PML_OK) goto done;
    if ((st = idx_check_declared(&fl, n, 1, keep)) != PML_OK) goto done;
    if ((st = idx_read_body(&fi, n, size, &block)) != PML_OK) goto done;
    if ((st = idx_read_body(&fl, n, 1, &lab)) != PML_OK) goto done;
    for (uint32_t i = 0; i < n; i++) {
        if (lab[i] >= IDX_CLASSES) {
            st = pml_fail(PML_EFORMAT,
                          "%s: label %u at index %u is out of range (%d classes: 0 to %d)",
                          labels_path, lab[i], i, IDX_CLASSES, IDX_CLASSES - 1);
            goto done;
        }
    }
    /* one block: images, then the labels as int32 */
    lab_off = pml__labels_offset((size_t)n * size);
    {
        uint8_t *nb = realloc(block, lab_off + (size_t)n * sizeof(int32_t));
        if (!nb) {
            st = pml_fail(PML_ENOMEM, "%s: out of memory for %u labels", labels_path, n);
            goto done;
        }
        block = nb;
    }
    int32_t *labels = (int32_t *)(void *)(block + lab_off);
    for (uint32_t i = 0; i < n; i++) labels[i] = lab[i];

    pml__data_own(d, images_path, (int)n, (pml_shape){1, (int)rows, (int)cols}, IDX_CLASSES, block,
                  labels);
    block = NULL;
    st = PML_OK;
done:
    idx_close(&fi);
    idx_close(&fl);
    free(lab);
    free(block);
    if (st != PML_OK) memset(d, 0, sizeof *d);
    return st;
}

/* ---------------------------------------------------------------- MNIST-style folders */

/* Finds dir/base.gz, else dir/base. */
static pml_status find_idx(const char *dir, const char *base, char *out, size_t cap)
{
    static const char *const suffix[] = {".gz", ""};
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        size_t dl = strlen(dir);
        while (dl > 1 && dir[dl - 1] == '/') dl--; /* "DIR/" names DIR/base, not DIR//base */
        int len = snprintf(out, cap, "%.*s/%s%s", (int)dl, dir, base, suffix[i]);
        if (len < 0 || (size_t)len >= cap)
            return pml_fail(PML_EINVAL, "%s: folder name too long", dir);
        if (stat(out, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode)) return PML_OK;
        } else if (errno != ENOENT) {
            return PML_OK; /* unreadable: the loader says why */
        }
    }
    return pml_fail(PML_ENOTFOUND, "%s: no %s.gz or %s in this folder", dir, base, base);
}

static pml_status load_pair(const char *dir, const char *set, const char *prefix, pml_dataset *d)
{
    char img[4096], lab[4096], base[48], dirname[48];
    pml_status st;
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    if ((st = find_idx(dir, base, img, sizeof img)) != PML_OK) return st;
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    if ((st = find_idx(dir, base, lab, sizeof lab)) != PML_OK) return st;
    if ((st = pml_data_load_idx(img, lab, d)) != PML_OK) return st;
    pml__base_name(dir, dirname, sizeof dirname);
    snprintf(d->name, sizeof d->name, "%s %s", dirname, set);
    return PML_OK;
}

pml_status pml_data_load_mnist_dir(const char *dir, pml_dataset *train, pml_dataset *test)
{
    struct stat sb;
    pml_status st;

    if (train) memset(train, 0, sizeof *train);
    if (test) memset(test, 0, sizeof *test);
    if (!dir) dir = PML_FASHION_MNIST_DIR;
    if (stat(dir, &sb) != 0)
        return pml_fail(errno == ENOENT ? PML_ENOTFOUND : PML_EIO,
                        "%s: cannot open the data folder: %s (the Debian package "
                        "dataset-fashion-mnist provides the default data in %s; or give another "
                        "folder with --data DIR)",
                        dir, strerror(errno), PML_FASHION_MNIST_DIR);
    if (!S_ISDIR(sb.st_mode))
        return pml_fail(PML_EINVAL,
                        "%s: is not a folder (expected a folder with train-images-idx3-ubyte.gz "
                        "and friends; give it with --data DIR)",
                        dir);
    if (train && (st = load_pair(dir, "train", "train", train)) != PML_OK) return st;
    if (test && (st = load_pair(dir, "test", "t10k", test)) != PML_OK) {
        if (train) pml_data_free(train);
        return st;
    }
    return PML_OK;
}

/* ---------------------------------------------------------------- synthetic images
 *
 * Image i of a synthetic dataset is a function of (seed, i) alone, like a photo of one object
 * (a disc) on a background:
 * - its label is drawn from (seed, i), uniformly over the classes;
 * - every class has a stripe orientation (classes evenly spaced over 180 degrees), a stripe
 *   period (5 to 14 pixels) and a colour (base level and stripe amplitude per channel). These
 *   are the same for every seed: a seed picks samples, so a train and a test set made with two
 *   seeds come from one distribution;
 * - every image places the disc at random (radius 20-40% of the image, centre in the middle
 *   half), jitters the class pattern (orientation within +-40% of the gap between classes,
 *   period +-15%, colour +-50 levels per channel, contrast 60-120%), picks a random stripe
 *   phase and a random background colour, and adds pixel noise everywhere.
 * The background hides most of the class colour, so colour alone tells classes apart only in
 * part; the stripes' orientation and period inside the disc tell them apart.
 * Per pixel the work is integer arithmetic: the stripe is a triangle wave of a 16.16 fixed-point
 * phase that advances by a per-image step, the noise is an integer hash of the position, and the
 * disc is a column range per row (one sqrt per row). */

#define SYN_STREAM_LABEL 0x73796e2d6c61626cull /* "syn-labl" */
#define SYN_STREAM_IMAGE 0x73796e2d696d6167ull /* "syn-imag" */
#define SYN_STREAM_COLOR 0x73796e2d636f6c72ull /* "syn-colr" */
#define SYN_CLASS_SEED 0x666c6f776572732aull   /* class patterns: independent of the seed */
#define SYN_NOISE 40                           /* noise amplitude, levels */
#define SYN_MAX_SIZE ((size_t)1 << 26)         /* floats per sample */

static const double syn_pi = 3.14159265358979323846;

typedef struct syn_image {
    int label;
    uint32_t du_dx, du_dy; /* stripe phase step per column / row (16.16; 1.0 = one period) */
    uint32_t phase;
    uint32_t key;     /* noise */
    double cx, cy, r; /* the disc */
    int contrast;     /* percent */
} syn_image;

static int syn_label(const pml_dataset *d, uint64_t i)
{
    uint64_t r = pml_rand_u64(d->seed, SYN_STREAM_LABEL, i);
    return (int)(((r >> 32) * (uint64_t)d->classes) >> 32);
}

static double unit16(uint64_t r, int shift)
{
    return (double)((r >> shift) & 0xffff) / 65536.0;
}

static syn_image syn_make(const pml_dataset *d, uint64_t i)
{
    syn_image s;
    int k = syn_label(d, i), K = d->classes, H = d->shape.h, W = d->shape.w;
    uint64_t r = pml_rand_u64(d->seed, SYN_STREAM_IMAGE, i);
    uint64_t r2 = pml_rand_u64(d->seed, SYN_STREAM_IMAGE + 1, i);
    uint64_t rc = pml_rand_u64(SYN_CLASS_SEED, 0, (uint64_t)k);
    double theta = syn_pi * (k + 0.5) / K + (unit16(r, 0) - 0.5) * 0.8 * syn_pi / K;
    double period = (5.0 + 9.0 * unit16(rc, 0)) * (0.85 + 0.3 * unit16(r, 16));
    double f = 65536.0 / period;
    s.label = k;
    s.du_dx = (uint32_t)(int32_t)lrint(cos(theta) * f);
    s.du_dy = (uint32_t)(int32_t)lrint(sin(theta) * f);
    s.phase = (uint32_t)(r >> 32) & 0xffff;
    s.key = (uint32_t)(r >> 48) * 0x9e3779b9u ^ (uint32_t)i;
    s.cx = W * (0.25 + 0.5 * unit16(r2, 0));
    s.cy = H * (0.25 + 0.5 * unit16(r2, 16));
    s.r = (H < W ? H : W) * (0.2 + 0.2 * unit16(r2, 32));
    s.contrast = 60 + (int)((r2 >> 48) % 61);
    return s;
}

/* One channel plane: inside the disc base + amp * stripe, outside bg; noise everywhere; clamped
 * to 0..255 and scaled by 1/255. */
DATA_HOT static void syn_plane(float *restrict o, int h, int w, const syn_image *s, int base,
                               int amp, int bg, uint32_t key)
{
    for (int y = 0; y < h; y++) {
        uint32_t u0 = s->phase + (uint32_t)y * s->du_dy;
        uint32_t p0 = (uint32_t)y * (uint32_t)w;
        double dy = y + 0.5 - s->cy, half2 = s->r * s->r - dy * dy;
        int x0 = 0, x1 = 0; /* the disc covers columns [x0, x1) of this row */
        if (half2 > 0) {
            double half = sqrt(half2);
            x0 = (int)fmax(0.0, ceil(s->cx - half - 0.5));
            x1 = (int)fmin((double)w, ceil(s->cx + half - 0.5));
        }
        float *row = o + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            uint32_t t = (u0 + (uint32_t)x * s->du_dx) & 0xffffu;
            int tri = (int)(t < 0x8000u ? t : 0xffffu - t) >> 7; /* 0..255 */
            uint32_t hsh = ((p0 + (uint32_t)x) ^ key) * 0x9e3779b1u;
            hsh ^= hsh >> 15;
            hsh *= 0x2c1b3c6du;
            hsh ^= hsh >> 12;
            int nz = SYN_NOISE * ((int)(hsh >> 24) - 128);
            int in = x >= x0 && x < x1;
            int v = in ? base + ((amp * (tri - 128) + nz) >> 7) : bg + (nz >> 7);
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            row[x] = (float)v * (1.0f / 255.0f);
        }
    }
}

static void syn_gather_one(const pml_dataset *d, uint64_t i, float *x, int32_t *y)
{
    syn_image s = syn_make(d, i);
    if (y) *y = s.label;
    if (!x) return;
    int C = d->shape.c, H = d->shape.h, W = d->shape.w;
    for (int c = 0; c < C; c++) {
        uint64_t rc = pml_rand_u64(SYN_CLASS_SEED, 1 + (uint64_t)c, (uint64_t)s.label);
        uint64_t rcol = pml_rand_u64(d->seed, SYN_STREAM_COLOR + (uint64_t)(c / 4), i);
        int jitter = (int)((rcol >> (16 * (c % 4))) & 0xff) * 100 / 255 - 50; /* -50..50 */
        int bg = 30 + (int)((rcol >> (16 * (c % 4) + 8)) & 0xff) * 196 / 255; /* 30..226 */
        int base = 80 + (int)(rc % 96) + jitter;
        int amp = (60 + (int)((rc >> 8) % 50)) * s.contrast / 100; /* /128 of a level */
        syn_plane(x + (size_t)c * H * W, H, W, &s, base, amp, bg,
                  s.key + (uint32_t)c * 0x85ebca6bu);
    }
}

pml_status pml_data_synthetic(pml_shape shape, int classes, int n, uint64_t seed, pml_dataset *d)
{
    if (!d) return pml_fail(PML_EINVAL, "pml_data_synthetic: no dataset given");
    memset(d, 0, sizeof *d);
    if (shape.c < 1 || shape.h < 1 || shape.w < 1 ||
        (uint64_t)shape.c * shape.h * shape.w > SYN_MAX_SIZE)
        return pml_fail(PML_EINVAL,
                        "synthetic data: sample shape %dx%dx%d must be positive and at most %zu "
                        "values",
                        shape.c, shape.h, shape.w, SYN_MAX_SIZE);
    if (classes < 1 || classes > 65536)
        return pml_fail(PML_EINVAL, "synthetic data: %d classes, expected 1 to 65536", classes);
    if (n < 1) return pml_fail(PML_EINVAL, "synthetic data: %d samples, expected at least 1", n);
    snprintf(d->name, sizeof d->name, "synthetic");
    d->n = n;
    d->shape = shape;
    d->classes = classes;
    d->seed = seed;
    return PML_OK;
}

/* ---------------------------------------------------------------- views, gather, shuffle */

pml_status pml_data_split(pml_dataset *d, double frac, pml_dataset *val)
{
    if (!d || !val || val == d)
        return pml_fail(PML_EINVAL, "validation split: needs a dataset and a separate view");
    memset(val, 0, sizeof *val);
    if (!(frac > 0.0 && frac < 1.0))
        return pml_fail(PML_EINVAL, "%s: validation split %g must be between 0 and 1 (exclusive)",
                        d->name, frac);
    /* as Keras: the first floor(n * (1 - frac)) samples train */
    double keep_d = floor((double)d->n * (1.0 - frac));
    int keep = (int)keep_d;
    if (keep <= 0 || keep >= d->n)
        return pml_fail(PML_EINVAL,
                        "%s: %d samples are not enough for validation split %g (it leaves %d "
                        "training and %d validation samples)",
                        d->name, d->n, frac, keep < 0 ? 0 : keep, d->n - keep);
    *val = *d;
    val->owner = NULL;
    val->first = d->first + keep;
    val->n = d->n - keep;
    {
        char nm[sizeof d->name];
        memcpy(nm, d->name, sizeof nm);
        nm[sizeof nm - 1] = 0;
        snprintf(val->name, sizeof val->name, "%.50s val", nm);
    }
    d->n = keep;
    return PML_OK;
}

#define GATHER_PREFETCH 2048 /* bytes of the next sample asked for ahead (the rest streams) */

DATA_HOT static void bytes_to_float(float *restrict x, const uint8_t *restrict src, size_t n)
{
    for (size_t j = 0; j < n; j++) x[j] = (float)src[j] * (1.0f / 255.0f);
}

void pml_data_gather(const pml_dataset *d, const int32_t *idx, int n, float *x, int32_t *y)
{
    size_t size = pml_shape_size(d->shape);
    for (int k = 0; k < n; k++) {
        assert(idx[k] >= 0 && idx[k] < d->n);
        size_t i = (size_t)d->first + (size_t)idx[k];
        float *xk = x ? x + (size_t)k * size : NULL;
        if (!d->images) {
            syn_gather_one(d, i, xk, y ? y + k : NULL);
            continue;
        }
        if (d->stream) pml__image_need(d->stream, i);
        if (k + 1 < n && xk && !d->stream) { /* the next sample's first lines, while this one
                                              * converts: samples are far apart in a shuffle
                                              * (a batch of Fashion-MNIST: 15 -> 10 us) */
            const uint8_t *next = d->images + ((size_t)d->first + (size_t)idx[k + 1]) * size;
            for (size_t o = 0; o < size && o < GATHER_PREFETCH; o += 64) __builtin_prefetch(next + o);
        }
        if (xk) bytes_to_float(xk, d->images + i * size, size);
        if (y) y[k] = d->labels[i];
    }
}

pml_status pml_data_wait(const pml_dataset *d)
{
    return d && d->stream ? pml__image_wait(d->stream) : PML_OK;
}

pml_status pml_data_check(const pml_dataset *d)
{
    return d && d->stream ? pml__image_check(d->stream) : PML_OK;
}

void pml_data_free(pml_dataset *d)
{
    if (!d) return;
    if (d->owner) pml__image_close(d->stream); /* a view's stream is its owner's */
    free(d->owner);
    memset(d, 0, sizeof *d);
}

#define SHUFFLE_STREAM 0x73687566666c6521ull /* "shuffle!" */

void pml_data_shuffle(int32_t *perm, int n, uint64_t seed, int epoch)
{
    if (!perm || n <= 0) return;
    for (int i = 0; i < n; i++) perm[i] = i;
    uint64_t stream = SHUFFLE_STREAM + (uint64_t)(uint32_t)epoch;
    /* Fisher-Yates; j uniform in [0, i] by a 32x32 multiply (bias below n / 2^32) */
    for (int i = n - 1; i > 0; i--) {
        uint64_t r = pml_rand_u64(seed, stream, (uint64_t)i) >> 32;
        int j = (int)((r * (uint64_t)(i + 1)) >> 32);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* An MNIST-style folder holds train-images-idx3-ubyte or t10k-images-idx3-ubyte (.gz or not). */
static bool mnist_style(const char *dir)
{
    char path[4096];
    return find_idx(dir, "train-images-idx3-ubyte", path, sizeof path) == PML_OK ||
           find_idx(dir, "t10k-images-idx3-ubyte", path, sizeof path) == PML_OK;
}

pml_status pml_data_for_model(const pml_graph *g, const char *data, long train_samples,
                              long test_samples, uint64_t seed, bool skip_bad, int *skipped,
                              pml_dataset *train, pml_dataset *test)
{
    if (train) memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (skipped) *skipped = 0;
    const pml_shape in = g->nodes[g->input].out;
    pml_status st = PML_OK;
    if (data && strcmp(data, "synthetic") == 0) {
        if (train)
            st = pml_data_synthetic(in, g->classes, train_samples ? (int)train_samples : 2936,
                                    seed, train);
        if (st == PML_OK)
            st = pml_data_synthetic(in, g->classes, test_samples ? (int)test_samples : 734,
                                    seed + 0x7e57, test);
        if (st != PML_OK) pml_data_free(train);
        return st;
    }
    if (!data && !(in.c == 1 && in.h == 28 && in.w == 28))
        return pml_fail(PML_EINVAL,
                        "model '%s' takes %dx%dx%d images and there is no default dataset of "
                        "that shape: use --data synthetic or --data DIR",
                        g->name, in.c, in.h, in.w);
    struct stat sb;
    if (data && stat(data, &sb) == 0 && S_ISDIR(sb.st_mode) && !mnist_style(data)) {
        if (!pml__has_subfolder(data))
            return pml_fail(PML_ENOTFOUND,
                            "%s: neither an MNIST-style folder (no train-images-idx3-ubyte.gz "
                            "or train-images-idx3-ubyte) nor an image folder (no class "
                            "subfolders)",
                            data);
        /* training overlaps the decoding; evaluate and predict take the whole set first */
        st = pml__image_sets(data, in, skip_bad, train != NULL, skipped, train, test);
    } else {
        st = pml_data_load_mnist_dir(data ? data : PML_FASHION_MNIST_DIR, train, test);
    }
    if (st != PML_OK) return st;
    if (train && train_samples && train_samples < train->n) train->n = (int)train_samples;
    if (test_samples && test_samples < test->n) test->n = (int)test_samples;
    return PML_OK;
}
