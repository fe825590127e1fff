import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findProjectRoot, MODEL_FILE } from '../../src/project';

describe('project lookup', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tinyforge-unit-'));
    fs.mkdirSync(path.join(tmp, 'proj', 'src', 'deep'), { recursive: true });
    fs.writeFileSync(path.join(tmp, 'proj', 'tinyforge.toml'), 'name = "x"\n');
    fs.mkdirSync(path.join(tmp, 'pio'));
    fs.writeFileSync(path.join(tmp, 'pio', 'platformio.ini'), '[env:x]\n');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('finds the nearest project above a file or folder', () => {
    assert.equal(findProjectRoot(path.join(tmp, 'proj', 'src', 'deep', 'a.py')), path.join(tmp, 'proj'));
    assert.equal(findProjectRoot(path.join(tmp, 'proj', 'src')), path.join(tmp, 'proj'));
    assert.equal(findProjectRoot(path.join(tmp, 'pio', 'main.py')), path.join(tmp, 'pio'));
  });

  it('honours the markers asked for', () => {
    assert.equal(findProjectRoot(path.join(tmp, 'pio', 'main.py'), ['tinyforge.toml'], tmp), undefined);
  });

  it('recognises model files', () => {
    assert.ok(MODEL_FILE.test('model.tflite') && MODEL_FILE.test('a/b.ONNX') && MODEL_FILE.test('m.keras'));
    assert.ok(!MODEL_FILE.test('train.py'));
  });
});
