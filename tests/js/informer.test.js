// kuala-apiserver judged by the official JavaScript client: a client-node
// informer syncs the existing objects, follows adds/updates/deletes, and
// recovers from a dropped watch and from a 410 (injected through the
// emulator's admin endpoint when EMU_ADMIN is set).
//
// Env: KUBECONFIG (written by kuala-apiserver --kubeconfig-out), EMU_ADMIN
// (admin port, optional). Exits 0 when every check passed, 1 otherwise, and
// stops by itself (global 60 s deadline).
'use strict';

const http = require('http');
const k8s = require('@kubernetes/client-node');

const NS = 'default';
const deadline = setTimeout(() => {
  console.log('FAIL: global deadline reached');
  process.exit(1);
}, 60000);

let failures = 0;
let checks = 0;
function check(name, cond, detail) {
  checks++;
  if (cond) {
    console.log(`ok: ${name}`);
  } else {
    failures++;
    console.log(`FAIL: ${name}${detail ? ': ' + detail : ''}`);
  }
}

// Resolve when pred(events) is true, or after ms with false.
function waitFor(events, pred, ms) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const tick = () => {
      if (pred(events)) return resolve(true);
      if (Date.now() - t0 > ms) return resolve(false);
      setTimeout(tick, 25);
    };
    tick();
  });
}

function admin(path) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: Number(process.env.EMU_ADMIN), path, method: 'POST' },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function main() {
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  const core = kc.makeApiClient(k8s.CoreV1Api);

  await core.createNamespacedConfigMap(NS, {
    metadata: { name: 'pre', labels: { app: 'js' } },
    data: { k: 'v0' },
  });

  const events = [];
  const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${NS}/configmaps`, () =>
    core.listNamespacedConfigMap(NS),
  );
  informer.on('add', (o) => events.push(['add', o.metadata.name, o.data && o.data.k]));
  informer.on('update', (o) => events.push(['update', o.metadata.name, o.data && o.data.k]));
  informer.on('delete', (o) => events.push(['delete', o.metadata.name]));
  informer.on('error', (err) => {
    events.push(['error', String(err && err.message)]);
    setTimeout(() => informer.start().catch(() => {}), 500);
  });
  await informer.start();

  check('informer syncs existing objects',
    await waitFor(events, (e) => e.some((x) => x[0] === 'add' && x[1] === 'pre'), 10000));
  check('cache holds the synced object', informer.list(NS).some((o) => o.metadata.name === 'pre'));

  await core.createNamespacedConfigMap(NS, { metadata: { name: 'live' }, data: { k: 'v1' } });
  check('add event for a new object',
    await waitFor(events, (e) => e.some((x) => x[0] === 'add' && x[1] === 'live'), 10000));

  await core.patchNamespacedConfigMap('live', NS, { data: { k: 'v2' } }, undefined, undefined,
    undefined, undefined, undefined,
    { headers: { 'Content-Type': k8s.PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH } });
  check('update event after a merge patch',
    await waitFor(events, (e) => e.some((x) => x[0] === 'update' && x[1] === 'live' && x[2] === 'v2'),
      10000));
  const cached = informer.get('live', NS);
  check('cache follows the update', cached && cached.data.k === 'v2',
    JSON.stringify(cached && cached.data));

  // A JSON-patch `test` that fails is a 422 (kopf and others rely on it).
  let status = 0;
  try {
    await core.patchNamespacedConfigMap('live', NS,
      [{ op: 'test', path: '/data/k', value: 'nope' }], undefined, undefined, undefined,
      undefined, undefined,
      { headers: { 'Content-Type': k8s.PatchUtils.PATCH_FORMAT_JSON_PATCH } });
  } catch (err) {
    status = err.statusCode || (err.response && err.response.statusCode);
  }
  check('failed JSON patch test is 422', status === 422, `got ${status}`);

  await core.deleteNamespacedConfigMap('live', NS);
  check('delete event',
    await waitFor(events, (e) => e.some((x) => x[0] === 'delete' && x[1] === 'live'), 10000));
  check('cache forgets the deleted object', !informer.get('live', NS));

  if (process.env.EMU_ADMIN) {
    // Drop every watch and answer the next one with 410: the informer must
    // relist and keep following changes.
    check('admin: next watch 410', (await admin('/faults/watch-410?count=1')) === 200);
    check('admin: close watches', (await admin('/faults/close-watches')) === 200);
    await new Promise((r) => setTimeout(r, 1500));
    await core.createNamespacedConfigMap(NS, { metadata: { name: 'after' }, data: { k: 'a' } });
    check('informer recovers after a dropped watch and a 410',
      await waitFor(events, (e) => e.some((x) => x[0] === 'add' && x[1] === 'after'), 15000),
      JSON.stringify(events.slice(-5)));
  }

  await informer.stop();
  clearTimeout(deadline);
  console.log(`${checks} checks, ${failures} failures`);
  process.exit(failures ? 1 : 0);
}

main().catch((err) => {
  console.log('FAIL: ' + (err && (err.body ? JSON.stringify(err.body) : err.stack || err)));
  process.exit(1);
});
