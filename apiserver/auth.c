/*
 * auth.c: who is asking, and may they (the emulator side of authz.c).
 *
 * Authentication: `Authorization: Bearer T` where T is the --token (user
 * "kuala-admin" in system:masters, the emulator's original single token) or
 * a token of --token-auth-file (its user and groups, plus
 * system:authenticated). A request without a token is system:anonymous in
 * system:unauthenticated when a token file is configured (kube-apiserver's
 * --anonymous-auth default); with only --token it is refused with 401, as
 * before. An unknown token is always 401.
 *
 * Impersonation: Impersonate-User (and optional Impersonate-Group headers,
 * any number, Impersonate-Uid and Impersonate-Extra-<key> headers) switch
 * the user once the caller passes the `impersonate` checks on users (or
 * serviceaccounts, for system:serviceaccount:<ns>:<name>), on each group,
 * on the uid and on each extra (userextras/<key>, named by the value).
 * An impersonated service account gets system:serviceaccounts and
 * system:serviceaccounts:<ns> unless groups were given; everyone gets
 * system:authenticated.
 *
 * Authorization: with --authorization-mode=RBAC every request, discovery and
 * health paths included, is decided by authz.c against the stored Roles,
 * ClusterRoles and bindings (parsed again only after one of those four
 * stores changed) before routing, as kube-apiserver does; a denial is a 403
 * Status with kube-apiserver's message and one line on stderr. Without it
 * every authenticated request is allowed (AlwaysAllow).
 *
 * POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews is answered
 * here in every mode, so `kubectl auth can-i` works.
 *
 * State is file-static: the emulator runs one server per process.
 */
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "authz.h"
#include "emu_internal.h"
#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/json.h"
#include "patch.h"
#include "protobuf.h"

static struct {
  int configured; /* a token file was given */
  int rbac;
  emu_tokens_t tokens;
  emu_policy_t pol;
  uint64_t stamp[4]; /* last_change of the four RBAC stores when pol was built */
  int have_pol;
  unsigned long forbidden;
} A;

static const char *const rbac_plurals[4] = {"clusterroles", "roles", "clusterrolebindings",
                                            "rolebindings"};

unsigned long emu_auth_forbidden_count(void)
{
  return A.forbidden;
}

int emu_auth_configure(emu_t *e, const char *token_file, const char *mode, char *err, size_t errlen)
{
  (void)e;
  if (mode) {
    if (strstr(mode, "RBAC")) {
      A.rbac = 1;
    } else if (strcmp(mode, "AlwaysAllow") != 0) {
      snprintf(err, errlen, "--authorization-mode: want RBAC or AlwaysAllow, got %s", mode);
      return -1;
    }
  }
  if (!token_file) {
    return 0;
  }
  FILE *f = fopen(token_file, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read %s", token_file);
    return -1;
  }
  kuala_buf_t b;
  kuala_buf_init(&b, 16 << 20);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    kuala_buf_append(&b, chunk, n);
  }
  fclose(f);
  kuala_buf_putc(&b, '\0');
  char why[200];
  int rc = emu_tokens_parse(&A.tokens, b.data, why, sizeof why);
  kuala_buf_free(&b);
  if (rc) {
    snprintf(err, errlen, "%s: %s", token_file, why);
    return -1;
  }
  A.configured = 1;
  return 0;
}

/* ---- policy from the stores ---- */

static const emu_policy_t *policy(emu_t *e)
{
  emu_rtype_t *rts[4];
  int fresh = A.have_pol;
  for (int i = 0; i < 4; i++) {
    rts[i] = emu_rtype_find(e, "rbac.authorization.k8s.io", "v1", rbac_plurals[i]);
    uint64_t s = rts[i] ? rts[i]->store->last_change : 0;
    if (s != A.stamp[i]) {
      fresh = 0;
    }
    A.stamp[i] = s;
  }
  if (fresh) {
    return &A.pol;
  }
  json_object **slots[4] = {&A.pol.cluster_roles, &A.pol.roles, &A.pol.cluster_role_bindings,
                            &A.pol.role_bindings};
  for (int i = 0; i < 4; i++) {
    json_object_put(*slots[i]);
    *slots[i] = json_object_new_array();
    if (!rts[i]) {
      continue;
    }
    size_t n;
    emu_obj_t **all = emu_store_all(rts[i]->store, &n);
    for (size_t k = 0; k < n; k++) {
      json_object_array_add(*slots[i], emu_obj_parse(all[k]));
    }
  }
  emu_rbac_policy_finish(&A.pol);
  A.have_pol = 1;
  return &A.pol;
}

static int allowed(emu_t *e, const emu_attrs_t *a, char *reason, size_t len)
{
  if (!A.rbac) {
    reason[0] = '\0';
    return 1;
  }
  return emu_rbac_authorize(policy(e), a, reason, len);
}

/* Answer `code` with `msg`, logged and counted (403s) like every refusal;
 * `details` names the object when `resource` is set. */
static void refuse(kuala__httpd_req_t *req, int code, const char *group, const char *resource,
                   const char *name, const char *msg)
{
  A.forbidden += code == 403;
  fprintf(stderr, "kuala-apiserver: %d %s %s: %s\n", code, kuala__httpd_method(req),
          kuala__httpd_path(req), msg);
  kuala_apierr_t err = KUALA_APIERR_INIT;
  kuala__apierr_set(&err, code, NULL, "%s", msg);
  if (resource && *resource) {
    kuala__apierr_details(&err, name && *name ? name : NULL, group, resource);
  }
  emu_reply_err(req, &err);
}

static void forbid(kuala__httpd_req_t *req, const emu_attrs_t *a, const char *reason)
{
  char msg[2048];
  emu_forbidden_message(a, reason, msg, sizeof msg);
  refuse(req, 403, a->group, a->resource_request ? a->resource : NULL, a->name, msg);
}

/* ---- SelfSubjectAccessReview ---- */

static const char *jget(json_object *o, const char *key)
{
  json_object *v;
  if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) {
    return "";
  }
  return json_object_get_string(v);
}

/* kubectl's typed client posts the review in protobuf: the "k8s\0" magic,
 * a runtime.Unknown whose field 2 (raw) is the SelfSubjectAccessReview,
 * whose field 2 is the spec: field 1 resourceAttributes {1 namespace,
 * 2 verb, 3 group, 4 version, 5 resource, 6 subresource, 7 name}, field 2
 * nonResourceAttributes {1 path, 2 verb}. Only those strings are read. */
typedef struct {
  const unsigned char *p, *end;
} pb_t;

static int pb_varint(pb_t *b, uint64_t *v)
{
  *v = 0;
  for (int shift = 0; shift < 64 && b->p < b->end; shift += 7) {
    unsigned char c = *b->p++;
    *v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      return 0;
    }
  }
  return -1;
}

/* The next field: 1 with its number and (length-delimited) bytes, 0 at the
 * end, -1 when malformed. Other wire types are skipped (val NULL). */
static int pb_next(pb_t *b, int *num, pb_t *val)
{
  uint64_t key, n;
  if (b->p >= b->end) {
    return 0;
  }
  if (pb_varint(b, &key) < 0) {
    return -1;
  }
  *num = (int)(key >> 3);
  val->p = val->end = NULL;
  switch (key & 7) {
    case 0:
      return pb_varint(b, &n) < 0 ? -1 : 1;
    case 1:
      n = 8;
      break;
    case 5:
      n = 4;
      break;
    case 2:
      if (pb_varint(b, &n) < 0 || n > (uint64_t)(b->end - b->p)) {
        return -1;
      }
      val->p = b->p;
      val->end = b->p + n;
      break;
    default:
      return -1;
  }
  if (n > (uint64_t)(b->end - b->p)) {
    return -1;
  }
  b->p += n;
  return 1;
}

/* The length-delimited field `num` of message b, or -1. */
static int pb_find(pb_t b, int want, pb_t *out)
{
  int num, rc;
  pb_t v;
  while ((rc = pb_next(&b, &num, &v)) == 1) {
    if (num == want && v.p) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

static json_object *pb_strings(pb_t m, const char *const *names, int n)
{
  json_object *o = json_object_new_object();
  int num;
  pb_t v;
  while (pb_next(&m, &num, &v) == 1) {
    if (num >= 1 && num <= n && v.p) {
      json_object_object_add(o, names[num - 1],
                             json_object_new_string_len((const char *)v.p, (int)(v.end - v.p)));
    }
  }
  return o;
}

static json_object *ssar_from_protobuf(const char *body, size_t len)
{
  static const char *const ra[] = {"namespace", "verb",        "group", "version",
                                   "resource",  "subresource", "name"};
  static const char *const nra[] = {"path", "verb"};
  if (len < 4 || memcmp(body, "k8s", 4) != 0) {
    return NULL;
  }
  pb_t env = {(const unsigned char *)body + 4, (const unsigned char *)body + len}, raw, spec, attrs;
  if (pb_find(env, 2, &raw) < 0 || pb_find(raw, 2, &spec) < 0) {
    return NULL;
  }
  json_object *js = json_object_new_object();
  if (pb_find(spec, 1, &attrs) == 0) {
    json_object *a = pb_strings(attrs, ra, 7);
    json_object_object_add(js, "resourceAttributes", a);
  } else if (pb_find(spec, 2, &attrs) == 0) {
    json_object_object_add(js, "nonResourceAttributes", pb_strings(attrs, nra, 2));
  }
  json_object *o = json_object_new_object();
  json_object_object_add(o, "spec", js);
  return o;
}

static void do_ssar(emu_t *e, kuala__httpd_req_t *req, const emu_user_t *user)
{
  size_t len = 0;
  const char *body = kuala__httpd_body(req, &len);
  const char *ct = kuala__httpd_header(req, "Content-Type");
  json_object *in = NULL;
  if (body && len && ct && strstr(ct, "protobuf")) {
    in = ssar_from_protobuf(body, len);
  } else if (body && len) {
    kuala_json_parse(&in, body, len, NULL, 0);
  }
  json_object *spec = NULL, *ra = NULL, *nra = NULL;
  if (!in || !json_object_object_get_ex(in, "spec", &spec) ||
      (!json_object_object_get_ex(spec, "resourceAttributes", &ra) &&
       !json_object_object_get_ex(spec, "nonResourceAttributes", &nra))) {
    json_object_put(in);
    emu_reply_code(req, 422,
                   "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: "
                   "spec.resourceAttributes: Invalid value: \"null\": exactly one of "
                   "nonResourceAttributes or resourceAttributes must be specified");
    return;
  }
  emu_attrs_t a;
  memset(&a, 0, sizeof a);
  a.user = user;
  if (ra) {
    a.resource_request = 1;
    a.verb = jget(ra, "verb");
    a.group = jget(ra, "group");
    a.version = jget(ra, "version");
    a.resource = jget(ra, "resource");
    a.subresource = jget(ra, "subresource");
    a.ns = jget(ra, "namespace");
    a.name = jget(ra, "name");
  } else {
    a.verb = jget(nra, "verb");
    a.path = jget(nra, "path");
  }
  char reason[1024];
  int ok = allowed(e, &a, reason, sizeof reason);
  json_object *out = json_object_new_object();
  kuala_json_set_str(out, "kind", "SelfSubjectAccessReview");
  kuala_json_set_str(out, "apiVersion", "authorization.k8s.io/v1");
  json_object *md = json_object_new_object();
  json_object_object_add(md, "creationTimestamp", NULL);
  json_object_object_add(out, "metadata", md);
  json_object_object_add(out, "spec", json_object_get(spec));
  json_object *st = json_object_new_object();
  json_object_object_add(st, "allowed", json_object_new_boolean(ok));
  if (reason[0]) {
    kuala_json_set_str(st, "reason", reason);
  }
  json_object_object_add(out, "status", st);
  json_object_put(in);
  emu_reply_json(req, 201, out);
}

/* ---- the filter ---- */

static int unauthorized(kuala__httpd_req_t *req)
{
  kuala_apierr_t err = KUALA_APIERR_INIT;
  kuala__apierr_set(&err, 401, NULL, "Unauthorized");
  emu_reply_err(req, &err);
  return 1;
}

#define EXTRA_PREFIX "Impersonate-Extra-"

/* The i-th Impersonate-Extra-<key> header from `from`: its key (lower
 * case, percent-decoded, as kube-apiserver reads it) in key[], its value;
 * -1 past the last. */
static int extra_header(kuala__httpd_req_t *req, size_t *from, char *key, size_t keylen,
                        const char **value)
{
  const char *name;
  while (kuala__httpd_header_nth(req, (*from)++, &name, value)) {
    size_t pl = sizeof EXTRA_PREFIX - 1;
    if (strncasecmp(name, EXTRA_PREFIX, pl) != 0) {
      continue;
    }
    char lower[256];
    size_t k = 0;
    for (const char *c = name + pl; *c && k + 1 < sizeof lower; c++) {
      lower[k++] = (char)tolower((unsigned char)*c);
    }
    lower[k] = '\0';
    kuala__httpd_unescape(lower, key, keylen);
    return 0;
  }
  return -1;
}

/* The user after impersonation, or -1 when the request was answered.
 * Impersonate-User, every Impersonate-Group header, Impersonate-Uid and
 * every Impersonate-Extra-<key> value are each checked with the
 * `impersonate` verb (users or serviceaccounts, groups,
 * authentication.k8s.io uids and userextras/<key>), as kube-apiserver
 * does. (The extras are checked, not kept: nothing here reads them.) */
static int impersonate(emu_t *e, kuala__httpd_req_t *req, emu_user_t *u)
{
  const char *as = kuala__httpd_header(req, "Impersonate-User");
  const char *group = kuala__httpd_header(req, "Impersonate-Group");
  const char *uid = kuala__httpd_header(req, "Impersonate-Uid");
  char xkey[256];
  const char *xval = NULL;
  size_t xfrom = 0;
  int extra = extra_header(req, &xfrom, xkey, sizeof xkey, &xval) == 0;
  if (!as && !group && !uid && !extra) {
    return 0;
  }
  if (!as || !*as) {
    emu_reply_code(req, 400,
                   group   ? "requested impersonation of groups without impersonating a user"
                   : extra ? "requested impersonation of user extras without impersonating a user"
                           : "requested impersonation of uid without impersonating a user");
    return -1;
  }
  emu_attrs_t a;
  memset(&a, 0, sizeof a);
  a.user = u;
  a.resource_request = 1;
  a.verb = "impersonate";
  a.group = "";
  a.subresource = "";
  char sa_ns[256] = "", sa_name[256] = "";
  const char *rest = strncmp(as, "system:serviceaccount:", 22) == 0 ? as + 22 : NULL;
  const char *colon = rest ? strchr(rest, ':') : NULL;
  if (colon && (size_t)(colon - rest) < sizeof sa_ns) {
    snprintf(sa_ns, sizeof sa_ns, "%.*s", (int)(colon - rest), rest);
    snprintf(sa_name, sizeof sa_name, "%s", colon + 1);
    a.resource = "serviceaccounts";
    a.ns = sa_ns;
    a.name = sa_name;
  } else {
    a.resource = "users";
    a.ns = "";
    a.name = as;
  }
  char reason[1024];
  if (!allowed(e, &a, reason, sizeof reason)) {
    forbid(req, &a, reason);
    return -1;
  }
  a.resource = "groups";
  a.ns = "";
  for (size_t i = 0; (group = kuala__httpd_header_at(req, "Impersonate-Group", i)) != NULL; i++) {
    a.name = group;
    if (!allowed(e, &a, reason, sizeof reason)) {
      forbid(req, &a, reason);
      return -1;
    }
  }
  if (uid) {
    a.group = "authentication.k8s.io";
    a.resource = "uids";
    a.name = uid;
    if (!allowed(e, &a, reason, sizeof reason)) {
      forbid(req, &a, reason);
      return -1;
    }
  }
  a.group = "authentication.k8s.io";
  a.resource = "userextras";
  for (xfrom = 0; extra_header(req, &xfrom, xkey, sizeof xkey, &xval) == 0;) {
    a.subresource = xkey;
    a.name = xval;
    if (!allowed(e, &a, reason, sizeof reason)) {
      forbid(req, &a, reason);
      return -1;
    }
  }
  emu_user_t nu;
  emu_user_init(&nu, as, uid ? uid : "");
  int groups = 0;
  for (size_t i = 0; (group = kuala__httpd_header_at(req, "Impersonate-Group", i)) != NULL; i++) {
    emu_user_add_group(&nu, group);
    groups++;
  }
  if (!groups && sa_ns[0]) {
    char g[300];
    emu_user_add_group(&nu, "system:serviceaccounts");
    snprintf(g, sizeof g, "system:serviceaccounts:%s", sa_ns);
    emu_user_add_group(&nu, g);
  }
  if (strcmp(as, "system:anonymous") != 0) {
    emu_user_add_group(&nu, "system:authenticated");
  }
  emu_user_free(u);
  *u = nu;
  return 0;
}

/* ---- escalation prevention ---- */

/* Writing a Role or ClusterRole must not grant what the writer does not
 * hold, unless it may `escalate`; writing a binding must not either,
 * unless it may `bind` the role it names (kube-apiserver's RBAC registry).
 * The rules come from the body (the whole object, a merge/apply patch that
 * sets `rules`, or the values of a JSON patch under /rules); a binding's
 * roleRef from the body or, since it cannot change, the stored object.
 * 1 when the request was refused (answered), else 0. */
static int escalation(emu_t *e, kuala__httpd_req_t *req, const emu_attrs_t *a)
{
  int binding =
      strcmp(a->resource, "rolebindings") == 0 || strcmp(a->resource, "clusterrolebindings") == 0;
  int role = strcmp(a->resource, "roles") == 0 || strcmp(a->resource, "clusterroles") == 0;
  if ((!binding && !role) || *a->subresource || emu_user_in_group(a->user, "system:masters")) {
    return 0;
  }
  size_t len = 0;
  const char *body = kuala__httpd_body(req, &len);
  json_object *in = NULL;
  if (body && len) { /* as write.c decodes it: kubectl's typed clients send protobuf */
    const char *ct = kuala__httpd_header(req, "Content-Type");
    kuala_apierr_t err = KUALA_APIERR_INIT;
    if (kuala__pb_is_protobuf(ct)) {
      kuala__pb_decode(&in, (const unsigned char *)body, len, &err);
    } else if (ct && strstr(ct, "yaml")) {
      kuala__patch_yaml_decode(&in, body, len, &err);
    } else {
      kuala_json_parse(&in, body, len, NULL, 0);
    }
    kuala__apierr_clear(&err);
  }
  const char *name = a->name;
  const char *body_name = kuala_json_path_str(in, "metadata.name");
  if ((!name || !*name) && body_name) {
    name = body_name;
  }
  json_object *stored = NULL;
  emu_rtype_t *rt = emu_rtype_find(e, "rbac.authorization.k8s.io", "v1", a->resource);
  emu_obj_t *so =
      rt && name && *name ? emu_store_get(rt->store, *a->ns ? a->ns : NULL, name) : NULL;
  if (so) {
    stored = emu_obj_parse(so);
  }
  const emu_policy_t *p = policy(e);
  char msg[4096] = "";
  int refused = 0;
  json_object *rules = NULL, *owned = NULL;
  emu_attrs_t ba = {.user = a->user,
                    .resource_request = 1,
                    .group = "rbac.authorization.k8s.io",
                    .version = "v1",
                    .subresource = "",
                    .ns = a->ns};
  char reason[1024];
  if (binding) {
    json_object *ref = kuala_json_path(in, "roleRef");
    if (!json_object_is_type(ref, json_type_object)) {
      ref = kuala_json_path(stored, "roleRef");
    }
    const char *kind = kuala_json_path_str(ref, "kind"), *rname = kuala_json_path_str(ref, "name");
    if (kind && rname) {
      const char *plural = strcmp(kind, "Role") == 0 ? "roles" : "clusterroles";
      ba.verb = "bind";
      ba.resource = plural;
      ba.name = rname;
      if (!emu_rbac_authorize(p, &ba, reason, sizeof reason)) {
        rules = emu_rbac_role_rules(p, kind, rname, a->ns);
        if (!rules) {
          snprintf(msg, sizeof msg, "%s.rbac.authorization.k8s.io \"%s\" not found", plural, rname);
          refuse(req, 404, "rbac.authorization.k8s.io", plural, rname, msg);
          refused = 1;
        }
      }
    }
  } else {
    rules = kuala_json_path(in, "rules");
    if (!json_object_is_type(rules, json_type_array)) {
      rules = NULL;
    }
    if (!rules && in && json_object_is_type(in, json_type_array)) {
      owned = json_object_new_array(); /* JSON patch: what it puts under /rules */
      for (size_t i = 0; i < json_object_array_length(in); i++) {
        json_object *op = json_object_array_get_idx(in, i), *v;
        const char *path = kuala_json_path_str(op, "path");
        if (!path || strncmp(path, "/rules", 6) != 0 ||
            !json_object_object_get_ex(op, "value", &v)) {
          continue;
        }
        size_t nv = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 1;
        for (size_t j = 0; j < nv; j++) {
          json_object *x =
              json_object_is_type(v, json_type_array) ? json_object_array_get_idx(v, j) : v;
          if (json_object_is_type(x, json_type_object)) {
            json_object_array_add(owned, json_object_get(x));
          }
        }
      }
      rules = owned;
    }
    if (rules) {
      ba.verb = "escalate";
      ba.resource = a->resource;
      ba.name = name ? name : "";
      if (emu_rbac_authorize(p, &ba, reason, sizeof reason)) {
        rules = NULL;
      }
    }
  }
  char why[3500];
  if (!refused && rules && !emu_rbac_covers(p, a->user, a->ns, rules, why, sizeof why)) {
    snprintf(msg, sizeof msg, "%s.rbac.authorization.k8s.io \"%s\" is forbidden: %s", a->resource,
             name ? name : "", why);
    refuse(req, 403, "rbac.authorization.k8s.io", a->resource, name, msg);
    refused = 1;
  }
  json_object_put(owned);
  json_object_put(stored);
  json_object_put(in);
  return refused;
}

static int filter(emu_t *e, kuala__httpd_req_t *req, emu_user_t *u)
{
  const char *auth = kuala__httpd_header(req, "Authorization");
  const char *tok = auth && strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
  if (tok && e->token && strcmp(tok, e->token) == 0) {
    emu_user_init(u, "kuala-admin", "");
    emu_user_add_group(u, "system:masters");
    emu_user_add_group(u, "system:authenticated");
  } else if (tok && A.configured && emu_tokens_find(&A.tokens, tok)) {
    emu_user_copy(u, emu_tokens_find(&A.tokens, tok));
    emu_user_add_group(u, "system:authenticated");
  } else if (auth && (e->token || A.configured)) {
    return unauthorized(req);
  } else if (!auth && e->token && !A.configured) {
    return unauthorized(req); /* the original --token behaviour */
  } else {
    emu_user_init(u, "system:anonymous", "");
    emu_user_add_group(u, "system:unauthenticated");
  }
  if (impersonate(e, req, u) < 0) {
    return 1;
  }
  const char *method = kuala__httpd_method(req);
  const char *path = kuala__httpd_path(req);
  const char *w = kuala__httpd_query(req, "watch");
  int watch = w && (strcmp(w, "true") == 0 || strcmp(w, "1") == 0);
  const char *fs = kuala__httpd_query(req, "fieldSelector");
  const char *fs_name = NULL;
  if (fs && strncmp(fs, "metadata.name=", 14) == 0 && !strchr(fs, ',')) {
    fs_name = fs + 14;
  }
  char buf[2048];
  emu_attrs_t a;
  emu_attrs_from_request(&a, u, method, path, watch, fs_name, buf, sizeof buf);
  char reason[1024];
  if (!allowed(e, &a, reason, sizeof reason)) {
    forbid(req, &a, reason);
    return 1;
  }
  if (A.rbac && a.resource_request && strcmp(a.group, "rbac.authorization.k8s.io") == 0 &&
      (strcmp(a.verb, "create") == 0 || strcmp(a.verb, "update") == 0 ||
       strcmp(a.verb, "patch") == 0) &&
      escalation(e, req, &a)) {
    return 1;
  }
  if (a.resource_request && strcmp(a.group, "authorization.k8s.io") == 0 &&
      strcmp(a.resource, "selfsubjectaccessreviews") == 0 && !*a.ns && !*a.name) {
    if (strcmp(method, "POST") != 0) {
      emu_reply_code(req, 405, "the server does not allow this method on the requested resource");
    } else {
      do_ssar(e, req, u);
    }
    return 1;
  }
  return 0;
}

int emu_auth_filter(emu_t *e, kuala__httpd_req_t *req)
{
  emu_user_t u;
  memset(&u, 0, sizeof u);
  int rc = filter(e, req, &u);
  emu_user_free(&u);
  return rc;
}
