// Fixture loader for scripts/bench.sh (not a peer): creates ConfigMaps
// cm-FROM .. cm-(TO-1) of about 1 KB each in NAMESPACE (creating the namespace
// when missing), 64 requests in flight, and prints how many it created.
//   node create-configmaps.js NAMESPACE FROM TO      (KUBECONFIG names the server)
'use strict';
const k8s = require('@kubernetes/client-node');

const [ns, from, to] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const kc = new k8s.KubeConfig();
kc.loadFromDefault();
const core = kc.makeApiClient(k8s.CoreV1Api);

function body(i) {
  const data = {};
  for (let k = 0; k < 16; k++) {
    data[`key${String(k).padStart(2, '0')}`] =
      `value-${(i * 31 + k).toString(16).padStart(8, '0')}-${k}-${'x'.repeat(24)}`;
  }
  return {
    apiVersion: 'v1', kind: 'ConfigMap',
    metadata: {
      name: `cm-${i}`, namespace: ns,
      labels: { app: 'bench', shard: String(i % 16), tier: i % 2 ? 'odd' : 'even' },
      annotations: { 'bench.kuala.dev/index': String(i) },
    },
    data,
  };
}

async function main() {
  try {
    await core.createNamespace({ metadata: { name: ns } });
  } catch (err) {
    if (!err.response || err.response.statusCode !== 409) throw err;
  }
  let next = from;
  let created = 0;
  async function worker() {
    while (next < to) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          await core.createNamespacedConfigMap(ns, body(i));
          created++;
          break;
        } catch (err) {
          if (err.response && err.response.statusCode === 409) break;
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: 64 }, worker));
  console.log(`created ${created}`);
}

main().catch((err) => {
  console.error('create-configmaps:', (err && err.body && err.body.message) || err);
  process.exit(1);
});
