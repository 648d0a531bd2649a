/*
 * The metrics renderer (core/serve/metrics.c) on sources that need no
 * cluster: bundles JSON (label escaping, counters per bundle), a leader
 * that has not won (master_status 0), process_* from /proc, and the
 * all-or-nothing rule for a capped buffer. The controller and workqueue
 * families are checked with exact counts by tests/integration/ops_metrics.sh.
 */
#include "kuala_test.h"
#include <string.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/client.h"
#include "kuala/error.h"
#include "kuala/leader.h"
#include "kuala/metrics.h"

static const char bundles[] =
    "[{\"name\":\"web\\\"app\",\"source\":\"dir:/b\\\\x\",\"hash\":\"sha256:ab\","
    "\"state\":\"running\",\"loads\":3,\"load_errors\":1,\"memory_bytes\":4096},"
    "{\"name\":\"db\",\"source\":\"configmap:ns/db\",\"hash\":null,\"state\":\"failed\","
    "\"loads\":0,\"load_errors\":2,\"memory_bytes\":0}]";

static int has_line(const char *text, const char *line)
{
  size_t n = strlen(line);
  for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
    if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) {
      return 1;
    }
  }
  return 0;
}

START_TEST(test_metrics_bundles_and_escaping)
{
  kuala_metrics_sources_t src;
  memset(&src, 0, sizeof(src));
  src.bundles_json = bundles;
  src.bundles_json_len = sizeof(bundles) - 1;
  kuala_buf_t b = KUALA_BUF_INIT(0);
  ck_assert_int_eq(kuala_metrics_render(&src, &b), 0);
  ck_assert(has_line(b.data, "# TYPE kuala_bundle_info gauge"));
  ck_assert(has_line(b.data, "# TYPE kuala_bundle_loads_total counter"));
  ck_assert(has_line(b.data,
                     "kuala_bundle_info{bundle=\"web\\\"app\",hash=\"sha256:ab\","
                     "source=\"dir:/b\\\\x\",state=\"running\"} 1"));
  ck_assert(has_line(b.data,
                     "kuala_bundle_info{bundle=\"db\",hash=\"\",source=\"configmap:ns/db\","
                     "state=\"failed\"} 1"));
  ck_assert(has_line(b.data, "kuala_bundle_loads_total{bundle=\"web\\\"app\"} 3"));
  ck_assert(has_line(b.data, "kuala_bundle_load_errors_total{bundle=\"db\"} 2"));
  ck_assert(has_line(b.data, "kuala_bundle_memory_bytes{bundle=\"web\\\"app\"} 4096"));
  /* Nothing else was asked for. */
  ck_assert_ptr_null(strstr(b.data, "controller_runtime_"));
  ck_assert_ptr_null(strstr(b.data, "process_"));
  kuala_buf_free(&b);
}
END_TEST

START_TEST(test_metrics_leader_and_process)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_client_config_t cfg;
  kuala_client_config_init(&cfg);
  cfg.server = kuala_strdup("http://127.0.0.1:1");
  kuala_client_t *c;
  ck_assert_int_eq(kuala_client_new(&c, &loop, &cfg), 0);
  kuala_client_config_free(&cfg);
  kuala_leader_opts_t lo;
  memset(&lo, 0, sizeof(lo));
  lo.ns = "default";
  lo.name = "my-lock";
  lo.identity = "me_1";
  kuala_leader_t *l;
  ck_assert_int_eq(kuala_leader_new(&l, &loop, c, &lo), 0);

  kuala_metrics_sources_t src;
  memset(&src, 0, sizeof(src));
  src.leader = l;
  src.process = 1;
  kuala_buf_t b = KUALA_BUF_INIT(0);
  ck_assert_int_eq(kuala_metrics_render(&src, &b), 0);
  ck_assert(has_line(b.data, "# TYPE leader_election_master_status gauge"));
  ck_assert(has_line(b.data, "leader_election_master_status{name=\"my-lock\"} 0"));
  ck_assert(has_line(b.data, "# TYPE process_cpu_seconds_total counter"));
  ck_assert(has_line(b.data, "# TYPE process_resident_memory_bytes gauge"));
  ck_assert(has_line(b.data, "# TYPE process_open_fds gauge"));
  ck_assert(has_line(b.data, "# TYPE process_max_fds gauge"));
  ck_assert(has_line(b.data, "# TYPE process_start_time_seconds gauge"));
  ck_assert_ptr_null(strstr(b.data, "process_resident_memory_bytes 0\n"));

  /* A capped buffer gets all of it or nothing. */
  kuala_buf_t small = KUALA_BUF_INIT(64);
  ck_assert_int_eq(kuala_metrics_render(&src, &small), KUALA_E2BIG);
  ck_assert_uint_eq(small.len, 0);
  kuala_buf_free(&small);
  kuala_buf_t big = KUALA_BUF_INIT(1 << 20);
  ck_assert_int_eq(kuala_metrics_render(&src, &big), 0);
  ck_assert_ptr_nonnull(strstr(big.data, "leader_election_master_status{name=\"my-lock\"} 0"));
  kuala_buf_free(&big);
  kuala_buf_free(&b);

  kuala_leader_stop(l, NULL, NULL);
  kuala_client_close(c);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("metrics");
  tcase_add_test(tc, test_metrics_bundles_and_escaping);
  tcase_add_test(tc, test_metrics_leader_and_process);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
