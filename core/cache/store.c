/*
 * store.c: the informer's object store (see kuala/store.h).
 *
 * Layout, chosen so that the whole store costs little more than the compact
 * JSON it holds:
 *
 *  - Each object is one allocation (entry_t): a 16-byte header, an array of
 *    pointers to the index nodes it belongs to, then "name\0rv\0json\0".
 *    Past ARENA_FROM bytes of JSON it comes from the store's arena (2 MB
 *    huge-page blocks, a free list per size class), else from malloc.
 *  - Objects arrive as json-c trees (kuala_store_put) or as spans of wire
 *    text found by the scanner (kuala__store_put_text, no tree).
 *  - Objects are numbered by a 32-bit id (ents[id]); ids are reused.
 *  - The primary index is an open-addressing table of ids keyed by
 *    hash(namespace, name); the entry keeps the hash.
 *  - Secondary indexes (namespace, labels, owner UID, user indexes) map a
 *    string to a node_t holding an id set. A node is shared by every object
 *    with that value; it is freed when its set empties. Label nodes are
 *    keyed "key\0value", so an entry's label nodes are also its labels (the
 *    selector matcher reads them from there, no second copy).
 *  - An entry's namespace is its first node (has_ns) and its string is the
 *    node's key: one copy per namespace, not per object.
 *
 * Invariants: ents[id] is NULL or an entry whose id appears exactly once in
 * the primary table and once in the id set of every node in entry->nodes;
 * node pointers of one entry are distinct; a node with an empty set is not
 * in any map. Memory accounting (mem) counts every live allocation of the
 * store at malloc_usable_size + one chunk header, arena entries at their
 * class size (free-listed arena memory is not counted, as malloc's free
 * memory is not).
 *
 * Ownership: the store owns entries, nodes and tables; views (kuala_obj_t)
 * point into entries and die with the next mutation.
 */
#include "kuala/store.h"

#include <json-c/json.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

#include "kuala/alloc.h"
#include "kuala/buf.h"
#include "kuala/error.h"
#include "kuala/json.h"
#include "base/jscan.h"
#include "base/map.h"
#include "store.h"

enum { IDX_NS = 0, IDX_LABELS = 1, IDX_OWNER = 2, IDX_USER0 = 3 };

/* The entry arena: once a store holds ARENA_FROM (1 MB) of JSON, entries up
 * to ARENA_MAX bytes come from 2 MB blocks asking for transparent huge
 * pages. A big sync then takes one page fault per 2 MB instead of one per
 * 4 KB (on this VM a 4 KB fault costs ~40 us: 64 MB of fresh heap took
 * 0.6 s to touch, 16 ms in huge pages). Small stores never map a block, so
 * they do not pin 2 MB each. */
#define ARENA_BLOCK ((size_t)2 << 20)
#define ARENA_FROM ((size_t)1 << 20)
#define ARENA_CLASS ((size_t)32)
#define ARENA_MAX ((size_t)32 << 10)
#define ARENA_NCLASS (ARENA_MAX / ARENA_CLASS)
#define MAX_INDEXES 64
#define MAX_NODES 65535

/* A set of uint32 ids: up to two inline, then open addressing of id + 1
 * (0 = empty) with backward-shift deletion. */
typedef struct {
  uint32_t len;
  uint32_t cap; /* 0 = inline */
  union {
    uint32_t inl[2];
    uint32_t *slots;
  } u;
} idset_t;

typedef struct node {
  idset_t ids;
  uint16_t index;
  uint16_t split; /* labels: length of the key part */
  uint32_t klen;
  char key[]; /* klen bytes + NUL */
} node_t;

typedef struct {
  uint32_t hash;
  uint32_t json_len;
  uint16_t name_len;
  uint16_t rv_len;
  uint16_t nnodes;
  uint8_t seen;
  uint8_t has_ns : 1;
  uint8_t in_arena : 1; /* allocated from the entry arena */
  /* node_t *nodes[nnodes]; char name[], rv[], json[] (each NUL-terminated) */
} entry_t;

typedef struct {
  char *name;
  kuala__map_t map; /* value -> node_t */
  kuala_store_index_cb fn;
  void *data;
} index_t;

/* A primary-table slot keeps the hash beside the id so that probing does
 * not touch the entries (one cache miss each) except on a hash match. */
typedef struct {
  uint32_t v; /* id + 1, 0 = empty */
  uint32_t h;
} pslot_t;

struct kuala_store_s {
  kuala_store_opts_t opts;
  entry_t **ents;
  uint32_t ents_cap;
  uint32_t ents_hi; /* ids below this have been used */
  uint32_t *free_ids;
  uint32_t nfree, free_cap;
  pslot_t *ptab; /* primary: id + 1 (0 = empty) and the key's hash */
  uint32_t pcap;
  uint32_t len;
  uint8_t mark;
  uint8_t replacing; /* between replace_begin and replace_end */
  index_t idx[MAX_INDEXES];
  uint32_t nidx;
  size_t json_bytes;
  size_t mem; /* tracked allocations */
  kuala_buf_t scratch;
  kuala_buf_t keybuf;
  kuala_buf_t strbuf[3]; /* decoded name, namespace, rv of escaped text */
  /* Entry arena (see entry_alloc): 2 MB blocks, a free list per 32-byte
   * size class. */
  char **blocks;
  size_t nblocks, blocks_cap;
  char *bump, *bump_end;
  void **freel;    /* [ARENA_NCLASS + 1], allocated with the first block */
  node_t **enodes; /* emit array reused by text puts */
  size_t enodes_cap;
};

struct kuala_store_emit_s {
  kuala_store_t *s;
  uint16_t index;
  node_t **nodes;
  size_t n, cap;
  int err;
};

/* ---- accounted allocation ---- */

static size_t chunk(void *p)
{
  return p ? malloc_usable_size(p) + sizeof(size_t) : 0;
}

static void *s_alloc(kuala_store_t *s, size_t n)
{
  void *p = kuala_malloc(n);
  s->mem += chunk(p);
  return p;
}

static void *s_calloc(kuala_store_t *s, size_t count, size_t n)
{
  void *p = kuala_calloc(count, n);
  s->mem += chunk(p);
  return p;
}

static void *s_realloc(kuala_store_t *s, void *p, size_t n)
{
  s->mem -= chunk(p);
  p = kuala_realloc(p, n);
  s->mem += chunk(p);
  return p;
}

static void s_free(kuala_store_t *s, void *p)
{
  s->mem -= chunk(p);
  kuala_free(p);
}

/* ---- entry arena ---- */

static void arena_grow(kuala_store_t *s)
{
  size_t rest = (size_t)(s->bump_end - s->bump);
  if (!s->freel) {
    s->freel = s_calloc(s, ARENA_NCLASS + 1, sizeof(void *));
  }
  if (rest >= ARENA_CLASS) { /* (block and carves are multiples of the class) */
    size_t cls = rest / ARENA_CLASS;
    if (cls > ARENA_NCLASS) {
      cls = ARENA_NCLASS;
    }
    memcpy(s->bump, &s->freel[cls], sizeof(void *));
    s->freel[cls] = s->bump;
  }
  /* Map twice the size and keep the 2 MB-aligned middle, so the block can
   * be one huge page. */
  char *m = mmap(NULL, 2 * ARENA_BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    abort(); /* out of memory: as kuala_malloc does */
  }
  char *b = (char *)(((uintptr_t)m + ARENA_BLOCK - 1) & ~(uintptr_t)(ARENA_BLOCK - 1));
  if (b > m) {
    munmap(m, (size_t)(b - m));
  }
  if (b + ARENA_BLOCK < m + 2 * ARENA_BLOCK) {
    munmap(b + ARENA_BLOCK, (size_t)(m + 2 * ARENA_BLOCK - (b + ARENA_BLOCK)));
  }
#ifdef MADV_HUGEPAGE
  madvise(b, ARENA_BLOCK, MADV_HUGEPAGE);
#endif
  if (s->nblocks == s->blocks_cap) {
    s->blocks_cap = s->blocks_cap ? s->blocks_cap * 2 : 8;
    s->blocks = kuala_realloc(s->blocks, s->blocks_cap * sizeof(char *));
  }
  s->blocks[s->nblocks++] = b;
  s->bump = b;
  s->bump_end = b + ARENA_BLOCK;
}

/* Memory for an entry of sz bytes; *in_arena says where it came from.
 * Arena entries are accounted at their class size. */
static void *entry_alloc(kuala_store_t *s, size_t sz, int *in_arena)
{
  size_t cls = (sz + ARENA_CLASS - 1) / ARENA_CLASS;
  if (s->json_bytes < ARENA_FROM || cls > ARENA_NCLASS) {
    *in_arena = 0;
    return s_alloc(s, sz);
  }
  size_t csz = cls * ARENA_CLASS;
  void *p = s->freel ? s->freel[cls] : NULL;
  if (p) {
    memcpy(&s->freel[cls], p, sizeof(void *));
  } else {
    if ((size_t)(s->bump_end - s->bump) < csz) {
      arena_grow(s);
    }
    p = s->bump;
    s->bump += csz;
  }
  s->mem += csz;
  *in_arena = 1;
  return p;
}

/* ---- id sets ---- */

static uint32_t mix32(uint32_t x)
{
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

static void idset_insert_raw(uint32_t *slots, uint32_t cap, uint32_t v)
{
  uint32_t mask = cap - 1;
  uint32_t i = mix32(v) & mask;
  while (slots[i] != 0) {
    if (slots[i] == v) {
      return;
    }
    i = (i + 1) & mask;
  }
  slots[i] = v;
}

static int idset_has(const idset_t *set, uint32_t id)
{
  uint32_t v = id + 1;
  if (set->cap == 0) {
    for (uint32_t i = 0; i < set->len; i++) {
      if (set->u.inl[i] == v) {
        return 1;
      }
    }
    return 0;
  }
  uint32_t mask = set->cap - 1;
  for (uint32_t i = mix32(v) & mask; set->u.slots[i] != 0; i = (i + 1) & mask) {
    if (set->u.slots[i] == v) {
      return 1;
    }
  }
  return 0;
}

static void idset_add(kuala_store_t *s, idset_t *set, uint32_t id)
{
  uint32_t v = id + 1;
  if (idset_has(set, id)) {
    return;
  }
  if (set->cap == 0 && set->len < 2) {
    set->u.inl[set->len++] = v;
    return;
  }
  if ((set->len + 1) * 4 > set->cap * 3) {
    uint32_t ncap = set->cap ? set->cap * 2 : 8;
    uint32_t *ns = s_calloc(s, ncap, sizeof(uint32_t));
    if (set->cap == 0) {
      for (uint32_t i = 0; i < set->len; i++) {
        idset_insert_raw(ns, ncap, set->u.inl[i]);
      }
    } else {
      for (uint32_t i = 0; i < set->cap; i++) {
        if (set->u.slots[i]) {
          idset_insert_raw(ns, ncap, set->u.slots[i]);
        }
      }
      s_free(s, set->u.slots);
    }
    set->u.slots = ns;
    set->cap = ncap;
  }
  idset_insert_raw(set->u.slots, set->cap, v);
  set->len++;
}

static void idset_del(idset_t *set, uint32_t id)
{
  uint32_t v = id + 1;
  if (set->cap == 0) {
    for (uint32_t i = 0; i < set->len; i++) {
      if (set->u.inl[i] == v) {
        set->u.inl[i] = set->u.inl[--set->len];
        return;
      }
    }
    return;
  }
  uint32_t mask = set->cap - 1;
  uint32_t i = mix32(v) & mask;
  while (set->u.slots[i] != v) {
    if (set->u.slots[i] == 0) {
      return;
    }
    i = (i + 1) & mask;
  }
  for (uint32_t j = (i + 1) & mask;; j = (j + 1) & mask) {
    uint32_t w = set->u.slots[j];
    if (w == 0) {
      break;
    }
    uint32_t home = mix32(w) & mask;
    int movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
    if (movable) {
      set->u.slots[i] = w;
      i = j;
    }
  }
  set->u.slots[i] = 0;
  set->len--;
}

/* Calls fn for every id; stops and returns its non-zero result. */
typedef int (*id_cb)(void *data, uint32_t id);
static int idset_each(const idset_t *set, id_cb fn, void *data)
{
  int rc;
  if (set->cap == 0) {
    for (uint32_t i = 0; i < set->len; i++) {
      if ((rc = fn(data, set->u.inl[i] - 1)) != 0) {
        return rc;
      }
    }
    return 0;
  }
  for (uint32_t i = 0; i < set->cap; i++) {
    if (set->u.slots[i] && (rc = fn(data, set->u.slots[i] - 1)) != 0) {
      return rc;
    }
  }
  return 0;
}

/* ---- entries ---- */

static node_t **e_nodes(const entry_t *e)
{
  return (node_t **)(void *)((char *)e + sizeof(entry_t));
}

static char *e_name(const entry_t *e)
{
  return (char *)e + sizeof(entry_t) + e->nnodes * sizeof(node_t *);
}

static char *e_rv(const entry_t *e)
{
  return e_name(e) + e->name_len + 1;
}

static char *e_json(const entry_t *e)
{
  return e_rv(e) + e->rv_len + 1;
}

static const char *e_ns(const entry_t *e, size_t *len)
{
  if (e->has_ns) {
    node_t *n = e_nodes(e)[0];
    if (len) {
      *len = n->klen;
    }
    return n->key;
  }
  if (len) {
    *len = 0;
  }
  return "";
}

static void e_view(const entry_t *e, kuala_obj_t *v)
{
  v->ns = e_ns(e, NULL);
  v->name = e_name(e);
  v->rv = e_rv(e);
  v->json = e_json(e);
  v->json_len = e->json_len;
}

static uint32_t key_hash(const char *ns, size_t nslen, const char *name, size_t namelen)
{
  uint64_t h = kuala__hash(ns, nslen);
  h ^= kuala__hash(name, namelen) * 0x9e3779b97f4a7c15ULL;
  return (uint32_t)(h ^ (h >> 32));
}

static int e_is(const entry_t *e, const char *ns, size_t nslen, const char *name, size_t namelen)
{
  size_t elen;
  const char *ens = e_ns(e, &elen);
  return e->name_len == namelen && elen == nslen && memcmp(e_name(e), name, namelen) == 0 &&
         memcmp(ens, ns, nslen) == 0;
}

/* ---- primary table ---- */

static pslot_t *ptab_find(const kuala_store_t *s, uint32_t h, const char *ns, size_t nslen,
                          const char *name, size_t namelen)
{
  if (s->pcap == 0) {
    return NULL;
  }
  uint32_t mask = s->pcap - 1;
  for (uint32_t i = h & mask; s->ptab[i].v != 0; i = (i + 1) & mask) {
    if (s->ptab[i].h == h && e_is(s->ents[s->ptab[i].v - 1], ns, nslen, name, namelen)) {
      return &s->ptab[i];
    }
  }
  return NULL;
}

static void ptab_insert_raw(pslot_t *tab, uint32_t cap, pslot_t in)
{
  uint32_t mask = cap - 1;
  uint32_t i = in.h & mask;
  while (tab[i].v != 0) {
    i = (i + 1) & mask;
  }
  tab[i] = in;
}

static void ptab_insert(kuala_store_t *s, uint32_t id)
{
  if ((s->len + 1) * 4 > s->pcap * 3) {
    uint32_t ncap = s->pcap ? s->pcap * 2 : 64;
    pslot_t *nt = s_calloc(s, ncap, sizeof(pslot_t));
    for (uint32_t i = 0; i < s->pcap; i++) {
      if (s->ptab[i].v) {
        ptab_insert_raw(nt, ncap, s->ptab[i]);
      }
    }
    s_free(s, s->ptab);
    s->ptab = nt;
    s->pcap = ncap;
  }
  pslot_t in = {id + 1, s->ents[id]->hash};
  ptab_insert_raw(s->ptab, s->pcap, in);
  s->len++;
}

static void ptab_remove(kuala_store_t *s, pslot_t *slot)
{
  uint32_t mask = s->pcap - 1;
  uint32_t i = (uint32_t)(slot - s->ptab);
  for (uint32_t j = (i + 1) & mask;; j = (j + 1) & mask) {
    pslot_t w = s->ptab[j];
    if (w.v == 0) {
      break;
    }
    uint32_t home = w.h & mask;
    int movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
    if (movable) {
      s->ptab[i] = w;
      i = j;
    }
  }
  s->ptab[i].v = 0;
  s->ptab[i].h = 0;
  s->len--;
}

/* ---- ids ---- */

static uint32_t id_alloc(kuala_store_t *s)
{
  if (s->nfree > 0) {
    return s->free_ids[--s->nfree];
  }
  if (s->ents_hi == s->ents_cap) {
    uint32_t ncap = s->ents_cap ? s->ents_cap * 2 : 64;
    s->ents = s_realloc(s, s->ents, ncap * sizeof(entry_t *));
    memset(s->ents + s->ents_cap, 0, (ncap - s->ents_cap) * sizeof(entry_t *));
    s->ents_cap = ncap;
  }
  return s->ents_hi++;
}

static void id_release(kuala_store_t *s, uint32_t id)
{
  s->ents[id] = NULL;
  if (s->nfree == s->free_cap) {
    s->free_cap = s->free_cap ? s->free_cap * 2 : 64;
    s->free_ids = s_realloc(s, s->free_ids, s->free_cap * sizeof(uint32_t));
  }
  s->free_ids[s->nfree++] = id;
}

/* ---- nodes ---- */

static node_t *node_get(kuala_store_t *s, uint16_t index, const char *key, size_t klen,
                        uint16_t split)
{
  index_t *ix = &s->idx[index];
  node_t *n = kuala__map_get(&ix->map, key, klen);
  if (n) {
    return n;
  }
  n = s_alloc(s, sizeof(node_t) + klen + 1);
  memset(&n->ids, 0, sizeof(n->ids));
  n->index = index;
  n->split = split;
  n->klen = (uint32_t)klen;
  memcpy(n->key, key, klen);
  n->key[klen] = '\0';
  kuala__map_put(&ix->map, n->key, klen, n);
  return n;
}

static void node_release_if_empty(kuala_store_t *s, node_t *n)
{
  if (n->ids.len > 0) {
    return;
  }
  kuala__map_del(&s->idx[n->index].map, n->key, n->klen);
  if (n->ids.cap) {
    s_free(s, n->ids.u.slots);
  }
  s_free(s, n);
}

static void emit_add_node(kuala_store_emit_t *em, node_t *n)
{
  for (size_t i = 0; i < em->n; i++) {
    if (em->nodes[i] == n) {
      return;
    }
  }
  if (em->n == em->cap) {
    em->cap = em->cap ? em->cap * 2 : 16;
    em->nodes = kuala_realloc(em->nodes, em->cap * sizeof(node_t *));
  }
  em->nodes[em->n++] = n;
}

void kuala_store_emit(kuala_store_emit_t *em, const char *value, size_t len)
{
  if (em->err) {
    return;
  }
  if (em->n >= MAX_NODES || len > UINT32_MAX) {
    em->err = KUALA_E2BIG;
    return;
  }
  emit_add_node(em, node_get(em->s, em->index, value, len, 0));
}

/* Release nodes collected for an entry that was never linked. */
static void emit_abort(kuala_store_emit_t *em)
{
  for (size_t i = 0; i < em->n; i++) {
    node_release_if_empty(em->s, em->nodes[i]);
  }
  em->n = 0;
}

/* ---- JSON text scanning ---- */

static int is_ws(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
  while (i < n && is_ws(s[i])) {
    i++;
  }
  return i;
}

/* i at the opening quote; returns index after the closing quote. memchr
 * finds candidate quotes fast; a quote preceded by an odd number of
 * backslashes is escaped. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
  size_t j = i + 1;
  while (j < n) {
    const char *q = memchr(s + j, '"', n - j);
    if (!q) {
      return n;
    }
    size_t k = (size_t)(q - s), bs = 0;
    while (k - bs > i + 1 && s[k - bs - 1] == '\\') {
      bs++;
    }
    if ((bs & 1) == 0) {
      return k + 1;
    }
    j = k + 1;
  }
  return n;
}

size_t kuala__json_skip(const char *s, size_t n, size_t i)
{
  i = skip_ws(s, n, i);
  if (i >= n) {
    return n;
  }
  if (s[i] == '"') {
    return skip_string(s, n, i);
  }
  if (s[i] == '{' || s[i] == '[') {
    size_t depth = 0;
    for (; i < n; i++) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, n, i) - 1;
      } else if (c == '{' || c == '[') {
        depth++;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) {
          return i + 1;
        }
      }
    }
    return n;
  }
  while (i < n && !is_ws(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']') {
    i++;
  }
  return i;
}

int kuala__json_member(const char *s, size_t n, const char *key, size_t *off, size_t *len)
{
  size_t klen = strlen(key);
  size_t i = skip_ws(s, n, 0);
  if (i >= n || s[i] != '{') {
    return KUALA_ENOENT;
  }
  i++;
  for (;;) {
    i = skip_ws(s, n, i);
    if (i >= n || s[i] != '"') {
      return KUALA_ENOENT;
    }
    size_t kend = skip_string(s, n, i);
    int match = kend - i == klen + 2 && memcmp(s + i + 1, key, klen) == 0;
    i = skip_ws(s, n, kend);
    if (i >= n || s[i] != ':') {
      return KUALA_ENOENT;
    }
    size_t vstart = skip_ws(s, n, i + 1);
    if (match && !len) {
      *off = vstart;
      return 0;
    }
    size_t vend = kuala__json_skip(s, n, vstart);
    if (match) {
      *off = vstart;
      *len = vend - vstart;
      return 0;
    }
    i = skip_ws(s, n, vend);
    if (i >= n || s[i] != ',') {
      return KUALA_ENOENT;
    }
    i++;
  }
}

/* Iterate the members of the (scanned, valid) object text s[0..n): start
 * with *pos = 0; each call returns 1 with the raw key (between its quotes,
 * `esc` set when it holds a backslash) and the value's span, then 0. */
static int member_next(const char *s, size_t n, size_t *pos, kuala__jstr_t *key,
                       kuala__jspan_t *val)
{
  size_t i = skip_ws(s, n, *pos);
  if (i < n && (s[i] == '{' || s[i] == ',')) {
    i = skip_ws(s, n, i + 1);
  }
  if (i >= n || s[i] != '"') {
    *pos = n;
    return 0;
  }
  size_t kstart = i;
  int esc = 0;
  if (kuala__jscan_string(s, n, &i, &esc, NULL, 0) < 0) {
    *pos = n;
    return 0;
  }
  key->off = kstart + 1;
  key->len = i - kstart - 2;
  key->set = 1;
  key->esc = (uint8_t)esc;
  i = skip_ws(s, n, i);
  if (i >= n || s[i] != ':') {
    *pos = n;
    return 0;
  }
  i = skip_ws(s, n, i + 1);
  size_t end = kuala__json_skip(s, n, i);
  val->off = i;
  val->len = end - i;
  *pos = end;
  return 1;
}

int kuala__json_array_next(const char *s, size_t n, size_t *pos, size_t *off, size_t *len)
{
  size_t i = skip_ws(s, n, *pos);
  if (i >= n) {
    return 0;
  }
  if (s[i] == '[' || s[i] == ',') {
    i = skip_ws(s, n, i + 1);
  }
  if (i >= n || s[i] == ']') {
    *pos = n;
    return 0;
  }
  size_t end = kuala__json_skip(s, n, i);
  if (end == i) {
    *pos = n; /* not a value (text json-c refused): stop rather than spin */
    return 0;
  }
  *off = i;
  *len = end - i;
  *pos = end;
  return 1;
}

/* Make room for `need` more output bytes after *o (plus the NUL), keeping
 * the cursor pointers valid; KUALA_E2BIG past the buffer's cap. */
static int grow_out(kuala_buf_t *out, char **base, char **o, char **lim, size_t need)
{
  size_t used = (size_t)(*o - *base);
  size_t extra = used + (need > out->cap ? need : out->cap);
  if (out->max && out->len + extra > out->max) {
    extra = out->max - out->len;
    if (extra < used + need) {
      return KUALA_E2BIG;
    }
  }
  int rc = kuala_buf_reserve(out, extra);
  if (rc < 0) {
    return rc;
  }
  *base = out->data + out->len;
  *o = *base + used;
  *lim = out->data + out->cap - 1;
  return 0;
}

int kuala__json_compact(const char *s, size_t n, int strip_mf, kuala_buf_t *out, size_t *consumed)
{
  /* Container stack as bits (1 = object) for the first 64 levels; deeper
   * text (objects may nest KUALA_JSON_MAX_DEPTH deep) is copied without
   * stripping, which only ever happens at depth 2. The output is never longer
   * than the input, so room for n bytes is reserved once and written
   * through a plain pointer. */
  uint64_t objbits = 0;
  size_t depth = 0;
  int expect_key = 0;
  int last_key_meta = 0; /* the last depth-1 key was "metadata" */
  int in_meta = 0;       /* the depth-2 object is the top-level metadata */
  int drop_comma = 0;
  size_t first = n < 65536 ? n : 65536;
  if (out->max && first > out->max - out->len) {
    first = out->max - out->len;
  }
  int rc = kuala_buf_reserve(out, first);
  if (rc < 0) {
    return rc;
  }
  char *base = out->data + out->len, *o = base;
  char *lim = out->data + out->cap - 1; /* room for the NUL */

  size_t i = skip_ws(s, n, 0);
  while (i < n) {
    char c = s[i];
    if (c == '"') {
      size_t end = skip_string(s, n, i);
      if (expect_key && depth <= 2) {
        size_t klen = end - i - 2;
        if (depth == 1) {
          last_key_meta = klen == 8 && memcmp(s + i + 1, "metadata", 8) == 0;
        }
        if (strip_mf && in_meta && depth == 2 && klen == 13 &&
            memcmp(s + i + 1, "managedFields", 13) == 0) {
          /* Skip key, colon and value; fix the comma on one side. */
          size_t j = skip_ws(s, n, end);
          if (j < n && s[j] == ':') {
            j++;
          }
          j = kuala__json_skip(s, n, j);
          if (o > base && o[-1] == ',') {
            o--;
          } else {
            drop_comma = 1;
          }
          i = skip_ws(s, n, j);
          expect_key = 0;
          continue;
        }
      }
      if ((size_t)(lim - o) < end - i && (rc = grow_out(out, &base, &o, &lim, end - i)) < 0) {
        return rc;
      }
      memcpy(o, s + i, end - i);
      o += end - i;
      i = end;
      drop_comma = 0;
      if (depth == 0) {
        break; /* a lone string value */
      }
      continue;
    }
    switch (c) {
      case ' ':
      case '\t':
      case '\n':
      case '\r':
        i++;
        continue;
      case '{':
      case '[':
        depth++;
        if (depth <= 64) {
          if (c == '{') {
            objbits |= (uint64_t)1 << (depth - 1);
          } else {
            objbits &= ~((uint64_t)1 << (depth - 1));
          }
        }
        expect_key = c == '{';
        if (depth == 2) {
          in_meta = c == '{' && last_key_meta;
        }
        break;
      case '}':
      case ']':
        if (depth > 0) {
          depth--;
        }
        if (depth < 2) {
          in_meta = 0;
        }
        expect_key = 0;
        break;
      case ',':
        expect_key = depth > 0 && depth <= 64 && (objbits >> (depth - 1)) & 1;
        if (drop_comma) {
          drop_comma = 0;
          i++;
          continue;
        }
        break;
      case ':':
        expect_key = 0;
        break;
      default:
        break;
    }
    drop_comma = 0;
    if (lim == o && (rc = grow_out(out, &base, &o, &lim, 1)) < 0) {
      return rc;
    }
    *o++ = c;
    i++;
    if (depth == 0) {
      /* The first value is complete (a container closed, or a scalar's
       * last byte: scalars at depth 0 continue until a delimiter). */
      if (c == '}' || c == ']' || i >= n || is_ws(s[i]) || s[i] == ',' || s[i] == '}' ||
          s[i] == ']') {
        break;
      }
    }
  }
  *o = '\0';
  out->len += (size_t)(o - base);
  if (consumed) {
    *consumed = i;
  }
  return 0;
}

/* ---- store ---- */

static const char *builtin_names[IDX_USER0] = {"namespace", "labels", "owner"};

int kuala_store_new(kuala_store_t **out, const kuala_store_opts_t *opts)
{
  kuala_store_t *s = kuala_calloc(1, sizeof(*s));
  if (opts) {
    s->opts = *opts;
  }
  if (s->opts.max_object_bytes == 0) {
    s->opts.max_object_bytes = 16u << 20;
  }
  for (uint32_t i = 0; i < IDX_USER0; i++) {
    s->idx[i].name = kuala_strdup(builtin_names[i]);
    kuala__map_init(&s->idx[i].map);
  }
  s->nidx = IDX_USER0;
  kuala_buf_init(&s->scratch, s->opts.max_object_bytes);
  kuala_buf_init(&s->keybuf, 0);
  for (int i = 0; i < 3; i++) {
    kuala_buf_init(&s->strbuf[i], 0);
  }
  *out = s;
  return 0;
}

void kuala_store_free(kuala_store_t *s)
{
  if (!s) {
    return;
  }
  for (uint32_t id = 0; id < s->ents_hi; id++) {
    if (s->ents[id] && !s->ents[id]->in_arena) {
      kuala_free(s->ents[id]);
    }
  }
  for (size_t i = 0; i < s->nblocks; i++) {
    munmap(s->blocks[i], ARENA_BLOCK);
  }
  kuala_free(s->blocks);
  kuala_free(s->freel);
  for (uint32_t i = 0; i < s->nidx; i++) {
    size_t it = 0;
    void *v;
    while (kuala__map_next(&s->idx[i].map, &it, NULL, NULL, &v)) {
      node_t *n = v;
      if (n->ids.cap) {
        kuala_free(n->ids.u.slots);
      }
      kuala_free(n);
    }
    kuala__map_free(&s->idx[i].map);
    kuala_free(s->idx[i].name);
  }
  kuala_free(s->ents);
  kuala_free(s->free_ids);
  kuala_free(s->ptab);
  kuala_buf_free(&s->scratch);
  kuala_buf_free(&s->keybuf);
  for (int i = 0; i < 3; i++) {
    kuala_buf_free(&s->strbuf[i]);
  }
  kuala_free(s->enodes);
  kuala_free(s);
}

size_t kuala_store_len(const kuala_store_t *s)
{
  return s->len;
}

size_t kuala_store_json_bytes(const kuala_store_t *s)
{
  return s->json_bytes;
}

size_t kuala_store_mem_bytes(const kuala_store_t *s)
{
  size_t total = s->mem + chunk((void *)s);
  for (uint32_t i = 0; i < s->nidx; i++) {
    total += chunk(s->idx[i].map.slots) + chunk(s->idx[i].name);
  }
  return total;
}

static const char *str_field(json_object *o, const char *key, size_t *len)
{
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) {
    return NULL;
  }
  *len = (size_t)json_object_get_string_len(v);
  return json_object_get_string(v);
}

/* Keep only apiVersion, kind and metadata. */
static void to_metadata_only(json_object *obj)
{
  char **drop = NULL;
  size_t nd = 0;
  drop = kuala_malloc(sizeof(char *) * ((size_t)json_object_object_length(obj) + 1));
  json_object_object_foreach(obj, k, v)
  {
    (void)v;
    if (strcmp(k, "apiVersion") != 0 && strcmp(k, "kind") != 0 && strcmp(k, "metadata") != 0) {
      drop[nd++] = kuala_strdup(k);
    }
  }
  for (size_t i = 0; i < nd; i++) {
    json_object_object_del(obj, drop[i]);
    kuala_free(drop[i]);
  }
  kuala_free(drop);
}

/* The metadata fields the store reads, found in one walk over metadata
 * (cheaper than a hash lookup per field on every ingested object). */
typedef struct {
  json_object *name, *ns, *rv, *labels, *owners;
} meta_t;

static void meta_fields(json_object *meta, meta_t *m)
{
  memset(m, 0, sizeof(*m));
  json_object_object_foreach(meta, k, v)
  {
    switch (k[0]) {
      case 'n':
        if (strcmp(k, "name") == 0) {
          m->name = v;
        } else if (strcmp(k, "namespace") == 0) {
          m->ns = v;
        }
        break;
      case 'r':
        if (strcmp(k, "resourceVersion") == 0) {
          m->rv = v;
        }
        break;
      case 'l':
        if (strcmp(k, "labels") == 0) {
          m->labels = v;
        }
        break;
      case 'o':
        if (strcmp(k, "ownerReferences") == 0) {
          m->owners = v;
        }
        break;
      default:
        break;
    }
  }
}

static const char *str_of(json_object *v, size_t *len)
{
  if (!v || !json_object_is_type(v, json_type_string)) {
    return NULL;
  }
  *len = (size_t)json_object_get_string_len(v);
  return json_object_get_string(v);
}

/* Collect the secondary index nodes of an object into em (namespace first).
 * Returns 0 or a negative code (nodes released). */
static int collect_nodes(kuala_store_t *s, json_object *obj, const meta_t *mf, const char *ns,
                         size_t nslen, kuala_store_emit_t *em)
{
  if (nslen > 0) {
    emit_add_node(em, node_get(s, IDX_NS, ns, nslen, 0));
  }
  json_object *labels = mf->labels, *owners = mf->owners;
  if (labels && json_object_is_type(labels, json_type_object)) {
    kuala_buf_t *kb = &s->keybuf;
    json_object_object_foreach(labels, k, v)
    {
      if (!json_object_is_type(v, json_type_string)) {
        continue;
      }
      size_t kl = strlen(k);
      if (kl > UINT16_MAX || em->n >= MAX_NODES) {
        emit_abort(em);
        return KUALA_E2BIG;
      }
      kuala_buf_reset(kb);
      kuala_buf_append(kb, k, kl + 1); /* with the NUL separator */
      kuala_buf_append(kb, json_object_get_string(v), (size_t)json_object_get_string_len(v));
      emit_add_node(em, node_get(s, IDX_LABELS, kb->data, kb->len, (uint16_t)kl));
    }
  }
  if (owners && json_object_is_type(owners, json_type_array)) {
    size_t no = json_object_array_length(owners);
    for (size_t i = 0; i < no; i++) {
      size_t ulen;
      const char *uid = str_field(json_object_array_get_idx(owners, i), "uid", &ulen);
      if (uid && ulen > 0 && em->n < MAX_NODES) {
        emit_add_node(em, node_get(s, IDX_OWNER, uid, ulen, 0));
      }
    }
  }
  for (uint32_t i = IDX_USER0; i < s->nidx; i++) {
    em->index = (uint16_t)i;
    int rc = s->idx[i].fn(s->idx[i].data, obj, em);
    if (rc == 0 && em->err) {
      rc = em->err;
    }
    if (rc < 0) {
      emit_abort(em);
      return rc;
    }
  }
  return 0;
}

static size_t entry_size(const entry_t *e)
{
  return sizeof(entry_t) + e->nnodes * sizeof(node_t *) + e->name_len + 1u + e->rv_len + 1u +
         e->json_len + 1u;
}

/* Give an entry's memory back (to its class's free list in the arena). */
static void entry_free(kuala_store_t *s, entry_t *e)
{
  if (!e->in_arena) {
    s_free(s, e);
    return;
  }
  size_t cls = (entry_size(e) + ARENA_CLASS - 1) / ARENA_CLASS;
  memcpy(e, &s->freel[cls], sizeof(void *));
  s->freel[cls] = e;
  s->mem -= cls * ARENA_CLASS;
}

static entry_t *entry_build(kuala_store_t *s, const char *name, size_t namelen, const char *rv,
                            size_t rvlen, const char *json, size_t jlen, kuala_store_emit_t *em,
                            int has_ns, uint32_t hash)
{
  size_t sz = sizeof(entry_t) + em->n * sizeof(node_t *) + namelen + 1 + rvlen + 1 + jlen + 1;
  int in_arena;
  entry_t *e = entry_alloc(s, sz, &in_arena);
  e->in_arena = (uint8_t)in_arena;
  e->hash = hash;
  e->json_len = (uint32_t)jlen;
  e->name_len = (uint16_t)namelen;
  e->rv_len = (uint16_t)rvlen;
  e->nnodes = (uint16_t)em->n;
  e->seen = s->mark;
  e->has_ns = (uint8_t)(has_ns != 0);
  if (em->n) {
    memcpy(e_nodes(e), em->nodes, em->n * sizeof(node_t *));
  }
  memcpy(e_name(e), name, namelen);
  e_name(e)[namelen] = '\0';
  memcpy(e_rv(e), rv, rvlen);
  e_rv(e)[rvlen] = '\0';
  memcpy(e_json(e), json, jlen);
  e_json(e)[jlen] = '\0';
  return e;
}

static void entry_link_nodes(kuala_store_t *s, uint32_t id)
{
  entry_t *e = s->ents[id];
  for (uint16_t i = 0; i < e->nnodes; i++) {
    idset_add(s, &e_nodes(e)[i]->ids, id);
  }
}

static void entry_unlink_nodes(entry_t *e, uint32_t id)
{
  for (uint16_t i = 0; i < e->nnodes; i++) {
    idset_del(&e_nodes(e)[i]->ids, id);
  }
}

/* Free an unlinked entry, its empty nodes and its id. */
static void entry_destroy(kuala_store_t *s, uint32_t id)
{
  entry_t *e = s->ents[id];
  for (uint16_t i = 0; i < e->nnodes; i++) {
    node_release_if_empty(s, e_nodes(e)[i]);
  }
  s->json_bytes -= e->json_len;
  entry_free(s, e);
  id_release(s, id);
}

/* Link a new entry for an object whose nodes are in em and whose stored
 * text is json[0..jlen), replacing the one in `slot` (NULL: a new key),
 * and report the change. */
static int commit(kuala_store_t *s, const char *name, size_t namelen, const char *rv, size_t rvlen,
                  size_t nslen, uint32_t h, pslot_t *slot, const char *json, size_t jlen,
                  kuala_store_emit_t *em, kuala_store_change_cb cb, void *data)
{
  if (jlen > s->opts.max_object_bytes || jlen > UINT32_MAX) {
    emit_abort(em);
    return KUALA_E2BIG;
  }
  uint32_t old_id = slot ? slot->v - 1 : 0;
  uint32_t id = id_alloc(s);
  entry_t *e = entry_build(s, name, namelen, rv, rvlen, json, jlen, em, nslen > 0, h);
  s->ents[id] = e;
  s->json_bytes += jlen;
  entry_link_nodes(s, id);
  if (slot) {
    entry_t *old = s->ents[old_id];
    slot->v = id + 1;
    entry_unlink_nodes(old, old_id);
    if (cb) {
      kuala_obj_t ov, nv;
      e_view(old, &ov);
      e_view(e, &nv);
      cb(data, KUALA_STORE_UPDATED, &ov, &nv, 0);
    }
    entry_destroy(s, old_id);
  } else {
    ptab_insert(s, id);
    if (cb) {
      kuala_obj_t nv;
      e_view(e, &nv);
      cb(data, KUALA_STORE_ADDED, NULL, &nv, 0);
    }
  }
  return 0;
}

int kuala_store_put(kuala_store_t *s, json_object *obj, const char *raw, size_t rawlen, int flags,
                    kuala_store_change_cb cb, void *data)
{
  return kuala__store_put_ex(s, obj, raw, rawlen, flags, cb, data, NULL);
}

int kuala__store_put_ex(kuala_store_t *s, json_object *obj, const char *raw, size_t rawlen,
                        int flags, kuala_store_change_cb cb, void *data, size_t *consumed)
{
  kuala_store_emit_t em = {s, 0, NULL, 0, 0, 0};
  json_object *meta;
  size_t namelen = 0, nslen = 0, rvlen = 0;
  const char *name, *ns, *rv, *json = NULL;
  size_t jlen = 0;
  int rc = 0;

  if (!obj || !json_object_is_type(obj, json_type_object)) {
    return KUALA_EINVAL;
  }
  if (s->opts.transform && (rc = s->opts.transform(s->opts.transform_data, obj)) < 0) {
    return rc;
  }
  if (s->opts.metadata_only) {
    to_metadata_only(obj);
  }
  if (!json_object_object_get_ex(obj, "metadata", &meta) ||
      !json_object_is_type(meta, json_type_object)) {
    return KUALA_EINVAL;
  }
  meta_t mf;
  meta_fields(meta, &mf);
  name = str_of(mf.name, &namelen);
  if (!name || namelen == 0 || namelen > UINT16_MAX) {
    return KUALA_EINVAL;
  }
  ns = str_of(mf.ns, &nslen);
  if (!ns) {
    ns = "";
    nslen = 0;
  }
  rv = str_of(mf.rv, &rvlen);
  if (!rv) {
    rv = "";
    rvlen = 0;
  }
  if (rvlen > UINT16_MAX) {
    return KUALA_EINVAL;
  }

  uint32_t h = key_hash(ns, nslen, name, namelen);
  pslot_t *slot = ptab_find(s, h, ns, nslen, name, namelen);
  uint32_t old_id = slot ? slot->v - 1 : 0;
  if (slot && (flags & KUALA_STORE_SKIP_SAME_RV) && rvlen > 0) {
    entry_t *old = s->ents[old_id];
    if (old->rv_len == rvlen && memcmp(e_rv(old), rv, rvlen) == 0) {
      old->seen = s->mark;
      return 0;
    }
  }
  /* Index nodes first: user index functions may serialise the tree, which
   * would overwrite the string json-c hands back below. */
  if ((rc = collect_nodes(s, obj, &mf, ns, nslen, &em)) < 0) {
    goto cleanup;
  }
  /* The bytes to keep: compacted from the raw text when it is the same
   * document, else serialised from the (possibly transformed) tree. */
  kuala_buf_reset(&s->scratch);
  if (raw && !s->opts.transform && !s->opts.metadata_only) {
    if ((rc = kuala__json_compact(raw, rawlen, !s->opts.keep_managed_fields, &s->scratch,
                                  consumed)) < 0) {
      emit_abort(&em);
      goto cleanup;
    }
    json = s->scratch.data;
    jlen = s->scratch.len;
  } else {
    if (!s->opts.keep_managed_fields) {
      json_object_object_del(meta, "managedFields");
    }
    size_t l;
    json = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &l);
    jlen = l;
  }
  rc = commit(s, name, namelen, rv, rvlen, nslen, h, slot, json, jlen, &em, cb, data);
cleanup:
  kuala_free(em.nodes);
  return rc;
}

/* ---- puts from scanned text (no tree) ---- */

/* Take the entry at `slot` out of the table and the indexes; its id. */
static uint32_t detach(kuala_store_t *s, pslot_t *slot)
{
  uint32_t id = slot->v - 1;
  ptab_remove(s, slot);
  entry_unlink_nodes(s->ents[id], id);
  return id;
}

/* Report the detached entry `id` as deleted (as the given `json` and `rv`
 * when json is set: a delete event's own object), then free it. */
static void report_removed(kuala_store_t *s, uint32_t id, kuala_store_change_cb cb, void *data,
                           int unknown, const char *rv, const char *json, size_t json_len)
{
  if (cb) {
    kuala_obj_t v;
    e_view(s->ents[id], &v);
    if (json) {
      v.rv = rv;
      v.json = json;
      v.json_len = json_len;
    }
    cb(data, KUALA_STORE_DELETED, NULL, &v, unknown);
  }
  entry_destroy(s, id);
}

static void remove_at(kuala_store_t *s, pslot_t *slot, kuala_store_change_cb cb, void *data,
                      int unknown)
{
  report_removed(s, detach(s, slot), cb, data, unknown, NULL, NULL, 0);
}

/* The start of a delete event for ns/name: KUALA_ENOTFOUND, 0 when done
 * already (no callback: nothing to report), or 1 with the entry detached
 * (*id) and the scratch buffer empty for the event's object. */
static int delete_begin(kuala_store_t *s, const char *ns, size_t nslen, const char *name,
                        size_t namelen, kuala_store_change_cb cb, uint32_t *id)
{
  pslot_t *slot = ptab_find(s, key_hash(ns, nslen, name, namelen), ns, nslen, name, namelen);
  if (!slot) {
    return KUALA_ENOTFOUND;
  }
  if (!cb) {
    remove_at(s, slot, NULL, NULL, 0);
    return 0;
  }
  *id = detach(s, slot);
  kuala_buf_reset(&s->scratch);
  return 1;
}

int kuala__store_wants_tree(const kuala_store_t *s)
{
  return s->opts.transform || s->opts.metadata_only || s->nidx > IDX_USER0;
}

/* A scanned string's bytes: in the text when it has no escape, else
 * decoded into buf. */
static const char *jstr(const char *text, const kuala__jstr_t *v, kuala_buf_t *buf, size_t *len)
{
  if (!v->esc) {
    *len = v->len;
    return text + v->off;
  }
  kuala_buf_reset(buf);
  kuala__jscan_unescape(text + v->off, v->len, buf);
  kuala_buf_putc(buf, '\0');
  *len = buf->len - 1;
  return buf->data;
}

/* Two raw keys equal once decoded. */
static int key_eq(const char *t, const kuala__jstr_t *a, const kuala__jstr_t *b)
{
  if (!a->esc && !b->esc) {
    return a->len == b->len && memcmp(t + a->off, t + b->off, a->len) == 0;
  }
  kuala_buf_t x, y;
  kuala_buf_init(&x, 0);
  kuala_buf_init(&y, 0);
  kuala__jscan_unescape(t + a->off, a->len, &x);
  kuala__jscan_unescape(t + b->off, b->len, &y);
  int eq = x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
  kuala_buf_free(&x);
  kuala_buf_free(&y);
  return eq;
}

static int is_key(const char *t, const kuala__jstr_t *k, const char *lit, size_t litlen)
{
  if (!k->esc) {
    return k->len == litlen && memcmp(t + k->off, lit, litlen) == 0;
  }
  /* (rare) decode and compare */
  kuala_buf_t x;
  kuala_buf_init(&x, 0);
  kuala__jscan_unescape(t + k->off, k->len, &x);
  int eq = x.len == litlen && memcmp(x.data, lit, litlen) == 0;
  kuala_buf_free(&x);
  return eq;
}

/* The text version of collect_nodes: labels and owner UIDs read from the
 * spans the scan recorded. A label key given twice is refused (a decoder
 * keeps only one of them; the index would hold both). */
static int collect_nodes_text(kuala_store_t *s, const char *t, const kuala__jobj_t *o,
                              const char *ns, size_t nslen, kuala_store_emit_t *em)
{
  if (nslen > 0) {
    emit_add_node(em, node_get(s, IDX_NS, ns, nslen, 0));
  }
  if (o->labels.len) {
    kuala_buf_t *kb = &s->keybuf;
    const char *lt = t + o->labels.off;
    size_t pos = 0, nkeys = 0;
    kuala__jstr_t k;
    kuala__jspan_t v;
    kuala__jstr_t seen[64];
    while (member_next(lt, o->labels.len, &pos, &k, &v)) {
      /* Duplicates: checked among the first 64 keys directly, beyond
       * that against the label nodes collected so far. */
      for (size_t i = 0; i < nkeys && i < 64; i++) {
        if (key_eq(lt, &seen[i], &k)) {
          emit_abort(em);
          return KUALA_EBADMSG;
        }
      }
      if (nkeys < 64) {
        seen[nkeys] = k;
      }
      nkeys++;
      if (lt[v.off] != '"') {
        continue;
      }
      kuala_buf_reset(kb);
      if (k.esc) {
        kuala__jscan_unescape(lt + k.off, k.len, kb);
      } else {
        kuala_buf_append(kb, lt + k.off, k.len);
      }
      size_t kl = kb->len;
      if (kl > UINT16_MAX || em->n >= MAX_NODES) {
        emit_abort(em);
        return KUALA_E2BIG;
      }
      if (nkeys > 64) {
        for (size_t i = 0; i < em->n; i++) {
          node_t *n = em->nodes[i];
          if (n->index == IDX_LABELS && n->split == kl && memcmp(n->key, kb->data, kl) == 0) {
            emit_abort(em);
            return KUALA_EBADMSG;
          }
        }
      }
      kuala_buf_putc(kb, '\0');
      const char *vs = lt + v.off + 1;
      size_t vl = v.len - 2;
      if (memchr(vs, '\\', vl)) {
        kuala__jscan_unescape(vs, vl, kb);
      } else {
        kuala_buf_append(kb, vs, vl);
      }
      emit_add_node(em, node_get(s, IDX_LABELS, kb->data, kb->len, (uint16_t)kl));
    }
  }
  if (o->owners.len) {
    const char *ot = t + o->owners.off;
    size_t pos = 0;
    kuala__jspan_t el;
    while (kuala__json_array_next(ot, o->owners.len, &pos, &el.off, &el.len)) {
      if (ot[el.off] != '{') {
        continue;
      }
      /* The last "uid" wins, as in a decoder. */
      const char *et = ot + el.off;
      size_t p2 = 0;
      kuala__jstr_t k;
      kuala__jspan_t v, uid = {0, 0};
      while (member_next(et, el.len, &p2, &k, &v)) {
        if (is_key(et, &k, "uid", 3)) {
          uid = v;
        }
      }
      if (uid.len < 3 || et[uid.off] != '"' || em->n >= MAX_NODES) {
        continue; /* absent, not a string, or "" */
      }
      kuala__jstr_t us = {uid.off + 1, uid.len - 2, 1, 0};
      us.esc = memchr(et + us.off, '\\', us.len) != NULL;
      size_t ulen;
      const char *u = jstr(et, &us, &s->keybuf, &ulen);
      if (ulen > 0) {
        emit_add_node(em, node_get(s, IDX_OWNER, u, ulen, 0));
      }
    }
  }
  return 0;
}

/* The object o of the scanned text t through the tree path (a store that
 * needs one), or refused like kuala_store_put refuses it. */
static int put_tree(kuala_store_t *s, const char *t, const kuala__jobj_t *o, int flags,
                    kuala_store_change_cb cb, void *data, int del)
{
  json_object *obj = NULL;
  int rc = kuala_json_parse(&obj, t + o->off, o->len, NULL, 0);
  if (rc == 0) {
    rc = del ? kuala_store_delete_obj(s, obj, t + o->off, o->len, cb, data)
             : kuala__store_put_ex(s, obj, t + o->off, o->len, flags, cb, data, NULL);
  }
  json_object_put(obj);
  return rc;
}

/* Name, namespace and RV of a scanned object, checked as put checks them. */
static int text_key(kuala_store_t *s, const char *t, const kuala__jobj_t *o, const char **name,
                    size_t *namelen, const char **ns, size_t *nslen, const char **rv, size_t *rvlen)
{
  if (o->flags & KUALA_JOBJ_NOTOBJ || !(o->flags & KUALA_JOBJ_META)) {
    return KUALA_EINVAL;
  }
  if (o->flags & KUALA_JOBJ_DUP) {
    return KUALA_EBADMSG; /* which name would the object have? */
  }
  if (!o->name.set) {
    return KUALA_EINVAL;
  }
  *name = jstr(t, &o->name, &s->strbuf[0], namelen);
  if (*namelen == 0 || *namelen > UINT16_MAX) {
    return KUALA_EINVAL;
  }
  *ns = "";
  *nslen = 0;
  if (o->ns.set) {
    *ns = jstr(t, &o->ns, &s->strbuf[1], nslen);
  }
  *rv = "";
  *rvlen = 0;
  if (o->rv.set) {
    *rv = jstr(t, &o->rv, &s->strbuf[2], rvlen);
  }
  return *rvlen > UINT16_MAX ? KUALA_EINVAL : 0;
}

int kuala__store_put_text(kuala_store_t *s, const char *t, const kuala__jobj_t *o, int flags,
                          kuala_store_change_cb cb, void *data)
{
  if (kuala__store_wants_tree(s) && !(o->flags & KUALA_JOBJ_NOTOBJ)) {
    return put_tree(s, t, o, flags, cb, data, 0);
  }
  const char *name, *ns, *rv;
  size_t namelen, nslen, rvlen;
  int rc = text_key(s, t, o, &name, &namelen, &ns, &nslen, &rv, &rvlen);
  if (rc < 0) {
    return rc;
  }
  uint32_t h = key_hash(ns, nslen, name, namelen);
  pslot_t *slot = ptab_find(s, h, ns, nslen, name, namelen);
  if (slot && (flags & KUALA_STORE_SKIP_SAME_RV) && rvlen > 0) {
    entry_t *old = s->ents[slot->v - 1];
    if (old->rv_len == rvlen && memcmp(e_rv(old), rv, rvlen) == 0) {
      old->seen = s->mark;
      return 0;
    }
  }
  kuala_store_emit_t em = {s, 0, s->enodes, 0, s->enodes_cap, 0};
  if ((rc = collect_nodes_text(s, t, o, ns, nslen, &em)) == 0) {
    kuala_buf_reset(&s->scratch);
    rc = kuala__json_compact(t + o->off, o->len, !s->opts.keep_managed_fields, &s->scratch, NULL);
    if (rc < 0) {
      emit_abort(&em);
    } else {
      rc = commit(s, name, namelen, rv, rvlen, nslen, h, slot, s->scratch.data, s->scratch.len, &em,
                  cb, data);
    }
  }
  s->enodes = em.nodes;
  s->enodes_cap = em.cap;
  return rc;
}

int kuala__store_delete_text(kuala_store_t *s, const char *t, const kuala__jobj_t *o,
                             kuala_store_change_cb cb, void *data)
{
  if (kuala__store_wants_tree(s) && !(o->flags & KUALA_JOBJ_NOTOBJ)) {
    return put_tree(s, t, o, 0, cb, data, 1);
  }
  const char *name, *ns, *rv;
  size_t namelen, nslen, rvlen;
  int rc = text_key(s, t, o, &name, &namelen, &ns, &nslen, &rv, &rvlen);
  if (rc < 0) {
    return rc;
  }
  uint32_t id;
  if ((rc = delete_begin(s, ns, nslen, name, namelen, cb, &id)) <= 0) {
    return rc;
  }
  /* Report the event's object (it carries the deletion's RV), as
   * kuala_store_delete_obj does. */
  rc = kuala__json_compact(t + o->off, o->len, !s->opts.keep_managed_fields, &s->scratch, NULL);
  int ok = rc == 0 && s->scratch.data;
  if (ok && !o->rv.esc) { /* (decoded strings are NUL-terminated already) */
    kuala_buf_reset(&s->strbuf[2]);
    kuala_buf_append(&s->strbuf[2], rv, rvlen);
    kuala_buf_putc(&s->strbuf[2], '\0');
    rv = s->strbuf[2].data;
  }
  report_removed(s, id, cb, data, 0, rv, ok ? s->scratch.data : NULL, s->scratch.len);
  return 0;
}

int kuala_store_put_json(kuala_store_t *s, const char *json, size_t len, int flags,
                         kuala_store_change_cb cb, void *data)
{
  if (!json || len > s->opts.max_object_bytes) {
    return json ? KUALA_E2BIG : KUALA_EINVAL;
  }
  json_object *obj = NULL;
  int rc = kuala_json_parse(&obj, json, len, NULL, 0);
  if (rc == 0) {
    rc = kuala_store_put(s, obj, json, len, flags, cb, data);
  }
  json_object_put(obj);
  return rc;
}

int kuala_store_delete(kuala_store_t *s, const char *ns, const char *name, kuala_store_change_cb cb,
                       void *data)
{
  if (!name) {
    return KUALA_EINVAL;
  }
  if (!ns) {
    ns = "";
  }
  size_t nslen = strlen(ns), namelen = strlen(name);
  pslot_t *slot = ptab_find(s, key_hash(ns, nslen, name, namelen), ns, nslen, name, namelen);
  if (!slot) {
    return KUALA_ENOTFOUND;
  }
  remove_at(s, slot, cb, data, 0);
  return 0;
}

int kuala_store_delete_obj(kuala_store_t *s, json_object *obj, const char *raw, size_t rawlen,
                           kuala_store_change_cb cb, void *data)
{
  json_object *meta;
  size_t namelen = 0, nslen = 0;
  if (!obj || !json_object_object_get_ex(obj, "metadata", &meta) ||
      !json_object_is_type(meta, json_type_object)) {
    return KUALA_EINVAL;
  }
  const char *name = str_field(meta, "name", &namelen);
  const char *ns = str_field(meta, "namespace", &nslen);
  if (!name || namelen == 0) {
    return KUALA_EINVAL;
  }
  if (!ns) {
    ns = "";
  }
  uint32_t id;
  int rc = delete_begin(s, ns, nslen, name, namelen, cb, &id);
  if (rc <= 0) {
    return rc;
  }
  /* Report the event's object (it carries the deletion's RV), stored the
   * way a put would store it; the entry goes after the callback. */
  rc = 0;
  if (raw && !s->opts.transform && !s->opts.metadata_only) {
    rc = kuala__json_compact(raw, rawlen, !s->opts.keep_managed_fields, &s->scratch, NULL);
  } else {
    if (s->opts.transform) {
      rc = s->opts.transform(s->opts.transform_data, obj);
    }
    if (rc == 0 && s->opts.metadata_only) {
      to_metadata_only(obj);
    }
    if (rc == 0 && !s->opts.keep_managed_fields) {
      json_object_object_del(meta, "managedFields");
    }
    if (rc == 0) {
      kuala_buf_puts(&s->scratch,
                     json_object_to_json_string_ext(
                         obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    }
  }
  size_t rvlen;
  const char *rv = str_field(meta, "resourceVersion", &rvlen);
  report_removed(s, id, cb, data, 0, rv ? rv : "",
                 rc == 0 && s->scratch.data ? s->scratch.data : NULL, s->scratch.len);
  return 0;
}

void kuala_store_replace_begin(kuala_store_t *s)
{
  if (!s->replacing) {
    s->mark ^= 1;
    s->replacing = 1;
    return;
  }
  /* A relist that failed and starts over: what the abandoned pass saw
   * counts as unseen again (toggling the mark back would make every
   * object look seen, and the relist would delete nothing). */
  for (uint32_t id = 0; id < s->ents_hi; id++) {
    if (s->ents[id]) {
      s->ents[id]->seen = (uint8_t)(s->mark ^ 1);
    }
  }
}

size_t kuala_store_replace_end(kuala_store_t *s, kuala_store_change_cb cb, void *data)
{
  /* Collect first: removing shifts the primary table under an iteration. */
  uint32_t *gone = NULL;
  size_t n = 0, cap = 0;
  for (uint32_t id = 0; id < s->ents_hi; id++) {
    entry_t *e = s->ents[id];
    if (e && e->seen != s->mark) {
      if (n == cap) {
        cap = cap ? cap * 2 : 64;
        gone = kuala_realloc(gone, cap * sizeof(uint32_t));
      }
      gone[n++] = id;
    }
  }
  s->replacing = 0; /* before the callbacks: a handler may start another */
  for (size_t i = 0; i < n; i++) {
    entry_t *e = s->ents[gone[i]];
    size_t nslen;
    const char *ns = e_ns(e, &nslen);
    pslot_t *slot = ptab_find(s, e->hash, ns, nslen, e_name(e), e->name_len);
    remove_at(s, slot, cb, data, 1);
  }
  kuala_free(gone);
  return n;
}

int kuala_store_get(const kuala_store_t *s, const char *ns, const char *name, kuala_obj_t *out)
{
  if (!name) {
    return KUALA_EINVAL;
  }
  if (!ns) {
    ns = "";
  }
  size_t nslen = strlen(ns), namelen = strlen(name);
  pslot_t *slot = ptab_find(s, key_hash(ns, nslen, name, namelen), ns, nslen, name, namelen);
  if (!slot) {
    return KUALA_ENOTFOUND;
  }
  e_view(s->ents[slot->v - 1], out);
  return 0;
}

/* ---- iteration ---- */

typedef struct {
  const kuala_store_t *s;
  const char *ns; /* NULL = any */
  size_t nslen;
  const kuala_selector_t *sel;
  kuala_store_iter_cb cb;
  void *data;
  const entry_t *cur;
} iter_t;

static const char *label_lookup(void *data, const char *key)
{
  const entry_t *e = data;
  size_t kl = strlen(key);
  for (uint16_t i = 0; i < e->nnodes; i++) {
    const node_t *n = e_nodes(e)[i];
    if (n->index == IDX_LABELS && n->split == kl && memcmp(n->key, key, kl) == 0) {
      return n->key + kl + 1;
    }
  }
  return NULL;
}

static int iter_one(void *data, uint32_t id)
{
  iter_t *it = data;
  const entry_t *e = it->s->ents[id];
  if (it->ns) {
    size_t l;
    const char *ens = e_ns(e, &l);
    if (l != it->nslen || memcmp(ens, it->ns, l) != 0) {
      return 0;
    }
  }
  if (it->sel && !kuala_selector_matches(it->sel, label_lookup, (void *)e)) {
    return 0;
  }
  kuala_obj_t v;
  e_view(e, &v);
  return it->cb(it->data, &v);
}

static node_t *label_node(const kuala_store_t *s, const char *k, const char *v)
{
  size_t kl = strlen(k), vl = strlen(v);
  char stackbuf[512];
  char *buf = kl + vl + 1 <= sizeof stackbuf ? stackbuf : kuala_malloc(kl + vl + 1);
  memcpy(buf, k, kl + 1);
  memcpy(buf + kl + 1, v, vl);
  node_t *n = kuala__map_get(&s->idx[IDX_LABELS].map, buf, kl + 1 + vl);
  if (buf != stackbuf) {
    kuala_free(buf);
  }
  return n;
}

int kuala_store_foreach(const kuala_store_t *s, const char *ns, const kuala_selector_t *sel,
                        kuala_store_iter_cb cb, void *data)
{
  iter_t it = {s, ns, ns ? strlen(ns) : 0, sel, cb, data, NULL};
  /* Pick the smallest candidate source: all, the namespace's set, or the
   * label sets of one EQ / IN requirement. */
  size_t best = s->len;
  node_t *bestn[64];
  size_t nbest = 0;
  int narrowed = 0;
  if (ns) {
    node_t *n = kuala__map_get(&s->idx[IDX_NS].map, ns, it.nslen);
    if (!n) {
      return 0;
    }
    best = n->ids.len;
    bestn[0] = n;
    nbest = 1;
    narrowed = 1;
  }
  size_t nreq = sel ? kuala_selector_count(sel) : 0;
  for (size_t r = 0; r < nreq; r++) {
    const char *key;
    kuala_selector_op_t op;
    const char *const *vals;
    size_t nv;
    kuala_selector_req(sel, r, &key, &op, &vals, &nv);
    if ((op != KUALA_SEL_EQ && op != KUALA_SEL_IN) || nv > 64) {
      continue;
    }
    node_t *cand[64];
    size_t nc = 0, total = 0;
    for (size_t i = 0; i < nv; i++) {
      node_t *n = label_node(s, key, vals[i]);
      if (n) {
        cand[nc++] = n;
        total += n->ids.len;
      }
    }
    if (total == 0) {
      return 0; /* nothing can match this requirement */
    }
    if (!narrowed || total < best) {
      memcpy(bestn, cand, nc * sizeof(node_t *));
      nbest = nc;
      best = total;
      narrowed = 1;
    }
  }
  if (narrowed) {
    for (size_t i = 0; i < nbest; i++) {
      int rc = idset_each(&bestn[i]->ids, iter_one, &it);
      if (rc) {
        return rc;
      }
    }
    return 0;
  }
  for (uint32_t id = 0; id < s->ents_hi; id++) {
    if (s->ents[id]) {
      int rc = iter_one(&it, id);
      if (rc) {
        return rc;
      }
    }
  }
  return 0;
}

static int find_index(const kuala_store_t *s, const char *index)
{
  for (uint32_t i = 0; i < s->nidx; i++) {
    if (i != IDX_LABELS && strcmp(s->idx[i].name, index) == 0) {
      return (int)i;
    }
  }
  return -1;
}

int kuala_store_by_index(const kuala_store_t *s, const char *index, const char *value,
                         kuala_store_iter_cb cb, void *data)
{
  int i = index && value ? find_index(s, index) : -1;
  if (i < 0) {
    return KUALA_ENOENT;
  }
  node_t *n = kuala__map_get(&s->idx[i].map, value, strlen(value));
  if (!n) {
    return 0;
  }
  iter_t it = {s, NULL, 0, NULL, cb, data, NULL};
  return idset_each(&n->ids, iter_one, &it);
}

size_t kuala_store_index_count(const kuala_store_t *s, const char *index, const char *value)
{
  int i = index && value ? find_index(s, index) : -1;
  if (i < 0) {
    return 0;
  }
  node_t *n = kuala__map_get(&s->idx[i].map, value, strlen(value));
  return n ? n->ids.len : 0;
}

int kuala_store_add_index(kuala_store_t *s, const char *name, kuala_store_index_cb fn, void *data)
{
  if (!name || !fn) {
    return KUALA_EINVAL;
  }
  for (uint32_t i = 0; i < s->nidx; i++) {
    if (strcmp(s->idx[i].name, name) == 0) {
      return KUALA_EEXIST;
    }
  }
  if (s->nidx == MAX_INDEXES) {
    return KUALA_E2BIG;
  }
  uint32_t ix = s->nidx;
  s->idx[ix].name = kuala_strdup(name);
  s->idx[ix].fn = fn;
  s->idx[ix].data = data;
  kuala__map_init(&s->idx[ix].map);
  s->nidx++;
  /* Index what is already stored: parse each object again and rebuild its
   * entry with the extra nodes. An object the function rejects stays
   * unindexed in this index; the error is returned at the end. */
  int first_err = 0;
  for (uint32_t id = 0; id < s->ents_hi; id++) {
    entry_t *e = s->ents[id];
    if (!e) {
      continue;
    }
    json_object *obj = NULL;
    kuala_json_parse(&obj, e_json(e), e->json_len, NULL, 0); /* any depth it was stored at */
    kuala_store_emit_t em = {s, (uint16_t)ix, NULL, 0, 0, 0};
    int rc = obj ? fn(data, obj, &em) : KUALA_EBADMSG;
    if (rc == 0 && em.err) {
      rc = em.err;
    }
    if (rc == 0 && (size_t)e->nnodes + em.n > MAX_NODES) {
      rc = KUALA_E2BIG;
    }
    if (rc < 0) {
      emit_abort(&em);
      if (!first_err) {
        first_err = rc;
      }
    } else if (em.n > 0) {
      kuala_store_emit_t all = {s, 0, NULL, 0, 0, 0};
      all.cap = e->nnodes + em.n;
      all.nodes = kuala_malloc(all.cap * sizeof(node_t *));
      memcpy(all.nodes, e_nodes(e), e->nnodes * sizeof(node_t *));
      memcpy(all.nodes + e->nnodes, em.nodes, em.n * sizeof(node_t *));
      all.n = all.cap;
      entry_t *ne = entry_build(s, e_name(e), e->name_len, e_rv(e), e->rv_len, e_json(e),
                                e->json_len, &all, e->has_ns, e->hash);
      ne->seen = e->seen;
      s->ents[id] = ne;
      entry_free(s, e);
      for (size_t k = 0; k < em.n; k++) {
        idset_add(s, &em.nodes[k]->ids, id);
      }
      kuala_free(all.nodes);
    }
    kuala_free(em.nodes);
    json_object_put(obj);
  }
  return first_err;
}

void kuala_obj_dup(kuala_obj_dup_t *out, const kuala_obj_t *obj)
{
  size_t nl = strlen(obj->ns), ml = strlen(obj->name), rl = strlen(obj->rv);
  char *m = kuala_malloc(nl + ml + rl + obj->json_len + 4);
  char *p = m;
  memcpy(p, obj->ns, nl + 1);
  out->obj.ns = p;
  p += nl + 1;
  memcpy(p, obj->name, ml + 1);
  out->obj.name = p;
  p += ml + 1;
  memcpy(p, obj->rv, rl + 1);
  out->obj.rv = p;
  p += rl + 1;
  memcpy(p, obj->json, obj->json_len);
  p[obj->json_len] = '\0';
  out->obj.json = p;
  out->obj.json_len = obj->json_len;
  out->mem = m;
}

void kuala_obj_dup_free(kuala_obj_dup_t *d)
{
  kuala_free(d->mem);
  d->mem = NULL;
}
