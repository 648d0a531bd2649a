#!/usr/bin/env bash
# libkuala is embeddable: `cmake --install` into a temporary prefix, then
# build and run a small program that uses the public API (work queue on a
# uv loop) with nothing but `pkg-config --cflags --libs kuala`.
set -euo pipefail
bin=${KUALA_BINARY_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$bin" --prefix "$tmp/prefix" >/dev/null
for f in include/kuala/workqueue.h include/kuala/engine.h lib/pkgconfig/kuala.pc bin/kuala; do
  [ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
[ -e "$tmp/prefix/lib/libkuala.a" ] || [ -e "$tmp/prefix/lib64/libkuala.a" ] \
  || [ -n "$(find "$tmp/prefix" -name libkuala.a)" ] || { echo "FAIL: libkuala.a not installed"; exit 1; }
cat >"$tmp/embed.c" <<'C'
#include <kuala/error.h>
#include <kuala/workqueue.h>
#include <stdio.h>
#include <string.h>

static int handled;

static void ready(kuala_workqueue_t *q, void *data)
{
  (void)data;
  const char *key;
  while (kuala_workqueue_get(q, &key) == 0) {
    handled++;
    kuala_workqueue_done(q, key);
  }
}

int main(void)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  kuala_workqueue_t *q;
  kuala_workqueue_opts_t o = {"embed", NULL, ready, NULL};
  if (kuala_workqueue_new(&q, &loop, &o) != 0) return 1;
  kuala_workqueue_add(q, "default/a");
  kuala_workqueue_add(q, "default/a");
  kuala_workqueue_add_after(q, "default/b", 5);
  uv_run(&loop, UV_RUN_DEFAULT);
  kuala_workqueue_close(q, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) return 2;
  printf("handled=%d %s\n", handled, kuala_err_name(KUALA_ECONFLICT));
  return handled == 2 ? 0 : 3;
}
C
pcdir=$(dirname "$(find "$tmp/prefix" -name kuala.pc | head -1)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs kuala)
# libuv's headers need POSIX declarations: gnu11 (or -D_GNU_SOURCE) as for any
# libuv program.
cc -std=gnu11 -Wall -Wextra -Werror ${KUALA_EXTRA_CFLAGS:-} -o "$tmp/embed" "$tmp/embed.c" $flags
out=$("$tmp/embed")
[ "$out" = "handled=2 ECONFLICT" ] || { echo "FAIL: embed printed '$out'"; exit 1; }
echo "install_pkgconfig: ok ($out)"
