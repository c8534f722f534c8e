/* pml — planner: sim (being written) */
#include "planner.h"
