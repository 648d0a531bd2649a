/*
 * kubeconfig.c: kubeconfig files (libyaml) and in-cluster config -> a
 * kuala_client_config_t, following kubectl's rules (see kubeconfig.h).
 *
 * Each file is loaded as a libyaml document and kept alive while the
 * config is assembled. Named entries (clusters, users, contexts) are
 * collected from every file in order; the first file that defines a name
 * wins, as does the first non-empty current-context. Only the entries the
 * chosen context uses are type-checked field by field; the list structure
 * of every file is checked. Every error names the file and the field path
 * ("users[0].user.token").
 *
 * Ownership: documents are freed before returning; the config owns copies.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "client/internal.h"
#include "kuala/alloc.h"
#include "kuala/error.h"
#include "kuala/kubeconfig.h"

#define MAX_FILES 32
#define MAX_FILE_SIZE (4u << 20)

typedef struct {
  char *path; /* as given, for messages */
  char *dir;  /* for relative paths */
  yaml_document_t doc;
  int loaded;
} kfile_t;

typedef struct {
  const char *name;
  yaml_node_t *node; /* the inner "cluster"/"user"/"context" mapping */
  int file;
  char where[64]; /* "clusters[2].cluster" */
} entry_t;

typedef struct {
  kfile_t files[MAX_FILES];
  int nfiles;
  entry_t *clusters, *users, *contexts;
  size_t nclusters, nusers, ncontexts;
  const char *current_context;
  int current_file;
  char **errmsg;
} kctx_t;

static int fail(kctx_t *k, int file, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(kctx_t *k, int file, int rc, const char *fmt, ...)
{
  if (k->errmsg && !*k->errmsg) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    if (file >= 0) {
      kuala_buf_printf(&b, "%s: ", k->files[file].path);
    }
    va_list ap;
    va_start(ap, fmt);
    kuala_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    *k->errmsg = kuala_buf_take(&b, NULL);
  }
  return rc;
}

/* ------------------------------------------------------------------------
 * YAML helpers.
 * ---------------------------------------------------------------------- */

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
  if (!map || map->type != YAML_MAPPING_NODE) {
    return NULL;
  }
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0) {
      return yaml_document_get_node(doc, p->value);
    }
  }
  return NULL;
}

/* A null scalar ("", "~", "null") counts as absent. */
static int is_null(const yaml_node_t *n)
{
  if (!n) {
    return 1;
  }
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
    return 0;
  }
  const char *v = (const char *)n->data.scalar.value;
  return *v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
         strcmp(v, "NULL") == 0;
}

/* Optional string field: 0 and *out (borrowed, NULL if absent), or error. */
static int get_str(kctx_t *k, int file, yaml_node_t *map, const char *where, const char *key,
                   const char **out)
{
  *out = NULL;
  yaml_node_t *n = map_get(&k->files[file].doc, map, key);
  if (is_null(n)) {
    return 0;
  }
  if (n->type != YAML_SCALAR_NODE) {
    return fail(k, file, KUALA_EINVAL, "%s.%s: expected a string", where, key);
  }
  *out = (const char *)n->data.scalar.value;
  return 0;
}

static int get_bool(kctx_t *k, int file, yaml_node_t *map, const char *where, const char *key,
                    int *out)
{
  *out = 0;
  const char *v;
  int rc = get_str(k, file, map, where, key, &v);
  if (rc != 0 || !v) {
    return rc;
  }
  if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 || strcmp(v, "TRUE") == 0) {
    *out = 1;
    return 0;
  }
  if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0 || strcmp(v, "FALSE") == 0) {
    return 0;
  }
  return fail(k, file, KUALA_EINVAL, "%s.%s: expected true or false, got \"%s\"", where, key, v);
}

static int b64val(unsigned char ch)
{
  if (ch >= 'A' && ch <= 'Z') {
    return ch - 'A';
  }
  if (ch >= 'a' && ch <= 'z') {
    return ch - 'a' + 26;
  }
  if (ch >= '0' && ch <= '9') {
    return ch - '0' + 52;
  }
  if (ch == '+') {
    return 62;
  }
  if (ch == '/') {
    return 63;
  }
  return -1;
}

/* Standard base64 with padding; whitespace ignored. */
static int b64_decode(const char *s, char **out, size_t *outlen)
{
  size_t n = strlen(s);
  char *dst = kuala_malloc(n / 4 * 3 + 4);
  size_t len = 0;
  unsigned acc = 0;
  int bits = 0, pad = 0;
  size_t digits = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
      continue;
    }
    if (*p == '=') {
      pad++;
      digits++;
      continue;
    }
    int v = b64val(*p);
    if (v < 0 || pad) {
      kuala_free(dst);
      return KUALA_EINVAL;
    }
    digits++;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      dst[len++] = (char)((acc >> bits) & 0xff);
    }
  }
  if (digits % 4 != 0 || pad > 2) {
    kuala_free(dst);
    return KUALA_EINVAL;
  }
  dst[len] = '\0';
  *out = dst;
  *outlen = len;
  return 0;
}

static int get_b64(kctx_t *k, int file, yaml_node_t *map, const char *where, const char *key,
                   char **out, size_t *outlen)
{
  const char *v;
  int rc = get_str(k, file, map, where, key, &v);
  if (rc != 0 || !v) {
    return rc;
  }
  kuala_free(*out);
  *out = NULL;
  if (b64_decode(v, out, outlen) != 0) {
    return fail(k, file, KUALA_EINVAL, "%s.%s: invalid base64", where, key);
  }
  return 0;
}

/* A path from the file: absolute, "~/"-relative, or relative to the file. */
static char *resolve_path(kctx_t *k, int file, const char *p)
{
  kuala_buf_t b = KUALA_BUF_INIT(0);
  if (p[0] == '/') {
    kuala_buf_puts(&b, p);
  } else if (p[0] == '~' && p[1] == '/' && getenv("HOME")) {
    kuala_buf_printf(&b, "%s/%s", getenv("HOME"), p + 2);
  } else {
    while (p[0] == '.' && p[1] == '/') {
      p += 2;
    }
    kuala_buf_printf(&b, "%s/%s", k->files[file].dir, p);
  }
  return kuala_buf_take(&b, NULL);
}

static int get_path(kctx_t *k, int file, yaml_node_t *map, const char *where, const char *key,
                    char **out)
{
  const char *v;
  int rc = get_str(k, file, map, where, key, &v);
  if (rc != 0 || !v) {
    return rc;
  }
  kuala_free(*out);
  *out = resolve_path(k, file, v);
  return 0;
}

/* ------------------------------------------------------------------------
 * Loading and merging.
 * ---------------------------------------------------------------------- */

static int read_file(const char *path, char **data, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    return -errno;
  }
  kuala_buf_t b = KUALA_BUF_INIT(MAX_FILE_SIZE);
  char chunk[8192];
  size_t n;
  int rc = 0;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if ((rc = kuala_buf_append(&b, chunk, n)) != 0) {
      break;
    }
  }
  if (rc == 0 && ferror(f)) {
    rc = KUALA_EIO;
  }
  fclose(f);
  if (rc != 0) {
    kuala_buf_free(&b);
    return rc;
  }
  if (!b.data) {
    kuala_buf_puts(&b, "");
  }
  *data = kuala_buf_take(&b, len);
  return 0;
}

static char *dir_of(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (!slash) {
    return kuala_strdup(".");
  }
  if (slash == path) {
    return kuala_strdup("/");
  }
  return kuala_strndup(path, (size_t)(slash - path));
}

static int collect(kctx_t *k, int file, yaml_node_t *root, const char *list, const char *inner,
                   entry_t **arr, size_t *n)
{
  yaml_document_t *doc = &k->files[file].doc;
  yaml_node_t *seq = map_get(doc, root, list);
  if (is_null(seq)) {
    return 0;
  }
  if (seq->type != YAML_SEQUENCE_NODE) {
    return fail(k, file, KUALA_EINVAL, "%s: expected a list", list);
  }
  size_t i = 0;
  for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
       it++, i++) {
    yaml_node_t *item = yaml_document_get_node(doc, *it);
    if (!item || item->type != YAML_MAPPING_NODE) {
      return fail(k, file, KUALA_EINVAL, "%s[%zu]: expected a mapping", list, i);
    }
    yaml_node_t *name = map_get(doc, item, "name");
    if (!name || name->type != YAML_SCALAR_NODE || !*name->data.scalar.value) {
      return fail(k, file, KUALA_EINVAL, "%s[%zu].name: missing or not a string", list, i);
    }
    yaml_node_t *body = map_get(doc, item, inner);
    if (!is_null(body) && body->type != YAML_MAPPING_NODE) {
      return fail(k, file, KUALA_EINVAL, "%s[%zu].%s: expected a mapping", list, i, inner);
    }
    const char *nm = (const char *)name->data.scalar.value;
    int seen = 0;
    for (size_t j = 0; j < *n; j++) {
      if (strcmp((*arr)[j].name, nm) == 0) {
        seen = 1; /* the first file to define a name wins */
        break;
      }
    }
    if (seen) {
      continue;
    }
    *arr = kuala_realloc(*arr, (*n + 1) * sizeof(entry_t));
    entry_t *e = &(*arr)[(*n)++];
    e->name = nm;
    e->node = is_null(body) ? NULL : body;
    e->file = file;
    snprintf(e->where, sizeof(e->where), "%s[%zu].%s", list, i, inner);
  }
  return 0;
}

static int load_file(kctx_t *k, const char *path, const char *data, size_t len, const char *dir)
{
  if (k->nfiles == MAX_FILES) {
    return fail(k, -1, KUALA_E2BIG, "too many kubeconfig files (max %d)", MAX_FILES);
  }
  int file = k->nfiles++;
  kfile_t *f = &k->files[file];
  f->path = kuala_strdup(path);
  f->dir = dir ? kuala_strdup(dir) : dir_of(path);
  yaml_parser_t parser;
  yaml_parser_initialize(&parser);
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  if (!yaml_parser_load(&parser, &f->doc)) {
    int rc = fail(k, file, KUALA_EINVAL, "invalid YAML at line %zu column %zu: %s",
                  parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                  parser.problem ? parser.problem : "parse error");
    yaml_parser_delete(&parser);
    return rc;
  }
  yaml_parser_delete(&parser);
  f->loaded = 1;
  yaml_node_t *root = yaml_document_get_root_node(&f->doc);
  if (is_null(root)) {
    return 0; /* empty file: nothing to merge */
  }
  if (root->type != YAML_MAPPING_NODE) {
    return fail(k, file, KUALA_EINVAL, "top level: expected a mapping");
  }
  const char *kind;
  int rc = get_str(k, file, root, "(top)", "kind", &kind);
  if (rc == 0 && kind && strcmp(kind, "Config") != 0) {
    return fail(k, file, KUALA_EINVAL, "kind: expected Config, got \"%s\"", kind);
  }
  if (rc == 0) {
    rc = collect(k, file, root, "clusters", "cluster", &k->clusters, &k->nclusters);
  }
  if (rc == 0) {
    rc = collect(k, file, root, "users", "user", &k->users, &k->nusers);
  }
  if (rc == 0) {
    rc = collect(k, file, root, "contexts", "context", &k->contexts, &k->ncontexts);
  }
  const char *cur = NULL;
  if (rc == 0) {
    rc = get_str(k, file, root, "(top)", "current-context", &cur);
  }
  if (rc == 0 && cur && *cur && !k->current_context) {
    k->current_context = cur;
    k->current_file = file;
  }
  return rc;
}

static int load_path(kctx_t *k, const char *path, int must_exist)
{
  char *data = NULL;
  size_t len = 0;
  int rc = read_file(path, &data, &len);
  if (rc == KUALA_ENOENT && !must_exist) {
    return 0;
  }
  if (rc != 0) {
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala_buf_printf(&b, "%s: cannot read: %s", path, kuala_strerror(rc));
    if (k->errmsg && !*k->errmsg) {
      *k->errmsg = kuala_buf_take(&b, NULL);
    } else {
      kuala_buf_free(&b);
    }
    return rc == KUALA_ENOENT ? KUALA_ENOENT : KUALA_EINVAL;
  }
  rc = load_file(k, path, data, len, NULL);
  kuala_free(data);
  return rc;
}

static const entry_t *find(const entry_t *arr, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++) {
    if (strcmp(arr[i].name, name) == 0) {
      return &arr[i];
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------
 * Building the client config.
 * ---------------------------------------------------------------------- */

static void set_str(char **dst, const char *v)
{
  if (v) {
    kuala_free(*dst);
    *dst = kuala_strdup(v);
  }
}

static int build_exec(kctx_t *k, const entry_t *u, yaml_node_t *exec, kuala_client_config_t *cfg)
{
  int file = u->file;
  yaml_document_t *doc = &k->files[file].doc;
  char where[96];
  snprintf(where, sizeof(where), "%s.exec", u->where);
  if (exec->type != YAML_MAPPING_NODE) {
    return fail(k, file, KUALA_EINVAL, "%s: expected a mapping", where);
  }
  const char *cmd, *api;
  int rc = get_str(k, file, exec, where, "command", &cmd);
  if (rc == 0 && !cmd) {
    rc = fail(k, file, KUALA_EINVAL, "%s.command: missing", where);
  }
  if (rc == 0) {
    rc = get_str(k, file, exec, where, "apiVersion", &api);
  }
  if (rc == 0 && api && strcmp(api, "client.authentication.k8s.io/v1") != 0 &&
      strcmp(api, "client.authentication.k8s.io/v1beta1") != 0) {
    rc = fail(k, file, KUALA_EINVAL, "%s.apiVersion: unsupported \"%s\"", where, api);
  }
  if (rc != 0) {
    return rc;
  }
  /* A bare command name is looked up in PATH by uv_spawn; a path with a
   * slash is relative to the kubeconfig file, as kubectl does. */
  if (strchr(cmd, '/')) {
    char *p = resolve_path(k, file, cmd);
    kuala_free(cfg->exec_command);
    cfg->exec_command = p;
  } else {
    set_str(&cfg->exec_command, cmd);
  }
  set_str(&cfg->exec_api_version, api ? api : "client.authentication.k8s.io/v1");
  yaml_node_t *args = map_get(doc, exec, "args");
  if (!is_null(args)) {
    if (args->type != YAML_SEQUENCE_NODE) {
      return fail(k, file, KUALA_EINVAL, "%s.args: expected a list", where);
    }
    size_t n = (size_t)(args->data.sequence.items.top - args->data.sequence.items.start);
    cfg->exec_args = kuala_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
      yaml_node_t *a = yaml_document_get_node(doc, args->data.sequence.items.start[i]);
      if (!a || a->type != YAML_SCALAR_NODE) {
        return fail(k, file, KUALA_EINVAL, "%s.args[%zu]: expected a string", where, i);
      }
      cfg->exec_args[i] = kuala_strdup((char *)a->data.scalar.value);
    }
  }
  yaml_node_t *env = map_get(doc, exec, "env");
  if (!is_null(env)) {
    if (env->type != YAML_SEQUENCE_NODE) {
      return fail(k, file, KUALA_EINVAL, "%s.env: expected a list", where);
    }
    size_t n = (size_t)(env->data.sequence.items.top - env->data.sequence.items.start);
    cfg->exec_env = kuala_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
      yaml_node_t *item = yaml_document_get_node(doc, env->data.sequence.items.start[i]);
      char ewhere[128];
      snprintf(ewhere, sizeof(ewhere), "%s.env[%zu]", where, i);
      const char *name, *value;
      if (!item || item->type != YAML_MAPPING_NODE) {
        return fail(k, file, KUALA_EINVAL, "%s: expected a mapping", ewhere);
      }
      rc = get_str(k, file, item, ewhere, "name", &name);
      if (rc == 0) {
        rc = get_str(k, file, item, ewhere, "value", &value);
      }
      if (rc == 0 && (!name || !*name || strchr(name, '='))) {
        rc = fail(k, file, KUALA_EINVAL, "%s.name: missing or invalid", ewhere);
      }
      if (rc != 0) {
        return rc;
      }
      kuala_buf_t b = KUALA_BUF_INIT(0);
      kuala_buf_printf(&b, "%s=%s", name, value ? value : "");
      cfg->exec_env[i] = kuala_buf_take(&b, NULL);
    }
  }
  return 0;
}

static int build(kctx_t *k, const char *context, const char *ns_override,
                 kuala_client_config_t *cfg)
{
  const char *ctxname = context ? context : k->current_context;
  if (!ctxname) {
    return fail(k, k->nfiles ? 0 : -1, KUALA_EINVAL,
                "current-context: not set (and no context was given)");
  }
  const entry_t *cx = find(k->contexts, k->ncontexts, ctxname);
  if (!cx) {
    return fail(k, context ? -1 : k->current_file, KUALA_EINVAL,
                "context \"%s\": not found in any kubeconfig file", ctxname);
  }
  const char *cluster_name = NULL, *user_name = NULL, *ns = NULL;
  int rc = get_str(k, cx->file, cx->node, cx->where, "cluster", &cluster_name);
  if (rc == 0) {
    rc = get_str(k, cx->file, cx->node, cx->where, "user", &user_name);
  }
  if (rc == 0) {
    rc = get_str(k, cx->file, cx->node, cx->where, "namespace", &ns);
  }
  if (rc != 0) {
    return rc;
  }
  if (!cluster_name) {
    return fail(k, cx->file, KUALA_EINVAL, "%s.cluster: missing", cx->where);
  }
  const entry_t *cl = find(k->clusters, k->nclusters, cluster_name);
  if (!cl) {
    return fail(k, cx->file, KUALA_EINVAL, "%s.cluster: cluster \"%s\" not found", cx->where,
                cluster_name);
  }
  const char *server = NULL, *sni = NULL;
  rc = get_str(k, cl->file, cl->node, cl->where, "server", &server);
  if (rc != 0) {
    return rc;
  }
  if (!server) {
    return fail(k, cl->file, KUALA_EINVAL, "%s.server: missing", cl->where);
  }
  if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0) {
    return fail(k, cl->file, KUALA_EINVAL, "%s.server: \"%s\" is not an http(s) URL", cl->where,
                server);
  }
  set_str(&cfg->server, server);
  rc = get_path(k, cl->file, cl->node, cl->where, "certificate-authority", &cfg->ca_file);
  if (rc == 0) {
    rc = get_b64(k, cl->file, cl->node, cl->where, "certificate-authority-data", &cfg->ca_data,
                 &cfg->ca_data_len);
  }
  if (rc == 0) {
    rc = get_bool(k, cl->file, cl->node, cl->where, "insecure-skip-tls-verify",
                  &cfg->insecure_skip_verify);
  }
  if (rc == 0) {
    rc = get_str(k, cl->file, cl->node, cl->where, "tls-server-name", &sni);
    set_str(&cfg->tls_server_name, sni);
  }
  if (rc != 0) {
    return rc;
  }
  set_str(&cfg->ns, ns_override ? ns_override : (ns ? ns : "default"));
  if (!user_name) {
    return 0; /* anonymous */
  }
  const entry_t *u = find(k->users, k->nusers, user_name);
  if (!u) {
    return fail(k, cx->file, KUALA_EINVAL, "%s.user: user \"%s\" not found", cx->where, user_name);
  }
  if (!u->node) {
    return 0;
  }
  const char *token = NULL, *username = NULL, *password = NULL;
  rc = get_str(k, u->file, u->node, u->where, "token", &token);
  if (rc == 0) {
    rc = get_path(k, u->file, u->node, u->where, "tokenFile", &cfg->token_file);
  }
  if (rc == 0) {
    rc = get_path(k, u->file, u->node, u->where, "client-certificate", &cfg->cert_file);
  }
  if (rc == 0) {
    rc = get_b64(k, u->file, u->node, u->where, "client-certificate-data", &cfg->cert_data,
                 &cfg->cert_data_len);
  }
  if (rc == 0) {
    rc = get_path(k, u->file, u->node, u->where, "client-key", &cfg->key_file);
  }
  if (rc == 0) {
    rc = get_b64(k, u->file, u->node, u->where, "client-key-data", &cfg->key_data,
                 &cfg->key_data_len);
  }
  if (rc == 0) {
    rc = get_str(k, u->file, u->node, u->where, "username", &username);
  }
  if (rc == 0) {
    rc = get_str(k, u->file, u->node, u->where, "password", &password);
  }
  if (rc != 0) {
    return rc;
  }
  set_str(&cfg->token, token);
  set_str(&cfg->username, username);
  set_str(&cfg->password, password);
  yaml_node_t *exec = map_get(&k->files[u->file].doc, u->node, "exec");
  if (!is_null(exec)) {
    rc = build_exec(k, u, exec, cfg);
  }
  yaml_node_t *ap = map_get(&k->files[u->file].doc, u->node, "auth-provider");
  if (rc == 0 && !is_null(ap)) {
    rc = fail(k, u->file, KUALA_ENOTSUP,
              "%s.auth-provider: not supported (use an exec credential plugin)", u->where);
  }
  return rc;
}

static void kctx_free(kctx_t *k)
{
  for (int i = 0; i < k->nfiles; i++) {
    if (k->files[i].loaded) {
      yaml_document_delete(&k->files[i].doc);
    }
    kuala_free(k->files[i].path);
    kuala_free(k->files[i].dir);
  }
  kuala_free(k->clusters);
  kuala_free(k->users);
  kuala_free(k->contexts);
}

int kuala_kubeconfig_load(kuala_client_config_t *cfg, const kuala_kubeconfig_opts_t *opts,
                          char **errmsg)
{
  kuala_client_config_init(cfg);
  if (errmsg) {
    *errmsg = NULL;
  }
  kctx_t k;
  memset(&k, 0, sizeof(k));
  k.errmsg = errmsg;
  k.current_file = -1;
  int rc = 0;
  const char *env = getenv("KUBECONFIG");
  if (opts && opts->path) {
    rc = load_path(&k, opts->path, 1);
  } else if (env && *env) {
    char *list = kuala_strdup(env);
    char *save = NULL;
    for (char *p = strtok_r(list, ":", &save); p && rc == 0; p = strtok_r(NULL, ":", &save)) {
      if (*p) {
        rc = load_path(&k, p, 0);
      }
    }
    kuala_free(list);
    if (rc == 0 && k.nfiles == 0) {
      rc = KUALA_ENOENT;
      if (errmsg) {
        kuala_buf_t b = KUALA_BUF_INIT(0);
        kuala_buf_printf(&b, "KUBECONFIG=%s: none of the files exists", env);
        *errmsg = kuala_buf_take(&b, NULL);
      }
    }
  } else {
    const char *home = getenv("HOME");
    if (!home) {
      rc = KUALA_ENOENT;
      if (errmsg) {
        *errmsg = kuala_strdup("no kubeconfig: KUBECONFIG and HOME are unset");
      }
    } else {
      kuala_buf_t b = KUALA_BUF_INIT(0);
      kuala_buf_printf(&b, "%s/.kube/config", home);
      rc = load_path(&k, b.data, 1);
      kuala_buf_free(&b);
    }
  }
  if (rc == 0) {
    rc = build(&k, opts ? opts->context : NULL, opts ? opts->ns : NULL, cfg);
  }
  kctx_free(&k);
  return rc;
}

int kuala_kubeconfig_load_data(kuala_client_config_t *cfg, const char *data, size_t len,
                               const char *name, const char *dir, const char *context,
                               char **errmsg)
{
  kuala_client_config_init(cfg);
  if (errmsg) {
    *errmsg = NULL;
  }
  kctx_t k;
  memset(&k, 0, sizeof(k));
  k.errmsg = errmsg;
  k.current_file = -1;
  int rc = load_file(&k, name ? name : "<kubeconfig>", data, len, dir ? dir : ".");
  if (rc == 0) {
    rc = build(&k, context, NULL, cfg);
  }
  kctx_free(&k);
  return rc;
}

/* ------------------------------------------------------------------------
 * In-cluster.
 * ---------------------------------------------------------------------- */

int kuala_kubeconfig_in_cluster(kuala_client_config_t *cfg, const char *sa_dir, char **errmsg)
{
  kuala_client_config_init(cfg);
  if (errmsg) {
    *errmsg = NULL;
  }
  const char *host = getenv("KUBERNETES_SERVICE_HOST");
  const char *port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    if (errmsg) {
      *errmsg = kuala_strdup("not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set");
    }
    return KUALA_ENOENT;
  }
  const char *dir = sa_dir ? sa_dir : "/var/run/secrets/kubernetes.io/serviceaccount";
  kuala_buf_t b = KUALA_BUF_INIT(0);
  /* An IPv6 service address needs brackets in a URL. */
  if (strchr(host, ':')) {
    kuala_buf_printf(&b, "https://[%s]:%s", host, port);
  } else {
    kuala_buf_printf(&b, "https://%s:%s", host, port);
  }
  cfg->server = kuala_buf_take(&b, NULL);
  kuala_buf_printf(&b, "%s/token", dir);
  cfg->token_file = kuala_buf_take(&b, NULL);
  char *data = NULL;
  size_t len = 0;
  int rc = read_file(cfg->token_file, &data, &len);
  if (rc != 0) {
    if (errmsg) {
      kuala_buf_printf(&b, "%s: cannot read the service-account token: %s", cfg->token_file,
                       kuala_strerror(rc));
      *errmsg = kuala_buf_take(&b, NULL);
    }
    return KUALA_EINVAL;
  }
  kuala_free(data);
  kuala_buf_printf(&b, "%s/ca.crt", dir);
  cfg->ca_file = kuala_buf_take(&b, NULL);
  if (read_file(cfg->ca_file, &data, &len) != 0) {
    kuala_free(cfg->ca_file);
    cfg->ca_file = NULL; /* fall back to the system CAs */
  } else {
    kuala_free(data);
  }
  kuala_buf_printf(&b, "%s/namespace", dir);
  char *nspath = kuala_buf_take(&b, NULL);
  if (read_file(nspath, &data, &len) == 0) {
    size_t n = len;
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == ' ' || data[n - 1] == '\r')) {
      n--;
    }
    cfg->ns = kuala_strndup(data, n);
    kuala_free(data);
  } else {
    cfg->ns = kuala_strdup("default");
  }
  kuala_free(nspath);
  return 0;
}

/* ------------------------------------------------------------------------
 * Synchronous exec (startup only).
 * ---------------------------------------------------------------------- */

typedef struct {
  int done, err;
  char *token;
  int64_t expiry;
  char *msg;
} sync_exec_t;

static void on_sync_exec(void *data, int err, char *token, int64_t expiry, const char *msg)
{
  sync_exec_t *s = data;
  s->done = 1;
  s->err = err;
  s->token = token;
  s->expiry = expiry;
  s->msg = msg ? kuala_strdup(msg) : NULL;
}

int kuala_kubeconfig_exec(const kuala_client_config_t *cfg, char **token, int64_t *expiry,
                          char **errmsg)
{
  *token = NULL;
  *expiry = 0;
  if (errmsg) {
    *errmsg = NULL;
  }
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    return KUALA_EIO;
  }
  sync_exec_t s;
  memset(&s, 0, sizeof(s));
  kuala__exec_run_t *run;
  int rc = kuala__exec_start(&run, &loop, cfg, on_sync_exec, &s);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (rc != 0) {
    if (errmsg) {
      kuala_buf_t b = KUALA_BUF_INIT(0);
      kuala_buf_printf(&b, "cannot start exec plugin %s: %s",
                       cfg->exec_command ? cfg->exec_command : "(none)", kuala_strerror(rc));
      *errmsg = kuala_buf_take(&b, NULL);
    }
    return rc;
  }
  if (s.err != 0) {
    if (errmsg) {
      *errmsg = s.msg;
    } else {
      kuala_free(s.msg);
    }
    return s.err;
  }
  kuala_free(s.msg);
  *token = s.token;
  *expiry = s.expiry;
  return 0;
}
