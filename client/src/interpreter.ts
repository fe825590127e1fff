// Which Python runs the server: the setting, else the Python extension's selected interpreter,
// else an environment this extension manages. Pure decision logic with its effects injected,
// so the order is unit-tested without VS Code.

export type InterpreterSource = 'setting' | 'python-extension' | 'managed';

export interface Interpreter {
  python: string;
  source: InterpreterSource;
}

export interface InterpreterDeps {
  /** `tinyforge.python.interpreter`, already trimmed and with variables expanded; '' when unset. */
  setting(): string;
  /** The interpreter selected in the Python extension, when that extension is installed. */
  pythonExtension(): Promise<string | undefined>;
  /** Whether `python -c "import tinyforge.lsp"` works. */
  hasServer(python: string): Promise<boolean>;
  /** The managed environment's interpreter, created on first use (may throw). */
  managed(): Promise<string>;
  log(message: string): void;
}

export class InterpreterError extends Error {}

export async function resolveInterpreter(deps: InterpreterDeps): Promise<Interpreter> {
  const configured = deps.setting();
  if (configured) {
    if (await deps.hasServer(configured)) {
      return { python: configured, source: 'setting' };
    }
    throw new InterpreterError(
      `The interpreter in tinyforge.python.interpreter (${configured}) cannot run the TinyForge server: ` +
        `install it there (pip install tinyforge) or clear the setting to let TinyForge manage its own environment.`,
    );
  }
  let selected: string | undefined;
  try {
    selected = await deps.pythonExtension();
  } catch (err) {
    deps.log(`Python extension: could not read the selected interpreter (${String(err)})`);
  }
  if (selected) {
    if (await deps.hasServer(selected)) {
      return { python: selected, source: 'python-extension' };
    }
    deps.log(`The Python extension's interpreter ${selected} has no tinyforge package: using TinyForge's own environment.`);
  }
  return { python: await deps.managed(), source: 'managed' };
}

/** `${workspaceFolder}` and `~` in the setting, as VS Code users write them. */
export function expandInterpreterSetting(value: string, workspaceFolder: string | undefined, home: string): string {
  let out = value.trim();
  if (workspaceFolder) {
    out = out.replace(/\$\{workspaceFolder\}/g, workspaceFolder);
  }
  if (out === '~' || out.startsWith('~/')) {
    out = home + out.slice(1);
  }
  return out;
}

/** Python 3.11 is what the server's packages (TensorFlow pins) support. */
export function isSupportedPython(versionOutput: string): boolean {
  const m = /(\d+)\.(\d+)/.exec(versionOutput);
  return !!m && Number(m[1]) === 3 && Number(m[2]) === 11;
}

/** The last meaningful line of pip's output: what to put in an error message. */
export function pipFailureSummary(output: string): string {
  const lines = output
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  // pip's own reasons are "ERROR: …"; "error: subprocess-exited-with-error" only says where.
  const reversed = [...lines].reverse();
  const error = reversed.find((l) => /^ERROR:/.test(l)) ?? reversed.find((l) => /^error\b/i.test(l));
  return (error ?? lines[lines.length - 1] ?? 'pip failed').slice(0, 300);
}
