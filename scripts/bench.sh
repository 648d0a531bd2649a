#!/usr/bin/env bash
# One benchmark command (issue 13 §5): builds kuala, runs every scenario with
# kuala and its peers (bench/peers: the JavaScript client's informer and two
# Node operators at pinned npm versions, Debian's python3-kubernetes)
# interleaved, against kuala-apiserver on 127.0.0.1, several repetitions, and
# writes bench/results/latest.json, latest.md and latest.png (sync time and
# RSS against N). Not part of the test suite. See docs/benchmarks.md.
#
#   scripts/bench.sh [--quick] [--reps R] [--sizes "N1 N2 ..."] [--converge N]
#                    [--informer-objects N] [--reload-objects N] [--no-build] [--out DIR]
#
#   --quick     small sizes, 1 repetition: about 2 minutes, for trying it out
#   --reps R    repetitions of every scenario (default 3)
#   --sizes     object counts of the sync scenario (default 10000 25000 50000 100000)
#   --converge  Echo custom resources of the operator scenario (default 2000)
#   --informer-objects N  informer_bench's objects (default 100000)
#   --reload-objects N    objects cached during reload_bench (default 10000)
#   --no-build  use the binaries already in $KUALA_BUILD_DIR (default ./build)
#   --out DIR   where the results go (default bench/results)
#
# Every figure it writes comes from this run. A peer that cannot run (not
# installed, crashed, timed out) is reported as missing with the reason.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KUALA_BUILD_DIR:-$root/build}
cmdline="scripts/bench.sh $*"
mode=full
reps=3
sizes="10000 25000 50000 100000"
converge=2000
reload_objects=10000
informer_objects=100000
lua_reconciles=200000
do_build=1
out=$root/bench/results
while [ $# -gt 0 ]; do
  case $1 in
  --quick)
    mode=quick reps=1 sizes="2000 5000" converge=500 reload_objects=2000
    informer_objects=10000 lua_reconciles=50000
    ;;
  --reps) reps=$2 && shift ;;
  --sizes) sizes=$2 && shift ;;
  --converge) converge=$2 && shift ;;
  --informer-objects) informer_objects=$2 && shift ;;
  --reload-objects) reload_objects=$2 && shift ;;
  --no-build) do_build=0 ;;
  --out) out=$2 && shift ;;
  -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
  *) echo "bench.sh: unknown argument $1 (see --help)" >&2 && exit 2 ;;
  esac
  shift
done

peers=$root/bench/peers
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
export KUBECACHEDIR=$tmp/kcache
rows=$tmp/rows.tsv # scenario impl n rep status seconds cpu_s rss_mb note
: >"$rows"
say() { echo "bench: $*" >&2; }

if [ "$do_build" = 1 ]; then
  say "building into $build"
  KUALA_BUILD_DIR=$build nice "$root/scripts/build.sh" >"$tmp/build.log" 2>&1 ||
    { tail -30 "$tmp/build.log"; exit 1; }
fi
kuala=$build/core/kuala
emu_bin=$build/apiserver/kuala-apiserver
for b in "$kuala" "$emu_bin" "$build/bench/informer_bench" "$build/bench/lua_bench" \
  "$build/bench/reload_bench"; do
  [ -x "$b" ] || { echo "bench.sh: $b missing (build first)" >&2; exit 1; }
done

# Peers: installed from bench/peers/package-lock.json; each either runs or is
# reported missing with the reason.
declare -A missing=()
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ ! -d "$peers/node_modules/@kubernetes/client-node" ] ||
    [ ! -d "$peers/node_modules/@dot-i/k8s-operator" ]; then
    say "npm ci in bench/peers"
    (cd "$peers" && npm ci --no-audit --no-fund >"$tmp/npm.log" 2>&1) || true
  fi
  [ -d "$peers/node_modules/@kubernetes/client-node" ] ||
    missing[client-node]="npm ci in bench/peers failed"
  [ -d "$peers/node_modules/@dot-i/k8s-operator" ] ||
    missing[dot-i-operator]="npm ci in bench/peers failed"
else
  missing[client-node]="node/npm not installed"
  missing[dot-i-operator]="node/npm not installed"
fi
# Debian's python3 (python3-kubernetes), not a python3 earlier on PATH (pyenv...).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" -c 'import kubernetes' 2>/dev/null ||
  missing[python]="python3-kubernetes not installed (scripts/deps.sh installs it)"
command -v kubectl >/dev/null || { echo "bench.sh: kubectl is needed to load the Echo objects" >&2; exit 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
say "mode=$mode reps=$reps sizes=[$sizes] converge=$converge load=[$load_start]"

# --- helpers ----------------------------------------------------------------

emu_start() { # -> sets KUBECONFIG, emu_pid
  local d=$tmp/emu.$RANDOM$RANDOM
  mkdir -p "$d"
  export KUBECONFIG=$d/kubeconfig
  "$emu_bin" --port 0 --kubeconfig-out "$KUBECONFIG" >"$d/out" 2>&1 &
  emu_pid=$!
  pids+=("$emu_pid")
  for _ in $(seq 100); do grep -q '^listening on' "$d/out" && return 0; sleep 0.1; done
  echo "bench.sh: emulator did not start" >&2 && cat "$d/out" >&2 && exit 1
}
emu_stop() { kill "$emu_pid" 2>/dev/null || true; wait "$emu_pid" 2>/dev/null || true; }

# measure SCENARIO IMPL N REP MARKER_REGEX COUNT TIMEOUT_S CMD...
# Launches CMD, waits until its output has COUNT lines matching MARKER_REGEX,
# then records wall seconds since launch, the process's CPU seconds
# (utime+stime) and peak RSS (VmHWM), and kills it.
measure() {
  local sc=$1 impl=$2 n=$3 rep=$4 re=$5 want=$6 limit=$7
  shift 7
  local log=$tmp/$sc.$impl.$n.$rep.log t0 t1 pid c status=ok note=""
  : >"$log" # exists before the first poll (the child opens it after the fork)
  t0=$(date +%s%N)
  "$@" >>"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  while :; do
    c=$(grep -c -E "$re" "$log" || true)
    c=${c:-0}
    [ "$c" -ge "$want" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      status=failed note="exited after $c of $want: $(lastline "$log")"
      break
    fi
    if [ $(($(date +%s%N) - t0)) -gt $((limit * 1000000000)) ]; then
      status=failed note="timed out after ${limit} s ($c of $want)"
      break
    fi
    sleep 0.05
  done
  t1=$(date +%s%N)
  local secs=NA cpu=NA rss=NA
  if [ "$status" = ok ]; then
    local ut st hz
    read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
    hz=$(getconf CLK_TCK)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    cpu=$(awk -v u="$ut" -v s="$st" -v hz="$hz" 'BEGIN { printf "%.2f", (u + s) / hz }')
    rss=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$impl" "$n" "$rep" "$status" "$secs" \
    "$cpu" "$rss" "$note" >>"$rows"
  say "$sc $impl n=$n rep=$rep: $status ${secs}s cpu=${cpu}s rss=${rss}MB $note"
}

record_missing() { # scenario impl n rep
  printf '%s\t%s\t%s\t%s\tmissing\tNA\tNA\tNA\t%s\n' "$1" "$2" "$3" "$4" "${missing[$2]}" >>"$rows"
}

lastline() { grep -v '^\s*$' "$1" 2>/dev/null | tail -1 | tr '\t' ' ' | cut -c1-160; }

rotate() { # rep list... -> the list rotated by rep (interleaving order changes per rep)
  local r=$1
  shift
  local a=("$@") i
  for i in "${!a[@]}"; do echo "${a[$(((i + r) % ${#a[@]}))]}"; done
}

# --- 1. informer sync of N ConfigMaps (~1 KB): kuala run, client-node, python
sync_impls=(kuala client-node python)
emu_start
have=0
for n in $sizes; do
  say "loading ConfigMaps $have..$n"
  node "$peers/create-configmaps.js" bench "$have" "$n" >/dev/null
  have=$n
  for rep in $(seq "$reps"); do
    for impl in $(rotate "$rep" "${sync_impls[@]}"); do
      if [ -n "${missing[$impl]:-}" ]; then record_missing sync "$impl" "$n" "$rep" && continue; fi
      case $impl in
      kuala) measure sync kuala "$n" "$rep" 'cache synced' 1 600 "$kuala" run "$root/bench/bundles/sync" ;;
      client-node) measure sync client-node "$n" "$rep" '^synced ' 1 600 node "$peers/sync-client-node.js" bench ;;
      python) measure sync python "$n" "$rep" '^synced ' 1 600 "$py" "$peers/sync-python.py" bench ;;
      esac
    done
  done
done
emu_stop

# --- 2. converge: N Echo CRs -> a ConfigMap each + status; idle RSS -----------
for i in $(seq "$converge"); do
  printf -- '---\napiVersion: e2e.kuala.dev/v1\nkind: Echo\nmetadata:\n  name: e%d\n  namespace: default\nspec:\n  message: m%d\n' "$i" "$i"
done >"$tmp/echos.yaml"
crd_ready() {
  "$kuala" crd "$root/bench/bundles/converge" | kubectl apply -f - >/dev/null
  kubectl wait --for=condition=Established crd/echos.e2e.kuala.dev --timeout=60s >/dev/null
}
conv_impls=(kuala client-node dot-i-operator)
for rep in $(seq "$reps"); do
  for impl in $(rotate "$rep" "${conv_impls[@]}"); do
    if [ -n "${missing[$impl]:-}" ]; then
      record_missing converge "$impl" "$converge" "$rep"
      record_missing idle "$impl" 0 "$rep"
      continue
    fi
    case $impl in
    kuala)
      # bench/converge_bench.sh measures from kuala's first log line to the
      # N-th "echoed" line (kuala's own timestamps), with its own emulator.
      if KUALA_BUILD_DIR=$build "$root/bench/converge_bench.sh" "$converge" 1 >"$tmp/conv.$rep" 2>&1; then
        read -r s c m < <(sed -n 's/^run 1: .* converged in \([0-9.]*\) s, kuala CPU \([0-9.]*\) s, peak RSS \([0-9.]*\) MB$/\1 \2 \3/p' "$tmp/conv.$rep")
        printf 'converge\tkuala\t%s\t%s\tok\t%s\t%s\t%s\tbench/converge_bench.sh\n' "$converge" "$rep" "$s" "$c" "$m" >>"$rows"
        say "converge kuala rep=$rep: ${s}s cpu=${c}s rss=${m}MB"
      else
        printf 'converge\tkuala\t%s\t%s\tfailed\tNA\tNA\tNA\t%s\n' "$converge" "$rep" "$(lastline "$tmp/conv.$rep")" >>"$rows"
      fi
      cmd=("$kuala" run "$root/bench/bundles/converge")
      ;;
    client-node) cmd=(node "$peers/converge-client-node.js" default) ;;
    dot-i-operator) cmd=(node "$peers/converge-dot-i.js" default) ;;
    esac
    if [ "$impl" != kuala ]; then
      emu_start
      crd_ready
      kubectl create -f "$tmp/echos.yaml" >/dev/null
      measure converge "$impl" "$converge" "$rep" '^echoed ' "$converge" 600 "${cmd[@]}"
      emu_stop
    fi
    # Idle: the same operator against an empty cluster, RSS after 3 s.
    emu_start
    crd_ready
    "${cmd[@]}" >"$tmp/idle.$impl.$rep.log" 2>&1 &
    p=$!
    pids+=("$p")
    sleep 3
    if kill -0 "$p" 2>/dev/null; then
      rss=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$p/status")
      printf 'idle\t%s\t0\t%s\tok\tNA\tNA\t%s\t\n' "$impl" "$rep" "$rss" >>"$rows"
      say "idle $impl rep=$rep: rss=${rss}MB"
    else
      printf 'idle\t%s\t0\t%s\tfailed\tNA\tNA\tNA\texited\n' "$impl" "$rep" >>"$rows"
    fi
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    emu_stop
  done
done

# --- 3. kuala-only micro benchmarks (no peer equivalent) --------------------
for rep in $(seq "$reps"); do
  say "informer_bench --objects $informer_objects (rep $rep)"
  if nice "$build/bench/informer_bench" --objects "$informer_objects" --apiserver "$emu_bin" \
    --out "$tmp/informer.$rep.json" >/dev/null 2>"$tmp/informer.$rep.err"; then
    jq -r --arg rep "$rep" --arg n "$informer_objects" '
      ["cache_ratio_to_json", .cache_ratio_to_json], ["ingest_events_per_second", .ingest_events_per_second],
      ["jsonc_parse_events_per_second", .jsonc_parse_events_per_second],
      ["ingest_ratio_to_jsonc", .ingest_ratio_to_jsonc], ["bare_informer_sync_seconds", .sync_seconds]
      | "micro\tkuala\t\($n)\t\($rep)\tok\t\(.[1])\tNA\tNA\t\(.[0])"' "$tmp/informer.$rep.json" >>"$rows"
  else
    printf 'micro\tkuala\t%s\t%s\tfailed\tNA\tNA\tNA\tinformer_bench: %s\n' "$informer_objects" "$rep" \
      "$(lastline "$tmp/informer.$rep.err")" >>"$rows"
  fi
  say "lua_bench --reconciles $lua_reconciles (rep $rep)"
  if "$build/bench/lua_bench" --reconciles "$lua_reconciles" >"$tmp/lua.$rep.txt" 2>&1; then
    for k in noop_reconciles_per_second get_reconciles_per_second; do
      v=$(awk -v k="$k" '$1 == k { print $2 }' "$tmp/lua.$rep.txt")
      printf 'micro\tkuala\t%s\t%s\tok\t%s\tNA\tNA\t%s\n' "$lua_reconciles" "$rep" "$v" "$k" >>"$rows"
    done
  else
    printf 'micro\tkuala\t%s\t%s\tfailed\tNA\tNA\tNA\tlua_bench: %s\n' "$lua_reconciles" "$rep" \
      "$(lastline "$tmp/lua.$rep.txt")" >>"$rows"
  fi
done
# Hot reload: one emulator, reps reloads (reload_bench does its own repetitions).
say "reload_bench $reload_objects objects, $reps reloads"
emu_start
if "$build/bench/reload_bench" "$KUBECONFIG" "$reload_objects" "$reps" "$tmp/reload.json" >"$tmp/reload.out" 2>&1; then
  jq -r --arg n "$reload_objects" '(.reload_latency_ms | to_entries[] |
      "micro\tkuala\t\($n)\t\(.key + 1)\tok\t\(.value)\tNA\tNA\treload_latency_ms"),
    "micro\tkuala\t\($n)\t1\tok\t\(.relists)\tNA\tNA\treload_relists"' "$tmp/reload.json" >>"$rows"
else
  printf 'micro\tkuala\t%s\t1\tfailed\tNA\tNA\tNA\treload_bench: %s\n' "$reload_objects" \
    "$(lastline "$tmp/reload.out")" >>"$rows"
fi
emu_stop

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$out"
cp "$rows" "$out/latest.tsv"
python3 "$root/bench/report.py" --rows "$rows" --out "$out" --command "$cmdline" --mode "$mode" \
  --reps "$reps" --started "$started" --load-start "$load_start" --load-end "$load_end" \
  --sizes "$sizes" --converge "$converge" --reload-objects "$reload_objects" \
  --informer-objects "$informer_objects" --lua-reconciles "$lua_reconciles"
say "wrote $out/latest.json, latest.md, latest.png, latest.tsv"
