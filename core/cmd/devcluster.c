/*
 * devcluster.c: run kuala-apiserver as a child process for `kuala dev`.
 *
 * The child's stdout is a pipe; the first line that starts with
 * "listening on " carries the URL. Everything else it prints is passed to
 * our log at debug level. The child gets its own temporary directory for
 * the kubeconfig, removed on stop.
 *
 * The emulator dies with `kuala dev`, whatever kills it (SIGKILL, SIGPIPE,
 * a crash): it is started through a guard, `kuala` itself re-executed as
 * the hidden command KUALA__DEVCLUSTER_GUARD_CMD. The guard asks the kernel
 * for SIGTERM when its parent dies (PR_SET_PDEATHSIG), starts the emulator
 * with PR_SET_PDEATHSIG(SIGKILL) on the guard, forwards a termination
 * signal to it, waits for it and then removes the temporary directory. uv
 * cannot run code between fork and exec, hence the re-exec; the guard is a
 * fresh single-threaded process, so it may fork and wait freely. Only a
 * SIGKILL of the guard itself leaves the directory behind (the emulator
 * still dies, by its own death signal).
 *
 * Ownership: the devcluster owns the process and pipe handles and frees
 * itself once both are closed (after stop, or after the child exited and
 * stop was called).
 */
#include "devcluster.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"
#include "kuala/log.h"

struct kuala__devcluster_s {
  uv_loop_t *loop;
  uv_process_t proc;
  uv_pipe_t out;
  kuala_buf_t line;
  char dir[PATH_MAX];
  char kubeconfig[PATH_MAX + 16];
  char *server;
  kuala__devcluster_ready_cb ready;
  kuala__devcluster_exit_cb on_exit;
  void *data;
  int ready_sent;
  int exited;
  int stopping;
  int open_handles;
};

static int is_exec(const char *path)
{
  return access(path, X_OK) == 0;
}

char *kuala__devcluster_find_binary(void)
{
  const char *env = getenv("KUALA_APISERVER");
  if (env && *env) {
    return kuala_strdup(env);
  }
  char exe[PATH_MAX];
  size_t len = sizeof(exe);
  if (uv_exepath(exe, &len) == 0) {
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      char cand[PATH_MAX + 64];
      const char *rel[] = {"/kuala-apiserver", "/../apiserver/kuala-apiserver"};
      for (size_t i = 0; i < 2; i++) {
        snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
        if (is_exec(cand)) {
          return kuala_strdup(cand);
        }
      }
    }
  }
  const char *path = getenv("PATH");
  while (path && *path) {
    const char *colon = strchr(path, ':');
    size_t n = colon ? (size_t)(colon - path) : strlen(path);
    char cand[PATH_MAX];
    if (n > 0 && n + sizeof("/kuala-apiserver") < sizeof(cand)) {
      snprintf(cand, sizeof(cand), "%.*s/kuala-apiserver", (int)n, path);
      if (is_exec(cand)) {
        return kuala_strdup(cand);
      }
    }
    path = colon ? colon + 1 : NULL;
  }
  return NULL;
}

static void maybe_free(kuala__devcluster_t *d)
{
  if (!d->stopping || d->open_handles > 0) {
    return;
  }
  unlink(d->kubeconfig);
  rmdir(d->dir);
  kuala_buf_free(&d->line);
  kuala_free(d->server);
  kuala_free(d);
}

static void handle_closed(uv_handle_t *h)
{
  kuala__devcluster_t *d = h->data;
  d->open_handles--;
  maybe_free(d);
}

static void send_ready(kuala__devcluster_t *d, int err)
{
  if (d->ready_sent) {
    return;
  }
  d->ready_sent = 1;
  d->ready(d->data, err, err ? NULL : d->kubeconfig, err ? NULL : d->server);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
  kuala__devcluster_t *d = p->data;
  d->exited = 1;
  if (!d->stopping) {
    KUALA_LOG(KUALA_LOG_ERROR, "kuala-apiserver exited", "status", status == 0 ? "0" : "non-zero",
              "signal", term_signal ? "yes" : "no");
    if (!d->ready_sent) {
      send_ready(d, KUALA_EIO);
    } else if (d->on_exit) {
      d->on_exit(d->data, status, term_signal);
    }
  }
  uv_close((uv_handle_t *)p, handle_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)h;
  buf->base = kuala_malloc(suggested);
  buf->len = suggested;
}

static void on_line(kuala__devcluster_t *d, const char *line)
{
  const char *prefix = "listening on ";
  if (!d->ready_sent && strncmp(line, prefix, strlen(prefix)) == 0) {
    d->server = kuala_strdup(line + strlen(prefix));
    /* The kubeconfig is written before the listening line is printed. */
    send_ready(d, access(d->kubeconfig, R_OK) == 0 ? 0 : KUALA_ENOENT);
    return;
  }
  KUALA_LOG(KUALA_LOG_DEBUG, "kuala-apiserver", "line", line);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
  kuala__devcluster_t *d = s->data;
  if (n > 0) {
    for (ssize_t i = 0; i < n; i++) {
      char c = buf->base[i];
      if (c == '\n') {
        on_line(d, d->line.data ? d->line.data : "");
        kuala_buf_reset(&d->line);
      } else if (kuala_buf_putc(&d->line, c) != 0) {
        kuala_buf_reset(&d->line); /* an absurdly long line: drop it */
      }
    }
  } else if (n < 0) {
    uv_read_stop(s);
    if (!d->ready_sent) {
      send_ready(d, KUALA_EIO);
    }
  }
  kuala_free(buf->base);
}

int kuala__devcluster_start(kuala__devcluster_t **out, uv_loop_t *loop, const char *binary,
                            char **args, kuala__devcluster_ready_cb ready,
                            kuala__devcluster_exit_cb on_exit, void *data)
{
  *out = NULL;
  char *found = binary ? kuala_strdup(binary) : kuala__devcluster_find_binary();
  if (found == NULL) {
    KUALA_LOG(KUALA_LOG_ERROR,
              "kuala-apiserver not found (set KUALA_APISERVER or put it beside kuala or in "
              "PATH)");
    return KUALA_ENOENT;
  }
  kuala__devcluster_t *d = kuala_calloc(1, sizeof(*d));
  d->loop = loop;
  d->ready = ready;
  d->on_exit = on_exit;
  d->data = data;
  kuala_buf_init(&d->line, 64 * 1024);
  const char *tmp = getenv("TMPDIR");
  snprintf(d->dir, sizeof(d->dir), "%s/kuala-dev-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(d->dir) == NULL) {
    int rc = -errno;
    KUALA_LOG(KUALA_LOG_ERROR, "cannot create a temporary directory", "dir", d->dir);
    kuala_free(found);
    kuala_buf_free(&d->line);
    kuala_free(d);
    return rc;
  }
  snprintf(d->kubeconfig, sizeof(d->kubeconfig), "%s/kubeconfig", d->dir);

  /* Through the guard (see the top of this file): kuala GUARD PPID DIR
   * BINARY ARGS... */
  char self[PATH_MAX];
  size_t self_len = sizeof(self);
  if (uv_exepath(self, &self_len) != 0) {
    KUALA_LOG(KUALA_LOG_ERROR, "cannot find the kuala executable to guard the emulator");
    rmdir(d->dir);
    kuala_free(found);
    kuala_buf_free(&d->line);
    kuala_free(d);
    return KUALA_ENOENT;
  }
  char ppid[32];
  snprintf(ppid, sizeof(ppid), "%ld", (long)getpid());
  char *argv[40];
  size_t argc = 0;
  argv[argc++] = self;
  argv[argc++] = KUALA__DEVCLUSTER_GUARD_CMD;
  argv[argc++] = ppid;
  argv[argc++] = d->dir;
  argv[argc++] = found;
  argv[argc++] = "--port";
  argv[argc++] = "0";
  argv[argc++] = "--kubeconfig-out";
  argv[argc++] = d->kubeconfig;
  for (size_t i = 0; args && args[i] && argc < 39; i++) {
    argv[argc++] = args[i];
  }
  argv[argc] = NULL;

  uv_pipe_init(loop, &d->out, 0);
  d->out.data = d;
  d->open_handles = 1;
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&d->out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t po;
  memset(&po, 0, sizeof(po));
  po.file = self;
  po.args = argv;
  po.exit_cb = on_exit_cb;
  po.stdio = stdio;
  po.stdio_count = 3;
  d->proc.data = d;
  int rc = uv_spawn(loop, &d->proc, &po);
  kuala_free(found);
  if (rc) {
    KUALA_LOG(KUALA_LOG_ERROR, "cannot start kuala-apiserver", "error", uv_strerror(rc));
    d->stopping = 1;
    d->open_handles = 2;
    uv_close((uv_handle_t *)&d->proc, handle_closed); /* uv wants a failed spawn closed */
    uv_close((uv_handle_t *)&d->out, handle_closed);
    return rc;
  }
  d->open_handles = 2;
  uv_read_start((uv_stream_t *)&d->out, alloc_cb, read_cb);
  *out = d;
  return 0;
}

void kuala__devcluster_stop(kuala__devcluster_t *d)
{
  if (d == NULL || d->stopping) {
    return;
  }
  d->stopping = 1;
  if (!d->exited) {
    uv_process_kill(&d->proc, SIGTERM);
  }
  if (!uv_is_closing((uv_handle_t *)&d->out)) {
    uv_close((uv_handle_t *)&d->out, handle_closed);
  }
  maybe_free(d);
}

/* --- the guard process ----------------------------------------------------- */

static void guard_cleanup(const char *dir)
{
  char path[PATH_MAX + 16];
  snprintf(path, sizeof(path), "%s/kubeconfig", dir);
  unlink(path);
  rmdir(dir);
}

int kuala__devcluster_guard_main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "kuala: %s is internal to kuala dev\n", KUALA__DEVCLUSTER_GUARD_CMD);
    return 2;
  }
  char *end = NULL;
  long parent = strtol(argv[1], &end, 10);
  const char *dir = argv[2];
  if (end == argv[1] || *end != '\0') {
    fprintf(stderr, "kuala: %s: bad parent pid %s\n", KUALA__DEVCLUSTER_GUARD_CMD, argv[1]);
    return 2;
  }
  sigset_t waitset, old;
  sigemptyset(&waitset);
  sigaddset(&waitset, SIGTERM);
  sigaddset(&waitset, SIGINT);
  sigaddset(&waitset, SIGHUP);
  sigaddset(&waitset, SIGQUIT);
  sigaddset(&waitset, SIGCHLD);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigprocmask(SIG_BLOCK, &waitset, &old);
  /* From here a dying parent means a pending SIGTERM; one that died before
   * is seen as a new parent. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if ((long)getppid() != parent) {
    guard_cleanup(dir);
    return 1;
  }
  pid_t guard = getpid();
  pid_t child = fork();
  if (child < 0) {
    perror("kuala: cannot start kuala-apiserver");
    guard_cleanup(dir);
    return 1;
  }
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != guard) {
      _exit(1);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, SIG_DFL);
    execv(argv[3], argv + 3);
    fprintf(stderr, "kuala: cannot run %s: %s\n", argv[3], strerror(errno));
    _exit(127);
  }
  int status = 0;
  int forwarded = 0;
  for (;;) {
    siginfo_t si;
    struct timespec grace = {5, 0};
    int sig = sigtimedwait(&waitset, &si, forwarded ? &grace : NULL);
    if (sig == SIGCHLD || (sig < 0 && errno == EAGAIN)) {
      pid_t w = waitpid(child, &status, WNOHANG);
      if (w == child) {
        break;
      }
      if (sig < 0) {
        kill(child, SIGKILL); /* no exit within the grace period */
      }
    } else if (sig > 0 && !forwarded) {
      kill(child, SIGTERM);
      forwarded = 1;
    }
  }
  guard_cleanup(dir);
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
