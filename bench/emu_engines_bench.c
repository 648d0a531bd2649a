/*
 * emu_engines_bench: per-write cost of the emulator's semantic engines
 * (apiserver/patch, ssa, schema, openapi) on typical objects, so a load test
 * of kuala-apiserver can tell how much of a write they take.
 *
 * Usage: emu_engines_bench [iterations]   (default 20000)
 * Prints one line per engine: operations per second and microseconds per op.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonx.h"
#include "kuala/json.h"
#include "openapi.h"
#include "patch.h"
#include "schema.h"
#include "ssa.h"

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_object *J(const char *s)
{
  json_object *o = NULL;
  char msg[128];
  if (kuala__json_parse(&o, s, strlen(s), 128, msg, sizeof msg) != 0) {
    fprintf(stderr, "bad JSON: %s\n", msg);
    exit(1);
  }
  return o;
}

static void report(const char *name, int n, double secs)
{
  printf("%-34s %10.0f ops/s %8.2f us/op\n", name, n / secs, secs * 1e6 / n);
}

static const char *CM =
    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-1\",\"namespace\":"
    "\"default\",\"uid\":\"0b6f5b0e-1111-2222-3333-444455556666\",\"resourceVersion\":\"12\","
    "\"creationTimestamp\":\"2025-03-01T10:00:00Z\",\"labels\":{\"app\":\"web\",\"tier\":"
    "\"front\",\"team\":\"a\"},\"annotations\":{\"note\":\"some text that is not short\"}},"
    "\"data\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"config.yaml\":\"key: value\\nother: 2\\n\"}}";

static const char *CR =
    "{\"apiVersion\":\"stable.example.com/v1\",\"kind\":\"CronTab\",\"metadata\":{\"name\":\"a\","
    "\"namespace\":\"default\"},\"spec\":{\"cronSpec\":\"*/5 * * * *\",\"image\":\"img:1\","
    "\"ports\":[{\"name\":\"http\",\"port\":80},{\"name\":\"https\",\"port\":443}],"
    "\"labels\":{\"a\":\"b\"}}}";

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\",\"required\":["
    "\"cronSpec\"],\"properties\":{\"cronSpec\":{\"type\":\"string\",\"pattern\":\"^[0-9*/ ]+$\"},"
    "\"image\":{\"type\":\"string\",\"maxLength\":100},\"replicas\":{\"type\":\"integer\","
    "\"minimum\":1,\"maximum\":10,\"default\":1},\"ports\":{\"type\":\"array\","
    "\"x-kubernetes-list-type\":\"map\",\"x-kubernetes-list-map-keys\":[\"name\"],\"items\":{"
    "\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"port\":{\"type\":"
    "\"integer\"}}}},\"labels\":{\"type\":\"object\",\"additionalProperties\":{\"type\":"
    "\"string\"}}}},\"status\":{\"type\":\"object\",\"properties\":{\"phase\":{\"type\":"
    "\"string\"}}}}}";

int main(int argc, char **argv)
{
  int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20000;
  if (n <= 0) {
    n = 20000;
  }
  kuala_apierr_t e = KUALA_APIERR_INIT;
  json_object *cm = J(CM);
  json_object *merge =
      J("{\"data\":{\"a\":\"9\",\"d\":\"4\"},\"metadata\":{\"labels\":{\"x\":"
        "\"y\"}}}");
  json_object *jp =
      J("[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"12\"},"
        "{\"op\":\"replace\",\"path\":\"/data/a\",\"value\":\"9\"}]");
  json_object *smp = J("{\"metadata\":{\"finalizers\":[\"x/y\"],\"labels\":{\"tier\":null}}}");
  json_object *schema = J(SCHEMA);
  json_object *cr = J(CR);

  double t = now_s();
  for (int i = 0; i < n; i++) {
    json_object *r = NULL;
    kuala__patch_merge(&r, cm, merge, &e);
    json_object_put(r);
  }
  report("merge patch (ConfigMap)", n, now_s() - t);

  t = now_s();
  for (int i = 0; i < n; i++) {
    json_object *r = NULL;
    kuala__patch_json(&r, cm, jp, &e);
    json_object_put(r);
  }
  report("JSON patch, test+replace", n, now_s() - t);

  t = now_s();
  for (int i = 0; i < n; i++) {
    json_object *r = NULL;
    kuala__patch_strategic(&r, cm, smp, "", "ConfigMap", &e);
    json_object_put(r);
  }
  report("strategic merge patch", n, now_s() - t);

  t = now_s();
  for (int i = 0; i < n; i++) {
    json_object *o = kuala_json_copy(cr);
    kuala_schema_ctx_t ctx = {"stable.example.com", "v1", "CronTab", "a", KUALA_FV_STRICT, NULL};
    if (kuala__schema_process(o, schema, &ctx, &e) != 0) {
      fprintf(stderr, "schema: %s\n", e.message);
      return 1;
    }
    json_object_put(o);
  }
  report("schema prune+default+validate (CR)", n, now_s() - t);

  kuala_ssa_opts_t so = {0};
  so.manager = "bench";
  so.api_version = "v1";
  so.now = "2025-03-01T10:00:00Z";
  t = now_s();
  for (int i = 0; i < n; i++) {
    json_object *o = kuala_json_copy(cm);
    kuala__ssa_update(o, NULL, &so, &e);
    json_object_put(o);
  }
  report("managedFields on create", n, now_s() - t);

  json_object *created = kuala_json_copy(cm);
  kuala__ssa_update(created, NULL, &so, &e);
  so.manager = "other";
  t = now_s();
  for (int i = 0; i < n; i++) {
    json_object *o = kuala_json_copy(created);
    json_object_object_add(kuala_json_path(o, "data"), "a", json_object_new_string("changed"));
    kuala__ssa_update(o, created, &so, &e);
    json_object_put(o);
  }
  report("managedFields on update", n, now_s() - t);

  json_object *applied =
      J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
        "\"cm-1\",\"labels\":{\"app\":\"web\"}},\"data\":{\"a\":\"1\",\"z\":"
        "\"26\"}}");
  so.manager = "applier";
  so.name = "cm-1";
  t = now_s();
  for (int i = 0; i < n; i++) {
    json_object *r = NULL;
    if (kuala__ssa_apply(&r, cm, applied, &so, &e) != 0) {
      fprintf(stderr, "apply: %s\n", e.message);
      return 1;
    }
    json_object_put(r);
  }
  report("server-side apply (ConfigMap)", n, now_s() - t);

  json_object *list = json_object_new_object();
  json_object *items = json_object_new_array();
  for (int i = 0; i < 500; i++) {
    json_object_array_add(items, kuala_json_copy(cr));
  }
  json_object_object_add(list, "items", items);
  json_object *cols =
      J("[{\"name\":\"Image\",\"type\":\"string\",\"jsonPath\":\".spec.image\"},"
        "{\"name\":\"Port\",\"type\":\"integer\",\"jsonPath\":\".spec.ports[0]."
        "port\"}]");
  int tn = n / 500 > 0 ? n / 500 : 1;
  t = now_s();
  for (int i = 0; i < tn; i++) {
    json_object *tb = kuala__openapi_table(list, cols, 1, KUALA_TABLE_OBJ_METADATA, 1, 0);
    json_object_put(tb);
  }
  report("Table rows (500-item list)", tn * 500, now_s() - t);

  json_object_put(cols);
  json_object_put(list);
  json_object_put(applied);
  json_object_put(created);
  json_object_put(cr);
  json_object_put(schema);
  json_object_put(smp);
  json_object_put(jp);
  json_object_put(merge);
  json_object_put(cm);
  kuala__apierr_clear(&e);
  return 0;
}
