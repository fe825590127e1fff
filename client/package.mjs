// `npm run package`: tinyforge-<version>.vsix at the top level, offline.
// vsce walks every file under its working folder (the repo holds .venv and node_modules), so the
// files the .vsix needs are staged in build/vsix first, filtered by the top-level .vscodeignore.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const repo = new URL('..', import.meta.url).pathname;
const stage = join(repo, 'build', 'vsix');
const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
const out = join(repo, `${manifest.name}-${manifest.version}.vsix`);

execFileSync(process.execPath, [join(repo, 'client', 'esbuild.mjs'), '--production'], { stdio: 'inherit' });

rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
const copy = (rel, filter) => {
  mkdirSync(dirname(join(stage, rel)), { recursive: true });
  cpSync(join(repo, rel), join(stage, rel), { recursive: true, filter });
};
for (const rel of [
  'README.md',
  'CHANGELOG.md',
  'LICENSE',
  'pyproject.toml',
  '.vscodeignore',
  'client/out/extension.js',
  'client/media/icon.png',
  'client/media/walkthrough',
]) {
  copy(rel);
}
copy('server/tinyforge', (src) => !/__pycache__|\.pyc$/.test(src));
// The staged manifest: no build scripts (already built) and no dev tools.
const { scripts: _scripts, devDependencies: _dev, allowScripts: _allow, ...shipped } = manifest;
writeFileSync(join(stage, 'package.json'), `${JSON.stringify(shipped, null, 2)}\n`);

rmSync(out, { force: true });
execFileSync(
  join(repo, 'node_modules', '.bin', 'vsce'),
  ['package', '--no-dependencies', '--out', out],
  { cwd: stage, stdio: 'inherit' },
);
