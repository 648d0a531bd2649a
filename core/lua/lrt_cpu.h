/*
 * lrt_cpu.h: the CPU budget and the time slices of code running in a
 * bundle VM.
 *
 * The loop thread brackets every run of Lua code with enter/leave. A
 * watchdog thread compares the loop thread's CPU clock with the end of the
 * run's slice (or of its budget); once it is passed it sends the loop
 * thread a signal whose handler installs a count hook (lua_sethook is safe
 * to call from a signal handler). The hook then:
 *  - at the end of a slice, suspends a sliceable run with lua_yield (leave
 *    reports KUALA__CPU_SLICED; the runtime queues the reconcile and
 *    resumes it later with a fresh slice);
 *  - past the budget, suspends the run the same way where it can (leave
 *    reports KUALA__CPU_TRIPPED and the caller must never resume it) and
 *    raises "CPU budget exceeded" everywhere else, at every instruction.
 * Compiled code never runs count hooks, so each VM being entered also gets
 * LuaJIT's sampling profiler attached in line mode: traces recorded under
 * it check the hook mask at every new source line and leave machine code
 * when the profiler's timer (SIGPROF) marks it. See docs/lua-runtime.md
 * for the trade-offs.
 */
#ifndef KUALA_LUA_LRT_CPU_H
#define KUALA_LUA_LRT_CPU_H

#include <lua.h>
#include <stdint.h>

typedef struct kuala__lua_cpu_s kuala__lua_cpu_t;

/* Why a run ended (bits of *why in kuala__lua_cpu_leave). */
#define KUALA__CPU_TRIPPED 1 /* the budget is exceeded */
#define KUALA__CPU_SLICED 2  /* suspended at the end of its slice */

/* Asked by the hook (loop thread, safe to call the Lua API): return 1 when
 * the VM of L is over its memory cap and the hook must raise. */
typedef int (*kuala__lua_cpu_mem_cb)(lua_State *L);

int kuala__lua_cpu_new(kuala__lua_cpu_t **out, kuala__lua_cpu_mem_cb over_memory);
void kuala__lua_cpu_free(kuala__lua_cpu_t *cpu);
/* Start a run of `co` (a thread of the VM whose main state is `main`) with
 * `budget_ns` CPU nanoseconds left. `slice_ns` > 0 makes the run
 * sliceable: `co` must be a coroutine resumed with lua_resume, and the
 * hook may suspend it after `slice_ns`. */
void kuala__lua_cpu_enter(kuala__lua_cpu_t *cpu, lua_State *main, lua_State *co, int64_t budget_ns,
                          int64_t slice_ns);
/* End the run: removes the hook, sets *why (KUALA__CPU_* bits) and returns
 * the CPU nanoseconds the run is charged: its CPU time, or, for a short
 * run whose clock nobody read, its wall time (never less; see cpu.c). */
int64_t kuala__lua_cpu_leave(kuala__lua_cpu_t *cpu, lua_State *co, int *why);
/* Install the hook now (from the loop thread, e.g. inside the allocator)
 * so that the next VM instruction asks `over_memory`. No-op outside a
 * run. */
void kuala__lua_cpu_poke(kuala__lua_cpu_t *cpu, lua_State *L);
/* For C functions that may run long (the pattern matcher): raise "CPU
 * budget exceeded" when the current run is past its budget. Loop thread.
 * Returns 1 inside a run, 0 outside (where it does nothing). */
int kuala__lua_cpu_check(lua_State *L);
/* The VM `main` is about to close: detach the profiler if it is attached. */
void kuala__lua_cpu_forget(lua_State *main);

#endif /* KUALA_LUA_LRT_CPU_H */
