/*
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's
 * semantics (k8s.io/client-go/tools/leaderelection), driven by a uv loop.
 *
 * - A candidate GETs the Lease every retry period (jittered by up to 1.2
 *   retry periods while it does not lead). It takes the Lease when nobody
 *   holds it (no Lease, an empty holderIdentity) or when the record it last
 *   saw has not changed for leaseDurationSeconds by this process's own clock
 *   (client-go's "observed time": no trust in the other holder's clock).
 * - Taking and renewing are PUTs carrying the resourceVersion that was read
 *   (optimistic concurrency: of two candidates only one update succeeds, the
 *   other gets 409 Conflict and stays a candidate). A new holder increments
 *   leaseTransitions and sets acquireTime; a renewal only moves renewTime.
 * - The leader renews every retry period. When no renewal has succeeded for
 *   the renew deadline, or the Lease shows another holder, it stops leading
 *   (on_stopped_leading) and becomes a candidate again.
 * - Stopping a leader releases the Lease: holderIdentity cleared,
 *   leaseDurationSeconds 1, so a candidate takes over at its next retry.
 *
 * Defaults are controller-runtime's: lease 15 s, renew deadline 10 s, retry
 * period 2 s. Everything runs on the loop thread; callbacks run from the
 * loop, never from inside a call into this module.
 */
#ifndef KUALA_LEADER_H
#define KUALA_LEADER_H

#include <stdint.h>
#include <uv.h>

#include "kuala/client.h"

typedef struct kuala_leader_s kuala_leader_t;

typedef void (*kuala_leader_cb)(void *data);
/* The holder changed (identity "" when the Lease was released). */
typedef void (*kuala_leader_new_cb)(void *data, const char *identity);

typedef struct {
  const char *ns;                  /* Lease namespace (required) */
  const char *name;                /* Lease name (required) */
  const char *identity;            /* this candidate (required; see default_identity) */
  uint64_t lease_duration_ms;      /* 0 = 15000 */
  uint64_t renew_deadline_ms;      /* 0 = 10000; must be < lease duration */
  uint64_t retry_period_ms;        /* 0 = 2000; must be < renew deadline */
  kuala_leader_cb started_leading; /* may be NULL */
  kuala_leader_cb stopped_leading; /* may be NULL; not called by stop */
  kuala_leader_new_cb new_leader;  /* may be NULL */
  void *data;
} kuala_leader_opts_t;

/* `client` is borrowed and must outlive the elector (give it a client of
 * its own, so renewals never wait behind reconcile traffic). KUALA_EINVAL
 * when a required field is missing or the durations are not ordered
 * retry < renew deadline < lease duration. */
int kuala_leader_new(kuala_leader_t **out, uv_loop_t *loop, kuala_client_t *client,
                     const kuala_leader_opts_t *opts);
/* Start campaigning (the first attempt is made at once, from the loop). */
int kuala_leader_start(kuala_leader_t *l);
int kuala_leader_is_leader(const kuala_leader_t *l);
/* Borrowed strings. */
const char *kuala_leader_identity(const kuala_leader_t *l);
const char *kuala_leader_name(const kuala_leader_t *l);
/* Transitions into leadership since start. */
uint64_t kuala_leader_terms(const kuala_leader_t *l);

/* Stop campaigning. A leader releases the Lease first (one update, bounded
 * by the renew deadline). `cb` (may be NULL) runs from the loop once
 * nothing is in flight; the elector is freed then. No other callback runs
 * after this call. */
typedef void (*kuala_leader_stopped_cb)(void *data);
void kuala_leader_stop(kuala_leader_t *l, kuala_leader_stopped_cb cb, void *data);

/* hostname + "_" + 32 random hex digits, like controller-runtime's
 * hostname + "_" + uuid. The caller frees it with kuala_free. */
char *kuala_leader_default_identity(void);

#endif /* KUALA_LEADER_H */
