/* pml — stub (to be written) */
#include "build.h"
void pml__zoo_alexnet(pml__mb *b, pml__mparams *p) { b->st = pml_fail(PML_EUNSUPPORTED, "not yet"); }
void pml__zoo_vgg16(pml__mb *b, pml__mparams *p) { b->st = pml_fail(PML_EUNSUPPORTED, "not yet"); }
void pml__zoo_resnet50(pml__mb *b, pml__mparams *p) { b->st = pml_fail(PML_EUNSUPPORTED, "not yet"); }
void pml__zoo_inception_v3(pml__mb *b, pml__mparams *p) { b->st = pml_fail(PML_EUNSUPPORTED, "not yet"); }
