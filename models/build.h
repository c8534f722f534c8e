/* pml — internal: helpers for writing zoo builders. Errors are sticky: once a call fails every
 * later call returns -1 and pml__mb_finish() reports the first failure. */
#ifndef PML_MODELS_BUILD_H
#define PML_MODELS_BUILD_H

#include "ops/ops.h"

typedef struct pml__mb {
    pml_graph *g;
    pml_status st;
} pml__mb;

/* Parsed "k=v" model parameters. */
#define PML__MAX_MPARAMS 16
typedef struct pml__mparams {
    const char *model;
    int n;
    char key[PML__MAX_MPARAMS][32];
    char val[PML__MAX_MPARAMS][32];
    bool used[PML__MAX_MPARAMS];
} pml__mparams;

/** \return the integer value of \p key (default \p def) in [lo, hi]; errors are sticky in b. */
int pml__mp_int(pml__mb *b, pml__mparams *p, const char *key, int def, int lo, int hi);
float pml__mp_float(pml__mb *b, pml__mparams *p, const char *key, float def, float lo, float hi);

int pml__mb_input(pml__mb *b, int c, int h, int w);
/* pad: PML_PAD_SAME / PML_PAD_VALID, or PML_PAD_EXPLICIT with (ph, pw) */
int pml__mb_conv(pml__mb *b, const char *name, int in, int out, int kh, int kw, int sh, int sw,
                 int pad_mode, int ph, int pw, int act, int bias);
int pml__mb_linear(pml__mb *b, const char *name, int in, int out, int act);
int pml__mb_maxpool(pml__mb *b, const char *name, int in, int k, int s, int pad_mode, int p,
                    int ceil_mode);
int pml__mb_avgpool(pml__mb *b, const char *name, int in, int k, int s, int pad_mode, int p,
                    int count_pad);
int pml__mb_global_avgpool(pml__mb *b, const char *name, int in);
int pml__mb_relu(pml__mb *b, const char *name, int in);
int pml__mb_bn(pml__mb *b, const char *name, int in, float eps);
int pml__mb_add(pml__mb *b, const char *name, int x, int y);
int pml__mb_concat(pml__mb *b, const char *name, int n, const int *in);
int pml__mb_flatten(pml__mb *b, const char *name, int in);
int pml__mb_dropout(pml__mb *b, const char *name, int in, float rate);
int pml__mb_loss(pml__mb *b, int logits);

/* Builders: each fills b->g and returns nothing; errors are sticky in b. */
typedef void (*pml__zoo_fn)(pml__mb *b, pml__mparams *p);
void pml__zoo_alexnet(pml__mb *b, pml__mparams *p);
void pml__zoo_vgg16(pml__mb *b, pml__mparams *p);
void pml__zoo_resnet50(pml__mb *b, pml__mparams *p);
void pml__zoo_inception_v3(pml__mb *b, pml__mparams *p);

#endif
