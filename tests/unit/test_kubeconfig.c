/*
 * Unit tests for kubeconfig loading (files written to a temporary
 * directory), in-cluster config and the synchronous exec plugin runner.
 */
#include "kuala_test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/kubeconfig.h"

static char tmpdir[256];

static void setup(void)
{
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/kuala-kubeconfig-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  unsetenv("KUBECONFIG");
}

static void teardown(void)
{
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

/* Write `text` to tmpdir/name; returns the full path (static buffer
 * rotation: keep at most 4 at once). */
static const char *write_file(const char *name, const char *text)
{
  static char paths[4][512];
  static int next = 0;
  char *p = paths[next++ % 4];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  return p;
}

static const char *one =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: dev\n"
    "clusters:\n"
    "- name: c1\n"
    "  cluster:\n"
    "    server: https://10.0.0.1:6443\n"
    "    certificate-authority: certs/ca.crt\n"
    "- name: c2\n"
    "  cluster:\n"
    "    server: https://10.0.0.2:6443\n"
    "    certificate-authority-data: aGVsbG8gY2E=\n"
    "    insecure-skip-tls-verify: false\n"
    "users:\n"
    "- name: u1\n"
    "  user:\n"
    "    token: tok-1\n"
    "- name: u2\n"
    "  user:\n"
    "    client-certificate-data: Y2VydA==\n"
    "    client-key-data: a2V5\n"
    "    tokenFile: /var/tok\n"
    "contexts:\n"
    "- name: dev\n"
    "  context:\n"
    "    cluster: c1\n"
    "    user: u1\n"
    "    namespace: team-a\n"
    "- name: prod\n"
    "  context:\n"
    "    cluster: c2\n"
    "    user: u2\n";

START_TEST(test_kubeconfig_single_file_current_context)
{
  const char *path = write_file("one.yaml", one);
  kuala_client_config_t cfg;
  char *err = NULL;
  kuala_kubeconfig_opts_t o = {path, NULL, NULL};
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, &o, &err), 0);
  ck_assert_ptr_null(err);
  ck_assert_str_eq(cfg.server, "https://10.0.0.1:6443");
  ck_assert_str_eq(cfg.ns, "team-a");
  ck_assert_str_eq(cfg.token, "tok-1");
  char want[512];
  snprintf(want, sizeof(want), "%s/certs/ca.crt", tmpdir); /* relative to the file */
  ck_assert_str_eq(cfg.ca_file, want);
  ck_assert_ptr_null(cfg.ca_data);
  kuala_client_config_free(&cfg);
}
END_TEST

START_TEST(test_kubeconfig_context_override_and_data_fields)
{
  const char *path = write_file("one.yaml", one);
  kuala_client_config_t cfg;
  char *err = NULL;
  kuala_kubeconfig_opts_t o = {path, "prod", "override-ns"};
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, &o, &err), 0);
  ck_assert_str_eq(cfg.server, "https://10.0.0.2:6443");
  ck_assert_str_eq(cfg.ns, "override-ns");
  ck_assert_uint_eq(cfg.ca_data_len, 8);
  ck_assert_int_eq(memcmp(cfg.ca_data, "hello ca", 8), 0);
  ck_assert_uint_eq(cfg.cert_data_len, 4);
  ck_assert_int_eq(memcmp(cfg.cert_data, "cert", 4), 0);
  ck_assert_uint_eq(cfg.key_data_len, 3);
  ck_assert_int_eq(memcmp(cfg.key_data, "key", 3), 0);
  ck_assert_str_eq(cfg.token_file, "/var/tok");
  ck_assert_ptr_null(cfg.token);
  ck_assert_int_eq(cfg.insecure_skip_verify, 0);
  kuala_client_config_free(&cfg);

  o.context = "nope";
  o.ns = NULL;
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, &o, &err), KUALA_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "context \"nope\""));
  kuala_free(err);
  kuala_client_config_free(&cfg);
}
END_TEST

START_TEST(test_kubeconfig_multi_file_merge_first_wins)
{
  /* File a: current-context x, cluster shared -> A; file b: redefines
   * cluster shared -> B, defines the user and a second current-context.
   * kubectl's rule: the first file to set a value wins. */
  const char *a = write_file("a.yaml",
                             "current-context: x\n"
                             "clusters:\n"
                             "- name: shared\n"
                             "  cluster: {server: 'https://a.example:1'}\n"
                             "contexts:\n"
                             "- name: x\n"
                             "  context: {cluster: shared, user: bob}\n");
  const char *b = write_file("b.yaml",
                             "current-context: y\n"
                             "clusters:\n"
                             "- name: shared\n"
                             "  cluster: {server: 'https://b.example:1'}\n"
                             "users:\n"
                             "- name: bob\n"
                             "  user: {token: from-b}\n"
                             "contexts:\n"
                             "- name: x\n"
                             "  context: {cluster: other, user: nobody}\n"
                             "- name: y\n"
                             "  context: {cluster: shared, namespace: yy}\n");
  char env[1400];
  snprintf(env, sizeof(env), "%s/missing.yaml:%s:%s", tmpdir, a, b);
  setenv("KUBECONFIG", env, 1);
  kuala_client_config_t cfg;
  char *err = NULL;
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, NULL, &err), 0);
  ck_assert_ptr_null(err);
  ck_assert_str_eq(cfg.server, "https://a.example:1");
  ck_assert_str_eq(cfg.token, "from-b");
  ck_assert_str_eq(cfg.ns, "default");
  kuala_client_config_free(&cfg);

  /* Reverse order: b's values win now. */
  snprintf(env, sizeof(env), "%s:%s", b, a);
  setenv("KUBECONFIG", env, 1);
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, NULL, &err), 0);
  ck_assert_str_eq(cfg.server, "https://b.example:1");
  ck_assert_str_eq(cfg.ns, "yy");
  ck_assert_ptr_null(cfg.token);
  kuala_client_config_free(&cfg);

  snprintf(env, sizeof(env), "%s/none1:%s/none2", tmpdir, tmpdir);
  setenv("KUBECONFIG", env, 1);
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, NULL, &err), KUALA_ENOENT);
  ck_assert_ptr_nonnull(strstr(err, "none of the files"));
  kuala_free(err);
  kuala_client_config_free(&cfg);
  unsetenv("KUBECONFIG");
}
END_TEST

static void expect_error(const char *text, int code, const char *needle)
{
  const char *path = write_file("bad.yaml", text);
  kuala_client_config_t cfg;
  char *err = NULL;
  kuala_kubeconfig_opts_t o = {path, NULL, NULL};
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, &o, &err), code);
  ck_assert_ptr_nonnull(err);
  ck_assert_msg(strstr(err, path) != NULL, "error does not name the file: %s", err);
  ck_assert_msg(strstr(err, needle) != NULL, "error lacks '%s': %s", needle, err);
  kuala_free(err);
  kuala_client_config_free(&cfg);
}

START_TEST(test_kubeconfig_malformed_files_name_file_and_field)
{
  expect_error("clusters: [\n  - name: a\n", KUALA_EINVAL, "invalid YAML at line");
  expect_error("- just\n- a list\n", KUALA_EINVAL, "top level: expected a mapping");
  expect_error("clusters: {a: b}\n", KUALA_EINVAL, "clusters: expected a list");
  expect_error("clusters:\n- cluster: {server: 'https://x:1'}\n", KUALA_EINVAL,
               "clusters[0].name: missing");
  expect_error(
      "current-context: c\n"
      "clusters: [{name: k, cluster: {server: 'https://x:1'}}]\n"
      "users: [{name: u, user: {token: {nested: map}}}]\n"
      "contexts: [{name: c, context: {cluster: k, user: u}}]\n",
      KUALA_EINVAL, "users[0].user.token: expected a string");
  expect_error(
      "current-context: c\n"
      "clusters: [{name: k, cluster: {server: 'https://x:1'}}]\n"
      "users: [{name: u, user: {client-key-data: '!!notbase64!!'}}]\n"
      "contexts: [{name: c, context: {cluster: k, user: u}}]\n",
      KUALA_EINVAL, "users[0].user.client-key-data: invalid base64");
  expect_error(
      "current-context: c\n"
      "clusters: [{name: k, cluster: {server: 'ftp://x:1'}}]\n"
      "contexts: [{name: c, context: {cluster: k}}]\n",
      KUALA_EINVAL, "clusters[0].cluster.server: \"ftp://x:1\" is not an http(s) URL");
  expect_error(
      "current-context: c\n"
      "clusters: [{name: k, cluster: {server: 'https://x:1', insecure-skip-tls-verify: maybe}}]\n"
      "contexts: [{name: c, context: {cluster: k}}]\n",
      KUALA_EINVAL, "insecure-skip-tls-verify: expected true or false");
  expect_error(
      "current-context: c\n"
      "clusters: [{name: k, cluster: {server: 'https://x:1'}}]\n"
      "contexts: [{name: c, context: {cluster: missing}}]\n",
      KUALA_EINVAL, "cluster \"missing\" not found");
  expect_error("clusters: []\n", KUALA_EINVAL, "current-context: not set");
  expect_error(
      "current-context: c\n"
      "clusters: [{name: k, cluster: {server: 'https://x:1'}}]\n"
      "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n"
      "contexts: [{name: c, context: {cluster: k, user: u}}]\n",
      KUALA_ENOTSUP, "users[0].user.auth-provider: not supported");
  expect_error("kind: Pod\n", KUALA_EINVAL, "kind: expected Config");
  expect_error(
      "current-context: c\n"
      "clusters: [{name: k, cluster: {server: 'https://x:1'}}]\n"
      "users: [{name: u, user: {exec: {command: x, apiVersion: "
      "client.authentication.k8s.io/v1alpha1}}}]\n"
      "contexts: [{name: c, context: {cluster: k, user: u}}]\n",
      KUALA_EINVAL, "users[0].user.exec.apiVersion: unsupported");

  kuala_client_config_t cfg;
  char *err = NULL;
  char missing[512];
  snprintf(missing, sizeof(missing), "%s/does-not-exist", tmpdir);
  kuala_kubeconfig_opts_t o = {missing, NULL, NULL};
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, &o, &err), KUALA_ENOENT);
  ck_assert_ptr_nonnull(strstr(err, missing));
  kuala_free(err);
  kuala_client_config_free(&cfg);
}
END_TEST

START_TEST(test_kubeconfig_home_default)
{
  char kube[512];
  snprintf(kube, sizeof(kube), "%s/.kube", tmpdir);
  ck_assert_int_eq(mkdir(kube, 0700), 0);
  write_file(".kube/config",
             "current-context: c\n"
             "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
             "contexts: [{name: c, context: {cluster: k}}]\n");
  char *old = getenv("HOME") ? kuala_strdup(getenv("HOME")) : NULL;
  setenv("HOME", tmpdir, 1);
  kuala_client_config_t cfg;
  char *err = NULL;
  int rc = kuala_kubeconfig_load(&cfg, NULL, &err);
  if (old) {
    setenv("HOME", old, 1);
    kuala_free(old);
  }
  ck_assert_int_eq(rc, 0);
  ck_assert_str_eq(cfg.server, "http://127.0.0.1:1");
  kuala_client_config_free(&cfg);
}
END_TEST

START_TEST(test_kubeconfig_exec_plugin_script)
{
  const char *script =
      write_file("plugin.sh",
                 "#!/bin/sh\n"
                 "case \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*) ;; *) exit 3;; "
                 "esac\n"
                 "echo \"{\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1\\\","
                 "\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{\\\"token\\\":"
                 "\\\"tok-$1-$MYVAR\\\",\\\"expirationTimestamp\\\":"
                 "\\\"2030-01-02T03:04:05Z\\\"}}\"\n");
  ck_assert_int_eq(chmod(script, 0700), 0);
  const char *kc = write_file("exec.yaml",
                              "current-context: c\n"
                              "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
                              "users:\n"
                              "- name: u\n"
                              "  user:\n"
                              "    exec:\n"
                              "      apiVersion: client.authentication.k8s.io/v1\n"
                              "      command: ./plugin.sh\n"
                              "      args: [arg1]\n"
                              "      env: [{name: MYVAR, value: v}]\n"
                              "contexts: [{name: c, context: {cluster: k, user: u}}]\n");
  kuala_client_config_t cfg;
  char *err = NULL;
  kuala_kubeconfig_opts_t o = {kc, NULL, NULL};
  ck_assert_int_eq(kuala_kubeconfig_load(&cfg, &o, &err), 0);
  ck_assert_str_eq(cfg.exec_command, script);
  ck_assert_str_eq(cfg.exec_args[0], "arg1");
  ck_assert_ptr_null(cfg.exec_args[1]);
  ck_assert_str_eq(cfg.exec_env[0], "MYVAR=v");
  char *token = NULL;
  int64_t expiry = 0;
  ck_assert_int_eq(kuala_kubeconfig_exec(&cfg, &token, &expiry, &err), 0);
  ck_assert_str_eq(token, "tok-arg1-v");
  ck_assert_int_eq(expiry, 1893553445); /* 2030-01-02T03:04:05Z */
  kuala_free(token);

  /* A failing plugin: clear error naming it. */
  write_file("plugin.sh", "#!/bin/sh\nexit 7\n");
  ck_assert_int_eq(kuala_kubeconfig_exec(&cfg, &token, &expiry, &err), KUALA_EIO);
  ck_assert_ptr_nonnull(strstr(err, "exited with status 7"));
  kuala_free(err);
  /* Garbage output. */
  write_file("plugin.sh", "#!/bin/sh\necho '{\"kind\":\"ExecCredential\",\"status\":{}}'\n");
  ck_assert_int_eq(kuala_kubeconfig_exec(&cfg, &token, &expiry, &err), KUALA_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "status.token"));
  kuala_free(err);
  /* A command that does not exist. */
  kuala_free(cfg.exec_command);
  cfg.exec_command = kuala_strdup("/nonexistent/kuala-plugin");
  ck_assert_int_ne(kuala_kubeconfig_exec(&cfg, &token, &expiry, &err), 0);
  ck_assert_ptr_nonnull(strstr(err, "/nonexistent/kuala-plugin"));
  kuala_free(err);
  kuala_client_config_free(&cfg);
}
END_TEST

START_TEST(test_kubeconfig_in_cluster)
{
  unsetenv("KUBERNETES_SERVICE_HOST");
  kuala_client_config_t cfg;
  char *err = NULL;
  ck_assert_int_eq(kuala_kubeconfig_in_cluster(&cfg, tmpdir, &err), KUALA_ENOENT);
  kuala_free(err);
  kuala_client_config_free(&cfg);

  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  ck_assert_int_eq(kuala_kubeconfig_in_cluster(&cfg, tmpdir, &err), KUALA_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "/token"));
  kuala_free(err);
  kuala_client_config_free(&cfg);

  write_file("token", "sa-token\n");
  write_file("ca.crt", "-----BEGIN CERTIFICATE-----\n");
  write_file("namespace", "kube-system\n");
  ck_assert_int_eq(kuala_kubeconfig_in_cluster(&cfg, tmpdir, &err), 0);
  ck_assert_str_eq(cfg.server, "https://10.96.0.1:443");
  ck_assert_str_eq(cfg.ns, "kube-system");
  char want[512];
  snprintf(want, sizeof(want), "%s/token", tmpdir);
  ck_assert_str_eq(cfg.token_file, want);
  snprintf(want, sizeof(want), "%s/ca.crt", tmpdir);
  ck_assert_str_eq(cfg.ca_file, want);
  kuala_client_config_free(&cfg);

  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  ck_assert_int_eq(kuala_kubeconfig_in_cluster(&cfg, tmpdir, &err), 0);
  ck_assert_str_eq(cfg.server, "https://[fd00::1]:443");
  kuala_client_config_free(&cfg);
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
}
END_TEST

START_TEST(test_kubeconfig_load_data_in_memory)
{
  const char *text =
      "current-context: c\n"
      "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9', certificate-authority: "
      "ca.pem}}]\n"
      "contexts: [{name: c, context: {cluster: k}}]\n";
  kuala_client_config_t cfg;
  char *err = NULL;
  ck_assert_int_eq(
      kuala_kubeconfig_load_data(&cfg, text, strlen(text), "embedded", "/etc/kuala", NULL, &err),
      0);
  ck_assert_str_eq(cfg.ca_file, "/etc/kuala/ca.pem");
  kuala_client_config_free(&cfg);
  ck_assert_int_eq(kuala_kubeconfig_load_data(&cfg, "a: [", 4, "embedded", NULL, NULL, &err),
                   KUALA_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "embedded: invalid YAML"));
  kuala_free(err);
  kuala_client_config_free(&cfg);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("kubeconfig");
  TCase *tc = tcase_create("kubeconfig");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_kubeconfig_single_file_current_context);
  tcase_add_test(tc, test_kubeconfig_context_override_and_data_fields);
  tcase_add_test(tc, test_kubeconfig_multi_file_merge_first_wins);
  tcase_add_test(tc, test_kubeconfig_malformed_files_name_file_and_field);
  tcase_add_test(tc, test_kubeconfig_home_default);
  tcase_add_test(tc, test_kubeconfig_exec_plugin_script);
  tcase_add_test(tc, test_kubeconfig_in_cluster);
  tcase_add_test(tc, test_kubeconfig_load_data_in_memory);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
