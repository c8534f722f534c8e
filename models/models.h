/* pml — models: the model zoo (parameterised builders). */
#ifndef PML_MODELS_H
#define PML_MODELS_H

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Builds a model from a zoo spec such as "mlp", "mlp:units=512,layers=8" or "flowers-cnn:size=64"
 * into \p g (initialised here, finalised on success). Errors name the model and parameter.
 * \return PML_OK or an error; on error \p g is empty. */
pml_status pml_model_build(const char *spec, pml_graph *g);

typedef struct pml_zoo_entry {
    const char *name;
    const char *summary;   /* one line */
    const char *params;    /* "units=128 layers=1 classes=10" (defaults) */
} pml_zoo_entry;

/** \return the zoo table; *count receives its length. */
const pml_zoo_entry *pml_zoo_list(int *count);

#ifdef __cplusplus
}
#endif
#endif
