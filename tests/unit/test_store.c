/*
 * Unit tests for the object store: compact storage, indexes, selectors,
 * change callbacks, the relist diff (replace_begin/end) and bad input.
 */
#include <check.h>

#include "kuala_test.h"
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "kuala/selector.h"
#include "kuala/store.h"
#include "cache/store.h"

/* Records every change as "TYPE ns/name rv [unknown]" lines. */
typedef struct {
  char log[8192];
  int adds, updates, deletes, unknown;
  char last_old_rv[32];
} rec_t;

static void rec_cb(void *data, kuala_store_change_t ch, const kuala_obj_t *old,
                   const kuala_obj_t *obj, int unknown)
{
  rec_t *r = data;
  const char *t = ch == KUALA_STORE_ADDED ? "ADD" : ch == KUALA_STORE_UPDATED ? "UPD" : "DEL";
  size_t l = strlen(r->log);
  snprintf(r->log + l, sizeof r->log - l, "%s %s/%s %s%s\n", t, obj->ns, obj->name, obj->rv,
           unknown ? " unknown" : "");
  r->adds += ch == KUALA_STORE_ADDED;
  r->updates += ch == KUALA_STORE_UPDATED;
  r->deletes += ch == KUALA_STORE_DELETED;
  r->unknown += unknown;
  if (old) {
    snprintf(r->last_old_rv, sizeof r->last_old_rv, "%s", old->rv);
  }
}

static int put(kuala_store_t *s, const char *json, rec_t *r)
{
  return kuala_store_put_json(s, json, strlen(json), 0, r ? rec_cb : NULL, r);
}

static char *obj_json(const char *ns, const char *name, const char *rv, const char *labels,
                      const char *owner)
{
  char *b = kuala_malloc(1024);
  snprintf(b, 1024,
           "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\"%s%s%s,"
           "\"resourceVersion\":\"%s\",\"labels\":{%s}%s%s%s},\"data\":{\"k\":\"v\"}}",
           name, ns ? ",\"namespace\":\"" : "", ns ? ns : "", ns ? "\"" : "", rv,
           labels ? labels : "", owner ? ",\"ownerReferences\":[{\"uid\":\"" : "",
           owner ? owner : "", owner ? "\",\"kind\":\"X\",\"name\":\"o\"}]" : "");
  return b;
}

static void put_obj(kuala_store_t *s, const char *ns, const char *name, const char *rv,
                    const char *labels, const char *owner, rec_t *r)
{
  char *j = obj_json(ns, name, rv, labels, owner);
  ck_assert_int_eq(put(s, j, r), 0);
  kuala_free(j);
}

static int count_cb(void *data, const kuala_obj_t *obj)
{
  (*(int *)data)++;
  return 0;
}

static int count_sel(kuala_store_t *s, const char *ns, const char *sel_text)
{
  kuala_selector_t *sel = NULL;
  char err[128];
  ck_assert_int_eq(kuala_selector_parse_labels(&sel, sel_text, err, sizeof err), 0);
  int n = 0;
  ck_assert_int_eq(kuala_store_foreach(s, ns, sel, count_cb, &n), 0);
  kuala_selector_free(sel);
  return n;
}

START_TEST(test_store_compact_strips_managed_fields)
{
  kuala_store_t *s;
  ck_assert_int_eq(kuala_store_new(&s, NULL), 0);
  const char *in =
      "{ \"apiVersion\": \"v1\", \"kind\": \"ConfigMap\",\n"
      "  \"metadata\": { \"managedFields\": [ {\"manager\": \"kubectl\", \"fieldsV1\": {}} ],\n"
      "     \"name\": \"a b\", \"namespace\": \"ns1\", \"resourceVersion\": \"7\" },\n"
      "  \"data\": { \"text\": \"keep  spaces \\\" here\", \"managedFields\": 1 } }";
  ck_assert_int_eq(put(s, in, NULL), 0);
  kuala_obj_t o;
  ck_assert_int_eq(kuala_store_get(s, "ns1", "a b", &o), 0);
  ck_assert_str_eq(o.json,
                   "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a b\","
                   "\"namespace\":\"ns1\",\"resourceVersion\":\"7\"},\"data\":{\"text\":\"keep  "
                   "spaces \\\" here\",\"managedFields\":1}}");
  ck_assert_uint_eq(o.json_len, strlen(o.json));
  ck_assert_str_eq(o.rv, "7");
  ck_assert_str_eq(o.ns, "ns1");
  ck_assert_uint_eq(kuala_store_json_bytes(s), o.json_len);
  /* The stored bytes are still valid JSON. */
  json_object *back = json_tokener_parse(o.json);
  ck_assert_ptr_nonnull(back);
  json_object_put(back);
  kuala_store_free(s);

  /* managedFields last and in the middle: commas stay right. */
  kuala_buf_t b;
  kuala_buf_init(&b, 0);
  const char *last = "{\"metadata\":{\"name\":\"x\",\"managedFields\":[]},\"a\":[1,2]}";
  ck_assert_int_eq(kuala__json_compact(last, strlen(last), 1, &b, NULL), 0);
  ck_assert_str_eq(b.data, "{\"metadata\":{\"name\":\"x\"},\"a\":[1,2]}");
  kuala_buf_reset(&b);
  const char *mid = "{\"metadata\":{\"a\":1, \"managedFields\" : [{\"x\":\"]\"}] , \"b\":2}}";
  ck_assert_int_eq(kuala__json_compact(mid, strlen(mid), 1, &b, NULL), 0);
  ck_assert_str_eq(b.data, "{\"metadata\":{\"a\":1,\"b\":2}}");
  kuala_buf_reset(&b);
  const char *only = "{\"metadata\":{\"managedFields\":[]}}";
  ck_assert_int_eq(kuala__json_compact(only, strlen(only), 1, &b, NULL), 0);
  ck_assert_str_eq(b.data, "{\"metadata\":{}}");
  kuala_buf_reset(&b);
  /* Not stripped when asked to keep, nor below another key. */
  ck_assert_int_eq(kuala__json_compact(only, strlen(only), 0, &b, NULL), 0);
  ck_assert_str_eq(b.data, "{\"metadata\":{\"managedFields\":[]}}");
  kuala_buf_reset(&b);
  const char *deep = "{\"spec\":{\"metadata\":{\"managedFields\":[]}}}";
  ck_assert_int_eq(kuala__json_compact(deep, strlen(deep), 1, &b, NULL), 0);
  ck_assert_str_eq(b.data, deep);
  /* Only the first value is taken, and its end reported: one pass over
   * a list's items. */
  const char *items = " {\"a\" : [1, \"x\\\\\"]} , {\"b\":2}]";
  size_t used = 0;
  kuala_buf_reset(&b);
  ck_assert_int_eq(kuala__json_compact(items, strlen(items), 1, &b, &used), 0);
  ck_assert_str_eq(b.data, "{\"a\":[1,\"x\\\\\"]}");
  ck_assert_int_eq(items[used], ' ');
  ck_assert_int_eq(items[used + 1], ',');
  kuala_buf_reset(&b);
  ck_assert_int_eq(kuala__json_compact("12 ,3", 5, 1, &b, &used), 0);
  ck_assert_str_eq(b.data, "12");
  ck_assert_uint_eq(used, 2);
  kuala_buf_reset(&b);
  ck_assert_int_eq(kuala__json_compact("\"s\",1", 5, 1, &b, &used), 0);
  ck_assert_str_eq(b.data, "\"s\"");
  ck_assert_uint_eq(used, 3);
  /* A capped buffer refuses a value past its cap. */
  kuala_buf_t small;
  kuala_buf_init(&small, 8);
  ck_assert_int_eq(kuala__json_compact("[1,2,3,4,5,6,7]", 15, 1, &small, NULL), KUALA_E2BIG);
  kuala_buf_reset(&small);
  ck_assert_int_eq(kuala__json_compact("[1, 2, 3]  ", 11, 1, &small, NULL), 0);
  ck_assert_str_eq(small.data, "[1,2,3]");
  kuala_buf_free(&small);
  kuala_buf_free(&b);
}
END_TEST

START_TEST(test_store_json_scanner)
{
  const char *ev = "{\"type\":\"ADDED\", \"object\" : {\"a\":\"}\\\"\",\"b\":[1,{}]} }";
  size_t off, len;
  ck_assert_int_eq(kuala__json_member(ev, strlen(ev), "object", &off, &len), 0);
  ck_assert_int_eq(strncmp(ev + off, "{\"a\":\"}\\\"\",\"b\":[1,{}]}", len), 0);
  ck_assert_uint_eq(len, strlen("{\"a\":\"}\\\"\",\"b\":[1,{}]}"));
  size_t start = 0;
  ck_assert_int_eq(kuala__json_member(ev, strlen(ev), "object", &start, NULL), 0);
  ck_assert_uint_eq(start, off);
  ck_assert_int_eq(kuala__json_member(ev, strlen(ev), "type", &off, &len), 0);
  ck_assert_int_eq(strncmp(ev + off, "\"ADDED\"", len), 0);
  ck_assert_int_eq(kuala__json_member(ev, strlen(ev), "missing", &off, &len), KUALA_ENOENT);
  ck_assert_int_eq(kuala__json_member("[1]", 3, "a", &off, &len), KUALA_ENOENT);
  /* Truncated text never reads past the end. */
  ck_assert_int_eq(kuala__json_member(ev, 20, "object", &off, &len), KUALA_ENOENT);

  const char *arr = " [ {\"x\":[1,2]} , \"s,]\" ,3 ]";
  size_t pos = 0;
  int n = 0;
  const char *want[] = {"{\"x\":[1,2]}", "\"s,]\"", "3"};
  while (kuala__json_array_next(arr, strlen(arr), &pos, &off, &len)) {
    ck_assert_int_lt(n, 3);
    ck_assert_uint_eq(len, strlen(want[n]));
    ck_assert_int_eq(strncmp(arr + off, want[n], len), 0);
    n++;
  }
  ck_assert_int_eq(n, 3);
  pos = 0;
  ck_assert_int_eq(kuala__json_array_next("[]", 2, &pos, &off, &len), 0);
}
END_TEST

START_TEST(test_store_add_update_delete_events)
{
  kuala_store_t *s;
  rec_t r = {0};
  kuala_store_new(&s, NULL);
  put_obj(s, "a", "x", "1", NULL, NULL, &r);
  put_obj(s, "a", "x", "2", NULL, NULL, &r);
  ck_assert_str_eq(r.last_old_rv, "1");
  put_obj(s, NULL, "cluster-thing", "3", NULL, NULL, &r);
  ck_assert_uint_eq(kuala_store_len(s), 2);
  kuala_obj_t o;
  ck_assert_int_eq(kuala_store_get(s, "", "cluster-thing", &o), 0);
  ck_assert_str_eq(o.ns, "");
  ck_assert_int_eq(kuala_store_get(s, NULL, "cluster-thing", &o), 0);
  ck_assert_int_eq(kuala_store_get(s, "a", "cluster-thing", &o), KUALA_ENOTFOUND);
  ck_assert_int_eq(kuala_store_delete(s, "a", "x", rec_cb, &r), 0);
  ck_assert_int_eq(kuala_store_delete(s, "a", "x", rec_cb, &r), KUALA_ENOTFOUND);
  ck_assert_str_eq(r.log, "ADD a/x 1\nUPD a/x 2\nADD /cluster-thing 3\nDEL a/x 2\n");
  ck_assert_int_eq(kuala_store_get(s, "a", "x", &o), KUALA_ENOTFOUND);
  /* Same RV with SKIP_SAME_RV: no event; without: an update. */
  char *j = obj_json("b", "y", "5", NULL, NULL);
  ck_assert_int_eq(kuala_store_put_json(s, j, strlen(j), 0, rec_cb, &r), 0);
  ck_assert_int_eq(kuala_store_put_json(s, j, strlen(j), KUALA_STORE_SKIP_SAME_RV, rec_cb, &r), 0);
  ck_assert_int_eq(r.updates, 1);
  ck_assert_int_eq(kuala_store_put_json(s, j, strlen(j), 0, rec_cb, &r), 0);
  ck_assert_int_eq(r.updates, 2);
  kuala_free(j);
  kuala_store_free(s);
}
END_TEST

START_TEST(test_store_bad_input_is_an_error)
{
  kuala_store_t *s;
  kuala_store_opts_t opts = {0};
  opts.max_object_bytes = 200;
  kuala_store_new(&s, &opts);
  ck_assert_int_eq(put(s, "{\"metadata\":", NULL), KUALA_EBADMSG);
  ck_assert_int_eq(put(s, "not json", NULL), KUALA_EBADMSG);
  ck_assert_int_eq(put(s, "[1,2]", NULL), KUALA_EINVAL);
  ck_assert_int_eq(put(s, "{\"kind\":\"X\"}", NULL), KUALA_EINVAL);
  ck_assert_int_eq(put(s, "{\"metadata\":[]}", NULL), KUALA_EINVAL);
  ck_assert_int_eq(put(s, "{\"metadata\":{\"name\":\"\"}}", NULL), KUALA_EINVAL);
  ck_assert_int_eq(put(s, "{\"metadata\":{\"name\":5}}", NULL), KUALA_EINVAL);
  char big[400];
  memset(big, 'x', sizeof big);
  int n = snprintf(big, sizeof big, "{\"metadata\":{\"name\":\"a\"},\"d\":\"");
  memset(big + n, 'y', 250);
  memcpy(big + n + 250, "\"}", 3);
  ck_assert_int_eq(put(s, big, NULL), KUALA_E2BIG);
  ck_assert_int_eq(kuala_store_put(s, NULL, NULL, 0, 0, NULL, NULL), KUALA_EINVAL);
  ck_assert_int_eq(kuala_store_get(s, "a", NULL, NULL), KUALA_EINVAL);
  ck_assert_uint_eq(kuala_store_len(s), 0);
  /* Non-string label values are ignored, not fatal. */
  ck_assert_int_eq(put(s, "{\"metadata\":{\"name\":\"a\",\"labels\":{\"n\":1,\"s\":\"v\"}}}", NULL),
                   0);
  ck_assert_int_eq(count_sel(s, NULL, "s=v"), 1);
  ck_assert_int_eq(count_sel(s, NULL, "n"), 0);
  kuala_store_free(s);
}
END_TEST

START_TEST(test_store_indexes_and_selectors)
{
  kuala_store_t *s;
  kuala_store_new(&s, NULL);
  put_obj(s, "a", "web-1", "1", "\"app\":\"web\",\"tier\":\"front\"", "owner-1", NULL);
  put_obj(s, "a", "web-2", "2", "\"app\":\"web\",\"tier\":\"front\"", "owner-1", NULL);
  put_obj(s, "a", "db-1", "3", "\"app\":\"db\",\"tier\":\"back\"", "owner-2", NULL);
  put_obj(s, "b", "web-1", "4", "\"app\":\"web\"", NULL, NULL);
  put_obj(s, "b", "cache", "5", "\"app\":\"cache\",\"canary\":\"true\"", NULL, NULL);
  put_obj(s, NULL, "node", "6", NULL, NULL, NULL);

  ck_assert_int_eq(count_sel(s, NULL, ""), 6);
  ck_assert_int_eq(count_sel(s, "a", ""), 3);
  ck_assert_int_eq(count_sel(s, "c", ""), 0);
  ck_assert_int_eq(count_sel(s, NULL, "app=web"), 3);
  ck_assert_int_eq(count_sel(s, "a", "app=web"), 2);
  ck_assert_int_eq(count_sel(s, NULL, "app in (web,db)"), 4);
  ck_assert_int_eq(count_sel(s, NULL, "app notin (web)"), 3);
  ck_assert_int_eq(count_sel(s, NULL, "app=web,tier=front"), 2);
  ck_assert_int_eq(count_sel(s, NULL, "app=web,!tier"), 1);
  ck_assert_int_eq(count_sel(s, NULL, "canary"), 1);
  ck_assert_int_eq(count_sel(s, NULL, "app=nope"), 0);
  ck_assert_int_eq(count_sel(s, NULL, "app!=web"), 3);

  ck_assert_uint_eq(kuala_store_index_count(s, "namespace", "a"), 3);
  ck_assert_uint_eq(kuala_store_index_count(s, "owner", "owner-1"), 2);
  int n = 0;
  ck_assert_int_eq(kuala_store_by_index(s, "owner", "owner-2", count_cb, &n), 0);
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(kuala_store_by_index(s, "nope", "x", count_cb, &n), KUALA_ENOENT);

  /* Updating labels moves the object between label sets; deleting the last
   * member of a value removes it. */
  put_obj(s, "a", "web-2", "7", "\"app\":\"db\"", "owner-2", NULL);
  ck_assert_int_eq(count_sel(s, "a", "app=web"), 1);
  ck_assert_int_eq(count_sel(s, "a", "app=db"), 2);
  ck_assert_uint_eq(kuala_store_index_count(s, "owner", "owner-1"), 1);
  ck_assert_uint_eq(kuala_store_index_count(s, "owner", "owner-2"), 2);
  ck_assert_int_eq(kuala_store_delete(s, "b", "cache", NULL, NULL), 0);
  ck_assert_int_eq(count_sel(s, NULL, "canary"), 0);
  ck_assert_int_eq(kuala_store_delete(s, "b", "web-1", NULL, NULL), 0);
  ck_assert_uint_eq(kuala_store_index_count(s, "namespace", "b"), 0);
  ck_assert_int_eq(count_sel(s, "b", ""), 0);
  kuala_store_free(s);
}
END_TEST

/* User index: spec.nodeName-like field "data.k" and every label key. */
static int idx_data_k(void *data, json_object *obj, kuala_store_emit_t *emit)
{
  json_object *d, *k;
  (*(int *)data)++;
  if (json_object_object_get_ex(obj, "data", &d) && json_object_object_get_ex(d, "k", &k)) {
    kuala_store_emit(emit, json_object_get_string(k), (size_t)json_object_get_string_len(k));
    kuala_store_emit(emit, "all", 3);
    kuala_store_emit(emit, "all", 3); /* duplicates count once */
  }
  return 0;
}

static int idx_reject(void *data, json_object *obj, kuala_store_emit_t *emit)
{
  return KUALA_EINVAL;
}

START_TEST(test_store_user_index)
{
  kuala_store_t *s;
  int calls = 0;
  kuala_store_new(&s, NULL);
  put_obj(s, "a", "one", "1", NULL, NULL, NULL);
  put_obj(s, "a", "two", "2", NULL, NULL, NULL);
  /* Added after objects: they are indexed at once. */
  ck_assert_int_eq(kuala_store_add_index(s, "by-k", idx_data_k, &calls), 0);
  ck_assert_int_eq(calls, 2);
  ck_assert_int_eq(kuala_store_add_index(s, "by-k", idx_data_k, &calls), KUALA_EEXIST);
  ck_assert_int_eq(kuala_store_add_index(s, "namespace", idx_data_k, &calls), KUALA_EEXIST);
  ck_assert_uint_eq(kuala_store_index_count(s, "by-k", "v"), 2);
  ck_assert_uint_eq(kuala_store_index_count(s, "by-k", "all"), 2);
  put_obj(s, "b", "three", "3", NULL, NULL, NULL);
  ck_assert_uint_eq(kuala_store_index_count(s, "by-k", "v"), 3);
  ck_assert_int_eq(put(s,
                       "{\"metadata\":{\"name\":\"one\",\"namespace\":\"a\"},\"data\":{\"k\":"
                       "\"w\"}}",
                       NULL),
                   0);
  ck_assert_uint_eq(kuala_store_index_count(s, "by-k", "v"), 2);
  ck_assert_uint_eq(kuala_store_index_count(s, "by-k", "w"), 1);
  kuala_obj_t o;
  ck_assert_int_eq(kuala_store_get(s, "a", "one", &o), 0);
  ck_assert_str_eq(o.rv, "");
  /* An index function that rejects makes puts fail, and nothing leaks. */
  ck_assert_int_eq(kuala_store_add_index(s, "reject", idx_reject, NULL), KUALA_EINVAL);
  ck_assert_int_eq(put(s, "{\"metadata\":{\"name\":\"new\",\"namespace\":\"zz\"}}", NULL),
                   KUALA_EINVAL);
  ck_assert_int_eq(kuala_store_get(s, "zz", "new", &o), KUALA_ENOTFOUND);
  ck_assert_uint_eq(kuala_store_index_count(s, "namespace", "zz"), 0);
  kuala_store_free(s);
}
END_TEST

START_TEST(test_store_relist_diff)
{
  kuala_store_t *s;
  rec_t r = {0};
  kuala_store_new(&s, NULL);
  put_obj(s, "a", "keep", "1", NULL, NULL, NULL);
  put_obj(s, "a", "change", "2", NULL, NULL, NULL);
  put_obj(s, "a", "gone", "3", "\"x\":\"y\"", NULL, NULL);
  put_obj(s, "b", "gone2", "4", NULL, NULL, NULL);

  /* A fresh list: keep unchanged, change modified, one new, two vanished. */
  kuala_store_replace_begin(s);
  char *items[] = {obj_json("a", "keep", "1", NULL, NULL), obj_json("a", "change", "9", NULL, NULL),
                   obj_json("c", "new", "10", NULL, NULL)};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(
        kuala_store_put_json(s, items[i], strlen(items[i]), KUALA_STORE_SKIP_SAME_RV, rec_cb, &r),
        0);
    kuala_free(items[i]);
  }
  ck_assert_uint_eq(kuala_store_replace_end(s, rec_cb, &r), 2);
  ck_assert_int_eq(r.adds, 1);
  ck_assert_int_eq(r.updates, 1);
  ck_assert_int_eq(r.deletes, 2);
  ck_assert_int_eq(r.unknown, 2);
  /* Tombstones carry the last known state. */
  ck_assert_ptr_nonnull(strstr(r.log, "DEL a/gone 3 unknown\n"));
  ck_assert_ptr_nonnull(strstr(r.log, "DEL b/gone2 4 unknown\n"));
  ck_assert_ptr_nonnull(strstr(r.log, "UPD a/change 9\n"));
  ck_assert_ptr_nonnull(strstr(r.log, "ADD c/new 10\n"));
  ck_assert_ptr_null(strstr(r.log, "keep"));
  ck_assert_uint_eq(kuala_store_len(s), 3);
  ck_assert_int_eq(count_sel(s, NULL, "x=y"), 0);
  /* A second relist with everything present deletes nothing. */
  kuala_store_replace_begin(s);
  put_obj(s, "a", "keep", "1", NULL, NULL, NULL);
  put_obj(s, "a", "change", "9", NULL, NULL, NULL);
  put_obj(s, "c", "new", "10", NULL, NULL, NULL);
  ck_assert_uint_eq(kuala_store_replace_end(s, rec_cb, &r), 0);
  /* An empty list deletes everything. */
  kuala_store_replace_begin(s);
  ck_assert_uint_eq(kuala_store_replace_end(s, rec_cb, &r), 3);
  ck_assert_uint_eq(kuala_store_len(s), 0);
  /* A relist that failed and starts over (begin, begin): the restarted
   * pass decides alone; it used to toggle the mark back and delete none. */
  put_obj(s, "a", "p", "20", NULL, NULL, NULL);
  put_obj(s, "a", "q", "21", NULL, NULL, NULL);
  put_obj(s, "a", "r", "22", NULL, NULL, NULL);
  kuala_store_replace_begin(s);
  put_obj(s, "a", "p", "20", NULL, NULL, NULL); /* seen by the failed pass only */
  kuala_store_replace_begin(s);
  kuala_store_replace_begin(s);
  put_obj(s, "a", "q", "21", NULL, NULL, NULL);
  ck_assert_uint_eq(kuala_store_replace_end(s, rec_cb, &r), 2);
  ck_assert_uint_eq(kuala_store_len(s), 1);
  kuala_obj_t o;
  ck_assert_int_eq(kuala_store_get(s, "a", "q", &o), 0);
  kuala_store_free(s);
}
END_TEST

static int drop_data(void *data, json_object *obj)
{
  json_object_object_del(obj, "data");
  return *(int *)data;
}

START_TEST(test_store_transform_and_metadata_only)
{
  kuala_store_t *s;
  int ret = 0;
  kuala_store_opts_t o = {0};
  o.transform = drop_data;
  o.transform_data = &ret;
  kuala_store_new(&s, &o);
  const char *j =
      "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a/b\",\"managedFields\":[{}]},"
      "\"data\":{\"x\":\"1\"}}";
  ck_assert_int_eq(put(s, j, NULL), 0);
  kuala_obj_t v;
  ck_assert_int_eq(kuala_store_get(s, "", "a/b", &v), 0);
  ck_assert_str_eq(v.json, "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a/b\"}}");
  ret = KUALA_EINVAL;
  ck_assert_int_eq(put(s, j, NULL), KUALA_EINVAL);
  kuala_store_free(s);

  kuala_store_opts_t m = {0};
  m.metadata_only = 1;
  m.keep_managed_fields = 1;
  kuala_store_new(&s, &m);
  const char *pod =
      "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"managedFields\":[]},"
      "\"spec\":{\"a\":1},\"status\":{}}";
  ck_assert_int_eq(put(s, pod, NULL), 0);
  ck_assert_int_eq(kuala_store_get(s, "", "p", &v), 0);
  ck_assert_str_eq(v.json,
                   "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","
                   "\"managedFields\":[]}}");
  kuala_obj_dup_t d;
  kuala_obj_dup(&d, &v);
  kuala_store_free(s);
  ck_assert_str_eq(d.obj.name, "p");
  ck_assert_uint_eq(d.obj.json_len, strlen(d.obj.json));
  kuala_obj_dup_free(&d);
}
END_TEST

START_TEST(test_store_many_objects_stay_consistent)
{
  kuala_store_t *s;
  kuala_store_new(&s, NULL);
  size_t empty_mem = kuala_store_mem_bytes(s);
  enum { N = 20000 };
  char name[32], labels[96], owner[32], rv[16];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "obj-%d", i);
    snprintf(labels, sizeof labels, "\"app\":\"a%d\",\"all\":\"yes\"", i % 10);
    snprintf(owner, sizeof owner, "uid-%d", i / 3);
    snprintf(rv, sizeof rv, "%d", i + 1);
    put_obj(s, i % 2 ? "odd" : "even", name, rv, labels, owner, NULL);
  }
  ck_assert_uint_eq(kuala_store_len(s), N);
  ck_assert_int_eq(count_sel(s, NULL, "all=yes"), N);
  ck_assert_int_eq(count_sel(s, "odd", "app=a3"), N / 10);
  ck_assert_int_eq(count_sel(s, "even", "app=a3"), 0);
  ck_assert_uint_eq(kuala_store_index_count(s, "owner", "uid-7"), 3);
  ck_assert_uint_eq(kuala_store_index_count(s, "namespace", "odd"), N / 2);
  /* Memory stays in the same order as the JSON it holds. */
  ck_assert_uint_gt(kuala_store_mem_bytes(s), kuala_store_json_bytes(s));
  ck_assert_uint_lt(kuala_store_mem_bytes(s), 2 * kuala_store_json_bytes(s));
  /* Delete every other object, check every survivor is still found. */
  for (int i = 0; i < N; i += 2) {
    snprintf(name, sizeof name, "obj-%d", i);
    ck_assert_int_eq(kuala_store_delete(s, "even", name, NULL, NULL), 0);
  }
  for (int i = 1; i < N; i += 2) {
    kuala_obj_t v;
    snprintf(name, sizeof name, "obj-%d", i);
    ck_assert_int_eq(kuala_store_get(s, "odd", name, &v), 0);
    ck_assert_str_eq(v.name, name);
  }
  ck_assert_int_eq(count_sel(s, NULL, "all=yes"), N / 2);
  ck_assert_uint_eq(kuala_store_index_count(s, "namespace", "even"), 0);
  kuala_store_replace_begin(s);
  ck_assert_uint_eq(kuala_store_replace_end(s, NULL, NULL), N / 2);
  ck_assert_uint_eq(kuala_store_json_bytes(s), 0);
  /* Nodes and sets were freed; what stays is the tables (ids, primary,
   * free list, index maps), which do not shrink. */
  ck_assert_uint_lt(kuala_store_mem_bytes(s) - empty_mem, (size_t)N * 64);
  kuala_store_free(s);
}
END_TEST

static int stop_at_two(void *data, const kuala_obj_t *obj)
{
  return ++(*(int *)data) == 2 ? 42 : 0;
}

START_TEST(test_store_iteration_stops)
{
  kuala_store_t *s;
  kuala_store_new(&s, NULL);
  for (int i = 0; i < 5; i++) {
    char n[16];
    snprintf(n, sizeof n, "o%d", i);
    put_obj(s, "a", n, "1", NULL, NULL, NULL);
  }
  int n = 0;
  ck_assert_int_eq(kuala_store_foreach(s, NULL, NULL, stop_at_two, &n), 42);
  ck_assert_int_eq(n, 2);
  n = 0;
  ck_assert_int_eq(kuala_store_foreach(s, "a", NULL, stop_at_two, &n), 42);
  kuala_store_free(s);
}
END_TEST

/* Found by tests/fuzz (fuzz_compact, regressions/compact/array-next-spins):
 * on text that is not JSON, kuala__json_array_next returned the same
 * empty element for ever. */
START_TEST(test_store_array_scan_stops_on_garbage)
{
  const char *bad = "[1,}<<]";
  size_t pos = 0, off, len, steps = 0;
  while (kuala__json_array_next(bad, strlen(bad), &pos, &off, &len)) {
    ck_assert_uint_lt(++steps, 10);
  }
  const char *good = "[1, \"a,]\" ,{\"b\":[2]}]";
  pos = 0;
  steps = 0;
  while (kuala__json_array_next(good, strlen(good), &pos, &off, &len)) {
    steps++;
  }
  ck_assert_uint_eq(steps, 3);
}
END_TEST

/* Past 1 MB of JSON, entries come from the store's arena (2 MB blocks,
 * size-class free lists): updates, deletes, growth, a user index rebuild
 * and the final free must all keep every object intact, and the memory
 * accounting must return to where it was. */
static int arena_index(void *data, struct json_object *obj, kuala_store_emit_t *em)
{
  (void)data;
  const char *name = kuala_json_path_str(obj, "metadata.name");
  if (name && strlen(name) > 4) {
    kuala_store_emit(em, name + 4, 1); /* the name's first digit after "big-" */
  }
  return 0;
}

START_TEST(test_store_arena_entries_survive_churn)
{
  kuala_store_t *s;
  kuala_store_new(&s, NULL);
  size_t empty_mem = kuala_store_mem_bytes(s);
  enum { N = 6000 };
  char name[32], rv[16], *pad = kuala_malloc(1500);
  memset(pad, 'p', 1499);
  pad[1499] = '\0';
  kuala_buf_t b = KUALA_BUF_INIT(0);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < N; i++) {
      /* Sizes vary by round so that updates change size class. */
      snprintf(name, sizeof name, "big-%d", i);
      snprintf(rv, sizeof rv, "%d", round * N + i + 1);
      kuala_buf_reset(&b);
      kuala_buf_printf(&b,
                       "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\",\"resourceVersion\":"
                       "\"%s\"},\"data\":{\"p\":\"%.*s\"}}",
                       name, rv, 500 + (i * 7 + round * 300) % 1000, pad);
      ck_assert_int_eq(kuala_store_put_json(s, b.data, b.len, 0, NULL, NULL), 0);
    }
  }
  ck_assert_uint_gt(kuala_store_json_bytes(s), (size_t)4 << 20);
  ck_assert_int_eq(kuala_store_add_index(s, "digit", arena_index, NULL), 0);
  ck_assert_uint_gt(kuala_store_index_count(s, "digit", "1"), 0);
  for (int i = 0; i < N; i += 3) {
    snprintf(name, sizeof name, "big-%d", i);
    ck_assert_int_eq(kuala_store_delete(s, "ns", name, NULL, NULL), 0);
  }
  for (int i = 0; i < N; i++) {
    kuala_obj_t v;
    snprintf(name, sizeof name, "big-%d", i);
    int rc = kuala_store_get(s, "ns", name, &v);
    if (i % 3 == 0) {
      ck_assert_int_eq(rc, KUALA_ENOTFOUND);
      continue;
    }
    ck_assert_int_eq(rc, 0);
    snprintf(rv, sizeof rv, "%d", 2 * N + i + 1);
    ck_assert_str_eq(v.rv, rv);
    ck_assert_uint_eq(v.json_len, strlen(v.json));
    ck_assert_ptr_nonnull(strstr(v.json, name));
    ck_assert_uint_eq(v.json_len - (size_t)(strstr(v.json, "ppp") - v.json),
                      (size_t)(500 + (i * 7 + 600) % 1000) + 3);
  }
  kuala_store_replace_begin(s);
  ck_assert_uint_eq(kuala_store_replace_end(s, NULL, NULL), N - (N + 2) / 3);
  ck_assert_uint_eq(kuala_store_json_bytes(s), 0);
  ck_assert_uint_lt(kuala_store_mem_bytes(s) - empty_mem, (size_t)N * 64);
  kuala_buf_free(&b);
  kuala_free(pad);
  kuala_store_free(s);
}
END_TEST

static Suite *store_suite(void)
{
  Suite *su = suite_create("store");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_store_compact_strips_managed_fields);
  tcase_add_test(tc, test_store_json_scanner);
  tcase_add_test(tc, test_store_add_update_delete_events);
  tcase_add_test(tc, test_store_bad_input_is_an_error);
  tcase_add_test(tc, test_store_indexes_and_selectors);
  tcase_add_test(tc, test_store_user_index);
  tcase_add_test(tc, test_store_relist_diff);
  tcase_add_test(tc, test_store_transform_and_metadata_only);
  tcase_add_test(tc, test_store_many_objects_stay_consistent);
  tcase_add_test(tc, test_store_iteration_stops);
  tcase_add_test(tc, test_store_array_scan_stops_on_garbage);
  tcase_add_test(tc, test_store_arena_entries_survive_churn);
  suite_add_tcase(su, tc);
  return su;
}

int main(void)
{
  return kuala_test_run(store_suite());
}
