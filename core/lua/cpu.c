/*
 * cpu.c: the CPU budget watchdog (see lrt_cpu.h for the mechanism).
 *
 * Threads: `enter`, `leave`, `forget`, the hook and the signal handler run
 * on the loop thread; the watchdog thread only reads `running`, `clock`,
 * `deadline_ns` and `loop` under `mu` and sends a signal (SIGRTMIN+4) to
 * the loop thread, whose handler calls lua_sethook on the VM that runs
 * there (`sig_L`, written by the loop thread only). No thread but the loop
 * thread ever touches a lua_State.
 *
 * A hook can arrive late (the watchdog saw the old slice): it re-reads the
 * clock and removes itself when the current slice is still within budget.
 * Once it fires for real it stays installed until `leave`, so code that
 * catches the error with pcall is stopped again at its next instruction.
 *
 * The LuaJIT profiler exists once per process; it follows the VM that runs,
 * so switching between bundle VMs restarts it (and flushes both VMs'
 * compiled traces). A single busy bundle keeps its traces.
 */
#include <lauxlib.h>
#include <luajit.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "lrt_cpu.h"

#define WATCHDOG_TICK_NS 5000000 /* 5 ms */

struct kuala__lua_cpu_s {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  clockid_t clock;     /* CPU clock of the loop thread */
  lua_State *running;  /* thread running Lua now, NULL when none */
  int64_t deadline_ns; /* on `clock` */
  int hooked;
  int tripped;
  kuala__lua_cpu_mem_cb over_memory; /* asked by the hook; may be NULL */
  pthread_t loop;                    /* the thread that runs Lua */
  lua_State *volatile sig_L;         /* what the signal handler hooks */
};

/* The slice running on this thread (for the hook). */
static __thread kuala__lua_cpu_t *active;
/* The VM the LuaJIT profiler is attached to (loop thread only). */
static lua_State *profiled;

static int64_t clock_ns(clockid_t c)
{
  struct timespec ts;
  clock_gettime(c, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Raise "file:line: what" for the running function (luaL_error would
 * prefix the caller's position instead). */
static void raise_here(lua_State *L, const char *what)
{
  lua_Debug here;
  if (lua_getstack(L, 0, &here) && lua_getinfo(L, "Sl", &here) && here.currentline > 0) {
    lua_pushfstring(L, "%s:%d: %s", here.short_src, here.currentline, what);
  } else {
    lua_pushstring(L, what);
  }
  lua_error(L);
}

static void cpu_hook(lua_State *L, lua_Debug *ar)
{
  (void)ar;
  kuala__lua_cpu_t *cpu = active;
  if (cpu == NULL) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (cpu->running && cpu->over_memory && cpu->over_memory(L)) {
    raise_here(L, "memory limit exceeded");
  }
  if (cpu->running == NULL || clock_ns(CLOCK_THREAD_CPUTIME_ID) < cpu->deadline_ns) {
    pthread_mutex_lock(&cpu->mu);
    lua_sethook(L, NULL, 0, 0);
    cpu->hooked = 0;
    pthread_mutex_unlock(&cpu->mu);
    return;
  }
  cpu->tripped = 1;
  raise_here(L, "CPU budget exceeded");
}

/* Runs on the loop thread, interrupting Lua: the case LuaJIT documents
 * lua_sethook as safe for. It only reads what the loop thread itself wrote. */
static void on_signal(int sig)
{
  (void)sig;
  kuala__lua_cpu_t *cpu = active;
  lua_State *L = cpu ? cpu->sig_L : NULL;
  if (L)
    lua_sethook(L, cpu_hook, LUA_MASKCOUNT, 1);
}

static int watchdog_signal;

static void install_signal(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  watchdog_signal = SIGRTMIN + 4;
  sigaction(watchdog_signal, &sa, NULL);
}

static void *watchdog(void *arg)
{
  kuala__lua_cpu_t *cpu = arg;
  pthread_mutex_lock(&cpu->mu);
  while (!cpu->stop) {
    if (cpu->running && !cpu->hooked && clock_ns(cpu->clock) >= cpu->deadline_ns) {
      /* The loop thread hooks its own VM from the signal handler: this
       * thread never touches a lua_State. */
      pthread_kill(cpu->loop, watchdog_signal);
      cpu->hooked = 1;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += WATCHDOG_TICK_NS;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&cpu->cv, &cpu->mu, &until);
  }
  pthread_mutex_unlock(&cpu->mu);
  return NULL;
}

int kuala__lua_cpu_new(kuala__lua_cpu_t **out, kuala__lua_cpu_mem_cb over_memory)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, install_signal);
  kuala__lua_cpu_t *cpu = kuala_calloc(1, sizeof *cpu);
  cpu->over_memory = over_memory;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&cpu->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&cpu->mu, NULL);
  if (pthread_create(&cpu->thread, NULL, watchdog, cpu) != 0) {
    pthread_cond_destroy(&cpu->cv);
    pthread_mutex_destroy(&cpu->mu);
    kuala_free(cpu);
    return KUALA_EAGAIN;
  }
  *out = cpu;
  return 0;
}

void kuala__lua_cpu_free(kuala__lua_cpu_t *cpu)
{
  if (!cpu)
    return;
  pthread_mutex_lock(&cpu->mu);
  cpu->stop = 1;
  pthread_cond_signal(&cpu->cv);
  pthread_mutex_unlock(&cpu->mu);
  pthread_join(cpu->thread, NULL);
  pthread_cond_destroy(&cpu->cv);
  pthread_mutex_destroy(&cpu->mu);
  if (active == cpu)
    active = NULL;
  kuala_free(cpu);
}

static void profile_cb(void *data, lua_State *L, int samples, int vmstate)
{
  /* Nothing to record: the profiler is here for the hook-mask checks it
   * makes the JIT compile into traces. */
  (void)data, (void)L, (void)samples, (void)vmstate;
}

int64_t kuala__lua_cpu_enter(kuala__lua_cpu_t *cpu, lua_State *main, lua_State *co,
                             int64_t budget_ns)
{
  if (profiled != main) {
    if (profiled)
      luaJIT_profile_stop(profiled);
    luaJIT_profile_start(main, "li10", profile_cb, NULL);
    profiled = main;
  }
  clockid_t clk;
  if (pthread_getcpuclockid(pthread_self(), &clk) != 0)
    clk = CLOCK_MONOTONIC;
  int64_t now = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  pthread_mutex_lock(&cpu->mu);
  cpu->loop = pthread_self();
  cpu->clock = clk;
  cpu->running = co;
  cpu->deadline_ns = now + budget_ns;
  cpu->hooked = 0;
  cpu->tripped = 0;
  pthread_mutex_unlock(&cpu->mu);
  active = cpu;
  cpu->sig_L = co;
  return now;
}

int64_t kuala__lua_cpu_leave(kuala__lua_cpu_t *cpu, lua_State *co, int *tripped)
{
  cpu->sig_L = NULL; /* first: a late signal is then a no-op */
  pthread_mutex_lock(&cpu->mu);
  if (cpu->hooked)
    lua_sethook(co, NULL, 0, 0);
  cpu->hooked = 0;
  cpu->running = NULL;
  *tripped = cpu->tripped;
  cpu->tripped = 0;
  pthread_mutex_unlock(&cpu->mu);
  return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

void kuala__lua_cpu_poke(kuala__lua_cpu_t *cpu, lua_State *L)
{
  pthread_mutex_lock(&cpu->mu);
  if (cpu->running) {
    lua_sethook(L, cpu_hook, LUA_MASKCOUNT, 1);
    cpu->hooked = 1;
  }
  pthread_mutex_unlock(&cpu->mu);
}

void kuala__lua_cpu_forget(lua_State *main)
{
  if (profiled == main) {
    luaJIT_profile_stop(main);
    profiled = NULL;
  }
}
