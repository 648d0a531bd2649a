/*
 * notes: a small daemon that embeds kuala.
 *
 * It runs one kuala engine per --kubeconfig on its own libuv loop, each
 * with the same controller bundle (compiled into this program, loaded with
 * kuala_engine_bundle_set) and its own instance of a host module,
 * `host.store`: a pretend database the daemon owns. The bundle reconciles
 * `Note` objects (embed.kuala.dev/v1) by saving each note's text through
 * the host module and writing the revision the store gave it into the
 * Note's status.
 *
 *   host.store.save(key, text) -> revision   asynchronous: the reconcile
 *                                            waits while the "database"
 *                                            commits (a timer here)
 *   host.store.count()         -> number     synchronous
 *
 * On SIGTERM/SIGINT (or --exit-after) it stops the engines gracefully and
 * prints what each store holds. Build it against an installed libkuala:
 *
 *   cc -std=gnu11 -o notes notes.c $(pkg-config --cflags --libs kuala)
 *   ./notes --kubeconfig ~/.kube/config [--kubeconfig other] [--exit-after 60]
 */
#include <kuala/alloc.h>
#include <kuala/engine.h>
#include <kuala/error.h>
#include <kuala/host.h>
#include <kuala/kubeconfig.h>
#include <kuala/log.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- the bundle, compiled in ---------------------------------------------- */

static const char bundle_main[] =
    "local kuala = require('kuala')\n"
    "local store = require('host.store')\n"
    "kuala.crd {\n"
    "  group = 'embed.kuala.dev', version = 'v1', kind = 'Note', status = true,\n"
    "  schema = {\n"
    "    spec = { text = { type = 'string', required = true } },\n"
    "    status = { revision = 'integer', observedGeneration = 'integer' },\n"
    "  },\n"
    "}\n"
    "kuala.controller {\n"
    "  name = 'notes',\n"
    "  watch = 'embed.kuala.dev/v1/Note',\n"
    "  predicates = kuala.predicates.generation_changed,\n"
    "  reconcile = function(ctx, req)\n"
    "    local note = ctx:get(req)\n"
    "    if not note then return end\n"
    "    local st = note.status or {}\n"
    "    if st.observedGeneration == note.metadata.generation then return end\n"
    "    local rev, err, msg = store.save(req.namespace .. '/' .. req.name, note.spec.text)\n"
    "    if not rev then error('saving the note: ' .. tostring(err) .. ' ' .. tostring(msg)) end\n"
    "    local _, uerr = ctx:update_status(note, { revision = rev,\n"
    "      observedGeneration = note.metadata.generation })\n"
    "    if uerr then error('status: ' .. uerr) end\n"
    "    ctx.log:info('saved', { revision = rev, notes = store.count() })\n"
    "  end,\n"
    "}\n";

/* ---- the host module: a pretend database ----------------------------------- */

typedef struct {
  char key[256];
  char *text;
  int revision;
} row_t;

typedef struct pending_s {
  struct store_s *store;
  kuala_host_call_t *call;
  char key[256];
  char *text;
  uv_timer_t timer;
} pending_t;

typedef struct store_s {
  const char *label; /* which cluster */
  row_t rows[256];
  int nrows;
  int inflight;
} store_t;

static void pending_closed(uv_handle_t *h)
{
  pending_t *p = h->data;
  free(p->text);
  free(p);
}

/* The "commit" finished: store the row and answer the reconcile. */
static void committed(uv_timer_t *t)
{
  pending_t *p = t->data;
  store_t *s = p->store;
  row_t *r = NULL;
  for (int i = 0; i < s->nrows; i++) {
    if (strcmp(s->rows[i].key, p->key) == 0) {
      r = &s->rows[i];
    }
  }
  if (r == NULL && s->nrows < (int)(sizeof s->rows / sizeof s->rows[0])) {
    r = &s->rows[s->nrows++];
    snprintf(r->key, sizeof r->key, "%s", p->key);
  }
  if (r == NULL) {
    kuala_host_call_fail(p->call, KUALA_E2BIG, "the store is full");
  } else {
    free(r->text);
    r->text = p->text;
    p->text = NULL;
    r->revision++;
    char answer[32];
    int n = snprintf(answer, sizeof answer, "%d", r->revision);
    kuala_host_call_done(p->call, answer, (size_t)n);
  }
  s->inflight--;
  uv_close((uv_handle_t *)t, pending_closed);
}

/* Arguments arrive as a JSON array: ["ns/name", "text"]. A real host would
 * use its JSON library; the two strings here are simple enough to scan. */
static int take_string(const char **p, char *out, size_t cap)
{
  const char *s = strchr(*p, '"');
  if (s == NULL) {
    return -1;
  }
  size_t n = 0;
  for (s++; *s && *s != '"'; s++) {
    if (*s == '\\' && s[1]) {
      s++;
    }
    if (n + 1 < cap) {
      out[n++] = *s;
    }
  }
  out[n] = '\0';
  *p = *s ? s + 1 : s;
  return *s == '"' ? 0 : -1;
}

static void store_save(void *data, kuala_host_call_t *call, const char *bundle, const char *args,
                       size_t len)
{
  (void)bundle, (void)len;
  store_t *s = data;
  pending_t *p = calloc(1, sizeof *p);
  char text[4096];
  const char *cur = args;
  if (take_string(&cur, p->key, sizeof p->key) || take_string(&cur, text, sizeof text)) {
    free(p);
    kuala_host_call_fail(call, KUALA_EINVAL, "save(key, text) wants two strings");
    return;
  }
  p->store = s;
  p->call = call;
  p->text = strdup(text);
  s->inflight++;
  uv_timer_init(uv_default_loop(), &p->timer);
  p->timer.data = p;
  uv_timer_start(&p->timer, committed, 20, 0); /* the "database" takes 20 ms */
}

static void store_count(void *data, kuala_host_call_t *call, const char *bundle, const char *args,
                        size_t len)
{
  (void)bundle, (void)args, (void)len;
  store_t *s = data;
  char answer[32];
  int n = snprintf(answer, sizeof answer, "%d", s->nrows);
  kuala_host_call_done(call, answer, (size_t)n);
}

static const kuala_host_fn_t store_fns[] = {
    {"save", store_save, 1},
    {"count", store_count, 0},
};

/* ---- the daemon ------------------------------------------------------------ */

#define MAX_CLUSTERS 4

typedef struct {
  kuala_engine_t *engine;
  store_t store;
  const char *kubeconfig;
} cluster_t;

static cluster_t clusters[MAX_CLUSTERS];
static int nclusters, running;
static uv_signal_t sigterm, sigint;
static uv_timer_t exit_timer;

static void engine_stopped(void *data)
{
  cluster_t *c = data;
  c->engine = NULL;
  if (--running == 0) {
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&exit_timer, NULL);
  }
}

static void stop_all(void)
{
  static int stopping;
  if (stopping++) {
    return;
  }
  for (int i = 0; i < nclusters; i++) {
    if (clusters[i].engine) {
      kuala_engine_stop(clusters[i].engine, engine_stopped, &clusters[i]);
    }
  }
}

static void on_signal(uv_signal_t *h, int sig)
{
  (void)h, (void)sig;
  stop_all();
}

static void on_exit_timer(uv_timer_t *t)
{
  (void)t;
  stop_all();
}

static void engine_ready(void *data, const kuala_engine_stats_t *st)
{
  cluster_t *c = data;
  fprintf(stderr, "notes: engine for %s ready (%zu bundle, %zu controller)\n", c->kubeconfig,
          st->bundles_loaded, st->controllers_running);
}

static int start_cluster(uv_loop_t *loop, cluster_t *c, int index)
{
  kuala_client_config_t cfg;
  char *err = NULL;
  kuala_kubeconfig_opts_t ko = {c->kubeconfig, NULL, NULL};
  int rc = kuala_kubeconfig_load(&cfg, &ko, &err);
  if (rc) {
    fprintf(stderr, "notes: %s: %s\n", c->kubeconfig, err ? err : kuala_strerror(rc));
    kuala_free(err);
    kuala_client_config_free(&cfg);
    return rc;
  }
  kuala_engine_opts_t eo;
  memset(&eo, 0, sizeof eo);
  eo.client = &cfg;
  rc = kuala_engine_new(&c->engine, loop, &eo);
  kuala_client_config_free(&cfg);
  if (rc) {
    return rc;
  }
  static char labels[MAX_CLUSTERS][16];
  snprintf(labels[index], sizeof labels[index], "cluster%d", index);
  c->store.label = labels[index];
  kuala_host_module_t m = {"host.store", store_fns, 2, &c->store, NULL};
  rc = kuala_runtime_add_host_module(kuala_engine_runtime(c->engine), &m);
  if (rc == 0) {
    kuala_bundle_file_t f = {"main.lua", bundle_main, sizeof bundle_main - 1};
    rc = kuala_engine_bundle_set(c->engine, "notes", &f, 1);
  }
  if (rc == 0) {
    rc = kuala_engine_start(c->engine, engine_ready, c);
  }
  if (rc == 0) {
    running++;
  }
  return rc;
}

int main(int argc, char **argv)
{
  double exit_after = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--kubeconfig") == 0 && i + 1 < argc && nclusters < MAX_CLUSTERS) {
      clusters[nclusters++].kubeconfig = argv[++i];
    } else if (strcmp(argv[i], "--exit-after") == 0 && i + 1 < argc) {
      exit_after = strtod(argv[++i], NULL);
    } else {
      fprintf(stderr, "usage: notes --kubeconfig FILE [--kubeconfig FILE...] [--exit-after S]\n");
      return 2;
    }
  }
  if (nclusters == 0) {
    fprintf(stderr, "usage: notes --kubeconfig FILE [--kubeconfig FILE...] [--exit-after S]\n");
    return 2;
  }
  uv_loop_t *loop = uv_default_loop(); /* the host's loop: kuala runs on it */
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_timer_init(loop, &exit_timer);
  if (exit_after > 0) {
    uv_timer_start(&exit_timer, on_exit_timer, (uint64_t)(exit_after * 1000), 0);
  }
  int status = 0;
  for (int i = 0; i < nclusters; i++) {
    int rc = start_cluster(loop, &clusters[i], i);
    if (rc) {
      fprintf(stderr, "notes: cannot start the engine for %s: %s\n", clusters[i].kubeconfig,
              kuala_strerror(rc));
      status = 1;
    }
  }
  if (running == 0) {
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&exit_timer, NULL);
  } else if (status) {
    stop_all();
  }
  uv_run(loop, UV_RUN_DEFAULT);
  /* What each store holds, for whoever runs us (and the test). */
  for (int i = 0; i < nclusters; i++) {
    store_t *s = &clusters[i].store;
    for (int k = 0; k < s->nrows; k++) {
      printf("%s %s revision=%d text=%s\n", s->label, s->rows[k].key, s->rows[k].revision,
             s->rows[k].text);
      free(s->rows[k].text);
    }
  }
  if (uv_loop_close(loop) != 0) {
    fprintf(stderr, "notes: handles left open\n");
    status = 1;
  }
  return status;
}
