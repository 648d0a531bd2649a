/*
 * ops.h: what `kuala run` and `kuala dev` add around the engine for a pod:
 * the metrics server (/metrics, /bundles), the health probe server
 * (/healthz, /readyz, on its own thread) and leader election.
 *
 * Order of calls (all on the engine loop's thread):
 *   kuala_engine_new → kuala__ops_start (holds the controllers when leader
 *   election is on) → kuala_engine_start → kuala__ops_engine_ready (from
 *   the engine's ready callback) → ... → kuala__ops_detach (before
 *   kuala_engine_stop: servers close, nothing touches the engine any more)
 *   → kuala_engine_stop → kuala__ops_stop (after the engine stopped: the
 *   Lease is released, the elector's client closes; cb runs at the end).
 */
#ifndef KUALA_CMD_OPS_H
#define KUALA_CMD_OPS_H

#include <uv.h>

#include "kuala/client.h"
#include "kuala/engine.h"

typedef struct {
  const char *metrics_addr; /* "[host]:port"; "0" = off; NULL = ":8080" */
  const char *probe_addr;   /* "[host]:port"; "0" = off; NULL = ":8081" */
  double health_stall_s;    /* /healthz "loop" limit; 0 = 30 */
  int leader_elect;
  const char *leader_id;            /* Lease name; NULL = "kuala" */
  const char *leader_ns;            /* NULL = the pod's namespace, else "default" */
  double lease_s, renew_s, retry_s; /* 0 = 15, 10, 2 */
} kuala__ops_opts_t;

typedef struct kuala__ops_s kuala__ops_t;

/* Parse "host:port" / ":port" / "[v6]:port" / "0" (off: *port = -1).
 * Returns 0 or -1 (bad address). host is written into hostbuf. */
int kuala__ops_parse_addr(const char *addr, char *hostbuf, size_t hostlen, int *port);

/* A bind failure is logged and that server is left out (the engine runs
 * on); a bad option or a failed elector start returns an error. `cfg` is
 * copied by the elector's own client. */
int kuala__ops_start(kuala__ops_t **out, uv_loop_t *loop, kuala_engine_t *e,
                     const kuala_client_config_t *cfg, const kuala__ops_opts_t *opts);
void kuala__ops_engine_ready(kuala__ops_t *ops);
void kuala__ops_detach(kuala__ops_t *ops);
typedef void (*kuala__ops_stopped_cb)(void *data);
void kuala__ops_stop(kuala__ops_t *ops, kuala__ops_stopped_cb cb, void *data);

#endif /* KUALA_CMD_OPS_H */
