#!/usr/bin/env python3
"""Check docs/lua-api.md against the LuaCATS annotations of lua/kuala/*.lua.

A public function is a `function A.b(...)` / `function A:b(...)` line in
lua/kuala/<mod>.lua whose doc block (the `---` lines right above it) has a
`---@param` or `---@return`. Skipped: names with a part starting with `_`
and the internal modules kuala.engine and kuala.core. `_M` stands for the
module (`kuala` for init.lua, `kuala.<mod>` otherwise).

docs/lua-api.md documents a function with a level-3 heading holding its
signature in backticks, under a level-2 heading naming the module:
    ## `kuala.crd`
    ### `kuala.crd.build(spec)`
The check fails when a public function is missing, when the parameter names
differ (doc heading vs ---@param lines vs the real parameter list), or when
the doc has a heading for a function that does not exist.

Usage: check_lua_api.py [SOURCE_DIR]   (exit 0 = in sync, 1 = differences)
"""
import glob
import os
import re
import sys

INTERNAL = {"kuala.engine", "kuala.core"}
FUNC = re.compile(r"^function\s+([A-Za-z_][\w.]*)([.:])([A-Za-z_]\w*)\s*\(([^)]*)\)")
PARAM = re.compile(r"^---@param\s+(\S+)")
SIG = re.compile(r"^###\s+`([\w.]+?)([.:])(\w+)\(([^)]*)\)`\s*$")
MOD = re.compile(r"^##\s+`(kuala(?:\.\w+)?)`\s*$")


def params_of(text):
    return [p.strip() for p in text.split(",") if p.strip()]


def source_functions(root):
    """{(module, qualified name): [param names]} and a list of problems."""
    funcs, problems = {}, []
    for path in sorted(glob.glob(os.path.join(root, "lua", "kuala", "*.lua"))):
        base = os.path.basename(path)[:-4]
        module = "kuala" if base == "init" else "kuala." + base
        if module in INTERNAL:
            continue
        lines = open(path, encoding="utf-8").read().split("\n")
        for i, line in enumerate(lines):
            m = FUNC.match(line)
            if not m:
                continue
            table, sep, name, args = m.groups()
            block = []
            j = i - 1
            while j >= 0 and lines[j].startswith("---"):
                block.insert(0, lines[j])
                j -= 1
            if not any(b.startswith(("---@param", "---@return")) for b in block):
                continue
            parts = table.split(".") + [name]
            if any(p.startswith("_") for p in parts[1:]) or name.startswith("_"):
                continue
            real = [p for p in params_of(args) if p != "..."]
            if sep == "." and table != "_M" and real[:1] in (["_"], ["self"]):
                sep, real = ":", real[1:]  # a method written Cluster.f(_, ...)
            qual = (module if table == "_M" else
                    module + table[2:] if table.startswith("_M.") else table) + sep + name
            annotated = [PARAM.match(b).group(1) for b in block if PARAM.match(b)]
            if [a for a in annotated if a != "..."] != real:
                problems.append("%s:%d: %s: ---@param names %s differ from the parameters %s"
                                % (path, i + 1, qual, annotated, real))
            funcs[(module, qual)] = annotated
    return funcs, problems


def documented_functions(doc):
    docs, module = {}, None
    for n, line in enumerate(open(doc, encoding="utf-8"), 1):
        m = MOD.match(line)
        if m:
            module = m.group(1)
            continue
        m = SIG.match(line)
        if m:
            table, sep, name, args = m.groups()
            docs[(module, table + sep + name)] = (params_of(args), n)
    return docs


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    doc = os.path.join(root, "docs", "lua-api.md")
    funcs, problems = source_functions(root)
    docs = documented_functions(doc)
    for key in sorted(funcs):
        want = funcs[key]
        if key not in docs:
            problems.append("%s: %s (%s) is public and annotated but not documented"
                            % (doc, key[1], key[0]))
        elif docs[key][0] != want:
            problems.append("%s:%d: %s documents parameters %s, the annotations say %s"
                            % (doc, docs[key][1], key[1], docs[key][0], want))
    for key in sorted(docs):
        if key not in funcs:
            problems.append("%s:%d: %s (%s) is documented but is no public annotated function"
                            % (doc, docs[key][1], key[1], key[0]))
    for p in problems:
        print(p)
    print("lua-api: %d functions in the source, %d documented, %d problems"
          % (len(funcs), len(docs), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
