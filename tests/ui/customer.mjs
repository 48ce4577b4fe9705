// Browser tests of the CustomerViewer and the customers list (driven by
// tests/ui_screens/customer.rs). Usage: node customer.mjs BASE_URL CONFIG_JSON; one JSON
// line per passed step; exits 1 with {"failed": step, "error": …} after a screenshot.
import { TIMEOUT, harness } from './harness.mjs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const { base, config, artifacts, browser, step, fail } = await harness('customer');
let page = null;
const cspViolations = [];

function watchCsp(p) {
  p.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
}

async function login(ctx, who, path) {
  const p = await ctx.newPage();
  watchCsp(p);
  await p.goto(`${base}${path}`);
  await p.waitForURL(/\/login\?next=/);
  await p.fill('#email', who.email);
  await p.fill('#password', who.password);
  await p.click('button[type="submit"]');
  await p.waitForURL((url) => url.pathname === path.split('?')[0]);
  return p;
}

const viewerReady = (p) => p.waitForSelector('[data-viewer-ready="true"]', { timeout: TIMEOUT });

try {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'light', locale: 'tr-TR' });
  const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'dark', locale: 'tr-TR' });
  let other;
  const id = config.customer.id;

  await step('a_card_opens_the_customer_viewer', async () => {
    page = await login(ctx, config.manager, '/board/sales');
    await page.waitForSelector('body[data-board-ready="true"]');
    await page.waitForSelector('body[data-live="ready"]', { timeout: TIMEOUT });
    await page.locator(`.card[data-id="${config.customer.card}"] .card-name`).click();
    await page.locator('#viewer').waitFor({ state: 'visible', timeout: TIMEOUT });
    await viewerReady(page);
    const name = (await page.locator('#viewer-title').textContent()).trim();
    if (name !== config.customer.name) throw new Error(`viewer title: ${name}`);
    if (new URL(page.url()).searchParams.get('customer') !== id) throw new Error(`url: ${page.url()}`);
    await page.screenshot({ path: `${artifacts}/viewer-panel-light.png` });
  });

  await step('the_viewer_has_its_own_url', async () => {
    other = await login(ctx2, config.other, `/customers/${id}`);
    await viewerReady(other);
    await other.waitForSelector('body[data-live="ready"]', { timeout: TIMEOUT });
    await other.evaluate(() => {
      window.__notReloaded = true;
    });
    const name = (await other.locator('#viewer-title').textContent()).trim();
    if (name !== config.customer.name) throw new Error(`page title: ${name}`);
  });

  await step('a_note_appears_in_the_timeline_and_in_a_second_browser', async () => {
    const text = `Müşteri ${config.note} için geri arama istedi — çğıöşü`;
    await page.fill('#viewer #note-body', text);
    const saved = page.waitForResponse((r) => r.url().endsWith(`/api/customers/${id}/notes`));
    await page.click('#viewer #note-submit');
    if ((await saved).status() !== 201 && (await saved).status() !== 200) throw new Error(`note: ${(await saved).status()}`);
    await page.locator('#viewer .timeline .event.kind-note:not(.pending)').filter({ hasText: text }).first().waitFor({ timeout: TIMEOUT });
    await other.locator('.timeline .event.kind-note').filter({ hasText: text }).first().waitFor({ timeout: TIMEOUT });
    if (!(await other.evaluate(() => window.__notReloaded === true))) throw new Error('the second browser reloaded');
    const notes = await page.locator('#viewer .timeline .event.kind-note').filter({ hasText: text }).count();
    if (notes !== 1) throw new Error(`the note shows ${notes} times in the author's timeline`);
  });

  await step('an_inline_edit_is_saved_and_shown_live', async () => {
    const city = page.locator('#viewer .editable[data-key="fields.city"]');
    await city.click();
    await city.locator('input').fill('İzmir');
    const saved = page.waitForResponse((r) => r.url().endsWith(`/api/customers/${id}`) && r.request().method() === 'PATCH');
    await city.locator('input').press('Enter');
    if ((await saved).status() !== 200) throw new Error(`patch: ${(await saved).status()}`);
    await city.filter({ hasText: 'İzmir' }).waitFor({ timeout: TIMEOUT });
    await other.locator('.editable[data-key="fields.city"]').filter({ hasText: 'İzmir' }).waitFor({ timeout: TIMEOUT });
  });

  await step('a_tag_is_added', async () => {
    const input = page.locator('#viewer .tag-input');
    await input.fill('sıcak-müşteri');
    const saved = page.waitForResponse((r) => r.url().endsWith(`/api/customers/${id}`) && r.request().method() === 'PATCH');
    await input.press('Enter');
    if ((await saved).status() !== 200) throw new Error('tag not saved');
    await page.locator('#viewer .tag').filter({ hasText: 'sıcak-müşteri' }).waitFor({ timeout: TIMEOUT });
  });

  await step('a_call_result_is_logged', async () => {
    await page.locator('#viewer .quick-actions button').filter({ hasText: 'Arama sonucu gir' }).click();
    const dialog = page.locator('dialog[open]');
    await dialog.waitFor({ timeout: TIMEOUT });
    await dialog.locator('select[name="outcome"]').selectOption('no_answer');
    await dialog.locator('textarea[name="note"]').fill('Açmadı');
    const saved = page.waitForResponse((r) => r.url().endsWith(`/api/customers/${id}/activities`) && r.request().method() === 'POST');
    await dialog.locator('button[type="submit"]').click();
    const response = await saved;
    if (!response.ok()) throw new Error(`activity: ${response.status()} ${await response.text()}`);
    await page.locator('#viewer .activity').filter({ hasText: 'Cevap yok' }).first().waitFor({ timeout: TIMEOUT });
  });

  await step('a_reminder_is_created_from_the_viewer', async () => {
    await page.locator('#viewer .quick-actions button').filter({ hasText: 'Hatırlatma' }).click();
    const dialog = page.locator('dialog[open]');
    await dialog.waitFor({ timeout: TIMEOUT });
    await dialog.locator('input[name="title"]').fill('Teklifi hatırlat');
    const saved = page.waitForResponse((r) => r.url().endsWith(`/api/customers/${id}/reminders`));
    await dialog.locator('button[type="submit"]').click();
    if (!(await saved).ok()) throw new Error('reminder refused');
    await page.locator('#viewer .reminder').filter({ hasText: 'Teklifi hatırlat' }).waitFor({ timeout: TIMEOUT });
  });

  await step('a_dropped_file_is_uploaded_and_previewed', async () => {
    const png = Buffer.from(config.png_base64, 'base64');
    const uploaded = page.waitForResponse((r) => r.url().endsWith(`/api/customers/${id}/files`) && r.request().method() === 'POST');
    // A real drop: a DataTransfer holding the file, dispatched on the drop zone.
    const dataTransfer = await page.evaluateHandle((bytes) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], 'kimlik-ön.png', { type: 'image/png' }));
      return dt;
    }, [...png]);
    await page.dispatchEvent('#viewer .drop-zone', 'dragenter', { dataTransfer });
    await page.dispatchEvent('#viewer .drop-zone', 'drop', { dataTransfer });
    const response = await uploaded;
    if (!response.ok()) throw new Error(`upload: ${response.status()} ${await response.text()}`);
    const file = page.locator('#viewer .file').filter({ hasText: 'kimlik-ön.png' });
    await file.waitFor({ timeout: TIMEOUT });
    const img = file.locator('img.thumb');
    await img.waitFor({ timeout: TIMEOUT });
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle(), { timeout: TIMEOUT });
    // And through the file picker.
    const tmp = join(artifacts, 'teklif.txt');
    writeFileSync(tmp, 'Teklif metni\n');
    const second = page.waitForResponse((r) => r.url().endsWith(`/api/customers/${id}/files`) && r.request().method() === 'POST');
    await page.setInputFiles('#viewer .file-input', tmp);
    if (!(await second).ok()) throw new Error('picker upload failed');
    await page.locator('#viewer .file').filter({ hasText: 'teklif.txt' }).waitFor({ timeout: TIMEOUT });
    await other.locator('.file').filter({ hasText: 'kimlik-ön.png' }).waitFor({ timeout: TIMEOUT });
    await page.screenshot({ path: `${artifacts}/viewer-files-light.png` });
  });

  await step('escape_closes_the_panel_and_the_url_forgets_it', async () => {
    await page.locator('#viewer').focus();
    await page.keyboard.press('Escape');
    await page.locator('#viewer').waitFor({ state: 'hidden', timeout: TIMEOUT });
    if (new URL(page.url()).searchParams.get('customer')) throw new Error('the url still names the customer');
  });

  await step('enter_on_a_focused_card_opens_it_and_escape_returns_to_the_card', async () => {
    const card = page.locator(`.card[data-id="${config.customer.card}"]`);
    await card.focus();
    await page.keyboard.press('Enter');
    await page.locator('#viewer').waitFor({ state: 'visible', timeout: TIMEOUT });
    await viewerReady(page);
    await page.keyboard.press('Escape');
    await page.locator('#viewer').waitFor({ state: 'hidden', timeout: TIMEOUT });
    const focused = await page.evaluate(() => document.activeElement?.dataset?.id);
    if (focused !== config.customer.card) throw new Error(`focus went to ${focused}, not back to the card`);
  });

  await step('screenshots_of_the_customer_page', async () => {
    await page.goto(`${base}/customers/${id}`);
    await viewerReady(page);
    await page.screenshot({ path: `${artifacts}/customer-light.png`, fullPage: true });
    await other.reload();
    await viewerReady(other);
    const bg = await other.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (bg !== 'rgb(15, 19, 24)') throw new Error(`dark background is ${bg}`);
    await other.screenshot({ path: `${artifacts}/customer-dark.png`, fullPage: true });
  });

  await step('turkish_search_finds_the_customer_in_the_list', async () => {
    await page.goto(`${base}/customers`);
    await page.waitForSelector('body[data-screen-ready="true"]');
    const searched = page.waitForResponse((r) => r.url().includes('/api/customers?') && r.url().includes('q='));
    await page.fill('#customers-search', config.search.q);
    await searched;
    await page.waitForFunction((want) => {
      const rows = [...document.querySelectorAll('.customers-table tbody tr[data-id]')];
      return rows.length >= 1 && rows.every((r) => want.includes(r.dataset.id));
    }, config.search.expect, { timeout: TIMEOUT });
    if (new URL(page.url()).searchParams.get('q') !== config.search.q) throw new Error('the search is not in the url');
    await page.reload();
    await page.waitForSelector('body[data-screen-ready="true"]');
    await page.waitForSelector('.customers-table tbody tr[data-id]');
    if ((await page.inputValue('#customers-search')) !== config.search.q) throw new Error('the search was lost on reload');
  });

  await step('chosen_columns_are_kept_per_user', async () => {
    await page.goto(`${base}/customers`);
    await page.waitForSelector('body[data-screen-ready="true"]');
    await page.click('#columns-button');
    const dialog = page.locator('dialog[open]');
    await dialog.locator('input[value="fields.city"]').check();
    await dialog.locator('input[value="tags"]').uncheck();
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/me/preferences'));
    await dialog.locator('button[type="submit"]').click();
    await saved;
    await page.reload();
    await page.waitForSelector('body[data-screen-ready="true"]');
    const headers = await page.locator('.customers-table thead th').allTextContents();
    if (!headers.some((x) => x.includes('Şehir')) || headers.some((x) => x.includes('Etiketler'))) throw new Error(`headers: ${headers.join('|')}`);
    await page.screenshot({ path: `${artifacts}/customers-light.png` });
  });

  await step('a_change_in_another_browser_updates_the_row_live', async () => {
    await page.waitForSelector('body[data-live="ready"]', { timeout: TIMEOUT });
    await page.evaluate(() => {
      window.__listNotReloaded = true;
    });
    const csrf = await other.evaluate(() => JSON.parse(document.getElementById('page-data').textContent).csrf);
    const current = await (await other.request.get(`${base}/api/customers/${id}`)).json();
    const edit = await other.request.patch(`${base}/api/customers/${id}`, {
      headers: { 'X-CSRF-Token': csrf },
      data: { expected_version: current.version, fields: { city: 'Eskişehir' } },
    });
    if (!edit.ok()) throw new Error(`edit: ${edit.status()} ${await edit.text()}`);
    await page.locator(`.customers-table tr[data-id="${id}"]`).filter({ hasText: 'Eskişehir' }).waitFor({ timeout: TIMEOUT });
    if (!(await page.evaluate(() => window.__listNotReloaded === true))) throw new Error('the list reloaded the page');
  });

  await step('a_row_opens_the_viewer_in_the_side_panel', async () => {
    await page.locator(`.customers-table tr[data-id="${id}"] td:nth-child(4)`).click();
    await page.locator('#viewer').waitFor({ state: 'visible', timeout: TIMEOUT });
    await viewerReady(page);
    await page.keyboard.press('Escape');
    await page.locator('#viewer').waitFor({ state: 'hidden', timeout: TIMEOUT });
  });

  await step('two_selected_customers_are_merged', async () => {
    const [keep, drop] = config.merge;
    await page.fill('#customers-search', config.merge_search);
    await page.waitForFunction(([a, b]) => document.querySelector(`tr[data-id="${a}"]`) && document.querySelector(`tr[data-id="${b}"]`), config.merge, { timeout: TIMEOUT });
    await page.locator(`tr[data-id="${keep}"] .pick`).check();
    await page.locator(`tr[data-id="${drop}"] .pick`).check();
    await page.click('#customers-merge');
    const dialog = page.locator('dialog[open]');
    await dialog.locator(`input[name="survivor"][value="${keep}"]`).check();
    await page.screenshot({ path: `${artifacts}/customers-merge-light.png` });
    const merged = page.waitForResponse((r) => r.url().endsWith(`/api/customers/${keep}/merge`));
    await dialog.locator('button[type="submit"]').click();
    const response = await merged;
    if (!response.ok()) throw new Error(`merge: ${response.status()} ${await response.text()}`);
    await page.locator(`tr[data-id="${drop}"]`).waitFor({ state: 'detached', timeout: TIMEOUT });
  });

  await step('a_csv_import_previews_the_mapping_and_reports_each_row', async () => {
    await page.fill('#customers-search', '');
    await page.click('#import-button');
    const dialog = page.locator('dialog[open]');
    const csv = join(artifacts, 'musteriler.csv');
    writeFileSync(csv, config.csv);
    const previewed = page.waitForResponse((r) => r.url().endsWith('/api/imports'));
    await dialog.locator('#import-file').setInputFiles(csv);
    await previewed;
    await dialog.locator('.import-report').waitFor({ timeout: TIMEOUT });
    const text = await dialog.locator('.import-report').textContent();
    if (!text.includes('Telefon') || !text.includes('Satır')) throw new Error(`preview: ${text}`);
    await page.screenshot({ path: `${artifacts}/customers-import-light.png` });
    await dialog.locator('#import-partial').check();
    await page.waitForFunction(() => !document.querySelector('#import-run').disabled, null, { timeout: TIMEOUT });
    const imported = page.waitForResponse((r) => r.url().endsWith('/api/imports') && !r.request().postData()?.includes('"dry_run":true'));
    await dialog.locator('#import-run').click();
    await imported;
    await dialog.locator('.import-report[data-state="done"]').waitFor({ timeout: TIMEOUT });
    const report = await dialog.locator('.import-report').textContent();
    if (!report.includes('1 yeni müşteri oluşturuldu') || !report.includes('1 hatalı satır')) throw new Error(`report: ${report}`);
    await dialog.locator('button[type="submit"]').click();
  });

  await step('customers_dark_screenshot', async () => {
    await other.goto(`${base}/customers`);
    await other.waitForSelector('body[data-screen-ready="true"]');
    await other.screenshot({ path: `${artifacts}/customers-dark.png` });
  });

  await step('phone_viewer_is_full_screen', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: 'light' });
    const p = await login(phone, config.other, '/board/sales');
    await p.waitForSelector('body[data-board-ready="true"]');
    await p.goto(`${base}/board/sales?customer=${id}`);
    await viewerReady(p);
    const box = await p.locator('#viewer').boundingBox();
    if (Math.round(box.width) !== 390) throw new Error(`the viewer is ${box.width}px wide on a phone`);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) throw new Error(`the page is ${overflow}px wider than the phone`);
    await p.screenshot({ path: `${artifacts}/viewer-phone.png` });
    await phone.close();
  });

  await step('no_content_security_policy_violations', async () => {
    if (cspViolations.length) throw new Error(cspViolations.join('\n'));
  });
  await browser.close();
} catch (error) {
  await fail(error, page);
}
