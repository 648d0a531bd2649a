/*
 * Kubernetes label and field selectors.
 *
 * Parse once, match many times. A label selector accepts the full grammar of
 * `labelSelector=` (k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k, k>N,
 * k<N; requirements separated by commas, all must hold). A field selector
 * accepts `fieldSelector=` terms (k=v, k==v, k!=v; `\,` `\=` `\\` escapes).
 *
 * Both compile into the same opaque kuala_selector_t. Matching asks the
 * caller for the value of a key through a lookup callback, so a selector can
 * be matched against a json-c labels object, against parallel key/value
 * arrays, or against computed field values (metadata.name, status.phase...).
 *
 * An empty selector (empty or NULL text) matches everything.
 *
 * Example:
 *
 *   kuala_selector_t *sel;
 *   char err[256];
 *   if (kuala_selector_parse_labels(&sel, "env in (prod,qa),!canary", err, sizeof err) < 0)
 *     fprintf(stderr, "bad selector: %s\n", err);
 *   else if (kuala_selector_matches_json(sel, labels_obj)) ...
 *   kuala_selector_free(sel);
 */
#ifndef KUALA_SELECTOR_H
#define KUALA_SELECTOR_H

#include <stddef.h>

struct json_object;

typedef struct kuala_selector_s kuala_selector_t;

typedef enum {
  KUALA_SEL_EQ = 0,     /* k=v, k==v: present and equal */
  KUALA_SEL_NEQ = 1,    /* k!=v: absent or different */
  KUALA_SEL_IN = 2,     /* k in (...): present and one of the values */
  KUALA_SEL_NOTIN = 3,  /* k notin (...): absent or none of the values */
  KUALA_SEL_EXISTS = 4, /* k */
  KUALA_SEL_ABSENT = 5, /* !k */
  KUALA_SEL_GT = 6,     /* k>N: present, integer, greater */
  KUALA_SEL_LT = 7,     /* k<N: present, integer, smaller */
} kuala_selector_op_t;

/* Value lookup used by matching: return the value of `key` (borrowed, must
 * stay valid until the match returns) or NULL when the key is absent. */
typedef const char *(*kuala_selector_lookup_cb)(void *data, const char *key);

/* Parse a label selector. On failure returns KUALA_EINVAL, writes a message
 * (e.g. `unable to parse requirement: ...`) into err (if err != NULL) and
 * sets *out to NULL. `text` may be NULL or empty (matches everything). */
int kuala_selector_parse_labels(kuala_selector_t **out, const char *text, char *err, size_t errlen);

/* Parse a field selector (=, ==, != only, with escapes). Keys are not checked
 * here: the caller decides which field labels it supports, see
 * kuala_selector_req(). */
int kuala_selector_parse_fields(kuala_selector_t **out, const char *text, char *err, size_t errlen);

void kuala_selector_free(kuala_selector_t *sel);

/* 1 when the selector has no requirement (matches everything). */
int kuala_selector_empty(const kuala_selector_t *sel);

/* Number of requirements, and access to requirement i (all out-parameters
 * optional, returned pointers borrowed from sel). */
size_t kuala_selector_count(const kuala_selector_t *sel);
void kuala_selector_req(const kuala_selector_t *sel, size_t i, const char **key,
                        kuala_selector_op_t *op, const char *const **values, size_t *nvalues);

/* The value a field selector pins for `key` with = or ==, or NULL. Used to
 * serve `metadata.name=x` from an index instead of a scan. */
const char *kuala_selector_pinned(const kuala_selector_t *sel, const char *key);

/* Matching. Each returns 1 for a match and 0 otherwise; a NULL selector
 * matches everything. */
int kuala_selector_matches(const kuala_selector_t *sel, kuala_selector_lookup_cb lookup,
                           void *data);
/* `labels` is a json-c object of string values (NULL = no labels). */
int kuala_selector_matches_json(const kuala_selector_t *sel, struct json_object *labels);
/* Parallel arrays keys[i] = values[i], n entries. */
int kuala_selector_matches_kv(const kuala_selector_t *sel, const char *const *keys,
                              const char *const *values, size_t n);

/* Canonical text of the selector (requirements in parse order), written into
 * buf; returns the length it needed (like snprintf). */
size_t kuala_selector_format(const kuala_selector_t *sel, char *buf, size_t buflen);

#endif /* KUALA_SELECTOR_H */
