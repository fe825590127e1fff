// The inspect report as HTML for a webview: pure (no `vscode`), so it is unit-tested in Node.
// No scripts: tables and inline SVG charts only, under a strict Content-Security-Policy.

import type { DeviceNotMeasured, DeviceReport, InspectView, LayerRow } from './generated/reports';

// The shapes are the server's (server/tinyforge/report.py), generated: client/src/generated/.
/** One row of the per-layer table. */
export type ReportLayer = LayerRow;
/** report.json's `device` section: what the emulated board measured (tinyforge verify). */
export type DeviceSection = DeviceReport;
/** Why there are no measured figures (ESP32, no toolchain or TFLM source, --no-device). */
export type { DeviceNotMeasured };
/** What the server's `tinyforge.inspect` command returns. */
export type InspectReport = InspectView;

export function escapeHtml(text: unknown): string {
  return String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const n = (x: number) => x.toLocaleString('en-US');
const kb = (x: number) => `${(x / 1024).toFixed(1)} KB`;

function usageBar(name: string, figure: number | null | undefined, limit: number | undefined, parts?: Record<string, number>): string {
  if (figure === null || figure === undefined || !limit) {
    return `<div class="usage"><b>${name}</b> no figure yet</div>`;
  }
  const pct = (100 * figure) / limit;
  const over = figure > limit;
  const partText = parts
    ? Object.entries(parts)
        .map(([k, v]) => `${escapeHtml(k)} ${kb(v)}`)
        .join(' · ')
    : '';
  return `<div class="usage${over ? ' over' : ''}">
  <div class="usage-label"><b>${name}</b> ${kb(figure)} of ${kb(limit)} (${pct.toFixed(0)}%)${over ? ' — over budget' : ''}</div>
  <svg class="track" width="100%" height="10" role="img" aria-label="${name} ${pct.toFixed(0)}%"><rect class="track-bg" x="0" y="0" width="100%" height="10" rx="5"></rect><rect class="fill" x="0" y="0" width="${Math.min(pct, 100).toFixed(1)}%" height="10" rx="5"></rect></svg>
  <div class="parts">${partText}</div>
</div>`;
}

/** Horizontal bars: each layer's output tensor in the arena, the largest highlighted. */
export function arenaChart(layers: ReportLayer[]): string {
  const rows = layers.filter((l) => l.activation_bytes > 0);
  if (!rows.length) {
    return '<p class="muted">No layer output sizes.</p>';
  }
  const max = Math.max(...rows.map((l) => l.activation_bytes));
  const rowH = 18;
  const labelW = 210;
  const barW = 360;
  const height = rows.length * rowH + 4;
  const names = new Map(layers.map((l, i) => [l, layerNames(layers)[i]]));
  const bars = rows
    .map((l, i) => {
      const w = Math.max(1, (barW * l.activation_bytes) / max);
      const y = i * rowH + 2;
      const cls = l.activation_bytes === max ? 'bar peak' : 'bar';
      const label = `${l.index}. ${l.op}`;
      return `<g><title>${escapeHtml(names.get(l) ?? l.name)}: ${n(l.activation_bytes)} bytes</title>
<text x="${labelW - 6}" y="${y + 12}" text-anchor="end" class="axis">${escapeHtml(label)}</text>
<rect class="${cls}" x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 5}"></rect>
<text x="${(labelW + w + 4).toFixed(1)}" y="${y + 12}" class="axis">${kb(l.activation_bytes)}</text></g>`;
    })
    .join('\n');
  return `<svg class="chart bars" role="img" aria-label="Arena use by layer" width="${labelW + barW + 80}" height="${height}" viewBox="0 0 ${labelW + barW + 80} ${height}">
${bars}
</svg>`;
}

/** One line chart of per-epoch series (e.g. loss and val_loss). */
export function lineChart(title: string, series: Record<string, number[]>): string {
  const entries = Object.entries(series).filter(([, v]) => Array.isArray(v) && v.length > 0);
  if (!entries.length) {
    return '';
  }
  const W = 380;
  const H = 180;
  const pad = { l: 44, r: 10, t: 22, b: 26 };
  const all = entries.flatMap(([, v]) => v).filter((x) => Number.isFinite(x));
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (hi === lo) {
    hi = lo + 1;
    lo = lo - 1;
  }
  const epochs = Math.max(...entries.map(([, v]) => v.length));
  const x = (i: number) => pad.l + ((W - pad.l - pad.r) * i) / Math.max(epochs - 1, 1);
  const y = (v: number) => pad.t + (H - pad.t - pad.b) * (1 - (v - lo) / (hi - lo));
  const lines = entries
    .map(([name, values], k) => {
      const points = values
        .map((v, i) => (Number.isFinite(v) ? `${x(i).toFixed(1)},${y(v).toFixed(1)}` : ''))
        .filter(Boolean)
        .join(' ');
      return `<polyline class="series s${k}" fill="none" points="${points}"><title>${escapeHtml(name)}</title></polyline>
<text x="${pad.l + 70 + 95 * k}" y="14" class="legend s${k}">— ${escapeHtml(name)}</text>`;
    })
    .join('\n');
  const fmt = (v: number) => (Math.abs(hi - lo) < 5 ? v.toFixed(2) : v.toFixed(0));
  return `<figure class="curve"><svg class="chart" role="img" aria-label="${escapeHtml(title)}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">
<text x="${pad.l}" y="14" class="title">${escapeHtml(title)}</text>
<line class="grid" x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}"></line>
<line class="grid" x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}"></line>
<text x="${pad.l - 4}" y="${pad.t + 4}" text-anchor="end" class="axis">${fmt(hi)}</text>
<text x="${pad.l - 4}" y="${H - pad.b}" text-anchor="end" class="axis">${fmt(lo)}</text>
<text x="${pad.l}" y="${H - 8}" class="axis">1</text>
<text x="${W - pad.r}" y="${H - 8}" text-anchor="end" class="axis">epoch ${epochs}</text>
${lines}
</svg></figure>`;
}

/** Loss and accuracy curves from a Keras history ({loss: [...], val_loss: [...], ...}). */
export function trainingCurves(history: Record<string, number[]> | null | undefined): string {
  if (!history || !Object.keys(history).length) {
    return '';
  }
  const pick = (pred: (k: string) => boolean) =>
    Object.fromEntries(Object.entries(history).filter(([k]) => pred(k)));
  const loss = pick((k) => /loss/.test(k));
  const acc = pick((k) => /acc/.test(k));
  const other = pick((k) => !/loss|acc/.test(k));
  return [lineChart('loss', loss), lineChart('accuracy', acc), lineChart('other metrics', other)]
    .filter(Boolean)
    .join('\n');
}

/**
 * A readable layer name. TFLite tensor names hold the Keras layer path
 * ("functional/model/conv2d_1/Relu;…"): when the given names do not tell layers apart, the
 * layer's own path segment is used.
 */
export function layerNames(layers: ReportLayer[]): string[] {
  const names = layers.map((l) => l.name);
  if (new Set(names).size === names.length || layers.every((l) => !l.tensor)) {
    return names;
  }
  return layers.map((l) => {
    const parts = (l.tensor ?? l.name).split(';')[0].split('/');
    return parts.length >= 3 ? parts[parts.length - 2] : parts[parts.length - 1] || l.name;
  });
}

export function layerTable(layers: ReportLayer[]): string {
  if (!layers.length) {
    return '<p class="muted">No per-layer figures.</p>';
  }
  const max = Math.max(...layers.map((l) => l.activation_bytes));
  const names = layerNames(layers);
  const rows = layers
    .map(
      (l, i) => `<tr${l.activation_bytes === max && max > 0 ? ' class="peak"' : ''}>
<td class="num">${l.index}</td><td title="${escapeHtml(l.tensor ?? l.name)}">${escapeHtml(names[i])}</td><td><code>${escapeHtml(l.op)}</code></td>
<td>${escapeHtml((l.output_shape ?? []).join('×'))}</td><td class="num">${n(l.params_bytes)}</td>
<td class="num">${n(l.activation_bytes)}</td><td class="num">${n(l.macs)}</td></tr>`,
    )
    .join('\n');
  const total = (k: 'params_bytes' | 'macs') => n(layers.reduce((s, l) => s + (l[k] || 0), 0));
  return `<table class="layers">
<thead><tr><th>#</th><th>layer</th><th>op</th><th>output</th><th>params (B)</th><th>activation (B)</th><th>MACs</th></tr></thead>
<tbody>
${rows}
</tbody>
<tfoot><tr><td></td><td>total</td><td></td><td></td><td class="num">${total('params_bytes')}</td><td></td><td class="num">${total('macs')}</td></tr></tfoot>
</table>`;
}

/** "measured on an emulated Cortex-M4F (mps2-an386)": where the device figures come from. */
export function deviceHeadline(d: DeviceSection): string {
  return `measured on an emulated ${d.emulated_core} (${d.machine})`;
}

function figureRows(rows: [string, string][]): string {
  return rows.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td class="num">${v}</td></tr>`).join('\n');
}

/** Flash or RAM per part of the image; with the estimate it replaces when there is one. */
function partsTable(title: string, parts: Record<string, number>, before?: Record<string, number>): string {
  const entries = Object.entries(parts ?? {});
  if (!entries.length) {
    return '';
  }
  const withBefore = !!before && Object.keys(before).length > 0;
  const rows = entries
    .map(([k, v]) => {
      const old = withBefore && typeof before[k] === 'number' ? n(before[k]) : '';
      return `<tr><td>${escapeHtml(k)}</td><td class="num">${n(v)}</td>${withBefore ? `<td class="num muted">${old}</td>` : ''}</tr>`;
    })
    .join('\n');
  const total = entries.reduce((s, [, v]) => s + v, 0);
  return `<table class="layers device-parts">
<thead><tr><th>${escapeHtml(title)}</th><th>bytes</th>${withBefore ? '<th>estimate before</th>' : ''}</tr></thead>
<tbody>
${rows}
</tbody>
<tfoot><tr><td>total</td><td class="num">${n(total)}</td>${withBefore ? '<td></td>' : ''}</tr></tfoot>
</table>`;
}

/** The device section: measured on the emulated core, or why it was not. */
export function deviceSection(d: DeviceSection | DeviceNotMeasured | null | undefined): string {
  const head = '<section id="device"><h2>On the board</h2>';
  if (!d) {
    return `${head}<p class="muted">Not run on an emulated board yet: run <b>TinyForge: Verify on emulated board</b>.</p></section>`;
  }
  if (!d.measured) {
    return `${head}<p class="muted">Not run on an emulated board${d.reason ? `: ${escapeHtml(d.reason)}` : '.'}</p></section>`;
  }
  const pct = (x: number) => `${Number(x.toFixed(2))}%`;
  const note = d.core_note ? ` <span class="muted">${escapeHtml(d.core_note)}</span>` : '';
  const agreement =
    d.kernels === 'reference'
      ? ''
      : ` · top class agrees on ${pct(d.argmax_agreement_percent)} · largest difference ${escapeHtml(d.outputs_max_abs_diff)}`;
  const accuracy = typeof d.accuracy === 'number' ? ` · accuracy on these samples ${pctText(d.accuracy)}` : '';
  const arena = figureRows([
    ['used (arena_used_bytes)', `${n(d.arena_used_bytes)} B`],
    ['smallest that runs', `${n(d.arena_smallest_bytes)} B`],
    ['in the firmware (kTensorArenaSize)', `${n(d.arena_firmware_bytes)} B`],
    ['static 32-bit estimate', `${n(d.arena_static_target_bytes)} B`],
  ]);
  const range =
    typeof d.instructions_min === 'number' && typeof d.instructions_max === 'number'
      ? ` (${n(d.instructions_min)}–${n(d.instructions_max)})`
      : '';
  const kernelsBefore = Object.fromEntries(
    Object.entries(d.flash_estimate_before ?? {}).filter(([k]) => k in (d.kernel_flash ?? {})),
  );
  const problems = (d.problems ?? []).length
    ? `<ul class="problems">${(d.problems ?? []).map((t) => `<li>${escapeHtml(t)}</li>`).join('')}</ul>`
    : '';
  return `${head}
<p class="headline"><span class="badge kind">${escapeHtml(deviceHeadline(d))}</span>${note}</p>
${problems}
<p>${escapeHtml(d.tflm.name)} · <b>${escapeHtml(d.kernels)}</b> kernels · built for ${escapeHtml(d.core)}${d.compiler ? ` · <span class="muted">${escapeHtml(d.compiler)}</span>` : ''}</p>
<p class="outputs">Outputs identical to the host TFLM interpreter: <b>${pct(d.outputs_identical_percent)}</b> of ${n(d.samples)} test samples${agreement}${accuracy}</p>
<h3>Tensor arena</h3>
<table class="layers device-arena"><tbody>
${arena}
</tbody></table>
${d.arena_note ? `<p class="muted">${escapeHtml(d.arena_note)}</p>` : ''}
<h3>Flash and RAM of the image</h3>
${partsTable('flash part', d.flash)}
${partsTable('RAM part', d.ram)}
${partsTable('kernel (flash)', d.kernel_flash ?? {}, kernelsBefore)}
<h3>Speed</h3>
<p>${n(d.instructions_per_inference)} instructions per inference${range} · <b>≈ ${d.latency_ms_estimate.toFixed(2)} ms</b> at ${Number((d.clock_hz / 1e6).toFixed(1))} MHz <span class="badge kind">estimate</span></p>
${d.latency_note ? `<p class="muted">${escapeHtml(d.latency_note)}</p>` : ''}
</section>`;
}

const STYLE = `
body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); padding: 0 16px 24px; }
h1 { font-size: 1.4em; margin-bottom: 2px; } h2 { font-size: 1.1em; margin-top: 22px; }
h3 { font-size: 1em; margin: 14px 0 4px; }
table.device-parts { display: inline-table; margin: 0 18px 8px 0; vertical-align: top; }
.muted, .parts { color: var(--vscode-descriptionForeground); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: .85em; margin-left: 6px; }
.badge.fits { background: var(--vscode-testing-iconPassed, #3a3); color: #fff; }
.badge.over { background: var(--vscode-errorForeground, #d33); color: #fff; }
.badge.kind { background: var(--vscode-badge-background); color: var(--vscode-badge-foreground); }
.usage { margin: 8px 0; max-width: 640px; }
.track { display: block; } .track-bg { fill: var(--vscode-editorWidget-border, #444); }
.fill { fill: var(--vscode-charts-blue, #37c); }
.usage.over .fill { fill: var(--vscode-charts-red, #d33); }
table.layers { border-collapse: collapse; font-size: .92em; }
table.layers th, table.layers td { padding: 2px 8px; border-bottom: 1px solid var(--vscode-editorWidget-border, #444); text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.peak td { color: var(--vscode-charts-orange, #e90); }
svg .axis, svg .title { fill: var(--vscode-foreground); font-size: 11px; } svg .legend { font-size: 11px; stroke: none; }
svg .bar { fill: var(--vscode-charts-blue, #37c); } svg .bar.peak { fill: var(--vscode-charts-orange, #e90); }
svg .grid { stroke: var(--vscode-editorWidget-border, #666); }
svg .series { stroke-width: 2; } .s0 { stroke: var(--vscode-charts-blue, #37c); fill: var(--vscode-charts-blue, #37c); }
.s1 { stroke: var(--vscode-charts-orange, #e90); fill: var(--vscode-charts-orange, #e90); }
.s2 { stroke: var(--vscode-charts-green, #3a3); fill: var(--vscode-charts-green, #3a3); }
.s3 { stroke: var(--vscode-charts-purple, #a5d); fill: var(--vscode-charts-purple, #a5d); }
svg polyline.series { fill: none; }
figure.curve { display: inline-block; margin: 0 18px 0 0; max-width: 100%; }
svg.chart { max-width: 100%; height: auto; }
ul.problems li { color: var(--vscode-errorForeground, #d33); }
`;

/** The whole webview page. `cspSource` is the webview's own source; `nonce` allows the style. */
export function renderReport(r: InspectReport, opts: { cspSource: string; nonce: string }): string {
  const head = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src ${opts.cspSource} data:; style-src 'nonce-${opts.nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>TinyForge memory report</title><style nonce="${opts.nonce}">${STYLE}</style></head><body>`;
  if (!r.ok) {
    return `${head}<h1>TinyForge memory report</h1><p class="problems">${escapeHtml(r.error ?? 'no report')}</p></body></html>`;
  }
  const layers = r.layers ?? [];
  const verdict =
    r.fits === true
      ? `<span class="badge fits">fits ${escapeHtml(r.board ?? '')}</span>`
      : r.fits === false
        ? `<span class="badge over">over budget on ${escapeHtml(r.board ?? '')}</span>`
        : '';
  const kind = `<span class="badge kind">${r.measured ? 'measured' : 'estimate'}</span>`;
  const accuracy =
    typeof r.tflm_accuracy === 'number'
      ? `<p>Accuracy: float ${pctText(r.float_accuracy)} · int8 ${pctText(r.int8_accuracy)} · TFLM ${pctText(r.tflm_accuracy)}</p>`
      : '';
  const figures = [
    r.model_bytes ? `model ${n(r.model_bytes)} B` : '',
    r.arena_bytes_target ? `tensor arena ${n(r.arena_bytes_target)} B (32-bit target)` : '',
  ]
    .filter(Boolean)
    .join(' · ');
  const curves = trainingCurves(r.history);
  const list = (items: string[] | undefined, cls: string) =>
    items && items.length ? `<ul class="${cls}">${items.map((t) => `<li>${escapeHtml(t)}</li>`).join('')}</ul>` : '';
  return `${head}
<h1>${escapeHtml(r.title ?? 'Model')} ${verdict} ${kind}</h1>
<p class="muted">${escapeHtml(r.model ?? '')}</p>
${list(r.problems, 'problems')}
${list((r.violations ?? []).map((v) => v.message), 'problems')}
<section id="budget"><h2>Budget${r.board ? ` — ${escapeHtml(r.board)}` : ''}</h2>
${usageBar('RAM', r.ram_bytes_estimate, r.budget?.ram_bytes, r.ram_parts)}
${usageBar('Flash', r.flash_bytes_estimate, r.budget?.flash_bytes, r.flash_parts)}
<p class="muted">${figures}</p>${accuracy}</section>
${deviceSection(r.device)}
<section id="arena"><h2>Arena use by layer</h2>${arenaChart(layers)}</section>
<section id="training"><h2>Training</h2>${curves || '<p class="muted">No training run yet: run <b>TinyForge: Train</b>.</p>'}</section>
<section id="layers"><h2>Layers</h2>${layerTable(layers)}</section>
${list(r.notes, 'muted notes')}
</body></html>`;
}

function pctText(x: number | null | undefined): string {
  return typeof x === 'number' ? `${(100 * x).toFixed(1)}%` : '–';
}
