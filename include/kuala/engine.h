/*
 * The engine: what `kuala run` and `kuala dev` start. It ties the pieces
 * together on one uv loop:
 *
 *   client (kuala/client.h) → informers (kuala/informer.h) → manager
 *   (kuala/manager.h: controllers + runtime backend) → runtime
 *   (kuala/runtime.h: one Lua VM per bundle).
 *
 * Bundles come from directories (watched when `watch` is set) and from
 * ConfigMaps labelled kuala.dev/bundle=<name> (when `configmaps` is set).
 * For each version of a bundle: load it in a fresh VM (a bundle that fails
 * to load is reported with its file and line, and the others go on),
 * install the CRDs it declares with server-side apply (field manager
 * "kuala") and wait until each is Established, then start its controllers
 * beside the running version's and switch over once the old reconciles
 * drained (docs/engine.md, "Hot reload"). Transient failures (API server
 * unreachable, discovery miss, CRD apply) retry with backoff. A bundle's
 * controller reconciles run in that bundle's VM.
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
  uint64_t crd_wait_ms;         /* how long to wait for Established; 0 = 60000 */
  int watch;                    /* watch the bundle directories and reload on change */
  int configmaps;               /* also take bundles from ConfigMaps labelled kuala.dev/bundle */
  const char *bundle_namespace; /* where those live; NULL = the pod's namespace
                                   (service-account file), else "default" */
  uint64_t grace_ms;            /* how long a replaced version's reconciles may run on; 0 = 30000 */
  /* --impersonate-bundles: each bundle's API calls impersonate
   * system:serviceaccount:<impersonate_ns>:kuala-<bundle>; NULL = off. */
  const char *impersonate_ns;
  /* kuala_engine_stop: how long running reconciles may take to finish
   * before they are cancelled; 0 = 30000, < 0 = cancel at once. */
  int64_t graceful_shutdown_ms;
  /* Informers start with a streaming list (watch with sendInitialEvents)
   * and fall back to a paged list + watch when the server refuses it;
   * 1 = always list + watch (--streaming-list=false). */
  int no_streaming_list;
} kuala_engine_opts_t;

typedef struct {
  size_t bundles_loaded;
  size_t bundles_failed;
  size_t crds_installed;
  size_t controllers_running;
  uint64_t reconciles;       /* finished, any outcome */
  uint64_t reconcile_errors; /* finished with an error */
  uint64_t reloads;          /* versions that replaced a running one */
  uint64_t list_requests;    /* list pages (and streaming lists) the informers
                                asked for, in total */
} kuala_engine_stats_t;

/* Called once every bundle known at startup has been dealt with (running
 * with its caches synced, or failed to load) and, with `configmaps`, the
 * bundle ConfigMaps have been listed. */
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

/* Server-side apply of one object (compact JSON with apiVersion, kind,
 * metadata.name and, when namespaced, metadata.namespace; "default" is
 * used when it is missing) through the engine's client, as
 * `field_manager`. `done` (may be NULL) runs exactly once unless this
 * returns an error. Used by `kuala dev` to apply each bundle's samples/. */
int kuala_engine_apply(kuala_engine_t *e, const char *json, size_t len, const char *field_manager,
                       kuala_call_done_cb done, void *data);

/* The bundle directories the engine loads (borrowed), for `kuala dev`. */
size_t kuala_engine_bundle_dirs(const kuala_engine_t *e, const char *const **dirs);

/* Every bundle the engine knows, as a JSON array (caller frees *out with
 * kuala_free), one object per bundle:
 *   {"name", "source": "dir:PATH" | "configmap:NS/NAME",
 *    "hash": "sha256:..." | null, "state": "loading"|"running"|"failed"|"removed",
 *    "loaded_at": RFC3339 | null (when the running version went live),
 *    "last_error": string | null (the latest failed attempt, with bundle/file/line),
 *    "loads": N (versions that went live), "load_errors": N (failed attempts),
 *    "memory_bytes": N (the running VM; 0 when none)}
 * Served at /bundles and as kuala_bundle_* metrics. */
int kuala_engine_bundles_json(kuala_engine_t *e, char **out, size_t *len);

/* Borrowed parts of the engine, for hosts that serve metrics or run leader
 * election beside it: valid from kuala_engine_new until kuala_engine_stop. */
struct kuala_manager_s;
struct kuala_informers_s;
kuala_client_t *kuala_engine_client(kuala_engine_t *e);
struct kuala_manager_s *kuala_engine_manager(kuala_engine_t *e);
struct kuala_informers_s *kuala_engine_informers(kuala_engine_t *e);
kuala_runtime_t *kuala_engine_runtime(kuala_engine_t *e);

/* Embedding: add or replace the bundle `name` from in-memory files
 * (copied; `name` of each file is its path in the bundle, "main.lua",
 * "lib/util.lua"). This is the hot-reload path the directory and ConfigMap
 * sources use: the new version loads in a fresh VM beside the running one
 * and replaces it only once it loaded cleanly (its CRDs Established); the
 * same content is no change; a failed version leaves the running one and
 * shows in kuala_engine_bundles_json (source "memory:NAME"). Callable
 * after kuala_engine_new, before or after kuala_engine_start; a bundle set
 * before start counts towards the ready callback. KUALA_EEXISTS when a
 * directory or ConfigMap bundle has that name. */
int kuala_engine_bundle_set(kuala_engine_t *e, const char *name, const kuala_bundle_file_t *files,
                            size_t nfiles);
/* Stop an in-memory bundle's controllers (its CRDs and custom resources
 * stay). KUALA_ENOENT when no such bundle runs. */
int kuala_engine_bundle_remove(kuala_engine_t *e, const char *name);

#endif /* KUALA_ENGINE_H */
