import * as assert from 'node:assert/strict';
import { arenaChart, escapeHtml, InspectReport, layerNames, layerTable, lineChart, renderReport, trainingCurves } from '../../src/reportHtml';

const layers = [
  { index: 0, name: 'Conv2D (line 11)', op: 'CONV_2D', output_shape: [96, 96, 64], params_bytes: 1984, activation_bytes: 589824, macs: 15925248 },
  { index: 1, name: 'MaxPooling2D (line 13)', op: 'MAX_POOL_2D', output_shape: [48, 48, 64], params_bytes: 0, activation_bytes: 147456, macs: 0 },
  { index: 2, name: 'Dropout', op: '(folded)', output_shape: [48, 48, 64], params_bytes: 0, activation_bytes: 0, macs: 0 },
];

const report: InspectReport = {
  ok: true,
  kind: 'project',
  title: 'over_budget',
  board: 'nano33ble',
  budget: { ram_bytes: 262144, flash_bytes: 983040 },
  measured: false,
  fits: false,
  ram_bytes_estimate: 1230804,
  flash_bytes_estimate: 218350,
  ram_parts: { 'tensor arena': 1183756, 'TFLM runtime': 2048 },
  layers,
  history: { loss: [2.1, 1.2, 0.7], val_loss: [2.0, 1.4, 0.9], accuracy: [0.3, 0.6, 0.8], val_accuracy: [0.35, 0.55, 0.75] },
  violations: [{ message: 'RAM 1202.0 KB exceeds the 256.0 KB budget on nano33ble' }],
  notes: ['Per-layer figures: static estimate'],
};

describe('inspect report html', () => {
  it('has a per-layer table with totals and the peak highlighted', () => {
    const html = layerTable(layers);
    assert.equal((html.match(/<tr/g) ?? []).length, 5); // head, 3 layers, total
    assert.match(html, /<tr class="peak">\s*<td class="num">0<\/td><td title="Conv2D \(line 11\)">Conv2D \(line 11\)<\/td>/);
    assert.match(html, /96×96×64/);
    assert.match(html, /<td class="num">1,984<\/td><td><\/td><td class="num">15,925,248<\/td>/);
  });

  it('draws one bar per layer that uses the arena, scaled to the largest', () => {
    const svg = arenaChart(layers);
    assert.equal((svg.match(/<rect/g) ?? []).length, 2);
    assert.match(svg, /class="bar peak" x="210" y="2" width="360.0"/);
    assert.match(svg, /width="90.0"/); // 147456 / 589824 * 360
  });

  it('draws loss and accuracy curves per epoch', () => {
    const curves = trainingCurves(report.history);
    assert.equal((curves.match(/<figure/g) ?? []).length, 2);
    assert.equal((curves.match(/<polyline/g) ?? []).length, 4);
    assert.match(curves, /epoch 3/);
    assert.equal(lineChart('empty', {}), '');
    assert.equal(trainingCurves(null), '');
  });

  it('renders a whole page with a strict CSP and escaped text', () => {
    const html = renderReport({ ...report, title: '<script>x</script>' }, { cspSource: 'vscode-webview:', nonce: 'abc' });
    assert.match(html, /default-src 'none'/);
    assert.match(html, /style-src 'nonce-abc'/);
    assert.ok(!html.includes('<script>'));
    assert.match(html, /over budget on nano33ble/);
    assert.match(html, /exceeds the 256.0 KB budget/);
    assert.match(html, /Arena use by layer/);
    assert.match(html, /RAM<\/b> 1202.0 KB of 256.0 KB \(470%\) — over budget/);
    assert.equal(escapeHtml(`a<b>&"'`), 'a&#60;b&#62;&#38;&#34;&#39;');
  });

  it('names TFLite layers by their Keras layer when the given names repeat', () => {
    const t = (tensor: string, op: string) => ({ index: 0, name: 'digits_1', tensor, op, output_shape: [1], params_bytes: 0, activation_bytes: 1, macs: 0 });
    assert.deepEqual(
      layerNames([
        t('functional_7_1/digits_1/conv2d_1/Relu;functional_7_1/digits_1/conv2d_1/BiasAdd', 'CONV_2D'),
        t('functional_7_1/digits_1/max_pooling2d_1/MaxPool2d', 'MAX_POOL_2D'),
        t('StatefulPartitionedCall_1:0', 'SOFTMAX'),
      ]),
      ['conv2d_1', 'max_pooling2d_1', 'StatefulPartitionedCall_1:0'],
    );
    assert.deepEqual(layerNames(layers), layers.map((l) => l.name));
  });

  it('draws usage bars without inline styles (the CSP forbids them)', () => {
    const html = renderReport(report, { cspSource: 'x', nonce: 'n' });
    assert.ok(!/style="/.test(html));
    assert.match(html, /<rect class="fill" x="0" y="0" width="100.0%"/); // RAM over budget: capped
    assert.match(html, /<rect class="fill" x="0" y="0" width="22.2%"/); // flash 218350 of 983040
  });

  it('says what to do when there is no training yet, and shows errors', () => {
    const html = renderReport({ ...report, history: null }, { cspSource: 'x', nonce: 'n' });
    assert.match(html, /No training run yet/);
    assert.match(renderReport({ ok: false, error: 'no model' }, { cspSource: 'x', nonce: 'n' }), /no model/);
  });
});
