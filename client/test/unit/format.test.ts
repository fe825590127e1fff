import * as assert from 'node:assert/strict';
import {
  boardPickItem,
  deviceSentence,
  figuresText,
  humanBytes,
  isOverBudget,
  jobSummary,
  kbPair,
  ProjectStatus,
  sortBoards,
  statusText,
  statusTooltip,
} from '../../src/format';

const base: ProjectStatus = {
  ok: true,
  root: '/p',
  source: 'tinyforge.toml',
  board: 'nano33ble',
  board_name: 'Arduino Nano 33 BLE Sense',
  ram_budget: 256 * 1024,
  flash_budget: 960 * 1024,
  ram_bytes_estimate: 41 * 1024 + 300,
  flash_bytes_estimate: 84 * 1024 - 200,
  arena_bytes: 3384,
  fits: true,
  measured: false,
  model_file: '/p/train.py',
  problems: [],
};

describe('status text', () => {
  it('shows board, RAM and flash as in the issue', () => {
    assert.equal(statusText(base), '$(circuit-board) nano33ble  RAM 41/256 KB · Flash 84/960 KB');
    assert.equal(figuresText(base), 'RAM 41/256 KB · Flash 84/960 KB');
  });

  it('marks an over-budget project with an error icon', () => {
    const over = { ...base, ram_bytes_estimate: 1_230_804, fits: false };
    assert.ok(isOverBudget(over));
    assert.equal(statusText(over), '$(error) nano33ble  RAM 1202/256 KB · Flash 84/960 KB');
  });

  it('never hides an overflow by rounding', () => {
    assert.deepEqual(kbPair(262144 + 200, 262144), ['256.2', '256.0']);
    assert.deepEqual(kbPair(262144 - 200, 262144), ['256', '256']);
    assert.ok(isOverBudget({ ...base, fits: null, flash_bytes_estimate: 983041 }));
  });

  it('shows the budget alone before there is a figure', () => {
    const none = { ...base, ram_bytes_estimate: null, flash_bytes_estimate: null, fits: null };
    assert.equal(statusText(none), '$(circuit-board) nano33ble  RAM –/256 KB · Flash –/960 KB');
    assert.ok(!isOverBudget(none));
  });

  it('asks for a board when there is none, and survives errors', () => {
    assert.equal(statusText({ ...base, board: null }), '$(circuit-board) TinyForge: no board');
    assert.equal(statusText(undefined), '$(circuit-board) TinyForge');
    assert.match(statusTooltip({ ok: false, error: 'boom' } as ProjectStatus), /boom/);
    assert.equal(statusText({ ok: false, error: 'server not running' } as ProjectStatus), '$(warning) TinyForge');
  });

  it('explains the figures in the tooltip', () => {
    const tip = statusTooltip({ ...base, measured: true });
    assert.match(tip, /Arduino Nano 33 BLE Sense/);
    assert.match(tip, /42,284 B of 262,144 B \(16%\)/);
    assert.match(tip, /Measured by the last build/);
    assert.match(statusTooltip({ ...base, fits: false }), /Over budget/);
  });
});

describe('boards', () => {
  const boards = [
    { id: 'esp32dev', name: 'Espressif ESP32 Dev Module', mcu: 'esp32', ram_bytes: 327680, flash_bytes: 4194304, selected: false },
    { id: 'nano33ble', name: 'Arduino Nano 33 BLE Sense', mcu: 'nrf52840', ram_bytes: 262144, flash_bytes: 983040, selected: true },
    { id: 'pico', name: 'Raspberry Pi Pico', mcu: 'rp2040', ram_bytes: 270336, flash_bytes: 2097152, selected: false },
  ];
  it('puts the selected board first, then by name', () => {
    assert.deepEqual(sortBoards(boards).map((b) => b.id), ['nano33ble', 'esp32dev', 'pico']);
  });
  it('shows RAM and flash in the pick item', () => {
    assert.deepEqual(boardPickItem(boards[1]), {
      label: '$(check) Arduino Nano 33 BLE Sense',
      description: 'nano33ble',
      detail: 'RAM 256 KB · Flash 960 KB · nrf52840',
    });
    assert.equal(humanBytes(4194304), '4 MB');
    assert.equal(humanBytes(270336), '264 KB');
    assert.equal(humanBytes(900), '900 B');
  });
});

describe('job summaries', () => {
  it('names cancel, failure and success', () => {
    assert.match(jobSummary('training', { ok: false, cancelled: true }), /cancelled; the project is as before/);
    assert.match(jobSummary('build', { ok: false, error: 'no data' }), /build failed: no data/);
    assert.equal(jobSummary('training', { ok: true, metrics: { float_accuracy: 0.9777 } }), 'TinyForge: training done, accuracy 97.8%.');
    const report = {
      board: 'nano33ble',
      fits: true,
      ram_bytes_estimate: 50432,
      flash_bytes_estimate: 157640,
      budget: { ram_bytes: 262144, flash_bytes: 983040 },
      tflm_accuracy: 0.9778,
    };
    assert.equal(
      jobSummary('conversion', { ok: true, report }),
      'TinyForge: conversion done, fits nano33ble: RAM 49/256 KB · Flash 154/960 KB; TFLM accuracy 97.8%.',
    );
    assert.match(
      jobSummary('build', { ok: true, report, pio: { ok: false, error: 'PlatformIO cannot install nordicnrf52 offline.' } }),
      /fits nano33ble: .*\. Firmware NOT built: PlatformIO cannot install nordicnrf52 offline\.$/,
    );
    assert.match(jobSummary('build', { ok: true, report, pio: { ok: true, summary: 'RAM 12.3% Flash 20.1%' } }), /Firmware built: RAM 12\.3% Flash 20\.1%$/);
    assert.equal(jobSummary('upload', { ok: true, summary: 'uploaded to /dev/ttyACM0' }), 'TinyForge: upload done: uploaded to /dev/ttyACM0');
  });

  it('says where a verify measured, or why it did not', () => {
    const report = {
      board: 'nano33ble',
      fits: true,
      ram_bytes_estimate: 50724,
      flash_bytes_estimate: 175785,
      budget: { ram_bytes: 262144, flash_bytes: 983040 },
      tflm_accuracy: 0.9778,
    };
    const device = { measured: true, emulated_core: 'Cortex-M4F', machine: 'mps2-an386', kernels: 'cmsis_nn', outputs_identical_percent: 100 };
    assert.equal(
      jobSummary('verification on an emulated board', { ok: true, report: { ...report, device }, device }),
      'TinyForge: verification on an emulated board done, fits nano33ble: RAM 50/256 KB · Flash 172/960 KB; TFLM accuracy 97.8%. ' +
        'Measured on an emulated Cortex-M4F (mps2-an386), cmsis_nn kernels: outputs 100% identical to host TFLM.',
    );
    const reason = 'Espressif ESP32 Dev Module (xtensa-lx6): no emulator; its figures stay estimates.';
    assert.match(jobSummary('build', { ok: true, report: { ...report, device: { measured: false, reason } } }), /97\.8%\. Not run on an emulated board: Espressif ESP32 .*estimates\.$/);
    assert.equal(deviceSentence(undefined), '');
    assert.equal(deviceSentence({ measured: false }), '');
  });
});
