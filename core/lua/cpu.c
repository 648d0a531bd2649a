/*
 * cpu.c: the CPU budget watchdog and the time slices of reconciles (see
 * lrt_cpu.h for the mechanism).
 *
 * Threads: `enter`, `leave`, `forget`, `check`, the hook and the signal
 * handler run on the loop thread; the watchdog thread only reads
 * `running`, `clock`, `enter_mono_ns`, `budget_ns`, `slice_end_rel` and
 * `loop` under `mu` (and may fix `base_ns`, below), sends a signal
 * (SIGRTMIN+4) to the loop thread, whose handler calls lua_sethook on the
 * VM that runs there (`sig_L`, written by the loop thread only), and swaps
 * the SIGTERM/SIGINT handlers while the loop is wedged (below). No thread
 * but the loop thread ever touches a lua_State.
 *
 * The run's CPU clock is read lazily. The thread CPU clock is a system call
 * (about 1.3 us here, against 25 ns for the vDSO's CLOCK_MONOTONIC), and
 * two of them were a third of a no-op reconcile. `enter` notes the
 * monotonic clock only; `base_ns`, the loop thread's CPU clock at the start
 * of the run, is fixed by the first one that needs it (the watchdog, the
 * tick, the hook, `check`): its CPU clock now minus the wall time since
 * `enter`, a lower bound of the true start because a thread cannot use
 * more CPU than wall time. Deadlines and slice ends are offsets from it.
 * `leave` reads the CPU clock only when the base was fixed; a run nobody
 * looked at (shorter than the tick and the watchdog's sleep) is charged
 * its wall time, again never less than its CPU time. Both errors charge
 * too much, never too little, by at most the time the loop thread was off
 * the CPU before the first look.
 *
 * A hook can arrive late (the watchdog saw the old slice): it re-reads the
 * clock and removes itself when the current slice is still within its
 * time. Once the budget is exceeded the hook stays installed until
 * `leave`: where the run can yield it yields (the runtime then drops the
 * coroutine without resuming it, so no Lua code of it runs again, error
 * handlers included); elsewhere it raises at every instruction, so code
 * that catches the error with pcall is stopped again at its next one.
 *
 * Wedged loop: if the loop thread's CPU clock passes the budget by
 * WEDGE_NS although the hook was installed (some C code that never
 * returns to the VM), the watchdog logs it and installs plain SIGTERM and
 * SIGINT handlers that _exit the process at once, because the uv loop,
 * where the engine's own signal handling runs, can no longer see them. It
 * puts the previous handlers back when the run ends.
 *
 * The LuaJIT profiler exists once per process; it follows the VM that runs,
 * so switching between bundle VMs restarts it (and flushes both VMs'
 * compiled traces). A single busy bundle keeps its traces.
 */
#include <lauxlib.h>
#include <luajit.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "lrt_cpu.h"

#define WATCHDOG_TICK_NS 5000000 /* 5 ms while nothing runs */
#define WATCHDOG_MIN_NS 500000   /* 0.5 ms: shortest sleep while Lua runs */
#define WEDGE_NS 2000000000LL    /* 2 s of CPU past the budget */
#define TICK_NS 1000000          /* 1 ms of loop-thread CPU: slice-end check */
#define RETRY_NS 1000000         /* 1 ms: next try to yield where it could not */
/* Profiler line mode, timer every 2 ms of CPU: how soon compiled code
 * leaves its trace once the hook is set. */
#define PROFILE_MODE "li2"

struct kuala__lua_cpu_s {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  clockid_t clock;       /* CPU clock of the loop thread */
  lua_State *running;    /* thread running Lua now, NULL when none */
  int64_t enter_mono_ns; /* CLOCK_MONOTONIC at `enter` */
  int64_t base_ns;       /* CPU clock at the start, BASE_UNSET until needed */
  int64_t budget_ns;     /* end of the budget, from base_ns */
  int64_t slice_end_rel; /* end of the slice from base_ns (<= budget_ns) */
  int sliceable;         /* the run may be suspended at the end of its slice */
  int hooked;
  int tripped; /* the budget is exceeded (the hook saw it) */
  int sliced;  /* the hook yielded at the end of the slice */
  int wedged;  /* the fallback signal handlers are installed */
  struct sigaction old_term, old_int;
  kuala__lua_cpu_mem_cb over_memory; /* asked by the hook; may be NULL */
  timer_t tick;                      /* CPU-time timer of the loop thread */
  int has_tick;
  pthread_t loop;            /* the thread that runs Lua */
  lua_State *volatile sig_L; /* what the signal handler hooks */
};

/* The slice running on this thread (for the hook). */
static __thread kuala__lua_cpu_t *active;
/* The VM the LuaJIT profiler is attached to (loop thread only). */
static lua_State *profiled;

#define BASE_UNSET INT64_MIN

static int64_t clock_ns(clockid_t c)
{
  struct timespec ts;
  clock_gettime(c, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The CPU clock at the start of the current run, fixed on first use from
 * `cpu_now`, a reading of the loop thread's CPU clock taken just now. Lock
 * free (the signal handler calls it); the watchdog and the loop thread may
 * race to fix it, and the first one wins. */
static int64_t run_base(kuala__lua_cpu_t *cpu, int64_t cpu_now)
{
  int64_t base = __atomic_load_n(&cpu->base_ns, __ATOMIC_ACQUIRE);
  if (base != BASE_UNSET)
    return base;
  int64_t wall = clock_ns(CLOCK_MONOTONIC) - cpu->enter_mono_ns;
  int64_t guess = cpu_now - (wall > 0 ? wall : 0);
  if (__atomic_compare_exchange_n(&cpu->base_ns, &base, guess, 0, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE))
    return guess;
  return base; /* fixed meanwhile: the failed exchange loaded it */
}

/* Raise "file:line: what" for the innermost Lua function running
 * (luaL_error would prefix the caller's position instead; from inside a C
 * function such as the pattern matcher, that is its Lua caller). */
static void raise_here(lua_State *L, const char *what)
{
  lua_Debug here;
  for (int level = 0; level < 4 && lua_getstack(L, level, &here); level++) {
    if (lua_getinfo(L, "Sl", &here) && here.currentline > 0) {
      lua_pushfstring(L, "%s:%d: %s", here.short_src, here.currentline, what);
      lua_error(L);
    }
  }
  lua_pushstring(L, what);
  lua_error(L);
}

/* The hook may suspend L: the run is sliceable, L is the coroutine the
 * runtime resumed (not one the bundle resumed itself, whose resumer would
 * take the yield for its own) and no C call sits between it and the
 * resume. */
static int can_yield(kuala__lua_cpu_t *cpu, lua_State *L)
{
  return cpu->sliceable && L == cpu->running && lua_isyieldable(L);
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
  /* `now` is the CPU time since the start of the run. */
  int64_t now = 0;
  if (cpu->running) {
    int64_t clk = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    now = clk - run_base(cpu, clk);
  }
  if (cpu->running && (cpu->tripped || now >= cpu->budget_ns)) {
    cpu->tripped = 1;
    if (can_yield(cpu, L)) {
      lua_yield(L, 0); /* does not return: the runtime ends the reconcile */
      return;
    }
    raise_here(L, "CPU budget exceeded");
  }
  if (cpu->running && cpu->sliceable && now >= cpu->slice_end_rel) {
    if (can_yield(cpu, L)) {
      cpu->sliced = 1;
      lua_yield(L, 0);
      return;
    }
    /* Inside a C call or a nested coroutine: the watchdog tries again a
     * little later. (A count hook with a larger count would not do: compiled
     * code runs only a few instructions in the interpreter after each
     * profiler tick, so the count would never run out.) */
    pthread_mutex_lock(&cpu->mu);
    lua_sethook(L, NULL, 0, 0);
    cpu->hooked = 0;
    cpu->slice_end_rel = now + RETRY_NS < cpu->budget_ns ? now + RETRY_NS : cpu->budget_ns;
    pthread_mutex_unlock(&cpu->mu);
    return;
  }
  pthread_mutex_lock(&cpu->mu);
  lua_sethook(L, NULL, 0, 0);
  cpu->hooked = 0;
  pthread_mutex_unlock(&cpu->mu);
}

/* Runs on the loop thread, interrupting Lua: the case LuaJIT documents
 * lua_sethook as safe for. It only reads what the loop thread itself wrote. */
static void on_signal(int sig)
{
  (void)sig;
  kuala__lua_cpu_t *cpu = active;
  lua_State *L = cpu ? cpu->sig_L : NULL;
  /* From the tick timer the slice may not be over yet (clock_gettime is
   * async-signal-safe, run_base lock free; slice_end_rel is written by this
   * thread only). */
  if (L) {
    int64_t clk = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    if (clk - run_base(cpu, clk) >= cpu->slice_end_rel) {
      lua_sethook(L, cpu_hook, LUA_MASKCOUNT, 1);
      /* Compiled code sees the hook only once the profiler's SIGPROF has
       * marked the VM. CPU-time timers fire on scheduler ticks (4 ms at
       * HZ=250), and that signal tended to come a whole tick after this
       * one: slices of 3 ms took 8 ms. Raising it now makes the trace leave
       * at its next line (raise is async-signal-safe; the profiler's
       * handler only sets a flag in the VM, and its callback is a no-op). */
      raise(SIGPROF);
    }
  }
}

/* SIGTERM/SIGINT while the loop is wedged: nothing else can act on them. */
static void die_now(int sig)
{
  static const char msg[] =
      "kuala: signal received while a bundle holds the event loop; "
      "exiting at once\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(128 + sig);
}

static int watchdog_signal;

/* SIGPROF outside the profiler: nothing to do. */
static void ignore_prof(int sig)
{
  (void)sig;
}

static void install_signal(void)
{
  /* luaJIT_profile_stop puts back the SIGPROF handler it found. With the
   * default one (terminate), a SIGPROF already on its way when the profiler
   * moves to another VM, which happens at every switch between bundles,
   * would kill the process ("Profiling timer expired"). A no-op handler
   * underneath makes such a late signal harmless. */
  struct sigaction prof;
  if (sigaction(SIGPROF, NULL, &prof) == 0 && prof.sa_handler == SIG_DFL &&
      !(prof.sa_flags & SA_SIGINFO)) {
    memset(&prof, 0, sizeof prof);
    prof.sa_handler = ignore_prof;
    prof.sa_flags = SA_RESTART;
    sigemptyset(&prof.sa_mask);
    sigaction(SIGPROF, &prof, NULL);
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  watchdog_signal = SIGRTMIN + 4;
  sigaction(watchdog_signal, &sa, NULL);
}

/* Watchdog thread, under cpu->mu. */
static void wedge_check(kuala__lua_cpu_t *cpu, int64_t now)
{
  int wedged = cpu->running && cpu->hooked && now >= cpu->budget_ns + WEDGE_NS;
  if (wedged && !cpu->wedged) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = die_now;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &cpu->old_term);
    sigaction(SIGINT, &sa, &cpu->old_int);
    cpu->wedged = 1;
    /* The logger belongs to the loop thread: write the line directly. */
    static const char msg[] =
        "kuala: a bundle has run 2 s past its CPU budget inside code the "
        "budget cannot interrupt; SIGTERM/SIGINT now exit the process at "
        "once\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
  } else if (!cpu->running && cpu->wedged) {
    sigaction(SIGTERM, &cpu->old_term, NULL);
    sigaction(SIGINT, &cpu->old_int, NULL);
    cpu->wedged = 0;
  }
}

static void *watchdog(void *arg)
{
  kuala__lua_cpu_t *cpu = arg;
  pthread_mutex_lock(&cpu->mu);
  while (!cpu->stop) {
    int64_t sleep_ns = WATCHDOG_TICK_NS;
    if (cpu->running) {
      int64_t clk = clock_ns(cpu->clock);
      int64_t now = clk - run_base(cpu, clk); /* CPU time of the run */
      if (!cpu->hooked && now >= cpu->slice_end_rel) {
        /* The loop thread hooks its own VM from the signal handler: this
         * thread never touches a lua_State. */
        pthread_kill(cpu->loop, watchdog_signal);
        cpu->hooked = 1;
      }
      wedge_check(cpu, now);
      /* CPU time never runs faster than the wall clock: sleeping for what
       * is left of the slice cannot oversleep it. */
      int64_t left = (cpu->hooked ? cpu->budget_ns : cpu->slice_end_rel) - now;
      if (left < sleep_ns)
        sleep_ns = left < WATCHDOG_MIN_NS ? WATCHDOG_MIN_NS : left;
    } else if (cpu->wedged) {
      wedge_check(cpu, 0);
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += sleep_ns;
    while (until.tv_nsec >= 1000000000) {
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
  if (cpu->has_tick)
    timer_delete(cpu->tick);
  if (cpu->wedged) {
    sigaction(SIGTERM, &cpu->old_term, NULL);
    sigaction(SIGINT, &cpu->old_int, NULL);
  }
  pthread_cond_destroy(&cpu->cv);
  pthread_mutex_destroy(&cpu->mu);
  if (active == cpu)
    active = NULL;
  kuala_free(cpu);
}

static void profile_cb(void *data, lua_State *L, int samples, int vmstate)
{
  /* Nothing to record: the profiler is here for the hook-mask checks it
   * makes the JIT compile into traces. (It cannot install the count hook
   * itself: LuaJIT restores the hook mask after the callback.) */
  (void)data, (void)L, (void)samples, (void)vmstate;
}

/* A timer on the loop thread's own CPU clock sends it the watchdog signal
 * every TICK_NS of its CPU time, so the end of a slice is seen without
 * waiting for the watchdog thread to be scheduled (slow on a loaded
 * machine). Best effort: without it the watchdog thread does the same. */
static void start_tick(kuala__lua_cpu_t *cpu)
{
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = watchdog_signal;
  sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
  if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &cpu->tick) != 0)
    return;
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  its.it_value.tv_nsec = TICK_NS;
  its.it_interval.tv_nsec = TICK_NS;
  if (timer_settime(cpu->tick, 0, &its, NULL) != 0) {
    timer_delete(cpu->tick);
    return;
  }
  cpu->has_tick = 1;
}

void kuala__lua_cpu_enter(kuala__lua_cpu_t *cpu, lua_State *main, lua_State *co, int64_t budget_ns,
                          int64_t slice_ns)
{
  if (!cpu->has_tick && slice_ns > 0)
    start_tick(cpu);
  if (profiled != main) {
    if (profiled)
      luaJIT_profile_stop(profiled);
    luaJIT_profile_start(main, PROFILE_MODE, profile_cb, NULL);
    profiled = main;
  }
  clockid_t clk;
  if (pthread_getcpuclockid(pthread_self(), &clk) != 0)
    clk = CLOCK_MONOTONIC;
  int64_t mono = clock_ns(CLOCK_MONOTONIC);
  pthread_mutex_lock(&cpu->mu);
  cpu->loop = pthread_self();
  cpu->clock = clk;
  cpu->running = co;
  cpu->enter_mono_ns = mono;
  __atomic_store_n(&cpu->base_ns, BASE_UNSET, __ATOMIC_RELEASE);
  cpu->budget_ns = budget_ns;
  cpu->sliceable = slice_ns > 0;
  cpu->slice_end_rel = slice_ns > 0 && slice_ns < budget_ns ? slice_ns : budget_ns;
  cpu->hooked = 0;
  cpu->tripped = 0;
  cpu->sliced = 0;
  pthread_mutex_unlock(&cpu->mu);
  active = cpu;
  cpu->sig_L = co;
}

int64_t kuala__lua_cpu_leave(kuala__lua_cpu_t *cpu, lua_State *co, int *why)
{
  cpu->sig_L = NULL; /* first: a late signal is then a no-op */
  pthread_mutex_lock(&cpu->mu);
  if (cpu->hooked)
    lua_sethook(co, NULL, 0, 0);
  cpu->hooked = 0;
  cpu->running = NULL;
  *why = (cpu->tripped ? KUALA__CPU_TRIPPED : 0) | (cpu->sliced ? KUALA__CPU_SLICED : 0);
  cpu->tripped = 0;
  cpu->sliced = 0;
  pthread_mutex_unlock(&cpu->mu);
  /* Nobody else looks at the run any more. */
  int64_t base = __atomic_load_n(&cpu->base_ns, __ATOMIC_ACQUIRE);
  int64_t used = base == BASE_UNSET ? clock_ns(CLOCK_MONOTONIC) - cpu->enter_mono_ns
                                    : clock_ns(CLOCK_THREAD_CPUTIME_ID) - base;
  return used > 0 ? used : 0;
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

int kuala__lua_cpu_check(lua_State *L)
{
  kuala__lua_cpu_t *cpu = active;
  if (cpu == NULL || cpu->running == NULL)
    return 0;
  int64_t clk = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  if (cpu->tripped || clk - run_base(cpu, clk) >= cpu->budget_ns) {
    cpu->tripped = 1;
    /* Keep raising at every instruction once control is back in Lua. */
    kuala__lua_cpu_poke(cpu, L);
    raise_here(L, "CPU budget exceeded");
  }
  return 1;
}

void kuala__lua_cpu_forget(lua_State *main)
{
  if (profiled == main) {
    luaJIT_profile_stop(main);
    profiled = NULL;
  }
}
