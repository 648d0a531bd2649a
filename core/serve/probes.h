/*
 * probes.h: /healthz and /readyz for the kubelet, served from a thread of
 * their own so that a wedged event loop can still be reported.
 *
 * The probe server runs kuala__httpd on a private uv loop in its own
 * thread. The engine's loop keeps a heartbeat timer: each beat stores the
 * time and asks the host for its readiness checks (collect), publishing
 * both under a mutex. The probe thread only reads that snapshot:
 *
 *   /healthz  checks "ping" (always ok) and "loop": the engine loop beat
 *             within stall_ms. A loop stuck in one callback (a runaway C
 *             call, a hung system call) stops beating, /healthz turns 500
 *             and the liveness probe restarts the pod.
 *   /readyz   "ping" plus every check the host reported at the last beat
 *             (and not ready at all before the first beat).
 *
 * Both follow controller-runtime's healthz handler: 200 "ok"; with
 * ?verbose one "[+]name ok" / "[-]name failed: reason" line per check and a
 * summary line; a failure always answers 500 with the verbose list;
 * ?exclude=NAME skips one check; /healthz/NAME and /readyz/NAME run one.
 *
 * Ownership: start and stop are called on the engine loop's thread; stop
 * joins the probe thread and closes the heartbeat timer (run the engine
 * loop afterwards to free it).
 */
#ifndef KUALA_SERVE_PROBES_H
#define KUALA_SERVE_PROBES_H

#include <stdint.h>
#include <uv.h>

typedef struct kuala__probes_s kuala__probes_t;

/* Report one readiness check (name copied; reason NULL when ok). */
typedef void (*kuala__probes_report_fn)(void *rdata, const char *check, int ok, const char *reason);
/* Called on the engine loop at every beat; reports every readiness check. */
typedef void (*kuala__probes_collect_fn)(void *data, kuala__probes_report_fn report, void *rdata);

typedef struct {
  const char *host;      /* bind address; NULL = "0.0.0.0" */
  int port;              /* 0 = pick a free one */
  uint64_t heartbeat_ms; /* 0 = 500 */
  uint64_t stall_ms;     /* /healthz fails past this without a beat; 0 = 30000 */
  kuala__probes_collect_fn collect;
  void *data;
} kuala__probes_opts_t;

int kuala__probes_start(kuala__probes_t **out, uv_loop_t *loop, const kuala__probes_opts_t *opts);
int kuala__probes_port(const kuala__probes_t *p);
/* Collect and publish now (after a state change, instead of waiting for the
 * next beat). */
void kuala__probes_refresh(kuala__probes_t *p);
void kuala__probes_stop(kuala__probes_t *p);

#endif /* KUALA_SERVE_PROBES_H */
