/*
 * Leader election (core/control/leader.c) against the kuala-apiserver
 * emulator: of two candidates exactly one leads and keeps leading; stopping
 * the leader releases the Lease and the other takes over, bumping
 * leaseTransitions; stopping the last one leaves the Lease unheld. Also the
 * option checks and the default identity's shape.
 *
 * Bounds only (how long to wait at most), no timing assertions.
 */
#include "kuala_test.h"
#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "helpers/clienttest.h"
#include "helpers/emuproc.h"
#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/error.h"
#include "kuala/leader.h"

typedef struct {
  int started, stopped, closed;
} events_t;

static void on_started(void *data)
{
  ((events_t *)data)->started++;
}

static void on_stopped(void *data)
{
  ((events_t *)data)->stopped++;
}

static void on_closed(void *data)
{
  ((events_t *)data)->closed++;
}

static void on_closed_flag(void *data)
{
  (*(int *)data)++;
}

static kuala_leader_t *candidate(uv_loop_t *loop, kuala_client_t *c, const char *id, events_t *ev)
{
  kuala_leader_opts_t o;
  memset(&o, 0, sizeof(o));
  o.ns = "default";
  o.name = "unit-lock";
  o.identity = id;
  o.lease_duration_ms = 3000;
  o.renew_deadline_ms = 2000;
  o.retry_period_ms = 200;
  o.started_leading = on_started;
  o.stopped_leading = on_stopped;
  o.data = ev;
  kuala_leader_t *l = NULL;
  ck_assert_int_eq(kuala_leader_new(&l, loop, c, &o), 0);
  return l;
}

static int run_until_leader(uv_loop_t *loop, kuala_leader_t *l, uint64_t ms)
{
  uint64_t end = ct_now_ms() + ms;
  while (!kuala_leader_is_leader(l) && ct_now_ms() < end) {
    uv_run(loop, UV_RUN_ONCE);
  }
  return kuala_leader_is_leader(l);
}

/* The Lease's spec.<field> as text (static copy). */
static const char *lease_field(uv_loop_t *loop, kuala_client_t *c, const char *field)
{
  static char out[256];
  ct_result_t r;
  memset(&r, 0, sizeof(r));
  kuala_client_target_t t = {"coordination.k8s.io", "v1", "leases", "default", "unit-lock", NULL};
  kuala_client_req_t *req;
  ck_assert_int_eq(kuala_client_get(&req, c, &t, NULL, ct_on_resp, &r), 0);
  ck_assert(ct_run_until(loop, &r.calls, 10000));
  ck_assert_int_eq(r.err, 0);
  json_object *obj = json_tokener_parse(r.body);
  json_object *spec = NULL, *v = NULL;
  out[0] = '\0';
  if (json_object_object_get_ex(obj, "spec", &spec) && json_object_object_get_ex(spec, field, &v)) {
    snprintf(out, sizeof(out), "%s", json_object_get_string(v));
  }
  json_object_put(obj);
  ct_result_free(&r);
  return out;
}

START_TEST(test_leader_one_leads_release_hands_over)
{
  uv_loop_t loop;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  emuproc_t emu;
  memset(&emu, 0, sizeof(emu));
  ck_assert_int_eq(emuproc_start(&emu, &loop, NULL), 0);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(emu.url);
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  kuala_client_t *ca, *cb, *cq;
  ck_assert_int_eq(kuala_client_new(&ca, &loop, &cfg), 0);
  ck_assert_int_eq(kuala_client_new(&cb, &loop, &cfg), 0);
  ck_assert_int_eq(kuala_client_new(&cq, &loop, &cfg), 0);
  kuala_client_config_free(&cfg);

  events_t ea = {0}, eb = {0};
  kuala_leader_t *a = candidate(&loop, ca, "host_a", &ea);
  kuala_leader_t *b = candidate(&loop, cb, "host_b", &eb);
  ck_assert_int_eq(kuala_leader_start(a), 0);
  ck_assert_int_eq(kuala_leader_start(b), 0);
  ck_assert_int_eq(kuala_leader_start(a), KUALA_EBUSY);

  /* Exactly one of them leads, and keeps leading for a while (several
   * renewals). */
  uint64_t end = ct_now_ms() + 10000;
  while (!kuala_leader_is_leader(a) && !kuala_leader_is_leader(b) && ct_now_ms() < end) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  ck_assert_int_eq(kuala_leader_is_leader(a) + kuala_leader_is_leader(b), 1);
  ct_run_for(&loop, 1500);
  ck_assert_int_eq(kuala_leader_is_leader(a) + kuala_leader_is_leader(b), 1);
  kuala_leader_t *leader = kuala_leader_is_leader(a) ? a : b;
  kuala_leader_t *standby = leader == a ? b : a;
  events_t *el = leader == a ? &ea : &eb;
  events_t *es = leader == a ? &eb : &ea;
  ck_assert_int_eq(el->started, 1);
  ck_assert_int_eq(el->stopped, 0);
  ck_assert_int_eq(es->started, 0);
  ck_assert_int_eq(kuala_leader_terms(leader), 1);
  ck_assert_str_eq(lease_field(&loop, cq, "holderIdentity"), kuala_leader_identity(leader));
  ck_assert_str_eq(lease_field(&loop, cq, "leaseDurationSeconds"), "3");
  ck_assert_str_eq(lease_field(&loop, cq, "leaseTransitions"), "0");

  /* Stopping the leader releases the Lease; the standby takes over well
   * before the 3 s lease would have expired on its own (bound: 2.5 s). */
  events_t closed = {0};
  kuala_leader_stop(leader, on_closed, &closed);
  ck_assert(ct_run_until(&loop, &closed.closed, 5000));
  ck_assert_int_eq(el->stopped, 0); /* stop does not report a loss */
  ck_assert(run_until_leader(&loop, standby, 2500));
  ck_assert_int_eq(es->started, 1);
  ck_assert_str_eq(lease_field(&loop, cq, "holderIdentity"), kuala_leader_identity(standby));
  ck_assert_str_eq(lease_field(&loop, cq, "leaseTransitions"), "1");

  /* The last one stops: the Lease is left unheld. */
  closed.closed = 0;
  kuala_leader_stop(standby, on_closed, &closed);
  ck_assert(ct_run_until(&loop, &closed.closed, 5000));
  ck_assert_str_eq(lease_field(&loop, cq, "holderIdentity"), "");
  ck_assert_str_eq(lease_field(&loop, cq, "leaseDurationSeconds"), "1");

  kuala_client_close(ca);
  kuala_client_close(cb);
  kuala_client_close(cq);
  emuproc_stop(&emu, &loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* POST to the emulator's admin port (pause/resume every API request). */
static void admin(uv_loop_t *loop, const char *admin_url, const char *path)
{
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(admin_url);
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  kuala_client_t *c;
  ck_assert_int_eq(kuala_client_new(&c, loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  ct_result_t r;
  memset(&r, 0, sizeof(r));
  kuala_client_req_t *req;
  ck_assert_int_eq(kuala_client_request(&req, c, "POST", path, NULL, NULL, 0, NULL, ct_on_resp, &r),
                   0);
  ck_assert(ct_run_until(loop, &r.calls, 10000));
  ck_assert_int_eq(r.err, 0);
  ct_result_free(&r);
  kuala_client_close(c);
}

/* A leader that cannot renew within the renew deadline stops leading
 * (every controller would be held), and leads again once it can. */
START_TEST(test_leader_loses_lease_when_renewals_fail)
{
  uv_loop_t loop;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  emuproc_t emu;
  memset(&emu, 0, sizeof(emu));
  const char *args[] = {"--admin-port", "0", NULL};
  ck_assert_int_eq(emuproc_start(&emu, &loop, args), 0);
  ck_assert_int_gt(emu.admin_port, 0);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(emu.url);
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  kuala_client_t *c;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  events_t ev = {0, 0, 0};
  kuala_leader_t *l = candidate(&loop, c, "host_solo", &ev);
  ck_assert_int_eq(kuala_leader_start(l), 0);
  ck_assert(run_until_leader(&loop, l, 10000));
  ck_assert_int_eq(ev.started, 1);

  /* Every request now hangs: after the 2 s renew deadline it stops leading
   * (bound: 6 s). */
  admin(&loop, emu.admin_url, "/faults/pause");
  ck_assert(ct_run_until(&loop, &ev.stopped, 6000));
  ck_assert_int_eq(kuala_leader_is_leader(l), 0);

  /* The API server answers again: the Lease still names us, so we renew
   * it and lead again (a second term). */
  admin(&loop, emu.admin_url, "/faults/resume");
  ck_assert(run_until_leader(&loop, l, 10000));
  ck_assert_int_eq(ev.started, 2);
  ck_assert_uint_eq(kuala_leader_terms(l), 2);

  int closed = 0;
  kuala_leader_stop(l, on_closed_flag, &closed);
  ck_assert(ct_run_until(&loop, &closed, 5000));
  kuala_client_close(c);
  emuproc_stop(&emu, &loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_leader_bad_options_and_identity)
{
  uv_loop_t loop;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup("http://127.0.0.1:1");
  kuala_client_t *c;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  kuala_leader_opts_t o;
  memset(&o, 0, sizeof(o));
  o.ns = "default";
  o.name = "x";
  o.identity = "me";
  kuala_leader_t *l = NULL;
  o.retry_period_ms = 10000; /* not below the 10 s renew deadline */
  ck_assert_int_eq(kuala_leader_new(&l, &loop, c, &o), KUALA_EINVAL);
  o.retry_period_ms = 0;
  o.renew_deadline_ms = 20000; /* not below the 15 s lease */
  ck_assert_int_eq(kuala_leader_new(&l, &loop, c, &o), KUALA_EINVAL);
  o.renew_deadline_ms = 0;
  o.identity = NULL;
  ck_assert_int_eq(kuala_leader_new(&l, &loop, c, &o), KUALA_EINVAL);
  ck_assert_ptr_null(l);

  char *id1 = kuala_leader_default_identity();
  char *id2 = kuala_leader_default_identity();
  ck_assert_str_ne(id1, id2);
  const char *us = strrchr(id1, '_');
  ck_assert_ptr_nonnull(us);
  ck_assert_int_eq(strlen(us + 1), 32);
  for (const char *p = us + 1; *p; p++) {
    ck_assert(isxdigit((unsigned char)*p));
  }
  kuala_free(id1);
  kuala_free(id2);
  kuala_client_close(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
  char bin[1024];
  if (emuproc_find(bin, sizeof(bin)) != 0) {
    fprintf(stderr, "test_leader: the emulator binary %s is missing\n", bin);
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("leader");
  TCase *tc = tcase_create("leader");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_leader_bad_options_and_identity);
  tcase_add_test(tc, test_leader_one_leads_release_hands_over);
  tcase_add_test(tc, test_leader_loses_lease_when_renewals_fail);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
