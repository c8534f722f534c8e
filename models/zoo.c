/* pml — the model zoo: spec parsing, builder helpers, and the small models. */
#include "build.h"
#include "models.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- builder helpers */

static int add(pml__mb *b, const char *name, pml_op_type op, const pml_attrs *a, int nin,
               const int *in)
{
    if (b->st != PML_OK) return -1;
    for (int i = 0; i < nin; i++)
        if (in[i] < 0) {
            b->st = pml_fail(PML_EINVAL, "node '%s': missing input", name);
            return -1;
        }
    int id = pml_graph_add(b->g, name, op, a, nin, in);
    if (id < 0) b->st = PML_EINVAL;
    return id;
}

int pml__mb_input(pml__mb *b, int c, int h, int w)
{
    pml_attrs a = pml_attrs_default(PML_OP_INPUT);
    a.shape = (pml_shape){c, h, w};
    return add(b, "input", PML_OP_INPUT, &a, 0, NULL);
}

int pml__mb_conv(pml__mb *b, const char *name, int in, int out, int kh, int kw, int sh, int sw,
                 int pad_mode, int ph, int pw, int act, int bias)
{
    pml_attrs a = pml_attrs_default(PML_OP_CONV2D);
    a.out = out;
    a.kh = kh;
    a.kw = kw;
    a.sh = sh;
    a.sw = sw;
    a.pad_mode = pad_mode;
    a.ph = ph;
    a.pw = pw;
    a.act = act;
    a.bias = bias;
    return add(b, name, PML_OP_CONV2D, &a, 1, &in);
}

int pml__mb_linear(pml__mb *b, const char *name, int in, int out, int act)
{
    pml_attrs a = pml_attrs_default(PML_OP_LINEAR);
    a.out = out;
    a.act = act;
    return add(b, name, PML_OP_LINEAR, &a, 1, &in);
}

static int pool(pml__mb *b, const char *name, pml_op_type op, int in, int k, int s, int pad_mode,
                int p, int ceil_mode, int count_pad, int global)
{
    pml_attrs a = pml_attrs_default(op);
    a.kh = a.kw = k;
    a.sh = a.sw = s;
    a.pad_mode = pad_mode;
    a.ph = a.pw = p;
    a.ceil_mode = ceil_mode;
    a.count_pad = count_pad;
    a.global = global;
    return add(b, name, op, &a, 1, &in);
}

int pml__mb_maxpool(pml__mb *b, const char *name, int in, int k, int s, int pad_mode, int p,
                    int ceil_mode)
{
    return pool(b, name, PML_OP_MAXPOOL2D, in, k, s, pad_mode, p, ceil_mode, 0, 0);
}

int pml__mb_avgpool(pml__mb *b, const char *name, int in, int k, int s, int pad_mode, int p,
                    int count_pad)
{
    return pool(b, name, PML_OP_AVGPOOL2D, in, k, s, pad_mode, p, 0, count_pad, 0);
}

int pml__mb_global_avgpool(pml__mb *b, const char *name, int in)
{
    return pool(b, name, PML_OP_AVGPOOL2D, in, 1, 1, PML_PAD_VALID, 0, 0, 0, 1);
}

int pml__mb_relu(pml__mb *b, const char *name, int in)
{
    return add(b, name, PML_OP_RELU, NULL, 1, &in);
}

int pml__mb_bn(pml__mb *b, const char *name, int in, float eps)
{
    pml_attrs a = pml_attrs_default(PML_OP_BATCHNORM);
    a.eps = eps;
    return add(b, name, PML_OP_BATCHNORM, &a, 1, &in);
}

int pml__mb_add(pml__mb *b, const char *name, int x, int y)
{
    int in[2] = {x, y};
    return add(b, name, PML_OP_ADD, NULL, 2, in);
}

int pml__mb_concat(pml__mb *b, const char *name, int n, const int *in)
{
    return add(b, name, PML_OP_CONCAT, NULL, n, in);
}

int pml__mb_flatten(pml__mb *b, const char *name, int in)
{
    return add(b, name, PML_OP_FLATTEN, NULL, 1, &in);
}

int pml__mb_dropout(pml__mb *b, const char *name, int in, float rate)
{
    pml_attrs a = pml_attrs_default(PML_OP_DROPOUT);
    a.rate = rate;
    return add(b, name, PML_OP_DROPOUT, &a, 1, &in);
}

int pml__mb_loss(pml__mb *b, int logits)
{
    return add(b, "loss", PML_OP_SOFTMAX_XENT, NULL, 1, &logits);
}

/* ---------------------------------------------------------------- parameters */

static int find_param(pml__mparams *p, const char *key)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->key[i], key) == 0) {
            p->used[i] = true;
            return i;
        }
    return -1;
}

int pml__mp_int(pml__mb *b, pml__mparams *p, const char *key, int def, int lo, int hi)
{
    int i = find_param(p, key);
    if (i < 0 || b->st != PML_OK) return def;
    char *end;
    errno = 0;
    long v = strtol(p->val[i], &end, 10);
    if (errno || end == p->val[i] || *end || v < lo || v > hi) {
        b->st = pml_fail(PML_EINVAL, "model '%s': parameter %s=%s must be an integer in [%d, %d]",
                         p->model, key, p->val[i], lo, hi);
        return def;
    }
    return (int)v;
}

float pml__mp_float(pml__mb *b, pml__mparams *p, const char *key, float def, float lo, float hi)
{
    int i = find_param(p, key);
    if (i < 0 || b->st != PML_OK) return def;
    char *end;
    errno = 0;
    double v = strtod(p->val[i], &end);
    if (errno || end == p->val[i] || *end || !(v >= lo && v <= hi)) {
        b->st = pml_fail(PML_EINVAL, "model '%s': parameter %s=%s must be a number in [%g, %g]",
                         p->model, key, p->val[i], (double)lo, (double)hi);
        return def;
    }
    return (float)v;
}

/* ---------------------------------------------------------------- small models */

/* The reference Keras model: Flatten -> Dense(units, relu) x layers -> Dense(classes). */
static void zoo_mlp(pml__mb *b, pml__mparams *p)
{
    int units = pml__mp_int(b, p, "units", 128, 1, 1 << 16);
    int layers = pml__mp_int(b, p, "layers", 1, 0, 256);
    int classes = pml__mp_int(b, p, "classes", 10, 2, 1 << 16);
    float drop = pml__mp_float(b, p, "dropout", 0.0f, 0.0f, 0.95f);
    int size = pml__mp_int(b, p, "size", 28, 1, 4096);
    int channels = pml__mp_int(b, p, "channels", 1, 1, 64);
    int x = pml__mb_input(b, channels, size, size);
    x = pml__mb_flatten(b, "flatten", x);
    char name[32];
    for (int i = 0; i < layers; i++) {
        snprintf(name, sizeof name, "dense%d", i + 1);
        x = pml__mb_linear(b, name, x, units, PML_ACT_RELU);
        if (drop > 0) {
            snprintf(name, sizeof name, "dropout%d", i + 1);
            x = pml__mb_dropout(b, name, x, drop);
        }
    }
    x = pml__mb_linear(b, "logits", x, classes, PML_ACT_NONE);
    pml__mb_loss(b, x);
}

/* Keras Fashion-MNIST CNN: conv3x3 32 relu, maxpool2, conv3x3 64 relu, maxpool2, flatten,
 * dense 128 relu, dense 10 (padding 'valid', the Keras default). */
static void zoo_fashion_cnn(pml__mb *b, pml__mparams *p)
{
    int classes = pml__mp_int(b, p, "classes", 10, 2, 1 << 16);
    int size = pml__mp_int(b, p, "size", 28, 10, 4096);
    int c1 = pml__mp_int(b, p, "filters", 32, 1, 4096);
    int units = pml__mp_int(b, p, "units", 128, 1, 1 << 16);
    int x = pml__mb_input(b, 1, size, size);
    x = pml__mb_conv(b, "conv1", x, c1, 3, 3, 1, 1, PML_PAD_VALID, 0, 0, PML_ACT_RELU, 1);
    x = pml__mb_maxpool(b, "pool1", x, 2, 2, PML_PAD_VALID, 0, 0);
    x = pml__mb_conv(b, "conv2", x, 2 * c1, 3, 3, 1, 1, PML_PAD_VALID, 0, 0, PML_ACT_RELU, 1);
    x = pml__mb_maxpool(b, "pool2", x, 2, 2, PML_PAD_VALID, 0, 0);
    x = pml__mb_flatten(b, "flatten", x);
    x = pml__mb_linear(b, "dense1", x, units, PML_ACT_RELU);
    x = pml__mb_linear(b, "logits", x, classes, PML_ACT_NONE);
    pml__mb_loss(b, x);
}

/* The TensorFlow flowers tutorial model (input rescaled to [0,1] by the data loader):
 * conv3x3 same 16/32/64 relu + maxpool2 each, flatten, dense 128 relu, dense 5. */
static void zoo_flowers_cnn(pml__mb *b, pml__mparams *p)
{
    int classes = pml__mp_int(b, p, "classes", 5, 2, 1 << 16);
    int size = pml__mp_int(b, p, "size", 180, 8, 4096);
    int x = pml__mb_input(b, 3, size, size);
    static const int filters[3] = {16, 32, 64};
    char name[32];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "conv%d", i + 1);
        x = pml__mb_conv(b, name, x, filters[i], 3, 3, 1, 1, PML_PAD_SAME, 0, 0, PML_ACT_RELU, 1);
        snprintf(name, sizeof name, "pool%d", i + 1);
        x = pml__mb_maxpool(b, name, x, 2, 2, PML_PAD_VALID, 0, 0);
    }
    x = pml__mb_flatten(b, "flatten", x);
    x = pml__mb_linear(b, "dense1", x, 128, PML_ACT_RELU);
    x = pml__mb_linear(b, "logits", x, classes, PML_ACT_NONE);
    pml__mb_loss(b, x);
}

/* ---------------------------------------------------------------- the table */

typedef struct zoo_def {
    pml_zoo_entry e;
    pml__zoo_fn build;
} zoo_def;

static const zoo_def zoo[] = {
    {{"mlp", "Keras Fashion-MNIST MLP: flatten, dense relu x layers, dense",
      "units=128 layers=1 classes=10 dropout=0 size=28 channels=1"},
     zoo_mlp},
    {{"fashion-cnn", "Keras Fashion-MNIST CNN: 2 x (conv3x3 relu, maxpool2), dense 128, dense 10",
      "filters=32 units=128 classes=10 size=28"},
     zoo_fashion_cnn},
    {{"flowers-cnn", "TensorFlow flowers tutorial CNN, 180x180x3, 5 classes",
      "size=180 classes=5"},
     zoo_flowers_cnn},
    {{"alexnet", "AlexNet as in torchvision (61,100,840 parameters at 1000 classes)",
      "classes=1000 size=224"},
     pml__zoo_alexnet},
    {{"vgg16", "VGG-16 as in torchvision (138,357,544 parameters at 1000 classes)",
      "classes=1000 size=224"},
     pml__zoo_vgg16},
    {{"resnet50", "ResNet-50 as in torchvision (25,557,032 parameters at 1000 classes)",
      "classes=1000 size=224"},
     pml__zoo_resnet50},
    {{"inception-v3", "Inception-v3 as in torchvision, aux_logits=False (23,834,568 parameters)",
      "classes=1000 size=299"},
     pml__zoo_inception_v3},
};

const pml_zoo_entry *pml_zoo_list(int *count)
{
    static pml_zoo_entry list[sizeof zoo / sizeof zoo[0]];
    for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++) list[i] = zoo[i].e;
    *count = (int)(sizeof zoo / sizeof zoo[0]);
    return list;
}

static pml_status parse_spec(const char *spec, char *name, size_t namecap, pml__mparams *p)
{
    memset(p, 0, sizeof *p);
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (nlen == 0 || nlen >= namecap) return pml_fail(PML_EINVAL, "model '%s': bad name", spec);
    memcpy(name, spec, nlen);
    name[nlen] = 0;
    if (!colon) return PML_OK;
    const char *s = colon + 1;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        if (!eq || eq == s || eq == s + len - 1)
            return pml_fail(PML_EINVAL, "model '%s': parameter '%.*s' is not key=value", name,
                            (int)len, s);
        if (p->n == PML__MAX_MPARAMS)
            return pml_fail(PML_EINVAL, "model '%s': too many parameters", name);
        size_t klen = (size_t)(eq - s), vlen = len - klen - 1;
        if (klen >= sizeof p->key[0] || vlen >= sizeof p->val[0])
            return pml_fail(PML_EINVAL, "model '%s': parameter '%.*s' is too long", name, (int)len,
                            s);
        memcpy(p->key[p->n], s, klen);
        memcpy(p->val[p->n], eq + 1, vlen);
        for (int i = 0; i < p->n; i++)
            if (strcmp(p->key[i], p->key[p->n]) == 0)
                return pml_fail(PML_EINVAL, "model '%s': parameter '%s' given twice", name,
                                p->key[i]);
        p->n++;
        if (!comma) break;
        s = comma + 1;
        if (!*s) return pml_fail(PML_EINVAL, "model '%s': trailing ',' in '%s'", name, spec);
    }
    return PML_OK;
}

pml_status pml_model_build(const char *spec, pml_graph *g)
{
    char name[64];
    pml__mparams p;
    pml_graph_init(g, NULL);
    pml_status st = parse_spec(spec, name, sizeof name, &p);
    if (st != PML_OK) return st;
    p.model = name;
    const zoo_def *z = NULL;
    for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++)
        if (strcmp(zoo[i].e.name, name) == 0) z = &zoo[i];
    if (!z) {
        char known[256] = "";
        for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++) {
            strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, zoo[i].e.name, sizeof known - strlen(known) - 1);
        }
        return pml_fail(PML_EUNKNOWN,
                        "unknown model '%s' (zoo: %s; or a model file: .dot, .onnx or .pml)",
                        name, known);
    }
    pml_graph_init(g, name);
    pml__mb b = {g, PML_OK};
    z->build(&b, &p);
    if (b.st == PML_OK)
        for (int i = 0; i < p.n; i++)
            if (!p.used[i]) {
                b.st = pml_fail(PML_EUNKNOWN, "model '%s': unknown parameter '%s' (known: %s)", name,
                                p.key[i], z->e.params);
                break;
            }
    if (b.st == PML_OK) b.st = pml_graph_finalize(g);
    if (b.st != PML_OK) {
        if (!strstr(pml_errmsg(), name)) pml_fail_ctx(b.st, "model '%s': ", name);
        pml_graph_free(g);
        return b.st;
    }
    return PML_OK;
}
