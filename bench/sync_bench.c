/*
 * sync_bench: the bare informer's initial sync of objects that already exist,
 * the baseline for `kuala run bench/bundles/sync` (which adds the engine:
 * Lua bundle, controller, work queue, one key per object).
 *
 * It reads the kubeconfig named by $KUBECONFIG, registers one informer
 * handler over v1/configmaps of NAMESPACE (default "bench") with the
 * informer defaults (or the page size / streaming mode given), runs the
 * loop until the informer has synced, and prints one line of figures:
 * objects, sync seconds (wall, from the handler registration), process CPU
 * seconds, VmHWM and VmRSS (MB) at sync, and whether the streaming list
 * fell back to list+watch. Run it under /usr/bin/time -v for the process'
 * totals (see docs/benchmarks.md).
 *
 * Usage: sync_bench [--namespace NS] [--page-size N] [--streaming 0|1]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "kuala/client.h"
#include "kuala/error.h"
#include "kuala/informer.h"
#include "kuala/kubeconfig.h"
#include "kuala/log.h"

static double now_s(void)
{
  return (double)uv_hrtime() / 1e9;
}

static double cpu_s(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A "VmXXX:   1234 kB" field of /proc/self/status, in MB (-1 if absent). */
static double status_mb(const char *field)
{
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) {
    return -1;
  }
  char line[256];
  double mb = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      mb = strtod(line + n + 1, NULL) / 1024.0;
      break;
    }
  }
  fclose(f);
  return mb;
}

static void on_add(void *data, const kuala_obj_t *obj, int initial)
{
  (void)obj;
  (void)initial;
  (*(size_t *)data)++;
}

int main(int argc, char **argv)
{
  const char *ns = "bench";
  long page_size = -1, streaming = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--namespace") == 0) {
      ns = argv[i + 1];
    } else if (strcmp(argv[i], "--page-size") == 0) {
      page_size = strtol(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--streaming") == 0) {
      streaming = strtol(argv[i + 1], NULL, 10);
    } else {
      fprintf(stderr, "usage: sync_bench [--namespace NS] [--page-size N] [--streaming 0|1]\n");
      return 2;
    }
  }
  kuala_log_set_level(KUALA_LOG_WARN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_client_config_t cfg;
  char *err = NULL;
  kuala_kubeconfig_opts_t ko = {getenv("KUBECONFIG"), NULL, NULL};
  if (kuala_kubeconfig_load(&cfg, &ko, &err) != 0) {
    fprintf(stderr, "sync_bench: %s\n", err ? err : "bad kubeconfig");
    return 1;
  }
  cfg.qps = KUALA_CLIENT_QPS_OFF;
  kuala_client_t *c = NULL;
  kuala_informers_t *f = NULL;
  int rc = kuala_client_new(&c, &loop, &cfg);
  kuala_client_config_free(&cfg);
  if (rc == 0) {
    rc = kuala_informers_new_client(&f, &loop, c);
  }
  if (rc) {
    fprintf(stderr, "sync_bench: setup failed: %s\n", kuala_strerror(rc));
    return 1;
  }
  kuala_informer_opts_t o;
  kuala_informer_opts_init(&o);
  if (page_size > 0) {
    o.page_size = (size_t)page_size;
  }
  if (streaming >= 0) {
    o.streaming_list = streaming != 0;
  }
  kuala_informer_key_t key = {"", "v1", "configmaps", ns, NULL, NULL, 0};
  kuala_informer_handlers_t h = {on_add, NULL, NULL};
  size_t adds = 0;
  kuala_informer_reg_t *reg = NULL;
  double t0 = now_s(), c0 = cpu_s();
  rc = kuala_informers_add_handler(&reg, f, &key, &o, &h, &adds);
  if (rc) {
    fprintf(stderr, "sync_bench: cannot watch: %s\n", kuala_strerror(rc));
    return 1;
  }
  kuala_informer_t *inf = kuala_informer_reg_informer(reg);
  while (!kuala_informer_has_synced(inf) && now_s() - t0 < 600) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  double wall = now_s() - t0, cpu = cpu_s() - c0;
  kuala_informer_stats_t st;
  kuala_informer_stats(inf, &st);
  printf(
      "sync_bench objects=%zu adds=%zu seconds=%.3f cpu_seconds=%.3f vmhwm_mb=%.1f "
      "vmrss_mb=%.1f page_size=%zu streaming=%d fallback=%d\n",
      st.objects, adds, wall, cpu, status_mb("VmHWM"), status_mb("VmRSS"), o.page_size,
      o.streaming_list, st.streaming_fallback);
  int synced = kuala_informer_has_synced(inf);
  kuala_informer_reg_remove(reg);
  kuala_informers_close(f);
  kuala_client_close(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return synced ? 0 : 1;
}
