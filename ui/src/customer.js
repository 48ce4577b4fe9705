// The CustomerViewer: everything about one customer, in a side panel over the board or on
// its own page (`/customers/{id}`). Data with inline edit, owners, scores, tags, consent,
// the cards, activities with outcomes, call results, appointments, reminders, files
// (drag-and-drop upload, previews), work orders, and the live timeline with notes.
// Changes by others arrive over the socket (customer.updated, timeline.added,
// work_order.updated) and are patched in place with a brief highlight.
import { ApiError, api, formatDate, formatMoney, formatNumber, formatPhone, fromLocalInput, h, initials, localized, moneyAmount, opId, t, toLocalInput } from './util.js';
import { attempt, errorText, field, formDialog, select, toast } from './screen.js';
import { renderWorkOrderSummary } from './work_orders.js';

const TIMELINE_PAGE = 30;

function fileSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${formatNumber(Math.round(n / 102.4) / 10)} KB`;
  return `${formatNumber(Math.round(n / (1024 * 104.8576)) / 10)} MB`;
}

function section(key, title, ...children) {
  return h('section', { class: `viewer-section section-${key}`, dataset: { section: key }, 'aria-labelledby': `vs-${key}` }, h('h3', { id: `vs-${key}` }, title), ...children);
}

export class CustomerViewer {
  /** The viewer as the page's main content (`/customers/{id}`). */
  static page(page, root, live) {
    const viewer = new CustomerViewer(page, live, { root });
    viewer.open(page.params?.id);
    return viewer;
  }

  constructor(page, live, { panel, root }) {
    this.page = page;
    this.live = live;
    this.panel = panel || null;
    this.root = root || panel;
    this.can = page.can || {};
    this.customerFields = page.customer_fields || {};
    this.cardFields = page.field_defs || {};
    this.kinds = page.activity_kinds || [];
    this.ownOps = new Set();
    this.pendingNotes = new Map(); // op → the optimistic timeline entry
    this.id = null;
    this.onClose = null;
    this.editing = null; // the field being edited: live updates leave it alone
    if (live) {
      live.on('customer.updated', (e) => e.data?.customer_id === this.id && this.onCustomerUpdated(e));
      live.on('timeline.added', (e) => e.data?.customer_id === this.id && this.onTimeline(e));
      live.on('work_order.updated', (e) => e.data?.customer_id === this.id && this.reloadPart('orders'));
      live.on('card.moved', (e) => e.data?.card?.customer_id === this.id && this.reloadPart('customer'));
      live.on('card.updated', (e) => e.data?.card?.customer_id === this.id && !this.isOwn(e) && this.reloadPart('customer'));
      live.on('reminder.due', (e) => e.data?.customer_id === this.id && this.reloadPart('reminders'));
      live.on('resync', () => this.id && this.load());
    }
    if (this.panel) {
      // Esc closes the panel wherever the focus is (not while a dialog or an edit is open).
      document.addEventListener('keydown', (event) => {
        if (event.key !== 'Escape' || this.panel.hidden || document.querySelector('dialog[open]') || this.editing) return;
        event.preventDefault();
        // In a field of the panel (a note being written) the first Esc only leaves the field,
        // so nothing typed is thrown away by accident.
        const field = event.target.closest?.('#viewer input, #viewer textarea, #viewer select');
        if (field && field.value) {
          this.panel.focus({ preventScroll: true });
          return;
        }
        this.close();
      });
    }
  }

  isOwn(event) {
    return Boolean(event.op && this.ownOps.has(event.op));
  }

  op() {
    const id = opId();
    this.ownOps.add(id);
    return id;
  }

  label(key) {
    return t(`customer.${key}`);
  }

  // ------------------------------------------------------------------ open / close / load

  async open(id) {
    if (!id) return;
    if (this.id && this.id !== id) this.live?.unwatch(this.id);
    const fresh = this.id !== id;
    this.id = id;
    // For the browser benchmark (tests/ui/bench.mjs): when the panel opened, when it was ready.
    window.akisViewerOpenedAt = performance.now();
    if (this.panel) {
      this.panel.hidden = false;
      document.body.classList.add('viewer-open');
      this.panel.focus({ preventScroll: true });
    }
    if (fresh) {
      this.data = null;
      this.root.replaceChildren(this.skeleton());
      this.live?.watch(id);
    }
    await this.load();
  }

  close() {
    if (!this.panel) return;
    if (this.id) this.live?.unwatch(this.id);
    this.id = null;
    this.panel.hidden = true;
    this.panel.replaceChildren();
    document.body.classList.remove('viewer-open');
    if (this.onClose) this.onClose();
  }

  skeleton() {
    return h('div', { class: 'viewer-body', 'aria-busy': 'true' }, h('div', { class: 'skeleton skeleton-row' }), h('div', { class: 'skeleton skeleton-row' }), h('div', { class: 'skeleton skeleton-row' }));
  }

  async load() {
    const id = this.id;
    const enc = encodeURIComponent(id);
    const optional = (p) => p.catch((error) => ({ error }));
    try {
      const [customer, timeline, activities, appointments, reminders, files, orders] = await Promise.all([
        api('GET', `/api/customers/${enc}`),
        optional(api('GET', `/api/customers/${enc}/timeline?limit=${TIMELINE_PAGE}`)),
        optional(api('GET', `/api/customers/${enc}/activities`)),
        optional(api('GET', `/api/customers/${enc}/appointments`)),
        optional(api('GET', `/api/reminders?customer=${enc}&status=open`)),
        optional(api('GET', `/api/customers/${enc}/files`)),
        this.can.work_orders_view ? optional(api('GET', `/api/work-orders?customer=${enc}`)) : Promise.resolve([]),
      ]);
      if (this.id !== id) return;
      if (customer.merged_into) {
        toast(this.label('merged_redirect'));
        return this.open(customer.merged_into);
      }
      this.data = { customer, timeline, activities, appointments, reminders, files, orders };
      this.render();
    } catch (error) {
      if (this.id !== id) return;
      this.root.replaceChildren(
        this.header(null),
        h('div', { class: 'empty-state', role: 'alert' }, error instanceof ApiError && error.status === 404 ? this.label('not_found') : t('screen.error', { message: errorText(error) }), ' ', h('button', { onclick: () => this.load() }, t('screen.retry'))),
      );
      this.markReady();
    }
  }

  /** Refetches one part (after a live event) and re-renders it in place. */
  async reloadPart(part) {
    if (!this.id || !this.data) return;
    const enc = encodeURIComponent(this.id);
    const paths = {
      customer: `/api/customers/${enc}`,
      activities: `/api/customers/${enc}/activities`,
      appointments: `/api/customers/${enc}/appointments`,
      reminders: `/api/reminders?customer=${enc}&status=open`,
      files: `/api/customers/${enc}/files`,
      orders: `/api/work-orders?customer=${enc}`,
    };
    try {
      const value = await api('GET', paths[part]);
      if (!this.data) return;
      this.data[part] = value;
      this.renderPart(part === 'customer' ? 'data' : part, true);
      if (part === 'customer') this.renderPart('cards', false);
    } catch {
      // The next event or a reload brings it.
    }
  }

  markReady() {
    window.akisViewerReadyAt = performance.now();
    this.root.dataset.viewerReady = 'true';
    this.root.setAttribute('aria-busy', 'false');
    document.body.dataset.screenReady = 'true';
  }

  // ------------------------------------------------------------------ rendering

  header(customer) {
    const name = customer ? this.editable('name', customer.name, 'text', (value) => this.saveCustomer({ name: value })) : '';
    return h(
      'header',
      { class: 'viewer-head' },
      h('h2', { id: 'viewer-title', class: 'viewer-name' }, customer ? name : this.label('title')),
      customer && this.panel ? h('a', { class: 'link', href: `/customers/${encodeURIComponent(customer.id)}` }, this.label('open_page')) : null,
      this.panel ? h('button', { class: 'icon-button viewer-close', 'aria-label': t('screen.close'), title: `${t('screen.close')} (Esc)`, onclick: () => this.close() }, '×') : null,
    );
  }

  render() {
    const { customer } = this.data;
    this.sections = new Map();
    const body = h('div', { class: 'viewer-body' });
    const left = h('div', { class: 'viewer-col' });
    const right = h('div', { class: 'viewer-col' });
    for (const part of ['data', 'cards', 'activities', 'appointments', 'reminders', 'files', 'orders']) {
      const holder = h('div', { class: 'viewer-part', dataset: { part } });
      this.sections.set(part, holder);
      left.append(holder);
    }
    const timeline = h('div', { class: 'viewer-part', dataset: { part: 'timeline' } });
    this.sections.set('timeline', timeline);
    right.append(timeline);
    body.append(left, right);
    this.root.replaceChildren(this.header(customer), this.quickActions(customer), body);
    for (const part of this.sections.keys()) this.renderPart(part, false);
    if (!this.panel) document.title = `${customer.name} · ${t('app.name')}`;
    this.markReady();
  }

  renderPart(part, flash) {
    const holder = this.sections?.get(part);
    if (!holder) return;
    const renderers = {
      data: () => this.renderData(),
      cards: () => this.renderCards(),
      activities: () => this.renderActivities(),
      appointments: () => this.renderAppointments(),
      reminders: () => this.renderReminders(),
      files: () => this.renderFiles(),
      orders: () => this.renderOrders(),
      timeline: () => this.renderTimeline(),
    };
    if (part === 'data' && this.editing) return; // never under the user's cursor
    holder.replaceChildren(renderers[part]());
    if (part === 'data') {
      const name = this.root.querySelector('.viewer-name');
      if (name && this.data) name.replaceChildren(this.editable('name', this.data.customer.name, 'text', (value) => this.saveCustomer({ name: value })));
    }
    if (flash) {
      holder.classList.add('flash-row');
      setTimeout(() => holder.classList.remove('flash-row'), 1200);
    }
  }

  failedPart(value) {
    return value && value.error ? h('p', { class: 'muted', role: 'alert' }, errorText(value.error)) : null;
  }

  quickActions(customer) {
    const phone = customer.phones?.[0]?.e164 || customer.phones?.[0]?.number;
    const actions = h('div', { class: 'quick-actions', role: 'toolbar', 'aria-label': this.label('quick_actions') });
    if (phone) actions.append(h('a', { class: 'button', href: `tel:${phone}`, onclick: () => this.canEdit() && setTimeout(() => this.logCall(), 300) }, this.label('call')));
    if (this.canEdit()) {
      actions.append(
        h('button', { type: 'button', onclick: () => this.root.querySelector('#note-body')?.focus() }, this.label('add_note')),
        h('button', { type: 'button', onclick: () => this.logCall() }, this.label('log_call')),
        h('button', { type: 'button', onclick: () => this.newReminder() }, this.label('new_reminder')),
        h('button', { type: 'button', onclick: () => this.newAppointment() }, this.label('new_appointment')),
        h('button', { type: 'button', onclick: () => this.root.querySelector('.file-input')?.click() }, this.label('upload')),
      );
    }
    const wa = customer.phones?.[0]?.e164;
    if (wa) actions.append(h('a', { class: 'button', href: `https://wa.me/${wa.replace(/^\+/, '')}`, target: '_blank', rel: 'noopener noreferrer' }, 'WhatsApp'));
    return actions;
  }

  canEdit() {
    return Boolean(this.can.customers_edit);
  }

  /** A value that turns into an input on click (Enter saves, Esc cancels). */
  editable(key, value, type, save, options) {
    const shown = () => {
      if (value === null || value === undefined || value === '') return h('span', { class: 'muted' }, this.canEdit() ? this.label('click_to_fill') : t('screen.none'));
      if (type === 'money') return formatMoney(value);
      if (type === 'choice') return options?.find((o) => o.id === value)?.label || String(value);
      if (type === 'date' || type === 'datetime') return formatDate(value);
      if (type === 'boolean') return value ? '✓' : '—';
      if (type === 'number') return formatNumber(value);
      return String(value);
    };
    const el = h('span', { class: 'editable', dataset: { key } }, shown());
    if (!this.canEdit()) return el;
    el.tabIndex = 0;
    el.setAttribute('role', 'button');
    el.title = this.label('edit_hint');
    const start = () => {
      if (el.querySelector('input, select, textarea')) return;
      this.editing = key;
      let input;
      if (type === 'choice') {
        input = h('select', null, h('option', { value: '' }, '—'), (options || []).map((o) => h('option', { value: o.id }, o.label)));
        input.value = value ?? '';
      } else if (type === 'long_text') {
        input = h('textarea', { rows: 3 });
        input.value = value ?? '';
      } else if (type === 'boolean') {
        input = h('select', null, h('option', { value: '' }, '—'), h('option', { value: 'true' }, '✓'), h('option', { value: 'false' }, '✗'));
        input.value = value === true ? 'true' : value === false ? 'false' : '';
      } else {
        const kind = type === 'datetime' ? 'datetime-local' : type === 'date' ? 'date' : type === 'money' || type === 'number' ? 'number' : 'text';
        input = h('input', { type: kind, step: kind === 'number' ? 'any' : null, 'aria-label': key });
        input.value = value === null || value === undefined ? '' : type === 'datetime' ? toLocalInput(value) : type === 'money' ? String(moneyAmount(value)) : String(value);
      }
      input.classList.add('inline-input');
      const error = h('small', { class: 'form-error', role: 'alert', hidden: true });
      el.replaceChildren(input, error);
      input.focus();
      const finish = () => {
        this.editing = null;
        el.replaceChildren(shown());
      };
      const commit = async () => {
        let next = input.value;
        if (next === '') next = null;
        else if (type === 'money' || type === 'number') next = Number(next);
        else if (type === 'datetime') next = fromLocalInput(next);
        else if (type === 'boolean') next = next === 'true';
        else if (type === 'text') next = next.trim();
        const same = type === 'money' ? next !== null && value !== null && value !== undefined && next === moneyAmount(value) : next === value;
        if (same || (next === null && (value === null || value === undefined))) return finish();
        input.disabled = true;
        try {
          await save(next);
          value = next;
          this.editing = null;
          el.replaceChildren(shown());
          el.classList.add('saved');
          setTimeout(() => el.classList.remove('saved'), 1200);
        } catch (e) {
          input.disabled = false;
          error.textContent = errorText(e);
          error.hidden = false;
          input.focus();
        }
      };
      input.addEventListener('keydown', (event) => {
        if (event.key === 'Escape') {
          event.preventDefault();
          event.stopPropagation();
          finish();
          el.focus();
        } else if (event.key === 'Enter' && !(type === 'long_text' && event.shiftKey)) {
          event.preventDefault();
          commit();
        }
      });
      input.addEventListener('blur', () => {
        if (!input.disabled && error.hidden) commit();
      });
    };
    el.addEventListener('click', start);
    el.addEventListener('keydown', (event) => {
      if ((event.key === 'Enter' || event.key === 'F2') && event.target === el) {
        event.preventDefault();
        start();
      }
    });
    return el;
  }

  /** PATCH the customer with its version; a stale version reloads and explains. */
  async saveCustomer(changes) {
    const customer = this.data.customer;
    try {
      const updated = await api('PATCH', `/api/customers/${encodeURIComponent(customer.id)}`, { expected_version: customer.version, ...changes }, this.op());
      this.data.customer = updated;
      return updated;
    } catch (error) {
      if (error.status === 409) {
        this.editing = null;
        await this.reloadPart('customer');
        throw new ApiError(409, { message: this.label('stale') });
      }
      throw error;
    }
  }

  renderData() {
    const c = this.data.customer;
    const rows = [];
    const row = (label, value) => rows.push(h('dt', null, label), h('dd', null, value));
    row(t('field.phone'), c.phones?.length ? h('span', null, c.phones.map((p, i) => [i ? ', ' : '', h('a', { href: `tel:${p.e164 || p.number}` }, formatPhone(p.e164 || p.number))])) : t('screen.none'));
    row(t('field.email'), c.emails?.length ? h('span', null, c.emails.map((e, i) => [i ? ', ' : '', h('a', { href: `mailto:${e}` }, e)])) : t('screen.none'));
    row(t('field.source'), h('span', { class: 'chip' }, c.source));
    const touch = c.last_touch || c.first_touch;
    const campaign = touch?.utm_campaign || touch?.campaign_id;
    if (campaign) row(t('field.campaign'), h('span', { class: 'chip' }, campaign));
    for (const [id, def] of Object.entries(this.customerFields)) {
      row(def.label, this.editable(`fields.${id}`, c.fields?.[id], def.type, (value) => this.saveCustomer({ fields: { [id]: value } }), def.options));
    }
    row(t('field.owners'), this.renderOwners(c));
    row(this.label('scores'), this.renderScores(c));
    row(t('field.tags'), this.renderTags(c));
    row(this.label('consent'), this.renderConsent(c));
    row(t('field.last_contact_at'), c.last_contact_at ? formatDate(c.last_contact_at) : t('screen.none'));
    row(t('field.created_at'), formatDate(c.created_at));
    return section('data', this.label('data'), h('dl', { class: 'viewer-dl' }, rows));
  }

  renderOwners(c) {
    const list = h('span', { class: 'owners' }, (c.owners || []).map((o) => h('span', { class: 'owner' }, h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(o.name)), ' ', o.name)));
    if (!c.owners?.length) list.append(h('span', { class: 'muted' }, t('filters.none_option')));
    if (this.can.assign) {
      const picker = select('owner', [{ value: '', label: this.label('assign_to') }, ...(this.page.users || []).map((u) => ({ value: u.id, label: u.name }))], '');
      picker.classList.add('owner-picker');
      picker.setAttribute('aria-label', this.label('assign_to'));
      picker.addEventListener('change', async () => {
        if (!picker.value) return;
        const ok = await attempt(() => api('POST', '/api/customers/bulk-assign', { customer_ids: [c.id], add: [picker.value], replace: true }, this.op()), this.label('assigned'));
        if (ok) await this.reloadPart('customer');
      });
      return h('span', { class: 'owners-edit' }, list, picker);
    }
    return list;
  }

  renderScores(c) {
    const meter = (label, value) =>
      h('span', { class: 'score' }, label, ' ', value === null || value === undefined ? h('span', { class: 'muted' }, '—') : [h('meter', { min: '0', max: '100', value: String(value), 'aria-label': label }), ' ', formatNumber(value)]);
    return h('span', { class: 'scores' }, meter(this.label('emotional'), c.emotional_score), meter(this.label('logical'), c.logical_score));
  }

  renderTags(c) {
    const tags = c.tags || [];
    const wrap = h('span', { class: 'tags' });
    for (const tag of tags) {
      wrap.append(
        h(
          'span',
          { class: 'chip tag' },
          tag,
          this.canEdit() ? h('button', { class: 'link', 'aria-label': `${this.label('remove_tag')}: ${tag}`, onclick: () => attempt(() => this.saveCustomer({ tags: tags.filter((x) => x !== tag) }).then(() => this.renderPart('data'))) }, '×') : null,
        ),
      );
    }
    if (this.canEdit()) {
      const input = h('input', { class: 'tag-input', placeholder: this.label('add_tag'), 'aria-label': this.label('add_tag'), maxlength: '64' });
      input.addEventListener('keydown', async (event) => {
        if (event.key !== 'Enter') return;
        event.preventDefault();
        const tag = input.value.trim();
        if (!tag || tags.includes(tag)) return;
        input.disabled = true;
        const ok = await attempt(() => this.saveCustomer({ tags: [...tags, tag] }));
        input.disabled = false;
        if (ok) this.renderPart('data');
      });
      wrap.append(input);
    }
    return wrap;
  }

  renderConsent(c) {
    const box = (key, label) => {
      const value = c.consent?.[key]?.granted ?? c.consent?.[key];
      const input = h('input', { type: 'checkbox', disabled: !this.canEdit() });
      input.checked = value === true;
      input.addEventListener('change', async () => {
        const ok = await attempt(() => this.saveCustomer({ [`${key}_consent`]: input.checked }), t('screen.saved'));
        if (!ok) input.checked = !input.checked;
      });
      const source = c.consent?.[key]?.source;
      return h('label', { class: 'consent' }, input, ' ', label, source ? h('small', { class: 'muted' }, ` (${source})`) : null);
    };
    return h('span', { class: 'consents' }, box('marketing', this.label('consent_marketing')), box('whatsapp', this.label('consent_whatsapp')));
  }

  renderCards() {
    const cards = this.data.customer.cards || [];
    if (!cards.length) return section('cards', this.label('cards'), h('p', { class: 'muted' }, this.label('no_cards')));
    return section(
      'cards',
      this.label('cards'),
      h(
        'ul',
        { class: 'viewer-list' },
        cards.map((card) => {
          const pipeline = (this.page.pipelines || []).find((p) => p.id === card.pipeline_id);
          const stage = pipeline?.stages?.find((s) => s.id === card.stage_id)?.name || card.stage_id;
          const fields = Object.entries(card.fields || {}).filter(([k]) => this.cardFields[k] && !this.customerFields[k]);
          return h(
            'li',
            { class: 'viewer-card' },
            h('div', { class: 'row' }, h('a', { href: `/board/${encodeURIComponent(card.pipeline_id)}` }, pipeline?.name || card.pipeline_id), ' ', h('span', { class: `chip stage-chip stage-${card.stage_id}` }, stage), card.closed_at ? h('span', { class: 'chip' }, this.label('closed')) : null),
            fields.length
              ? h(
                  'dl',
                  { class: 'viewer-dl compact' },
                  fields.map(([k, v]) => [
                    h('dt', null, this.cardFields[k].label),
                    h('dd', null, this.editable(`card.${card.id}.${k}`, v, this.cardFields[k].type, (value) => this.saveCard(card, { [k]: value }), this.cardFields[k].options)),
                  ]),
                )
              : null,
          );
        }),
      ),
    );
  }

  async saveCard(card, fields) {
    const updated = await api('PATCH', `/api/cards/${encodeURIComponent(card.id)}`, { expected_version: card.version, fields }, this.op());
    Object.assign(card, updated);
    return updated;
  }

  kind(id) {
    return this.kinds.find((k) => k.id === id);
  }

  stageName(id) {
    for (const p of this.page.pipelines || []) {
      const stage = p.stages?.find((s) => s.id === id);
      if (stage) return stage.name;
    }
    return id;
  }

  renderActivities() {
    const value = this.data.activities;
    const failed = this.failedPart(value);
    const list = Array.isArray(value) ? value : value?.activities || [];
    const open = list.filter((a) => a.status === 'open');
    const closed = list.filter((a) => a.status !== 'open').slice(0, 5);
    const item = (a) => {
      const kind = this.kind(a.kind);
      const parts = [h('strong', null, kind?.label || a.kind)];
      if (a.due_at) parts.push(' · ', h('span', { class: new Date(a.due_at) < new Date() && a.status === 'open' ? 'overdue' : '' }, formatDate(a.due_at)));
      if (a.outcome) parts.push(' · ', kind?.outcomes.find((o) => o.id === a.outcome)?.label || a.outcome);
      if (a.note) parts.push(h('div', { class: 'muted' }, a.note));
      const li = h('li', { class: `activity ${a.status}`, dataset: { id: a.id } }, ...parts);
      if (a.status === 'open' && this.canEdit() && kind?.outcomes.length) {
        const outcome = select('outcome', [{ value: '', label: this.label('outcome') }, ...kind.outcomes.map((o) => ({ value: o.id, label: o.label }))], '');
        outcome.setAttribute('aria-label', this.label('outcome'));
        const error = h('small', { class: 'form-error', role: 'alert', hidden: true });
        const done = h('button', {
          type: 'button',
          onclick: async () => {
            if (!outcome.value) return outcome.focus();
            done.disabled = true;
            try {
              await api('POST', `/api/activities/${encodeURIComponent(a.id)}/close`, { outcome: outcome.value, expected_version: a.version }, this.op());
              toast(this.label('activity_closed'));
              await Promise.all([this.reloadPart('activities'), this.reloadPart('customer')]);
            } catch (e) {
              error.textContent = errorText(e);
              error.hidden = false;
              done.disabled = false;
            }
          },
        }, this.label('close_activity'));
        li.append(h('div', { class: 'row' }, outcome, done), error);
      }
      return li;
    };
    return section(
      'activities',
      this.label('activities'),
      failed,
      open.length || closed.length ? h('ul', { class: 'viewer-list' }, [...open, ...closed].map(item)) : h('p', { class: 'muted' }, this.label('no_activities')),
      this.canEdit() ? h('button', { type: 'button', class: 'link', onclick: () => this.newActivity() }, `+ ${this.label('new_activity')}`) : null,
    );
  }

  /** A finished call in one step: kind `arama` (or the first kind) with its result. */
  logCall() {
    const call = this.kind('arama') || this.kinds.find((k) => k.outcomes.length) || this.kinds[0];
    return this.newActivity(call?.id, true);
  }

  async newActivity(kindId, finished) {
    if (!this.kinds.length) return;
    const kindSelect = select('kind', this.kinds.map((k) => ({ value: k.id, label: k.label })), kindId || this.kinds[0].id);
    const outcome = h('select', { name: 'outcome' });
    const fillOutcomes = () => {
      const kind = this.kind(kindSelect.value);
      outcome.replaceChildren(h('option', { value: '' }, finished ? '—' : this.label('still_open')), ...(kind?.outcomes || []).map((o) => h('option', { value: o.id }, o.label)));
    };
    kindSelect.addEventListener('change', fillOutcomes);
    fillOutcomes();
    if (finished && outcome.options.length > 1) outcome.required = true;
    const due = h('input', { type: 'datetime-local', name: 'due_at' });
    const note = h('textarea', { name: 'note', rows: 3, maxlength: '10000' });
    await formDialog({
      title: finished ? this.label('log_call') : this.label('new_activity'),
      submitLabel: t('screen.save'),
      build: (body) => body.append(field(this.label('kind'), kindSelect), field(this.label('outcome'), outcome), finished ? null : field(this.label('due'), due), field(this.label('note'), note)),
      submit: async (data) => {
        const body = { kind: data.get('kind') };
        if (data.get('outcome')) body.outcome = data.get('outcome');
        if (data.get('note')) body.note = data.get('note');
        if (data.get('due_at')) body.due_at = fromLocalInput(data.get('due_at'));
        const r = await api('POST', `/api/customers/${encodeURIComponent(this.id)}/activities`, body, this.op());
        toast(t('screen.saved'));
        await Promise.all([this.reloadPart('activities'), this.reloadPart('customer')]);
        return r;
      },
    });
  }

  renderAppointments() {
    const value = this.data.appointments;
    const list = Array.isArray(value) ? value : value?.appointments || [];
    const statuses = ['planned', 'confirmed', 'done', 'no_show', 'cancelled'];
    const item = (a) => {
      const status = select('status', statuses.map((s) => ({ value: s, label: this.label(`appointment_${s}`) })), a.status);
      status.setAttribute('aria-label', this.label('status'));
      status.disabled = !this.canEdit();
      status.addEventListener('change', async () => {
        const ok = await attempt(() => api('PATCH', `/api/appointments/${encodeURIComponent(a.id)}`, { status: status.value, expected_version: a.version }, this.op()), t('screen.saved'));
        if (ok) this.reloadPart('appointments');
        else status.value = a.status;
      });
      const past = new Date(a.starts_at) < new Date() && (a.status === 'planned' || a.status === 'confirmed');
      return h(
        'li',
        { class: 'appointment', dataset: { id: a.id } },
        h('div', { class: 'row' }, h('strong', { class: past ? 'overdue' : '' }, formatDate(a.starts_at)), ' ', status),
        a.place || a.meeting_url ? h('div', { class: 'muted' }, a.online && a.meeting_url ? h('a', { href: a.meeting_url, target: '_blank', rel: 'noopener noreferrer' }, this.label('online')) : a.place) : null,
        a.note ? h('div', { class: 'muted' }, a.note) : null,
      );
    };
    const upcoming = [...list].sort((x, y) => String(y.starts_at).localeCompare(String(x.starts_at))).slice(0, 8);
    return section(
      'appointments',
      this.label('appointments'),
      this.failedPart(value),
      upcoming.length ? h('ul', { class: 'viewer-list' }, upcoming.map(item)) : h('p', { class: 'muted' }, this.label('no_appointments')),
      this.canEdit() ? h('button', { type: 'button', class: 'link', onclick: () => this.newAppointment() }, `+ ${this.label('new_appointment')}`) : null,
    );
  }

  async newAppointment() {
    const starts = h('input', { type: 'datetime-local', name: 'starts_at', required: true });
    const place = h('input', { name: 'place', maxlength: '500' });
    const online = h('input', { type: 'checkbox', name: 'online', value: 'true' });
    const url = h('input', { type: 'url', name: 'meeting_url' });
    const note = h('textarea', { name: 'note', rows: 2 });
    await formDialog({
      title: this.label('new_appointment'),
      build: (body) => body.append(field(this.label('starts_at'), starts), field(this.label('place'), place), h('label', { class: 'inline' }, online, ' ', this.label('online')), field(this.label('meeting_url'), url), field(this.label('note'), note)),
      submit: async (data) => {
        const body = { starts_at: fromLocalInput(data.get('starts_at')) };
        if (data.get('place')) body.place = data.get('place');
        if (data.get('online')) body.online = true;
        if (data.get('meeting_url')) body.meeting_url = data.get('meeting_url');
        if (data.get('note')) body.note = data.get('note');
        const r = await api('POST', `/api/customers/${encodeURIComponent(this.id)}/appointments`, body, this.op());
        toast(t('screen.saved'));
        await this.reloadPart('appointments');
        return r;
      },
    });
  }

  renderReminders() {
    const value = this.data.reminders;
    const list = Array.isArray(value) ? value : value?.reminders || [];
    const title = (r) => (this.page.lang === 'en' ? r.title_en || r.title_tr : r.title_tr);
    const item = (r) => {
      const li = h(
        'li',
        { class: 'reminder', dataset: { id: r.id } },
        h('div', { class: 'row' }, h('span', { class: r.overdue ? 'overdue' : '' }, formatDate(r.due_at)), ' ', h('strong', null, title(r))),
      );
      if (r.note) li.append(h('div', { class: 'muted' }, r.note));
      const actions = h('div', { class: 'row' });
      actions.append(
        h('button', {
          type: 'button',
          class: 'reminder-done',
          onclick: async () => {
            li.classList.add('done');
            const ok = await attempt(() => api('POST', `/api/reminders/${encodeURIComponent(r.id)}/complete`, { expected_version: r.version }, this.op()), this.label('reminder_done'));
            if (!ok) li.classList.remove('done');
            this.reloadPart('reminders');
          },
        }, this.label('complete')),
        h('button', {
          type: 'button',
          onclick: async () => {
            const ok = await attempt(() => api('POST', `/api/reminders/${encodeURIComponent(r.id)}/snooze`, { expected_version: r.version, by: '1h' }, this.op()), this.label('snoozed'));
            if (ok) this.reloadPart('reminders');
          },
        }, this.label('snooze_hour')),
      );
      li.append(actions);
      return li;
    };
    return section(
      'reminders',
      this.label('reminders'),
      this.failedPart(value),
      list.length ? h('ul', { class: 'viewer-list' }, list.map(item)) : h('p', { class: 'muted' }, this.label('no_reminders')),
      this.canEdit() ? h('button', { type: 'button', class: 'link', onclick: () => this.newReminder() }, `+ ${this.label('new_reminder')}`) : null,
    );
  }

  async newReminder() {
    const title = h('input', { name: 'title', required: true, maxlength: '200' });
    const due = h('input', { type: 'datetime-local', name: 'due_at', required: true });
    const tomorrow = new Date(Date.now() + 24 * 3600 * 1000);
    due.value = `${toLocalInput(tomorrow).slice(0, 10)}T10:00`;
    const note = h('textarea', { name: 'note', rows: 2 });
    await formDialog({
      title: this.label('new_reminder'),
      build: (body) => body.append(field(this.label('reminder_title'), title), field(this.label('due'), due), field(this.label('note'), note)),
      submit: async (data) => {
        const body = { title: data.get('title'), due_at: fromLocalInput(data.get('due_at')) };
        if (data.get('note')) body.note = data.get('note');
        const r = await api('POST', `/api/customers/${encodeURIComponent(this.id)}/reminders`, body, this.op());
        toast(t('screen.saved'));
        await this.reloadPart('reminders');
        return r;
      },
    });
  }

  renderFiles() {
    const value = this.data.files;
    const list = Array.isArray(value) ? value : value?.files || [];
    const input = h('input', { type: 'file', class: 'file-input', multiple: true, hidden: true });
    input.addEventListener('change', () => {
      this.upload([...input.files]);
      input.value = '';
    });
    const drop = h(
      'div',
      { class: 'drop-zone', tabindex: this.canEdit() ? '0' : null, role: this.canEdit() ? 'button' : null, 'aria-label': this.label('drop_hint') },
      this.canEdit() ? this.label('drop_hint') : this.label('files_readonly'),
    );
    if (this.canEdit()) {
      drop.addEventListener('click', () => input.click());
      drop.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), input.click()));
      for (const type of ['dragenter', 'dragover']) {
        drop.addEventListener(type, (e) => {
          e.preventDefault();
          drop.classList.add('over');
        });
      }
      drop.addEventListener('dragleave', () => drop.classList.remove('over'));
      drop.addEventListener('drop', (e) => {
        e.preventDefault();
        drop.classList.remove('over');
        this.upload([...(e.dataTransfer?.files || [])]);
      });
    }
    const item = (f) => {
      const content = `/api/files/${encodeURIComponent(f.id)}/content`;
      const thumb = f.previewable
        ? h('img', { class: 'thumb', src: `/api/files/${encodeURIComponent(f.id)}/preview?size=256`, alt: '', loading: 'lazy', onerror: (e) => e.target.replaceWith(h('span', { class: 'thumb placeholder', 'aria-hidden': 'true' }, (f.name || '?').split('.').pop().slice(0, 4).toUpperCase())) })
        : h('span', { class: 'thumb placeholder', 'aria-hidden': 'true' }, (f.name || '?').split('.').pop().slice(0, 4).toUpperCase());
      return h(
        'li',
        { class: 'file', dataset: { id: f.id } },
        h('a', { href: content, target: '_blank', rel: 'noopener', class: 'file-link' }, thumb, h('span', { class: 'file-name' }, f.name)),
        h('small', { class: 'muted' }, [f.folder ? `${f.folder} · ` : '', fileSize(f.size), ' · ', formatDate(f.created_at)].join('')),
        this.canEdit()
          ? h('button', {
              type: 'button',
              class: 'link danger',
              'aria-label': `${this.label('delete_file')}: ${f.name}`,
              onclick: async () => {
                const ok = await attempt(() => api('DELETE', `/api/files/${encodeURIComponent(f.id)}`, undefined, this.op()), this.label('file_deleted'));
                if (ok) this.reloadPart('files');
              },
            }, this.label('delete_file'))
          : null,
      );
    };
    this.uploadStatus = h('p', { class: 'upload-status', role: 'status', 'aria-live': 'polite' });
    return section('files', this.label('files'), this.failedPart(value), drop, input, this.uploadStatus, list.length ? h('ul', { class: 'file-list' }, list.map(item)) : h('p', { class: 'muted' }, this.label('no_files')));
  }

  async upload(files) {
    if (!files.length) return;
    const status = this.uploadStatus;
    let done = 0;
    for (const file of files) {
      status.textContent = this.label('uploading').replace('{name}', file.name);
      const form = new FormData();
      form.append('file', file, file.name);
      try {
        const response = await fetch(`/api/customers/${encodeURIComponent(this.id)}/files`, {
          method: 'POST',
          body: form,
          credentials: 'same-origin',
          headers: { 'X-CSRF-Token': this.page.csrf, 'X-Client-Op': this.op(), Accept: 'application/json' },
        });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          throw new ApiError(response.status, body);
        }
        done += 1;
      } catch (error) {
        toast(`${file.name}: ${errorText(error)}`, true);
      }
    }
    status.textContent = done ? this.label('uploaded').replace('{n}', String(done)) : '';
    await this.reloadPart('files');
  }

  renderOrders() {
    const value = this.data.orders;
    if (!this.can.work_orders_view) return h('span');
    const list = Array.isArray(value) ? value : value?.orders || value?.work_orders || [];
    return section(
      'orders',
      this.label('work_orders'),
      this.failedPart(value),
      list.length ? h('ul', { class: 'viewer-list' }, list.map((o) => h('li', null, renderWorkOrderSummary(o)))) : h('p', { class: 'muted' }, this.label('no_work_orders')),
    );
  }

  // ------------------------------------------------------------------ the timeline

  renderTimeline() {
    const value = this.data.timeline;
    const events = value?.events || [];
    this.timelineList = h('ol', { class: 'timeline' }, events.map((e) => this.timelineItem(e)));
    this.nextBefore = value?.next_before || null;
    const more = h('button', { type: 'button', class: 'link', hidden: !this.nextBefore, onclick: () => this.olderEvents(more) }, this.label('older'));
    const composer = this.canEdit() ? this.noteComposer() : null;
    return section('timeline', this.label('timeline'), composer, this.failedPart(value), events.length ? null : h('p', { class: 'muted timeline-empty' }, this.label('no_events')), this.timelineList, more);
  }

  noteComposer() {
    const text = h('textarea', { id: 'note-body', rows: 3, maxlength: '10000', placeholder: this.label('note_placeholder'), 'aria-label': this.label('add_note') });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const button = h('button', { type: 'submit', class: 'primary', id: 'note-submit' }, this.label('add_note'));
    const form = h('form', { class: 'note-form' }, text, error, h('div', { class: 'row end' }, h('small', { class: 'muted' }, this.label('note_hint')), button));
    const send = async () => {
      const body = text.value.trim();
      if (!body) return text.focus();
      error.hidden = true;
      button.disabled = true;
      // Optimistic: the note shows at once, marked pending until the server confirms.
      const pending = this.timelineItem({ id: `pending-${Date.now()}`, kind: 'note', at: new Date().toISOString(), actor_name: this.page.user.name, data: { body } });
      pending.classList.add('pending');
      this.timelineList.prepend(pending);
      this.root.querySelector('.timeline-empty')?.remove();
      const op = this.op();
      this.pendingNotes.set(op, pending);
      try {
        const r = await api('POST', `/api/customers/${encodeURIComponent(this.id)}/notes`, { body }, op);
        // The server's echo may have replaced it already (see onTimeline).
        if (this.pendingNotes.get(op) === pending) {
          pending.dataset.id = r.event_id;
          pending.classList.remove('pending');
        }
        text.value = '';
      } catch (e) {
        pending.remove();
        error.textContent = errorText(e);
        error.hidden = false;
      } finally {
        this.pendingNotes.delete(op);
        button.disabled = false;
      }
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      send();
    });
    text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        send();
      }
    });
    return form;
  }

  async olderEvents(button) {
    if (!this.nextBefore) return;
    button.disabled = true;
    try {
      const page = await api('GET', `/api/customers/${encodeURIComponent(this.id)}/timeline?limit=${TIMELINE_PAGE}&before=${encodeURIComponent(this.nextBefore)}`);
      for (const e of page.events || []) this.timelineList.append(this.timelineItem(e));
      this.nextBefore = page.next_before || null;
      button.hidden = !this.nextBefore;
    } catch (error) {
      toast(errorText(error), true);
    } finally {
      button.disabled = false;
    }
  }

  onTimeline(event) {
    const e = event.data?.event;
    if (!e || !this.timelineList) return;
    if (this.timelineList.querySelector(`[data-id="${CSS.escape(String(e.id))}"]`)) return;
    const item = this.timelineItem(e);
    const pending = event.op && this.pendingNotes.get(event.op);
    if (pending?.isConnected) {
      // The echo of our own note: it takes the optimistic entry's place.
      pending.replaceWith(item);
      this.pendingNotes.delete(event.op);
      return;
    }
    this.timelineList.prepend(item);
    this.root.querySelector('.timeline-empty')?.remove();
    if (!this.isOwn(event)) {
      item.classList.add('flash-row');
      setTimeout(() => item.classList.remove('flash-row'), 1200);
    }
    // What the event touched may show elsewhere in the viewer.
    const kind = e.kind || '';
    if (kind.startsWith('appointment')) this.reloadPart('appointments');
    else if (kind.startsWith('reminder')) this.reloadPart('reminders');
    else if (kind.startsWith('activity')) this.reloadPart('activities');
    else if (kind.startsWith('file')) this.reloadPart('files');
  }

  onCustomerUpdated(event) {
    if (this.isOwn(event)) return;
    if (this.data && event.data.version && event.data.version <= this.data.customer.version) return;
    this.reloadPart('customer');
  }

  /** One event in words: who did what, when. */
  timelineItem(e) {
    const d = e.data || {};
    const stage = (id) => this.stageName(id);
    const key = `timeline.${e.kind}`;
    let text = t(key, {
      from: stage(d.from ?? d.from_stage ?? ''),
      to: stage(d.to ?? d.to_stage ?? ''),
      name: localized(d.name ?? d.file_name ?? d.title ?? d.title_tr ?? ''),
      kind: this.kind(d.kind ?? d.activity)?.label ?? d.kind ?? '',
      outcome: localized(d.outcome_name ?? d.outcome ?? ''),
      source: d.source ?? '',
      status: d.status ?? '',
    });
    if (text === key) text = e.kind.replaceAll('_', ' ');
    const body = localized(d.body || d.note || d.text || d.comment);
    return h(
      'li',
      { class: `event kind-${e.kind}`, dataset: { id: e.id, kind: e.kind } },
      h('div', { class: 'event-head' }, h('span', { class: 'event-text' }, text), h('time', { datetime: e.at, class: 'muted' }, formatDate(e.at))),
      e.actor_name ? h('small', { class: 'muted' }, e.actor_name) : null,
      body ? h('p', { class: 'event-body' }, body) : null,
    );
  }
}
