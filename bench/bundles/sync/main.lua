-- Sync benchmark bundle (scripts/bench.sh): one controller over the
-- ConfigMaps of namespace "bench" whose reconcile does nothing, so that
-- `kuala run`'s "cache synced" log line marks the end of the initial sync
-- (list, store, indexes, every key queued) -- the engine's side of the
-- informer-sync comparison with the peers in bench/peers.
local kuala = require("kuala")

kuala.controller {
  name = "sync",
  watch = { type = "v1/ConfigMap", namespace = "bench" },
  reconcile = function() end,
}
