// Browser benchmark of the board (driven by benches/ui.rs): for each run a fresh browser
// context logs in and opens the board; reports the time from navigation start to first
// contentful paint and to interactive (every column rendered, drag and filters wired:
// `window.akisReadyAt`), how long scrolling one column takes to bring its next page, and
// how long a click on a card takes to show that customer in the CustomerViewer.
// Usage: node bench.mjs BASE_URL EMAIL PASSWORD RUNS CHROMIUM
import { chromium } from 'playwright-core';

const [base, email, password, runsText, executablePath] = process.argv.slice(2);
const runs = Number(runsText) || 5;
const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const results = [];
for (let i = 0; i < runs; i++) {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const login = await ctx.request.post(`${base}/api/auth/login`, { data: { email, password } });
  if (!login.ok()) throw new Error(`login: ${login.status()}`);
  const page = await ctx.newPage();
  await page.goto(`${base}/board/sales`, { waitUntil: 'load' });
  await page.waitForFunction(() => typeof window.akisReadyAt === 'number');
  const m = await page.evaluate(() => {
    const fcp = performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null;
    const nav = performance.getEntriesByType('navigation')[0];
    return {
      first_contentful_paint_ms: fcp,
      interactive_ms: window.akisReadyAt,
      html_bytes: nav?.transferSize ?? null,
      response_end_ms: nav?.responseEnd ?? null,
      cards_in_dom: document.querySelectorAll('.card').length,
      cards_on_board: [...document.querySelectorAll('[data-count]')].reduce((n, el) => n + Number(el.textContent.replace(/\D/g, '')), 0),
    };
  });
  // The biggest column: scroll to its end and time the next page's arrival.
  const stage = await page.evaluate(() => {
    let best = null;
    let most = -1;
    for (const col of document.querySelectorAll('.column')) {
      const n = Number(col.querySelector('[data-count]').textContent.replace(/\D/g, ''));
      if (n > most) {
        most = n;
        best = col.dataset.stage;
      }
    }
    return best;
  });
  const before = await page.locator(`.column[data-stage="${stage}"] .card`).count();
  const t0 = Date.now();
  await page.evaluate((s) => {
    const list = document.querySelector(`.column[data-stage="${s}"] .cards`);
    list.scrollTop = list.scrollHeight;
  }, stage);
  await page.waitForFunction(([s, n]) => document.querySelectorAll(`.column[data-stage="${s}"] .card`).length > n, [stage, before]);
  m.next_page_ms = Date.now() - t0;
  // One click on a card → the CustomerViewer with the customer's data, timeline, activities,
  // reminders, files and work orders rendered in the side panel.
  const card = page.locator('.card').first();
  await card.scrollIntoViewIfNeeded();
  const t1 = await page.evaluate(() => performance.now());
  await card.locator('.card-name').click();
  await page.waitForSelector('#viewer [data-viewer-ready="true"], #viewer[data-viewer-ready="true"]');
  m.viewer_open_ms = (await page.evaluate(() => performance.now())) - t1;
  // The same inside the page: from the click's handler to the viewer's data on screen (the
  // panel with its skeleton shows at the handler's start).
  m.viewer_in_page_ms = await page.evaluate(() => window.akisViewerReadyAt - window.akisViewerOpenedAt);
  // Which of the viewer's requests took longest (server time + transfer), for the profile.
  m.viewer_slowest = await page.evaluate((since) => {
    const calls = performance.getEntriesByType('resource').filter((e) => e.startTime >= since && e.name.includes('/api/'));
    calls.sort((a, b) => b.duration - a.duration);
    return calls.slice(0, 3).map((e) => `${new URL(e.name).pathname.replace(/[0-9a-f-]{36}/g, '{id}')} ${Math.round(e.duration)} ms`);
  }, t1);
  results.push(m);
  console.log(JSON.stringify({ run: i + 1, ...m }));
  await ctx.close();
}
await browser.close();
