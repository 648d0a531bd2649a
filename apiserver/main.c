/*
 * kuala-apiserver: a Kubernetes API server emulator (see docs/emulator.md).
 *
 *   kuala-apiserver [--port N] [--kubeconfig-out FILE] [--token T]
 *                   [--tls | --tls-cert F --tls-key F] [--admin-port N]
 *                   [--history N] [--deployment-ready-delay MS]
 *                   [--bookmark-interval MS] [--data-dir DIR]
 *
 * Prints `listening on http://127.0.0.1:PORT` (https with TLS) on stdout,
 * flushed, once it accepts connections. SIGINT/SIGTERM stop it.
 */
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "auth.h"
#include "emu.h"
#include "kuala/alloc.h"
#include "kuala/json.h"
#include "tls.h"

static void usage(FILE *f)
{
  fputs(
      "usage: kuala-apiserver [options]\n"
      "  --port N                    listen on 127.0.0.1:N (0 = pick a free port)\n"
      "  --kubeconfig-out FILE       write a kubeconfig pointing at this server\n"
      "  --token TOKEN               require 'Authorization: Bearer TOKEN' (401 otherwise)\n"
      "  --token-auth-file FILE      static tokens, kube-apiserver's CSV: "
      "token,user,uid,\"g1,g2\"\n"
      "  --authorization-mode MODE   AlwaysAllow (default) or RBAC (Roles, bindings, "
      "impersonation)\n"
      "  --tls                       serve HTTPS with a generated self-signed certificate\n"
      "  --tls-cert FILE --tls-key FILE  serve HTTPS with this certificate and key (PEM)\n"
      "  --admin-port N              fault-injection admin endpoint on 127.0.0.1:N (0 = pick)\n"
      "  --history N                 watch history ring size in events (default 10000)\n"
      "  --deployment-ready-delay MS delay before a Deployment's simulated status (500)\n"
      "  --bookmark-interval MS      periodic watch bookmarks when asked for (default 60000)\n"
      "  --data-dir DIR              keep objects and the revision in DIR/kuala-apiserver.db\n"
      "  --max-connections N         open connections; more get 503 and are closed (4096)\n"
      "  --read-header-timeout MS    close a request whose headers stall (32000)\n"
      "  --read-body-timeout MS      close a request whose body stalls (60000)\n"
      "  --idle-timeout MS           close an idle keep-alive connection (90000)\n"
      "  --max-pending BYTES         unsent bytes before a non-reading client is dropped\n"
      "                              (64 MiB; lists stream below it; small values for tests)\n"
      "  --help                      this text\n",
      f);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) {
    return -1;
  }
  *out = v;
  return 0;
}

static emu_t emu;
static uv_signal_t sigint, sigterm;

static void on_signal(uv_signal_t *s, int signum)
{
  (void)s;
  (void)signum;
  fflush(stdout);
  exit(0);
}

static int write_kubeconfig(const char *path, const char *url, const char *token,
                            const char *ca_pem)
{
  FILE *f = fopen(path, "w");
  if (!f) {
    return -1;
  }
  fprintf(f,
          "apiVersion: v1\nkind: Config\nclusters:\n- name: kuala-emu\n  cluster:\n    server: "
          "%s\n",
          url);
  if (ca_pem) {
    size_t n = strlen(ca_pem);
    char *b64 = kuala_malloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)ca_pem, (int)n);
    fprintf(f, "    certificate-authority-data: %s\n", b64);
    kuala_free(b64);
  }
  fprintf(f,
          "users:\n- name: kuala-emu\n  user:\n%s%s%s"
          "contexts:\n- name: kuala-emu\n  context:\n    cluster: kuala-emu\n    user: "
          "kuala-emu\n    namespace: default\ncurrent-context: kuala-emu\n",
          token ? "    token: " : "    {}\n", token ? token : "", token ? "\n" : "");
  return fclose(f) == 0 ? 0 : -1;
}

static void seed_namespaces(emu_t *e)
{
  static const char *const names[] = {"default", "kube-system", "kube-public", "kube-node-lease"};
  emu_rtype_t *rt = emu_rtype_find(e, "", "v1", "namespaces");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    json_object *ns = json_object_new_object();
    kuala_json_set_str(ns, "apiVersion", "v1");
    kuala_json_set_str(ns, "kind", "Namespace");
    json_object *m = json_object_new_object();
    kuala_json_set_str(m, "name", names[i]);
    json_object_object_add(ns, "metadata", m);
    json_object *labels = json_object_new_object();
    kuala_json_set_str(labels, "kubernetes.io/metadata.name", names[i]);
    json_object_object_add(m, "labels", labels);
    json_object *spec = json_object_new_object();
    json_object *fin = json_object_new_array();
    json_object_array_add(fin, json_object_new_string("kubernetes"));
    json_object_object_add(spec, "finalizers", fin);
    json_object_object_add(ns, "spec", spec);
    json_object *st = json_object_new_object();
    kuala_json_set_str(st, "phase", "Active");
    json_object_object_add(ns, "status", st);
    emu_create_internal(e, rt, ns);
    json_object_put(ns);
  }
}

int main(int argc, char **argv)
{
  long port = 6443, admin_port = -1, history = 10000, deploy_delay = 500, bookmark = 60000;
  long max_conns = 0, header_ms = 0, body_ms = 0, idle_ms = 0, max_pending = 0;
  const char *kubeconfig = NULL, *token = NULL, *cert = NULL, *key = NULL, *data_dir = NULL;
  const char *token_file = NULL, *authz_mode = NULL;
  int tls = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int bad = 0;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--tls") == 0) {
      tls = 1;
      continue;
    } else if (strncmp(a, "--authorization-mode=", 21) == 0) { /* kube-apiserver's spelling */
      authz_mode = a + 21;
      continue;
    } else if (strncmp(a, "--token-auth-file=", 18) == 0) {
      token_file = a + 18;
      continue;
    } else if (!v) {
      fprintf(stderr, "kuala-apiserver: %s needs a value (see --help)\n", a);
      return 2;
    } else if (strcmp(a, "--port") == 0) {
      bad = parse_int(v, 0, 65535, &port);
    } else if (strcmp(a, "--admin-port") == 0) {
      bad = parse_int(v, 0, 65535, &admin_port);
    } else if (strcmp(a, "--history") == 0) {
      bad = parse_int(v, 16, 10000000, &history);
    } else if (strcmp(a, "--deployment-ready-delay") == 0) {
      bad = parse_int(v, 0, 3600000, &deploy_delay);
    } else if (strcmp(a, "--bookmark-interval") == 0) {
      bad = parse_int(v, 0, 3600000, &bookmark);
    } else if (strcmp(a, "--max-connections") == 0) {
      bad = parse_int(v, 1, 1000000, &max_conns);
    } else if (strcmp(a, "--read-header-timeout") == 0) {
      bad = parse_int(v, 1, 3600000, &header_ms);
    } else if (strcmp(a, "--read-body-timeout") == 0) {
      bad = parse_int(v, 1, 3600000, &body_ms);
    } else if (strcmp(a, "--idle-timeout") == 0) {
      bad = parse_int(v, 1, 3600000, &idle_ms);
    } else if (strcmp(a, "--max-pending") == 0) {
      bad = parse_int(v, 4096, 1L << 34, &max_pending);
    } else if (strcmp(a, "--kubeconfig-out") == 0) {
      kubeconfig = v;
    } else if (strcmp(a, "--data-dir") == 0) {
      data_dir = v;
    } else if (strcmp(a, "--token") == 0) {
      token = v;
    } else if (strcmp(a, "--token-auth-file") == 0) {
      token_file = v;
    } else if (strcmp(a, "--authorization-mode") == 0) {
      authz_mode = v;
    } else if (strcmp(a, "--tls-cert") == 0) {
      cert = v;
      tls = 1;
    } else if (strcmp(a, "--tls-key") == 0) {
      key = v;
      tls = 1;
    } else {
      fprintf(stderr, "kuala-apiserver: unknown option %s (see --help)\n", a);
      return 2;
    }
    if (bad) {
      fprintf(stderr, "kuala-apiserver: invalid value for %s: %s\n", a, v);
      return 2;
    }
    i++;
  }
  if ((cert == NULL) != (key == NULL)) {
    fprintf(stderr, "kuala-apiserver: --tls-cert and --tls-key go together\n");
    return 2;
  }
  srand((unsigned)time(NULL) ^ (unsigned)uv_os_getpid());
  emu_t *e = &emu;
  e->loop = uv_default_loop();
  e->token = token ? kuala_strdup(token) : NULL;
  char auth_err[512];
  if (emu_auth_configure(e, token_file, authz_mode, auth_err, sizeof auth_err) < 0) {
    fprintf(stderr, "kuala-apiserver: %s\n", auth_err);
    return 2;
  }
  e->deploy_delay_ms = (int)deploy_delay;
  e->bookmark_ms = (int)bookmark;
  emu_store_init(e, (size_t)history);
  emu_registry_init(e);
  emu_controllers_init(e);
  if (data_dir) {
    char err[4200] = "cannot load the database";
    size_t n = 0;
    if (emu_persist_open(e, data_dir, err, sizeof err) < 0 || emu_persist_load(e, &n) < 0) {
      fprintf(stderr, "kuala-apiserver: --data-dir: %s\n", err);
      return 1;
    }
    fprintf(stderr, "kuala-apiserver: loaded %zu objects at revision %llu from %s\n", n,
            (unsigned long long)e->rev, data_dir);
  }
  seed_namespaces(e);
  emu_controllers_kick(e);
  emu_deployments_resume(e);

  SSL_CTX *ctx = NULL;
  char *ca_pem = NULL;
  if (tls) {
    char err[512];
    if (emu_tls_ctx(&ctx, &ca_pem, cert, key, err, sizeof err) < 0) {
      fprintf(stderr, "kuala-apiserver: TLS setup failed: %s\n", err);
      return 1;
    }
    e->tls = 1;
  }
  kuala__httpd_opts_t o = {.port = (int)port,
                           .tls = ctx,
                           .handler = emu_handle,
                           .data = e,
                           .max_conns = (size_t)max_conns,
                           .header_timeout_ms = (unsigned)header_ms,
                           .body_timeout_ms = (unsigned)body_ms,
                           .idle_timeout_ms = (unsigned)idle_ms,
                           .max_pending = (size_t)max_pending};
  /* Large lists stream while less than this is unsent (under the cap). */
  e->stream_high =
      max_pending && (size_t)max_pending / 2 < (1u << 20) ? (size_t)max_pending / 2 : (1u << 20);
  int rc = kuala__httpd_start(&e->httpd, e->loop, &o);
  if (rc < 0) {
    fprintf(stderr, "kuala-apiserver: cannot listen on 127.0.0.1:%ld: %s\n", port, uv_strerror(rc));
    return 1;
  }
  e->port = kuala__httpd_port(e->httpd);
  if (admin_port >= 0) {
    kuala__httpd_opts_t ao = {.port = (int)admin_port, .handler = emu_handle_admin, .data = e};
    rc = kuala__httpd_start(&e->admin, e->loop, &ao);
    if (rc < 0) {
      fprintf(stderr, "kuala-apiserver: cannot listen on admin port %ld: %s\n", admin_port,
              uv_strerror(rc));
      return 1;
    }
    e->faults.admin_port = kuala__httpd_port(e->admin);
  }
  char url[64];
  snprintf(url, sizeof url, "%s://127.0.0.1:%d", tls ? "https" : "http", e->port);
  if (kubeconfig && write_kubeconfig(kubeconfig, url, token, ca_pem) < 0) {
    fprintf(stderr, "kuala-apiserver: cannot write %s\n", kubeconfig);
    return 1;
  }
  uv_signal_init(e->loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_init(e->loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  printf("listening on %s\n", url);
  if (e->admin) {
    printf("admin listening on http://127.0.0.1:%d\n", e->faults.admin_port);
  }
  fflush(stdout);
  uv_run(e->loop, UV_RUN_DEFAULT);
  kuala_free(ca_pem);
  return 0;
}
