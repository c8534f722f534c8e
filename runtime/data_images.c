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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <uv.h>

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

/* ---------------------------------------------------------------- loading in the pool */

typedef struct img_loader img_loader;

typedef struct img_job {
    uv_work_t work;
    img_loader *L;
    int file; /* index in sorted order */
    pml_status st;
    char msg[1024]; /* the worker thread's message, for this thread */
} img_job;

struct img_loader {
    uv_loop_t loop;
    const name_list *paths;
    pml_shape shape;
    uint8_t *images;
    const int32_t *slot; /* file -> its sample in the storage */
    uint8_t *bad;        /* per file */
    bool skip_bad;
    int next, running;
    int first_bad;  /* the first failed file in sorted order (paths->n: none) */
    pml_status st;  /* its status, or a failure not to skip (out of memory) */
    char msg[1024]; /* its message */
    img_job jobs[IMG_WINDOW];
};

static void job_work(uv_work_t *w)
{
    img_job *j = w->data;
    const img_loader *L = j->L;
    uint8_t *dst = L->images + (size_t)L->slot[j->file] * pml_shape_size(L->shape);
    j->st = load_one(L->paths->v[j->file], L->shape, dst);
    if (j->st != PML_OK) snprintf(j->msg, sizeof j->msg, "%s", pml_errmsg());
}

static void job_done(uv_work_t *w, int status);

/* Hands the next file to job j unless a failure stops the load: running out of memory, or any
 * bad file without skip_bad. */
static void job_next(img_loader *L, img_job *j)
{
    const bool stop = L->st == PML_ENOMEM || (!L->skip_bad && L->st != PML_OK);
    if (stop || L->next >= L->paths->n) return;
    j->file = L->next++;
    j->st = PML_OK;
    j->work.data = j;
    L->running++;
    int r = uv_queue_work(&L->loop, &j->work, job_work, job_done); /* fails for NULL work only */
    (void)r;
}

static void job_done(uv_work_t *w, int status)
{
    img_job *j = w->data;
    img_loader *L = j->L;
    L->running--;
    if (j->st != PML_OK) {
        L->bad[j->file] = 1;
        /* the first bad file in sorted order; running out of memory wins over any */
        if (L->st != PML_ENOMEM && (j->st == PML_ENOMEM || j->file < L->first_bad)) {
            L->first_bad = j->file;
            L->st = j->st;
            memcpy(L->msg, j->msg, sizeof L->msg);
        }
    }
    job_next(L, j);
}

/* Decodes every file into its slot; marks bad[] and returns the first failure (or PML_OK). */
static pml_status decode_all(img_loader *L)
{
    int r = uv_loop_init(&L->loop);
    if (r != 0) return pml_fail(PML_EIO, "cannot start an event loop: %s", uv_strerror(r));
    L->first_bad = L->paths->n;
    /* libuv's pool threads start with the first work item of the process and take the signal
     * mask of the thread that starts them: all blocked, so signals come to the caller */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < IMG_WINDOW; i++) {
        L->jobs[i].L = L;
        job_next(L, &L->jobs[i]);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    uv_run(&L->loop, UV_RUN_DEFAULT);
    uv_loop_close(&L->loop);
    if (L->st != PML_OK) return pml_fail(L->st, "%s", L->msg);
    return PML_OK;
}

pml_status pml_data_load_image_dir(const char *dir, pml_shape shape, bool skip_bad, int *skipped,
                                   pml_dataset *d)
{
    name_list classes = {0}, paths = {0};
    int32_t *end = NULL, *order = NULL, *slot = NULL; /* end[k]: paths of classes 0..k */
    uint8_t *block = NULL, *bad = NULL;
    img_loader *L = NULL;
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

    /* the storage, checked before anything is decoded */
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
    const size_t lab_off = pml__labels_offset((size_t)n * size);
    block = malloc(lab_off + (size_t)n * sizeof(int32_t));
    order = malloc((size_t)n * sizeof *order);
    slot = malloc((size_t)n * sizeof *slot);
    bad = calloc((size_t)n, 1);
    L = calloc(1, sizeof *L);
    if (!block || !order || !slot || !bad || !L) {
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

    *L = (img_loader){.paths = &paths,
                      .shape = shape,
                      .images = block,
                      .slot = slot,
                      .bad = bad,
                      .skip_bad = skip_bad};
    st = decode_all(L);
    int nbad = 0;
    for (int i = 0; i < n; i++) nbad += bad[i];
    if (st != PML_OK && !(skip_bad && st != PML_ENOMEM)) goto done;
    if (nbad == n) {
        st = pml_fail(PML_EFORMAT, "%s: none of its %d images could be decoded (the first: %s)",
                      dir, n, L->msg);
        goto done;
    }
    st = PML_OK;

    /* the good samples close ranks, in storage order */
    int m = 0;
    for (int s = 0; s < n; s++) {
        if (bad[order[s]]) continue;
        if (m != s) {
            memcpy(block + (size_t)m * size, block + (size_t)s * size, size); /* m < s */
            labels[m] = labels[s];
        }
        m++;
    }
    pml__base_name(dir, d->name, sizeof d->name);
    d->n = m;
    d->shape = shape;
    d->classes = classes.n;
    d->images = block;
    d->labels = labels;
    d->owner = block;
    block = NULL;
    if (skipped) *skipped = nbad;
done:
    names_free(&classes);
    names_free(&paths);
    free(end);
    free(order);
    free(slot);
    free(bad);
    free(L);
    free(block);
    return st;
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

pml_status pml__image_sets(const char *dir, pml_shape shape, bool skip_bad, int *skipped,
                           pml_dataset *train, pml_dataset *test)
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
        return pml_data_load_image_dir(dir, shape, skip_bad, skipped, train ? train : test);
    if ((st = same_classes(tr_dir, te_dir)) != PML_OK) return st;
    if (train && (st = pml_data_load_image_dir(tr_dir, shape, skip_bad, &skip_tr, train)) != PML_OK)
        return st;
    if ((st = pml_data_load_image_dir(te_dir, shape, skip_bad, &skip_te, test)) != PML_OK) {
        if (train) pml_data_free(train);
        return st;
    }
    pml__base_name(dir, base, sizeof base);
    if (train) snprintf(train->name, sizeof train->name, "%s train", base);
    snprintf(test->name, sizeof test->name, "%s test", base);
    if (skipped) *skipped = skip_tr + skip_te;
    return PML_OK;
}
