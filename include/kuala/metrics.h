/*
 * Prometheus metrics of an engine, in the text exposition format (0.0.4),
 * with controller-runtime's metric names and labels so that dashboards made
 * for controller-runtime operators work unchanged:
 *
 *   controller_runtime_reconcile_total{controller,result}
 *   controller_runtime_reconcile_errors_total{controller}
 *   controller_runtime_reconcile_time_seconds{controller}        (histogram)
 *   controller_runtime_max_concurrent_reconciles{controller}
 *   controller_runtime_active_workers{controller}
 *   workqueue_depth / _adds_total / _retries_total / _queue_duration_seconds /
 *   _work_duration_seconds / _unfinished_work_seconds /
 *   _longest_running_processor_seconds{name,controller}
 *   rest_client_requests_total{code,method,host}
 *   leader_election_master_status{name}                          (with a leader)
 *   process_cpu_seconds_total, process_resident_memory_bytes, ... (Linux /proc)
 *
 * and kuala's own: kuala_bundle_* (from the bundles JSON),
 * kuala_informer_*{group,version,resource,namespace,selector} and
 * kuala_lua_limit_hits_total{controller,limit}. docs/operations.md lists them all.
 *
 * Everything is read at render time from the live objects (no registry, no
 * locks): call it on the loop thread that owns them.
 */
#ifndef KUALA_METRICS_H
#define KUALA_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "kuala/buf.h"
#include "kuala/client.h"

struct kuala_manager_s;
struct kuala_informers_s;
struct kuala_leader_s;

/* Content-Type of the rendered text. */
#define KUALA_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What to render; every pointer is borrowed and may be NULL (its metrics are
 * then left out, HELP and TYPE included). */
typedef struct {
  struct kuala_manager_s *manager;     /* controllers and their queues */
  kuala_client_t *client;              /* rest_client_requests_total */
  struct kuala_informers_s *informers; /* kuala_informer_* */
  const struct kuala_leader_s *leader; /* leader_election_master_status */
  const char *bundles_json;            /* kuala_engine_bundles_json() output */
  size_t bundles_json_len;
  int process; /* 1: render process_* */
} kuala_metrics_sources_t;

/* Append the exposition text to `out`: 0, or KUALA_E2BIG when `out` is
 * capped and the whole text does not fit (nothing is appended then). */
int kuala_metrics_render(const kuala_metrics_sources_t *src, kuala_buf_t *out);

#endif /* KUALA_METRICS_H */
