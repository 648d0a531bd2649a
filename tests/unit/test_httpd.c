/*
 * Unit tests for core/httpd.c: a real server on 127.0.0.1 driven by a
 * blocking-socket client in a second thread. The loop runs in the test
 * thread until the client is done, then every handle is closed and
 * uv_loop_close() must succeed.
 */
#include <arpa/inet.h>
#include <check.h>

#include "kuala_test.h"
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "serve/httpd.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"

typedef struct {
  uv_loop_t loop;
  uv_async_t done;
  kuala__httpd_t *srv;
  int port;
  pthread_t thread;
  /* client script */
  const char *request;
  const char *until; /* read until this appears `count` times */
  int count;
  int close_early; /* close right after `until` was seen */
  char response[65536];
  size_t rlen;
  int eof; /* server closed the connection */
  /* server observations */
  int closes;
  int handled;
  uv_timer_t timer;
  kuala__httpd_req_t *held;
  int stream_left;
  unsigned header_ms; /* opts.header_timeout_ms (0 = default) */
} fixture_t;

static int count_occ(const char *hay, const char *needle)
{
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
    n++;
  }
  return n;
}

static void *client_main(void *arg)
{
  fixture_t *f = arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    size_t len = strlen(f->request);
    if (write(fd, f->request, len) == (ssize_t)len) {
      for (;;) {
        if (f->until && count_occ(f->response, f->until) >= f->count) {
          break;
        }
        ssize_t n = read(fd, f->response + f->rlen, sizeof f->response - 1 - f->rlen);
        if (n == 0) {
          f->eof = 1;
          break;
        }
        if (n < 0) {
          break;
        }
        f->rlen += (size_t)n;
        f->response[f->rlen] = '\0';
      }
    }
  }
  if (!f->close_early) {
    /* Give the server a moment to notice nothing else comes. */
    usleep(20000);
  }
  close(fd);
  usleep(50000); /* let the server see the close */
  uv_async_send(&f->done);
  return NULL;
}

static void on_done(uv_async_t *a)
{
  fixture_t *f = a->data;
  kuala__httpd_close(f->srv, NULL, NULL);
  uv_close((uv_handle_t *)&f->done, NULL);
  if (!uv_is_closing((uv_handle_t *)&f->timer)) {
    uv_close((uv_handle_t *)&f->timer, NULL);
  }
}

static void on_req_close(void *data, kuala__httpd_req_t *req)
{
  fixture_t *f = data;
  f->closes++;
  if (f->held == req) {
    f->held = NULL;
    uv_timer_stop(&f->timer);
  }
}

static void on_timer(uv_timer_t *t)
{
  fixture_t *f = t->data;
  kuala__httpd_req_t *req = f->held;
  if (!req) {
    return;
  }
  if (strcmp(kuala__httpd_path(req), "/slow") == 0) {
    f->held = NULL;
    kuala__httpd_respond(req, 200, "text/plain", "A", 1);
    return;
  }
  if (f->stream_left > 0) {
    char chunk[32];
    int n = snprintf(chunk, sizeof chunk, "{\"n\":%d}\n", f->stream_left--);
    kuala__httpd_stream_write(req, chunk, (size_t)n);
    uv_timer_start(&f->timer, on_timer, 5, 0);
  } else {
    f->held = NULL;
    kuala__httpd_stream_end(req);
  }
}

static void handler(void *data, kuala__httpd_req_t *req)
{
  fixture_t *f = data;
  f->handled++;
  const char *path = kuala__httpd_path(req);
  if (kuala__httpd_req_has_nul(req)) {
    kuala__httpd_respond(req, 400, "text/plain", "nul", 3);
  } else if (kuala__httpd_req_too_large(req)) {
    kuala__httpd_respond(req, 413, "text/plain", "big", 3);
  } else if (strcmp(path, "/slow") == 0) {
    /* Answered later: the pipelined request behind it must wait. */
    f->held = req;
    kuala__httpd_req_on_close(req, on_req_close, f);
    uv_timer_start(&f->timer, on_timer, 30, 0);
  } else if (strcmp(path, "/echo") == 0) {
    size_t n;
    const char *body = kuala__httpd_body(req, &n);
    char out[256];
    const char *x = kuala__httpd_query(req, "x");
    const char *ua = kuala__httpd_header(req, "user-agent");
    int len =
        snprintf(out, sizeof out, "B[%.*s][%s][%s]", (int)n, body, x ? x : "-", ua ? ua : "-");
    kuala__httpd_add_header(req, "X-Test", "yes");
    kuala__httpd_respond(req, 200, "text/plain", out, (size_t)len);
  } else if (strcmp(path, "/stream") == 0) {
    f->held = req;
    f->stream_left = 3;
    kuala__httpd_req_on_close(req, on_req_close, f);
    kuala__httpd_stream_start(req, 200, "application/json");
    uv_timer_start(&f->timer, on_timer, 5, 0);
  } else if (strcmp(path, "/hang") == 0) {
    f->held = req;
    kuala__httpd_req_on_close(req, on_req_close, f);
    kuala__httpd_stream_start(req, 200, "application/json");
  } else {
    kuala__httpd_respond(req, 404, "text/plain", "nope", 4);
  }
}

static void run(fixture_t *f, size_t max_body)
{
  ck_assert_int_eq(uv_loop_init(&f->loop), 0);
  uv_async_init(&f->loop, &f->done, on_done);
  f->done.data = f;
  uv_timer_init(&f->loop, &f->timer);
  f->timer.data = f;
  kuala__httpd_opts_t o = {.port = 0,
                           .max_body = max_body,
                           .handler = handler,
                           .data = f,
                           .header_timeout_ms = f->header_ms};
  ck_assert_int_eq(kuala__httpd_start(&f->srv, &f->loop, &o), 0);
  f->port = kuala__httpd_port(f->srv);
  ck_assert_int_gt(f->port, 0);
  pthread_create(&f->thread, NULL, client_main, f);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  pthread_join(f->thread, NULL);
  ck_assert_int_eq(uv_loop_close(&f->loop), 0);
}

START_TEST(test_httpd_pipelined_in_order)
{
  fixture_t *f = kuala_calloc(1, sizeof *f);
  f->request =
      "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo?x=a%20b+c&y HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\n"
      "Content-Length: 5\r\n\r\nhello";
  f->until = "HTTP/1.1 200 OK";
  f->count = 2;
  f->close_early = 0;
  run(f, 0);
  ck_assert_int_eq(f->handled, 2);
  char *a = strstr(f->response, "\r\n\r\nA");
  char *b = strstr(f->response, "B[hello][a b c][t/1]");
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert(a < b); /* the slow answer comes first */
  ck_assert_ptr_nonnull(strstr(f->response, "X-Test: yes\r\n"));
  ck_assert_ptr_nonnull(strstr(f->response, "Content-Length: 1\r\n"));
  ck_assert_int_eq(f->eof, 0); /* keep-alive */
  kuala_free(f);
}
END_TEST

START_TEST(test_httpd_body_cap)
{
  fixture_t *f = kuala_calloc(1, sizeof *f);
  f->request =
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n01234567890123456789"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok";
  f->until = "\r\n\r\n";
  f->count = 2;
  run(f, 10);
  ck_assert_ptr_nonnull(strstr(f->response, "HTTP/1.1 413 Request Entity Too Large"));
  /* The connection keeps serving after the refusal. */
  ck_assert_ptr_nonnull(strstr(f->response, "B[ok]"));
  kuala_free(f);
}
END_TEST

START_TEST(test_httpd_chunked_stream)
{
  fixture_t *f = kuala_calloc(1, sizeof *f);
  f->request = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
  f->until = "0\r\n\r\n";
  f->count = 1;
  run(f, 0);
  ck_assert_ptr_nonnull(strstr(f->response, "Transfer-Encoding: chunked\r\n"));
  ck_assert_ptr_nonnull(
      strstr(f->response, "8\r\n{\"n\":3}\n\r\n8\r\n{\"n\":2}\n\r\n8\r\n{\"n\":1}\n\r\n0\r\n\r\n"));
  ck_assert_int_eq(f->closes, 0);
  kuala_free(f);
}
END_TEST

START_TEST(test_httpd_detects_disconnect)
{
  fixture_t *f = kuala_calloc(1, sizeof *f);
  f->request = "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n";
  f->until = "chunked\r\n\r\n";
  f->count = 1;
  f->close_early = 1;
  run(f, 0);
  ck_assert_int_eq(f->handled, 1);
  ck_assert_int_eq(f->closes, 1);
  ck_assert_ptr_null(f->held);
  kuala_free(f);
}
END_TEST

START_TEST(test_httpd_bad_request_closes)
{
  fixture_t *f = kuala_calloc(1, sizeof *f);
  f->request = "THIS IS NOT HTTP\r\n\r\n";
  f->until = NULL;
  run(f, 0);
  ck_assert_ptr_nonnull(strstr(f->response, "HTTP/1.1 400 Bad Request"));
  ck_assert_int_eq(f->eof, 1);
  ck_assert_int_eq(f->handled, 0);
  kuala_free(f);
}
END_TEST

START_TEST(test_httpd_connection_close)
{
  fixture_t *f = kuala_calloc(1, sizeof *f);
  f->request = "GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  f->until = NULL;
  run(f, 0);
  ck_assert_ptr_nonnull(strstr(f->response, "HTTP/1.1 404 Not Found"));
  ck_assert_ptr_nonnull(strstr(f->response, "Connection: close"));
  ck_assert_int_eq(f->eof, 1);
  kuala_free(f);
}
END_TEST

START_TEST(test_httpd_expect_continue)
{
  fixture_t *f = kuala_calloc(1, sizeof *f);
  f->request =
      "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi";
  f->until = "B[hi]";
  f->count = 1;
  run(f, 0);
  ck_assert_ptr_nonnull(strstr(f->response, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
  kuala_free(f);
}
END_TEST

START_TEST(test_httpd_header_timeout)
{
  /* Headers that never end: the server closes after header_timeout_ms,
   * long before the client's 5 s read timeout. */
  fixture_t *f = kuala_calloc(1, sizeof *f);
  f->request = "GET /echo HTTP/1.1\r\nHost: x\r\n";
  f->until = NULL;
  f->header_ms = 200;
  run(f, 0);
  ck_assert_int_eq(f->eof, 1);
  ck_assert_int_eq(f->handled, 0);
  ck_assert_int_eq((int)f->rlen, 0);
  kuala_free(f);
}
END_TEST

START_TEST(test_httpd_nul_in_target)
{
  /* %00 would end the decoded C string: the handler is told. */
  fixture_t *f = kuala_calloc(1, sizeof *f);
  f->request =
      "GET /echo%00junk HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /echo?x=a%00 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /echo?x=%41 HTTP/1.1\r\nHost: x\r\n\r\n";
  f->until = "\r\n\r\n";
  f->count = 3;
  run(f, 0);
  ck_assert_int_eq(count_occ(f->response, "HTTP/1.1 400 Bad Request"), 2);
  ck_assert_ptr_nonnull(strstr(f->response, "B[][A][-]"));
  kuala_free(f);
}
END_TEST

/* The fuzzing seam: no socket, pipelined requests answered in order into
 * a buffer, a bad request answered 400, and the hang-up after the bytes
 * runs the close callback of a request still pending. */
static int mem_closed;

static void mem_on_close(void *data, kuala__httpd_req_t *req)
{
  (void)data;
  (void)req;
  mem_closed++;
}

static void mem_handler(void *data, kuala__httpd_req_t *req)
{
  (void)data;
  const char *path = kuala__httpd_path(req);
  if (strcmp(path, "/hold") == 0) {
    kuala__httpd_req_on_close(req, mem_on_close, NULL);
    return; /* never answered: the client hangs up */
  }
  kuala__httpd_respond(req, 200, "text/plain", path, strlen(path));
}

START_TEST(test_httpd_feed_mem)
{
  uv_loop_t loop;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  kuala__httpd_t *srv = NULL;
  kuala__httpd_opts_t o = {.no_listen = 1, .handler = mem_handler};
  ck_assert_int_eq(kuala__httpd_start(&srv, &loop, &o), 0);
  ck_assert_int_eq(kuala__httpd_port(srv), 0);
  kuala_buf_t out = KUALA_BUF_INIT(0);
  static const char three[] =
      "GET /a%2Fb HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\n\r\n"
      "GET /hold HTTP/1.1\r\n\r\n";
  ck_assert_int_eq(kuala__httpd_feed_mem(srv, three, sizeof three - 1, &out), 0);
  kuala_buf_putc(&out, '\0');
  const char *first = strstr(out.data, "HTTP/1.1 200 OK");
  ck_assert_ptr_nonnull(first);
  ck_assert_ptr_nonnull(strstr(first, "\r\n\r\n/a/b"));
  ck_assert_ptr_nonnull(strstr(first + 1, "HTTP/1.1 200 OK"));
  ck_assert_ptr_nonnull(strstr(out.data, "\r\n\r\n/c"));
  ck_assert_ptr_null(strstr(out.data, "/hold"));
  uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(mem_closed, 1);
  kuala_buf_reset(&out);
  ck_assert_int_eq(kuala__httpd_feed_mem(srv, "GARBAGE\r\n\r\n", 11, &out), 0);
  kuala_buf_putc(&out, '\0');
  ck_assert_ptr_nonnull(strstr(out.data, "HTTP/1.1 400 Bad Request"));
  kuala_buf_free(&out);
  kuala__httpd_close(srv, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* More pipelined requests than the queue holds behind a slow one: reading
 * stops at MAX_QUEUED and must resume once the queue drains (it did not:
 * uv_read_start was called without an alloc callback, which libuv refuses,
 * and the connection hung). */
START_TEST(test_httpd_pipelined_past_the_queue)
{
  fixture_t *f = kuala_calloc(1, sizeof *f);
  /* 2 KiB a request: more than one 64 KiB read, so bytes are still
   * unread when the queue is full. */
  static char req[128 << 10], pad[2049];
  memset(pad, 'p', sizeof pad - 1);
  size_t off = (size_t)snprintf(req, sizeof req, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  for (int i = 0; i < 40; i++) {
    off += (size_t)snprintf(req + off, sizeof req - off,
                            "GET /echo?x=%d HTTP/1.1\r\nX-Pad: %s\r\n\r\n", i, pad);
  }
  f->request = req;
  f->until = "HTTP/1.1 200 OK";
  f->count = 41;
  run(f, 0);
  ck_assert_int_eq(count_occ(f->response, "HTTP/1.1 200 OK"), 41);
  ck_assert_ptr_nonnull(strstr(f->response, "B[][39][-]"));
  ck_assert_int_eq(f->handled, 41);
  kuala_free(f);
}
END_TEST

/* Percent-decoding of header-borne names (Impersonate-Extra-<key>): %XX
 * decoded, a bad escape kept as it is, the output bounded. */
START_TEST(test_httpd_unescape)
{
  char out[16];
  ck_assert_uint_eq(kuala__httpd_unescape("a%2Fb%zz%4", out, sizeof out), 8);
  ck_assert_str_eq(out, "a/b%zz%4");
  ck_assert_uint_eq(kuala__httpd_unescape("scopes", out, sizeof out), 6);
  ck_assert_str_eq(out, "scopes");
  ck_assert_uint_eq(kuala__httpd_unescape("abcdef", out, 4), 3);
  ck_assert_str_eq(out, "abc");
}
END_TEST

int main(void)
{
  Suite *s = suite_create("httpd");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_httpd_pipelined_in_order);
  tcase_add_test(tc, test_httpd_body_cap);
  tcase_add_test(tc, test_httpd_chunked_stream);
  tcase_add_test(tc, test_httpd_detects_disconnect);
  tcase_add_test(tc, test_httpd_bad_request_closes);
  tcase_add_test(tc, test_httpd_connection_close);
  tcase_add_test(tc, test_httpd_expect_continue);
  tcase_add_test(tc, test_httpd_header_timeout);
  tcase_add_test(tc, test_httpd_nul_in_target);
  tcase_add_test(tc, test_httpd_feed_mem);
  tcase_add_test(tc, test_httpd_pipelined_past_the_queue);
  tcase_add_test(tc, test_httpd_unescape);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
