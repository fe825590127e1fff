// Which project a command acts on: the nearest folder with tinyforge.toml (or platformio.ini)
// above the given file. Node-only (no `vscode`), unit-tested.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const SPEC_FILE = 'tinyforge.toml';
export const PIO_FILE = 'platformio.ini';

/** The nearest folder at or above `start` holding one of `markers`, not above `stopAt`. */
export function findProjectRoot(start: string, markers: string[] = [SPEC_FILE, PIO_FILE], stopAt?: string): string | undefined {
  let dir = start;
  try {
    if (!fs.statSync(start).isDirectory()) {
      dir = path.dirname(start);
    }
  } catch {
    dir = path.dirname(start);
  }
  for (;;) {
    if (markers.some((m) => fs.existsSync(path.join(dir, m)))) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir || (stopAt && path.relative(stopAt, dir) === '')) {
      return undefined;
    }
    dir = parent;
  }
}

export const MODEL_FILE = /\.(tflite|onnx|keras|h5)$/i;
