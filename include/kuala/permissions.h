/*
 * permissions.h: what a bundle may do against the API server.
 *
 * A bundle's permissions are the union of
 *   - what its controllers imply: every watched type (watch, owns, watches,
 *     reads) may be read (get, list, watch); owned types may also be
 *     written (create, update, patch, delete); the primary type's status
 *     (update, patch on "<type>/status") and the primary itself (update,
 *     patch: finalizers) may be written;
 *   - Events (core and events.k8s.io: create, update, patch), always;
 *   - what it declares with kuala.permissions{{"v1/Secret", "get,create"},
 *     {"apps/v1/Deployment/scale", "update"}} (optionally limited to
 *     resource names).
 * The manager checks every API call and cache read of a bundle against them
 * before a request leaves (KUALA_EFORBIDDEN otherwise), and `kuala rbac`
 * turns them into RBAC rules.
 *
 * Types are matched by API group (not version), kind and subresource.
 * Ownership: the set owns its rules; strings passed in are copied; returned
 * pointers are borrowed until the set is freed.
 */
#ifndef KUALA_PERMISSIONS_H
#define KUALA_PERMISSIONS_H

#include <stddef.h>

typedef struct kuala_permissions_s kuala_permissions_t;

/* Verb bits. */
enum {
  KUALA_VERB_GET = 1 << 0,
  KUALA_VERB_LIST = 1 << 1,
  KUALA_VERB_WATCH = 1 << 2,
  KUALA_VERB_CREATE = 1 << 3,
  KUALA_VERB_UPDATE = 1 << 4,
  KUALA_VERB_PATCH = 1 << 5,
  KUALA_VERB_DELETE = 1 << 6,
  KUALA_VERB_DELETECOLLECTION = 1 << 7,
  KUALA_VERB_ALL = (1 << 8) - 1, /* "*": the eight verbs above */
  /* RBAC's escalation-prevention verbs on Roles and ClusterRoles: `bind`
   * lets a bundle create bindings to a role whose permissions it does not
   * hold itself, `escalate` lets it write such roles. Declared by name
   * only (not part of "*"); the engine never sends them, they go to the
   * RBAC that `kuala rbac` generates. */
  KUALA_VERB_BIND = 1 << 8,
  KUALA_VERB_ESCALATE = 1 << 9,
};

/* One rule. */
typedef struct {
  char *group;   /* "" = core */
  char *version; /* as first declared ("v1"), for `kuala rbac` look-ups */
  char *kind;
  char *sub;      /* "" or "status", "scale", ... */
  unsigned verbs; /* KUALA_VERB_* bits */
  char **names;   /* NULL-terminated resource names, or NULL = any */
  int implied;    /* from a controller, not from kuala.permissions */
} kuala_permission_t;

/* An empty set for bundle `bundle` (Events are always allowed). */
int kuala_permissions_new(kuala_permissions_t **out, const char *bundle);
void kuala_permissions_free(kuala_permissions_t *p);
const char *kuala_permissions_bundle(const kuala_permissions_t *p);

/* Add what one controller implies; `json` is kuala_bundle_controller_json's
 * format ("watch", "owns", "watches" and an optional "reads" array of
 * {"apiVersion", "kind"}). KUALA_EINVAL with a message in err. */
int kuala_permissions_add_controller(kuala_permissions_t *p, const char *json, size_t len,
                                     char *err, size_t errlen);
/* Add declarations: a JSON array of {"type": "apps/v1/Deployment[/sub]",
 * "verbs": ["get", ...] | "get,list", "names": [...]?}. KUALA_EINVAL with a
 * message (unknown verb, bad type) in err. */
int kuala_permissions_add_declared(kuala_permissions_t *p, const char *json, size_t len, char *err,
                                   size_t errlen);

/* Whether the set allows every verb of `verbs` on the type (`name` may be
 * NULL: rules limited to names then do not count). 0, or KUALA_EFORBIDDEN
 * with a message naming the bundle, the verb, the type and the declaration
 * to add in msg. `cache` words the message for cache reads. */
int kuala_permissions_check(const kuala_permissions_t *p, unsigned verbs, const char *api_version,
                            const char *kind, const char *sub, const char *name, int cache,
                            char *msg, size_t len);

/* Rules, in a stable order (sorted by group, kind, sub). */
size_t kuala_permissions_count(const kuala_permissions_t *p);
const kuala_permission_t *kuala_permissions_at(const kuala_permissions_t *p, size_t i);

/* Verb bits <-> names: "get", "list", ..., "bind", "escalate", "*" (the
 * eight resource verbs). 0 for an unknown name. */
unsigned kuala_verb_bit(const char *name);
/* Comma-separated names of `verbs` in RBAC order (get,list,watch,create,
 * update,patch,delete,deletecollection,bind,escalate) into out. */
void kuala_verbs_format(unsigned verbs, char *out, size_t len);

#endif /* KUALA_PERMISSIONS_H */
