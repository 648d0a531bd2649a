/*
 * metrics.c: the Prometheus text exposition of an engine (kuala/metrics.h).
 *
 * Each family is written whole (HELP, TYPE, then every sample) because the
 * format wants a family's samples together; so the renderer walks the
 * controllers once per family instead of once overall. Histograms come from
 * the controllers' and queues' non-cumulative bucket counts, summed here
 * into Prometheus' cumulative `le` buckets; +Inf is the total count.
 *
 * Nothing is kept between renders: every value is read from the live
 * objects, which the caller owns (all on the loop thread).
 */
#include "kuala/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kuala/alloc.h"
#include "kuala/controller.h"
#include "kuala/error.h"
#include "kuala/informer.h"
#include "kuala/json.h"
#include "kuala/leader.h"
#include "kuala/manager.h"
#include "kuala/workqueue.h"

/* --- formatting ------------------------------------------------------------ */

static void family(kuala_buf_t *b, const char *name, const char *type, const char *help)
{
  kuala_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \\, \" and \n escaped. */
static void label_value(kuala_buf_t *b, const char *v)
{
  for (const char *p = v ? v : ""; *p; p++) {
    if (*p == '\\') {
      kuala_buf_puts(b, "\\\\");
    } else if (*p == '"') {
      kuala_buf_puts(b, "\\\"");
    } else if (*p == '\n') {
      kuala_buf_puts(b, "\\n");
    } else {
      kuala_buf_putc(b, *p);
    }
  }
}

/* Shortest decimal that reads back as the same double. */
static void put_double(kuala_buf_t *b, double v)
{
  char s[40];
  snprintf(s, sizeof(s), "%.15g", v);
  if (strtod(s, NULL) != v) {
    snprintf(s, sizeof(s), "%.17g", v);
  }
  kuala_buf_puts(b, s);
}

/* name{k1="v1",k2="v2"}: labels as a NULL-terminated list of pairs. */
static void sample_start(kuala_buf_t *b, const char *name, const char *const *labels)
{
  kuala_buf_puts(b, name);
  if (labels && labels[0]) {
    kuala_buf_putc(b, '{');
    for (size_t i = 0; labels[i]; i += 2) {
      kuala_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i]);
      label_value(b, labels[i + 1]);
      kuala_buf_putc(b, '"');
    }
    kuala_buf_putc(b, '}');
  }
  kuala_buf_putc(b, ' ');
}

static void sample_u(kuala_buf_t *b, const char *name, const char *const *labels, uint64_t v)
{
  sample_start(b, name, labels);
  kuala_buf_printf(b, "%" PRIu64 "\n", v);
}

static void sample_d(kuala_buf_t *b, const char *name, const char *const *labels, double v)
{
  sample_start(b, name, labels);
  put_double(b, v);
  kuala_buf_putc(b, '\n');
}

/* One histogram series: `base`_bucket{labels...,le}, _sum, _count. labels
 * holds one pair (k, v) or none. */
static void histogram(kuala_buf_t *b, const char *base, const char *const *labels, int nbuckets,
                      double (*bound)(int), const uint64_t *counts, double sum, uint64_t count)
{
  char name[128];
  uint64_t cum = 0;
  snprintf(name, sizeof(name), "%s_bucket", base);
  for (int i = 0; i <= nbuckets; i++) {
    char le[40];
    if (i < nbuckets) {
      cum += counts[i];
      kuala_buf_t t = KUALA_BUF_INIT(0);
      put_double(&t, bound(i));
      snprintf(le, sizeof(le), "%s", t.data);
      kuala_buf_free(&t);
    } else {
      cum = count;
      snprintf(le, sizeof(le), "+Inf");
    }
    const char *l[8] = {NULL};
    size_t n = 0;
    for (size_t k = 0; labels && labels[k]; k += 2) {
      l[n++] = labels[k];
      l[n++] = labels[k + 1];
    }
    l[n++] = "le";
    l[n++] = le;
    sample_u(b, name, l, cum);
  }
  snprintf(name, sizeof(name), "%s_sum", base);
  sample_d(b, name, labels, sum);
  snprintf(name, sizeof(name), "%s_count", base);
  sample_u(b, name, labels, count);
}

/* --- controllers and queues -------------------------------------------------- */

typedef struct {
  kuala_controller_t *c;
  kuala_controller_stats_t cs;
  kuala_workqueue_stats_t qs;
  const char *qname;
  int has_queue;
} ctl_snap_t;

/* Two controllers may share a name for a moment (a bundle reload runs the
 * new version beside the old one until the old drains): their series are
 * summed, since the format forbids duplicate label sets. */
static void merge(ctl_snap_t *into, const ctl_snap_t *from)
{
  kuala_controller_stats_t *a = &into->cs;
  const kuala_controller_stats_t *b = &from->cs;
  a->success += b->success;
  a->error += b->error;
  a->requeue += b->requeue;
  a->requeue_after += b->requeue_after;
  a->limit_cpu += b->limit_cpu;
  a->limit_memory += b->limit_memory;
  a->limit_deadline += b->limit_deadline;
  a->active += b->active;
  a->time_sum += b->time_sum;
  a->time_count += b->time_count;
  for (int i = 0; i < KUALA_RECONCILE_BUCKETS; i++) {
    a->time_buckets[i] += b->time_buckets[i];
  }
  if (b->concurrency > a->concurrency) {
    a->concurrency = b->concurrency;
  }
  if (!from->has_queue) {
    return;
  }
  if (!into->has_queue) {
    into->qs = from->qs;
    into->qname = from->qname;
    into->has_queue = 1;
    return;
  }
  kuala_workqueue_stats_t *q = &into->qs;
  const kuala_workqueue_stats_t *r = &from->qs;
  q->adds += r->adds;
  q->retries += r->retries;
  q->depth += r->depth;
  q->queue_latency_sum += r->queue_latency_sum;
  q->queue_latency_count += r->queue_latency_count;
  q->work_duration_sum += r->work_duration_sum;
  q->work_duration_count += r->work_duration_count;
  for (int i = 0; i < KUALA_WORKQUEUE_BUCKETS; i++) {
    q->queue_latency_buckets[i] += r->queue_latency_buckets[i];
    q->work_duration_buckets[i] += r->work_duration_buckets[i];
  }
  q->unfinished_work += r->unfinished_work;
  if (r->longest_running > q->longest_running) {
    q->longest_running = r->longest_running;
  }
}

static size_t snap_controllers(kuala_manager_t *m, ctl_snap_t **out)
{
  size_t n = m ? kuala_manager_controller_count(m) : 0;
  ctl_snap_t *s = kuala_calloc(n ? n : 1, sizeof(*s));
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    kuala_controller_t *c = kuala_manager_controller(m, i);
    if (c == NULL) {
      continue;
    }
    ctl_snap_t cur;
    memset(&cur, 0, sizeof(cur));
    cur.c = c;
    kuala_controller_stats(c, &cur.cs);
    kuala_workqueue_t *q = kuala_controller_queue(c);
    if (q) {
      kuala_workqueue_stats(q, &cur.qs);
      cur.qname = kuala_workqueue_name(q);
      cur.has_queue = 1;
    }
    size_t j = 0;
    while (j < k && strcmp(kuala_controller_name(s[j].c), kuala_controller_name(c)) != 0) {
      j++;
    }
    if (j < k) {
      merge(&s[j], &cur);
    } else {
      s[k++] = cur;
    }
  }
  *out = s;
  return k;
}

static void render_controllers(kuala_buf_t *b, const ctl_snap_t *s, size_t n)
{
  family(b, "controller_runtime_reconcile_total", "counter",
         "Total number of reconciliations per controller");
  for (size_t i = 0; i < n; i++) {
    const char *name = kuala_controller_name(s[i].c);
    static const char *results[] = {"error", "requeue", "requeue_after", "success"};
    const uint64_t v[] = {s[i].cs.error, s[i].cs.requeue, s[i].cs.requeue_after, s[i].cs.success};
    for (int r = 0; r < 4; r++) {
      const char *l[] = {"controller", name, "result", results[r], NULL};
      sample_u(b, "controller_runtime_reconcile_total", l, v[r]);
    }
  }
  family(b, "controller_runtime_reconcile_errors_total", "counter",
         "Total number of reconciliation errors per controller");
  for (size_t i = 0; i < n; i++) {
    const char *l[] = {"controller", kuala_controller_name(s[i].c), NULL};
    sample_u(b, "controller_runtime_reconcile_errors_total", l, s[i].cs.error);
  }
  family(b, "controller_runtime_reconcile_time_seconds", "histogram",
         "Length of time per reconciliation per controller");
  for (size_t i = 0; i < n; i++) {
    const char *l[] = {"controller", kuala_controller_name(s[i].c), NULL};
    histogram(b, "controller_runtime_reconcile_time_seconds", l, KUALA_RECONCILE_BUCKETS,
              kuala_controller_bucket_bound, s[i].cs.time_buckets, s[i].cs.time_sum,
              s[i].cs.time_count);
  }
  family(b, "kuala_lua_limit_hits_total", "counter",
         "Reconciles stopped by a bundle limit: CPU budget, memory cap or wall-clock deadline");
  for (size_t i = 0; i < n; i++) {
    static const char *limits[] = {"cpu", "deadline", "memory"};
    const uint64_t v[] = {s[i].cs.limit_cpu, s[i].cs.limit_deadline, s[i].cs.limit_memory};
    for (int k = 0; k < 3; k++) {
      const char *l[] = {"controller", kuala_controller_name(s[i].c), "limit", limits[k], NULL};
      sample_u(b, "kuala_lua_limit_hits_total", l, v[k]);
    }
  }
  family(b, "controller_runtime_max_concurrent_reconciles", "gauge",
         "Maximum number of concurrent reconciles per controller");
  for (size_t i = 0; i < n; i++) {
    const char *l[] = {"controller", kuala_controller_name(s[i].c), NULL};
    sample_u(b, "controller_runtime_max_concurrent_reconciles", l, (uint64_t)s[i].cs.concurrency);
  }
  family(b, "controller_runtime_active_workers", "gauge",
         "Number of currently used workers per controller");
  for (size_t i = 0; i < n; i++) {
    const char *l[] = {"controller", kuala_controller_name(s[i].c), NULL};
    sample_u(b, "controller_runtime_active_workers", l, (uint64_t)s[i].cs.active);
  }
}

static void render_queues(kuala_buf_t *b, const ctl_snap_t *s, size_t n)
{
#define QLABELS(i) {"name", s[i].qname, "controller", kuala_controller_name(s[i].c), NULL}
  family(b, "workqueue_depth", "gauge", "Current depth of workqueue");
  for (size_t i = 0; i < n; i++) {
    if (s[i].has_queue) {
      const char *l[] = QLABELS(i);
      sample_u(b, "workqueue_depth", l, (uint64_t)s[i].qs.depth);
    }
  }
  family(b, "workqueue_adds_total", "counter", "Total number of adds handled by workqueue");
  for (size_t i = 0; i < n; i++) {
    if (s[i].has_queue) {
      const char *l[] = QLABELS(i);
      sample_u(b, "workqueue_adds_total", l, s[i].qs.adds);
    }
  }
  family(b, "workqueue_queue_duration_seconds", "histogram",
         "How long in seconds an item stays in workqueue before being requested");
  for (size_t i = 0; i < n; i++) {
    if (s[i].has_queue) {
      const char *l[] = QLABELS(i);
      histogram(b, "workqueue_queue_duration_seconds", l, KUALA_WORKQUEUE_BUCKETS,
                kuala_workqueue_bucket_bound, s[i].qs.queue_latency_buckets,
                s[i].qs.queue_latency_sum, s[i].qs.queue_latency_count);
    }
  }
  family(b, "workqueue_work_duration_seconds", "histogram",
         "How long in seconds processing an item from workqueue takes");
  for (size_t i = 0; i < n; i++) {
    if (s[i].has_queue) {
      const char *l[] = QLABELS(i);
      histogram(b, "workqueue_work_duration_seconds", l, KUALA_WORKQUEUE_BUCKETS,
                kuala_workqueue_bucket_bound, s[i].qs.work_duration_buckets,
                s[i].qs.work_duration_sum, s[i].qs.work_duration_count);
    }
  }
  family(b, "workqueue_unfinished_work_seconds", "gauge",
         "How many seconds of work has been done that is in progress and hasn't been observed "
         "by work_duration");
  for (size_t i = 0; i < n; i++) {
    if (s[i].has_queue) {
      const char *l[] = QLABELS(i);
      sample_d(b, "workqueue_unfinished_work_seconds", l, s[i].qs.unfinished_work);
    }
  }
  family(b, "workqueue_longest_running_processor_seconds", "gauge",
         "How many seconds has the longest running processor for workqueue been running");
  for (size_t i = 0; i < n; i++) {
    if (s[i].has_queue) {
      const char *l[] = QLABELS(i);
      sample_d(b, "workqueue_longest_running_processor_seconds", l, s[i].qs.longest_running);
    }
  }
  family(b, "workqueue_retries_total", "counter", "Total number of retries handled by workqueue");
  for (size_t i = 0; i < n; i++) {
    if (s[i].has_queue) {
      const char *l[] = QLABELS(i);
      sample_u(b, "workqueue_retries_total", l, s[i].qs.retries);
    }
  }
#undef QLABELS
}

/* --- client, leader ----------------------------------------------------------- */

static void rest_count(void *data, const char *method, const char *code, const char *host,
                       uint64_t count)
{
  const char *l[] = {"code", code, "host", host, "method", method, NULL};
  sample_u(data, "rest_client_requests_total", l, count);
}

/* --- informers ----------------------------------------------------------------- */

typedef struct {
  kuala_buf_t *b;
  int which;
} inf_walk_t;

static void informer_sample(void *data, kuala_informer_t *inf)
{
  inf_walk_t *w = data;
  const kuala_informer_key_t *k = kuala_informer_key(inf);
  kuala_informer_stats_t st;
  kuala_informer_stats(inf, &st);
  char sel[512];
  snprintf(sel, sizeof(sel), "%s%s%s%s", k->label_selector ? k->label_selector : "",
           k->field_selector && *k->field_selector ? ";" : "",
           k->field_selector ? k->field_selector : "", k->metadata_only ? ";metadata-only" : "");
  const char *l[] = {"group",    k->group ? k->group : "",       "namespace", k->ns ? k->ns : "",
                     "resource", k->resource ? k->resource : "", "selector",  sel,
                     "version",  k->version ? k->version : "",   NULL};
  switch (w->which) {
    case 0:
      sample_u(w->b, "kuala_informer_objects", l, (uint64_t)st.objects);
      break;
    case 1:
      sample_u(w->b, "kuala_informer_cache_bytes", l, (uint64_t)st.bytes_stored);
      break;
    case 2:
      sample_u(w->b, "kuala_informer_relists_total", l, st.relists);
      break;
    case 3:
      sample_u(w->b, "kuala_informer_watch_restarts_total", l, st.watch_restarts);
      break;
    default:
      sample_u(w->b, "kuala_informer_synced", l, (uint64_t)kuala_informer_has_synced(inf));
      break;
  }
}

static void render_informers(kuala_buf_t *b, kuala_informers_t *f)
{
  static const struct {
    const char *name, *type, *help;
  } fams[] = {
      {"kuala_informer_objects", "gauge", "Objects in the informer's cache"},
      {"kuala_informer_cache_bytes", "gauge", "Bytes the informer's cache holds"},
      {"kuala_informer_relists_total", "counter", "Full lists made by the informer"},
      {"kuala_informer_watch_restarts_total", "counter",
       "Watches the informer started after its first one"},
      {"kuala_informer_synced", "gauge", "1 once the informer's first list has been stored"},
  };
  for (int i = 0; i < 5; i++) {
    family(b, fams[i].name, fams[i].type, fams[i].help);
    inf_walk_t w = {b, i};
    kuala_informers_foreach(f, informer_sample, &w);
  }
}

/* --- bundles --------------------------------------------------------------------- */

static void render_bundles(kuala_buf_t *b, const char *json, size_t len)
{
  json_object *arr = NULL;
  if (kuala_json_parse(&arr, json, len, NULL, 0) != 0) {
    return;
  }
  size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
  static const struct {
    const char *name, *type, *help, *field;
  } fams[] = {
      {"kuala_bundle_info", "gauge",
       "Bundles the engine knows, with their source, content hash and state (value 1)", NULL},
      {"kuala_bundle_loads_total", "counter", "Versions of the bundle loaded successfully",
       "loads"},
      {"kuala_bundle_load_errors_total", "counter", "Versions of the bundle that failed to load",
       "load_errors"},
      {"kuala_bundle_memory_bytes", "gauge", "Bytes the bundle's Lua VM holds", "memory_bytes"},
  };
  for (int f = 0; f < 4; f++) {
    family(b, fams[f].name, fams[f].type, fams[f].help);
    for (size_t i = 0; i < n; i++) {
      json_object *o = json_object_array_get_idx(arr, i);
      const char *name = kuala_json_path_str(o, "name");
      if (name == NULL) {
        continue;
      }
      if (fams[f].field == NULL) {
        const char *src = kuala_json_path_str(o, "source");
        const char *hash = kuala_json_path_str(o, "hash");
        const char *state = kuala_json_path_str(o, "state");
        const char *l[] = {"bundle", name,           "hash",  hash ? hash : "",
                           "source", src ? src : "", "state", state ? state : "",
                           NULL};
        sample_u(b, fams[f].name, l, 1);
      } else {
        json_object *v = kuala_json_path(o, fams[f].field);
        const char *l[] = {"bundle", name, NULL};
        sample_u(b, fams[f].name, l, v ? (uint64_t)json_object_get_int64(v) : 0);
      }
    }
  }
  json_object_put(arr);
}

/* --- process --------------------------------------------------------------------- */

static void render_process(kuala_buf_t *b)
{
  long tick = sysconf(_SC_CLK_TCK);
  long page = sysconf(_SC_PAGESIZE);
  char buf[2048];
  unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
  long long rss = 0;
  int have_stat = 0;
  FILE *f = fopen("/proc/self/stat", "r");
  if (f) {
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name, which may hold spaces: state is 3. */
    const char *p = strrchr(buf, ')');
    if (p && sscanf(p + 2,
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
                    "%llu %llu %lld",
                    &utime, &stime, &start, &vsize, &rss) == 5) {
      have_stat = 1;
    }
  }
  unsigned long long btime = 0;
  f = fopen("/proc/stat", "r");
  if (f) {
    char line[256];
    while (fgets(line, sizeof(line), f)) {
      if (sscanf(line, "btime %llu", &btime) == 1) {
        break;
      }
    }
    fclose(f);
  }
  if (have_stat && tick > 0) {
    family(b, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.");
    sample_d(b, "process_cpu_seconds_total", NULL, (double)(utime + stime) / (double)tick);
    family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sample_u(b, "process_resident_memory_bytes", NULL, (uint64_t)(rss * (page > 0 ? page : 4096)));
    family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    sample_u(b, "process_virtual_memory_bytes", NULL, vsize);
    if (btime) {
      family(b, "process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.");
      sample_d(b, "process_start_time_seconds", NULL, (double)btime + (double)start / (double)tick);
    }
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      n += e->d_name[0] != '.';
    }
    closedir(d);
    family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    sample_u(b, "process_open_fds", NULL, n > 0 ? n - 1 : 0); /* minus the DIR's own */
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    sample_u(b, "process_max_fds", NULL,
             rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur);
  }
}

/* --- entry point ----------------------------------------------------------------- */

static void render(const kuala_metrics_sources_t *src, kuala_buf_t *out)
{
  if (src->manager) {
    ctl_snap_t *s;
    size_t n = snap_controllers(src->manager, &s);
    render_controllers(out, s, n);
    render_queues(out, s, n);
    kuala_free(s);
  }
  if (src->client) {
    family(out, "rest_client_requests_total", "counter",
           "Number of HTTP requests, partitioned by status code, method, and host.");
    kuala_client_foreach_count(src->client, rest_count, out);
  }
  if (src->leader) {
    family(out, "leader_election_master_status", "gauge",
           "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
           "backup, 1 indicates master. 'name' is the string used to identify the lease. Please "
           "make sure to group by name.");
    const char *l[] = {"name", kuala_leader_name(src->leader), NULL};
    sample_u(out, "leader_election_master_status", l,
             (uint64_t)kuala_leader_is_leader(src->leader));
  }
  if (src->informers) {
    render_informers(out, src->informers);
  }
  if (src->bundles_json) {
    render_bundles(out, src->bundles_json, src->bundles_json_len);
  }
  if (src->process) {
    render_process(out);
  }
}

int kuala_metrics_render(const kuala_metrics_sources_t *src, kuala_buf_t *out)
{
  if (out->max == 0) {
    render(src, out);
    return 0;
  }
  /* A capped buffer gets all of it or nothing, never a truncated family. */
  kuala_buf_t tmp = KUALA_BUF_INIT(0);
  render(src, &tmp);
  int rc = tmp.len ? kuala_buf_append(out, tmp.data, tmp.len) : 0;
  kuala_buf_free(&tmp);
  return rc;
}
