// Work orders: the list, a kanban by status, a month calendar of due steps; an order's own
// screen generated from its definition (steps checked off with their required fields and
// files, reopen, assign, comments), live from `work_order.updated`.
import Sortable from 'sortablejs';
import { ApiError, api, collator, dayOf, formatDate, formatWith, fromLocalInput, h, opId, t, toLocalInput, zonedParts } from './util.js';
import { Screen, confirmDialog, errorText, field, formDialog, select, toast } from './screen.js';

const STATUSES = ['open', 'in_progress', 'blocked', 'done', 'cancelled'];
/** The statuses `PATCH /api/work-orders/{id}` sets by hand (`done` comes from the steps). */
const SETTABLE = new Set(['open', 'in_progress', 'blocked', 'cancelled']);
const CLOSED = new Set(['done', 'cancelled']);
const VIEWS = ['list', 'board', 'calendar'];
const enc = encodeURIComponent;

/** The catalogue's string for `key`, else `fallback` (for keys made from YAML ids). */
function tt(key, fallback, vars) {
  const text = t(key, vars);
  return text === key ? fallback : text;
}

const humanize = (id) => {
  const text = String(id || '').replace(/[_-]+/g, ' ').trim();
  return text.charAt(0).toLocaleUpperCase('tr-TR') + text.slice(1);
};

export const statusLabel = (status) => tt(`work_orders.status.${status}`, status);
const stepStatusLabel = (status) => tt(`work_orders.step_status.${status}`, status);
const orderName = (order) => order.title || order.name || order.definition;
const doneSteps = (order) => (order.steps || []).filter((s) => s.status === 'done').length;
const progressText = (order) => t('work_orders.progress', { done: doneSteps(order), total: (order.steps || []).length });
const isOverdue = (order) => !!order.next_due_at && !CLOSED.has(order.status) && new Date(order.next_due_at) < new Date();

/** Who the open steps of an order are with (names, tr order). */
function assigneesOf(order) {
  const names = new Set();
  for (const s of order.steps || []) if (s.status !== 'done' && s.assignee_name) names.add(s.assignee_name);
  return [...names].sort(collator().compare);
}

/** Who the order is with: the assignees of its open steps, else the roles of its ready steps (muted). */
function assigneesNode(order) {
  const names = assigneesOf(order);
  if (names.length) return names.join(', ');
  const roles = [...new Set((order.steps || []).filter((s) => s.status === 'ready' && s.role).map((s) => tt(`work_orders.role_name.${s.role}`, s.role)))];
  return h('span', { class: 'muted' }, roles.length ? t('work_orders.role', { role: roles.join(', ') }) : t('screen.none'));
}

function statusChip(status) {
  const tone = status === 'done' ? ' ok' : status === 'blocked' ? ' bad' : '';
  return h('span', { class: `chip wo-status wo-status-${status}${tone}`, dataset: { status } }, statusLabel(status));
}

function progressBar(order) {
  const bar = h('span', { class: 'wo-bar-fill' });
  bar.style.width = `${Math.max(0, Math.min(100, Number(order.progress) || 0))}%`;
  return h('span', { class: 'wo-bar', role: 'presentation' }, bar);
}

function dueText(value, overdue) {
  if (!value) return h('span', { class: 'muted' }, t('screen.none'));
  return h('time', { datetime: value, class: overdue ? 'overdue' : '' }, formatDate(value), overdue ? ` · ${t('work_orders.overdue')}` : '');
}

/** The order's label for a field id: the catalogue, the card field's YAML label, the id. */
function fieldLabel(page, id) {
  return tt(`work_orders.field.${id}`, page.field_defs?.[id]?.label || humanize(id));
}

function slotLabel(id) {
  return tt(`work_orders.file.${id}`, humanize(id));
}

/**
 * A field's input type: from the definitions the page carries (`work_order_fields`, then
 * the card/customer field definitions of the same id), else guessed from the id.
 */
function fieldType(page, id) {
  const def = page.work_order_fields?.[id] || page.field_defs?.[id];
  if (def?.type) return { type: def.type, options: def.options || [] };
  if (/(_at|_zamani|_saati)$/.test(id)) return { type: 'datetime', options: [] };
  if (/(tarih|date|_on$|_gunu$)/.test(id)) return { type: 'date', options: [] };
  if (/(tutar|amount|adet|miktar|sayisi|count|fiyat|price|_no_sayi)/.test(id)) return { type: 'number', options: [] };
  return { type: 'text', options: [] };
}

/** A compact row for a customer's orders: name, status, progress, due, link. */
export function renderWorkOrderSummary(order) {
  const overdue = isOverdue(order);
  return h(
    'a',
    { class: 'wo-summary', href: `/work-orders/${enc(order.id)}`, dataset: { id: order.id, status: order.status } },
    h('span', { class: 'wo-summary-name' }, orderName(order)),
    statusChip(order.status),
    h('span', { class: 'wo-summary-progress' }, progressText(order)),
    order.next_due_at
      ? h('time', { class: overdue ? 'wo-summary-due overdue' : 'wo-summary-due muted', datetime: order.next_due_at }, formatDate(order.next_due_at))
      : h('span', { class: 'wo-summary-due muted' }),
  );
}

function flash(el) {
  if (!el) return;
  el.classList.remove('wo-flash');
  void el.offsetWidth; // restart the animation
  el.classList.add('wo-flash');
  setTimeout(() => el.classList.remove('wo-flash'), 2000);
}

function skeletonRows(n = 6) {
  return Array.from({ length: n }, () => h('div', { class: 'skeleton skeleton-row', 'aria-hidden': 'true' }));
}

/** What changed in an order that the list/board shows. */
const signature = (o) => JSON.stringify([o.status, o.progress, o.next_due_at, o.version, assigneesOf(o)]);

// ------------------------------------------------------------------------------ dates
const pad = (n) => String(n).padStart(2, '0');
const dayKey = (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
const addDays = (d, n) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + n));
function todayKey() {
  const p = zonedParts(new Date());
  return `${p.year}-${pad(p.month)}-${pad(p.day)}`;
}
function shiftMonth(month, delta) {
  const [y, m] = month.split('-').map(Number);
  const d = new Date(Date.UTC(y, m - 1 + delta, 1));
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
}

// =============================================================================== list
export class WorkOrdersScreen extends Screen {
  constructor(page, root, live) {
    super(page, root, live);
    this.state = this.readQuery(page.params?.query || {});
    this.orders = new Map(); // id → the order as last loaded
    this.definitions = new Map(); // id → name, from the page and the orders seen
    for (const d of page.work_order_defs || []) this.definitions.set(d.id, d.name || d.id);
    this.watched = new Set();
    this.seq = 0;
    this.sortables = [];
    this.pendingOps = new Set(); // X-Client-Op of our own changes, to skip their echo
    this.build();
    this.show(this.frame);
    this.load(true);
    this.reloadSoon = debounce(() => this.load(false, true), 250);
    live?.on('work_order.updated', (event) => {
      const id = event?.data?.work_order_id;
      if (event?.op && this.pendingOps.has(event.op)) return;
      if (this.orders.has(id) || event?.data?.change === 'created' || this.state.view === 'calendar') this.reloadSoon();
    });
    live?.on('resync', () => this.load(false));
    window.addEventListener('popstate', () => {
      this.state = this.readQuery(Object.fromEntries(new URLSearchParams(location.search)));
      this.syncControls();
      this.load(true);
    });
  }

  readQuery(q) {
    const month = /^\d{4}-\d{2}$/.test(q.month || '') ? q.month : todayKey().slice(0, 7);
    return {
      view: VIEWS.includes(q.view) ? q.view : 'list',
      status: String(q.status || '')
        .split(',')
        .filter((s) => STATUSES.includes(s)),
      definition: q.definition || '',
      assignee: q.assignee || '',
      sort: ['due', '-due'].includes(q.sort) ? q.sort : '',
      month,
    };
  }

  /** The state as the URL's query (defaults left out), so a view can be shared. */
  writeUrl(push) {
    const s = this.state;
    const q = new URLSearchParams();
    if (s.view !== 'list') q.set('view', s.view);
    if (s.status.length && s.view === 'list') q.set('status', s.status.join(','));
    if (s.definition && s.view !== 'calendar') q.set('definition', s.definition);
    if (s.assignee) q.set('assignee', s.assignee);
    if (s.sort && s.view === 'list') q.set('sort', s.sort);
    if (s.view === 'calendar' && s.month !== todayKey().slice(0, 7)) q.set('month', s.month);
    const url = `${location.pathname}${q.toString() ? `?${q}` : ''}`;
    if (url === `${location.pathname}${location.search}`) return;
    history[push ? 'pushState' : 'replaceState'](null, '', url);
  }

  build() {
    this.tabs = new Map();
    const tablist = h('div', { class: 'tabs wo-tabs', role: 'tablist', 'aria-label': t('work_orders.views') });
    for (const view of VIEWS) {
      const tab = h('button', { type: 'button', role: 'tab', id: `wo-tab-${view}`, 'aria-controls': 'wo-view', dataset: { view } }, t(`work_orders.view.${view}`));
      tab.addEventListener('click', () => this.setView(view));
      tab.addEventListener('keydown', (event) => {
        const i = VIEWS.indexOf(view);
        const next = event.key === 'ArrowRight' ? VIEWS[(i + 1) % 3] : event.key === 'ArrowLeft' ? VIEWS[(i + 2) % 3] : null;
        if (next) {
          event.preventDefault();
          this.setView(next);
          this.tabs.get(next).focus();
        }
      });
      this.tabs.set(view, tab);
      tablist.append(tab);
    }

    // Filters: status (list only), type, assignee.
    this.statusBoxes = new Map();
    const statusOptions = h('ul', { class: 'filter-options' });
    for (const s of STATUSES) {
      const box = h('input', { type: 'checkbox', value: s, name: 'status' });
      box.addEventListener('change', () => {
        this.state.status = STATUSES.filter((x) => this.statusBoxes.get(x).checked);
        this.filtersChanged();
      });
      this.statusBoxes.set(s, box);
      statusOptions.append(h('li', null, h('label', null, box, statusLabel(s))));
    }
    this.statusCount = h('span', { class: 'filter-count', hidden: true });
    this.statusFilter = h(
      'details',
      { class: 'filter', dataset: { filter: 'status' } },
      h('summary', null, t('work_orders.filter.status'), ' ', this.statusCount),
      h('div', { class: 'filter-panel' }, statusOptions),
    );
    this.statusFilter.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.statusFilter.open) {
        this.statusFilter.open = false;
        this.statusFilter.querySelector('summary').focus();
      }
    });
    document.addEventListener('click', (event) => {
      if (this.statusFilter.open && !this.statusFilter.contains(event.target)) this.statusFilter.open = false;
    });

    this.definitionSelect = h('select', { name: 'definition', id: 'wo-filter-definition', 'aria-label': t('work_orders.filter.type') });
    this.definitionSelect.addEventListener('change', () => {
      this.state.definition = this.definitionSelect.value;
      this.filtersChanged();
    });
    const assigneeOptions = [
      { value: '', label: t('work_orders.filter.anyone') },
      { value: 'me', label: t('work_orders.filter.me') },
      ...this.users.filter((u) => u.id !== this.page.user?.id).map((u) => ({ value: u.id, label: u.name })),
    ];
    this.assigneeSelect = select('assignee', assigneeOptions, this.state.assignee);
    this.assigneeSelect.id = 'wo-filter-assignee';
    this.assigneeSelect.setAttribute('aria-label', t('work_orders.filter.assignee'));
    this.assigneeSelect.addEventListener('change', () => {
      this.state.assignee = this.assigneeSelect.value;
      this.filtersChanged();
    });
    this.chips = h('ul', { class: 'chips wo-chips', 'aria-label': t('work_orders.filter.active') });

    const newButton = this.can.work_orders_edit
      ? h('button', { type: 'button', class: 'primary', id: 'wo-new', onclick: () => this.createDialog() }, t('work_orders.new'))
      : null;
    this.view = h('section', { class: 'wo-view', id: 'wo-view', role: 'tabpanel', 'aria-live': 'polite', 'aria-busy': 'true', dataset: { state: 'loading' } });
    this.frame = h(
      'div',
      { class: 'wo-screen' },
      h('div', { class: 'wo-head' }, h('h1', { class: 'screen-title' }, t('nav.work_orders')), newButton),
      tablist,
      h('div', { class: 'toolbar wo-filters' }, this.statusFilter, this.definitionSelect, this.assigneeSelect, this.chips),
      this.view,
    );
    this.syncControls();
  }

  /** Tabs, filter inputs and chips from the state. */
  syncControls() {
    const s = this.state;
    for (const [view, tab] of this.tabs) {
      tab.setAttribute('aria-selected', String(view === s.view));
      tab.tabIndex = view === s.view ? 0 : -1;
    }
    this.view.setAttribute('aria-labelledby', `wo-tab-${s.view}`);
    for (const [status, box] of this.statusBoxes) box.checked = s.status.includes(status);
    this.statusCount.textContent = String(s.status.length);
    this.statusCount.hidden = !s.status.length;
    this.statusFilter.hidden = s.view !== 'list';
    this.definitionSelect.hidden = s.view === 'calendar';
    this.fillDefinitions();
    this.assigneeSelect.value = s.assignee;
    if (this.assigneeSelect.value !== s.assignee) {
      // A user id this page does not list (e.g. a shared link): keep it selectable.
      this.assigneeSelect.append(h('option', { value: s.assignee }, s.assignee));
      this.assigneeSelect.value = s.assignee;
    }
    const chips = [];
    const chip = (label, clear) => h('li', null, h('button', { type: 'button', 'aria-label': t('work_orders.filter.remove', { label }), onclick: clear }, label, ' ×'));
    if (s.view === 'list') {
      for (const st of s.status) chips.push(chip(statusLabel(st), () => ((s.status = s.status.filter((x) => x !== st)), this.filtersChanged())));
    }
    if (s.definition && s.view !== 'calendar') chips.push(chip(this.definitions.get(s.definition) || s.definition, () => ((s.definition = ''), this.filtersChanged())));
    if (s.assignee) {
      const label = s.assignee === 'me' ? t('work_orders.filter.me') : this.userName(s.assignee) || s.assignee;
      chips.push(chip(label, () => ((s.assignee = ''), this.filtersChanged())));
    }
    this.chips.replaceChildren(...chips);
  }

  fillDefinitions() {
    const value = this.state.definition;
    if (value && !this.definitions.has(value)) this.definitions.set(value, value);
    const defs = [...this.definitions].sort((a, b) => collator().compare(a[1], b[1]));
    this.definitionSelect.replaceChildren(h('option', { value: '' }, t('work_orders.filter.all_types')), ...defs.map(([id, name]) => h('option', { value: id }, name)));
    this.definitionSelect.value = value;
  }

  learnDefinitions(orders) {
    let added = false;
    for (const o of orders) {
      if (!this.definitions.has(o.definition) || this.definitions.get(o.definition) === o.definition) {
        if (this.definitions.get(o.definition) !== o.name) added = true;
        this.definitions.set(o.definition, o.name || o.definition);
      }
    }
    if (added) this.fillDefinitions();
  }

  setView(view) {
    if (view === this.state.view) return;
    this.state.view = view;
    this.writeUrl(true);
    this.syncControls();
    this.load(true);
  }

  filtersChanged() {
    this.writeUrl(false);
    this.syncControls();
    this.load(false);
  }

  query(keys) {
    const s = this.state;
    const q = new URLSearchParams();
    if (keys.includes('status') && s.status.length) q.set('status', s.status.join(','));
    if (keys.includes('definition') && s.definition) q.set('definition', s.definition);
    if (keys.includes('assignee') && s.assignee) q.set('assignee', s.assignee);
    return q;
  }

  /** Loads the current view; `live` (a reload after someone's change) flashes what changed. */
  async load(skeleton, live = false) {
    const seq = ++this.seq;
    this.flashChanged = live;
    const view = this.state.view;
    this.view.setAttribute('aria-busy', 'true');
    this.view.dataset.state = 'loading';
    if (skeleton) {
      this.destroySortables();
      this.view.replaceChildren(...skeletonRows());
    }
    try {
      let content;
      if (view === 'list') {
        const q = this.query(['status', 'definition', 'assignee']);
        q.set('limit', '500');
        const orders = await api('GET', `/api/work-orders?${q}`);
        if (seq !== this.seq) return;
        content = this.renderList(orders);
      } else if (view === 'board') {
        const columns = await api('GET', `/api/work-orders/board?${this.query(['definition', 'assignee'])}`);
        if (seq !== this.seq) return;
        content = this.renderBoard(columns);
      } else {
        const { from, to, days } = this.monthGrid();
        const q = this.query(['assignee']);
        q.set('from', from);
        q.set('to', to);
        const steps = await api('GET', `/api/work-orders/calendar?${q}`);
        if (seq !== this.seq) return;
        content = this.renderCalendar(steps, days);
      }
      this.destroySortables();
      this.view.replaceChildren(content);
      if (view === 'board') this.makeSortable();
      this.view.setAttribute('aria-busy', 'false');
      this.view.dataset.state = 'ready';
      this.view.dataset.view = view;
    } catch (error) {
      if (seq !== this.seq) return;
      this.view.setAttribute('aria-busy', 'false');
      this.view.dataset.state = 'error';
      this.view.replaceChildren(
        h('div', { class: 'empty-state', role: 'alert' }, t('screen.error', { message: errorText(error) }), ' ', h('button', { type: 'button', onclick: () => this.load(true) }, t('screen.retry'))),
      );
    }
  }

  /** Remembers the orders on screen; flashes the ones that changed since last time; follows their customers live. */
  remember(orders) {
    const changed = new Set();
    const next = new Map();
    for (const o of orders) {
      const before = this.orders.get(o.id);
      if (this.flashChanged && (!before || signature(before) !== signature(o))) changed.add(o.id);
      next.set(o.id, o);
    }
    this.orders = next;
    this.learnDefinitions(orders);
    this.follow(orders.map((o) => o.customer_id));
    return changed;
  }

  /** Subscribes to the customers of the orders on screen (their events are customer-scoped). */
  follow(customerIds) {
    if (!this.live) return;
    const wanted = new Set(customerIds.filter(Boolean).slice(0, 200));
    for (const id of this.watched) if (!wanted.has(id)) this.live.unwatch(id);
    for (const id of wanted) if (!this.watched.has(id)) this.live.watch(id);
    this.watched = wanted;
  }

  filtered() {
    const s = this.state;
    return s.status.length || s.definition || s.assignee;
  }

  emptyState() {
    if (this.filtered()) {
      return h(
        'div',
        { class: 'empty-state wo-empty' },
        h('p', null, t('work_orders.empty_filtered')),
        h('button', { type: 'button', onclick: () => ((this.state.status = []), (this.state.definition = ''), (this.state.assignee = ''), this.filtersChanged()) }, t('work_orders.clear_filters')),
      );
    }
    return h('div', { class: 'empty-state wo-empty' }, h('p', null, t('work_orders.empty')), this.can.work_orders_edit ? h('button', { type: 'button', class: 'primary', onclick: () => this.createDialog() }, t('work_orders.new')) : null);
  }

  // ---------------------------------------------------------------- list view
  renderList(orders) {
    const changed = this.remember(orders);
    if (!orders.length) return this.emptyState();
    const sorted = [...orders];
    if (this.state.sort) {
      const dir = this.state.sort === 'due' ? 1 : -1;
      sorted.sort((a, b) => {
        if (!a.next_due_at !== !b.next_due_at) return a.next_due_at ? -1 : 1; // undated last
        if (!a.next_due_at) return 0;
        return dir * (new Date(a.next_due_at) - new Date(b.next_due_at));
      });
    }
    const sortState = this.state.sort === 'due' ? 'ascending' : this.state.sort === '-due' ? 'descending' : 'none';
    const sortButton = h(
      'button',
      { type: 'button', class: 'link wo-sort', id: 'wo-sort-due', onclick: () => ((this.state.sort = this.state.sort === 'due' ? '-due' : 'due'), this.writeUrl(false), this.view.replaceChildren(this.renderList([...this.orders.values()]))) },
      t('work_orders.col.due'),
      sortState === 'ascending' ? ' ↑' : sortState === 'descending' ? ' ↓' : ' ↕',
    );
    const head = h(
      'tr',
      null,
      h('th', { scope: 'col' }, t('work_orders.col.customer')),
      h('th', { scope: 'col' }, t('work_orders.col.type')),
      h('th', { scope: 'col' }, t('work_orders.col.status')),
      h('th', { scope: 'col' }, t('work_orders.col.assignees')),
      h('th', { scope: 'col', 'aria-sort': sortState }, sortButton),
      h('th', { scope: 'col' }, t('work_orders.col.progress')),
    );
    const rows = sorted.map((o) => {
      const href = `/work-orders/${enc(o.id)}`;
      const row = h(
        'tr',
        { class: 'wo-row', dataset: { id: o.id, status: o.status } },
        h('td', { 'data-label': t('work_orders.col.customer') }, o.customer_id ? h('a', { href: `/customers/${enc(o.customer_id)}` }, o.customer_name || t('work_orders.customer')) : h('span', { class: 'muted' }, t('work_orders.internal'))),
        h('td', { 'data-label': t('work_orders.col.type') }, h('a', { href, class: 'wo-open' }, orderName(o)), o.title ? h('div', { class: 'muted wo-sub' }, o.name) : null),
        h('td', { 'data-label': t('work_orders.col.status') }, statusChip(o.status)),
        h('td', { 'data-label': t('work_orders.col.assignees') }, assigneesNode(o)),
        h('td', { 'data-label': t('work_orders.col.due') }, dueText(o.next_due_at, isOverdue(o))),
        h('td', { 'data-label': t('work_orders.col.progress'), class: 'wo-progress-cell' }, h('span', { class: 'wo-progress' }, progressText(o)), progressBar(o)),
      );
      row.addEventListener('click', (event) => {
        if (event.target.closest('a, button, input, select')) return;
        location.assign(href);
      });
      if (changed.has(o.id)) requestAnimationFrame(() => flash(row));
      return row;
    });
    return h('div', { class: 'wo-table-wrap' }, h('table', { class: 'grid wo-table' }, h('caption', { class: 'sr-only' }, t('nav.work_orders')), h('thead', null, head), h('tbody', null, rows)));
  }

  // ---------------------------------------------------------------- board view
  renderBoard(columns) {
    const all = columns.flatMap((c) => c.orders);
    const changed = this.remember(all);
    this.columns = new Map();
    const editable = !!this.can.work_orders_edit;
    const board = h('div', { class: 'wo-board', dataset: { editable: String(editable) } });
    for (const col of columns) {
      const list = h('ul', { class: 'wo-cards', dataset: { status: col.status }, 'aria-label': statusLabel(col.status) });
      const count = h('span', { class: 'count' }, String(col.count));
      for (const o of col.orders) list.append(this.boardCard(o, changed.has(o.id)));
      const empty = h('li', { class: 'wo-cards-empty muted', hidden: col.orders.length > 0 }, t('work_orders.column_empty'));
      list.append(empty);
      const section = h(
        'section',
        { class: `wo-column wo-column-${col.status}`, dataset: { status: col.status, droppable: String(editable && SETTABLE.has(col.status)) } },
        h('header', { class: 'column-head', title: editable && !SETTABLE.has(col.status) ? t('work_orders.column_locked') : null }, h('h2', null, statusLabel(col.status)), count),
        list,
      );
      this.columns.set(col.status, { list, count, empty });
      board.append(section);
    }
    if (!all.length) return h('div', null, this.emptyState(), board);
    return board;
  }

  boardCard(o, changed) {
    const names = assigneesOf(o);
    const movable = this.can.work_orders_edit && !CLOSED.has(o.status);
    const card = h(
      'li',
      { class: `wo-card${movable ? ' movable' : ''}`, tabindex: '0', dataset: { id: o.id, status: o.status, version: String(o.version) } },
      h('a', { class: 'wo-card-name', href: `/work-orders/${enc(o.id)}`, tabindex: '-1', draggable: 'false' }, orderName(o)),
      h('div', { class: 'wo-card-customer muted' }, o.customer_id ? o.customer_name : t('work_orders.internal')),
      h('div', { class: 'wo-card-progress' }, h('span', null, progressText(o)), progressBar(o)),
      h('div', { class: 'wo-card-meta' }, dueText(o.next_due_at, isOverdue(o)), names.length ? h('span', { class: 'muted' }, names.join(', ')) : null),
      h('p', { class: 'card-error', role: 'alert', hidden: true }),
    );
    card.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && event.target === card) location.assign(`/work-orders/${enc(o.id)}`);
    });
    if (changed) requestAnimationFrame(() => flash(card));
    return card;
  }

  destroySortables() {
    for (const s of this.sortables) s.destroy();
    this.sortables = [];
  }

  /** Drag between status columns: only to statuses the API sets by hand, never from a closed order. */
  makeSortable() {
    if (!this.can.work_orders_edit || !this.columns) return;
    for (const [status, { list }] of this.columns) {
      this.sortables.push(
        Sortable.create(list, {
          group: { name: 'wo-status', pull: true, put: () => SETTABLE.has(status) },
          sort: false,
          draggable: '.wo-card.movable',
          filter: '.wo-cards-empty',
          animation: 120,
          onMove: (evt) => SETTABLE.has(evt.to.dataset.status),
          onEnd: (evt) => {
            if (evt.from === evt.to) return;
            this.moveOrder(evt.item, evt.from, evt.to, evt.oldIndex);
          },
        }),
      );
    }
  }

  recount() {
    for (const { list, count, empty } of this.columns.values()) {
      const n = list.querySelectorAll('.wo-card').length;
      count.textContent = String(n);
      empty.hidden = n > 0;
      list.append(empty);
    }
  }

  async moveOrder(card, from, to, oldIndex) {
    const id = card.dataset.id;
    const order = this.orders.get(id);
    const status = to.dataset.status;
    const error = card.querySelector('.card-error');
    error.hidden = true;
    this.recount();
    const back = () => {
      const cards = [...from.querySelectorAll('.wo-card')];
      from.insertBefore(card, cards[oldIndex] || from.querySelector('.wo-cards-empty'));
      this.recount();
    };
    if (status === 'cancelled' && !(await confirmDialog(t('work_orders.cancel_title'), t('work_orders.cancel_text', { name: orderName(order) }), t('work_orders.action.cancel')))) {
      back();
      return;
    }
    card.classList.add('pending');
    const op = opId();
    this.pendingOps.add(op);
    try {
      const updated = await api('PATCH', `/api/work-orders/${enc(id)}`, { status, expected_version: order.version }, op);
      this.orders.set(id, updated);
      const fresh = this.boardCard(updated, false);
      card.replaceWith(fresh);
      this.recount();
    } catch (e) {
      card.classList.remove('pending');
      back();
      const message = e instanceof ApiError && e.body?.code === 'stale_version' ? t('work_orders.stale') : errorText(e);
      error.textContent = message;
      error.hidden = false;
      toast(message, true);
      if (e instanceof ApiError && e.status === 409) this.load(false);
    } finally {
      setTimeout(() => this.pendingOps.delete(op), 10_000);
    }
  }

  // ---------------------------------------------------------------- calendar view
  monthGrid() {
    const [y, m] = this.state.month.split('-').map(Number);
    const first = new Date(Date.UTC(y, m - 1, 1));
    const last = new Date(Date.UTC(y, m, 0));
    const start = addDays(first, -((first.getUTCDay() + 6) % 7)); // Monday first
    const end = addDays(last, 6 - ((last.getUTCDay() + 6) % 7));
    const days = [];
    for (let d = start; d <= end; d = addDays(d, 1)) days.push(d);
    return { from: fromLocalInput(`${dayKey(start)}T00:00`), to: fromLocalInput(`${dayKey(addDays(end, 1))}T00:00`), days, month: m - 1 };
  }

  renderCalendar(steps, days) {
    const month = Number(this.state.month.slice(5, 7)) - 1;
    const byDay = new Map();
    for (const s of steps) {
      const key = dayOf(s.due_at);
      if (!byDay.has(key)) byDay.set(key, []);
      byDay.get(key).push(s);
    }
    const today = todayKey();
    const [y, m] = this.state.month.split('-').map(Number);
    const title = formatWith(new Date(Date.UTC(y, m - 1, 15, 12)), { month: 'long', year: 'numeric' });
    const go = (target) => {
      this.state.month = target;
      this.writeUrl(false);
      this.load(false);
    };
    const toolbar = h(
      'div',
      { class: 'toolbar wo-cal-toolbar' },
      h('button', { type: 'button', id: 'wo-cal-prev', 'aria-label': t('work_orders.cal.prev'), onclick: () => go(shiftMonth(this.state.month, -1)) }, '‹'),
      h('button', { type: 'button', id: 'wo-cal-today', onclick: () => go(today.slice(0, 7)) }, t('work_orders.cal.today')),
      h('button', { type: 'button', id: 'wo-cal-next', 'aria-label': t('work_orders.cal.next'), onclick: () => go(shiftMonth(this.state.month, 1)) }, '›'),
      h('h2', { class: 'wo-cal-title', id: 'wo-cal-title', 'aria-live': 'polite' }, title),
    );
    const weekdays = Array.from({ length: 7 }, (_, i) =>
      h('div', { class: 'wo-cal-weekday', role: 'columnheader' }, formatWith(new Date(Date.UTC(2024, 0, 1 + i, 12)), { weekday: 'short' })),
    );
    const cells = days.map((d) => {
      const key = dayKey(d);
      const items = byDay.get(key) || [];
      const classes = ['wo-cal-day'];
      if (d.getUTCMonth() !== month) classes.push('other-month');
      if (key === today) classes.push('today');
      if (items.length) classes.push('has-items');
      const label = formatWith(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), 12)), { weekday: 'long', day: 'numeric', month: 'long' });
      return h(
        'div',
        { class: classes.join(' '), role: 'gridcell', dataset: { day: key }, 'aria-label': label },
        h('div', { class: 'wo-cal-num' }, h('span', { class: 'wo-cal-daynum', 'aria-hidden': 'true' }, String(d.getUTCDate())), h('span', { class: 'wo-cal-dayname' }, label)),
        items.length
          ? h(
              'ul',
              { class: 'wo-cal-items' },
              items.map((s) =>
                h(
                  'li',
                  null,
                  h(
                    'a',
                    { class: `wo-cal-item${s.overdue ? ' overdue' : ''}`, href: `/work-orders/${enc(s.work_order_id)}`, dataset: { order: s.work_order_id, step: s.step_id }, title: `${s.step_name} · ${s.work_order_name}${s.customer_name ? ` · ${s.customer_name}` : ''}` },
                    h('span', { class: 'wo-cal-time' }, formatWith(s.due_at, { hour: '2-digit', minute: '2-digit' })),
                    ' ',
                    h('span', { class: 'wo-cal-step' }, s.step_name),
                    h('span', { class: 'wo-cal-order muted' }, s.customer_name || s.work_order_name),
                  ),
                ),
              ),
            )
          : null,
      );
    });
    const weeks = [];
    for (let i = 0; i < cells.length; i += 7) weeks.push(h('div', { class: 'wo-cal-week', role: 'row' }, cells.slice(i, i + 7)));
    return h(
      'div',
      { class: 'wo-calendar', dataset: { month: this.state.month } },
      toolbar,
      steps.length ? null : h('p', { class: 'muted wo-cal-empty' }, t('work_orders.cal.empty')),
      h('div', { class: 'wo-cal-grid', role: 'grid', 'aria-labelledby': 'wo-cal-title' }, h('div', { class: 'wo-cal-week wo-cal-head', role: 'row' }, weekdays), weeks),
    );
  }

  // ---------------------------------------------------------------- new order
  async createDialog() {
    const defs = [...this.definitions].sort((a, b) => collator().compare(a[1], b[1]));
    const query = this.page.params?.query || {};
    await formDialog({
      title: t('work_orders.new'),
      submitLabel: t('work_orders.create'),
      build: (body) => {
        const definition = defs.length
          ? select('definition', defs.map(([id, name]) => ({ value: id, label: name })), this.state.definition || defs[0][0])
          : h('input', { name: 'definition', required: true, autocomplete: 'off', pattern: '[a-z0-9_\\-]+' });
        definition.id = 'wo-new-definition';
        definition.required = true;
        const title = h('input', { name: 'title', id: 'wo-new-title', maxlength: '200', autocomplete: 'off' });
        const customer = h('select', { name: 'customer_id', id: 'wo-new-customer' }, h('option', { value: '' }, t('work_orders.internal_option')));
        const search = h('input', { type: 'search', id: 'wo-new-customer-search', autocomplete: 'off', placeholder: t('work_orders.customer_search') });
        let timer;
        let seq = 0;
        const find = async () => {
          const q = search.value.trim();
          const mine = ++seq;
          if (!q) return;
          try {
            const page = await api('GET', `/api/customers?limit=20&q=${enc(q)}`);
            if (mine !== seq) return;
            const keep = customer.value;
            customer.replaceChildren(h('option', { value: '' }, t('work_orders.internal_option')), ...page.customers.map((c) => h('option', { value: c.id }, c.phones?.[0]?.number ? `${c.name} · ${c.phones[0].number}` : c.name)));
            customer.value = page.customers.some((c) => c.id === keep) ? keep : page.customers[0]?.id || '';
          } catch (e) {
            toast(errorText(e), true);
          }
        };
        search.addEventListener('input', () => {
          clearTimeout(timer);
          timer = setTimeout(find, 250);
        });
        if (query.customer) {
          customer.append(h('option', { value: query.customer }, query.customer_name || query.customer));
          customer.value = query.customer;
          api('GET', `/api/customers/${enc(query.customer)}`)
            .then((c) => (customer.querySelector(`option[value="${CSS.escape(query.customer)}"]`).textContent = c.name))
            .catch(() => {});
        }
        body.append(
          field(t('work_orders.form.definition'), definition, defs.length ? null : t('work_orders.form.definition_hint')),
          field(t('work_orders.form.title'), title, t('work_orders.form.optional')),
          this.can.customers_view ? field(t('work_orders.form.customer_search'), search) : null,
          field(t('work_orders.form.customer'), customer),
        );
      },
      submit: async (data) => {
        const body = { definition: String(data.get('definition') || '').trim() };
        const title = String(data.get('title') || '').trim();
        if (title) body.title = title;
        if (data.get('customer_id')) body.customer_id = data.get('customer_id');
        const order = await api('POST', '/api/work-orders', body, opId());
        toast(t('work_orders.created'));
        location.assign(`/work-orders/${enc(order.id)}`);
        return order;
      },
    });
  }
}

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// ============================================================================= one order
export class WorkOrderScreen extends Screen {
  constructor(page, root, live) {
    super(page, root, live);
    this.id = page.params?.id;
    this.order = null;
    this.files = [];
    this.drafts = new Map(); // field id → raw input value not yet sent
    this.stepErrors = new Map(); // step id → {message, fields}
    this.busy = new Set(); // step ids with a request in flight
    this.commentDraft = '';
    this.watching = null;
    this.ownOps = new Set(); // X-Client-Op of our own changes: their echo is already applied
    this.refetchSoon = debounce(() => this.refetch(true), 150);
    live?.on('work_order.updated', (event) => {
      if (event?.data?.work_order_id !== this.id) return;
      if (event.op && this.ownOps.has(event.op)) return;
      this.refetchSoon();
    });
    live?.on('resync', () => this.refetch(true));
    this.load();
  }

  get editable() {
    return !!this.can.work_orders_edit && this.order?.status !== 'cancelled';
  }

  async load() {
    try {
      const [order, files] = await Promise.all([api('GET', `/api/work-orders/${enc(this.id)}`), this.fetchFiles()]);
      this.order = order;
      this.files = files;
      this.follow();
      this.render();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        this.show(h('h1', { class: 'screen-title' }, t('work_order.title')), h('div', { class: 'empty-state', role: 'alert' }, t('work_orders.not_found'), ' ', h('a', { href: '/work-orders' }, t('work_orders.back'))));
      } else {
        this.failed(error, () => this.load());
      }
    }
  }

  async fetchFiles() {
    try {
      const list = await api('GET', `/api/work-orders/${enc(this.id)}/files`);
      return list.files || [];
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) throw error;
      return this.files || [];
    }
  }

  follow() {
    const c = this.order?.customer_id || null;
    if (!this.live || c === this.watching) return;
    if (this.watching) this.live.unwatch(this.watching);
    if (c) this.live.watch(c);
    this.watching = c;
  }

  /** Loads the order again; with `announce`, flashes what someone else changed. */
  async refetch(announce) {
    try {
      const [order, files] = await Promise.all([api('GET', `/api/work-orders/${enc(this.id)}`), this.fetchFiles()]);
      const before = this.order;
      const beforeFiles = new Set(this.files.map((f) => f.id));
      this.order = order;
      this.files = files;
      this.follow();
      const changes = before ? this.diff(before, order, beforeFiles) : null;
      this.render();
      if (announce && changes) this.flashChanges(changes);
    } catch (error) {
      toast(errorText(error), true);
    }
  }

  diff(before, after, beforeFiles) {
    const changes = { steps: [], header: false, comments: [], files: [] };
    const old = new Map(before.steps.map((s) => [s.step_id, s]));
    for (const s of after.steps) {
      const o = old.get(s.step_id);
      if (!o || o.status !== s.status || o.assignee_id !== s.assignee_id || o.due_at !== s.due_at) changes.steps.push(s);
    }
    if (before.status !== after.status || before.progress !== after.progress) changes.header = true;
    const seen = new Set((before.comments || []).map((c) => c.id));
    changes.comments = (after.comments || []).filter((c) => !seen.has(c.id)).map((c) => c.id);
    changes.files = this.files.filter((f) => !beforeFiles.has(f.id)).map((f) => f.id);
    return changes;
  }

  flashChanges(changes) {
    const said = [];
    for (const s of changes.steps) {
      flash(this.root.querySelector(`.wo-step[data-step="${CSS.escape(s.step_id)}"]`));
      said.push(t('work_orders.live.step', { step: s.name, status: stepStatusLabel(s.status) }));
    }
    if (changes.header) flash(this.root.querySelector('.wo-header'));
    for (const id of changes.comments) flash(this.root.querySelector(`.wo-comment[data-id="${CSS.escape(id)}"]`));
    if (changes.comments.length) said.push(t('work_orders.live.comment'));
    for (const id of changes.files) flash(this.root.querySelector(`.wo-file[data-id="${CSS.escape(id)}"]`));
    if (said.length && this.announcer) this.announcer.textContent = said.join(' ');
  }

  // ---------------------------------------------------------------- rendering
  render() {
    const scroller = this.root.closest('.screen') || document.scrollingElement;
    const scroll = scroller?.scrollTop || 0;
    const active = document.activeElement;
    const focusId = active?.id && this.root.contains(active) ? active.id : null;
    let selection = null;
    try {
      if (focusId && typeof active.selectionStart === 'number') selection = [active.selectionStart, active.selectionEnd];
    } catch {
      selection = null; // inputs without a text selection (date, number)
    }
    const o = this.order;
    document.title = `${orderName(o)} · ${document.title.split(' · ').pop()}`;
    this.announcer = h('p', { class: 'sr-only', 'aria-live': 'polite', id: 'wo-live' });
    const steps = [...o.steps].sort((a, b) => a.position - b.position);
    const slots = new Set(steps.flatMap((s) => s.required_files));
    const others = this.files.filter((f) => !slots.has(f.folder));
    this.show(
      h(
        'div',
        { class: 'wo-order', dataset: { id: o.id, status: o.status, version: String(o.version) } },
        h('nav', { class: 'wo-crumbs' }, h('a', { href: '/work-orders' }, `← ${t('nav.work_orders')}`)),
        this.renderHeader(o),
        h(
          'div',
          { class: 'wo-layout' },
          h(
            'section',
            { class: 'panel wo-steps-panel', 'aria-labelledby': 'wo-steps-title' },
            h('h2', { id: 'wo-steps-title' }, t('work_orders.steps'), ' ', h('span', { class: 'muted wo-count' }, progressText(o))),
            h('ol', { class: 'wo-steps' }, steps.map((s) => this.renderStep(s, steps))),
          ),
          h('div', { class: 'wo-side' }, this.renderComments(o), this.renderOtherFiles(others)),
        ),
        this.announcer,
      ),
    );
    if (scroller) scroller.scrollTop = scroll;
    const again = focusId ? document.getElementById(focusId) : null;
    if (again) {
      again.focus({ preventScroll: true });
      if (selection) {
        try {
          again.setSelectionRange(...selection);
        } catch {
          // not a text input
        }
      }
    }
  }

  renderHeader(o) {
    const actions = [];
    if (this.can.work_orders_edit && !CLOSED.has(o.status)) {
      if (o.status === 'blocked') {
        const back = o.steps.some((s) => s.status === 'done') ? 'in_progress' : 'open';
        actions.push(h('button', { type: 'button', id: 'wo-unblock', onclick: () => this.setStatus(back) }, t('work_orders.action.unblock')));
      } else {
        actions.push(h('button', { type: 'button', id: 'wo-block', onclick: () => this.setStatus('blocked') }, t('work_orders.action.block')));
      }
      actions.push(h('button', { type: 'button', class: 'danger', id: 'wo-cancel', onclick: () => this.setStatus('cancelled') }, t('work_orders.action.cancel')));
    }
    const meta = (label, value) => [h('dt', null, label), h('dd', null, value)];
    return h(
      'section',
      { class: 'panel wo-header' },
      h(
        'div',
        { class: 'wo-title-row' },
        h('h1', { class: 'screen-title' }, orderName(o)),
        statusChip(o.status),
        h('span', { class: 'grow' }),
        h('div', { class: 'wo-actions' }, actions),
      ),
      h(
        'dl',
        { class: 'wo-meta' },
        meta(t('work_orders.col.type'), o.name),
        meta(t('work_orders.col.customer'), o.customer_id ? h('a', { href: `/customers/${enc(o.customer_id)}`, id: 'wo-customer' }, o.customer_name || t('work_orders.customer')) : h('span', { class: 'muted' }, t('work_orders.internal'))),
        meta(t('work_orders.col.due'), dueText(o.next_due_at, isOverdue(o))),
        meta(t('work_orders.col.assignees'), assigneesNode(o)),
        meta(t('work_orders.col.progress'), h('span', { class: 'wo-progress-cell' }, h('span', { class: 'wo-progress' }, progressText(o)), progressBar(o))),
        meta(t('work_orders.opened'), formatDate(o.created_at)),
        o.completed_at ? meta(t('work_orders.completed_at'), formatDate(o.completed_at)) : null,
      ),
    );
  }

  renderStep(s, steps) {
    const error = this.stepErrors.get(s.step_id);
    const busy = this.busy.has(s.step_id);
    const done = s.status === 'done';
    const waiting = s.status === 'waiting';
    const check = h('input', {
      type: 'checkbox',
      class: 'wo-check',
      id: `wo-check-${s.step_id}`,
      'aria-label': t(done ? 'work_orders.reopen_step' : 'work_orders.complete_step', { step: s.name }),
      'aria-describedby': `wo-err-${s.step_id}`,
    });
    check.checked = done;
    check.disabled = !this.editable || waiting || busy;
    check.addEventListener('change', () => (check.checked ? this.complete(s) : this.reopen(s)));
    const names = new Map(steps.map((x) => [x.step_id, x.name]));
    const headBits = [
      h('span', { class: 'wo-step-no', 'aria-hidden': 'true' }, String(s.position + 1)),
      h('span', { class: 'wo-step-name', id: `wo-name-${s.step_id}` }, s.name),
      h('span', { class: `chip wo-step-status${done ? ' ok' : ''}` }, stepStatusLabel(s.status)),
    ];
    const meta = [];
    if (s.due_at && !done) meta.push(h('span', null, t('work_orders.due'), ' ', dueText(s.due_at, s.overdue)));
    if (done) meta.push(h('span', null, t('work_orders.done_by', { name: s.done_by_name || t('screen.none'), at: formatDate(s.done_at) })));
    if (waiting && s.depends_on.length) meta.push(h('span', null, t('work_orders.after', { steps: s.depends_on.map((d) => names.get(d) || d).join(', ') })));
    if (!done) meta.push(this.assignControl(s));
    const body = [];
    if (s.required_fields.length) body.push(this.renderFields(s, error));
    for (const slot of s.required_files) body.push(this.renderSlot(s, slot, error));
    const li = h(
      'li',
      { class: `wo-step${busy ? ' pending' : ''}${error ? ' has-error' : ''}`, dataset: { step: s.step_id, status: s.status } },
      h('div', { class: 'wo-step-head' }, check, headBits),
      h('div', { class: 'wo-step-meta muted' }, meta),
      body.length ? h('div', { class: 'wo-step-body' }, body) : null,
      h('p', { class: 'wo-step-error', id: `wo-err-${s.step_id}`, role: 'alert', hidden: !error }, error?.message || ''),
    );
    // Drop a file anywhere on the step: it goes to the slot still missing, else the first.
    if (s.required_files.length && this.editable && !done) {
      li.addEventListener('dragover', (event) => {
        if (![...(event.dataTransfer?.types || [])].includes('Files')) return;
        event.preventDefault();
        li.classList.add('dragover');
      });
      li.addEventListener('dragleave', (event) => {
        if (!li.contains(event.relatedTarget)) li.classList.remove('dragover');
      });
      li.addEventListener('drop', (event) => {
        li.classList.remove('dragover');
        const files = [...(event.dataTransfer?.files || [])];
        if (!files.length) return;
        event.preventDefault();
        const zone = event.target.closest?.('.wo-slot');
        const slot = zone?.dataset.slot || s.required_files.find((f) => !this.filesIn(f).length) || s.required_files[0];
        for (const file of files) this.upload(s, slot, file);
      });
    }
    return li;
  }

  assignControl(s) {
    if (!this.editable) {
      return h('span', null, t('work_orders.assignee'), ' ', s.assignee_name || (s.role ? t('work_orders.role', { role: tt(`work_orders.role_name.${s.role}`, s.role) }) : t('screen.none')));
    }
    const options = [{ value: '', label: s.role ? t('work_orders.role', { role: tt(`work_orders.role_name.${s.role}`, s.role) }) : t('work_orders.unassigned') }, ...this.users.map((u) => ({ value: u.id, label: u.name }))];
    if (s.assignee_id && !options.some((o) => o.value === s.assignee_id)) options.push({ value: s.assignee_id, label: s.assignee_name || s.assignee_id });
    const picker = select('assignee', options, s.assignee_id || '');
    picker.id = `wo-assign-${s.step_id}`;
    picker.classList.add('wo-assign');
    picker.disabled = this.busy.has(s.step_id);
    picker.addEventListener('change', () => this.assign(s, picker.value || null, picker));
    return h('label', { class: 'wo-assign-label', for: picker.id }, t('work_orders.assignee'), ' ', picker);
  }

  renderFields(s, error) {
    const done = s.status === 'done';
    if (done || s.status === 'waiting') {
      return h(
        'dl',
        { class: 'wo-values' },
        s.required_fields.flatMap((f) => [h('dt', null, fieldLabel(this.page, f)), h('dd', null, this.displayValue(f, this.order.fields[f]))]),
      );
    }
    return h(
      'div',
      { class: 'form-grid wo-fields' },
      s.required_fields.map((f) => {
        const input = this.fieldInput(s, f);
        const message = error?.fields?.[f];
        const hint = h('small', { class: 'field-error', id: `${input.id}-err`, hidden: !message }, message ? `${fieldLabel(this.page, f)}: ${message}` : '');
        if (message) input.setAttribute('aria-invalid', 'true');
        input.setAttribute('aria-describedby', hint.id);
        return h('label', { for: input.id, class: 'wo-field' }, h('span', null, fieldLabel(this.page, f), h('span', { class: 'wo-req', 'aria-hidden': 'true' }, ' *')), input, hint);
      }),
    );
  }

  displayValue(id, value) {
    if (value === undefined || value === null || value === '') return h('span', { class: 'muted' }, t('screen.none'));
    const { type, options } = fieldType(this.page, id);
    if (type === 'datetime') return formatDate(value);
    if (type === 'date' && /^\d{4}-\d{2}-\d{2}$/.test(value)) return formatWith(`${value}T12:00:00Z`, { day: 'numeric', month: 'short', year: 'numeric' });
    if (type === 'choice') return options.find((o) => o.id === value)?.label || String(value);
    if (type === 'boolean') return value ? t('work_orders.yes') : t('work_orders.no');
    return String(value);
  }

  fieldInput(s, f) {
    const { type, options } = fieldType(this.page, f);
    const current = this.drafts.has(f) ? this.drafts.get(f) : this.order.fields[f];
    const id = `wo-f-${s.step_id}-${f}`;
    let input;
    if (type === 'choice') {
      input = select(f, [{ value: '', label: t('screen.none') }, ...options.map((o) => ({ value: o.id, label: o.label }))], current ?? '');
    } else if (type === 'boolean') {
      input = h('input', { type: 'checkbox', name: f });
      input.checked = current === true || current === 'true';
    } else {
      const kind = { number: 'number', money: 'number', date: 'date', datetime: 'datetime-local' }[type] || 'text';
      input = h('input', { type: kind, name: f, autocomplete: 'off', step: kind === 'number' ? 'any' : null, inputmode: kind === 'number' ? 'decimal' : null });
      let value = current ?? '';
      if (kind === 'datetime-local' && !this.drafts.has(f)) value = toLocalInput(value);
      if (typeof value === 'object') value = value?.amount ?? '';
      input.value = String(value);
    }
    input.id = id;
    input.dataset.field = f;
    input.disabled = !this.editable || this.busy.has(s.step_id);
    const save = () => this.drafts.set(f, input.type === 'checkbox' ? input.checked : input.value);
    input.addEventListener('input', save);
    input.addEventListener('change', save);
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && input.tagName === 'INPUT' && input.type !== 'checkbox') {
        event.preventDefault();
        save();
        this.complete(s);
      }
    });
    return input;
  }

  /** The step's required field values as the API takes them (blank ones left out). */
  fieldValues(s) {
    const out = {};
    for (const f of s.required_fields) {
      if (!this.drafts.has(f)) continue;
      const raw = this.drafts.get(f);
      const { type } = fieldType(this.page, f);
      if (raw === '' || raw === null || raw === undefined) {
        out[f] = null;
        continue;
      }
      if (type === 'number' || type === 'money') out[f] = Number(String(raw).replace(',', '.'));
      else if (type === 'datetime') out[f] = fromLocalInput(raw);
      else if (type === 'boolean') out[f] = !!raw;
      else out[f] = typeof raw === 'string' ? raw.trim() : raw;
    }
    return out;
  }

  filesIn(slot) {
    return this.files.filter((f) => f.folder === slot);
  }

  fileItem(f) {
    const href = `/api/files/${enc(f.id)}/content?inline=true`;
    const thumb = f.previewable ? h('img', { class: 'wo-thumb', src: `/api/files/${enc(f.id)}/preview?size=128`, alt: '', loading: 'lazy', width: '48', height: '48' }) : h('span', { class: 'wo-thumb wo-thumb-none', 'aria-hidden': 'true' }, (f.name.split('.').pop() || '').slice(0, 4).toUpperCase());
    if (thumb.tagName === 'IMG') {
      thumb.addEventListener('error', () => thumb.replaceWith(h('span', { class: 'wo-thumb wo-thumb-none', 'aria-hidden': 'true' }, (f.name.split('.').pop() || '').slice(0, 4).toUpperCase())));
    }
    return h(
      'li',
      { class: 'wo-file', dataset: { id: f.id } },
      h('a', { href, target: '_blank', rel: 'noopener', class: 'wo-file-thumb', tabindex: '-1', 'aria-hidden': 'true' }, thumb),
      h('span', { class: 'wo-file-text' }, h('a', { href, target: '_blank', rel: 'noopener', class: 'wo-file-name' }, f.name), h('small', { class: 'muted' }, [sizeText(f.size), f.uploaded_by_name, formatDate(f.created_at)].filter(Boolean).join(' · '))),
    );
  }

  renderSlot(s, slot, error) {
    const files = this.filesIn(slot);
    const message = error?.fields?.[slot];
    const canUpload = this.editable && s.status !== 'done';
    const input = h('input', { type: 'file', class: 'sr-only wo-file-input', id: `wo-file-${s.step_id}-${slot}`, 'data-slot': slot });
    input.addEventListener('change', () => {
      for (const file of input.files) this.upload(s, slot, file);
      input.value = '';
    });
    const zone = h(
      'div',
      { class: `wo-slot${files.length ? ' filled' : ''}${message ? ' missing' : ''}`, dataset: { slot } },
      h('div', { class: 'wo-slot-head' }, h('span', { class: 'wo-slot-name' }, slotLabel(slot)), h('span', { class: `chip${files.length ? ' ok' : ' bad'}` }, files.length ? t('work_orders.file_ok') : t('work_orders.file_needed'))),
      files.length ? h('ul', { class: 'wo-files' }, files.map((f) => this.fileItem(f))) : null,
      h('ul', { class: 'wo-files wo-uploading', hidden: true }),
      canUpload ? h('div', { class: 'wo-upload-row' }, h('label', { class: 'wo-upload', for: input.id }, input, t('work_orders.choose_file')), h('small', { class: 'muted' }, t('work_orders.drop_hint'))) : null,
      h('small', { class: 'field-error', hidden: !message }, message ? `${slotLabel(slot)}: ${message}` : ''),
    );
    return zone;
  }

  renderOtherFiles(files) {
    const input = h('input', { type: 'file', class: 'sr-only wo-file-input', id: 'wo-file-other', multiple: true });
    input.addEventListener('change', () => {
      for (const file of input.files) this.upload(null, '', file);
      input.value = '';
    });
    const panel = h(
      'section',
      { class: 'panel wo-other-files', 'aria-labelledby': 'wo-files-title' },
      h('h2', { id: 'wo-files-title' }, t('work_orders.other_files')),
      files.length ? h('ul', { class: 'wo-files' }, files.map((f) => this.fileItem(f))) : h('p', { class: 'muted' }, t('work_orders.no_files')),
      h('ul', { class: 'wo-files wo-uploading', hidden: true }),
      this.editable ? h('div', { class: 'wo-upload-row' }, h('label', { class: 'wo-upload', for: input.id }, input, t('work_orders.add_file')), h('small', { class: 'muted' }, t('work_orders.drop_hint'))) : null,
    );
    if (this.editable) {
      panel.addEventListener('dragover', (event) => {
        if (![...(event.dataTransfer?.types || [])].includes('Files')) return;
        event.preventDefault();
        panel.classList.add('dragover');
      });
      panel.addEventListener('dragleave', (event) => {
        if (!panel.contains(event.relatedTarget)) panel.classList.remove('dragover');
      });
      panel.addEventListener('drop', (event) => {
        panel.classList.remove('dragover');
        const list = [...(event.dataTransfer?.files || [])];
        if (!list.length) return;
        event.preventDefault();
        for (const file of list) this.upload(null, '', file);
      });
    }
    return panel;
  }

  renderComments(o) {
    const comments = o.comments || [];
    const text = h('textarea', { name: 'body', id: 'wo-comment-body', maxlength: '10000', required: true, rows: '3', placeholder: t('work_orders.comment_placeholder') });
    text.value = this.commentDraft;
    text.addEventListener('input', () => (this.commentDraft = text.value));
    const submit = h('button', { type: 'submit', class: 'primary', id: 'wo-comment-add' }, t('work_orders.comment_add'));
    const form = h('form', { class: 'stack wo-comment-form' }, h('label', { for: text.id, class: 'sr-only' }, t('work_orders.comment_label')), text, h('div', { class: 'dialog-actions' }, submit));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.addComment(text, submit);
    });
    text.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.addComment(text, submit);
      }
    });
    this.commentList = h(
      'ul',
      { class: 'wo-comments' },
      comments.map((c) => this.commentItem(c)),
    );
    return h(
      'section',
      { class: 'panel wo-comments-panel', 'aria-labelledby': 'wo-comments-title' },
      h('h2', { id: 'wo-comments-title' }, t('work_orders.comments'), ' ', h('span', { class: 'muted wo-count' }, String(comments.length))),
      comments.length ? null : h('p', { class: 'muted wo-no-comments' }, t('work_orders.no_comments')),
      this.commentList,
      this.can.work_orders_edit ? form : null,
    );
  }

  commentItem(c, pending) {
    return h(
      'li',
      { class: `wo-comment${pending ? ' pending' : ''}`, dataset: { id: c.id } },
      h('div', { class: 'wo-comment-head' }, h('strong', null, c.author_name || t('screen.none')), ' ', h('time', { class: 'muted', datetime: c.created_at }, formatDate(c.created_at))),
      h('p', { class: 'wo-comment-body' }, c.body),
    );
  }

  // ---------------------------------------------------------------- actions
  op() {
    const op = opId();
    this.ownOps.add(op);
    setTimeout(() => this.ownOps.delete(op), 60_000);
    return op;
  }

  step(stepId) {
    return this.root.querySelector(`.wo-step[data-step="${CSS.escape(stepId)}"]`);
  }

  setStepError(s, message, fields) {
    if (message) this.stepErrors.set(s.step_id, { message, fields: fields || {} });
    else this.stepErrors.delete(s.step_id);
  }

  /** A failure's message in the user's words (a stale version is explained, not quoted). */
  failure(e) {
    if (e instanceof ApiError && e.body?.code === 'stale_version') return t('work_orders.stale');
    return errorText(e);
  }

  async complete(s) {
    if (this.busy.has(s.step_id) || !this.editable) return;
    const li = this.step(s.step_id);
    const fields = this.fieldValues(s);
    // Optimistic tick.
    this.busy.add(s.step_id);
    this.setStepError(s, null);
    if (li) {
      li.classList.add('pending');
      li.classList.remove('has-error');
      li.dataset.status = 'done';
      const box = li.querySelector('.wo-check');
      box.checked = true;
      const err = li.querySelector('.wo-step-error');
      err.hidden = true;
    }
    try {
      const order = await api('POST', `/api/work-orders/${enc(this.id)}/steps/${enc(s.step_id)}/complete`, { expected_version: this.order.version, fields }, this.op());
      for (const f of s.required_fields) this.drafts.delete(f);
      this.busy.delete(s.step_id);
      this.order = order;
      this.render();
      this.announcer.textContent = t('work_orders.step_done', { step: s.name });
    } catch (e) {
      this.busy.delete(s.step_id);
      this.setStepError(s, this.failure(e), e instanceof ApiError ? e.body?.fields : null);
      if (e instanceof ApiError && e.status === 409) await this.refetch(false);
      else this.render();
      this.step(s.step_id)?.querySelector('.wo-step-error')?.scrollIntoView?.({ block: 'nearest' });
    }
  }

  async reopen(s) {
    if (this.busy.has(s.step_id) || !this.editable) return;
    const li = this.step(s.step_id);
    this.busy.add(s.step_id);
    this.setStepError(s, null);
    if (li) {
      li.classList.add('pending');
      li.dataset.status = 'ready';
      li.querySelector('.wo-check').checked = false;
    }
    try {
      const order = await api('POST', `/api/work-orders/${enc(this.id)}/steps/${enc(s.step_id)}/reopen`, { expected_version: this.order.version }, this.op());
      this.busy.delete(s.step_id);
      this.order = order;
      this.render();
    } catch (e) {
      this.busy.delete(s.step_id);
      this.setStepError(s, this.failure(e));
      if (e instanceof ApiError && e.status === 409) await this.refetch(false);
      else this.render();
    }
  }

  async assign(s, userId, picker) {
    const previous = s.assignee_id || '';
    this.busy.add(s.step_id);
    this.setStepError(s, null);
    picker.disabled = true;
    try {
      const order = await api('POST', `/api/work-orders/${enc(this.id)}/steps/${enc(s.step_id)}/assign`, { user_id: userId, expected_version: this.order.version }, this.op());
      this.busy.delete(s.step_id);
      this.order = order;
      this.render();
      toast(t('work_orders.assigned'));
    } catch (e) {
      this.busy.delete(s.step_id);
      picker.value = previous;
      this.setStepError(s, this.failure(e));
      if (e instanceof ApiError && e.status === 409) await this.refetch(false);
      else this.render();
    }
  }

  async setStatus(status) {
    const o = this.order;
    if (status === 'cancelled' && !(await confirmDialog(t('work_orders.cancel_title'), t('work_orders.cancel_text', { name: orderName(o) }), t('work_orders.action.cancel')))) return;
    const previous = o.status;
    const chip = this.root.querySelector('.wo-header .wo-status');
    if (chip) chip.replaceWith(statusChip(status)); // optimistic
    try {
      this.order = await api('PATCH', `/api/work-orders/${enc(this.id)}`, { status, expected_version: o.version }, this.op());
      this.render();
      toast(t('work_orders.status_changed', { status: statusLabel(status) }));
    } catch (e) {
      this.root.querySelector('.wo-header .wo-status')?.replaceWith(statusChip(previous));
      toast(this.failure(e), true);
      if (e instanceof ApiError && e.status === 409) this.refetch(false);
    }
  }

  async upload(s, slot, file) {
    const zone = s ? this.step(s.step_id)?.querySelector(`.wo-slot[data-slot="${CSS.escape(slot)}"]`) : this.root.querySelector('.wo-other-files');
    const pendingList = zone?.querySelector('.wo-uploading') || null;
    const item = h('li', { class: 'wo-file pending' }, h('span', { class: 'wo-thumb wo-thumb-none', 'aria-hidden': 'true' }, '…'), h('span', { class: 'wo-file-text' }, file.name, h('small', { class: 'muted' }, t('work_orders.uploading'))));
    if (pendingList) {
      pendingList.hidden = false;
      pendingList.append(item);
    }
    const form = new FormData();
    form.append('folder', slot);
    form.append('file', file, file.name);
    let response;
    let data = null;
    try {
      try {
        response = await fetch(`/api/work-orders/${enc(this.id)}/files`, { method: 'POST', headers: { 'X-CSRF-Token': this.page.csrf || '', Accept: 'application/json' }, body: form, credentials: 'same-origin' });
      } catch {
        throw new ApiError(0, null);
      }
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      if (!response.ok) throw new ApiError(response.status, data);
      if (!this.files.some((f) => f.id === data.file.id)) this.files.push(data.file);
      if (s) {
        const err = this.stepErrors.get(s.step_id);
        if (err?.fields?.[slot]) {
          delete err.fields[slot];
          if (!Object.keys(err.fields).length) this.stepErrors.delete(s.step_id);
        }
      }
      toast(data.duplicate ? t('work_orders.file_duplicate', { name: file.name }) : t('work_orders.file_uploaded', { name: file.name }));
      this.render();
    } catch (e) {
      item.remove();
      const message = errorText(e);
      if (s) {
        const err = this.stepErrors.get(s.step_id) || { message: '', fields: {} };
        err.fields = { ...(err.fields || {}), [slot]: message };
        err.message = t('work_orders.upload_failed', { name: file.name, message });
        this.stepErrors.set(s.step_id, err);
        this.render();
      }
      toast(t('work_orders.upload_failed', { name: file.name, message }), true);
    }
  }

  async addComment(text, submit) {
    const body = text.value.trim();
    if (!body) {
      text.reportValidity?.();
      return;
    }
    const pending = this.commentItem({ id: `pending-${Date.now()}`, author_name: this.page.user?.name, body, created_at: new Date().toISOString() }, true);
    this.commentList.append(pending);
    this.root.querySelector('.wo-no-comments')?.remove();
    submit.disabled = true;
    try {
      const order = await api('POST', `/api/work-orders/${enc(this.id)}/comments`, { body }, this.op());
      this.commentDraft = '';
      this.order = order;
      this.render();
      document.getElementById('wo-comment-body')?.focus({ preventScroll: true });
    } catch (e) {
      pending.remove();
      submit.disabled = false;
      toast(errorText(e), true);
    }
  }
}

function sizeText(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
