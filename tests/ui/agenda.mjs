// Browser test of the agenda screen and the bell's panel (driven by
// tests/ui_screens/agenda.rs). Usage: node agenda.mjs BASE_URL CONFIG_JSON. Prints one JSON
// line per passed step ({"step": …}); exits 1 with {"failed": step, "error": …} at the
// first failure, after saving a screenshot under the artifacts folder.
import { TIMEOUT, harness } from './harness.mjs';

const { base, config, artifacts, browser, step, fail } = await harness('agenda');
let page = null;

const cspViolations = [];
const agendaErrors = []; // uncaught script errors while the agenda is on screen
function watch(p) {
  p.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  p.on('pageerror', (e) => {
    if (new URL(p.url()).pathname === '/agenda') agendaErrors.push(`${e.message}\n${e.stack || ''}`);
  });
}

async function login(p, path) {
  await p.goto(`${base}${path}`);
  await p.waitForURL(/\/login\?next=/, { timeout: TIMEOUT });
  await p.fill('#email', config.rep.email);
  await p.fill('#password', config.rep.password);
  await p.click('button[type="submit"]');
  await p.waitForURL((url) => url.pathname === '/agenda', { timeout: TIMEOUT });
  await p.waitForSelector('body[data-screen-ready="true"]', { timeout: TIMEOUT });
}

/** The day view of the reminders' day (today, unless the test crossed midnight). */
async function openDay(p) {
  const shown = await p.getAttribute('#agenda-view', 'data-date');
  if (shown !== config.date) {
    await p.goto(`${base}/agenda?view=day&date=${config.date}`);
    await p.waitForSelector('body[data-screen-ready="true"]', { timeout: TIMEOUT });
  }
  await p.waitForSelector(`#agenda-view[data-date="${config.date}"][aria-busy="false"]`, { timeout: TIMEOUT });
}

const inDay = (p, id) => p.locator(`#agenda-view .agenda-item[data-id="${id}"]`);
const inOverdue = (p, id) => p.locator(`#agenda-overdue .agenda-item[data-id="${id}"]`);
const csrf = (p) => p.evaluate(() => JSON.parse(document.getElementById('page-data').textContent).csrf);

try {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'light', locale: 'tr-TR' });
  page = await ctx.newPage();
  watch(page);

  await step('the_day_view_shows_todays_reminders_and_appointment', async () => {
    await login(page, '/agenda');
    await page.waitForSelector('body[data-live="ready"]', { timeout: TIMEOUT });
    await openDay(page);
    for (const r of [config.complete, config.snooze]) {
      const item = inDay(page, r.id);
      await item.waitFor({ timeout: TIMEOUT });
      const title = await item.locator('.agenda-title').innerText();
      if (!title.includes(r.title)) throw new Error(`title of ${r.id}: ${title}`);
    }
    // The customer's reminder and the appointment link to the customer.
    const link = inDay(page, config.snooze.id).locator(`a[href="/customers/${config.customer_id}"]`).first();
    await link.waitFor({ timeout: TIMEOUT });
    const appointment = inDay(page, config.appointment.id);
    await appointment.waitFor({ timeout: TIMEOUT });
    await appointment.locator(`a[href="/customers/${config.customer_id}"]`).filter({ hasText: config.customer_name }).first().waitFor({ timeout: TIMEOUT });
    // Sorted by time.
    const dues = await page.locator('#agenda-view .agenda-item').evaluateAll((els) => els.map((e) => Date.parse(e.dataset.due)));
    if (dues.some((d, i) => i && d < dues[i - 1])) throw new Error(`not sorted by time: ${dues}`);
    if ((await page.locator('#agenda-user').count()) !== 0) throw new Error('a rep who sees only their own work got a user picker');
  });

  await step('a_stale_completion_is_rolled_back_with_the_servers_message', async () => {
    // Someone changes the reminder meanwhile (a reassignment to the same person).
    const changed = await page.request.post(`${base}/api/reminders/${config.snooze.id}/reassign`, {
      headers: { 'X-CSRF-Token': await csrf(page) },
      data: { expected_version: config.snooze.version, assignees: [config.rep.id] },
    });
    if (!changed.ok()) throw new Error(`reassign: ${changed.status()} ${await changed.text()}`);
    const item = inDay(page, config.snooze.id);
    const answer = page.waitForResponse((r) => r.url().endsWith(`/api/reminders/${config.snooze.id}/complete`), { timeout: TIMEOUT });
    await item.locator('[data-action="complete"]').click();
    if ((await answer).status() !== 409) throw new Error('expected 409');
    await item.locator('.agenda-error').filter({ hasText: 'başka biri değiştirdi' }).waitFor({ timeout: TIMEOUT });
    if (await item.evaluate((el) => el.classList.contains('done'))) throw new Error('the refused completion stayed');
    await page.locator(`#agenda-view .agenda-item[data-id="${config.snooze.id}"][data-status="open"]`).waitFor({ timeout: TIMEOUT });
  });

  await step('a_reminder_is_completed_in_the_agenda', async () => {
    const item = inDay(page, config.complete.id);
    let release;
    const held = new Promise((resolve) => (release = resolve));
    // Hold the server's answer: the item must look done before it arrives.
    await page.route(`**/api/reminders/${config.complete.id}/complete`, async (route) => {
      await held;
      await route.continue();
    });
    const answer = page.waitForResponse((r) => r.url().endsWith(`/api/reminders/${config.complete.id}/complete`), { timeout: TIMEOUT });
    await item.locator('[data-action="complete"]').click();
    await page.locator(`#agenda-view .agenda-item.done[data-id="${config.complete.id}"]`).waitFor({ timeout: 2000 });
    release();
    const response = await answer;
    if (response.status() !== 200) throw new Error(`complete answered ${response.status()}: ${await response.text()}`);
    await page.unroute(`**/api/reminders/${config.complete.id}/complete`);
    await page.locator(`#agenda-view .agenda-item.done[data-id="${config.complete.id}"]:not(.pending)`).waitFor({ timeout: TIMEOUT });
  });

  await step('a_reminder_is_snoozed_in_the_agenda', async () => {
    const item = inDay(page, config.snooze.id);
    const before = Date.parse(await item.getAttribute('data-due'));
    await item.locator('[data-action="snooze"]').click();
    const menu = page.locator('.agenda-menu[role="menu"]');
    await menu.waitFor({ timeout: TIMEOUT });
    // Esc closes the menu and gives the focus back.
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'detached', timeout: TIMEOUT });
    await item.locator('[data-action="snooze"]').click();
    const answer = page.waitForResponse((r) => r.url().endsWith(`/api/reminders/${config.snooze.id}/snooze`), { timeout: TIMEOUT });
    await menu.locator('[data-choice="1h"]').click();
    const response = await answer;
    if (response.status() !== 200) throw new Error(`snooze answered ${response.status()}: ${await response.text()}`);
    const saved = await response.json();
    if (!(Date.parse(saved.due_at) > before + 30 * 60_000)) throw new Error(`due ${saved.due_at} is not an hour later`);
    // Still on this day: its new time is shown; moved to tomorrow (late evening): gone.
    await page.waitForFunction(
      ([id, due]) => {
        const el = document.querySelector(`#agenda-view .agenda-item[data-id="${id}"]`);
        return !el || Date.parse(el.dataset.due) === Date.parse(due);
      },
      [config.snooze.id, saved.due_at],
      { timeout: TIMEOUT },
    );
  });

  await step('the_overdue_list_shows_a_past_reminder', async () => {
    const item = inOverdue(page, config.overdue.id);
    await item.waitFor({ timeout: TIMEOUT });
    if (!(await item.evaluate((el) => el.classList.contains('is-overdue')))) throw new Error('no overdue marker');
    await item.locator('.agenda-late').waitFor({ timeout: TIMEOUT });
    const count = Number(await page.locator('#agenda-overdue-count').innerText());
    if (!(count >= 1)) throw new Error(`overdue count ${count}`);
    if (!(await page.locator('#agenda-overdue').evaluate((el) => el.classList.contains('has-overdue')))) throw new Error('the panel is not marked');
    // Not in the day view (it was due another day).
    if (config.overdue_day !== config.date && (await inDay(page, config.overdue.id).count())) throw new Error('the past reminder shows in the day');
  });

  await step('a_personal_reminder_is_created_from_the_agenda', async () => {
    await page.click('#agenda-new');
    const dialog = page.locator('dialog[open]');
    await dialog.waitFor({ timeout: TIMEOUT });
    await dialog.locator('input[name="title"]').fill(config.new_title);
    await dialog.locator('input[name="due"]').fill(`${config.date}T${config.new_time}`);
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/reminders') && r.request().method() === 'POST', { timeout: TIMEOUT });
    await dialog.locator('button[type="submit"]').click();
    const response = await answer;
    if (response.status() !== 201) throw new Error(`create answered ${response.status()}: ${await response.text()}`);
    const created = await response.json();
    await inDay(page, created.id).filter({ hasText: config.new_title }).waitFor({ timeout: TIMEOUT });
  });

  await step('a_due_reminder_flashes_in_the_agenda_live', async () => {
    // A reminder falls due while the agenda is open: the list refreshes and flashes it.
    await page.evaluate(() => (window.__notReloaded = true));
    const made = await page.request.post(`${base}/api/customers/${config.customer_id}/reminders`, {
      headers: { 'X-CSRF-Token': await csrf(page) },
      data: { title: config.live_title, due_at: new Date(Date.now() + 1500).toISOString() },
    });
    if (made.status() !== 201) throw new Error(`create: ${made.status()} ${await made.text()}`);
    const id = (await made.json()).id;
    await page.locator(`.agenda-item.flash-row[data-id="${id}"]`).first().waitFor({ timeout: TIMEOUT });
    if (!(await page.evaluate(() => window.__notReloaded === true))) throw new Error('the page reloaded');
  });

  await step('screenshot_light', async () => {
    await page.screenshot({ path: `${artifacts}/agenda-light.png` });
  });

  await step('the_week_view_survives_a_reload', async () => {
    await page.click('#agenda-view-week');
    await page.waitForURL(/view=week/, { timeout: TIMEOUT });
    await page.waitForSelector('#agenda-view[data-view="week"] .agenda-week', { timeout: TIMEOUT });
    const check = async () => {
      const columns = page.locator('.agenda-week .day-col');
      if ((await columns.count()) !== 7) throw new Error(`${await columns.count()} day columns`);
      const first = await columns.first().locator('.day-name').innerText();
      if (first.trim().toLocaleLowerCase('tr') !== 'pazartesi') throw new Error(`the week starts on ${first}`);
      await page.locator(`.day-col[data-date="${config.date}"] .agenda-item[data-id="${config.appointment.id}"]`).waitFor({ timeout: TIMEOUT });
      if ((await page.getAttribute('#agenda-view-week', 'aria-pressed')) !== 'true') throw new Error('the week button is not pressed');
    };
    await check();
    const url = page.url();
    await page.reload();
    await page.waitForSelector('body[data-screen-ready="true"]', { timeout: TIMEOUT });
    if (page.url() !== url) throw new Error(`the reload went to ${page.url()}`);
    await page.waitForSelector('#agenda-view[data-view="week"][aria-busy="false"] .agenda-week', { timeout: TIMEOUT });
    await check();
  });

  await step('screenshot_dark', async () => {
    const dark = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'dark', locale: 'tr-TR' });
    const p = await dark.newPage();
    watch(p);
    await login(p, `/agenda?view=day&date=${config.date}`);
    await p.waitForSelector('#agenda-view[aria-busy="false"] .agenda-item', { timeout: TIMEOUT });
    await p.screenshot({ path: `${artifacts}/agenda-dark.png` });
    await dark.close();
  });

  await step('phone_screenshot', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: 'light', locale: 'tr-TR' });
    const p = await phone.newPage();
    watch(p);
    await login(p, `/agenda?view=day&date=${config.date}`);
    await p.waitForSelector('#agenda-view[aria-busy="false"] .agenda-item', { timeout: TIMEOUT });
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) throw new Error(`the page is ${overflow}px wider than the phone`);
    await p.screenshot({ path: `${artifacts}/agenda-phone.png` });
    await phone.close();
  });

  await step('a_notification_is_marked_read_from_the_bell', async () => {
    const badge = page.locator('#unread');
    const before = Number((await badge.innerText()) || 0);
    if (!(before >= 1)) throw new Error(`unread badge ${before}`);
    await page.click('#bell');
    const row = page.locator(`#notification-list li.notification.unread[data-id="${config.notification.id}"]`);
    await row.waitFor({ timeout: TIMEOUT });
    const text = await row.innerText();
    if (!text.includes(config.notification.body_part)) throw new Error(`the notification reads: ${text}`);
    await row.locator('time').waitFor({ timeout: TIMEOUT });
    const answer = page.waitForResponse((r) => r.url().endsWith(`/api/notifications/${config.notification.id}/read`), { timeout: TIMEOUT });
    await row.locator('.notification-target').click();
    const response = await answer;
    if (response.status() !== 200) throw new Error(`read answered ${response.status()}`);
    // Then its record opens; that page's badge is the server's count.
    await page.waitForURL(`${base}/customers/${config.customer_id}`, { timeout: TIMEOUT });
    await page.waitForLoadState('domcontentloaded');
    const { unread } = await (await page.request.get(`${base}/api/notifications/unread-count`)).json();
    const shown = (await page.locator('#unread').isHidden()) ? 0 : Number(await page.locator('#unread').innerText());
    if (shown !== unread) throw new Error(`the badge shows ${shown}, the server ${unread}`);
    if (!(unread < before)) throw new Error(`unread ${before} → ${unread}`);
  });

  await step('mark_all_read_empties_the_badge', async () => {
    await page.goto(`${base}/agenda`);
    await page.waitForSelector('body[data-screen-ready="true"]', { timeout: TIMEOUT });
    await page.click('#bell');
    await page.locator('#notification-list li.notification').first().waitFor({ timeout: TIMEOUT });
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/notifications/read-all'), { timeout: TIMEOUT });
    await page.click('#read-all');
    if ((await answer).status() !== 200) throw new Error('read-all failed');
    await page.locator('#unread').waitFor({ state: 'hidden', timeout: TIMEOUT });
    if (await page.locator('#notification-list li.notification.unread').count()) throw new Error('rows still unread');
    await page.keyboard.press('Escape');
    await page.locator('#notifications').waitFor({ state: 'hidden', timeout: TIMEOUT });
  });

  await step('no_content_security_policy_violations', async () => {
    if (cspViolations.length) throw new Error(cspViolations.join('\n'));
    if (agendaErrors.length) throw new Error(`script errors on the agenda:\n${agendaErrors.join('\n')}`);
  });
  await browser.close();
} catch (error) {
  await fail(error, page);
}
