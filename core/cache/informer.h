/*
 * informer.h: internals shared by informer.c (registry, handlers, sync
 * waiters, resync) and reflector.c (the list/watch state machine).
 *
 * Lifecycle: an informer is created by the first handler registration and
 * started at once; removing its last handler calls kuala__informer_stop(),
 * which cancels the outstanding list or watch and closes the timers. The
 * memory goes in kuala__informer_maybe_free(), called from the callbacks
 * that end those (source callbacks and uv close callbacks), so an informer
 * is never freed while one of its own frames is on the stack.
 */
#ifndef KUALA_CORE_INFORMER_H
#define KUALA_CORE_INFORMER_H

#include "kuala/informer.h"
#include "base/jscan.h"
#include "base/map.h"

struct kuala_informer_reg_s {
  kuala_informer_t *inf;
  kuala_informer_handlers_t h;
  void *data;
  int dead;
};

typedef struct waiter_s {
  uv_timer_t timer;
  kuala_informer_t *inf;
  kuala_informer_synced_cb cb;
  void *data;
  int done;
  struct waiter_s *next;
} waiter_t;

typedef enum {
  RF_IDLE = 0,
  RF_LISTING = 1,
  RF_WATCHING = 2,
  RF_BACKOFF = 3,
} rf_state_t;

struct kuala_informer_s {
  kuala_informers_t *f;
  char *keystr; /* registry key, owns the key's strings below */
  kuala_informer_key_t key;
  char *key_mem[6];
  kuala_informer_opts_t opts;
  kuala_store_t *store;

  kuala_informer_reg_t **regs;
  size_t nregs, regs_cap, live;
  int dispatching;

  /* Reflector. */
  rf_state_t state;
  int started, stopping, synced;
  char *last_rv;
  size_t last_rv_cap; /* 0 until set_rv first grows it */
  char *continue_tok;
  kuala__jscan_t scan;    /* list pages and watch lines; its item array is reused */
  kuala_buf_t strbuf;     /* decoded continue token / RV */
  void *list_h, *watch_h; /* outstanding source operations */
  int list_pending, watch_pending;
  int relist_after_watch; /* a 410 ERROR event was seen */
  int watch_err;          /* a non-410 ERROR event was seen */
  int stream_init;        /* inside a streaming list's initial events */
  int stream_off;         /* the server refused streaming lists: page */
  int backoff_relist;     /* what the backoff timer does: 1 relist, 0 watch */
  uint64_t watch_start_ms;
  uint64_t last_relist_ms; /* loop time of the last full list start */
  uint64_t watch_events;
  uint64_t warn_next_ms; /* failure warnings: next loop time one may be logged */
  uint64_t warn_dropped; /* failure warnings suppressed since the last one */
  kuala_backoff_t bo;
  uint64_t rng;
  uv_timer_t backoff_timer;
  uv_timer_t resync_timer;
  uv_timer_t watchdog_timer; /* bounds a watch's life past its timeout */
  int handles_open;
  waiter_t *waiters;
  kuala_informer_stats_t st;
};

struct kuala_informers_s {
  uv_loop_t *loop;
  const kuala_lw_source_t *src;
  void *src_data;
  kuala__map_t informers; /* keystr -> kuala_informer_t */
  size_t alive;           /* informers not yet freed (stopping ones too) */
  int closing;
  void *owned_src;                /* client binding state, freed with the registry */
  uint64_t list_requests;         /* list pages asked for, every informer, ever */
  kuala_informer_opts_t defaults; /* for registrations without opts */
  int have_defaults;
};

/* reflector.c */
void kuala__reflector_start(kuala_informer_t *inf);
void kuala__reflector_stop(kuala_informer_t *inf);
uint64_t kuala__informer_rand(kuala_informer_t *inf);

/* informer.c */
void kuala__informer_change(void *data, kuala_store_change_t change, const kuala_obj_t *old,
                            const kuala_obj_t *obj, int final_state_unknown);
void kuala__informer_set_synced(kuala_informer_t *inf);
void kuala__informer_maybe_free(kuala_informer_t *inf);

/* informer_client.c */
int kuala__informer_client_source(const kuala_lw_source_t **src, void **src_data,
                                  struct kuala_client_s *client);
void kuala__informer_client_source_free(void *src_data);

#endif /* KUALA_CORE_INFORMER_H */
