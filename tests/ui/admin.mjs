// Browser tests of the admin screen (driven by tests/ui_screens/admin.rs): playwright-core
// with the system's Chromium. Usage: node admin.mjs BASE_URL CONFIG_JSON. Prints one JSON
// line per passed step ({"step": …}); exits 1 with {"failed": step, "error": …} at the
// first failure, after saving a screenshot of the page under the artifacts folder.
import { TIMEOUT, harness } from './harness.mjs';

const { base, config, artifacts, browser, step, fail } = await harness('admin');
let page = null;
const cspViolations = [];

function watchCsp(p) {
  p.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  p.on('pageerror', (e) => cspViolations.push(`page error: ${e.message}`));
}

async function login(p, who, path, ready = 'body[data-screen-ready="true"]') {
  await p.goto(`${base}${path}`);
  await p.waitForURL(/\/login\?next=/, { timeout: TIMEOUT });
  await p.fill('#email', who.email);
  await p.fill('#password', who.password);
  await p.click('button[type="submit"]');
  await p.waitForURL(`${base}${path}`, { timeout: TIMEOUT });
  await p.waitForSelector(ready, { timeout: TIMEOUT });
}

async function open(p, path) {
  await p.goto(`${base}${path}`);
  await p.waitForSelector('body[data-screen-ready="true"]', { timeout: TIMEOUT });
}

const row = (p, email) => p.locator(`#users-table tr[data-email="${email}"]`);

async function expectText(locator, text, what) {
  await locator.filter({ hasText: text }).first().waitFor({ timeout: TIMEOUT }).catch(async () => {
    const shown = (await locator.allTextContents().catch(() => [])).join(' | ');
    throw new Error(`${what}: expected “${text}”, saw “${shown}”`);
  });
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'light', locale: 'tr-TR' });
  page = await ctx.newPage();
  watchCsp(page);

  await step('the_users_list_shows_the_team', async () => {
    await login(page, config.admin, '/admin');
    const tabs = await page.locator('.admin-tabs a').allTextContents();
    if (tabs.join('|') !== 'Kullanıcılar|Tanımlar|İş kuyrukları|Denetim kaydı') throw new Error(`tabs: ${tabs.join('|')}`);
    if ((await page.locator('.admin-tabs a[aria-current="page"]').textContent()) !== 'Kullanıcılar') throw new Error('the users tab is not current');
    await row(page, config.leaver.email).waitFor({ timeout: TIMEOUT });
    await expectText(row(page, config.leaver.email), config.leaver.name, 'the leaver’s row');
    await expectText(row(page, config.leaver.email), 'Satış Temsilcisi', 'the role by its Turkish name');
    await expectText(row(page, config.leaver.email), 'Etkin', 'the active chip');
    await expectText(row(page, config.heir.email), config.heir.name, 'the heir’s row');
    await expectText(row(page, config.admin.email), 'siz', 'the admin marked as “you”');
    const n = await page.locator('#users-table tbody tr').count();
    if (n < 3) throw new Error(`only ${n} users listed`);
    await page.screenshot({ path: `${artifacts}/admin-users-light.png` });
  });

  await step('a_user_is_created', async () => {
    await page.click('#user-create');
    const form = page.locator('#user-form');
    await form.waitFor({ state: 'visible', timeout: TIMEOUT });
    await page.fill('#user-name', config.new_user.name);
    // First an email that is taken: the server's refusal shows in Turkish and the input stays.
    await page.fill('#user-email', config.leaver.email);
    await page.selectOption('#user-role', config.new_user.role);
    await page.fill('#user-password', 'yeni-parola-123');
    const refused = page.waitForResponse((r) => r.url().endsWith('/api/admin/users') && r.request().method() === 'POST');
    await form.locator('button[type="submit"]').click();
    if ((await refused).status() !== 409) throw new Error('a taken email was not refused with 409');
    await form.locator('.form-error').filter({ hasText: 'Bu e-posta adresi başka bir kullanıcıda kayıtlı.' }).waitFor({ timeout: TIMEOUT });
    if ((await page.inputValue('#user-name')) !== config.new_user.name) throw new Error('the name was not kept after the error');
    await page.fill('#user-email', config.new_user.email);
    const created = page.waitForResponse((r) => r.url().endsWith('/api/admin/users') && r.request().method() === 'POST');
    await form.locator('button[type="submit"]').click();
    const response = await created;
    if (response.status() !== 201) throw new Error(`create answered ${response.status()}: ${await response.text()}`);
    await form.waitFor({ state: 'detached', timeout: TIMEOUT });
    await expectText(row(page, config.new_user.email), config.new_user.name, 'the new row');
    await expectText(row(page, config.new_user.email), 'Çağrı / Operasyon', 'the new user’s role');
  });

  await step('the_job_queues_show_their_counts', async () => {
    await page.click('.admin-tabs a[data-section="jobs"]');
    await page.waitForURL(`${base}/admin/jobs`, { timeout: TIMEOUT });
    await page.waitForSelector('body[data-screen-ready="true"]', { timeout: TIMEOUT });
    const webhook = page.locator('#job-counts tr[data-queue="webhook"]');
    await webhook.waitFor({ timeout: TIMEOUT });
    const pending = (await webhook.locator('td[data-state="pending"]').textContent()).trim();
    if (pending !== String(config.jobs.webhook_pending)) throw new Error(`webhook pending: ${pending}, expected ${config.jobs.webhook_pending}`);
    const dead = (await webhook.locator('td[data-state="dead"]').textContent()).trim();
    if (dead !== '1') throw new Error(`webhook dead: ${dead}`);
    const deadRow = page.locator(`#job-list tr[data-id="${config.jobs.dead_id}"]`);
    await deadRow.waitFor({ timeout: TIMEOUT });
    await expectText(deadRow.locator('.job-error'), 'AKIS_WEBHOOK_SECRET', 'the dead job’s last error');
    await page.screenshot({ path: `${artifacts}/admin-jobs-light.png`, fullPage: true });
  });

  await step('a_dead_job_is_retried_and_a_pending_one_cancelled', async () => {
    // Only the dead ones, through the counts table's link.
    await page.locator('#job-counts tr[data-queue="webhook"] td[data-state="dead"] button').click();
    await page.waitForURL(/state=dead/, { timeout: TIMEOUT });
    const deadRow = page.locator(`#job-list tr[data-id="${config.jobs.dead_id}"]`);
    await deadRow.waitFor({ timeout: TIMEOUT });
    // The unfiltered list is on screen until the filtered one arrives: wait for it.
    await page
      .waitForFunction(() => document.querySelectorAll('#job-list tbody tr').length === 1, null, { timeout: TIMEOUT })
      .catch(() => {
        throw new Error('the dead filter shows other jobs');
      });
    await deadRow.waitFor({ timeout: TIMEOUT });
    const retried = page.waitForResponse((r) => r.url().endsWith(`/api/admin/jobs/${config.jobs.dead_id}/retry`));
    await deadRow.locator('button[data-action="retry"]').click();
    if ((await retried).status() !== 200) throw new Error('the retry failed');
    await page.locator(`#job-list tr[data-id="${config.jobs.dead_id}"][data-state="pending"]`).waitFor({ timeout: TIMEOUT });
    await page.locator('#job-counts tr[data-queue="webhook"] td[data-state="pending"]').filter({ hasText: String(config.jobs.webhook_pending + 1) }).waitFor({ timeout: TIMEOUT });
    // Cancel one of the waiting ones.
    await page.selectOption('#job-state', 'pending');
    const cancelRow = page.locator(`#job-list tr[data-id="${config.jobs.cancel_id}"]`);
    await cancelRow.waitFor({ timeout: TIMEOUT });
    await cancelRow.locator('button[data-action="cancel"]').click();
    const dialog = page.locator('dialog[open]');
    await dialog.waitFor({ timeout: TIMEOUT });
    const cancelled = page.waitForResponse((r) => r.url().endsWith(`/api/admin/jobs/${config.jobs.cancel_id}/cancel`));
    await dialog.locator('button[type="submit"]').click();
    if ((await cancelled).status() !== 200) throw new Error('the cancel failed');
    await page.locator(`#job-list tr[data-id="${config.jobs.cancel_id}"][data-state="cancelled"]`).waitFor({ timeout: TIMEOUT });
  });

  await step('an_in_doubt_send_is_resolved_with_a_reason', async () => {
    const effect = page.locator(`#effects tr[data-key="${config.effect.key}"]`);
    await effect.waitFor({ timeout: TIMEOUT });
    await expectText(effect, 'connection reset mid-call', 'the effect’s detail');
    await effect.locator('button[data-action="happened"]').click();
    const dialog = page.locator('dialog[open]');
    await dialog.waitFor({ timeout: TIMEOUT });
    // Without a reason the browser does not send it; with one, the server records it.
    await dialog.locator('button[type="submit"]').click();
    if (!(await dialog.isVisible())) throw new Error('the dialog closed without a reason');
    await page.fill('#effect-note', config.effect.note);
    const resolved = page.waitForResponse((r) => r.url().endsWith('/api/admin/effects/resolve'));
    await dialog.locator('button[type="submit"]').click();
    if ((await resolved).status() !== 200) throw new Error('the resolve failed');
    await page.locator('#effects-empty').waitFor({ timeout: TIMEOUT });
  });

  await step('a_broken_reload_shows_the_diagnostic_and_keeps_the_old_set', async () => {
    await open(page, '/admin/definitions');
    const version = page.locator('#defs-version');
    if ((await version.getAttribute('data-version')) !== config.definitions_version) throw new Error(`version shown: ${await version.getAttribute('data-version')}`);
    await page.click(`.defs-file[data-path="${config.broken.file}"]`);
    await page.locator('#defs-code').waitFor({ timeout: TIMEOUT });
    await page.click('#defs-edit');
    const editor = page.locator('#defs-editor');
    await editor.waitFor({ timeout: TIMEOUT });
    const text = await editor.inputValue();
    if (!text.includes(config.broken.find)) throw new Error('the file does not contain the text to break');
    const broken = text.replace(config.broken.find, config.broken.replace);
    const line = broken.slice(0, broken.indexOf(config.broken.replace)).split('\n').length + config.broken.line_offset;
    await editor.fill(broken);
    await page.locator(`.defs-file[data-path="${config.broken.file}"] .chip`).waitFor({ timeout: TIMEOUT });
    await expectText(page.locator('#defs-changes-count'), '1 dosya değişti', 'the pending change');
    const refused = page.waitForResponse((r) => r.url().endsWith('/api/admin/definitions/reload'));
    await page.click('#defs-reload');
    const response = await refused;
    if (response.status() !== 422) throw new Error(`reload answered ${response.status()}`);
    const diag = page.locator(`#defs-diagnostics .diag[data-file="${config.broken.file}"]`).first();
    await diag.waitFor({ timeout: TIMEOUT });
    const where = `${config.broken.file}:${line}:`;
    await expectText(page.locator('#defs-diagnostics .diag'), where, 'the diagnostic');
    await expectText(page.locator('#defs-diagnostics .diag'), config.broken.message, 'the diagnostic message');
    await expectText(page.locator('#defs-kept'), 'Eski tanımlar geçerli olmaya devam ediyor', 'the old set stays');
    if ((await version.getAttribute('data-version')) !== config.definitions_version) throw new Error('the version changed after a refused reload');
    // The edit is still there, and the diagnostic jumps to its line.
    await page.locator('#defs-diagnostics .diag').filter({ hasText: where }).first().locator('button').click();
    const caret = await page.evaluate(() => {
      const area = document.getElementById('defs-editor');
      return { focused: document.activeElement === area, line: area.value.slice(0, area.selectionStart).split('\n').length };
    });
    if (!caret.focused || caret.line !== line) throw new Error(`jump: ${JSON.stringify(caret)} (wanted line ${line})`);
    if ((await editor.inputValue()) !== broken) throw new Error('the edit was lost');
    await page.screenshot({ path: `${artifacts}/admin-definitions-light.png`, fullPage: true });
  });

  await step('the_audit_log_lists_recent_actions', async () => {
    await page.click('.admin-tabs a[data-section="audit"]');
    await page.waitForURL(`${base}/admin/audit`, { timeout: TIMEOUT });
    await page.waitForSelector('body[data-screen-ready="true"]', { timeout: TIMEOUT });
    const rows = page.locator('#audit-list tbody tr');
    await rows.first().waitFor({ timeout: TIMEOUT });
    await page.locator('#audit-list tr[data-action="user.created"]').filter({ hasText: 'Kullanıcı oluşturuldu' }).first().waitFor({ timeout: TIMEOUT });
    await page.locator('#audit-list tr[data-action="job.retried"]').first().waitFor({ timeout: TIMEOUT });
    await page.locator('#audit-list tr[data-action="job.cancelled"]').first().waitFor({ timeout: TIMEOUT });
    await page.locator('#audit-list tr[data-action="auth.login"]').first().waitFor({ timeout: TIMEOUT });
    await page.screenshot({ path: `${artifacts}/admin-audit-light.png`, fullPage: true });
    // Filtered by action, through the URL as well.
    const filtered = page.waitForResponse((r) => r.url().includes('/api/admin/audit?') && r.url().includes('action=user.created'));
    await page.selectOption('#audit-action', 'user.created');
    await filtered;
    await page.waitForURL(/action=user\.created/, { timeout: TIMEOUT });
    await page.waitForFunction(() => [...document.querySelectorAll('#audit-list tbody tr')].every((r) => r.dataset.action === 'user.created'), null, { timeout: TIMEOUT });
    const details = page.locator('#audit-list tr[data-action="user.created"] details').first();
    await details.locator('summary').click();
    await expectText(page.locator('#audit-list details[open] pre'), config.new_user.email, 'the entry’s details');
  });

  await step('offboarding_logs_the_users_open_browser_out', async () => {
    const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'tr-TR' });
    const other = await ctx2.newPage();
    watchCsp(other);
    // Their own screen (the agenda): what matters here is its live connection.
    await login(other, config.leaver, '/agenda', 'body[data-live="ready"]');

    await open(page, '/admin');
    await row(page, config.leaver.email).locator('button[data-action="offboard"]').click();
    const dialog = page.locator('#offboard-form');
    await dialog.waitFor({ state: 'visible', timeout: TIMEOUT });
    if (!(await page.locator('#offboard-submit').isDisabled())) throw new Error('offboarding can be confirmed before the preview');
    const previewed = page.waitForResponse((r) => r.url().includes(`/api/admin/users/${config.leaver.id}/offboarding?`));
    await page.selectOption('#offboard-to', `user:${config.heir.id}`);
    if ((await previewed).status() !== 200) throw new Error('the preview failed');
    const customers = page.locator('#offboard-preview tr[data-kind="customers"] td.num');
    await customers.waitFor({ timeout: TIMEOUT });
    if ((await customers.textContent()).trim() !== String(config.leaver.customers)) throw new Error(`preview customers: ${await customers.textContent()}`);
    await expectText(page.locator('#offboard-preview li'), `Devralan: ${config.heir.name}`, 'the recipient');
    await expectText(page.locator('#offboard-preview li'), 'Kapanacak oturum: 1', 'the session that ends');
    await page.screenshot({ path: `${artifacts}/admin-offboarding-light.png` });
    const done = page.waitForResponse((r) => r.url().endsWith(`/api/admin/users/${config.leaver.id}/offboard`));
    await page.click('#offboard-submit');
    const response = await done;
    if (response.status() !== 200) throw new Error(`offboard answered ${response.status()}: ${await response.text()}`);
    await expectText(row(page, config.leaver.email), 'Devre dışı', 'the leaver’s row after offboarding');
    await other.waitForURL(/\/login/, { timeout: TIMEOUT });
    await ctx2.close();
  });

  await step('the_screen_in_dark_english_and_on_a_phone', async () => {
    const dark = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'dark', locale: 'tr-TR' });
    const p = await dark.newPage();
    watchCsp(p);
    await login(p, config.admin, '/admin');
    await row(p, config.new_user.email).waitFor({ timeout: TIMEOUT });
    await p.screenshot({ path: `${artifacts}/admin-users-dark.png` });
    await open(p, '/admin/definitions');
    await p.click('.defs-file[data-path="workflows/sales.yaml"]');
    await p.locator('#defs-code').waitFor({ timeout: TIMEOUT });
    await p.screenshot({ path: `${artifacts}/admin-definitions-dark.png` });
    await open(p, '/admin/jobs');
    await p.screenshot({ path: `${artifacts}/admin-jobs-dark.png`, fullPage: true });
    await open(p, '/admin/audit');
    await p.screenshot({ path: `${artifacts}/admin-audit-dark.png`, fullPage: true });
    // English: the same screen, every string from the English catalogue.
    const csrf = await p.evaluate(() => JSON.parse(document.getElementById('page-data').textContent).csrf);
    const r = await p.request.put(`${base}/api/me/preferences`, { headers: { 'X-CSRF-Token': csrf }, data: { language: 'en' } });
    if (!r.ok()) throw new Error(`preferences: ${r.status()}`);
    await open(p, '/admin/jobs');
    const tabs = await p.locator('.admin-tabs a').allTextContents();
    if (tabs.join('|') !== 'Users|Definitions|Job queues|Audit log') throw new Error(`English tabs: ${tabs.join('|')}`);
    await expectText(p.locator('#job-counts th'), 'Pending', 'English column');
    const stray = await p.evaluate(() => (document.getElementById('screen-root').innerText.match(/\badmin\.[a-z_]+\.[a-z_.]+/g) || []).slice(0, 5));
    if (stray.length) throw new Error(`untranslated keys: ${stray.join(', ')}`);
    await p.setViewportSize({ width: 390, height: 844 });
    await open(p, '/admin');
    await p.screenshot({ path: `${artifacts}/admin-users-phone.png`, fullPage: true });
    await dark.close();
  });

  await step('a_manager_sees_only_the_definitions_read_only', async () => {
    const ctx3 = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'tr-TR' });
    const p = await ctx3.newPage();
    watchCsp(p);
    await login(p, config.manager, '/admin');
    const tabs = await p.locator('.admin-tabs a').allTextContents();
    if (tabs.join('|') !== 'Tanımlar') throw new Error(`a manager's tabs: ${tabs.join('|')}`);
    await p.locator('#defs-files').waitFor({ timeout: TIMEOUT });
    await p.click('.defs-file[data-path="workflows/roles.yaml"]');
    await expectText(p.locator('#defs-code'), 'Sistem Sorumlusu', 'the file text');
    for (const id of ['#defs-edit', '#defs-reload', '#defs-validate', '#dry-form', '#defs-upload']) {
      if (await p.locator(id).count()) throw new Error(`a manager is offered ${id}`);
    }
    await ctx3.close();
  });

  await step('no_csp_violations', async () => {
    if (cspViolations.length) throw new Error(cspViolations.join('\n'));
  });

  await browser.close();
} catch (error) {
  await fail(error, page);
}
