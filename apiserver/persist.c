/*
 * persist.c: optional durability for kuala-apiserver (--data-dir DIR).
 *
 * One SQLite database, DIR/kuala-apiserver.db (WAL, synchronous=NORMAL):
 *
 *   meta(key PRIMARY KEY, value)          "rev" = the global revision
 *   objects(res, key, json, PRIMARY KEY(res, key))
 *
 * `res` is "group/version/plural" of the store's storage version, `key` the
 * store key ("ns/name" or "name"), `json` the stored object. Every committed
 * write and removal is written through at once (one autocommit statement
 * plus the revision), so a restart, even after SIGKILL, keeps every
 * acknowledged write and the revision counter. The watch history is not
 * persisted: after a restart a watch from an older revision gets 410 and
 * clients relist, which is what a compacted etcd would do.
 *
 * Loading runs before the server listens: CRDs first (they define the
 * other resources), then everything else; no watch events are produced.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "emu.h"
#include "kuala/alloc.h"
#include "jsonx.h"
#include "kuala/json.h"

static sqlite3 *db;
static sqlite3_stmt *st_put, *st_del, *st_rev;

static void res_name(const emu_rtype_t *rt, char *buf, size_t len)
{
  const emu_rtype_t *s = rt->store->storage ? rt->store->storage : rt;
  snprintf(buf, len, "%s/%s/%s", s->group, s->version, s->plural);
}

int emu_persist_open(emu_t *e, const char *dir, char *err, size_t errlen)
{
  (void)e;
  mkdir(dir, 0755);
  char path[4096];
  snprintf(path, sizeof path, "%s/kuala-apiserver.db", dir);
  if (sqlite3_open(path, &db) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
    return -1;
  }
  const char *schema =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS objects(res TEXT NOT NULL, key TEXT NOT NULL, "
      "json TEXT NOT NULL, PRIMARY KEY(res, key));";
  char *msg = NULL;
  if (sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, msg ? msg : "schema error");
    sqlite3_free(msg);
    return -1;
  }
  if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO objects(res,key,json) VALUES(?,?,?)", -1,
                         &st_put, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "DELETE FROM objects WHERE res=? AND key=?", -1, &st_del, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key,value) VALUES('rev',?)", -1, &st_rev,
                         NULL) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
    return -1;
  }
  return 0;
}

static void save_rev(uint64_t rev)
{
  char b[24];
  snprintf(b, sizeof b, "%llu", (unsigned long long)rev);
  sqlite3_bind_text(st_rev, 1, b, -1, SQLITE_TRANSIENT);
  sqlite3_step(st_rev);
  sqlite3_reset(st_rev);
}

void emu_persist_put(emu_t *e, const emu_rtype_t *rt, const char *key, const char *json, size_t len)
{
  if (!db) {
    return;
  }
  char res[600];
  res_name(rt, res, sizeof res);
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  sqlite3_bind_text(st_put, 1, res, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st_put, 2, key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st_put, 3, json, (int)len, SQLITE_TRANSIENT);
  if (sqlite3_step(st_put) != SQLITE_DONE) {
    fprintf(stderr, "kuala-apiserver: persist %s %s: %s\n", res, key, sqlite3_errmsg(db));
  }
  sqlite3_reset(st_put);
  save_rev(e->rev);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

void emu_persist_del(emu_t *e, const emu_rtype_t *rt, const char *key)
{
  if (!db) {
    return;
  }
  char res[600];
  res_name(rt, res, sizeof res);
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  sqlite3_bind_text(st_del, 1, res, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st_del, 2, key, -1, SQLITE_TRANSIENT);
  sqlite3_step(st_del);
  sqlite3_reset(st_del);
  save_rev(e->rev);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

static emu_rtype_t *find_res(emu_t *e, const char *res)
{
  char buf[600];
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    snprintf(buf, sizeof buf, "%s/%s/%s", rt->group, rt->version, rt->plural);
    if (strcmp(buf, res) == 0) {
      return rt;
    }
  }
  return NULL;
}

static int load_rows(emu_t *e, int crds, size_t *count)
{
  sqlite3_stmt *q;
  const char *sql = crds ? "SELECT res, json FROM objects WHERE res = "
                           "'apiextensions.k8s.io/v1/customresourcedefinitions'"
                         : "SELECT res, json FROM objects WHERE res != "
                           "'apiextensions.k8s.io/v1/customresourcedefinitions'";
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
    return -1;
  }
  while (sqlite3_step(q) == SQLITE_ROW) {
    const char *res = (const char *)sqlite3_column_text(q, 0);
    const char *json = (const char *)sqlite3_column_text(q, 1);
    int len = sqlite3_column_bytes(q, 1);
    emu_rtype_t *rt = find_res(e, res);
    json_object *obj = NULL;
    if (!rt) {
      fprintf(stderr, "kuala-apiserver: skipping stored object of unknown resource %s\n", res);
      continue;
    }
    if (kuala__json_parse_stored(&obj, json, (size_t)len) < 0) {
      /* Cannot happen for what this server wrote (it parses within the
       * same limits); say so loudly if the file was edited. */
      fprintf(stderr, "kuala-apiserver: skipping unreadable stored object of %s\n", res);
      continue;
    }
    emu_store_load(e, rt, obj);
    if (crds && !kuala_json_path(obj, "metadata.deletionTimestamp")) {
      emu_crd_register(e, obj);
    } else if (crds) {
      emu_crd_register(e, obj);
      for (emu_rtype_t *x = e->rtypes; x; x = x->next) {
        if (x->crd_name && strcmp(x->crd_name, kuala_json_path_str(obj, "metadata.name")) == 0) {
          x->terminating = 1;
        }
      }
    }
    json_object_put(obj);
    (*count)++;
  }
  sqlite3_finalize(q);
  return 0;
}

int emu_persist_load(emu_t *e, size_t *count)
{
  *count = 0;
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='rev'", -1, &q, NULL) == SQLITE_OK) {
    if (sqlite3_step(q) == SQLITE_ROW) {
      e->rev = strtoull((const char *)sqlite3_column_text(q, 0), NULL, 10);
    }
    sqlite3_finalize(q);
  }
  if (load_rows(e, 1, count) < 0 || load_rows(e, 0, count) < 0) {
    return -1;
  }
  /* History starts empty: older resume points are answered with 410. */
  e->oldest_rv = e->rev;
  return 0;
}
