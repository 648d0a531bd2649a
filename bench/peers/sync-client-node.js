// Peer for scripts/bench.sh: the JavaScript client's informer (client-node
// 0.22) syncs every ConfigMap of one namespace, listing in pages of 500 (an
// unpaged list of 100k objects is larger than the emulator sends in one
// response), then prints "synced <count>" and keeps watching until killed.
//   node sync-client-node.js NAMESPACE      (KUBECONFIG names the server)
'use strict';
const k8s = require('@kubernetes/client-node');

const ns = process.argv[2] || 'bench';
const kc = new k8s.KubeConfig();
kc.loadFromDefault();
const core = kc.makeApiClient(k8s.CoreV1Api);

async function listPaged() {
  const items = [];
  let cont;
  let last;
  do {
    last = await core.listNamespacedConfigMap(ns, undefined, undefined, cont, undefined,
                                              undefined, 500);
    for (const it of last.body.items) items.push(it);
    cont = last.body.metadata && last.body.metadata._continue;
  } while (cont);
  last.body.items = items;
  return last;
}

const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${ns}/configmaps`, listPaged);
informer.on('error', (err) => {
  console.error('informer error', err && err.message);
});
informer.start().then(() => {
  console.log(`synced ${informer.list(ns).length}`);
}, (err) => {
  console.error('start failed', err && err.message);
  process.exit(1);
});
