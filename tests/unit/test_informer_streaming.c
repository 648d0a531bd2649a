/*
 * Streaming lists by default (what `kuala run` does through
 * kuala_informers_set_defaults) against the real emulator: informers
 * registered without options sync from a watch with sendInitialEvents (no
 * list request), and when the server refuses it (the emulator's fault
 * injection answers 422 on the resource's path) they fall back to a paged
 * list + watch and still sync, once the server answers again.
 */
#include "kuala_test.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/clienttest.h"
#include "helpers/emuproc.h"
#include "kuala/alloc.h"
#include "kuala/client.h"
#include "kuala/error.h"
#include "kuala/informer.h"

static int emu_pid;

static void kill_emulator(void)
{
  if (emu_pid > 0) {
    kill(emu_pid, SIGKILL);
  }
}

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

static void post(uv_loop_t *loop, kuala_client_t *c, const char *path, const char *body)
{
  ct_result_t r;
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(kuala_client_request(NULL, c, "POST", path, "application/json", body,
                                        strlen(body), NULL, ct_on_resp, &r),
                   0);
  ck_assert_msg(ct_run_until(loop, &r.calls, 20000), "POST %s did not complete", path);
  ck_assert_int_eq(r.err, 0);
  ct_result_free(&r);
}

static void seed(uv_loop_t *loop, kuala_client_t *c, const char *ns, int n)
{
  char path[128], body[256];
  snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\"}}", ns);
  post(loop, c, "/api/v1/namespaces", body);
  snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", ns);
  for (int i = 0; i < n; i++) {
    snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"cm-%d\"},\"data\":{\"i\":\"%d\"}}", i,
             i);
    post(loop, c, path, body);
  }
}

static void on_add(void *data, const kuala_obj_t *obj, int initial)
{
  (void)obj;
  (void)initial;
  (*(int *)data)++;
}

static kuala_informer_stats_t stats(kuala_informer_t *inf)
{
  kuala_informer_stats_t st;
  kuala_informer_stats(inf, &st);
  return st;
}

START_TEST(test_informer_streaming_default_and_fallback)
{
  uv_loop_t loop;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  emuproc_t emu;
  memset(&emu, 0, sizeof emu);
  static const char *const args[] = {"--admin-port", "0", NULL};
  ck_assert_int_eq(emuproc_start(&emu, &loop, args), 0);
  emu_pid = emu.proc.pid;
  atexit(kill_emulator);
  CT_UNTIL(&loop, emu.admin_port != 0, 30000);
  kuala_client_t *c = client_for(&loop, emu.url);
  kuala_client_t *admin = client_for(&loop, emu.admin_url);
  seed(&loop, c, "streamed", 40);
  seed(&loop, c, "refused", 30);

  kuala_informers_t *f;
  ck_assert_int_eq(kuala_informers_new_client(&f, &loop, c), 0);
  kuala_informer_opts_t d;
  kuala_informer_opts_init(&d);
  d.streaming_list = 1;
  d.backoff_base_ms = 20;
  d.backoff_max_ms = 100;
  kuala_informers_set_defaults(f, &d);
  static const kuala_informer_handlers_t h = {on_add, NULL, NULL};

  /* Defaults apply to registrations without options: a streaming list. */
  int adds1 = 0;
  kuala_informer_key_t k1 = {"", "v1", "configmaps", "streamed", NULL, NULL, 0};
  kuala_informer_reg_t *r1;
  ck_assert_int_eq(kuala_informers_add_handler(&r1, f, &k1, NULL, &h, &adds1), 0);
  kuala_informer_t *i1 = kuala_informer_reg_informer(r1);
  CT_UNTIL(&loop, kuala_informer_has_synced(i1), 30000);
  ck_assert_int_eq(adds1, 40);
  ck_assert_uint_eq(stats(i1).list_pages, 0);
  ck_assert_uint_eq(stats(i1).watches, 1);
  ck_assert_int_eq(stats(i1).streaming_fallback, 0);

  /* The server refuses everything on the second namespace's path (the
   * watch with sendInitialEvents first, then the lists): the informer
   * falls back to list + watch for good, keeps retrying with backoff,
   * and syncs through pages once the server answers again. */
  post(&loop, admin,
       "/faults/errors?percent=100&code=422&method=GET&path=/api/v1/namespaces/refused/", "");
  int adds2 = 0;
  kuala_informer_key_t k2 = {"", "v1", "configmaps", "refused", NULL, NULL, 0};
  kuala_informer_reg_t *r2;
  ck_assert_int_eq(kuala_informers_add_handler(&r2, f, &k2, NULL, &h, &adds2), 0);
  kuala_informer_t *i2 = kuala_informer_reg_informer(r2);
  CT_UNTIL(&loop, stats(i2).streaming_fallback == 1 && stats(i2).list_errors >= 2, 30000);
  ck_assert(!kuala_informer_has_synced(i2));
  post(&loop, admin, "/faults/errors?percent=0", "");
  CT_UNTIL(&loop, kuala_informer_has_synced(i2), 30000);
  ck_assert_int_eq(adds2, 30);
  ck_assert_uint_ge(stats(i2).list_pages, 1);
  ck_assert_int_eq(stats(i2).streaming_fallback, 1);
  /* The fallback is per informer: the first one still streams. */
  ck_assert_int_eq(stats(i1).streaming_fallback, 0);

  /* NULL restores the library defaults: list + watch. */
  kuala_informers_set_defaults(f, NULL);
  int adds3 = 0;
  kuala_informer_key_t k3 = {"", "v1", "configmaps", "streamed", "x!=y", NULL, 0};
  kuala_informer_reg_t *r3;
  ck_assert_int_eq(kuala_informers_add_handler(&r3, f, &k3, NULL, &h, &adds3), 0);
  kuala_informer_t *i3 = kuala_informer_reg_informer(r3);
  ck_assert_ptr_ne(i3, i1);
  CT_UNTIL(&loop, kuala_informer_has_synced(i3), 30000);
  ck_assert_int_eq(adds3, 40);
  ck_assert_uint_ge(stats(i3).list_pages, 1);

  kuala_informer_reg_remove(r1);
  kuala_informer_reg_remove(r2);
  kuala_informer_reg_remove(r3);
  kuala_informers_close(f);
  kuala_client_close(c);
  kuala_client_close(admin);
  emuproc_stop(&emu, &loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  emu_pid = 0;
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("informer_streaming");
  TCase *tc = tcase_create("informer_streaming");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_informer_streaming_default_and_fallback);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
