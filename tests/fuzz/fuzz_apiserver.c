/*
 * fuzz_apiserver.c: libFuzzer target for the emulator's request path.
 *
 * The input is raw bytes from a client: request line (any method, a target
 * with percent-escapes, a query), headers, body, possibly several
 * pipelined requests or garbage. They go through the HTTP server's parser
 * and target decoding (core/serve/httpd.c, on a connection that has no
 * socket: kuala__httpd_feed_mem) into kuala-apiserver's authentication,
 * routing, validation, reads, writes, patches and watches (apiserver/),
 * then the client hangs up (requests still pending, such as a watch or a
 * read waiting for a future revision, get their close callbacks).
 *
 * One emulator lives for the whole run, as a real server would: objects,
 * CRDs and namespaces created by one input are there for the next (so a
 * crash can depend on the inputs before it; run.sh replays the whole
 * regression directory in one process).
 *
 * Properties, beyond no crash, leak or undefined behaviour: the bytes
 * written back are a sequence of HTTP/1.1 responses (status line with a
 * three-digit code, headers, a Content-Length or chunked body; only the
 * last one may be cut short, by the hang-up); a complete body sent as
 * application/json is valid JSON; nothing answers 500 (an internal error
 * is a bug of the emulator, not of the request).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "auth.h"
#include "emu.h"
#include "kuala/buf.h"
#include "kuala/json.h"
#include "serve/httpd.h"

static emu_t emu;
static int ready;

static void run_loop(void)
{
  /* Close callbacks and idle flushes of this input (timers of waits and
   * simulations run when their time has come, in a later input). */
  for (int i = 0; i < 4; i++) {
    uv_run(emu.loop, UV_RUN_NOWAIT);
  }
}

static void feed(const char *data, size_t len, kuala_buf_t *out)
{
  kuala_buf_reset(out);
  if (kuala__httpd_feed_mem(emu.httpd, data, len, out) != 0) {
    abort();
  }
  run_loop();
}

/* Header value of `name` in head[0..n) (lines end with \r\n), or NULL. */
static const char *header(const char *head, size_t n, const char *name, size_t *vlen)
{
  size_t nl = strlen(name);
  for (size_t i = 0; i < n;) {
    const char *eol = memchr(head + i, '\n', n - i);
    size_t end = eol ? (size_t)(eol - head) : n;
    if (end - i > nl + 1 && strncasecmp(head + i, name, nl) == 0 && head[i + nl] == ':') {
      size_t v = i + nl + 1;
      while (v < end && head[v] == ' ') {
        v++;
      }
      size_t e = end;
      while (e > v && (head[e - 1] == '\r' || head[e - 1] == ' ')) {
        e--;
      }
      *vlen = e - v;
      return head + v;
    }
    i = end + 1;
  }
  return NULL;
}

static void check_json(const char *head, size_t hlen, const char *body, size_t blen)
{
  size_t tl = 0;
  const char *ct = header(head, hlen, "Content-Type", &tl);
  if (!ct || tl < 16 || strncmp(ct, "application/json", 16) != 0 || blen == 0) {
    return;
  }
  char err[256];
  if (kuala_json_validate(body, blen, KUALA_JSON_WIRE_DEPTH, err, sizeof err) != 0) {
    fprintf(stderr, "fuzz_apiserver: invalid JSON body (%s): %.*s\n", err,
            (int)(blen > 300 ? 300 : blen), body);
    abort();
  }
}

/* The output must be HTTP/1.1 responses; the last may be cut short. */
static void check_responses(const kuala_buf_t *out)
{
  const char *s = out->data;
  size_t n = out->len, i = 0;
  while (i < n) {
    if (n - i < 13) {
      return; /* a cut status line cannot happen: written at once */
    }
    if (memcmp(s + i, "HTTP/1.1 ", 9) != 0 || s[i + 9] < '1' || s[i + 9] > '5' || s[i + 10] < '0' ||
        s[i + 10] > '9' || s[i + 11] < '0' || s[i + 11] > '9' || s[i + 12] != ' ') {
      fprintf(stderr, "fuzz_apiserver: not a status line: %.*s\n", (int)(n - i > 80 ? 80 : n - i),
              s + i);
      abort();
    }
    if (memcmp(s + i + 9, "500", 3) == 0) {
      fprintf(stderr, "fuzz_apiserver: 500: %.*s\n", (int)(n - i > 600 ? 600 : n - i), s + i);
      abort();
    }
    const char *hend = NULL;
    for (size_t k = i; k + 3 < n; k++) {
      if (s[k] == '\r' && s[k + 1] == '\n' && s[k + 2] == '\r' && s[k + 3] == '\n') {
        hend = s + k;
        break;
      }
    }
    if (!hend) {
      abort(); /* headers are written in one piece */
    }
    size_t hlen = (size_t)(hend - (s + i)), b = (size_t)(hend - s) + 4;
    size_t vl = 0;
    const char *cl = header(s + i, hlen, "Content-Length", &vl);
    const char *te = header(s + i, hlen, "Transfer-Encoding", &vl);
    if (cl) {
      size_t len = strtoull(cl, NULL, 10);
      if (len > n - b) {
        abort(); /* a whole response is written at once */
      }
      check_json(s + i, hlen, s + b, len);
      i = b + len;
      continue;
    }
    if (!te || vl != 7 || strncasecmp(te, "chunked", 7) != 0) {
      abort(); /* keep-alive responses need a length */
    }
    /* Chunks until the last one, or the end of what was written. */
    for (;;) {
      if (b >= n) {
        return; /* cut by the hang-up: must be the last response */
      }
      char *end;
      unsigned long long len = strtoull(s + b, &end, 16);
      const char *crlf = memchr(s + b, '\n', n - b);
      if (end == s + b || !crlf) {
        abort();
      }
      b = (size_t)(crlf - s) + 1;
      if (len > n - b) {
        return;
      }
      b += len;
      if (b + 2 > n) {
        return;
      }
      if (s[b] != '\r' || s[b + 1] != '\n') {
        abort();
      }
      b += 2;
      if (len == 0) {
        break;
      }
    }
    i = b;
  }
}

static void setup(void)
{
  emu.loop = uv_default_loop();
  char err[256];
  if (emu_auth_configure(&emu, NULL, NULL, err, sizeof err) < 0) {
    abort();
  }
  emu.deploy_delay_ms = 500;
  emu.bookmark_ms = 60000;
  emu_store_init(&emu, 10000);
  emu_registry_init(&emu);
  emu_controllers_init(&emu);
  emu.stream_high = 1u << 20;
  kuala__httpd_opts_t o = {.no_listen = 1, .handler = emu_handle, .data = &emu};
  if (kuala__httpd_start(&emu.httpd, emu.loop, &o) != 0) {
    abort();
  }
  kuala_buf_t out = KUALA_BUF_INIT(0);
  static const char *const ns[] = {"default", "kube-system"};
  for (size_t i = 0; i < 2; i++) {
    char body[160], req[512];
    int bl = snprintf(body, sizeof body,
                      "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
                      "\"%s\"}}",
                      ns[i]);
    int rl = snprintf(req, sizeof req,
                      "POST /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "application/json\r\nContent-Length: %d\r\n\r\n%s",
                      bl, body);
    feed(req, (size_t)rl, &out);
    check_responses(&out);
  }
  kuala_buf_free(&out);
  ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!ready) {
    setup();
  }
  if (size > 65536) {
    return 0;
  }
  static kuala_buf_t out = KUALA_BUF_INIT(0);
  feed((const char *)data, size, &out);
  if (getenv("KUALA_FUZZ_VERBOSE")) { /* triage: what the server answered */
    fwrite(out.data ? out.data : "", 1, out.len, stderr);
    fputc('\n', stderr);
  }
  check_responses(&out);
  if (out.cap > (1u << 20)) {
    kuala_buf_free(&out); /* keep a large list's buffer from staying */
  }
  return 0;
}
