// Pure formatting: no `vscode` import, so the unit tests run in plain Node.

import type { ProjectStatus } from './generated/reports';

/** What the server's `tinyforge.projectStatus` command returns (server/tinyforge/report.py). */
export type { ProjectStatus };

/** One board of the server's `tinyforge.boards` command. */
export interface BoardInfo {
  id: string;
  name: string;
  mcu: string;
  ram_bytes: number;
  flash_bytes: number;
  selected: boolean;
}

const KB = 1024;

/** Kilobytes as a whole number ("41"), or with one decimal when rounding would hide an overflow. */
export function kbPair(figure: number, limit: number): [string, string] {
  const f = figure / KB;
  const l = limit / KB;
  if (figure > limit && Math.round(f) <= Math.round(l)) {
    return [f.toFixed(1), l.toFixed(1)];
  }
  return [String(Math.round(f)), String(Math.round(l))];
}

/** "1.2 MB" / "256 KB" / "900 B" for a size on its own. */
export function humanBytes(bytes: number): string {
  if (bytes >= KB * KB) {
    const mb = bytes / (KB * KB);
    return `${Number.isInteger(mb) ? mb : mb.toFixed(1)} MB`;
  }
  if (bytes >= KB) {
    const kb = bytes / KB;
    return `${Number.isInteger(kb) ? kb : kb.toFixed(1)} KB`;
  }
  return `${bytes} B`;
}

/** "RAM 41/256 KB" or "RAM –/256 KB" when there is no figure yet. */
export function resourceText(name: string, figure: number | null, limit: number | null): string {
  if (limit === null || limit === undefined) {
    return `${name} –`;
  }
  if (figure === null || figure === undefined) {
    return `${name} –/${Math.round(limit / KB)} KB`;
  }
  const [f, l] = kbPair(figure, limit);
  return `${name} ${f}/${l} KB`;
}

/** The figures part of the status bar: "RAM 41/256 KB · Flash 84/960 KB". */
export function figuresText(s: ProjectStatus): string {
  return `${resourceText('RAM', s.ram_bytes_estimate, s.ram_budget)} · ${resourceText(
    'Flash',
    s.flash_bytes_estimate,
    s.flash_budget,
  )}`;
}

export function isOverBudget(s: ProjectStatus): boolean {
  if (s.fits === false) {
    return true;
  }
  const over = (figure: number | null, limit: number | null) =>
    figure !== null && limit !== null && figure > limit;
  return over(s.ram_bytes_estimate, s.ram_budget) || over(s.flash_bytes_estimate, s.flash_budget);
}

/** The status-bar text: board and figures, with a codicon. */
export function statusText(s: ProjectStatus | undefined): string {
  if (!s || !s.ok) {
    return s?.error ? '$(warning) TinyForge' : '$(circuit-board) TinyForge';
  }
  if (!s.board) {
    return '$(circuit-board) TinyForge: no board';
  }
  const icon = isOverBudget(s) ? '$(error)' : '$(circuit-board)';
  return `${icon} ${s.board}  ${figuresText(s)}`;
}

/** Markdown tooltip with exact figures and where they come from. */
export function statusTooltip(s: ProjectStatus | undefined): string {
  if (!s || !s.ok) {
    return s?.error ? `TinyForge: ${s.error}` : 'TinyForge';
  }
  if (!s.board) {
    return 'No board for this file: click to select one (or add a tinyforge.toml / platformio.ini).';
  }
  const lines = [`**${s.board_name ?? s.board}** (\`${s.board}\`, from ${s.source})`, ''];
  const row = (name: string, figure: number | null, limit: number | null) =>
    figure === null || limit === null
      ? `- ${name}: no figure yet (budget ${humanBytes(limit ?? 0)})`
      : `- ${name}: ${figure.toLocaleString('en-US')} B of ${limit.toLocaleString('en-US')} B (${Math.round(
          (100 * figure) / limit,
        )}%)`;
  lines.push(row('RAM', s.ram_bytes_estimate, s.ram_budget));
  lines.push(row('Flash', s.flash_bytes_estimate, s.flash_budget));
  if (s.arena_bytes !== null) {
    lines.push(`- tensor arena: ${s.arena_bytes.toLocaleString('en-US')} B`);
  }
  lines.push('');
  lines.push(s.measured ? 'Measured by the last build.' : 'Static estimate of the model script.');
  if (isOverBudget(s)) {
    lines.push('', '**Over budget.**');
  }
  lines.push('', 'Click for the memory report.');
  return lines.join('\n');
}

/** A QuickPick row for a board. */
export function boardPickItem(b: BoardInfo): { label: string; description: string; detail: string } {
  return {
    label: b.selected ? `$(check) ${b.name}` : b.name,
    description: b.id,
    detail: `RAM ${humanBytes(b.ram_bytes)} · Flash ${humanBytes(b.flash_bytes)}${b.mcu ? ` · ${b.mcu}` : ''}`,
  };
}

/** Boards sorted for picking: the selected one first, then by name. */
export function sortBoards(boards: BoardInfo[]): BoardInfo[] {
  return [...boards].sort(
    (a, b) => Number(b.selected) - Number(a.selected) || a.name.localeCompare(b.name),
  );
}

/** " Measured on an emulated Cortex-M4F (mps2-an386): outputs 100% identical to host TFLM." */
export function deviceSentence(device: Record<string, unknown> | undefined): string {
  if (!device || typeof device !== 'object') {
    return '';
  }
  if (device.measured !== true) {
    return typeof device.reason === 'string' && device.reason ? ` Not run on an emulated board: ${device.reason}` : '';
  }
  const identical = typeof device.outputs_identical_percent === 'number' ? `${device.outputs_identical_percent}%` : '?';
  return ` Measured on an emulated ${String(device.emulated_core)} (${String(device.machine)}), ${String(
    device.kernels,
  )} kernels: outputs ${identical} identical to host TFLM.`;
}

/** A one-line summary of a finished job's result for a notification. */
export function jobSummary(kind: string, result: Record<string, unknown>): string {
  if (result.cancelled) {
    return `TinyForge: ${kind} cancelled; the project is as before.`;
  }
  if (!result.ok) {
    return `TinyForge: ${kind} failed: ${String(result.error ?? 'unknown error')}`;
  }
  const report = result.report as Record<string, unknown> | undefined;
  const metrics = result.metrics as Record<string, unknown> | undefined;
  const pio = result.pio as Record<string, unknown> | undefined;
  const firmware = pio
    ? pio.ok
      ? ` Firmware built${typeof pio.summary === 'string' && pio.summary ? `: ${pio.summary}` : '.'}`
      : ` Firmware NOT built: ${String(pio.error ?? pio.summary ?? 'pio run failed')}`
    : '';
  const pct = (x: unknown) => (typeof x === 'number' ? `${(100 * x).toFixed(1)}%` : '?');
  const device = deviceSentence((result.device ?? report?.device) as Record<string, unknown> | undefined);
  if (report && typeof report.ram_bytes_estimate === 'number') {
    const budget = (report.budget ?? {}) as Record<string, number>;
    const s = {
      ram_bytes_estimate: report.ram_bytes_estimate as number,
      flash_bytes_estimate: report.flash_bytes_estimate as number,
      ram_budget: budget.ram_bytes ?? null,
      flash_budget: budget.flash_bytes ?? null,
    } as ProjectStatus;
    const verdict = report.fits ? 'fits' : 'does NOT fit';
    return `TinyForge: ${kind} done, ${verdict} ${String(report.board ?? '')}: ${figuresText(s)}; TFLM accuracy ${pct(
      report.tflm_accuracy,
    )}.${device}${firmware}`;
  }
  if (metrics) {
    const acc = metrics.test_accuracy ?? metrics.float_accuracy ?? metrics.accuracy ?? metrics.val_accuracy;
    return `TinyForge: ${kind} done${typeof acc === 'number' ? `, accuracy ${pct(acc)}` : ''}.`;
  }
  if (typeof result.summary === 'string' && result.summary) {
    return `TinyForge: ${kind} done: ${result.summary}`;
  }
  return `TinyForge: ${kind} done.`;
}
