/*
 * server.c: HTTP front of kuala-apiserver: routing, discovery, reads
 * (get/list/watch) and the plumbing shared by the write paths (write.c).
 *
 * A request is parsed into an emu_ctx_t (resource, namespace, name,
 * subresource) and dispatched on the verb. Every error goes out as a
 * Kubernetes Status rendered by apierr (spec §7).
 *
 * Watches (spec §2.4–§3): each open watch is an emu_watch_t linked in
 * e->watches; it owns its selectors, a timeout timer and a bookmark timer,
 * and holds the httpd request until the stream ends or the client leaves.
 * Events are formatted once per event and written to every watch that
 * matches, so fan-out costs one JSON build per event plus one write per
 * watch.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu.h"
#include "auth.h"
#include "emu_internal.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "jsonx.h"
#include "kuala/json.h"
#ifdef KUALA_EMU_HAVE_OPENAPI
#include "openapi.h"
#endif

/* ---- time, ids ---- */

void emu_now(char *buf, size_t len)
{
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void emu_now_micro(char *buf, size_t len)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%s.%06ldZ", base, ts.tv_nsec / 1000);
}

void emu_uuid(char *buf, size_t len)
{
  unsigned char b[16];
  if (uv_random(NULL, NULL, b, sizeof b, 0, NULL) < 0) {
    for (size_t i = 0; i < sizeof b; i++) {
      b[i] = (unsigned char)rand();
    }
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(buf, len, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
}

/* ---- replies ---- */

void emu_reply_raw(kuala__httpd_req_t *req, int code, const char *body, size_t len)
{
  kuala__httpd_respond(req, code, "application/json", body, len);
}

void emu_reply_json(kuala__httpd_req_t *req, int code, json_object *obj)
{
  size_t len;
  const char *s = kuala_json_compact(obj, &len);
  emu_reply_raw(req, code, s, len);
  json_object_put(obj);
}

void emu_reply_err(kuala__httpd_req_t *req, kuala_apierr_t *err)
{
  if (err->retry_after > 0) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", err->retry_after);
    kuala__httpd_add_header(req, "Retry-After", ra);
  }
  size_t len;
  char *s = kuala__apierr_status_json(err, &len);
  emu_reply_raw(req, err->code ? err->code : 500, s, len);
  kuala_free(s);
  kuala__apierr_clear(err);
}

void emu_reply_code(kuala__httpd_req_t *req, int code, const char *fmt, ...)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
  va_list ap;
  va_start(ap, fmt);
  kuala__apierr_vset(&err, code, NULL, fmt, ap);
  va_end(ap);
  emu_reply_err(req, &err);
}

int emu_err_notfound(kuala_apierr_t *err, const emu_rtype_t *rt, const char *name)
{
  char q[300];
  kuala__apierr_set(err, 404, NULL, "%s \"%s\" not found", emu_qualified(rt, q, sizeof q), name);
  kuala__apierr_details(err, name, rt->group, rt->plural);
  return 404;
}

/* Rewrite apiVersion when `rt` is not the store's storage version. */
static int needs_conversion(const emu_rtype_t *rt)
{
  return rt->store->storage && rt->store->storage != rt;
}

emu_blob_t *emu_view(const emu_rtype_t *rt, emu_blob_t *b)
{
  if (!needs_conversion(rt)) {
    return emu_blob_ref(b);
  }
  json_object *o = NULL;
  if (kuala__json_parse_stored(&o, b->data, b->len) < 0) {
    return emu_blob_ref(b);
  }
  emu_convert_out(rt, o);
  size_t len;
  const char *s = kuala_json_compact(o, &len);
  emu_blob_t *out = emu_blob_new(s, len);
  json_object_put(o);
  return out;
}

/* ---- request parsing ---- */

static void ctx_free(emu_ctx_t *c)
{
  kuala_free(c->ns);
  kuala_free(c->name);
  kuala_free(c->sub);
}

/* Split `path` into at most `max` segments (borrowed copies in `buf`). */
static size_t split_path(char *buf, char **seg, size_t max)
{
  size_t n = 0;
  char *p = buf;
  while (*p && n < max) {
    while (*p == '/') {
      p++;
    }
    if (!*p) {
      break;
    }
    seg[n++] = p;
    char *slash = strchr(p, '/');
    if (!slash) {
      break;
    }
    *slash = '\0';
    p = slash + 1;
  }
  return n;
}

static int accept_ok(const char *accept)
{
  if (!accept || !*accept) {
    return 1;
  }
  return strstr(accept, "json") != NULL || strstr(accept, "*/*") != NULL;
}

static int query_bool(kuala__httpd_req_t *req, const char *name)
{
  const char *v = kuala__httpd_query(req, name);
  return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* Parse a decimal resourceVersion. 0 = unset/"0"; -1 = malformed. */
int emu_parse_rv(const char *s, uint64_t *out)
{
  *out = 0;
  if (!s || !*s) {
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end != '\0' || !isdigit((unsigned char)s[0])) {
    return -1;
  }
  *out = v;
  return 0;
}

/* ---- selectors ---- */

typedef struct {
  const emu_rtype_t *rt;
  const char *ns, *name;
  const char *json;
  size_t len;
  json_object *parsed;
  char tmp[64];
} fs_lookup_t;

static json_object *fs_parsed(fs_lookup_t *l)
{
  if (!l->parsed && l->json) {
    kuala__json_parse_stored(&l->parsed, l->json, l->len);
  }
  return l->parsed;
}

static const char *fs_value(void *data, const char *key)
{
  fs_lookup_t *l = data;
  if (strcmp(key, "metadata.name") == 0) {
    return l->name;
  }
  if (strcmp(key, "metadata.namespace") == 0) {
    return l->ns;
  }
  if (l->rt->fs_family == EMU_FS_NAMESPACE && strcmp(key, "name") == 0) {
    return l->name;
  }
  json_object *o = fs_parsed(l);
  const char *path = key;
  if (strcmp(key, "source") == 0) {
    path = "source.component";
  }
  json_object *v = kuala_json_path(o, path);
  if (!v) {
    return "";
  }
  if (json_object_is_type(v, json_type_string)) {
    return json_object_get_string(v);
  }
  if (json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array)) {
    return "";
  }
  snprintf(l->tmp, sizeof l->tmp, "%s", json_object_get_string(v));
  return l->tmp;
}

static int field_supported(const emu_rtype_t *rt, const char *key)
{
  if (strcmp(key, "metadata.name") == 0 || strcmp(key, "metadata.namespace") == 0) {
    return 1;
  }
  static const char *const event_fields[] = {"involvedObject.kind",
                                             "involvedObject.namespace",
                                             "involvedObject.name",
                                             "involvedObject.uid",
                                             "involvedObject.apiVersion",
                                             "involvedObject.resourceVersion",
                                             "involvedObject.fieldPath",
                                             "reason",
                                             "reportingComponent",
                                             "source",
                                             "type",
                                             NULL};
  switch (rt->fs_family) {
    case EMU_FS_SECRET:
      return strcmp(key, "type") == 0;
    case EMU_FS_NAMESPACE:
      return strcmp(key, "status.phase") == 0 || strcmp(key, "name") == 0;
    case EMU_FS_EVENT:
      for (const char *const *f = event_fields; *f; f++) {
        if (strcmp(key, *f) == 0) {
          return 1;
        }
      }
      return 0;
    default:
      break;
  }
  for (int i = 0; i < 8 && rt->selectable[i]; i++) {
    if (strcmp(rt->selectable[i], key) == 0) {
      return 1;
    }
  }
  return 0;
}

int emu_parse_selectors(kuala__httpd_req_t *req, const emu_rtype_t *rt, kuala_selector_t **ls,
                        kuala_selector_t **fs, kuala_apierr_t *err)
{
  char msg[512];
  *ls = *fs = NULL;
  if (kuala_selector_parse_labels(ls, kuala__httpd_query(req, "labelSelector"), msg, sizeof msg) <
      0) {
    return kuala__apierr_set(err, 400, NULL, "%s", msg);
  }
  if (kuala_selector_parse_fields(fs, kuala__httpd_query(req, "fieldSelector"), msg, sizeof msg) <
      0) {
    kuala_selector_free(*ls);
    *ls = NULL;
    return kuala__apierr_set(err, 400, NULL, "%s", msg);
  }
  for (size_t i = 0; i < kuala_selector_count(*fs); i++) {
    const char *key;
    kuala_selector_req(*fs, i, &key, NULL, NULL, NULL);
    if (!field_supported(rt, key)) {
      kuala__apierr_set(err, 400, NULL, "field label not supported: %s", key);
      kuala_selector_free(*ls);
      kuala_selector_free(*fs);
      *ls = *fs = NULL;
      return 400;
    }
  }
  return 0;
}

int emu_matches(const emu_rtype_t *rt, kuala_selector_t *ls, kuala_selector_t *fs, const char *ns,
                const char *name, json_object *labels, const char *json, size_t len)
{
  if (!kuala_selector_matches_json(ls, labels)) {
    return 0;
  }
  if (kuala_selector_empty(fs)) {
    return 1;
  }
  fs_lookup_t l = {.rt = rt, .ns = ns, .name = name, .json = json, .len = len};
  int m = kuala_selector_matches(fs, fs_value, &l);
  if (l.parsed) {
    json_object_put(l.parsed);
  }
  return m;
}

/* ---- discovery and misc documents ---- */

#ifdef KUALA_EMU_HAVE_OPENAPI
static kuala_openapi_res_t *openapi_res(emu_t *e, size_t *n)
{
  size_t cnt = 0;
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    cnt++;
  }
  kuala_openapi_res_t *res = kuala_calloc(cnt ? cnt : 1, sizeof *res);
  size_t i = 0;
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    if (rt->terminating) {
      continue;
    }
    res[i].group = rt->group;
    res[i].version = rt->version;
    res[i].plural = rt->plural;
    res[i].kind = rt->kind;
    res[i].namespaced = rt->namespaced;
    res[i].schema = emu_rtype_schema(rt);
    i++;
  }
  *n = i;
  return res;
}

static void serve_openapi(emu_t *e, kuala__httpd_req_t *req, const char *path)
{
  size_t n;
  kuala_openapi_res_t *res = openapi_res(e, &n);
  if (strcmp(path, "/openapi/v3") == 0 || strcmp(path, "/openapi/v3/") == 0) {
    emu_reply_json(req, 200, kuala__openapi_index(res, n));
  } else {
    json_object *doc = NULL;
    kuala_apierr_t err = KUALA_APIERR_INIT;
    if (kuala__openapi_gv_doc(&doc, res, n, path + strlen("/openapi/v3/"), &err) != 0) {
      emu_reply_err(req, &err);
    } else {
      emu_reply_json(req, 200, doc);
    }
  }
  kuala_free(res);
}
#endif

json_object *emu_rtype_schema(const emu_rtype_t *rt)
{
  if (!rt->crd) {
    return NULL;
  }
  json_object *versions = kuala_json_path(rt->crd, "spec.versions");
  for (size_t i = 0; versions && i < json_object_array_length(versions); i++) {
    json_object *v = json_object_array_get_idx(versions, i);
    const char *name = kuala_json_path_str(v, "name");
    if (name && strcmp(name, rt->version) == 0) {
      return kuala_json_path(v, "schema.openAPIV3Schema");
    }
  }
  return NULL;
}

static int serve_discovery(emu_t *e, kuala__httpd_req_t *req, char **seg, size_t n)
{
  if (n == 1 && strcmp(seg[0], "version") == 0) {
    emu_reply_json(req, 200, emu_version_doc());
    return 1;
  }
  if (n == 1 && (strcmp(seg[0], "healthz") == 0 || strcmp(seg[0], "readyz") == 0 ||
                 strcmp(seg[0], "livez") == 0)) {
    kuala__httpd_respond(req, 200, "text/plain", "ok", 2);
    return 1;
  }
  if (n == 1 && strcmp(seg[0], "api") == 0) {
    emu_reply_json(req, 200, emu_discovery_api(e));
    return 1;
  }
  if (n == 2 && strcmp(seg[0], "api") == 0 && strcmp(seg[1], "v1") == 0) {
    emu_reply_json(req, 200, emu_discovery_resources(e, "", "v1"));
    return 1;
  }
  if (n == 1 && strcmp(seg[0], "apis") == 0) {
    emu_reply_json(req, 200, emu_discovery_apis(e));
    return 1;
  }
  if (n == 2 && strcmp(seg[0], "apis") == 0) {
    json_object *g = emu_discovery_group(e, seg[1]);
    if (!g) {
      emu_reply_code(req, 404, "the server could not find the requested resource");
    } else {
      emu_reply_json(req, 200, g);
    }
    return 1;
  }
  if (n == 3 && strcmp(seg[0], "apis") == 0) {
    json_object *r = emu_discovery_resources(e, seg[1], seg[2]);
    if (!r) {
      emu_reply_code(req, 404, "the server could not find the requested resource");
    } else {
      emu_reply_json(req, 200, r);
    }
    return 1;
  }
  return 0;
}

/* ---- list ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64_encode(kuala_buf_t *out, const unsigned char *s, size_t n)
{
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16;
    if (i + 1 < n) {
      v |= (unsigned)s[i + 1] << 8;
    }
    if (i + 2 < n) {
      v |= s[i + 2];
    }
    kuala_buf_putc(out, b64url[(v >> 18) & 63]);
    kuala_buf_putc(out, b64url[(v >> 12) & 63]);
    if (i + 1 < n) {
      kuala_buf_putc(out, b64url[(v >> 6) & 63]);
    }
    if (i + 2 < n) {
      kuala_buf_putc(out, b64url[v & 63]);
    }
  }
}

static char *b64_decode(const char *s, size_t *outlen)
{
  size_t n = strlen(s);
  char *out = kuala_malloc(n + 1);
  size_t j = 0;
  unsigned v = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = strchr(b64url, s[i]);
    if (s[i] == '=') {
      break;
    }
    if (!p || !s[i]) {
      kuala_free(out);
      return NULL;
    }
    v = (v << 6) | (unsigned)(p - b64url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (char)((v >> bits) & 0xff);
    }
  }
  out[j] = '\0';
  *outlen = j;
  return out;
}

static char *make_continue(uint64_t rv, const char *key)
{
  json_object *t = json_object_new_object();
  kuala_json_set_str(t, "v", "meta.k8s.io/v1");
  json_object_object_add(t, "rv", json_object_new_int64((int64_t)rv));
  kuala_json_set_str(t, "start", key);
  size_t len;
  const char *s = kuala_json_compact(t, &len);
  kuala_buf_t b = KUALA_BUF_INIT(0);
  b64_encode(&b, (const unsigned char *)s, len);
  json_object_put(t);
  return kuala_buf_take(&b, NULL);
}

static int parse_continue(const char *tok, uint64_t *rv, char **start)
{
  size_t len;
  char *raw = b64_decode(tok, &len);
  if (!raw) {
    return -1;
  }
  json_object *t = NULL;
  int rc = kuala_json_parse(&t, raw, len, NULL, 0);
  kuala_free(raw);
  if (rc < 0) {
    return -1;
  }
  json_object *jrv = kuala_json_get(t, "rv", NULL);
  const char *st = kuala_json_path_str(t, "start");
  if (!jrv || !st || !json_object_is_type(jrv, json_type_int)) {
    json_object_put(t);
    return -1;
  }
  *rv = (uint64_t)json_object_get_int64(jrv);
  *start = kuala_strdup(st);
  json_object_put(t);
  return 0;
}

/* First index whose key is >= `key`. */
static size_t lower_bound(emu_obj_t **v, size_t n, const char *key)
{
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (strcmp(v[mid]->key, key) < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

static int rv_match_check(kuala__httpd_req_t *req, int is_watch, kuala_apierr_t *err)
{
  const char *match = kuala__httpd_query(req, "resourceVersionMatch");
  const char *rv = kuala__httpd_query(req, "resourceVersion");
  const char *cont = kuala__httpd_query(req, "continue");
  int sie = query_bool(req, "sendInitialEvents");
  const char *msg = NULL;
  char buf[256];
  if (match && *match) {
    if (strcmp(match, "NotOlderThan") != 0 && strcmp(match, "Exact") != 0) {
      snprintf(buf, sizeof buf,
               "resourceVersionMatch: Unsupported value: \"%s\": supported values: "
               "\"Exact\", \"NotOlderThan\", \"\"",
               match);
      msg = buf;
    } else if (cont && *cont) {
      msg =
          "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue "
          "is provided";
    } else if (is_watch && !sie) {
      msg =
          "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch "
          "unless sendInitialEvents is provided";
    } else if (!is_watch && (!rv || !*rv)) {
      msg =
          "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
          "resourceVersion is provided";
    } else if (strcmp(match, "Exact") == 0 && rv && strcmp(rv, "0") == 0) {
      msg =
          "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for "
          "resourceVersion \"0\"";
    }
  }
  if (!msg && sie) {
    if (!is_watch) {
      msg = "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list";
    } else if (!match || strcmp(match, "NotOlderThan") != 0) {
      msg =
          "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
          "resourceVersionMatch to NotOlderThan";
    }
  }
  if (msg) {
    kuala__apierr_set(err, 422, NULL, "ListOptions.meta.k8s.io \"\" is invalid: %s", msg);
    kuala__apierr_details(err, NULL, "meta.k8s.io", "ListOptions");
    return 422;
  }
  return 0;
}

static int too_large_rv(kuala_apierr_t *err, uint64_t want, uint64_t have)
{
  kuala__apierr_set(err, 504, "Timeout", "Timeout: Too large resource version: %llu, current: %llu",
                    (unsigned long long)want, (unsigned long long)have);
  kuala__apierr_add_cause(err, "ResourceVersionTooLarge", "Too large resource version", NULL);
  err->retry_after = 1;
  return 504;
}

#ifdef KUALA_EMU_HAVE_OPENAPI
static json_object *printer_columns(const emu_rtype_t *rt)
{
  if (!rt->crd) {
    return NULL;
  }
  json_object *versions = kuala_json_path(rt->crd, "spec.versions");
  for (size_t i = 0; versions && i < json_object_array_length(versions); i++) {
    json_object *v = json_object_array_get_idx(versions, i);
    const char *name = kuala_json_path_str(v, "name");
    if (name && strcmp(name, rt->version) == 0) {
      return kuala_json_get(v, "additionalPrinterColumns", NULL);
    }
  }
  return NULL;
}

/* When the client asked for a Table, convert `doc` (a list or an object,
 * consumed) and reply; returns 1 when handled. */
static int maybe_table(kuala__httpd_req_t *req, const emu_rtype_t *rt, json_object *doc, int code)
{
  if (!kuala__openapi_accepts_table(kuala__httpd_header(req, "Accept"))) {
    return 0;
  }
  kuala_table_include_t inc;
  kuala_apierr_t err = KUALA_APIERR_INIT;
  if (kuala__openapi_table_include(&inc, kuala__httpd_query(req, "includeObject"), &err) != 0) {
    json_object_put(doc);
    emu_reply_err(req, &err);
    return 1;
  }
  json_object *t = kuala__openapi_table(doc, printer_columns(rt), rt->custom, inc, 1, time(NULL));
  json_object_put(doc);
  emu_reply_json(req, code, t);
  return 1;
}

/* When the client asked for PartialObjectMetadata(List) (metadata-only
 * informers), reply with that form of `doc` (consumed); returns 1 when
 * handled. */
static int maybe_partial(kuala__httpd_req_t *req, json_object *doc, int code)
{
  if (!kuala__openapi_accepts_partial(kuala__httpd_header(req, "Accept"))) {
    return 0;
  }
  json_object *pom = kuala__openapi_partial(doc);
  json_object_put(doc);
  emu_reply_json(req, code, pom);
  return 1;
}

/* The same for a reply still held as JSON text. */
static int maybe_partial_text(kuala__httpd_req_t *req, const char *text, size_t len, int code)
{
  if (!kuala__openapi_accepts_partial(kuala__httpd_header(req, "Accept"))) {
    return 0;
  }
  json_object *doc = NULL;
  if (kuala__json_parse_stored(&doc, text, len) != 0) {
    return 0;
  }
  return maybe_partial(req, doc, code);
}
#endif

void emu_reply_object(kuala__httpd_req_t *req, const emu_rtype_t *rt, int code, json_object *obj)
{
#ifdef KUALA_EMU_HAVE_OPENAPI
  if (maybe_table(req, rt, obj, code) || maybe_partial(req, obj, code)) {
    return;
  }
#endif
  emu_reply_json(req, code, obj);
}

/* ---- list snapshots for continue tokens ----
 *
 * The first page of a paginated list (limit set, more items left) takes a
 * snapshot of the collection: a copy of the sorted index whose entries hold
 * references to the immutable JSON blobs and label objects of that moment.
 * Later pages are served from it, so a paginated list stays consistent while
 * writes go on, as etcd's MVCC does upstream. Snapshots live five minutes
 * (upstream's compaction horizon) and at most EMU_MAX_SNAPSHOTS are kept;
 * a token whose snapshot is gone still works while the collection has not
 * changed since, else it is 410 Expired. */

#define EMU_MAX_SNAPSHOTS 8
#define EMU_SNAPSHOT_TTL_MS (5 * 60 * 1000)

typedef struct emu_snap_s {
  emu_store_t *store;
  uint64_t rv;
  uint64_t born_ms;
  emu_obj_t *items;
  emu_obj_t **ptrs;
  size_t n;
  struct emu_snap_s *next;
} emu_snap_t;

static emu_snap_t *snaps;

static void snap_free(emu_snap_t *s)
{
  for (size_t i = 0; i < s->n; i++) {
    kuala_free(s->items[i].key);
    kuala_free(s->items[i].ns);
    kuala_free(s->items[i].name);
    emu_blob_unref(s->items[i].json);
    if (s->items[i].labels) {
      json_object_put(s->items[i].labels);
    }
  }
  kuala_free(s->items);
  kuala_free(s->ptrs);
  kuala_free(s);
}

void emu_snapshots_forget(emu_store_t *store)
{
  for (emu_snap_t **p = &snaps; *p;) {
    emu_snap_t *s = *p;
    if (!store || s->store == store) {
      *p = s->next;
      snap_free(s);
    } else {
      p = &s->next;
    }
  }
}

static void snaps_expire(uint64_t now_ms)
{
  size_t kept = 0;
  for (emu_snap_t **p = &snaps; *p;) {
    emu_snap_t *s = *p;
    /* Newest first: everything past the cap or the TTL goes. */
    if (kept >= EMU_MAX_SNAPSHOTS || now_ms - s->born_ms > EMU_SNAPSHOT_TTL_MS) {
      *p = s->next;
      snap_free(s);
    } else {
      kept++;
      p = &s->next;
    }
  }
}

static emu_snap_t *snap_find(emu_store_t *store, uint64_t rv)
{
  for (emu_snap_t *s = snaps; s; s = s->next) {
    if (s->store == store && s->rv == rv) {
      return s;
    }
  }
  return NULL;
}

static void snap_take(emu_t *e, emu_store_t *store, uint64_t rv, emu_obj_t **all, size_t n)
{
  uint64_t now_ms = uv_now(e->loop);
  snaps_expire(now_ms);
  if (snap_find(store, rv)) {
    return;
  }
  emu_snap_t *s = kuala_calloc(1, sizeof *s);
  s->store = store;
  s->rv = rv;
  s->born_ms = now_ms;
  s->n = n;
  s->items = kuala_calloc(n ? n : 1, sizeof *s->items);
  s->ptrs = kuala_calloc(n ? n : 1, sizeof *s->ptrs);
  for (size_t i = 0; i < n; i++) {
    emu_obj_t *d = &s->items[i];
    d->key = kuala_strdup(all[i]->key);
    d->ns = kuala_strdup(all[i]->ns);
    d->name = kuala_strdup(all[i]->name);
    d->rv = all[i]->rv;
    d->json = emu_blob_ref(all[i]->json);
    d->labels = all[i]->labels ? json_object_get(all[i]->labels) : NULL;
    s->ptrs[i] = d;
  }
  s->next = snaps;
  snaps = s;
}

/* ---- large lists: streamed with backpressure ----
 *
 * A list body bigger than LIST_STREAM_MIN is sent as a chunked response
 * produced while the socket drains: the objects are pinned (blob
 * references, the list's snapshot) and copied out LIST_STREAM_CHUNK at a
 * time whenever the connection has less than the high-water mark
 * pending. Memory stays bounded by the chunk size whatever the list size,
 * and no list is cut off by the slow-client cap (max_pending). */
#define LIST_STREAM_MIN (1u << 20)
#define LIST_STREAM_CHUNK (256u << 10)

typedef struct {
  kuala__httpd_req_t *req;
  emu_blob_t **views;
  size_t n, next;
  size_t high; /* write while less than this is pending */
} list_stream_t;

static void list_stream_free(list_stream_t *ls)
{
  for (size_t i = ls->next; i < ls->n; i++) {
    emu_blob_unref(ls->views[i]);
  }
  kuala_free(ls->views);
  kuala_free(ls);
}

static void list_stream_gone(void *data, kuala__httpd_req_t *req)
{
  (void)req;
  list_stream_free(data);
}

static void list_stream_pump(void *data, kuala__httpd_req_t *req)
{
  list_stream_t *ls = data;
  kuala_buf_t chunk = KUALA_BUF_INIT(0);
  for (;;) {
    while (ls->next < ls->n && chunk.len < LIST_STREAM_CHUNK) {
      emu_blob_t *v = ls->views[ls->next];
      if (ls->next) {
        kuala_buf_putc(&chunk, ',');
      }
      kuala_buf_append(&chunk, v->data, v->len);
      emu_blob_unref(v);
      ls->next++;
    }
    if (ls->next == ls->n) {
      kuala_buf_puts(&chunk, "]}");
      kuala__httpd_stream_write(req, chunk.data, chunk.len);
      kuala_buf_free(&chunk);
      kuala__httpd_req_on_close(req, NULL, NULL);
      kuala__httpd_stream_end(req);
      list_stream_free(ls);
      return;
    }
    if (kuala__httpd_stream_write(req, chunk.data, chunk.len) < 0) {
      break; /* closed: the close callback frees ls */
    }
    kuala_buf_reset(&chunk);
    if (kuala__httpd_pending(req) >= ls->high &&
        kuala__httpd_on_drain(req, ls->high / 2, list_stream_pump, ls) == 0) {
      break; /* resumed by the drain callback */
    }
  }
  kuala_buf_free(&chunk);
}

/* Takes `head` (the list up to the items' '[') and the views. */
static void list_stream(emu_t *e, kuala__httpd_req_t *req, kuala_buf_t *head, emu_blob_t **views,
                        size_t n)
{
  list_stream_t *ls = kuala_calloc(1, sizeof *ls);
  ls->req = req;
  ls->views = views;
  ls->n = n;
  ls->high = e->stream_high ? e->stream_high : (1u << 20);
  kuala__httpd_stream_start(req, 200, "application/json");
  kuala__httpd_stream_write(req, head->data, head->len);
  kuala_buf_free(head);
  kuala__httpd_req_on_close(req, list_stream_gone, ls);
  list_stream_pump(ls, req);
}

static void do_list(emu_t *e, emu_ctx_t *c)
{
  kuala__httpd_req_t *req = c->req;
  emu_rtype_t *rt = c->rt;
  kuala_apierr_t err = KUALA_APIERR_INIT;
  kuala_selector_t *ls = NULL, *fs = NULL;
  char *start = NULL;
  if (rv_match_check(req, 0, &err) || emu_parse_selectors(req, rt, &ls, &fs, &err)) {
    emu_reply_err(req, &err);
    return;
  }
  uint64_t rv;
  const char *rvs = kuala__httpd_query(req, "resourceVersion");
  const char *cont = kuala__httpd_query(req, "continue");
  const char *limit_s = kuala__httpd_query(req, "limit");
  const char *match = kuala__httpd_query(req, "resourceVersionMatch");
  long long limit = 0;
  if (limit_s && *limit_s) {
    char *end;
    limit = strtoll(limit_s, &end, 10);
    if (*end || limit < 0) {
      limit = 0;
    }
  }
  if (emu_parse_rv(rvs, &rv) < 0) {
    kuala__apierr_set(&err, 400, NULL, "invalid resource version: %s", rvs);
    goto fail;
  }
  uint64_t snap = e->rev;
  if (cont && *cont) {
    if (rvs && *rvs && strcmp(rvs, "0") != 0) {
      kuala__apierr_set(&err, 400, NULL,
                        "specifying resource version is not allowed when using continue");
      goto fail;
    }
    if (parse_continue(cont, &snap, &start) < 0) {
      kuala__apierr_set(&err, 400, NULL, "invalid continue token: continue key is not valid: %s",
                        cont);
      goto fail;
    }
    if (!snap_find(rt->store, snap) && rt->store->last_change > snap) {
      kuala__apierr_set(
          &err, 410, "Expired",
          "The provided continue parameter is too old to display a consistent list result. You "
          "can start a new list without the continue parameter.");
      goto fail;
    }
  } else if (rv > 0) {
    if (rv > e->rev) {
      too_large_rv(&err, rv, e->rev);
      goto fail;
    }
    int exact = (match && strcmp(match, "Exact") == 0) || (limit > 0 && !match);
    if (exact) {
      if (rt->store->last_change > rv) {
        kuala__apierr_set(&err, 410, "Expired",
                          "The resourceVersion for the provided list is too old.");
        goto fail;
      }
      snap = rv;
    }
  }
  size_t n;
  emu_obj_t **all = emu_store_sorted(rt->store, &n);
  int from_snapshot = 0;
  if (start) {
    emu_snap_t *sn = snap_find(rt->store, snap);
    if (sn) {
      all = sn->ptrs;
      n = sn->n;
      from_snapshot = 1;
    }
  }
  size_t i = 0, end = n;
  if (c->ns) {
    char *prefix = emu_key(c->ns, "");
    i = lower_bound(all, n, prefix);
    size_t pl = strlen(prefix);
    prefix[pl - 1] = (char)('/' + 1);
    end = lower_bound(all, n, prefix);
    kuala_free(prefix);
  }
  if (start) {
    size_t s = lower_bound(all, n, start);
    if (s > i) {
      i = s;
    }
  }
  kuala_buf_t b = KUALA_BUF_INIT(0);
  char av[300];
  emu_api_version(rt, av, sizeof av);
  kuala_buf_printf(&b,
                   "{\"kind\":\"%s\",\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":"
                   "\"%llu\"",
                   rt->list_kind, av, (unsigned long long)snap);
  /* Plain JSON lists are streamed from blob references (see list_stream_t);
   * Tables and metadata-only lists are converted as one document. */
  int plain = 1;
#ifdef KUALA_EMU_HAVE_OPENAPI
  plain = !kuala__openapi_accepts_table(kuala__httpd_header(req, "Accept")) &&
          !kuala__openapi_accepts_partial(kuala__httpd_header(req, "Accept"));
#endif
  emu_blob_t **views = NULL;
  size_t nviews = 0, views_cap = 0, views_bytes = 0;
  kuala_buf_t items = KUALA_BUF_INIT(0);
  kuala_buf_puts(&items, "");
  long long count = 0;
  int filtered = !kuala_selector_empty(ls) || !kuala_selector_empty(fs);
  char *next_key = NULL;
  size_t remaining = 0;
  for (; i < end; i++) {
    emu_obj_t *o = all[i];
    if (!emu_matches(rt, ls, fs, o->ns, o->name, o->labels, o->json->data, o->json->len)) {
      continue;
    }
    if (limit > 0 && count == limit) {
      next_key = kuala_strdup(o->key);
      if (!filtered) {
        remaining = end - i;
      }
      break;
    }
    emu_blob_t *v = emu_view(rt, o->json);
    if (plain) {
      if (nviews == views_cap) {
        views_cap = views_cap ? views_cap * 2 : 64;
        views = kuala_realloc(views, views_cap * sizeof *views);
      }
      views[nviews++] = v;
      views_bytes += v->len + 1;
      count++;
      continue;
    }
    if (count++) {
      kuala_buf_putc(&items, ',');
    }
    kuala_buf_append(&items, v->data, v->len);
    emu_blob_unref(v);
  }
  if (next_key && !from_snapshot && snap == e->rev) {
    /* The live state is the state at `snap`: keep it for the next pages. */
    snap_take(e, rt->store, snap, all, n);
  }
  if (next_key) {
    char *tok = make_continue(snap, next_key);
    kuala_buf_printf(&b, ",\"continue\":\"%s\"", tok);
    if (!filtered) {
      kuala_buf_printf(&b, ",\"remainingItemCount\":%zu", remaining);
    }
    kuala_free(tok);
    kuala_free(next_key);
  }
  kuala_buf_puts(&b, "},\"items\":[");
  if (plain && views_bytes > LIST_STREAM_MIN) {
    kuala_buf_free(&items); /* unused: the stream takes the views */
    list_stream(e, req, &b, views, nviews);
    goto done;
  }
  for (size_t k = 0; k < nviews; k++) {
    if (k) {
      kuala_buf_putc(&items, ',');
    }
    kuala_buf_append(&items, views[k]->data, views[k]->len);
    emu_blob_unref(views[k]);
  }
  kuala_free(views);
  kuala_buf_append(&b, items.data, items.len);
  kuala_buf_puts(&b, "]}");
  kuala_buf_free(&items);
#ifdef KUALA_EMU_HAVE_OPENAPI
  if (kuala__openapi_accepts_table(kuala__httpd_header(req, "Accept"))) {
    json_object *doc = NULL;
    kuala__json_parse_stored(&doc, b.data, b.len);
    kuala_buf_free(&b);
    maybe_table(req, rt, doc, 200);
    goto done;
  }
  if (maybe_partial_text(req, b.data, b.len, 200)) {
    kuala_buf_free(&b);
    goto done;
  }
#endif
  emu_reply_raw(req, 200, b.data, b.len);
  kuala_buf_free(&b);
  goto done;
fail:
  emu_reply_err(req, &err);
done:
  kuala_free(start);
  kuala_selector_free(ls);
  kuala_selector_free(fs);
}

static void do_get(emu_t *e, emu_ctx_t *c)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
  uint64_t rv;
  const char *rvs = kuala__httpd_query(c->req, "resourceVersion");
  if (emu_parse_rv(rvs, &rv) < 0) {
    kuala__apierr_set(&err, 400, NULL, "invalid resource version: %s", rvs);
    emu_reply_err(c->req, &err);
    return;
  }
  if (rv > e->rev) {
    too_large_rv(&err, rv, e->rev);
    emu_reply_err(c->req, &err);
    return;
  }
  emu_obj_t *o = emu_store_get(c->rt->store, c->ns, c->name);
  if (!o) {
    emu_err_notfound(&err, c->rt, c->name);
    emu_reply_err(c->req, &err);
    return;
  }
  emu_blob_t *v = emu_view(c->rt, o->json);
#ifdef KUALA_EMU_HAVE_OPENAPI
  if (kuala__openapi_accepts_table(kuala__httpd_header(c->req, "Accept"))) {
    json_object *doc = NULL;
    kuala__json_parse_stored(&doc, v->data, v->len);
    emu_blob_unref(v);
    maybe_table(c->req, c->rt, doc, 200);
    return;
  }
  if (maybe_partial_text(c->req, v->data, v->len, 200)) {
    emu_blob_unref(v);
    return;
  }
#endif
  emu_reply_raw(c->req, 200, v->data, v->len);
  emu_blob_unref(v);
}

/* ---- watch ---- */

struct emu_watch_s {
  emu_t *e;
  emu_rtype_t *rt;
  kuala__httpd_req_t *req;
  char *ns;
  kuala_selector_t *ls, *fs;
  uint64_t from_rv; /* deliver events with rv > from_rv */
  uint64_t sent_rv; /* last revision covered (for bookmarks) */
  int bookmarks;
  int table;
  int table_columns_sent;
  int partial; /* PartialObjectMetadata events */
  uv_timer_t timeout;
  uv_timer_t bookmark;
  int closing_handles;
  kuala_buf_t out;     /* events not yet written (flushed once per loop turn) */
  int final_bookmark;  /* 1: the deadline timer first sends a bookmark; 2: sent */
  int sie;             /* sendInitialEvents=true */
  uint64_t want_rv;    /* the requested resourceVersion */
  uint64_t wait_start; /* a future RV: when waiting for it began (loop ms) */
  /* Initial events (sendInitialEvents or no resourceVersion) still to send:
   * the snapshot's objects, pinned, written while the connection drains
   * (backpressure, like large lists) with live events held back until the
   * replay is out. */
  emu_blob_t **replay;
  size_t replay_n, replay_next;
  uint64_t replay_rv; /* the snapshot's revision */
  emu_watch_t *prev, *next;
};

/* Write what a watch has buffered as one chunk. */
static void watch_flush(emu_watch_t *w)
{
  if (w->req && w->out.len > 0) {
    kuala__httpd_stream_write(w->req, w->out.data, w->out.len);
  }
  kuala_buf_reset(&w->out);
}

static void on_flush(uv_idle_t *h)
{
  emu_t *e = h->data;
  for (emu_watch_t *w = e->watches; w; w = w->next) {
    if (w->rt) {
      watch_flush(w);
    }
  }
  uv_idle_stop(h);
}

/* Events produced in one loop turn leave together at the end of it, so a
 * burst (deletecollection, a relist's initial events) costs one write per
 * watch instead of one per event. */
static void watch_queue(emu_watch_t *w, const char *data, size_t len)
{
  emu_t *e = w->e;
  kuala_buf_append(&w->out, data, len);
  if (w->out.len >= (256u << 10)) {
    watch_flush(w);
    return;
  }
  if (!e->flush_idle.data) {
    uv_idle_init(e->loop, &e->flush_idle);
    e->flush_idle.data = e;
  }
  uv_idle_start(&e->flush_idle, on_flush);
}

static void watch_handle_closed(uv_handle_t *h)
{
  emu_watch_t *w = h->data;
  if (--w->closing_handles == 0) {
    kuala_free(w);
  }
}

/* Unlink and free; the request is already finished or dead. */
static void watch_destroy(emu_watch_t *w)
{
  emu_t *e = w->e;
  if (w->prev) {
    w->prev->next = w->next;
  } else {
    e->watches = w->next;
  }
  if (w->next) {
    w->next->prev = w->prev;
  }
  kuala_free(w->ns);
  kuala_buf_free(&w->out);
  for (size_t i = w->replay_next; i < w->replay_n; i++) {
    emu_blob_unref(w->replay[i]);
  }
  kuala_free(w->replay);
  w->replay = NULL;
  kuala_selector_free(w->ls);
  kuala_selector_free(w->fs);
  w->req = NULL;
  w->closing_handles = 2;
  uv_close((uv_handle_t *)&w->timeout, watch_handle_closed);
  uv_close((uv_handle_t *)&w->bookmark, watch_handle_closed);
}

static void watch_on_close(void *data, kuala__httpd_req_t *req)
{
  (void)req;
  watch_destroy(data);
}

static void watch_end(emu_watch_t *w)
{
  watch_flush(w);
  kuala__httpd_req_t *req = w->req;
  kuala__httpd_req_on_close(req, NULL, NULL);
  kuala__httpd_stream_end(req);
  watch_destroy(w);
}

static int watch_send(emu_watch_t *w, const char *type, const char *obj, size_t len)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
#ifdef KUALA_EMU_HAVE_OPENAPI
  if (w->table && strcmp(type, "ERROR") != 0 && strcmp(type, "BOOKMARK") != 0) {
    json_object *doc = NULL;
    kuala__json_parse_stored(&doc, obj, len);
    kuala_table_include_t inc = KUALA_TABLE_OBJ_METADATA;
    const char *io = kuala__httpd_query(w->req, "includeObject");
    if (io && strcmp(io, "Object") == 0) {
      inc = KUALA_TABLE_OBJ_OBJECT;
    }
    json_object *t = kuala__openapi_table(doc, printer_columns(w->rt), w->rt->custom, inc,
                                          !w->table_columns_sent, time(NULL));
    w->table_columns_sent = 1;
    json_object_put(doc);
    size_t tl;
    const char *ts = kuala_json_compact(t, &tl);
    kuala_buf_printf(&b, "{\"type\":\"%s\",\"object\":", type);
    kuala_buf_append(&b, ts, tl);
    kuala_buf_puts(&b, "}\n");
    json_object_put(t);
    watch_queue(w, b.data, b.len);
    kuala_buf_free(&b);
    return 0;
  }
#endif
#ifdef KUALA_EMU_HAVE_OPENAPI
  json_object *pom = NULL;
  if (w->partial && strcmp(type, "ERROR") != 0) {
    json_object *doc = NULL;
    if (kuala__json_parse_stored(&doc, obj, len) == 0) {
      pom = kuala__openapi_partial(doc);
      json_object_put(doc);
      obj = kuala_json_compact(pom, &len);
    }
  }
#endif
  kuala_buf_printf(&b, "{\"type\":\"%s\",\"object\":", type);
  kuala_buf_append(&b, obj, len);
  kuala_buf_puts(&b, "}\n");
  watch_queue(w, b.data, b.len);
  kuala_buf_free(&b);
#ifdef KUALA_EMU_HAVE_OPENAPI
  json_object_put(pom);
#endif
  return 0;
}

static void watch_send_blob(emu_watch_t *w, const char *type, emu_blob_t *blob)
{
  emu_blob_t *v = emu_view(w->rt, blob);
  watch_send(w, type, v->data, v->len);
  emu_blob_unref(v);
}

static void watch_bookmark(emu_watch_t *w, int initial_end)
{
  char av[300], buf[600];
  int n =
      snprintf(buf, sizeof buf,
               "{\"kind\":\"%s\",\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":"
               "\"%llu\"%s}}",
               w->rt->kind, emu_api_version(w->rt, av, sizeof av), (unsigned long long)w->sent_rv,
               initial_end ? ",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}" : "");
  watch_send(w, "BOOKMARK", buf, (size_t)n);
}

/* Send `err` as an ERROR event (the Status in full: details, causes). */
static void watch_error_status(kuala__httpd_req_t *req, const kuala_apierr_t *err)
{
  size_t len;
  char *s = kuala__apierr_status_json(err, &len);
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_puts(&b, "{\"type\":\"ERROR\",\"object\":");
  kuala_buf_append(&b, s, len);
  kuala_buf_puts(&b, "}\n");
  kuala__httpd_stream_write(req, b.data, b.len);
  kuala_buf_free(&b);
  kuala_free(s);
}

static void watch_error(kuala__httpd_req_t *req, int code, const char *reason, const char *msg)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
  kuala__apierr_set(&err, code, reason, "%s", msg);
  size_t len;
  char *s = kuala__apierr_status_json(&err, &len);
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_puts(&b, "{\"type\":\"ERROR\",\"object\":");
  kuala_buf_append(&b, s, len);
  kuala_buf_puts(&b, "}\n");
  kuala__httpd_stream_write(req, b.data, b.len);
  kuala_buf_free(&b);
  kuala_free(s);
  kuala__apierr_clear(&err);
}

/* Decide what one event means for one watch; 0 = nothing to send. */
static const char *event_for(emu_watch_t *w, emu_event_t *ev, int *use_old)
{
  *use_old = 0;
  if (ev->store != w->rt->store) {
    return NULL;
  }
  if (w->ns && strcmp(w->ns, ev->ns) != 0) {
    return NULL;
  }
  int sel = !kuala_selector_empty(w->ls) || !kuala_selector_empty(w->fs);
  int now = !sel || emu_matches(w->rt, w->ls, w->fs, ev->ns, ev->name, ev->labels, ev->obj->data,
                                ev->obj->len);
  if (ev->type == EMU_EV_ADDED) {
    return now ? "ADDED" : NULL;
  }
  if (ev->type == EMU_EV_DELETED) {
    return now ? "DELETED" : NULL;
  }
  int before = !sel || emu_matches(w->rt, w->ls, w->fs, ev->ns, ev->name, ev->old_labels,
                                   ev->old->data, ev->old->len);
  if (before && now) {
    return "MODIFIED";
  }
  if (!before && now) {
    return "ADDED";
  }
  if (before && !now) {
    *use_old = 1;
    return "DELETED";
  }
  return NULL;
}

static void watch_deliver(emu_watch_t *w, emu_event_t *ev)
{
  int use_old;
  const char *type = event_for(w, ev, &use_old);
  if (type) {
    if (use_old) {
      /* Leaving the selection: the old object stamped with the new revision. */
      json_object *o = NULL;
      kuala__json_parse_stored(&o, ev->old->data, ev->old->len);
      char rv[24];
      snprintf(rv, sizeof rv, "%llu", (unsigned long long)ev->rv);
      kuala_json_set_str(kuala_json_ensure_obj(o, "metadata"), "resourceVersion", rv);
      size_t len;
      const char *s = kuala_json_compact(o, &len);
      emu_blob_t *b = emu_blob_new(s, len);
      watch_send_blob(w, type, b);
      emu_blob_unref(b);
      json_object_put(o);
    } else {
      watch_send_blob(w, type, ev->obj);
    }
  }
  w->sent_rv = ev->rv;
}

void emu_watch_notify(emu_t *e, emu_event_t *ev)
{
  for (emu_watch_t *w = e->watches, *next; w; w = next) {
    next = w->next;
    if (ev->rv > w->from_rv && w->req && w->rt) {
      watch_deliver(w, ev);
    }
  }
}

void emu_watch_close_all(emu_t *e, emu_rtype_t *rt, int abrupt)
{
  for (emu_watch_t *w = e->watches, *next; w; w = next) {
    next = w->next;
    if ((rt && w->rt != rt) || !w->rt) {
      continue;
    }
    if (abrupt) {
      /* The close callback destroys w later, from the loop; until then it
       * must neither receive events nor fire timers. */
      uv_timer_stop(&w->timeout);
      uv_timer_stop(&w->bookmark);
      kuala_buf_reset(&w->out);
      kuala__httpd_abort(w->req);
      w->rt = NULL;
    } else {
      watch_end(w);
    }
  }
}

static void on_watch_timeout(uv_timer_t *t)
{
  emu_watch_t *w = t->data;
  if (w->bookmarks && w->final_bookmark == 1) {
    /* Like upstream: one bookmark shortly before the deadline, so the
     * client resumes from a recent revision. */
    w->final_bookmark = 2;
    if (w->sent_rv < w->e->rev) {
      w->sent_rv = w->e->rev;
    }
    watch_bookmark(w, 0);
    uv_timer_start(&w->timeout, on_watch_timeout, 2000, 0);
    return;
  }
  watch_end(w);
}

static void on_watch_bookmark(uv_timer_t *t)
{
  emu_watch_t *w = t->data;
  if (w->sent_rv < w->e->rev) {
    w->sent_rv = w->e->rev;
  }
  watch_bookmark(w, 0);
}

static void watch_begin(emu_watch_t *w);

static void on_watch_wait_fresh(uv_timer_t *t)
{
  emu_watch_t *w = t->data;
  emu_t *e = w->e;
  if (!w->req || !w->rt) {
    return;
  }
  if (e->rev >= w->want_rv) {
    uv_timer_stop(&w->timeout);
    watch_begin(w);
    return;
  }
  if (uv_now(e->loop) - w->wait_start < 3000) {
    return;
  }
  uv_timer_stop(&w->timeout);
  kuala_apierr_t err = KUALA_APIERR_INIT;
  too_large_rv(&err, w->want_rv, e->rev);
  watch_error_status(w->req, &err);
  kuala__apierr_clear(&err);
  watch_end(w);
}

static void do_watch(emu_t *e, emu_ctx_t *c)
{
  kuala__httpd_req_t *req = c->req;
  kuala_apierr_t err = KUALA_APIERR_INIT;
  kuala_selector_t *ls = NULL, *fs = NULL;
  if (rv_match_check(req, 1, &err) || emu_parse_selectors(req, c->rt, &ls, &fs, &err)) {
    emu_reply_err(req, &err);
    return;
  }
  if (c->name) {
    /* A watch on an item is a watch with metadata.name pinned. */
    const char *pinned = kuala_selector_pinned(fs, "metadata.name");
    if (pinned && strcmp(pinned, c->name) != 0) {
      kuala_selector_free(ls);
      kuala_selector_free(fs);
      emu_reply_code(req, 400, "fieldSelector metadata.name doesn't match requested name");
      return;
    }
    kuala_selector_free(fs);
    char sel[512];
    snprintf(sel, sizeof sel, "metadata.name=%s", c->name);
    kuala_selector_parse_fields(&fs, sel, NULL, 0);
  }
  const char *rvs = kuala__httpd_query(req, "resourceVersion");
  uint64_t rv;
  if (emu_parse_rv(rvs, &rv) < 0) {
    kuala_selector_free(ls);
    kuala_selector_free(fs);
    emu_reply_code(req, 400, "invalid resource version: %s", rvs);
    return;
  }
  int sie = query_bool(req, "sendInitialEvents");
  emu_watch_t *w = kuala_calloc(1, sizeof *w);
  w->e = e;
  w->rt = c->rt;
  w->req = req;
  w->ns = c->ns ? kuala_strdup(c->ns) : NULL;
  w->ls = ls;
  w->fs = fs;
  w->bookmarks = query_bool(req, "allowWatchBookmarks");
#ifdef KUALA_EMU_HAVE_OPENAPI
  w->table = kuala__openapi_accepts_table(kuala__httpd_header(req, "Accept"));
  w->partial = !w->table && kuala__openapi_accepts_partial(kuala__httpd_header(req, "Accept"));
#endif
  uv_timer_init(e->loop, &w->timeout);
  uv_timer_init(e->loop, &w->bookmark);
  w->timeout.data = w->bookmark.data = w;
  w->next = e->watches;
  if (e->watches) {
    e->watches->prev = w;
  }
  e->watches = w;
  kuala__httpd_req_on_close(req, watch_on_close, w);
  kuala__httpd_stream_start(req, 200, "application/json");

  if (e->faults.watch_410_next > 0) {
    e->faults.watch_410_next--;
    char msg[128];
    snprintf(msg, sizeof msg, "too old resource version: %llu (%llu)", (unsigned long long)rv,
             (unsigned long long)(e->rev + 1));
    watch_error(req, 410, "Expired", msg);
    watch_end(w);
    return;
  }
  w->sie = sie;
  w->want_rv = rv;
  if (rv > e->rev) {
    /* A revision this server has not reached (it restarted empty, or the
     * client talked to another one): wait up to 3 s for it, as upstream's
     * watch cache does, then answer the ERROR event upstream sends. */
    w->from_rv = UINT64_MAX; /* no live events while waiting */
    w->wait_start = uv_now(e->loop);
    uv_timer_start(&w->timeout, on_watch_wait_fresh, 100, 100);
    return;
  }
  watch_begin(w);
}

static void watch_arm(emu_watch_t *w);

/* Live from `rv`: the history's later events, then everything new. -1 when
 * the history no longer reaches back to rv (410 Expired sent, watch ended). */
static int watch_catch_up(emu_watch_t *w, uint64_t rv)
{
  emu_t *e = w->e;
  if (rv < e->oldest_rv) {
    char msg[128];
    snprintf(msg, sizeof msg, "too old resource version: %llu (%llu)", (unsigned long long)rv,
             (unsigned long long)(e->oldest_rv + 1));
    watch_flush(w);
    watch_error(w->req, 410, "Expired", msg);
    watch_end(w);
    return -1;
  }
  w->from_rv = rv;
  for (size_t i = 0; i < emu_history_count(e); i++) {
    emu_event_t *ev = emu_history_at(e, i);
    if (ev->rv > rv) {
      watch_deliver(w, ev);
    }
  }
  if (e->rev > w->from_rv) {
    w->from_rv = e->rev;
  }
  return 0;
}

/* Write the pinned initial events while less than the high-water mark is
 * unsent; resumed by the drain callback. Then the initial-events-end
 * bookmark (sendInitialEvents), the events that happened meanwhile (from
 * the history, as a watch from the snapshot's revision), and the timers. */
static void replay_pump(void *data, kuala__httpd_req_t *req)
{
  emu_watch_t *w = data;
  emu_t *e = w->e;
  size_t high = e->stream_high ? e->stream_high : (1u << 20);
  (void)req;
  while (w->req && w->replay_next < w->replay_n) {
    emu_blob_t *b = w->replay[w->replay_next++];
    watch_send_blob(w, "ADDED", b);
    emu_blob_unref(b);
    if (w->out.len >= (256u << 10)) {
      watch_flush(w);
    }
    if (w->out.len == 0 && kuala__httpd_pending(w->req) >= high &&
        kuala__httpd_on_drain(w->req, high / 2, replay_pump, w) == 0) {
      return; /* resumed when the client has read; if it leaves, watch_on_close frees w */
    }
  }
  if (!w->req) {
    return;
  }
  kuala_free(w->replay);
  w->replay = NULL;
  w->replay_n = w->replay_next = 0;
  if (w->sie && w->bookmarks) {
    watch_bookmark(w, 1);
  }
  if (watch_catch_up(w, w->replay_rv) == 0) {
    watch_arm(w);
  }
}

/* Replay (initial events or history) and arm the deadline and bookmarks. */
static void watch_begin(emu_watch_t *w)
{
  emu_t *e = w->e;
  uint64_t rv = w->want_rv;
  int initial = w->sie || rv == 0;
  if (initial) {
    size_t n;
    emu_obj_t **all = emu_store_sorted(w->rt->store, &n);
    w->replay = kuala_calloc(n ? n : 1, sizeof *w->replay);
    for (size_t i = 0; i < n; i++) {
      emu_obj_t *o = all[i];
      if (w->ns && strcmp(w->ns, o->ns) != 0) {
        continue;
      }
      if (!emu_matches(w->rt, w->ls, w->fs, o->ns, o->name, o->labels, o->json->data,
                       o->json->len)) {
        continue;
      }
      w->replay[w->replay_n++] = emu_blob_ref(o->json);
    }
    w->replay_rv = e->rev;
    w->from_rv = UINT64_MAX; /* live events wait for the replay */
    w->sent_rv = rv > e->rev ? rv : e->rev;
    replay_pump(w, w->req);
    return;
  }
  w->sent_rv = rv;
  if (watch_catch_up(w, rv) == 0) {
    watch_arm(w);
  }
}

/* The watch's deadline (timeoutSeconds, else 30-60 min) and bookmarks. */
static void watch_arm(emu_watch_t *w)
{
  emu_t *e = w->e;
  kuala__httpd_req_t *req = w->req;
  const char *ts = kuala__httpd_query(req, "timeoutSeconds");
  long long timeout = 0;
  if (ts && *ts) {
    timeout = strtoll(ts, NULL, 10);
  }
  if (timeout <= 0) {
    timeout = 1800 + rand() % 1800;
  }
  if (w->bookmarks && timeout > 4) {
    w->final_bookmark = 1;
    uv_timer_start(&w->timeout, on_watch_timeout, (uint64_t)(timeout - 2) * 1000, 0);
  } else {
    uv_timer_start(&w->timeout, on_watch_timeout, (uint64_t)timeout * 1000, 0);
  }
  if (w->bookmarks && e->bookmark_ms > 0) {
    uv_timer_start(&w->bookmark, on_watch_bookmark, (uint64_t)e->bookmark_ms,
                   (uint64_t)e->bookmark_ms);
  }
}

/* ---- routing ---- */

static int route(emu_t *e, emu_ctx_t *c, char **seg, size_t n, kuala_apierr_t *err)
{
  const char *group, *version;
  size_t i;
  if (n >= 2 && strcmp(seg[0], "api") == 0) {
    group = "";
    version = seg[1];
    i = 2;
  } else if (n >= 3 && strcmp(seg[0], "apis") == 0) {
    group = seg[1];
    version = seg[2];
    i = 3;
  } else {
    return kuala__apierr_set(err, 404, NULL, "the server could not find the requested resource");
  }
  char **p = seg + i;
  size_t m = n - i;
  if (m >= 1 && strcmp(p[0], "namespaces") == 0 && m >= 2) {
    if (m == 2 || (m == 3 && (strcmp(p[2], "status") == 0 || strcmp(p[2], "finalize") == 0))) {
      /* The Namespace object itself. */
      c->name = kuala_strdup(p[1]);
      if (m == 3) {
        c->sub = kuala_strdup(p[2]);
      }
      p[1] = "namespaces";
      p = p + 1;
      m = 1;
      c->rt = emu_rtype_find(e, group, version, "namespaces");
      if (!c->rt) {
        return kuala__apierr_set(err, 404, NULL,
                                 "the server could not find the requested resource");
      }
      return 0;
    }
    c->ns = kuala_strdup(p[1]);
    p += 2;
    m -= 2;
  }
  if (m < 1 || m > 3) {
    return kuala__apierr_set(err, 404, NULL, "the server could not find the requested resource");
  }
  c->rt = emu_rtype_find(e, group, version, p[0]);
  if (!c->rt || c->rt->terminating) {
    if (c->rt && c->rt->terminating && strcmp(c->method, "GET") == 0) {
      /* Reads still work while the CRD is being deleted. */
    } else {
      c->rt = NULL;
      return kuala__apierr_set(err, 404, NULL, "the server could not find the requested resource");
    }
  }
  if (m >= 2) {
    c->name = kuala_strdup(p[1]);
  }
  if (m == 3) {
    c->sub = kuala_strdup(p[2]);
  }
  if (c->ns && !c->rt->namespaced) {
    return kuala__apierr_set(err, 404, NULL, "the server could not find the requested resource");
  }
  if (c->sub) {
    int ok = (strcmp(c->sub, "status") == 0 && c->rt->status_sub) ||
             (strcmp(c->sub, "scale") == 0 && emu_is_scalable(c->rt));
    if (!ok) {
      return kuala__apierr_set(err, 404, NULL, "the server could not find the requested resource");
    }
  }
  if (c->rt->namespaced && !c->ns && c->name) {
    return kuala__apierr_set(err, 404, NULL, "the server could not find the requested resource");
  }
  return 0;
}

/* With --token, anything but `Authorization: Bearer TOKEN` is 401; answers
 * and returns 0 then. Runs before faults apply (an unauthenticated caller
 * must not be able to hold or delay the server's work). */
static int authenticated(emu_t *e, kuala__httpd_req_t *req)
{
  if (!e->token) {
    return 1;
  }
  const char *auth = kuala__httpd_header(req, "Authorization");
  if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, e->token) != 0) {
    kuala_apierr_t err = KUALA_APIERR_INIT;
    kuala__apierr_set(&err, 401, NULL, "Unauthorized");
    emu_reply_err(req, &err);
    return 0;
  }
  return 1;
}

/* A target that cannot name an object: a NUL byte anywhere (%00 would cut
 * the C string and turn `configmaps/%00` into the collection), or a path
 * segment that is "." or ".." or holds '%' or an encoded '/' (upstream's
 * path.IsValidPathSegmentName). Answers 400 and returns 1. */
static int bad_target(kuala__httpd_req_t *req, char **seg, size_t n)
{
  if (kuala__httpd_req_has_nul(req)) {
    emu_reply_code(req, 400, "invalid request: the URL contains a NUL byte (%%00)");
    return 1;
  }
  /* An encoded '/' inside a segment: decoding made it a separator. */
  const char *url = kuala__httpd_url(req);
  for (const char *p = url; *p && *p != '?'; p++) {
    if (p[0] == '%' && p[1] == '2' && (p[2] == 'f' || p[2] == 'F')) {
      emu_reply_code(req, 400, "Name parameter invalid: may not contain '/'");
      return 1;
    }
  }
  for (size_t i = 0; i < n; i++) {
    const char *why = NULL;
    if (strcmp(seg[i], ".") == 0) {
      why = "may not be '.'";
    } else if (strcmp(seg[i], "..") == 0) {
      why = "may not be '..'";
    } else if (strchr(seg[i], '%')) {
      why = "may not contain '%'";
    }
    if (why) {
      emu_reply_code(req, 400, "Name parameter invalid: \"%s\": %s", seg[i], why);
      return 1;
    }
  }
  return 0;
}

static void process(emu_t *e, kuala__httpd_req_t *req);

/* A get or list from a resourceVersion this server has not reached: like
 * upstream's watch cache (waitUntilFreshAndBlock), wait up to 3 s for the
 * revision, then answer 504 "Too large resource version" (cause
 * ResourceVersionTooLarge, Retry-After: 1). Once the revision is there the
 * request runs again from routing (its resource may have gone meanwhile). */
#define FRESH_WAIT_MS 3000

typedef struct {
  uv_timer_t t;
  emu_t *e;
  kuala__httpd_req_t *req; /* NULL once the client went away */
  uint64_t want, start;
} fresh_wait_t;

static void fresh_wait_closed(uv_handle_t *h)
{
  kuala_free(h->data);
}

static void fresh_wait_gone(void *data, kuala__httpd_req_t *req)
{
  (void)req;
  fresh_wait_t *w = data;
  w->req = NULL;
}

static void on_fresh_wait(uv_timer_t *t)
{
  fresh_wait_t *w = t->data;
  emu_t *e = w->e;
  if (w->req && e->rev < w->want && uv_now(e->loop) - w->start < FRESH_WAIT_MS) {
    return;
  }
  uv_timer_stop(&w->t);
  if (w->req) {
    kuala__httpd_req_on_close(w->req, NULL, NULL);
    if (e->rev >= w->want) {
      process(e, w->req);
    } else {
      kuala_apierr_t err = KUALA_APIERR_INIT;
      too_large_rv(&err, w->want, e->rev);
      emu_reply_err(w->req, &err);
    }
  }
  uv_close((uv_handle_t *)&w->t, fresh_wait_closed);
}

/* 1 when the get/list in c waits for its resourceVersion (answered later). */
static int wait_fresh(emu_t *e, emu_ctx_t *c)
{
  const char *rvs = kuala__httpd_query(c->req, "resourceVersion");
  const char *cont = kuala__httpd_query(c->req, "continue");
  uint64_t rv;
  if ((cont && *cont) || emu_parse_rv(rvs, &rv) < 0 || rv <= e->rev) {
    return 0; /* served (or refused) at once */
  }
  fresh_wait_t *w = kuala_calloc(1, sizeof *w);
  w->e = e;
  w->req = c->req;
  w->want = rv;
  w->start = uv_now(e->loop);
  uv_timer_init(e->loop, &w->t);
  w->t.data = w;
  kuala__httpd_req_on_close(c->req, fresh_wait_gone, w);
  uv_timer_start(&w->t, on_fresh_wait, 50, 50);
  return 1;
}

static void process(emu_t *e, kuala__httpd_req_t *req)
{
  const char *path = kuala__httpd_path(req);
  const char *method = kuala__httpd_method(req);
  if (!accept_ok(kuala__httpd_header(req, "Accept"))) {
    emu_reply_code(req, 406,
                   "only the following media types are accepted: application/json, "
                   "application/yaml, application/json;stream=watch");
    return;
  }
  if (kuala__httpd_req_too_large(req)) {
    emu_reply_code(req, 413, "the request body is too large (limit 3145728 bytes)");
    return;
  }
#ifdef KUALA_EMU_HAVE_OPENAPI
  if (strncmp(path, "/openapi/v3", 11) == 0 && strcmp(method, "GET") == 0) {
    serve_openapi(e, req, path);
    return;
  }
#endif
  char *buf = kuala_strdup(path);
  char *seg[16];
  size_t n = split_path(buf, seg, 16);
  if (bad_target(req, seg, n)) {
    kuala_free(buf);
    return;
  }
  if (strcmp(method, "GET") == 0 && serve_discovery(e, req, seg, n)) {
    kuala_free(buf);
    return;
  }
  emu_ctx_t c = {.e = e, .req = req, .method = method};
  kuala_apierr_t err = KUALA_APIERR_INIT;
  if (route(e, &c, seg, n, &err) != 0) {
    kuala_free(buf);
    ctx_free(&c);
    emu_reply_err(req, &err);
    return;
  }
  kuala_free(buf);
  const char *dry = kuala__httpd_query(req, "dryRun");
  if (dry && *dry) {
    if (strcmp(dry, "All") != 0) {
      ctx_free(&c);
      emu_reply_code(req, 422, "dryRun: Unsupported value: \"%s\": supported values: \"All\"", dry);
      return;
    }
    c.dry = 1;
  }
  int is_get = strcmp(method, "GET") == 0;
  if (c.sub && strcmp(c.sub, "scale") == 0) {
    emu_do_scale(e, &c);
  } else if (is_get && !c.name) {
    if (query_bool(req, "watch")) {
      do_watch(e, &c);
    } else if (!wait_fresh(e, &c)) {
      do_list(e, &c);
    }
  } else if (is_get && query_bool(req, "watch")) {
    do_watch(e, &c);
  } else if (is_get) {
    if (!wait_fresh(e, &c)) {
      do_get(e, &c);
    }
  } else if (strcmp(method, "POST") == 0 && !c.name) {
    emu_do_create(e, &c);
  } else if (strcmp(method, "PUT") == 0 && c.name) {
    emu_do_update(e, &c);
  } else if (strcmp(method, "PATCH") == 0 && c.name) {
    emu_do_patch(e, &c);
  } else if (strcmp(method, "DELETE") == 0 && c.name) {
    emu_do_delete(e, &c);
  } else if (strcmp(method, "DELETE") == 0 && !c.name) {
    emu_do_deletecollection(e, &c);
  } else {
    char q[300];
    emu_reply_code(req, 405, "%s is not supported on resources of kind \"%s\"", method,
                   emu_qualified(c.rt, q, sizeof q));
  }
  ctx_free(&c);
}

/* ---- fault injection (admin endpoint) and request gate ---- */

typedef struct {
  uv_timer_t t;
  emu_t *e;
  kuala__httpd_req_t *req;
  int dead;
} delayed_t;

static void delayed_closed(uv_handle_t *h)
{
  kuala_free(h->data);
}

static void delayed_req_gone(void *data, kuala__httpd_req_t *req)
{
  (void)req;
  delayed_t *d = data;
  d->dead = 1;
}

static void on_delay(uv_timer_t *t)
{
  delayed_t *d = t->data;
  if (!d->dead) {
    kuala__httpd_req_on_close(d->req, NULL, NULL);
    process(d->e, d->req);
  }
  uv_close((uv_handle_t *)&d->t, delayed_closed);
}

static void held_gone(void *data, kuala__httpd_req_t *req)
{
  emu_t *e = data;
  for (size_t i = 0; i < e->nheld; i++) {
    if (e->held[i] == req) {
      e->held[i] = e->held[--e->nheld];
      return;
    }
  }
}

static void gate(emu_t *e, kuala__httpd_req_t *req)
{
  if (e->faults.paused) {
    e->held = kuala_realloc(e->held, (e->nheld + 1) * sizeof *e->held);
    e->held[e->nheld++] = req;
    kuala__httpd_req_on_close(req, held_gone, e);
    return;
  }
  const char *fm = e->faults.match_method, *fp = e->faults.match_path;
  int targeted = (!fm[0] || strcmp(fm, kuala__httpd_method(req)) == 0) &&
                 (!fp[0] || strncmp(kuala__httpd_path(req), fp, strlen(fp)) == 0);
  if (targeted && e->faults.error_percent > 0 && rand() % 100 < e->faults.error_percent) {
    kuala_apierr_t err = KUALA_APIERR_INIT;
    int code = e->faults.error_code ? e->faults.error_code : 500;
    if (code == 429) {
      kuala__apierr_set(&err, 429, NULL, "Too many requests, please try again later.");
      err.retry_after = 1;
    } else if (code == 503) {
      kuala__apierr_set(&err, 503, NULL, "injected fault: service unavailable");
    } else {
      kuala__apierr_set(&err, code, NULL, "Internal error occurred: injected fault");
    }
    emu_reply_err(req, &err);
    return;
  }
  if (targeted && e->faults.latency_ms > 0) {
    delayed_t *d = kuala_calloc(1, sizeof *d);
    d->e = e;
    d->req = req;
    uv_timer_init(e->loop, &d->t);
    d->t.data = d;
    kuala__httpd_req_on_close(req, delayed_req_gone, d);
    uv_timer_start(&d->t, on_delay, (uint64_t)e->faults.latency_ms, 0);
    return;
  }
  process(e, req);
}

void emu_handle(void *data, kuala__httpd_req_t *req)
{
  emu_t *e = data;
  e->requests++;
  /* Authentication and authorization (auth.c: --token, --token-auth-file,
   * RBAC, impersonation, SelfSubjectAccessReview) come before any fault. */
  if (emu_auth_filter(e, req)) {
    return;
  }
  gate(e, req);
}

static void admin_reply(kuala__httpd_req_t *req, emu_t *e)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "watch410Next", json_object_new_int(e->faults.watch_410_next));
  json_object_object_add(o, "errorPercent", json_object_new_int(e->faults.error_percent));
  json_object_object_add(o, "errorCode", json_object_new_int(e->faults.error_code));
  json_object_object_add(o, "latencyMs", json_object_new_int(e->faults.latency_ms));
  json_object_object_add(o, "paused", json_object_new_boolean(e->faults.paused));
  kuala_json_set_str(o, "matchPath", e->faults.match_path);
  kuala_json_set_str(o, "matchMethod", e->faults.match_method);
  int watches = 0;
  for (emu_watch_t *w = e->watches; w; w = w->next) {
    watches++;
  }
  json_object_object_add(o, "watches", json_object_new_int(watches));
  json_object_object_add(o, "revision", json_object_new_int64((int64_t)e->rev));
  json_object_object_add(o, "requests", json_object_new_int64((int64_t)e->requests));
  json_object_object_add(o, "forbidden",
                         json_object_new_int64((int64_t)emu_auth_forbidden_count()));
  emu_reply_json(req, 200, o);
}

static int qint(kuala__httpd_req_t *req, const char *name, int lo, int hi, int *out)
{
  const char *v = kuala__httpd_query(req, name);
  if (!v) {
    return 0;
  }
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) {
    return -1;
  }
  *out = (int)x;
  return 1;
}

/* Optional targeting of error and latency faults: ?path=PREFIX&method=M. */
static void set_match(emu_t *e, kuala__httpd_req_t *req)
{
  const char *p = kuala__httpd_query(req, "path");
  const char *m = kuala__httpd_query(req, "method");
  snprintf(e->faults.match_path, sizeof e->faults.match_path, "%s", p ? p : "");
  snprintf(e->faults.match_method, sizeof e->faults.match_method, "%s", m ? m : "");
}

void emu_handle_admin(void *data, kuala__httpd_req_t *req)
{
  emu_t *e = data;
  if (!authenticated(e, req)) {
    return; /* with --token, the admin port wants the same token */
  }
  const char *path = kuala__httpd_path(req);
  const char *method = kuala__httpd_method(req);
  int v;
  if (strcmp(path, "/faults") == 0 && strcmp(method, "GET") == 0) {
    admin_reply(req, e);
  } else if (strcmp(path, "/faults/close-watches") == 0 && strcmp(method, "POST") == 0) {
    emu_watch_close_all(e, NULL, query_bool(req, "abrupt"));
    admin_reply(req, e);
  } else if (strcmp(path, "/faults/watch-410") == 0 && strcmp(method, "POST") == 0) {
    if (qint(req, "count", 0, 1000000, &v) != 1) {
      emu_reply_code(req, 400, "count must be an integer in [0, 1000000]");
      return;
    }
    e->faults.watch_410_next = v;
    admin_reply(req, e);
  } else if (strcmp(path, "/faults/errors") == 0 && strcmp(method, "POST") == 0) {
    int pct = 0, code = 500;
    if (qint(req, "percent", 0, 100, &pct) != 1 || qint(req, "code", 400, 599, &code) < 0) {
      emu_reply_code(req, 400, "percent must be in [0, 100] and code in [400, 599]");
      return;
    }
    e->faults.error_percent = pct;
    e->faults.error_code = code;
    set_match(e, req);
    admin_reply(req, e);
  } else if (strcmp(path, "/faults/latency") == 0 && strcmp(method, "POST") == 0) {
    if (qint(req, "ms", 0, 600000, &v) != 1) {
      emu_reply_code(req, 400, "ms must be an integer in [0, 600000]");
      return;
    }
    e->faults.latency_ms = v;
    set_match(e, req);
    admin_reply(req, e);
  } else if (strcmp(path, "/faults/pause") == 0 && strcmp(method, "POST") == 0) {
    e->faults.paused = 1;
    admin_reply(req, e);
  } else if ((strcmp(path, "/faults/resume") == 0 || strcmp(path, "/faults/reset") == 0) &&
             strcmp(method, "POST") == 0) {
    if (strcmp(path, "/faults/reset") == 0) {
      memset(&e->faults, 0, sizeof e->faults);
    }
    e->faults.paused = 0;
    /* Release held requests in arrival order. */
    while (e->nheld > 0) {
      kuala__httpd_req_t *r = e->held[0];
      memmove(e->held, e->held + 1, (e->nheld - 1) * sizeof *e->held);
      e->nheld--;
      kuala__httpd_req_on_close(r, NULL, NULL);
      process(e, r);
    }
    admin_reply(req, e);
  } else {
    emu_reply_code(req, 404, "unknown admin endpoint %s %s", method, path);
  }
}
