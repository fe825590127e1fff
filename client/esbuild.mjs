// Bundles the extension (client/out/extension.js) and, with --tests, the test suites.
// usage: node client/esbuild.mjs [--production] [--tests] [--watch]
import * as esbuild from 'esbuild';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate, OUT } from './gen-types.mjs';

const args = new Set(process.argv.slice(2));
const production = args.has('--production');
const here = new URL('.', import.meta.url).pathname;

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['vscode'],
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
};

const builds = [
  {
    ...common,
    entryPoints: [join(here, 'src/extension.ts')],
    outfile: join(here, 'out/extension.js'),
  },
];

if (args.has('--tests')) {
  const unit = readdirSync(join(here, 'test/unit')).filter((f) => f.endsWith('.test.ts'));
  builds.push({
    ...common,
    sourcemap: true,
    minify: false,
    entryPoints: unit.map((f) => join(here, 'test/unit', f)),
    outdir: join(here, 'out/test/unit'),
    external: ['vscode', 'mocha'],
  });
  // Runs inside VS Code's extension host: mocha stays external (resolved from node_modules).
  builds.push({
    ...common,
    sourcemap: true,
    minify: false,
    entryPoints: [join(here, 'test/integration/index.ts')],
    outfile: join(here, 'out/test/integration/index.js'),
    external: ['vscode', 'mocha'],
  });
}

// The server's report types first (client/gen-types.mjs): the bundle is built on the schema's.
writeFileSync(OUT, await generate());

if (args.has('--watch')) {
  for (const options of builds) {
    const ctx = await esbuild.context(options);
    await ctx.watch();
  }
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
