/*
 * leader.c: Lease-based leader election (see kuala/leader.h).
 *
 * One attempt at a time: GET the Lease, then either POST it (absent) or PUT
 * it back with this candidate as holder (free, expired, or already ours),
 * carrying the resourceVersion that was read. One timer paces attempts:
 * every retry period while leading, retry period plus up to 1.2 retry
 * periods of jitter while campaigning (client-go's JitterUntil).
 *
 * Expiry is judged as client-go does, with this process's clock only: the
 * "observed" record is the holder/renewTime/transitions tuple last read, and
 * observed_ms is the loop time at which it last changed. A held Lease is
 * free once observed_ms + leaseDurationSeconds has passed.
 *
 * Ownership: the elector borrows the client; it owns its strings, its timer,
 * the last Lease object read or written (`lease`, used for the release PUT)
 * and at most one request. stop waits for the request in flight instead of
 * cancelling it: a cancelled renewal may still have reached the server and
 * moved the resourceVersion, which would make the release PUT conflict.
 */
#include "kuala/leader.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/log.h"

typedef enum { REQ_NONE = 0, REQ_GET, REQ_CREATE, REQ_UPDATE, REQ_RELEASE } req_kind_t;

struct kuala_leader_s {
  uv_loop_t *loop;
  kuala_client_t *client;
  char *ns, *name, *identity;
  uint64_t lease_ms, renew_ms, retry_ms;
  kuala_leader_cb started_leading, stopped_leading;
  kuala_leader_new_cb new_leader;
  void *data;

  uv_timer_t timer;
  kuala_client_req_t *req;
  req_kind_t req_kind;
  int started;
  int leading;
  uint64_t terms;
  uint64_t last_renew_ms; /* loop time of the last successful take/renew */
  json_object *lease;     /* last Lease object read or written */

  char *observed; /* holder|renewTime|transitions|duration last seen */
  char *holder;   /* holder last seen ("" = none) */
  uint64_t observed_ms;
  int64_t observed_duration_s;
  uint64_t rng;

  int stopping;
  int closing;
  kuala_leader_stopped_cb stopped_cb;
  void *stopped_data;
};

static void schedule(kuala_leader_t *l);
static void finish_stop(kuala_leader_t *l);

/* --- small helpers ---------------------------------------------------------- */

static uint64_t rnd_next(kuala_leader_t *l)
{
  /* xorshift64*: jitter only, not security. */
  l->rng ^= l->rng >> 12;
  l->rng ^= l->rng << 25;
  l->rng ^= l->rng >> 27;
  return l->rng * 2685821657736338717ULL;
}

static void micro_time(char *out, size_t n)
{
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  time_t s = tv.tv_sec;
  gmtime_r(&s, &tm);
  char base[32];
  strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, n, "%s.%06ldZ", base, (long)tv.tv_usec);
}

static void log_lease(kuala_leader_t *l, kuala_log_level_t level, const char *msg, const char *k,
                      const char *v)
{
  kuala_log_kv_t ctx[] = {{"lease", l->name}, {"identity", l->identity}};
  kuala_log(level, ctx, 2, msg, k, v, NULL);
}

static void set_leading(kuala_leader_t *l, int on)
{
  if (l->leading == on) {
    return;
  }
  l->leading = on;
  if (on) {
    l->terms++;
    log_lease(l, KUALA_LOG_INFO, "became leader", "namespace", l->ns);
    if (l->started_leading) {
      l->started_leading(l->data);
    }
  } else {
    log_lease(l, KUALA_LOG_WARN, "lost leadership", "namespace", l->ns);
    if (l->stopped_leading) {
      l->stopped_leading(l->data);
    }
  }
}

static void keep_lease(kuala_leader_t *l, json_object *obj)
{
  if (l->lease) {
    json_object_put(l->lease);
  }
  l->lease = obj ? json_object_get(obj) : NULL;
}

/* Record what the Lease says now; observed_ms moves only when it changed. */
static void observe(kuala_leader_t *l, json_object *lease)
{
  const char *holder = kuala_json_path_str(lease, "spec.holderIdentity");
  const char *renew = kuala_json_path_str(lease, "spec.renewTime");
  json_object *tr = kuala_json_path(lease, "spec.leaseTransitions");
  json_object *dur = kuala_json_path(lease, "spec.leaseDurationSeconds");
  char rec[1024];
  snprintf(rec, sizeof(rec), "%s|%s|%lld|%lld", holder ? holder : "", renew ? renew : "",
           tr ? (long long)json_object_get_int64(tr) : 0LL,
           dur ? (long long)json_object_get_int64(dur) : 0LL);
  if (l->observed == NULL || strcmp(l->observed, rec) != 0) {
    kuala_free(l->observed);
    l->observed = kuala_strdup(rec);
    l->observed_ms = uv_now(l->loop);
    l->observed_duration_s = dur ? json_object_get_int64(dur) : 0;
    const char *h = holder ? holder : "";
    if (l->holder == NULL || strcmp(l->holder, h) != 0) {
      kuala_free(l->holder);
      l->holder = kuala_strdup(h);
      if (*h && strcmp(h, l->identity) != 0) {
        log_lease(l, KUALA_LOG_INFO, "lease held by another candidate", "holder", h);
      }
      if (l->new_leader) {
        l->new_leader(l->data, h);
      }
    }
  }
}

static void fill_spec(kuala_leader_t *l, json_object *spec, int new_term, long long transitions,
                      int release)
{
  char now[48];
  micro_time(now, sizeof(now));
  json_object_object_add(
      spec, "holderIdentity",
      release ? json_object_new_string("") : json_object_new_string(l->identity));
  int64_t secs = release ? 1 : (int64_t)((l->lease_ms + 999) / 1000);
  json_object_object_add(spec, "leaseDurationSeconds", json_object_new_int64(secs));
  json_object_object_add(spec, "renewTime", json_object_new_string(now));
  if (new_term || release) {
    json_object_object_add(spec, "acquireTime", json_object_new_string(now));
  }
  json_object_object_add(spec, "leaseTransitions", json_object_new_int64(transitions));
}

/* --- requests ----------------------------------------------------------------- */

static void on_resp(void *data, int err, kuala_client_resp_t *resp);

static kuala_client_target_t target(kuala_leader_t *l, int item)
{
  kuala_client_target_t t = {"coordination.k8s.io", "v1", "leases", l->ns,
                             item ? l->name : NULL, NULL};
  return t;
}

static void req_opts(kuala_leader_t *l, kuala_client_opts_t *o)
{
  kuala_client_opts_init(o);
  /* One attempt, bounded by the renew deadline: the elector retries by
   * itself, and a renewal that hangs longer is a lost lease anyway. */
  o->timeout_ms = l->renew_ms;
  o->max_retries = -1;
}

static void send_body(kuala_leader_t *l, req_kind_t kind, json_object *obj)
{
  kuala_client_opts_t o;
  req_opts(l, &o);
  size_t len;
  const char *body = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
  kuala_client_target_t t = target(l, kind != REQ_CREATE);
  int rc;
  l->req_kind = kind;
  if (kind == REQ_CREATE) {
    rc = kuala_client_create(&l->req, l->client, &t, body, len, &o, on_resp, l);
  } else {
    rc = kuala_client_update(&l->req, l->client, &t, body, len, &o, on_resp, l);
  }
  if (rc) {
    l->req = NULL;
    l->req_kind = REQ_NONE;
    log_lease(l, KUALA_LOG_WARN, "cannot send a lease request", "error", kuala_strerror(rc));
  }
}

static void try_create(kuala_leader_t *l)
{
  json_object *obj = json_object_new_object();
  json_object_object_add(obj, "apiVersion", json_object_new_string("coordination.k8s.io/v1"));
  json_object_object_add(obj, "kind", json_object_new_string("Lease"));
  json_object *md = json_object_new_object();
  json_object_object_add(md, "name", json_object_new_string(l->name));
  json_object_object_add(md, "namespace", json_object_new_string(l->ns));
  json_object_object_add(obj, "metadata", md);
  json_object *spec = json_object_new_object();
  fill_spec(l, spec, 1, 0, 0);
  json_object_object_add(obj, "spec", spec);
  send_body(l, REQ_CREATE, obj);
  json_object_put(obj);
}

/* The Lease was read: take it, renew it, or leave it to its holder. */
static void decide(kuala_leader_t *l, json_object *lease)
{
  observe(l, lease);
  keep_lease(l, lease);
  const char *holder = l->holder;
  int mine = strcmp(holder, l->identity) == 0;
  uint64_t now = uv_now(l->loop);
  int valid = now < l->observed_ms +
                        (uint64_t)(l->observed_duration_s > 0 ? l->observed_duration_s : 0) * 1000;
  if (*holder && !mine && valid) {
    if (l->leading) {
      /* Someone else took it: we are not the leader whatever we thought. */
      set_leading(l, 0);
    }
    schedule(l);
    return;
  }
  json_object *tr = kuala_json_path(lease, "spec.leaseTransitions");
  long long transitions = tr ? (long long)json_object_get_int64(tr) : 0;
  json_object *copy = NULL;
  if (json_object_deep_copy(lease, &copy, NULL) != 0 || copy == NULL) {
    schedule(l);
    return;
  }
  json_object *spec = kuala_json_path(copy, "spec");
  if (spec == NULL || !json_object_is_type(spec, json_type_object)) {
    spec = json_object_new_object();
    json_object_object_add(copy, "spec", spec);
  }
  fill_spec(l, spec, !mine, mine ? transitions : transitions + 1, 0);
  send_body(l, REQ_UPDATE, copy);
  json_object_put(copy);
  if (l->req == NULL) {
    schedule(l);
  }
}

static void attempt_failed(kuala_leader_t *l, int err, kuala_client_resp_t *resp)
{
  if (err != KUALA_ECONFLICT || l->leading) {
    const char *msg = resp && resp->message ? resp->message : kuala_strerror(err);
    log_lease(l, l->leading ? KUALA_LOG_WARN : KUALA_LOG_DEBUG, "lease attempt failed", "error",
              msg);
  }
  if (l->leading && uv_now(l->loop) - l->last_renew_ms >= l->renew_ms) {
    set_leading(l, 0);
  }
}

static void on_resp(void *data, int err, kuala_client_resp_t *resp)
{
  kuala_leader_t *l = data;
  req_kind_t kind = l->req_kind;
  l->req = NULL;
  l->req_kind = REQ_NONE;
  json_object *obj = NULL;
  if (err == 0 && resp && kuala_client_resp_json(resp, &obj) != 0) {
    err = KUALA_EBADMSG;
  }
  if (kind == REQ_RELEASE) {
    if (err == 0) {
      log_lease(l, KUALA_LOG_INFO, "lease released", "namespace", l->ns);
    } else {
      log_lease(l, KUALA_LOG_WARN, "lease release failed", "error", kuala_strerror(err));
    }
    l->leading = 0;
    finish_stop(l);
    return;
  }
  if (l->stopping) {
    if (err == 0) {
      /* The newest version we know of is the one to release. */
      keep_lease(l, obj);
    }
    finish_stop(l);
    return;
  }
  if (kind == REQ_GET) {
    if (err == KUALA_ENOTFOUND) {
      try_create(l);
      if (l->req == NULL) {
        schedule(l);
      }
      return;
    }
    if (err) {
      attempt_failed(l, err, resp);
      schedule(l);
      return;
    }
    decide(l, obj);
    return;
  }
  /* REQ_CREATE or REQ_UPDATE */
  if (err) {
    attempt_failed(l, err, resp);
    schedule(l);
    return;
  }
  keep_lease(l, obj);
  observe(l, obj);
  l->last_renew_ms = uv_now(l->loop);
  set_leading(l, 1);
  schedule(l);
}

static void attempt(kuala_leader_t *l)
{
  kuala_client_opts_t o;
  req_opts(l, &o);
  kuala_client_target_t t = target(l, 1);
  l->req_kind = REQ_GET;
  int rc = kuala_client_get(&l->req, l->client, &t, &o, on_resp, l);
  if (rc) {
    l->req = NULL;
    l->req_kind = REQ_NONE;
    attempt_failed(l, rc, NULL);
    schedule(l);
  }
}

static void on_timer(uv_timer_t *t)
{
  kuala_leader_t *l = t->data;
  if (l->stopping) {
    return;
  }
  if (l->req) {
    /* A request is hanging: the renew deadline still applies. */
    if (l->leading && uv_now(l->loop) - l->last_renew_ms >= l->renew_ms) {
      set_leading(l, 0);
    }
    schedule(l);
    return;
  }
  if (l->leading && uv_now(l->loop) - l->last_renew_ms >= l->renew_ms) {
    set_leading(l, 0);
  }
  attempt(l);
}

static void schedule(kuala_leader_t *l)
{
  if (l->stopping) {
    return;
  }
  uint64_t delay = l->retry_ms;
  if (!l->leading) {
    delay +=
        (uint64_t)((double)(rnd_next(l) >> 11) / 9007199254740992.0 * 1.2 * (double)l->retry_ms);
  }
  uv_timer_start(&l->timer, on_timer, delay, 0);
}

/* --- lifecycle ---------------------------------------------------------------- */

int kuala_leader_new(kuala_leader_t **out, uv_loop_t *loop, kuala_client_t *client,
                     const kuala_leader_opts_t *opts)
{
  *out = NULL;
  if (!loop || !client || !opts || !opts->ns || !*opts->ns || !opts->name || !*opts->name ||
      !opts->identity || !*opts->identity) {
    return KUALA_EINVAL;
  }
  uint64_t lease = opts->lease_duration_ms ? opts->lease_duration_ms : 15000;
  uint64_t renew = opts->renew_deadline_ms ? opts->renew_deadline_ms : 10000;
  uint64_t retry = opts->retry_period_ms ? opts->retry_period_ms : 2000;
  if (!(retry < renew && renew < lease)) {
    return KUALA_EINVAL;
  }
  kuala_leader_t *l = kuala_calloc(1, sizeof(*l));
  l->loop = loop;
  l->client = client;
  l->ns = kuala_strdup(opts->ns);
  l->name = kuala_strdup(opts->name);
  l->identity = kuala_strdup(opts->identity);
  l->lease_ms = lease;
  l->renew_ms = renew;
  l->retry_ms = retry;
  l->started_leading = opts->started_leading;
  l->stopped_leading = opts->stopped_leading;
  l->new_leader = opts->new_leader;
  l->data = opts->data;
  l->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)l;
  if (l->rng == 0) {
    l->rng = 88172645463325252ULL;
  }
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  *out = l;
  return 0;
}

int kuala_leader_start(kuala_leader_t *l)
{
  if (l->started || l->stopping) {
    return KUALA_EBUSY;
  }
  l->started = 1;
  log_lease(l, KUALA_LOG_INFO, "campaigning for the lease", "namespace", l->ns);
  uv_timer_start(&l->timer, on_timer, 0, 0);
  return 0;
}

int kuala_leader_is_leader(const kuala_leader_t *l)
{
  return l->leading;
}

const char *kuala_leader_identity(const kuala_leader_t *l)
{
  return l->identity;
}

const char *kuala_leader_name(const kuala_leader_t *l)
{
  return l->name;
}

uint64_t kuala_leader_terms(const kuala_leader_t *l)
{
  return l->terms;
}

static void timer_closed(uv_handle_t *h)
{
  kuala_leader_t *l = h->data;
  kuala_leader_stopped_cb cb = l->stopped_cb;
  void *data = l->stopped_data;
  if (l->lease) {
    json_object_put(l->lease);
  }
  kuala_free(l->observed);
  kuala_free(l->holder);
  kuala_free(l->ns);
  kuala_free(l->name);
  kuala_free(l->identity);
  kuala_free(l);
  if (cb) {
    cb(data);
  }
}

/* Nothing in flight: release if we lead (once), else close. */
static void finish_stop(kuala_leader_t *l)
{
  if (l->req || l->closing) {
    return;
  }
  const char *holder = l->lease ? kuala_json_path_str(l->lease, "spec.holderIdentity") : NULL;
  if (l->leading && holder && strcmp(holder, l->identity) == 0) {
    json_object *copy = NULL;
    json_object *tr = kuala_json_path(l->lease, "spec.leaseTransitions");
    long long transitions = tr ? (long long)json_object_get_int64(tr) : 0;
    if (json_object_deep_copy(l->lease, &copy, NULL) == 0 && copy) {
      json_object *spec = kuala_json_path(copy, "spec");
      if (spec && json_object_is_type(spec, json_type_object)) {
        fill_spec(l, spec, 0, transitions, 1);
        l->leading = 0; /* release is attempted once */
        send_body(l, REQ_RELEASE, copy);
      }
      json_object_put(copy);
      if (l->req) {
        return;
      }
    }
  }
  l->leading = 0;
  l->closing = 1;
  uv_close((uv_handle_t *)&l->timer, timer_closed);
}

void kuala_leader_stop(kuala_leader_t *l, kuala_leader_stopped_cb cb, void *data)
{
  if (l->stopping) {
    return;
  }
  l->stopping = 1;
  l->stopped_cb = cb;
  l->stopped_data = data;
  l->started_leading = NULL;
  l->stopped_leading = NULL;
  l->new_leader = NULL;
  uv_timer_stop(&l->timer);
  finish_stop(l);
}

char *kuala_leader_default_identity(void)
{
  char host[256];
  if (gethostname(host, sizeof(host)) != 0) {
    snprintf(host, sizeof(host), "kuala");
  }
  host[sizeof(host) - 1] = '\0';
  unsigned char rnd[16];
  size_t got = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  if (f) {
    got = fread(rnd, 1, sizeof(rnd), f);
    fclose(f);
  }
  uint64_t x = uv_hrtime() ^ ((uint64_t)getpid() << 20);
  for (size_t i = got; i < sizeof(rnd); i++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    rnd[i] = (unsigned char)(x >> 56);
  }
  char out[256 + 40];
  int n = snprintf(out, sizeof(out), "%s_", host);
  for (size_t i = 0; i < sizeof(rnd) && n > 0 && (size_t)n + 2 < sizeof(out); i++) {
    n += snprintf(out + n, sizeof(out) - (size_t)n, "%02x", rnd[i]);
  }
  return kuala_strdup(out);
}
