#!/usr/bin/env python3
"""Peer for scripts/bench.sh: Debian's python3-kubernetes client lists every
ConfigMap of one namespace in pages of 500 into a dict keyed by name (what an
informer's initial sync does; the Python client has no informer), prints
"synced <count>", then watches from the list's resourceVersion until killed.
    python3 sync-python.py NAMESPACE      (KUBECONFIG names the server)"""
import sys

from kubernetes import client, config, watch

ns = sys.argv[1] if len(sys.argv) > 1 else "bench"
config.load_kube_config()
core = client.CoreV1Api()
cache = {}
cont = None
rv = None
while True:
    kw = {"limit": 500}
    if cont:
        kw["_continue"] = cont
    page = core.list_namespaced_config_map(ns, **kw)
    for it in page.items:
        cache[it.metadata.name] = it
    rv = page.metadata.resource_version
    cont = page.metadata._continue
    if not cont:
        break
print("synced %d" % len(cache), flush=True)
for ev in watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=rv):
    cache[ev["object"].metadata.name] = ev["object"]
