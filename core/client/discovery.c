/*
 * discovery.c: apiVersion + kind -> resource plural and scope.
 *
 * The cache maps "group/version" to the resources of that group version's
 * APIResourceList (GET /api/v1 or /apis/G/V; subresources skipped). A kind
 * missing from the cache -- or from a cached list, as happens right after a
 * CRD is installed -- triggers a fetch of that one group version, which
 * replaces its entry. A 404 on the group version means the kind is not
 * served (KUALA_ENOTFOUND).
 *
 * Ownership: entries own their strings; kuala_client_resolve_cached() hands
 * out borrowed pointers that stay valid until the entry is replaced.
 */
#include <string.h>

#include "client/internal.h"
#include "kuala/alloc.h"
#include "kuala/error.h"

struct disc_gv_s {
  char *key; /* "group/version" ("" group for core) */
  char *group;
  char *version;
  size_t n;
  kuala_client_resource_t *res; /* resource and kind strings owned */
};

typedef struct {
  kuala_client_req_t req; /* synthetic request: first member */
  kuala_client_t *c;
  char *group, *version, *kind;
  kuala_client_resolve_cb cb;
  void *data;
  kuala_client_resource_t found; /* copy of the result, strings owned */
} resolve_t;

static void gv_free(disc_gv_t *gv)
{
  for (size_t i = 0; i < gv->n; i++) {
    kuala_free((char *)gv->res[i].resource);
    kuala_free((char *)gv->res[i].kind);
  }
  kuala_free(gv->res);
  kuala_free(gv->key);
  kuala_free(gv->group);
  kuala_free(gv->version);
  kuala_free(gv);
}

void kuala__client_disc_free(kuala_client_t *c)
{
  size_t iter = 0;
  const char *key;
  size_t klen;
  void *value;
  while (kuala__map_next(&c->disc, &iter, &key, &klen, &value)) {
    gv_free(value);
  }
  kuala__map_free(&c->disc);
}

/* "apps/v1" -> ("apps", "v1"); "v1" -> ("", "v1"). */
static int split_api_version(const char *av, char **group, char **version)
{
  *group = *version = NULL;
  if (!av || !*av) {
    return KUALA_EINVAL;
  }
  const char *slash = strchr(av, '/');
  if (!slash) {
    *group = kuala_strdup("");
    *version = kuala_strdup(av);
    return 0;
  }
  if (slash == av || !slash[1] || strchr(slash + 1, '/')) {
    return KUALA_EINVAL;
  }
  *group = kuala_strndup(av, (size_t)(slash - av));
  *version = kuala_strdup(slash + 1);
  return 0;
}

static char *gv_key(const char *group, const char *version)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala_buf_printf(&b, "%s/%s", group, version);
  return kuala_buf_take(&b, NULL);
}

static const kuala_client_resource_t *gv_find(const disc_gv_t *gv, const char *kind)
{
  for (size_t i = 0; gv && i < gv->n; i++) {
    if (strcmp(gv->res[i].kind, kind) == 0) {
      return &gv->res[i];
    }
  }
  return NULL;
}

int kuala_client_resolve_cached(kuala_client_t *c, const char *api_version, const char *kind,
                                kuala_client_resource_t *out)
{
  char *group, *version;
  if (!kind || split_api_version(api_version, &group, &version) != 0) {
    return KUALA_EINVAL;
  }
  char *key = gv_key(group, version);
  const disc_gv_t *gv = kuala__map_get(&c->disc, key, strlen(key));
  const kuala_client_resource_t *r = gv_find(gv, kind);
  kuala_free(key);
  kuala_free(group);
  kuala_free(version);
  if (!r) {
    return KUALA_ENOENT;
  }
  *out = *r;
  return 0;
}

/* Replace the cache entry for group/version from an APIResourceList. */
static int gv_store(kuala_client_t *c, const char *group, const char *version, json_object *list)
{
  json_object *resources = NULL;
  if (!json_object_object_get_ex(list, "resources", &resources) ||
      !json_object_is_type(resources, json_type_array)) {
    return KUALA_EBADMSG;
  }
  disc_gv_t *gv = kuala_calloc(1, sizeof(*gv));
  gv->key = gv_key(group, version);
  gv->group = kuala_strdup(group);
  gv->version = kuala_strdup(version);
  size_t n = json_object_array_length(resources);
  gv->res = kuala_calloc(n ? n : 1, sizeof(kuala_client_resource_t));
  for (size_t i = 0; i < n; i++) {
    json_object *r = json_object_array_get_idx(resources, i);
    json_object *name = NULL, *kind = NULL, *namespaced = NULL;
    if (!json_object_object_get_ex(r, "name", &name) ||
        !json_object_object_get_ex(r, "kind", &kind) ||
        !json_object_is_type(name, json_type_string) ||
        !json_object_is_type(kind, json_type_string)) {
      continue;
    }
    const char *nm = json_object_get_string(name);
    if (strchr(nm, '/')) {
      continue; /* subresource row */
    }
    kuala_client_resource_t *dst = &gv->res[gv->n++];
    dst->group = gv->group;
    dst->version = gv->version;
    dst->resource = kuala_strdup(nm);
    dst->kind = kuala_strdup(json_object_get_string(kind));
    dst->namespaced = json_object_object_get_ex(r, "namespaced", &namespaced) &&
                      json_object_get_boolean(namespaced);
  }
  disc_gv_t *old = kuala__map_put(&c->disc, gv->key, strlen(gv->key), gv);
  if (old) {
    gv_free(old);
  }
  return 0;
}

static void resolve_free(resolve_t *rs)
{
  kuala_free(rs->group);
  kuala_free(rs->version);
  kuala_free(rs->kind);
  kuala_free((char *)rs->found.group);
  kuala_free((char *)rs->found.version);
  kuala_free((char *)rs->found.resource);
  kuala_free((char *)rs->found.kind);
}

static void set_found(resolve_t *rs, const kuala_client_resource_t *r)
{
  rs->found.group = kuala_strdup(r->group);
  rs->found.version = kuala_strdup(r->version);
  rs->found.resource = kuala_strdup(r->resource);
  rs->found.kind = kuala_strdup(r->kind);
  rs->found.namespaced = r->namespaced;
}

/* Synthetic completion (cache hit): runs from the request's timer. The
 * request memory itself is freed by client.c after this returns. */
static void on_synth_done(kuala_client_req_t *req, int err)
{
  resolve_t *rs = (resolve_t *)req;
  rs->cb(rs->data, err, err == 0 ? &rs->found : NULL);
  resolve_free(rs);
}

/* Fetch path: rs is a plain heap context (not a request). */
static void on_fetched(void *data, int err, kuala_client_resp_t *resp)
{
  resolve_t *rs = data;
  kuala_client_t *c = rs->c;
  const kuala_client_resource_t *r = NULL;
  if (err == 0) {
    json_object *obj = NULL;
    err = kuala_client_resp_json(resp, &obj);
    if (err == 0) {
      err = gv_store(c, rs->group, rs->version, obj);
    }
    if (err == 0) {
      char *key = gv_key(rs->group, rs->version);
      r = gv_find(kuala__map_get(&c->disc, key, strlen(key)), rs->kind);
      kuala_free(key);
      if (!r) {
        err = KUALA_ENOTFOUND;
      }
    }
  }
  rs->cb(rs->data, err, r);
  resolve_free(rs);
  kuala_free(rs);
}

int kuala_client_resolve(kuala_client_t *c, const char *api_version, const char *kind,
                         kuala_client_resolve_cb cb, void *data)
{
  char *group, *version;
  if (!c || !cb || !kind || !*kind || split_api_version(api_version, &group, &version) != 0) {
    return KUALA_EINVAL;
  }
  if (c->closing) {
    kuala_free(group);
    kuala_free(version);
    return KUALA_ESHUTDOWN;
  }
  kuala_client_resource_t hit;
  if (kuala_client_resolve_cached(c, api_version, kind, &hit) == 0) {
    resolve_t *rs = (resolve_t *)kuala__client_req_alloc(c, sizeof(resolve_t), REQ_KIND_SYNTH);
    rs->c = c;
    rs->group = group;
    rs->version = version;
    rs->kind = kuala_strdup(kind);
    rs->cb = cb;
    rs->data = data;
    set_found(rs, &hit);
    rs->req.synth_done = on_synth_done;
    /* Cannot fail: the client is not closing (checked above). */
    return kuala__client_req_start(&rs->req);
  }
  resolve_t *rs = kuala_calloc(1, sizeof(*rs));
  rs->c = c;
  rs->group = group;
  rs->version = version;
  rs->kind = kuala_strdup(kind);
  rs->cb = cb;
  rs->data = data;
  kuala_buf_t path = KUALA_BUF_INIT(0);
  if (*group) {
    kuala_buf_puts(&path, "/apis/");
    kuala__client_escape(&path, group);
    kuala_buf_putc(&path, '/');
  } else {
    kuala_buf_puts(&path, "/api/");
  }
  kuala__client_escape(&path, version);
  int rc = kuala_client_request(NULL, c, "GET", path.data, NULL, NULL, 0, NULL, on_fetched, rs);
  kuala_buf_free(&path);
  if (rc != 0) {
    resolve_free(rs);
    kuala_free(rs);
  }
  return rc;
}
