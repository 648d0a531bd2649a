/*
 * Unit tests for apiserver/authz: static tokens, request attributes, the
 * RBAC decision on a table of cases, and kube-apiserver's 403 wording.
 * tests/integration/rbac.sh asks the same questions through kubectl.
 */
#include <check.h>
#include <string.h>

#include "authz.h"
#include "kuala_test.h"

static const char roles[] =
    "[{\"metadata\":{\"name\":\"dev\",\"namespace\":\"team\"},\"rules\":["
    "{\"apiGroups\":[\"apps\"],\"resources\":[\"deployments\"],\"verbs\":[\"get\",\"list\","
    "\"watch\",\"patch\"]},"
    "{\"apiGroups\":[\"apps\"],\"resources\":[\"deployments/scale\"],\"verbs\":[\"update\"]},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"secrets\"],\"resourceNames\":[\"app-config\"],"
    "\"verbs\":[\"get\"]}]}]";
static const char cluster_roles[] =
    "[{\"metadata\":{\"name\":\"reader\"},\"rules\":["
    "{\"apiGroups\":[\"*\"],\"resources\":[\"*\"],\"verbs\":[\"get\",\"list\"]}]},"
    "{\"metadata\":{\"name\":\"scaler\"},\"rules\":["
    "{\"apiGroups\":[\"apps\"],\"resources\":[\"*/scale\"],\"verbs\":[\"*\"]}]},"
    "{\"metadata\":{\"name\":\"imp\"},\"rules\":["
    "{\"apiGroups\":[\"\"],\"resources\":[\"serviceaccounts\"],\"resourceNames\":[\"bot\"],"
    "\"verbs\":[\"impersonate\"]}]}]";
static const char role_bindings[] =
    "[{\"metadata\":{\"name\":\"devs\",\"namespace\":\"team\"},"
    "\"roleRef\":{\"kind\":\"Role\",\"name\":\"dev\"},"
    "\"subjects\":[{\"kind\":\"User\",\"name\":\"alice\"},"
    "{\"kind\":\"ServiceAccount\",\"name\":\"ci\"}]},"
    "{\"metadata\":{\"name\":\"dangling\",\"namespace\":\"team\"},"
    "\"roleRef\":{\"kind\":\"Role\",\"name\":\"gone\"},"
    "\"subjects\":[{\"kind\":\"User\",\"name\":\"dave\"}]}]";
static const char cluster_bindings[] =
    "[{\"metadata\":{\"name\":\"readers\"},\"roleRef\":{\"kind\":\"ClusterRole\","
    "\"name\":\"reader\"},\"subjects\":[{\"kind\":\"Group\",\"name\":\"auditors\"}]},"
    "{\"metadata\":{\"name\":\"scalers\"},\"roleRef\":{\"kind\":\"ClusterRole\","
    "\"name\":\"scaler\"},\"subjects\":[{\"kind\":\"User\",\"name\":\"carol\"}]},"
    "{\"metadata\":{\"name\":\"imps\"},\"roleRef\":{\"kind\":\"ClusterRole\","
    "\"name\":\"imp\"},\"subjects\":[{\"kind\":\"User\",\"name\":\"engine\"}]}]";

static emu_policy_t pol;

static void setup(void)
{
  pol.roles = json_tokener_parse(roles);
  pol.cluster_roles = json_tokener_parse(cluster_roles);
  pol.role_bindings = json_tokener_parse(role_bindings);
  pol.cluster_role_bindings = json_tokener_parse(cluster_bindings);
  ck_assert_ptr_nonnull(pol.roles);
  ck_assert_ptr_nonnull(pol.cluster_roles);
  ck_assert_ptr_nonnull(pol.role_bindings);
  ck_assert_ptr_nonnull(pol.cluster_role_bindings);
}

static void teardown(void)
{
  json_object_put(pol.roles);
  json_object_put(pol.cluster_roles);
  json_object_put(pol.role_bindings);
  json_object_put(pol.cluster_role_bindings);
}

static void user(emu_user_t *u, const char *name, const char *group)
{
  emu_user_init(u, name, "1");
  if (group) {
    emu_user_add_group(u, group);
  }
  emu_user_add_group(
      u, strcmp(name, "system:anonymous") == 0 ? "system:unauthenticated" : "system:authenticated");
}

/* The decision for one request, as the emulator derives it from HTTP. */
static int decide(const char *who, const char *group, const char *method, const char *path,
                  int watch, char *msg, size_t len)
{
  emu_user_t u;
  user(&u, who, group);
  emu_attrs_t a;
  char buf[512], reason[512];
  emu_attrs_from_request(&a, &u, method, path, watch, NULL, buf, sizeof buf);
  int ok = emu_rbac_authorize(&pol, &a, reason, sizeof reason);
  if (msg) {
    emu_forbidden_message(&a, reason, msg, len);
  }
  emu_user_free(&u);
  return ok;
}

START_TEST(test_authz_table_of_cases)
{
  static const struct {
    const char *user, *group, *method, *path;
    int watch, want;
  } cases[] = {
      /* Role in the namespace, through a RoleBinding. */
      {"alice", NULL, "GET", "/apis/apps/v1/namespaces/team/deployments/web", 0, 1},
      {"alice", NULL, "GET", "/apis/apps/v1/namespaces/team/deployments", 1, 1},
      {"alice", NULL, "PATCH", "/apis/apps/v1/namespaces/team/deployments/web", 0, 1},
      {"alice", NULL, "DELETE", "/apis/apps/v1/namespaces/team/deployments/web", 0, 0},
      {"alice", NULL, "GET", "/apis/apps/v1/namespaces/other/deployments/web", 0, 0},
      {"alice", NULL, "GET", "/apis/apps/v1/deployments", 0, 0},
      /* Subresources need their own rule. */
      {"alice", NULL, "PUT", "/apis/apps/v1/namespaces/team/deployments/web/scale", 0, 1},
      {"alice", NULL, "PATCH", "/apis/apps/v1/namespaces/team/deployments/web/status", 0, 0},
      /* resourceNames. */
      {"alice", NULL, "GET", "/api/v1/namespaces/team/secrets/app-config", 0, 1},
      {"alice", NULL, "GET", "/api/v1/namespaces/team/secrets/other", 0, 0},
      {"alice", NULL, "GET", "/api/v1/namespaces/team/secrets", 0, 0},
      /* A ServiceAccount subject without a namespace means the binding's. */
      {"system:serviceaccount:team:ci", NULL, "GET", "/apis/apps/v1/namespaces/team/deployments/x",
       0, 1},
      {"system:serviceaccount:other:ci", NULL, "GET", "/apis/apps/v1/namespaces/team/deployments/x",
       0, 0},
      /* Groups and "*" in a ClusterRole bound cluster-wide. */
      {"bob", "auditors", "GET", "/api/v1/namespaces/x/secrets", 0, 1},
      {"bob", "auditors", "GET", "/apis/demo.kuala.dev/v1/webapps", 0, 1},
      {"bob", "auditors", "GET", "/api/v1/namespaces/x/secrets", 1, 0},
      {"bob", "auditors", "POST", "/api/v1/namespaces/x/configmaps", 0, 0},
      /* "*\/scale" matches every scale subresource, nothing else. */
      {"carol", NULL, "PUT", "/apis/apps/v1/namespaces/a/deployments/d/scale", 0, 1},
      {"carol", NULL, "GET", "/apis/apps/v1/namespaces/a/deployments/d", 0, 0},
      /* system:masters may do anything. */
      {"root", "system:masters", "DELETE", "/api/v1/namespaces/kube-system", 0, 1},
      /* Bootstrap policy: discovery for authenticated users, health for all. */
      {"nobody", NULL, "GET", "/apis", 0, 1},
      {"nobody", NULL, "GET", "/api/v1", 0, 1},
      {"nobody", NULL, "GET", "/version", 0, 1},
      {"nobody", NULL, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", 0, 1},
      {"nobody", NULL, "GET", "/api/v1/namespaces/default/pods", 0, 0},
      {"system:anonymous", NULL, "GET", "/healthz", 0, 1},
      {"system:anonymous", NULL, "GET", "/apis", 0, 0},
      /* A binding to a missing Role grants nothing. */
      {"dave", NULL, "GET", "/api/v1/namespaces/team/pods", 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int got = decide(cases[i].user, cases[i].group, cases[i].method, cases[i].path, cases[i].watch,
                     NULL, 0);
    ck_assert_msg(got == cases[i].want, "case %zu: %s %s %s: got %d, want %d", i, cases[i].user,
                  cases[i].method, cases[i].path, got, cases[i].want);
  }
}
END_TEST

START_TEST(test_authz_messages_match_kube_apiserver)
{
  char m[1024];
  ck_assert(
      !decide("u", NULL, "PATCH", "/apis/apps/v1/namespaces/ns/deployments/x", 0, m, sizeof m));
  ck_assert_str_eq(m,
                   "deployments.apps \"x\" is forbidden: User \"u\" cannot patch resource "
                   "\"deployments\" in API group \"apps\" in the namespace \"ns\"");
  ck_assert(!decide("u", NULL, "GET", "/api/v1/namespaces/ns/configmaps", 0, m, sizeof m));
  ck_assert_str_eq(m,
                   "configmaps is forbidden: User \"u\" cannot list resource \"configmaps\" in "
                   "API group \"\" in the namespace \"ns\"");
  ck_assert(!decide("u", NULL, "GET", "/api/v1/nodes", 1, m, sizeof m));
  ck_assert_str_eq(m,
                   "nodes is forbidden: User \"u\" cannot watch resource \"nodes\" in API group "
                   "\"\" at the cluster scope");
  ck_assert(
      !decide("u", NULL, "PUT", "/apis/apps/v1/namespaces/ns/deployments/x/scale", 0, m, sizeof m));
  ck_assert_str_eq(m,
                   "deployments.apps \"x\" is forbidden: User \"u\" cannot update resource "
                   "\"deployments/scale\" in API group \"apps\" in the namespace \"ns\"");
  ck_assert(!decide("u", NULL, "GET", "/api/v1/namespaces/kube-system", 0, m, sizeof m));
  ck_assert_str_eq(m,
                   "namespaces \"kube-system\" is forbidden: User \"u\" cannot get resource "
                   "\"namespaces\" in API group \"\" in the namespace \"kube-system\"");
  ck_assert(!decide("system:anonymous", NULL, "GET", "/apis", 0, m, sizeof m));
  ck_assert_str_eq(m, "forbidden: User \"system:anonymous\" cannot get path \"/apis\"");
  ck_assert(!decide("dave", NULL, "GET", "/api/v1/namespaces/team/pods", 0, m, sizeof m));
  ck_assert_str_eq(m,
                   "pods is forbidden: User \"dave\" cannot list resource \"pods\" in API group "
                   "\"\" in the namespace \"team\": RBAC: role.rbac.authorization.k8s.io "
                   "\"gone\" not found");
}
END_TEST

START_TEST(test_authz_allow_reason_names_the_binding)
{
  emu_user_t u;
  user(&u, "alice", NULL);
  emu_attrs_t a;
  char buf[256], reason[512];
  emu_attrs_from_request(&a, &u, "GET", "/apis/apps/v1/namespaces/team/deployments/w", 0, NULL, buf,
                         sizeof buf);
  ck_assert(emu_rbac_authorize(&pol, &a, reason, sizeof reason));
  ck_assert_str_eq(reason,
                   "RBAC: allowed by RoleBinding \"devs/team\" of Role \"dev\" to User \"alice\"");
  emu_user_free(&u);
}
END_TEST

START_TEST(test_authz_impersonate_verb_and_field_selector_name)
{
  emu_user_t u;
  user(&u, "engine", NULL);
  emu_attrs_t a = {.user = &u,
                   .verb = "impersonate",
                   .resource_request = 1,
                   .group = "",
                   .resource = "serviceaccounts",
                   .subresource = "",
                   .ns = "kuala",
                   .name = "bot"};
  char reason[256];
  ck_assert(emu_rbac_authorize(&pol, &a, reason, sizeof reason));
  a.name = "other";
  ck_assert(!emu_rbac_authorize(&pol, &a, reason, sizeof reason));
  emu_user_free(&u);
  /* list + fieldSelector=metadata.name=x carries the name for resourceNames. */
  user(&u, "alice", NULL);
  char buf[256];
  emu_attrs_from_request(&a, &u, "GET", "/api/v1/namespaces/team/secrets", 1, "app-config", buf,
                         sizeof buf);
  ck_assert_str_eq(a.verb, "watch");
  ck_assert_str_eq(a.name, "app-config");
  emu_user_free(&u);
}
END_TEST

START_TEST(test_authz_token_file)
{
  emu_tokens_t t;
  char err[128];
  ck_assert_int_eq(emu_tokens_parse(&t,
                                    "# comment\n"
                                    "tok1,alice,1001,\"devs,system:masters\"\n"
                                    "\n"
                                    "tok2, bob ,1002\r\n",
                                    err, sizeof err),
                   0);
  ck_assert_int_eq((int)t.n, 2);
  const emu_user_t *a = emu_tokens_find(&t, "tok1");
  ck_assert_ptr_nonnull(a);
  ck_assert_str_eq(a->name, "alice");
  ck_assert_str_eq(a->uid, "1001");
  ck_assert_int_eq((int)a->ngroups, 2);
  ck_assert(emu_user_in_group(a, "devs"));
  ck_assert(emu_user_in_group(a, "system:masters"));
  const emu_user_t *b = emu_tokens_find(&t, "tok2");
  ck_assert_ptr_nonnull(b);
  ck_assert_str_eq(b->name, "bob");
  ck_assert_int_eq((int)b->ngroups, 0);
  ck_assert_ptr_null(emu_tokens_find(&t, "nope"));
  emu_tokens_free(&t);
  ck_assert_int_eq(emu_tokens_parse(&t, "tok,user\n", err, sizeof err), -1);
  ck_assert_str_eq(err, "line 1: want token,user,uid[,\"group1,group2\"]");
}
END_TEST

/* Escalation prevention: granting what one holds is fine, anything more is
 * refused with kube-apiserver's message (missing verbs merged per rule,
 * lines sorted); resourceNames, subresources and namespaces count. */
START_TEST(test_authz_escalation_covers)
{
  emu_user_t alice, carol, root;
  user(&alice, "alice", NULL);
  user(&carol, "carol", NULL);
  user(&root, "admin", "system:masters");
  char msg[2048];

  json_object *dev = emu_rbac_role_rules(&pol, "Role", "dev", "team");
  ck_assert_ptr_nonnull(dev);
  ck_assert_ptr_null(emu_rbac_role_rules(&pol, "Role", "dev", "other"));
  ck_assert_ptr_null(emu_rbac_role_rules(&pol, "ClusterRole", "nope", ""));
  ck_assert_ptr_nonnull(emu_rbac_role_rules(&pol, "ClusterRole", "cluster-admin", ""));

  /* alice holds Role dev in team: she may grant exactly it there... */
  ck_assert_int_eq(emu_rbac_covers(&pol, &alice, "team", dev, msg, sizeof msg), 1);
  ck_assert_str_eq(msg, "");
  /* ...but not in another namespace, where she holds nothing. */
  ck_assert_int_eq(emu_rbac_covers(&pol, &alice, "other", dev, msg, sizeof msg), 0);
  ck_assert_str_eq(
      msg,
      "user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC "
      "permissions not currently held:\n"
      "{APIGroups:[\"\"], Resources:[\"secrets\"], ResourceNames:[\"app-config\"], "
      "Verbs:[\"get\"]}\n"
      "{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"get\" \"list\" \"watch\" "
      "\"patch\"]}\n"
      "{APIGroups:[\"apps\"], Resources:[\"deployments/scale\"], Verbs:[\"update\"]}");

  /* One secret by name is not every secret; delete is not held. */
  json_object *more = json_tokener_parse(
      "[{\"apiGroups\":[\"\"],\"resources\":[\"secrets\"],\"verbs\":[\"get\"]},"
      "{\"apiGroups\":[\"apps\"],\"resources\":[\"deployments\"],\"verbs\":[\"get\",\"delete\"]}]");
  ck_assert_int_eq(emu_rbac_covers(&pol, &alice, "team", more, msg, sizeof msg), 0);
  ck_assert_ptr_nonnull(
      strstr(msg, "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"));
  ck_assert_ptr_nonnull(
      strstr(msg, "{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"delete\"]}"));
  ck_assert_ptr_null(strstr(msg, "Verbs:[\"get\" \"delete\"]"));
  ck_assert_int_eq(emu_rbac_covers(&pol, &root, "team", more, msg, sizeof msg), 1);

  /* carol holds every verb on apps' scale subresources, cluster-wide: she
   * may grant deployments/scale update anywhere, but a "*" verb or resource
   * needs a "*" of her own. */
  json_object *scale = json_tokener_parse(
      "[{\"apiGroups\":[\"apps\"],\"resources\":[\"deployments/scale\"],\"verbs\":[\"update\","
      "\"get\"]}]");
  ck_assert_int_eq(emu_rbac_covers(&pol, &carol, "", scale, msg, sizeof msg), 1);
  json_object *star = json_tokener_parse(
      "[{\"apiGroups\":[\"apps\"],\"resources\":[\"*\"],\"verbs\":[\"get\"]},"
      "{\"nonResourceURLs\":[\"/metrics\"],\"verbs\":[\"get\"]}]");
  ck_assert_int_eq(emu_rbac_covers(&pol, &carol, "", star, msg, sizeof msg), 0);
  ck_assert_ptr_nonnull(strstr(msg, "{APIGroups:[\"apps\"], Resources:[\"*\"], Verbs:[\"get\"]}"));
  ck_assert_ptr_nonnull(strstr(msg, "{NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"));

  json_object_put(more);
  json_object_put(scale);
  json_object_put(star);
  emu_user_free(&alice);
  emu_user_free(&carol);
  emu_user_free(&root);
}
END_TEST

static void add_json(json_object *arr, const char *text)
{
  json_object *o = json_tokener_parse(text);
  ck_assert_ptr_nonnull(o);
  json_object_array_add(arr, o);
}

/* The user-facing roles and aggregation: admin, edit and view exist (no
 * stored object needed) and grant what their system:aggregate-to-* roles
 * say, each including the lesser one; a CRD's ClusterRole labelled
 * aggregate-to-edit reaches edit and admin but not view; a stored role
 * with an aggregationRule of its own (matchExpressions) collects the roles
 * its selector matches and only those. */
START_TEST(test_authz_user_facing_roles_and_aggregation)
{
  add_json(pol.cluster_roles,
           "{\"metadata\":{\"name\":\"crontab-editor\",\"labels\":{"
           "\"rbac.authorization.k8s.io/aggregate-to-edit\":\"true\"}},\"rules\":[{\"apiGroups\":"
           "[\"stable.example.com\"],\"resources\":[\"crontabs\"],\"verbs\":[\"*\"]}]}");
  add_json(pol.cluster_roles,
           "{\"metadata\":{\"name\":\"team-x\"},\"aggregationRule\":{\"clusterRoleSelectors\":[{"
           "\"matchExpressions\":[{\"key\":\"team\",\"operator\":\"In\",\"values\":[\"x\",\"z\"]}]"
           "}]}}");
  add_json(pol.cluster_roles,
           "{\"metadata\":{\"name\":\"x-nodes\",\"labels\":{\"team\":\"x\"}},"
           "\"rules\":[{\"apiGroups\":[\"\"],\"resources\":[\"nodes\"],"
           "\"verbs\":[\"get\"]}]}");
  add_json(pol.cluster_roles,
           "{\"metadata\":{\"name\":\"y-nodes\",\"labels\":{\"team\":\"y\"}},"
           "\"rules\":[{\"apiGroups\":[\"\"],\"resources\":[\"nodes\"],"
           "\"verbs\":[\"delete\"]}]}");
  static const char *const bind[][3] = {
      {"admin", "ann", "a"}, {"edit", "ed", "a"}, {"view", "vic", "a"}};
  for (size_t i = 0; i < 3; i++) {
    char b[512];
    snprintf(b, sizeof b,
             "{\"metadata\":{\"name\":\"%s-%s\",\"namespace\":\"%s\"},\"roleRef\":{\"kind\":"
             "\"ClusterRole\",\"name\":\"%s\"},\"subjects\":[{\"kind\":\"User\",\"name\":\"%s\"}]}",
             bind[i][0], bind[i][1], bind[i][2], bind[i][0], bind[i][1]);
    add_json(pol.role_bindings, b);
  }
  add_json(pol.cluster_role_bindings,
           "{\"metadata\":{\"name\":\"tx\"},\"roleRef\":{\"kind\":\"ClusterRole\",\"name\":"
           "\"team-x\"},\"subjects\":[{\"kind\":\"User\",\"name\":\"xena\"}]}");
  /* Before the policy is finished, admin has no rules: the aggregation is
   * what grants them. */
  ck_assert_int_eq(
      decide("ann", NULL, "POST", "/apis/apps/v1/namespaces/a/deployments", 0, NULL, 0), 0);
  emu_rbac_policy_finish(&pol);

  static const struct {
    const char *user, *method, *path;
    int want;
  } cases[] = {
      /* admin: RBAC in its namespace, everything edit and view grant. */
      {"ann", "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings", 1},
      {"ann", "POST", "/apis/apps/v1/namespaces/a/deployments", 1},
      {"ann", "DELETE", "/api/v1/namespaces/a/secrets/s", 1},
      {"ann", "GET", "/api/v1/namespaces/a/pods/p/log", 1},
      {"ann", "PATCH", "/apis/stable.example.com/v1/namespaces/a/crontabs/c", 1},
      {"ann", "POST", "/apis/apps/v1/namespaces/b/deployments", 0},
      {"ann", "DELETE", "/api/v1/namespaces/a", 0},
      {"ann", "POST", "/api/v1/namespaces/a/resourcequotas", 0},
      /* edit: workloads and secrets, the CRD's role, no RBAC. */
      {"ed", "PUT", "/api/v1/namespaces/a/configmaps/c", 1},
      {"ed", "GET", "/api/v1/namespaces/a/secrets/s", 1},
      {"ed", "DELETE", "/apis/stable.example.com/v1/namespaces/a/crontabs/c", 1},
      {"ed", "GET", "/api/v1/namespaces/a/resourcequotas/q", 1},
      {"ed", "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings", 0},
      /* view: reads, not secrets, not the CRD (its role is not aggregate-to-view). */
      {"vic", "GET", "/apis/apps/v1/namespaces/a/deployments/d", 1},
      {"vic", "GET", "/api/v1/namespaces/a/pods", 1},
      {"vic", "GET", "/api/v1/namespaces/a/secrets/s", 0},
      {"vic", "PATCH", "/apis/apps/v1/namespaces/a/deployments/d", 0},
      {"vic", "GET", "/apis/stable.example.com/v1/namespaces/a/crontabs/c", 0},
      /* a stored aggregated role: team in (x, z) only. */
      {"xena", "GET", "/api/v1/nodes/n1", 1},
      {"xena", "DELETE", "/api/v1/nodes/n1", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char msg[2048];
    int got = decide(cases[i].user, NULL, cases[i].method, cases[i].path, 0, msg, sizeof msg);
    ck_assert_msg(got == cases[i].want, "%s %s %s: got %d (%s)", cases[i].user, cases[i].method,
                  cases[i].path, got, msg);
  }
  /* The escalation check sees the aggregated rules too: covering admin in
   * namespace a needs what it aggregates. */
  json_object *admin = emu_rbac_role_rules(&pol, "ClusterRole", "admin", "a");
  ck_assert_ptr_nonnull(admin);
  ck_assert_int_gt((int)json_object_array_length(admin), 10);
  emu_user_t u;
  user(&u, "ann", NULL);
  char why[2048];
  ck_assert_int_eq(emu_rbac_covers(&pol, &u, "a", admin, why, sizeof why), 1);
  ck_assert_int_eq(emu_rbac_covers(&pol, &u, "b", admin, why, sizeof why), 0);
  emu_user_free(&u);
  /* Finishing twice changes nothing. */
  json_object *before = NULL;
  json_object_deep_copy(pol.cluster_roles, &before, NULL);
  emu_rbac_policy_finish(&pol);
  ck_assert(json_object_equal(before, pol.cluster_roles));
  json_object_put(before);
}
END_TEST

static Suite *authz_suite(void)
{
  Suite *s = suite_create("authz");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_authz_table_of_cases);
  tcase_add_test(tc, test_authz_messages_match_kube_apiserver);
  tcase_add_test(tc, test_authz_allow_reason_names_the_binding);
  tcase_add_test(tc, test_authz_impersonate_verb_and_field_selector_name);
  tcase_add_test(tc, test_authz_token_file);
  tcase_add_test(tc, test_authz_escalation_covers);
  tcase_add_test(tc, test_authz_user_facing_roles_and_aggregation);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(authz_suite());
}
