import * as assert from 'node:assert/strict';
import {
  arenaChart,
  DeviceSection,
  deviceHeadline,
  deviceSection,
  escapeHtml,
  InspectReport,
  layerNames,
  layerTable,
  lineChart,
  renderReport,
  trainingCurves,
} from '../../src/reportHtml';

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
  violations: [
    {
      resource: 'ram',
      figure: 1230804,
      limit: 262144,
      biggest: 'tensor arena 1156.0 KB',
      message: 'RAM 1202.0 KB exceeds the 256.0 KB budget on nano33ble',
    },
  ],
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

// The device section of a digits project verified on the emulated Cortex-M4F (tinyforge verify).
const device: DeviceSection = {
  measured: true,
  board: 'nano33ble',
  core: 'cortex-m4f',
  emulated_core: 'Cortex-M4F',
  machine: 'mps2-an386',
  core_note: '',
  kernels: 'cmsis_nn',
  tflm: { kind: 'kit', name: 'TFLM 90b983c (2026-08-20)', commit: '90b983c2b3f1480642e040bbd2ddb37b998f3424', path: '/shared/vendor/tflm-cortex-m' },
  compiler: 'arm-none-eabi-g++ (15:12.2.rel1-1) 12.2.1 20221205',
  compile_seconds: 8.08,
  compiled_objects: 0,
  tflm_objects: 131,
  run_seconds: 0.1,
  samples: 64,
  sample_sources: '64 test',
  compared_with: 'the host TFLM interpreter (tflite-micro, reference kernels)',
  outputs_identical_percent: 98.46,
  outputs_max_abs_diff: 1,
  argmax_agreement_percent: 100,
  accuracy: 0.9375,
  sketch_output: null,
  arena_used_bytes: 3052,
  arena_smallest_bytes: 3056,
  arena_firmware_bytes: 4904,
  arena_static_target_bytes: 3384,
  arena_note: 'the target needs 328 bytes less than the static estimate; the firmware allocates 4,904 bytes: 1,848 spare.',
  arena_head_bytes: 2112,
  arena_tail_bytes: 940,
  arena_tail_kinds: {},
  arena_static_parts: {},
  flash: { model: 11640, 'test sample': 64, 'TFLM runtime': 24290, 'TFLM kernels': 17163, 'CMSIS-NN': 39044, application: 1584, 'C library': 47919 },
  ram: { 'tensor arena': 4904, 'TFLM runtime': 8, application: 412, 'C library': 2721 },
  kernel_flash: { CONV_2D: 5274, FULLY_CONNECTED: 5320, SOFTMAX: 3354 },
  flash_estimate_before: { 'TFLM runtime and kernels': 64000, CONV_2D: 9000, FULLY_CONNECTED: 5000, SOFTMAX: 4000 },
  instructions_per_inference: 280976,
  instructions_min: 280877,
  instructions_max: 281069,
  clock_hz: 64000000,
  cycles_per_instruction: 1.2,
  latency_ms_estimate: 5.268,
  latency_note: 'estimate: 280,976 instructions counted per Invoke() × 1.2 cycles per instruction (assumed for cortex-m4f) at 64 MHz',
  serial: [],
  problems: [],
};

describe('device section of the report', () => {
  const text = (html: string) => html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');

  it('says where the figures were measured, with TFLM and its kernels', () => {
    const html = deviceSection(device);
    assert.equal(deviceHeadline(device), 'measured on an emulated Cortex-M4F (mps2-an386)');
    assert.match(html, /<section id="device"><h2>On the board<\/h2>/);
    assert.match(text(html), /measured on an emulated Cortex-M4F \(mps2-an386\)/);
    assert.match(text(html), /TFLM 90b983c \(2026-08-20\) · cmsis_nn kernels · built for cortex-m4f/);
  });

  it('shows how many outputs are identical, and with CMSIS-NN the agreement', () => {
    const t = text(deviceSection(device));
    assert.match(t, /Outputs identical to the host TFLM interpreter: 98\.46% of 64 test samples · top class agrees on 100% · largest difference 1 · accuracy on these samples 93\.8%/);
    const reference = text(deviceSection({ ...device, kernels: 'reference', outputs_identical_percent: 100, outputs_max_abs_diff: 0 }));
    assert.match(reference, /identical to the host TFLM interpreter: 100% of 64 test samples/);
    assert.ok(!/top class agrees/.test(reference));
  });

  it('lists the arena used, smallest, in the firmware and the static estimate', () => {
    const t = text(deviceSection(device));
    assert.match(t, /used \(arena_used_bytes\) 3,052 B/);
    assert.match(t, /smallest that runs 3,056 B/);
    assert.match(t, /in the firmware \(kTensorArenaSize\) 4,904 B/);
    assert.match(t, /static 32-bit estimate 3,384 B/);
    assert.match(t, /1,848 spare/);
  });

  it('splits flash and RAM per part and per kernel, with the estimates they replace', () => {
    const html = deviceSection(device);
    assert.match(html, /<td>CMSIS-NN<\/td><td class="num">39,044<\/td>/);
    assert.match(html, /<td>total<\/td><td class="num">141,704<\/td>/); // the flash parts
    assert.match(html, /<td>tensor arena<\/td><td class="num">4,904<\/td>/);
    assert.match(html, /<td>CONV_2D<\/td><td class="num">5,274<\/td><td class="num muted">9,000<\/td>/);
    assert.match(html, /<th>estimate before<\/th>/);
  });

  it('gives instructions per inference and the latency marked as an estimate', () => {
    const t = text(deviceSection(device));
    assert.match(t, /280,976 instructions per inference \(280,877–281,069\) · ≈ 5\.27 ms at 64 MHz estimate/);
    assert.match(t, /1\.2 cycles per instruction \(assumed for cortex-m4f\)/);
  });

  it('says why there are no measured figures, or how to get them', () => {
    const reason = 'Espressif ESP32 Dev Module (xtensa-lx6): Xtensa LX6 (ESP32) has no cross-compiler or emulator on this machine; its figures stay estimates.';
    assert.match(text(deviceSection({ measured: false, reason })), new RegExp(`Not run on an emulated board: ${reason.replace(/[()]/g, '\\$&')}`));
    assert.match(text(deviceSection(undefined)), /Not run on an emulated board yet: run TinyForge: Verify on emulated board ?\./);
    assert.match(text(deviceSection({ measured: false, reason: '<b>x</b>' })), /&#60;b&#62;x/);
  });

  it('is part of the whole page, escaped and without inline styles', () => {
    const html = renderReport({ ...report, measured: true, device: { ...device, problems: ['<img src=x>'] } }, { cspSource: 'x', nonce: 'n' });
    assert.match(html, /<section id="budget">[\s\S]*<section id="device">[\s\S]*<section id="arena">/);
    assert.ok(!html.includes('<img'));
    assert.ok(!/style="/.test(html));
    assert.match(renderReport(report, { cspSource: 'x', nonce: 'n' }), /Not run on an emulated board yet/);
  });
});
