import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

// The extension's manifest (package.json at the repository root; this file runs from client/out/test/unit).
const manifest = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../../package.json'), 'utf8')) as {
  activationEvents: string[];
  contributes: { commands: { command: string; title: string; category: string }[] };
};

describe('command palette', () => {
  it('has TinyForge: Verify on emulated board, which activates the extension', () => {
    const verify = manifest.contributes.commands.find((c) => c.command === 'tinyforge.ide.verify');
    assert.ok(verify, 'tinyforge.ide.verify is contributed');
    assert.equal(`${verify.category}: ${verify.title}`, 'TinyForge: Verify on emulated board');
    assert.ok(manifest.activationEvents.includes('onCommand:tinyforge.ide.verify'));
  });

  it('registers every contributed command in the extension', () => {
    const source = fs.readFileSync(path.resolve(__dirname, '../../../src/commands.ts'), 'utf8');
    for (const { command } of manifest.contributes.commands) {
      assert.ok(source.includes(`register('${command}'`), `${command} is registered`);
    }
  });
});
