/* emuproc.c: see emuproc.h. */
#include "emuproc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clienttest.h"
#include "kuala/error.h"

int emuproc_find(char *out, size_t n)
{
  const char *bin = getenv("KUALA_EMU_BIN");
  const char *dir = getenv("KUALA_BINARY_DIR");
  if (bin && *bin) {
    snprintf(out, n, "%s", bin);
  } else {
    snprintf(out, n, "%s/apiserver/kuala-apiserver", dir ? dir : ".");
  }
  return access(out, X_OK) == 0 ? 0 : KUALA_ENOENT;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  emuproc_t *p = h->data;
  if (p->len >= sizeof(p->buf) - 1) {
    p->len = 0; /* the port line came first; later output is not needed */
  }
  b->base = p->buf + p->len;
  b->len = sizeof(p->buf) - 1 - p->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
  emuproc_t *p = s->data;
  if (n < 0) {
    uv_read_stop(s);
    return;
  }
  p->len += (size_t)n;
  p->buf[p->len] = '\0';
  const char *l = strstr(p->buf, "listening on http");
  const char *colon = l ? strstr(l, "127.0.0.1:") : NULL;
  if (colon && strchr(colon, '\n') && !p->port) {
    p->port = (int)strtol(colon + 10, NULL, 10);
    snprintf(p->url, sizeof(p->url), "%.*s", (int)(strchr(l, '\n') - (l + 13)), l + 13);
  }
  const char *a = strstr(p->buf, "admin listening on http://127.0.0.1:");
  if (a && strchr(a, '\n') && !p->admin_port) {
    p->admin_port = (int)strtol(a + 36, NULL, 10);
    snprintf(p->admin_url, sizeof(p->admin_url), "http://127.0.0.1:%d", p->admin_port);
  }
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
  ((emuproc_t *)proc->data)->exited = 1;
}

static void on_closed(uv_handle_t *h)
{
  ((emuproc_t *)h->data)->closed++;
}

int emuproc_start(emuproc_t *p, uv_loop_t *loop, const char *const *extra)
{
  memset(p, 0, sizeof(*p));
  char bin[1024];
  int rc = emuproc_find(bin, sizeof(bin));
  if (rc != 0) {
    return rc;
  }
  char *args[32];
  int n = 0;
  args[n++] = bin;
  args[n++] = "--port";
  args[n++] = "0";
  for (size_t i = 0; extra && extra[i] && n < 31; i++) {
    args[n++] = (char *)extra[i];
  }
  args[n] = NULL;
  int want_admin = 0;
  for (size_t i = 0; extra && extra[i]; i++) {
    want_admin |= strcmp(extra[i], "--admin-port") == 0;
  }
  uv_pipe_init(loop, &p->out, 0);
  p->out.data = p;
  p->proc.data = p;
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&p->out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t po;
  memset(&po, 0, sizeof(po));
  po.file = bin;
  po.args = args;
  po.stdio = stdio;
  po.stdio_count = 3;
  po.exit_cb = on_exit_cb;
  rc = uv_spawn(loop, &p->proc, &po);
  if (rc != 0) {
    uv_close((uv_handle_t *)&p->proc, on_closed);
    uv_close((uv_handle_t *)&p->out, on_closed);
    return rc;
  }
  uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
  if (!ct_run_until(loop, &p->port, 10000) ||
      (want_admin && !ct_run_until(loop, &p->admin_port, 10000))) {
    emuproc_stop(p, loop);
    return KUALA_ETIMEDOUT;
  }
  return 0;
}

void emuproc_stop(emuproc_t *p, uv_loop_t *loop)
{
  if (!p->exited) {
    uv_process_kill(&p->proc, SIGTERM);
    ct_run_until(loop, &p->exited, 10000);
  }
  if (!uv_is_closing((uv_handle_t *)&p->proc)) {
    uv_close((uv_handle_t *)&p->proc, on_closed);
  }
  if (!uv_is_closing((uv_handle_t *)&p->out)) {
    uv_close((uv_handle_t *)&p->out, on_closed);
  }
}
