/*
 * registry.c: the resources the emulator serves and the discovery documents
 * built from them (spec §1.2).
 *
 * Built-in kinds are registered at start; CRD versions are registered when a
 * CRD becomes Established and unregistered when it goes away. All versions
 * of one CRD share one store (conversion strategy None: objects differ only
 * by apiVersion). The rtype list is in registration order; discovery sorts
 * rows by name so main resources come before their subresources.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"
#include "emu_internal.h"
#include "kuala/alloc.h"
#include "kuala/json.h"

typedef struct {
  const char *group, *version, *plural, *singular, *kind;
  int namespaced, status_sub, generation, unconditional, fs;
  const char *short1, *short2, *category;
} builtin_t;

static const builtin_t builtins[] = {
    {"", "v1", "namespaces", "namespace", "Namespace", 0, 1, 0, 1, EMU_FS_NAMESPACE, "ns", NULL,
     NULL},
    {"", "v1", "configmaps", "configmap", "ConfigMap", 1, 0, 0, 1, EMU_FS_GENERIC, "cm", NULL,
     NULL},
    {"", "v1", "secrets", "secret", "Secret", 1, 0, 0, 1, EMU_FS_SECRET, NULL, NULL, NULL},
    {"", "v1", "events", "event", "Event", 1, 0, 0, 1, EMU_FS_EVENT, "ev", NULL, NULL},
    {"", "v1", "services", "service", "Service", 1, 1, 0, 1, EMU_FS_GENERIC, "svc", NULL, "all"},
    /* Pods and Nodes are stored, never run or scheduled (see docs/emulator.md). */
    {"", "v1", "pods", "pod", "Pod", 1, 1, 0, 1, EMU_FS_GENERIC, "po", NULL, "all"},
    {"", "v1", "nodes", "node", "Node", 0, 1, 0, 1, EMU_FS_GENERIC, "no", NULL, NULL},
    {"", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", 1, 0, 0, 1, EMU_FS_GENERIC,
     "sa", NULL, NULL},
    /* Stored, not enforced: quotas and limit ranges are what tenant
     * operators write; PodDisruptionBudgets what deploy/ ships. */
    {"", "v1", "resourcequotas", "resourcequota", "ResourceQuota", 1, 1, 0, 1, EMU_FS_GENERIC,
     "quota", NULL, NULL},
    {"", "v1", "limitranges", "limitrange", "LimitRange", 1, 0, 0, 1, EMU_FS_GENERIC, "limits",
     NULL, NULL},
    {"policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", 1, 1, 1,
     1, EMU_FS_GENERIC, "pdb", NULL, NULL},
    {"apps", "v1", "deployments", "deployment", "Deployment", 1, 1, 1, 1, EMU_FS_GENERIC, "deploy",
     NULL, "all"},
    {"coordination.k8s.io", "v1", "leases", "lease", "Lease", 1, 0, 0, 1, EMU_FS_GENERIC, NULL,
     NULL, NULL},
    {"events.k8s.io", "v1", "events", "event", "Event", 1, 0, 0, 1, EMU_FS_GENERIC, "ev", NULL,
     NULL},
    {"rbac.authorization.k8s.io", "v1", "roles", "role", "Role", 1, 0, 0, 1, EMU_FS_GENERIC, NULL,
     NULL, NULL},
    {"rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", 1, 0, 0, 1,
     EMU_FS_GENERIC, NULL, NULL, NULL},
    {"rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", 0, 0, 0, 1,
     EMU_FS_GENERIC, NULL, NULL, NULL},
    {"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
     "ClusterRoleBinding", 0, 0, 0, 1, EMU_FS_GENERIC, NULL, NULL, NULL},
    /* Answered by auth.c; listed so discovery shows the group. */
    {"authorization.k8s.io", "v1", "selfsubjectaccessreviews", "", "SelfSubjectAccessReview", 0, 0,
     0, 1, EMU_FS_GENERIC, NULL, NULL, NULL},
    {"apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
     "CustomResourceDefinition", 0, 1, 1, 0, EMU_FS_GENERIC, "crd", "crds", NULL},
};

static char *dup_or_null(const char *s)
{
  return s ? kuala_strdup(s) : NULL;
}

static void rtype_free_fields(emu_rtype_t *rt)
{
  kuala_free(rt->group);
  kuala_free(rt->version);
  kuala_free(rt->plural);
  kuala_free(rt->singular);
  kuala_free(rt->kind);
  kuala_free(rt->list_kind);
  for (int i = 0; i < 8; i++) {
    kuala_free(rt->short_names[i]);
    rt->short_names[i] = NULL;
    kuala_free(rt->selectable[i]);
    rt->selectable[i] = NULL;
  }
  for (int i = 0; i < 4; i++) {
    kuala_free(rt->categories[i]);
    rt->categories[i] = NULL;
  }
  kuala_free(rt->crd_name);
  if (rt->crd) {
    json_object_put(rt->crd);
  }
}

static void append_rtype(emu_t *e, emu_rtype_t *rt)
{
  emu_rtype_t **p = &e->rtypes;
  while (*p) {
    p = &(*p)->next;
  }
  *p = rt;
}

void emu_registry_init(emu_t *e)
{
  emu_store_t *events = NULL;
  for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
    const builtin_t *b = &builtins[i];
    emu_rtype_t *rt = kuala_calloc(1, sizeof *rt);
    rt->group = kuala_strdup(b->group);
    rt->version = kuala_strdup(b->version);
    rt->plural = kuala_strdup(b->plural);
    rt->singular = kuala_strdup(b->singular);
    rt->kind = kuala_strdup(b->kind);
    size_t kl = strlen(b->kind);
    rt->list_kind = kuala_malloc(kl + 5);
    memcpy(rt->list_kind, b->kind, kl);
    memcpy(rt->list_kind + kl, "List", 5);
    rt->namespaced = b->namespaced;
    rt->status_sub = b->status_sub;
    rt->generation = b->generation;
    rt->unconditional = b->unconditional;
    rt->fs_family = b->fs;
    rt->short_names[0] = dup_or_null(b->short1);
    rt->short_names[1] = dup_or_null(b->short2);
    rt->categories[0] = dup_or_null(b->category);
    if (strcmp(b->plural, "events") == 0 && events) {
      /* events.k8s.io/v1 is a second view of the core v1 Event store. */
      rt->store = events;
      events->refs++;
    } else {
      rt->store = emu_store_new();
      rt->store->storage = rt;
      rt->store->refs = 1;
      if (strcmp(b->plural, "events") == 0) {
        events = rt->store;
      }
    }
    append_rtype(e, rt);
  }
}

emu_rtype_t *emu_rtype_find(emu_t *e, const char *group, const char *version, const char *plural)
{
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    if (strcmp(rt->group, group) == 0 && strcmp(rt->version, version) == 0 &&
        strcmp(rt->plural, plural) == 0) {
      return rt;
    }
  }
  return NULL;
}

emu_rtype_t *emu_rtype_find_kind(emu_t *e, const char *group, const char *kind)
{
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    if (strcmp(rt->group, group) == 0 && strcmp(rt->kind, kind) == 0) {
      return rt;
    }
  }
  return NULL;
}

const char *emu_qualified(const emu_rtype_t *rt, char *buf, size_t len)
{
  if (rt->group[0]) {
    snprintf(buf, len, "%s.%s", rt->plural, rt->group);
  } else {
    snprintf(buf, len, "%s", rt->plural);
  }
  return buf;
}

const char *emu_api_version(const emu_rtype_t *rt, char *buf, size_t len)
{
  if (rt->group[0]) {
    snprintf(buf, len, "%s/%s", rt->group, rt->version);
  } else {
    snprintf(buf, len, "%s", rt->version);
  }
  return buf;
}

/* ---- CRDs ---- */

static const char *jstr(json_object *o, const char *path)
{
  return kuala_json_path_str(o, path);
}

static void fill_names(emu_rtype_t *rt, json_object *names)
{
  json_object *sn = kuala_json_get(names, "shortNames", NULL);
  for (size_t i = 0;
       sn && json_object_is_type(sn, json_type_array) && i < json_object_array_length(sn) && i < 7;
       i++) {
    rt->short_names[i] = kuala_strdup(json_object_get_string(json_object_array_get_idx(sn, i)));
  }
  json_object *cats = kuala_json_get(names, "categories", NULL);
  for (size_t i = 0; cats && json_object_is_type(cats, json_type_array) &&
                     i < json_object_array_length(cats) && i < 3;
       i++) {
    rt->categories[i] = kuala_strdup(json_object_get_string(json_object_array_get_idx(cats, i)));
  }
}

int emu_crd_register(emu_t *e, json_object *crd)
{
  const char *crd_name = jstr(crd, "metadata.name");
  const char *group = jstr(crd, "spec.group");
  json_object *names = kuala_json_path(crd, "spec.names");
  const char *plural = jstr(names, "plural");
  const char *kind = jstr(names, "kind");
  json_object *versions = kuala_json_path(crd, "spec.versions");
  if (!crd_name || !group || !plural || !kind || !versions ||
      !json_object_is_type(versions, json_type_array)) {
    return 422;
  }
  const char *singular = jstr(names, "singular");
  const char *list_kind = jstr(names, "listKind");
  const char *scope = jstr(crd, "spec.scope");
  /* The store shared by every version of this CRD. */
  emu_store_t *store = NULL;
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    if (rt->crd_name && strcmp(rt->crd_name, crd_name) == 0) {
      store = rt->store;
      break;
    }
  }
  if (!store) {
    store = emu_store_new();
  }
  size_t nv = json_object_array_length(versions);
  for (size_t i = 0; i < nv; i++) {
    json_object *v = json_object_array_get_idx(versions, i);
    const char *vname = jstr(v, "name");
    json_object *served = kuala_json_get(v, "served", NULL);
    if (!vname || (served && !json_object_get_boolean(served))) {
      continue;
    }
    emu_rtype_t *rt = emu_rtype_find(e, group, vname, plural);
    if (rt && (!rt->crd_name || strcmp(rt->crd_name, crd_name) != 0)) {
      continue; /* a built-in or another CRD owns this resource */
    }
    if (rt) {
      rtype_free_fields(rt);
    } else {
      rt = kuala_calloc(1, sizeof *rt);
      rt->store = store;
      store->refs++;
      append_rtype(e, rt);
    }
    rt->group = kuala_strdup(group);
    rt->version = kuala_strdup(vname);
    rt->plural = kuala_strdup(plural);
    rt->singular = kuala_strdup(singular ? singular : "");
    rt->kind = kuala_strdup(kind);
    if (list_kind) {
      rt->list_kind = kuala_strdup(list_kind);
    } else {
      size_t kl = strlen(kind);
      rt->list_kind = kuala_malloc(kl + 5);
      memcpy(rt->list_kind, kind, kl);
      memcpy(rt->list_kind + kl, "List", 5);
    }
    fill_names(rt, names);
    rt->namespaced = !scope || strcmp(scope, "Cluster") != 0;
    rt->status_sub = kuala_json_get(v, "subresources", "status", NULL) != NULL;
    rt->generation = 1;
    rt->unconditional = 0;
    rt->custom = 1;
    rt->fs_family = EMU_FS_GENERIC;
    rt->terminating = 0;
    json_object *sf = kuala_json_get(v, "selectableFields", NULL);
    for (size_t j = 0; sf && json_object_is_type(sf, json_type_array) &&
                       j < json_object_array_length(sf) && j < 8;
         j++) {
      const char *jp = jstr(json_object_array_get_idx(sf, j), "jsonPath");
      if (jp) {
        rt->selectable[j] = kuala_strdup(jp[0] == '.' ? jp + 1 : jp);
      }
    }
    rt->crd = json_object_get(crd);
    rt->crd_name = kuala_strdup(crd_name);
    json_object *storage = kuala_json_get(v, "storage", NULL);
    if (storage && json_object_get_boolean(storage)) {
      store->storage = rt;
    }
  }
  if (!store->storage) {
    for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
      if (rt->store == store) {
        store->storage = rt;
        break;
      }
    }
  }
  if (store->refs == 0) {
    kuala__map_free(&store->objs);
    kuala_free(store);
    return 422;
  }
  /* Versions no longer served leave. */
  for (emu_rtype_t **p = &e->rtypes; *p;) {
    emu_rtype_t *rt = *p;
    int keep = 1;
    if (rt->crd_name && strcmp(rt->crd_name, crd_name) == 0) {
      keep = 0;
      for (size_t i = 0; i < nv; i++) {
        json_object *v = json_object_array_get_idx(versions, i);
        json_object *served = kuala_json_get(v, "served", NULL);
        const char *vname = jstr(v, "name");
        if (vname && strcmp(vname, rt->version) == 0 &&
            (!served || json_object_get_boolean(served))) {
          keep = 1;
        }
      }
    }
    if (keep) {
      p = &rt->next;
      continue;
    }
    *p = rt->next;
    emu_watch_close_all(e, rt, 0);
    if (rt->store->storage == rt) {
      rt->store->storage = NULL;
    }
    emu_store_release(e, rt->store);
    rtype_free_fields(rt);
    kuala_free(rt);
  }
  return 0;
}

void emu_crd_unregister(emu_t *e, const char *crd_name)
{
  for (emu_rtype_t **p = &e->rtypes; *p;) {
    emu_rtype_t *rt = *p;
    if (!rt->crd_name || strcmp(rt->crd_name, crd_name) != 0) {
      p = &rt->next;
      continue;
    }
    *p = rt->next;
    emu_watch_close_all(e, rt, 0);
    emu_store_t *s = rt->store;
    if (s->refs == 1) {
      emu_snapshots_forget(s);
      /* History entries must not point at the freed store. */
      for (size_t i = 0; i < e->ring_len; i++) {
        emu_event_t *ev = emu_history_at(e, i);
        if (ev->store == s) {
          ev->store = NULL;
        }
      }
    }
    emu_store_release(e, s);
    rtype_free_fields(rt);
    kuala_free(rt);
  }
}

/* ---- discovery ---- */

json_object *emu_version_doc(void)
{
  json_object *v = json_object_new_object();
  kuala_json_set_str(v, "major", "1");
  kuala_json_set_str(v, "minor", "32");
  kuala_json_set_str(v, "gitVersion", "v1.32.0-kuala-emu");
  kuala_json_set_str(v, "gitCommit", "0000000000000000000000000000000000000000");
  kuala_json_set_str(v, "gitTreeState", "clean");
  kuala_json_set_str(v, "buildDate", "2025-01-01T00:00:00Z");
  kuala_json_set_str(v, "goVersion", "go1.23.0");
  kuala_json_set_str(v, "compiler", "gc");
  kuala_json_set_str(v, "platform", "linux/amd64");
  return v;
}

json_object *emu_discovery_api(emu_t *e)
{
  json_object *o = json_object_new_object();
  kuala_json_set_str(o, "kind", "APIVersions");
  json_object *vs = json_object_new_array();
  json_object_array_add(vs, json_object_new_string("v1"));
  json_object_object_add(o, "versions", vs);
  json_object *cidrs = json_object_new_array();
  json_object *c = json_object_new_object();
  kuala_json_set_str(c, "clientCIDR", "0.0.0.0/0");
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", e->port);
  kuala_json_set_str(c, "serverAddress", addr);
  json_object_array_add(cidrs, c);
  json_object_object_add(o, "serverAddressByClientCIDRs", cidrs);
  return o;
}

static int version_listed(json_object *versions, const char *gv)
{
  for (size_t i = 0; i < json_object_array_length(versions); i++) {
    if (strcmp(jstr(json_object_array_get_idx(versions, i), "groupVersion"), gv) == 0) {
      return 1;
    }
  }
  return 0;
}

static json_object *group_doc(emu_t *e, const char *group)
{
  json_object *g = NULL, *versions = NULL;
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    if (strcmp(rt->group, group) != 0 || rt->terminating) {
      continue;
    }
    if (!g) {
      g = json_object_new_object();
      kuala_json_set_str(g, "name", group);
      versions = json_object_new_array();
      json_object_object_add(g, "versions", versions);
    }
    char gv[512];
    emu_api_version(rt, gv, sizeof gv);
    if (version_listed(versions, gv)) {
      continue;
    }
    json_object *v = json_object_new_object();
    kuala_json_set_str(v, "groupVersion", gv);
    kuala_json_set_str(v, "version", rt->version);
    json_object_array_add(versions, v);
  }
  if (g) {
    json_object_object_add(g, "preferredVersion",
                           kuala_json_copy(json_object_array_get_idx(versions, 0)));
  }
  return g;
}

json_object *emu_discovery_group(emu_t *e, const char *group)
{
  json_object *g = group_doc(e, group);
  if (g) {
    json_object *out = json_object_new_object();
    kuala_json_set_str(out, "kind", "APIGroup");
    kuala_json_set_str(out, "apiVersion", "v1");
    json_object_object_foreach(g, k, v)
    {
      json_object_object_add(out, k, json_object_get(v));
    }
    json_object_put(g);
    return out;
  }
  return NULL;
}

json_object *emu_discovery_apis(emu_t *e)
{
  json_object *o = json_object_new_object();
  kuala_json_set_str(o, "kind", "APIGroupList");
  kuala_json_set_str(o, "apiVersion", "v1");
  json_object *groups = json_object_new_array();
  json_object_object_add(o, "groups", groups);
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    if (!rt->group[0] || rt->terminating) {
      continue;
    }
    int seen = 0;
    for (size_t i = 0; i < json_object_array_length(groups); i++) {
      if (strcmp(jstr(json_object_array_get_idx(groups, i), "name"), rt->group) == 0) {
        seen = 1;
      }
    }
    if (!seen) {
      json_object_array_add(groups, group_doc(e, rt->group));
    }
  }
  return o;
}

static json_object *str_array(char *const *v, size_t max)
{
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < max && v[i]; i++) {
    json_object_array_add(a, json_object_new_string(v[i]));
  }
  return a;
}

static json_object *verbs(const char *const *v)
{
  json_object *a = json_object_new_array();
  for (; *v; v++) {
    json_object_array_add(a, json_object_new_string(*v));
  }
  return a;
}

static int cmp_rows(const void *a, const void *b)
{
  json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
  return strcmp(jstr(x, "name"), jstr(y, "name"));
}

static json_object *row(const char *name, const char *singular, int namespaced, const char *kind,
                        json_object *verb_list)
{
  json_object *r = json_object_new_object();
  kuala_json_set_str(r, "name", name);
  kuala_json_set_str(r, "singularName", singular);
  json_object_object_add(r, "namespaced", json_object_new_boolean(namespaced));
  kuala_json_set_str(r, "kind", kind);
  json_object_object_add(r, "verbs", verb_list);
  return r;
}

json_object *emu_discovery_resources(emu_t *e, const char *group, const char *version)
{
  static const char *const all[] = {
      "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch", NULL};
  static const char *const ns_verbs[] = {"create", "delete", "get",   "list",
                                         "patch",  "update", "watch", NULL};
  static const char *const sub[] = {"get", "patch", "update", NULL};
  static const char *const fin[] = {"update", NULL};
  json_object *rows = json_object_new_array();
  int found = 0;
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    if (strcmp(rt->group, group) != 0 || strcmp(rt->version, version) != 0 || rt->terminating) {
      continue;
    }
    found = 1;
    int is_ns = !rt->group[0] && strcmp(rt->plural, "namespaces") == 0;
    json_object *r =
        row(rt->plural, rt->singular, rt->namespaced, rt->kind, verbs(is_ns ? ns_verbs : all));
    if (rt->short_names[0]) {
      json_object_object_add(r, "shortNames", str_array(rt->short_names, 8));
    }
    if (rt->categories[0]) {
      json_object_object_add(r, "categories", str_array(rt->categories, 4));
    }
    json_object_array_add(rows, r);
    char name[300];
    if (rt->status_sub) {
      snprintf(name, sizeof name, "%s/status", rt->plural);
      json_object_array_add(rows, row(name, "", rt->namespaced, rt->kind, verbs(sub)));
    }
    if (emu_is_scalable(rt)) {
      snprintf(name, sizeof name, "%s/scale", rt->plural);
      json_object *sc = row(name, "", rt->namespaced, "Scale", verbs(sub));
      kuala_json_set_str(sc, "group", "autoscaling");
      kuala_json_set_str(sc, "version", "v1");
      json_object_array_add(rows, sc);
    }
    if (is_ns) {
      snprintf(name, sizeof name, "%s/finalize", rt->plural);
      json_object_array_add(rows, row(name, "", 0, rt->kind, verbs(fin)));
    }
  }
  if (!found) {
    json_object_put(rows);
    return NULL;
  }
  size_t n = json_object_array_length(rows);
  json_object **tmp = kuala_malloc((n ? n : 1) * sizeof *tmp);
  for (size_t i = 0; i < n; i++) {
    tmp[i] = json_object_get(json_object_array_get_idx(rows, i));
  }
  qsort(tmp, n, sizeof *tmp, cmp_rows);
  json_object *sorted = json_object_new_array();
  for (size_t i = 0; i < n; i++) {
    json_object_array_add(sorted, tmp[i]);
  }
  kuala_free(tmp);
  json_object_put(rows);
  json_object *o = json_object_new_object();
  kuala_json_set_str(o, "kind", "APIResourceList");
  kuala_json_set_str(o, "apiVersion", "v1");
  char gv[512];
  if (group[0]) {
    snprintf(gv, sizeof gv, "%s/%s", group, version);
  } else {
    snprintf(gv, sizeof gv, "%s", version);
  }
  kuala_json_set_str(o, "groupVersion", gv);
  json_object_object_add(o, "resources", sorted);
  return o;
}

/* ---- conversion between views of one store ---- */

/* events.k8s.io/v1 name <-> core v1 name (spec §9.3). */
static const char *const event_fields[][2] = {
    {"regarding", "involvedObject"},
    {"note", "message"},
    {"reportingController", "reportingComponent"},
    {"deprecatedSource", "source"},
    {"deprecatedFirstTimestamp", "firstTimestamp"},
    {"deprecatedLastTimestamp", "lastTimestamp"},
    {"deprecatedCount", "count"},
};

static int is_events_view(const emu_rtype_t *rt)
{
  return strcmp(rt->group, "events.k8s.io") == 0 && strcmp(rt->plural, "events") == 0;
}

static void rename_fields(json_object *obj, int to_core)
{
  for (size_t i = 0; i < sizeof event_fields / sizeof event_fields[0]; i++) {
    const char *from = event_fields[i][to_core ? 0 : 1];
    const char *to = event_fields[i][to_core ? 1 : 0];
    json_object *v;
    if (json_object_object_get_ex(obj, from, &v)) {
      json_object_object_add(obj, to, json_object_get(v));
      json_object_object_del(obj, from);
    }
  }
}

void emu_convert_out(const emu_rtype_t *rt, json_object *obj)
{
  char av[300];
  kuala_json_set_str(obj, "apiVersion", emu_api_version(rt, av, sizeof av));
  if (is_events_view(rt)) {
    rename_fields(obj, 0);
  }
}

void emu_convert_in(const emu_rtype_t *rt, json_object *obj)
{
  const emu_rtype_t *st = rt->store->storage ? rt->store->storage : rt;
  if (st == rt) {
    return;
  }
  if (is_events_view(rt)) {
    rename_fields(obj, 1);
  }
  char av[300];
  kuala_json_set_str(obj, "apiVersion", emu_api_version(st, av, sizeof av));
  kuala_json_set_str(obj, "kind", st->kind);
}
