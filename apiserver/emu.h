/*
 * emu.h: internals of kuala-apiserver shared by its files.
 *
 * Model (spec §2.1): one global revision counter; every committed write
 * takes the next value. Objects are kept as compact JSON ("blobs",
 * reference-counted so the watch history shares them with the store) plus
 * the few fields indexes need (namespace, name, uid, parsed labels).
 *
 *   emu_t            the server: loop, options, registry, history, watchers
 *   emu_rtype_t      one served resource (group/version/plural); several
 *                    rtypes may share one emu_store_t (CRD versions)
 *   emu_store_t      the objects of one resource: hash map by key
 *                    ("ns/name" or "name") + a lazily sorted array for
 *                    ordered lists and continue tokens
 *   emu_obj_t        one stored object
 *   emu_event_t      one entry of the history ring (ADDED/MODIFIED/DELETED)
 *   emu_watch_t      one open watch stream
 *
 * Everything runs on the loop thread; no locks.
 */
#ifndef KUALA_APISERVER_EMU_H
#define KUALA_APISERVER_EMU_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "apierr.h"
#include "serve/httpd.h"
#include "kuala/selector.h"
#include "base/map.h"

typedef struct emu_s emu_t;
typedef struct emu_store_s emu_store_t;
typedef struct emu_rtype_s emu_rtype_t;
typedef struct emu_watch_s emu_watch_t;

/* Reference-counted immutable JSON text. */
typedef struct {
  int refs;
  size_t len;
  char data[];
} emu_blob_t;

emu_blob_t *emu_blob_new(const char *s, size_t len);
emu_blob_t *emu_blob_ref(emu_blob_t *b);
void emu_blob_unref(emu_blob_t *b);

typedef struct {
  char *key; /* "ns/name" or "name"; owned */
  char *ns;  /* owned, "" for cluster-scoped */
  char *name;
  char *uid;
  uint64_t rv;
  emu_blob_t *json;    /* the full object, compact */
  json_object *labels; /* owned reference or NULL */
  int deleting;        /* deletionTimestamp set */
  int has_owners;      /* ownerReferences non-empty */
  int has_finalizers;
} emu_obj_t;

struct emu_store_s {
  kuala__map_t objs; /* key -> emu_obj_t* */
  emu_obj_t **sorted;
  size_t nsorted, capsorted;
  int dirty;
  emu_obj_t **scratch; /* unsorted snapshot (emu_store_all) */
  size_t capscratch;
  uint64_t last_change; /* revision of the last write to this store */
  emu_rtype_t *storage; /* the rtype whose apiVersion objects are stored in */
  int refs;             /* rtypes using it */
};

/* Field selector families (spec §6). */
enum { EMU_FS_GENERIC = 0, EMU_FS_SECRET, EMU_FS_NAMESPACE, EMU_FS_EVENT };

struct emu_rtype_s {
  char *group; /* "" for core */
  char *version;
  char *plural;
  char *singular;
  char *kind;
  char *list_kind;
  char *short_names[8];
  char *categories[4];
  int namespaced;
  int status_sub;      /* has /status */
  int generation;      /* tracks metadata.generation */
  int unconditional;   /* PUT without RV allowed */
  int custom;          /* custom resource (from a CRD) */
  int fs_family;       /* EMU_FS_* */
  char *selectable[8]; /* CRD selectableFields (without the leading dot) */
  int terminating;     /* its CRD is being deleted */
  json_object *crd;    /* owned ref to the CRD object (custom only) */
  char *crd_name;
  emu_store_t *store;
  emu_rtype_t *next;
};

typedef struct {
  uint64_t rv;
  int type; /* EMU_EV_* */
  emu_store_t *store;
  emu_blob_t *obj; /* new state (DELETED: last state stamped with rv) */
  emu_blob_t *old; /* previous state (MODIFIED/DELETED), or NULL */
  char *ns;        /* namespace of the object */
  char *name;
  json_object *labels, *old_labels;
} emu_event_t;

enum { EMU_EV_ADDED = 1, EMU_EV_MODIFIED, EMU_EV_DELETED };

typedef struct {
  int admin_port;
  int watch_410_next;    /* answer the next N watches with 410 */
  int error_percent;     /* percentage of requests answered with error_code */
  int error_code;        /* 429, 500 or 503 */
  int latency_ms;        /* added to every request */
  int paused;            /* hold every request until unpaused */
  char match_path[256];  /* errors/latency only for paths with this prefix ("" = all) */
  char match_method[16]; /* ... and this method ("" = all) */
} emu_faults_t;

struct emu_s {
  uv_loop_t *loop;
  kuala__httpd_t *httpd;
  kuala__httpd_t *admin;
  int port;
  char *token;
  int tls;
  uint64_t rev;
  emu_rtype_t *rtypes;
  /* history ring */
  emu_event_t *ring;
  size_t ring_cap, ring_len, ring_head; /* head = index of the oldest */
  uint64_t oldest_rv;                   /* first revision still in the ring */
  emu_watch_t *watches;
  kuala__map_t uids; /* uid -> emu_obj_t* (all stores) */
  uv_timer_t ctl_timer;
  uv_idle_t flush_idle; /* flushes buffered watch events (server.c) */
  int ctl_scheduled;
  int deploy_delay_ms;
  size_t stream_high; /* large lists: keep writing while less is unsent */
  int bookmark_ms;
  emu_faults_t faults;
  kuala__httpd_req_t **held; /* paused requests */
  size_t nheld;
  uint64_t requests;
};

/* ---- store.c ---- */
void emu_store_init(emu_t *e, size_t history);
emu_store_t *emu_store_new(void);
void emu_store_release(emu_t *e, emu_store_t *s);
emu_obj_t *emu_store_get(emu_store_t *s, const char *ns, const char *name);
/* Sorted snapshot (borrowed array valid until the next write). */
emu_obj_t **emu_store_sorted(emu_store_t *s, size_t *n);
/* Every object in no particular order (borrowed array valid until the next
 * write); cheaper than emu_store_sorted() after deletions. */
emu_obj_t **emu_store_all(emu_store_t *s, size_t *n);
/* Parse the object's JSON (new reference). */
json_object *emu_obj_parse(const emu_obj_t *o);
/* Commit `obj` (borrowed; its resourceVersion is overwritten) as the new state
 * of its key. Returns 1 when written, 0 for a no-op (identical to the stored
 * state), and fills *out_rv with the object's RV. */
int emu_commit(emu_t *e, emu_rtype_t *rt, json_object *obj, uint64_t *out_rv);
/* Insert a stored object as is (start-up load: no event, RV from the
 * object). */
void emu_store_load(emu_t *e, emu_rtype_t *rt, json_object *obj);
/* Remove the object for good (DELETED event). */
void emu_remove(emu_t *e, emu_rtype_t *rt, emu_obj_t *o);
/* Serialize key for the store. */
char *emu_key(const char *ns, const char *name);
/* Events with rv > after, oldest first: index iteration helpers. */
size_t emu_history_count(const emu_t *e);
emu_event_t *emu_history_at(emu_t *e, size_t i);

/* ---- persist.c (--data-dir) ---- */
int emu_persist_open(emu_t *e, const char *dir, char *err, size_t errlen);
int emu_persist_load(emu_t *e, size_t *count);
void emu_persist_put(emu_t *e, const emu_rtype_t *rt, const char *key, const char *json,
                     size_t len);
void emu_persist_del(emu_t *e, const emu_rtype_t *rt, const char *key);

/* ---- registry.c ---- */
void emu_registry_init(emu_t *e);
emu_rtype_t *emu_rtype_find(emu_t *e, const char *group, const char *version, const char *plural);
emu_rtype_t *emu_rtype_find_kind(emu_t *e, const char *group, const char *kind);
/* (Re)register the rtypes of an established CRD; returns 0 or 422. */
int emu_crd_register(emu_t *e, json_object *crd);
void emu_crd_unregister(emu_t *e, const char *crd_name);
json_object *emu_discovery_api(emu_t *e);
json_object *emu_discovery_apis(emu_t *e);
json_object *emu_discovery_group(emu_t *e, const char *group);
json_object *emu_discovery_resources(emu_t *e, const char *group, const char *version);
json_object *emu_version_doc(void);
/* Between a view (rt) and the store's storage form: apiVersion, and the
 * events.k8s.io/v1 <-> core v1 Event field names. In place. */
void emu_convert_out(const emu_rtype_t *rt, json_object *obj);
void emu_convert_in(const emu_rtype_t *rt, json_object *obj);
/* "configmaps" or "crontabs.stable.example.com" (for messages). */
const char *emu_qualified(const emu_rtype_t *rt, char *buf, size_t len);
/* "v1" or "group/version" */
const char *emu_api_version(const emu_rtype_t *rt, char *buf, size_t len);

/* ---- server.c ---- */
void emu_handle(void *data, kuala__httpd_req_t *req);
void emu_handle_admin(void *data, kuala__httpd_req_t *req);
/* Send an event to the interested watches. */
void emu_watch_notify(emu_t *e, emu_event_t *ev);
/* End every watch on `rt` (CRD removed) or on everything (rt NULL). */
void emu_watch_close_all(emu_t *e, emu_rtype_t *rt, int abrupt);
void emu_watch_bookmarks(emu_t *e);
/* Drop the list snapshots of `store` (NULL: all), before it is freed. */
void emu_snapshots_forget(emu_store_t *store);

/* ---- controllers.c ---- */
/* Ask the in-process controllers (GC, namespaces, CRDs) to run soon. */
void emu_controllers_kick(emu_t *e);
void emu_controllers_init(emu_t *e);
/* Schedule the simulated Deployment status. */
void emu_deployment_touched(emu_t *e, const char *ns, const char *name);
/* Re-arm the status simulation of Deployments left pending (after a load). */
void emu_deployments_resume(emu_t *e);

/* ---- shared helpers (server.c) ---- */
void emu_now(char *buf, size_t len);       /* RFC 3339, seconds */
void emu_now_micro(char *buf, size_t len); /* RFC 3339 with microseconds */
void emu_uuid(char *buf, size_t len);
/* Internal delete used by controllers: honours finalizers (sets
 * deletionTimestamp) unless none are present. `policy` may be NULL. */
void emu_delete_internal(emu_t *e, emu_rtype_t *rt, emu_obj_t *o, const char *policy);
/* Internal metadata update used by controllers (e.g. drop a finalizer);
 * removes the object when deleting and no finalizers remain. */
void emu_update_internal(emu_t *e, emu_rtype_t *rt, json_object *obj);
/* Create through the normal write path without admission (start-up seeds). */
int emu_create_internal(emu_t *e, emu_rtype_t *rt, json_object *obj);

#endif /* KUALA_APISERVER_EMU_H */
