/*
 * Host modules: C functions that an embedding program offers to bundles.
 *
 * A host registers a module under a name ("host.storage") on a runtime
 * (kuala/runtime.h; with an engine, kuala_engine_runtime()) before bundles
 * load. A bundle then writes
 *
 *   local storage = require("host.storage")
 *   local v, err, msg = storage.get("key")        -- value | nil, "ENAME", message
 *
 * Arguments reach C as one JSON array ("[\"key\"]"); the answer is any JSON
 * value (NULL for nil) or an error. A synchronous function answers before
 * it returns and may be called anywhere (module top level, predicates, map
 * functions, reconciles). An asynchronous function may answer later, from
 * the loop thread: only a reconcile can wait for it, and the reconcile's
 * coroutine yields meanwhile, like an API call.
 *
 * Every call is a request in the libuv sense: the host finishes it exactly
 * once with kuala_host_call_done() or kuala_host_call_fail(), also when the
 * bundle no longer waits (its reconcile hit the deadline, or the bundle was
 * closed or replaced): the answer is then dropped. The call object stays
 * valid until it is finished, whatever happens to the runtime.
 *
 * Limits and permissions: the time a host function spends on the loop
 * thread counts against the bundle's CPU budget, its decoded answer
 * against the bundle's memory cap, and a reconcile waiting on it against
 * the reconcile deadline. A module can be offered to some bundles only
 * (`bundles`); to the others its name does not exist.
 */
#ifndef KUALA_HOST_H
#define KUALA_HOST_H

#include <stddef.h>

#include "kuala/runtime.h"

typedef struct kuala_host_call_s kuala_host_call_t;

/* One function of a module. `args` is a JSON array (borrowed, valid during
 * the call), `bundle` the calling bundle's name. */
typedef void (*kuala_host_fn)(void *data, kuala_host_call_t *call, const char *bundle,
                              const char *args, size_t len);

typedef struct {
  const char *name; /* Lua identifier */
  kuala_host_fn fn;
  int async; /* 0: answers before returning; 1: may answer later */
} kuala_host_fn_t;

typedef struct {
  const char *name;           /* the require name: "host.storage" */
  const kuala_host_fn_t *fns; /* copied */
  size_t nfns;
  void *data;                 /* passed to every function */
  const char *const *bundles; /* NULL-terminated allow-list; NULL = every bundle */
} kuala_host_module_t;

/* Offer a module to the runtime's bundles (copied). KUALA_EINVAL for a bad
 * name or function, KUALA_EEXISTS when the name is taken. Bundles loaded
 * earlier see it at their next require of that name. */
int kuala_runtime_add_host_module(kuala_runtime_t *rt, const kuala_host_module_t *m);

/* Finish a call with a JSON value (json may be NULL: nil). The text is
 * copied; it must be valid JSON, or the bundle gets "EBADMSG". */
void kuala_host_call_done(kuala_host_call_t *call, const char *json, size_t len);
/* Finish a call with an error: err a negative KUALA_E* (its name reaches
 * Lua: "ENOTFOUND"), message a reason (copied; may be NULL). */
void kuala_host_call_fail(kuala_host_call_t *call, int err, const char *message);

#endif /* KUALA_HOST_H */
