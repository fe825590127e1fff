import * as assert from 'node:assert/strict';
import {
  ALLOW,
  allowWorkspaceInterpreter,
  ConfirmDeps,
  expandInterpreterSetting,
  forgetWorkspaceInterpreterAnswers,
  InterpreterDeps,
  InterpreterError,
  isSupportedPython,
  isWorkspaceValue,
  pipFailureSummary,
  resolveInterpreter,
  USE_OWN,
} from '../../src/interpreter';

function deps(over: Partial<InterpreterDeps>, calls: string[] = []): InterpreterDeps {
  return {
    setting: () => '',
    settingFromWorkspace: () => false,
    allowWorkspaceInterpreter: async (python) => {
      calls.push(`asked:${python}`);
      return true;
    },
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

describe('an interpreter set by the workspace', () => {
  const ws = '/ws/.venv/bin/python';

  it('is not asked about when it is the user\'s own setting', async () => {
    const calls: string[] = [];
    const got = await resolveInterpreter(deps({ setting: () => ws }, calls));
    assert.deepEqual(got, { python: ws, source: 'setting' });
    assert.ok(!calls.some((c) => c.startsWith('asked:')));
  });

  it('is used once the user allows it', async () => {
    const calls: string[] = [];
    const got = await resolveInterpreter(deps({ setting: () => ws, settingFromWorkspace: () => true }, calls));
    assert.deepEqual(got, { python: ws, source: 'setting' });
    assert.deepEqual(calls, [`asked:${ws}`]);
  });

  it('declined: never run, not even to probe it; the Python extension\'s or the managed one instead', async () => {
    const probed: string[] = [];
    const declined = {
      setting: () => ws,
      settingFromWorkspace: () => true,
      allowWorkspaceInterpreter: async () => false,
      hasServer: async (p: string) => {
        probed.push(p);
        return true;
      },
    };
    const calls: string[] = [];
    const managed = await resolveInterpreter(deps(declined, calls));
    assert.deepEqual(managed, { python: '/storage/python-env/bin/python', source: 'managed' });
    assert.ok(calls.some((c) => c.startsWith('log:') && c.includes(ws)));
    const selected = await resolveInterpreter(deps({ ...declined, pythonExtension: async () => '/usr/bin/python3.11' }));
    assert.deepEqual(selected, { python: '/usr/bin/python3.11', source: 'python-extension' });
    assert.ok(!probed.includes(ws));
  });

  it('comes from the workspace or a folder unless the user set the same value', () => {
    assert.ok(isWorkspaceValue({ workspaceValue: ws }));
    assert.ok(isWorkspaceValue({ globalValue: '/usr/bin/python3', workspaceFolderValue: ws }));
    assert.ok(!isWorkspaceValue({ globalValue: ws }));
    assert.ok(!isWorkspaceValue({ globalValue: ws, workspaceValue: ws }));
    assert.ok(!isWorkspaceValue({ workspaceValue: '' }));
    assert.ok(!isWorkspaceValue(undefined));
  });
});

describe('the answer about a workspace\'s interpreter', () => {
  function memory(answers: (string | undefined)[]): ConfirmDeps & { asked: string[]; stored: Map<string, boolean> } {
    const stored = new Map<string, boolean>();
    const asked: string[] = [];
    return {
      workspace: 'file:///ws',
      stored,
      asked,
      remembered: (key) => stored.get(key),
      remember: async (key, allowed) => {
        stored.set(key, allowed);
      },
      ask: async (message) => {
        asked.push(message);
        return answers.shift();
      },
    };
  }

  it('is asked once, with the value in the question, and remembered', async () => {
    const m = memory([ALLOW]);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', m), true);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', m), true);
    assert.equal(m.asked.length, 1);
    assert.match(m.asked[0], /This workspace sets tinyforge\.python\.interpreter to \/ws\/py\. Run the TinyForge server with it\?/);
  });

  it('remembers a refusal too', async () => {
    const m = memory([USE_OWN]);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', m), false);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', m), false);
    assert.equal(m.asked.length, 1);
  });

  it('is asked again for a changed value or another workspace', async () => {
    const m = memory([ALLOW, USE_OWN, ALLOW]);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', m), true);
    assert.equal(await allowWorkspaceInterpreter('/ws/other-py', m), false);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', { ...m, workspace: 'file:///elsewhere' }), true);
    assert.equal(m.asked.length, 3);
  });

  it('is forgotten on request (and nothing else in the state), then asked again', async () => {
    const m = memory([USE_OWN, ALLOW]);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', m), false);
    const state = new Map<string, unknown>([...m.stored, ['tinyforge.other', 1]]);
    const forgotten = await forgetWorkspaceInterpreterAnswers([...state.keys()], async (key) => {
      state.delete(key);
      m.stored.delete(key);
    });
    assert.equal(forgotten, 1);
    assert.deepEqual([...state.keys()], ['tinyforge.other']);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', m), true);
    assert.equal(m.asked.length, 2);
  });

  it('dismissed: not allowed this time, and asked again next time', async () => {
    const m = memory([undefined, ALLOW]);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', m), false);
    assert.equal(m.stored.size, 0);
    assert.equal(await allowWorkspaceInterpreter('/ws/py', m), true);
    assert.equal(m.asked.length, 2);
  });
});
