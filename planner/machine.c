/* pml — planner: machine (being written) */
#include "planner.h"
