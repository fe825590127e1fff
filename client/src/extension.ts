// TinyForge for VS Code: a thin client. All TinyML logic lives in the Python server
// (`python -m tinyforge.lsp`); this starts it, shows what it says and offers its commands.
import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { ProjectStatus } from './format';
import { ProgressEvent } from './progress';
import { ReportPanel } from './report';
import { ServerManager } from './server';
import { StatusBar } from './status';

/** What `activate` returns: for other extensions and for this extension's integration tests. */
export interface TinyForgeApi {
  server: ServerManager;
  status: StatusBar;
  report: ReportPanel;
  output: vscode.OutputChannel;
  progressEvents: ProgressEvent[];
  ready: Promise<void>;
  projectStatus(): ProjectStatus | undefined;
  /** Why the server did not start, if it did not. */
  startError(): string | undefined;
}

let running: ServerManager | undefined;

export function activate(context: vscode.ExtensionContext): TinyForgeApi {
  const output = vscode.window.createOutputChannel('TinyForge');
  const server = new ServerManager(context, output);
  running = server;
  const status = new StatusBar(server);
  const report = new ReportPanel();
  context.subscriptions.push(output, server, status, report);
  registerCommands({ context, server, status, report, output });

  let startError: string | undefined;
  const ready = server.start().then(
    () => status.schedule(0),
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      startError = message;
      output.appendLine(`[tinyforge] the server did not start: ${message}`);
      status.apply({ ok: false, error: `server not running: ${message}` } as ProjectStatus);
      void vscode.window
        .showErrorMessage(`TinyForge: the language server did not start: ${message}`, 'Show log', 'Set interpreter…', 'Retry')
        .then((choice) => {
          if (choice === 'Show log') {
            output.show(true);
          } else if (choice === 'Set interpreter…') {
            void vscode.commands.executeCommand('workbench.action.openSettings', 'tinyforge.python.interpreter');
          } else if (choice === 'Retry') {
            void vscode.commands.executeCommand('tinyforge.ide.restartServer');
          }
        });
    },
  );
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('tinyforge.python.interpreter') || e.affectsConfiguration('tinyforge.claude.model')) {
        void vscode.commands.executeCommand('tinyforge.ide.restartServer');
      }
    }),
  );
  return {
    server,
    status,
    report,
    output,
    progressEvents: server.progressEvents,
    ready,
    projectStatus: () => status.last,
    startError: () => startError,
  };
}

export function deactivate(): Thenable<void> | undefined {
  return running?.stop(); // VS Code waits for the server's shutdown
}
