import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

// What a Marketplace user sees first: the manifest's icon, walkthrough, licence and changelog.
// This file runs from client/out/test/unit; the repository root is four levels up.
const root = path.resolve(__dirname, '../../../..');

interface Step {
  id: string;
  title: string;
  description: string;
  media: { markdown?: string };
  completionEvents?: string[];
}

const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  icon: string;
  license: string;
  repository: { type: string; url: string };
  scripts: Record<string, string>;
  contributes: {
    commands: { command: string }[];
    walkthroughs: { id: string; steps: Step[] }[];
  };
};

// VS Code's own commands a step may open (the interpreter setting has no TinyForge command).
const BUILT_IN = new Set(['workbench.action.openSettings']);

function commandLinks(markdown: string): string[] {
  return [...markdown.matchAll(/\(command:([\w.]+)/g)].map((m) => m[1]);
}

/** Width and height from a PNG's IHDR chunk (the first chunk, right after the signature). */
function pngSize(file: string): { width: number; height: number } {
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', `${file} is a PNG`);
  assert.equal(bytes.subarray(12, 16).toString('ascii'), 'IHDR');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

describe('marketplace manifest', () => {
  const contributed = new Set(manifest.contributes.commands.map((c) => c.command));

  it('builds its entry point before vsce packages it', () => {
    assert.match(manifest.scripts['vscode:prepublish'], /client\/esbuild\.mjs --production/);
  });

  it('names its licence, with the licence file beside it, and its repository', () => {
    assert.equal(manifest.license, 'Apache-2.0');
    assert.match(fs.readFileSync(path.join(root, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
    assert.equal(manifest.repository.type, 'git');
    assert.match(manifest.repository.url, /^https:\/\//);
    assert.ok(fs.existsSync(path.join(root, 'CHANGELOG.md')));
  });

  it('has a 128x128 PNG icon', () => {
    assert.deepEqual(pngSize(path.join(root, manifest.icon)), { width: 128, height: 128 });
  });

  it('walks a new user from the Python environment to the emulated board', () => {
    const [walkthrough] = manifest.contributes.walkthroughs;
    assert.deepEqual(
      walkthrough.steps.map((s) => s.id),
      ['python', 'board', 'newProject', 'build', 'verify'],
    );
    for (const step of walkthrough.steps) {
      assert.ok(step.media.markdown, `${step.id} has a markdown page`);
      const page = fs.readFileSync(path.join(root, step.media.markdown), 'utf8');
      const links = [...commandLinks(step.description), ...commandLinks(page)];
      assert.ok(commandLinks(step.description).length > 0, `${step.id} has a command button`);
      for (const command of links) {
        assert.ok(contributed.has(command) || BUILT_IN.has(command), `${step.id}: ${command} is a real command`);
      }
      for (const event of step.completionEvents ?? []) {
        const command = event.match(/^onCommand:(.+)$/)?.[1];
        assert.ok(!command || contributed.has(command), `${step.id}: ${event} names a real command`);
      }
    }
  });
});
