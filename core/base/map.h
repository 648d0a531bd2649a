/*
 * map.h: a string-keyed hash map (open addressing, linear probing,
 * backward-shift deletion, no tombstones).
 *
 * Ownership: the map stores borrowed key pointers and opaque values. The
 * caller keeps each key alive while it is in the map, usually by storing it
 * inside the value. The map never frees keys or values.
 */
#ifndef KUALA_MAP_H
#define KUALA_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *key; /* NULL = empty slot */
  size_t klen;
  uint64_t hash;
  void *value;
} kuala__map_slot_t;

typedef struct {
  kuala__map_slot_t *slots;
  size_t cap; /* power of two, or 0 */
  size_t len;
} kuala__map_t;

uint64_t kuala__hash(const void *p, size_t n);

void kuala__map_init(kuala__map_t *m);
void kuala__map_free(kuala__map_t *m);
void *kuala__map_get(const kuala__map_t *m, const char *key, size_t klen);
/* Insert or replace; returns the previous value or NULL. */
void *kuala__map_put(kuala__map_t *m, const char *key, size_t klen, void *value);
/* Remove; returns the removed value or NULL. */
void *kuala__map_del(kuala__map_t *m, const char *key, size_t klen);
/* Iterate: `*iter` starts at 0; returns 0 at the end. Do not insert while
 * iterating; deleting the current entry is not supported either (collect the
 * keys first). */
int kuala__map_next(const kuala__map_t *m, size_t *iter, const char **key, size_t *klen,
                    void **value);

#endif /* KUALA_MAP_H */
