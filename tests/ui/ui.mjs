// Browser tests of the web UI (driven by tests/ui.rs): playwright-core with the system's
// Chromium. Usage: node ui.mjs BASE_URL CONFIG_JSON. Prints one JSON line per passed step
// ({"step": …}); exits 1 with {"failed": step, "error": …} at the first failure, after
// saving a screenshot of the page under the artifacts folder.
import { TIMEOUT, harness } from './harness.mjs';

const { base, config, artifacts, browser, step, fail } = await harness('ui');
let page = null;

const column = (p, stage) => p.locator(`.column[data-stage="${stage}"]`);
const cardIn = (p, stage, id) => column(p, stage).locator(`.card[data-id="${id}"]`);

async function login(p, email, password) {
  await p.goto(`${base}/board/sales`);
  await p.waitForURL(/\/login\?next=/);
  await p.fill('#email', email);
  await p.fill('#password', password);
  await p.click('button[type="submit"]');
  await p.waitForURL(`${base}/board/sales`);
  await p.waitForSelector('body[data-board-ready="true"]');
}

async function drag(p, card, stage) {
  const target = column(p, stage).locator('.cards');
  await card.scrollIntoViewIfNeeded();
  const from = await card.boundingBox();
  const to = await target.boundingBox();
  await p.mouse.move(from.x + from.width / 2, from.y + 12);
  await p.mouse.down();
  await p.mouse.move(from.x + from.width / 2 + 10, from.y + 20, { steps: 4 });
  await p.mouse.move(to.x + to.width / 2, to.y + 30, { steps: 12 });
  await p.mouse.move(to.x + to.width / 2, to.y + 34, { steps: 2 });
  await p.mouse.up();
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'light', locale: 'tr-TR' });
  page = await ctx.newPage();
  const cspViolations = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });

  await step('login_refuses_a_wrong_password_in_turkish', async () => {
    await page.goto(`${base}/board/sales`);
    await page.waitForURL(/\/login\?next=/);
    await page.fill('#email', config.manager.email);
    await page.fill('#password', 'yanlis-parola');
    await page.click('button[type="submit"]');
    await page.locator('#login-error').filter({ hasText: 'E-posta veya parola hatalı.' }).waitFor({ timeout: TIMEOUT });
    if ((await page.inputValue('#email')) !== config.manager.email) throw new Error('the email was not kept after the error');
  });

  await step('login_opens_the_board', async () => {
    await page.fill('#password', config.manager.password);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${base}/board/sales`);
    await page.waitForSelector('body[data-board-ready="true"]');
    const headers = await page.locator('.column h2').allTextContents();
    if (headers.join('|') !== config.stage_names_tr.join('|')) throw new Error(`columns: ${headers.join('|')}`);
    await cardIn(page, 'potansiyel', config.cards.drag).waitFor({ timeout: TIMEOUT });
    await page.waitForSelector('body[data-live="ready"]', { timeout: TIMEOUT });
  });

  await step('screenshot_light', async () => {
    await page.screenshot({ path: `${artifacts}/board-light.png` });
  });

  await step('drag_to_the_next_stage_persists_after_reload', async () => {
    const card = cardIn(page, 'potansiyel', config.cards.drag);
    const moved = page.waitForResponse((r) => r.url().endsWith(`/api/cards/${config.cards.drag}/move`));
    await drag(page, card, 'gorusuluyor');
    const response = await moved;
    if (response.status() !== 200) throw new Error(`move answered ${response.status()}: ${await response.text()}`);
    await page.reload();
    await page.waitForSelector('body[data-board-ready="true"]');
    await cardIn(page, 'gorusuluyor', config.cards.drag).waitFor({ timeout: TIMEOUT });
    if (await cardIn(page, 'potansiyel', config.cards.drag).count()) throw new Error('still in potansiyel after reload');
  });

  await step('a_guard_refusal_is_shown_in_turkish_and_the_card_snaps_back', async () => {
    const card = cardIn(page, 'randevu', config.cards.guard);
    await drag(page, card, 'kapora');
    const dialog = page.locator('#move-dialog');
    await dialog.waitFor({ state: 'visible', timeout: TIMEOUT });
    await page.fill('#move-field-deposit_amount', '0');
    await page.screenshot({ path: `${artifacts}/move-dialog.png` });
    const refused = page.waitForResponse((r) => r.url().endsWith(`/api/cards/${config.cards.guard}/move`));
    await page.click('#move-submit');
    const response = await refused;
    if (response.status() !== 422) throw new Error(`expected 422, got ${response.status()}`);
    await cardIn(page, 'randevu', config.cards.guard)
      .locator('.card-error')
      .filter({ hasText: 'Kapora tutarı sıfırdan büyük olmalı.' })
      .waitFor({ timeout: TIMEOUT });
    if (await cardIn(page, 'kapora', config.cards.guard).count()) throw new Error('the refused card stayed in kapora');
    await page.screenshot({ path: `${artifacts}/guard-refusal.png` });
  });

  await step('a_move_in_one_browser_appears_in_another_without_reload', async () => {
    const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'tr-TR' });
    const other = await ctx2.newPage();
    await login(other, config.other.email, config.other.password);
    await other.waitForSelector('body[data-live="ready"]', { timeout: TIMEOUT });
    await other.evaluate(() => {
      window.__notReloaded = true;
    });
    await cardIn(other, 'potansiyel', config.cards.live).waitFor({ timeout: TIMEOUT });
    const moved = page.waitForResponse((r) => r.url().endsWith(`/api/cards/${config.cards.live}/move`));
    await drag(page, cardIn(page, 'potansiyel', config.cards.live), 'gorusuluyor');
    if ((await moved).status() !== 200) throw new Error('the move failed');
    await cardIn(other, 'gorusuluyor', config.cards.live).waitFor({ timeout: TIMEOUT });
    if (!(await other.evaluate(() => window.__notReloaded === true))) throw new Error('the other page reloaded');
    await ctx2.close();
  });

  await step('a_stale_version_is_explained_and_the_card_snaps_back', async () => {
    // Someone edits the card while this page does not hear about it (socket paused).
    await page.evaluate(() => window.akisLive.disconnect());
    const csrf = await page.evaluate(() => window.akisBoard.page.csrf);
    const current = await (await page.request.get(`${base}/api/cards/${config.cards.stale}`)).json();
    const edit = await page.request.patch(`${base}/api/cards/${config.cards.stale}`, {
      headers: { 'X-CSRF-Token': csrf },
      data: { expected_version: current.version, fields: { deposit_amount: 1000 } },
    });
    if (!edit.ok()) throw new Error(`edit: ${edit.status()} ${await edit.text()}`);
    const refused = page.waitForResponse((r) => r.url().endsWith(`/api/cards/${config.cards.stale}/move`));
    await drag(page, cardIn(page, 'potansiyel', config.cards.stale), 'gorusuluyor');
    if ((await refused).status() !== 409) throw new Error('expected 409');
    await page.locator('.column[data-stage="potansiyel"] .column-error').filter({ hasText: 'başka biri değiştirdi' }).waitFor({ timeout: TIMEOUT });
    await cardIn(page, 'potansiyel', config.cards.stale).waitFor({ timeout: TIMEOUT });
    await page.evaluate(() => window.akisLive.connect());
    await page.waitForSelector('body[data-live="ready"]', { timeout: TIMEOUT });
  });

  await step('a_card_moves_with_the_keyboard_alone', async () => {
    const card = cardIn(page, 'potansiyel', config.cards.keyboard);
    // Resolves once the board has handled the server's echo of this move (the board's own
    // handler was registered first, so it has run by then).
    await page.evaluate((id) => {
      window.__echo = new Promise((resolve) => {
        const off = window.akisLive.on('card.moved', (event) => {
          if (event.data?.card?.id === id) {
            off();
            resolve(true);
          }
        });
      });
    }, config.cards.keyboard);
    await card.focus();
    await page.keyboard.press('m');
    await page.locator('#move-stage').waitFor({ state: 'visible', timeout: TIMEOUT });
    await page.selectOption('#move-stage', 'gorusuluyor');
    const moved = page.waitForResponse((r) => r.url().endsWith(`/api/cards/${config.cards.keyboard}/move`));
    await page.locator('#move-submit').focus();
    await page.keyboard.press('Enter');
    if ((await moved).status() !== 200) throw new Error('the keyboard move failed');
    await cardIn(page, 'gorusuluyor', config.cards.keyboard).waitFor({ timeout: TIMEOUT });
    // Also after the server's echo of the move has re-rendered the card.
    await page.evaluate(() => Promise.race([window.__echo, new Promise((_, reject) => setTimeout(() => reject(new Error('no echo of the move within 10 s')), 10_000))]));
    const focused = await page.evaluate(() => document.activeElement?.dataset?.id);
    if (focused !== config.cards.keyboard) throw new Error(`focus did not stay on the moved card (${focused})`);
  });

  await step('a_bulk_move_moves_every_selected_card', async () => {
    if (await page.locator('#bulk-bar').isVisible()) throw new Error('the bulk bar shows with nothing selected');
    const [first, ...rest] = config.cards.bulk;
    const last = rest[rest.length - 1];
    await cardIn(page, 'potansiyel', first).locator('.pick').click();
    await cardIn(page, 'potansiyel', last).locator('.pick').click({ modifiers: ['Shift'] });
    const selected = await page.locator('.card.selected').count();
    if (selected < config.cards.bulk.length) throw new Error(`shift-click selected ${selected}`);
    // Only the wanted ones: a range may include other cards between them.
    for (const el of await page.locator('.card.selected').all()) {
      const id = await el.getAttribute('data-id');
      if (!config.cards.bulk.includes(id)) await el.locator('.pick').click();
    }
    await page.locator('#bulk-bar').waitFor({ state: 'visible' });
    await page.selectOption('#bulk-stage', 'gorusuluyor');
    const done = page.waitForResponse((r) => r.url().endsWith('/api/cards/bulk-move'));
    await page.click('#bulk-move');
    const body = await (await done).json();
    if (body.done !== config.cards.bulk.length) throw new Error(`bulk: ${JSON.stringify(body)}`);
    for (const id of config.cards.bulk) await cardIn(page, 'gorusuluyor', id).waitFor({ timeout: TIMEOUT });
  });

  await step('filters_survive_a_reload_through_the_url', async () => {
    const src = page.locator('.filter[data-filter="sources"]');
    await src.locator('summary').click();
    const refreshed = page.waitForResponse((r) => r.url().includes('/api/pipelines/sales/board?'));
    await src.locator(`input[value="${config.filter.source}"]`).check();
    await refreshed;
    await src.locator('summary').click();
    const searched = page.waitForResponse((r) => r.url().includes('q='));
    await page.fill('#search', config.filter.q);
    await searched;
    await page.waitForFunction(() => document.querySelectorAll('.card').length === 1);
    const url = new URL(page.url());
    if (url.searchParams.get('sources') !== config.filter.source || url.searchParams.get('q') !== config.filter.q) throw new Error(`url: ${page.url()}`);
    await page.reload();
    await page.waitForSelector('body[data-board-ready="true"]');
    const cards = await page.locator('.card').count();
    if (cards !== 1) throw new Error(`after reload ${cards} cards`);
    await page.locator(`.card[data-id="${config.filter.expect}"]`).waitFor({ timeout: TIMEOUT });
    if (!(await src.locator(`input[value="${config.filter.source}"]`).isChecked())) throw new Error('the source filter was lost');
    if ((await page.inputValue('#search')) !== config.filter.q) throw new Error('the search was lost');
    await page.locator('#chips button').first().waitFor();
    await page.goto(`${base}/board/sales`);
    await page.waitForSelector('body[data-board-ready="true"]');
  });

  await step('dark_theme_persists', async () => {
    await page.click('#user-button');
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/me/preferences') && r.request().method() === 'PUT');
    await page.check('input[name="theme"][value="dark"]');
    await saved;
    await page.reload();
    await page.waitForSelector('body[data-board-ready="true"]');
    if ((await page.getAttribute('html', 'data-theme')) !== 'dark') throw new Error('the dark theme was not remembered');
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (bg !== 'rgb(15, 19, 24)') throw new Error(`dark background is ${bg}`);
    await page.screenshot({ path: `${artifacts}/board-dark.png` });
  });

  await step('english_persists', async () => {
    await page.click('#user-button');
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/me/preferences') && r.request().method() === 'PUT');
    const reloaded = page.waitForEvent('load');
    await page.check('input[name="language"][value="en"]');
    await saved;
    await reloaded;
    await page.waitForSelector('body[data-board-ready="true"]');
    await page.reload();
    await page.waitForSelector('body[data-board-ready="true"]');
    if ((await page.getAttribute('html', 'lang')) !== 'en') throw new Error('the language was not remembered');
    const headers = await page.locator('.column h2').allTextContents();
    if (headers.join('|') !== config.stage_names_en.join('|')) throw new Error(`columns: ${headers.join('|')}`);
    await page.locator('#search[placeholder^="Search"]').waitFor();
  });

  await step('phone_screenshot', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: 'light' });
    const p = await phone.newPage();
    await login(p, config.other.email, config.other.password);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) throw new Error(`the page is ${overflow}px wider than the phone`);
    await p.screenshot({ path: `${artifacts}/board-phone.png` });
    await phone.close();
  });

  await step('no_content_security_policy_violations', async () => {
    if (cspViolations.length) throw new Error(cspViolations.join('\n'));
  });
  await browser.close();
} catch (error) {
  await fail(error, page);
}
