// node driver.js BASE_URL EXT_DEV_PATH TESTS_PATH WORKSPACE
// Opens code-server's workbench in headless Debian chromium with the extension under development
// and its integration tests (they run in code-server's Node extension host, with the real
// `vscode` API), then waits for the tests to finish.
//
// The tests ask this driver for what only the page can do (screenshots, reading or clicking the
// workbench's DOM) by logging `[tinyforge-e2e] {"id": …, "action": …}`; the answer goes to
// $TINYFORGE_E2E_DIR/<id>.json, which the test polls. Writes the counts to counts.json there and
// exits non-zero on any failure, a crash or a timeout.
const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const { chromium } = require('playwright-core');

const [base, devPath, testsPath, folder] = process.argv.slice(2);
const answers = process.env.TINYFORGE_E2E_DIR;
const shots = process.env.TINYFORGE_ARTIFACTS || path.resolve('artifacts/editor');
const timeoutMs = Number(process.env.E2E_TIMEOUT_MS || 170000);
const MARK = '[tinyforge-e2e] ';

(async () => {
  fs.mkdirSync(shots, { recursive: true });
  fs.mkdirSync(answers, { recursive: true });
  const authority = new URL(base).host; // code-server's client sets remoteAuthority = location.host
  const payload = JSON.stringify([
    ['extensionDevelopmentPath', `vscode-remote://${authority}${devPath}`],
    ['extensionTestsPath', `vscode-remote://${authority}${testsPath}`],
  ]);
  const url = `${base}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(payload)}`;
  const t0 = Date.now();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 850 } });
  let finish;
  const exited = new Promise((resolve) => (finish = resolve));
  let result; // {passed, failed, failures}
  await page.exposeFunction('codeAutomationExit', (code) => finish(code));

  const actions = {
    async screenshot(a) {
      const file = path.join(shots, `${a.name}.png`);
      await page.screenshot({ path: file });
      return { path: file };
    },
    // Only visible elements: closed notifications, menus and pickers can linger hidden in the DOM.
    async text(a) {
      const loc = page.locator(a.selector).filter({ visible: true }).first();
      await loc.waitFor({ state: 'attached', timeout: a.timeout ?? 10000 });
      return { text: await loc.innerText() };
    },
    async click(a) {
      let loc = page.locator(a.selector).filter({ visible: true });
      if (a.hasText) {
        loc = loc.filter({ hasText: a.hasText });
      }
      await loc.first().click({ timeout: a.timeout ?? 10000, button: a.button ?? 'left' });
      return {};
    },
    async type(a) {
      await page.keyboard.type(a.text, { delay: 10 });
      return {};
    },
    async press(a) {
      await page.keyboard.press(a.key);
      return {};
    },
    async result(a) {
      result = a;
      return {};
    },
  };
  let queue = Promise.resolve();
  const handle = (request) => {
    queue = queue.then(async () => {
      let answer;
      try {
        answer = { ok: true, ...(await actions[request.action](request)) };
      } catch (err) {
        answer = { ok: false, error: String(err && err.message ? err.message : err) };
      }
      fs.writeFileSync(path.join(answers, `${request.id}.json.tmp`), JSON.stringify(answer));
      fs.renameSync(path.join(answers, `${request.id}.json.tmp`), path.join(answers, `${request.id}.json`));
    });
  };

  // Remote extension-host console output arrives as ('%c…', 'color: …', fmt, ...args).
  page.on('console', async (m) => {
    let parts;
    try {
      parts = await Promise.all(m.args().map((a) => a.jsonValue()));
    } catch {
      parts = [m.text()];
    }
    if (typeof parts[0] === 'string' && parts[0].startsWith('%c')) {
      parts = parts.slice(2);
    }
    const text = util.format(...parts);
    const at = text.indexOf(MARK);
    if (at >= 0) {
      try {
        handle(JSON.parse(text.slice(at + MARK.length).trim()));
      } catch (err) {
        console.log('[driver] bad request:', text.slice(0, 200), String(err));
      }
      return;
    }
    if (/^\s*(✔|✓|\d+\) |\d+ passing|\d+ failing|\d+ pending)|\[test\]|AssertionError|Error:/.test(text) || /TinyForge in VS Code/.test(text)) {
      console.log(text.length > 2000 ? `${text.slice(0, 2000)}…` : text);
    }
  });

  // Newer VS Code ignores the URL `payload` (extensionDevelopmentPath/extensionTestsPath) in a
  // built web workbench unless developmentOptions.enableSmokeTestDriver is set; code-server has
  // no flag for it, so patch the embedded workbench configuration as the page reads it.
  await page.addInitScript(() => {
    const orig = Element.prototype.getAttribute;
    Element.prototype.getAttribute = function (name) {
      const v = orig.call(this, name);
      if (name === 'data-settings' && this.id === 'vscode-workbench-web-configuration' && v) {
        const cfg = JSON.parse(v);
        cfg.developmentOptions = { ...(cfg.developmentOptions || {}), enableSmokeTestDriver: true };
        return JSON.stringify(cfg);
      }
      return v;
    };
  });
  await page.goto(url);
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('TIMEOUT'), timeoutMs))]);
  await queue;
  await page.screenshot({ path: path.join(shots, 'final.png') }).catch(() => {});
  await browser.close();
  const seconds = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`[driver] extension host exit code: ${code} after ${seconds} s; screenshots in ${shots}`);
  let passed = result ? result.passed : 0;
  let failed = result ? result.failed : 0;
  if (code !== 0 && failed === 0) {
    failed = 1; // the host crashed, timed out or never ran the tests: that is a failure too
    console.log(`[driver] the tests did not finish cleanly (${code === 'TIMEOUT' ? `timeout after ${timeoutMs / 1000} s` : `exit ${code}`})`);
  }
  for (const f of (result && result.failures) || []) {
    console.log(`[driver] FAILED: ${f.title}\n    ${String(f.error).split('\n').join('\n    ')}`);
  }
  // run.sh adds up the sessions and prints the one "editor: N passed, N failed" line.
  fs.writeFileSync(path.join(answers, 'counts.json'), JSON.stringify({ passed, failed }));
  console.log(`[driver] ${process.env.TINYFORGE_SUITE || 'suite'}: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && code === 0 ? 0 : 1);
})().catch((err) => {
  console.error('[driver] FAIL', err);
  process.exit(2);
});
