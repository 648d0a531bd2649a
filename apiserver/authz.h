/*
 * authz.h: authentication and RBAC authorization of kuala-apiserver, the
 * pure part (no emulator state), so unit tests can drive it with JSON.
 *
 *   emu_tokens_*        kube-apiserver's static token file (--token-auth-file)
 *   emu_attrs_*         a request's authorization attributes (kube's
 *                       RequestInfo: verb, API group, resource, subresource,
 *                       namespace, name, or a non-resource path)
 *   emu_rbac_authorize  the RBAC decision for attributes against a policy
 *                       (the four RBAC kinds as JSON arrays) plus the
 *                       bootstrap defaults kube-apiserver installs
 *                       (system:discovery, system:basic-user,
 *                       system:public-info-viewer) and system:masters
 *   emu_forbidden_*     the 403 message, worded like kube-apiserver's
 *
 * Ownership: every struct owns its strings; attributes borrow theirs from
 * the caller's buffers. Policies are borrowed.
 */
#ifndef KUALA_APISERVER_AUTHZ_H
#define KUALA_APISERVER_AUTHZ_H

#include <json-c/json.h>
#include <stddef.h>

/* An authenticated (or impersonated) user. */
typedef struct {
  char *name;
  char *uid;
  char **groups; /* owned strings */
  size_t ngroups;
} emu_user_t;

void emu_user_init(emu_user_t *u, const char *name, const char *uid);
void emu_user_add_group(emu_user_t *u, const char *group);
int emu_user_in_group(const emu_user_t *u, const char *group);
void emu_user_copy(emu_user_t *dst, const emu_user_t *src);
void emu_user_free(emu_user_t *u);

/* The static token file: one user per line, `token,user,uid[,"g1,g2"]`. */
typedef struct {
  char *token;
  emu_user_t user;
} emu_token_t;

typedef struct {
  emu_token_t *v;
  size_t n;
} emu_tokens_t;

/* Parse `text` (the file's content). 0, or -1 with a message naming the
 * line in err. */
int emu_tokens_parse(emu_tokens_t *t, const char *text, char *err, size_t errlen);
/* The user of `token` (borrowed) or NULL. */
const emu_user_t *emu_tokens_find(const emu_tokens_t *t, const char *token);
void emu_tokens_free(emu_tokens_t *t);

/* Authorization attributes. Strings are borrowed. */
typedef struct {
  const emu_user_t *user;
  const char *verb; /* get list watch create update patch delete deletecollection impersonate */
  int resource_request;
  const char *path; /* non-resource requests */
  const char *group, *version, *resource, *subresource, *ns, *name;
} emu_attrs_t;

/* Fill attributes from a request, the way kube-apiserver's RequestInfo
 * does. `path` is copied into `buf` (cap `buflen`) and split there; `watch`
 * is the watch=true query flag; `fs_name` the metadata.name of a field
 * selector (list/watch of one object) or NULL. */
void emu_attrs_from_request(emu_attrs_t *a, const emu_user_t *user, const char *method,
                            const char *path, int watch, const char *fs_name, char *buf,
                            size_t buflen);

/* What RBAC reads: JSON arrays of objects (any may be NULL = empty). */
typedef struct {
  json_object *cluster_roles, *roles, *cluster_role_bindings, *role_bindings;
} emu_policy_t;

/* Complete a policy built from stored objects as the cluster would see
 * it: add the bootstrap ClusterRoles that no stored one replaces (admin,
 * edit, view, cluster-admin, the system:aggregate-to-* roles...), then give
 * every ClusterRole with an aggregationRule the rules of the ClusterRoles
 * its clusterRoleSelectors match (the controller-manager's aggregation;
 * the stored objects themselves are not rewritten). */
void emu_rbac_policy_finish(emu_policy_t *p);

/* 1 when allowed (reason: "RBAC: allowed by ..."), 0 when denied (reason:
 * "" or "RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found" when
 * a binding points at a missing role, as kube-apiserver says). */
int emu_rbac_authorize(const emu_policy_t *p, const emu_attrs_t *a, char *reason, size_t len);

/* Escalation prevention, as kube-apiserver's RBAC registry does it when
 * Roles, ClusterRoles and their bindings are written:
 *
 * emu_rbac_role_rules: the rules of a roleRef (kind "Role" in namespace ns,
 * or "ClusterRole", the bootstrap ones included), borrowed; NULL when the
 * role does not exist.
 *
 * emu_rbac_covers: 1 when `u` already holds every permission `rules` grant,
 * in namespace ns ("" = cluster-wide), so writing a role with these rules or
 * a binding to it grants nothing new; else 0 with kube-apiserver's message
 * in msg: user "u" (groups=["g" ...]) is attempting to grant RBAC
 * permissions not currently held:\n{APIGroups:["apps"], Resources:[...],
 * Verbs:[...]} (one line per missing rule, verbs merged, sorted).
 * system:masters holds everything. */
json_object *emu_rbac_role_rules(const emu_policy_t *p, const char *kind, const char *name,
                                 const char *ns);
int emu_rbac_covers(const emu_policy_t *p, const emu_user_t *u, const char *ns, json_object *rules,
                    char *msg, size_t len);

/* kube-apiserver's 403 message for denied attributes:
 *   deployments.apps "x" is forbidden: User "u" cannot patch resource
 *   "deployments" in API group "apps" in the namespace "ns"
 * (plus ": reason" when the reason is not empty). */
void emu_forbidden_message(const emu_attrs_t *a, const char *reason, char *out, size_t len);

#endif /* KUALA_APISERVER_AUTHZ_H */
