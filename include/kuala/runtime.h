/*
 * The Lua runtime: loads controller bundles and runs their reconciles.
 *
 * A bundle is a set of *.lua files (a directory, or name/content pairs taken
 * from a ConfigMap) with an entry module. Each bundle gets its own Lua VM
 * with a sandboxed standard library, locked globals, a memory cap, a CPU
 * budget per call into Lua and a wall-clock deadline per reconcile. A bundle
 * that breaks a limit fails alone; other bundles keep running.
 *
 * The runtime never talks to the API server or the informers directly: it
 * goes through a backend (kuala_backend_t), a small vtable that the real
 * client + cache implement and that tests replace with a fake. Cache reads
 * are synchronous; API calls are requests in the libuv sense: the completion
 * callback runs exactly once (also after a cancel, then with
 * KUALA_ECANCELED), and never if `call_start` fails.
 *
 * Everything runs on the thread that owns the uv loop. The only other thread
 * is the runtime's watchdog, which enforces the CPU budget.
 */
#ifndef KUALA_RUNTIME_H
#define KUALA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct kuala_runtime_s kuala_runtime_t;
typedef struct kuala_bundle_s kuala_bundle_t;
struct kuala_permissions_s; /* kuala/permissions.h */

/* ---- backend ------------------------------------------------------------ */

/* What an API call does. Status variants use `subresource = "status"`. */
typedef enum {
  KUALA_CALL_GET = 1, /* read one object from the API server (not the cache) */
  KUALA_CALL_CREATE,  /* POST body */
  KUALA_CALL_UPDATE,  /* PUT body */
  KUALA_CALL_PATCH,   /* PATCH body with `patch_type` */
  KUALA_CALL_APPLY,   /* server-side apply of body, `field_manager`, `force` */
  KUALA_CALL_DELETE,  /* DELETE; body may hold DeleteOptions */
} kuala_call_verb_t;

/* One API call. All pointers are borrowed for the duration of call_start. */
typedef struct {
  kuala_call_verb_t verb;
  const char *api_version;   /* "apps/v1", "v1" */
  const char *kind;          /* "Deployment" */
  const char *ns;            /* NULL or "" for cluster-scoped objects */
  const char *name;          /* NULL for CREATE */
  const char *subresource;   /* NULL or "status" */
  const char *patch_type;    /* PATCH: "merge", "json" or "strategic" */
  const char *field_manager; /* writes: the controller's name */
  int force;                 /* APPLY: take ownership of conflicting fields */
  const char *body;          /* compact JSON or NULL */
  size_t body_len;
  /* The calling bundle's permissions (kuala/permissions.h), NULL = not
   * restricted. The manager refuses what they do not allow. */
  const struct kuala_permissions_s *permissions;
} kuala_call_t;

/* Completion of a call: err is 0 or a negative KUALA_E*; json (borrowed,
 * valid during the callback only, may be NULL) is the response object (for
 * an error, the Status object when the server sent one). */
typedef void (*kuala_call_done_cb)(void *data, int err, const char *json, size_t len);

/* Receives each object of a cache list; return non-zero to stop. */
typedef int (*kuala_cache_each_cb)(void *data, const char *json, size_t len);

typedef struct {
  const char *api_version;
  const char *kind;
  const char *ns;             /* NULL or "" = all namespaces (or cluster-scoped) */
  const char *name;           /* get only */
  const char *label_selector; /* list only; NULL = everything */
  const char *index;          /* list only: a user index name, with index_value */
  const char *index_value;
  const struct kuala_permissions_s *permissions; /* as in kuala_call_t */
} kuala_cache_query_t;

typedef struct {
  /* Synchronous cache read of one object: 0 and *json (borrowed, valid until
   * control returns to the loop or the next backend call), KUALA_ENOTFOUND,
   * or another KUALA_E* (e.g. the type is not watched). */
  int (*cache_get)(void *self, const kuala_cache_query_t *q, const char **json, size_t *len);
  /* Synchronous cache list: `each` once per matching object. */
  int (*cache_list)(void *self, const kuala_cache_query_t *q, kuala_cache_each_cb each, void *data);
  /* Start an API call. 0 and *handle on success: `done` runs exactly once,
   * possibly before call_start returns (the runtime then skips the yield).
   * A negative KUALA_E* on failure: `done` never runs. */
  int (*call_start)(void *self, const kuala_call_t *call, kuala_call_done_cb done, void *data,
                    void **handle);
  /* Cancel a started call whose `done` has not run yet: `done` runs (now or
   * later) with KUALA_ECANCELED unless the answer was already on its way. */
  void (*call_cancel)(void *self, void *handle);
  void *self;
  /* Optional (NULL: reads of a kind that is not cached answer KUALA_EAGAIN).
   * Wait until the cache for q's kind has synced, starting its informer if
   * needed: 0 and *handle on success, then `done` runs exactly once, later
   * from the loop, with 0 (synced: read again), KUALA_ENOTFOUND (the API
   * server does not serve that apiVersion/kind, after a discovery refresh),
   * KUALA_ETIMEDOUT (not synced within timeout_ms), KUALA_ECANCELED or
   * another KUALA_E*. A negative KUALA_E* return: `done` never runs. */
  int (*cache_wait)(void *self, const kuala_cache_query_t *q, uint64_t timeout_ms,
                    kuala_call_done_cb done, void *data, void **handle);
  /* Cancel a wait whose `done` has not run: `done` runs with KUALA_ECANCELED
   * (now or later). */
  void (*cache_wait_cancel)(void *self, void *handle);
  /* Optional: add a request to a controller's work queue after `after_ms`
   * (0 = now); name NULL = every primary object in the cache. 0,
   * KUALA_ENOENT (no running controller of that name) or KUALA_E*. */
  int (*enqueue)(void *self, const char *controller, const char *ns, const char *name,
                 uint64_t after_ms);
} kuala_backend_t;

/* A backend with an empty cache that refuses API calls (KUALA_ENOSYS):
 * loading bundles and reading their declarations offline (`kuala crd`,
 * `kuala check`, `kuala rbac`) and tests that need no cluster. Static. */
const kuala_backend_t *kuala_backend_offline(void);

/* ---- runtime ------------------------------------------------------------ */

typedef struct {
  size_t memory_limit;    /* bytes per bundle VM; 0 = 64 MiB */
  uint32_t cpu_budget_ms; /* CPU time per call into Lua (load, reconcile); 0 = 1000 */
  uint32_t deadline_ms;   /* wall clock per reconcile; 0 = 30000 */
  const char *sdk_dir;    /* development: load the SDK's lua/kuala/ sources from here instead of
                             the embedded bytecode; NULL = $KUALA_SDK_DIR or embedded */
} kuala_runtime_opts_t;

/* A runtime on `loop` using `backend` (copied; backend->self borrowed). */
int kuala_runtime_new(kuala_runtime_t **out, uv_loop_t *loop, const kuala_backend_t *backend,
                      const kuala_runtime_opts_t *opts);
/* Close every bundle (pending calls are canceled, their reconciles end with
 * KUALA_ECANCELED) and free the runtime. Run the loop afterwards until it has
 * no more handles: uv_loop_close() then succeeds. */
void kuala_runtime_free(kuala_runtime_t *rt);

/* ---- bundles ------------------------------------------------------------ */

/* One file of a bundle: `name` is the path relative to the bundle root
 * ("main.lua", "lib/util.lua"). Both are borrowed. */
typedef struct {
  const char *name;
  const char *src;
  size_t len;
} kuala_bundle_file_t;

/* Load a bundle from in-memory files and run its entry module (`entry`,
 * default "main"). On failure returns a negative KUALA_E* and, when `err`
 * is not NULL, a message naming the bundle, file and line (caller frees
 * with kuala_free). */
int kuala_bundle_load(kuala_bundle_t **out, kuala_runtime_t *rt, const char *name,
                      const kuala_bundle_file_t *files, size_t nfiles, const char *entry,
                      char **err);
/* Same, reading every *.lua file under `dir` (recursively). The bundle is
 * named after the directory's last component when `name` is NULL. */
int kuala_bundle_load_dir(kuala_bundle_t **out, kuala_runtime_t *rt, const char *dir,
                          const char *name, const char *entry, char **err);
/* Cancel the bundle's pending calls (their reconciles end with
 * KUALA_ECANCELED) and free it. */
void kuala_bundle_close(kuala_bundle_t *b);

const char *kuala_bundle_name(const kuala_bundle_t *b);
/* Number of controllers the bundle declared, and the name of the i-th. */
size_t kuala_bundle_controller_count(const kuala_bundle_t *b);
const char *kuala_bundle_controller_name(const kuala_bundle_t *b, size_t i);
/* The declaration of controller i as JSON (caller frees):
 *   {"name", "watch": {"apiVersion", "kind", "namespace"?, "labels"?},
 *    "owns": [{"apiVersion", "kind"}], "watches": [{"apiVersion", "kind"}],
 *    "concurrency": N, "generation_changed": bool, "predicate": bool}
 * "labels" is a label selector string ("app=x,tier=web"). "generation_changed"
 * means the primary watch wants the built-in predicate; "predicate" that
 * some watch has a Lua predicate (call kuala_bundle_predicate). Watch
 * indexes count the primary as 0, then owns, then watches. */
int kuala_bundle_controller_json(kuala_bundle_t *b, size_t i, char **out, size_t *len);

/* Receives one request key from a map function (ns NULL when cluster-scoped). */
typedef void (*kuala_bundle_emit_cb)(void *data, const char *ns, const char *name);

/* Run the map function of watch `index` of `controller` on obj (JSON) and
 * emit each request it returns. When `index` is not a map watch, the watch
 * is found by the object's apiVersion and kind. Runs under the CPU budget;
 * API calls are refused. 0, KUALA_ENOENT (no such controller or watch), or
 * KUALA_EINVAL / KUALA_ETIMEDOUT / KUALA_ENOMEM when the function fails
 * (logged with bundle, file and line). */
int kuala_bundle_map(kuala_bundle_t *b, const char *controller, size_t index, const char *json,
                     size_t len, kuala_bundle_emit_cb emit, void *data);

/* Whether an event passes the Lua predicates of the watch of `controller`
 * whose type matches obj's apiVersion and kind. `type` is "add", "update"
 * or "delete"; old is NULL except for updates. Returns 1 (pass) or 0
 * (drop; also when a predicate fails, which is logged). */
int kuala_bundle_predicate(kuala_bundle_t *b, const char *controller, const char *type,
                           const char *old, size_t old_len, const char *json, size_t len);

/* Limits of one bundle; 0 keeps the current value (the runtime's defaults
 * at load). They apply to the next reconcile, predicate or map call. */
typedef struct {
  size_t memory_limit;    /* bytes */
  uint32_t cpu_budget_ms; /* CPU per reconcile / call */
  uint32_t deadline_ms;   /* wall clock per reconcile */
} kuala_bundle_limits_t;
int kuala_bundle_set_limits(kuala_bundle_t *b, const kuala_bundle_limits_t *limits);

/* The bundle's permissions: what its controllers imply plus what it
 * declared with kuala.permissions (borrowed; valid until the bundle closes). */
const struct kuala_permissions_s *kuala_bundle_permissions(const kuala_bundle_t *b);
/* Its kuala.permissions declarations as a JSON array of {"type", "verbs",
 * "names"?} (caller frees). */
int kuala_bundle_permissions_json(kuala_bundle_t *b, char **out, size_t *len);

/* Bytes the bundle VM holds now. */
size_t kuala_bundle_memory(const kuala_bundle_t *b);

/* Every CRD the bundle declared (kuala.crd{...}): a JSON array when yaml is
 * 0, else a YAML stream of documents. The caller frees *out. */
int kuala_bundle_crds(kuala_bundle_t *b, int yaml, char **out, size_t *len);
/* Type strings in the bundle ("apps/v1/Deploymnet") that are neither
 * built-in kinds nor declared by its kuala.crd, found in its controllers and
 * in string literals of its files: a JSON array of {"file", "line", "type",
 * "message"} ("file"/"line" absent for declarations). Offline, so these are
 * warnings (`kuala check`): the type may come from another CRD. */
int kuala_bundle_type_warnings(kuala_bundle_t *b, char **out, size_t *len);
/* Same as kuala_bundle_crds(b, 0, out, len). */
int kuala_bundle_crds_json(kuala_bundle_t *b, char **out, size_t *len);

/* ---- reconcile ---------------------------------------------------------- */

typedef struct {
  int err;              /* 0, KUALA_EINVAL (script error), KUALA_ETIMEDOUT
                           (deadline or CPU budget), KUALA_ENOMEM (memory cap),
                           KUALA_ECANCELED (bundle closed) */
  const char *message;  /* borrowed, valid during the callback; NULL when err == 0 */
  double requeue_after; /* seconds; 0 = no requeue asked */
} kuala_reconcile_result_t;

typedef void (*kuala_reconcile_done_cb)(void *data, const kuala_reconcile_result_t *res);

/* Run controller `controller`'s reconcile for ns/name in a new coroutine.
 * `done` runs exactly once: possibly before this returns (the reconcile made
 * no API call that had to wait), else from the loop. On failure done never
 * runs: KUALA_ENOENT (no such controller), KUALA_ESHUTDOWN (the bundle is
 * closing), KUALA_EBUSY (called while Lua of this bundle runs, e.g. from a
 * backend callback inside call_start). */
int kuala_bundle_reconcile(kuala_bundle_t *b, const char *controller, const char *ns,
                           const char *name, kuala_reconcile_done_cb done, void *data);

/* Reconciles started and not finished. */
size_t kuala_bundle_active(const kuala_bundle_t *b);

#endif /* KUALA_RUNTIME_H */
