// The environment TinyForge creates for itself on first run when no interpreter is configured:
// a venv in the extension's global storage with the server package shipped inside the .vsix.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { InterpreterError, isSupportedPython, pipFailureSummary } from './interpreter';

export interface RunResult {
  code: number;
  output: string;
}

/** Run a process, streaming its output to the channel (and `onLine`); never rejects on exit code. */
export function run(
  command: string,
  args: string[],
  out: vscode.OutputChannel | undefined,
  options: { cwd?: string; onLine?: (line: string) => void; token?: vscode.CancellationToken; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    let output = '';
    let child;
    try {
      child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    } catch (err) {
      resolve({ code: -1, output: String(err) });
      return;
    }
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    const cancel = options.token?.onCancellationRequested(() => child.kill('SIGTERM'));
    const onData = (data: Buffer) => {
      const text = data.toString();
      output += text;
      out?.append(text);
      for (const line of text.split(/\r?\n/)) {
        if (line.trim()) {
          options.onLine?.(line.trim());
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('error', (err) => {
      output += String(err);
    });
    child.on('close', (code) => {
      if (timer) {
        clearTimeout(timer);
      }
      cancel?.dispose();
      resolve({ code: code ?? -1, output });
    });
  });
}

export async function canRunServer(python: string, out?: vscode.OutputChannel): Promise<boolean> {
  const r = await run(python, ['-c', 'import tinyforge.lsp'], undefined, { timeoutMs: 60_000 });
  if (r.code !== 0) {
    out?.appendLine(`[tinyforge] ${python} cannot import tinyforge.lsp: ${r.output.trim().split('\n').pop() ?? ''}`);
  }
  return r.code === 0;
}

function venvPython(dir: string): string {
  return process.platform === 'win32' ? path.join(dir, 'Scripts', 'python.exe') : path.join(dir, 'bin', 'python');
}

async function findBasePython(out: vscode.OutputChannel): Promise<string> {
  const candidates = process.platform === 'win32' ? ['py', 'python'] : ['python3.11', 'python3', 'python'];
  for (const candidate of candidates) {
    const args = candidate === 'py' ? ['-3.11', '--version'] : ['--version'];
    const r = await run(candidate, args, undefined, { timeoutMs: 20_000 });
    if (r.code === 0 && isSupportedPython(r.output)) {
      return candidate;
    }
  }
  out.appendLine('[tinyforge] no Python 3.11 found (tried ' + candidates.join(', ') + ')');
  throw new InterpreterError(
    'TinyForge needs Python 3.11 to create its environment: install it, or set tinyforge.python.interpreter to a Python that has tinyforge installed.',
  );
}

/**
 * The managed environment's interpreter, creating it (with a progress notification) when it is
 * missing or was made for another version of the extension.
 */
export async function ensureManagedEnv(context: vscode.ExtensionContext, out: vscode.OutputChannel): Promise<string> {
  const version = String(context.extension.packageJSON.version ?? '0');
  const dir = path.join(context.globalStorageUri.fsPath, 'python-env');
  const stamp = path.join(dir, '.tinyforge-version');
  const python = venvPython(dir);
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === version && (await canRunServer(python))) {
    return python;
  }
  // pyproject.toml, README.md and server/tinyforge ship in the .vsix; pip builds in a copy so the
  // extension's own folder stays untouched.
  const source = path.join(context.globalStorageUri.fsPath, `server-src-${version}`);
  return vscode.window.withProgress(
    {
      location: vscode.ProgressLocation.Notification,
      title: 'TinyForge: setting up its Python environment (first run, downloads TensorFlow)',
      cancellable: true,
    },
    async (progress, token) => {
      out.appendLine(`[tinyforge] creating ${dir}`);
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      const base = await findBasePython(out);
      fs.rmSync(source, { recursive: true, force: true });
      // vsce stores README.md as readme.md; pyproject.toml names README.md.
      for (const [from, to] of [['pyproject.toml', 'pyproject.toml'], ['server', 'server'], ['readme.md', 'README.md'], ['README.md', 'README.md']]) {
        if (fs.existsSync(path.join(context.extensionPath, from))) {
          fs.cpSync(path.join(context.extensionPath, from), path.join(source, to), { recursive: true });
        }
      }
      const steps: [string, string, string[]][] = [
        ['creating the virtual environment', base, [...(base === 'py' ? ['-3.11'] : []), '-m', 'venv', dir]],
        ['updating pip', python, ['-m', 'pip', 'install', '--upgrade', 'pip']],
        ['installing TinyForge and its packages', python, ['-m', 'pip', 'install', '--progress-bar', 'off', source]],
      ];
      for (const [what, command, args] of steps) {
        progress.report({ message: what });
        out.appendLine(`[tinyforge] ${command} ${args.join(' ')}`);
        const r = await run(command, args, out, {
          onLine: (line) => progress.report({ message: `${what}: ${line.slice(0, 80)}` }),
          token,
        });
        if (token.isCancellationRequested) {
          throw new InterpreterError('Setting up the TinyForge environment was cancelled.');
        }
        if (r.code !== 0) {
          throw new InterpreterError(`pip could not install TinyForge's packages (${what}): ${pipFailureSummary(r.output)}`);
        }
      }
      fs.writeFileSync(stamp, version);
      return python;
    },
  );
}

/** The interpreter selected in the Python extension (its public API), if it is installed. */
export async function pythonExtensionInterpreter(resource: vscode.Uri | undefined): Promise<string | undefined> {
  const ext = vscode.extensions.getExtension('ms-python.python');
  if (!ext) {
    return undefined;
  }
  interface PythonApi {
    environments?: {
      getActiveEnvironmentPath(resource?: vscode.Uri): { path: string };
      resolveEnvironment(env: { path: string } | string): Promise<{ executable: { uri?: vscode.Uri } } | undefined>;
    };
    settings?: { getExecutionDetails(resource?: vscode.Uri): { execCommand?: string[] } };
  }
  const api = (ext.isActive ? ext.exports : await ext.activate()) as PythonApi;
  if (api.environments) {
    const active = api.environments.getActiveEnvironmentPath(resource);
    const resolved = await api.environments.resolveEnvironment(active);
    return resolved?.executable.uri?.fsPath ?? active.path;
  }
  return api.settings?.getExecutionDetails(resource).execCommand?.[0];
}
