// Requests to tests/editor/driver.js, which drives the browser page around this extension host:
// logged as `[tinyforge-e2e] {json}`, answered in $TINYFORGE_E2E_DIR/<id>.json.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface DriverAnswer {
  ok: boolean;
  error?: string;
  text?: string;
  path?: string;
}

let counter = 0;

/** Whether a driver is listening (false when the suite runs under another test runner). */
export const hasDriver = (): boolean => !!process.env.TINYFORGE_E2E_DIR;

export async function driver(action: string, params: Record<string, unknown> = {}, timeoutMs = 20000): Promise<DriverAnswer> {
  const dir = process.env.TINYFORGE_E2E_DIR;
  if (!dir) {
    return { ok: false, error: 'no driver' };
  }
  const id = `${Date.now()}-${++counter}-${action}`;
  console.log(`[tinyforge-e2e] ${JSON.stringify({ id, action, ...params })}`);
  const file = path.join(dir, `${id}.json`);
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fs.existsSync(file)) {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as DriverAnswer;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ok: false, error: `the driver did not answer '${action}' within ${timeoutMs} ms` };
}
