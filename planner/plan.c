/* pml — planner: plan (being written) */
#include "planner.h"
