/*
 * Unit tests for the validating ingest scanner (core/base/jscan.c) and the
 * store's puts from scanned text (kuala__store_put_text).
 */
#include <check.h>

#include "kuala_test.h"
#include <stdlib.h>
#include <string.h>

#include "base/jscan.h"
#include "cache/store.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/selector.h"

static const char *const bad_docs[] = {"[1,2,]",
                                       "{\"a\":1,}",
                                       "[0088]",
                                       "[01]",
                                       "['a']",
                                       "{'a':1}",
                                       "[1 /*c*/]",
                                       "# c\n[1]",
                                       "[TRUE]",
                                       "[NaN]",
                                       "[Infinity]",
                                       "[-Infinity]",
                                       "[1.]",
                                       "[.5]",
                                       "[+1]",
                                       "[0x10]",
                                       "[1e]",
                                       "[1e+]",
                                       "[-]",
                                       "[\"a\tb\"]",
                                       "[\"a\nb\"]",
                                       "[\"\\x\"]",
                                       "[\"\\u12\"]",
                                       "[\"\\u12g4\"]",
                                       "{\"a\" 1}",
                                       "{a:1}",
                                       "[1 2]",
                                       "[1,,2]",
                                       "[,1]",
                                       "{,}",
                                       "{\"a\":1 \"b\":2}",
                                       "[nul]",
                                       "[truee]",
                                       "[\"a\"",
                                       "\"a",
                                       "",
                                       "  ",
                                       "[1]]",
                                       "[1] [2]",
                                       "\xef\xbb\xbf[1]",
                                       "[\v1]",
                                       "[\"\x01\"]",
                                       "{\"items\":[{\"metadata\":{\"name\":\"a\",}}]}",
                                       "{\"items\":[{\"metadata\":{\"name\":\"a\"}},]}",
                                       "{\"type\":\"ADDED\",\"object\":{\"n\":NaN}}",
                                       "{\"metadata\":{\"name\":\"a\\q\"}}",
                                       NULL};

static const char *const good_docs[] = {
    "{}",
    "[]",
    "5",
    "null",
    "\"s\"",
    " {\"a\" : [1, -0.5e+3, true, false, null, \"\\u00e9\\n\"]} \n",
    "{\"items\":[],\"metadata\":{}}",
    "{\"items\":null}",
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}",
    NULL};

static const kuala__jscan_mode_t modes[] = {KUALA_JSCAN_OBJECT, KUALA_JSCAN_LIST,
                                            KUALA_JSCAN_EVENT};

/* Every strictness rule of kuala_json_validate, with the same messages and
 * offsets, whatever the mode. */
START_TEST(test_jscan_verdict_is_the_validators)
{
  kuala__jscan_t sc;
  kuala__jscan_init(&sc);
  char err[128], verr[128];
  for (size_t m = 0; m < 3; m++) {
    for (size_t i = 0; bad_docs[i]; i++) {
      const char *d = bad_docs[i];
      int rc = kuala__jscan(&sc, modes[m], d, strlen(d), KUALA_JSON_WIRE_DEPTH, err, sizeof err);
      ck_assert_msg(rc == KUALA_EBADMSG, "accepted (mode %zu): %s", m, d);
      ck_assert_int_eq(kuala_json_validate(d, strlen(d), KUALA_JSON_WIRE_DEPTH, verr, sizeof verr),
                       KUALA_EBADMSG);
      ck_assert_str_eq(err, verr);
    }
    for (size_t i = 0; good_docs[i]; i++) {
      const char *d = good_docs[i];
      ck_assert_msg(
          kuala__jscan(&sc, modes[m], d, strlen(d), KUALA_JSON_WIRE_DEPTH, err, sizeof err) == 0,
          "refused (mode %zu): %s: %s", m, d, err);
    }
  }
  /* NUL bytes inside and outside strings. */
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_OBJECT, "[\"a\0b\"]", 7, 100, err, sizeof err),
                   KUALA_EBADMSG);
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_OBJECT, "[1]\0", 4, 100, err, sizeof err),
                   KUALA_EBADMSG);
  kuala__jscan_free(&sc);
}
END_TEST

/* The word-at-a-time string loop: a quote, backslash or control byte at
 * any offset of a long string is found. */
START_TEST(test_jscan_string_stops_at_every_offset)
{
  kuala__jscan_t sc;
  kuala__jscan_init(&sc);
  char doc[64];
  for (size_t at = 0; at < 40; at++) {
    for (int k = 0; k < 3; k++) {
      memset(doc, 'x', sizeof doc);
      doc[0] = '[';
      doc[1] = '"';
      doc[60] = '"';
      doc[61] = ']';
      /* control byte: refused; lone backslash + 'x': bad escape; quote:
       * ends the string early, so what follows is garbage. */
      doc[2 + at] = k == 0 ? '\x1f' : k == 1 ? '\\' : '"';
      int rc = kuala__jscan(&sc, KUALA_JSCAN_OBJECT, doc, 62, 10, NULL, 0);
      int vrc = kuala_json_validate(doc, 62, 10, NULL, 0);
      ck_assert_int_eq(vrc, KUALA_EBADMSG);
      ck_assert_msg(rc == KUALA_EBADMSG, "offset %zu kind %d accepted", at, k);
    }
    /* A high byte (UTF-8) is plain. */
    memset(doc, 'x', sizeof doc);
    memcpy(doc, "[\"", 2);
    doc[2 + at] = (char)0xc3;
    doc[3 + at] = (char)0xa9;
    memcpy(doc + 60, "\"]", 2);
    ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_OBJECT, doc, 62, 10, NULL, 0), 0);
  }
  kuala__jscan_free(&sc);
}
END_TEST

static char *nested(size_t depth)
{
  char *s = malloc(2 * depth + 1);
  memset(s, '[', depth);
  memset(s + depth, ']', depth);
  s[2 * depth] = '\0';
  return s;
}

START_TEST(test_jscan_depth_limits)
{
  kuala__jscan_t sc;
  kuala__jscan_init(&sc);
  char err[128];
  char *ok = nested(KUALA_JSON_WIRE_DEPTH);
  ck_assert_int_eq(
      kuala__jscan(&sc, KUALA_JSCAN_LIST, ok, strlen(ok), KUALA_JSON_WIRE_DEPTH, err, sizeof err),
      0);
  free(ok);
  char *deep = nested(KUALA_JSON_WIRE_DEPTH + 1);
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_LIST, deep, strlen(deep), KUALA_JSON_WIRE_DEPTH,
                                err, sizeof err),
                   KUALA_EBADMSG);
  ck_assert_ptr_nonnull(strstr(err, "nesting deeper than 10002"));
  free(deep);
  /* An object MAX_DEPTH deep inside a list's items: WIRE_DEPTH exactly. */
  size_t d = KUALA_JSON_MAX_DEPTH - 1;
  char *in = nested(d);
  size_t n = strlen(in) + 64;
  char *page = malloc(n);
  snprintf(page, n, "{\"items\":[{\"a\":%s}]}", in);
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_LIST, page, strlen(page), KUALA_JSON_WIRE_DEPTH,
                                err, sizeof err),
                   0);
  ck_assert_uint_eq(sc.nitems, 1);
  ck_assert_uint_eq(sc.items[0].len, strlen(page) - strlen("{\"items\":[]}"));
  free(page);
  free(in);
  deep = nested(1000000);
  ck_assert_int_eq(
      kuala__jscan(&sc, KUALA_JSCAN_OBJECT, deep, strlen(deep), 1000000, err, sizeof err),
      KUALA_EBADMSG);
  free(deep);
  kuala__jscan_free(&sc);
}
END_TEST

static int str_is(const char *t, const kuala__jstr_t *v, const char *want)
{
  if (!v->set) {
    return want == NULL;
  }
  kuala_buf_t b = KUALA_BUF_INIT(0);
  kuala__jscan_unescape(t + v->off, v->len, &b);
  int eq = want && b.len == strlen(want) && memcmp(b.data ? b.data : "", want, b.len) == 0;
  kuala_buf_free(&b);
  return eq;
}

static int span_is(const char *t, const kuala__jspan_t *v, const char *want)
{
  return v->len == strlen(want) && memcmp(t + v->off, want, v->len) == 0;
}

START_TEST(test_jscan_list_metadata_and_items)
{
  kuala__jscan_t sc;
  kuala__jscan_init(&sc);
  const char *page =
      "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":\"4\\u0032\","
      "\"continue\":\"tok\\/1\"},\"items\":[ {\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\","
      "\"labels\":{\"x\":\"1\"},\"resourceVersion\":\"7\",\"uid\":\"u-1\","
      "\"ownerReferences\":[{\"uid\":\"o\"}],\"annotations\":{\"name\":\"not me\"}},"
      "\"data\":{\"metadata\":{\"name\":\"deeper\"}}} , "
      "{\"metadata\":{\"name\":\"b\\u00e9\\\"q\"}},"
      "3, [1], {\"spec\":{}} ]}";
  char err[128];
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_LIST, page, strlen(page), KUALA_JSON_WIRE_DEPTH,
                                err, sizeof err),
                   0);
  ck_assert(sc.top_is_object);
  ck_assert_int_eq(sc.items_kind, KUALA_JITEMS_ARRAY);
  ck_assert(str_is(page, &sc.rv, "42"));
  ck_assert(sc.rv.esc);
  ck_assert(str_is(page, &sc.cont, "tok/1"));
  ck_assert_uint_eq(sc.nitems, 5);
  const kuala__jobj_t *a = &sc.items[0];
  ck_assert_uint_eq(a->flags, KUALA_JOBJ_META);
  ck_assert_int_eq(page[a->off], '{');
  ck_assert_int_eq(page[a->off + a->len - 1], '}');
  ck_assert_int_eq(page[a->off + a->len + 1], ',');
  ck_assert(str_is(page, &a->name, "a"));
  ck_assert(!a->name.esc);
  ck_assert(str_is(page, &a->ns, "ns"));
  ck_assert(str_is(page, &a->rv, "7"));
  ck_assert(str_is(page, &a->uid, "u-1"));
  ck_assert(span_is(page, &a->labels, "{\"x\":\"1\"}"));
  ck_assert(span_is(page, &a->owners, "[{\"uid\":\"o\"}]"));
  const kuala__jobj_t *b = &sc.items[1];
  ck_assert(str_is(page, &b->name, "b\xc3\xa9\"q"));
  ck_assert(b->name.esc);
  ck_assert(!b->ns.set && !b->rv.set && b->labels.len == 0 && b->owners.len == 0);
  ck_assert_uint_eq(sc.items[2].flags, KUALA_JOBJ_NOTOBJ);
  ck_assert_uint_eq(sc.items[3].flags, KUALA_JOBJ_NOTOBJ);
  ck_assert_uint_eq(sc.items[4].flags, 0); /* an object without metadata */

  /* The item array is reused: a second page starts empty. */
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_LIST, "{\"items\":null}", 14, 100, NULL, 0), 0);
  ck_assert_uint_eq(sc.nitems, 0);
  ck_assert_int_eq(sc.items_kind, KUALA_JITEMS_NULL);
  ck_assert(!sc.cont.set && !sc.rv.set);
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_LIST, "{\"items\":{}}", 12, 100, NULL, 0), 0);
  ck_assert_int_eq(sc.items_kind, KUALA_JITEMS_OTHER);
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_LIST, "{\"items\":\"x\"}", 13, 100, NULL, 0), 0);
  ck_assert_int_eq(sc.items_kind, KUALA_JITEMS_OTHER);
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_LIST, "{}", 2, 100, NULL, 0), 0);
  ck_assert_int_eq(sc.items_kind, KUALA_JITEMS_ABSENT);
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_LIST, "[]", 2, 100, NULL, 0), 0);
  ck_assert(!sc.top_is_object);
  /* A continue token that is not a string is not one. */
  ck_assert_int_eq(
      kuala__jscan(&sc, KUALA_JSCAN_LIST, "{\"metadata\":{\"continue\":1}}", 27, 100, NULL, 0), 0);
  ck_assert(!sc.cont.set);
  /* More items than the first allocation. */
  kuala_buf_t big = KUALA_BUF_INIT(0);
  kuala_buf_puts(&big, "{\"items\":[");
  for (int i = 0; i < 1000; i++) {
    kuala_buf_printf(&big, "%s{\"metadata\":{\"name\":\"n%d\"}}", i ? "," : "", i);
  }
  kuala_buf_puts(&big, "]}");
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_LIST, big.data, big.len, 100, NULL, 0), 0);
  ck_assert_uint_eq(sc.nitems, 1000);
  ck_assert(str_is(big.data, &sc.items[999].name, "n999"));
  kuala_buf_free(&big);
  kuala__jscan_free(&sc);
}
END_TEST

START_TEST(test_jscan_event_type_and_object)
{
  kuala__jscan_t sc;
  kuala__jscan_init(&sc);
  const char *ev =
      "{\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"9\"}},"
      "\"type\":\"MODIFIED\"}";
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_EVENT, ev, strlen(ev), 100, NULL, 0), 0);
  ck_assert(str_is(ev, &sc.type, "MODIFIED"));
  ck_assert(span_is(ev, (const kuala__jspan_t *)&sc.obj,
                    "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"9\"}}"));
  ck_assert(str_is(ev, &sc.obj.rv, "9"));
  ck_assert_uint_eq(sc.obj.flags, KUALA_JOBJ_META);
  const char *notobj = "{\"type\":\"ADDED\",\"object\":[1]}";
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_EVENT, notobj, strlen(notobj), 100, NULL, 0), 0);
  ck_assert(sc.obj.flags & KUALA_JOBJ_NOTOBJ);
  const char *scalar = "{\"type\":\"ADDED\",\"object\":\"x\"}";
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_EVENT, scalar, strlen(scalar), 100, NULL, 0), 0);
  ck_assert(sc.obj.flags & KUALA_JOBJ_NOTOBJ);
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_EVENT, "{\"type\":\"ADDED\"}", 16, 100, NULL, 0),
                   0);
  ck_assert_uint_eq(sc.obj.len, 0);
  kuala__jscan_free(&sc);
}
END_TEST

/* Duplicate keys among those read: the document fails at the top of a
 * list or an event, the object is marked inside it. */
START_TEST(test_jscan_duplicate_keys)
{
  kuala__jscan_t sc;
  kuala__jscan_init(&sc);
  char err[128];
  static const struct {
    kuala__jscan_mode_t mode;
    const char *doc;
  } fail[] = {
      {KUALA_JSCAN_LIST, "{\"items\":[],\"items\":[]}"},
      {KUALA_JSCAN_LIST, "{\"metadata\":{},\"items\":[],\"metadata\":{}}"},
      {KUALA_JSCAN_LIST, "{\"metadata\":{\"continue\":\"a\",\"continue\":\"b\"}}"},
      {KUALA_JSCAN_LIST, "{\"metadata\":{\"resourceVersion\":\"1\",\"resourceVersion\":\"2\"}}"},
      {KUALA_JSCAN_LIST, "{\"items\":[],\"\\u0069tems\":[]}"},
      {KUALA_JSCAN_EVENT, "{\"type\":\"ADDED\",\"object\":{},\"object\":{}}"},
      {KUALA_JSCAN_EVENT, "{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{}}"},
  };
  for (size_t i = 0; i < sizeof fail / sizeof fail[0]; i++) {
    int rc =
        kuala__jscan(&sc, fail[i].mode, fail[i].doc, strlen(fail[i].doc), 100, err, sizeof err);
    ck_assert_msg(rc == KUALA_EBADMSG, "accepted: %s", fail[i].doc);
    ck_assert_msg(strncmp(err, "duplicate key at offset", 23) == 0, "%s", err);
  }
  static const char *const marked[] = {
      "{\"metadata\":{\"name\":\"a\"},\"metadata\":{\"name\":\"b\"}}",
      "{\"metadata\":{\"name\":\"a\",\"name\":\"b\"}}",
      "{\"metadata\":{\"name\":\"a\",\"na\\u006de\":\"b\"}}",
      "{\"metadata\":{\"name\":\"a\",\"namespace\":\"x\",\"namespace\":\"y\"}}",
      "{\"metadata\":{\"name\":\"a\",\"labels\":{},\"labels\":{\"x\":\"1\"}}}",
      "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\",\"resourceVersion\":\"1\"}}",
      "{\"metadata\":{\"name\":\"a\",\"uid\":\"1\",\"uid\":\"2\"}}",
  };
  for (size_t i = 0; i < sizeof marked / sizeof marked[0]; i++) {
    ck_assert_int_eq(
        kuala__jscan(&sc, KUALA_JSCAN_OBJECT, marked[i], strlen(marked[i]), 100, NULL, 0), 0);
    ck_assert_msg(sc.obj.flags & KUALA_JOBJ_DUP, "not marked: %s", marked[i]);
  }
  /* Other keys may repeat (json-c keeps the last; the store never reads
   * them), and the same key in different objects is no duplicate. */
  const char *fine =
      "{\"metadata\":{\"name\":\"a\",\"annotations\":{\"k\":\"1\",\"k\":\"2\"}},"
      "\"data\":{\"name\":1},\"spec\":{\"name\":2}}";
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_OBJECT, fine, strlen(fine), 100, NULL, 0), 0);
  ck_assert_uint_eq(sc.obj.flags, KUALA_JOBJ_META);
  kuala__jscan_free(&sc);
}
END_TEST

/* Decoding matches json-c's, surrogates included. */
START_TEST(test_jscan_unescape_is_json_c)
{
  static const char *const strs[] = {
      "\"plain\"",          "\"a\\\"b\\\\c\\/d\"", "\"\\b\\f\\n\\r\\t\"", "\"\\u00e9\\u20ac\"",
      "\"\\ud83d\\ude00\"", "\"\\ud800\"",         "\"\\ud800x\"",        "\"\\udc00\"",
      "\"\\ud800\\u0041\"", "\"\\ud800\\ud800\"",  "\"a\\u0000b\"",       "\"\\uDBFF\\uDFFF\"",
      "\"\\u0041\\u00\"",
  };
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
    const char *s = strs[i];
    json_object *o = json_tokener_parse(s);
    if (!o) {
      ck_assert_int_eq(kuala_json_validate(s, strlen(s), 10, NULL, 0), KUALA_EBADMSG);
      continue;
    }
    kuala_buf_t b = KUALA_BUF_INIT(0);
    kuala__jscan_unescape(s + 1, strlen(s) - 2, &b);
    ck_assert_int_eq((int)b.len, json_object_get_string_len(o));
    ck_assert_msg(memcmp(b.data ? b.data : "", json_object_get_string(o), b.len) == 0, "%s", s);
    kuala_buf_free(&b);
    json_object_put(o);
  }
}
END_TEST

typedef struct {
  int adds, updates, deletes;
  char rv[32];
  char json[512];
} rec_t;

static void rec_cb(void *data, kuala_store_change_t ch, const kuala_obj_t *old,
                   const kuala_obj_t *obj, int unknown)
{
  (void)old;
  (void)unknown;
  rec_t *r = data;
  r->adds += ch == KUALA_STORE_ADDED;
  r->updates += ch == KUALA_STORE_UPDATED;
  r->deletes += ch == KUALA_STORE_DELETED;
  snprintf(r->rv, sizeof r->rv, "%s", obj->rv);
  snprintf(r->json, sizeof r->json, "%.*s", (int)obj->json_len, obj->json);
}

static int count_cb(void *data, const kuala_obj_t *obj)
{
  (void)obj;
  (*(size_t *)data)++;
  return 0;
}

static int put_text(kuala_store_t *s, const char *doc, rec_t *r)
{
  kuala__jscan_t sc;
  kuala__jscan_init(&sc);
  int rc = kuala__jscan(&sc, KUALA_JSCAN_OBJECT, doc, strlen(doc), KUALA_JSON_WIRE_DEPTH, NULL, 0);
  if (rc == 0) {
    rc = kuala__store_put_text(s, doc, &sc.obj, 0, rec_cb, r);
  }
  kuala__jscan_free(&sc);
  return rc;
}

/* A put from text stores what a put from the tree stores: same key, RV,
 * compact text and index entries, escapes decoded. */
START_TEST(test_jscan_store_put_text_matches_the_tree_path)
{
  const char *doc =
      "{ \"metadata\" : {\"name\":\"w\\u00e9b\",\"namespace\":\"n\\/s\",\"resourceVersion\":"
      "\"1\\u0030\",\"labels\":{\"app\":\"w\\u0065b\",\"t\\u0069er\":\"x\",\"n\":5},"
      "\"ownerReferences\":[{\"uid\":\"first\",\"uid\":\"o-\\u0031\"},{\"kind\":\"X\"},3],"
      "\"managedFields\":[{\"manager\":\"m\"}]}, \"data\" : {\"k\" : \"v\"} }";
  kuala_store_t *a, *b;
  ck_assert_int_eq(kuala_store_new(&a, NULL), 0);
  ck_assert_int_eq(kuala_store_new(&b, NULL), 0);
  rec_t ra = {0}, rb = {0};
  ck_assert_int_eq(put_text(a, doc, &ra), 0);
  ck_assert_int_eq(kuala_store_put_json(b, doc, strlen(doc), 0, rec_cb, &rb), 0);
  ck_assert_int_eq(ra.adds, 1);
  ck_assert_str_eq(ra.json, rb.json);
  ck_assert_str_eq(ra.rv, "10");
  kuala_obj_t oa, ob;
  ck_assert_int_eq(kuala_store_get(a, "n/s",
                                   "w\xc3\xa9"
                                   "b",
                                   &oa),
                   0);
  ck_assert_int_eq(kuala_store_get(b, "n/s",
                                   "w\xc3\xa9"
                                   "b",
                                   &ob),
                   0);
  ck_assert_str_eq(oa.rv, ob.rv);
  ck_assert_uint_eq(kuala_store_index_count(a, "namespace", "n/s"), 1);
  ck_assert_uint_eq(kuala_store_index_count(a, "owner", "o-1"), 1);
  ck_assert_uint_eq(kuala_store_index_count(b, "owner", "o-1"), 1);
  ck_assert_uint_eq(kuala_store_index_count(a, "owner", "first"), 0);
  kuala_selector_t *sel = NULL;
  ck_assert_int_eq(kuala_selector_parse_labels(&sel, "app=web,tier=x", NULL, 0), 0);
  size_t na = 0, nb = 0;
  ck_assert_int_eq(kuala_store_foreach(a, NULL, sel, count_cb, &na), 0);
  ck_assert_int_eq(kuala_store_foreach(b, NULL, sel, count_cb, &nb), 0);
  ck_assert_uint_eq(na, 1);
  ck_assert_uint_eq(nb, 1);
  kuala_selector_free(sel);
  /* The same object again (no SKIP_SAME_RV): an update. */
  ck_assert_int_eq(put_text(a, doc, &ra), 0);
  ck_assert_int_eq(ra.updates, 1);
  kuala_store_free(a);
  kuala_store_free(b);
}
END_TEST

START_TEST(test_jscan_store_refuses_what_put_refuses)
{
  kuala_store_t *s;
  ck_assert_int_eq(kuala_store_new(&s, NULL), 0);
  rec_t r = {0};
  ck_assert_int_eq(put_text(s, "[1]", &r), KUALA_EINVAL);
  ck_assert_int_eq(put_text(s, "{\"metadata\":[]}", &r), KUALA_EINVAL);
  ck_assert_int_eq(put_text(s, "{\"metadata\":{\"name\":\"\"}}", &r), KUALA_EINVAL);
  ck_assert_int_eq(put_text(s, "{\"metadata\":{\"name\":5}}", &r), KUALA_EINVAL);
  ck_assert_int_eq(put_text(s, "{\"metadata\":{\"name\":\"a\",\"name\":\"b\"}}", &r),
                   KUALA_EBADMSG);
  /* A label given twice: which value would the index hold? */
  ck_assert_int_eq(
      put_text(s, "{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":\"1\",\"\\u0078\":\"2\"}}}", &r),
      KUALA_EBADMSG);
  ck_assert_uint_eq(kuala_store_len(s), 0);
  ck_assert_int_eq(r.adds, 0);
  /* No index node was left behind by the refused puts. */
  ck_assert_int_eq(put_text(s, "{\"metadata\":{\"name\":\"a\",\"labels\":{\"y\":\"1\"}}}", &r), 0);
  ck_assert_uint_eq(kuala_store_len(s), 1);
  kuala_store_free(s);
}
END_TEST

START_TEST(test_jscan_store_delete_text_reports_the_event_object)
{
  kuala_store_t *s;
  ck_assert_int_eq(kuala_store_new(&s, NULL), 0);
  rec_t r = {0};
  ck_assert_int_eq(put_text(s, "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}", &r), 0);
  const char *del = "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"2\"},\"x\" : 1}";
  kuala__jscan_t sc;
  kuala__jscan_init(&sc);
  ck_assert_int_eq(kuala__jscan(&sc, KUALA_JSCAN_OBJECT, del, strlen(del), 100, NULL, 0), 0);
  ck_assert_int_eq(kuala__store_delete_text(s, del, &sc.obj, rec_cb, &r), 0);
  ck_assert_int_eq(r.deletes, 1);
  ck_assert_str_eq(r.rv, "2");
  ck_assert_str_eq(r.json, "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"2\"},\"x\":1}");
  ck_assert_uint_eq(kuala_store_len(s), 0);
  ck_assert_int_eq(kuala__store_delete_text(s, del, &sc.obj, rec_cb, &r), KUALA_ENOTFOUND);
  kuala__jscan_free(&sc);
  kuala_store_free(s);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("jscan");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_jscan_verdict_is_the_validators);
  tcase_add_test(tc, test_jscan_string_stops_at_every_offset);
  tcase_add_test(tc, test_jscan_depth_limits);
  tcase_add_test(tc, test_jscan_list_metadata_and_items);
  tcase_add_test(tc, test_jscan_event_type_and_object);
  tcase_add_test(tc, test_jscan_duplicate_keys);
  tcase_add_test(tc, test_jscan_unescape_is_json_c);
  tcase_add_test(tc, test_jscan_store_put_text_matches_the_tree_path);
  tcase_add_test(tc, test_jscan_store_refuses_what_put_refuses);
  tcase_add_test(tc, test_jscan_store_delete_text_reports_the_event_object);
  suite_add_tcase(s, tc);
  return kuala_test_run(s);
}
