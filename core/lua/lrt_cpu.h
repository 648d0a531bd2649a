/*
 * lrt_cpu.h: the CPU budget of code running in a bundle VM.
 *
 * The loop thread brackets every run of Lua code with enter/leave. A
 * watchdog thread compares the loop thread's CPU clock with the slice's
 * budget; once it is exceeded it sends the loop thread a signal whose
 * handler installs a count hook (lua_sethook is safe to call from a signal
 * handler) that raises an error at the next VM instruction.
 * Compiled code never runs count hooks, so each VM being entered also gets
 * LuaJIT's sampling profiler attached in line mode: traces recorded under
 * it check the hook mask at every new source line and leave machine code
 * when the profiler's timer (SIGPROF, every 10 ms of CPU) marks it. See
 * docs/lua-runtime.md for the trade-offs.
 */
#ifndef KUALA_LUA_LRT_CPU_H
#define KUALA_LUA_LRT_CPU_H

#include <lua.h>
#include <stdint.h>

typedef struct kuala__lua_cpu_s kuala__lua_cpu_t;

/* Asked by the hook (loop thread, safe to call the Lua API): return 1 when
 * the VM of L is over its memory cap and the hook must raise. */
typedef int (*kuala__lua_cpu_mem_cb)(lua_State *L);

int kuala__lua_cpu_new(kuala__lua_cpu_t **out, kuala__lua_cpu_mem_cb over_memory);
void kuala__lua_cpu_free(kuala__lua_cpu_t *cpu);
/* Start a slice of `budget_ns` CPU nanoseconds in which `co` (a thread of
 * the VM whose main state is `main`) runs. Returns the loop thread's CPU
 * clock (ns) at the start. */
int64_t kuala__lua_cpu_enter(kuala__lua_cpu_t *cpu, lua_State *main, lua_State *co,
                             int64_t budget_ns);
/* End the slice: removes the hook, returns the CPU clock at the end and sets
 * *tripped when the budget stopped the code. */
int64_t kuala__lua_cpu_leave(kuala__lua_cpu_t *cpu, lua_State *co, int *tripped);
/* Install the hook now (from the loop thread, e.g. inside the allocator)
 * so that the next VM instruction asks `over_memory`. No-op outside a
 * slice. */
void kuala__lua_cpu_poke(kuala__lua_cpu_t *cpu, lua_State *L);
/* The VM `main` is about to close: detach the profiler if it is attached. */
void kuala__lua_cpu_forget(lua_State *main);

#endif /* KUALA_LUA_LRT_CPU_H */
