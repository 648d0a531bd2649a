/*
 * Unit tests for the manager against the emulator (a child process):
 * a watch restricted to a namespace and a label selector shares the
 * resource's unfiltered informer with the cache reads, so the reconcile an
 * event starts always reads the object (it used to run a second informer,
 * whose events could come before the read cache had the object), and it
 * still sees only its own objects, with adds and deletes when labels
 * change, also when a hold is released and every primary is enqueued.
 */
#include <check.h>

#include "kuala_test.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/clienttest.h"
#include "helpers/emuproc.h"
#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/controller.h"
#include "kuala/error.h"
#include "kuala/informer.h"
#include "kuala/manager.h"

typedef struct {
  uv_loop_t loop;
  emuproc_t emu;
  kuala_client_t *c;
  kuala_informers_t *inf;
  kuala_manager_t *m;
  int started, start_err;
  /* What the reconciles saw. */
  int reconciles, read_missing, preds;
  char seen[4096]; /* "ns/name;" per reconcile */
} env_t;

static int emu_pid;

static void kill_emulator(void)
{
  if (emu_pid > 0) {
    kill(emu_pid, SIGKILL);
  }
}

static void on_started(void *data, int err, kuala_controller_t *c)
{
  (void)c;
  env_t *e = data;
  e->started = 1;
  e->start_err = err;
}

static int reconcile(void *data, kuala_controller_job_t *job, const char *ns, const char *name)
{
  env_t *e = data;
  const kuala_backend_t *be = kuala_manager_backend(e->m);
  kuala_cache_query_t q;
  memset(&q, 0, sizeof q);
  q.api_version = "v1";
  q.kind = "ConfigMap";
  q.ns = ns;
  q.name = name;
  const char *json = NULL;
  size_t len = 0;
  int rc = be->cache_get(e->m, &q, &json, &len);
  e->reconciles++;
  if (rc != 0) {
    e->read_missing++; /* the event's object is not in the read cache */
  }
  size_t l = strlen(e->seen);
  snprintf(e->seen + l, sizeof e->seen - l, "%s/%s;", ns, name);
  kuala_controller_result_t res = {0, 0, 0, NULL};
  kuala_controller_job_done(job, &res);
  return 0;
}

/* Counts the events that reach the bundle's own predicate. */
static int count_pred(void *data, kuala_event_type_t type, const kuala_obj_t *old,
                      const kuala_obj_t *obj)
{
  (void)type;
  (void)old;
  (void)obj;
  ((env_t *)data)->preds++;
  return 1;
}

static int req(env_t *e, const char *method, const char *path, const char *body)
{
  ct_result_t r;
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(
      kuala_client_request(NULL, e->c, method, path,
                           body ? (strcmp(method, "PATCH") == 0 ? "application/merge-patch+json"
                                                                : "application/json")
                                : NULL,
                           body, body ? strlen(body) : 0, NULL, ct_on_resp, &r),
      0);
  ck_assert_msg(ct_run_until(&e->loop, &r.calls, 20000), "%s %s did not complete", method, path);
  int st = r.status;
  ct_result_free(&r);
  return st;
}

static void create_cm(env_t *e, const char *ns, const char *name, const char *app)
{
  char path[256], body[512];
  snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", ns);
  snprintf(body, sizeof body,
           "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
           "\"namespace\":\"%s\"%s%s%s},\"data\":{\"k\":\"v\"}}",
           name, ns, app ? ",\"labels\":{\"app\":\"" : "", app ? app : "", app ? "\"}" : "");
  ck_assert_int_eq(req(e, "POST", path, body), 201);
}

static int count_in(const char *s, const char *what)
{
  int n = 0;
  for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) {
    n++;
  }
  return n;
}

START_TEST(test_manager_filtered_watch_shares_the_read_cache)
{
  env_t e;
  memset(&e, 0, sizeof e);
  ck_assert_int_eq(uv_loop_init(&e.loop), 0);
  ck_assert_int_eq(emuproc_start(&e.emu, &e.loop, NULL), 0);
  emu_pid = e.emu.proc.pid;
  atexit(kill_emulator);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(e.emu.url);
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  ck_assert_int_eq(kuala_client_new(&e.c, &e.loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  ck_assert_int_eq(kuala_informers_new_client(&e.inf, &e.loop, e.c), 0);
  ck_assert_int_eq(kuala_manager_new(&e.m, &e.loop, e.c, e.inf), 0);
  ck_assert_int_eq(req(&e, "POST", "/api/v1/namespaces",
                       "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
                       "\"other\"}}"),
                   201);
  /* Present before the controller starts: one in, two out. */
  create_cm(&e, "default", "pre-in", "yes");
  create_cm(&e, "default", "pre-out", "no");
  create_cm(&e, "other", "pre-other", "yes");

  kuala_watch_decl_t w;
  memset(&w, 0, sizeof w);
  w.api_version = "v1";
  w.kind = "ConfigMap";
  w.ns = "default";
  w.label_selector = "app=yes";
  w.predicate = count_pred;
  w.predicate_data = &e;
  kuala_controller_decl_t d = {"filtered", &w, 1, 1, reconcile, &e};
  ck_assert_int_eq(kuala_manager_add_controller(e.m, &d, on_started, &e), 0);
  CT_UNTIL(&e.loop, e.started, 20000);
  ck_assert_int_eq(e.start_err, 0);
  CT_UNTIL(&e.loop, e.reconciles >= 1, 20000);

  /* One informer for ConfigMaps: the watch and the reads share it. */
  ck_assert_uint_eq(kuala_informers_count(e.inf), 1);

  /* Objects created now: each matching one is reconciled and read. */
  char name[64];
  for (int i = 0; i < 20; i++) {
    snprintf(name, sizeof name, "in-%d", i);
    create_cm(&e, "default", name, "yes");
    snprintf(name, sizeof name, "out-%d", i);
    create_cm(&e, "default", name, "no");
    snprintf(name, sizeof name, "other-%d", i);
    create_cm(&e, "other", name, "yes");
  }
  CT_UNTIL(&e.loop, count_in(e.seen, "default/in-19;") >= 1, 20000);
  /* A label change into the selection is an add; out of it a delete. */
  ck_assert_int_eq(req(&e, "PATCH", "/api/v1/namespaces/default/configmaps/out-3",
                       "{\"metadata\":{\"labels\":{\"app\":\"yes\"}}}"),
                   200);
  CT_UNTIL(&e.loop, count_in(e.seen, "default/out-3;") >= 1, 20000);
  int before = count_in(e.seen, "default/in-5;");
  ck_assert_int_eq(req(&e, "PATCH", "/api/v1/namespaces/default/configmaps/in-5",
                       "{\"metadata\":{\"labels\":{\"app\":\"no\"}}}"),
                   200);
  CT_UNTIL(&e.loop, count_in(e.seen, "default/in-5;") > before, 20000);
  /* Changes outside the selection start nothing. */
  int n = e.reconciles, p = e.preds;
  ck_assert_int_eq(
      req(&e, "PATCH", "/api/v1/namespaces/default/configmaps/in-5", "{\"data\":{\"k\":\"w\"}}"),
      200);
  ck_assert_int_eq(
      req(&e, "PATCH", "/api/v1/namespaces/other/configmaps/other-1", "{\"data\":{\"k\":\"w\"}}"),
      200);
  ck_assert_int_eq(
      req(&e, "PATCH", "/api/v1/namespaces/default/configmaps/in-6", "{\"data\":{\"k\":\"w\"}}"),
      200);
  CT_UNTIL(&e.loop, count_in(e.seen, "default/in-6;") >= 2, 20000);
  ck_assert_int_eq(e.reconciles, n + 1);
  ck_assert_int_eq(e.preds, p + 1);

  ck_assert_int_eq(e.read_missing, 0);
  ck_assert_int_eq(count_in(e.seen, "default/pre-in;"), 1);
  ck_assert_int_eq(count_in(e.seen, "pre-out;"), 0);
  ck_assert_int_eq(count_in(e.seen, "other/"), 0);
  ck_assert_int_eq(count_in(e.seen, "default/out-"), 1); /* out-3, relabelled */
  for (int i = 0; i < 20; i++) {
    snprintf(name, sizeof name, "default/in-%d;", i);
    ck_assert_int_ge(count_in(e.seen, name), 1);
  }
  ck_assert_uint_eq(kuala_informers_count(e.inf), 1);

  /* Held and let go (leader election): every primary object is enqueued
   * again, which means the watch's objects only: pre-in, in-* but in-5,
   * out-3. */
  kuala_manager_hold(e.m, 1);
  n = e.reconciles;
  e.seen[0] = '\0';
  kuala_manager_hold(e.m, 0);
  CT_UNTIL(&e.loop, e.reconciles >= n + 21, 20000);
  ct_run_for(&e.loop, 200);
  ck_assert_int_eq(e.reconciles, n + 21);
  ck_assert_int_eq(count_in(e.seen, "default/out-3;"), 1);
  ck_assert_int_eq(count_in(e.seen, "default/in-5;"), 0);
  ck_assert_int_eq(count_in(e.seen, "other/"), 0);
  ck_assert_int_eq(e.read_missing, 0);

  kuala_manager_close(e.m, NULL, NULL);
  kuala_manager_cancel(e.m);
  uv_run(&e.loop, UV_RUN_NOWAIT);
  kuala_informers_close(e.inf);
  kuala_client_close(e.c);
  emuproc_stop(&e.emu, &e.loop);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  emu_pid = 0;
  ck_assert_int_eq(uv_loop_close(&e.loop), 0);
}
END_TEST

static Suite *manager_suite(void)
{
  Suite *s = suite_create("manager");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_manager_filtered_watch_shares_the_read_cache);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(manager_suite());
}
