/*
 * scale.c: the /scale subresource of apps/v1 Deployments (autoscaling/v1
 * Scale), which `kubectl scale` and autoscalers use.
 *
 * GET renders a Scale from the Deployment; PUT and PATCH (JSON, merge or
 * strategic merge patch, applied to the Scale document) change only
 * spec.replicas of the Deployment, through a normal committed write
 * (generation bump, MODIFIED event, simulated status afterwards).
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

int emu_is_scalable(const emu_rtype_t *rt)
{
  return strcmp(rt->group, "apps") == 0 && strcmp(rt->plural, "deployments") == 0;
}

static void copy_str(json_object *dst, const char *key, json_object *src, const char *path)
{
  const char *v = kuala_json_path_str(src, path);
  if (v) {
    kuala_json_set_str(dst, key, v);
  }
}

/* The Scale view of a Deployment (new reference). */
static json_object *scale_of(json_object *dep)
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
  json_object *r = kuala_json_path(dep, "spec.replicas");
  json_object *spec = json_object_new_object();
  json_object_object_add(spec, "replicas", json_object_new_int64(r ? json_object_get_int64(r) : 1));
  json_object_object_add(s, "spec", spec);
  json_object *st = json_object_new_object();
  json_object *sr = kuala_json_path(dep, "status.replicas");
  json_object_object_add(st, "replicas", json_object_new_int64(sr ? json_object_get_int64(sr) : 0));
  json_object *ml = kuala_json_path(dep, "spec.selector.matchLabels");
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
  emu_obj_t *rec = emu_store_get(c->rt->store, c->ns, c->name);
  if (!rec) {
    emu_err_notfound(&err, c->rt, c->name);
    emu_reply_err(c->req, &err);
    return;
  }
  json_object *dep = emu_obj_parse(rec);
  json_object *cur = scale_of(dep);
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
                               "Operation cannot be fulfilled on deployments.apps \"%s\": the "
                               "object has been modified; please apply your changes to the "
                               "latest version and try again",
                               c->name);
        kuala__apierr_details(&err, c->name, "apps", "deployments");
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
    rc = kuala__apierr_set(&err, 405, NULL,
                           "%s is not supported on the scale subresource of deployments.apps",
                           c->method);
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
  json_object *old_r = kuala_json_path(dep, "spec.replicas");
  int64_t before = old_r ? json_object_get_int64(old_r) : 1;
  if (n != before && !c->dry) {
    json_object_object_add(kuala_json_ensure_obj(dep, "spec"), "replicas",
                           json_object_new_int64(n));
    json_object *g = kuala_json_path(dep, "metadata.generation");
    json_object_object_add(kuala_json_ensure_obj(dep, "metadata"), "generation",
                           json_object_new_int64((g ? json_object_get_int64(g) : 1) + 1));
    uint64_t rv;
    emu_commit(e, c->rt, dep, &rv);
    emu_deployment_touched(e, c->ns, c->name);
  } else if (c->dry) {
    json_object_object_add(kuala_json_ensure_obj(dep, "spec"), "replicas",
                           json_object_new_int64(n));
  }
  json_object_put(cur);
  json_object_put(want);
  emu_reply_json(c->req, 200, scale_of(dep));
  json_object_put(dep);
}
