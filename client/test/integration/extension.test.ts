// Integration tests inside a real VS Code: the installed extension, the real language client,
// the real Python server (`python -m tinyforge.lsp`) and real training/conversion.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { TinyForgeApi } from '../../src/extension';
import { driver, hasDriver } from './driver';

const EXTENSION_ID = 'tinyforge.tinyforge';
const PROBLEMS = '[id="workbench.panel.markers"]';
const STATUS_BAR = '[id="workbench.parts.statusbar"]';

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) {
        return value as T;
      }
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tinyforgeDiagnostics(uri: vscode.Uri): vscode.Diagnostic[] {
  return vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'tinyforge');
}

function setEpochs(spec: string, epochs: number): void {
  const text = fs.readFileSync(spec, 'utf8').replace(/^epochs = \d+$/m, `epochs = ${epochs}`);
  fs.writeFileSync(spec, text);
}

export function defineTests(): void {
  describe('TinyForge in VS Code', function () {
    this.timeout(90000);
    let api: TinyForgeApi;
    let ws: string;
    let modelUri: vscode.Uri;
    let digits: string;

    before(async () => {
      ws = vscode.workspace.workspaceFolders![0].uri.fsPath;
      modelUri = vscode.Uri.file(path.join(ws, 'over_budget', 'model.py'));
      digits = path.join(ws, 'digits');
      const ext = vscode.extensions.getExtension<TinyForgeApi>(EXTENSION_ID);
      assert.ok(ext, `${EXTENSION_ID} is not installed`);
      api = await ext.activate();
      await api.ready;
    });

    it('activates and starts the Python language server', async () => {
      const ext = vscode.extensions.getExtension(EXTENSION_ID)!;
      assert.ok(ext.isActive);
      assert.ok(api.server.running, 'the language client is not running');
      assert.equal(api.server.interpreter?.source, 'setting');
      assert.match(api.server.interpreter!.python, /python/);
      for (const command of ['tinyforge.train', 'tinyforge.projectStatus', 'tinyforge.inspect']) {
        assert.ok(api.server.serverCommands().includes(command), `server lacks ${command}`);
      }
      const ours = await vscode.commands.getCommands(true);
      for (const command of ['tinyforge.ide.newProject', 'tinyforge.ide.selectBoard', 'tinyforge.ide.train', 'tinyforge.ide.convert',
        'tinyforge.ide.inspect', 'tinyforge.ide.build', 'tinyforge.ide.verify', 'tinyforge.ide.upload', 'tinyforge.ide.serialMonitor',
        'tinyforge.ide.setApiKey', 'tinyforge.ide.restartServer']) {
        assert.ok(ours.includes(command), `command ${command} is not registered`);
      }
      assert.equal(api.output.name, 'TinyForge');
    });

    it('shows the over-budget error of a model script in the Problems list', async () => {
      const doc = await vscode.workspace.openTextDocument(modelUri);
      const editor = await vscode.window.showTextDocument(doc, { preview: false });
      const diags = await waitFor('the over-budget diagnostic', () => {
        const found = tinyforgeDiagnostics(modelUri).filter((d) => d.severity === vscode.DiagnosticSeverity.Error);
        return found.length ? found : undefined;
      });
      assert.equal(diags[0].range.start.line, 10); // line 11: the first Conv2D, the largest activation
      assert.match(diags[0].message, /tensor arena ≈ .* exceeds the nano33ble RAM budget of 256\.0 KB/);
      await vscode.commands.executeCommand('workbench.actions.view.problems');
      await vscode.window.showTextDocument(doc, { preview: false, preserveFocus: false });
      const at = new vscode.Position(10, 20);
      editor.selection = new vscode.Selection(at, at);
      editor.revealRange(diags[0].range, vscode.TextEditorRevealType.InCenter);
      await vscode.commands.executeCommand('editor.action.showHover');
      if (hasDriver()) {
        const problems = await waitFor('the Problems panel to list the error', async () => {
          const answer = await driver('text', { selector: PROBLEMS });
          return answer.ok && /exceeds the nano33ble RAM budget/.test(answer.text ?? '') ? answer.text : undefined;
        });
        assert.match(problems!, /model\.py/);
        await sleep(800); // let the hover render
        const shot = await driver('screenshot', { name: 'over-budget' });
        assert.ok(shot.ok, shot.error);
      }
    });

    it('shows board, RAM and flash in the status bar, red when over budget', async () => {
      const s = await waitFor('the over-budget status', () => {
        const last = api.projectStatus();
        return last?.board === 'nano33ble' && last.fits === false ? last : undefined;
      });
      assert.equal(s.measured, false);
      const item = api.status.item;
      assert.match(item.text, /^\$\(error\) nano33ble {2}RAM 1\d{3}\/256 KB · Flash \d+\/960 KB$/);
      assert.equal((item.backgroundColor as vscode.ThemeColor | undefined)?.id, 'statusBarItem.errorBackground');
      assert.equal(item.command, 'tinyforge.ide.inspect');
      if (hasDriver()) {
        const bar = await waitFor('the status bar text', async () => {
          const answer = await driver('text', { selector: STATUS_BAR });
          return answer.ok && /RAM 1\d{3}\/256 KB · Flash \d+\/960 KB/.test(answer.text ?? '') ? answer.text : undefined;
        });
        assert.match(bar!, /nano33ble/);
      }
    });

    it('shows figures in a code lens and layer figures on hover', async () => {
      const lenses = await waitFor('code lenses', async () => {
        const found = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', modelUri);
        return found?.length ? found : undefined;
      });
      assert.match(lenses[0].command?.title ?? '', /flash .* KB \/ 960\.0 KB · RAM .* KB \/ 256\.0 KB/);
      const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', modelUri, new vscode.Position(10, 20));
      const text = hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : c.value))).join('\n');
      assert.match(text, /Conv2D.*CONV_2D/);
      assert.match(text, /activation: 589,824 bytes/);
    });

    it('offers the shrink quick fix, and applying it clears the error', async () => {
      const diag = tinyforgeDiagnostics(modelUri).find((d) => d.severity === vscode.DiagnosticSeverity.Error)!;
      const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>(
        'vscode.executeCodeActionProvider',
        modelUri,
        diag.range,
        vscode.CodeActionKind.QuickFix.value,
      );
      const shrink = actions.find((a) => /^Shrink model to fit nano33ble/.test(a.title));
      assert.ok(shrink, `no shrink fix among: ${actions.map((a) => a.title).join(' | ')}`);
      assert.ok(shrink.edit);
      assert.ok(await vscode.workspace.applyEdit(shrink.edit));
      const doc = await vscode.workspace.openTextDocument(modelUri);
      assert.doesNotMatch(doc.lineAt(10).text, /Conv2D\(64,/);
      await waitFor('the error to go', () => (tinyforgeDiagnostics(modelUri).some((d) => d.severity === vscode.DiagnosticSeverity.Error) ? undefined : true));
      const s = await waitFor('the status to turn green', () => (api.projectStatus()?.fits === true ? api.projectStatus() : undefined));
      assert.ok(s.ram_bytes_estimate! <= s.ram_budget!);
      assert.equal(api.status.item.backgroundColor, undefined);
      await doc.save();
    });

    it('lists boards from the server with RAM and flash, and selects one', async () => {
      const boards = await api.server.execute<{ id: string; ram_bytes: number; flash_bytes: number }[]>('tinyforge.boards');
      assert.ok(boards.length >= 5);
      assert.ok(boards.every((b) => b.ram_bytes > 0 && b.flash_bytes > 0));
      if (hasDriver()) {
        // The real QuickPick: boards from the server with RAM and flash; type, pick with Enter.
        const picked = vscode.commands.executeCommand<{ ok: boolean; board: string }>('tinyforge.ide.selectBoard');
        const list = await waitFor('the board QuickPick', async () => {
          const answer = await driver('text', { selector: '.quick-input-widget .quick-input-list' });
          return answer.ok && /RAM \d+ KB · Flash/.test(answer.text ?? '') ? answer.text : undefined;
        });
        assert.match(list!, /Arduino Nano 33 BLE Sense/);
        await driver('type', { text: 'Raspberry Pi Pico' });
        const narrowed = await driver('text', { selector: '.quick-input-widget .quick-input-list' });
        assert.match(narrowed.text ?? '', /Raspberry Pi Pico\s*pico\s*RAM 256 KB · Flash 2 MB · rp2040/);
        await driver('press', { key: 'Enter' });
        assert.deepEqual(await picked, { ok: true, board: 'pico' });
      }
      const result = await vscode.commands.executeCommand<{ ok: boolean; board: string }>('tinyforge.ide.selectBoard', 'esp32dev');
      assert.deepEqual(result, { ok: true, board: 'esp32dev' });
      assert.equal(vscode.workspace.getConfiguration('tinyforge').get('board'), 'esp32dev');
      // A project's own platformio.ini still wins over the setting.
      const s = await api.status.refresh();
      assert.equal(s?.board, 'nano33ble');
    });

    it('creates a project from a description and trains it with a cancellable progress notification', async () => {
      const created = await vscode.commands.executeCommand<{ ok: boolean; folder: string }>(
        'tinyforge.ide.newProject',
        'Recognize handwritten digits on an Arduino Nano 33 BLE Sense',
        digits,
      );
      assert.ok(created.ok, JSON.stringify(created));
      for (const file of ['tinyforge.toml', 'train.py', 'platformio.ini']) {
        assert.ok(fs.existsSync(path.join(digits, file)), `${file} was not written`);
      }
      setEpochs(path.join(digits, 'tinyforge.toml'), 12);

      // Cancel from the notification's own Cancel button (when a browser page drives us).
      if (hasDriver()) {
        const before = api.progressEvents.length;
        const cancelled = vscode.commands.executeCommand<{ ok: boolean; cancelled?: boolean }>('tinyforge.ide.train', digits);
        await waitFor('training to begin', () => api.progressEvents.slice(before).find((e) => e.kind === 'begin'));
        // The notification's own Cancel button: on its toast, or in the notification centre
        // (VS Code does not always toast a notification, e.g. when several came at once).
        const cancelButton = {
          selector: '.notification-list-item:has-text("TinyForge: training") .monaco-button',
          hasText: 'Cancel',
          timeout: 5000,
        };
        let button = await driver('click', cancelButton);
        if (!button.ok) {
          await vscode.commands.executeCommand('notifications.showList');
          button = await driver('click', { ...cancelButton, timeout: 15000 });
          await vscode.commands.executeCommand('notifications.hideList');
        }
        assert.ok(button.ok, button.error);
        const result = await cancelled;
        assert.equal(result.cancelled, true, JSON.stringify(result));
        assert.ok(api.progressEvents.slice(before).some((e) => e.kind === 'cancel-requested'));
        assert.ok(!fs.existsSync(path.join(digits, 'model.keras')), 'a cancelled training left a model behind');
      }

      const start = api.progressEvents.length;
      const training = vscode.commands.executeCommand<{ ok: boolean; metrics: { float_accuracy: number } }>('tinyforge.ide.train', digits);
      if (hasDriver()) {
        await waitFor('a training progress report', () => api.progressEvents.slice(start).find((e) => e.kind === 'report' && /epoch/.test(e.message ?? '')), 60000);
        await vscode.commands.executeCommand('notifications.showList');
        await sleep(300);
        await driver('screenshot', { name: 'training-progress' });
        await vscode.commands.executeCommand('notifications.hideList');
      }
      const trained = await training;
      assert.ok(trained.ok, JSON.stringify(trained));
      assert.ok(trained.metrics.float_accuracy > 0.8);
      const events = api.progressEvents.slice(start);
      const begin = events.find((e) => e.kind === 'begin');
      assert.equal(begin?.title, 'TinyForge: training');
      assert.equal(begin?.cancellable, true);
      const reports = events.filter((e) => e.kind === 'report');
      assert.ok(reports.length >= 3, `only ${reports.length} progress reports`);
      assert.ok(reports.some((e) => /epoch \d+\/12/.test(e.message ?? '')), reports.map((e) => e.message).join(' | '));
      assert.equal(events[events.length - 1].kind, 'end');
    });

    it('converts with progress; the status bar then shows the measured figures', async () => {
      const start = api.progressEvents.length;
      const result = await vscode.commands.executeCommand<{ ok: boolean; report: { fits: boolean; ram_bytes_estimate: number } }>(
        'tinyforge.ide.convert',
        digits,
      );
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.report.fits, true);
      assert.ok(api.progressEvents.slice(start).some((e) => e.kind === 'begin' && e.title === 'TinyForge: converting'));
      const script = await vscode.workspace.openTextDocument(path.join(digits, 'train.py'));
      await vscode.window.showTextDocument(script);
      const s = await waitFor('measured figures in the status bar', async () => {
        const last = await api.status.refresh();
        return last?.measured ? last : undefined;
      });
      assert.equal(s.ram_bytes_estimate, result.report.ram_bytes_estimate);
      assert.match(api.status.item.text, /^\$\(circuit-board\) nano33ble {2}RAM \d+\/256 KB · Flash \d+\/960 KB$/);
      assert.equal(api.status.item.backgroundColor, undefined);
    });

    it('opens the inspect report from the status bar: per-layer table, arena chart and training curves', async () => {
      const before = api.report.lastReport;
      if (hasDriver()) {
        const click = await driver('click', { selector: `${STATUS_BAR} .statusbar-item`, hasText: 'nano33ble' });
        assert.ok(click.ok, click.error);
      } else {
        await vscode.commands.executeCommand('tinyforge.ide.inspect');
      }
      const report = await waitFor('the report', () => (api.report.lastReport !== before ? api.report.lastReport : undefined));
      assert.equal(report.kind, 'project');
      assert.ok(report.ok);
      assert.ok(report.layers!.length >= 5);
      assert.ok(report.history && report.history.loss.length >= 2);
      const html = api.report.lastHtml;
      assert.match(html, /<table class="layers">/);
      assert.match(html, /CONV_2D/);
      assert.match(html, /Arena use by layer/);
      assert.equal((html.match(/<polyline/g) ?? []).length, 4); // loss, val_loss, accuracy, val_accuracy
      if (hasDriver()) {
        // Give the report the whole window for the screenshot.
        await vscode.commands.executeCommand('notifications.clearAll');
        await vscode.commands.executeCommand('workbench.action.closePanel');
        await vscode.commands.executeCommand('workbench.action.closeSidebar');
        await vscode.commands.executeCommand('workbench.action.focusSecondEditorGroup');
        await vscode.commands.executeCommand('workbench.action.toggleMaximizeEditorGroup');
        await sleep(1000);
        await driver('screenshot', { name: 'inspect-report' });
        await vscode.commands.executeCommand('workbench.action.toggleMaximizeEditorGroup');
        await vscode.commands.executeCommand('workbench.action.toggleSidebarVisibility');
      }
    });

    it('inspects a .tflite file from the explorer menu', async () => {
      const tflite = vscode.Uri.file(path.join(digits, 'model.tflite'));
      if (hasDriver()) {
        // The real menu: right-click the file in the Explorer, pick "Inspect model memory".
        await vscode.commands.executeCommand('workbench.view.explorer');
        await vscode.commands.executeCommand('revealInExplorer', tflite);
        const row = { selector: '.explorer-folders-view .monaco-list-row', hasText: 'model.tflite' };
        const opened = await driver('click', { ...row, button: 'right' });
        assert.ok(opened.ok, opened.error);
        const menu = await driver('text', { selector: '.context-view .monaco-menu' });
        assert.ok(menu.ok, menu.error);
        assert.match(menu.text ?? '', /Inspect model memory/);
        assert.match(menu.text ?? '', /Convert to TFLite Micro/);
        const before = api.report.lastReport;
        const picked = await driver('click', { selector: '.context-view .action-item', hasText: 'Inspect model memory' });
        assert.ok(picked.ok, picked.error);
        const report = await waitFor('the model report', () =>
          api.report.lastReport !== before && api.report.lastReport?.kind === 'model' ? api.report.lastReport : undefined,
        );
        assert.equal(report.title, 'model.tflite');
        assert.ok(report.layers!.length >= 5);
        // Other files get no such items.
        await driver('press', { key: 'Escape' });
        await driver('click', { selector: '.explorer-folders-view .monaco-list-row', hasText: 'tinyforge.toml', button: 'right' });
        const other = await driver('text', { selector: '.context-view .monaco-menu' });
        assert.doesNotMatch(other.text ?? '', /Inspect model memory/);
        await driver('press', { key: 'Escape' });
      }
      const report = (await vscode.commands.executeCommand('tinyforge.ide.inspect', tflite)) as { ok: boolean; kind: string; layers: unknown[] };
      assert.ok(report.ok, JSON.stringify(report).slice(0, 500));
      assert.equal(report.kind, 'model');
      assert.ok(report.layers.length >= 5);
    });

    it('inspects a .keras file (converted in a child process for the report)', async () => {
      const keras = vscode.Uri.file(path.join(digits, 'model.keras'));
      const report = (await vscode.commands.executeCommand('tinyforge.ide.inspect', keras)) as {
        ok: boolean;
        format: string;
        layers: unknown[];
        fits: boolean;
      };
      assert.ok(report.ok, JSON.stringify(report).slice(0, 500));
      assert.equal(report.format, 'keras');
      assert.ok(report.layers.length >= 5);
      assert.equal(report.fits, true);
    });

    it('uploads through PlatformIO with progress, and shows why it failed', async () => {
      const broken = path.join(ws, 'pio_broken');
      fs.mkdirSync(broken, { recursive: true });
      fs.writeFileSync(path.join(broken, 'platformio.ini'), '[platformio]\ndefault_envs = missing\n\n[env:nano]\nboard = nano33ble\n');
      const start = api.progressEvents.length;
      const result = await vscode.commands.executeCommand<{ ok: boolean; error: string }>('tinyforge.ide.upload', broken);
      assert.equal(result.ok, false);
      assert.match(result.error, /default env|missing/);
      const events = api.progressEvents.slice(start);
      assert.equal(events.find((e) => e.kind === 'begin')?.title, 'TinyForge: uploading');
      assert.equal(events[events.length - 1].kind, 'end');
    });

    it('opens the serial monitor in a terminal, or says why it cannot', async () => {
      const result = await vscode.commands.executeCommand<{ ok: boolean; terminal?: string; error?: string }>(
        'tinyforge.ide.serialMonitor',
        digits,
      );
      if (result.ok) {
        const terminal = vscode.window.terminals.find((t) => t.name === result.terminal);
        assert.ok(terminal);
        terminal.dispose();
      } else {
        assert.match(result.error ?? '', /board|port/i); // no board on this machine
      }
    });

    it('keeps the Anthropic API key in secret storage and gives it to the server only', async () => {
      const key = 'sk-ant-e2e-not-a-real-key';
      assert.ok(await vscode.commands.executeCommand('tinyforge.ide.setApiKey', key));
      assert.ok(api.server.running);
      assert.ok(api.server.extraEnv.includes('ANTHROPIC_API_KEY'));
      const settings = fs.readFileSync(path.join(ws, '.vscode', 'settings.json'), 'utf8');
      assert.ok(!settings.includes(key));
      assert.equal(JSON.stringify(vscode.workspace.getConfiguration('tinyforge')).includes(key), false);
      assert.ok(await vscode.commands.executeCommand('tinyforge.ide.setApiKey', ''));
      assert.ok(!api.server.extraEnv.includes('ANTHROPIC_API_KEY'));
      // The restarted server works: diagnostics come back for the open model script.
      const diags = await waitFor('diagnostics after restart', async () => {
        const s = await api.status.refresh();
        return s?.ok && s.board ? s : undefined;
      });
      assert.ok(diags.ok);
    });
  });
}
