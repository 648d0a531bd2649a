/*
 * cmd_rbac.c: `kuala rbac DIR...`, least-privilege RBAC for bundles.
 *
 * Loads each bundle offline (as `kuala crd` does), takes its permission set
 * (kuala/permissions.h: what its controllers imply plus kuala.permissions)
 * and prints YAML for kubectl apply:
 *
 *   default             one ServiceAccount for the engine, a ClusterRole with
 *                       every bundle's rules plus what the engine needs
 *                       cluster-wide (CRDs: get, list, watch, create, patch;
 *                       Events), a Role in --namespace for what it needs
 *                       there (Leases; the bundle ConfigMaps: get, list,
 *                       watch), and their bindings;
 *   --impersonate-bundles
 *                       the engine keeps CRDs, Events, list + watch of every
 *                       type its informers serve, and may impersonate the
 *                       bundles' ServiceAccounts; each bundle gets its own
 *                       ServiceAccount kuala-<bundle>, ClusterRole and
 *                       ClusterRoleBinding with its rules.
 *
 * Kinds become resources through the CRDs the bundles declare, a table of
 * built-in kinds, and otherwise the usual English plural of the lower-cased
 * kind (what kubectl and kubebuilder guess). Output is sorted (API group,
 * resource, names) and carries no timestamp, so a test can diff committed
 * RBAC against a fresh generation.
 */
#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/permissions.h"
#include "kuala/runtime.h"
#include "cmd_rbac.h"
#include "cmd_crd.h"
#include "flags.h"

/* ---- kinds to resources ---- */

typedef struct {
  char *group, *kind, *plural;
} plural_t;

static plural_t *crd_plurals;
static size_t ncrd_plurals;

static const struct {
  const char *group, *kind, *plural;
} builtin_plurals[] = {
    {"", "ConfigMap", "configmaps"},
    {"", "Endpoints", "endpoints"},
    {"", "Event", "events"},
    {"", "Namespace", "namespaces"},
    {"", "Node", "nodes"},
    {"", "PersistentVolume", "persistentvolumes"},
    {"", "PersistentVolumeClaim", "persistentvolumeclaims"},
    {"", "Pod", "pods"},
    {"", "Secret", "secrets"},
    {"", "Service", "services"},
    {"", "ServiceAccount", "serviceaccounts"},
    {"apps", "DaemonSet", "daemonsets"},
    {"apps", "Deployment", "deployments"},
    {"apps", "ReplicaSet", "replicasets"},
    {"apps", "StatefulSet", "statefulsets"},
    {"autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers"},
    {"batch", "CronJob", "cronjobs"},
    {"batch", "Job", "jobs"},
    {"coordination.k8s.io", "Lease", "leases"},
    {"discovery.k8s.io", "EndpointSlice", "endpointslices"},
    {"events.k8s.io", "Event", "events"},
    {"networking.k8s.io", "Ingress", "ingresses"},
    {"networking.k8s.io", "NetworkPolicy", "networkpolicies"},
    {"policy", "PodDisruptionBudget", "poddisruptionbudgets"},
    {"rbac.authorization.k8s.io", "ClusterRole", "clusterroles"},
    {"rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings"},
    {"rbac.authorization.k8s.io", "Role", "roles"},
    {"rbac.authorization.k8s.io", "RoleBinding", "rolebindings"},
    {"apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions"},
    {"storage.k8s.io", "StorageClass", "storageclasses"},
};

static void remember_crds(kuala_bundle_t *b)
{
  char *json = NULL;
  size_t len = 0;
  json_object *arr = NULL;
  if (kuala_bundle_crds_json(b, &json, &len) != 0 ||
      kuala_json_parse(&arr, json, len, NULL, 0) != 0) {
    kuala_free(json);
    return;
  }
  kuala_free(json);
  for (size_t i = 0; json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr);
       i++) {
    json_object *crd = json_object_array_get_idx(arr, i);
    const char *g = kuala_json_path_str(crd, "spec.group");
    const char *k = kuala_json_path_str(crd, "spec.names.kind");
    const char *p = kuala_json_path_str(crd, "spec.names.plural");
    if (g && k && p) {
      crd_plurals = kuala_realloc(crd_plurals, (ncrd_plurals + 1) * sizeof *crd_plurals);
      crd_plurals[ncrd_plurals++] = (plural_t){kuala_strdup(g), kuala_strdup(k), kuala_strdup(p)};
    }
  }
  json_object_put(arr);
}

static void plural_of(const char *group, const char *kind, char *out, size_t len)
{
  for (size_t i = 0; i < ncrd_plurals; i++) {
    if (strcmp(crd_plurals[i].group, group) == 0 && strcmp(crd_plurals[i].kind, kind) == 0) {
      snprintf(out, len, "%s", crd_plurals[i].plural);
      return;
    }
  }
  for (size_t i = 0; i < sizeof builtin_plurals / sizeof builtin_plurals[0]; i++) {
    if (strcmp(builtin_plurals[i].group, group) == 0 &&
        strcmp(builtin_plurals[i].kind, kind) == 0) {
      snprintf(out, len, "%s", builtin_plurals[i].plural);
      return;
    }
  }
  char low[256];
  size_t n = 0;
  for (; kind[n] && n + 1 < sizeof low; n++) {
    low[n] = (char)tolower((unsigned char)kind[n]);
  }
  low[n] = '\0';
  char last = n ? low[n - 1] : '\0';
  char before = n > 1 ? low[n - 2] : '\0';
  if (last == 'y' && !strchr("aeiou", before)) {
    low[n - 1] = '\0';
    snprintf(out, len, "%sies", low);
  } else if (last == 's' || last == 'x' || last == 'z' ||
             (last == 'h' && (before == 'c' || before == 's'))) {
    snprintf(out, len, "%ses", low);
  } else {
    snprintf(out, len, "%ss", low);
  }
}

/* ---- rules ---- */

typedef struct {
  char *group, *resource, *names; /* names: comma-joined, "" = any */
  unsigned verbs;
  int impersonate; /* the `impersonate` verb (not in the KUALA_VERB_* bits) */
} rule_t;

typedef struct {
  rule_t *v;
  size_t n;
} rules_t;

static void rules_add(rules_t *r, const char *group, const char *resource, const char *names,
                      unsigned verbs, int impersonate)
{
  for (size_t i = 0; i < r->n; i++) {
    rule_t *x = &r->v[i];
    if (strcmp(x->group, group) == 0 && strcmp(x->resource, resource) == 0 &&
        strcmp(x->names, names) == 0) {
      x->verbs |= verbs;
      x->impersonate |= impersonate;
      return;
    }
  }
  r->v = kuala_realloc(r->v, (r->n + 1) * sizeof *r->v);
  r->v[r->n++] = (rule_t){kuala_strdup(group), kuala_strdup(resource), kuala_strdup(names), verbs,
                          impersonate};
}

static void rules_free(rules_t *r)
{
  for (size_t i = 0; i < r->n; i++) {
    kuala_free(r->v[i].group);
    kuala_free(r->v[i].resource);
    kuala_free(r->v[i].names);
  }
  kuala_free(r->v);
  r->v = NULL;
  r->n = 0;
}

static int rule_cmp(const void *a, const void *b)
{
  const rule_t *x = a, *y = b;
  int c = strcmp(x->group, y->group);
  if (!c) {
    c = strcmp(x->resource, y->resource);
  }
  return c ? c : strcmp(x->names, y->names);
}

/* A bundle's permission set as rules; `reads_only`: list + watch of whole
 * types (what the engine's informers need). */
static void rules_from(rules_t *r, const kuala_permissions_t *p, int reads_only)
{
  for (size_t i = 0; i < kuala_permissions_count(p); i++) {
    const kuala_permission_t *x = kuala_permissions_at(p, i);
    char plural[256], resource[512], names[1024] = "";
    plural_of(x->group, x->kind, plural, sizeof plural);
    snprintf(resource, sizeof resource, "%s%s%s", plural, *x->sub ? "/" : "", x->sub);
    for (size_t k = 0; x->names && x->names[k]; k++) {
      size_t l = strlen(names);
      snprintf(names + l, sizeof names - l, "%s%s", l ? "," : "", x->names[k]);
    }
    unsigned verbs = x->verbs;
    if (reads_only) {
      if (*x->sub || x->names || !(verbs & (KUALA_VERB_LIST | KUALA_VERB_WATCH))) {
        continue;
      }
      verbs = KUALA_VERB_LIST | KUALA_VERB_WATCH;
    }
    rules_add(r, x->group, resource, names, verbs, 0);
  }
}

static void engine_cluster_rules(rules_t *r)
{
  rules_add(
      r, "apiextensions.k8s.io", "customresourcedefinitions", "",
      KUALA_VERB_GET | KUALA_VERB_LIST | KUALA_VERB_WATCH | KUALA_VERB_CREATE | KUALA_VERB_PATCH,
      0);
  rules_add(r, "", "events", "", KUALA_VERB_CREATE | KUALA_VERB_UPDATE | KUALA_VERB_PATCH, 0);
  rules_add(r, "events.k8s.io", "events", "",
            KUALA_VERB_CREATE | KUALA_VERB_UPDATE | KUALA_VERB_PATCH, 0);
}

static void engine_ns_rules(rules_t *r)
{
  rules_add(r, "coordination.k8s.io", "leases", "",
            KUALA_VERB_GET | KUALA_VERB_LIST | KUALA_VERB_WATCH | KUALA_VERB_CREATE |
                KUALA_VERB_UPDATE | KUALA_VERB_PATCH,
            0);
  rules_add(r, "", "configmaps", "", KUALA_VERB_GET | KUALA_VERB_LIST | KUALA_VERB_WATCH, 0);
}

/* ---- YAML ---- */

static void print_list(const char *key, const char *csv)
{
  printf("  %s:\n", key);
  const char *s = csv;
  for (;;) {
    const char *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);
    if (n == 0) {
      printf("  - \"\"\n");
    } else {
      printf("  - %.*s\n", (int)n, s);
    }
    if (!comma) {
      break;
    }
    s = comma + 1;
  }
}

static void print_role(const char *kind, const char *name, const char *ns, rules_t *r)
{
  qsort(r->v, r->n, sizeof *r->v, rule_cmp);
  printf("---\napiVersion: rbac.authorization.k8s.io/v1\nkind: %s\nmetadata:\n  name: %s\n", kind,
         name);
  if (ns) {
    printf("  namespace: %s\n", ns);
  }
  printf("rules:\n");
  for (size_t i = 0; i < r->n; i++) {
    rule_t *x = &r->v[i];
    printf("- apiGroups:\n  - \"%s\"\n  resources:\n  - %s\n", x->group, x->resource);
    if (*x->names) {
      print_list("resourceNames", x->names);
    }
    char verbs[256];
    kuala_verbs_format(x->verbs, verbs, sizeof verbs);
    if (x->impersonate) {
      size_t l = strlen(verbs);
      snprintf(verbs + l, sizeof verbs - l, "%simpersonate", l ? "," : "");
    }
    print_list("verbs", verbs);
  }
}

static void print_sa(const char *name, const char *ns)
{
  printf("---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s\n  namespace: %s\n",
         name, ns);
}

static void print_binding(const char *kind, const char *name, const char *ns, const char *role_kind,
                          const char *sa, const char *sa_ns)
{
  printf("---\napiVersion: rbac.authorization.k8s.io/v1\nkind: %s\nmetadata:\n  name: %s\n", kind,
         name);
  if (ns) {
    printf("  namespace: %s\n", ns);
  }
  printf(
      "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: %s\n  name: %s\n"
      "subjects:\n- kind: ServiceAccount\n  name: %s\n  namespace: %s\n",
      role_kind, name, sa, sa_ns);
}

/* ---- the command ---- */

static void usage(FILE *f)
{
  fprintf(f,
          "usage: kuala rbac [flags] DIR...\n"
          "print least-privilege RBAC (YAML) for the bundles and the engine running them\n"
          "  --namespace=NS            namespace of the ServiceAccounts (default kuala-system)\n"
          "  --service-account=NAME    the engine's ServiceAccount and role names (default kuala)\n"
          "  --impersonate-bundles     one ServiceAccount + ClusterRole per bundle\n"
          "                            (kuala-<bundle>); the engine may impersonate them\n");
}

int kuala__cli_rbac(int argc, char **argv)
{
  const char *ns = "kuala-system", *sa = "kuala";
  int impersonate = 0, bad = 0;
  char **dirs = kuala_calloc((size_t)argc + 1, sizeof *dirs);
  size_t ndirs = 0;
  for (int i = 1; i < argc && !bad; i++) {
    const char *v;
    int m;
    if (kuala__flag_is_help(argv[i])) {
      usage(stdout);
      kuala_free(dirs);
      return 0;
    }
    if ((m = kuala__flag_value(argc, argv, &i, "--namespace", &v)) != 0) {
      bad = m < 0;
      ns = m > 0 && v ? v : ns;
    } else if ((m = kuala__flag_value(argc, argv, &i, "--service-account", &v)) != 0) {
      bad = m < 0;
      sa = m > 0 && v ? v : sa;
    } else if ((m = kuala__flag_bool(argv, i, "--impersonate-bundles", &impersonate)) != 0) {
      bad = m < 0;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "kuala rbac: unknown flag %s\n", argv[i]);
      bad = 1;
    } else {
      dirs[ndirs++] = argv[i];
    }
  }
  if (bad || ndirs == 0) {
    usage(stderr);
    kuala_free(dirs);
    return 2;
  }
  kuala__offline_t off;
  int status = 0;
  int rc = kuala__offline_open(&off);
  if (rc) {
    fprintf(stderr, "kuala rbac: %s\n", kuala_strerror(rc));
    kuala_free(dirs);
    return 1;
  }
  kuala_runtime_t *rt = off.rt;
  kuala_bundle_t **bundles = kuala_calloc(ndirs, sizeof *bundles);
  size_t nb = 0;
  for (size_t i = 0; rt && i < ndirs; i++) {
    char *err = NULL;
    rc = kuala_bundle_load_dir(&bundles[nb], rt, dirs[i], NULL, NULL, &err);
    if (rc) {
      fprintf(stderr, "kuala rbac: %s\n", err ? err : kuala_strerror(rc));
      kuala_free(err);
      status = 1;
      continue;
    }
    remember_crds(bundles[nb++]);
  }
  if (status == 0) {
    printf("# Generated by `kuala rbac%s --namespace %s --service-account %s` from bundles:",
           impersonate ? " --impersonate-bundles" : "", ns, sa);
    for (size_t i = 0; i < nb; i++) {
      printf(" %s", kuala_bundle_name(bundles[i]));
    }
    printf(".\n# Regenerate instead of editing.\n");
    rules_t cluster = {NULL, 0}, local = {NULL, 0};
    engine_cluster_rules(&cluster);
    engine_ns_rules(&local);
    char names[4096] = "";
    for (size_t i = 0; i < nb; i++) {
      rules_from(&cluster, kuala_bundle_permissions(bundles[i]), impersonate);
      size_t l = strlen(names);
      snprintf(names + l, sizeof names - l, "%skuala-%s", l ? "," : "",
               kuala_bundle_name(bundles[i]));
    }
    if (impersonate && nb > 0) {
      rules_add(&local, "", "serviceaccounts", names, 0, 1);
    }
    print_sa(sa, ns);
    print_role("ClusterRole", sa, NULL, &cluster);
    print_binding("ClusterRoleBinding", sa, NULL, "ClusterRole", sa, ns);
    print_role("Role", sa, ns, &local);
    print_binding("RoleBinding", sa, ns, "Role", sa, ns);
    rules_free(&cluster);
    rules_free(&local);
    for (size_t i = 0; impersonate && i < nb; i++) {
      char bsa[300];
      snprintf(bsa, sizeof bsa, "kuala-%s", kuala_bundle_name(bundles[i]));
      rules_t own = {NULL, 0};
      rules_from(&own, kuala_bundle_permissions(bundles[i]), 0);
      print_sa(bsa, ns);
      print_role("ClusterRole", bsa, NULL, &own);
      print_binding("ClusterRoleBinding", bsa, NULL, "ClusterRole", bsa, ns);
      rules_free(&own);
    }
  }
  for (size_t i = 0; i < nb; i++) {
    kuala_bundle_close(bundles[i]);
  }
  kuala_free(bundles);
  for (size_t i = 0; i < ncrd_plurals; i++) {
    kuala_free(crd_plurals[i].group);
    kuala_free(crd_plurals[i].kind);
    kuala_free(crd_plurals[i].plural);
  }
  kuala_free(crd_plurals);
  crd_plurals = NULL;
  ncrd_plurals = 0;
  kuala__offline_close(&off);
  kuala_free(dirs);
  return status;
}
