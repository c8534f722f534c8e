/* pml — the planner's models, each as in torchvision (torchvision/models/{alexnet,vgg,resnet,
 * inception}.py). Node names follow torchvision's module names so a user can match them with
 * `model.named_modules()`; an Inception block's concat carries the block's name (`Mixed_7c`), a
 * Bottleneck's output is its final relu (`layer4.2.relu`). Where torchvision applies an op
 * functionally or through a shared module, the node gets a readable name of its own
 * (`layer1.0.relu1`, `layer1.0.add`, `Mixed_5b.avg_pool`). A ReLU fused into the conv or linear
 * before it (alexnet, vgg16) has no node of its own.
 *
 * Parameter counts at 1000 classes (trainable; batchnorm running statistics are state):
 *   alexnet       61,100,840   1.43 GFLOP per sample (0.714 GMAC) at 224x224
 *   vgg16        138,357,544  30.94 GFLOP (15.47 GMAC) at 224x224
 *   resnet50      25,557,032   8.18 GFLOP (4.09 GMAC) at 224x224
 *   inception-v3  23,834,568  11.43 GFLOP (5.71 GMAC) at 299x299, aux_logits=False
 *                 (torchvision's 27,161,264 includes the AuxLogits head: 3,326,696 more)
 * (FLOPs count conv and linear multiply-adds as 2; bn, relu, pool, add add a little.) */
#include "build.h"

#include <stdarg.h>
#include <stdio.h>

/* torchvision's BatchNorm2d momentum 0.1, in the Keras convention pml uses
 * (running = m * running + (1 - m) * batch). */
#define TV_BN_MOMENTUM 0.9f

/* ---------------------------------------------------------------- helpers */

typedef char name_buf[PML_NAME_MAX];

/* Formats a node name into buf; returns buf. (The longest name here has 29 characters.) */
static const char *nm(name_buf buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *nm(name_buf buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, PML_NAME_MAX, fmt, ap);
    va_end(ap);
    return buf;
}

static int bn(pml__mb *b, const char *name, int in, float eps)
{
    int id = pml__mb_bn(b, name, in, eps);
    if (id >= 0) b->g->nodes[id].a.momentum = TV_BN_MOMENTUM;
    return id;
}

/* Output size of a conv/pool window along one axis (floor mode), 0 when it does not fit. */
static int win(int in, int k, int s, int p)
{
    int span = in + 2 * p - k;
    return span < 0 ? 0 : span / s + 1;
}

/* AdaptiveAvgPool2d((t, t)) on an h x h map. It is the identity when h == t (the 224x224 case)
 * and a plain average pool with kernel = stride = h / t when t divides h; other sizes would need
 * overlapping windows of varying size, which pml does not have, so they are an error. */
static int adaptive_avgpool(pml__mb *b, pml__mparams *p, int x, int h, int t, int size)
{
    if (b->st != PML_OK) return -1;
    if (h == t) return x;
    if (h > t && h % t == 0)
        return pml__mb_avgpool(b, "avgpool", x, h / t, h / t, PML_PAD_VALID, 0, 0);
    b->st = pml_fail(PML_EINVAL,
                     "model '%s': parameter size=%d gives a %dx%d feature map, which "
                     "AdaptiveAvgPool2d((%d, %d)) cannot reduce with one pooling window (it must "
                     "be %dx%d or a multiple of it; size=224 gives %dx%d)",
                     p->model, size, h, h, t, t, t, t, t, t);
    return -1;
}

/* ---------------------------------------------------------------- alexnet */

/* torchvision.models.alexnet. features.N: conv with its ReLU (features.N+1) fused. */
void pml__zoo_alexnet(pml__mb *b, pml__mparams *p)
{
    int classes = pml__mp_int(b, p, "classes", 1000, 2, 1 << 16);
    int size = pml__mp_int(b, p, "size", 224, 63, 4096);
    if (b->st != PML_OK) return;
    int x = pml__mb_input(b, 3, size, size);
    int h = size;
    x = pml__mb_conv(b, "features.0", x, 64, 11, 11, 4, 4, PML_PAD_EXPLICIT, 2, 2, PML_ACT_RELU, 1);
    h = win(h, 11, 4, 2);
    x = pml__mb_maxpool(b, "features.2", x, 3, 2, PML_PAD_VALID, 0, 0);
    h = win(h, 3, 2, 0);
    x = pml__mb_conv(b, "features.3", x, 192, 5, 5, 1, 1, PML_PAD_EXPLICIT, 2, 2, PML_ACT_RELU, 1);
    x = pml__mb_maxpool(b, "features.5", x, 3, 2, PML_PAD_VALID, 0, 0);
    h = win(h, 3, 2, 0);
    x = pml__mb_conv(b, "features.6", x, 384, 3, 3, 1, 1, PML_PAD_EXPLICIT, 1, 1, PML_ACT_RELU, 1);
    x = pml__mb_conv(b, "features.8", x, 256, 3, 3, 1, 1, PML_PAD_EXPLICIT, 1, 1, PML_ACT_RELU, 1);
    x = pml__mb_conv(b, "features.10", x, 256, 3, 3, 1, 1, PML_PAD_EXPLICIT, 1, 1, PML_ACT_RELU, 1);
    x = pml__mb_maxpool(b, "features.12", x, 3, 2, PML_PAD_VALID, 0, 0);
    h = win(h, 3, 2, 0);
    x = adaptive_avgpool(b, p, x, h, 6, size);
    x = pml__mb_flatten(b, "flatten", x);
    x = pml__mb_dropout(b, "classifier.0", x, 0.5f);
    x = pml__mb_linear(b, "classifier.1", x, 4096, PML_ACT_RELU);
    x = pml__mb_dropout(b, "classifier.3", x, 0.5f);
    x = pml__mb_linear(b, "classifier.4", x, 4096, PML_ACT_RELU);
    x = pml__mb_linear(b, "classifier.6", x, classes, PML_ACT_NONE);
    pml__mb_loss(b, x);
}

/* ---------------------------------------------------------------- vgg16 */

/* torchvision.models.vgg16 (configuration "D", no batchnorm). features.N: conv 3x3 pad 1 with its
 * ReLU (features.N+1) fused; 0 in the table is a maxpool 2x2 stride 2. */
void pml__zoo_vgg16(pml__mb *b, pml__mparams *p)
{
    static const int cfg[] = {64, 64,  0,   128, 128, 0,   256, 256, 256,
                              0,  512, 512, 512, 0,   512, 512, 512, 0};
    int classes = pml__mp_int(b, p, "classes", 1000, 2, 1 << 16);
    int size = pml__mp_int(b, p, "size", 224, 32, 4096);
    if (b->st != PML_OK) return;
    name_buf n;
    int x = pml__mb_input(b, 3, size, size);
    int h = size, idx = 0;
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        if (cfg[i] == 0) {
            x = pml__mb_maxpool(b, nm(n, "features.%d", idx), x, 2, 2, PML_PAD_VALID, 0, 0);
            h = win(h, 2, 2, 0);
            idx += 1;
        } else {
            x = pml__mb_conv(b, nm(n, "features.%d", idx), x, cfg[i], 3, 3, 1, 1, PML_PAD_EXPLICIT,
                             1, 1, PML_ACT_RELU, 1);
            idx += 2;
        }
    }
    x = adaptive_avgpool(b, p, x, h, 7, size);
    x = pml__mb_flatten(b, "flatten", x);
    x = pml__mb_linear(b, "classifier.0", x, 4096, PML_ACT_RELU);
    x = pml__mb_dropout(b, "classifier.2", x, 0.5f);
    x = pml__mb_linear(b, "classifier.3", x, 4096, PML_ACT_RELU);
    x = pml__mb_dropout(b, "classifier.5", x, 0.5f);
    x = pml__mb_linear(b, "classifier.6", x, classes, PML_ACT_NONE);
    pml__mb_loss(b, x);
}

/* ---------------------------------------------------------------- resnet50 */

#define RESNET_BN_EPS 1e-5f

/* conv (no bias) named cname -> batchnorm named bname. */
static int conv_bn(pml__mb *b, const char *cname, const char *bname, int x, int out, int k, int s,
                   int pad)
{
    x = pml__mb_conv(b, cname, x, out, k, k, s, s, PML_PAD_EXPLICIT, pad, pad, PML_ACT_NONE, 0);
    return bn(b, bname, x, RESNET_BN_EPS);
}

/* torchvision Bottleneck (v1.5: the stride sits on the 3x3 conv):
 * 1x1 planes -> 3x3 planes (stride) -> 1x1 4*planes, plus the identity or downsample
 * (1x1 conv stride + bn), then relu. */
static int bottleneck(pml__mb *b, const char *pre, int x, int planes, int stride, int downsample)
{
    name_buf n1, n2;
    int y = conv_bn(b, nm(n1, "%s.conv1", pre), nm(n2, "%s.bn1", pre), x, planes, 1, 1, 0);
    y = pml__mb_relu(b, nm(n1, "%s.relu1", pre), y);
    y = conv_bn(b, nm(n1, "%s.conv2", pre), nm(n2, "%s.bn2", pre), y, planes, 3, stride, 1);
    y = pml__mb_relu(b, nm(n1, "%s.relu2", pre), y);
    y = conv_bn(b, nm(n1, "%s.conv3", pre), nm(n2, "%s.bn3", pre), y, 4 * planes, 1, 1, 0);
    int id = x;
    if (downsample)
        id = conv_bn(b, nm(n1, "%s.downsample.0", pre), nm(n2, "%s.downsample.1", pre), x,
                     4 * planes, 1, stride, 0);
    y = pml__mb_add(b, nm(n1, "%s.add", pre), y, id);
    return pml__mb_relu(b, nm(n1, "%s.relu", pre), y);
}

/* torchvision.models.resnet50. */
void pml__zoo_resnet50(pml__mb *b, pml__mparams *p)
{
    static const int blocks[4] = {3, 4, 6, 3};
    int classes = pml__mp_int(b, p, "classes", 1000, 2, 1 << 16);
    int size = pml__mp_int(b, p, "size", 224, 1, 4096);
    if (b->st != PML_OK) return;
    int x = pml__mb_input(b, 3, size, size);
    x = conv_bn(b, "conv1", "bn1", x, 64, 7, 2, 3);
    x = pml__mb_relu(b, "relu", x);
    x = pml__mb_maxpool(b, "maxpool", x, 3, 2, PML_PAD_EXPLICIT, 1, 0);
    int inplanes = 64;
    name_buf n;
    for (int l = 0; l < 4; l++) {
        int planes = 64 << l;
        for (int i = 0; i < blocks[l]; i++) {
            int stride = (i == 0 && l > 0) ? 2 : 1;
            int down = i == 0 && (stride != 1 || inplanes != 4 * planes);
            x = bottleneck(b, nm(n, "layer%d.%d", l + 1, i), x, planes, stride, down);
            inplanes = 4 * planes;
        }
    }
    x = pml__mb_global_avgpool(b, "avgpool", x);
    x = pml__mb_flatten(b, "flatten", x);
    x = pml__mb_linear(b, "fc", x, classes, PML_ACT_NONE);
    pml__mb_loss(b, x);
}

/* ---------------------------------------------------------------- inception-v3 */

#define INCEPTION_BN_EPS 1e-3f

/* torchvision BasicConv2d: conv (no bias) -> batchnorm (eps 0.001) -> relu, named
 * "<name>.conv", "<name>.bn", "<name>.relu". (ph, pw): explicit padding per axis. */
static int basic_conv(pml__mb *b, const char *name, int x, int out, int kh, int kw, int s, int ph,
                      int pw)
{
    name_buf n;
    x = pml__mb_conv(b, nm(n, "%s.conv", name), x, out, kh, kw, s, s, PML_PAD_EXPLICIT, ph, pw,
                     PML_ACT_NONE, 0);
    x = bn(b, nm(n, "%s.bn", name), x, INCEPTION_BN_EPS);
    return pml__mb_relu(b, nm(n, "%s.relu", name), x);
}

/* basic_conv named "<block>.<branch>". */
static int bconv(pml__mb *b, const char *block, const char *branch, int x, int out, int kh, int kw,
                 int s, int ph, int pw)
{
    name_buf n;
    return basic_conv(b, nm(n, "%s.%s", block, branch), x, out, kh, kw, s, ph, pw);
}

/* F.avg_pool2d(x, 3, stride=1, padding=1) (count_include_pad=True) -> branch_pool conv 1x1. */
static int pool_branch(pml__mb *b, const char *block, int x, int out)
{
    name_buf n;
    x = pml__mb_avgpool(b, nm(n, "%s.avg_pool", block), x, 3, 1, PML_PAD_EXPLICIT, 1, 1);
    return bconv(b, block, "branch_pool", x, out, 1, 1, 1, 0, 0);
}

static int inception_a(pml__mb *b, const char *m, int x, int pool_features)
{
    int br[4];
    br[0] = bconv(b, m, "branch1x1", x, 64, 1, 1, 1, 0, 0);
    br[1] = bconv(b, m, "branch5x5_1", x, 48, 1, 1, 1, 0, 0);
    br[1] = bconv(b, m, "branch5x5_2", br[1], 64, 5, 5, 1, 2, 2);
    br[2] = bconv(b, m, "branch3x3dbl_1", x, 64, 1, 1, 1, 0, 0);
    br[2] = bconv(b, m, "branch3x3dbl_2", br[2], 96, 3, 3, 1, 1, 1);
    br[2] = bconv(b, m, "branch3x3dbl_3", br[2], 96, 3, 3, 1, 1, 1);
    br[3] = pool_branch(b, m, x, pool_features);
    return pml__mb_concat(b, m, 4, br);
}

static int inception_b(pml__mb *b, const char *m, int x)
{
    name_buf n;
    int br[3];
    br[0] = bconv(b, m, "branch3x3", x, 384, 3, 3, 2, 0, 0);
    br[1] = bconv(b, m, "branch3x3dbl_1", x, 64, 1, 1, 1, 0, 0);
    br[1] = bconv(b, m, "branch3x3dbl_2", br[1], 96, 3, 3, 1, 1, 1);
    br[1] = bconv(b, m, "branch3x3dbl_3", br[1], 96, 3, 3, 2, 0, 0);
    br[2] = pml__mb_maxpool(b, nm(n, "%s.max_pool", m), x, 3, 2, PML_PAD_VALID, 0, 0);
    return pml__mb_concat(b, m, 3, br);
}

/* 1x7 convs pad (0, 3), 7x1 convs pad (3, 0). */
static int inception_c(pml__mb *b, const char *m, int x, int c7)
{
    int br[4];
    br[0] = bconv(b, m, "branch1x1", x, 192, 1, 1, 1, 0, 0);
    br[1] = bconv(b, m, "branch7x7_1", x, c7, 1, 1, 1, 0, 0);
    br[1] = bconv(b, m, "branch7x7_2", br[1], c7, 1, 7, 1, 0, 3);
    br[1] = bconv(b, m, "branch7x7_3", br[1], 192, 7, 1, 1, 3, 0);
    br[2] = bconv(b, m, "branch7x7dbl_1", x, c7, 1, 1, 1, 0, 0);
    br[2] = bconv(b, m, "branch7x7dbl_2", br[2], c7, 7, 1, 1, 3, 0);
    br[2] = bconv(b, m, "branch7x7dbl_3", br[2], c7, 1, 7, 1, 0, 3);
    br[2] = bconv(b, m, "branch7x7dbl_4", br[2], c7, 7, 1, 1, 3, 0);
    br[2] = bconv(b, m, "branch7x7dbl_5", br[2], 192, 1, 7, 1, 0, 3);
    br[3] = pool_branch(b, m, x, 192);
    return pml__mb_concat(b, m, 4, br);
}

static int inception_d(pml__mb *b, const char *m, int x)
{
    name_buf n;
    int br[3];
    br[0] = bconv(b, m, "branch3x3_1", x, 192, 1, 1, 1, 0, 0);
    br[0] = bconv(b, m, "branch3x3_2", br[0], 320, 3, 3, 2, 0, 0);
    br[1] = bconv(b, m, "branch7x7x3_1", x, 192, 1, 1, 1, 0, 0);
    br[1] = bconv(b, m, "branch7x7x3_2", br[1], 192, 1, 7, 1, 0, 3);
    br[1] = bconv(b, m, "branch7x7x3_3", br[1], 192, 7, 1, 1, 3, 0);
    br[1] = bconv(b, m, "branch7x7x3_4", br[1], 192, 3, 3, 2, 0, 0);
    br[2] = pml__mb_maxpool(b, nm(n, "%s.max_pool", m), x, 3, 2, PML_PAD_VALID, 0, 0);
    return pml__mb_concat(b, m, 3, br);
}

/* The split branches (1x3 pad (0,1) and 3x1 pad (1,0)) are concatenated first, as torchvision's
 * forward does ("<block>.branch3x3", "<block>.branch3x3dbl"), then the four branches. */
static int inception_e(pml__mb *b, const char *m, int x)
{
    name_buf n;
    int br[4], sp[2];
    br[0] = bconv(b, m, "branch1x1", x, 320, 1, 1, 1, 0, 0);
    int t = bconv(b, m, "branch3x3_1", x, 384, 1, 1, 1, 0, 0);
    sp[0] = bconv(b, m, "branch3x3_2a", t, 384, 1, 3, 1, 0, 1);
    sp[1] = bconv(b, m, "branch3x3_2b", t, 384, 3, 1, 1, 1, 0);
    br[1] = pml__mb_concat(b, nm(n, "%s.branch3x3", m), 2, sp);
    t = bconv(b, m, "branch3x3dbl_1", x, 448, 1, 1, 1, 0, 0);
    t = bconv(b, m, "branch3x3dbl_2", t, 384, 3, 3, 1, 1, 1);
    sp[0] = bconv(b, m, "branch3x3dbl_3a", t, 384, 1, 3, 1, 0, 1);
    sp[1] = bconv(b, m, "branch3x3dbl_3b", t, 384, 3, 1, 1, 1, 0);
    br[2] = pml__mb_concat(b, nm(n, "%s.branch3x3dbl", m), 2, sp);
    br[3] = pool_branch(b, m, x, 192);
    return pml__mb_concat(b, m, 4, br);
}

/* torchvision.models.inception_v3(aux_logits=False); transform_input only rescales the input and
 * has no parameters. Input 3 x size x size, 299 by default (75 is the smallest that fits). */
void pml__zoo_inception_v3(pml__mb *b, pml__mparams *p)
{
    int classes = pml__mp_int(b, p, "classes", 1000, 2, 1 << 16);
    int size = pml__mp_int(b, p, "size", 299, 75, 4096);
    if (b->st != PML_OK) return;
    int x = pml__mb_input(b, 3, size, size);
    x = basic_conv(b, "Conv2d_1a_3x3", x, 32, 3, 3, 2, 0, 0);
    x = basic_conv(b, "Conv2d_2a_3x3", x, 32, 3, 3, 1, 0, 0);
    x = basic_conv(b, "Conv2d_2b_3x3", x, 64, 3, 3, 1, 1, 1);
    x = pml__mb_maxpool(b, "maxpool1", x, 3, 2, PML_PAD_VALID, 0, 0);
    x = basic_conv(b, "Conv2d_3b_1x1", x, 80, 1, 1, 1, 0, 0);
    x = basic_conv(b, "Conv2d_4a_3x3", x, 192, 3, 3, 1, 0, 0);
    x = pml__mb_maxpool(b, "maxpool2", x, 3, 2, PML_PAD_VALID, 0, 0);
    x = inception_a(b, "Mixed_5b", x, 32);
    x = inception_a(b, "Mixed_5c", x, 64);
    x = inception_a(b, "Mixed_5d", x, 64);
    x = inception_b(b, "Mixed_6a", x);
    x = inception_c(b, "Mixed_6b", x, 128);
    x = inception_c(b, "Mixed_6c", x, 160);
    x = inception_c(b, "Mixed_6d", x, 160);
    x = inception_c(b, "Mixed_6e", x, 192);
    x = inception_d(b, "Mixed_7a", x);
    x = inception_e(b, "Mixed_7b", x);
    x = inception_e(b, "Mixed_7c", x);
    x = pml__mb_global_avgpool(b, "avgpool", x);
    x = pml__mb_dropout(b, "dropout", x, 0.5f);
    x = pml__mb_flatten(b, "flatten", x);
    x = pml__mb_linear(b, "fc", x, classes, PML_ACT_NONE);
    pml__mb_loss(b, x);
}
