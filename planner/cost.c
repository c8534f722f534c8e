/* pml — planner: cost (being written) */
#include "planner.h"
