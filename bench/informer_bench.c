/*
 * informer_bench: ingest rate and cache memory of the informer layer.
 *
 * Source: a generated stream (no emulator), said so in the output. N
 * ConfigMap-like objects of about 1 KB after stripping (labels, an owner
 * reference, annotations, data, plus managedFields that the store strips)
 * are rendered once into memory as
 *   - list pages of 500 items (what a paginated initial list returns), and
 *   - watch event lines {"type":"ADDED","object":...}.
 * Both go through the real informer path: a kuala_lw_source_t that parses
 * each page / line with json-c exactly as the API client does, then the
 * reflector (member scan, compaction, store, indexes, handler dispatch).
 *
 * Measured in the same run, on one thread:
 *   jsonc_parse_events_per_second  json_tokener_parse_ex + json_object_put of
 *                                  every watch line (best of two runs, one
 *                                  before and one after the ingest run)
 *   ingest_events_per_second       the same lines through parse + reflector
 *                                  + store + dispatch into a fresh informer
 *   sync_seconds                   initial list of all pages until synced
 *   store_bytes                    kuala_store_mem_bytes after the sync
 *   mallinfo_store_bytes           heap growth measured by mallinfo2 across
 *                                  the sync (cross-check of store_bytes)
 *   peak_rss_mb                    getrusage maxrss (includes the generated
 *                                  stream kept in memory)
 *
 * Usage: informer_bench [--objects N] [--out FILE]
 */
#include <json-c/json.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"
#include "kuala/informer.h"

typedef struct {
  uv_loop_t *loop;
  uv_timer_t timer;
  /* Pages for list calls, lines for the watch. */
  char **pages;
  size_t *page_len;
  size_t npages, next_page;
  char **lines;
  size_t *line_len;
  size_t nlines;
  int deliver_lines; /* the watch replays the lines once */
  int empty_list;    /* list calls return an empty list */
  kuala_lw_list_cb lcb;
  void *ldata;
  kuala_lw_event_cb ev;
  kuala_lw_done_cb done;
  void *wdata;
  int list_out, watch_out, stop_req;
  double watch_seconds;
  double list_parse_s, list_ingest_s, list_free_s;
  json_tokener *tok;
} memsrc_t;

static double now_s(void)
{
  return (double)uv_hrtime() / 1e9;
}

static void src_fire(uv_timer_t *t)
{
  memsrc_t *m = t->data;
  if (m->list_out) {
    m->list_out = 0;
    if (m->empty_list) {
      static const char empty[] = "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}";
      json_object *e = json_tokener_parse(empty);
      m->lcb(m->ldata, 0, e, empty, sizeof empty - 1);
      json_object_put(e);
      return;
    }
    size_t i = m->next_page++;
    double t0 = now_s();
    json_tokener_reset(m->tok);
    json_object *page = json_tokener_parse_ex(m->tok, m->pages[i], (int)m->page_len[i]);
    double t1 = now_s();
    m->lcb(m->ldata, page ? 0 : KUALA_EBADMSG, page, m->pages[i], m->page_len[i]);
    double t2 = now_s();
    json_object_put(page);
    m->list_parse_s += t1 - t0;
    m->list_ingest_s += t2 - t1;
    m->list_free_s += now_s() - t2;
    return;
  }
  if (m->watch_out && m->stop_req) {
    m->watch_out = 0;
    m->done(m->wdata, KUALA_ECANCELED);
    return;
  }
  if (m->watch_out && m->deliver_lines) {
    m->deliver_lines = 0;
    double t0 = now_s();
    for (size_t i = 0; i < m->nlines && !m->stop_req; i++) {
      json_tokener_reset(m->tok);
      json_object *ev = json_tokener_parse_ex(m->tok, m->lines[i], (int)m->line_len[i]);
      json_object *type, *obj;
      if (ev && json_object_object_get_ex(ev, "type", &type) &&
          json_object_object_get_ex(ev, "object", &obj)) {
        const char *ts = json_object_get_string(type);
        kuala_lw_event_t e = {0};
        e.type = strcmp(ts, "ADDED") == 0 ? KUALA_LW_ADDED : KUALA_LW_MODIFIED;
        e.object = obj;
        e.line = m->lines[i];
        e.len = m->line_len[i];
        m->ev(m->wdata, &e);
      }
      json_object_put(ev);
    }
    m->watch_seconds = now_s() - t0;
  }
}

static int src_list(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                    kuala_lw_list_cb cb, void *data, void **handle)
{
  memsrc_t *m = src;
  if (!o->continue_token) {
    m->next_page = 0;
  }
  m->lcb = cb;
  m->ldata = data;
  m->list_out = 1;
  *handle = m;
  uv_timer_start(&m->timer, src_fire, 0, 0);
  return 0;
}

static void src_cancel(void *src, void *h)
{
  memsrc_t *m = src;
  m->list_out = 0;
  m->lcb(m->ldata, KUALA_ECANCELED, NULL, NULL, 0); /* not reached in this bench */
}

static int src_watch(void *src, const kuala_informer_key_t *key, const kuala_lw_opts_t *o,
                     kuala_lw_event_cb on_event, kuala_lw_done_cb on_done, void *data,
                     void **handle)
{
  memsrc_t *m = src;
  m->ev = on_event;
  m->done = on_done;
  m->wdata = data;
  m->watch_out = 1;
  m->stop_req = 0;
  *handle = m;
  uv_timer_start(&m->timer, src_fire, 0, 0);
  return 0;
}

static void src_stop(void *src, void *h)
{
  memsrc_t *m = src;
  m->stop_req = 1;
  uv_timer_start(&m->timer, src_fire, 0, 0);
}

static const kuala_lw_source_t memsrc = {src_list, src_cancel, src_watch, src_stop};

/* ---- generated objects ---- */

static void gen_object(kuala_buf_t *b, size_t i, int with_mf)
{
  kuala_buf_printf(
      b,
      "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-%06zu\","
      "\"namespace\":\"ns-%zu\",\"uid\":\"6f1c2a4e-%04zx-4b7d-9a51-%012zx\","
      "\"resourceVersion\":\"%zu\",\"creationTimestamp\":\"2026-11-30T10:00:00Z\","
      "\"labels\":{\"app\":\"app-%zu\",\"tier\":\"%s\",\"release\":\"r%zu\"},"
      "\"annotations\":{\"kuala.dev/checksum\":\"sha256:%016zx%016zx\"},"
      "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
      "\"name\":\"app-%zu\",\"uid\":\"0a0b0c0d-%04zx-4000-8000-%012zx\","
      "\"controller\":true,\"blockOwnerDeletion\":true}]",
      i, i % 20, i & 0xffff, i, i + 1, i % 50, i % 3 ? "backend" : "frontend", i % 7,
      i * 2654435761u, i ^ 0x5bd1e995, i % 50, i / 5, i / 5);
  if (with_mf) {
    kuala_buf_printf(b,
                     ",\"managedFields\":[{\"manager\":\"kubectl-client-side-apply\","
                     "\"operation\":\"Update\",\"apiVersion\":\"v1\",\"time\":"
                     "\"2026-11-30T10:00:00Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{"
                     "\"f:data\":{\".\":{},\"f:config.yaml\":{},\"f:settings.json\":{}},"
                     "\"f:metadata\":{\"f:annotations\":{\".\":{},\"f:kuala.dev/checksum\":{}},"
                     "\"f:labels\":{\".\":{},\"f:app\":{},\"f:release\":{},\"f:tier\":{}}}}}]");
  }
  kuala_buf_puts(b, "},\"data\":{\"config.yaml\":\"");
  /* ~560 bytes of config text, varying per object. */
  for (int k = 0; k < 14; k++) {
    kuala_buf_printf(b, "key%02d: value-%08zx-%02d\\n", k, i * 31 + (size_t)k, k);
  }
  kuala_buf_printf(b,
                   "\",\"settings.json\":\"{\\\"replicas\\\":%zu,\\\"image\\\":"
                   "\\\"registry.example/app:%zu\\\"}\"}}",
                   i % 5 + 1, i % 13);
}

/* ---- run ---- */

typedef struct {
  size_t adds, updates;
} counter_t;

static void h_add(void *d, const kuala_obj_t *o, int initial)
{
  ((counter_t *)d)->adds++;
}

static void h_update(void *d, const kuala_obj_t *old, const kuala_obj_t *o)
{
  ((counter_t *)d)->updates++;
}

static const kuala_informer_handlers_t H = {h_add, h_update, NULL};

static double raw_parse(memsrc_t *m)
{
  double t0 = now_s();
  size_t ok = 0;
  for (size_t i = 0; i < m->nlines; i++) {
    json_tokener_reset(m->tok);
    json_object *ev = json_tokener_parse_ex(m->tok, m->lines[i], (int)m->line_len[i]);
    ok += ev != NULL;
    json_object_put(ev);
  }
  double dt = now_s() - t0;
  if (ok != m->nlines) {
    fprintf(stderr, "informer_bench: %zu lines did not parse\n", m->nlines - ok);
    exit(1);
  }
  return (double)m->nlines / dt;
}

static size_t heap_in_use(void)
{
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

int main(int argc, char **argv)
{
  size_t n = 100000;
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--objects") == 0 && i + 1 < argc) {
      char *end;
      n = strtoul(argv[++i], &end, 10);
      if (*end || n == 0) {
        fprintf(stderr, "informer_bench: --objects needs a positive number\n");
        return 2;
      }
    } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else {
      fprintf(stderr, "usage: informer_bench [--objects N] [--out FILE]\n");
      return 2;
    }
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  memsrc_t m;
  memset(&m, 0, sizeof m);
  m.loop = &loop;
  m.tok = json_tokener_new();
  uv_timer_init(&loop, &m.timer);
  m.timer.data = &m;

  /* Render the stream once: pages of 500 and watch lines. */
  const size_t page = 500;
  m.npages = (n + page - 1) / page;
  m.pages = kuala_calloc(m.npages, sizeof(char *));
  m.page_len = kuala_calloc(m.npages, sizeof(size_t));
  m.lines = kuala_calloc(n, sizeof(char *));
  m.line_len = kuala_calloc(n, sizeof(size_t));
  m.nlines = n;
  size_t raw_bytes = 0;
  for (size_t p = 0; p < m.npages; p++) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_puts(&b, "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{");
    if (p + 1 < m.npages) {
      kuala_buf_printf(&b, "\"continue\":\"page-%zu\",", p + 1);
    }
    kuala_buf_printf(&b, "\"resourceVersion\":\"%zu\"},\"items\":[", n + 1);
    for (size_t i = p * page; i < n && i < (p + 1) * page; i++) {
      if (i > p * page) {
        kuala_buf_putc(&b, ',');
      }
      gen_object(&b, i, 1);
    }
    kuala_buf_puts(&b, "]}");
    m.pages[p] = kuala_buf_take(&b, &m.page_len[p]);
  }
  for (size_t i = 0; i < n; i++) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_puts(&b, "{\"type\":\"ADDED\",\"object\":");
    gen_object(&b, i, 1);
    kuala_buf_putc(&b, '}');
    m.lines[i] = kuala_buf_take(&b, &m.line_len[i]);
    raw_bytes += m.line_len[i];
  }

  kuala_informers_t *f;
  kuala_informers_new(&f, &loop, &memsrc, &m);
  kuala_informer_key_t key = {"", "v1", "configmaps", NULL, NULL, NULL, 0};

  /* 1. Initial sync from the list pages. */
  counter_t c1 = {0, 0};
  kuala_informer_reg_t *reg;
  size_t heap0 = heap_in_use();
  double t0 = now_s();
  kuala_informers_add_handler(&reg, f, &key, NULL, &H, &c1);
  kuala_informer_t *inf = kuala_informer_reg_informer(reg);
  while (!kuala_informer_has_synced(inf)) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  double sync_s = now_s() - t0;
  size_t heap1 = heap_in_use();
  kuala_informer_stats_t st;
  kuala_informer_stats(inf, &st);
  if (st.objects != n || c1.adds != n) {
    fprintf(stderr, "informer_bench: synced %zu objects, %zu adds, want %zu\n", st.objects, c1.adds,
            n);
    return 1;
  }
  size_t store_bytes = st.bytes_stored, json_bytes = st.json_bytes;
  kuala_informer_reg_remove(reg);
  uv_run(&loop, UV_RUN_DEFAULT);

  /* 2. Raw json-c parse of the watch lines, ingest of the same lines into
   * a fresh informer, raw parse again. */
  double raw1 = raw_parse(&m);
  counter_t c2 = {0, 0};
  /* A fresh informer (the first one is gone): an empty list, then the
   * watch delivers every line as an ADDED. */
  m.empty_list = 1;
  m.deliver_lines = 1;
  kuala_informers_add_handler(&reg, f, &key, NULL, &H, &c2);
  inf = kuala_informer_reg_informer(reg);
  while (!kuala_informer_has_synced(inf) || m.deliver_lines) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  double ingest = (double)n / m.watch_seconds;
  kuala_informer_stats(inf, &st);
  if (c2.adds != n || st.objects != n) {
    fprintf(stderr, "informer_bench: %zu adds from the stream, want %zu\n", c2.adds, n);
    return 1;
  }
  kuala_informer_reg_remove(reg);
  uv_run(&loop, UV_RUN_DEFAULT);
  double raw2 = raw_parse(&m);
  double raw = raw1 > raw2 ? raw1 : raw2;

  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double peak_mb = (double)ru.ru_maxrss / 1024.0;

  char json[2048];
  snprintf(json, sizeof json,
           "{\n"
           "  \"source\": \"generated stream (no emulator): list pages of 500 and ADDED watch "
           "lines, parsed by json-c and fed through the reflector, store and dispatch\",\n"
           "  \"command\": \"build-inf/bench/informer_bench --objects %zu --out "
           "bench/results/informers.json\",\n"
           "  \"objects\": %zu,\n"
           "  \"raw_stream_bytes\": %zu,\n"
           "  \"json_bytes_stripped\": %zu,\n"
           "  \"avg_object_bytes_stripped\": %.0f,\n"
           "  \"store_bytes\": %zu,\n"
           "  \"mallinfo_store_bytes\": %zu,\n"
           "  \"cache_ratio_to_json\": %.3f,\n"
           "  \"ingest_events_per_second\": %.0f,\n"
           "  \"jsonc_parse_events_per_second\": %.0f,\n"
           "  \"ingest_ratio_to_jsonc\": %.3f,\n"
           "  \"sync_seconds\": %.3f,\n"
           "  \"sync_objects_per_second\": %.0f,\n"
           "  \"sync_split_seconds\": {\"page_parse\": %.3f, \"reflector_store_dispatch\": %.3f, "
           "\"page_tree_free\": %.3f},\n"
           "  \"peak_rss_mb\": %.1f,\n"
           "  \"peak_rss_note\": \"includes the generated stream held in memory (%.1f MB of "
           "lines + pages)\"\n"
           "}\n",
           n, n, raw_bytes, json_bytes, (double)json_bytes / (double)n, store_bytes, heap1 - heap0,
           (double)store_bytes / (double)json_bytes, ingest, raw, ingest / raw, sync_s,
           (double)n / sync_s, m.list_parse_s, m.list_ingest_s, m.list_free_s, peak_mb,
           (double)raw_bytes * 2 / 1e6);
  fputs(json, stdout);
  if (out) {
    FILE *fp = fopen(out, "w");
    if (!fp) {
      perror(out);
      return 1;
    }
    fputs(json, fp);
    fclose(fp);
  }

  kuala_informers_close(f);
  uv_close((uv_handle_t *)&m.timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  for (size_t p = 0; p < m.npages; p++) {
    kuala_free(m.pages[p]);
  }
  for (size_t i = 0; i < n; i++) {
    kuala_free(m.lines[i]);
  }
  kuala_free(m.pages);
  kuala_free(m.page_len);
  kuala_free(m.lines);
  kuala_free(m.line_len);
  json_tokener_free(m.tok);
  return 0;
}
