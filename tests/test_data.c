/* Tests of runtime/data.c and runtime/data_images.c: IDX files (gzip and plain) written into a
 * temporary folder and read back, the real Fashion-MNIST set, bad files (each error names the
 * file and the fault), validation splits, shuffling, synthetic images, and image folders of
 * JPEG and PNG files written here with libjpeg and libpng (values, resizing, colour
 * conversions, order, bad files, skipping them, the sets pml train takes from a folder). */
#include "models/models.h"
#include "runtime/data_int.h"
#include "runtime/runtime.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <jpeglib.h> /* after stdio.h */
#include <png.h>

/* ---------------------------------------------------------------- helpers */

static char tmpdir[64];

static void tmp_begin(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pml-test-data-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "  mkdtemp: %s\n", strerror(errno));
        exit(2);
    }
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void tmp_end(void)
{
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/name in a rotating set of buffers (a few paths live at once) */
static const char *tmp(const char *name)
{
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static void write_raw(const char *path, int gz, const void *data, size_t len)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        CHECK(f != NULL);
        if (!f) return;
        if (len) CHECK(gzwrite(f, data, (unsigned)len) == (int)len);
        CHECK(gzclose(f) == Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        if (!f) return;
        if (len) CHECK(fwrite(data, 1, len, f) == len);
        CHECK(fclose(f) == 0);
    }
}

static size_t put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* An IDX file: magic, ndims sizes, then len bytes of data (which may disagree with the sizes). */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndims,
                      const uint8_t *data, size_t len)
{
    uint8_t *buf = malloc(4 + 4 * (size_t)ndims + len);
    size_t off = put_be32(buf, magic);
    for (int i = 0; i < ndims; i++) off += put_be32(buf + off, dims[i]);
    if (len) memcpy(buf + off, data, len);
    write_raw(path, gz, buf, off + len);
    free(buf);
}

static void write_images(const char *path, int gz, uint32_t n, uint32_t rows, uint32_t cols,
                         const uint8_t *px)
{
    uint32_t dims[3] = {n, rows, cols};
    write_idx(path, gz, 0x803, dims, 3, px, (size_t)n * rows * cols);
}

static void write_labels(const char *path, int gz, uint32_t n, const uint8_t *lab)
{
    write_idx(path, gz, 0x801, &n, 1, lab, n);
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    *len = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(sz > 0 ? (size_t)sz : 1);
    *len = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    return buf;
}

static int has(const char *s)
{
    return strstr(pml_errmsg(), s) != NULL;
}

static int is_empty(const pml_dataset *d)
{
    return d->n == 0 && d->images == NULL && d->labels == NULL && d->owner == NULL;
}

/* Loading must fail; the message must name `file` and contain each of the other strings. */
static void expect_fail(const char *name, const char *img, const char *lab, const char *file,
                        const char *s1, const char *s2, const char *s3)
{
    pml_dataset d;
    memset(&d, 0x5a, sizeof d); /* garbage in: must come out empty */
    pml_status st = pml_data_load_idx(img, lab, &d);
    CHECK_MSG(st != PML_OK, "%s: loading succeeded", name);
    if (getenv("PML_TEST_VERBOSE")) fprintf(stderr, "  %-14s %s\n", name, pml_errmsg());
    CHECK_MSG(has(file), "%s: message \"%s\" does not name %s", name, pml_errmsg(), file);
    const char *want[3] = {s1, s2, s3};
    for (int i = 0; i < 3; i++)
        if (want[i])
            CHECK_MSG(has(want[i]), "%s: \"%s\" lacks \"%s\"", name, pml_errmsg(), want[i]);
    CHECK_MSG(is_empty(&d), "%s: dataset not left empty", name);
    pml_data_free(&d);
}

/* 3 images of 2x4 and their labels */
static const uint8_t px3[24] = {0,  1,  2,  3, 4,  5,  6,  7,  255, 254, 128, 127,
                                64, 32, 16, 8, 10, 20, 30, 40, 50,  60,  70,  200};
static const uint8_t lab3[3] = {7, 0, 9};

static void check_px3(const pml_dataset *d)
{
    CHECK(d->n == 3 && d->first == 0);
    CHECK(d->shape.c == 1 && d->shape.h == 2 && d->shape.w == 4);
    CHECK(d->classes == 10);
    int32_t idx[3] = {2, 0, 1}, y[3];
    float x[24];
    pml_data_gather(d, idx, 3, x, y);
    for (int k = 0; k < 3; k++) {
        CHECK(y[k] == lab3[idx[k]]);
        for (int j = 0; j < 8; j++) CHECK_NEAR(x[k * 8 + j], px3[idx[k] * 8 + j] / 255.0, 1e-7);
    }
    CHECK(x[8 + 0] == 0.0f && x[16 + 0] == 1.0f); /* byte 0 -> 0, byte 255 -> 1 exactly */
}

/* ---------------------------------------------------------------- IDX files */

static void t_idx_plain(void)
{
    tmp_begin();
    write_images(tmp("img"), 0, 3, 2, 4, px3);
    write_labels(tmp("lab"), 0, 3, lab3);
    pml_dataset d;
    CHECK_OK(pml_data_load_idx(tmp("img"), tmp("lab"), &d));
    check_px3(&d);
    CHECK(strcmp(d.name, "img") == 0);
    CHECK(d.owner != NULL);
    pml_data_free(&d);
    CHECK(is_empty(&d));
    pml_data_free(&d); /* twice is fine */
    tmp_end();
}

static void t_idx_gzip(void)
{
    tmp_begin();
    write_images(tmp("img.gz"), 1, 3, 2, 4, px3);
    write_labels(tmp("lab.gz"), 1, 3, lab3);
    write_labels(tmp("lab"), 0, 3, lab3);
    pml_dataset d;
    CHECK_OK(pml_data_load_idx(tmp("img.gz"), tmp("lab.gz"), &d));
    check_px3(&d);
    CHECK(strcmp(d.name, "img.gz") == 0);
    pml_data_free(&d);
    /* gzip images with plain labels */
    CHECK_OK(pml_data_load_idx(tmp("img.gz"), tmp("lab"), &d));
    check_px3(&d);
    pml_data_free(&d);
    tmp_end();
}

/* Larger than the reader's first buffer (16 MiB): the body arrives in several pieces. */
static void t_idx_large(void)
{
    tmp_begin();
    uint32_t n = 700, rows = 160, cols = 160;
    size_t size = (size_t)rows * cols;
    uint8_t *px = malloc(n * size), *lab = malloc(n);
    for (size_t i = 0; i < n * size; i++) px[i] = (uint8_t)(i * 2654435761u >> 13);
    for (uint32_t i = 0; i < n; i++) lab[i] = (uint8_t)(i % 10);
    write_images(tmp("img"), 0, n, rows, cols, px);
    write_labels(tmp("lab.gz"), 1, n, lab);
    pml_dataset d;
    CHECK_OK(pml_data_load_idx(tmp("img"), tmp("lab.gz"), &d));
    CHECK(d.n == (int)n && d.shape.h == (int)rows && d.shape.w == (int)cols);
    if (d.n == (int)n) {
        CHECK(memcmp(d.images, px, n * size) == 0);
        for (uint32_t i = 0; i < n; i++) CHECK(d.labels[i] == lab[i]);
    }
    pml_data_free(&d);
    free(px);
    free(lab);
    tmp_end();
}

static void t_mnist_dir(void)
{
    tmp_begin();
    uint8_t other[24];
    for (int i = 0; i < 24; i++) other[i] = (uint8_t)(100 + i);
    /* .gz is preferred over the plain file; plain is used when there is no .gz */
    write_images(tmp("train-images-idx3-ubyte.gz"), 1, 3, 2, 4, px3);
    write_images(tmp("train-images-idx3-ubyte"), 0, 3, 2, 4, other);
    write_labels(tmp("train-labels-idx1-ubyte"), 0, 3, lab3);
    write_images(tmp("t10k-images-idx3-ubyte"), 0, 3, 2, 4, px3);
    write_labels(tmp("t10k-labels-idx1-ubyte.gz"), 1, 3, lab3);
    pml_dataset tr, te;
    CHECK_OK(pml_data_load_mnist_dir(tmpdir, &tr, &te));
    check_px3(&tr);
    check_px3(&te);
    const char *base = strrchr(tmpdir, '/') + 1;
    char want[80];
    snprintf(want, sizeof want, "%s train", base);
    CHECK_MSG(strcmp(tr.name, want) == 0, "name %s", tr.name);
    snprintf(want, sizeof want, "%s test", base);
    CHECK_MSG(strcmp(te.name, want) == 0, "name %s", te.name);
    pml_data_free(&tr);
    pml_data_free(&te);

    /* a file missing: the message names the folder and the file; both sets come out empty */
    CHECK(remove(tmp("t10k-labels-idx1-ubyte.gz")) == 0);
    memset(&tr, 0x5a, sizeof tr);
    CHECK(pml_data_load_mnist_dir(tmpdir, &tr, &te) != PML_OK);
    CHECK(has(tmpdir) && has("t10k-labels-idx1-ubyte"));
    CHECK(is_empty(&tr) && is_empty(&te));

    /* a missing folder: names it and says where the default data comes from */
    CHECK(pml_data_load_mnist_dir(tmp("absent"), &tr, &te) == PML_ENOTFOUND);
    CHECK(has(tmp("absent")) && has("dataset-fashion-mnist") && has("--data"));
    CHECK(is_empty(&tr) && is_empty(&te));

    /* a file where a folder should be */
    CHECK(pml_data_load_mnist_dir(tmp("train-images-idx3-ubyte"), &tr, &te) != PML_OK);
    CHECK(has("train-images-idx3-ubyte") && has("not a folder"));
    tmp_end();
}

static void t_fashion_mnist(void)
{
    struct stat sb;
    CHECK_MSG(stat(PML_FASHION_MNIST_DIR, &sb) == 0,
              "%s is missing: install the Debian package dataset-fashion-mnist",
              PML_FASHION_MNIST_DIR);
    pml_dataset tr, te;
    CHECK_OK(pml_data_load_mnist_dir(NULL, &tr, &te)); /* NULL: the default folder */
    CHECK(strcmp(tr.name, "fashion-mnist train") == 0);
    CHECK(strcmp(te.name, "fashion-mnist test") == 0);
    CHECK(tr.n == 60000 && te.n == 10000);
    CHECK(tr.shape.c == 1 && tr.shape.h == 28 && tr.shape.w == 28 && tr.classes == 10);
    CHECK(te.shape.c == 1 && te.shape.h == 28 && te.shape.w == 28 && te.classes == 10);
    if (tr.n == 60000 && te.n == 10000) {
        /* values checked against the files with Python's gzip module */
        CHECK(tr.labels[0] == 9 && te.labels[0] == 9);
        CHECK(tr.labels[59999] == 5 && te.labels[9999] == 5);
        int count[10] = {0};
        for (int i = 0; i < tr.n; i++) count[tr.labels[i]]++;
        for (int k = 0; k < 10; k++) CHECK(count[k] == 6000);
        float x[784];
        int32_t idx = 0, y = -1;
        pml_data_gather(&tr, &idx, 1, x, &y);
        long sum = 0;
        for (int j = 0; j < 784; j++) sum += lrintf(x[j] * 255.0f);
        CHECK(y == 9 && sum == 76247 && lrintf(x[14 * 28 + 14] * 255.0f) == 217);
        idx = 59999;
        pml_data_gather(&tr, &idx, 1, x, &y);
        sum = 0;
        for (int j = 0; j < 784; j++) sum += lrintf(x[j] * 255.0f);
        CHECK(y == 5 && sum == 16684);
        idx = 0;
        pml_data_gather(&te, &idx, 1, x, &y);
        sum = 0;
        for (int j = 0; j < 784; j++) sum += lrintf(x[j] * 255.0f);
        CHECK(y == 9 && sum == 33456);
    }
    pml_data_free(&tr);
    pml_data_free(&te);
}

/* ---------------------------------------------------------------- bad IDX files */

static void t_bad_missing(void)
{
    tmp_begin();
    write_images(tmp("img"), 0, 3, 2, 4, px3);
    write_labels(tmp("lab"), 0, 3, lab3);
    expect_fail("missing images", tmp("nope"), tmp("lab"), tmp("nope"), "No such file", NULL, NULL);
    CHECK(pml_data_load_idx(tmp("nope"), tmp("lab"), &(pml_dataset){0}) == PML_ENOTFOUND);
    expect_fail("missing labels", tmp("img"), tmp("nope.gz"), tmp("nope.gz"), "No such file",
                "labels", NULL);
    CHECK(mkdir(tmp("dir"), 0700) == 0);
    expect_fail("folder", tmp("dir"), tmp("lab"), tmp("dir"), "folder", NULL, NULL);
    tmp_end();
}

static void t_bad_magic(void)
{
    tmp_begin();
    uint32_t dims[3] = {3, 2, 4};
    write_labels(tmp("lab"), 0, 3, lab3);
    write_idx(tmp("magic"), 0, 0x12345678, dims, 3, px3, 24);
    expect_fail("wrong magic", tmp("magic"), tmp("lab"), tmp("magic"), "wrong magic 0x12345678",
                "0x00000803", NULL);
    write_idx(tmp("magic.gz"), 1, 0x00000804, dims, 3, px3, 24);
    expect_fail("4 dims", tmp("magic.gz"), tmp("lab"), tmp("magic.gz"), "0x00000804",
                "4 dimensions", "0x00000803");
    /* labels given as images and images as labels */
    write_images(tmp("img"), 0, 3, 2, 4, px3);
    expect_fail("swapped", tmp("lab"), tmp("img"), tmp("lab"), "0x00000801", "0x00000803",
                "labels file");
    CHECK(pml_data_load_idx(tmp("img"), tmp("img"), &(pml_dataset){0}) != PML_OK);
    CHECK(has(tmp("img")) && has("0x00000803") && has("0x00000801") && has("images file"));
    /* float data (type 0x0d) */
    write_idx(tmp("float"), 0, 0x00000d03, dims, 3, px3, 24);
    expect_fail("float", tmp("float"), tmp("lab"), tmp("float"), "data type 0x0d", "magic",
                "not supported");
    /* text, not gzip and not IDX, under a .gz name */
    const char *text = "this is not a gzip file, nor an IDX file\n";
    write_raw(tmp("garbage.gz"), 0, text, strlen(text));
    expect_fail("garbage", tmp("garbage.gz"), tmp("lab"), tmp("garbage.gz"), "wrong magic",
                "0x74686973", "not an IDX file");
    tmp_end();
}

static void t_bad_truncated(void)
{
    tmp_begin();
    uint32_t dims[3] = {3, 2, 4};
    write_labels(tmp("lab"), 0, 3, lab3);
    write_images(tmp("img"), 0, 3, 2, 4, px3);
    write_idx(tmp("short"), 0, 0x803, dims, 3, px3, 20);
    expect_fail("images", tmp("short"), tmp("lab"), tmp("short"), "truncated", "(24 bytes)",
                "holds 20 bytes (2 complete images)");
    write_idx(tmp("short.gz"), 1, 0x803, dims, 3, px3, 17);
    expect_fail("images gz", tmp("short.gz"), tmp("lab"), tmp("short.gz"), "truncated",
                "3 images of 2x4", "holds 17 bytes");
    write_idx(tmp("lshort"), 0, 0x801, dims, 1, lab3, 2);
    expect_fail("labels", tmp("img"), tmp("lshort"), tmp("lshort"), "truncated", "3 labels",
                "holds 2");
    /* the header itself */
    write_idx(tmp("hdr"), 0, 0x803, dims, 1, NULL, 0);
    expect_fail("header", tmp("hdr"), tmp("lab"), tmp("hdr"), "truncated header", "found 4", NULL);
    write_raw(tmp("hdr2"), 0, "\0\0", 2);
    expect_fail("magic", tmp("hdr2"), tmp("lab"), tmp("hdr2"), "truncated header", "2 bytes", NULL);
    /* empty files, plain and gzip */
    write_raw(tmp("empty"), 0, "", 0);
    expect_fail("empty", tmp("empty"), tmp("lab"), tmp("empty"), "empty file", NULL, NULL);
    write_raw(tmp("empty.gz"), 1, "", 0);
    expect_fail("empty gz", tmp("img"), tmp("empty.gz"), tmp("empty.gz"), "empty file", NULL, NULL);
    /* trailing data after the declared items */
    uint8_t more[25];
    memcpy(more, px3, 24);
    more[24] = 1;
    write_idx(tmp("long"), 0, 0x803, dims, 3, more, 25);
    expect_fail("trailing", tmp("long"), tmp("lab"), tmp("long"), "1 byte of trailing data",
                "3 images", NULL);
    tmp_end();
}

static void t_bad_gzip(void)
{
    tmp_begin();
    enum { N = 200 };
    uint8_t px[N * 64], lab[N];
    for (int i = 0; i < N * 64; i++) px[i] = (uint8_t)((i * 7) ^ (i >> 5));
    for (int i = 0; i < N; i++) lab[i] = (uint8_t)(i % 10);
    write_labels(tmp("lab"), 0, N, lab);
    write_images(tmp("img.gz"), 1, N, 8, 8, px);
    size_t len;
    uint8_t *gz = read_whole(tmp("img.gz"), &len);
    CHECK(gz != NULL && len > 40);
    if (!gz || len <= 40) goto out;
    {
        pml_dataset d;
        CHECK_OK(pml_data_load_idx(tmp("img.gz"), tmp("lab"), &d));
        pml_data_free(&d);
    }
    /* wrong CRC in the gzip trailer */
    gz[len - 8] ^= 0xff;
    write_raw(tmp("crc.gz"), 0, gz, len);
    expect_fail("crc", tmp("crc.gz"), tmp("lab"), tmp("crc.gz"), "corrupt gzip data",
                "incorrect data check", NULL);
    gz[len - 8] ^= 0xff;
    /* an invalid deflate block type (the first block header lives in byte 10) */
    uint8_t keep = gz[10];
    gz[10] |= 0x06; /* BTYPE = 3: reserved */
    write_raw(tmp("bad.gz"), 0, gz, len);
    expect_fail("block", tmp("bad.gz"), tmp("lab"), tmp("bad.gz"), "corrupt gzip data",
                "invalid block type", NULL);
    gz[10] = keep;
    /* a gzip file cut in the middle */
    write_raw(tmp("cut.gz"), 0, gz, len / 2);
    expect_fail("cut", tmp("cut.gz"), tmp("lab"), tmp("cut.gz"), "truncated",
                "gzip stream ends early", NULL);
out:
    free(gz);
    tmp_end();
}

static void t_bad_content(void)
{
    tmp_begin();
    write_images(tmp("img"), 0, 3, 2, 4, px3);
    /* counts differ: both files are named */
    uint8_t lab4[4] = {1, 2, 3, 4};
    write_labels(tmp("lab4"), 0, 4, lab4);
    expect_fail("counts", tmp("img"), tmp("lab4"), tmp("img"), tmp("lab4"), "3 images", "4 labels");
    /* a label out of range */
    uint8_t bad[3] = {1, 2, 10};
    write_labels(tmp("lab10.gz"), 1, 3, bad);
    expect_fail("range", tmp("img"), tmp("lab10.gz"), tmp("lab10.gz"), "label 10", "index 2",
                "out of range");
    /* no images */
    write_images(tmp("zero"), 0, 0, 2, 4, NULL);
    write_labels(tmp("lab0"), 0, 0, NULL);
    expect_fail("zero", tmp("zero"), tmp("lab0"), tmp("zero"), "no images", NULL, NULL);
    write_images(tmp("zero-rows"), 0, 3, 0, 4, NULL);
    expect_fail("zero rows", tmp("zero-rows"), tmp("lab4"), tmp("zero-rows"), "0x4", "is empty",
                NULL);
    tmp_end();
}

/* Absurd sizes fail with a message, and a truncated file that declares a lot costs no huge
 * allocation (the reader's buffer grows with the data; ASan would report a 4 GiB malloc). */
static void t_bad_huge(void)
{
    tmp_begin();
    uint8_t lab[16] = {0};
    uint32_t big[3] = {3, 65536, 65536};
    write_idx(tmp("wide"), 0, 0x803, big, 3, px3, 24);
    write_labels(tmp("lab"), 0, 3, lab3);
    expect_fail("wide", tmp("wide"), tmp("lab"), tmp("wide"), "65536x65536", "too large", NULL);
    uint32_t many[3] = {0xffffffffu, 28, 28};
    write_idx(tmp("many"), 1, 0x803, many, 3, px3, 24);
    expect_fail("many", tmp("many"), tmp("lab"), tmp("many"), "4294967295 images", NULL, NULL);
    /* 2^31 - 1 images of 28x28 declared (about 1.7 TB), 24 bytes present */
    uint32_t lots[3] = {0x7fffffffu, 28, 28};
    uint32_t nlab = 0x7fffffffu;
    write_idx(tmp("lots"), 0, 0x803, lots, 3, px3, 24);
    write_idx(tmp("lotslab"), 0, 0x801, &nlab, 1, lab, 16);
    expect_fail("lots", tmp("lots"), tmp("lotslab"), tmp("lots"), "truncated", "2147483647 images",
                "holds 24 bytes");
    /* the same header in gzip (a "bomb" expands a few MB to GBs): refused before reading, for
     * what it declares against the machine's memory (it used to read and allocate 3 GB first) */
    write_idx(tmp("lots.gz"), 1, 0x803, lots, 3, px3, 24);
    write_idx(tmp("lotslab.gz"), 1, 0x801, &nlab, 1, lab, 16);
    expect_fail("lots.gz", tmp("lots.gz"), tmp("lotslab.gz"), tmp("lots.gz"), "2147483647 images",
                "more than this machine's memory", NULL);
    /* a real bomb: 64 MiB of zeros after the header compress to 64 KiB; nothing is read */
    {
        gzFile f = gzopen(tmp("bomb.gz"), "wb9");
        CHECK(f != NULL);
        uint8_t hdr[16];
        size_t o = put_be32(hdr, 0x803);
        o += put_be32(hdr + o, 0x7fffffffu);
        o += put_be32(hdr + o, 28);
        o += put_be32(hdr + o, 28);
        CHECK(gzwrite(f, hdr, (unsigned)o) == (int)o);
        uint8_t *zeros = calloc(1, 1 << 20);
        for (int i = 0; i < 64; i++) CHECK(gzwrite(f, zeros, 1 << 20) == 1 << 20);
        free(zeros);
        CHECK(gzclose(f) == Z_OK);
        struct stat sb;
        CHECK(stat(tmp("bomb.gz"), &sb) == 0 && sb.st_size < (1 << 20));
        expect_fail("bomb", tmp("bomb.gz"), tmp("lotslab.gz"), tmp("bomb.gz"),
                    "more than this machine's memory", NULL, NULL);
    }
    /* a plain file is checked against its size before anything is allocated */
    uint32_t some[3] = {1000, 28, 28};
    uint32_t nsome = 1000;
    write_idx(tmp("some"), 0, 0x803, some, 3, px3, 24);
    write_idx(tmp("somelab"), 0, 0x801, &nsome, 1, lab, 16);
    expect_fail("some", tmp("some"), tmp("somelab"), tmp("some"), "truncated", "1000 images",
                "holds 24 bytes");
    tmp_end();
}

/* ---------------------------------------------------------------- splits */

static void make_ten(pml_dataset *d)
{
    uint8_t px[10 * 4], lab[10];
    for (int i = 0; i < 40; i++) px[i] = (uint8_t)(i / 4 * 10); /* image i is all 10*i */
    for (int i = 0; i < 10; i++) lab[i] = (uint8_t)(i % 10);
    write_images(tmp("ten-img"), 0, 10, 2, 2, px);
    write_labels(tmp("ten-lab"), 0, 10, lab);
    CHECK_OK(pml_data_load_idx(tmp("ten-img"), tmp("ten-lab"), d));
}

static int view_sample(const pml_dataset *d, int i)
{
    float x[4];
    int32_t y;
    pml_data_gather(d, &i, 1, x, &y);
    CHECK(lrintf(x[0] * 255.0f) == 10 * y); /* pixels and label belong together */
    return y;
}

static void t_split(void)
{
    tmp_begin();
    pml_dataset d, val;
    make_ten(&d);
    CHECK_OK(pml_data_split(&d, 0.2, &val));
    CHECK(d.n == 8 && d.first == 0 && val.n == 2 && val.first == 8);
    CHECK(val.owner == NULL && d.owner != NULL && val.images == d.images);
    CHECK(strstr(val.name, "val") != NULL);
    for (int i = 0; i < 8; i++) CHECK(view_sample(&d, i) == i);
    for (int i = 0; i < 2; i++) CHECK(view_sample(&val, i) == 8 + i);
    /* a view of a view: offsets add up */
    pml_dataset val2;
    CHECK_OK(pml_data_split(&d, 0.25, &val2));
    CHECK(d.n == 6 && val2.first == 6 && val2.n == 2);
    CHECK(view_sample(&val2, 1) == 7);
    pml_data_free(&val2); /* views own nothing */
    pml_data_free(&val);
    CHECK(is_empty(&val));
    pml_data_free(&d);

    /* Keras: the first floor(n * (1 - frac)) samples train */
    make_ten(&d);
    CHECK_OK(pml_data_split(&d, 0.25, &val));
    CHECK(d.n == 7 && val.n == 3 && val.first == 7);
    pml_data_free(&d);

    /* bad fractions, and splits that leave a part empty */
    make_ten(&d);
    const double bad[] = {0.0, 1.0, -0.5, 1.5, NAN, 1e-18};
    for (int i = 0; i < 6; i++) {
        memset(&val, 0x5a, sizeof val);
        CHECK(pml_data_split(&d, bad[i], &val) == PML_EINVAL);
        CHECK(pml_errmsg()[0] != 0);
        CHECK(d.n == 10 && val.n == 0 && val.owner == NULL);
    }
    CHECK(pml_data_split(&d, 0.5, &d) == PML_EINVAL);
    pml_data_free(&d);
    pml_dataset one;
    CHECK_OK(pml_data_synthetic((pml_shape){1, 2, 2}, 2, 1, 1, &one));
    CHECK(pml_data_split(&one, 0.5, &val) == PML_EINVAL);
    CHECK(has("1 samples") && has("0 training"));

    /* a synthetic dataset splits the same way; the view generates the same samples */
    pml_dataset s, sv;
    CHECK_OK(pml_data_synthetic((pml_shape){3, 5, 7}, 4, 100, 42, &s));
    float a[105], b[105];
    int32_t ya, yb, i95 = 95, i5 = 5;
    pml_data_gather(&s, &i95, 1, a, &ya);
    CHECK_OK(pml_data_split(&s, 0.1, &sv));
    CHECK(s.n == 90 && sv.n == 10 && sv.first == 90);
    pml_data_gather(&sv, &i5, 1, b, &yb);
    CHECK(ya == yb && memcmp(a, b, sizeof a) == 0);
    pml_data_free(&sv);
    pml_data_free(&s);
    pml_dataset zero = {0};
    pml_data_free(&zero);
    pml_data_free(NULL);
    tmp_end();
}

/* ---------------------------------------------------------------- shuffle */

static int is_perm(const int32_t *p, int n)
{
    char *seen = calloc((size_t)n + 1, 1);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]])
            ok = 0;
        else
            seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static void t_shuffle(void)
{
    enum { N = 1000 };
    static int32_t a[N], b[N], c[N], e[N];
    pml_data_shuffle(a, N, 7, 0);
    pml_data_shuffle(b, N, 7, 0);
    pml_data_shuffle(c, N, 7, 1);
    pml_data_shuffle(e, N, 8, 0);
    CHECK(is_perm(a, N) && is_perm(c, N) && is_perm(e, N));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    CHECK(memcmp(a, e, sizeof a) != 0);
    int fixed = 0, same_ac = 0;
    for (int i = 0; i < N; i++) {
        fixed += a[i] == i;
        same_ac += a[i] == c[i];
    }
    CHECK(fixed < 10 && same_ac < 10); /* about 1 expected for random permutations */
    /* every position reachable: over many epochs position 0 takes every value of a small n */
    int hit[5] = {0};
    for (int ep = 0; ep < 200; ep++) {
        int32_t p[5];
        pml_data_shuffle(p, 5, 3, ep);
        CHECK(is_perm(p, 5));
        hit[p[0]]++;
    }
    for (int k = 0; k < 5; k++) CHECK(hit[k] > 15);
    int32_t one = -1;
    pml_data_shuffle(&one, 1, 1, 0);
    CHECK(one == 0);
    pml_data_shuffle(NULL, 0, 1, 0);
}

/* ---------------------------------------------------------------- synthetic data */

static void t_synthetic_values(void)
{
    pml_dataset d;
    pml_shape sh = {3, 20, 24};
    size_t size = pml_shape_size(sh);
    enum { N = 2000, K = 5 };
    CHECK_OK(pml_data_synthetic(sh, K, N, 123, &d));
    CHECK(d.n == N && d.classes == K && pml_shape_eq(d.shape, sh) && d.images == NULL &&
          d.owner == NULL);
    int32_t *idx = malloc(N * sizeof *idx), *y = malloc(N * sizeof *y), *y2 = malloc(N * 4);
    float *x = malloc(N * size * sizeof *x);
    for (int i = 0; i < N; i++) idx[i] = i;
    pml_data_gather(&d, idx, N, x, y);
    int count[K] = {0}, bad = 0;
    double lo = 1, hi = 0;
    for (size_t j = 0; j < N * size; j++) {
        if (!(x[j] >= 0.0f && x[j] <= 1.0f)) bad++;
        float v = x[j] * 255.0f;
        if (fabsf(v - rintf(v)) > 1e-3f) bad++; /* bytes / 255 */
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    CHECK(bad == 0);
    CHECK(lo < 0.2 && hi > 0.8); /* uses the range */
    for (int i = 0; i < N; i++) {
        CHECK(y[i] >= 0 && y[i] < K);
        if (y[i] >= 0 && y[i] < K) count[y[i]]++;
    }
    for (int k = 0; k < K; k++)
        CHECK_MSG(count[k] > 300 && count[k] < 500, "class %d: %d", k, count[k]);
    /* deterministic: again, in another order, one at a time, labels alone */
    float *x1 = malloc(size * sizeof *x1);
    for (int i = N - 1; i >= 0; i -= 97) {
        int32_t yi;
        pml_data_gather(&d, &idx[i], 1, x1, &yi);
        CHECK(yi == y[i] && memcmp(x1, x + (size_t)i * size, size * sizeof *x1) == 0);
    }
    pml_data_gather(&d, idx, N, NULL, y2);
    CHECK(memcmp(y, y2, N * sizeof *y) == 0);
    /* images differ from each other; another seed gives other samples */
    CHECK(memcmp(x, x + size, size * sizeof *x) != 0);
    pml_dataset d2;
    CHECK_OK(pml_data_synthetic(sh, K, N, 124, &d2));
    pml_data_gather(&d2, idx, 1, x1, y2);
    CHECK(memcmp(x1, x, size * sizeof *x1) != 0);
    /* any shape works, e.g. one channel and one class */
    pml_dataset g;
    CHECK_OK(pml_data_synthetic((pml_shape){1, 3, 1}, 1, 5, 0, &g));
    float gx[3];
    int32_t gy = -1, i4 = 4;
    pml_data_gather(&g, &i4, 1, gx, &gy);
    CHECK(gy == 0 && gx[0] >= 0 && gx[0] <= 1);
    /* bad arguments */
    pml_dataset b;
    CHECK(pml_data_synthetic((pml_shape){3, 0, 4}, 5, 10, 1, &b) == PML_EINVAL && has("3x0x4"));
    CHECK(pml_data_synthetic((pml_shape){3, 4, 4}, 0, 10, 1, &b) == PML_EINVAL && has("classes"));
    CHECK(pml_data_synthetic((pml_shape){3, 4, 4}, 5, 0, 1, &b) == PML_EINVAL && has("samples"));
    CHECK(pml_data_synthetic((pml_shape){3, 100000, 100000}, 5, 10, 1, &b) == PML_EINVAL);
    CHECK(is_empty(&b));
    pml_data_free(&d);
    free(idx);
    free(y);
    free(y2);
    free(x);
    free(x1);
}

/* The classes are learnable: a nearest-centroid classifier on the stripe orientation (from the
 * image's structure tensor), fitted on one seed, tells apart the samples of another seed far
 * beyond chance (train and test sets share the class patterns); on mean colour alone it stays
 * near chance (the background hides the class colour). */
enum { FEAT = 5 };
static void features(const float *x, pml_shape s, double *f)
{
    double jxx = 0, jyy = 0, jxy = 0;
    size_t plane = (size_t)s.h * s.w;
    for (int y = 1; y < s.h - 1; y++)
        for (int xx = 1; xx < s.w - 1; xx++) {
            double gx = 0, gy = 0;
            for (int c = 0; c < s.c; c++) {
                const float *p = x + c * plane + (size_t)y * s.w + xx;
                gx += p[1] - p[-1];
                gy += p[s.w] - p[-s.w];
            }
            jxx += gx * gx;
            jyy += gy * gy;
            jxy += gx * gy;
        }
    double phi = atan2(2 * jxy, jxx - jyy); /* twice the dominant gradient angle */
    f[0] = cos(phi);
    f[1] = sin(phi);
    for (int c = 0; c < 3; c++) {
        double m = 0;
        for (size_t j = 0; j < plane; j++) m += x[c * plane + j];
        f[2 + c] = m / (double)plane;
    }
}

/* fraction of te classified right by centroids of features [j0, j1) fitted on tr */
static double nearest_centroid(double (*ftr)[FEAT], const int32_t *ytr, double (*fte)[FEAT],
                               const int32_t *yte, int n, int j0, int j1)
{
    enum { K = 5 };
    double cen[K][FEAT] = {{0}};
    int cnt[K] = {0}, correct = 0;
    for (int i = 0; i < n; i++) {
        for (int j = j0; j < j1; j++) cen[ytr[i]][j] += ftr[i][j];
        cnt[ytr[i]]++;
    }
    for (int k = 0; k < K; k++)
        for (int j = j0; j < j1; j++) cen[k][j] /= cnt[k] ? cnt[k] : 1;
    for (int i = 0; i < n; i++) {
        double best = 1e30;
        int arg = -1;
        for (int k = 0; k < K; k++) {
            double dist = 0;
            for (int j = j0; j < j1; j++) dist += (fte[i][j] - cen[k][j]) * (fte[i][j] - cen[k][j]);
            if (dist < best) best = dist, arg = k;
        }
        correct += arg == yte[i];
    }
    return correct / (double)n;
}

static void t_synthetic_learnable(void)
{
    enum { N = 500, K = 5 };
    pml_shape sh = {3, 48, 48};
    size_t size = pml_shape_size(sh);
    pml_dataset tr, te;
    CHECK_OK(pml_data_synthetic(sh, K, N, 1, &tr));
    CHECK_OK(pml_data_synthetic(sh, K, N, 2, &te));
    float *x = malloc(size * sizeof *x);
    double(*ftr)[FEAT] = malloc(N * sizeof *ftr), (*fte)[FEAT] = malloc(N * sizeof *fte);
    int32_t ytr[N], yte[N];
    for (int32_t i = 0; i < N; i++) {
        pml_data_gather(&tr, &i, 1, x, &ytr[i]);
        features(x, sh, ftr[i]);
        pml_data_gather(&te, &i, 1, x, &yte[i]);
        features(x, sh, fte[i]);
    }
    double orient = nearest_centroid(ftr, ytr, fte, yte, N, 0, 2);
    double colour = nearest_centroid(ftr, ytr, fte, yte, N, 2, 5);
    CHECK_MSG(orient > 0.8, "orientation: %.3f correct", orient);
    CHECK_MSG(colour < 0.45, "mean colour: %.3f correct (chance 0.2)", colour);
    free(x);
    free(ftr);
    free(fte);
}

typedef struct gather_job {
    const pml_dataset *d;
    const int32_t *idx;
    int n;
    float *x;
    int32_t *y;
} gather_job;

static void *gather_thread(void *p)
{
    gather_job *j = p;
    for (int rep = 0; rep < 3; rep++) pml_data_gather(j->d, j->idx, j->n, j->x, j->y);
    return NULL;
}

static void t_synthetic_threads(void)
{
    enum { N = 24 };
    pml_shape sh = {3, 40, 36};
    size_t size = pml_shape_size(sh);
    pml_dataset d;
    CHECK_OK(pml_data_synthetic(sh, 5, 1000, 99, &d));
    int32_t idx[N];
    for (int i = 0; i < N; i++) idx[i] = (i * 37) % 1000;
    float *ref = malloc(N * size * sizeof *ref);
    int32_t yref[N], y[2][N];
    pml_data_gather(&d, idx, N, ref, yref);
    gather_job jobs[2];
    pthread_t th[2];
    for (int t = 0; t < 2; t++) {
        jobs[t] = (gather_job){&d, idx, N, malloc(N * size * sizeof(float)), y[t]};
        CHECK(pthread_create(&th[t], NULL, gather_thread, &jobs[t]) == 0);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
        CHECK(memcmp(jobs[t].x, ref, N * size * sizeof *ref) == 0);
        CHECK(memcmp(y[t], yref, sizeof yref) == 0);
        free(jobs[t].x);
    }
    free(ref);
}


/* ---------------------------------------------------------------- image folders */

static void mkdirs(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    for (char *p = path + strlen(tmpdir) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0700);
            *p = '/';
        }
    mkdir(path, 0700);
}

/* A PNG of w x h pixels: rows of w * channels * depth / 8 bytes (16 bits big-endian) in px;
 * a palette (npal colours, ntrans transparency entries) for PNG_COLOR_TYPE_PALETTE. */
static void write_png_full(const char *rel, int w, int h, int type, int depth, const uint8_t *px,
                           const png_color *pal, int npal, const uint8_t *trans, int ntrans,
                           int interlace)
{
    FILE *f = fopen(tmp(rel), "wb");
    CHECK(f != NULL);
    if (!f) return;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trans) png_set_tRNS(png, info, trans, ntrans, NULL);
    png_write_info(png, info);
    const int ch = type == PNG_COLOR_TYPE_RGB ? 3 : type == PNG_COLOR_TYPE_RGBA ? 4
                 : type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    const size_t stride = (size_t)w * ch * depth / 8;
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)px + y * stride;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    CHECK(fclose(f) == 0);
}

static void write_png(const char *rel, int w, int h, int type, const uint8_t *px)
{
    write_png_full(rel, w, h, type, 8, px, NULL, 0, NULL, 0, 0);
}

/* A solid w x h image of c channels (1, 3 or 4) of colour v[0..c). */
static uint8_t *solid(int w, int h, int c, const uint8_t *v)
{
    uint8_t *px = malloc((size_t)w * h * c);
    for (int i = 0; i < w * h; i++) memcpy(px + (size_t)i * c, v, (size_t)c);
    return px;
}

static void write_solid_png(const char *rel, int w, int h, int type, const uint8_t *v)
{
    const int c = type == PNG_COLOR_TYPE_RGB ? 3 : type == PNG_COLOR_TYPE_RGBA ? 4 : 1;
    uint8_t *px = solid(w, h, c, v);
    write_png(rel, w, h, type, px);
    free(px);
}

/* A JPEG of w x h pixels of c components in colour space cs (quality 95), cut to its first
 * keep bytes when keep > 0. */
static void write_jpeg(const char *rel, int w, int h, int c, J_COLOR_SPACE cs, const uint8_t *px,
                       size_t keep)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    unsigned char *buf = NULL;
    unsigned long len = 0;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &buf, &len);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = cs;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 95, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)px + (size_t)ci.next_scanline * w * c;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    write_raw(tmp(rel), 0, buf, keep && keep < len ? keep : len);
    free(buf);
}

static void write_solid_jpeg(const char *rel, int w, int h, const uint8_t *rgb)
{
    uint8_t *px = solid(w, h, 3, rgb);
    write_jpeg(rel, w, h, 3, JCS_RGB, px, 0);
    free(px);
}

/* Samples of class k whose every pixel is within tol of colour v (d->shape.c values). */
static int count_solid(const pml_dataset *d, int k, const uint8_t *v, int tol)
{
    const size_t plane = (size_t)d->shape.h * d->shape.w, size = pml_shape_size(d->shape);
    int found = 0;
    for (int i = 0; i < d->n; i++) {
        if (d->labels[i] != k) continue;
        const uint8_t *x = d->images + (size_t)i * size;
        int ok = 1;
        for (int c = 0; c < d->shape.c && ok; c++)
            for (size_t j = 0; j < plane && ok; j++)
                ok = abs((int)x[c * plane + j] - (int)v[c]) <= tol;
        found += ok;
    }
    return found;
}

/* The sample of class k (the only one). */
static const uint8_t *only_of(const pml_dataset *d, int k)
{
    const uint8_t *x = NULL;
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] == k) {
            CHECK_MSG(x == NULL, "class %d has more than one sample", k);
            x = d->images + (size_t)i * pml_shape_size(d->shape);
        }
    CHECK_MSG(x != NULL, "class %d has no sample", k);
    return x;
}

/* Three classes of JPEG and PNG files of several sizes and colour types, and files to ignore:
 *   LICENSE.txt                        ignored (not a folder)
 *   apples/  red.png (RGB, interlaced) grey.png (grey 8-bit) rgba.png (RGBA, alpha dropped)
 *            pal.png (palette, transparent index) blue.JPG (RGB JPEG), notes.txt (ignored)
 *   bananas/ g16.png (16-bit grey) y1.png y2.jpeg Y3.PNG, deep/er/z.png (nested), .hidden.png
 *            (skipped)
 *   cherries/ c1.png .. c5.png
 * 15 images: 5 of each class. */
static const uint8_t red[3] = {200, 30, 60}, blue[3] = {40, 60, 220}, rgba[4] = {10, 250, 128, 7};
static const uint8_t pal_rgb[3] = {9, 8, 7}, gold[3] = {240, 200, 0};

static void make_fruit(void)
{
    static const uint8_t grey90 = 90, yellow[3] = {230, 220, 20};
    mkdirs("fruit/apples");
    mkdirs("fruit/bananas/deep/er");
    mkdirs("fruit/cherries");
    write_raw(tmp("fruit/LICENSE.txt"), 0, "CC-BY\n", 6);
    write_raw(tmp("fruit/apples/notes.txt"), 0, "not an image\n", 13);
    uint8_t *px = solid(7, 5, 3, red);
    write_png_full("fruit/apples/red.png", 7, 5, PNG_COLOR_TYPE_RGB, 8, px, NULL, 0, NULL, 0, 1);
    free(px);
    write_solid_png("fruit/apples/grey.png", 9, 11, PNG_COLOR_TYPE_GRAY, &grey90);
    write_solid_png("fruit/apples/rgba.png", 4, 4, PNG_COLOR_TYPE_RGBA, rgba);
    const png_color pal[2] = {{pal_rgb[0], pal_rgb[1], pal_rgb[2]}, {1, 2, 3}};
    const uint8_t trans[1] = {0}, idx[6 * 3] = {0};
    write_png_full("fruit/apples/pal.png", 6, 3, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 2, trans, 1,
                   0);
    write_solid_jpeg("fruit/apples/blue.JPG", 24, 16, blue);
    uint8_t g16[2 * 3 * 2];
    for (int i = 0; i < 6; i++) g16[2 * i] = 40000 >> 8, g16[2 * i + 1] = 40000 & 0xff;
    write_png_full("fruit/bananas/g16.png", 3, 2, PNG_COLOR_TYPE_GRAY, 16, g16, NULL, 0, NULL, 0,
                   0);
    write_solid_png("fruit/bananas/y1.png", 32, 32, PNG_COLOR_TYPE_RGB, yellow);
    write_solid_jpeg("fruit/bananas/y2.jpeg", 17, 19, yellow);
    write_solid_png("fruit/bananas/Y3.PNG", 16, 16, PNG_COLOR_TYPE_RGB, gold);
    write_solid_png("fruit/bananas/deep/er/z.png", 5, 5, PNG_COLOR_TYPE_RGB, yellow);
    write_raw(tmp("fruit/bananas/.hidden.png"), 0, "junk", 4);
    for (int i = 1; i <= 5; i++) {
        char name[64];
        const uint8_t v[3] = {(uint8_t)(50 * i), 0, (uint8_t)(255 - 50 * i)};
        snprintf(name, sizeof name, "fruit/cherries/c%d.png", i);
        write_solid_png(name, 10 + i, 20 - i, PNG_COLOR_TYPE_RGB, v);
    }
}

static void t_images_values(void)
{
    tmp_begin();
    make_fruit();
    pml_dataset d;
    int skipped = -1;
    CHECK_OK(pml_data_load_image_dir(tmp("fruit"), (pml_shape){3, 16, 16}, false, &skipped, &d));
    CHECK(skipped == 0);
    CHECK(d.n == 15 && d.classes == 3 && d.first == 0 && strcmp(d.name, "fruit") == 0);
    CHECK(d.shape.c == 3 && d.shape.h == 16 && d.shape.w == 16);
    int count[3] = {0};
    for (int i = 0; i < d.n; i++)
        if (d.labels[i] >= 0 && d.labels[i] < 3) count[d.labels[i]]++;
    CHECK(count[0] == 5 && count[1] == 5 && count[2] == 5);
    /* PNG exactly; grey replicated; alpha and a transparent palette entry dropped, not composited;
     * 16 bits scaled (40000 * 255 / 65535 = 155.6); JPEG within its rounding */
    const uint8_t grey3[3] = {90, 90, 90}, g16[3] = {156, 156, 156}, yellow[3] = {230, 220, 20};
    CHECK(count_solid(&d, 0, red, 0) == 1);
    CHECK(count_solid(&d, 0, grey3, 0) == 1);
    CHECK(count_solid(&d, 0, rgba, 0) == 1);
    CHECK(count_solid(&d, 0, pal_rgb, 0) == 1);
    CHECK(count_solid(&d, 0, blue, 3) == 1);
    CHECK(count_solid(&d, 1, g16, 0) == 1);
    CHECK(count_solid(&d, 1, yellow, 0) == 2); /* y1.png, deep/er/z.png */
    CHECK(count_solid(&d, 1, yellow, 4) == 3); /* and y2.jpeg */
    CHECK(count_solid(&d, 1, gold, 0) == 1);
    for (int i = 1; i <= 5; i++) {
        const uint8_t v[3] = {(uint8_t)(50 * i), 0, (uint8_t)(255 - 50 * i)};
        CHECK(count_solid(&d, 2, v, 0) == 1);
    }
    /* the storage is shuffled once: not in class order */
    int sorted = 1;
    for (int i = 1; i < d.n; i++) sorted &= d.labels[i - 1] <= d.labels[i];
    CHECK(!sorted);
    /* gathered as bytes / 255 like every dataset */
    int32_t i0 = 0, y0 = -1;
    float x[3 * 16 * 16];
    pml_data_gather(&d, &i0, 1, x, &y0);
    CHECK(y0 == d.labels[0]);
    CHECK_NEAR(x[0], d.images[0] / 255.0, 1e-7);

    /* the same folder again: the same bytes in the same order */
    pml_dataset e;
    CHECK_OK(pml_data_load_image_dir(tmp("fruit"), (pml_shape){3, 16, 16}, false, NULL, &e));
    CHECK(e.n == d.n && memcmp(e.images, d.images, (size_t)d.n * 3 * 16 * 16) == 0 &&
          memcmp(e.labels, d.labels, (size_t)d.n * sizeof *d.labels) == 0);
    pml_data_free(&e);

    /* as grey: RGB by luminance (0.299 * 200 + 0.587 * 30 + 0.114 * 60 = 84.25), grey as is */
    CHECK_OK(pml_data_load_image_dir(tmp("fruit/"), (pml_shape){1, 5, 9}, false, NULL, &e));
    const uint8_t red_grey = 84, g90 = 90, blue_grey = 0.299 * 40 + 0.587 * 60 + 0.114 * 220 + 0.5;
    CHECK(e.n == 15 && e.shape.c == 1 && strcmp(e.name, "fruit") == 0);
    CHECK(count_solid(&e, 0, &red_grey, 0) == 1);
    CHECK(count_solid(&e, 0, &g90, 0) == 1);
    CHECK(count_solid(&e, 0, &blue_grey, 3) == 1);
    /* the order does not depend on the shape */
    for (int i = 0; i < d.n; i++) CHECK(e.labels[i] == d.labels[i]);
    pml_data_free(&e);
    pml_data_free(&d);
    tmp_end();
}

/* Bilinear resizing with half-pixel centres, no antialiasing (tf.image.resize, PIL enlarging).
 * Up 2x2 -> 4x4: along each side the outputs sit at source positions -0.25 (clamped to 0), 0.25,
 * 0.75 and 1.25 (clamped to 1): p0, 3/4 p0 + 1/4 p1, 1/4 p0 + 3/4 p1, p1.
 * Down 4x4 -> 2x2: outputs at 0.5 and 2.5, the mean of each 2x2 block. */
static void t_images_resize(void)
{
    tmp_begin();
    mkdirs("r/a");
    mkdirs("r/b");
    mkdirs("r/c");
    /* R: 0 160 / 80 240; G: 255 0 / 0 255; B: 50 */
    const uint8_t two[2 * 2 * 3] = {0, 255, 50, 160, 0, 50, 80, 0, 50, 240, 255, 50};
    write_png("r/a/two.png", 2, 2, PNG_COLOR_TYPE_RGB, two);
    const uint8_t grey[2 * 2] = {0, 160, 80, 240};
    write_png("r/b/two.png", 2, 2, PNG_COLOR_TYPE_GRAY, grey);
    uint8_t four[4 * 4];
    for (int i = 0; i < 16; i++) four[i] = (uint8_t)(i * 16);
    write_png("r/c/four.png", 4, 4, PNG_COLOR_TYPE_GRAY, four);

    static const uint8_t want_r[16] = {0,  40,  120, 160, 20, 60,  140, 180,
                                       60, 100, 180, 220, 80, 120, 200, 240};
    /* G: rows 255 191.25 63.75 0 and 0 63.75 191.25 255, mixed 3:1 and 1:3, rounded */
    static const uint8_t want_g[16] = {255, 191, 64, 0,   191, 159, 96,  64,
                                       64,  96,  159, 191, 0,  64,  191, 255};
    pml_dataset d;
    CHECK_OK(pml_data_load_image_dir(tmp("r"), (pml_shape){3, 4, 4}, false, NULL, &d));
    CHECK(d.n == 3 && d.classes == 3);
    const uint8_t *x = only_of(&d, 0);
    if (x) {
        CHECK(memcmp(x, want_r, 16) == 0);
        CHECK(memcmp(x + 16, want_g, 16) == 0);
        for (int j = 0; j < 16; j++) CHECK(x[32 + j] == 50);
        if (getenv("PML_TEST_VERBOSE"))
            for (int j = 0; j < 16; j++) fprintf(stderr, "%d %d%s", x[j], x[16 + j], j % 4 == 3 ? "\n" : ", ");
    }
    x = only_of(&d, 1); /* grey to RGB: R's values in every channel */
    if (x)
        for (int c = 0; c < 3; c++) CHECK(memcmp(x + 16 * c, want_r, 16) == 0);
    pml_data_free(&d);

    CHECK_OK(pml_data_load_image_dir(tmp("r"), (pml_shape){1, 2, 2}, false, NULL, &d));
    x = only_of(&d, 2); /* the 2x2 block means of 0, 16, ..., 240 */
    if (x) {
        const uint8_t want[4] = {40, 72, 168, 200};
        CHECK_MSG(memcmp(x, want, 4) == 0, "%d %d %d %d", x[0], x[1], x[2], x[3]);
    }
    x = only_of(&d, 1); /* the same size: as it was */
    if (x) CHECK(memcmp(x, grey, 4) == 0);
    pml_data_free(&d);
    tmp_end();
}

/* Loading folder rel (at 3x8x8) must fail naming `what` and containing s1 (if not NULL). */
static void image_fail(const char *rel, const char *what, const char *s1)
{
    pml_dataset d;
    memset(&d, 0x5a, sizeof d);
    int skipped = -1;
    pml_status st = pml_data_load_image_dir(tmp(rel), (pml_shape){3, 8, 8}, false, &skipped, &d);
    CHECK_MSG(st != PML_OK, "%s: loading succeeded", rel);
    if (getenv("PML_TEST_VERBOSE")) fprintf(stderr, "  %-10s %s\n", rel, pml_errmsg());
    CHECK_MSG(has(what), "%s: message \"%s\" does not name %s", rel, pml_errmsg(), what);
    CHECK_MSG(!s1 || has(s1), "%s: \"%s\" lacks \"%s\"", rel, pml_errmsg(), s1);
    CHECK(is_empty(&d) && skipped == 0);
}

/* Folder rel with a good class "a" (two PNGs) and class "b" holding a good PNG and bad file
 * name (len bytes of data). */
static void bad_folder(const char *rel, const char *name, const void *data, size_t len)
{
    char p[128];
    const uint8_t v[3] = {1, 2, 3};
    snprintf(p, sizeof p, "%s/a", rel);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/b", rel);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/a/1.png", rel);
    write_solid_png(p, 3, 3, PNG_COLOR_TYPE_RGB, v);
    snprintf(p, sizeof p, "%s/a/2.png", rel);
    write_solid_png(p, 3, 3, PNG_COLOR_TYPE_RGB, v);
    snprintf(p, sizeof p, "%s/b/0.png", rel);
    write_solid_png(p, 3, 3, PNG_COLOR_TYPE_RGB, v);
    snprintf(p, sizeof p, "%s/b/%s", rel, name);
    if (data) write_raw(tmp(p), 0, data, len);
}

static void t_images_bad(void)
{
    tmp_begin();
    uint8_t *px = solid(40, 30, 3, red), *file;
    size_t len;
    /* a JPEG and a PNG cut in half */
    bad_folder("cutj", "x.jpg", NULL, 0);
    write_jpeg("cutj/b/x.jpg", 40, 30, 3, JCS_RGB, px, 0);
    file = read_whole(tmp("cutj/b/x.jpg"), &len);
    write_raw(tmp("cutj/b/x.jpg"), 0, file, len / 2);
    free(file);
    image_fail("cutj", "cutj/b/x.jpg", "truncated JPEG");
    bad_folder("cutp", "x.png", NULL, 0);
    write_png("cutp/b/x.png", 40, 30, PNG_COLOR_TYPE_RGB, px);
    file = read_whole(tmp("cutp/b/x.png"), &len);
    write_raw(tmp("cutp/b/x.png"), 0, file, len / 2);
    image_fail("cutp", "cutp/b/x.png", "truncated PNG");
    /* and only its IEND missing */
    write_raw(tmp("cutp/b/x.png"), 0, file, len - 12);
    image_fail("cutp", "cutp/b/x.png", "truncated PNG");
    free(file);
    /* a CMYK JPEG */
    bad_folder("cmyk", "k.jpeg", NULL, 0);
    uint8_t *px4 = solid(8, 8, 4, rgba);
    write_jpeg("cmyk/b/k.jpeg", 8, 8, 4, JCS_CMYK, px4, 0);
    free(px4);
    image_fail("cmyk", "cmyk/b/k.jpeg", "CMYK");
    /* text named .jpg, a GIF named .png, an empty file: by their bytes, not their names */
    bad_folder("text", "x.jpg", "hello, world\n", 13);
    image_fail("text", "text/b/x.jpg", "not a JPEG or PNG image");
    bad_folder("gif", "x.png", "GIF89a\1\0\1\0", 10);
    image_fail("gif", "gif/b/x.png", "a GIF image");
    bad_folder("empty", "x.png", "", 0);
    image_fail("empty", "empty/b/x.png", "empty file");
    /* a PNG that declares zero width (IHDR written by hand: libpng will not) */
    uint8_t z[8 + 25] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                         0,    0,   0,   0,   0,    0,    0,    1,    8, 2, 0, 0, 0};
    uLong crc = crc32(0, z + 12, 17);
    put_be32(z + 29, (uint32_t)crc);
    bad_folder("zpng", "z.png", z, sizeof z);
    image_fail("zpng", "zpng/b/z.png", "zero width or height");
    /* a JPEG whose frame header says height 0 */
    bad_folder("zjpg", "z.jpg", NULL, 0);
    write_jpeg("zjpg/b/z.jpg", 40, 30, 3, JCS_RGB, px, 0);
    file = read_whole(tmp("zjpg/b/z.jpg"), &len);
    for (size_t i = 2; i + 7 < len; i++)
        if (file[i] == 0xff && file[i + 1] == 0xc0) { /* SOF0: length, precision, height, width */
            file[i + 5] = file[i + 6] = 0;
            break;
        }
    write_raw(tmp("zjpg/b/z.jpg"), 0, file, len);
    free(file);
    image_fail("zjpg", "zjpg/b/z.jpg", "zero width or height");
    /* a PNG named .jpg decodes (its bytes say PNG) */
    bad_folder("named", "n.jpg", NULL, 0);
    write_png("named/b/n.jpg", 40, 30, PNG_COLOR_TYPE_RGB, px);
    pml_dataset d;
    CHECK_OK(pml_data_load_image_dir(tmp("named"), (pml_shape){3, 8, 8}, false, NULL, &d));
    CHECK(d.n == 4 && count_solid(&d, 1, red, 0) == 1);
    pml_data_free(&d);

    /* folders: a class without images, one class, none, a missing folder, a file */
    bad_folder("noimg", "readme.txt", "text", 4);
    mkdirs("noimg/c/sub");
    image_fail("noimg", "noimg/c", "class folder 'c' has no images");
    mkdirs("one/only");
    write_solid_png("one/only/1.png", 2, 2, PNG_COLOR_TYPE_RGB, red);
    image_fail("one", "one", "one class folder ('only')");
    mkdirs("flat");
    write_solid_png("flat/1.png", 2, 2, PNG_COLOR_TYPE_RGB, red);
    image_fail("flat", "flat", "no class subfolders");
    image_fail("absent", "absent", "cannot open");
    CHECK(pml_data_load_image_dir(tmp("absent"), (pml_shape){3, 8, 8}, false, NULL, &d) ==
          PML_ENOTFOUND);
    image_fail("flat/1.png", "flat/1.png", "not a folder");
    /* shapes an image folder cannot give */
    CHECK(pml_data_load_image_dir(tmp("named"), (pml_shape){4, 8, 8}, false, NULL, &d) ==
          PML_EINVAL);
    CHECK(has("named") && has("4x8x8"));
    CHECK(pml_data_load_image_dir(tmp("named"), (pml_shape){3, 0, 8}, false, NULL, &d) ==
          PML_EINVAL);
    free(px);
    tmp_end();
}

static void t_images_skip_bad(void)
{
    tmp_begin();
    /* bad files in two classes: without skip_bad the first in sorted order is named, however
     * the pool's threads finish; with it they are skipped and counted */
    bad_folder("mix", "b1.jpg", "not a jpeg", 10);
    write_raw(tmp("mix/a/3.png"), 0, "", 0);
    write_raw(tmp("mix/b/b2.png"), 0, "\x89PNG\r\n\x1a\n", 8);
    for (int i = 0; i < 40; i++) { /* enough files to keep every pool thread busy */
        char name[64];
        const uint8_t v[3] = {(uint8_t)i, 7, 7};
        snprintf(name, sizeof name, "mix/b/g%02d.png", i);
        write_solid_png(name, 9, 9, PNG_COLOR_TYPE_RGB, v);
    }
    for (int rep = 0; rep < 3; rep++) image_fail("mix", "mix/a/3.png", "empty file");
    pml_dataset d, e;
    int skipped = -1;
    CHECK_OK(pml_data_load_image_dir(tmp("mix"), (pml_shape){3, 4, 4}, true, &skipped, &d));
    CHECK(skipped == 3 && d.n == 2 + 1 + 40 && d.classes == 2);
    int count[2] = {0};
    for (int i = 0; i < d.n; i++)
        if (d.labels[i] >= 0 && d.labels[i] < 2) count[d.labels[i]]++;
    CHECK(count[0] == 2 && count[1] == 41);
    for (int i = 0; i < 40; i++) {
        const uint8_t v[3] = {(uint8_t)i, 7, 7};
        CHECK(count_solid(&d, 1, v, 0) == 1);
    }
    CHECK_OK(pml_data_load_image_dir(tmp("mix"), (pml_shape){3, 4, 4}, true, NULL, &e));
    CHECK(e.n == d.n && memcmp(e.images, d.images, (size_t)d.n * 48) == 0 &&
          memcmp(e.labels, d.labels, (size_t)d.n * sizeof *d.labels) == 0);
    pml_data_free(&e);
    pml_data_free(&d);

    /* every image bad: an error, even when skipping */
    mkdirs("allbad/a");
    mkdirs("allbad/b");
    write_raw(tmp("allbad/a/x.png"), 0, "x", 1);
    write_raw(tmp("allbad/b/y.png"), 0, "y", 1);
    CHECK(pml_data_load_image_dir(tmp("allbad"), (pml_shape){3, 4, 4}, true, &skipped, &d) !=
          PML_OK);
    CHECK(has("allbad") && has("none of its 2 images") && is_empty(&d));
    tmp_end();
}

/* The sets pml train and pml evaluate take from an image folder. */
static void t_images_for_model(void)
{
    tmp_begin();
    pml_graph g;
    CHECK_OK(pml_model_load("flowers-cnn:size=8,classes=3", &g));
    make_fruit();
    pml_dataset tr, te;
    int skipped = -1;
    /* one folder: the training set, no test set */
    CHECK_OK(pml_data_for_model(&g, tmp("fruit"), 0, 0, 1, false, &skipped, &tr, &te));
    CHECK(tr.n == 15 && tr.classes == 3 && te.n == 0 && skipped == 0);
    CHECK(tr.shape.c == 3 && tr.shape.h == 8 && tr.shape.w == 8);
    pml_data_free(&tr);
    pml_data_free(&te);
    /* --train-samples cuts it; the test set alone is the whole folder */
    CHECK_OK(pml_data_for_model(&g, tmp("fruit"), 4, 0, 1, false, NULL, &tr, &te));
    CHECK(tr.n == 4 && te.n == 0);
    pml_data_free(&tr);
    CHECK_OK(pml_data_for_model(&g, tmp("fruit"), 0, 0, 1, false, NULL, NULL, &te));
    CHECK(te.n == 15 && strcmp(te.name, "fruit") == 0);
    pml_data_free(&te);

    /* train/ and test/: those two, with the same classes */
    bad_folder("pair/train", "t.png", NULL, 0);
    bad_folder("pair/test", "bad.png", "bad", 3);
    write_raw(tmp("pair/README"), 0, "x", 1);
    /* for training the sets decode while it runs: the bad file is reported by pml_data_check
     * and pml_data_wait, which pml_train calls; evaluating (no training set) loads it whole */
    CHECK_OK(pml_data_for_model(&g, tmp("pair"), 0, 0, 1, false, NULL, &tr, &te));
    CHECK(tr.n == 3 && te.n == 4 && tr.stream != NULL && te.stream != NULL); /* the listing's */
    CHECK_OK(pml_data_wait(&tr));
    CHECK(pml_data_wait(&te) != PML_OK && has("pair/test/b/bad.png"));
    CHECK(pml_data_check(&te) != PML_OK && has("pair/test/b/bad.png"));
    pml_data_free(&tr);
    pml_data_free(&te);
    CHECK(pml_data_for_model(&g, tmp("pair"), 0, 0, 1, false, NULL, NULL, &te) != PML_OK);
    CHECK(has("pair/test/b/bad.png") && is_empty(&te));
    CHECK_OK(pml_data_for_model(&g, tmp("pair"), 0, 0, 1, true, &skipped, &tr, &te));
    CHECK(tr.n == 3 && te.n == 3 && skipped == 1);
    CHECK(strcmp(tr.name, "pair train") == 0 && strcmp(te.name, "pair test") == 0);
    pml_data_free(&tr);
    pml_data_free(&te);
    mkdirs("pair/test/c");
    write_solid_png("pair/test/c/1.png", 2, 2, PNG_COLOR_TYPE_RGB, red);
    CHECK(pml_data_for_model(&g, tmp("pair"), 0, 0, 1, true, NULL, &tr, &te) != PML_OK);
    CHECK(has("pair/train") && has("pair/test") && has("classes differ"));

    /* a folder of neither kind; an MNIST-style folder is still one */
    mkdirs("neither");
    CHECK(pml_data_for_model(&g, tmp("neither"), 0, 0, 1, false, NULL, &tr, &te) ==
          PML_ENOTFOUND);
    CHECK(has("neither") && has("MNIST-style") && has("class subfolders"));
    pml_graph_free(&g);
    CHECK_OK(pml_model_load("mlp", &g));
    mkdirs("mnist/sub");
    uint8_t *zeros = calloc(3, 28 * 28);
    write_images(tmp("mnist/train-images-idx3-ubyte"), 0, 3, 28, 28, zeros);
    free(zeros);
    CHECK(pml_data_for_model(&g, tmp("mnist"), 0, 0, 1, false, NULL, &tr, &te) != PML_OK);
    CHECK(has("train-labels-idx1-ubyte") && !has("class"));
    pml_graph_free(&g);
    tmp_end();
}


/* ---------------------------------------------------------------- image folders decoded while
 * training runs, and the decoded cache */

#define MANY_PER 20 /* images per class of make_many: 60 in all, more than the pool's window */

/* Folder rel of 3 classes of MANY_PER images each, every one different: gradients as PNGs and,
 * one in four, JPEGs of various sizes. */
static void make_many(const char *rel)
{
    for (int k = 0; k < 3; k++) {
        char p[128];
        snprintf(p, sizeof p, "%s/class%d", rel, k);
        mkdirs(p);
        for (int i = 0; i < MANY_PER; i++) {
            const int w = 9 + (i * 5 + k) % 13, h = 7 + (i * 3 + k) % 11;
            uint8_t *px = malloc((size_t)w * h * 3);
            for (int j = 0; j < w * h * 3; j++) px[j] = (uint8_t)(j * (7 + i) + 50 * k + 13 * i);
            if (i % 4 == 3) {
                snprintf(p, sizeof p, "%s/class%d/im%02d.jpg", rel, k, i);
                write_jpeg(p, w, h, 3, JCS_RGB, px, 0);
            } else {
                snprintf(p, sizeof p, "%s/class%d/im%02d.png", rel, k, i);
                write_png(p, w, h, PNG_COLOR_TYPE_RGB, px);
            }
            free(px);
        }
    }
}

/* d and e hold the same samples, byte for byte */
static int same_data(const pml_dataset *d, const pml_dataset *e)
{
    return d->n == e->n && d->classes == e->classes && pml_shape_eq(d->shape, e->shape) &&
           memcmp(d->images, e->images, (size_t)d->n * pml_shape_size(d->shape)) == 0 &&
           memcmp(d->labels, e->labels, (size_t)d->n * sizeof *d->labels) == 0;
}

typedef struct gather_all {
    const pml_dataset *d;
    float *x;
    int32_t *y;
} gather_all;

static void *gather_all_run(void *arg)
{
    gather_all *g = arg;
    const size_t size = pml_shape_size(g->d->shape);
    for (int32_t i = 0; i < g->d->n; i++) pml_data_gather(g->d, &i, 1, g->x + i * size, g->y + i);
    return NULL;
}

/* An opened folder gives the bytes a loaded one does, whether the pool or the gathers decode. */
static void t_images_stream(void)
{
    tmp_begin();
    unsetenv("HOME");
    unsetenv("XDG_CACHE_HOME"); /* no cache: every load decodes */
    make_many("many");
    const pml_shape sh = {3, 12, 10};
    const size_t size = pml_shape_size(sh);
    const int n = 3 * MANY_PER;
    pml_dataset ref, d;
    long before = pml__image_decodes();
    CHECK_OK(pml_data_load_image_dir(tmp("many"), sh, false, NULL, &ref));
    CHECK(ref.n == n && ref.stream == NULL && pml__image_decodes() - before == n);

    /* the pool held: it has claimed its window (at most 16 files, the first in storage order)
     * and decodes none, so a gather of the last sample decodes it itself */
    pml__image_hold(true);
    int skipped = -1;
    CHECK_OK(pml_data_open_image_dir(tmp("many"), sh, false, &skipped, &d));
    CHECK(d.n == n && d.stream != NULL && skipped == 0 && d.classes == 3);
    CHECK(memcmp(d.labels, ref.labels, (size_t)n * sizeof *d.labels) == 0); /* known at once */
    CHECK_OK(pml_data_check(&d));
    float *x = malloc((size_t)n * size * sizeof *x), *want = malloc((size_t)n * size * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y), *ywant = malloc((size_t)n * sizeof *y);
    int32_t last = n - 1;
    pml_data_gather(&d, &last, 1, x, y);
    long stolen = -1, waited = -1;
    pml__image_stats(d.stream, &stolen, &waited);
    CHECK(stolen == 1 && waited == 0);
    pml_data_gather(&ref, &last, 1, want, ywant);
    CHECK(memcmp(x, want, size * sizeof *x) == 0 && y[0] == ywant[0]);

    /* a thread gathers every sample in order while the pool is let go: it waits for those in
     * the pool and decodes the others itself, as it meets them */
    gather_all g = {&d, x, y};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, gather_all_run, &g) == 0);
    pml__image_hold(false);
    pthread_join(th, NULL);
    for (int32_t i = 0; i < n; i++) pml_data_gather(&ref, &i, 1, want + i * size, ywant + i);
    CHECK(memcmp(x, want, (size_t)n * size * sizeof *x) == 0);
    CHECK(memcmp(y, ywant, (size_t)n * sizeof *y) == 0);
    CHECK_OK(pml_data_wait(&d));
    CHECK(same_data(&d, &ref));
    pml__image_stats(d.stream, &stolen, &waited);
    CHECK(stolen >= 1 && stolen + waited <= n);
    if (getenv("PML_TEST_VERBOSE")) fprintf(stderr, "  stolen %ld, waited %ld\n", stolen, waited);

    /* a view (a validation split) gathers through its owner's stream */
    pml_dataset val;
    CHECK_OK(pml_data_split(&d, 0.25, &val));
    CHECK(val.stream == d.stream && val.owner == NULL);
    int32_t i0 = 0;
    pml_data_gather(&val, &i0, 1, x, y);
    CHECK(y[0] == ref.labels[d.n]);
    pml_data_free(&d);

    /* freed while the pool still decodes: the decoder stops, nothing leaks */
    CHECK_OK(pml_data_open_image_dir(tmp("many"), sh, false, NULL, &d));
    pml_data_free(&d);
    CHECK(is_empty(&d) && d.stream == NULL);
    /* a loaded or synthetic dataset has nothing to wait for */
    CHECK_OK(pml_data_wait(&ref));
    CHECK_OK(pml_data_check(&ref));
    free(x);
    free(want);
    free(y);
    free(ywant);
    pml_data_free(&ref);
    tmp_end();
}

/* Bad files in an opened folder: the first in sorted order, whatever decodes first. */
static void t_images_stream_bad(void)
{
    tmp_begin();
    unsetenv("HOME");
    setenv("XDG_CACHE_HOME", tmp("cache"), 1);
    make_many("mix");
    write_raw(tmp("mix/class0/im05.png"), 0, "", 0);               /* the first in sorted order */
    write_raw(tmp("mix/class2/im01.png"), 0, "\x89PNG\r\n\x1a\n", 8); /* truncated */
    write_raw(tmp("mix/class1/zz.jpg"), 0, "not a jpeg", 10);
    const pml_shape sh = {3, 6, 6};
    const int n = 3 * MANY_PER + 1;
    for (int rep = 0; rep < 3; rep++) {
        pml_dataset d;
        int skipped = -1;
        /* rep 0: the pool alone; 1: gathers first (the pool held); 2: gathers as it goes */
        if (rep == 1) pml__image_hold(true);
        CHECK_OK(pml_data_open_image_dir(tmp("mix"), sh, false, &skipped, &d));
        CHECK(d.n == n && skipped == 0);
        float *x = malloc((size_t)n * pml_shape_size(sh) * sizeof *x);
        int32_t *y = malloc((size_t)n * sizeof *y);
        gather_all g = {&d, x, y};
        if (rep == 1) { /* a thread gathers (and waits for the pool) while it is let go */
            pthread_t th;
            CHECK(pthread_create(&th, NULL, gather_all_run, &g) == 0);
            pml__image_hold(false);
            pthread_join(th, NULL);
        }
        if (rep == 2) gather_all_run(&g);
        CHECK(pml_data_wait(&d) != PML_OK);
        CHECK_MSG(has("mix/class0/im05.png") && has("empty file"), "%s", pml_errmsg());
        CHECK(pml_data_check(&d) != PML_OK && has("mix/class0/im05.png"));
        free(x);
        free(y);
        pml_data_free(&d);
    }
    /* nothing cached from a failed load */
    long before = pml__image_decodes();
    pml_dataset d, e;
    int skipped = -1;
    CHECK(pml_data_load_image_dir(tmp("mix"), sh, false, &skipped, &d) != PML_OK);
    CHECK(has("mix/class0/im05.png") && is_empty(&d));
    CHECK(pml__image_decodes() > before);
    /* skipping: the count depends on every file, so the folder is loaded whole first */
    CHECK_OK(pml_data_open_image_dir(tmp("mix"), sh, true, &skipped, &d));
    CHECK(skipped == 3 && d.n == n - 3 && d.stream == NULL);
    /* and cached with its count: the next skipping load decodes nothing */
    before = pml__image_decodes();
    CHECK_OK(pml_data_load_image_dir(tmp("mix"), sh, true, &skipped, &e));
    CHECK(pml__image_decodes() == before && skipped == 3 && same_data(&d, &e));
    pml_data_free(&e);
    /* without skipping that cache is not used: the error again */
    CHECK_OK(pml_data_open_image_dir(tmp("mix"), sh, false, &skipped, &e));
    CHECK(e.n == n && pml_data_wait(&e) != PML_OK && has("mix/class0/im05.png"));
    pml_data_free(&e);
    pml_data_free(&d);
    tmp_end();
}

/* Sets the mtime of rel to sec seconds (and no nanoseconds). */
static void set_mtime(const char *rel, time_t sec)
{
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    CHECK(utimensat(AT_FDCWD, tmp(rel), ts, 0) == 0);
}

/* The cache file of the folder (the only one in CACHE/pml/images), its path into buf. */
static int cache_path(char *buf, size_t cap)
{
    DIR *dp = opendir(tmp("cache/pml/images"));
    int found = 0;
    for (struct dirent *e; dp && (e = readdir(dp));)
        if (pml_ends_with(e->d_name, ".bin") && e->d_name[0] != '.') {
            snprintf(buf, cap, "%s/%s", tmp("cache/pml/images"), e->d_name);
            found++;
        }
    if (dp) closedir(dp);
    return found;
}

/* Loads folder "many" at sh: the files it decoded (n: all, 0: from the cache). */
static long load_count(pml_shape sh, bool stream, pml_dataset *d)
{
    long before = pml__image_decodes();
    CHECK_OK(stream ? pml_data_open_image_dir(tmp("many"), sh, false, NULL, d)
                    : pml_data_load_image_dir(tmp("many"), sh, false, NULL, d));
    CHECK_OK(pml_data_wait(d));
    return pml__image_decodes() - before;
}

static void t_images_cache(void)
{
    tmp_begin();
    unsetenv("HOME");
    setenv("XDG_CACHE_HOME", tmp("cache"), 1);
    make_many("many");
    const pml_shape sh = {3, 12, 10};
    const int n = 3 * MANY_PER;
    char path[512], other[512];
    pml_dataset ref, d;
    /* the first load decodes and writes the cache; the next ones read it */
    CHECK(load_count(sh, false, &ref) == n);
    CHECK(cache_path(path, sizeof path) == 1);
    CHECK(load_count(sh, false, &d) == 0 && same_data(&d, &ref) && d.stream == NULL);
    pml_data_free(&d);
    CHECK(load_count(sh, true, &d) == 0 && same_data(&d, &ref) && d.stream == NULL);
    pml_data_free(&d);
    /* opened: the decoder writes the cache once every file is decoded */
    CHECK(remove(path) == 0);
    CHECK(load_count(sh, true, &d) == n && same_data(&d, &ref));
    pml_data_free(&d); /* waits for the cache being written */
    CHECK(cache_path(path, sizeof path) == 1);
    CHECK(load_count(sh, false, &d) == 0 && same_data(&d, &ref));
    pml_data_free(&d);
    /* another size: another cache */
    CHECK(load_count((pml_shape){1, 5, 5}, false, &d) == n && d.shape.c == 1);
    pml_data_free(&d);
    CHECK(load_count((pml_shape){1, 5, 5}, false, &d) == 0);
    pml_data_free(&d);
    CHECK(cache_path(other, sizeof other) == 2);

    /* a file changed: its mtime alone, then its contents and size; the cache is not used */
    set_mtime("many/class1/im02.png", 1000000000);
    CHECK(load_count(sh, false, &d) == n && same_data(&d, &ref));
    pml_data_free(&d);
    CHECK(load_count(sh, false, &d) == 0);
    pml_data_free(&d);
    const uint8_t v[3] = {1, 2, 3};
    write_solid_png("many/class1/im02.png", 5, 5, PNG_COLOR_TYPE_RGB, v);
    CHECK(load_count(sh, false, &d) == n && d.n == n && !same_data(&d, &ref));
    CHECK(count_solid(&d, 1, v, 0) == 1);
    pml_data_free(&d);
    /* a file added, one removed */
    write_solid_png("many/class2/new.png", 5, 5, PNG_COLOR_TYPE_RGB, v);
    CHECK(load_count(sh, false, &d) == n + 1 && d.n == n + 1);
    pml_data_free(&d);
    CHECK(remove(tmp("many/class2/new.png")) == 0 && remove(tmp("many/class0/im00.png")) == 0);
    CHECK(load_count(sh, false, &d) == n - 1 && d.n == n - 1);
    pml_data_free(&d);
    pml_data_free(&ref);
    CHECK(load_count(sh, false, &ref) == 0); /* the folder as it is now */

    /* a corrupt cache (a byte flipped in the images, cut short, garbage, empty) is decoded
     * anew, never an error, and rewritten */
    for (int k = 0; k < 4; k++) {
        size_t len = 0;
        uint8_t *file = read_whole(path, &len);
        CHECK(file != NULL && len > 1000);
        if (!file) break;
        if (k == 0) file[len - 100] ^= 0x40;
        write_raw(path, 0, file, k == 0 ? len : k == 1 ? len - 7 : k == 2 ? 40 : 0);
        if (k == 2) write_raw(path, 0, "garbage, not a cache", 20);
        free(file);
        CHECK_MSG(load_count(sh, false, &d) == n - 1 && same_data(&d, &ref), "corruption %d", k);
        pml_data_free(&d);
        CHECK(load_count(sh, false, &d) == 0 && same_data(&d, &ref));
        pml_data_free(&d);
    }
    /* no cache folder: no cache, no error */
    unsetenv("XDG_CACHE_HOME");
    CHECK(load_count(sh, false, &d) == n - 1 && same_data(&d, &ref));
    pml_data_free(&d);
    pml_data_free(&ref);
    tmp_end();
}

static const pml_test tests[] = {
    {"idx_plain", t_idx_plain},
    {"idx_gzip", t_idx_gzip},
    {"idx_large", t_idx_large},
    {"mnist_dir", t_mnist_dir},
    {"fashion_mnist", t_fashion_mnist},
    {"bad_missing", t_bad_missing},
    {"bad_magic", t_bad_magic},
    {"bad_truncated", t_bad_truncated},
    {"bad_gzip", t_bad_gzip},
    {"bad_content", t_bad_content},
    {"bad_huge", t_bad_huge},
    {"split", t_split},
    {"shuffle", t_shuffle},
    {"synthetic_values", t_synthetic_values},
    {"synthetic_learnable", t_synthetic_learnable},
    {"synthetic_threads", t_synthetic_threads},
    {"images_values", t_images_values},
    {"images_resize", t_images_resize},
    {"images_bad", t_images_bad},
    {"images_skip_bad", t_images_skip_bad},
    {"images_for_model", t_images_for_model},
    {"images_stream", t_images_stream},
    {"images_stream_bad", t_images_stream_bad},
    {"images_cache", t_images_cache},
    {0},
};

PML_TEST_MAIN(tests)
