// Browser tests of the work-order screens (driven by tests/ui_screens/work_orders.rs):
// the list, board and calendar views, an order's steps refused and completed with their
// field and file, a comment, a change from a second browser arriving live, screenshots.
// Usage: node work_orders.mjs BASE_URL CONFIG_JSON. One JSON line per passed step
// ({"step": …}); exits 1 with {"failed": step, "error": …} at the first failure, after a
// screenshot of the page under the artifacts folder.
import { TIMEOUT, harness } from './harness.mjs';
import { crc32, deflateSync } from 'node:zlib';

const { base, config, artifacts, browser, step, fail } = await harness('work_orders');
let page = null;

/** A small solid-colour PNG (so the server can make a real preview of it). */
function png(width, height, [r, g, b]) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set([r, g, b], 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const cspViolations = [];
function watchCsp(p) {
  p.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
}

async function login(p, path, who) {
  await p.goto(`${base}${path}`);
  await p.waitForURL(/\/login\?next=/, { timeout: TIMEOUT });
  await p.fill('#email', who.email);
  await p.fill('#password', who.password);
  await p.click('button[type="submit"]');
  await p.waitForURL(`${base}${path}`, { timeout: TIMEOUT });
  await p.waitForSelector('body[data-screen-ready="true"]', { timeout: TIMEOUT });
}

const viewReady = (p) => p.waitForSelector('#wo-view[data-state="ready"]', { timeout: TIMEOUT });
const stepEl = (p, id) => p.locator(`.wo-step[data-step="${id}"]`);
const settled = (p, id, status) => p.waitForSelector(`.wo-step[data-step="${id}"][data-status="${status}"]:not(.pending)`, { timeout: TIMEOUT });
const orderReady = (p) => p.waitForSelector('.wo-order', { timeout: TIMEOUT });

async function noOverflow(p, what) {
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) throw new Error(`${what} is ${overflow}px wider than the phone`);
}

async function drag(p, card, target) {
  await card.scrollIntoViewIfNeeded();
  const from = await card.boundingBox();
  const to = await target.boundingBox();
  await p.mouse.move(from.x + from.width / 2, from.y + from.height - 8);
  await p.mouse.down();
  await p.mouse.move(from.x + from.width / 2 + 10, from.y + from.height, { steps: 4 });
  await p.mouse.move(to.x + to.width / 2, to.y + 30, { steps: 12 });
  await p.mouse.move(to.x + to.width / 2, to.y + 34, { steps: 2 });
  await p.mouse.up();
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'light', locale: 'tr-TR' });
  page = await ctx.newPage();
  watchCsp(page);
  const order = config.order;

  await step('the_work_order_list_shows_the_order', async () => {
    await login(page, '/work-orders', config.main);
    await viewReady(page);
    const row = page.locator(`.wo-row[data-id="${order}"]`);
    await row.waitFor({ timeout: TIMEOUT });
    const text = await row.innerText();
    for (const want of [config.customer_name, 'Teslimat ve Kurulum', 'Açık', '0/6 adım']) {
      if (!text.includes(want)) throw new Error(`the row lacks “${want}”: ${text}`);
    }
    const headers = await page.locator('.wo-table thead th').allInnerTexts();
    if (!headers.join('|').startsWith('Müşteri|Tür|Durum|Atananlar|Termin')) throw new Error(`headers: ${headers.join('|')}`);
    const second = page.locator(`.wo-row[data-id="${config.second}"]`);
    if (!(await second.innerText()).includes(config.second_title)) throw new Error('the titled order shows no title');
    // Filter by status: kept in the URL, a removable chip.
    await page.click('.filter[data-filter="status"] summary');
    const filtered = page.waitForResponse((r) => r.url().includes('/api/work-orders?') && r.url().includes('status=blocked'));
    await page.check('.filter[data-filter="status"] input[value="blocked"]');
    await filtered;
    const onlyBlocked = (id) => {
      const rows = [...document.querySelectorAll('.wo-row')];
      return rows.length > 0 && rows.every((r) => r.dataset.status === 'blocked') && rows.some((r) => r.dataset.id === id);
    };
    await page.waitForFunction(onlyBlocked, config.second, { timeout: TIMEOUT });
    if (new URL(page.url()).searchParams.get('status') !== 'blocked') throw new Error(`url: ${page.url()}`);
    await page.reload();
    await viewReady(page);
    if (!(await page.evaluate(onlyBlocked, config.second))) throw new Error('the status filter did not survive a reload');
    await page.click('.wo-chips button');
    await page.locator(`.wo-row[data-id="${order}"]`).waitFor({ timeout: TIMEOUT });
    // Sorted by due.
    await page.click('#wo-sort-due');
    if (new URL(page.url()).searchParams.get('sort') !== 'due') throw new Error(`sort not in the url: ${page.url()}`);
    await page.screenshot({ path: `${artifacts}/work-orders-light.png` });
  });

  await step('the_board_and_calendar_views_render', async () => {
    await page.click('#wo-tab-board');
    await viewReady(page);
    if (new URL(page.url()).searchParams.get('view') !== 'board') throw new Error(`url: ${page.url()}`);
    const columns = await page.locator('.wo-column h2').allInnerTexts();
    if (columns.map((c) => c.replace(/\s*🔒/, '')).join('|') !== 'Açık|Sürüyor|Engellendi|Tamamlandı|İptal edildi') throw new Error(`columns: ${columns.join('|')}`);
    await page.locator(`.wo-column[data-status="open"] .wo-card[data-id="${order}"]`).waitFor({ timeout: TIMEOUT });
    const blocked = page.locator(`.wo-column[data-status="blocked"] .wo-card[data-id="${config.second}"]`);
    await blocked.waitFor({ timeout: TIMEOUT });
    // Unblock by dragging to “Sürüyor”: a status PATCH.
    const patched = page.waitForResponse((r) => r.url().endsWith(`/api/work-orders/${config.second}`) && r.request().method() === 'PATCH');
    await drag(page, blocked, page.locator('.wo-column[data-status="in_progress"] .wo-cards'));
    const response = await patched;
    if (response.status() !== 200) throw new Error(`PATCH answered ${response.status()}: ${await response.text()}`);
    await page.locator(`.wo-column[data-status="in_progress"] .wo-card[data-id="${config.second}"]:not(.pending)`).waitFor({ timeout: TIMEOUT });

    await page.click('#wo-tab-calendar');
    await viewReady(page);
    const weekdays = await page.locator('.wo-cal-weekday').allInnerTexts();
    if (weekdays.length !== 7 || !/^pzt/i.test(weekdays[0].trim())) throw new Error(`weekdays: ${weekdays.join('|')}`);
    const item = page.locator(`.wo-cal-item[data-order="${order}"][data-step="sozlesme"]`);
    // The contract is due within a few days: this month's grid or the next one.
    const findItem = async () => {
      for (let i = 0; i < 2 && !(await item.count()); i++) {
        await page.click('#wo-cal-next');
        await viewReady(page);
      }
      await item.waitFor({ timeout: TIMEOUT });
    };
    await findItem();
    if (new URL(page.url()).searchParams.get('view') !== 'calendar') throw new Error('the calendar view is not in the url');
    await page.click('#wo-cal-today');
    await viewReady(page);
    const monthTitle = await page.locator('#wo-cal-title').innerText();
    const timeZone = await page.evaluate(() => JSON.parse(document.getElementById('page-data').textContent).timezone);
    const expected = new Intl.DateTimeFormat('tr-TR', { month: 'long', year: 'numeric', timeZone }).format(new Date());
    if (monthTitle.toLocaleLowerCase('tr-TR') !== expected.toLocaleLowerCase('tr-TR')) throw new Error(`calendar title ${monthTitle}, expected ${expected}`);
    await page.locator('.wo-cal-day.today').waitFor({ timeout: TIMEOUT });
    await page.screenshot({ path: `${artifacts}/work-orders-calendar.png` });
    // Open the order from the calendar.
    await findItem();
    await item.click();
    await page.waitForURL(`${base}/work-orders/${order}`, { timeout: TIMEOUT });
    await orderReady(page);
  });

  await step('a_step_with_missing_requirements_is_refused_with_the_reason', async () => {
    await page.waitForSelector('body[data-live="ready"]', { timeout: TIMEOUT });
    const header = await page.locator('.wo-header').innerText();
    for (const want of ['Teslimat ve Kurulum', config.customer_name, 'Açık']) if (!header.includes(want)) throw new Error(`header lacks ${want}: ${header}`);
    if ((await page.getAttribute('#wo-customer', 'href')) !== `/customers/${config.customer}`) throw new Error('the customer link is wrong');
    const names = await page.locator('.wo-step .wo-step-name').allInnerTexts();
    if (names[0] !== 'Sözleşme imzası' || names.length !== 6) throw new Error(`steps: ${names.join('|')}`);
    if (!(await page.isDisabled('#wo-check-odeme_kontrolu'))) throw new Error('a waiting step can be checked');
    const refused = page.waitForResponse((r) => r.url().endsWith('/steps/sozlesme/complete'));
    await page.check('#wo-check-sozlesme');
    const response = await refused;
    if (response.status() !== 422) throw new Error(`expected 422, got ${response.status()}`);
    await stepEl(page, 'sozlesme').locator('.wo-step-error').filter({ hasText: 'Adımı tamamlamak için yüklenmesi gereken dosyalar: sozlesme' }).waitFor({ timeout: TIMEOUT });
    await stepEl(page, 'sozlesme').locator('.wo-slot .field-error').filter({ hasText: 'dosya yüklenmeli' }).waitFor({ timeout: TIMEOUT });
    await settled(page, 'sozlesme', 'ready');
    if (await page.isChecked('#wo-check-sozlesme')) throw new Error('the refused tick was not rolled back');
  });

  await step('a_work_order_step_is_completed', async () => {
    const uploaded = page.waitForResponse((r) => r.url().endsWith(`/api/work-orders/${order}/files`) && r.request().method() === 'POST');
    await page.setInputFiles('#wo-file-sozlesme-sozlesme', { name: 'imzali-sozlesme.png', mimeType: 'image/png', buffer: png(64, 48, [31, 95, 209]) });
    const up = await uploaded;
    if (up.status() !== 201) throw new Error(`upload answered ${up.status()}: ${await up.text()}`);
    const file = stepEl(page, 'sozlesme').locator('.wo-slot[data-slot="sozlesme"] .wo-file');
    await file.filter({ hasText: 'imzali-sozlesme.png' }).waitFor({ timeout: TIMEOUT });
    await page.waitForFunction(() => {
      const img = document.querySelector('.wo-slot[data-slot="sozlesme"] img.wo-thumb');
      return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: TIMEOUT });
    if (!(await stepEl(page, 'sozlesme').locator('.wo-step-error').isHidden())) throw new Error('the error stayed after the upload');
    const done = page.waitForResponse((r) => r.url().endsWith('/steps/sozlesme/complete'));
    await page.check('#wo-check-sozlesme');
    if ((await done).status() !== 200) throw new Error('the completion was refused');
    await settled(page, 'sozlesme', 'done');
    await settled(page, 'odeme_kontrolu', 'ready');
    // A required field: refused while empty, then filled and done.
    const empty = page.waitForResponse((r) => r.url().endsWith('/steps/odeme_kontrolu/complete'));
    await page.check('#wo-check-odeme_kontrolu');
    if ((await empty).status() !== 422) throw new Error('an empty required field was accepted');
    await stepEl(page, 'odeme_kontrolu').locator('.wo-step-error').filter({ hasText: 'eksik alanlar: odeme_referansi' }).waitFor({ timeout: TIMEOUT });
    await settled(page, 'odeme_kontrolu', 'ready');
    await page.fill('#wo-f-odeme_kontrolu-odeme_referansi', config.payment_ref);
    const filled = page.waitForResponse((r) => r.url().endsWith('/steps/odeme_kontrolu/complete'));
    await page.check('#wo-check-odeme_kontrolu');
    const answer = await filled;
    if (answer.status() !== 200) throw new Error(`completion answered ${answer.status()}: ${await answer.text()}`);
    await settled(page, 'odeme_kontrolu', 'done');
    await stepEl(page, 'odeme_kontrolu').locator('.wo-values').filter({ hasText: config.payment_ref }).waitFor({ timeout: TIMEOUT });
    if (!(await page.locator('.wo-header').innerText()).includes('2/6 adım')) throw new Error('the header progress did not follow');
    const dateType = await page.getAttribute('#wo-f-teslimat_planlama-teslimat_tarihi', 'type');
    if (dateType !== 'date') throw new Error(`the delivery date is a ${dateType} input`);
    await page.screenshot({ path: `${artifacts}/work-order-light.png` });
  });

  await step('a_comment_is_added', async () => {
    await page.fill('#wo-comment-body', config.comment);
    const added = page.waitForResponse((r) => r.url().endsWith(`/api/work-orders/${order}/comments`));
    await page.click('#wo-comment-add');
    if ((await added).status() !== 201) throw new Error('the comment was refused');
    await page.locator('.wo-comment:not(.pending)').filter({ hasText: config.comment }).waitFor({ timeout: TIMEOUT });
    if ((await page.inputValue('#wo-comment-body')) !== '') throw new Error('the comment box was not cleared');
  });

  await step('a_step_completed_elsewhere_appears_live', async () => {
    await page.evaluate(() => (window.woNoReload = true));
    const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'tr-TR' });
    const other = await ctx2.newPage();
    watchCsp(other);
    await login(other, `/work-orders/${order}`, config.other);
    await orderReady(other);
    await other.fill('#wo-f-teslimat_planlama-teslimat_tarihi', config.delivery_date);
    const done = other.waitForResponse((r) => r.url().endsWith('/steps/teslimat_planlama/complete'));
    await other.check('#wo-check-teslimat_planlama');
    if ((await done).status() !== 200) throw new Error('the second browser could not complete the step');
    await settled(page, 'teslimat_planlama', 'done');
    await settled(page, 'kurulum', 'ready');
    if (!(await page.evaluate(() => window.woNoReload))) throw new Error('the page reloaded');
    await page.locator('#wo-live').filter({ hasText: 'Teslimat planlama' }).waitFor({ state: 'attached', timeout: TIMEOUT });
    // A file the other browser uploads into a slot appears here too, without a reload.
    const csrf = await other.evaluate(() => JSON.parse(document.getElementById('page-data').textContent).csrf);
    const upload = await other.request.post(`${base}/api/work-orders/${order}/files`, {
      headers: { 'X-CSRF-Token': csrf },
      multipart: { folder: 'kurulum_fotografi', file: { name: 'uzaktan.png', mimeType: 'image/png', buffer: png(16, 16, [31, 95, 209]) } },
    });
    if (upload.status() !== 201) throw new Error(`the second browser's upload: ${upload.status()} ${await upload.text()}`);
    await stepEl(page, 'kurulum').locator('.wo-slot[data-slot="kurulum_fotografi"] .wo-file').filter({ hasText: 'uzaktan.png' }).waitFor({ timeout: TIMEOUT });
    if (!(await page.evaluate(() => window.woNoReload))) throw new Error('the page reloaded');
    await ctx2.close();
  });

  await step('a_file_dropped_on_a_step_is_uploaded', async () => {
    const uploaded = page.waitForResponse((r) => r.url().endsWith(`/api/work-orders/${order}/files`) && r.request().method() === 'POST');
    const bytes = [...png(32, 32, [23, 114, 69])];
    await page.evaluate((data) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(data)], 'salon.png', { type: 'image/png' }));
      const target = document.querySelector('.wo-step[data-step="kurulum"] .wo-step-name');
      target.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: dt }));
      target.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: dt }));
    }, bytes);
    if ((await uploaded).status() !== 201) throw new Error('the dropped file was refused');
    await stepEl(page, 'kurulum').locator('.wo-slot[data-slot="kurulum_fotografi"] .wo-file').filter({ hasText: 'salon.png' }).waitFor({ timeout: TIMEOUT });
  });

  await step('dark_screenshots', async () => {
    const dark = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'dark', locale: 'tr-TR' });
    const p = await dark.newPage();
    watchCsp(p);
    await login(p, '/work-orders', config.main);
    await viewReady(p);
    const bg = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (bg !== 'rgb(15, 19, 24)') throw new Error(`dark background is ${bg}`);
    await p.screenshot({ path: `${artifacts}/work-orders-dark.png` });
    await p.goto(`${base}/work-orders/${order}`);
    await orderReady(p);
    await p.screenshot({ path: `${artifacts}/work-order-dark.png` });
    await dark.close();
  });

  await step('phone_screenshot', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: 'light', locale: 'tr-TR' });
    const p = await phone.newPage();
    watchCsp(p);
    await login(p, `/work-orders/${order}`, config.main);
    await orderReady(p);
    await noOverflow(p, 'the order screen');
    await p.screenshot({ path: `${artifacts}/work-order-phone.png` });
    await p.goto(`${base}/work-orders`);
    await viewReady(p);
    await noOverflow(p, 'the list');
    await p.goto(`${base}/work-orders?view=calendar`);
    await viewReady(p);
    await noOverflow(p, 'the calendar');
    await phone.close();
  });

  await step('no_content_security_policy_violations', async () => {
    if (cspViolations.length) throw new Error(cspViolations.join('\n'));
  });
  await browser.close();
} catch (error) {
  await fail(error, page);
}
