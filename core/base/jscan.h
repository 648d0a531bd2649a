/*
 * jscan.h: a single-pass, validating scanner for the JSON the informers
 * ingest (list pages, watch events, single objects).
 *
 * One walk over the wire bytes checks the text exactly as
 * kuala_json_validate() does (strict RFC 8259, depth capped) and records,
 * without building a tree or allocating per value, where the parts the
 * store needs are: each object's span and its metadata's name, namespace,
 * resourceVersion, uid, labels and ownerReferences; a list's items,
 * metadata.continue and metadata.resourceVersion; a watch event's type
 * and object. Strings are recorded raw (between the quotes, escapes kept);
 * kuala__jscan_unescape() decodes them the way json-c does.
 *
 * Duplicate keys among the members read are refused where the text and a
 * decoder could disagree: at the top of a list or event and in a list's
 * metadata the whole document fails; inside an object ("metadata" twice,
 * "name" twice...) only that object is marked (dup) so a list page keeps
 * its other items.
 *
 * Ownership: results point into the scanned text (offsets) and into a
 * caller-owned kuala__jscan_t whose item array is reused across calls.
 */
#ifndef KUALA_JSCAN_H
#define KUALA_JSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "kuala/buf.h"

/* A string value: the bytes between its quotes at text + off. */
typedef struct {
  size_t off;
  size_t len;
  uint8_t set; /* the member was present and a string */
  uint8_t esc; /* contains a backslash escape */
} kuala__jstr_t;

/* A container value's text (len 0 = absent or not the expected type). */
typedef struct {
  size_t off;
  size_t len;
} kuala__jspan_t;

enum {
  KUALA_JOBJ_NOTOBJ = 1, /* the value is not a JSON object */
  KUALA_JOBJ_META = 2,   /* has a "metadata" member that is an object */
  KUALA_JOBJ_DUP = 4,    /* a key read by the store appears twice */
};

/* One object (a list item, a watch event's object, a document). */
typedef struct kuala__jobj_s {
  size_t off, len; /* the whole value's text */
  kuala__jstr_t name, ns, rv, uid;
  kuala__jspan_t labels; /* metadata.labels, when an object */
  kuala__jspan_t owners; /* metadata.ownerReferences, when an array */
  unsigned flags;        /* KUALA_JOBJ_* */
} kuala__jobj_t;

typedef enum {
  KUALA_JSCAN_OBJECT = 0, /* one object: result in obj */
  KUALA_JSCAN_LIST = 1,   /* a List: items[], cont, rv */
  KUALA_JSCAN_EVENT = 2,  /* a watch event: type, obj */
} kuala__jscan_mode_t;

enum {
  KUALA_JITEMS_ABSENT = 0,
  KUALA_JITEMS_NULL = 1,
  KUALA_JITEMS_ARRAY = 2,
  KUALA_JITEMS_OTHER = 3, /* present but neither an array nor null */
};

typedef struct {
  /* Results of the last kuala__jscan(). */
  kuala__jobj_t obj;    /* OBJECT / EVENT modes */
  kuala__jstr_t type;   /* EVENT: "type" */
  kuala__jstr_t cont;   /* LIST: metadata.continue */
  kuala__jstr_t rv;     /* LIST: metadata.resourceVersion */
  int items_kind;       /* LIST: KUALA_JITEMS_* */
  int top_is_object;    /* the document is a JSON object */
  kuala__jobj_t *items; /* LIST: one per element of items, in order */
  size_t nitems;
  size_t items_cap; /* kept across calls (kuala__jscan_free releases it) */
} kuala__jscan_t;

void kuala__jscan_init(kuala__jscan_t *sc);
void kuala__jscan_free(kuala__jscan_t *sc);

/* Scan s[0..len) in `mode`. Returns 0 when the text is one valid JSON
 * value nested at most max_depth (capped at KUALA_JSON_WIRE_DEPTH) deep,
 * else KUALA_EBADMSG with the reason (and offset) kuala_json_validate
 * writes into err. In LIST and EVENT modes a duplicate
 * "items"/"metadata"/"continue"/"resourceVersion" or "type"/"object" fails
 * an otherwise valid document ("duplicate key at offset N", the first
 * one). The structure (an object at the top,
 * items an array...) is reported, not enforced. */
int kuala__jscan(kuala__jscan_t *sc, kuala__jscan_mode_t mode, const char *s, size_t len,
                 size_t max_depth, char *err, size_t errlen);

/* Append the decoded bytes of a raw string (as recorded in a kuala__jstr_t;
 * the text must have passed the scan) to out, exactly as json-c decodes
 * it: \uXXXX to UTF-8, a surrogate pair to one code point, a lone
 * surrogate to U+FFFD. No NUL is added. */
void kuala__jscan_unescape(const char *raw, size_t len, kuala_buf_t *out);

/* The token scanners kuala_json_validate shares (strict RFC 8259, messages
 * "<why> at offset N" in err, KUALA_EBADMSG). s[*i] starts the token; on
 * success *i is just past it. kuala__jscan_string: s[*i] is the opening
 * quote, *esc says whether an escape was met. */
int kuala__jscan_string(const char *s, size_t n, size_t *i, int *esc, char *err, size_t errlen);
int kuala__jscan_number(const char *s, size_t n, size_t *i, char *err, size_t errlen);
int kuala__jscan_literal(const char *s, size_t n, size_t *i, char *err, size_t errlen);
/* The code point of the four hex digits at p (the text passed the scan). */
unsigned kuala__jscan_hex4(const char *p);
/* The UTF-8 bytes of code point cp (at most 0x10FFFF) in b; their count. */
size_t kuala__utf8_encode(unsigned cp, char b[4]);
/* Any scalar (string, number, literal) at s[*i], by its first byte; any
 * other byte is "unexpected character 'c'" / "unexpected byte 0xNN". */
int kuala__jscan_scalar(const char *s, size_t n, size_t *i, int *esc, char *err, size_t errlen);

#endif /* KUALA_JSCAN_H */
