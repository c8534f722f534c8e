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
/** Reads a TensorProto file. */
pml_status pml__pb_tensor_read(const char *path, pml_tensor *t);
/** Writes \p t as a float TensorProto, atomically. */
pml_status pml__pb_tensor_write(const char *path, const pml_tensor *t);

#endif
