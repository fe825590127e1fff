// Entry point VS Code's extension host loads as `extensionTestsPath`: runs the mocha suite
// with the real `vscode` API and reports the counts to the driver (tests/editor/driver.js).
import { driver } from './driver';
import { defineTests } from './extension.test';
import { defineManagedEnvTests } from './managed.test';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const Mocha = require('mocha') as typeof import('mocha');

export async function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', reporter: 'spec', timeout: 60000, color: false });
  // Install describe/it/before… as globals (what mocha does for each file it loads), then
  // define the suite: the test modules are bundled, not loaded by mocha from files.
  mocha.suite.emit('pre-require', globalThis, 'extension.test', mocha);
  // Two sessions of the editor: the main suite (interpreter from the workspace settings), and a
  // workspace without one, where the extension makes its own environment (TINYFORGE_SUITE).
  if (process.env.TINYFORGE_SUITE === 'managed-env') {
    defineManagedEnvTests();
  } else {
    defineTests();
  }
  const failures: { title: string; error: string }[] = [];
  const stats = await new Promise<{ passes: number; failures: number }>((resolve) => {
    const runner = mocha.run(() => resolve({ passes: runner.stats?.passes ?? 0, failures: runner.stats?.failures ?? 0 }));
    runner.on('fail', (test, err: Error) => failures.push({ title: test.fullTitle(), error: err?.stack ?? String(err) }));
  });
  console.log(`[test] ${stats.passes} passed, ${stats.failures} failed`);
  await driver('result', { passed: stats.passes, failed: stats.failures, failures });
  if (stats.failures > 0) {
    throw new Error(`${stats.failures} test(s) failed`);
  }
}
