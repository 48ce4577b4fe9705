// The kanban board: columns from the pipeline YAML (rendered by the server), cards
// rendered here from the board API's JSON, drag to move (optimistic, rolled back with
// the server's message), multi-select with a bulk bar, filters kept in the URL, lazy
// column pages, and live patches from other users.
import Sortable from 'sortablejs';
import { CustomerViewer } from './customer.js';
import { api, collator, formatDate, formatMoney, formatNumber, formatPhone, fromLocalInput, h, initials, moneyAmount, opId, t, toLocalInput } from './util.js';

const FILTER_KEYS = ['owners', 'sources', 'campaigns', 'tags'];
const DATE_FIELDS = new Set(['last_contact_at', 'next_reminder_at', 'created_at', 'updated_at', 'stage_entered_at']);

export class Board {
  constructor(page, live) {
    this.page = page;
    this.live = live;
    this.pipeline = page.pipeline;
    this.fields = page.board.fields;
    this.defs = page.field_defs || {};
    this.can = page.can || {};
    this.cards = new Map(); // id → {card, el}
    this.columns = new Map(); // stage → {section, list, count, cursor, loading}
    this.selected = new Set();
    this.lastPicked = null;
    this.ownOps = new Set();
    this.stageNames = new Map(this.pipeline.stages.map((s) => [s.id, s.name]));
    this.root = document.getElementById('board');
    for (const section of this.root.querySelectorAll('.column')) {
      const stage = section.dataset.stage;
      const list = section.querySelector('.cards');
      this.columns.set(stage, { stage, section, list, count: 0, cursor: null, loading: false, error: section.querySelector('.column-error') });
    }
    this.load(page.board);
    this.initDrag();
    this.initLazy();
    this.initSelection();
    this.initFilters();
    this.initKeyboard();
    this.initBulk();
    this.initViewer();
    if (live) {
      for (const type of ['card.moved', 'cards.moved', 'card.added', 'card.updated', 'card.removed']) live.on(type, (event) => this.onEvent(type, event));
      live.on('resync', () => this.refresh());
      live.on('definitions.changed', () => this.refresh());
    }
    document.body.dataset.boardReady = 'true';
    // Time to interactive, for the browser benchmark (tests/ui/bench.mjs).
    window.akisReadyAt = performance.now();
  }

  // ------------------------------------------------------------------ rendering

  load(board) {
    this.cards.clear();
    for (const column of board.columns) {
      const col = this.columns.get(column.stage.id);
      if (!col) continue;
      col.list.replaceChildren();
      col.cursor = column.next_cursor;
      this.setCount(col, column.count);
      for (const card of column.cards) col.list.append(this.renderCard(card));
      col.list.append(this.sentinel(col));
      this.updateEmpty(col);
    }
    this.pruneSelection();
  }

  sentinel(col) {
    col.sentinelEl ??= h('li', { class: 'sentinel', 'aria-hidden': 'true' });
    if (this.observer) this.observer.observe(col.sentinelEl);
    return col.sentinelEl;
  }

  setCount(col, n) {
    col.count = Math.max(0, n);
    const el = col.section.querySelector('[data-count]');
    el.textContent = formatNumber(col.count);
    const wip = col.section.querySelector('[data-wip]');
    if (wip) {
      const over = col.count > Number(wip.dataset.wip);
      wip.classList.toggle('over', over);
      wip.title = over ? t('board.wip_over') : t('board.wip');
    }
  }

  updateEmpty(col) {
    const has = col.list.querySelector('.card');
    let empty = col.list.querySelector('.empty');
    if (!has && !empty) {
      empty = h('li', { class: 'empty' }, this.hasFilters() ? t('board.empty_filtered') : t('board.empty_column'));
      col.list.prepend(empty);
    } else if (has && empty) empty.remove();
  }

  fieldLabel(field) {
    return this.defs[field]?.label || t(`field.${field}`);
  }

  fieldValue(field, value) {
    if (value === null || value === undefined || value === '' || (Array.isArray(value) && !value.length)) return null;
    const type = this.defs[field]?.type;
    if (field === 'owners') {
      return h('span', { class: 'owners' }, value.map((o) => h('span', { class: 'avatar', title: o.name }, initials(o.name))), ' ', value.map((o) => o.name).join(', '));
    }
    if (field === 'phone') return h('a', { href: `tel:${value}` }, formatPhone(value));
    if (field === 'email') return h('a', { href: `mailto:${value}` }, value);
    if (field === 'source' || field === 'campaign') return h('span', { class: 'chip' }, value);
    if (field === 'tags') return value.map((tag) => h('span', { class: 'chip' }, tag));
    if (type === 'money') return formatMoney(value);
    if (type === 'choice') return this.defs[field].options.find((o) => o.id === value)?.label || value;
    if (type === 'datetime' || type === 'date' || DATE_FIELDS.has(field)) {
      const text = formatDate(value);
      const overdue = (field === 'next_reminder_at' || field === 'appointment_at') && new Date(value) < new Date();
      return overdue ? h('span', { class: 'overdue', title: t('field.overdue') }, text, ' · ', t('field.overdue')) : text;
    }
    if (typeof value === 'number') return formatNumber(value);
    if (typeof value === 'boolean') return value ? '✓' : '—';
    return String(value);
  }

  renderCard(card) {
    const name = card.fields.name ?? '';
    const rows = [];
    for (const field of this.fields) {
      if (field === 'name') continue;
      const shown = this.fieldValue(field, card.fields[field]);
      if (shown === null) continue;
      rows.push(h('dt', null, this.fieldLabel(field)), h('dd', { dataset: { field } }, shown));
    }
    const badges = (card.badges || []).map((b) => {
      const el = h('span', { class: 'badge' }, this.page.lang === 'en' ? b.en : b.tr);
      if (b.color) el.style.setProperty('--badge-color', b.color);
      return el;
    });
    const pick = h('input', { type: 'checkbox', class: 'pick', 'aria-label': `${t('board.select_card')}: ${name}`, tabindex: '-1' });
    pick.checked = this.selected.has(card.id);
    const el = h(
      'li',
      { class: `card${this.selected.has(card.id) ? ' selected' : ''}`, tabindex: '0', dataset: { id: card.id, version: card.version, customer: card.customer_id }, 'aria-label': name },
      pick,
      this.fields.includes('name') ? h('p', { class: 'card-name' }, name) : null,
      rows.length ? h('dl', null, rows) : null,
      badges.length ? h('div', { class: 'badges' }, badges) : null,
    );
    const previous = this.cards.get(card.id);
    this.cards.set(card.id, { card, el });
    if (previous && previous.el !== el && previous.el.isConnected) previous.el.replaceWith(el);
    return el;
  }

  /** Where `card` belongs in its column: before the first card it sorts ahead of. */
  before(col, card) {
    const desc = this.pipeline.direction === 'desc';
    for (const el of col.list.querySelectorAll('.card')) {
      if (el.dataset.id === card.id) continue;
      const other = this.cards.get(el.dataset.id)?.card;
      if (!other) continue;
      let cmp = card.sort_key < other.sort_key ? -1 : card.sort_key > other.sort_key ? 1 : card.id < other.id ? -1 : 1;
      if (desc) cmp = -cmp;
      if (cmp < 0) return el;
    }
    return null;
  }

  /** Puts `card` at its place in its stage's column (if that part of the column is loaded). */
  place(card, el) {
    const col = this.columns.get(card.stage_id);
    if (!col) {
      el.remove();
      return false;
    }
    const before = this.before(col, card);
    if (!before && col.cursor) {
      // It sorts after the loaded part of the column: the next page will bring it.
      el.remove();
      this.cards.delete(card.id);
      return false;
    }
    col.list.insertBefore(el, before || col.sentinelEl || null);
    this.updateEmpty(col);
    return true;
  }

  flash(el) {
    el.classList.add('flash');
    setTimeout(() => el.classList.remove('flash'), 1200);
  }

  // ------------------------------------------------------------------ moving

  transition(from, to) {
    return this.pipeline.transitions.find((tr) => tr.from === from && tr.to === to);
  }

  initDrag() {
    if (!this.can.edit) return;
    for (const col of this.columns.values()) {
      Sortable.create(col.list, {
        group: {
          name: 'board',
          pull: true,
          put: (to, from) => Boolean(this.transition(from.el.dataset.stage, to.el.dataset.stage)),
        },
        sort: false,
        draggable: '.card',
        filter: '.pick',
        preventOnFilter: false,
        animation: 120,
        onEnd: (event) => {
          if (event.from === event.to) return;
          this.requestMove(event.item.dataset.id, event.from.dataset.stage, event.to.dataset.stage);
        },
      });
    }
  }

  /** The fields a move asks for: the transition's `asks` and the stage's required fields. */
  asked(from, to) {
    const tr = this.transition(from, to);
    const stage = this.pipeline.stages.find((s) => s.id === to);
    return [...new Set([...(tr?.asks || []), ...(stage?.required || [])])].filter((f) => this.defs[f]);
  }

  /** A move the user asked for (card already shown in the target column). */
  async requestMove(id, from, to) {
    const entry = this.cards.get(id);
    if (!entry) return;
    let fields = {};
    for (const stageId of [from, to]) this.updateEmpty(this.columns.get(stageId));
    if (this.asked(from, to).length) {
      const answer = await this.askFields(entry.card, from, to, null);
      if (answer === null) {
        this.snapBack(entry, from);
        return;
      }
      fields = answer.fields;
    }
    await this.move(entry, from, to, fields);
  }

  /** The keyboard's way to move (Enter on a card): pick the stage, fill what it asks. */
  async keyboardMove(cardEl) {
    const entry = this.cards.get(cardEl.dataset.id);
    if (!entry || !this.can.edit) return;
    const from = entry.card.stage_id;
    const targets = this.pipeline.transitions.filter((tr) => tr.from === from).map((tr) => tr.to);
    if (!targets.length) return;
    const answer = await this.askFields(entry.card, from, targets[0], targets);
    if (answer === null) {
      cardEl.focus();
      return;
    }
    const toCol = this.columns.get(answer.to);
    toCol.list.insertBefore(entry.el, toCol.list.querySelector('.card') || toCol.sentinelEl || null);
    entry.el.focus();
    await this.move(entry, from, answer.to, answer.fields);
    // The server's echo may have re-rendered the card meanwhile: focus the one on screen.
    this.cards.get(entry.card.id)?.el.focus();
  }

  /** The move dialog; resolves to {to, fields}, or null when cancelled. `targets`: offer a stage choice. */
  askFields(card, from, to, targets) {
    const dialog = document.getElementById('move-dialog');
    const holder = document.getElementById('move-fields');
    const error = document.getElementById('move-error');
    error.hidden = true;
    const title = (stage) => {
      document.getElementById('move-title').textContent = `${t('move.title')}: ${card.fields.name ?? ''} → ${this.stageNames.get(stage)}`;
    };
    let stageSelect = null;
    const inputs = h('div', { class: 'move-inputs' });
    const renderInputs = (stage) => {
      title(stage);
      inputs.replaceChildren(
        ...this.asked(from, stage).map((field) => {
          const def = this.defs[field];
          const id = `move-field-${field}`;
          let input;
          if (def.type === 'choice') {
            input = h('select', { id, name: field }, h('option', { value: '' }, '—'), def.options.map((o) => h('option', { value: o.id }, o.label)));
          } else {
            const type = def.type === 'datetime' ? 'datetime-local' : def.type === 'date' ? 'date' : def.type === 'money' || def.type === 'number' ? 'number' : 'text';
            input = h('input', { id, name: field, type, step: type === 'number' ? 'any' : null });
          }
          const current = card.fields[field];
          if (current !== undefined && current !== null) input.value = def.type === 'datetime' ? toLocalInput(current) : def.type === 'money' ? String(moneyAmount(current)) : String(current);
          input.dataset.type = def.type;
          return h('label', { for: id }, def.label, input);
        }),
      );
    };
    const parts = [];
    if (targets) {
      stageSelect = h('select', { id: 'move-stage' }, targets.map((s) => h('option', { value: s }, this.stageNames.get(s))));
      stageSelect.addEventListener('change', () => renderInputs(stageSelect.value));
      parts.push(h('label', { for: 'move-stage' }, t('bulk.move_to'), stageSelect));
    }
    parts.push(inputs);
    holder.replaceChildren(...parts);
    renderInputs(to);
    return new Promise((resolve) => {
      dialog.addEventListener(
        'close',
        () => {
          if (dialog.returnValue !== 'ok') return resolve(null);
          const out = {};
          for (const input of inputs.querySelectorAll('input, select')) {
            if (input.value === '') continue;
            const type = input.dataset.type;
            if (type === 'datetime') out[input.name] = fromLocalInput(input.value);
            else if (type === 'money' || type === 'number') out[input.name] = Number(input.value);
            else out[input.name] = input.value;
          }
          resolve({ to: stageSelect ? stageSelect.value : to, fields: out });
        },
        { once: true },
      );
      dialog.returnValue = '';
      dialog.showModal();
      (stageSelect || inputs.querySelector('input, select'))?.focus();
    });
  }

  snapBack(entry, from) {
    entry.card = { ...entry.card, stage_id: from };
    this.place(entry.card, entry.el);
    for (const col of this.columns.values()) this.updateEmpty(col);
  }

  /** The refusal on the card itself, or above its column when the card is re-rendered. */
  showError(entry, stage, message, onColumn) {
    entry.el.querySelector('.card-error')?.remove();
    const note = h('p', { class: 'card-error', role: 'alert' }, message);
    if (!onColumn) entry.el.append(note);
    const col = this.columns.get(stage);
    if (onColumn && col?.error) {
      col.error.textContent = message;
      col.error.hidden = false;
      clearTimeout(col.errorTimer);
      col.errorTimer = setTimeout(() => (col.error.hidden = true), 8000);
    }
    setTimeout(() => note.remove(), 8000);
  }

  async move(entry, from, to, fields) {
    const fromCol = this.columns.get(from);
    const toCol = this.columns.get(to);
    // Optimistic: the card already sits in the target column; counts follow at once.
    this.setCount(fromCol, fromCol.count - 1);
    this.setCount(toCol, toCol.count + 1);
    this.updateEmpty(fromCol);
    this.updateEmpty(toCol);
    entry.el.classList.add('pending');
    entry.el.querySelector('.card-error')?.remove();
    const op = opId();
    this.ownOps.add(op);
    try {
      const moved = await api('POST', `/api/cards/${entry.card.id}/move`, { to, expected_version: entry.card.version, fields }, op);
      entry.card = { ...entry.card, stage_id: to, version: moved.card.version, fields: { ...entry.card.fields, ...pick(moved.card.fields, this.fields) } };
      entry.el.dataset.version = moved.card.version;
      entry.el.dataset.stage = to;
    } catch (error) {
      this.setCount(fromCol, fromCol.count + 1);
      this.setCount(toCol, toCol.count - 1);
      this.snapBack(entry, from);
      let message;
      if (error.status === 409) {
        message = t('move.conflict');
        this.refresh();
      } else if (error.status === 422 || error.status === 403) {
        message = error.body?.message || t('move.not_allowed');
      } else if (error.status === 0) message = t('move.offline');
      else message = t('move.failed');
      this.showError(entry, from, message, error.status === 409);
    } finally {
      entry.el.classList.remove('pending');
      this.updateEmpty(fromCol);
      this.updateEmpty(toCol);
    }
  }

  // ------------------------------------------------------------------ lazy columns

  initLazy() {
    this.observer = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          const col = this.columns.get(e.target.closest('.cards')?.dataset.stage);
          if (col) this.loadMore(col);
        }
      },
      { rootMargin: '400px' },
    );
    for (const col of this.columns.values()) if (col.sentinelEl) this.observer.observe(col.sentinelEl);
  }

  async loadMore(col) {
    if (!col.cursor || col.loading) return;
    col.loading = true;
    const params = this.filterParams();
    params.set('cursor', col.cursor);
    params.set('limit', '50');
    try {
      const page = await api('GET', `/api/pipelines/${encodeURIComponent(this.pipeline.id)}/board/${encodeURIComponent(col.stage)}?${params}`);
      col.cursor = page.next_cursor;
      this.setCount(col, page.count);
      const frag = document.createDocumentFragment();
      for (const card of page.cards) if (!this.cards.has(card.id)) frag.append(this.renderCard(card));
      col.list.insertBefore(frag, col.sentinelEl);
    } catch {
      // Scrolling again retries.
    } finally {
      col.loading = false;
    }
    // Still visible (a tall screen): keep filling.
    if (col.cursor && col.sentinelEl.getBoundingClientRect().top < col.list.getBoundingClientRect().bottom + 400) this.loadMore(col);
  }

  // ------------------------------------------------------------------ filters

  hasFilters() {
    const p = new URLSearchParams(location.search);
    return [...FILTER_KEYS, 'q', 'emotional_min'].some((k) => p.get(k));
  }

  filterParams() {
    const params = new URLSearchParams();
    const current = new URLSearchParams(location.search);
    for (const key of [...FILTER_KEYS, 'q', 'emotional_min']) if (current.get(key)) params.set(key, current.get(key));
    return params;
  }

  readControls() {
    const params = new URLSearchParams();
    for (const details of document.querySelectorAll('.filter')) {
      const values = [...details.querySelectorAll('input[type="checkbox"]:checked')].map((i) => i.value);
      if (values.length) params.set(details.dataset.filter, values.join(','));
      const count = details.querySelector('.filter-count');
      count.textContent = String(values.length);
      count.hidden = !values.length;
    }
    const q = document.getElementById('search')?.value.trim();
    if (q) params.set('q', q);
    const quality = document.getElementById('filter-quality')?.value;
    if (quality) params.set('emotional_min', quality);
    return params;
  }

  renderChips() {
    const chips = document.getElementById('chips');
    const out = [];
    for (const details of document.querySelectorAll('.filter')) {
      for (const input of details.querySelectorAll('input[type="checkbox"]:checked')) {
        const label = input.parentElement.textContent.trim();
        out.push(
          h('li', null, h('button', { type: 'button', 'aria-label': `${t('filters.remove')}: ${label}`, onclick: () => { input.checked = false; this.applyFilters(); } }, `${details.querySelector('summary').firstChild.textContent.trim()}: ${label} ×`)),
        );
      }
    }
    chips.replaceChildren(...out);
    document.getElementById('clear-filters').hidden = !this.hasFilters();
  }

  initFilters() {
    const order = collator();
    for (const details of document.querySelectorAll('.filter')) {
      // Options in the user's collation (Turkish: ç after c, ı before i, İ with i).
      const list = details.querySelector('.filter-options');
      const items = [...list.children];
      const last = details.dataset.filter === 'owners' ? items.filter((li) => li.querySelector('input').value === 'none') : [];
      list.replaceChildren(...items.filter((li) => !last.includes(li)).sort((a, b) => order.compare(a.textContent.trim(), b.textContent.trim())), ...last);
      details.addEventListener('change', (e) => {
        if (e.target.matches('input[type="checkbox"]')) this.applyFilters();
      });
      const search = details.querySelector('.filter-search');
      search.addEventListener('input', () => {
        const needle = search.value.toLocaleLowerCase(this.page.lang);
        for (const li of details.querySelectorAll('.filter-options li')) li.hidden = !li.textContent.toLocaleLowerCase(this.page.lang).includes(needle);
      });
      details.addEventListener('keydown', (e) => {
        if (e.key === 'Escape') {
          details.open = false;
          details.querySelector('summary').focus();
        }
      });
    }
    document.getElementById('filter-quality')?.addEventListener('change', () => this.applyFilters());
    const search = document.getElementById('search');
    let timer;
    search?.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.applyFilters(), 250);
    });
    document.getElementById('search-form')?.addEventListener('submit', (e) => {
      e.preventDefault();
      this.applyFilters();
    });
    document.getElementById('clear-filters')?.addEventListener('click', () => {
      for (const input of document.querySelectorAll('.filter input[type="checkbox"]')) input.checked = false;
      if (search) search.value = '';
      const quality = document.getElementById('filter-quality');
      if (quality) quality.value = '';
      this.applyFilters();
    });
    this.readControls();
    this.renderChips();
  }

  applyFilters() {
    const params = this.readControls();
    const query = params.toString();
    history.replaceState(null, '', `${location.pathname}${query ? `?${query}` : ''}`);
    this.renderChips();
    this.refresh();
  }

  async refresh() {
    const params = this.filterParams();
    params.set('limit', String(this.page.page_size || 30));
    const seq = (this.refreshSeq = (this.refreshSeq || 0) + 1);
    try {
      const board = await api('GET', `/api/pipelines/${encodeURIComponent(this.pipeline.id)}/board?${params}`);
      if (seq === this.refreshSeq) this.load(board);
    } catch {
      // Keep what is on screen.
    }
  }

  // ------------------------------------------------------------------ selection and bulk

  initSelection() {
    this.root.addEventListener('click', (event) => {
      const pickEl = event.target.closest('.pick');
      if (!pickEl) return;
      const cardEl = pickEl.closest('.card');
      this.toggle(cardEl, pickEl.checked, event.shiftKey);
    });
  }

  toggle(cardEl, on, range) {
    const id = cardEl.dataset.id;
    const ids = [id];
    if (range && this.lastPicked && this.lastPicked !== id) {
      const list = [...cardEl.parentElement.querySelectorAll('.card')].map((el) => el.dataset.id);
      const a = list.indexOf(this.lastPicked);
      const b = list.indexOf(id);
      if (a >= 0 && b >= 0) ids.splice(0, 1, ...list.slice(Math.min(a, b), Math.max(a, b) + 1));
    }
    for (const one of ids) {
      const entry = this.cards.get(one);
      if (!entry) continue;
      if (on) this.selected.add(one);
      else this.selected.delete(one);
      entry.el.classList.toggle('selected', on);
      entry.el.querySelector('.pick').checked = on;
    }
    this.lastPicked = id;
    this.updateBulkBar();
  }

  pruneSelection() {
    for (const id of [...this.selected]) if (!this.cards.has(id)) this.selected.delete(id);
    this.updateBulkBar();
  }

  updateBulkBar() {
    const bar = document.getElementById('bulk-bar');
    bar.hidden = this.selected.size === 0;
    document.getElementById('bulk-count').textContent = t('bulk.selected', { n: this.selected.size });
  }

  clearSelection() {
    for (const id of this.selected) {
      const entry = this.cards.get(id);
      if (entry) {
        entry.el.classList.remove('selected');
        entry.el.querySelector('.pick').checked = false;
      }
    }
    this.selected.clear();
    this.updateBulkBar();
  }

  async bulk(path, body) {
    const result = document.getElementById('bulk-result');
    result.textContent = t('board.loading');
    try {
      const r = await api('POST', path, body, opId());
      const reasons = [...new Set(r.results.filter((x) => x.status !== 'done').map((x) => x.reason).filter(Boolean))];
      result.textContent = `${t('bulk.result', { done: r.done, refused: r.refused })}${reasons.length ? ` ${reasons.join(' ')}` : ''}`;
      if (!r.refused) this.clearSelection();
    } catch (error) {
      result.textContent = error.body?.message || t('bulk.failed');
    }
    await this.refresh();
  }

  selectedEntries() {
    return [...this.selected].map((id) => this.cards.get(id)).filter(Boolean);
  }

  initBulk() {
    document.getElementById('bulk-clear')?.addEventListener('click', () => this.clearSelection());
    document.getElementById('bulk-move')?.addEventListener('click', () => {
      const to = document.getElementById('bulk-stage').value;
      this.bulk('/api/cards/bulk-move', { to, cards: this.selectedEntries().map((e) => ({ card_id: e.card.id, expected_version: e.card.version })) });
    });
    document.getElementById('bulk-assign')?.addEventListener('click', () => {
      const user = document.getElementById('bulk-user').value;
      this.bulk('/api/customers/bulk-assign', { customer_ids: [...new Set(this.selectedEntries().map((e) => e.card.customer_id))], add: [user], replace: true });
    });
    document.getElementById('bulk-tag')?.addEventListener('click', () => {
      const tag = document.getElementById('bulk-tag-name').value.trim();
      if (!tag) return;
      this.bulk('/api/customers/bulk-tag', { customer_ids: [...new Set(this.selectedEntries().map((e) => e.card.customer_id))], add: [tag] });
    });
  }

  // ------------------------------------------------------------------ the CustomerViewer

  /** A click on a card (not its checkbox or a link) opens its customer in the side panel;
   *  `?customer=<id>` in the URL keeps it open across a reload. */
  initViewer() {
    this.viewer = new CustomerViewer(this.page, this.live, { panel: document.getElementById('viewer') });
    this.viewer.onClose = () => {
      const url = new URL(location.href);
      url.searchParams.delete('customer');
      history.replaceState(null, '', url);
      this.lastOpened?.focus({ preventScroll: true });
    };
    this.root.addEventListener('click', (event) => {
      if (event.target.closest('.pick, a, button, input')) return;
      const cardEl = event.target.closest('.card');
      if (cardEl && !cardEl.classList.contains('sortable-chosen')) this.openCustomer(cardEl);
    });
    const open = new URL(location.href).searchParams.get('customer');
    if (open) this.viewer.open(open);
  }

  openCustomer(cardEl) {
    const id = cardEl.dataset.customer;
    if (!id) return;
    this.lastOpened = cardEl;
    const url = new URL(location.href);
    url.searchParams.set('customer', id);
    history.replaceState(null, '', url);
    this.viewer.open(id);
  }

  // ------------------------------------------------------------------ keyboard

  initKeyboard() {
    this.root.addEventListener('keydown', (event) => {
      const cardEl = event.target.closest?.('.card');
      if (!cardEl || event.target !== cardEl) return;
      const list = cardEl.parentElement;
      const cards = [...list.querySelectorAll('.card')];
      const i = cards.indexOf(cardEl);
      let next = null;
      if (event.key === 'ArrowDown') next = cards[i + 1];
      else if (event.key === 'ArrowUp') next = cards[i - 1];
      else if (event.key === 'ArrowRight' || event.key === 'ArrowLeft') {
        const cols = [...this.columns.values()];
        const c = cols.findIndex((col) => col.list === list);
        const other = cols[c + (event.key === 'ArrowRight' ? 1 : -1)];
        if (other) {
          const otherCards = [...other.list.querySelectorAll('.card')];
          next = otherCards[Math.min(i, otherCards.length - 1)];
        }
      } else if (event.key === ' ') {
        event.preventDefault();
        this.toggle(cardEl, !this.selected.has(cardEl.dataset.id), event.shiftKey);
        return;
      } else if (event.key === 'Enter') {
        event.preventDefault();
        this.openCustomer(cardEl);
        return;
      } else if (event.key === 'm' || event.key === 'M') {
        event.preventDefault();
        this.keyboardMove(cardEl);
        return;
      } else if (event.key === 'Escape') {
        this.clearSelection();
        return;
      } else return;
      event.preventDefault();
      next?.focus();
    });
  }

  // ------------------------------------------------------------------ live patches

  /** Applies a card from a realtime event; `own` is the echo of our own request. */
  applyCard(card, own) {
    if (card.pipeline_id && card.pipeline_id !== this.pipeline.id) return;
    const entry = this.cards.get(card.id);
    if (entry && entry.card.version > card.version) return;
    if (entry && entry.card.version === card.version && !own) return;
    const known = Boolean(entry);
    const fromStage = entry?.card.stage_id;
    if (!known && this.hasFilters()) return; // it may not match the filters; the next refresh decides
    if (known && fromStage !== card.stage_id && !own) {
      const from = this.columns.get(fromStage);
      const to = this.columns.get(card.stage_id);
      if (from) this.setCount(from, from.count - 1);
      if (to) this.setCount(to, to.count + 1);
    }
    const wasSelected = this.selected.has(card.id);
    const hadFocus = entry && entry.el === document.activeElement;
    const el = this.renderCard(card);
    if (wasSelected) el.classList.add('selected');
    const shown = this.place(card, el);
    if (shown && !own) this.flash(el);
    // A patch never takes the keyboard focus away from the card being worked on.
    if (shown && hadFocus) el.focus({ preventScroll: true });
    for (const col of this.columns.values()) this.updateEmpty(col);
  }

  remove(id) {
    const entry = this.cards.get(id);
    if (!entry) return;
    const col = this.columns.get(entry.card.stage_id);
    entry.el.remove();
    this.cards.delete(id);
    this.selected.delete(id);
    if (col) {
      this.setCount(col, col.count - 1);
      this.updateEmpty(col);
    }
    this.updateBulkBar();
  }

  onEvent(type, event) {
    const data = event.data || {};
    const own = event.op && this.ownOps.has(event.op);
    if (data.pipeline_id && data.pipeline_id !== this.pipeline.id) return;
    switch (type) {
      case 'card.moved':
      case 'card.updated':
        this.applyCard(data.card, own);
        break;
      case 'card.added': {
        const known = this.cards.has(data.card.id);
        if (!known && !this.hasFilters()) {
          const col = this.columns.get(data.card.stage_id);
          if (col) this.setCount(col, col.count + 1);
        }
        this.applyCard(data.card, own);
        break;
      }
      case 'cards.moved':
        for (const m of data.moves || []) {
          if (!this.cards.has(m.card.id) && !this.hasFilters()) {
            const from = this.columns.get(m.from);
            const to = this.columns.get(m.to);
            if (from) this.setCount(from, from.count - 1);
            if (to) this.setCount(to, to.count + 1);
          }
          this.applyCard(m.card, false);
        }
        break;
      case 'card.removed':
        this.remove(data.card_id);
        break;
      default:
    }
  }
}

function pick(fields, keys) {
  const out = {};
  for (const k of keys) if (fields && k in fields) out[k] = fields[k];
  return out;
}
