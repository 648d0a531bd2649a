/*
 * lpattern.c: string.find, string.match, string.gmatch and string.gsub for
 * the sandbox, with Lua 5.1 pattern semantics and a bounded cost.
 *
 * LuaJIT's own matcher backtracks without limit inside one C call, where no
 * hook fires: `("a"):rep(24):find(("a*"):rep(24) .. "b")` runs for hours
 * and holds the event loop. This matcher walks the pattern the same way
 * (recursive backtracking over the subject, no copies of the subject) but
 * counts its steps and, every CHECK_EVERY steps, asks the CPU budget
 * (kuala__lua_cpu_check), which raises "CPU budget exceeded" once the run
 * is past its budget. Outside a run (no budget to ask) MAX_STEPS bounds a call. Plain
 * searches (plain = true, or a pattern without special characters) use
 * memmem, which is linear.
 *
 * Differences from LuaJIT's functions: none intended; the unit tests
 * compare both on a corpus of patterns. Errors use the same words.
 *
 * Ownership: no allocation of its own; results are pushed on the Lua stack
 * (gsub builds its result with a luaL_Buffer, under the VM's memory cap).
 */

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#include "lrt.h"
#include "lrt_cpu.h"

#define MAX_CAPTURES 32
#define MAX_DEPTH 200         /* recursion of the matcher (C stack) */
#define CHECK_EVERY 4096      /* steps between budget checks */
#define MAX_STEPS 20000000ULL /* outside a run: "pattern too complex" */
#define CAP_OPEN (-1)         /* capture started, not closed */
#define CAP_POS (-2)          /* position capture "()" */
#define SPECIALS "^$*+?.([%-"

typedef struct {
  const char *src, *src_end; /* subject */
  const char *pat_end;
  lua_State *L;
  int depth;
  unsigned long long steps;
  int level; /* captures in use */
  struct {
    const char *at;
    ptrdiff_t len; /* or CAP_OPEN / CAP_POS */
  } cap[MAX_CAPTURES];
} mstate_t;

static const char *do_match(mstate_t *ms, const char *s, const char *p);

static void step(mstate_t *ms)
{
  ms->steps++;
  if (ms->steps % CHECK_EVERY == 0) {
    if (!kuala__lua_cpu_check(ms->L) && ms->steps >= MAX_STEPS)
      luaL_error(ms->L, "pattern too complex");
  }
}

static void reset(mstate_t *ms)
{
  ms->level = 0;
  ms->depth = 0;
}

/* %a, %d, ... for character c; an uppercase class is the complement. */
static int class_match(int c, int cl)
{
  int r;
  switch (tolower(cl)) {
    case 'a':
      r = isalpha(c);
      break;
    case 'c':
      r = iscntrl(c);
      break;
    case 'd':
      r = isdigit(c);
      break;
    case 'g':
      r = isgraph(c);
      break;
    case 'l':
      r = islower(c);
      break;
    case 'p':
      r = ispunct(c);
      break;
    case 's':
      r = isspace(c);
      break;
    case 'u':
      r = isupper(c);
      break;
    case 'w':
      r = isalnum(c);
      break;
    case 'x':
      r = isxdigit(c);
      break;
    case 'z':
      r = c == 0;
      break;
    default:
      return cl == c;
  }
  r = r != 0;
  return isupper(cl) ? !r : r;
}

/* End of the single-character item at p (a char, %x, . or a [set]). */
static const char *item_end(mstate_t *ms, const char *p)
{
  const char *e = ms->pat_end;
  if (*p == '%') {
    if (p + 1 >= e)
      luaL_error(ms->L, "malformed pattern (ends with '%%')");
    return p + 2;
  }
  if (*p != '[')
    return p + 1;
  p++;
  if (p < e && *p == '^')
    p++;
  for (int first = 1;; first = 0) {
    if (p >= e)
      luaL_error(ms->L, "malformed pattern (missing ']')");
    if (*p == ']' && !first)
      return p + 1;
    if (*p == '%')
      p++;
    p++;
  }
}

/* c against the set [ ... ] from p ('[') to close (its ']'). */
static int set_match(int c, const char *p, const char *close)
{
  int neg = 0;
  p++;
  if (*p == '^') {
    neg = 1;
    p++;
  }
  while (p < close) {
    if (*p == '%' && p + 1 < close) {
      if (class_match(c, (unsigned char)p[1]))
        return !neg;
      p += 2;
    } else if (p + 2 < close && p[1] == '-') {
      if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
        return !neg;
      p += 3;
    } else {
      if ((unsigned char)*p == c)
        return !neg;
      p++;
    }
  }
  return neg;
}

static int single_match(mstate_t *ms, const char *s, const char *p, const char *ep)
{
  if (s >= ms->src_end)
    return 0;
  int c = (unsigned char)*s;
  switch (*p) {
    case '.':
      return 1;
    case '%':
      return class_match(c, (unsigned char)p[1]);
    case '[':
      return set_match(c, p, ep - 1);
    default:
      return (unsigned char)*p == c;
  }
}

static const char *max_expand(mstate_t *ms, const char *s, const char *p, const char *ep)
{
  ptrdiff_t n = 0;
  while (single_match(ms, s + n, p, ep)) {
    n++;
    step(ms);
  }
  for (; n >= 0; n--) {
    const char *r = do_match(ms, s + n, ep + 1);
    if (r)
      return r;
    step(ms);
  }
  return NULL;
}

static const char *min_expand(mstate_t *ms, const char *s, const char *p, const char *ep)
{
  for (;;) {
    const char *r = do_match(ms, s, ep + 1);
    if (r)
      return r;
    if (!single_match(ms, s, p, ep))
      return NULL;
    s++;
    step(ms);
  }
}

static const char *open_capture(mstate_t *ms, const char *s, const char *p, ptrdiff_t what)
{
  if (ms->level >= MAX_CAPTURES)
    luaL_error(ms->L, "too many captures");
  ms->cap[ms->level].at = s;
  ms->cap[ms->level].len = what;
  ms->level++;
  const char *r = do_match(ms, s, p);
  if (r == NULL)
    ms->level--;
  return r;
}

static const char *close_capture(mstate_t *ms, const char *s, const char *p)
{
  int l = ms->level - 1;
  while (l >= 0 && ms->cap[l].len != CAP_OPEN)
    l--;
  if (l < 0)
    luaL_error(ms->L, "invalid pattern capture");
  ms->cap[l].len = s - ms->cap[l].at;
  const char *r = do_match(ms, s, p);
  if (r == NULL)
    ms->cap[l].len = CAP_OPEN;
  return r;
}

/* %bxy at s; p points at x. */
static const char *balance(mstate_t *ms, const char *s, const char *p)
{
  if (p + 1 >= ms->pat_end)
    luaL_error(ms->L, "missing arguments to '%%b'");
  if (s >= ms->src_end || *s != p[0])
    return NULL;
  int depth = 1;
  for (const char *t = s + 1; t < ms->src_end; t++) {
    step(ms);
    if (*t == p[1]) {
      if (--depth == 0)
        return t + 1;
    } else if (*t == p[0]) {
      depth++;
    }
  }
  return NULL;
}

/* %1..%9 at s. */
static const char *back_reference(mstate_t *ms, const char *s, int digit)
{
  int l = digit - '1';
  if (l < 0 || l >= ms->level || ms->cap[l].len == CAP_OPEN)
    luaL_error(ms->L, "invalid capture index");
  ptrdiff_t len = ms->cap[l].len;
  if (len < 0) /* a position capture matches no text */
    return NULL;
  if (ms->src_end - s >= len && memcmp(ms->cap[l].at, s, (size_t)len) == 0)
    return s + len;
  return NULL;
}

/* Match pattern p (to pat_end) at s: the end of the match or NULL. */
static const char *do_match(mstate_t *ms, const char *s, const char *p)
{
  const char *e = ms->pat_end;
  const char *r = NULL;
  if (++ms->depth > MAX_DEPTH)
    luaL_error(ms->L, "pattern too complex");
  step(ms);
  for (;;) {
    if (p >= e) {
      r = s;
      break;
    }
    if (*p == '(') {
      if (p + 1 < e && p[1] == ')')
        r = open_capture(ms, s, p + 2, CAP_POS);
      else
        r = open_capture(ms, s, p + 1, CAP_OPEN);
      break;
    }
    if (*p == ')') {
      r = close_capture(ms, s, p + 1);
      break;
    }
    if (*p == '$' && p + 1 == e) {
      r = s == ms->src_end ? s : NULL;
      break;
    }
    if (*p == '%' && p + 1 < e) {
      if (p[1] == 'b') {
        s = balance(ms, s, p + 2);
        if (s == NULL)
          break;
        p += 4;
        continue;
      }
      if (p[1] == 'f') {
        p += 2;
        if (p >= e || *p != '[')
          luaL_error(ms->L, "missing '[' after '%%f' in pattern");
        const char *ep = item_end(ms, p);
        int prev = s == ms->src ? 0 : (unsigned char)s[-1];
        int cur = s < ms->src_end ? (unsigned char)*s : 0;
        if (set_match(prev, p, ep - 1) || !set_match(cur, p, ep - 1))
          break;
        p = ep;
        continue;
      }
      if (isdigit((unsigned char)p[1])) {
        s = back_reference(ms, s, (unsigned char)p[1]);
        if (s == NULL)
          break;
        p += 2;
        continue;
      }
    }
    const char *ep = item_end(ms, p);
    int m = single_match(ms, s, p, ep);
    int q = ep < e ? *ep : 0;
    if (q == '?') {
      if (m && (r = do_match(ms, s + 1, ep + 1)) != NULL)
        break;
      p = ep + 1;
      continue;
    }
    if (q == '+') {
      r = m ? max_expand(ms, s + 1, p, ep) : NULL;
      break;
    }
    if (q == '*') {
      r = max_expand(ms, s, p, ep);
      break;
    }
    if (q == '-') {
      r = min_expand(ms, s, p, ep);
      break;
    }
    if (!m)
      break;
    s++;
    p = ep;
    step(ms);
  }
  ms->depth--;
  return r;
}

/* ---- captures ----------------------------------------------------------- */

static void push_capture(mstate_t *ms, int i, const char *s, const char *e)
{
  if (i >= ms->level) {
    if (i != 0)
      luaL_error(ms->L, "invalid capture index");
    lua_pushlstring(ms->L, s, (size_t)(e - s));
    return;
  }
  ptrdiff_t len = ms->cap[i].len;
  if (len == CAP_OPEN)
    luaL_error(ms->L, "unfinished capture");
  if (len == CAP_POS)
    lua_pushinteger(ms->L, ms->cap[i].at - ms->src + 1);
  else
    lua_pushlstring(ms->L, ms->cap[i].at, (size_t)len);
}

/* Push the captures (or the whole match s..e when there is none and s is
 * given); returns how many. */
static int push_captures(mstate_t *ms, const char *s, const char *e)
{
  int n = ms->level == 0 && s ? 1 : ms->level;
  luaL_checkstack(ms->L, n, "too many captures");
  for (int i = 0; i < n; i++)
    push_capture(ms, i, s, e);
  return n;
}

/* Lua 5.1 position: negative counts from the end; clamped to [0, len]. */
static size_t start_pos(lua_State *L, int idx, size_t len)
{
  lua_Integer pos = luaL_optinteger(L, idx, 1);
  if (pos < 0)
    pos += (lua_Integer)len + 1;
  pos -= 1;
  if (pos < 0)
    return 0;
  if ((size_t)pos > len)
    return len;
  return (size_t)pos;
}

static int has_specials(const char *p, size_t lp)
{
  for (size_t i = 0; i < lp; i++) {
    if (strchr(SPECIALS, p[i]) && p[i])
      return 1;
  }
  return 0;
}

static void init_state(mstate_t *ms, lua_State *L, const char *s, size_t ls, const char *p,
                       size_t lp)
{
  ms->L = L;
  ms->src = s;
  ms->src_end = s + ls;
  /* Like LuaJIT's matcher, a pattern ends at its first NUL. */
  ms->pat_end = p + strnlen(p, lp);
  ms->steps = 0;
  reset(ms);
}

static int find_aux(lua_State *L, int find)
{
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_pos(L, 3, ls);
  /* Plain search (asked for, or no special character): memmem is linear
   * in the subject. */
  if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
    const char *at = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
    if (at) {
      lua_pushinteger(L, at - s + 1);
      lua_pushinteger(L, (lua_Integer)(at - s) + (lua_Integer)lp);
      return 2;
    }
    lua_pushnil(L);
    return 1;
  }
  mstate_t ms;
  int anchor = lp > 0 && *p == '^';
  if (anchor) {
    p++;
    lp--;
  }
  init_state(&ms, L, s, ls, p, lp);
  const char *s1 = s + init;
  do {
    reset(&ms);
    const char *e = do_match(&ms, s1, p);
    if (e) {
      if (find) {
        lua_pushinteger(L, s1 - s + 1);
        lua_pushinteger(L, e - s);
        return push_captures(&ms, NULL, NULL) + 2;
      }
      return push_captures(&ms, s1, e);
    }
    step(&ms);
  } while (s1++ < ms.src_end && !anchor);
  lua_pushnil(L);
  return 1;
}

static int l_find(lua_State *L)
{
  return find_aux(L, 1);
}

static int l_match(lua_State *L)
{
  return find_aux(L, 0);
}

static int gmatch_next(lua_State *L)
{
  size_t ls, lp;
  const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
  const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
  mstate_t ms;
  init_state(&ms, L, s, ls, p, lp);
  for (const char *at = s + lua_tointeger(L, lua_upvalueindex(3)); at <= ms.src_end; at++) {
    reset(&ms);
    const char *e = do_match(&ms, at, p);
    if (e) {
      lua_Integer next = e - s;
      if (e == at)
        next++; /* empty match: move on at least one character */
      lua_pushinteger(L, next);
      lua_replace(L, lua_upvalueindex(3));
      return push_captures(&ms, at, e);
    }
    step(&ms);
  }
  return 0;
}

static int l_gmatch(lua_State *L)
{
  luaL_checkstring(L, 1);
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, gmatch_next, 3);
  return 1;
}

/* Append the replacement of the match s..e to b. */
static void add_value(mstate_t *ms, luaL_Buffer *b, const char *s, const char *e)
{
  lua_State *L = ms->L;
  switch (lua_type(L, 3)) {
    case LUA_TFUNCTION: {
      lua_pushvalue(L, 3);
      int n = push_captures(ms, s, e);
      lua_call(L, n, 1);
      break;
    }
    case LUA_TTABLE:
      push_capture(ms, 0, s, e);
      lua_gettable(L, 3);
      break;
    default: { /* string or number: %0..%9 and %% */
      size_t lr;
      const char *r = lua_tolstring(L, 3, &lr);
      for (size_t i = 0; i < lr; i++) {
        if (r[i] != '%' || i + 1 >= lr) {
          luaL_addchar(b, r[i]);
          continue;
        }
        i++;
        if (!isdigit((unsigned char)r[i])) {
          luaL_addchar(b, r[i]);
        } else if (r[i] == '0') {
          luaL_addlstring(b, s, (size_t)(e - s));
        } else {
          push_capture(ms, r[i] - '1', s, e);
          luaL_addvalue(b);
        }
      }
      return;
    }
  }
  if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
  } else if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  } else {
    luaL_addvalue(b);
  }
}

static int l_gsub(lua_State *L)
{
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  int tr = lua_type(L, 3);
  lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argcheck(L,
                tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE,
                3, "string/function/table expected");
  int anchor = lp > 0 && *p == '^';
  if (anchor) {
    p++;
    lp--;
  }
  mstate_t ms;
  init_state(&ms, L, s, ls, p, lp);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  const char *at = s;
  lua_Integer n = 0;
  while (n < max_n) {
    reset(&ms);
    const char *e = do_match(&ms, at, p);
    if (e) {
      n++;
      add_value(&ms, &b, at, e);
    }
    if (e && e > at)
      at = e;
    else if (at < ms.src_end)
      luaL_addchar(&b, *at++);
    else
      break;
    if (anchor)
      break;
    step(&ms);
  }
  luaL_addlstring(&b, at, (size_t)(ms.src_end - at));
  luaL_pushresult(&b);
  lua_pushinteger(L, n);
  return 2;
}

void kuala__lua_patterns_open(lua_State *L, int idx)
{
  static const luaL_Reg fns[] = {
      {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL}};
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  for (const luaL_Reg *f = fns; f->name; f++) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, idx, f->name);
  }
}
