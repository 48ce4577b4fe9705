// What every browser test script shares (tests/ui/*.mjs, run by `run_browser_script` in
// tests/ui.rs): the arguments (`node SCRIPT BASE_URL CONFIG_JSON`, the config carrying
// `chromium` and `artifacts`), Debian's Chromium through playwright-core, and the protocol:
// one JSON line per passed step ({"step": …}); at the first failure a screenshot of the page
// under the artifacts folder, {"failed": step, "error": …} and exit code 1.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

/** Every wait of a step is bounded by this, so a run is bounded. */
export const TIMEOUT = 10_000;

export async function harness(name) {
  const [base, configText] = process.argv.slice(2);
  const config = JSON.parse(configText);
  const artifacts = config.artifacts;
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: config.chromium,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  let current = null;
  async function step(stepName, fn) {
    current = stepName;
    await fn();
    console.log(JSON.stringify({ step: stepName }));
  }
  /** Reports the failure of the current step (screenshot of `page` first) and exits 1. */
  async function fail(error, page) {
    if (page) await page.screenshot({ path: `${artifacts}/failure-${name}-${current}.png` }).catch(() => {});
    console.log(JSON.stringify({ failed: current, error: String(error?.stack || error) }));
    await browser.close().catch(() => {});
    process.exit(1);
  }
  return { base, config, artifacts, browser, step, fail };
}
