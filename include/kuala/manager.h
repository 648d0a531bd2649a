/*
 * The manager: one API client, one shared informer registry, the controllers
 * that use them, and the backend (kuala/runtime.h) that gives Lua bundles
 * cache reads and API calls. controller-runtime's Manager; leader election
 * (kuala/leader.h) only holds or releases its controllers
 * (kuala_manager_hold), and metrics (kuala/metrics.h) read it.
 *
 * Controllers are declared by apiVersion + kind; the manager resolves each
 * to a resource through discovery (kuala_client_resolve, which refreshes on
 * a miss, so a CRD installed a moment ago resolves) and then starts a
 * kuala_controller_t. Cache reads go to the informer that watches the kind;
 * a read of a kind nobody watches starts an informer for it and answers
 * KUALA_EAGAIN until that informer has synced (the reconcile fails, backs
 * off and finds the cache ready when it retries; controller-runtime blocks
 * instead, which a single-threaded loop cannot do).
 */
#ifndef KUALA_MANAGER_H
#define KUALA_MANAGER_H

#include <stddef.h>
#include <uv.h>

#include "kuala/client.h"
#include "kuala/controller.h"
#include "kuala/informer.h"
#include "kuala/runtime.h"

typedef struct kuala_manager_s kuala_manager_t;

typedef struct {
  const char *api_version; /* "apps/v1" */
  const char *kind;        /* "Deployment" */
  const char *ns;          /* restrict to one namespace; NULL = all */
  const char *label_selector;
  kuala_map_mode_t mode;
  kuala_map_fn map;
  void *map_data;
  int generation_changed;
  kuala_predicate_fn predicate;
  void *predicate_data;
} kuala_watch_decl_t;

typedef struct {
  const char *name;
  const kuala_watch_decl_t *watches; /* [0] is the primary */
  size_t nwatches;
  int concurrency;
  kuala_reconcile_fn reconcile;
  void *data;
} kuala_controller_decl_t;

/* Called once a declared controller has started (err 0, *c valid until the
 * manager closes or kuala_manager_remove_controller) or failed to (err < 0,
 * e.g. KUALA_ENOTFOUND when a kind is not served). */
typedef void (*kuala_manager_started_cb)(void *data, int err, kuala_controller_t *c);

/* `client` and `informers` are borrowed and must outlive the manager. */
int kuala_manager_new(kuala_manager_t **out, uv_loop_t *loop, kuala_client_t *client,
                      kuala_informers_t *informers);
/* The backend to hand to kuala_runtime_new (borrowed, valid while the
 * manager lives). */
const kuala_backend_t *kuala_manager_backend(kuala_manager_t *m);

/* --impersonate-bundles: every API call of a bundle carries
 * `Impersonate-User: system:serviceaccount:<ns>:kuala-<bundle>` so the
 * cluster enforces that bundle's RBAC (cache informers keep the engine's own
 * identity). NULL turns it off. The string is copied. */
void kuala_manager_set_impersonation(kuala_manager_t *m, const char *ns);
/* Declare a controller (copied). Resolution and start are asynchronous;
 * `cb` (may be NULL) reports the outcome. */
int kuala_manager_add_controller(kuala_manager_t *m, const kuala_controller_decl_t *decl,
                                 kuala_manager_started_cb cb, void *data);
/* Hold every controller's workers, present and future (hold = 1), or let
 * them run again (0; every primary object is then enqueued, as a newly
 * started controller would). Keys keep queuing and informers keep running
 * while held: this is the leader-election gate of a standby. */
void kuala_manager_hold(kuala_manager_t *m, int hold);
int kuala_manager_held(const kuala_manager_t *m);
/* Stop one controller (running reconciles finish first). */
void kuala_manager_remove_controller(kuala_manager_t *m, kuala_controller_t *c);
size_t kuala_manager_controller_count(const kuala_manager_t *m);
kuala_controller_t *kuala_manager_controller(kuala_manager_t *m, size_t i);
/* Stop every controller: no key is handed out any more, but running
 * reconciles keep their caches and may still make API calls until they
 * finish (a graceful stop: to cut it short, close the runtime, which cancels
 * them). Once the last controller is gone, the cache-only informer
 * registrations go and calls still in flight are cancelled; then the
 * manager is freed and `cb` (may be NULL) runs. Run the loop afterwards.
 * The client and informers are the caller's to close, after this. */
typedef void (*kuala_manager_closed_cb)(void *data);
void kuala_manager_close(kuala_manager_t *m, kuala_manager_closed_cb cb, void *data);
/* After kuala_manager_close: end the graceful part now (drop the cache
 * registrations, cancel calls and waits in flight) so that the informers
 * may be closed; the manager is still freed (and `cb` run) only once the
 * last reconcile has ended. */
void kuala_manager_cancel(kuala_manager_t *m);

#endif /* KUALA_MANAGER_H */
