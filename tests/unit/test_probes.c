/*
 * The health probe server (core/serve/probes.c) on its own thread: readyz
 * follows the checks the host reports (verbose list, exclude, one check by
 * path), and healthz turns 500 when the engine loop stops beating, even
 * though the loop never runs to answer (the probe thread does).
 *
 * The test thread plays the kubelet with a blocking HTTP client; the probe
 * server answers from its own thread while the test's loop sits still.
 */
#include "kuala_test.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/probes.h"

/* GET path from 127.0.0.1:port; returns the status, body copied to out. */
static int http_get(int port, const char *path, char *out, size_t n)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  char req[512];
  int len = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  ck_assert_int_eq(write(fd, req, (size_t)len), len);
  char buf[8192];
  size_t got = 0;
  ssize_t r;
  while (got < sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) {
    got += (size_t)r;
  }
  close(fd);
  buf[got] = '\0';
  int status = 0;
  ck_assert_int_eq(sscanf(buf, "HTTP/1.1 %d", &status), 1);
  const char *body = strstr(buf, "\r\n\r\n");
  snprintf(out, n, "%s", body ? body + 4 : "");
  return status;
}

typedef struct {
  int caches_ok;
} host_t;

static void collect(void *data, kuala__probes_report_fn report, void *rdata)
{
  host_t *h = data;
  report(rdata, "engine", 1, NULL);
  report(rdata, "caches", h->caches_ok, "waiting for widgets");
}

static kuala__probes_t *start(uv_loop_t *loop, host_t *h, uint64_t stall_ms)
{
  kuala__probes_opts_t o;
  memset(&o, 0, sizeof(o));
  o.host = "127.0.0.1";
  o.port = 0;
  o.heartbeat_ms = 50;
  o.stall_ms = stall_ms;
  o.collect = collect;
  o.data = h;
  kuala__probes_t *p = NULL;
  ck_assert_int_eq(kuala__probes_start(&p, loop, &o), 0);
  ck_assert_int_gt(kuala__probes_port(p), 0);
  return p;
}

static void finish(uv_loop_t *loop, kuala__probes_t *p)
{
  kuala__probes_stop(p);
  uv_run(loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(loop), 0);
}

START_TEST(test_probes_readyz_follows_checks)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  host_t h = {0};
  kuala__probes_t *p = start(&loop, &h, 30000);
  int port = kuala__probes_port(p);
  char body[4096];

  /* Not ready: 500 with the verbose list even without ?verbose. */
  ck_assert_int_eq(http_get(port, "/readyz", body, sizeof(body)), 500);
  ck_assert_ptr_nonnull(strstr(body, "[+]ping ok\n"));
  ck_assert_ptr_nonnull(strstr(body, "[+]engine ok\n"));
  ck_assert_ptr_nonnull(strstr(body, "[-]caches failed: waiting for widgets\n"));
  ck_assert_ptr_nonnull(strstr(body, "readyz check failed\n"));
  ck_assert_int_eq(http_get(port, "/readyz/caches", body, sizeof(body)), 500);
  ck_assert_int_eq(http_get(port, "/readyz/engine", body, sizeof(body)), 200);
  ck_assert_str_eq(body, "ok");
  /* Excluding the failing check makes it pass. */
  ck_assert_int_eq(http_get(port, "/readyz?exclude=caches", body, sizeof(body)), 200);
  /* Liveness does not depend on readiness. */
  ck_assert_int_eq(http_get(port, "/healthz", body, sizeof(body)), 200);
  ck_assert_str_eq(body, "ok");

  /* Ready once the host says so and the state is published. */
  h.caches_ok = 1;
  kuala__probes_refresh(p);
  ck_assert_int_eq(http_get(port, "/readyz", body, sizeof(body)), 200);
  ck_assert_str_eq(body, "ok");
  ck_assert_int_eq(http_get(port, "/readyz?verbose", body, sizeof(body)), 200);
  ck_assert_ptr_nonnull(strstr(body, "[+]caches ok\n"));
  ck_assert_ptr_nonnull(strstr(body, "readyz check passed\n"));
  ck_assert_int_eq(http_get(port, "/readyz/nosuch", body, sizeof(body)), 404);
  ck_assert_int_eq(http_get(port, "/metrics", body, sizeof(body)), 404);
  finish(&loop, p);
}
END_TEST

START_TEST(test_probes_healthz_fails_when_the_loop_stalls)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  host_t h = {1};
  kuala__probes_t *p = start(&loop, &h, 1000);
  int port = kuala__probes_port(p);
  char body[4096];
  /* The loop beats: healthy. */
  uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(http_get(port, "/healthz", body, sizeof(body)), 200);
  /* The loop does not run for longer than the limit (as if a callback
   * were stuck): the probe thread still answers, with 500. */
  usleep(1500 * 1000);
  ck_assert_int_eq(http_get(port, "/healthz", body, sizeof(body)), 500);
  ck_assert_ptr_nonnull(strstr(body, "[-]loop failed: the event loop has not run for"));
  ck_assert_int_eq(http_get(port, "/healthz/loop", body, sizeof(body)), 500);
  /* Once the loop runs again, the next beat makes it healthy. */
  uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(http_get(port, "/healthz", body, sizeof(body)), 200);
  finish(&loop, p);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("probes");
  TCase *tc = tcase_create("probes");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_probes_readyz_follows_checks);
  tcase_add_test(tc, test_probes_healthz_fails_when_the_loop_stalls);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
