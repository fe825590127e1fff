// Server-initiated work-done progress ($/progress) as cancellable notifications.
//
// vscode-languageclient shows server progress in the status bar only (ProgressLocation.Window),
// where there is no Cancel button. This feature takes over `window/workDoneProgress/create`
// (registered after the built-in one, so its handler wins) and shows each job as a
// notification whose Cancel sends `window/workDoneProgress/cancel` to the server.
import * as vscode from 'vscode';
import {
  ClientCapabilities,
  FeatureState,
  LanguageClient,
  StaticFeature,
  WorkDoneProgress,
  WorkDoneProgressBegin,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateParams,
  WorkDoneProgressCreateRequest,
  WorkDoneProgressReport,
} from 'vscode-languageclient/node';

export interface ProgressEvent {
  token: string;
  kind: 'begin' | 'report' | 'end' | 'cancel-requested';
  title?: string;
  message?: string;
  percentage?: number;
  cancellable?: boolean;
  time: number;
}

type Listener = (e: ProgressEvent) => void;

export class NotificationProgressFeature implements StaticFeature {
  private readonly active = new Map<string, { done: () => void }>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly client: LanguageClient,
    private readonly listener: Listener,
  ) {}

  fillClientCapabilities(capabilities: ClientCapabilities): void {
    capabilities.window = capabilities.window ?? {};
    capabilities.window.workDoneProgress = true;
  }

  getState(): FeatureState {
    return { kind: 'static' };
  }

  initialize(): void {
    this.disposables.push(
      this.client.onRequest(WorkDoneProgressCreateRequest.type, (params: WorkDoneProgressCreateParams) =>
        this.create(String(params.token)),
      ),
    );
  }

  clear(): void {
    for (const part of this.active.values()) {
      part.done();
    }
    this.active.clear();
    this.disposables.splice(0).forEach((d) => d.dispose());
  }

  private create(token: string): void {
    let progress: vscode.Progress<{ message?: string; increment?: number }> | undefined;
    let reported = 0;
    let finish: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const pending: (WorkDoneProgressReport | WorkDoneProgressBegin)[] = [];
    const report = (value: WorkDoneProgressReport | WorkDoneProgressBegin) => {
      if (!progress) {
        pending.push(value);
        return;
      }
      const step: { message?: string; increment?: number } = {};
      if (value.message) {
        step.message = value.message;
      }
      if (typeof value.percentage === 'number') {
        const pct = Math.max(0, Math.min(100, value.percentage));
        step.increment = Math.max(0, pct - reported);
        reported += step.increment;
      }
      progress.report(step);
    };
    const sub = this.client.onProgress(WorkDoneProgress.type, token, (value) => {
      switch (value.kind) {
        case 'begin':
          this.listener({ token, kind: 'begin', title: value.title, message: value.message, percentage: value.percentage, cancellable: value.cancellable, time: Date.now() });
          void vscode.window.withProgress(
            { location: vscode.ProgressLocation.Notification, title: value.title, cancellable: value.cancellable ?? false },
            (p, cancel) => {
              progress = p;
              cancel.onCancellationRequested(() => {
                this.listener({ token, kind: 'cancel-requested', time: Date.now() });
                void this.client.sendNotification(WorkDoneProgressCancelNotification.type, { token });
              });
              report(value);
              pending.splice(0).forEach(report);
              return finished;
            },
          );
          break;
        case 'report':
          this.listener({ token, kind: 'report', message: value.message, percentage: value.percentage, time: Date.now() });
          report(value);
          break;
        case 'end':
          this.listener({ token, kind: 'end', message: value.message, time: Date.now() });
          done();
          break;
      }
    });
    const done = () => {
      sub.dispose();
      finish();
      this.active.delete(token);
    };
    this.active.set(token, { done });
  }
}
