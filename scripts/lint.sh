#!/usr/bin/env bash
# House rules that the compiler does not check (STYLE.md):
#  - banned functions: strcpy, sprintf, strtok, atoi, alloca (and VLAs via -Wvla);
#  - lua.h / lauxlib.h only under core/lua/;
#  - curl only in the HTTP glue (core/client/);
#  - every public header compiles alone.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
src=$(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -vE '^(build|bench/results)' || true)
for f in $src; do
  [ -f "$f" ] || continue
  if grep -nE '\b(strcpy|sprintf|vsprintf|strtok|atoi|atol|alloca|gets)\s*\(' "$f" \
      | grep -vE '//|/\*|snprintf|vsnprintf|strtok_r'; then
    echo "lint: $f uses a banned function (strcpy sprintf strtok atoi alloca gets)"
    fail=1
  fi
  case "$f" in
    core/lua/*|tests/*|bench/*) ;;
    *) if grep -nE '#include\s*[<"](lua|lauxlib|lualib|luajit)\.h' "$f"; then
         echo "lint: $f includes a Lua header outside core/lua/"; fail=1; fi ;;
  esac
  case "$f" in
    core/client/*|tests/*|bench/*) ;;
    *) if grep -nE '#include\s*<curl/' "$f"; then
         echo "lint: $f includes curl outside core/client/"; fail=1; fi ;;
  esac
done
# Every public header compiles on its own.
cflags=$(pkg-config --cflags libuv json-c 2>/dev/null || true)
for h in include/kuala/*.h; do
  [ -f "$h" ] || continue
  if ! echo "#include \"${h#include/}\"" | cc -std=c11 -D_GNU_SOURCE -Iinclude $cflags \
      -fsyntax-only -Wall -Wextra -Werror -x c - 2>/tmp/kuala-lint.$$; then
    echo "lint: $h does not compile alone:"; cat /tmp/kuala-lint.$$; fail=1
  fi
done
rm -f /tmp/kuala-lint.$$
if [ $fail -eq 0 ]; then echo "lint: ok"; fi
exit $fail
