/* pml — BLAS set-up. */
#include "ops.h"

#include <cblas.h>

void pml_blas_single_thread(void) { openblas_set_num_threads(1); }
