// The status-bar item: the active project's board and "RAM 41/256 KB · Flash 84/960 KB".
import * as vscode from 'vscode';
import { isOverBudget, ProjectStatus, statusText, statusTooltip } from './format';
import { ServerManager } from './server';

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  last: ProjectStatus | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly changed = new vscode.EventEmitter<ProjectStatus | undefined>();
  /** Fires after each refresh (tests wait on it). */
  readonly onDidChange = this.changed.event;

  constructor(private readonly server: ServerManager) {
    this.item = vscode.window.createStatusBarItem('tinyforge.status', vscode.StatusBarAlignment.Left, 0);
    this.item.name = 'TinyForge';
    this.item.text = '$(sync~spin) TinyForge';
    this.item.command = 'tinyforge.ide.inspect';
    this.item.show();
    const relevant = (uri: vscode.Uri) => uri.scheme === 'file';
    this.disposables.push(
      this.item,
      this.changed,
      vscode.window.onDidChangeActiveTextEditor(() => this.schedule(50)),
      vscode.languages.onDidChangeDiagnostics((e) => {
        const active = vscode.window.activeTextEditor?.document.uri.toString();
        if (!active || e.uris.some((u) => u.toString() === active)) {
          this.schedule();
        }
      }),
      vscode.workspace.onDidSaveTextDocument((d) => relevant(d.uri) && this.schedule()),
      vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration('tinyforge') && this.schedule()),
      server.onReady(() => this.schedule(0)),
    );
    const watcher = vscode.workspace.createFileSystemWatcher('**/{report.json,tinyforge.toml,platformio.ini}');
    this.disposables.push(
      watcher,
      watcher.onDidChange(() => this.schedule()),
      watcher.onDidCreate(() => this.schedule()),
      watcher.onDidDelete(() => this.schedule()),
    );
  }

  private lastTarget: vscode.Uri | undefined;

  /**
   * The file whose project the item describes: the active editor's; while a non-file editor is
   * active (the report, settings), the last file's; else the first workspace folder.
   */
  target(): vscode.Uri | undefined {
    const doc = vscode.window.activeTextEditor?.document;
    if (doc && doc.uri.scheme === 'file') {
      this.lastTarget = doc.uri;
    }
    return this.lastTarget ?? vscode.workspace.workspaceFolders?.[0]?.uri;
  }

  schedule(delayMs = 250): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => void this.refresh(), delayMs);
  }

  async refresh(): Promise<ProjectStatus | undefined> {
    if (!this.server.running) {
      return this.last;
    }
    const target = this.target();
    try {
      const s = await this.server.execute<ProjectStatus>('tinyforge.projectStatus', target?.toString() ?? '');
      this.apply(s);
    } catch (err) {
      this.apply({ ok: false, error: String(err) } as ProjectStatus);
    }
    return this.last;
  }

  apply(s: ProjectStatus): void {
    this.last = s;
    this.item.text = statusText(s);
    this.item.tooltip = new vscode.MarkdownString(statusTooltip(s));
    const over = s.ok && isOverBudget(s);
    this.item.backgroundColor = over ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    this.item.color = over ? new vscode.ThemeColor('statusBarItem.errorForeground') : undefined;
    this.item.command = !s.ok ? 'tinyforge.ide.showLog' : !s.board ? 'tinyforge.ide.selectBoard' : 'tinyforge.ide.inspect';
    this.changed.fire(s);
  }

  dispose(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.disposables.forEach((d) => d.dispose());
  }
}
