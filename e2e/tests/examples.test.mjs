// The producers of examples/ (shell with curl, Python, Node) against a
// real hub: each publishes its events, and a subscriber sees exactly
// those, typed and with the ids the script printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startHub, waitFor } from '../lib.mjs';
import { run, subscribeDirect } from '../demo-lib.mjs';

const PRICES = 'https://demo.tidings.dev/prices/{symbol}';

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;

const producers = [
  { name: 'shell (curl)', needs: ['bash', 'curl'], command: 'bash', script: 'examples/producer.sh', symbol: 'CURL' },
  { name: 'Python', needs: ['python3'], command: 'python3', script: 'examples/producer.py', symbol: 'PY' },
  { name: 'Node', needs: [], command: process.execPath, script: 'examples/producer.mjs', symbol: 'NODE' },
];

for (const p of producers) {
  const missing = p.needs.filter((c) => !has(c));
  test(`the ${p.name} producer publishes typed prices`, { skip: missing.length ? `${missing.join(', ')} not installed` : false }, async () => {
    const hub = await startHub();
    const subscriber = await subscribeDirect(hub.url, [PRICES], ['price', 'message']);
    try {
      const { code, stdout, stderr } = await run(p.command, [p.script, hub.url], { env: { COUNT: '3', INTERVAL: '0.1' } });
      assert.equal(code, 0, stderr);
      const ids = stdout.trim().split('\n');
      assert.equal(ids.length, 3, stdout);
      await waitFor(() => subscriber.events.length >= 3, 5000, 'the events');
      assert.deepEqual(subscriber.ids, ids, 'the printed ids are the events’ ids');
      for (const event of subscriber.events) {
        assert.equal(event.type, 'price');
        const price = JSON.parse(event.data);
        assert.equal(price.symbol, p.symbol);
        for (const field of ['price', 'open', 'change', 'changePct', 'time']) {
          assert.equal(typeof price[field], 'number', `${field} in ${event.data}`);
        }
        assert.ok(Math.abs(price.price - price.open - price.change) < 0.011, event.data);
      }
    } finally {
      subscriber.close();
      await hub.stop();
    }
  });
}

test('the producers fail loudly when the hub refuses', async () => {
  // A URL with nothing behind it: 404 from the hub.
  const hub = await startHub();
  try {
    for (const p of producers.filter((x) => x.needs.every(has))) {
      const result = await run(p.command, [p.script, `${hub.url}/nowhere`], { env: { COUNT: '1' } });
      assert.notEqual(result.code, 0, `${p.name}: ${result.stdout}`);
      assert.match(result.stderr, /404/, p.name);
    }
  } finally {
    await hub.stop();
  }
});
