/* pml — planner: taskgraph (being written) */
#include "planner.h"
