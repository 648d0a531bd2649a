#!/usr/bin/env python3
"""Run the code blocks of docs/*.md that are marked runnable.

A marker is an HTML comment on the line right before a fenced block:
  <!-- runnable: bundle NAME -->  the block is a complete main.lua: written
                                  to NAME/main.lua, it must pass `kuala check`
                                  (`kuala crd` when the binary has no check)
  <!-- runnable: bundle-error NAME -->  the same, but loading must fail
  <!-- runnable: file PATH -->    the block is written to PATH (samples, specs)
  <!-- runnable: crd NAME -->     the block is exactly what `kuala crd NAME` prints
  <!-- runnable: error NAME -->   `kuala crd NAME` must fail, and its stderr
                                  must contain every line of the block
  <!-- runnable: sh -->           a shell script run with bash -eu in the
                                  directory holding the page's bundles, with
                                  kuala, kuala-apiserver on PATH and KUBECONFIG
                                  pointing at a fresh kuala-apiserver (60 s max)
Blocks of one page share a directory; pages do not share anything.

Usage: docs_runnable.py DOCS_DIR KUALA KUALA_APISERVER   (exit 1 on any failure)
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

MARK = re.compile(r"^<!--\s*runnable:\s*(\w[\w-]*)\s*(\S*)\s*-->\s*$")


def blocks(path):
    """[(line, kind, name, text)] for each marked fenced block of path."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    for i, line in enumerate(lines):
        m = MARK.match(line)
        if not m:
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            out.append((i + 1, "bad-marker", "", ""))
            continue
        j = i + 2
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        out.append((i + 1, m.group(1), m.group(2), "\n".join(lines[i + 2:j]) + "\n"))
    return out


class Emulator:
    def __init__(self, binary, workdir):
        self.binary, self.dir, self.proc = binary, workdir, None

    def kubeconfig(self):
        if self.proc is None:
            out = open(os.path.join(self.dir, "emu.out"), "w")
            self.proc = subprocess.Popen(
                [self.binary, "--port", "0", "--kubeconfig-out",
                 os.path.join(self.dir, "kubeconfig")], stdout=out, stderr=subprocess.STDOUT)
            for _ in range(100):
                if "listening on" in open(os.path.join(self.dir, "emu.out")).read():
                    break
                time.sleep(0.05)
        return os.path.join(self.dir, "kubeconfig")

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def run_page(page, kuala, apiserver, has_check):
    failures = []
    work = tempfile.mkdtemp(prefix="kuala-docs.")
    emu = Emulator(apiserver, work)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(kuala), os.path.dirname(apiserver), env["PATH"]])
    try:
        for line, kind, name, text in blocks(page):
            where = "%s:%d: %s %s" % (page, line, kind, name)
            if kind in ("bundle", "bundle-error"):
                os.makedirs(os.path.join(work, name), exist_ok=True)
                with open(os.path.join(work, name, "main.lua"), "w") as f:
                    f.write(text)
                cmd = [kuala, "check" if has_check else "crd", name]
                r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=60)
                if (r.returncode != 0) != (kind == "bundle-error"):
                    failures.append("%s: `%s` exited %d:\n%s"
                                    % (where, " ".join(cmd[1:]), r.returncode, r.stderr))
            elif kind == "file" and name and not os.path.isabs(name) and ".." not in name:
                os.makedirs(os.path.dirname(os.path.join(work, name)) or work, exist_ok=True)
                with open(os.path.join(work, name), "w") as f:
                    f.write(text)
            elif kind in ("crd", "error"):
                r = subprocess.run([kuala, "crd", name], cwd=work, capture_output=True,
                                   text=True, timeout=60)
                if kind == "crd" and (r.returncode != 0 or r.stdout != text):
                    failures.append("%s: `kuala crd %s` printed something else:\n%s%s"
                                    % (where, name, r.stdout, r.stderr))
                if kind == "error":
                    missing = [t for t in text.strip().split("\n") if t not in r.stderr]
                    if r.returncode == 0 or missing:
                        failures.append("%s: expected a failure with %s, got rc %d:\n%s"
                                        % (where, missing, r.returncode, r.stderr))
            elif kind == "sh":
                env["KUBECONFIG"] = emu.kubeconfig()
                r = subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", text], cwd=work,
                                   env=env, capture_output=True, text=True, timeout=60)
                if r.returncode != 0:
                    failures.append("%s: exit %d:\n%s%s" % (where, r.returncode, r.stdout, r.stderr))
            else:
                failures.append("%s: unknown marker or no fenced block after it" % where)
            print("%s %s" % ("FAIL" if failures and failures[-1].startswith(where) else "ok  ", where))
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    return failures


def main():
    docs, kuala, apiserver = (os.path.abspath(a) for a in sys.argv[1:4])
    helptext = subprocess.run([kuala, "help"], capture_output=True, text=True).stdout
    has_check = re.search(r"^\s+check\b", helptext, re.M) is not None
    failures, count = [], 0
    for page in sorted(glob.glob(os.path.join(docs, "*.md"))):
        count += len(blocks(page))
        failures += run_page(page, kuala, apiserver, has_check)
    for f in failures:
        print("FAIL " + f)
    print("docs_runnable: %d marked blocks, %d failures (bundle check: kuala %s)"
          % (count, len(failures), "check" if has_check else "crd"))
    return 1 if failures or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
