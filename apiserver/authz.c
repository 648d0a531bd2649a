/*
 * authz.c: static tokens, request attributes and the RBAC decision (see
 * authz.h). No emulator state: auth.c feeds it the request and the stored
 * RBAC objects; the unit tests feed it JSON.
 *
 * The decision follows kube-apiserver's RBAC authorizer: ClusterRoleBindings
 * first, then the RoleBindings of the request's namespace; a binding applies
 * when one of its subjects is the user, one of its groups, or the service
 * account whose user name is system:serviceaccount:<ns>:<name>; a rule
 * allows when its verbs, apiGroups, resources (with "res/sub", "*" and
 * "*\/sub"), resourceNames and nonResourceURLs (exact or "prefix*") match.
 * Members of system:masters are allowed everything. Besides the stored
 * objects, the bootstrap policy kube-apiserver installs is always present:
 * system:public-info-viewer (health and version paths for everyone),
 * system:discovery (discovery and openapi paths for authenticated users),
 * system:basic-user (self subject access reviews for authenticated users),
 * the cluster-admin ClusterRole (not bound to anyone) and the user-facing
 * roles admin, edit and view with the system:aggregate-to-* roles that feed
 * them. Aggregation (the controller-manager's clusterrole-aggregation
 * controller): a ClusterRole with an aggregationRule holds the rules of
 * every ClusterRole whose labels match one of its clusterRoleSelectors;
 * emu_rbac_policy_finish computes that when the policy is built.
 */
#include "authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/json.h"

/* ---- users ---- */

void emu_user_init(emu_user_t *u, const char *name, const char *uid)
{
  memset(u, 0, sizeof *u);
  u->name = kuala_strdup(name ? name : "");
  u->uid = kuala_strdup(uid ? uid : "");
}

int emu_user_in_group(const emu_user_t *u, const char *group)
{
  for (size_t i = 0; i < u->ngroups; i++) {
    if (strcmp(u->groups[i], group) == 0) {
      return 1;
    }
  }
  return 0;
}

void emu_user_add_group(emu_user_t *u, const char *group)
{
  if (emu_user_in_group(u, group)) {
    return;
  }
  u->groups = kuala_realloc(u->groups, (u->ngroups + 1) * sizeof *u->groups);
  u->groups[u->ngroups++] = kuala_strdup(group);
}

void emu_user_copy(emu_user_t *dst, const emu_user_t *src)
{
  emu_user_init(dst, src->name, src->uid);
  for (size_t i = 0; i < src->ngroups; i++) {
    emu_user_add_group(dst, src->groups[i]);
  }
}

void emu_user_free(emu_user_t *u)
{
  for (size_t i = 0; i < u->ngroups; i++) {
    kuala_free(u->groups[i]);
  }
  kuala_free(u->groups);
  kuala_free(u->name);
  kuala_free(u->uid);
  memset(u, 0, sizeof *u);
}

/* ---- token file ---- */

/* One CSV record of `line` (no newline) into fields (owned). Quoted fields
 * may hold commas; "" inside quotes is one quote; leading spaces of a field
 * are dropped (Go's csv.Reader with TrimLeadingSpace). */
static size_t csv_fields(const char *line, char **out, size_t max)
{
  size_t n = 0;
  const char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t') {
      p++;
    }
    char buf[1024];
    size_t len = 0;
    if (*p == '"') {
      p++;
      while (*p) {
        if (*p == '"' && p[1] == '"') {
          p++;
        } else if (*p == '"') {
          p++;
          break;
        }
        if (len + 1 < sizeof buf) {
          buf[len++] = *p;
        }
        p++;
      }
      while (*p && *p != ',') {
        p++;
      }
    } else {
      while (*p && *p != ',') {
        if (len + 1 < sizeof buf) {
          buf[len++] = *p;
        }
        p++;
      }
      while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\r')) {
        len--;
      }
    }
    buf[len] = '\0';
    if (n < max) {
      out[n++] = kuala_strdup(buf);
    }
    if (*p != ',') {
      break;
    }
    p++;
  }
  return n;
}

int emu_tokens_parse(emu_tokens_t *t, const char *text, char *err, size_t errlen)
{
  memset(t, 0, sizeof *t);
  const char *p = text;
  int lineno = 0;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char *line = kuala_memdup(p, len + 1);
    line[len] = '\0';
    p += len + (nl ? 1 : 0);
    lineno++;
    char *f[4] = {NULL, NULL, NULL, NULL};
    size_t n = 0;
    const char *q = line;
    while (*q == ' ' || *q == '\t' || *q == '\r') {
      q++;
    }
    if (*q && *q != '#') {
      n = csv_fields(line, f, 4);
    }
    kuala_free(line);
    if (n == 0) {
      continue;
    }
    if (n < 3 || !f[0][0] || !f[1][0]) {
      snprintf(err, errlen, "line %d: want token,user,uid[,\"group1,group2\"]", lineno);
      for (size_t i = 0; i < n; i++) {
        kuala_free(f[i]);
      }
      emu_tokens_free(t);
      return -1;
    }
    t->v = kuala_realloc(t->v, (t->n + 1) * sizeof *t->v);
    emu_token_t *tok = &t->v[t->n++];
    tok->token = f[0];
    emu_user_init(&tok->user, f[1], f[2]);
    if (n == 4) {
      char *g[64];
      size_t ng = csv_fields(f[3], g, 64);
      for (size_t i = 0; i < ng; i++) {
        if (g[i][0]) {
          emu_user_add_group(&tok->user, g[i]);
        }
        kuala_free(g[i]);
      }
      kuala_free(f[3]);
    }
    kuala_free(f[1]);
    kuala_free(f[2]);
  }
  return 0;
}

const emu_user_t *emu_tokens_find(const emu_tokens_t *t, const char *token)
{
  for (size_t i = 0; i < t->n; i++) {
    if (strcmp(t->v[i].token, token) == 0) {
      return &t->v[i].user;
    }
  }
  return NULL;
}

void emu_tokens_free(emu_tokens_t *t)
{
  for (size_t i = 0; i < t->n; i++) {
    kuala_free(t->v[i].token);
    emu_user_free(&t->v[i].user);
  }
  kuala_free(t->v);
  memset(t, 0, sizeof *t);
}

/* ---- request attributes ---- */

void emu_attrs_from_request(emu_attrs_t *a, const emu_user_t *user, const char *method,
                            const char *path, int watch, const char *fs_name, char *buf,
                            size_t buflen)
{
  memset(a, 0, sizeof *a);
  a->user = user;
  a->path = path;
  snprintf(buf, buflen, "%s", path);
  char *seg[16];
  size_t n = 0;
  for (char *s = buf; *s && n < 16;) {
    while (*s == '/') {
      *s++ = '\0';
    }
    if (!*s) {
      break;
    }
    seg[n++] = s;
    while (*s && *s != '/') {
      s++;
    }
  }
  static const struct {
    const char *method, *verb;
  } plain[] = {{"GET", "get"},   {"POST", "post"},     {"PUT", "put"},        {"PATCH", "patch"},
               {"HEAD", "head"}, {"DELETE", "delete"}, {"OPTIONS", "options"}};
  a->verb = "get";
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
    if (strcmp(method, plain[i].method) == 0) {
      a->verb = plain[i].verb;
    }
  }
  size_t i;
  if (n >= 3 && strcmp(seg[0], "api") == 0) {
    a->group = "";
    a->version = seg[1];
    i = 2;
  } else if (n >= 4 && strcmp(seg[0], "apis") == 0) {
    a->group = seg[1];
    a->version = seg[2];
    i = 3;
  } else {
    return; /* non-resource: discovery, version, health, openapi */
  }
  a->resource_request = 1;
  a->ns = "";
  char **p = seg + i;
  size_t m = n - i;
  if (strcmp(p[0], "namespaces") == 0 && m >= 2) {
    a->ns = p[1];
    if (m > 2 && strcmp(p[2], "status") != 0 && strcmp(p[2], "finalize") != 0) {
      p += 2;
      m -= 2;
    }
  }
  a->resource = p[0];
  a->name = m >= 2 ? p[1] : "";
  a->subresource = m >= 3 ? p[2] : "";
  if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
    a->verb = m >= 2 ? "get" : "list";
    if (watch) {
      a->verb = "watch";
    }
  } else if (strcmp(method, "POST") == 0) {
    a->verb = "create";
  } else if (strcmp(method, "PUT") == 0) {
    a->verb = "update";
  } else if (strcmp(method, "PATCH") == 0) {
    a->verb = "patch";
  } else if (strcmp(method, "DELETE") == 0) {
    a->verb = m >= 2 ? "delete" : "deletecollection";
  }
  if (m == 1 && fs_name && (strcmp(a->verb, "list") == 0 || strcmp(a->verb, "watch") == 0)) {
    a->name = fs_name;
  }
}

/* ---- the bootstrap policy ---- */

static const char bootstrap_roles[] =
    "[{\"metadata\":{\"name\":\"system:public-info-viewer\"},\"rules\":[{\"verbs\":[\"get\"],"
    "\"nonResourceURLs\":[\"/healthz\",\"/livez\",\"/readyz\",\"/version\",\"/version/\"]}]},"
    "{\"metadata\":{\"name\":\"system:discovery\"},\"rules\":[{\"verbs\":[\"get\"],"
    "\"nonResourceURLs\":[\"/api\",\"/api/*\",\"/apis\",\"/apis/*\",\"/healthz\",\"/livez\","
    "\"/openapi\",\"/openapi/*\",\"/readyz\",\"/version\",\"/version/\"]}]},"
    "{\"metadata\":{\"name\":\"system:basic-user\"},\"rules\":[{\"verbs\":[\"create\"],"
    "\"apiGroups\":[\"authorization.k8s.io\"],\"resources\":[\"selfsubjectaccessreviews\","
    "\"selfsubjectrulesreviews\"]}]},"
    "{\"metadata\":{\"name\":\"cluster-admin\"},\"rules\":[{\"verbs\":[\"*\"],\"apiGroups\":[\"*\"]"
    ","
    "\"resources\":[\"*\"]},{\"verbs\":[\"*\"],\"nonResourceURLs\":[\"*\"]}]}]";

/* The user-facing roles: admin, edit and view have no rules of their own;
 * they aggregate the roles labelled aggregate-to-<name>, among them the
 * system:aggregate-to-* roles below (which say what each grants on the
 * built-in resources, as upstream's bootstrap policy does) and, through
 * their own labels, each other (view's rules reach edit, edit's reach
 * admin). A CRD's author labels a ClusterRole aggregate-to-edit and every
 * `edit` (and `admin`) binding covers the new resource. */
#define AGG "rbac.authorization.k8s.io/aggregate-to-"
#define READ "[\"get\",\"list\",\"watch\"]"
#define WRITE "[\"create\",\"delete\",\"deletecollection\",\"patch\",\"update\"]"
static const char *const user_facing_roles[] = {
    /* aggregated */
    "{\"metadata\":{\"name\":\"admin\"},\"aggregationRule\":{\"clusterRoleSelectors\":["
    "{\"matchLabels\":{\"" AGG "admin\":\"true\"}}]},\"rules\":[]}",
    "{\"metadata\":{\"name\":\"edit\",\"labels\":{\"" AGG
    "admin\":\"true\"}},"
    "\"aggregationRule\":{\"clusterRoleSelectors\":[{\"matchLabels\":{\"" AGG
    "edit\":\"true\"}}]},\"rules\":[]}",
    "{\"metadata\":{\"name\":\"view\",\"labels\":{\"" AGG
    "edit\":\"true\"}},"
    "\"aggregationRule\":{\"clusterRoleSelectors\":[{\"matchLabels\":{\"" AGG
    "view\":\"true\"}}]},\"rules\":[]}",
    /* admin: RBAC inside the namespace, access reviews */
    "{\"metadata\":{\"name\":\"system:aggregate-to-admin\",\"labels\":{\"" AGG
    "admin\":\"true\"}},\"rules\":["
    "{\"apiGroups\":[\"authorization.k8s.io\"],\"resources\":[\"localsubjectaccessreviews\"],"
    "\"verbs\":[\"create\"]},"
    "{\"apiGroups\":[\"rbac.authorization.k8s.io\"],\"resources\":[\"rolebindings\","
    "\"roles\"],\"verbs\":[\"create\",\"delete\",\"deletecollection\",\"get\",\"list\","
    "\"patch\",\"update\",\"watch\"]}]}",
    /* edit: write the workloads and their configuration, secrets included */
    "{\"metadata\":{\"name\":\"system:aggregate-to-edit\",\"labels\":{\"" AGG
    "admin\":\"true\",\"" AGG
    "edit\":\"true\"}},\"rules\":["
    "{\"apiGroups\":[\"\"],\"resources\":[\"pods/attach\",\"pods/exec\",\"pods/portforward\","
    "\"pods/proxy\",\"secrets\",\"services/proxy\"],\"verbs\":" READ
    "},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"serviceaccounts\"],\"verbs\":[\"impersonate\"]},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"pods\",\"pods/attach\",\"pods/exec\","
    "\"pods/portforward\",\"pods/proxy\"],\"verbs\":" WRITE
    "},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"pods/eviction\"],\"verbs\":[\"create\"]},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"configmaps\",\"events\",\"persistentvolumeclaims\","
    "\"replicationcontrollers\",\"replicationcontrollers/scale\",\"secrets\",\"serviceaccounts\","
    "\"services\",\"services/proxy\"],\"verbs\":" WRITE
    "},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"serviceaccounts/token\"],\"verbs\":[\"create\"]},"
    "{\"apiGroups\":[\"apps\"],\"resources\":[\"daemonsets\",\"deployments\","
    "\"deployments/rollback\",\"deployments/scale\",\"replicasets\",\"replicasets/scale\","
    "\"statefulsets\",\"statefulsets/scale\"],\"verbs\":" WRITE
    "},"
    "{\"apiGroups\":[\"autoscaling\"],\"resources\":[\"horizontalpodautoscalers\"],"
    "\"verbs\":" WRITE
    "},"
    "{\"apiGroups\":[\"batch\"],\"resources\":[\"cronjobs\",\"jobs\"],\"verbs\":" WRITE
    "},"
    "{\"apiGroups\":[\"policy\"],\"resources\":[\"poddisruptionbudgets\"],\"verbs\":" WRITE
    "},"
    "{\"apiGroups\":[\"networking.k8s.io\"],\"resources\":[\"ingresses\",\"networkpolicies\"],"
    "\"verbs\":" WRITE "}]}",
    /* view: read everything but secrets */
    "{\"metadata\":{\"name\":\"system:aggregate-to-view\",\"labels\":{\"" AGG
    "admin\":\"true\",\"" AGG "edit\":\"true\",\"" AGG
    "view\":\"true\"}},\"rules\":["
    "{\"apiGroups\":[\"\"],\"resources\":[\"configmaps\",\"endpoints\",\"persistentvolumeclaims\","
    "\"persistentvolumeclaims/status\",\"pods\",\"replicationcontrollers\","
    "\"replicationcontrollers/scale\",\"serviceaccounts\",\"services\",\"services/status\","
    "\"bindings\",\"events\",\"limitranges\",\"namespaces/status\",\"pods/log\",\"pods/status\","
    "\"replicationcontrollers/status\",\"resourcequotas\",\"resourcequotas/status\","
    "\"namespaces\"],\"verbs\":" READ
    "},"
    "{\"apiGroups\":[\"discovery.k8s.io\"],\"resources\":[\"endpointslices\"],\"verbs\":" READ
    "},"
    "{\"apiGroups\":[\"apps\"],\"resources\":[\"controllerrevisions\",\"daemonsets\","
    "\"daemonsets/status\",\"deployments\",\"deployments/scale\",\"deployments/status\","
    "\"replicasets\",\"replicasets/scale\",\"replicasets/status\",\"statefulsets\","
    "\"statefulsets/scale\",\"statefulsets/status\"],\"verbs\":" READ
    "},"
    "{\"apiGroups\":[\"autoscaling\"],\"resources\":[\"horizontalpodautoscalers\","
    "\"horizontalpodautoscalers/status\"],\"verbs\":" READ
    "},"
    "{\"apiGroups\":[\"batch\"],\"resources\":[\"cronjobs\",\"cronjobs/status\",\"jobs\","
    "\"jobs/status\"],\"verbs\":" READ
    "},"
    "{\"apiGroups\":[\"policy\"],\"resources\":[\"poddisruptionbudgets\","
    "\"poddisruptionbudgets/status\"],\"verbs\":" READ
    "},"
    "{\"apiGroups\":[\"networking.k8s.io\"],\"resources\":[\"ingresses\",\"ingresses/status\","
    "\"networkpolicies\"],\"verbs\":" READ "}]}"};
#undef AGG
#undef READ
#undef WRITE

static const char bootstrap_bindings[] =
    "[{\"metadata\":{\"name\":\"system:public-info-viewer\"},\"roleRef\":{\"kind\":\"ClusterRole\","
    "\"name\":\"system:public-info-viewer\"},\"subjects\":[{\"kind\":\"Group\",\"name\":"
    "\"system:authenticated\"},{\"kind\":\"Group\",\"name\":\"system:unauthenticated\"}]},"
    "{\"metadata\":{\"name\":\"system:discovery\"},\"roleRef\":{\"kind\":\"ClusterRole\","
    "\"name\":\"system:discovery\"},\"subjects\":[{\"kind\":\"Group\",\"name\":"
    "\"system:authenticated\"}]},"
    "{\"metadata\":{\"name\":\"system:basic-user\"},\"roleRef\":{\"kind\":\"ClusterRole\","
    "\"name\":\"system:basic-user\"},\"subjects\":[{\"kind\":\"Group\",\"name\":"
    "\"system:authenticated\"}]}]";

static const emu_policy_t *bootstrap(void)
{
  static emu_policy_t p;
  static int done;
  if (!done) {
    p.cluster_roles = json_tokener_parse(bootstrap_roles);
    for (size_t i = 0; i < sizeof user_facing_roles / sizeof user_facing_roles[0]; i++) {
      json_object_array_add(p.cluster_roles, json_tokener_parse(user_facing_roles[i]));
    }
    p.cluster_role_bindings = json_tokener_parse(bootstrap_bindings);
    done = 1;
  }
  return &p;
}

/* ---- rules ---- */

static const char *str_at(json_object *o, const char *key)
{
  json_object *v;
  if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) {
    return "";
  }
  return json_object_get_string(v);
}

static json_object *arr_at(json_object *o, const char *key)
{
  json_object *v;
  if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array)) {
    return NULL;
  }
  return v;
}

/* arr holds s or "*" (star: whether "*" counts). */
static int has(json_object *arr, const char *s, int star)
{
  size_t n = arr ? json_object_array_length(arr) : 0;
  for (size_t i = 0; i < n; i++) {
    const char *x = json_object_get_string(json_object_array_get_idx(arr, i));
    if (x && (strcmp(x, s) == 0 || (star && strcmp(x, "*") == 0))) {
      return 1;
    }
  }
  return 0;
}

static int resource_matches(json_object *arr, const char *res, const char *sub)
{
  char combined[512];
  snprintf(combined, sizeof combined, "%s%s%s", res, *sub ? "/" : "", sub);
  size_t n = arr ? json_object_array_length(arr) : 0;
  for (size_t i = 0; i < n; i++) {
    const char *x = json_object_get_string(json_object_array_get_idx(arr, i));
    if (!x) {
      continue;
    }
    if (strcmp(x, "*") == 0 || strcmp(x, combined) == 0) {
      return 1;
    }
    if (*sub && strncmp(x, "*/", 2) == 0 && strcmp(x + 2, sub) == 0) {
      return 1;
    }
  }
  return 0;
}

static int url_matches(json_object *arr, const char *path)
{
  size_t n = arr ? json_object_array_length(arr) : 0;
  for (size_t i = 0; i < n; i++) {
    const char *x = json_object_get_string(json_object_array_get_idx(arr, i));
    if (!x) {
      continue;
    }
    size_t l = strlen(x);
    if (strcmp(x, "*") == 0 || strcmp(x, path) == 0 ||
        (l > 0 && x[l - 1] == '*' && strncmp(x, path, l - 1) == 0)) {
      return 1;
    }
  }
  return 0;
}

static int rule_allows(json_object *rule, const emu_attrs_t *a)
{
  if (!has(arr_at(rule, "verbs"), a->verb, 1)) {
    return 0;
  }
  if (!a->resource_request) {
    return url_matches(arr_at(rule, "nonResourceURLs"), a->path);
  }
  if (!has(arr_at(rule, "apiGroups"), a->group, 1) ||
      !resource_matches(arr_at(rule, "resources"), a->resource, a->subresource)) {
    return 0;
  }
  json_object *names = arr_at(rule, "resourceNames");
  if (names && json_object_array_length(names) > 0) {
    return a->name && *a->name && has(names, a->name, 0);
  }
  return 1;
}

/* ---- bindings ---- */

static int subject_applies(json_object *s, const emu_user_t *u, const char *binding_ns, char *desc,
                           size_t len)
{
  const char *kind = str_at(s, "kind"), *name = str_at(s, "name");
  if (strcmp(kind, "User") == 0) {
    snprintf(desc, len, "User \"%s\"", name);
    return strcmp(name, u->name) == 0;
  }
  if (strcmp(kind, "Group") == 0) {
    snprintf(desc, len, "Group \"%s\"", name);
    return emu_user_in_group(u, name);
  }
  if (strcmp(kind, "ServiceAccount") == 0) {
    const char *ns = *str_at(s, "namespace") ? str_at(s, "namespace") : binding_ns;
    char want[600];
    snprintf(want, sizeof want, "system:serviceaccount:%s:%s", ns, name);
    snprintf(desc, len, "ServiceAccount \"%s/%s\"", name, ns);
    return strcmp(want, u->name) == 0;
  }
  return 0;
}

static json_object *find_named(json_object *arr, const char *ns, const char *name)
{
  size_t n = arr ? json_object_array_length(arr) : 0;
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_array_get_idx(arr, i);
    json_object *md = NULL;
    json_object_object_get_ex(o, "metadata", &md);
    if (strcmp(str_at(md, "name"), name) == 0 &&
        (!ns || strcmp(str_at(md, "namespace"), ns) == 0)) {
      return o;
    }
  }
  return NULL;
}

/* ---- ClusterRole aggregation ---- */

/* A metav1.LabelSelector (matchLabels, matchExpressions with In, NotIn,
 * Exists, DoesNotExist) against an object's labels; {} matches all. An
 * unknown operator matches nothing. */
static int label_selector_matches(json_object *sel, json_object *labels)
{
  json_object *ml = NULL, *exprs = NULL;
  if (json_object_object_get_ex(sel, "matchLabels", &ml) &&
      json_object_is_type(ml, json_type_object)) {
    json_object_object_foreach(ml, k, v)
    {
      if (strcmp(str_at(labels, k), json_object_get_string(v)) != 0 ||
          !json_object_object_get_ex(labels, k, NULL)) {
        return 0;
      }
    }
  }
  exprs = arr_at(sel, "matchExpressions");
  for (size_t i = 0; exprs && i < json_object_array_length(exprs); i++) {
    json_object *e = json_object_array_get_idx(exprs, i);
    const char *key = str_at(e, "key"), *op = str_at(e, "operator");
    json_object *have = NULL;
    int present = json_object_object_get_ex(labels, key, &have);
    int in = 0;
    json_object *vals = arr_at(e, "values");
    for (size_t k = 0; present && vals && k < json_object_array_length(vals); k++) {
      in |= strcmp(json_object_get_string(json_object_array_get_idx(vals, k)),
                   json_object_get_string(have)) == 0;
    }
    int ok = strcmp(op, "In") == 0             ? in
             : strcmp(op, "NotIn") == 0        ? !in
             : strcmp(op, "Exists") == 0       ? present
             : strcmp(op, "DoesNotExist") == 0 ? !present
                                               : 0;
    if (!ok) {
      return 0;
    }
  }
  return 1;
}

/* The rules an aggregated role `r` holds now: those of every other role of
 * `roles` whose labels match one of its selectors, each rule once. A new
 * array. */
static json_object *aggregate_rules(json_object *roles, json_object *r, json_object *selectors)
{
  json_object *out = json_object_new_array();
  size_t n = json_object_array_length(roles);
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_array_get_idx(roles, i);
    json_object *md = NULL, *labels = NULL;
    json_object_object_get_ex(o, "metadata", &md);
    json_object_object_get_ex(md, "labels", &labels);
    int match = 0;
    for (size_t k = 0; o != r && !match && k < json_object_array_length(selectors); k++) {
      match = label_selector_matches(json_object_array_get_idx(selectors, k), labels);
    }
    json_object *rules = match ? arr_at(o, "rules") : NULL;
    for (size_t k = 0; rules && k < json_object_array_length(rules); k++) {
      json_object *rule = json_object_array_get_idx(rules, k);
      int dup = 0;
      for (size_t j = 0; !dup && j < json_object_array_length(out); j++) {
        dup = json_object_equal(json_object_array_get_idx(out, j), rule);
      }
      if (!dup) {
        json_object *copy = NULL;
        json_object_deep_copy(rule, &copy, NULL);
        json_object_array_add(out, copy);
      }
    }
  }
  return out;
}

void emu_rbac_policy_finish(emu_policy_t *p)
{
  if (!p->cluster_roles) {
    p->cluster_roles = json_object_new_array();
  }
  /* The bootstrap roles, unless a stored one of the same name replaces it. */
  json_object *boot = bootstrap()->cluster_roles;
  for (size_t i = 0; i < json_object_array_length(boot); i++) {
    json_object *b = json_object_array_get_idx(boot, i), *md = NULL;
    json_object_object_get_ex(b, "metadata", &md);
    if (!find_named(p->cluster_roles, NULL, str_at(md, "name"))) {
      json_object *copy = NULL;
      json_object_deep_copy(b, &copy, NULL);
      json_object_array_add(p->cluster_roles, copy);
    }
  }
  /* Aggregated roles may feed each other (view into edit into admin): repeat
   * until nothing changes, as the controller converges over its passes. A
   * cycle of roles that keep growing is bounded by the pass count. */
  size_t n = json_object_array_length(p->cluster_roles);
  for (int pass = 0; pass < 8; pass++) {
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
      json_object *r = json_object_array_get_idx(p->cluster_roles, i), *agg = NULL;
      if (!json_object_object_get_ex(r, "aggregationRule", &agg)) {
        continue;
      }
      json_object *selectors = arr_at(agg, "clusterRoleSelectors");
      if (!selectors) {
        continue;
      }
      json_object *rules = aggregate_rules(p->cluster_roles, r, selectors);
      if (json_object_equal(rules, arr_at(r, "rules"))) {
        json_object_put(rules);
        continue;
      }
      json_object_object_add(r, "rules", rules);
      changed = 1;
    }
    if (!changed) {
      break;
    }
  }
}

typedef struct {
  const emu_policy_t *p;
  const emu_attrs_t *a;
  char *reason;
  size_t len;
  char errors[512]; /* missing roles, as RBAC reports them */
} visit_t;

static void add_error(visit_t *v, const char *fmt, const char *name, const char *ns)
{
  char one[300];
  snprintf(one, sizeof one, fmt, name, ns);
  size_t l = strlen(v->errors);
  snprintf(v->errors + l, sizeof v->errors - l, "%s%s", l ? ", " : "", one);
}

/* 1 when a binding of `arr` (namespace ns for RoleBindings, NULL for
 * ClusterRoleBindings) grants the request. */
static int visit_bindings(visit_t *v, json_object *arr, const char *ns)
{
  size_t n = arr ? json_object_array_length(arr) : 0;
  for (size_t i = 0; i < n; i++) {
    json_object *b = json_object_array_get_idx(arr, i);
    json_object *md = NULL, *ref = NULL;
    json_object_object_get_ex(b, "metadata", &md);
    json_object_object_get_ex(b, "roleRef", &ref);
    const char *bns = str_at(md, "namespace");
    if (ns && strcmp(bns, ns) != 0) {
      continue;
    }
    json_object *subjects = arr_at(b, "subjects");
    char desc[700] = "";
    int applies = 0;
    for (size_t k = 0; subjects && k < json_object_array_length(subjects) && !applies; k++) {
      applies = subject_applies(json_object_array_get_idx(subjects, k), v->a->user, bns, desc,
                                sizeof desc);
    }
    if (!applies) {
      continue;
    }
    const char *rkind = str_at(ref, "kind"), *rname = str_at(ref, "name");
    json_object *role;
    if (strcmp(rkind, "Role") == 0 && ns) {
      role = find_named(v->p->roles, ns, rname);
      if (!role) {
        add_error(v, "role.rbac.authorization.k8s.io \"%s\" not found", rname, ns);
        continue;
      }
    } else {
      role = find_named(v->p->cluster_roles, NULL, rname);
      if (!role) {
        role = find_named(bootstrap()->cluster_roles, NULL, rname);
      }
      if (!role) {
        add_error(v, "clusterrole.rbac.authorization.k8s.io \"%s\" not found", rname, "");
        continue;
      }
    }
    json_object *rules = arr_at(role, "rules");
    for (size_t k = 0; rules && k < json_object_array_length(rules); k++) {
      if (rule_allows(json_object_array_get_idx(rules, k), v->a)) {
        const char *bname = str_at(md, "name");
        if (ns) {
          snprintf(v->reason, v->len, "RBAC: allowed by RoleBinding \"%s/%s\" of %s \"%s\" to %s",
                   bname, ns, rkind, rname, desc);
        } else {
          snprintf(v->reason, v->len,
                   "RBAC: allowed by ClusterRoleBinding \"%s\" of %s \"%s\" to %s", bname, rkind,
                   rname, desc);
        }
        return 1;
      }
    }
  }
  return 0;
}

int emu_rbac_authorize(const emu_policy_t *p, const emu_attrs_t *a, char *reason, size_t len)
{
  reason[0] = '\0';
  if (emu_user_in_group(a->user, "system:masters")) {
    return 1;
  }
  static const emu_policy_t empty = {NULL, NULL, NULL, NULL};
  if (!p) {
    p = &empty;
  }
  visit_t v = {.p = p, .a = a, .reason = reason, .len = len};
  if (visit_bindings(&v, bootstrap()->cluster_role_bindings, NULL) ||
      visit_bindings(&v, p->cluster_role_bindings, NULL)) {
    return 1;
  }
  if (a->resource_request && a->ns && *a->ns && visit_bindings(&v, p->role_bindings, a->ns)) {
    return 1;
  }
  if (v.errors[0]) {
    snprintf(reason, len, "RBAC: %s%s%s", strchr(v.errors, ',') ? "[" : "", v.errors,
             strchr(v.errors, ',') ? "]" : "");
  }
  return 0;
}

void emu_forbidden_message(const emu_attrs_t *a, const char *reason, char *out, size_t len)
{
  char msg[1200];
  const char *user = a->user ? a->user->name : "";
  if (!a->resource_request) {
    snprintf(msg, sizeof msg, "User \"%s\" cannot %s path \"%s\"", user, a->verb, a->path);
  } else {
    char res[300];
    snprintf(res, sizeof res, "%s%s%s", a->resource, *a->subresource ? "/" : "", a->subresource);
    if (a->ns && *a->ns) {
      snprintf(msg, sizeof msg,
               "User \"%s\" cannot %s resource \"%s\" in API group \"%s\" in the namespace \"%s\"",
               user, a->verb, res, a->group, a->ns);
    } else {
      snprintf(msg, sizeof msg,
               "User \"%s\" cannot %s resource \"%s\" in API group \"%s\" at the cluster scope",
               user, a->verb, res, a->group);
    }
  }
  char full[1500];
  snprintf(full, sizeof full, "%s%s%s", msg, reason && *reason ? ": " : "", reason ? reason : "");
  if (!a->resource_request || !a->resource || !*a->resource) {
    snprintf(out, len, "forbidden: %s", full);
    return;
  }
  char gr[300];
  snprintf(gr, sizeof gr, "%s%s%s", a->resource, *a->group ? "." : "", a->group);
  if (a->name && *a->name) {
    snprintf(out, len, "%s \"%s\" is forbidden: %s", gr, a->name, full);
  } else {
    snprintf(out, len, "%s is forbidden: %s", gr, full);
  }
}

/* ---- escalation prevention (RBAC's registry checks) ---- */

json_object *emu_rbac_role_rules(const emu_policy_t *p, const char *kind, const char *name,
                                 const char *ns)
{
  json_object *role = NULL;
  if (strcmp(kind, "Role") == 0) {
    role = p ? find_named(p->roles, ns, name) : NULL;
  } else if (strcmp(kind, "ClusterRole") == 0) {
    role = p ? find_named(p->cluster_roles, NULL, name) : NULL;
    if (!role) {
      role = find_named(bootstrap()->cluster_roles, NULL, name);
    }
  }
  if (!role) {
    return NULL;
  }
  json_object *rules = arr_at(role, "rules");
  static json_object *none;
  if (!rules) {
    if (!none) {
      none = json_object_new_array();
    }
    rules = none;
  }
  return rules;
}

/* Append `"a" "b"` (Go's %q of a []string) of arr to b. */
static void quote_list(kuala_buf_t *b, const char *const *v, size_t n)
{
  kuala_buf_putc(b, '[');
  for (size_t i = 0; i < n; i++) {
    kuala_buf_printf(b, "%s\"%s\"", i ? " " : "", v[i]);
  }
  kuala_buf_putc(b, ']');
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One missing right, with the verbs missing on it merged (RBAC compacts
 * rules that differ only in verbs the same way). */
typedef struct {
  const char *group, *resource, *name, *url; /* borrowed from the rules */
  const char *verbs[16];
  size_t nverbs;
} missing_t;

static void add_missing(missing_t **v, size_t *n, const char *group, const char *resource,
                        const char *name, const char *url, const char *verb)
{
  for (size_t i = 0; i < *n; i++) {
    missing_t *m = &(*v)[i];
    if (((!m->group && !group) || (m->group && group && strcmp(m->group, group) == 0)) &&
        ((!m->resource && !resource) ||
         (m->resource && resource && strcmp(m->resource, resource) == 0)) &&
        ((!m->name && !name) || (m->name && name && strcmp(m->name, name) == 0)) &&
        ((!m->url && !url) || (m->url && url && strcmp(m->url, url) == 0))) {
      if (m->nverbs < sizeof m->verbs / sizeof m->verbs[0]) {
        m->verbs[m->nverbs++] = verb;
      }
      return;
    }
  }
  *v = kuala_realloc(*v, (*n + 1) * sizeof **v);
  (*v)[(*n)++] = (missing_t){group, resource, name, url, {verb}, 1};
}

int emu_rbac_covers(const emu_policy_t *p, const emu_user_t *u, const char *ns, json_object *rules,
                    char *msg, size_t len)
{
  if (msg && len) {
    msg[0] = '\0';
  }
  if (emu_user_in_group(u, "system:masters")) {
    return 1;
  }
  missing_t *miss = NULL;
  size_t nmiss = 0;
  size_t nr =
      rules && json_object_is_type(rules, json_type_array) ? json_object_array_length(rules) : 0;
  char reason[1024];
  for (size_t r = 0; r < nr; r++) {
    json_object *rule = json_object_array_get_idx(rules, r);
    json_object *verbs = arr_at(rule, "verbs"), *urls = arr_at(rule, "nonResourceURLs");
    json_object *groups = arr_at(rule, "apiGroups"), *res = arr_at(rule, "resources");
    json_object *names = arr_at(rule, "resourceNames");
    size_t nv = verbs ? json_object_array_length(verbs) : 0;
    for (size_t v = 0; v < nv; v++) {
      const char *verb = json_object_get_string(json_object_array_get_idx(verbs, v));
      if (!verb) {
        continue;
      }
      /* Non-resource URLs: held cluster-wide only. */
      for (size_t k = 0; urls && k < json_object_array_length(urls); k++) {
        const char *url = json_object_get_string(json_object_array_get_idx(urls, k));
        emu_attrs_t a = {.user = u, .verb = verb, .path = url ? url : ""};
        if (url && !emu_rbac_authorize(p, &a, reason, sizeof reason)) {
          add_missing(&miss, &nmiss, NULL, NULL, NULL, url, verb);
        }
      }
      size_t ng = groups ? json_object_array_length(groups) : 0;
      size_t nres = res ? json_object_array_length(res) : 0;
      size_t nn = names ? json_object_array_length(names) : 0;
      for (size_t g = 0; g < ng; g++) {
        const char *group = json_object_get_string(json_object_array_get_idx(groups, g));
        for (size_t k = 0; group && k < nres; k++) {
          const char *full = json_object_get_string(json_object_array_get_idx(res, k));
          if (!full) {
            continue;
          }
          char resource[256];
          const char *slash = strchr(full, '/');
          snprintf(resource, sizeof resource, "%.*s", (int)(slash ? slash - full : 255), full);
          for (size_t m = 0; m < (nn ? nn : 1); m++) {
            const char *name =
                nn ? json_object_get_string(json_object_array_get_idx(names, m)) : "";
            emu_attrs_t a = {.user = u,
                             .verb = verb,
                             .resource_request = 1,
                             .group = group,
                             .version = "",
                             .resource = resource,
                             .subresource = slash ? slash + 1 : "",
                             .ns = ns ? ns : "",
                             .name = name ? name : ""};
            if (!emu_rbac_authorize(p, &a, reason, sizeof reason)) {
              add_missing(&miss, &nmiss, group, full, nn ? name : NULL, NULL, verb);
            }
          }
        }
      }
    }
  }
  if (nmiss == 0) {
    return 1;
  }
  if (msg && len) {
    /* kube-apiserver: user "u" (groups=["a" "b"]) is attempting to grant
     * RBAC permissions not currently held:\n{APIGroups:[""], ...} one per
     * line, sorted. */
    char **lines = kuala_calloc(nmiss, sizeof *lines);
    for (size_t i = 0; i < nmiss; i++) {
      missing_t *m = &miss[i];
      kuala_buf_t b = KUALA_BUF_INIT(0);
      kuala_buf_putc(&b, '{');
      if (m->url) {
        kuala_buf_puts(&b, "NonResourceURLs:");
        quote_list(&b, &m->url, 1);
      } else {
        kuala_buf_puts(&b, "APIGroups:");
        quote_list(&b, &m->group, 1);
        kuala_buf_puts(&b, ", Resources:");
        quote_list(&b, &m->resource, 1);
        if (m->name) {
          kuala_buf_puts(&b, ", ResourceNames:");
          quote_list(&b, &m->name, 1);
        }
      }
      kuala_buf_puts(&b, ", Verbs:");
      quote_list(&b, m->verbs, m->nverbs);
      kuala_buf_putc(&b, '}');
      lines[i] = kuala_buf_take(&b, NULL);
    }
    qsort(lines, nmiss, sizeof *lines, cmp_str);
    kuala_buf_t out = KUALA_BUF_INIT(0);
    kuala_buf_printf(&out, "user \"%s\" (groups=", u->name);
    quote_list(&out, (const char *const *)u->groups, u->ngroups);
    kuala_buf_puts(&out, ") is attempting to grant RBAC permissions not currently held:");
    for (size_t i = 0; i < nmiss; i++) {
      kuala_buf_printf(&out, "\n%s", lines[i]);
      kuala_free(lines[i]);
    }
    kuala_free(lines);
    snprintf(msg, len, "%.*s", (int)out.len, out.data ? out.data : "");
    kuala_buf_free(&out);
  }
  kuala_free(miss);
  return 0;
}
