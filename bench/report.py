#!/usr/bin/env python3
"""Turns the rows scripts/bench.sh measured into bench/results/latest.json,
latest.md and latest.png (gnuplot). Invents nothing: a figure without a
successful run is null in the JSON and "missing (reason)" in the table.

Rows (tab-separated): scenario impl n rep status value cpu_s rss_mb note
  sync      impl N rep ok seconds cpu rss        (launch -> synced)
  converge  impl N rep ok seconds cpu rss|NA
  idle      impl 0 rep ok NA NA rss
  micro     kuala N rep ok value NA NA key       (kuala-only benches)
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
from collections import defaultdict

PEERS = ["client-node", "python", "dot-i-operator"]
FAILED_BENCH_KEYS = {
    "informer_bench": ["cache_ratio_to_json", "ingest_events_per_second",
                       "jsonc_parse_events_per_second", "ingest_ratio_to_jsonc",
                       "bare_informer_sync_seconds"],
    "lua_bench": ["noop_reconciles_per_second", "get_reconciles_per_second"],
    "reload_bench": ["reload_latency_ms_p50", "reload_relists"],
}
METRIC_ORDER = {"seconds": 0, "cpu": 1, "rss": 2}


def stats(vals):
    v = sorted(vals)
    if not v:
        return None
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {"median": med, "min": v[0], "max": v[-1], "runs": n}


def size_tag(n):
    n = int(n)
    return "%dk" % (n // 1000) if n % 1000 == 0 else str(n)


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def main():
    ap = argparse.ArgumentParser()
    for a in ["rows", "out", "command", "mode", "reps", "started", "load-start", "load-end",
              "sizes", "converge", "reload-objects", "informer-objects", "lua-reconciles"]:
        ap.add_argument("--" + a, required=True)
    a = ap.parse_args()

    vals = defaultdict(list)  # (impl, key) -> [values]
    why = {}  # (impl, key) -> reason it is missing
    sync_curve = defaultdict(dict)  # impl -> n -> {seconds, rss}

    def put(impl, key, v, status, note):
        if status == "ok" and v is not None:
            vals[(impl, key)].append(v)
        else:
            why.setdefault((impl, key), note or status)

    with open(a.rows) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 9:
                continue
            sc, impl, n, _rep, status, v, cpu, rss, note = p[:9]
            v, cpu, rss = num(v), num(cpu), num(rss)
            if sc == "sync":
                t = "sync_%s" % size_tag(n)
                put(impl, t + "_seconds", v, status, note)
                put(impl, t + "_cpu_seconds", cpu, status, note)
                put(impl, t + "_rss_mb", rss, status, note)
            elif sc == "converge":
                t = "converge_%s" % n
                put(impl, t + "_seconds", v, status, note)
                put(impl, t + "_cpu_seconds", cpu, status, note)
                if rss is not None or status != "ok":
                    put(impl, t + "_rss_mb", rss, status, note)
            elif sc == "idle":
                put(impl, "idle_rss_mb", rss, status, note)
            elif sc == "micro":
                if status == "ok":
                    key = "reload_latency_ms_p50" if note == "reload_latency_ms" else note
                    put(impl, key, v, status, note)
                else:
                    bench = note.split(":")[0]
                    for key in FAILED_BENCH_KEYS.get(bench, [bench]):
                        put(impl, key, None, status, note)

    if a.mode == "full" and (a.reps != "3" or a.sizes.split() != ["10000", "25000", "50000", "100000"]
                             or a.converge != "2000" or a.informer_objects != "100000"
                             or a.reload_objects != "10000"):
        a.mode = "custom"  # not the defaults: say so next to every figure
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    cores = os.cpu_count()
    try:
        commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)),
                                 "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None

    def block(impl):
        d, ranges, missing = {}, {}, {}
        keys = sorted({k for (i, k) in list(vals) + list(why) if i == impl})
        for k in keys:
            s = stats(vals.get((impl, k), []))
            if s:
                d[k] = round(s["median"], 4)
                ranges[k] = [round(s["min"], 4), round(s["max"], 4), s["runs"]]
            else:
                d[k] = None
                missing[k] = why.get((impl, k), "no run")
        if ranges:
            d["ranges_min_max_runs"] = ranges
        if missing:
            d["missing"] = missing
        return d

    res = {
        "command": a.command,
        "mode": a.mode,
        "date": a.started,
        "load_average_start": a.load_start,
        "load_average_end": a.load_end,
        "cpu_model": cpu_model,
        "cores": cores,
        "kernel": platform.release(),
        "git_commit": commit,
        "repetitions": int(a.reps),
        "sizes": [int(x) for x in a.sizes.split()],
        "converge_objects": int(a.converge),
        "reload_objects": int(a.reload_objects),
        "informer_bench_objects": int(a.informer_objects),
        "lua_bench_reconciles": int(a.lua_reconciles),
        "values": "median of the repetitions; ranges_min_max_runs holds [min, max, runs]",
        "note": ("measured on a machine shared with other jobs (see the load averages): read "
                 "the ratios between implementations of the same run, not absolute times"
                 + ("; --quick run: small sizes, one repetition" if a.mode == "quick" else
                    "; custom run: sizes/repetitions differ from the defaults (see command)"
                    if a.mode == "custom" else "")),
    }
    res.update(block("kuala"))
    res["peers"] = {}
    for p in PEERS:
        b = block(p)
        if not [k for k in b if k not in ("missing", "ranges_min_max_runs")]:
            b = {"missing": "not run"}
        res["peers"][p] = b

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "latest.json"), "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")

    # --- latest.md ---------------------------------------------------------
    lower_better = lambda k: not k.endswith("_per_second") and k != "cache_ratio_to_json"

    def cell(impl, k):
        s = stats(vals.get((impl, k), []))
        if not s:
            r = why.get((impl, k))
            return ("missing (%s)" % r) if r else "—"
        def f(x):
            return "%.3g" % x if abs(x) < 1000 else "%.0f" % x
        if s["runs"] > 1:
            return "%s (%s–%s)" % (f(s["median"]), f(s["min"]), f(s["max"]))
        return f(s["median"])

    keys = []
    for k in sorted({k for (_i, k) in vals} | {k for (_i, k) in why}):
        if k != "micro":
            keys.append(k)
    order = lambda k: (0 if k.startswith("sync_") else 1 if k.startswith("converge_") else
                       2 if k == "idle_rss_mb" else 3,
                       int(k.split("_")[1].rstrip("k")) * (1000 if k.split("_")[1].endswith("k") else 1)
                       if k.startswith(("sync_", "converge_")) and k.split("_")[1].rstrip("k").isdigit()
                       else 0, METRIC_ORDER.get(k.split("_")[2] if k.count("_") >= 2 else "", 9), k)
    keys.sort(key=order)
    lines = [
        "# Benchmark results (`%s`)" % a.command,
        "",
        "%s, %s mode, %s repetition(s); %s, %d cores; load average %s at the start, %s at "
        "the end (the machine is shared: read the ratios, not the absolute times). "
        "Cells: median (min–max). Ratio: best peer ÷ kuala for times and memory, kuala ÷ "
        "best peer for rates (> 1: kuala is better). Written by bench/report.py from "
        "latest.tsv; see docs/benchmarks.md." % (a.started, a.mode, a.reps, cpu_model, cores,
                                                 a.load_start, a.load_end),
        "",
        "| figure | kuala | " + " | ".join(PEERS) + " | ratio |",
        "|---|---|" + "---|" * len(PEERS) + "---|",
    ]
    for k in keys:
        row = [k, cell("kuala", k)] + [cell(p, k) for p in PEERS]
        ks = stats(vals.get(("kuala", k), []))
        ps = [stats(vals.get((p, k), [])) for p in PEERS]
        ps = [s["median"] for s in ps if s]
        ratio = "—"
        if ks and ps and ks["median"] > 0:
            if lower_better(k):
                ratio = "%.2f" % (min(ps) / ks["median"])
            else:
                ratio = "%.2f" % (ks["median"] / max(ps))
        lines.append("| " + " | ".join(row + [ratio]) + " |")
    missing_peers = [p for p in PEERS if res["peers"][p].get("missing") == "not run"]
    if missing_peers:
        lines += ["", "Not run: " + ", ".join(missing_peers)]
    lines += ["", "![sync time and RSS against N](latest.png)", ""]
    with open(os.path.join(a.out, "latest.md"), "w") as f:
        f.write("\n".join(lines))

    # --- latest.png: sync seconds and RSS against N --------------------------
    for impl, k in list(vals):
        if k.startswith("sync_") and k.endswith("_seconds") and "_cpu_" not in k:
            tag = k[len("sync_"):-len("_seconds")]
            n = int(tag[:-1]) * 1000 if tag.endswith("k") else int(tag)
            s = stats(vals[(impl, k)])
            r = stats(vals.get((impl, "sync_%s_rss_mb" % tag), []))
            sync_curve[impl][n] = (s, r)
    if not shutil.which("gnuplot"):
        print("report.py: gnuplot not installed; no latest.png")
        return
    dat = []
    impls = [i for i in ["kuala"] + PEERS if i in sync_curve]
    for i in impls:
        path = os.path.join(a.out, ".sync-%s.dat" % i)
        with open(path, "w") as f:
            for n in sorted(sync_curve[i]):
                s, r = sync_curve[i][n]
                f.write("%d %g %g %g %s %s %s\n" % (
                    n, s["median"], s["min"], s["max"],
                    r["median"] if r else "NaN", r["min"] if r else "NaN", r["max"] if r else "NaN"))
        dat.append((i, path))
    title = "%s, %d cores, load %s; %s (%s)" % (cpu_model, cores, a.load_start, a.started, a.mode)
    gp = [
        "set terminal pngcairo size 1100,480 noenhanced" if "cairo" in
        subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True).stderr
        else "set terminal png size 1100,480 noenhanced",
        "set output '%s'" % os.path.join(a.out, "latest.png"),
        "set multiplot layout 1,2 title '%s'" % title.replace("'", ""),
        "set key top left", "set grid", "set yrange [0:*]", "set xlabel 'objects (N)'",
        "set ylabel 'launch -> synced (s)'", "set title 'initial sync time (median, min-max)'",
        "plot " + ", ".join("'%s' u 1:2:3:4 w yerrorlines t '%s'" % (p, i) for i, p in dat),
        "set ylabel 'peak RSS (MB)'", "set title 'peak RSS at sync'",
        "plot " + ", ".join("'%s' u 1:5:6:7 w yerrorlines t '%s'" % (p, i) for i, p in dat),
        "unset multiplot",
    ]
    subprocess.run(["gnuplot"], input="\n".join(gp), text=True, check=True)
    for _i, p in dat:
        os.unlink(p)


if __name__ == "__main__":
    main()
