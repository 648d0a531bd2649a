/*
 * mem.h: process-wide heap policy for the `kuala` command.
 *
 * A library should not change how its host's malloc behaves, so nothing here
 * happens unless the program opts in with kuala__mem_tune() (`kuala run` and
 * `kuala dev` do). Then:
 *   - glibc fastbins are turned off (M_MXFAST 0): freeing a large buffer
 *     (a list page body, a parsed page) no longer runs malloc_consolidate
 *     over every fastbin chunk; tcache still serves the small, hot sizes;
 *   - kuala__mem_release() gives free heap pages back to the system
 *     (malloc_trim), called once a big list has been stored and once a
 *     controller's first wave of reconciles after a sync has drained, the
 *     two moments that leave the most garbage behind (docs/engine.md).
 * On other C libraries both are no-ops. Single-threaded use (the loop).
 */
#ifndef KUALA_MEM_H
#define KUALA_MEM_H

#include <stddef.h>

void kuala__mem_tune(void);
/* malloc_trim(0) when tuned; `why` is logged at debug with the RSS
 * before and after. */
void kuala__mem_release(const char *why);
/* How many releases ran (tests). */
size_t kuala__mem_releases(void);

#endif /* KUALA_MEM_H */
