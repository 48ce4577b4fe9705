// The agenda: day and week views of appointments and reminders, the overdue list, and
// complete / snooze / reassign inline.
//
// The period lives in the URL (`?view=week&date=2026-12-03&user=…`), so a reload or a
// shared link shows the same agenda. Days are calendar days of the organisation's time
// zone (util.js `fromLocalInput` / `dayOf`). Every action is optimistic: the item changes
// at once and is rolled back, with the server's message on the item, when the server says
// no. `reminder.due` refreshes the lists quietly and flashes the reminder; `resync`
// reloads.
import { api, collator, dayOf, formatDate, formatWith, fromLocalInput, h, opId, pageLang, t, toLocalInput } from './util.js';
import { Screen, confirmDialog, errorText, field, formDialog, select, toast } from './screen.js';
import { initNotifications } from './notifications.js';

// ---------------------------------------------------------------- calendar days

const pad = (n) => String(n).padStart(2, '0');
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

function parts(day) {
  const [, y, m, d] = DAY.exec(day).map(Number);
  return [y, m, d];
}

/** The calendar day `n` days after `day` (both `YYYY-MM-DD`). */
export function addDays(day, n) {
  const [y, m, d] = parts(day);
  const x = new Date(Date.UTC(y, m - 1, d + n));
  return `${x.getUTCFullYear()}-${pad(x.getUTCMonth() + 1)}-${pad(x.getUTCDate())}`;
}

/** 0 for Monday … 6 for Sunday. */
function weekday(day) {
  const [y, m, d] = parts(day);
  return (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;
}

const mondayOf = (day) => addDays(day, -weekday(day));
const startOf = (day) => fromLocalInput(`${day}T00:00`);
const noonOf = (day) => fromLocalInput(`${day}T12:00`);
const today = () => dayOf(new Date());

function validDay(text) {
  if (!DAY.test(String(text || ''))) return false;
  return addDays(text, 0) === text; // rejects 2026-02-31
}

// ---------------------------------------------------------------- small pieces

const SVG = 'http://www.w3.org/2000/svg';
const ICONS = {
  check: 'M5 12.5l4.5 4.5L19 7.5',
  clock: 'M3 12a9 9 0 1 0 18 0a9 9 0 1 0 -18 0M12 7v5l3 2',
  more: 'M5 12h.01M12 12h.01M19 12h.01',
  x: 'M6 6l12 12M18 6L6 18',
  prev: 'M15 6l-6 6 6 6',
  next: 'M9 6l6 6-6 6',
  plus: 'M12 5v14M5 12h14',
};

function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  for (const [k, v] of Object.entries({ viewBox: '0 0 24 24', width: '16', height: '16', 'aria-hidden': 'true', class: `icon icon-${name}` })) svg.setAttribute(k, v);
  const path = document.createElementNS(SVG, 'path');
  for (const [k, v] of Object.entries({ d: ICONS[name], fill: 'none', stroke: 'currentColor', 'stroke-width': name === 'more' ? '3' : '2', 'stroke-linecap': 'round', 'stroke-linejoin': 'round' })) path.setAttribute(k, v);
  svg.append(path);
  return svg;
}

/** A compact action button: an icon, a label (hidden in the week view), a tooltip. */
function action(name, label, onclick, extra = {}) {
  const { icon: glyph, ...attrs } = extra;
  return h('button', { type: 'button', class: `act act-${name}`, title: label, dataset: { action: name }, onclick, ...attrs }, icon(glyph || name), h('span', { class: 'act-label' }, label));
}

/** The user's words for a refused change: known codes from our catalogue, else the server's. */
export function agendaError(error, what = 'reminder') {
  const code = error?.body?.code;
  const fields = error?.body?.fields || {};
  if (!error?.status) return errorText(error);
  if (code === 'stale_version') return t(`agenda.err_stale_${what}`);
  if (error.status === 404) return t(`agenda.err_gone_${what}`);
  if (error.status === 403) return t('agenda.err_forbidden');
  if (code === 'unknown_user' || fields.assignees) return t('agenda.err_user');
  if (fields.title) return t('agenda.err_title');
  if (code === 'invalid_due' || code === 'invalid_snooze' || fields.due_at || fields.due || fields.until) return t('agenda.err_due');
  if (code === 'invalid_status') return t('agenda.err_status');
  return errorText(error);
}

const time = (iso) => formatWith(iso, { hour: '2-digit', minute: '2-digit' });
const dayTime = (iso) => formatWith(iso, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
// How many overdue reminders show before "show all" (fewer on a phone).
const overdueShown = () => (window.matchMedia('(max-width: 640px)').matches ? 2 : 6);
const names = new Map(); // customer id → name (appointments carry no name)

// ---------------------------------------------------------------- menus

let openMenu = null;

function closeMenu(returnFocus) {
  if (!openMenu) return;
  const { el, anchor, key } = openMenu;
  openMenu = null;
  el.remove();
  anchor.setAttribute?.('aria-expanded', 'false');
  if (returnFocus) {
    const target = anchor.isConnected ? anchor : document.querySelector(`[data-key="${key}"] [data-action="${anchor.dataset.action}"]`);
    target?.focus();
  }
}

/** A small menu under `anchor`: `entries` are `{label, run, danger}`. Esc closes it. */
function menu(anchor, entries, key) {
  const wasOpen = openMenu?.anchor === anchor;
  closeMenu(false);
  if (wasOpen) return;
  const buttons = entries.map((e) =>
    h('button', { type: 'button', role: 'menuitem', class: e.danger ? 'danger' : '', dataset: { choice: e.id || '' }, onclick: () => {
      closeMenu(true);
      e.run();
    } }, e.label),
  );
  const el = h('div', { class: 'agenda-menu', role: 'menu' }, buttons);
  el.addEventListener('keydown', (event) => {
    const i = buttons.indexOf(document.activeElement);
    if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      closeMenu(true);
    } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const next = (i + (event.key === 'ArrowDown' ? 1 : buttons.length - 1)) % buttons.length;
      buttons[next].focus();
    } else if (event.key === 'Tab') {
      closeMenu(false);
    }
  });
  document.body.append(el);
  const r = anchor.getBoundingClientRect();
  const width = el.offsetWidth;
  el.style.left = `${Math.max(8, Math.min(r.left, window.innerWidth - width - 8))}px`;
  const below = r.bottom + 4;
  el.style.top = `${below + el.offsetHeight > window.innerHeight - 8 ? Math.max(8, r.top - el.offsetHeight - 4) : below}px`;
  anchor.setAttribute('aria-expanded', 'true');
  openMenu = { el, anchor, key };
  buttons[0]?.focus();
}

document.addEventListener('click', (event) => {
  if (openMenu && !openMenu.el.contains(event.target) && !openMenu.anchor.contains(event.target)) closeMenu(false);
});
window.addEventListener('resize', () => closeMenu(false));

// ---------------------------------------------------------------- the screen

export class AgendaScreen extends Screen {
  constructor(page, root, live) {
    super(page, root, live);
    this.lang = pageLang();
    this.me = page.user?.id;
    this.canPick = Boolean(this.can.scope_all) && this.users.length > 1;
    this.reminders = new Map(); // id → reminder (one object per id, shown in any list)
    this.overdueIds = new Set(); // reminders the overdue list holds since the last load
    this.appointments = new Map();
    this.stale = [];
    this.counts = [];
    this.pending = new Map(); // `kind:id` → optimistic change awaiting the server
    this.errors = new Map(); // `kind:id` → the server's message after a rollback
    this.flash = new Set();
    this.seq = 0;
    this.loaded = false;
    this.readUrl(new URLSearchParams(location.search));
    this.frame = this.buildFrame();
    window.addEventListener('popstate', () => {
      this.readUrl(new URLSearchParams(location.search));
      this.syncToolbar();
      this.load();
    });
    if (live) {
      live.on('reminder.due', (event) => {
        if (event?.data?.reminder_id) this.flash.add(event.data.reminder_id);
        this.refreshSoon();
      });
      live.on('resync', () => this.refreshSoon());
    }
    initNotifications(live);
    this.load();
  }

  // ------------------------------------------------------------ URL state

  readUrl(q) {
    this.view = q.get('view') === 'week' ? 'week' : 'day';
    this.date = validDay(q.get('date')) ? q.get('date') : today();
    const user = q.get('user');
    if (!this.canPick || !user || user === 'me' || user === this.me) this.user = 'me';
    else if (user === 'all' || this.users.some((u) => u.id === user)) this.user = user;
    else this.user = 'me';
  }

  writeUrl() {
    const q = new URLSearchParams({ view: this.view, date: this.date });
    if (this.user !== 'me') q.set('user', this.user);
    const next = `${location.pathname}?${q}`;
    if (next !== `${location.pathname}${location.search}`) history.pushState(null, '', next);
  }

  go(changes) {
    Object.assign(this, changes);
    this.writeUrl();
    this.syncToolbar();
    this.load();
  }

  /** The shown period: `[from, to)` as instants, and its days. */
  period() {
    const first = this.view === 'week' ? mondayOf(this.date) : this.date;
    const count = this.view === 'week' ? 7 : 1;
    const days = Array.from({ length: count }, (_, i) => addDays(first, i));
    return { days, from: startOf(first), to: startOf(addDays(first, count)) };
  }

  userId() {
    return this.user === 'me' ? this.me : this.user === 'all' ? null : this.user;
  }

  /** Whether the agenda being looked at is the reminder's (an assignee), or everyone's. */
  mine(reminder) {
    const id = this.userId();
    return !id || reminder.assignees.some((a) => a.id === id);
  }

  // ------------------------------------------------------------ loading

  refreshSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.load({ quiet: true }), 150);
  }

  async load({ quiet = false } = {}) {
    const seq = ++this.seq;
    const { from, to } = this.period();
    const q = new URLSearchParams({ from, to });
    if (this.user === 'me') q.set('user', 'me');
    else if (this.user !== 'all') q.set('user', this.user);
    if (!quiet && this.loaded) this.renderSkeleton();
    try {
      const [agenda, overdue] = await Promise.all([api('GET', `/api/agenda?${q}`), api('GET', '/api/agenda/overdue')]);
      if (seq !== this.seq) return;
      this.take(agenda, overdue);
      this.renderBody();
      if (!this.loaded) {
        this.loaded = true;
        this.show(this.frame);
      }
      this.fetchNames();
    } catch (error) {
      if (seq !== this.seq) return;
      if (!this.loaded) this.failed(error, () => this.load());
      else if (quiet) toast(agendaError(error), true);
      else this.body.replaceChildren(h('div', { class: 'empty-state', role: 'alert' }, t('screen.error', { message: errorText(error) }), ' ', h('button', { type: 'button', onclick: () => this.load() }, t('screen.retry'))));
    }
  }

  take(agenda, overdue) {
    this.reminders = new Map();
    this.overdueIds = new Set();
    const add = (r) => {
      if (!this.reminders.has(r.id)) this.reminders.set(r.id, r);
      const p = this.pending.get(`reminder:${r.id}`);
      if (p) Object.assign(this.reminders.get(r.id), p);
    };
    for (const r of agenda.reminders || []) add(r);
    for (const r of overdue.reminders || []) {
      if (!this.mine(r)) continue;
      add(r);
      this.overdueIds.add(r.id);
    }
    this.appointments = new Map();
    for (const a of agenda.appointments || []) {
      const p = this.pending.get(`appointment:${a.id}`);
      this.appointments.set(a.id, p ? Object.assign(a, p) : a);
    }
    for (const r of this.reminders.values()) if (r.customer_id && r.customer_name) names.set(r.customer_id, r.customer_name);
    // Cards without contact: everyone's when looking at everyone, or a rep's own.
    this.stale = this.user === 'all' || !this.can.scope_all ? overdue.stale_cards || [] : [];
    this.counts = this.user === 'all' ? overdue.counts || [] : [];
  }

  async fetchNames() {
    const missing = [...new Set([...this.appointments.values()].map((a) => a.customer_id))].filter((id) => id && !names.has(id));
    if (!missing.length) return;
    await Promise.all(
      missing.map((id) =>
        api('GET', `/api/customers/${encodeURIComponent(id)}`)
          .then((c) => names.set(id, c?.name || ''))
          .catch(() => names.set(id, '')),
      ),
    );
    this.renderBody();
  }

  // ------------------------------------------------------------ frame and toolbar

  buildFrame() {
    this.periodLabel = h('h2', { class: 'agenda-period', id: 'agenda-period', 'aria-live': 'polite' });
    const prev = h('button', { type: 'button', id: 'agenda-prev', title: t('agenda.prev'), 'aria-label': t('agenda.prev'), onclick: () => this.step(-1) }, icon('prev'));
    const next = h('button', { type: 'button', id: 'agenda-next', title: t('agenda.next'), 'aria-label': t('agenda.next'), onclick: () => this.step(1) }, icon('next'));
    this.todayButton = h('button', { type: 'button', id: 'agenda-today', onclick: () => this.go({ date: today() }) }, t('agenda.today'));
    this.viewButtons = ['day', 'week'].map((v) =>
      h('button', { type: 'button', id: `agenda-view-${v}`, dataset: { view: v }, 'aria-pressed': 'false', onclick: () => this.view !== v && this.go({ view: v }) }, t(`agenda.view_${v}`)),
    );
    const views = h('div', { class: 'segmented', role: 'group', 'aria-label': t('agenda.view') }, this.viewButtons);
    let picker = null;
    if (this.canPick) {
      const sort = collator();
      const others = this.users.filter((u) => u.id !== this.me).sort((a, b) => sort.compare(a.name, b.name));
      this.picker = select('user', [{ value: 'me', label: t('agenda.user_me') }, { value: 'all', label: t('agenda.user_all') }, ...others.map((u) => ({ value: u.id, label: u.name }))], this.user);
      this.picker.id = 'agenda-user';
      this.picker.addEventListener('change', () => this.go({ user: this.picker.value }));
      picker = h('label', { class: 'agenda-user', for: 'agenda-user' }, h('span', { class: 'sr-only' }, t('agenda.user')), this.picker);
    }
    const create = h('button', { type: 'button', class: 'primary', id: 'agenda-new', onclick: () => this.createReminder() }, icon('plus'), ' ', t('agenda.new_reminder'));
    const toolbar = h('div', { class: 'toolbar agenda-toolbar' }, h('div', { class: 'agenda-nav' }, prev, this.todayButton, next), this.periodLabel, h('span', { class: 'grow' }), views, picker, create);
    this.overduePanel = h('section', { class: 'panel agenda-overdue', id: 'agenda-overdue', 'aria-labelledby': 'agenda-overdue-title' });
    this.body = h('section', { class: 'agenda-main', id: 'agenda-view', 'aria-labelledby': 'agenda-period' });
    this.layout = h('div', { class: 'agenda-layout' }, this.overduePanel, this.body);
    this.syncToolbar();
    this.renderSkeleton();
    return h('div', { class: 'agenda' }, h('h1', { class: 'screen-title' }, t('nav.agenda')), toolbar, this.layout);
  }

  step(direction) {
    this.go({ date: addDays(this.date, direction * (this.view === 'week' ? 7 : 1)) });
  }

  syncToolbar() {
    const { days } = this.period();
    this.periodLabel.textContent =
      this.view === 'week'
        ? `${formatWith(noonOf(days[0]), { day: 'numeric', month: 'short' })} – ${formatWith(noonOf(days[6]), { day: 'numeric', month: 'short', year: 'numeric' })}`
        : formatWith(noonOf(this.date), { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
    for (const b of this.viewButtons) b.setAttribute('aria-pressed', String(b.dataset.view === this.view));
    this.todayButton.disabled = days.includes(today());
    if (this.picker) this.picker.value = this.user;
    this.layout.dataset.view = this.view;
  }

  renderSkeleton() {
    const rows = (n) => Array.from({ length: n }, () => h('div', { class: 'skeleton skeleton-row', 'aria-hidden': 'true' }));
    this.overduePanel.replaceChildren(h('h2', { id: 'agenda-overdue-title' }, t('agenda.overdue')), ...rows(2));
    this.body.setAttribute('aria-busy', 'true');
    this.body.replaceChildren(...rows(5));
  }

  // ------------------------------------------------------------ rendering

  /** Re-renders the lists from the state, keeping the focus on the same item and action. */
  renderBody() {
    const active = document.activeElement;
    const item = active?.closest?.('[data-key]');
    const focus = item && this.root.contains(item) ? { key: item.dataset.key, list: item.closest('[data-list]')?.dataset.list, action: active.dataset?.action } : null;
    this.renderOverdue();
    this.renderPeriod();
    this.body.setAttribute('aria-busy', 'false');
    if (focus) {
      const scope = this.root.querySelector(`[data-list="${focus.list}"]`) || this.root;
      const again = scope.querySelector(`[data-key="${focus.key}"]`) || this.root.querySelector(`[data-key="${focus.key}"]`);
      const target = (focus.action && again?.querySelector(`[data-action="${focus.action}"]:not([disabled])`)) || again;
      target?.focus({ preventScroll: true });
    }
    if (this.flash.size) {
      const ids = [...this.flash];
      this.flash.clear();
      for (const id of ids) {
        const rows = this.root.querySelectorAll(`.agenda-item[data-id="${CSS.escape(id)}"]`);
        rows.forEach((row) => row.classList.add('flash-row'));
        setTimeout(() => rows.forEach((row) => row.classList.remove('flash-row')), 3000);
      }
    }
  }

  overdueList() {
    const now = Date.now();
    return [...this.overdueIds]
      .map((id) => this.reminders.get(id))
      .filter((r) => r && r.status !== 'cancelled' && this.mine(r) && (r.status !== 'open' || Date.parse(r.due_at) < now))
      .sort((a, b) => Date.parse(a.due_at) - Date.parse(b.due_at));
  }

  inPeriod(iso) {
    const { from, to } = this.period();
    const x = Date.parse(iso);
    return x >= Date.parse(from) && x < Date.parse(to);
  }

  renderOverdue() {
    const all = this.overdueList();
    const open = all.filter((r) => r.status === 'open').length;
    // Those the period shows already (with their red marker) are not listed twice.
    const list = all.filter((r) => !this.inPeriod(r.due_at));
    const here = all.length - list.length;
    const head = h(
      'header',
      { class: 'agenda-overdue-head' },
      h('h2', { id: 'agenda-overdue-title' }, t('agenda.overdue')),
      h('span', { class: `count-badge agenda-overdue-count${open ? '' : ' zero'}`, id: 'agenda-overdue-count', 'aria-label': t('agenda.overdue_count', { n: open }) }, String(open)),
    );
    const children = [head];
    if (this.counts.length > 1) {
      const sort = collator();
      children.push(
        h('ul', { class: 'chips agenda-counts', 'aria-label': t('agenda.overdue_by_user') },
          [...this.counts].sort((a, b) => sort.compare(a.name, b.name)).map((c) =>
            h('li', null, h('button', { type: 'button', onclick: () => this.go({ user: c.user_id === this.me ? 'me' : c.user_id }) }, `${c.name} · ${c.overdue_reminders + c.stale_cards}`)),
          ),
        ),
      );
    }
    const limit = overdueShown();
    const shown = this.overdueExpanded ? list : list.slice(0, limit);
    if (here) children.push(h('p', { class: 'agenda-none agenda-overdue-here' }, t(this.view === 'week' ? 'agenda.overdue_in_week' : 'agenda.overdue_in_day', { n: here })));
    children.push(
      list.length
        ? h('ul', { class: 'agenda-list', dataset: { list: 'overdue' } }, shown.map((r) => this.reminderItem(r, 'overdue')))
        : here ? null : h('p', { class: 'agenda-none' }, t('agenda.overdue_none')),
    );
    if (list.length > limit) {
      children.push(
        h('button', { type: 'button', class: 'link agenda-overdue-toggle', id: 'agenda-overdue-toggle', 'aria-expanded': String(Boolean(this.overdueExpanded)), onclick: () => {
          this.overdueExpanded = !this.overdueExpanded;
          this.renderOverdue();
        } }, this.overdueExpanded ? t('agenda.show_less') : t('agenda.show_all', { n: list.length })),
      );
    }
    if (this.stale.length) {
      children.push(
        h('details', { class: 'agenda-stale' },
          h('summary', null, t('agenda.stale', { n: this.stale.length })),
          h('ul', { class: 'agenda-list' }, this.stale.map((c) =>
            h('li', { class: 'agenda-stale-item' },
              h('a', { href: `/customers/${encodeURIComponent(c.customer_id)}` }, c.customer_name),
              h('small', { class: 'muted' }, c.last_contact_at ? t('agenda.last_contact', { when: formatDate(c.last_contact_at) }) : t('agenda.never_contacted')),
            ),
          )),
        ),
      );
    }
    this.overduePanel.classList.toggle('has-overdue', open > 0);
    this.overduePanel.replaceChildren(...children.filter(Boolean));
  }

  /** What the period shows: reminders and appointments, by day, sorted by time. */
  entries() {
    const { from, to } = this.period();
    const lo = Date.parse(from);
    const hi = Date.parse(to);
    const inside = (iso) => {
      const x = Date.parse(iso);
      return x >= lo && x < hi;
    };
    const out = [];
    for (const r of this.reminders.values()) {
      if (r.status === 'cancelled' || !this.mine(r) || !inside(r.due_at)) continue;
      out.push({ kind: 'reminder', at: r.due_at, item: r });
    }
    for (const a of this.appointments.values()) if (inside(a.starts_at)) out.push({ kind: 'appointment', at: a.starts_at, item: a });
    out.sort((x, y) => Date.parse(x.at) - Date.parse(y.at) || (x.kind === y.kind ? String(x.item.id).localeCompare(String(y.item.id)) : x.kind === 'appointment' ? -1 : 1));
    return out;
  }

  renderPeriod() {
    const { days } = this.period();
    const entries = this.entries();
    const render = (e, list) => (e.kind === 'reminder' ? this.reminderItem(e.item, list) : this.appointmentItem(e.item, list));
    this.body.dataset.view = this.view;
    this.body.dataset.date = this.date;
    if (this.view === 'day') {
      if (!entries.length) {
        this.body.replaceChildren(this.emptyDay());
        return;
      }
      const rows = [];
      const isToday = this.date === today();
      let nowShown = !isToday;
      for (const e of entries) {
        if (!nowShown && Date.parse(e.at) > Date.now()) {
          rows.push(h('li', { class: 'agenda-now', 'aria-hidden': 'true' }, h('span', null, t('agenda.now'))));
          nowShown = true;
        }
        rows.push(render(e, 'day'));
      }
      this.body.replaceChildren(h('ul', { class: 'agenda-list agenda-day', dataset: { list: 'day' } }, rows));
      return;
    }
    const byDay = new Map(days.map((d) => [d, []]));
    for (const e of entries) byDay.get(dayOf(e.at))?.push(e);
    const now = today();
    const columns = days.map((d) => {
      const list = byDay.get(d);
      return h(
        'section',
        { class: `day-col${d === now ? ' today' : ''}`, dataset: { date: d }, 'aria-current': d === now ? 'date' : false, 'aria-label': formatWith(noonOf(d), { weekday: 'long', day: 'numeric', month: 'long' }) },
        h('h3', null,
          h('button', { type: 'button', class: 'link day-link', title: t('agenda.open_day'), onclick: () => this.go({ view: 'day', date: d }) },
            h('span', { class: 'day-name' }, formatWith(noonOf(d), { weekday: 'long' })),
            h('span', { class: 'day-date' }, formatWith(noonOf(d), { day: 'numeric', month: 'short' })),
          ),
          list.length ? h('span', { class: 'count' }, String(list.length)) : null,
        ),
        list.length ? h('ul', { class: 'agenda-list', dataset: { list: `week-${d}` } }, list.map((e) => render(e, `week-${d}`))) : h('p', { class: 'agenda-none' }, t('agenda.day_free')),
      );
    });
    const nodes = [];
    if (!entries.length) nodes.push(h('div', { class: 'empty-state agenda-empty' }, h('p', null, t('agenda.week_empty')), h('button', { type: 'button', onclick: () => this.createReminder() }, t('agenda.new_reminder'))));
    nodes.push(h('div', { class: 'agenda-week' }, columns));
    this.body.replaceChildren(...nodes);
  }

  emptyDay() {
    const past = this.date < today();
    return h(
      'div',
      { class: 'empty-state agenda-empty' },
      h('p', null, past ? t('agenda.day_empty_past') : t('agenda.day_empty')),
      h('p', { class: 'muted' }, t('agenda.day_empty_hint')),
      h('div', { class: 'agenda-empty-actions' },
        h('button', { type: 'button', class: 'primary', onclick: () => this.createReminder() }, t('agenda.new_reminder')),
        this.view === 'day' ? h('button', { type: 'button', onclick: () => this.go({ view: 'week' }) }, t('agenda.see_week')) : null,
      ),
    );
  }

  customerLink(id, name) {
    if (!id) return h('span', { class: 'chip agenda-personal' }, t('agenda.personal'));
    return h('a', { class: 'agenda-customer', href: `/customers/${encodeURIComponent(id)}` }, name || names.get(id) || t('agenda.customer'));
  }

  errorOf(key) {
    const message = this.errors.get(key);
    return message ? h('p', { class: 'agenda-error', role: 'alert' }, message) : null;
  }

  reminderItem(r, list) {
    const key = `reminder:${r.id}`;
    const pending = this.pending.has(key);
    const done = r.status === 'done';
    const overdue = r.status === 'open' && Date.parse(r.due_at) < Date.now();
    const title = this.lang === 'en' ? r.title_en || r.title_tr : r.title_tr;
    const when = list === 'overdue' || list === 'day' && dayOf(r.due_at) !== this.date ? dayTime(r.due_at) : time(r.due_at);
    const others = r.assignees.filter((a) => a.id !== this.userId());
    const meta = [
      this.customerLink(r.customer_id, r.customer_name),
      overdue ? h('span', { class: 'chip bad agenda-late' }, t('agenda.late')) : null,
      done ? h('span', { class: 'chip ok' }, t('agenda.done')) : null,
      r.snoozes ? h('span', { class: 'muted' }, t('agenda.snoozed_times', { n: r.snoozes })) : null,
      this.user === 'all' || others.length ? h('span', { class: 'muted agenda-assignees' }, r.assignees.map((a) => a.name).join(', ')) : null,
    ];
    const actions = done
      ? []
      : [
          action('complete', t('agenda.complete'), () => this.complete(r.id), { icon: 'check', disabled: pending, 'aria-label': t('agenda.complete_named', { title }) }),
          action('snooze', t('agenda.snooze'), (e) => this.snoozeMenu(e.currentTarget, r.id), { icon: 'clock', disabled: pending, 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-label': t('agenda.snooze_named', { title }) }),
          action('more', t('agenda.more'), (e) => this.moreMenu(e.currentTarget, r.id), { icon: 'more', disabled: pending, 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-label': t('agenda.more_named', { title }) }),
        ];
    return h(
      'li',
      {
        class: `agenda-item reminder${overdue ? ' is-overdue' : ''}${done ? ' done' : ''}${pending ? ' pending' : ''}`,
        tabindex: '-1',
        dataset: { kind: 'reminder', id: r.id, key, due: r.due_at, status: r.status, customer: r.customer_id || '' },
      },
      h('time', { class: 'agenda-time', datetime: r.due_at, title: formatDate(r.due_at) }, when),
      h('div', { class: 'agenda-content' },
        h('div', { class: 'agenda-title' }, h('span', { class: 'agenda-kind', title: t('agenda.reminder') }, icon('clock'), h('span', { class: 'sr-only' }, t('agenda.reminder'))), r.customer_id ? h('a', { href: `/customers/${encodeURIComponent(r.customer_id)}`, class: 'agenda-title-link' }, title) : h('span', null, title)),
        h('div', { class: 'agenda-meta' }, meta),
        r.note ? h('p', { class: 'agenda-note muted' }, r.note) : null,
        this.errorOf(key),
      ),
      actions.length ? h('div', { class: 'agenda-actions' }, actions) : null,
    );
  }

  appointmentItem(a, list) {
    const key = `appointment:${a.id}`;
    const pending = this.pending.has(key);
    const closed = !['planned', 'confirmed'].includes(a.status);
    const span = [time(a.starts_at), a.ends_at ? h('span', { class: 'agenda-end' }, `–${time(a.ends_at)}`) : null];
    const where = a.online ? t('agenda.online') : a.place;
    const name = names.get(a.customer_id);
    const actions = closed || !this.can.customers_edit
      ? []
      : [
          action('done', t('agenda.appointment_done'), () => this.setAppointment(a.id, 'done'), { icon: 'check', disabled: pending }),
          action('cancel', t('agenda.appointment_cancel_short'), () => this.cancelAppointment(a.id), { icon: 'x', disabled: pending, 'aria-label': t('agenda.appointment_cancel') }),
        ];
    return h(
      'li',
      {
        class: `agenda-item appointment status-${a.status}${closed ? ' done' : ''}${pending ? ' pending' : ''}`,
        tabindex: '-1',
        dataset: { kind: 'appointment', id: a.id, key, due: a.starts_at, status: a.status, customer: a.customer_id },
      },
      h('time', { class: 'agenda-time', datetime: a.starts_at, title: formatDate(a.starts_at) }, list === 'day' || list.startsWith('week') ? span : dayTime(a.starts_at)),
      h('div', { class: 'agenda-content' },
        h('div', { class: 'agenda-title' },
          h('span', { class: 'agenda-kind appointment-kind', title: t('agenda.appointment') }, h('span', { class: 'sr-only' }, t('agenda.appointment'))),
          h('a', { href: `/customers/${encodeURIComponent(a.customer_id)}`, class: 'agenda-title-link' }, name ? t('agenda.appointment_with', { name }) : t('agenda.appointment')),
        ),
        h('div', { class: 'agenda-meta' },
          where ? h('span', null, where) : null,
          a.meeting_url ? h('a', { href: a.meeting_url, target: '_blank', rel: 'noopener noreferrer' }, t('agenda.meeting_link')) : null,
          h('span', { class: `chip${a.status === 'done' ? ' ok' : a.status === 'cancelled' || a.status === 'no_show' ? ' bad' : ''}` }, t(`agenda.status_${a.status}`)),
        ),
        a.note ? h('p', { class: 'agenda-note muted' }, a.note) : null,
        this.errorOf(key),
      ),
      actions.length ? h('div', { class: 'agenda-actions' }, actions) : null,
    );
  }

  // ------------------------------------------------------------ actions

  find(kind, id) {
    return kind === 'reminder' ? this.reminders.get(id) : this.appointments.get(id);
  }

  /**
   * Applies `change` at once, then `request(item)`; the server's answer replaces the item,
   * or the change is rolled back and the server's message shown on the item. A conflict
   * (someone else changed it) also reloads the lists, keeping the message.
   */
  async mutate(kind, id, change, request) {
    const key = `${kind}:${id}`;
    const item = this.find(kind, id);
    if (!item || this.pending.has(key)) return null;
    const before = Object.fromEntries(Object.keys(change).map((k) => [k, item[k]]));
    this.errors.delete(key);
    this.pending.set(key, change);
    Object.assign(item, change);
    this.renderBody();
    try {
      const saved = await request(item);
      this.pending.delete(key);
      const current = this.find(kind, id);
      if (current && saved) Object.assign(current, saved);
      this.renderBody();
      return saved;
    } catch (error) {
      this.pending.delete(key);
      const current = this.find(kind, id);
      if (current) Object.assign(current, before);
      this.errors.set(key, agendaError(error, kind));
      this.renderBody();
      if (error?.status === 409 || error?.status === 404) this.load({ quiet: true });
      return null;
    }
  }

  complete(id) {
    return this.mutate('reminder', id, { status: 'done', overdue: false }, (r) => api('POST', `/api/reminders/${encodeURIComponent(id)}/complete`, { expected_version: r.version }, opId()));
  }

  snooze(id, until) {
    if (!until) return null;
    return this.mutate('reminder', id, { due_at: until, overdue: false }, (r) => api('POST', `/api/reminders/${encodeURIComponent(id)}/snooze`, { expected_version: r.version, until }, opId())).then((saved) => {
      if (saved && !this.entries().some((e) => e.item.id === id)) toast(t('agenda.snoozed_to', { when: formatDate(saved.due_at) }));
      return saved;
    });
  }

  snoozeMenu(anchor, id) {
    const minutes = (n) => new Date(Date.now() + n * 60_000).toISOString();
    menu(anchor, [
      { id: '15m', label: t('agenda.snooze_15m'), run: () => this.snooze(id, minutes(15)) },
      { id: '1h', label: t('agenda.snooze_1h'), run: () => this.snooze(id, minutes(60)) },
      { id: 'tomorrow', label: t('agenda.snooze_tomorrow'), run: () => this.snooze(id, fromLocalInput(`${addDays(today(), 1)}T09:00`)) },
      { id: 'pick', label: t('agenda.snooze_pick'), run: () => this.snoozePick(id) },
    ], `reminder:${id}`);
  }

  async snoozePick(id) {
    const r = this.reminders.get(id);
    if (!r) return;
    const base = Math.max(Date.now(), Date.parse(r.due_at)) + 60 * 60_000;
    const input = h('input', { type: 'datetime-local', name: 'until', required: true, value: toLocalInput(new Date(base)), min: toLocalInput(new Date()) });
    const data = await formDialog({
      title: t('agenda.snooze_pick_title'),
      submitLabel: t('agenda.snooze'),
      build: (body) => body.append(field(t('agenda.snooze_until'), input)),
    });
    if (data) this.snooze(id, fromLocalInput(data.get('until')));
  }

  moreMenu(anchor, id) {
    const entries = [];
    if (this.canPick) entries.push({ id: 'reassign', label: t('agenda.reassign'), run: () => this.reassign(id) });
    entries.push({ id: 'cancel', label: t('agenda.cancel_reminder'), danger: true, run: () => this.cancelReminder(id) });
    menu(anchor, entries, `reminder:${id}`);
  }

  async reassign(id) {
    const r = this.reminders.get(id);
    if (!r) return;
    const sort = collator();
    const options = [...this.users].sort((a, b) => sort.compare(a.name, b.name)).map((u) => ({ value: u.id, label: u.name }));
    const picker = select('assignee', options, r.assignees[0]?.id);
    const saved = await formDialog({
      title: t('agenda.reassign_title'),
      submitLabel: t('agenda.reassign'),
      build: (body) => body.append(h('p', { class: 'muted' }, this.lang === 'en' ? r.title_en : r.title_tr), field(t('agenda.assignee'), picker)),
      submit: (data) => api('POST', `/api/reminders/${encodeURIComponent(id)}/reassign`, { expected_version: this.reminders.get(id)?.version ?? r.version, assignees: [data.get('assignee')] }, opId()).catch((error) => {
        if (error?.body?.code === 'stale_version') this.load({ quiet: true });
        throw new Error(agendaError(error));
      }),
    });
    if (!saved || !saved.id) return;
    const current = this.reminders.get(id);
    if (current) Object.assign(current, saved);
    this.errors.delete(`reminder:${id}`);
    this.renderBody();
    toast(t('agenda.reassigned', { name: saved.assignees.map((a) => a.name).join(', ') }));
  }

  async cancelReminder(id) {
    const r = this.reminders.get(id);
    if (!r) return;
    const title = this.lang === 'en' ? r.title_en : r.title_tr;
    if (!(await confirmDialog(t('agenda.cancel_reminder'), t('agenda.cancel_reminder_text', { title }), t('agenda.cancel_reminder')))) return;
    await this.mutate('reminder', id, { status: 'cancelled' }, (x) => api('DELETE', `/api/reminders/${encodeURIComponent(id)}?expected_version=${x.version}`, undefined, opId()));
  }

  setAppointment(id, status) {
    return this.mutate('appointment', id, { status }, (a) => api('PATCH', `/api/appointments/${encodeURIComponent(id)}`, { status, expected_version: a.version }, opId()));
  }

  async cancelAppointment(id) {
    const a = this.appointments.get(id);
    if (!a) return;
    const text = t('agenda.appointment_cancel_text', { when: formatDate(a.starts_at), name: names.get(a.customer_id) || t('agenda.customer') });
    if (await confirmDialog(t('agenda.appointment_cancel'), text, t('agenda.appointment_cancel'))) this.setAppointment(id, 'cancelled');
  }

  async createReminder() {
    const viewing = this.view === 'week' && !this.period().days.includes(this.date) ? mondayOf(this.date) : this.date;
    let due;
    if (viewing === today()) {
      const next = new Date(Date.now() + 60 * 60_000);
      next.setMinutes(0, 0, 0);
      due = toLocalInput(next);
    } else {
      due = `${viewing}T09:00`;
    }
    const title = h('input', { name: 'title', required: true, maxlength: '300', autocomplete: 'off' });
    const when = h('input', { type: 'datetime-local', name: 'due', required: true, value: due });
    const note = h('textarea', { name: 'note', maxlength: '5000', rows: '3' });
    let assignee = null;
    if (this.canPick) {
      const sort = collator();
      const options = [...this.users].sort((a, b) => sort.compare(a.name, b.name)).map((u) => ({ value: u.id, label: u.name }));
      assignee = select('assignee', options, this.userId() || this.me);
    }
    const created = await formDialog({
      title: t('agenda.new_reminder'),
      submitLabel: t('agenda.create'),
      build: (body) => {
        body.append(field(t('agenda.title'), title), field(t('agenda.due'), when));
        if (assignee) body.append(field(t('agenda.assignee'), assignee));
        body.append(field(t('agenda.note'), note, t('agenda.note_hint')));
      },
      submit: (data) => {
        const body = { title: String(data.get('title') || '').trim(), due_at: fromLocalInput(data.get('due')) };
        const text = String(data.get('note') || '').trim();
        if (text) body.note = text;
        if (assignee && data.get('assignee') && data.get('assignee') !== this.me) body.assignees = [data.get('assignee')];
        return api('POST', '/api/reminders', body, opId()).catch((error) => {
          throw new Error(agendaError(error));
        });
      },
    });
    if (!created || !created.id) return;
    this.reminders.set(created.id, created);
    this.flash.add(created.id);
    this.renderBody();
    if (!this.entries().some((e) => e.item.id === created.id)) toast(t('agenda.created_for', { when: formatDate(created.due_at) }));
    else toast(t('agenda.created'));
  }
}
