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
  /** Whether that value is the workspace's own (see `isWorkspaceValue`), not the user's. */
  settingFromWorkspace(): boolean;
  /** Whether the user lets the server run with `python`, a workspace's value (`allowWorkspaceInterpreter`). */
  allowWorkspaceInterpreter(python: string): Promise<boolean>;
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
  let configured = deps.setting();
  // A workspace's settings come with the folder, from whoever made it: its interpreter is a
  // program TinyForge would run, so the user says yes first (once per workspace and value).
  if (configured && deps.settingFromWorkspace() && !(await deps.allowWorkspaceInterpreter(configured))) {
    deps.log(`Not running the workspace's tinyforge.python.interpreter (${configured}): using TinyForge's environment.`);
    configured = '';
  }
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

/** Where VS Code found the setting (`WorkspaceConfiguration.inspect`), the fields read here. */
export interface SettingScopes {
  globalValue?: string;
  workspaceValue?: string;
  workspaceFolderValue?: string;
}

/**
 * Whether the effective value comes from the workspace or a workspace folder rather than the
 * user's own settings. The same value as the user's is the user's: nothing new would run.
 */
export function isWorkspaceValue(scopes: SettingScopes | undefined): boolean {
  const fromWorkspace = scopes?.workspaceFolderValue ?? scopes?.workspaceValue;
  return fromWorkspace !== undefined && fromWorkspace.trim() !== '' && fromWorkspace !== scopes?.globalValue;
}

export const ALLOW = 'Allow';
export const USE_OWN = "Use TinyForge's environment";

export interface ConfirmDeps {
  /** The workspace the value comes from: its .code-workspace file or its folder, as a URI. */
  workspace: string;
  /** An answer given before (the extension's globalState: a workspace cannot write it). */
  remembered(key: string): boolean | undefined;
  remember(key: string, allowed: boolean): PromiseLike<void>;
  /** A modal warning offering ALLOW and USE_OWN; undefined when dismissed. */
  ask(message: string, detail: string): PromiseLike<string | undefined>;
}

/** Where the answers are kept in the extension's globalState: one key per workspace and value. */
export const ANSWER_PREFIX = 'tinyforge.workspaceInterpreter:';

/** The user's answer for this workspace and value: asked once, remembered; a new value asks again. */
export async function allowWorkspaceInterpreter(python: string, deps: ConfirmDeps): Promise<boolean> {
  const key = `${ANSWER_PREFIX}${deps.workspace}:${python}`;
  const known = deps.remembered(key);
  if (known !== undefined) {
    return known;
  }
  const choice = await deps.ask(
    `This workspace sets tinyforge.python.interpreter to ${python}. Run the TinyForge server with it?`,
    'The server and the processes it starts would run as this Python. Allow it only for a workspace you trust; ' +
      "otherwise TinyForge uses the Python extension's interpreter or its own environment.",
  );
  if (choice !== ALLOW && choice !== USE_OWN) {
    return false; // dismissed: not an answer, asked again at the next start
  }
  await deps.remember(key, choice === ALLOW);
  return choice === ALLOW;
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

/**
 * Forget every answer about workspace interpreters (the "Forget interpreter answers" command): the
 * next start of a workspace that sets one asks again. Returns how many were forgotten.
 */
export async function forgetWorkspaceInterpreterAnswers(
  keys: readonly string[],
  forget: (key: string) => PromiseLike<void>,
): Promise<number> {
  const answers = keys.filter((key) => key.startsWith(ANSWER_PREFIX));
  for (const key of answers) {
    await forget(key);
  }
  return answers.length;
}
