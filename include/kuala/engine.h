/*
 * The engine: what `kuala run` and `kuala dev` start. It ties the pieces
 * together on one uv loop:
 *
 *   client (kuala/client.h) → informers (kuala/informer.h) → manager
 *   (kuala/manager.h: controllers + runtime backend) → runtime
 *   (kuala/runtime.h: one Lua VM per bundle).
 *
 * For each bundle directory: load it (a bundle that fails to load is
 * reported with its file and line, and the others go on), install the CRDs
 * it declares with server-side apply (field manager "kuala") and wait until
 * each is Established, then start its controllers. A bundle's controller
 * reconciles run in that bundle's VM.
 */
#ifndef KUALA_ENGINE_H
#define KUALA_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kuala/client.h"
#include "kuala/runtime.h"

typedef struct kuala_engine_s kuala_engine_t;

typedef struct {
  const kuala_client_config_t *client; /* required; copied by the client */
  const char *const *bundles;          /* bundle directories */
  size_t nbundles;
  kuala_runtime_opts_t runtime;
  uint64_t crd_wait_ms; /* how long to wait for Established; 0 = 60000 */
  /* kuala_engine_stop: how long running reconciles may take to finish
   * before they are cancelled; 0 = 30000, < 0 = cancel at once. */
  int64_t graceful_shutdown_ms;
} kuala_engine_opts_t;

typedef struct {
  size_t bundles_loaded;
  size_t bundles_failed;
  size_t crds_installed;
  size_t controllers_running;
  uint64_t reconciles;       /* finished, any outcome */
  uint64_t reconcile_errors; /* finished with an error */
} kuala_engine_stats_t;

/* Called once every bundle has been dealt with (loaded and its controllers
 * started, or failed). */
typedef void (*kuala_engine_ready_cb)(void *data, const kuala_engine_stats_t *st);

int kuala_engine_new(kuala_engine_t **out, uv_loop_t *loop, const kuala_engine_opts_t *opts);
int kuala_engine_start(kuala_engine_t *e, kuala_engine_ready_cb ready, void *data);
void kuala_engine_stats(const kuala_engine_t *e, kuala_engine_stats_t *out);
/* Graceful stop: controllers stop handing out keys, running reconciles may
 * finish within opts.graceful_shutdown_ms (then they are cancelled), bundles
 * close, informers and client close; `cb` runs when every handle is closed
 * (the loop then ends by itself). */
typedef void (*kuala_engine_stopped_cb)(void *data);
void kuala_engine_stop(kuala_engine_t *e, kuala_engine_stopped_cb cb, void *data);

#endif /* KUALA_ENGINE_H */
