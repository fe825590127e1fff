// The inspect report in a webview panel (one panel, reused).
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import { InspectReport, renderReport } from './reportHtml';

export class ReportPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  lastReport: InspectReport | undefined;
  lastHtml = '';
  /** The file or folder the report describes, to refresh it after a build. */
  subject: string | undefined;

  get visible(): boolean {
    return !!this.panel?.visible;
  }

  show(report: InspectReport, subject: string | undefined): void {
    this.lastReport = report;
    this.subject = subject;
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel(
        'tinyforge.report',
        'TinyForge memory report',
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: false, retainContextWhenHidden: false, localResourceRoots: [] },
      );
      this.panel.onDidDispose(() => (this.panel = undefined));
    }
    this.panel.title = `TinyForge: ${report.title ?? 'memory report'}`;
    const nonce = crypto.randomBytes(16).toString('base64');
    this.lastHtml = renderReport(report, { cspSource: this.panel.webview.cspSource, nonce });
    this.panel.webview.html = this.lastHtml;
    this.panel.reveal(undefined, true);
  }

  dispose(): void {
    this.panel?.dispose();
  }
}
