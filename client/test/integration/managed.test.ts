// The managed environment, in a workspace with no interpreter configured and no Python
// extension: the extension creates a venv and pip-installs the server shipped in the .vsix.
// run.sh points pip at an index that does not answer, so this checks the failure a user without
// PyPI meets: a progress notification, then a clear error with "Show log".
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { TinyForgeApi } from '../../src/extension';
import { driver, hasDriver } from './driver';

export function defineManagedEnvTests(): void {
  describe('TinyForge managed Python environment', function () {
    this.timeout(120000);

    it('tries to create its environment and explains why pip failed, with a Show log button', async () => {
      assert.equal(vscode.workspace.getConfiguration('tinyforge').get('python.interpreter'), '');
      assert.equal(vscode.extensions.getExtension('ms-python.python'), undefined);
      const api = await vscode.extensions.getExtension<TinyForgeApi>('tinyforge.tinyforge')!.activate();
      await api.ready;
      assert.equal(api.server.running, false);
      const error = api.startError() ?? '';
      assert.match(error, /^pip could not install TinyForge's packages \(installing TinyForge and its packages\): /);
      assert.match(error, /ERROR: No matching distribution found for setuptools/);
      assert.equal(api.status.item.text, '$(warning) TinyForge');
      assert.equal(api.status.item.command, 'tinyforge.ide.showLog');
      if (hasDriver()) {
        const showLog = {
          selector: '.notification-list-item:has-text("pip could not install") .monaco-button',
          hasText: 'Show log',
        };
        let seen = await driver('text', { selector: showLog.selector, timeout: 5000 });
        if (!seen.ok) {
          await vscode.commands.executeCommand('notifications.showList'); // not toasted: the centre has it
          seen = await driver('text', { selector: showLog.selector, timeout: 10000 });
        }
        assert.ok(seen.ok, seen.error);
        await new Promise((r) => setTimeout(r, 700)); // the toast's fade-in
        await driver('screenshot', { name: 'managed-env-error' });
        const click = await driver('click', showLog);
        assert.ok(click.ok, click.error);
        // The Output panel opens on the TinyForge channel (pip's log: the venv in TinyForge's storage).
        const pipLog = /tinyforge\.tinyforge\/(python-env|server-src)|\[tinyforge\]/;
        let text = '';
        for (let i = 0; i < 50 && !pipLog.test(text); i++) {
          await new Promise((r) => setTimeout(r, 200));
          text = (await driver('text', { selector: '[id="workbench.panel.output"]', timeout: 2000 })).text ?? '';
        }
        assert.match(text, pipLog);
      }
    });
  });
}
