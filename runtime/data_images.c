/* pml — image folders: one subfolder per class of JPEG and PNG files (Keras'
 * image_dataset_from_directory, TensorFlow's flower_photos), decoded with libjpeg-turbo and
 * libpng in libuv's thread pool, resized to the model's input and stored as bytes in one block
 * like every loaded dataset (runtime/data.c), so shuffling, gathering and validation splits work
 * on it unchanged.
 *
 * What it promises (runtime.h, pml_data_load_image_dir, says it for users):
 * - the order is a function of the folder's names alone: classes and files in byte order of
 *   their names, then ONE shuffle with a fixed seed (IMG_ORDER_SEED), so the last fraction a
 *   validation split takes holds each class in about its share, and the dataset is the same
 *   byte for byte on every run. Files decode in parallel, each into its own slot: timing
 *   changes nothing.
 * - without skip_bad the error is that of the first bad file in sorted order, whatever finished
 *   first: files are handed to the pool in that order and none after a failed one is started.
 * - nothing bigger than a bound is allocated: the storage (PML_IMAGE_DIR_MAX_BYTES, 3/4 of the
 *   memory) is checked before decoding, a file's size (IMG_MAX_FILE) before reading it, an
 *   image's width x height (IMG_MAX_PIXELS) before decoding it. */
#include "runtime.h"
#include "data_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <uv.h>
#include <zlib.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE and size_t */
#include <jerror.h>
#include <png.h>

#define IMG_ORDER_SEED 0x696d6167652d6469ull /* "image-di": the storage order, not a run's seed */
#define IMG_MAX_FILE ((size_t)256 << 20)     /* bytes of one image file */
#define IMG_MAX_PIXELS ((size_t)1 << 27)     /* width x height of one image (PIL warns at 89M) */
#define IMG_MAX_OUT_PIXELS (1 << 24)         /* h x w of the model's input */
#define IMG_MAX_DEPTH 16                     /* folders inside a class folder */
#define IMG_MAX_SCANS 1000                   /* of a progressive JPEG (libjpeg-turbo's advice) */
#define IMG_WINDOW 16                        /* files handed to the pool at once */

/* ---------------------------------------------------------------- listing */

typedef struct name_list {
    char **v;
    int n, cap;
} name_list;

static void names_free(name_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static pml_status names_add(name_list *l, const char *s)
{
    if (l->n == INT_MAX) return pml_fail(PML_EINVAL, "more than %d files", INT_MAX);
    if (l->n == l->cap) {
        int ncap = l->cap ? (l->cap > INT_MAX / 2 ? INT_MAX : l->cap * 2) : 16;
        char **nv = realloc(l->v, (size_t)ncap * sizeof *nv);
        if (!nv) return pml_fail(PML_ENOMEM, "out of memory listing files");
        l->v = nv;
        l->cap = ncap;
    }
    if (!(l->v[l->n] = strdup(s))) return pml_fail(PML_ENOMEM, "out of memory listing files");
    l->n++;
    return PML_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "dir" + "/" + "name" into out (cap bytes); "dir/" gives no double slash. */
static pml_status join(char *out, size_t cap, const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    int len = snprintf(out, cap, "%.*s/%s", (int)dl, dir, name);
    if (len < 0 || (size_t)len >= cap)
        return pml_fail(PML_EINVAL, "%s/%s: path too long", dir, name);
    return PML_OK;
}

/* The entries of dir whose names do not start with '.', sorted: its folders into dirs (a link to
 * a folder counts when follow_dirs, as Keras takes class folders; inside a class it walks real
 * folders only, as os.walk) and its other files (links followed) into files; either may be
 * NULL. */
static pml_status list_dir(const char *dir, bool follow_dirs, name_list *dirs, name_list *files)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return pml_fail(errno == ENOENT ? PML_ENOTFOUND : PML_EIO, "%s: cannot open the folder: %s",
                        dir, strerror(errno));
    pml_status st = PML_OK;
    struct dirent *e;
    errno = 0;
    while (st == PML_OK && (e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        struct stat sb;
        /* a name that vanished, or a dangling link, is not listed */
        if (fstatat(dirfd(dp), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) continue;
        const bool link = S_ISLNK(sb.st_mode);
        if (link && fstatat(dirfd(dp), e->d_name, &sb, 0) != 0) continue;
        name_list *to = !S_ISDIR(sb.st_mode) ? files : link && !follow_dirs ? NULL : dirs;
        if (to) st = names_add(to, e->d_name);
        errno = 0;
    }
    if (st == PML_OK && errno)
        st = pml_fail(PML_EIO, "%s: cannot read the folder: %s", dir, strerror(errno));
    closedir(dp);
    if (dirs && dirs->n) qsort(dirs->v, (size_t)dirs->n, sizeof *dirs->v, cmp_names);
    if (files && files->n) qsort(files->v, (size_t)files->n, sizeof *files->v, cmp_names);
    return st;
}

bool pml__has_subfolder(const char *dir)
{
    name_list dirs = {0};
    bool yes = list_dir(dir, true, &dirs, NULL) == PML_OK && dirs.n > 0;
    names_free(&dirs);
    return yes;
}

static bool image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && dot != name &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
            strcasecmp(dot, ".png") == 0);
}

/* Appends the image files under dir (full paths): its own in name order, then each subfolder's
 * in name order. */
static pml_status collect(const char *dir, int depth, name_list *paths)
{
    name_list dirs = {0}, files = {0};
    char path[PATH_MAX];
    if (depth > IMG_MAX_DEPTH)
        return pml_fail(PML_EINVAL, "%s: folders nested more than %d deep in a class folder", dir,
                        IMG_MAX_DEPTH);
    pml_status st = list_dir(dir, false, &dirs, &files);
    for (int i = 0; st == PML_OK && i < files.n; i++)
        if (image_name(files.v[i]) && (st = join(path, sizeof path, dir, files.v[i])) == PML_OK)
            st = names_add(paths, path);
    for (int i = 0; st == PML_OK && i < dirs.n; i++)
        if ((st = join(path, sizeof path, dir, dirs.v[i])) == PML_OK)
            st = collect(path, depth + 1, paths);
    names_free(&dirs);
    names_free(&files);
    return st;
}

/* ---------------------------------------------------------------- decoding */

/* A decoded image: h rows of w pixels of c (1 or 3) bytes. */
typedef struct raw_image {
    uint8_t *px;
    int w, h, c;
} raw_image;

static pml_status check_size(const char *path, const char *kind, size_t w, size_t h)
{
    if (w == 0 || h == 0)
        return pml_fail(PML_EFORMAT, "%s: %s image of %zux%zu pixels: zero width or height", path,
                        kind, w, h);
    if (w > IMG_MAX_PIXELS / h)
        return pml_fail(PML_EUNSUPPORTED,
                        "%s: %s image of %zux%zu pixels, more than the %zu pml decodes", path, kind,
                        w, h, IMG_MAX_PIXELS);
    return PML_OK;
}

typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    struct jpeg_progress_mgr progress;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_failure;

static void jpeg_on_error(j_common_ptr ci)
{
    jpeg_failure *f = (jpeg_failure *)(void *)ci->err;
    ci->err->format_message(ci, f->msg);
    longjmp(f->jmp, 1);
}

/* Warnings are for corrupt data libjpeg can go on with, as TensorFlow does; data that ends early
 * (libjpeg would make up the rest) is an error. */
static void jpeg_on_message(j_common_ptr ci, int level)
{
    if (level == -1 && ci->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(ci);
}

/* A progressive JPEG of many tiny scans costs time out of all proportion to its size. */
static void jpeg_on_progress(j_common_ptr ci)
{
    if (ci->is_decompressor && ((j_decompress_ptr)ci)->input_scan_number > IMG_MAX_SCANS) {
        jpeg_failure *f = (jpeg_failure *)(void *)ci->err;
        snprintf(f->msg, sizeof f->msg, "more than %d scans", IMG_MAX_SCANS);
        longjmp(f->jmp, 1);
    }
}

static pml_status decode_jpeg(const char *path, const uint8_t *data, size_t len, raw_image *out)
{
    struct jpeg_decompress_struct ci;
    jpeg_failure f;
    uint8_t *volatile px = NULL;
    ci.err = jpeg_std_error(&f.mgr);
    f.mgr.error_exit = jpeg_on_error;
    f.mgr.emit_message = jpeg_on_message;
    f.msg[0] = 0;
    if (setjmp(f.jmp)) {
        const bool cut = f.mgr.msg_code == JWRN_JPEG_EOF,
                   empty = f.mgr.msg_code == JERR_EMPTY_IMAGE;
        jpeg_destroy_decompress(&ci);
        free(px);
        if (empty) return pml_fail(PML_EFORMAT, "%s: JPEG image of zero width or height", path);
        return pml_fail(PML_EFORMAT, "%s: %s JPEG (%s)", path, cut ? "truncated" : "corrupt",
                        f.msg);
    }
    jpeg_create_decompress(&ci);
    f.progress.progress_monitor = jpeg_on_progress;
    ci.progress = &f.progress;
    jpeg_mem_src(&ci, data, (unsigned long)len);
    jpeg_read_header(&ci, TRUE);
    if (ci.jpeg_color_space == JCS_GRAYSCALE) {
        ci.out_color_space = JCS_GRAYSCALE;
    } else if (ci.jpeg_color_space == JCS_YCbCr || ci.jpeg_color_space == JCS_RGB) {
        ci.out_color_space = JCS_RGB;
    } else {
        const int cs = ci.jpeg_color_space;
        jpeg_destroy_decompress(&ci);
        return pml_fail(PML_EUNSUPPORTED, "%s: %s JPEG: not supported (grey or RGB only)", path,
                        cs == JCS_CMYK   ? "CMYK"
                        : cs == JCS_YCCK ? "YCCK (CMYK)"
                                         : "unknown colour space");
    }
    pml_status st = check_size(path, "JPEG", ci.image_width, ci.image_height);
    if (st != PML_OK) {
        jpeg_destroy_decompress(&ci);
        return st;
    }
    jpeg_start_decompress(&ci);
    const size_t stride = (size_t)ci.output_width * (size_t)ci.output_components;
    if (!(px = malloc(stride * ci.output_height))) {
        jpeg_destroy_decompress(&ci);
        return pml_fail(PML_ENOMEM, "%s: out of memory for a %ux%u image", path, ci.output_width,
                        ci.output_height);
    }
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = px + (size_t)ci.output_scanline * stride;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci);
    *out = (raw_image){px, (int)ci.output_width, (int)ci.output_height, ci.output_components};
    jpeg_destroy_decompress(&ci);
    return PML_OK;
}

typedef struct png_source {
    const uint8_t *data;
    size_t len, off;
    char msg[256];
} png_source;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_source *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {} /* as TensorFlow: go on */

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
    png_source *s = png_get_io_ptr(png);
    if (n > s->len - s->off) png_error(png, "the file ends early");
    memcpy(out, s->data + s->off, n);
    s->off += n;
}

static pml_status decode_png(const char *path, const uint8_t *data, size_t len, raw_image *out)
{
    png_source src = {.data = data, .len = len};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    volatile pml_status st = PML_OK; /* set before a png_longjmp of ours */
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return pml_fail(PML_ENOMEM, "%s: out of memory for the PNG reader", path);
    }
    /* IHDR comes first; libpng would say "Invalid IHDR data" of a zero width or height */
    if (len >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        const size_t w = (size_t)data[16] << 24 | data[17] << 16 | data[18] << 8 | data[19];
        const size_t h = (size_t)data[20] << 24 | data[21] << 16 | data[22] << 8 | data[23];
        if (w == 0 || h == 0) {
            png_destroy_read_struct(&png, &info, NULL);
            return check_size(path, "PNG", w, h);
        }
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(px);
        free(rows);
        if (st != PML_OK) return st;
        return pml_fail(PML_EFORMAT, "%s: %s PNG (%s)", path,
                        strcmp(src.msg, "the file ends early") == 0 ? "truncated" : "corrupt",
                        src.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, type = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &type, NULL, NULL, NULL);
    if ((st = check_size(path, "PNG", w, h)) != PML_OK) png_longjmp(png, 1);
    /* to 8-bit grey or RGB, as TensorFlow's decode_png with 1 or 3 channels */
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png);
    png_set_strip_alpha(png); /* also a palette's or grey's transparent colour */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int c = png_get_channels(png, info);
    const size_t stride = (size_t)w * (size_t)c;
    if ((c != 1 && c != 3) || png_get_rowbytes(png, info) != stride) {
        st = pml_fail(PML_EUNSUPPORTED, "%s: PNG colour type %d of %d bits: not supported", path,
                      type, depth);
        png_longjmp(png, 1);
    }
    px = malloc(stride * h);
    rows = malloc(h * sizeof *rows);
    if (!px || !rows) {
        st = pml_fail(PML_ENOMEM, "%s: out of memory for a %ux%u image", path, (unsigned)w,
                      (unsigned)h);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* up to IEND: a file cut after its pixels is truncated too */
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *out = (raw_image){px, (int)w, (int)h, c};
    return PML_OK;
}

/* ---------------------------------------------------------------- converting and resizing */

/* RGB to grey in place (ITU-R BT.601 luma, as PIL's convert("L") and tf.image.rgb_to_grayscale). */
static void to_grey(raw_image *im)
{
    const size_t n = (size_t)im->w * im->h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = im->px + 3 * i;
        im->px[i] = (uint8_t)(0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2] + 0.5f);
    }
    im->c = 1;
}

/* Output index i of out samples along a side of in: its source position with half-pixel centres,
 * (i + 0.5) * in / out - 0.5, clamped to the image (tf.image.resize's "bilinear" without
 * antialiasing): the two neighbours and the weight of the second. */
static void source_pos(int i, int out, int in, int *lo, int *hi, float *t)
{
    float s = ((float)i + 0.5f) * ((float)in / (float)out) - 0.5f;
    if (s < 0) s = 0;
    int l = (int)s;
    if (l > in - 1) l = in - 1;
    *lo = l;
    *hi = l + 1 < in ? l + 1 : l;
    *t = s - (float)l;
}

/* Channels [0, im->c) of im (HWC) resized bilinearly into planes of h x w (CHW), rounded. */
static void resize(const raw_image *im, uint8_t *dst, int h, int w)
{
    const int c = im->c;
    const size_t stride = (size_t)im->w * c, plane = (size_t)h * w;
    for (int y = 0; y < h; y++) {
        int y0, y1, x0, x1;
        float ty, tx;
        source_pos(y, h, im->h, &y0, &y1, &ty);
        const uint8_t *r0 = im->px + (size_t)y0 * stride, *r1 = im->px + (size_t)y1 * stride;
        for (int x = 0; x < w; x++) {
            source_pos(x, w, im->w, &x0, &x1, &tx);
            for (int k = 0; k < c; k++) {
                const float a = r0[x0 * c + k], b = r0[x1 * c + k];
                const float p = r1[x0 * c + k], q = r1[x1 * c + k];
                const float top = a + (b - a) * tx, bottom = p + (q - p) * tx;
                dst[k * plane + (size_t)y * w + x] = (uint8_t)(top + (bottom - top) * ty + 0.5f);
            }
        }
    }
}

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* What a file that is neither JPEG nor PNG looks like, for the message. */
static const char *other_kind(const uint8_t *d, size_t n)
{
    if (n >= 4 && memcmp(d, "GIF8", 4) == 0) return "a GIF image";
    if (n >= 2 && memcmp(d, "BM", 2) == 0) return "a BMP image";
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return "a WebP image";
    if (n >= 4 && (memcmp(d, "II*", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) return "a TIFF image";
    return "unknown contents";
}

/* Reads, decodes, converts and resizes one file into dst (shape.c planes of shape.h x shape.w). */
static pml_status load_one(const char *path, pml_shape shape, uint8_t *dst)
{
    char *data = NULL;
    size_t len = 0;
    raw_image im = {0};
    pml_status st = pml_read_file(path, IMG_MAX_FILE, &data, &len);
    if (st != PML_OK) return st;
    const uint8_t *d = (const uint8_t *)data;
    if (len == 0)
        st = pml_fail(PML_EFORMAT, "%s: empty file, expected a JPEG or PNG image", path);
    else if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        st = decode_jpeg(path, d, len, &im);
    else if (len >= 8 && memcmp(d, png_magic, 8) == 0)
        st = decode_png(path, d, len, &im);
    else
        st = pml_fail(PML_EFORMAT, "%s: not a JPEG or PNG image (%s)", path, other_kind(d, len));
    free(data);
    if (st != PML_OK) return st;
    if (im.c == 3 && shape.c == 1) to_grey(&im);
    resize(&im, dst, shape.h, shape.w);
    if (im.c == 1 && shape.c == 3) /* grey to RGB: the same plane thrice */
        for (int k = 1; k < 3; k++)
            memcpy(dst + (size_t)k * shape.h * shape.w, dst, (size_t)shape.h * shape.w);
    free(im.px);
    return PML_OK;
}

/* ---------------------------------------------------------------- test hooks */

static _Atomic long files_decoded; /* by this process, for tests (pml__image_decodes) */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static bool hold_on;

long pml__image_decodes(void)
{
    return atomic_load(&files_decoded);
}

void pml__image_hold(bool on)
{
    pthread_mutex_lock(&hold_mu);
    hold_on = on;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
}

/* A decode in the pool waits here while a test holds the pool (pml__image_hold). */
static void hold_point(void)
{
    pthread_mutex_lock(&hold_mu);
    while (hold_on) pthread_cond_wait(&hold_cv, &hold_mu);
    pthread_mutex_unlock(&hold_mu);
}

/* ---------------------------------------------------------------- decoding in the pool
 *
 * One decoder thread per folder runs a libuv loop that keeps a window of files in the pool, in
 * storage order. Every sample (slot) has a state, PENDING -> CLAIMED -> DONE or BAD, claimed by
 * compare-and-swap: by the decoder for a pool job, or by a gather that needs it first (it then
 * decodes it itself, so a gather never waits for a job still queued behind it in the pool). A
 * gather that finds its sample CLAIMED waits on the stream's condition variable for exactly
 * that sample. DONE and BAD are stored with release order after the bytes, under the mutex
 * (no lost wake-up); readers load with acquire order.
 * Without skip_bad, once a file fails no file after it in sorted order is handed to the pool
 * (gathers may still decode those), so when the decoder ends and no gather is decoding, every
 * file before the first failure has been tried: the error is that of the first bad file in
 * sorted order, whatever the timing. */

enum { SLOT_PENDING, SLOT_CLAIMED, SLOT_DONE, SLOT_BAD };

typedef struct img_job {
    uv_work_t work;
    struct pml__image_stream *S;
    int slot;
} img_job;

struct pml__image_stream {
    name_list paths; /* sorted */
    pml_shape shape;
    size_t size; /* bytes per sample */
    int n;
    bool skip_bad;
    const int32_t *file_of; /* slot -> file */
    uint8_t *images;        /* the dataset's storage (owned by the dataset) */
    _Atomic uint8_t *state; /* per slot */
    _Atomic int failed;     /* a file failed */
    _Atomic int first_bad;  /* the first failed file in sorted order (n: none) */
    _Atomic int steals;     /* gathers that may be decoding a sample */
    _Atomic int stop;       /* hand out no more files */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    pml_status st;  /* of first_bad, or running out of memory (which wins) */
    char msg[1024]; /* its message */
    int ndone;      /* slots DONE */
    bool finished;  /* the decoder ended and no gather is decoding */
    long stolen, waited;
    /* the decoder's */
    uv_loop_t loop;
    uv_thread_t thread;
    bool thread_ok;
    int next;   /* the next slot to hand out */
    int window; /* files in the pool at once */
    img_job jobs[IMG_WINDOW];
    /* the decoded cache it writes once every sample is DONE (NULL path: none) */
    char *cache_path;
    uint8_t *sig;
    size_t sig_len;
    const int32_t *labels;
};

static void decode_slot(pml__image_stream *S, int s)
{
    const int f = S->file_of[s];
    uint8_t *dst = S->images + (size_t)s * S->size;
    pml_status st = load_one(S->paths.v[f], S->shape, dst);
    atomic_fetch_add(&files_decoded, 1);
    if (st != PML_OK) memset(dst, 0, S->size); /* never read as data: the run fails */
    pthread_mutex_lock(&S->mu);
    if (st == PML_OK) {
        S->ndone++;
    } else if (S->st != PML_ENOMEM &&
               (st == PML_ENOMEM || f < atomic_load(&S->first_bad))) { /* ENOMEM wins */
        atomic_store(&S->first_bad, f);
        S->st = st;
        snprintf(S->msg, sizeof S->msg, "%s", pml_errmsg());
    }
    if (st != PML_OK) atomic_store(&S->failed, 1);
    if (st == PML_ENOMEM) atomic_store(&S->stop, 1);
    atomic_store_explicit(&S->state[s], st == PML_OK ? SLOT_DONE : SLOT_BAD, memory_order_release);
    pthread_cond_broadcast(&S->cv);
    pthread_mutex_unlock(&S->mu);
}

static void job_work(uv_work_t *w)
{
    img_job *j = w->data;
    hold_point();
    decode_slot(j->S, j->slot);
}

static void job_done(uv_work_t *w, int status);

/* decoder thread: hands the next pending slot to job j, unless the load stops */
static void job_next(pml__image_stream *S, img_job *j)
{
    while (!atomic_load(&S->stop) && S->next < S->n) {
        const int s = S->next++;
        if (!S->skip_bad && atomic_load(&S->failed) && S->file_of[s] > atomic_load(&S->first_bad))
            continue; /* after the first failure in sorted order: of no use */
        uint8_t pending = SLOT_PENDING;
        if (!atomic_compare_exchange_strong(&S->state[s], &pending, SLOT_CLAIMED)) continue;
        j->slot = s;
        j->work.data = j;
        int r = uv_queue_work(&S->loop, &j->work, job_work, job_done); /* fails for NULL only */
        (void)r;
        return;
    }
}

static void job_done(uv_work_t *w, int status)
{
    (void)status;
    img_job *j = w->data;
    job_next(j->S, j);
}

static void cache_write(const char *path, const uint8_t *sig, size_t sig_len, int m, int skipped,
                        const int32_t *labels, const uint8_t *images, size_t size);

static void decoder_main(void *arg)
{
    pml__image_stream *S = arg;
    for (int i = 0; i < S->window; i++) {
        S->jobs[i].S = S;
        job_next(S, &S->jobs[i]);
    }
    uv_run(&S->loop, UV_RUN_DEFAULT);
    pthread_mutex_lock(&S->mu);
    while (atomic_load(&S->steals) > 0) pthread_cond_wait(&S->cv, &S->mu);
    S->finished = true;
    const bool all = S->ndone == S->n;
    pthread_cond_broadcast(&S->cv);
    pthread_mutex_unlock(&S->mu);
    if (all && S->cache_path)
        cache_write(S->cache_path, S->sig, S->sig_len, S->n, 0, S->labels, S->images, S->size);
}

void pml__image_need(pml__image_stream *S, size_t s)
{
    if (atomic_load_explicit(&S->state[s], memory_order_acquire) >= SLOT_DONE) return;
    atomic_fetch_add(&S->steals, 1); /* before the claim: the decoder's end waits for it */
    uint8_t pending = SLOT_PENDING;
    const bool mine = atomic_compare_exchange_strong(&S->state[s], &pending, SLOT_CLAIMED);
    if (mine) decode_slot(S, (int)s);
    pthread_mutex_lock(&S->mu);
    if (mine) {
        S->stolen++;
    } else if (atomic_load_explicit(&S->state[s], memory_order_acquire) < SLOT_DONE) {
        S->waited++;
        while (atomic_load_explicit(&S->state[s], memory_order_acquire) < SLOT_DONE)
            pthread_cond_wait(&S->cv, &S->mu);
    }
    if (atomic_fetch_sub(&S->steals, 1) == 1) pthread_cond_broadcast(&S->cv);
    pthread_mutex_unlock(&S->mu);
}

pml_status pml__image_wait(pml__image_stream *S)
{
    pthread_mutex_lock(&S->mu);
    while (!S->finished) pthread_cond_wait(&S->cv, &S->mu);
    const pml_status st = S->st;
    char msg[sizeof S->msg];
    memcpy(msg, S->msg, sizeof msg);
    pthread_mutex_unlock(&S->mu);
    return st == PML_OK ? PML_OK : pml_fail(st, "%s", msg);
}

pml_status pml__image_check(pml__image_stream *S)
{
    return atomic_load(&S->failed) ? pml__image_wait(S) : PML_OK;
}

void pml__image_stats(pml__image_stream *S, long *stolen, long *waited)
{
    pthread_mutex_lock(&S->mu);
    *stolen = S->stolen;
    *waited = S->waited;
    pthread_mutex_unlock(&S->mu);
}

void pml__image_close(pml__image_stream *S)
{
    if (!S) return;
    atomic_store(&S->stop, 1);
    if (S->thread_ok) {
        uv_thread_join(&S->thread);
        uv_loop_close(&S->loop);
    }
    pthread_mutex_destroy(&S->mu);
    pthread_cond_destroy(&S->cv);
    names_free(&S->paths);
    free((void *)S->file_of);
    free((void *)S->state);
    free(S->cache_path);
    free(S->sig);
    free(S);
}

/* Files in the pool at once while training runs: one per two cores (at least one), so the
 * decoding leaves most of the cores to the training steps; batches decode what they need and
 * have not got. On 2 shared cores one epoch of flowers-cnn on 3,000 JPEGs took 97 s with 16
 * files in the pool (4 decoding at once) and 62-84 s with one (a busy machine: single runs,
 * tens of percent apart). */
static int training_window(void)
{
    cpu_set_t cs;
    int cores = sched_getaffinity(0, sizeof cs, &cs) == 0 ? CPU_COUNT(&cs) : 1;
    int w = cores / 2;
    return w < 1 ? 1 : w > IMG_WINDOW ? IMG_WINDOW : w;
}

/* Starts decoding into images: slot s is file file_of[s] of paths (both taken). With
 * cache_path (taken, as sig) the decoder writes the cache once every sample is decoded. With
 * training, fewer files at once (training_window); else IMG_WINDOW. */
static pml_status stream_start(pml__image_stream **out, name_list *paths, int32_t *file_of,
                               pml_shape shape, uint8_t *images, bool skip_bad, bool training,
                               char *cache_path, uint8_t *sig, size_t sig_len,
                               const int32_t *labels)
{
    pml__image_stream *S = calloc(1, sizeof *S);
    const int n = paths->n;
    _Atomic uint8_t *state = S ? calloc((size_t)n, sizeof *state) : NULL;
    if (!S || !state) {
        free(S);
        free((void *)state);
        free(file_of);
        free(cache_path);
        free(sig);
        return pml_fail(PML_ENOMEM, "out of memory for %d images", n);
    }
    S->window = training ? training_window() : IMG_WINDOW;
    S->cache_path = cache_path;
    S->sig = sig;
    S->sig_len = sig_len;
    S->labels = labels;
    S->paths = *paths;
    memset(paths, 0, sizeof *paths);
    S->file_of = file_of;
    S->state = state;
    S->shape = shape;
    S->size = pml_shape_size(shape);
    S->n = n;
    S->skip_bad = skip_bad;
    S->images = images;
    atomic_store(&S->first_bad, n);
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->cv, NULL);
    *out = S;
    int r = uv_loop_init(&S->loop);
    if (r != 0) return pml_fail(PML_EIO, "cannot start an event loop: %s", uv_strerror(r));
    /* libuv's pool threads start with the first work item of the process and take the signal
     * mask of the thread that starts them (the decoder): all blocked, so signals come to the
     * caller */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = uv_thread_create(&S->thread, decoder_main, S);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        uv_loop_close(&S->loop);
        return pml_fail(PML_EIO, "cannot start a decoding thread: %s", uv_strerror(r));
    }
    S->thread_ok = true;
    return PML_OK;
}

/* ---------------------------------------------------------------- the decoded cache
 *
 * File     CACHE/images/BASE-CxHxW-HASH.bin, HASH of the folder's real path (pml_cache_dir).
 * Content  IMG_CACHE_MAGIC, the signature's length (u64) and the signature: the shape, the
 *          class names, every image file's path under the folder, size and mtime (ns), each
 *          string length-prefixed; then the samples kept (u32) and the bad files skipped (u32),
 *          the labels (int32) and the images (bytes) in storage order; then the CRC-32 (zlib)
 *          of everything before it. Native byte order: a cache is this machine's.
 * Use      when the signature is the folder's now byte for byte, the size is exact and the
 *          checksum holds; a cache with skipped files only with skip_bad. Anything else (an
 *          unreadable, cut or corrupt file) is a miss, never an error: the folder is decoded
 *          and the cache written anew (atomically, pml_afile). */

#define IMG_CACHE_MAGIC "pml image cache 1\n"

static void sig_put(uint8_t **p, const void *data, size_t len)
{
    memcpy(*p, data, len);
    *p += len;
}

static void sig_str(uint8_t **p, const char *s)
{
    const uint32_t len = (uint32_t)strlen(s);
    sig_put(p, &len, sizeof len);
    sig_put(p, s, len);
}

/* The signature of a folder's listing (NULL: a file cannot be stat'ed now; no cache). */
static uint8_t *make_sig(const char *dir, pml_shape shape, const name_list *classes,
                         const name_list *paths, size_t *len)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    size_t cap = 3 * sizeof(int32_t) + 2 * sizeof(uint32_t);
    for (int k = 0; k < classes->n; k++) cap += 4 + strlen(classes->v[k]);
    for (int i = 0; i < paths->n; i++) cap += 4 + strlen(paths->v[i]) + 16;
    uint8_t *sig = malloc(cap), *p = sig;
    if (!sig) return NULL;
    const int32_t dims[3] = {shape.c, shape.h, shape.w};
    const uint32_t nc = (uint32_t)classes->n, nf = (uint32_t)paths->n;
    sig_put(&p, dims, sizeof dims);
    sig_put(&p, &nc, sizeof nc);
    for (int k = 0; k < classes->n; k++) sig_str(&p, classes->v[k]);
    sig_put(&p, &nf, sizeof nf);
    for (int i = 0; i < paths->n; i++) {
        struct stat sb;
        if (stat(paths->v[i], &sb) != 0) {
            free(sig);
            return NULL;
        }
        const int64_t t[2] = {(int64_t)sb.st_size,
                              (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec};
        sig_str(&p, paths->v[i] + dl + 1);
        sig_put(&p, t, sizeof t);
    }
    *len = (size_t)(p - sig);
    return sig;
}

/* The cache file of folder dir at shape (malloc'd), or NULL: no cache folder. */
static char *cache_file(const char *dir, pml_shape shape)
{
    char *real = realpath(dir, NULL);
    if (!real) return NULL;
    char base[41], *path = NULL;
    pml__base_name(real, base, sizeof base);
    for (char *c = base; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            *c = '_';
    const uint64_t h = pml_hash_str(PML_HASH_INIT, real);
    free(real);
    char *folder = pml_cache_dir("images");
    if (folder && asprintf(&path, "%s/%s-%dx%dx%d-%016llx.bin", folder, base, shape.c, shape.h,
                           shape.w, (unsigned long long)h) < 0)
        path = NULL;
    free(folder);
    return path;
}

static bool put(FILE *f, uLong *crc, const void *data, size_t len)
{
    *crc = crc32_z(*crc, data, len);
    return fwrite(data, 1, len, f) == len;
}

static void cache_write(const char *path, const uint8_t *sig, size_t sig_len, int m, int skipped,
                        const int32_t *labels, const uint8_t *images, size_t size)
{
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", pml_errmsg());
    pml_afile af;
    if (pml_afile_open(&af, path) == PML_OK) {
        uLong crc = crc32_z(0, NULL, 0);
        const uint64_t sl = sig_len;
        const uint32_t counts[2] = {(uint32_t)m, (uint32_t)skipped};
        bool ok = put(af.f, &crc, IMG_CACHE_MAGIC, strlen(IMG_CACHE_MAGIC)) &&
                  put(af.f, &crc, &sl, sizeof sl) && put(af.f, &crc, sig, sig_len) &&
                  put(af.f, &crc, counts, sizeof counts) &&
                  put(af.f, &crc, labels, (size_t)m * sizeof *labels) &&
                  put(af.f, &crc, images, (size_t)m * size);
        const uint32_t sum = (uint32_t)crc;
        if (ok && fwrite(&sum, sizeof sum, 1, af.f) == 1)
            pml_afile_commit(&af); /* a cache that cannot be written is no error */
        else
            pml_afile_abort(&af);
    }
    pml_fail(PML_OK, "%s", saved);
}

static bool get(FILE *f, uLong *crc, void *data, size_t len)
{
    if (fread(data, 1, len, f) != len) return false;
    *crc = crc32_z(*crc, data, len);
    return true;
}

/* Loads the cache at path into d when it is the folder's (signature sig) and usable. */
static bool cache_read(const char *path, const uint8_t *sig, size_t sig_len, pml_shape shape,
                       int classes, int nfiles, bool skip_bad, pml_dataset *d, int *skipped)
{
    FILE *f = fopen(path, "rbe");
    if (!f) return false;
    const size_t size = pml_shape_size(shape), ml = strlen(IMG_CACHE_MAGIC);
    uint8_t *buf = malloc(sig_len > ml ? sig_len : ml), *block = NULL;
    uLong crc = crc32_z(0, NULL, 0);
    uint64_t sl = 0;
    uint32_t counts[2], sum;
    struct stat sb;
    bool ok = buf && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) &&
              get(f, &crc, buf, ml) && memcmp(buf, IMG_CACHE_MAGIC, ml) == 0 &&
              get(f, &crc, &sl, sizeof sl) && sl == sig_len && get(f, &crc, buf, sig_len) &&
              memcmp(buf, sig, sig_len) == 0 && get(f, &crc, counts, sizeof counts);
    const size_t m = ok ? counts[0] : 0;
    ok = ok && m >= 1 && m + counts[1] == (size_t)nfiles && (counts[1] == 0 || skip_bad) &&
         (uint64_t)sb.st_size == ml + sizeof sl + sig_len + sizeof counts +
                                     m * (sizeof(int32_t) + size) + sizeof sum;
    const size_t lab_off = pml__labels_offset(m * size);
    ok = ok && (block = malloc(lab_off + m * sizeof(int32_t))) != NULL;
    int32_t *labels = ok ? (int32_t *)(void *)(block + lab_off) : NULL;
    ok = ok && get(f, &crc, labels, m * sizeof *labels) && get(f, &crc, block, m * size) &&
         fread(&sum, sizeof sum, 1, f) == 1 && sum == (uint32_t)crc;
    for (size_t i = 0; ok && i < m; i++) ok = labels[i] >= 0 && labels[i] < classes;
    fclose(f);
    free(buf);
    if (!ok) {
        free(block);
        return false;
    }
    d->n = (int)m;
    d->shape = shape;
    d->classes = classes;
    d->images = block;
    d->labels = labels;
    d->owner = block;
    if (skipped) *skipped = (int)counts[1];
    return true;
}

/* ---------------------------------------------------------------- loading */

/* Loads folder dir: from the cache, else decoding in the pool; with stream (and no skip_bad)
 * it returns once the listing is done and the decoding goes on (d->stream). */
static pml_status load_dir(const char *dir, pml_shape shape, bool skip_bad, bool stream,
                           int *skipped, pml_dataset *d)
{
    name_list classes = {0}, paths = {0};
    int32_t *end = NULL, *order = NULL, *slot = NULL; /* end[k]: paths of classes 0..k */
    uint8_t *block = NULL, *sig = NULL;
    size_t sig_len = 0;
    char *cpath = NULL;
    pml__image_stream *S = NULL;
    char path[PATH_MAX];
    pml_status st = PML_OK;

    if (skipped) *skipped = 0;
    if (!d) return pml_fail(PML_EINVAL, "pml_data_load_image_dir: no dataset given");
    memset(d, 0, sizeof *d);
    if (!dir) return pml_fail(PML_EINVAL, "pml_data_load_image_dir: no folder given");
    if ((shape.c != 1 && shape.c != 3) || shape.h < 1 || shape.w < 1 ||
        (int64_t)shape.h * shape.w > IMG_MAX_OUT_PIXELS)
        return pml_fail(PML_EINVAL,
                        "%s: images are loaded as 1 (grey) or 3 (RGB) channels of 1 to %d "
                        "pixels, not %dx%dx%d",
                        dir, IMG_MAX_OUT_PIXELS, shape.c, shape.h, shape.w);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return pml_fail(errno == ENOENT ? PML_ENOTFOUND : PML_EIO,
                        "%s: cannot open the image folder: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return pml_fail(PML_EINVAL, "%s: is not a folder (expected one subfolder per class)", dir);

    /* the classes and their files, in byte order */
    if ((st = list_dir(dir, true, &classes, NULL)) != PML_OK) goto done;
    if (classes.n == 0) {
        st = pml_fail(PML_EFORMAT,
                      "%s: no class subfolders (an image folder has one subfolder of images per "
                      "class)",
                      dir);
        goto done;
    }
    if (classes.n == 1) {
        st = pml_fail(PML_EFORMAT,
                      "%s: one class folder ('%s'); a classifier needs at least 2 (one subfolder "
                      "of images per class)",
                      dir, classes.v[0]);
        goto done;
    }
    if (!(end = malloc((size_t)classes.n * sizeof *end))) {
        st = pml_fail(PML_ENOMEM, "%s: out of memory for %d classes", dir, classes.n);
        goto done;
    }
    for (int k = 0; k < classes.n; k++) {
        if ((st = join(path, sizeof path, dir, classes.v[k])) != PML_OK) goto done;
        const int before = paths.n;
        if ((st = collect(path, 0, &paths)) != PML_OK) goto done;
        if (paths.n == before) {
            st = pml_fail(PML_EFORMAT, "%s: class folder '%s' has no images (.jpg, .jpeg or .png)",
                          path, classes.v[k]);
            goto done;
        }
        end[k] = paths.n;
    }

    /* the storage, checked before anything is read or decoded */
    const int n = paths.n;
    const size_t size = pml_shape_size(shape);
    const double want = (double)n * (double)size, mem = 0.75 * pml__usable_memory();
    const bool by_limit = mem > (double)PML_IMAGE_DIR_MAX_BYTES;
    const double limit = by_limit ? (double)PML_IMAGE_DIR_MAX_BYTES : mem;
    if (want > limit) {
        st = pml_fail(PML_ENOFIT,
                      "%s: %d images of %dx%dx%d take %.3g GB once decoded, more than %s (%.3g "
                      "GB); use fewer images or a smaller model input",
                      dir, n, shape.c, shape.h, shape.w, want / 1e9,
                      by_limit ? "pml loads from an image folder" : "this machine's memory allows",
                      limit / 1e9);
        goto done;
    }

    /* the decoded cache, when it is this listing's */
    if ((cpath = cache_file(dir, shape)) != NULL &&
        (sig = make_sig(dir, shape, &classes, &paths, &sig_len)) != NULL &&
        cache_read(cpath, sig, sig_len, shape, classes.n, n, skip_bad, d, skipped)) {
        pml__base_name(dir, d->name, sizeof d->name);
        goto done;
    }

    const size_t lab_off = pml__labels_offset((size_t)n * size);
    block = malloc(lab_off + (size_t)n * sizeof(int32_t));
    order = malloc((size_t)n * sizeof *order);
    slot = malloc((size_t)n * sizeof *slot);
    if (!block || !order || !slot) {
        st = pml_fail(PML_ENOMEM, "%s: out of memory for %d images of %dx%dx%d", dir, n, shape.c,
                      shape.h, shape.w);
        goto done;
    }
    /* sample s of the storage is file order[s] */
    int32_t *labels = (int32_t *)(void *)(block + lab_off);
    pml_data_shuffle(order, n, IMG_ORDER_SEED, 0);
    for (int s = 0; s < n; s++) slot[order[s]] = s;
    for (int k = 0, f = 0; k < classes.n; k++)
        for (; f < end[k]; f++) labels[slot[f]] = k;

    stream = stream && !skip_bad; /* skipping changes the count: it is known at the end only */
    /* opened, the decoder writes the cache once every sample is decoded; else this thread */
    st = stream_start(&S, &paths, order, shape, block, skip_bad, stream, stream ? cpath : NULL,
                      stream ? sig : NULL, sig_len, labels);
    order = NULL; /* the stream's */
    if (stream) cpath = NULL, sig = NULL;
    if (st != PML_OK) goto done;
    if (stream) {
        pml__data_own(d, dir, n, shape, classes.n, block, labels);
        d->stream = S;
        block = NULL;
        S = NULL;
        goto done;
    }

    st = pml__image_wait(S);
    if (st != PML_OK && !(skip_bad && st != PML_ENOMEM)) goto done;
    int nbad = 0;
    for (int s = 0; s < n; s++) nbad += atomic_load(&S->state[s]) != SLOT_DONE;
    if (nbad == n) {
        st = pml_fail(PML_EFORMAT, "%s: none of its %d images could be decoded (the first: %s)",
                      dir, n, S->msg);
        goto done;
    }
    st = PML_OK;

    /* the good samples close ranks, in storage order */
    int m = 0;
    for (int s = 0; s < n; s++) {
        if (atomic_load(&S->state[s]) != SLOT_DONE) continue;
        if (m != s) {
            memcpy(block + (size_t)m * size, block + (size_t)s * size, size); /* m < s */
            labels[m] = labels[s];
        }
        m++;
    }
    if (cpath && sig) cache_write(cpath, sig, sig_len, m, nbad, labels, block, size);
    pml__data_own(d, dir, m, shape, classes.n, block, labels);
    block = NULL;
    if (skipped) *skipped = nbad;
done:
    pml__image_close(S);
    names_free(&classes);
    names_free(&paths);
    free(end);
    free(order);
    free(slot);
    free(block);
    free(cpath);
    free(sig);
    if (st != PML_OK) {
        if (skipped) *skipped = 0;
        memset(d, 0, sizeof *d);
    }
    return st;
}

pml_status pml_data_load_image_dir(const char *dir, pml_shape shape, bool skip_bad, int *skipped,
                                   pml_dataset *d)
{
    return load_dir(dir, shape, skip_bad, false, skipped, d);
}

pml_status pml_data_open_image_dir(const char *dir, pml_shape shape, bool skip_bad, int *skipped,
                                   pml_dataset *d)
{
    return load_dir(dir, shape, skip_bad, true, skipped, d);
}

/* ---------------------------------------------------------------- train/ and test/ */

static bool is_folder(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* train/ and test/ must name the same classes, or their labels would mean different things. */
static pml_status same_classes(const char *train_dir, const char *test_dir)
{
    name_list a = {0}, b = {0};
    pml_status st = list_dir(train_dir, true, &a, NULL);
    if (st == PML_OK) st = list_dir(test_dir, true, &b, NULL);
    for (int i = 0; st == PML_OK && (i < a.n || i < b.n); i++) {
        if (i < a.n && i < b.n && strcmp(a.v[i], b.v[i]) == 0) continue;
        st = pml_fail(PML_EFORMAT,
                      "%s and %s: the classes differ (class %d is '%s' in one, '%s' in the other); "
                      "both need the same class subfolders",
                      train_dir, test_dir, i, i < a.n ? a.v[i] : "(none)",
                      i < b.n ? b.v[i] : "(none)");
    }
    names_free(&a);
    names_free(&b);
    return st;
}

pml_status pml__image_sets(const char *dir, pml_shape shape, bool skip_bad, bool stream,
                           int *skipped, pml_dataset *train, pml_dataset *test)
{
    char tr_dir[PATH_MAX], te_dir[PATH_MAX], base[48];
    int skip_tr = 0, skip_te = 0;
    pml_status st;
    if (train) memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (skipped) *skipped = 0;
    if ((st = join(tr_dir, sizeof tr_dir, dir, "train")) != PML_OK ||
        (st = join(te_dir, sizeof te_dir, dir, "test")) != PML_OK)
        return st;
    if (!is_folder(tr_dir) || !is_folder(te_dir)) /* one folder of classes */
        return load_dir(dir, shape, skip_bad, stream, skipped, train ? train : test);
    if ((st = same_classes(tr_dir, te_dir)) != PML_OK) return st;
    if (train && (st = load_dir(tr_dir, shape, skip_bad, stream, &skip_tr, train)) != PML_OK)
        return st;
    if ((st = load_dir(te_dir, shape, skip_bad, stream, &skip_te, test)) != PML_OK) {
        if (train) pml_data_free(train);
        return st;
    }
    pml__base_name(dir, base, sizeof base);
    if (train) snprintf(train->name, sizeof train->name, "%s train", base);
    snprintf(test->name, sizeof test->name, "%s test", base);
    if (skipped) *skipped = skip_tr + skip_te;
    return PML_OK;
}
