import * as assert from 'node:assert/strict';
import {
  expandInterpreterSetting,
  InterpreterDeps,
  InterpreterError,
  isSupportedPython,
  pipFailureSummary,
  resolveInterpreter,
} from '../../src/interpreter';

function deps(over: Partial<InterpreterDeps>, calls: string[] = []): InterpreterDeps {
  return {
    setting: () => '',
    pythonExtension: async () => undefined,
    hasServer: async () => true,
    managed: async () => {
      calls.push('managed');
      return '/storage/python-env/bin/python';
    },
    log: (m) => calls.push(`log:${m}`),
    ...over,
  };
}

describe('interpreter choice', () => {
  it('uses the setting first', async () => {
    const calls: string[] = [];
    const got = await resolveInterpreter(deps({ setting: () => '/venv/bin/python', pythonExtension: async () => '/other' }, calls));
    assert.deepEqual(got, { python: '/venv/bin/python', source: 'setting' });
    assert.deepEqual(calls, []);
  });

  it('refuses a configured interpreter without the server, with a way out', async () => {
    await assert.rejects(
      resolveInterpreter(deps({ setting: () => '/usr/bin/python3', hasServer: async () => false })),
      (e: Error) => e instanceof InterpreterError && /clear the setting/.test(e.message),
    );
  });

  it('then the Python extension’s interpreter', async () => {
    const got = await resolveInterpreter(deps({ pythonExtension: async () => '/home/u/.venv/bin/python' }));
    assert.deepEqual(got, { python: '/home/u/.venv/bin/python', source: 'python-extension' });
  });

  it('falls back to the managed environment when the selected one lacks tinyforge', async () => {
    const calls: string[] = [];
    const got = await resolveInterpreter(
      deps({ pythonExtension: async () => '/usr/bin/python3', hasServer: async (p) => p !== '/usr/bin/python3' }, calls),
    );
    assert.equal(got.source, 'managed');
    assert.ok(calls.some((c) => c.startsWith('log:') && c.includes('/usr/bin/python3')));
  });

  it('creates the managed environment when nothing else is there, and survives a broken Python extension', async () => {
    const calls: string[] = [];
    const got = await resolveInterpreter(
      deps({ pythonExtension: async () => { throw new Error('not activated'); } }, calls),
    );
    assert.deepEqual(got, { python: '/storage/python-env/bin/python', source: 'managed' });
    assert.ok(calls.includes('managed'));
  });

  it('passes on a managed-environment failure', async () => {
    await assert.rejects(
      resolveInterpreter(deps({ managed: async () => { throw new InterpreterError('pip could not install'); } })),
      /pip could not install/,
    );
  });

  it('expands ${workspaceFolder} and ~', () => {
    assert.equal(expandInterpreterSetting(' ${workspaceFolder}/.venv/bin/python ', '/ws', '/home/u'), '/ws/.venv/bin/python');
    assert.equal(expandInterpreterSetting('~/venv/bin/python', undefined, '/home/u'), '/home/u/venv/bin/python');
  });

  it('accepts Python 3.11 only', () => {
    assert.ok(isSupportedPython('Python 3.11.9'));
    assert.ok(!isSupportedPython('Python 3.12.1'));
    assert.ok(!isSupportedPython('Python 2.7.18'));
  });

  it('summarises pip failures by their error line', () => {
    const out = 'Collecting tensorflow==2.21.0\n  Could not fetch URL\nERROR: Could not find a version that satisfies the requirement tensorflow==2.21.0\n\n[notice] A new release of pip\n';
    assert.equal(pipFailureSummary(out), 'ERROR: Could not find a version that satisfies the requirement tensorflow==2.21.0');
    assert.equal(pipFailureSummary(''), 'pip failed');
    const nested = [
      '  Installing build dependencies: finished with status \'error\'',
      '  error: subprocess-exited-with-error',
      '      ERROR: Could not find a version that satisfies the requirement setuptools>=68 (from versions: none)',
      '      ERROR: No matching distribution found for setuptools>=68',
      '  note: This error originates from a subprocess, and is likely not a problem with pip.',
      'error: subprocess-exited-with-error',
    ].join('\n');
    assert.equal(pipFailureSummary(nested), 'ERROR: No matching distribution found for setuptools>=68');
  });
});
