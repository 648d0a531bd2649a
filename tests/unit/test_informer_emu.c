/*
 * Informers against the kuala-apiserver emulator (a child process on
 * 127.0.0.1) through the real API client: sync of 5,000 objects, two
 * handlers sharing one informer (one watch on the wire), updates and
 * deletes delivered once and in order, label and field selectors,
 * bookmarks advancing the resourceVersion, resume after the emulator
 * closes every watch (no relist, checked with its request counter), 410 ->
 * relist with tombstones for objects deleted during the gap, and the last
 * handler leaving stops the watch.
 *
 * Like test_client_emu: when the emulator is not part of the tree the suite
 * says so and exits successfully; when it is but the binary is missing,
 * that is a failure.
 */
#include "kuala_test.h"
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "helpers/clienttest.h"
#include "helpers/emuproc.h"
#include "cache/informer.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/client.h"
#include "kuala/error.h"
#include "kuala/informer.h"

typedef struct {
  uv_loop_t loop;
  emuproc_t emu;
  kuala_client_t *c;     /* the API */
  kuala_client_t *admin; /* the emulator's fault-injection endpoint */
} env_t;

static kuala_client_t *client_for(uv_loop_t *loop, const char *url)
{
  kuala_client_config_t cfg;
  kuala_client_t *c;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup(url);
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  ck_assert_int_eq(kuala_client_new(&c, loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  return c;
}

/* A failed assertion leaves the test early (CK_FORK=no): make sure no
 * emulator outlives this process. */
static int emu_pids[8];
static int n_emu_pids;

static void kill_emulators(void)
{
  for (int i = 0; i < n_emu_pids; i++) {
    if (emu_pids[i] > 0) {
      kill(emu_pids[i], SIGKILL);
    }
  }
}

static void emu_launch(env_t *e, const char *const *args)
{
  memset(&e->emu, 0, sizeof e->emu);
  ck_assert_int_eq(emuproc_start(&e->emu, &e->loop, args), 0);
  if (n_emu_pids == 0) {
    atexit(kill_emulators);
  }
  if (n_emu_pids < 8) {
    emu_pids[n_emu_pids++] = e->emu.proc.pid;
  }
  CT_UNTIL(&e->loop, e->emu.admin_port != 0, 30000);
  e->admin = client_for(&e->loop, e->emu.admin_url);
}

static void env_init_args(env_t *e, const char *const *args)
{
  memset(e, 0, sizeof(*e));
  ck_assert_int_eq(uv_loop_init(&e->loop), 0);
  emu_launch(e, args);
  e->c = client_for(&e->loop, e->emu.url);
}

static void env_init(env_t *e)
{
  static const char *const args[] = {"--admin-port", "0", "--bookmark-interval", "200", "--history",
                                     "64",           NULL};
  env_init_args(e, args);
}

static void env_done(env_t *e)
{
  kuala_client_close(e->c);
  kuala_client_close(e->admin);
  emuproc_stop(&e->emu, &e->loop);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&e->loop), 0);
}

/* One request, waited for; returns its error. */
static int call(env_t *e, kuala_client_t *c, const char *method, const char *path, const char *body,
                ct_result_t *r)
{
  memset(r, 0, sizeof(*r));
  int rc = kuala_client_request(NULL, c, method, path, body ? "application/json" : NULL, body,
                                body ? strlen(body) : 0, NULL, ct_on_resp, r);
  ck_assert_int_eq(rc, 0);
  ck_assert_msg(ct_run_until(&e->loop, &r->calls, 20000), "%s %s did not complete", method, path);
  return r->err;
}

/* An integer field of the emulator's /faults report. */
static long faults(env_t *e, const char *field)
{
  ct_result_t r;
  ck_assert_int_eq(call(e, e->admin, "GET", "/faults", NULL, &r), 0);
  json_object *o = json_tokener_parse(r.body), *v;
  ck_assert(o && json_object_object_get_ex(o, field, &v));
  long x = (long)json_object_get_int64(v);
  json_object_put(o);
  ct_result_free(&r);
  return x;
}

static void admin_post(env_t *e, const char *path)
{
  ct_result_t r;
  ck_assert_int_eq(call(e, e->admin, "POST", path, "", &r), 0);
  ct_result_free(&r);
}

static void make_ns(env_t *e, const char *ns)
{
  char body[128];
  ct_result_t r;
  snprintf(body, sizeof body,
           "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{"
           "\"name\":\"%s\"}}",
           ns);
  ck_assert_int_eq(call(e, e->c, "POST", "/api/v1/namespaces", body, &r), 0);
  ct_result_free(&r);
}

/* Create n ConfigMaps "<prefix>-%05d" in ns, 64 requests in flight. */
typedef struct {
  int done, failed;
} batch_t;

static void batch_cb(void *data, int err, kuala_client_resp_t *resp)
{
  batch_t *b = data;
  b->done++;
  b->failed += err != 0;
}

static void create_many(env_t *e, const char *ns, const char *prefix, const char *suite, int n)
{
  batch_t b = {0, 0};
  kuala_client_target_t t = {"", "v1", "configmaps", ns, NULL, NULL};
  char body[1024], pad[601];
  memset(pad, 'p', 600);
  pad[600] = '\0';
  int sent = 0;
  uint64_t t0 = ct_now_ms();
  while (b.done < n) {
    ck_assert_msg(ct_now_ms() - t0 < 120000, "creating %d objects took over 2 minutes", n);
    while (sent < n && sent - b.done < 64) {
      snprintf(body, sizeof body,
               "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s-%05d\","
               "\"labels\":{\"suite\":\"%s\",\"app\":\"%s\"}},\"data\":{\"i\":\"%d\",\"pad\":"
               "\"%s\"}}",
               prefix, sent, suite, sent % 2 ? "a" : "b", sent, pad);
      ck_assert_int_eq(kuala_client_create(NULL, e->c, &t, body, strlen(body), NULL, batch_cb, &b),
                       0);
      sent++;
    }
    uv_run(&e->loop, UV_RUN_ONCE);
  }
  ck_assert_int_eq(b.failed, 0);
}

/* ---- handlers that record what they see ---- */

typedef struct {
  int adds, initial, updates, deletes, unknown;
  kuala_buf_t log; /* lines about the objects named in `watch` */
  const char *watch_a, *watch_b;
} rec_t;

static void rec_line(rec_t *r, const char *what, const kuala_obj_t *o, const char *extra)
{
  if ((r->watch_a && strcmp(o->name, r->watch_a) == 0) ||
      (r->watch_b && strcmp(o->name, r->watch_b) == 0)) {
    kuala_buf_printf(&r->log, "%s %s %s%s\n", what, o->name, o->rv, extra);
  }
}

static void h_add(void *d, const kuala_obj_t *o, int initial)
{
  rec_t *r = d;
  r->adds++;
  r->initial += initial;
  rec_line(r, "ADD", o, "");
}

static void h_update(void *d, const kuala_obj_t *old, const kuala_obj_t *o)
{
  rec_t *r = d;
  r->updates++;
  rec_line(r, "UPD", o, "");
}

static void h_delete(void *d, const kuala_obj_t *o, int unknown)
{
  rec_t *r = d;
  r->deletes++;
  r->unknown += unknown;
  rec_line(r, "DEL", o, unknown ? " unknown" : "");
}

static const kuala_informer_handlers_t H = {h_add, h_update, h_delete};

static void synced_cb(void *d, int err)
{
  *(int *)d = err == 0 ? 1 : -1;
}

static void wait_synced(env_t *e, kuala_informer_t *inf)
{
  int s = 0;
  ck_assert_int_eq(kuala_informer_wait_synced(inf, 60000, synced_cb, &s), 0);
  CT_UNTIL(&e->loop, s != 0, 65000);
  ck_assert_int_eq(s, 1);
}

static kuala_informer_stats_t stats(kuala_informer_t *inf)
{
  kuala_informer_stats_t st;
  kuala_informer_stats(inf, &st);
  return st;
}

START_TEST(test_informer_emu_sync_share_order_selectors_resume_stop)
{
  env_t e;
  env_init(&e);
  make_ns(&e, "inf");
  create_many(&e, "inf", "cm", "inf", 5000);

  kuala_informers_t *f;
  ck_assert_int_eq(kuala_informers_new_client(&f, &e.loop, e.c), 0);
  kuala_informer_key_t key = {"", "v1", "configmaps", "inf", "suite=inf", NULL, 0};
  rec_t r1, r2;
  memset(&r1, 0, sizeof r1);
  memset(&r2, 0, sizeof r2);
  r1.watch_a = r2.watch_a = "cm-00001";
  r1.watch_b = r2.watch_b = "cm-00002";
  kuala_informer_reg_t *g1, *g2;
  ck_assert_int_eq(kuala_informers_add_handler(&g1, f, &key, NULL, &H, &r1), 0);
  kuala_informer_t *inf = kuala_informer_reg_informer(g1);
  wait_synced(&e, inf);
  ck_assert_uint_eq(kuala_store_len(kuala_informer_store(inf)), 5000);
  ck_assert_int_eq(r1.adds, 5000);
  kuala_informer_stats_t st = stats(inf);
  ck_assert_uint_eq(st.relists, 1);
  ck_assert_uint_eq(st.list_pages, 20); /* the default limit, 250 */
  ck_assert_uint_lt(st.bytes_stored, st.json_bytes * 12 / 10);

  /* A second controller shares the informer: cached objects replayed, and
   * still a single watch on the wire. */
  ck_assert_int_eq(kuala_informers_add_handler(&g2, f, &key, NULL, &H, &r2), 0);
  ck_assert_ptr_eq(kuala_informer_reg_informer(g2), inf);
  ck_assert_int_eq(r2.initial, 5000);
  CT_UNTIL(&e.loop, faults(&e, "watches") == 1, 30000);
  ck_assert_uint_eq(kuala_informers_count(f), 1);

  /* Updates and deletes arrive once each, in order, at both handlers. */
  ct_result_t r;
  char rvs[3][32];
  for (int i = 0; i < 3; i++) {
    char body[64];
    snprintf(body, sizeof body, "{\"data\":{\"v\":\"%d\"}}", i);
    kuala_client_target_t t = {"", "v1", "configmaps", "inf", "cm-00001", NULL};
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(kuala_client_patch(NULL, e.c, &t, KUALA_PATCH_MERGE, body, strlen(body), NULL,
                                        ct_on_resp, &r),
                     0);
    ck_assert(ct_run_until(&e.loop, &r.calls, 20000));
    ck_assert_int_eq(r.err, 0);
    json_object *o = json_tokener_parse(r.body), *m, *v;
    ck_assert(json_object_object_get_ex(o, "metadata", &m) &&
              json_object_object_get_ex(m, "resourceVersion", &v));
    snprintf(rvs[i], sizeof rvs[i], "%s", json_object_get_string(v));
    json_object_put(o);
    ct_result_free(&r);
  }
  ck_assert_int_eq(call(&e, e.c, "DELETE", "/api/v1/namespaces/inf/configmaps/cm-00002", NULL, &r),
                   0);
  ct_result_free(&r);
  CT_UNTIL(&e.loop, r1.deletes == 1 && r2.deletes == 1, 30000);
  char want[512];
  snprintf(want, sizeof want, "UPD cm-00001 %s\nUPD cm-00001 %s\nUPD cm-00001 %s\n", rvs[0], rvs[1],
           rvs[2]);
  const char *tail1 = strstr(r1.log.data, "UPD"), *tail2 = strstr(r2.log.data, "UPD");
  ck_assert_ptr_nonnull(tail1);
  ck_assert_ptr_nonnull(tail2);
  ck_assert_int_eq(strncmp(tail1, want, strlen(want)), 0);
  ck_assert_int_eq(strncmp(tail2, want, strlen(want)), 0);
  ck_assert_ptr_nonnull(strstr(tail1 + strlen(want), "DEL cm-00002"));
  ck_assert_int_eq(r1.updates, 3);
  ck_assert_int_eq(r2.updates, 3);

  /* Selectors: label and field selectors are sent to the server. */
  rec_t ra, rf;
  memset(&ra, 0, sizeof ra);
  memset(&rf, 0, sizeof rf);
  kuala_informer_key_t ka = {"", "v1", "configmaps", "inf", "suite=inf,app=a", NULL, 0};
  kuala_informer_key_t kf = {"", "v1", "configmaps", "inf", NULL, "metadata.name=cm-00007", 0};
  kuala_informer_reg_t *ga, *gf;
  ck_assert_int_eq(kuala_informers_add_handler(&ga, f, &ka, NULL, &H, &ra), 0);
  ck_assert_int_eq(kuala_informers_add_handler(&gf, f, &kf, NULL, &H, &rf), 0);
  wait_synced(&e, kuala_informer_reg_informer(ga));
  wait_synced(&e, kuala_informer_reg_informer(gf));
  ck_assert_int_eq(ra.adds, 2500); /* odd indexes; cm-00001 is one, cm-00002 was even */
  ck_assert_int_eq(rf.adds, 1);
  kuala_obj_t v;
  ck_assert_int_eq(
      kuala_store_get(kuala_informer_store(kuala_informer_reg_informer(gf)), "inf", "cm-00007", &v),
      0);
  ck_assert_uint_eq(kuala_informers_count(f), 3);
  kuala_informer_reg_remove(ga);
  kuala_informer_reg_remove(gf);
  CT_UNTIL(&e.loop, kuala_informers_count(f) == 1 && faults(&e, "watches") == 1, 30000);

  /* Bookmarks move the resourceVersion even when nothing here changes. */
  make_ns(&e, "other");
  ck_assert_int_eq(call(&e, e.c, "POST", "/api/v1/namespaces/other/configmaps",
                        "{\"metadata\":{\"name\":\"elsewhere\"}}", &r),
                   0);
  json_object *o = json_tokener_parse(r.body), *m, *rvv;
  ck_assert(json_object_object_get_ex(o, "metadata", &m) &&
            json_object_object_get_ex(m, "resourceVersion", &rvv));
  long other_rv = strtol(json_object_get_string(rvv), NULL, 10);
  json_object_put(o);
  ct_result_free(&r);
  CT_UNTIL(&e.loop, strtol(kuala_informer_last_rv(inf), NULL, 10) >= other_rv, 30000);
  ck_assert_uint_ge(stats(inf).events_bookmark, 1);

  /* The emulator closes every watch: the informer resumes from its RV
   * with one watch request and no list. */
  st = stats(inf);
  long req0 = faults(&e, "requests");
  admin_post(&e, "/faults/close-watches");
  CT_UNTIL(&e.loop, stats(inf).watch_restarts > st.watch_restarts, 30000);
  CT_UNTIL(&e.loop, faults(&e, "watches") == 1, 30000);
  ck_assert_int_eq(
      call(&e, e.c, "POST", "/api/v1/namespaces/inf/configmaps",
           "{\"metadata\":{\"name\":\"after-close\",\"labels\":{\"suite\":\"inf\"}}}", &r),
      0);
  ct_result_free(&r);
  CT_UNTIL(&e.loop, r1.adds == 5001 && r2.adds == 5001, 30000);
  long req1 = faults(&e, "requests");
  kuala_informer_stats_t st2 = stats(inf);
  ck_assert_uint_eq(st2.relists, st.relists);
  ck_assert_uint_eq(st2.list_pages, st.list_pages);
  ck_assert_int_eq(req1 - req0, 2); /* the new watch and our create */

  /* Last handler out: the watch goes away on the server too. */
  kuala_informer_reg_remove(g1);
  ck_assert_int_eq(faults(&e, "watches"), 1);
  kuala_informer_reg_remove(g2);
  CT_UNTIL(&e.loop, kuala_informers_count(f) == 0, 30000);
  CT_UNTIL(&e.loop, faults(&e, "watches") == 0, 30000);

  kuala_informers_close(f);
  kuala_buf_free(&r1.log);
  kuala_buf_free(&r2.log);
  kuala_buf_free(&ra.log);
  kuala_buf_free(&rf.log);
  env_done(&e);
}
END_TEST

/* A source that forwards to the client but can hold a watch start, so the
 * test can make changes while the informer is not watching. */
typedef struct {
  const kuala_lw_source_t *in;
  void *in_data;
  int hold, held;
  kuala_informer_key_t key;
  kuala_lw_opts_t opts;
  char rv[64];
  kuala_lw_event_cb on_event;
  kuala_lw_done_cb on_done;
  void *data;
  void *in_handle;
} gate_t;

static int g_list(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                  kuala_lw_list_cb cb, void *data, void **handle)
{
  gate_t *g = src;
  return g->in->list(g->in_data, key, o, cb, data, handle);
}

static void g_cancel(void *src, void *h)
{
  gate_t *g = src;
  g->in->cancel_list(g->in_data, h);
}

static int g_watch(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                   kuala_lw_event_cb on_event, kuala_lw_done_cb on_done, void *data, void **handle)
{
  gate_t *g = src;
  *handle = g;
  g->on_event = on_event;
  g->on_done = on_done;
  g->data = data;
  if (g->hold) {
    g->held = 1;
    g->key = *key;
    g->opts = *o;
    snprintf(g->rv, sizeof g->rv, "%s", o->resource_version ? o->resource_version : "");
    g->opts.resource_version = o->resource_version ? g->rv : NULL;
    return 0;
  }
  return g->in->watch(g->in_data, key, o, on_event, on_done, data, &g->in_handle);
}

static void g_release(gate_t *g)
{
  g->hold = 0;
  if (g->held) {
    g->held = 0;
    ck_assert_int_eq(g->in->watch(g->in_data, &g->key, &g->opts, g->on_event, g->on_done, g->data,
                                  &g->in_handle),
                     0);
  }
}

static void g_stop(void *src, void *h)
{
  gate_t *g = src;
  ck_assert_int_eq(g->held, 0);
  g->in->stop_watch(g->in_data, g->in_handle);
}

static const kuala_lw_source_t gate_source = {g_list, g_cancel, g_watch, g_stop};

START_TEST(test_informer_emu_restart_with_data_dir_resumes)
{
  char dir[] = "/tmp/kuala-inf-emu.XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  const char *args[] = {"--admin-port", "0", "--data-dir", dir, NULL};
  env_t e;
  env_init_args(&e, args);
  make_ns(&e, "rs");
  create_many(&e, "rs", "r", "rs", 50);
  kuala_informers_t *f;
  ck_assert_int_eq(kuala_informers_new_client(&f, &e.loop, e.c), 0);
  kuala_informer_key_t key = {"", "v1", "configmaps", "rs", NULL, NULL, 0};
  kuala_informer_opts_t o;
  kuala_informer_opts_init(&o);
  o.backoff_base_ms = 20;
  o.backoff_max_ms = 200;
  /* Streaming list: the initial state comes as ADDED events on the watch,
   * ended by the annotated bookmark; no list request at all. (The fallback
   * to list + watch is covered with the scripted source in
   * test_reflector.) */
  o.streaming_list = 1;
  rec_t rec;
  memset(&rec, 0, sizeof rec);
  kuala_informer_reg_t *reg;
  ck_assert_int_eq(kuala_informers_add_handler(&reg, f, &key, &o, &H, &rec), 0);
  kuala_informer_t *inf = kuala_informer_reg_informer(reg);
  wait_synced(&e, inf);
  ck_assert_int_eq(rec.adds, 50);
  ck_assert_int_eq(stats(inf).streaming_fallback, 0);
  ck_assert_uint_eq(stats(inf).list_pages, 0);
  ck_assert_uint_eq(stats(inf).watches, 1);

  /* Stop the emulator: the informer keeps retrying with backoff. */
  char port[16];
  snprintf(port, sizeof port, "%d", e.emu.port);
  kuala_client_close(e.admin);
  emuproc_stop(&e.emu, &e.loop);
  CT_UNTIL(&e.loop, e.emu.closed == 2, 30000);
  CT_UNTIL(&e.loop, stats(inf).backoffs >= 2, 30000);
  /* Same port, same data: the informer resumes, with no spurious events. */
  const char *again[] = {"--port", port, "--admin-port", "0", "--data-dir", dir, NULL};
  emu_launch(&e, again);
  CT_UNTIL(&e.loop, faults(&e, "watches") == 1, 30000);
  ck_assert_int_eq(rec.adds, 50);
  ck_assert_int_eq(rec.updates, 0);
  ck_assert_int_eq(rec.deletes, 0);
  ct_result_t r;
  ck_assert_int_eq(call(&e, e.c, "POST", "/api/v1/namespaces/rs/configmaps",
                        "{\"metadata\":{\"name\":\"after-restart\"}}", &r),
                   0);
  ct_result_free(&r);
  CT_UNTIL(&e.loop, rec.adds == 51, 30000);
  ck_assert_uint_eq(kuala_store_len(kuala_informer_store(inf)), 51);
  ck_assert_int_eq(rec.deletes, 0);

  kuala_informer_reg_remove(reg);
  CT_UNTIL(&e.loop, kuala_informers_count(f) == 0, 30000);
  kuala_informers_close(f);
  kuala_buf_free(&rec.log);
  env_done(&e);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_informer_emu_410_relist_tombstones)
{
  env_t e;
  env_init(&e);
  make_ns(&e, "gap");
  create_many(&e, "gap", "g", "gap", 20);
  gate_t g;
  memset(&g, 0, sizeof g);
  ck_assert_int_eq(kuala__informer_client_source(&g.in, &g.in_data, e.c), 0);
  kuala_informers_t *f;
  ck_assert_int_eq(kuala_informers_new(&f, &e.loop, &gate_source, &g), 0);
  kuala_informer_key_t key = {"", "v1", "configmaps", "gap", "suite=gap", NULL, 0};
  rec_t rec;
  memset(&rec, 0, sizeof rec);
  rec.watch_a = "g-00001";
  rec.watch_b = "g-00004";
  kuala_informer_reg_t *reg;
  ck_assert_int_eq(kuala_informers_add_handler(&reg, f, &key, NULL, &H, &rec), 0);
  kuala_informer_t *inf = kuala_informer_reg_informer(reg);
  wait_synced(&e, inf);
  ck_assert_int_eq(rec.adds, 20);
  kuala_obj_t v;
  ck_assert_int_eq(kuala_store_get(kuala_informer_store(inf), "gap", "g-00001", &v), 0);
  char last_rv1[32];
  snprintf(last_rv1, sizeof last_rv1, "%s", v.rv);

  /* Close the watch and hold the informer's next one. */
  g.hold = 1;
  admin_post(&e, "/faults/close-watches");
  CT_UNTIL(&e.loop, g.held, 30000);
  /* The gap: three deletions, one update, then enough churn elsewhere to
   * push the informer's RV out of the 64-event history. */
  ct_result_t r;
  for (int i = 1; i <= 3; i++) {
    char path[96];
    snprintf(path, sizeof path, "/api/v1/namespaces/gap/configmaps/g-%05d", i);
    ck_assert_int_eq(call(&e, e.c, "DELETE", path, NULL, &r), 0);
    ct_result_free(&r);
  }
  ck_assert_int_eq(call(&e, e.c, "PUT", "/api/v1/namespaces/gap/configmaps/g-00004",
                        "{\"metadata\":{\"name\":\"g-00004\",\"labels\":{\"suite\":\"gap\"}},"
                        "\"data\":{\"changed\":\"yes\"}}",
                        &r),
                   0);
  ct_result_free(&r);
  make_ns(&e, "churn");
  create_many(&e, "churn", "c", "churn", 100);
  ck_assert_int_eq(rec.deletes, 0);
  /* Let go: the resume RV is too old -> 410 -> relist. */
  g_release(&g);
  CT_UNTIL(&e.loop, stats(inf).relists == 2 && rec.deletes == 3, 30000);
  ck_assert_int_eq(rec.unknown, 3);
  ck_assert_uint_eq(kuala_store_len(kuala_informer_store(inf)), 17);
  /* The tombstone carries the last state the cache knew. */
  char want[96];
  snprintf(want, sizeof want, "DEL g-00001 %s unknown\n", last_rv1);
  ck_assert_ptr_nonnull(strstr(rec.log.data, want));
  ck_assert_ptr_nonnull(strstr(rec.log.data, "UPD g-00004"));
  ck_assert_int_eq(rec.updates, 1);
  kuala_informer_stats_t st = stats(inf);
  ck_assert_uint_eq(st.relist_deletes, 3);
  ck_assert_uint_ge(st.events_error + (st.relists > 1), 1);
  /* And it watches again afterwards. */
  CT_UNTIL(&e.loop, faults(&e, "watches") == 1, 30000);

  kuala_informer_reg_remove(reg);
  CT_UNTIL(&e.loop, kuala_informers_count(f) == 0, 30000);
  kuala_informers_close(f);
  kuala__informer_client_source_free(g.in_data);
  kuala_buf_free(&rec.log);
  env_done(&e);
}
END_TEST

/* Metadata-only informers ask the server for PartialObjectMetadata (list and
 * watch) instead of downloading whole objects: what the store keeps is the
 * server's metadata-only form (kind PartialObjectMetadata), without data.
 * A full informer on the same resource is a separate informer and keeps the
 * data. */
START_TEST(test_informer_emu_metadata_only_on_the_wire)
{
  env_t e;
  env_init(&e);
  make_ns(&e, "md");
  create_many(&e, "md", "m", "md", 20);
  kuala_informers_t *f;
  ck_assert_int_eq(kuala_informers_new_client(&f, &e.loop, e.c), 0);
  kuala_informer_key_t mkey = {"", "v1", "configmaps", "md", NULL, NULL, 1};
  kuala_informer_key_t fkey = {"", "v1", "configmaps", "md", NULL, NULL, 0};
  rec_t mrec, frec;
  memset(&mrec, 0, sizeof mrec);
  memset(&frec, 0, sizeof frec);
  kuala_informer_reg_t *mreg, *freg;
  ck_assert_int_eq(kuala_informers_add_handler(&mreg, f, &mkey, NULL, &H, &mrec), 0);
  ck_assert_int_eq(kuala_informers_add_handler(&freg, f, &fkey, NULL, &H, &frec), 0);
  ck_assert_uint_eq(kuala_informers_count(f), 2);
  kuala_informer_t *minf = kuala_informer_reg_informer(mreg);
  kuala_informer_t *finf = kuala_informer_reg_informer(freg);
  wait_synced(&e, minf);
  wait_synced(&e, finf);
  ck_assert_int_eq(mrec.adds, 20);
  kuala_obj_t o;
  ck_assert_int_eq(kuala_store_get(kuala_informer_store(minf), "md", "m-00003", &o), 0);
  ck_assert_ptr_nonnull(strstr(o.json, "\"kind\":\"PartialObjectMetadata\""));
  ck_assert_ptr_nonnull(strstr(o.json, "\"suite\":\"md\""));
  ck_assert_ptr_null(strstr(o.json, "\"data\""));
  ck_assert_int_eq(kuala_store_get(kuala_informer_store(finf), "md", "m-00003", &o), 0);
  ck_assert_ptr_nonnull(strstr(o.json, "\"data\""));
  /* Objects that arrive on the watch come in the same form. */
  ct_result_t r;
  ck_assert_int_eq(call(&e, e.c, "POST", "/api/v1/namespaces/md/configmaps",
                        "{\"metadata\":{\"name\":\"late\"},\"data\":{\"k\":\"v\"}}", &r),
                   0);
  ct_result_free(&r);
  CT_UNTIL(&e.loop, mrec.adds == 21, 30000);
  ck_assert_int_eq(kuala_store_get(kuala_informer_store(minf), "md", "late", &o), 0);
  ck_assert_ptr_nonnull(strstr(o.json, "\"kind\":\"PartialObjectMetadata\""));
  ck_assert_ptr_null(strstr(o.json, "\"data\""));
  kuala_informer_reg_remove(mreg);
  kuala_informer_reg_remove(freg);
  CT_UNTIL(&e.loop, kuala_informers_count(f) == 0, 30000);
  kuala_informers_close(f);
  kuala_buf_free(&mrec.log);
  kuala_buf_free(&frec.log);
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
      fprintf(stderr, "test_informer_emu: the emulator is part of the tree but %s is missing\n",
              bin);
      return EXIT_FAILURE;
    }
    printf("test_informer_emu: SKIPPED, no emulator in this tree (%s)\n", bin);
    return EXIT_SUCCESS;
  }
  Suite *s = suite_create("informer_emu");
  TCase *tc = tcase_create("informer_emu");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_informer_emu_sync_share_order_selectors_resume_stop);
  tcase_add_test(tc, test_informer_emu_410_relist_tombstones);
  tcase_add_test(tc, test_informer_emu_restart_with_data_dir_resumes);
  tcase_add_test(tc, test_informer_emu_metadata_only_on_the_wire);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
