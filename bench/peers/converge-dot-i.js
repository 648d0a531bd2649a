// Peer for scripts/bench.sh: the 2,000-CR operator loop written with
// @dot-i/k8s-operator 1.3.9 (a watch per resource type, events handled one at
// a time by the library's queue): each Echo added or modified gets a
// ConfigMap (server-side apply through the library's client-node CoreV1Api)
// and, when it differs, status.echoed through patchResourceStatus, printing
// "echoed <name>" -- the same work as bench/bundles/converge. Runs until
// killed.
//   node converge-dot-i.js NAMESPACE      (KUBECONFIG names the server)
'use strict';
const Operator = require('@dot-i/k8s-operator').default;
const { ResourceEventType } = require('@dot-i/k8s-operator');

const ns = process.argv[2] || 'default';
const applyOpts = { headers: { 'Content-Type': 'application/apply-patch+yaml' } };

class EchoOperator extends Operator {
  async init() {
    await this.watchResource('e2e.kuala.dev', 'v1', 'echos', async (e) => {
      if (e.type === ResourceEventType.Deleted) return;
      const echo = e.object;
      const name = echo.metadata.name;
      try {
        await this.k8sApi.patchNamespacedConfigMap(`${name}-echo`, ns, {
          apiVersion: 'v1', kind: 'ConfigMap',
          metadata: { name: `${name}-echo`, namespace: ns },
          data: { message: echo.spec.message },
        }, undefined, undefined, 'echo-peer', undefined, true, applyOpts);
        if (!echo.status || echo.status.echoed !== echo.spec.message) {
          await this.patchResourceStatus(e.meta, { echoed: echo.spec.message });
          console.log(`echoed ${name}`);
        }
      } catch (err) {
        console.error('reconcile', name, (err && err.body && err.body.message) || err);
      }
    }, ns);
  }
}

new EchoOperator().start().catch((err) => {
  console.error('start failed', err);
  process.exit(1);
});
