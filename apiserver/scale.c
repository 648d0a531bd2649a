/*
 * scale.c: the /scale subresource (autoscaling/v1 Scale), which `kubectl
 * scale` and autoscalers use, for apps/v1 Deployments and for custom
 * resources whose CRD version declares subresources.scale
 * (specReplicasPath, statusReplicasPath, labelSelectorPath).
 *
 * GET renders a Scale from the object; PUT and PATCH (JSON, merge or
 * strategic merge patch, applied to the Scale document) change only the
 * replicas field of the object, through a normal committed write
 * (generation bump, MODIFIED event; simulated status for Deployments).
 */
#include <stdio.h>
#include <string.h>

#include "emu.h"
#include "emu_internal.h"
#include "kuala/alloc.h"
#include "kuala/json.h"
#ifdef KUALA_EMU_HAVE_PATCH
#include "patch.h"
#endif

static int is_deployment(const emu_rtype_t *rt)
{
  return strcmp(rt->group, "apps") == 0 && strcmp(rt->plural, "deployments") == 0;
}

/* Paths of the replicas fields (without the leading '.'): Deployments, or
 * the CRD version's subresources.scale. 0, or -1 when not scalable. */
typedef struct {
  const char *spec, *status, *selector; /* selector NULL: none / matchLabels */
} scale_paths_t;

static int paths_of(const emu_rtype_t *rt, scale_paths_t *p)
{
  memset(p, 0, sizeof *p);
  if (is_deployment(rt)) {
    p->spec = "spec.replicas";
    p->status = "status.replicas";
    return 0;
  }
  if (!rt->custom || !rt->crd) {
    return -1;
  }
  json_object *vers = kuala_json_get(rt->crd, "spec", "versions", NULL);
  for (size_t i = 0;
       vers && json_object_is_type(vers, json_type_array) && i < json_object_array_length(vers);
       i++) {
    json_object *v = json_object_array_get_idx(vers, i);
    const char *name = kuala_json_path_str(v, "name");
    json_object *sc = kuala_json_get(v, "subresources", "scale", NULL);
    if (name && strcmp(name, rt->version) == 0 && sc) {
      p->spec = kuala_json_path_str(sc, "specReplicasPath");
      p->status = kuala_json_path_str(sc, "statusReplicasPath");
      p->selector = kuala_json_path_str(sc, "labelSelectorPath");
      if (!p->spec || !p->status) {
        return -1;
      }
      p->spec += p->spec[0] == '.';
      p->status += p->status[0] == '.';
      if (p->selector) {
        p->selector += p->selector[0] == '.';
      }
      return 0;
    }
  }
  return -1;
}

int emu_is_scalable(const emu_rtype_t *rt)
{
  scale_paths_t p;
  return paths_of(rt, &p) == 0;
}

/* Set the integer at a dotted path, creating objects on the way. */
static void set_path_int(json_object *obj, const char *path, int64_t n)
{
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  char *seg = buf;
  for (char *dot = strchr(seg, '.'); dot; dot = strchr(seg, '.')) {
    *dot = 0;
    obj = kuala_json_ensure_obj(obj, seg);
    seg = dot + 1;
  }
  json_object_object_add(obj, seg, json_object_new_int64(n));
}

static void copy_str(json_object *dst, const char *key, json_object *src, const char *path)
{
  const char *v = kuala_json_path_str(src, path);
  if (v) {
    kuala_json_set_str(dst, key, v);
  }
}

/* The Scale view of an object (new reference). */
static json_object *scale_of(json_object *dep, const scale_paths_t *p)
{
  json_object *s = json_object_new_object();
  kuala_json_set_str(s, "kind", "Scale");
  kuala_json_set_str(s, "apiVersion", "autoscaling/v1");
  json_object *m = json_object_new_object();
  copy_str(m, "name", dep, "metadata.name");
  copy_str(m, "namespace", dep, "metadata.namespace");
  copy_str(m, "uid", dep, "metadata.uid");
  copy_str(m, "resourceVersion", dep, "metadata.resourceVersion");
  copy_str(m, "creationTimestamp", dep, "metadata.creationTimestamp");
  json_object_object_add(s, "metadata", m);
  json_object *r = kuala_json_path(dep, p->spec);
  json_object *spec = json_object_new_object();
  json_object_object_add(spec, "replicas", json_object_new_int64(r ? json_object_get_int64(r) : 1));
  json_object_object_add(s, "spec", spec);
  json_object *st = json_object_new_object();
  json_object *sr = kuala_json_path(dep, p->status);
  json_object_object_add(st, "replicas", json_object_new_int64(sr ? json_object_get_int64(sr) : 0));
  if (p->selector) {
    const char *sel = kuala_json_path_str(dep, p->selector);
    if (sel) {
      kuala_json_set_str(st, "selector", sel);
    }
  }
  json_object *ml = p->selector ? NULL : kuala_json_path(dep, "spec.selector.matchLabels");
  if (ml && json_object_is_type(ml, json_type_object)) {
    char sel[1024] = "";
    size_t used = 0;
    json_object_object_foreach(ml, k, v)
    {
      int n = snprintf(sel + used, sizeof sel - used, "%s%s=%s", used ? "," : "", k,
                       json_object_get_string(v));
      if (n < 0 || (size_t)n >= sizeof sel - used) {
        break;
      }
      used += (size_t)n;
    }
    kuala_json_set_str(st, "selector", sel);
  }
  json_object_object_add(s, "status", st);
  return s;
}

void emu_do_scale(emu_t *e, emu_ctx_t *c)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
  scale_paths_t paths;
  if (paths_of(c->rt, &paths) != 0) {
    emu_err_notfound(&err, c->rt, c->name);
    emu_reply_err(c->req, &err);
    return;
  }
  emu_obj_t *rec = emu_store_get(c->rt->store, c->ns, c->name);
  if (!rec) {
    emu_err_notfound(&err, c->rt, c->name);
    emu_reply_err(c->req, &err);
    return;
  }
  json_object *dep = emu_obj_parse(rec);
  json_object *cur = scale_of(dep, &paths);
  json_object *want = NULL;
  int rc = 0;
  size_t len;
  const char *body = kuala__httpd_body(c->req, &len);
  char why[256];
  if (strcmp(c->method, "GET") == 0) {
    emu_reply_json(c->req, 200, cur);
    json_object_put(dep);
    return;
  }
  if (strcmp(c->method, "PUT") == 0) {
    if (kuala_json_parse(&want, body, len, why, sizeof why) < 0 ||
        !json_object_is_type(want, json_type_object)) {
      rc = kuala__apierr_set(&err, 400, NULL,
                             "Scale in version \"v1\" cannot be handled as a Scale: %s",
                             want ? "expected a JSON object" : why);
    } else {
      const char *rv = kuala_json_path_str(want, "metadata.resourceVersion");
      const char *have = kuala_json_path_str(cur, "metadata.resourceVersion");
      if (rv && *rv && have && strcmp(rv, have) != 0) {
        rc = kuala__apierr_set(&err, 409, NULL,
                               "Operation cannot be fulfilled on %s.%s \"%s\": the "
                               "object has been modified; please apply your changes to the "
                               "latest version and try again",
                               c->rt->plural, c->rt->group, c->name);
        kuala__apierr_details(&err, c->name, c->rt->group, c->rt->plural);
      }
    }
  } else if (strcmp(c->method, "PATCH") == 0) {
#ifdef KUALA_EMU_HAVE_PATCH
    kuala_patch_type_t type;
    json_object *patch = NULL;
    rc = kuala__patch_type(&type, kuala__httpd_header(c->req, "Content-Type"), 0, &err);
    if (!rc && type == KUALA_PATCH_APPLY) {
      rc = kuala__apierr_set(&err, 415, NULL,
                             "server-side apply is not supported on the scale subresource");
    }
    if (!rc) {
      rc = kuala__patch_decode(&patch, type, body, len, &err);
    }
    if (!rc) {
      rc = kuala__patch_run(&want, type, cur, patch, "autoscaling", "Scale", &err);
    }
    if (patch) {
      json_object_put(patch);
    }
#else
    rc = kuala__apierr_set(&err, 415, NULL, "PATCH is not available in this build");
#endif
  } else {
    rc = kuala__apierr_set(&err, 405, NULL, "%s is not supported on the scale subresource of %s.%s",
                           c->method, c->rt->plural, c->rt->group);
  }
  json_object *r = want ? kuala_json_path(want, "spec.replicas") : NULL;
  if (!rc && (!r || !json_object_is_type(r, json_type_int) || json_object_get_int64(r) < 0)) {
    json_object *v = r ? json_object_get(r) : NULL;
    kuala__apierr_field(&err, r ? KUALA_CAUSE_INVALID : KUALA_CAUSE_REQUIRED, "spec.replicas", v,
                        r ? "must be greater than or equal to 0" : NULL);
    if (v) {
      json_object_put(v);
    }
    rc = kuala__apierr_invalid(&err, "Scale", "autoscaling", c->name);
  }
  if (rc) {
    emu_reply_err(c->req, &err);
    json_object_put(cur);
    json_object_put(dep);
    if (want) {
      json_object_put(want);
    }
    return;
  }
  int64_t n = json_object_get_int64(r);
  json_object *old_r = kuala_json_path(dep, paths.spec);
  int64_t before = old_r ? json_object_get_int64(old_r) : is_deployment(c->rt) ? 1 : -1;
  if (n != before && !c->dry) {
    set_path_int(dep, paths.spec, n);
    json_object *g = kuala_json_path(dep, "metadata.generation");
    json_object_object_add(kuala_json_ensure_obj(dep, "metadata"), "generation",
                           json_object_new_int64((g ? json_object_get_int64(g) : 1) + 1));
    uint64_t rv;
    emu_commit(e, c->rt, dep, &rv);
    if (is_deployment(c->rt)) {
      emu_deployment_touched(e, c->ns, c->name);
    }
  } else if (c->dry) {
    set_path_int(dep, paths.spec, n);
  }
  json_object_put(cur);
  json_object_put(want);
  emu_reply_json(c->req, 200, scale_of(dep, &paths));
  json_object_put(dep);
}
