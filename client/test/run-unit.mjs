// Runs the client's unit tests (pure logic, plain Node, no VS Code) built by
// `node client/esbuild.mjs --tests` into client/out/test/unit, and prints "N passed, N failed".
import { createRequire } from 'node:module';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const Mocha = require('mocha');
const dir = new URL('../out/test/unit/', import.meta.url).pathname;
const mocha = new Mocha({ reporter: 'spec', timeout: 10000 });
for (const f of readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort()) {
  mocha.addFile(join(dir, f));
}
const runner = mocha.run((failures) => {
  const { passes, failures: failed } = runner.stats;
  console.log(`client-unit: ${passes} passed, ${failed} failed`);
  process.exitCode = failures ? 1 : 0;
});
