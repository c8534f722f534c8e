/* pml — internal: ONNX TensorProto files (models/onnx.c) for models/tensor.c. */
#ifndef PML_MODELS_ONNX_INT_H
#define PML_MODELS_ONNX_INT_H

#include "models.h"

/** The elements of a tensor of t->dims[0..rank) into *count; refuses a negative dimension and
 * more than PML_TENSOR_MAX_BYTES at \p esize bytes an element, naming \p src (and the tensor
 * \p name, if any). */
pml_status pml__tensor_count(const pml_tensor *t, size_t esize, const char *src,
                              const char *name, size_t *count);
/** Sets t->n and allocates t->data for t->dims[0..rank). \return PML_OK or an error naming
 * \p src. */
pml_status pml__tensor_alloc(pml_tensor *t, const char *src);
/** The ONNX element type \p t is written as (float unless t->type is an integer type pml
 * writes: uint8, int8, int16, int32, int64, bool), its size in *esize. */
int pml__tensor_wtype(const pml_tensor *t, size_t *esize);
/** t's values as written (pml__tensor_wtype), little-endian, malloc'd; NULL when out of memory. */
unsigned char *pml__tensor_bytes(const pml_tensor *t);
/** Reads a TensorProto file. */
pml_status pml__pb_tensor_read(const char *path, pml_tensor *t);
/** Writes \p t as a TensorProto of its type (pml__tensor_wtype), atomically. */
pml_status pml__pb_tensor_write(const char *path, const pml_tensor *t);

#endif
