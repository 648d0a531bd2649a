/*
 * map.c: string-keyed open-addressing hash map, see map.h.
 *
 * Invariants: cap is 0 or a power of two; len <= cap * 3 / 4; every key sits
 * in the probe run starting at (hash & (cap - 1)) with no empty slot between
 * its home and itself (kept by backward-shift deletion).
 */
#include "map.h"

#include <string.h>

#include "kuala/alloc.h"

uint64_t kuala__hash(const void *p, size_t n)
{
  /* FNV-1a, 64-bit, with a final avalanche so low bits are well mixed. */
  const unsigned char *s = p;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

void kuala__map_init(kuala__map_t *m)
{
  m->slots = NULL;
  m->cap = 0;
  m->len = 0;
}

void kuala__map_free(kuala__map_t *m)
{
  kuala_free(m->slots);
  kuala__map_init(m);
}

static kuala__map_slot_t *find(const kuala__map_t *m, const char *key, size_t klen, uint64_t h)
{
  if (m->cap == 0) {
    return NULL;
  }
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    kuala__map_slot_t *s = &m->slots[i];
    if (s->key == NULL) {
      return NULL;
    }
    if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0) {
      return s;
    }
  }
}

void *kuala__map_get(const kuala__map_t *m, const char *key, size_t klen)
{
  kuala__map_slot_t *s = find(m, key, klen, kuala__hash(key, klen));
  return s ? s->value : NULL;
}

static void insert_slot(kuala__map_slot_t *slots, size_t cap, const kuala__map_slot_t *in)
{
  size_t mask = cap - 1;
  size_t i = in->hash & mask;
  while (slots[i].key != NULL) {
    i = (i + 1) & mask;
  }
  slots[i] = *in;
}

static void grow(kuala__map_t *m)
{
  size_t ncap = m->cap ? m->cap * 2 : 16;
  kuala__map_slot_t *ns = kuala_calloc(ncap, sizeof(*ns));
  for (size_t i = 0; i < m->cap; i++) {
    if (m->slots[i].key) {
      insert_slot(ns, ncap, &m->slots[i]);
    }
  }
  kuala_free(m->slots);
  m->slots = ns;
  m->cap = ncap;
}

void *kuala__map_put(kuala__map_t *m, const char *key, size_t klen, void *value)
{
  uint64_t h = kuala__hash(key, klen);
  kuala__map_slot_t *s = find(m, key, klen, h);
  if (s) {
    void *old = s->value;
    s->value = value;
    s->key = key; /* the new value may own a new copy of the key */
    return old;
  }
  if ((m->len + 1) * 4 > m->cap * 3) {
    grow(m);
  }
  kuala__map_slot_t in = {key, klen, h, value};
  insert_slot(m->slots, m->cap, &in);
  m->len++;
  return NULL;
}

void *kuala__map_del(kuala__map_t *m, const char *key, size_t klen)
{
  kuala__map_slot_t *s = find(m, key, klen, kuala__hash(key, klen));
  if (s == NULL) {
    return NULL;
  }
  void *old = s->value;
  size_t mask = m->cap - 1;
  size_t i = (size_t)(s - m->slots);
  /* Backward-shift: pull later entries of the run into the hole when their
   * home position allows it, so lookups never stop early. */
  for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
    kuala__map_slot_t *n = &m->slots[j];
    if (n->key == NULL) {
      break;
    }
    size_t home = n->hash & mask;
    /* Move n to i if i lies cyclically in [home, j). */
    int movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
    if (movable) {
      m->slots[i] = *n;
      i = j;
    }
  }
  m->slots[i].key = NULL;
  m->slots[i].value = NULL;
  m->len--;
  return old;
}

int kuala__map_next(const kuala__map_t *m, size_t *iter, const char **key, size_t *klen,
                    void **value)
{
  for (size_t i = *iter; i < m->cap; i++) {
    if (m->slots[i].key) {
      if (key) {
        *key = m->slots[i].key;
      }
      if (klen) {
        *klen = m->slots[i].klen;
      }
      if (value) {
        *value = m->slots[i].value;
      }
      *iter = i + 1;
      return 1;
    }
  }
  *iter = m->cap;
  return 0;
}
