// Peer for scripts/bench.sh: the 2,000-CR operator loop written with the
// JavaScript client alone (client-node 0.22): an informer on the Echo custom
// resources feeds a de-duplicating queue drained by 8 concurrent workers;
// each reconcile applies a ConfigMap (server-side apply) and, when it
// differs, merge-patches status.echoed, printing "echoed <name>" -- the same
// work as bench/bundles/converge. No client-side rate limit (client-node has
// none). Runs until killed.
//   node converge-client-node.js NAMESPACE      (KUBECONFIG names the server)
'use strict';
const k8s = require('@kubernetes/client-node');

const ns = process.argv[2] || 'default';
const G = 'e2e.kuala.dev';
const V = 'v1';
const P = 'echos';
const kc = new k8s.KubeConfig();
kc.loadFromDefault();
const core = kc.makeApiClient(k8s.CoreV1Api);
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const applyOpts = { headers: { 'Content-Type': 'application/apply-patch+yaml' } };
const mergeOpts = { headers: { 'Content-Type': 'application/merge-patch+json' } };

const informer = k8s.makeInformer(kc, `/apis/${G}/${V}/namespaces/${ns}/${P}`,
                                  () => custom.listNamespacedCustomObject(G, V, ns, P));
const queue = [];
const queued = new Set();
let active = 0;
const WORKERS = 8;

function enqueue(obj) {
  const name = obj.metadata.name;
  if (queued.has(name)) return;
  queued.add(name);
  queue.push(name);
  pump();
}

function pump() {
  while (active < WORKERS && queue.length > 0) {
    const name = queue.shift();
    queued.delete(name);
    active++;
    reconcile(name).catch((err) => {
      console.error('reconcile', name, (err && err.body && err.body.message) || err);
      setTimeout(() => enqueue({ metadata: { name } }), 100);
    }).finally(() => {
      active--;
      pump();
    });
  }
}

async function reconcile(name) {
  const echo = informer.get(name, ns);
  if (!echo) return;
  const cm = {
    apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name: `${name}-echo`, namespace: ns },
    data: { message: echo.spec.message },
  };
  await core.patchNamespacedConfigMap(`${name}-echo`, ns, cm, undefined, undefined,
                                      'echo-peer', undefined, true, applyOpts);
  if (!echo.status || echo.status.echoed !== echo.spec.message) {
    await custom.patchNamespacedCustomObjectStatus(G, V, ns, P, name,
                                                   { status: { echoed: echo.spec.message } },
                                                   undefined, undefined, undefined, mergeOpts);
    console.log(`echoed ${name}`);
  }
}

informer.on('add', enqueue);
informer.on('update', enqueue);
informer.on('error', (err) => console.error('informer error', err && err.message));
informer.start().catch((err) => {
  console.error('start failed', err && err.message);
  process.exit(1);
});
