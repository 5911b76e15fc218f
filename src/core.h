/* core.h: the headers of the core modules at once, for the layers above the core (I/O,
 * channels, sync) that use most of them. Modules of the core itself include only what
 * they call. */
#ifndef WEFT_CORE_H
#define WEFT_CORE_H

#include "internal.h"
#include "worker.h"
#include "runtime.h"
#include "task.h"
#include "wake.h"
#include "scheduler.h"
#include "timer.h"
#include "stack.h"

#endif
