/*
 * controllers.c: the emulator's in-process controllers, standing in for the
 * kube-controller-manager and apiextensions controllers:
 *
 *   - garbage collector (spec §4.6): Background deletes dependents whose
 *     owners (by uid) are all gone; Foreground deletes dependents of an owner
 *     that carries `foregroundDeletion`, then drops the finalizer once no
 *     blocking dependent is left; Orphan strips the owner's references from
 *     its dependents, then drops `orphan`;
 *   - namespace controller (spec §9.1): empties a terminating namespace,
 *     then removes the `kubernetes` finalizer and the namespace;
 *   - CRD finalizer (spec §8.5): deletes every instance, then removes
 *     `customresourcecleanup.apiextensions.k8s.io`;
 *   - Deployment status simulation: after --deployment-ready-delay ms the
 *     status follows the spec (observedGeneration, replicas, ready,
 *     available, updated, conditions), the way kwok fakes it.
 *
 * A pass is scheduled (debounced) after every committed write; one pass
 * collects work first and applies it afterwards, because applying changes
 * the stores. Passes repeat while they find work, so chains (foreground
 * over several levels) converge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"
#include "kuala/alloc.h"
#include "kuala/json.h"

#define PASS_DELAY_MS 20

typedef struct {
  emu_rtype_t *rt;
  char *ns, *name;
  int action; /* ACT_* */
  char *arg;  /* uid for ACT_UNREF, finalizer name for ACT_DROPFIN */
} work_t;

enum { ACT_DELETE_BG = 1, ACT_DELETE_FG, ACT_DELETE, ACT_UNREF, ACT_DROPFIN, ACT_NSFIN };

typedef struct {
  work_t *v;
  size_t n, cap;
} worklist_t;

static void add_work(worklist_t *w, emu_rtype_t *rt, emu_obj_t *o, int action, const char *arg)
{
  if (w->n == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 16;
    w->v = kuala_realloc(w->v, w->cap * sizeof *w->v);
  }
  work_t *x = &w->v[w->n++];
  x->rt = rt;
  x->ns = kuala_strdup(o->ns);
  x->name = kuala_strdup(o->name);
  x->action = action;
  x->arg = arg ? kuala_strdup(arg) : NULL;
}

static int has_fin(json_object *obj, const char *f)
{
  json_object *a = kuala_json_get(obj, "metadata", "finalizers", NULL);
  for (size_t i = 0;
       a && json_object_is_type(a, json_type_array) && i < json_object_array_length(a); i++) {
    const char *s = json_object_get_string(json_object_array_get_idx(a, i));
    if (s && strcmp(s, f) == 0) {
      return 1;
    }
  }
  return 0;
}

static emu_rtype_t *storage_rtype(emu_rtype_t *rt)
{
  return rt->store->storage ? rt->store->storage : rt;
}

/* Each store once: skip rtypes that are not their store's storage. */
static int primary(emu_rtype_t *rt)
{
  return storage_rtype(rt) == rt;
}

static void drop_fin(json_object *obj, const char *f)
{
  json_object *a = kuala_json_get(obj, "metadata", "finalizers", NULL);
  if (!a) {
    return;
  }
  json_object *n = json_object_new_array();
  for (size_t i = 0; i < json_object_array_length(a); i++) {
    json_object *x = json_object_array_get_idx(a, i);
    const char *s = json_object_get_string(x);
    if (!s || strcmp(s, f) != 0) {
      json_object_array_add(n, json_object_get(x));
    }
  }
  json_object *m = kuala_json_get(obj, "metadata", NULL);
  if (json_object_array_length(n) == 0) {
    json_object_put(n);
    json_object_object_del(m, "finalizers");
  } else {
    json_object_object_add(m, "finalizers", n);
  }
}

/* Does `dep` reference owner uid? With blocking = 1, only references
 * carrying blockOwnerDeletion: true count. */
static int refs_owner(json_object *dep, const char *uid, int blocking)
{
  json_object *refs = kuala_json_get(dep, "metadata", "ownerReferences", NULL);
  for (size_t i = 0;
       refs && json_object_is_type(refs, json_type_array) && i < json_object_array_length(refs);
       i++) {
    json_object *r = json_object_array_get_idx(refs, i);
    const char *u = kuala_json_path_str(r, "uid");
    if (u && strcmp(u, uid) == 0) {
      if (!blocking) {
        return 1;
      }
      json_object *b = kuala_json_get(r, "blockOwnerDeletion", NULL);
      return b && json_object_get_boolean(b);
    }
  }
  return 0;
}

static void run_pass(emu_t *e, worklist_t *w)
{
  /* Owners being deleted with a GC finalizer, and terminating namespaces
   * and CRDs. */
  for (emu_rtype_t *rt = e->rtypes; rt; rt = rt->next) {
    if (!primary(rt)) {
      continue;
    }
    size_t n;
    emu_obj_t **all = emu_store_all(rt->store, &n);
    for (size_t i = 0; i < n; i++) {
      emu_obj_t *o = all[i];
      if (o->has_owners) {
        /* Background: all owners gone (by uid). */
        json_object *obj = emu_obj_parse(o);
        json_object *refs = kuala_json_get(obj, "metadata", "ownerReferences", NULL);
        int alive = 0;
        int foreground_owner = 0, orphan_owner = 0;
        for (size_t j = 0; refs && json_object_is_type(refs, json_type_array) &&
                           j < json_object_array_length(refs);
             j++) {
          const char *u = kuala_json_path_str(json_object_array_get_idx(refs, j), "uid");
          emu_obj_t *owner = u ? kuala__map_get(&e->uids, u, strlen(u)) : NULL;
          if (!owner) {
            continue;
          }
          alive = 1;
          if (owner->deleting) {
            json_object *oo = emu_obj_parse(owner);
            if (has_fin(oo, "foregroundDeletion")) {
              foreground_owner = 1;
            } else if (has_fin(oo, "orphan")) {
              orphan_owner = 1;
              add_work(w, rt, o, ACT_UNREF, u);
            }
            json_object_put(oo);
          }
        }
        if (!alive && !o->deleting) {
          add_work(w, rt, o, ACT_DELETE_BG, NULL);
        } else if (foreground_owner && !o->deleting) {
          add_work(w, rt, o, ACT_DELETE_FG, NULL);
        }
        (void)orphan_owner;
        json_object_put(obj);
      }
      if (!o->deleting) {
        continue;
      }
      json_object *obj = emu_obj_parse(o);
      if (has_fin(obj, "orphan") && o->uid) {
        /* Drop `orphan` once no dependent references us any more. */
        int any = 0;
        for (emu_rtype_t *rt2 = e->rtypes; rt2 && !any; rt2 = rt2->next) {
          if (!primary(rt2)) {
            continue;
          }
          size_t n2;
          emu_obj_t **all2 = emu_store_all(rt2->store, &n2);
          for (size_t k = 0; k < n2 && !any; k++) {
            if (all2[k]->has_owners) {
              json_object *d = emu_obj_parse(all2[k]);
              any = refs_owner(d, o->uid, 0);
              json_object_put(d);
            }
          }
        }
        if (!any) {
          add_work(w, rt, o, ACT_DROPFIN, "orphan");
        }
      }
      if (has_fin(obj, "foregroundDeletion") && o->uid) {
        int blocking = 0;
        for (emu_rtype_t *rt2 = e->rtypes; rt2 && !blocking; rt2 = rt2->next) {
          if (!primary(rt2)) {
            continue;
          }
          size_t n2;
          emu_obj_t **all2 = emu_store_all(rt2->store, &n2);
          for (size_t k = 0; k < n2 && !blocking; k++) {
            if (all2[k]->has_owners) {
              json_object *d = emu_obj_parse(all2[k]);
              blocking = refs_owner(d, o->uid, 1);
              json_object_put(d);
            }
          }
        }
        if (!blocking) {
          add_work(w, rt, o, ACT_DROPFIN, "foregroundDeletion");
        }
      }
      if (!rt->group[0] && strcmp(rt->plural, "namespaces") == 0) {
        /* Namespace controller: empty it, then finalize. */
        int left = 0;
        for (emu_rtype_t *rt2 = e->rtypes; rt2; rt2 = rt2->next) {
          if (!primary(rt2) || !rt2->namespaced) {
            continue;
          }
          size_t n2;
          emu_obj_t **all2 = emu_store_all(rt2->store, &n2);
          for (size_t k = 0; k < n2; k++) {
            if (strcmp(all2[k]->ns, o->name) == 0) {
              left++;
              if (!all2[k]->deleting) {
                add_work(w, rt2, all2[k], ACT_DELETE, NULL);
              }
            }
          }
        }
        if (!left) {
          add_work(w, rt, o, ACT_NSFIN, NULL);
        }
      }
      if (strcmp(rt->plural, "customresourcedefinitions") == 0 &&
          has_fin(obj, "customresourcecleanup.apiextensions.k8s.io")) {
        int left = 0;
        for (emu_rtype_t *rt2 = e->rtypes; rt2; rt2 = rt2->next) {
          if (!rt2->crd_name || strcmp(rt2->crd_name, o->name) != 0 || !primary(rt2)) {
            continue;
          }
          size_t n2;
          emu_obj_t **all2 = emu_store_all(rt2->store, &n2);
          for (size_t k = 0; k < n2; k++) {
            left++;
            if (!all2[k]->deleting) {
              add_work(w, rt2, all2[k], ACT_DELETE, NULL);
            }
          }
        }
        if (!left) {
          add_work(w, rt, o, ACT_DROPFIN, "customresourcecleanup.apiextensions.k8s.io");
        }
      }
      json_object_put(obj);
    }
  }
}

static void apply_work(emu_t *e, work_t *x)
{
  emu_rtype_t *rt = NULL;
  /* The rtype may have gone (CRD removed) during this batch. */
  for (emu_rtype_t *r = e->rtypes; r; r = r->next) {
    if (r == x->rt) {
      rt = r;
    }
  }
  if (!rt) {
    return;
  }
  emu_obj_t *o = emu_store_get(rt->store, rt->namespaced ? x->ns : NULL, x->name);
  if (!o) {
    return;
  }
  switch (x->action) {
    case ACT_DELETE_BG:
      emu_delete_internal(e, rt, o, "Background");
      break;
    case ACT_DELETE_FG:
      emu_delete_internal(e, rt, o, "Foreground");
      break;
    case ACT_DELETE:
      emu_delete_internal(e, rt, o, NULL);
      break;
    case ACT_UNREF: {
      json_object *obj = emu_obj_parse(o);
      json_object *refs = kuala_json_get(obj, "metadata", "ownerReferences", NULL);
      json_object *keep = json_object_new_array();
      for (size_t i = 0; refs && i < json_object_array_length(refs); i++) {
        json_object *r = json_object_array_get_idx(refs, i);
        const char *u = kuala_json_path_str(r, "uid");
        if (!u || strcmp(u, x->arg) != 0) {
          json_object_array_add(keep, json_object_get(r));
        }
      }
      json_object *m = kuala_json_get(obj, "metadata", NULL);
      if (json_object_array_length(keep) == 0) {
        json_object_put(keep);
        json_object_object_del(m, "ownerReferences");
      } else {
        json_object_object_add(m, "ownerReferences", keep);
      }
      emu_update_internal(e, rt, obj);
      json_object_put(obj);
      break;
    }
    case ACT_DROPFIN: {
      json_object *obj = emu_obj_parse(o);
      drop_fin(obj, x->arg);
      emu_update_internal(e, rt, obj);
      json_object_put(obj);
      break;
    }
    case ACT_NSFIN: {
      json_object *obj = emu_obj_parse(o);
      json_object *spec = kuala_json_get(obj, "spec", NULL);
      if (spec) {
        json_object_object_del(spec, "finalizers");
      }
      json_object *m = kuala_json_get(obj, "metadata", NULL);
      json_object *mf = kuala_json_get(m, "finalizers", NULL);
      if (!mf || json_object_array_length(mf) == 0) {
        json_object_object_del(m, "finalizers");
      }
      emu_update_internal(e, rt, obj);
      json_object_put(obj);
      break;
    }
    default:
      break;
  }
}

static void on_pass(uv_timer_t *t)
{
  emu_t *e = t->data;
  e->ctl_scheduled = 0;
  worklist_t w = {0};
  run_pass(e, &w);
  for (size_t i = 0; i < w.n; i++) {
    apply_work(e, &w.v[i]);
    kuala_free(w.v[i].ns);
    kuala_free(w.v[i].name);
    kuala_free(w.v[i].arg);
  }
  kuala_free(w.v);
}

void emu_controllers_init(emu_t *e)
{
  uv_timer_init(e->loop, &e->ctl_timer);
  e->ctl_timer.data = e;
}

void emu_controllers_kick(emu_t *e)
{
  if (e->ctl_scheduled || !e->ctl_timer.data) {
    return;
  }
  e->ctl_scheduled = 1;
  uv_timer_start(&e->ctl_timer, on_pass, PASS_DELAY_MS, 0);
}

/* ---- Deployment status simulation ---- */

typedef struct {
  uv_timer_t t;
  emu_t *e;
  char *ns, *name;
} deploy_t;

static void deploy_closed(uv_handle_t *h)
{
  deploy_t *d = h->data;
  kuala_free(d->ns);
  kuala_free(d->name);
  kuala_free(d);
}

static void cond(json_object *conds, const char *type, const char *reason, const char *msg,
                 const char *now)
{
  json_object *c = json_object_new_object();
  kuala_json_set_str(c, "type", type);
  kuala_json_set_str(c, "status", "True");
  kuala_json_set_str(c, "lastUpdateTime", now);
  kuala_json_set_str(c, "lastTransitionTime", now);
  kuala_json_set_str(c, "reason", reason);
  kuala_json_set_str(c, "message", msg);
  json_object_array_add(conds, c);
}

static void on_deploy(uv_timer_t *t)
{
  deploy_t *d = t->data;
  emu_t *e = d->e;
  emu_rtype_t *rt = emu_rtype_find(e, "apps", "v1", "deployments");
  emu_obj_t *o = rt ? emu_store_get(rt->store, d->ns, d->name) : NULL;
  if (o && !o->deleting) {
    json_object *obj = emu_obj_parse(o);
    json_object *rep = kuala_json_get(obj, "spec", "replicas", NULL);
    int64_t replicas = rep ? json_object_get_int64(rep) : 1;
    json_object *gen = kuala_json_get(obj, "metadata", "generation", NULL);
    char now[32], msg[512];
    emu_now(now, sizeof now);
    json_object *st = json_object_new_object();
    json_object_object_add(st, "observedGeneration",
                           json_object_new_int64(gen ? json_object_get_int64(gen) : 1));
    if (replicas > 0) {
      json_object_object_add(st, "replicas", json_object_new_int64(replicas));
      json_object_object_add(st, "updatedReplicas", json_object_new_int64(replicas));
      json_object_object_add(st, "readyReplicas", json_object_new_int64(replicas));
      json_object_object_add(st, "availableReplicas", json_object_new_int64(replicas));
    }
    json_object *conds = json_object_new_array();
    cond(conds, "Available", "MinimumReplicasAvailable", "Deployment has minimum availability.",
         now);
    snprintf(msg, sizeof msg, "ReplicaSet \"%s\" has successfully progressed.", d->name);
    cond(conds, "Progressing", "NewReplicaSetAvailable", msg, now);
    json_object_object_add(st, "conditions", conds);
    json_object_object_add(obj, "status", st);
    uint64_t rv;
    emu_commit(e, rt, obj, &rv);
    json_object_put(obj);
  }
  uv_close((uv_handle_t *)&d->t, deploy_closed);
}

void emu_deployment_touched(emu_t *e, const char *ns, const char *name)
{
  deploy_t *d = kuala_calloc(1, sizeof *d);
  d->e = e;
  d->ns = kuala_strdup(ns ? ns : "");
  d->name = kuala_strdup(name);
  uv_timer_init(e->loop, &d->t);
  d->t.data = d;
  uv_timer_start(&d->t, on_deploy, (uint64_t)(e->deploy_delay_ms > 0 ? e->deploy_delay_ms : 0), 0);
}

/* After a restart (--data-dir), Deployments whose simulated status was
 * pending when the process stopped (observedGeneration behind generation,
 * or ready replicas not matching spec.replicas) get their timer again;
 * otherwise their status would never catch up. */
void emu_deployments_resume(emu_t *e)
{
  emu_rtype_t *rt = emu_rtype_find(e, "apps", "v1", "deployments");
  if (!rt) {
    return;
  }
  size_t n;
  emu_obj_t **all = emu_store_sorted(rt->store, &n);
  for (size_t i = 0; i < n; i++) {
    emu_obj_t *o = all[i];
    if (o->deleting) {
      continue;
    }
    json_object *obj = emu_obj_parse(o);
    json_object *gen = kuala_json_get(obj, "metadata", "generation", NULL);
    json_object *seen = kuala_json_get(obj, "status", "observedGeneration", NULL);
    json_object *rep = kuala_json_get(obj, "spec", "replicas", NULL);
    json_object *ready = kuala_json_get(obj, "status", "readyReplicas", NULL);
    int64_t want = rep ? json_object_get_int64(rep) : 1;
    int64_t have = ready ? json_object_get_int64(ready) : 0;
    if (!seen || (gen && json_object_get_int64(seen) < json_object_get_int64(gen)) ||
        have != want) {
      emu_deployment_touched(e, o->ns, o->name);
    }
    json_object_put(obj);
  }
}
