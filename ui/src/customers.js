// The customers list: search (Turkish-aware, on the server), filters kept in the URL,
// columns chosen per user (saved in the preferences), multi-select with bulk assign/tag,
// merge of two selected customers, and CSV import with a dry-run preview of the mapping and
// the per-row report. A row opens the CustomerViewer in the side panel.
import { api, collator, formatDate, formatMoney, formatNumber, formatPhone, h, opId, t } from './util.js';
import { Screen, attempt, errorText, field, formDialog, select, toast } from './screen.js';
import { CustomerViewer } from './customer.js';

const PAGE = 50;
const BASE_COLUMNS = ['name', 'phone', 'email', 'source', 'campaign', 'owners', 'tags', 'emotional_score', 'logical_score', 'last_contact_at', 'created_at'];
const DEFAULT_COLUMNS = ['name', 'phone', 'source', 'owners', 'tags', 'last_contact_at', 'created_at'];
const FILTER_KEYS = ['q', 'owners', 'sources', 'tags', 'emotional_min', 'pipeline', 'stage'];

export class CustomersScreen extends Screen {
  constructor(page, root, live) {
    super(page, root, live);
    this.customerFields = page.customer_fields || {};
    this.query = { ...(page.params?.query || {}) };
    const chosen = (page.list_columns || []).filter((c) => this.allColumns().includes(c));
    this.columns = chosen.length ? chosen : DEFAULT_COLUMNS;
    this.rows = [];
    this.selected = new Set();
    this.sort = null; // {column, dir}
    this.viewer = new CustomerViewer(page, live, { panel: document.getElementById('viewer') });
    this.viewer.onClose = () => this.lastOpened?.focus({ preventScroll: true });
    this.build();
    this.load();
    if (live) {
      live.on('customer.updated', (e) => this.refreshRow(e.data?.customer_id));
      live.on('card.updated', (e) => this.refreshRow(e.data?.card?.customer_id));
      live.on('card.added', () => this.showNewBanner());
      live.on('resync', () => this.load());
    }
  }

  allColumns() {
    return [...BASE_COLUMNS, ...Object.keys(this.customerFields).map((id) => `fields.${id}`)];
  }

  columnLabel(column) {
    if (column.startsWith('fields.')) return this.customerFields[column.slice(7)]?.label || column;
    return t(`field.${column}`);
  }

  // ------------------------------------------------------------------ layout

  build() {
    const search = h('input', { type: 'search', id: 'customers-search', placeholder: t('customers.search_placeholder'), value: this.query.q || '', 'aria-label': t('top.search') });
    let timer;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.setFilter('q', search.value.trim()), 250);
    });
    const filters = h('div', { class: 'toolbar customers-filters' }, search);
    if (this.can.scope_all) {
      const owner = select('owners', [{ value: '', label: t('customers.any_owner') }, ...this.users.map((u) => ({ value: u.id, label: u.name })), { value: 'none', label: t('filters.none_option') }], this.query.owners || '');
      owner.setAttribute('aria-label', t('filters.owners'));
      owner.addEventListener('change', () => this.setFilter('owners', owner.value));
      filters.append(owner);
    }
    const source = h('input', { list: 'customers-sources', placeholder: t('filters.sources'), 'aria-label': t('filters.sources'), value: this.query.sources || '', class: 'short' });
    source.addEventListener('change', () => this.setFilter('sources', source.value.trim()));
    const tag = h('input', { placeholder: t('filters.tags'), 'aria-label': t('filters.tags'), value: this.query.tags || '', class: 'short' });
    tag.addEventListener('change', () => this.setFilter('tags', tag.value.trim()));
    const quality = select('emotional_min', [{ value: '', label: `${t('filters.quality')}: ${t('filters.quality_any')}` }, ...[25, 50, 75].map((n) => ({ value: String(n), label: `${t('filters.quality')}: ${t('filters.quality_min', { n })}` }))], this.query.emotional_min || '');
    quality.setAttribute('aria-label', t('filters.quality'));
    quality.addEventListener('change', () => this.setFilter('emotional_min', quality.value));
    const pipelines = this.page.pipelines || [];
    const pipeline = select('pipeline', [{ value: '', label: t('customers.any_pipeline') }, ...pipelines.map((p) => ({ value: p.id, label: p.name }))], this.query.pipeline || '');
    pipeline.setAttribute('aria-label', t('top.pipeline'));
    pipeline.addEventListener('change', () => this.setFilter('pipeline', pipeline.value));
    const clear = h('button', { type: 'button', class: 'link', onclick: () => this.clearFilters() }, t('filters.clear'));
    this.sourcesList = h('datalist', { id: 'customers-sources' });
    filters.append(source, this.sourcesList, tag, quality, pipeline, clear);

    const actions = h('div', { class: 'toolbar' }, h('h1', { class: 'screen-title grow' }, t('nav.customers'), ' ', (this.countEl = h('span', { class: 'muted count' }))));
    actions.append(h('button', { type: 'button', id: 'columns-button', 'aria-haspopup': 'dialog', onclick: () => this.chooseColumns() }, t('customers.columns')));
    if (this.can.customers_edit) actions.append(h('button', { type: 'button', id: 'import-button', onclick: () => this.importCsv() }, t('customers.import')));

    this.banner = h('p', { class: 'new-banner', hidden: true, role: 'status' }, t('customers.new_arrived'), ' ', h('button', { type: 'button', class: 'link', onclick: () => this.load() }, t('customers.show_new')));
    this.table = h('table', { class: 'grid customers-table' });
    this.more = h('button', { type: 'button', hidden: true, onclick: () => this.loadMore() }, t('screen.more'));
    this.bulkBar = this.buildBulkBar();
    this.show(actions, filters, this.banner, h('div', { class: 'table-wrap' }, this.table), h('div', { class: 'pager' }, this.more), this.bulkBar);
    document.body.dataset.screenReady = 'false';
  }

  buildBulkBar() {
    const bar = h('div', { class: 'bulk-bar', hidden: true, role: 'region', 'aria-label': t('customers.selection') });
    this.bulkCount = h('span');
    bar.append(this.bulkCount);
    if (this.can.assign) {
      const user = select('user', this.users.map((u) => ({ value: u.id, label: u.name })));
      user.id = 'customers-bulk-user';
      user.setAttribute('aria-label', t('bulk.assign_to'));
      bar.append(user, h('button', { type: 'button', id: 'customers-bulk-assign', onclick: () => this.bulk('/api/customers/bulk-assign', { add: [user.value], replace: true }) }, t('bulk.assign')));
    }
    if (this.can.bulk) {
      const tag = h('input', { id: 'customers-bulk-tag', placeholder: t('bulk.tag_name'), 'aria-label': t('bulk.tag_name'), maxlength: '64' });
      bar.append(
        tag,
        h('button', { type: 'button', onclick: () => tag.value.trim() && this.bulk('/api/customers/bulk-tag', { add: [tag.value.trim()] }) }, t('bulk.tag')),
        h('button', { type: 'button', onclick: () => tag.value.trim() && this.bulk('/api/customers/bulk-tag', { remove: [tag.value.trim()] }) }, t('customers.untag')),
      );
    }
    if (this.can.customers_edit) {
      this.mergeButton = h('button', { type: 'button', id: 'customers-merge', disabled: true, title: t('customers.merge_hint'), onclick: () => this.merge() }, t('customers.merge'));
      bar.append(this.mergeButton);
    }
    bar.append(h('button', { type: 'button', class: 'link', onclick: () => this.clearSelection() }, t('bulk.clear')), (this.bulkResult = h('span', { role: 'status' })));
    return bar;
  }

  // ------------------------------------------------------------------ data

  params(cursor) {
    const p = new URLSearchParams();
    for (const key of FILTER_KEYS) if (this.query[key]) p.set(key, this.query[key]);
    p.set('limit', String(PAGE));
    if (cursor) p.set('cursor', cursor);
    return p;
  }

  setFilter(key, value) {
    if (value) this.query[key] = value;
    else delete this.query[key];
    const p = new URLSearchParams();
    for (const k of FILTER_KEYS) if (this.query[k]) p.set(k, this.query[k]);
    history.replaceState(null, '', `${location.pathname}${p.toString() ? `?${p}` : ''}`);
    this.load();
  }

  clearFilters() {
    this.query = {};
    history.replaceState(null, '', location.pathname);
    this.build();
    this.load();
  }

  async load() {
    this.banner.hidden = true;
    const token = (this.loading = {});
    this.table.setAttribute('aria-busy', 'true');
    try {
      const page = await api('GET', `/api/customers?${this.params()}`);
      if (this.loading !== token) return;
      this.rows = page.customers;
      this.cursor = page.next_cursor;
      this.pruneSelection();
      this.renderTable();
      this.fillSources();
    } catch (error) {
      if (this.loading !== token) return;
      this.table.replaceChildren(h('caption', { class: 'form-error', role: 'alert' }, t('screen.error', { message: errorText(error) }), ' ', h('button', { type: 'button', onclick: () => this.load() }, t('screen.retry'))));
    } finally {
      this.table.setAttribute('aria-busy', 'false');
      document.body.dataset.screenReady = 'true';
    }
  }

  async loadMore() {
    if (!this.cursor) return;
    this.more.disabled = true;
    try {
      const page = await api('GET', `/api/customers?${this.params(this.cursor)}`);
      this.rows.push(...page.customers);
      this.cursor = page.next_cursor;
      this.renderTable();
    } catch (error) {
      toast(errorText(error), true);
    } finally {
      this.more.disabled = false;
    }
  }

  fillSources() {
    const sources = [...new Set(this.rows.map((c) => c.source).filter(Boolean))].sort(collator().compare);
    this.sourcesList.replaceChildren(...sources.map((s) => h('option', { value: s })));
  }

  async refreshRow(id) {
    if (!id) return;
    const index = this.rows.findIndex((c) => c.id === id);
    if (index < 0) return;
    try {
      const fresh = await api('GET', `/api/customers/${encodeURIComponent(id)}`);
      this.rows[index] = fresh;
      const old = this.table.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
      if (old) {
        const row = this.renderRow(fresh);
        old.replaceWith(row);
        row.classList.add('flash-row');
        setTimeout(() => row.classList.remove('flash-row'), 1200);
      }
    } catch {
      // Gone from view (merged, reassigned): the next load drops it.
    }
  }

  showNewBanner() {
    if (!Object.keys(this.query).length) this.banner.hidden = false;
  }

  // ------------------------------------------------------------------ the table

  value(c, column) {
    if (column === 'phone') return c.phones?.[0]?.e164 || c.phones?.[0]?.number || '';
    if (column === 'email') return c.emails?.[0] || '';
    if (column === 'campaign') return (c.last_touch || c.first_touch)?.utm_campaign || (c.last_touch || c.first_touch)?.campaign_id || '';
    if (column === 'owners') return (c.owners || []).map((o) => o.name).join(', ');
    if (column === 'tags') return (c.tags || []).join(', ');
    if (column.startsWith('fields.')) return c.fields?.[column.slice(7)] ?? '';
    return c[column] ?? '';
  }

  cell(c, column) {
    const v = this.value(c, column);
    if (v === '' || v === null || v === undefined) return h('td', { class: 'muted' }, '');
    if (column === 'name') return h('td', null, h('a', { href: `/customers/${encodeURIComponent(c.id)}`, class: 'customer-link', dataset: { id: c.id } }, v));
    if (column === 'phone') return h('td', { class: 'tabular' }, h('a', { href: `tel:${v}` }, formatPhone(v)));
    if (column === 'email') return h('td', null, h('a', { href: `mailto:${v}` }, v));
    if (column === 'source' || column === 'campaign') return h('td', null, h('span', { class: 'chip' }, v));
    if (column === 'tags') return h('td', null, (c.tags || []).map((tag) => h('span', { class: 'chip' }, tag)));
    if (column.endsWith('_at')) return h('td', { class: 'num' }, formatDate(v));
    if (column.endsWith('_score')) return h('td', { class: 'num' }, formatNumber(v));
    if (column.startsWith('fields.')) {
      const def = this.customerFields[column.slice(7)];
      if (def?.type === 'money') return h('td', { class: 'num' }, formatMoney(v));
      if (def?.type === 'choice') return h('td', null, def.options.find((o) => o.id === v)?.label || String(v));
      if (def?.type === 'date' || def?.type === 'datetime') return h('td', { class: 'num' }, formatDate(v));
    }
    return h('td', null, String(v));
  }

  sortedRows() {
    if (!this.sort) return this.rows;
    const { column, dir } = this.sort;
    const order = collator();
    return [...this.rows].sort((a, b) => {
      const x = this.value(a, column);
      const y = this.value(b, column);
      const cmp = typeof x === 'number' && typeof y === 'number' ? x - y : order.compare(String(x), String(y));
      return dir === 'asc' ? cmp : -cmp;
    });
  }

  renderRow(c) {
    const pick = h('input', { type: 'checkbox', class: 'pick', 'aria-label': `${t('board.select_card')}: ${c.name}` });
    pick.checked = this.selected.has(c.id);
    pick.addEventListener('click', (event) => this.toggle(c.id, pick.checked, event.shiftKey));
    const row = h('tr', { dataset: { id: c.id }, class: this.selected.has(c.id) ? 'selected' : '' }, h('td', { class: 'pick-cell' }, pick), this.columns.map((col) => this.cell(c, col)));
    row.addEventListener('click', (event) => {
      if (event.target.closest('input, a[href^="tel:"], a[href^="mailto:"], button')) return;
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return; // a new tab for the link
      event.preventDefault();
      this.openViewer(c.id, row);
    });
    return row;
  }

  openViewer(id, row) {
    this.lastOpened = row.querySelector('.customer-link') || row;
    this.viewer.open(id);
  }

  renderTable() {
    const all = h('input', { type: 'checkbox', 'aria-label': t('customers.select_all') });
    all.checked = this.rows.length > 0 && this.rows.every((c) => this.selected.has(c.id));
    all.addEventListener('change', () => {
      for (const c of this.rows) all.checked ? this.selected.add(c.id) : this.selected.delete(c.id);
      this.renderTable();
    });
    const head = h(
      'tr',
      null,
      h('th', { class: 'pick-cell' }, all),
      this.columns.map((col) => {
        const dir = this.sort?.column === col ? this.sort.dir : null;
        return h(
          'th',
          { 'aria-sort': dir ? (dir === 'asc' ? 'ascending' : 'descending') : 'none' },
          h('button', { type: 'button', class: 'link sort', onclick: () => this.sortBy(col) }, this.columnLabel(col), dir ? (dir === 'asc' ? ' ▲' : ' ▼') : ''),
        );
      }),
    );
    const rows = this.sortedRows();
    const body = rows.length
      ? rows.map((c) => this.renderRow(c))
      : [h('tr', null, h('td', { colspan: String(this.columns.length + 1), class: 'empty-state' }, Object.keys(this.query).length ? t('customers.empty_filtered') : t('customers.empty')))];
    this.table.replaceChildren(h('thead', null, head), h('tbody', null, body));
    this.watchRows();
    this.countEl.textContent = `(${formatNumber(this.rows.length)}${this.cursor ? '+' : ''})`;
    this.more.hidden = !this.cursor;
    this.updateBulkBar();
  }

  /** Hears `customer.updated` for the customers on screen (and stops for the others). */
  watchRows() {
    if (!this.live) return;
    this.watched ??= new Set();
    const now = new Set(this.rows.map((c) => c.id));
    for (const id of this.watched) if (!now.has(id)) this.live.unwatch(id);
    for (const id of now) if (!this.watched.has(id)) this.live.watch(id);
    this.watched = now;
  }

  sortBy(column) {
    if (this.sort?.column === column) this.sort = this.sort.dir === 'asc' ? { column, dir: 'desc' } : null;
    else this.sort = { column, dir: 'asc' };
    this.renderTable();
  }

  async chooseColumns() {
    const boxes = this.allColumns().map((col) => {
      const box = h('input', { type: 'checkbox', name: 'column', value: col });
      box.checked = this.columns.includes(col);
      return h('label', { class: 'inline' }, box, ' ', this.columnLabel(col));
    });
    const data = await formDialog({
      title: t('customers.columns'),
      build: (body) => body.append(h('p', { class: 'muted' }, t('customers.columns_hint')), h('div', { class: 'column-choices' }, boxes)),
      submit: async (form) => {
        const picked = this.allColumns().filter((c) => form.getAll('column').includes(c));
        if (!picked.length) throw new Error(t('customers.columns_none'));
        await api('PUT', '/api/me/preferences', { list_columns: picked });
        return picked;
      },
    });
    if (Array.isArray(data)) {
      this.columns = data;
      this.renderTable();
      toast(t('screen.saved'));
    }
  }

  // ------------------------------------------------------------------ selection, bulk, merge

  toggle(id, on, range) {
    const ids = [id];
    if (range && this.lastPicked && this.lastPicked !== id) {
      const order = this.sortedRows().map((c) => c.id);
      const a = order.indexOf(this.lastPicked);
      const b = order.indexOf(id);
      if (a >= 0 && b >= 0) ids.splice(0, 1, ...order.slice(Math.min(a, b), Math.max(a, b) + 1));
    }
    for (const one of ids) on ? this.selected.add(one) : this.selected.delete(one);
    this.lastPicked = id;
    for (const row of this.table.querySelectorAll('tbody tr[data-id]')) {
      const sel = this.selected.has(row.dataset.id);
      row.classList.toggle('selected', sel);
      const box = row.querySelector('.pick');
      if (box) box.checked = sel;
    }
    this.updateBulkBar();
  }

  pruneSelection() {
    const ids = new Set(this.rows.map((c) => c.id));
    for (const id of [...this.selected]) if (!ids.has(id)) this.selected.delete(id);
  }

  clearSelection() {
    this.selected.clear();
    this.renderTable();
  }

  updateBulkBar() {
    this.bulkBar.hidden = this.selected.size === 0;
    this.bulkCount.textContent = t('customers.selected', { n: this.selected.size });
    if (this.mergeButton) this.mergeButton.disabled = this.selected.size !== 2;
  }

  async bulk(path, change) {
    const ids = [...this.selected];
    this.bulkResult.textContent = t('board.loading');
    try {
      const r = await api('POST', path, { customer_ids: ids, ...change }, opId());
      const reasons = [...new Set((r.results || []).filter((x) => x.status !== 'done').map((x) => x.reason).filter(Boolean))];
      this.bulkResult.textContent = `${t('bulk.result', { done: r.done, refused: r.refused })}${reasons.length ? ` ${reasons.join(' ')}` : ''}`;
      if (!r.refused) this.selected.clear();
    } catch (error) {
      this.bulkResult.textContent = errorText(error);
    }
    await this.load();
  }

  async merge() {
    const [a, b] = [...this.selected].map((id) => this.rows.find((c) => c.id === id)).filter(Boolean);
    if (!a || !b) return;
    const describe = (c) =>
      h(
        'dl',
        { class: 'viewer-dl compact' },
        h('dt', null, t('field.name')), h('dd', null, c.name),
        h('dt', null, t('field.phone')), h('dd', null, (c.phones || []).map((p) => formatPhone(p.e164 || p.number)).join(', ') || '—'),
        h('dt', null, t('field.email')), h('dd', null, (c.emails || []).join(', ') || '—'),
        h('dt', null, t('field.source')), h('dd', null, c.source),
        h('dt', null, t('field.owners')), h('dd', null, (c.owners || []).map((o) => o.name).join(', ') || '—'),
        h('dt', null, t('field.created_at')), h('dd', null, formatDate(c.created_at)),
      );
    const choice = (c, checked) => {
      const radio = h('input', { type: 'radio', name: 'survivor', value: c.id, required: true });
      radio.checked = checked;
      return h('label', { class: 'merge-choice' }, h('span', null, radio, ' ', t('customers.keep_this')), describe(c));
    };
    const older = new Date(a.created_at) <= new Date(b.created_at) ? a : b;
    const result = await formDialog({
      title: t('customers.merge_title'),
      submitLabel: t('customers.merge'),
      wide: true,
      build: (body) => body.append(h('p', { class: 'muted' }, t('customers.merge_explain')), h('div', { class: 'merge-grid' }, choice(a, a === older), choice(b, b === older))),
      submit: async (data) => {
        const survivor = data.get('survivor') === a.id ? a : b;
        const other = survivor === a ? b : a;
        return api('POST', `/api/customers/${encodeURIComponent(survivor.id)}/merge`, { other_id: other.id, expected_version: survivor.version, other_expected_version: other.version }, opId());
      },
    });
    if (result && result.survivor) {
      toast(t('customers.merged'));
      this.selected.clear();
      await this.load();
    }
  }

  // ------------------------------------------------------------------ CSV import

  async importCsv() {
    let text = null;
    let fileName = '';
    const file = h('input', { type: 'file', name: 'file', accept: '.csv,text/csv,text/plain', required: true, id: 'import-file' });
    const partial = h('input', { type: 'checkbox', name: 'partial', value: 'true', id: 'import-partial' });
    const preview = h('div', { class: 'import-preview', id: 'import-preview' });
    const run = h('button', { type: 'button', class: 'primary', id: 'import-run', disabled: true }, t('customers.import_run'));
    file.addEventListener('change', async () => {
      const f = file.files?.[0];
      run.disabled = true;
      preview.replaceChildren();
      if (!f) return;
      fileName = f.name;
      try {
        text = await f.text();
      } catch {
        preview.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, t('customers.import_unreadable')));
        return;
      }
      preview.replaceChildren(h('p', { class: 'muted' }, t('screen.loading')));
      try {
        const report = await api('POST', '/api/imports', { file_name: fileName, csv: text, dry_run: true, partial: partial.checked || undefined });
        preview.replaceChildren(this.importReport(report, true));
        run.disabled = Boolean(report.rejected) || report.total_rows === report.failed;
      } catch (error) {
        const report = error.body && error.body.columns ? error.body : null;
        preview.replaceChildren(report ? this.importReport(report, true) : h('p', { class: 'form-error', role: 'alert' }, errorText(error)));
        run.disabled = !(report && report.total_rows > report.failed && partial.checked);
      }
    });
    partial.addEventListener('change', () => file.files?.length && file.dispatchEvent(new Event('change')));
    run.addEventListener('click', async () => {
      if (text === null) return;
      run.disabled = true;
      preview.prepend(h('p', { class: 'muted' }, t('customers.import_running')));
      let report;
      try {
        report = await api('POST', '/api/imports', { file_name: fileName, csv: text, partial: partial.checked || undefined });
        while (report.state === 'running') {
          await new Promise((r) => setTimeout(r, 1000));
          report = await api('GET', `/api/imports/${encodeURIComponent(report.id)}`);
        }
      } catch (error) {
        report = error.body && error.body.columns ? error.body : null;
        if (!report) {
          preview.prepend(h('p', { class: 'form-error', role: 'alert' }, errorText(error)));
          run.disabled = false;
          return;
        }
      }
      preview.replaceChildren(this.importReport(report, false));
      if (report.created || report.matched) this.load();
    });
    await formDialog({
      title: t('customers.import_title'),
      submitLabel: t('screen.close'),
      wide: true,
      build: (body) =>
        body.append(
          h('p', { class: 'muted' }, t('customers.import_hint')),
          field(t('customers.import_file'), file),
          h('label', { class: 'inline', for: 'import-partial' }, partial, ' ', t('customers.import_partial')),
          preview,
          h('div', { class: 'row' }, run),
        ),
      submit: async () => true,
    });
  }

  importReport(r, dry) {
    const targetLabel = (target) => {
      if (!target) return h('span', { class: 'muted' }, t('customers.import_ignored'));
      if (target.startsWith('fields.')) return this.customerFields[target.slice(7)]?.label || target;
      const key = `field.${target}`;
      const label = t(key);
      return label === key ? target : label;
    };
    const counts = h(
      'ul',
      { class: 'import-counts' },
      h('li', null, t('customers.import_total', { n: formatNumber(r.total_rows) })),
      h('li', null, t(dry ? 'customers.import_would_create' : 'customers.import_created', { n: formatNumber(r.created) })),
      h('li', null, t('customers.import_matched', { n: formatNumber(r.matched) })),
      r.duplicate ? h('li', null, t('customers.import_duplicate', { n: formatNumber(r.duplicate) })) : null,
      h('li', { class: r.failed ? 'overdue' : '' }, t('customers.import_failed', { n: formatNumber(r.failed) })),
    );
    const mapping = h(
      'table',
      { class: 'grid compact' },
      h('thead', null, h('tr', null, h('th', null, t('customers.import_column')), h('th', null, t('customers.import_target')))),
      h('tbody', null, (r.columns || []).map((c) => h('tr', null, h('td', null, c.column), h('td', null, targetLabel(c.target))))),
    );
    const bad = (r.bad_rows || []).slice(0, 200);
    const badTable = bad.length
      ? h(
          'table',
          { class: 'grid compact bad-rows' },
          h('thead', null, h('tr', null, h('th', { class: 'num' }, t('customers.import_row')), h('th', null, t('customers.import_reason')))),
          h('tbody', null, bad.map((b) => h('tr', null, h('td', { class: 'num' }, String(b.row)), h('td', null, b.reason)))),
        )
      : null;
    const state = r.rejected ? t(dry ? 'customers.import_would_reject' : 'customers.import_rejected') : dry ? t('customers.import_preview') : r.state === 'done' ? t('customers.import_done') : r.error || r.state;
    return h('div', { class: 'import-report', dataset: { state: r.state } }, h('p', { class: r.rejected ? 'form-error' : '' }, h('strong', null, state)), counts, h('h3', null, t('customers.import_mapping')), mapping, badTable ? [h('h3', null, t('customers.import_bad_rows')), badTable] : null);
  }
}
