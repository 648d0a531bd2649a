/*
 * Unit tests for core/control/permissions: what controllers imply, what
 * kuala.permissions declares, and the refusal message.
 */
#include <check.h>
#include <string.h>

#include "kuala/error.h"
#include "kuala/permissions.h"
#include "kuala_test.h"

static const char ctl[] =
    "{\"name\":\"webapp\",\"watch\":{\"apiVersion\":\"demo.kuala.dev/v1\",\"kind\":\"WebApp\"},"
    "\"owns\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"}],"
    "\"watches\":[{\"apiVersion\":\"v1\",\"kind\":\"Node\"}],"
    "\"reads\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}]}";

static int check(kuala_permissions_t *p, unsigned verbs, const char *av, const char *kind,
                 const char *sub, const char *name)
{
  char msg[512];
  return kuala_permissions_check(p, verbs, av, kind, sub, name, 0, msg, sizeof msg);
}

START_TEST(test_permissions_controllers_imply)
{
  kuala_permissions_t *p;
  char err[256];
  ck_assert_int_eq(kuala_permissions_new(&p, "webapp"), 0);
  ck_assert_int_eq(kuala_permissions_add_controller(p, ctl, strlen(ctl), err, sizeof err), 0);
  const unsigned read = KUALA_VERB_GET | KUALA_VERB_LIST | KUALA_VERB_WATCH;
  /* Primary: read, update/patch (finalizers), status, never create or delete. */
  ck_assert_int_eq(check(p, read | KUALA_VERB_UPDATE, "demo.kuala.dev/v1", "WebApp", NULL, "a"), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_PATCH, "demo.kuala.dev/v1", "WebApp", "status", "a"), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_DELETE, "demo.kuala.dev/v1", "WebApp", NULL, "a"),
                   KUALA_EFORBIDDEN);
  ck_assert_int_eq(check(p, KUALA_VERB_CREATE, "demo.kuala.dev/v1", "WebApp", NULL, NULL),
                   KUALA_EFORBIDDEN);
  /* Owned: read and write; matched by group, whatever the version. */
  ck_assert_int_eq(
      check(p, KUALA_VERB_CREATE | KUALA_VERB_DELETE, "apps/v1beta1", "Deployment", NULL, "d"), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_UPDATE, "apps/v1", "Deployment", "scale", "d"),
                   KUALA_EFORBIDDEN);
  /* watches and reads: read only. */
  ck_assert_int_eq(check(p, read, "v1", "Node", NULL, "n"), 0);
  ck_assert_int_eq(check(p, read, "v1", "ConfigMap", NULL, "n"), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_PATCH, "v1", "Node", NULL, "n"), KUALA_EFORBIDDEN);
  /* Events, always. */
  ck_assert_int_eq(check(p, KUALA_VERB_CREATE, "v1", "Event", NULL, NULL), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_PATCH, "events.k8s.io/v1", "Event", NULL, "e"), 0);
  /* Anything else is refused. */
  ck_assert_int_eq(check(p, KUALA_VERB_GET, "v1", "Secret", NULL, "s"), KUALA_EFORBIDDEN);
  kuala_permissions_free(p);
}
END_TEST

START_TEST(test_permissions_declared_with_names_and_subresources)
{
  kuala_permissions_t *p;
  char err[256];
  static const char decl[] =
      "[{\"type\":\"v1/Secret\",\"verbs\":\"get, create\"},"
      "{\"type\":\"apps/v1/Deployment/scale\",\"verbs\":[\"update\"]},"
      "{\"type\":\"v1/ConfigMap\",\"verbs\":\"get,update\",\"names\":[\"settings\"]},"
      "{\"type\":\"batch/v1/Job\",\"verbs\":\"*\"}]";
  ck_assert_int_eq(kuala_permissions_new(&p, "b"), 0);
  ck_assert_int_eq(kuala_permissions_add_declared(p, decl, strlen(decl), err, sizeof err), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_GET | KUALA_VERB_CREATE, "v1", "Secret", NULL, "x"), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_LIST, "v1", "Secret", NULL, NULL), KUALA_EFORBIDDEN);
  ck_assert_int_eq(check(p, KUALA_VERB_UPDATE, "apps/v1", "Deployment", "scale", "d"), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_UPDATE, "apps/v1", "Deployment", NULL, "d"),
                   KUALA_EFORBIDDEN);
  ck_assert_int_eq(check(p, KUALA_VERB_UPDATE, "v1", "ConfigMap", NULL, "settings"), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_UPDATE, "v1", "ConfigMap", NULL, "other"), KUALA_EFORBIDDEN);
  ck_assert_int_eq(check(p, KUALA_VERB_GET, "v1", "ConfigMap", NULL, NULL), KUALA_EFORBIDDEN);
  ck_assert_int_eq(check(p, KUALA_VERB_ALL, "batch/v1", "Job", NULL, "j"), 0);
  /* "*" is the eight resource verbs; bind and escalate are named. */
  ck_assert_int_eq(check(p, KUALA_VERB_BIND, "batch/v1", "Job", NULL, "j"), KUALA_EFORBIDDEN);
  static const char rbac[] =
      "[{\"type\":\"rbac.authorization.k8s.io/v1/ClusterRole\","
      "\"verbs\":\"bind,escalate\",\"names\":[\"admin\"]}]";
  ck_assert_int_eq(kuala_permissions_add_declared(p, rbac, strlen(rbac), err, sizeof err), 0);
  ck_assert_int_eq(check(p, KUALA_VERB_BIND | KUALA_VERB_ESCALATE, "rbac.authorization.k8s.io/v1",
                         "ClusterRole", NULL, "admin"),
                   0);
  ck_assert_int_eq(
      check(p, KUALA_VERB_GET, "rbac.authorization.k8s.io/v1", "ClusterRole", NULL, "admin"),
      KUALA_EFORBIDDEN);
  char names[128];
  kuala_verbs_format(KUALA_VERB_GET | KUALA_VERB_BIND | KUALA_VERB_ESCALATE, names, sizeof names);
  ck_assert_str_eq(names, "get,bind,escalate");
  ck_assert_uint_eq(kuala_verb_bit("bind"), KUALA_VERB_BIND);
  ck_assert_uint_eq(kuala_verb_bit("*") & KUALA_VERB_BIND, 0);
  /* Rules come out sorted by group, kind, subresource. */
  const kuala_permission_t *first = kuala_permissions_at(p, 0);
  ck_assert_str_eq(first->group, "");
  ck_assert_str_eq(first->kind, "ConfigMap");
  ck_assert_ptr_nonnull(first->names);
  ck_assert_str_eq(first->names[0], "settings");
  kuala_permissions_free(p);
}
END_TEST

START_TEST(test_permissions_refusal_says_how_to_declare)
{
  kuala_permissions_t *p;
  char msg[512];
  ck_assert_int_eq(kuala_permissions_new(&p, "webapp"), 0);
  ck_assert_int_eq(
      kuala_permissions_check(p, KUALA_VERB_GET, "v1", "Secret", NULL, "db", 0, msg, sizeof msg),
      KUALA_EFORBIDDEN);
  ck_assert_str_eq(msg,
                   "bundle \"webapp\" may not get v1/Secret \"db\": declare it with "
                   "kuala.permissions{{\"v1/Secret\", \"get\"}}");
  ck_assert_int_eq(kuala_permissions_check(p, KUALA_VERB_UPDATE, "apps/v1", "Deployment", "scale",
                                           NULL, 0, msg, sizeof msg),
                   KUALA_EFORBIDDEN);
  ck_assert_str_eq(msg,
                   "bundle \"webapp\" may not update apps/v1/Deployment/scale: declare it with "
                   "kuala.permissions{{\"apps/v1/Deployment/scale\", \"update\"}}");
  ck_assert_int_eq(kuala_permissions_check(p, KUALA_VERB_LIST | KUALA_VERB_WATCH, "v1", "Secret",
                                           NULL, NULL, 1, msg, sizeof msg),
                   KUALA_EFORBIDDEN);
  ck_assert_str_eq(msg,
                   "bundle \"webapp\" may not list,watch v1/Secret (a cache read lists and "
                   "watches the type): declare it with kuala.permissions{{\"v1/Secret\", "
                   "\"get,list,watch\"}}");
  kuala_permissions_free(p);
}
END_TEST

START_TEST(test_permissions_bad_declarations_are_named)
{
  kuala_permissions_t *p;
  char err[256];
  ck_assert_int_eq(kuala_permissions_new(&p, "b"), 0);
  static const char verb[] = "[{\"type\":\"v1/Secret\",\"verbs\":\"get,peek\"}]";
  ck_assert_int_eq(kuala_permissions_add_declared(p, verb, strlen(verb), err, sizeof err),
                   KUALA_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "unknown verb 'peek'"));
  static const char type[] = "[{\"type\":\"secret\",\"verbs\":\"get\"}]";
  ck_assert_int_eq(kuala_permissions_add_declared(p, type, strlen(type), err, sizeof err),
                   KUALA_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "got secret"));
  kuala_permissions_free(p);
}
END_TEST

static Suite *permissions_suite(void)
{
  Suite *s = suite_create("permissions");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_permissions_controllers_imply);
  tcase_add_test(tc, test_permissions_declared_with_names_and_subresources);
  tcase_add_test(tc, test_permissions_refusal_says_how_to_declare);
  tcase_add_test(tc, test_permissions_bad_declarations_are_named);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kuala_test_run(permissions_suite());
}
