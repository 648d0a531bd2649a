/*
 * The API client against the kuala-apiserver emulator (a child process on
 * 127.0.0.1): CRUD on a ConfigMap and on a custom resource, 404/409
 * mapping, paging through 5,000 objects, watch resume from a
 * resourceVersion, server-side apply conflicts, token auth and the
 * emulator's generated kubeconfig.
 *
 * When the emulator is not part of the tree (no apiserver/CMakeLists.txt)
 * the suite says so and exits successfully; when it is part of the tree
 * but the binary is missing, that is a failure.
 */
#include "kuala_test.h"
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/clienttest.h"
#include "helpers/emuproc.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/client.h"
#include "kuala/error.h"
#include "kuala/kubeconfig.h"

typedef struct {
  uv_loop_t loop;
  emuproc_t emu;
  kuala_client_t *c;
} env_t;

static void env_init_args(env_t *e, const char *const *args, const char *token)
{
  ck_assert_int_eq(uv_loop_init(&e->loop), 0);
  ck_assert_int_eq(emuproc_start(&e->emu, &e->loop, args), 0);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(e->emu.url);
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  cfg.token = token ? kuala_strdup(token) : NULL;
  ck_assert_int_eq(kuala_client_new(&e->c, &e->loop, &cfg), 0);
  kuala_client_config_free(&cfg);
}

static void env_init(env_t *e)
{
  env_init_args(e, NULL, NULL);
}

static void env_done(env_t *e)
{
  kuala_client_close(e->c);
  emuproc_stop(&e->emu, &e->loop);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(e->emu.closed, 2);
  ck_assert_int_eq(uv_loop_close(&e->loop), 0);
}

static void wait_done(env_t *e, ct_result_t *r)
{
  ck_assert_msg(ct_run_until(&e->loop, &r->calls, 20000), "request did not complete");
}

/* Parse r->body and return a string field at a dotted path (static copy). */
static const char *field(const ct_result_t *r, const char *a, const char *b)
{
  static char out[256];
  out[0] = '\0';
  json_object *obj = r->body ? json_tokener_parse(r->body) : NULL;
  json_object *v = NULL, *w = NULL;
  if (obj && json_object_object_get_ex(obj, a, &v)) {
    if (!b) {
      snprintf(out, sizeof(out), "%s", json_object_get_string(v));
    } else if (json_object_object_get_ex(v, b, &w)) {
      snprintf(out, sizeof(out), "%s", json_object_get_string(w));
    }
  }
  json_object_put(obj);
  return out;
}

static const kuala_client_target_t cms = {NULL, "v1", "configmaps", "default", NULL, NULL};

START_TEST(test_client_emu_configmap_crud_and_errors)
{
  env_t e;
  env_init(&e);
  kuala_client_target_t cm = cms;
  cm.name = "crud";
  ct_result_t r = {0};

  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm, NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_ENOTFOUND);
  ck_assert_int_eq(r.status, 404);
  ck_assert_str_eq(r.reason, "NotFound");
  ct_result_free(&r);

  const char *body =
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"crud\"},"
      "\"data\":{\"k\":\"v1\"}}";
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &cms, body, strlen(body), NULL, ct_on_resp, &r),
                   0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_int_eq(r.status, 201);
  char rv1[64];
  snprintf(rv1, sizeof(rv1), "%s", field(&r, "metadata", "resourceVersion"));
  ck_assert_int_gt(strlen(rv1), 0);
  ct_result_free(&r);

  /* Create again: 409 AlreadyExists. */
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &cms, body, strlen(body), NULL, ct_on_resp, &r),
                   0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_EEXISTS);
  ck_assert_str_eq(r.reason, "AlreadyExists");
  ct_result_free(&r);

  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm, NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(field(&r, "data", "k"), "v1");
  ct_result_free(&r);

  /* Update with the current RV, then with the stale one: 409 Conflict. */
  char upd[512];
  snprintf(upd, sizeof(upd),
           "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"crud\","
           "\"resourceVersion\":\"%s\"},\"data\":{\"k\":\"v2\"}}",
           rv1);
  ck_assert_int_eq(kuala_client_update(NULL, e.c, &cm, upd, strlen(upd), NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(field(&r, "data", "k"), "v2");
  ct_result_free(&r);
  ck_assert_int_eq(kuala_client_update(NULL, e.c, &cm, upd, strlen(upd), NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_ECONFLICT);
  ck_assert_str_eq(r.reason, "Conflict");
  ct_result_free(&r);

  /* Merge patch. */
  const char *mp = "{\"data\":{\"extra\":\"yes\"}}";
  ck_assert_int_eq(
      kuala_client_patch(NULL, e.c, &cm, KUALA_PATCH_MERGE, mp, strlen(mp), NULL, ct_on_resp, &r),
      0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(field(&r, "data", "extra"), "yes");
  ct_result_free(&r);

  /* Delete with a wrong uid precondition: 409; then for real. */
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.precondition_uid = "not-the-uid";
  ck_assert_int_eq(kuala_client_delete(NULL, e.c, &cm, &o, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_ECONFLICT);
  ct_result_free(&r);
  kuala_client_opts_init(&o);
  o.propagation_policy = "Background";
  ck_assert_int_eq(kuala_client_delete(NULL, e.c, &cm, &o, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ct_result_free(&r);
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &cm, NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_ENOTFOUND);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

typedef struct {
  int calls, err;
  char resource[128];
  int namespaced;
} resolved_t;

static void on_resolved(void *data, int err, const kuala_client_resource_t *res)
{
  resolved_t *r = data;
  r->calls++;
  r->err = err;
  if (res) {
    snprintf(r->resource, sizeof(r->resource), "%s", res->resource);
    r->namespaced = res->namespaced;
  }
}

START_TEST(test_client_emu_custom_resource_crud)
{
  env_t e;
  env_init(&e);
  const char *crd =
      "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
      "\"metadata\":{\"name\":\"crontabs.stable.example.com\"},\"spec\":{\"group\":"
      "\"stable.example.com\",\"scope\":\"Namespaced\",\"names\":{\"plural\":\"crontabs\","
      "\"singular\":\"crontab\",\"kind\":\"CronTab\",\"shortNames\":[\"ct\"]},\"versions\":[{"
      "\"name\":\"v1\",\"served\":true,\"storage\":true,\"subresources\":{\"status\":{}},"
      "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":"
      "\"object\",\"properties\":{\"cronSpec\":{\"type\":\"string\"}}},\"status\":{\"type\":"
      "\"object\",\"properties\":{\"phase\":{\"type\":\"string\"}}}}}}}]}}";
  kuala_client_target_t crds = {
      "apiextensions.k8s.io", "v1", "customresourcedefinitions", NULL, NULL, NULL};
  ct_result_t r = {0};
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &crds, crd, strlen(crd), NULL, ct_on_resp, &r),
                   0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ct_result_free(&r);

  /* Discovery: the kind resolves once the CRD is served (refresh on miss). */
  resolved_t res = {0};
  for (int i = 0; i < 50; i++) {
    memset(&res, 0, sizeof(res));
    ck_assert_int_eq(
        kuala_client_resolve(e.c, "stable.example.com/v1", "CronTab", on_resolved, &res), 0);
    ck_assert(ct_run_until(&e.loop, &res.calls, 10000));
    if (res.err == 0) {
      break;
    }
    ct_run_for(&e.loop, 50);
  }
  ck_assert_int_eq(res.err, 0);
  ck_assert_str_eq(res.resource, "crontabs");
  ck_assert_int_eq(res.namespaced, 1);

  /* Core kinds resolve too: scope from the discovery document. */
  memset(&res, 0, sizeof(res));
  ck_assert_int_eq(kuala_client_resolve(e.c, "v1", "Namespace", on_resolved, &res), 0);
  ck_assert(ct_run_until(&e.loop, &res.calls, 10000));
  ck_assert_int_eq(res.err, 0);
  ck_assert_str_eq(res.resource, "namespaces");
  ck_assert_int_eq(res.namespaced, 0);
  memset(&res, 0, sizeof(res));
  ck_assert_int_eq(kuala_client_resolve(e.c, "apps/v1", "Deployment", on_resolved, &res), 0);
  ck_assert(ct_run_until(&e.loop, &res.calls, 10000));
  ck_assert_int_eq(res.err, 0);
  ck_assert_str_eq(res.resource, "deployments");
  ck_assert_int_eq(res.namespaced, 1);

  kuala_client_target_t cts = {"stable.example.com", "v1", "crontabs", "default", NULL, NULL};
  const char *obj =
      "{\"apiVersion\":\"stable.example.com/v1\",\"kind\":\"CronTab\",\"metadata\":{\"name\":"
      "\"ct1\"},\"spec\":{\"cronSpec\":\"* * * * */5\"}}";
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &cts, obj, strlen(obj), NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(field(&r, "spec", "cronSpec"), "* * * * */5");
  ct_result_free(&r);

  kuala_client_target_t ct1 = cts;
  ct1.name = "ct1";
  kuala_client_target_t st = ct1;
  st.subresource = "status";
  const char *sp = "{\"status\":{\"phase\":\"Running\"}}";
  ck_assert_int_eq(
      kuala_client_patch(NULL, e.c, &st, KUALA_PATCH_MERGE, sp, strlen(sp), NULL, ct_on_resp, &r),
      0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(field(&r, "status", "phase"), "Running");
  ct_result_free(&r);

  /* JSON patch on the main resource. */
  const char *jp = "[{\"op\":\"replace\",\"path\":\"/spec/cronSpec\",\"value\":\"@daily\"}]";
  ck_assert_int_eq(
      kuala_client_patch(NULL, e.c, &ct1, KUALA_PATCH_JSON, jp, strlen(jp), NULL, ct_on_resp, &r),
      0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(field(&r, "spec", "cronSpec"), "@daily");
  ct_result_free(&r);

  /* Strategic merge patch on a CR: 415 from the server. */
  ck_assert_int_eq(kuala_client_patch(NULL, e.c, &ct1, KUALA_PATCH_STRATEGIC, sp, strlen(sp), NULL,
                                      ct_on_resp, &r),
                   0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_EUNSUPPORTEDMEDIA);
  ct_result_free(&r);

  ck_assert_int_eq(kuala_client_list(NULL, e.c, &cts, NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(field(&r, "kind", NULL), "CronTabList");
  ct_result_free(&r);

  ck_assert_int_eq(kuala_client_delete(NULL, e.c, &ct1, NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ct_result_free(&r);
  ck_assert_int_eq(kuala_client_get(NULL, e.c, &ct1, NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_ENOTFOUND);
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

/* ---- paging ------------------------------------------------------------ */

#define NOBJ 5000
#define INFLIGHT 32

typedef struct {
  kuala_client_t *c;
  int next, done, failed, first_err;
} filler_t;

static void fill_one(filler_t *f);

static void on_created(void *data, int err, kuala_client_resp_t *resp)
{
  filler_t *f = data;
  f->done++;
  if (err != 0) {
    f->failed++;
    f->first_err = f->first_err ? f->first_err : err;
  }
  fill_one(f);
}

static void fill_one(filler_t *f)
{
  if (f->next >= NOBJ) {
    return;
  }
  char body[256];
  int n = snprintf(body, sizeof(body),
                   "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                   "\"cm-%05d\"},\"data\":{\"i\":\"%d\"}}",
                   f->next, f->next);
  f->next++;
  kuala_client_target_t t = {NULL, "v1", "configmaps", "paging", NULL, NULL};
  ck_assert_int_eq(kuala_client_create(NULL, f->c, &t, body, (size_t)n, NULL, on_created, f), 0);
}

START_TEST(test_client_emu_paging_5000)
{
  env_t e;
  env_init(&e);
  ct_result_t r = {0};
  const char *ns =
      "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"paging\"}}";
  kuala_client_target_t nss = {NULL, "v1", "namespaces", NULL, NULL, NULL};
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &nss, ns, strlen(ns), NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ct_result_free(&r);

  filler_t f = {e.c, 0, 0, 0, 0};
  for (int i = 0; i < INFLIGHT; i++) {
    fill_one(&f);
  }
  int all = 0;
  uint64_t deadline = ct_now_ms() + 120000;
  while (f.done < NOBJ && ct_now_ms() < deadline) {
    uv_run(&e.loop, UV_RUN_ONCE);
  }
  all = f.done == NOBJ;
  ck_assert_msg(all, "only %d of %d creates completed", f.done, NOBJ);
  ck_assert_msg(f.failed == 0, "%d creates failed (first: %s)", f.failed,
                kuala_strerror(f.first_err));

  /* Page through with limit=500: every object once, one RV for all pages. */
  kuala_client_target_t t = {NULL, "v1", "configmaps", "paging", NULL, NULL};
  char cont[1024] = "";
  char rv[64] = "";
  int pages = 0, items = 0, last_seen = -1, ordered = 1;
  do {
    kuala_client_opts_t o;
    kuala_client_opts_init(&o);
    o.limit = 500;
    o.continue_token = cont[0] ? cont : NULL;
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(kuala_client_list(NULL, e.c, &t, &o, ct_on_resp, &r), 0);
    wait_done(&e, &r);
    ck_assert_int_eq(r.err, 0);
    json_object *list = json_tokener_parse(r.body);
    ck_assert_ptr_nonnull(list);
    json_object *md, *arr, *v;
    ck_assert(json_object_object_get_ex(list, "metadata", &md));
    ck_assert(json_object_object_get_ex(list, "items", &arr));
    ck_assert(json_object_object_get_ex(md, "resourceVersion", &v));
    if (pages == 0) {
      snprintf(rv, sizeof(rv), "%s", json_object_get_string(v));
    } else {
      ck_assert_str_eq(rv, json_object_get_string(v));
    }
    size_t n = json_object_array_length(arr);
    ck_assert_uint_le(n, 500);
    for (size_t i = 0; i < n; i++) {
      json_object *it = json_object_array_get_idx(arr, i), *imd, *name;
      ck_assert(json_object_object_get_ex(it, "metadata", &imd));
      ck_assert(json_object_object_get_ex(imd, "name", &name));
      int idx = (int)strtol(json_object_get_string(name) + 3, NULL, 10);
      ordered &= idx == last_seen + 1;
      last_seen = idx;
    }
    items += (int)n;
    cont[0] = '\0';
    if (json_object_object_get_ex(md, "continue", &v) && json_object_get_string_len(v) > 0) {
      snprintf(cont, sizeof(cont), "%s", json_object_get_string(v));
    }
    json_object_put(list);
    ct_result_free(&r);
    pages++;
  } while (cont[0] && pages < 100);
  ck_assert_int_eq(items, NOBJ);
  ck_assert_int_eq(pages, NOBJ / 500);
  ck_assert_msg(ordered, "items not in name order or some missing");
  env_done(&e);
}
END_TEST

/* ---- watch resume ----------------------------------------------------- */

typedef struct {
  int events, done, done_err;
  char names[512];
  char last_rv[64];
  kuala_watch_t *w;
} wseen_t;

static void on_wevent(void *data, const kuala_watch_event_t *ev)
{
  wseen_t *s = data;
  json_object *md, *v;
  if (ev->type == KUALA_WATCH_BOOKMARK) {
    return;
  }
  s->events++;
  if (json_object_object_get_ex(ev->object, "metadata", &md)) {
    if (json_object_object_get_ex(md, "name", &v)) {
      size_t used = strlen(s->names);
      snprintf(s->names + used, sizeof(s->names) - used, "%s%s:%s ",
               ev->type == KUALA_WATCH_ADDED      ? "A"
               : ev->type == KUALA_WATCH_MODIFIED ? "M"
               : ev->type == KUALA_WATCH_DELETED  ? "D"
                                                  : "?",
               "", json_object_get_string(v));
    }
    if (json_object_object_get_ex(md, "resourceVersion", &v)) {
      snprintf(s->last_rv, sizeof(s->last_rv), "%s", json_object_get_string(v));
    }
  }
}

static void on_wdone(void *data, int err, kuala_client_resp_t *resp)
{
  wseen_t *s = data;
  s->done++;
  s->done_err = err;
}

static void create_cm(env_t *e, const char *name, char *rv_out, size_t rvlen)
{
  char body[256];
  int n = snprintf(body, sizeof(body),
                   "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\"}}",
                   name);
  ct_result_t r = {0};
  ck_assert_int_eq(kuala_client_create(NULL, e->c, &cms, body, (size_t)n, NULL, ct_on_resp, &r), 0);
  wait_done(e, &r);
  ck_assert_int_eq(r.err, 0);
  if (rv_out) {
    snprintf(rv_out, rvlen, "%s", field(&r, "metadata", "resourceVersion"));
  }
  ct_result_free(&r);
}

START_TEST(test_client_emu_watch_resume_from_rv)
{
  env_t e;
  env_init(&e);
  char rv_a[64];
  create_cm(&e, "w-a", rv_a, sizeof(rv_a));
  create_cm(&e, "w-b", NULL, 0);
  create_cm(&e, "w-c", NULL, 0);

  /* Resume from a's RV: b and c arrive, a does not. */
  wseen_t s;
  memset(&s, 0, sizeof(s));
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.resource_version = rv_a;
  o.allow_watch_bookmarks = 1;
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, &o, on_wevent, on_wdone, &s), 0);
  uint64_t deadline = ct_now_ms() + 10000;
  while (s.events < 2 && ct_now_ms() < deadline) {
    uv_run(&e.loop, UV_RUN_ONCE);
  }
  ck_assert_str_eq(s.names, "A:w-b A:w-c ");

  /* A live change arrives on the same stream. */
  create_cm(&e, "w-d", NULL, 0);
  deadline = ct_now_ms() + 10000;
  while (s.events < 3 && ct_now_ms() < deadline) {
    uv_run(&e.loop, UV_RUN_ONCE);
  }
  ck_assert_str_eq(s.names, "A:w-b A:w-c A:w-d ");
  char resume[64];
  snprintf(resume, sizeof(resume), "%s", s.last_rv);
  kuala_watch_stop(s.w);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));
  ck_assert_int_eq(s.done_err, KUALA_ECANCELED);

  /* Changes while no watch is open are replayed from the last RV seen. */
  create_cm(&e, "w-e", NULL, 0);
  memset(&s, 0, sizeof(s));
  o.resource_version = resume;
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, &o, on_wevent, on_wdone, &s), 0);
  deadline = ct_now_ms() + 10000;
  while (s.events < 1 && ct_now_ms() < deadline) {
    uv_run(&e.loop, UV_RUN_ONCE);
  }
  ck_assert_str_eq(s.names, "A:w-e ");
  kuala_watch_stop(s.w);
  ck_assert(ct_run_until(&e.loop, &s.done, 5000));

  /* A server-side timeout ends the stream cleanly (err 0). */
  memset(&s, 0, sizeof(s));
  o.resource_version = resume;
  o.timeout_seconds = 1;
  ck_assert_int_eq(kuala_client_watch(&s.w, e.c, &cms, &o, on_wevent, on_wdone, &s), 0);
  ck_assert(ct_run_until(&e.loop, &s.done, 10000));
  ck_assert_int_eq(s.done_err, 0);
  env_done(&e);
}
END_TEST

START_TEST(test_client_emu_apply_conflict)
{
  env_t e;
  env_init(&e);
  kuala_client_target_t cm = cms;
  cm.name = "applied";
  const char *a1 =
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"applied\"},"
      "\"data\":{\"x\":\"1\"}}";
  const char *a2 =
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"applied\"},"
      "\"data\":{\"x\":\"2\"}}";
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);
  o.field_manager = "mgr-one";
  ct_result_t r = {0};
  ck_assert_int_eq(
      kuala_client_patch(NULL, e.c, &cm, KUALA_PATCH_APPLY, a1, strlen(a1), &o, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  if (r.err == KUALA_EUNSUPPORTEDMEDIA) {
    /* Pending, said loudly: this emulator build has no server-side apply. */
    printf(
        "test_client_emu_apply_conflict: PENDING, the emulator answered 415 to "
        "application/apply-patch+yaml (no server-side apply yet): %s\n",
        r.message ? r.message : "");
    ct_result_free(&r);
    env_done(&e);
    return;
  }
  ck_assert_int_eq(r.err, 0);
  ck_assert_int_eq(r.status, 201); /* apply creates */
  ct_result_free(&r);

  o.field_manager = "mgr-two";
  ck_assert_int_eq(
      kuala_client_patch(NULL, e.c, &cm, KUALA_PATCH_APPLY, a2, strlen(a2), &o, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_ECONFLICT);
  ck_assert_int_eq(r.status, 409);
  ck_assert_uint_ge(r.ncauses, 1);
  ck_assert_ptr_nonnull(r.cause0_field);
  ck_assert_ptr_nonnull(strstr(r.cause0_field, "data.x"));
  ct_result_free(&r);

  o.force = 1;
  ck_assert_int_eq(
      kuala_client_patch(NULL, e.c, &cm, KUALA_PATCH_APPLY, a2, strlen(a2), &o, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(field(&r, "data", "x"), "2");
  ct_result_free(&r);
  env_done(&e);
}
END_TEST

START_TEST(test_client_emu_token_auth_and_kubeconfig)
{
  char dir[] = "/tmp/kuala-client-emu-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char kc[256];
  snprintf(kc, sizeof(kc), "%s/kubeconfig", dir);
  const char *args[] = {"--token", "let-me-in", "--kubeconfig-out", kc, NULL};
  env_t e;
  env_init_args(&e, args, NULL);
  ct_result_t r = {0};
  /* No token: 401 Unauthorized, decoded. */
  ck_assert_int_eq(kuala_client_list(NULL, e.c, &cms, NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_EUNAUTHORIZED);
  ck_assert_int_eq(r.status, 401);
  ct_result_free(&r);

  /* The emulator's kubeconfig carries the token: a client from it works. */
  kuala_client_config_t cfg;
  char *err = NULL;
  kuala_kubeconfig_opts_t ko = {kc, NULL, NULL};
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, &ko, &err), 0);
  ck_assert_str_eq(cfg.token, "let-me-in");
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  kuala_client_t *c2;
  ck_assert_int_eq(kuala_client_new(&c2, &e.loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  ck_assert_str_eq(kuala_client_namespace(c2), "default");
  ck_assert_int_eq(kuala_client_list(NULL, c2, &cms, NULL, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, 0);
  ck_assert_str_eq(field(&r, "kind", NULL), "ConfigMapList");
  ct_result_free(&r);
  kuala_client_close(c2);
  env_done(&e);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- faults injected by the emulator's admin endpoint ------------------ */

static void admin_post(env_t *e, kuala_client_t *admin, const char *path)
{
  ct_result_t r = {0};
  ck_assert_int_eq(
      kuala_client_request(NULL, admin, "POST", path, NULL, NULL, 0, NULL, ct_on_resp, &r), 0);
  wait_done(e, &r);
  ck_assert_msg(r.err == 0, "admin %s: %s", path, kuala_strerror(r.err));
  ct_result_free(&r);
}

static void watch_until_event(env_t *e, wseen_t *s, const kuala_client_opts_t *o)
{
  memset(s, 0, sizeof(*s));
  ck_assert_int_eq(kuala_client_watch(&s->w, e->c, &cms, o, on_wevent, on_wdone, s), 0);
  /* One object exists: with no RV the watch starts with its ADDED. */
  ck_assert(ct_run_until(&e->loop, &s->events, 10000));
}

START_TEST(test_client_emu_faults)
{
  const char *args[] = {"--admin-port", "0", NULL};
  env_t e;
  env_init_args(&e, args, NULL);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(e.emu.admin_url);
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  kuala_client_t *admin;
  ck_assert_int_eq(kuala_client_new(&admin, &e.loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  create_cm(&e, "f-a", NULL, 0);
  kuala_client_opts_t o;
  kuala_client_opts_init(&o);

  /* The server ends every watch cleanly: on_done(0), once. */
  wseen_t s;
  watch_until_event(&e, &s, &o);
  admin_post(&e, admin, "/faults/close-watches");
  ck_assert(ct_run_until(&e.loop, &s.done, 10000));
  ck_assert_int_eq(s.done_err, 0);

  /* Abruptly (connection dropped mid-stream): a transport error, once. */
  watch_until_event(&e, &s, &o);
  admin_post(&e, admin, "/faults/close-watches?abrupt=true");
  ck_assert(ct_run_until(&e.loop, &s.done, 10000));
  ck_assert_int_ne(s.done_err, 0);
  ck_assert_int_ne(s.done_err, KUALA_ECANCELED);
  ct_run_for(&e.loop, 20);
  ck_assert_int_eq(s.done, 1);

  /* Every request answered 503: a GET is retried, a POST is not. */
  admin_post(&e, admin, "/faults/errors?percent=100&code=503");
  ct_result_t r = {0};
  kuala_client_opts_t ro;
  kuala_client_opts_init(&ro);
  ro.max_retries = 2;
  ck_assert_int_eq(kuala_client_list(NULL, e.c, &cms, &ro, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_EUNAVAILABLE);
  ck_assert_int_eq(r.attempts, 3);
  ct_result_free(&r);
  const char *body =
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"f-b\"}}";
  ck_assert_int_eq(kuala_client_create(NULL, e.c, &cms, body, strlen(body), &ro, ct_on_resp, &r),
                   0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_EUNAVAILABLE);
  ck_assert_int_eq(r.attempts, 1);
  ct_result_free(&r);
  admin_post(&e, admin, "/faults/reset");

  /* Latency past the request timeout: KUALA_ETIMEDOUT. */
  admin_post(&e, admin, "/faults/latency?ms=2000");
  ro.timeout_ms = 300;
  ck_assert_int_eq(kuala_client_list(NULL, e.c, &cms, &ro, ct_on_resp, &r), 0);
  wait_done(&e, &r);
  ck_assert_int_eq(r.err, KUALA_ETIMEDOUT);
  ck_assert_int_eq(r.attempts, 1);
  ct_result_free(&r);
  admin_post(&e, admin, "/faults/reset");
  kuala_client_close(admin);
  env_done(&e);
}
END_TEST

int main(void)
{
  char bin[1024];
  if (emuproc_find(bin, sizeof(bin)) != 0) {
    const char *src = getenv("KUALA_SOURCE_DIR");
    char cml[1024];
    snprintf(cml, sizeof(cml), "%s/apiserver/CMakeLists.txt", src ? src : ".");
    if (src && access(cml, R_OK) == 0) {
      fprintf(stderr, "test_client_emu: the emulator is part of the tree but %s is missing\n", bin);
      return EXIT_FAILURE;
    }
    printf("test_client_emu: SKIPPED, no emulator in this tree (%s)\n", bin);
    return EXIT_SUCCESS;
  }
  Suite *s = suite_create("client_emu");
  TCase *tc = tcase_create("client_emu");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_client_emu_configmap_crud_and_errors);
  tcase_add_test(tc, test_client_emu_custom_resource_crud);
  tcase_add_test(tc, test_client_emu_paging_5000);
  tcase_add_test(tc, test_client_emu_watch_resume_from_rv);
  tcase_add_test(tc, test_client_emu_apply_conflict);
  tcase_add_test(tc, test_client_emu_token_auth_and_kubeconfig);
  tcase_add_test(tc, test_client_emu_faults);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
