// The command palette ("TinyForge: …") and the explorer menu. Every command takes optional
// arguments so it can run without prompts (keybindings, tasks, tests); without them it asks.
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { BoardInfo, boardPickItem, jobSummary, sortBoards } from './format';
import { findProjectRoot, MODEL_FILE, PIO_FILE, SPEC_FILE } from './project';
import { ReportPanel } from './report';
import { forgetWorkspaceInterpreterAnswers } from './interpreter';
import { InspectReport } from './reportHtml';
import { API_KEY_SECRET, ServerManager } from './server';
import { StatusBar } from './status';

type Result = Record<string, unknown> & { ok?: boolean; error?: string; cancelled?: boolean };

export interface CommandDeps {
  context: vscode.ExtensionContext;
  server: ServerManager;
  status: StatusBar;
  report: ReportPanel;
  output: vscode.OutputChannel;
}

/** A file or folder argument (explorer Uri, URI string or path) as a filesystem path. */
export function argPath(arg: unknown): string | undefined {
  if (arg instanceof vscode.Uri) {
    return arg.scheme === 'file' ? arg.fsPath : undefined;
  }
  if (typeof arg === 'string' && arg) {
    return arg.startsWith('file:') ? vscode.Uri.parse(arg).fsPath : arg;
  }
  return undefined;
}

function activeFile(): string | undefined {
  const doc = vscode.window.activeTextEditor?.document;
  return doc && doc.uri.scheme === 'file' ? doc.uri.fsPath : undefined;
}

export function registerCommands(deps: CommandDeps): void {
  const { context, server, status, report, output } = deps;

  const showError = (message: string) => {
    void vscode.window.showErrorMessage(message, 'Show log').then((choice) => {
      if (choice === 'Show log') {
        output.show(true);
      }
    });
  };

  /** The project a command acts on: from the argument, the active editor, or the workspace. */
  async function projectFor(arg: unknown, markers: string[]): Promise<string | undefined> {
    const start = argPath(arg) ?? activeFile();
    if (start) {
      const root = findProjectRoot(start, markers);
      if (root) {
        return root;
      }
    }
    const found = new Set<string>();
    for (const marker of markers) {
      for (const uri of await vscode.workspace.findFiles(`**/${marker}`, '**/{node_modules,.venv,.git}/**', 50)) {
        found.add(path.dirname(uri.fsPath));
      }
    }
    const roots = [...found].sort();
    if (roots.length <= 1) {
      if (!roots.length) {
        void vscode.window
          .showWarningMessage(`No TinyForge project (${markers.join(' or ')}) here.`, 'New project…')
          .then((c) => c && vscode.commands.executeCommand('tinyforge.ide.newProject'));
      }
      return roots[0];
    }
    const pick = await vscode.window.showQuickPick(
      roots.map((r) => ({ label: path.basename(r), description: vscode.workspace.asRelativePath(r), root: r })),
      { title: 'TinyForge: which project?' },
    );
    return pick?.root;
  }

  /** A long server job: its $/progress shows as a cancellable notification (progress.ts). */
  async function job(kind: string, command: string, args: unknown[], openReport = false): Promise<Result> {
    output.appendLine(`[tinyforge] ${kind}: ${command} ${JSON.stringify(args)}`);
    let result: Result;
    try {
      result = await server.execute<Result>(command, ...args);
    } catch (err) {
      result = { ok: false, error: String(err instanceof Error ? err.message : err) };
    }
    status.schedule(0);
    const summary = jobSummary(kind, result);
    output.appendLine(`[tinyforge] ${summary}`);
    const firmware = result.pio as Result | undefined;
    if (result.cancelled) {
      void vscode.window.showInformationMessage(summary);
    } else if (!result.ok || (firmware && !firmware.ok)) {
      showError(summary);
    } else {
      const actions = openReport ? ['Open report'] : [];
      void vscode.window.showInformationMessage(summary, ...actions).then((choice) => {
        if (choice === 'Open report') {
          void vscode.commands.executeCommand('tinyforge.ide.inspect', args[0]);
        }
      });
      if (report.visible && report.subject) {
        void showReport(report.subject, false);
      }
    }
    return result;
  }

  async function showReport(subject: string, withProgress: boolean): Promise<InspectReport> {
    const ask = () => server.execute<InspectReport>('tinyforge.inspect', subject);
    const result = withProgress
      ? await vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: `TinyForge: inspecting ${path.basename(subject)}…` },
          ask,
        )
      : await ask();
    if (!result.ok) {
      showError(`TinyForge: cannot inspect ${path.basename(subject)}: ${result.error ?? 'unknown error'}`);
      return result;
    }
    report.show(result, subject);
    return result;
  }

  const register = (id: string, fn: (...args: unknown[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  register('tinyforge.ide.showLog', () => output.show(true));

  register('tinyforge.ide.restartServer', async () => {
    try {
      await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: 'TinyForge: restarting the server' },
        () => server.restart(),
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      output.appendLine(`[tinyforge] the server did not start: ${message}`);
      showError(`TinyForge: the language server did not start: ${message}`);
    }
    status.schedule(0);
    return server.running;
  });

  register('tinyforge.ide.forgetInterpreterAnswers', async () => {
    const state = context.globalState;
    const forgotten = await forgetWorkspaceInterpreterAnswers(state.keys(), (key) => state.update(key, undefined));
    void vscode.window.showInformationMessage(
      forgotten
        ? `TinyForge forgot ${forgotten} answer${forgotten === 1 ? '' : 's'} about workspace interpreters: a workspace that sets one is asked about it again at the next start.`
        : 'TinyForge had no answers about workspace interpreters to forget.',
    );
    return forgotten;
  });

  register('tinyforge.ide.setApiKey', async (key?: unknown) => {
    let value = typeof key === 'string' ? key : undefined;
    if (value === undefined) {
      value = await vscode.window.showInputBox({
        title: 'TinyForge: Anthropic API key',
        prompt: 'Stored in VS Code’s secret storage and given to the TinyForge server only. Empty removes it.',
        password: true,
        ignoreFocusOut: true,
        placeHolder: 'sk-ant-…',
      });
      if (value === undefined) {
        return false;
      }
    }
    value = value.trim();
    if (value) {
      await context.secrets.store(API_KEY_SECRET, value);
    } else {
      await context.secrets.delete(API_KEY_SECRET);
    }
    await server.restart(); // the key reaches the server as ANTHROPIC_API_KEY in its environment
    void vscode.window.showInformationMessage(value ? 'TinyForge: API key saved.' : 'TinyForge: API key removed.');
    return true;
  });

  async function pickBoard(title: string, preselect?: string): Promise<string | undefined> {
    const boards = await server.execute<BoardInfo[]>('tinyforge.boards');
    const items = sortBoards(
      boards.map((b) => ({ ...b, selected: preselect ? b.id === preselect : b.selected })),
    ).map((b) => ({ ...boardPickItem(b), id: b.id }));
    const pick = await vscode.window.showQuickPick(items, {
      title,
      matchOnDescription: true,
      matchOnDetail: true,
      placeHolder: 'Board name, id or MCU',
    });
    return pick?.id;
  }

  register('tinyforge.ide.selectBoard', async (boardArg?: unknown) => {
    const board = typeof boardArg === 'string' && boardArg ? boardArg : await pickBoard('TinyForge: select board');
    if (!board) {
      return undefined;
    }
    const result = await server.execute<Result>('tinyforge.selectBoard', board);
    if (!result.ok) {
      showError(`TinyForge: ${result.error ?? 'unknown board'}`);
      return result;
    }
    const target = vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    await vscode.workspace.getConfiguration('tinyforge').update('board', result.board, target);
    const s = await status.refresh();
    if (s?.board && s.board !== result.board && s.source !== 'setting') {
      void vscode.window.showInformationMessage(
        `TinyForge: board set to ${String(result.board)} for files outside a project; this project's ${s.source} targets ${s.board}.`,
      );
    }
    return result;
  });

  register('tinyforge.ide.newProject', async (requestArg?: unknown, folderArg?: unknown, boardArg?: unknown) => {
    const request =
      typeof requestArg === 'string' && requestArg
        ? requestArg
        : await vscode.window.showInputBox({
            title: 'TinyForge: new project (1/3): describe it',
            prompt: 'One sentence: the task, the board, the data',
            placeHolder: 'Recognize handwritten digits on an Arduino Nano 33 BLE Sense',
            ignoreFocusOut: true,
            validateInput: (v) => (v.trim() ? undefined : 'Describe the project in one sentence.'),
          });
    if (!request) {
      return undefined;
    }
    let board = typeof boardArg === 'string' && boardArg ? boardArg : undefined;
    const planned = await server.execute<Result & { spec?: { name: string; board: string } }>(
      'tinyforge.plan',
      request,
      board ?? '',
    );
    if (!planned.ok || !planned.spec) {
      showError(`TinyForge: ${planned.error ?? 'cannot plan this request'}`);
      return planned;
    }
    const interactive = typeof requestArg !== 'string';
    if (interactive && !board) {
      board = await pickBoard(`TinyForge: new project (2/3): board (planned: ${planned.spec.board})`, planned.spec.board);
      if (!board) {
        return undefined;
      }
    }
    let folder = argPath(folderArg);
    if (!folder) {
      const base = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? os.homedir();
      folder = await vscode.window.showInputBox({
        title: 'TinyForge: new project (3/3): folder',
        value: path.join(base, planned.spec.name),
        ignoreFocusOut: true,
        validateInput: (v) => (path.isAbsolute(v.trim()) ? undefined : 'An absolute folder path'),
      });
      if (!folder) {
        return undefined;
      }
    }
    const result = await server.execute<Result & { written?: string[] }>('tinyforge.newProject', request, folder.trim(), board ?? '');
    if (!result.ok) {
      showError(`TinyForge: ${result.error ?? 'cannot create the project'}`);
      return result;
    }
    const root = folder.trim();
    output.appendLine(`[tinyforge] new project in ${root}: ${(result.written ?? []).join(', ')}`);
    const spec = vscode.Uri.file(path.join(root, SPEC_FILE));
    const script = vscode.Uri.file(path.join(root, 'train.py'));
    await vscode.window.showTextDocument(script, { preview: false });
    if (!vscode.workspace.getWorkspaceFolder(script)) {
      void vscode.window
        .showInformationMessage(`TinyForge: project created in ${root}.`, 'Open folder')
        .then((c) => c && vscode.commands.executeCommand('vscode.openFolder', vscode.Uri.file(root)));
    } else {
      void vscode.window.showInformationMessage(`TinyForge: project created in ${vscode.workspace.asRelativePath(root)}: edit ${path.basename(spec.fsPath)} or train.py, then Train.`);
    }
    status.schedule(0);
    return { ...result, folder: root };
  });

  register('tinyforge.ide.train', async (arg?: unknown) => {
    const root = await projectFor(arg, [SPEC_FILE]);
    return root ? job('training', 'tinyforge.train', [root]) : undefined;
  });

  register('tinyforge.ide.convert', async (arg?: unknown) => {
    const file = argPath(arg);
    if (file && /\.onnx$/i.test(file) && server.serverCommands().includes('tinyforge.convertFile')) {
      // An .onnx file becomes a verified int8 TFLite Micro project beside it (<name>_tinyml/).
      return job('ONNX conversion', 'tinyforge.convertFile', [file]);
    }
    const root = await projectFor(arg, [SPEC_FILE]);
    if (!root) {
      if (file && MODEL_FILE.test(file)) {
        showError(
          `TinyForge converts the model of a project (tinyforge.toml), calibrated on its data: ${path.basename(file)} is not inside one.`,
        );
      }
      return undefined;
    }
    return job('conversion', 'tinyforge.convert', [root], true);
  });

  // Train → convert → verify → write the PlatformIO project → report, then (when the model
  // fits) `pio run`; compiler errors and memory overflows come back as diagnostics.
  register('tinyforge.ide.build', async (arg?: unknown) => {
    const root = await projectFor(arg, [SPEC_FILE]);
    return root ? job('build', 'tinyforge.build', [root, { firmware: true }], true) : undefined;
  });

  // The project's firmware compiled with real TFLM for the board's core and run in QEMU: the
  // report's `device` section, and measured figures over the budget as diagnostics. `options`
  // ({kernels, core, tflm, samples}) lets tasks and tests choose; the palette uses the defaults.
  register('tinyforge.ide.verify', async (arg?: unknown, options?: unknown) => {
    const root = await projectFor(arg, [SPEC_FILE]);
    if (!root) {
      return undefined;
    }
    const args = options && typeof options === 'object' ? [root, options] : [root];
    return job('verification on an emulated board', 'tinyforge.verify', args, true);
  });

  register('tinyforge.ide.upload', async (arg?: unknown) => {
    const root = await projectFor(arg, [PIO_FILE]);
    return root ? job('upload', 'tinyforge.pio', [root, 'upload']) : undefined;
  });

  register('tinyforge.ide.serialMonitor', async (arg?: unknown) => {
    const root = await projectFor(arg, [PIO_FILE]);
    if (!root) {
      return undefined;
    }
    // The server finds the board's port and the command; the terminal makes it interactive.
    let command: string[];
    if (server.serverCommands().includes('tinyforge.monitor')) {
      const found = await server.execute<Result & { command?: string[] }>('tinyforge.monitor', root);
      if (!found.ok || !found.command?.length) {
        showError(`TinyForge: cannot open the serial monitor: ${found.error ?? 'no command'}`);
        return found;
      }
      command = found.command;
    } else {
      await server.ready();
      command = [server.interpreter?.python ?? 'python3', '-m', 'platformio', 'device', 'monitor', '-d', root];
    }
    const terminal = vscode.window.createTerminal({
      name: `TinyForge monitor: ${path.basename(root)}`,
      shellPath: command[0],
      shellArgs: command.slice(1),
      cwd: root,
    });
    terminal.show();
    return { ok: true, terminal: terminal.name, command };
  });

  register('tinyforge.ide.inspect', async (arg?: unknown) => {
    const file = argPath(arg);
    let subject: string | undefined;
    if (file && MODEL_FILE.test(file)) {
      subject = file;
    } else {
      const start = file ?? activeFile();
      subject = start && findProjectRoot(start) ? start : await projectFor(arg, [SPEC_FILE, PIO_FILE]);
    }
    if (!subject) {
      return undefined;
    }
    return showReport(subject, !!(file && MODEL_FILE.test(file)));
  });
}
