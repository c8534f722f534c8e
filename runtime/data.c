/* pml — stub (to be written) */
#include "runtime.h"
