// The admin screen: users and roles (offboarding with the hand-over preview), definitions
// (files, validate, reload with diagnostics, dry-run, version diff), job queues, audit log.
// Each section is its own URL (`/admin/{users|definitions|jobs|audit}`); the tabs are links.
import { ApiError, api, collator, formatDate, formatNumber, h, opId, pageLang, t } from './util.js';
import { Screen, confirmDialog, errorText, field, formDialog, select, toast } from './screen.js';

const SECTIONS = [
  { id: 'users', can: 'admin_view' },
  { id: 'definitions', can: 'definitions_view' },
  { id: 'jobs', can: 'admin_view' },
  { id: 'audit', can: 'admin_view' },
];

/** The job queues the engine declares (engine/src/jobs/kinds.rs); others seen are added. */
const QUEUES = ['notify', 'whatsapp_template', 'conversion_event', 'lead_fetch', 'webhook', 'follow_up', 'create_work_order', 'reminder_due', 'scheduled_task'];
const JOB_STATES = ['pending', 'running', 'scheduled', 'done', 'dead', 'cancelled'];
const AUDIT_PAGE = 50;

/** A catalogue string when there is one for `key`, else `fallback`. */
function tOr(key, fallback) {
  const text = t(key);
  return text === key ? fallback : text;
}

/** The server's message, in the user's language when the code is one we know. */
function adminError(error) {
  if (error instanceof ApiError && error.status !== 0) {
    const code = error.body?.code;
    const known = code ? tOr(`admin.err.${code}`, null) : null;
    if (known) return code === 'unknown_role' && error.body?.fields?.role ? `${known} (${error.body.fields.role})` : known;
    const fields = Object.entries(error.body?.fields || {}).map(([k, v]) => `${k}: ${v}`);
    return [error.body?.message || error.message, ...fields].join(' ');
  }
  return errorText(error);
}

/** Wraps an API call so a rejection carries the localised message (for formDialog). */
async function call(method, path, body, op) {
  try {
    return await api(method, path, body, op);
  } catch (error) {
    if (error instanceof ApiError) {
      const e = new ApiError(error.status, { ...error.body, message: adminError(error) });
      e.body.errors = [];
      e.body.details = [];
      e.original = error;
      throw e;
    }
    throw error;
  }
}

/** Replaces `el`'s children, skipping null/false (replaceChildren would print them). */
function put(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function skeleton(rows = 5) {
  return h('div', { class: 'admin-skeleton', 'aria-hidden': 'true' }, Array.from({ length: rows }, () => h('div', { class: 'skeleton skeleton-row' })));
}

/** The table in a scroller; on a phone its rows become cards labelled by the headers. */
function tableWrap(table, stack = true) {
  if (stack && table.tHead && table.tBodies[0]) {
    table.classList.add('stacked');
    const labels = [...table.tHead.rows[0].cells].map((c) => c.textContent.trim());
    for (const row of table.tBodies[0].rows) {
      [...row.cells].forEach((cell, i) => {
        if (i && labels[i] && !cell.classList.contains('row-actions')) cell.dataset.label = labels[i];
      });
    }
  }
  return h('div', { class: 'table-wrap' }, table);
}

function shortId(id) {
  const s = String(id || '');
  return s.length > 12 ? `${s.slice(0, 8)}…` : s;
}

/** A record id (UUIDv7: the start is the time, so the end tells them apart). */
function tailId(id) {
  const s = String(id || '');
  return s.length > 12 ? `…${s.slice(-8)}` : s;
}

function json(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

function flash(el) {
  if (!el) return;
  el.classList.add('flash-row');
  setTimeout(() => el.classList.remove('flash-row'), 1500);
}

function dialogOf(form) {
  form.parentElement?.classList.add('admin-dialog');
}

function setQuery(values) {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(values)) {
    if (v === '' || v === null || v === undefined) url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  history.replaceState(history.state, '', url);
}

// ---------------------------------------------------------------- roles from the definitions

function unquote(s) {
  const v = s.trim();
  return /^(['"]).*\1$/.test(v) ? v.slice(1, -1) : v;
}

/**
 * The roles declared in the definition files (`roles:` lists with `- id:` and
 * `name: {tr: …, en: …}`), read from the YAML text: the API has no role list of its own.
 */
export function parseRoles(files) {
  const out = [];
  for (const file of files || []) {
    if (!/\.ya?ml$/.test(file.path)) continue;
    let inRoles = false;
    let inName = false;
    let current = null;
    for (const raw of String(file.content || '').split('\n')) {
      const line = raw.replace(/\s+#.*$/, '').replace(/\r$/, '');
      if (!line.trim()) continue;
      if (/^\S/.test(line)) {
        inRoles = /^roles:\s*$/.test(line);
        current = null;
        continue;
      }
      if (!inRoles) continue;
      let m = /^\s*-\s+id:\s*(.+)$/.exec(line);
      if (m) {
        current = { id: unquote(m[1]), tr: '', en: '' };
        out.push(current);
        inName = false;
        continue;
      }
      if (!current) continue;
      m = /^\s+name:\s*\{(.*)\}\s*$/.exec(line);
      if (m) {
        for (const part of m[1].split(',')) {
          const [k, ...rest] = part.split(':');
          const key = k.trim();
          if (key === 'tr' || key === 'en') current[key] = unquote(rest.join(':'));
        }
        inName = false;
        continue;
      }
      if (/^\s+name:\s*$/.test(line)) {
        inName = true;
        continue;
      }
      m = /^\s+(tr|en):\s*(.+)$/.exec(line);
      if (m && inName) {
        current[m[1]] = unquote(m[2]);
        continue;
      }
      if (/^\s+[\w-]+:/.test(line)) inName = false;
    }
  }
  return out;
}

// ---------------------------------------------------------------- line diff

/** Lines of `a` and `b` compared: [{op: ' '|'+'|'-', text, a, b}] (LCS; big files fall back to a block replace). */
export function lineDiff(aText, bText) {
  const a = aText === null || aText === undefined ? [] : String(aText).split('\n');
  const b = bText === null || bText === undefined ? [] : String(bText).split('\n');
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const out = [];
  for (let i = 0; i < start; i++) out.push({ op: ' ', text: a[i], a: i + 1, b: i + 1 });
  const n = endA - start;
  const m = endB - start;
  if (n * m > 4_000_000) {
    for (let i = start; i < endA; i++) out.push({ op: '-', text: a[i], a: i + 1 });
    for (let j = start; j < endB; j++) out.push({ op: '+', text: b[j], b: j + 1 });
  } else {
    // lcs[i][j] = LCS length of a[start+i..endA) and b[start+j..endB)
    const w = m + 1;
    const lcs = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * w + j] = a[start + i] === b[start + j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[start + i] === b[start + j]) {
        out.push({ op: ' ', text: a[start + i], a: start + i + 1, b: start + j + 1 });
        i++;
        j++;
      } else if (i < n && (j === m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
        out.push({ op: '-', text: a[start + i], a: start + i + 1 });
        i++;
      } else {
        out.push({ op: '+', text: b[start + j], b: start + j + 1 });
        j++;
      }
    }
  }
  for (let k = 0; k < a.length - endA; k++) out.push({ op: ' ', text: a[endA + k], a: endA + k + 1, b: endB + k + 1 });
  return out;
}

/** The diff as hunks with `context` unchanged lines around each change. */
function hunks(lines, context = 3) {
  const keep = new Uint8Array(lines.length);
  lines.forEach((l, i) => {
    if (l.op !== ' ') for (let k = Math.max(0, i - context); k <= Math.min(lines.length - 1, i + context); k++) keep[k] = 1;
  });
  const out = [];
  let current = null;
  lines.forEach((l, i) => {
    if (!keep[i]) {
      current = null;
      return;
    }
    if (!current) {
      current = [];
      out.push(current);
    }
    current.push(l);
  });
  return out;
}

function renderLineDiff(before, after) {
  const lines = lineDiff(before, after);
  const groups = hunks(lines);
  if (!groups.length) return h('p', { class: 'muted' }, t('admin.defs.diff_same_text'));
  const pre = h('pre', { class: 'code diff' });
  for (const group of groups) {
    const first = group[0];
    pre.append(h('span', { class: 'diff-hunk' }, `@@ -${first.a ?? '?'} +${first.b ?? '?'} @@\n`));
    for (const l of group) {
      const cls = l.op === '+' ? 'diff-add' : l.op === '-' ? 'diff-del' : 'diff-ctx';
      pre.append(h('span', { class: cls }, `${l.op} ${l.text}\n`));
    }
  }
  return pre;
}

// ---------------------------------------------------------------- the screen

export class AdminScreen extends Screen {
  constructor(page, root, live) {
    super(page, root, live);
    this.allowed = SECTIONS.filter((s) => this.can[s.can]);
    const wanted = page.params?.section || 'users';
    this.section = (this.allowed.find((s) => s.id === wanted) || this.allowed[0])?.id;
    this.query = page.params?.query || {};
    this.body = h('div', { class: 'admin-body', id: 'admin-body' }, skeleton(6));
    this.tabs = h(
      'nav',
      { class: 'tabs admin-tabs', 'aria-label': t('admin.tabs') },
      this.allowed.map((s) =>
        h('a', { href: s.id === 'users' ? '/admin' : `/admin/${s.id}`, 'aria-current': s.id === this.section ? 'page' : null, dataset: { section: s.id } }, t(`admin.tab.${s.id}`)),
      ),
    );
    put(this.root, h('h1', { class: 'screen-title' }, t('nav.admin')), this.tabs, this.body);
    if (!this.section) {
      this.show(h('h1', { class: 'screen-title' }, t('nav.admin')), h('div', { class: 'empty-state' }, t('screen.forbidden')));
      return;
    }
    const Section = { users: UsersSection, definitions: DefinitionsSection, jobs: JobsSection, audit: AuditSection }[this.section];
    this.current = new Section(this, this.body);
    this.current.load();
  }

  /** Marks the screen ready (the shell's skeleton is gone) keeping the title and tabs. */
  ready() {
    this.root.setAttribute('aria-busy', 'false');
    document.body.dataset.screenReady = 'true';
  }

  sectionFailed(error, retry) {
    put(this.body, 
      h('div', { class: 'empty-state', role: 'alert' }, t('screen.error', { message: adminError(error) }), ' ', h('button', { type: 'button', onclick: retry }, t('screen.retry'))),
    );
    this.ready();
  }
}

// ---------------------------------------------------------------- users

class UsersSection {
  constructor(screen, el) {
    this.s = screen;
    this.el = el;
    this.users = [];
    this.teams = [];
    this.roles = [];
    this.filter = { q: '', active: screen.query.active || 'all' };
  }

  async load() {
    put(this.el, skeleton(6));
    try {
      const [users, teams, defs] = await Promise.all([
        api('GET', '/api/admin/users'),
        api('GET', '/api/admin/teams'),
        this.s.can.definitions_view ? api('GET', '/api/admin/definitions').catch(() => null) : Promise.resolve(null),
      ]);
      this.users = users;
      this.teams = teams;
      this.roles = parseRoles(defs?.files);
      for (const u of users) if (!this.roles.some((r) => r.id === u.role)) this.roles.push({ id: u.role, tr: '', en: '' });
      this.render();
      this.s.ready();
    } catch (error) {
      this.s.sectionFailed(error, () => this.load());
    }
  }

  roleName(id) {
    const role = this.roles.find((r) => r.id === id);
    return (role && (role[pageLang()] || role.tr || role.en)) || id;
  }

  teamName(id) {
    return this.teams.find((x) => x.id === id)?.name || '';
  }

  render() {
    const search = h('input', { type: 'search', id: 'user-search', placeholder: t('admin.users.search'), 'aria-label': t('admin.users.search'), value: this.filter.q });
    search.addEventListener('input', () => {
      this.filter.q = search.value;
      this.renderTable();
    });
    const active = select(
      'active',
      [
        { value: 'all', label: t('admin.users.filter_all') },
        { value: 'active', label: t('admin.users.filter_active') },
        { value: 'inactive', label: t('admin.users.filter_inactive') },
      ],
      this.filter.active,
    );
    active.id = 'user-active-filter';
    active.setAttribute('aria-label', t('admin.users.filter'));
    active.addEventListener('change', () => {
      this.filter.active = active.value;
      setQuery({ active: active.value === 'all' ? '' : active.value });
      this.renderTable();
    });
    const create = this.s.can.admin_edit ? h('button', { type: 'button', class: 'primary', id: 'user-create', onclick: () => this.createDialog() }, t('admin.users.create')) : null;
    this.count = h('span', { class: 'muted', id: 'user-count' });
    this.tableBox = h('div', { id: 'users-table' });
    put(this.el, h('div', { class: 'toolbar' }, search, active, h('span', { class: 'grow' }), this.count, create), this.tableBox);
    this.renderTable();
  }

  visible() {
    const q = this.filter.q.trim().toLocaleLowerCase('tr');
    const col = collator();
    return this.users
      .filter((u) => this.filter.active === 'all' || (this.filter.active === 'active') === u.active)
      .filter((u) => !q || u.name.toLocaleLowerCase('tr').includes(q) || u.email.toLocaleLowerCase('tr').includes(q))
      .sort((a, b) => Number(b.active) - Number(a.active) || col.compare(a.name, b.name));
  }

  renderTable() {
    const rows = this.visible();
    this.count.textContent = t('admin.users.count', { n: formatNumber(rows.length) });
    if (!this.users.length) {
      put(this.tableBox, h('div', { class: 'empty-state' }, t('admin.users.empty')));
      return;
    }
    if (!rows.length) {
      put(this.tableBox, h('div', { class: 'empty-state' }, t('admin.users.no_match')));
      return;
    }
    const head = h(
      'tr',
      null,
      ['name', 'email', 'role', 'team', 'status', 'last_login'].map((k) => h('th', { scope: 'col' }, t(`admin.users.col.${k}`))),
      this.s.can.admin_edit ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('admin.actions'))) : null,
    );
    const table = h('table', { class: 'grid users-grid' }, h('thead', null, head), h('tbody', null, rows.map((u) => this.row(u))));
    put(this.tableBox, tableWrap(table));
  }

  row(u) {
    const me = u.id === this.s.page.user.id;
    const actions = this.s.can.admin_edit
      ? h(
          'td',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'link', dataset: { action: 'edit' }, onclick: () => this.editDialog(u) }, t('admin.users.edit')),
          h('button', { type: 'button', class: 'link', dataset: { action: 'password' }, onclick: () => this.passwordDialog(u) }, t('admin.users.password')),
          me
            ? null
            : u.active
              ? [
                  h('button', { type: 'button', class: 'link', dataset: { action: 'deactivate' }, onclick: () => this.deactivate(u) }, t('admin.users.deactivate')),
                  h('button', { type: 'button', class: 'link danger', dataset: { action: 'offboard' }, onclick: () => this.offboardDialog(u) }, t('admin.users.offboard')),
                ]
              : h('button', { type: 'button', class: 'link', dataset: { action: 'reactivate' }, onclick: () => this.reactivate(u) }, t('admin.users.reactivate')),
        )
      : null;
    return h(
      'tr',
      { dataset: { id: u.id, email: u.email }, class: u.active ? '' : 'inactive' },
      h('td', null, h('strong', null, u.name), me ? h('span', { class: 'muted' }, ` (${t('admin.users.you')})`) : null),
      h('td', null, u.email),
      h('td', null, this.roleName(u.role)),
      h('td', null, this.teamName(u.team_id) || h('span', { class: 'muted' }, t('screen.none'))),
      h('td', null, u.active ? h('span', { class: 'chip ok' }, t('admin.users.active')) : h('span', { class: 'chip bad' }, t('admin.users.inactive'))),
      h('td', null, u.last_login_at ? formatDate(u.last_login_at) : h('span', { class: 'muted' }, t('admin.users.never'))),
      actions,
    );
  }

  replace(user) {
    const i = this.users.findIndex((u) => u.id === user.id);
    if (i >= 0) this.users[i] = user;
    else this.users.push(user);
    this.renderTable();
    flash(this.tableBox.querySelector(`tr[data-id="${CSS.escape(user.id)}"]`));
  }

  roleInput(value) {
    const known = this.roles.filter((r) => r.id);
    if (!known.length) {
      return h('input', { name: 'role', id: 'user-role', required: true, value: value || '', autocomplete: 'off' });
    }
    const el = select('role', known.map((r) => ({ value: r.id, label: this.roleName(r.id) === r.id ? r.id : `${this.roleName(r.id)} (${r.id})` })), value || known.find((r) => r.id === 'sales')?.id || known[0].id);
    el.id = 'user-role';
    el.required = true;
    return el;
  }

  teamInput(value) {
    const el = select('team_id', [{ value: '', label: t('admin.users.no_team') }, ...this.teams.map((x) => ({ value: x.id, label: x.name }))], value || '');
    el.id = 'user-team';
    return el;
  }

  localeInput(value) {
    const el = select('locale', [{ value: 'tr', label: 'Türkçe' }, { value: 'en', label: 'English' }], value || 'tr');
    el.id = 'user-locale';
    return el;
  }

  async createDialog() {
    await formDialog({
      title: t('admin.users.create_title'),
      submitLabel: t('admin.users.create_submit'),
      build: (body, form) => {
        dialogOf(form);
        form.id = 'user-form';
        body.append(
          field(t('admin.users.col.name'), h('input', { name: 'name', id: 'user-name', required: true, maxlength: 200, autocomplete: 'off' })),
          field(t('admin.users.col.email'), h('input', { name: 'email', id: 'user-email', type: 'email', required: true, autocomplete: 'off' })),
          field(t('admin.users.col.role'), this.roleInput()),
          field(t('admin.users.col.team'), this.teamInput()),
          field(t('admin.users.locale'), this.localeInput()),
          field(t('admin.users.initial_password'), h('input', { name: 'password', id: 'user-password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }), t('admin.users.password_hint')),
        );
      },
      submit: async (data) => {
        const user = await call('POST', '/api/admin/users', {
          name: data.get('name'),
          email: data.get('email'),
          role: data.get('role'),
          team_id: data.get('team_id') || null,
          locale: data.get('locale'),
          password: data.get('password'),
        }, opId());
        this.replace(user);
        toast(t('admin.users.created', { name: user.name }));
        return user;
      },
    });
  }

  async editDialog(u) {
    await formDialog({
      title: t('admin.users.edit_title', { name: u.name }),
      build: (body, form) => {
        dialogOf(form);
        form.id = 'user-edit-form';
        body.append(
          field(t('admin.users.col.name'), h('input', { name: 'name', id: 'user-name', required: true, maxlength: 200, value: u.name })),
          field(t('admin.users.col.email'), h('input', { name: 'email', id: 'user-email', type: 'email', required: true, value: u.email })),
          field(t('admin.users.col.role'), this.roleInput(u.role), u.id === this.s.page.user.id ? t('admin.users.own_role_hint') : t('admin.users.role_hint')),
          field(t('admin.users.col.team'), this.teamInput(u.team_id)),
          field(t('admin.users.locale'), this.localeInput(u.locale)),
        );
      },
      submit: async (data) => {
        const change = { expected_version: u.version };
        if (data.get('name') !== u.name) change.name = data.get('name');
        if (data.get('email') !== u.email) change.email = data.get('email');
        if (data.get('role') !== u.role) change.role = data.get('role');
        if ((data.get('team_id') || null) !== (u.team_id || null)) change.team_id = data.get('team_id') || null;
        if (data.get('locale') !== u.locale) change.locale = data.get('locale');
        if (Object.keys(change).length === 1) return true;
        const user = await call('PATCH', `/api/admin/users/${encodeURIComponent(u.id)}`, change, opId());
        this.replace(user);
        toast(t('screen.saved'));
        return user;
      },
    });
  }

  async passwordDialog(u) {
    await formDialog({
      title: t('admin.users.password_title', { name: u.name }),
      submitLabel: t('admin.users.password_submit'),
      build: (body, form) => {
        dialogOf(form);
        body.append(
          h('p', { class: 'muted' }, t('admin.users.password_note')),
          field(t('admin.users.new_password'), h('input', { name: 'new_password', id: 'user-new-password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }), t('admin.users.password_hint')),
        );
      },
      submit: async (data) => {
        await call('POST', `/api/admin/users/${encodeURIComponent(u.id)}/password`, { new_password: data.get('new_password') }, opId());
        toast(t('admin.users.password_done', { name: u.name }));
        return true;
      },
    });
  }

  async deactivate(u) {
    const ok = await confirmDialog(t('admin.users.deactivate_title', { name: u.name }), t('admin.users.deactivate_text'), t('admin.users.deactivate'));
    if (!ok) return;
    try {
      this.replace(await call('POST', `/api/admin/users/${encodeURIComponent(u.id)}/deactivate`, {}, opId()));
      toast(t('admin.users.deactivated', { name: u.name }));
    } catch (error) {
      toast(errorText(error), true);
    }
  }

  async reactivate(u) {
    try {
      this.replace(await call('POST', `/api/admin/users/${encodeURIComponent(u.id)}/reactivate`, {}, opId()));
      toast(t('admin.users.reactivated', { name: u.name }));
    } catch (error) {
      toast(errorText(error), true);
    }
  }

  /** Offboarding: pick who takes over, see what would move, then confirm. */
  async offboardDialog(u) {
    let target = null;
    let ok;
    let seq = 0;
    const preview = h('div', { id: 'offboard-preview', class: 'offboard-preview', 'aria-live': 'polite' }, h('p', { class: 'muted' }, t('admin.off.pick_first')));
    const picker = h(
      'select',
      { name: 'to', id: 'offboard-to', required: true },
      h('option', { value: '' }, t('admin.off.pick')),
      h(
        'optgroup',
        { label: t('admin.off.users') },
        this.users
          .filter((x) => x.active && x.id !== u.id)
          .sort((a, b) => collator().compare(a.name, b.name))
          .map((x) => h('option', { value: `user:${x.id}` }, `${x.name} · ${this.roleName(x.role)}`)),
      ),
      this.teams.length ? h('optgroup', { label: t('admin.off.teams') }, this.teams.map((x) => h('option', { value: `team:${x.id}` }, t('admin.off.team_option', { name: x.name })))) : null,
    );
    const refresh = async () => {
      const mine = ++seq;
      const [kind, id] = picker.value.split(':');
      target = picker.value ? (kind === 'team' ? { to_team: id } : { to_user: id }) : null;
      if (ok) ok.disabled = true;
      if (!target) {
        put(preview, h('p', { class: 'muted' }, t('admin.off.pick_first')));
        return;
      }
      put(preview, skeleton(3));
      try {
        const q = new URLSearchParams(target);
        const p = await api('GET', `/api/admin/users/${encodeURIComponent(u.id)}/offboarding?${q}`);
        if (mine !== seq) return;
        put(preview, this.previewView(p));
        if (ok) ok.disabled = false;
      } catch (error) {
        if (mine !== seq) return;
        put(preview, h('p', { class: 'form-error', role: 'alert' }, adminError(error)));
      }
    };
    picker.addEventListener('change', refresh);
    const result = await formDialog({
      title: t('admin.off.title', { name: u.name }),
      submitLabel: t('admin.off.submit'),
      wide: true,
      build: (body, form) => {
        dialogOf(form);
        form.id = 'offboard-form';
        ok = form.querySelector('button[type="submit"]');
        ok.classList.add('danger-fill');
        ok.id = 'offboard-submit';
        ok.disabled = true;
        body.append(h('p', { class: 'muted' }, t('admin.off.intro', { name: u.name })), field(t('admin.off.successor'), picker), preview);
      },
      submit: async () => {
        if (!target) throw new ApiError(422, { message: t('admin.off.pick_first') });
        const report = await call('POST', `/api/admin/users/${encodeURIComponent(u.id)}/offboard`, target, opId());
        return report;
      },
    });
    if (result && result.user) {
      this.replace(result.user);
      const moved = (result.records || []).filter((r) => r.count > 0).map((r) => `${formatNumber(r.count)} ${tOr(`admin.off.kind.${r.kind}`, r.kind)}`);
      toast(t('admin.off.done', { name: u.name, moved: moved.join(', ') || t('admin.off.nothing') }));
    }
  }

  previewView(p) {
    const records = p.records || [];
    const total = records.reduce((n, r) => n + (r.count || 0), 0);
    return h(
      'div',
      { class: 'stack' },
      h(
        'ul',
        { class: 'offboard-facts' },
        h('li', null, t('admin.off.sessions', { n: formatNumber(p.sessions) })),
        h('li', null, t('admin.off.tokens', { n: formatNumber(p.tokens) })),
        h('li', null, t('admin.off.recipients', { names: (p.recipients || []).map((r) => r.name).join(', ') })),
      ),
      total
        ? h(
            'table',
            { class: 'grid offboard-records' },
            h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('admin.off.what')), h('th', { scope: 'col', class: 'num' }, t('admin.off.count')))),
            h('tbody', null, records.map((r) => h('tr', { dataset: { kind: r.kind }, class: r.count ? null : 'muted' }, h('td', null, tOr(`admin.off.kind.${r.kind}`, r.kind)), h('td', { class: 'num' }, formatNumber(r.count))))),
          )
        : h('p', { class: 'empty-state' }, t('admin.off.nothing_to_move')),
      h('p', { class: 'muted' }, t('admin.off.warning')),
    );
  }
}

// ---------------------------------------------------------------- definitions

class DefinitionsSection {
  constructor(screen, el) {
    this.s = screen;
    this.el = el;
    this.current = null;
    this.versions = null;
    this.drafts = new Map(); // path → edited text
    this.selected = null;
    this.editing = false;
    this.pipelines = null;
    this.stageNames = new Map();
    this.ops = new Set();
    this.edit = !!screen.can.definitions_edit;
  }

  async load() {
    put(this.el, skeleton(8));
    try {
      const [current, versions] = await Promise.all([api('GET', '/api/admin/definitions'), api('GET', '/api/admin/definitions/versions')]);
      this.current = current;
      this.versions = versions;
      this.render();
      this.s.ready();
      this.s.live?.on('definitions.changed', (event) => this.changedElsewhere(event));
    } catch (error) {
      this.s.sectionFailed(error, () => this.load());
    }
  }

  async refresh() {
    const [current, versions] = await Promise.all([api('GET', '/api/admin/definitions'), api('GET', '/api/admin/definitions/versions')]);
    this.current = current;
    this.versions = versions;
    this.renderVersion();
    this.renderFiles();
    this.renderVersions();
    if (this.selected && !this.editing) this.renderViewer();
  }

  async changedElsewhere(event) {
    if (event?.op && this.ops.has(event.op)) return; // our own reload
    if (event?.data?.version && event.data.version === this.current?.version) return;
    try {
      await this.refresh();
      toast(t('admin.defs.changed_live', { version: shortId(this.current.version) }));
    } catch {
      // The next action shows the error.
    }
  }

  file(path) {
    return this.current.files.find((f) => f.path === path);
  }

  text(path) {
    return this.drafts.has(path) ? this.drafts.get(path) : this.file(path)?.content ?? '';
  }

  render() {
    this.versionBox = h('div', { class: 'defs-version', id: 'defs-version-box' });
    this.filesBox = h('nav', { class: 'defs-files', id: 'defs-files', 'aria-label': t('admin.defs.files') });
    this.viewer = h('div', { class: 'defs-viewer', id: 'defs-viewer' });
    this.changesBox = h('div', { class: 'defs-changes', id: 'defs-changes' });
    this.result = h('div', { class: 'defs-result', id: 'defs-result', 'aria-live': 'polite' });
    this.versionsBox = h('div', { id: 'defs-versions' });
    this.diffBox = h('div', { id: 'defs-diff' });
    const upload = this.edit ? h('input', { type: 'file', id: 'defs-upload', multiple: true, accept: '.yaml,.yml,.rhai,.txt,.json,.md', class: 'sr-only' }) : null;
    upload?.addEventListener('change', () => this.upload(upload));
    put(this.el, 
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'defs-current-h' },
        h('header', { class: 'panel-head' }, h('h2', { id: 'defs-current-h' }, t('admin.defs.current')), this.versionBox),
        h(
          'div',
          { class: 'defs-layout' },
          h('div', { class: 'defs-side' }, this.filesBox, upload ? h('label', { for: 'defs-upload', class: 'button-like', tabindex: '0', onkeydown: (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), upload.click()) }, t('admin.defs.upload')) : null),
          h('div', { class: 'defs-main' }, this.viewer),
        ),
        this.changesBox,
        this.result,
      ),
      this.edit ? this.dryRunPanel() : null,
      h('section', { class: 'panel', 'aria-labelledby': 'defs-versions-h' }, h('h2', { id: 'defs-versions-h' }, t('admin.defs.versions')), this.versionsBox, this.diffBox),
    );
    this.renderVersion();
    this.renderFiles();
    this.renderViewer();
    this.renderChanges();
    this.renderVersions();
  }

  renderVersion() {
    const c = this.current;
    put(this.versionBox, 
      h('span', { class: 'muted' }, t('admin.defs.version'), ' '),
      h('code', { id: 'defs-version', title: c.version, dataset: { version: c.version } }, shortId(c.version)),
      h('span', { class: 'muted' }, ` · ${t('admin.defs.file_count', { n: formatNumber(c.files.length) })}`),
      c.stored_version && c.stored_version !== c.version ? h('span', { class: 'chip bad' }, t('admin.defs.catching_up')) : null,
    );
  }

  renderFiles() {
    const groups = new Map();
    const paths = new Set([...this.current.files.map((f) => f.path), ...this.drafts.keys()]);
    const rank = (p) => ['workflows', 'rules', 'templates'].indexOf(p.split('/')[0]) + 1 || 9;
    for (const path of [...paths].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))) {
      const root = path.split('/')[0];
      if (!groups.has(root)) groups.set(root, []);
      groups.get(root).push(path);
    }
    put(this.filesBox, 
      ...[...groups].map(([root, list]) =>
        h(
          'div',
          { class: 'defs-group' },
          h('h3', null, `${root}/`),
          h(
            'ul',
            null,
            list.map((path) =>
              h(
                'li',
                null,
                h(
                  'button',
                  {
                    type: 'button',
                    class: `defs-file${path === this.selected ? ' selected' : ''}`,
                    'aria-current': path === this.selected ? 'true' : null,
                    dataset: { path },
                    onclick: () => this.select(path),
                  },
                  path.slice(root.length + 1),
                  this.drafts.has(path) ? h('span', { class: 'chip changed' }, this.file(path) ? t('admin.defs.edited') : t('admin.defs.new')) : null,
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  select(path, edit = false) {
    this.selected = path;
    this.editing = edit || (this.editing && this.edit);
    if (!this.edit) this.editing = false;
    this.renderFiles();
    this.renderViewer();
  }

  renderViewer() {
    const path = this.selected;
    if (!path) {
      put(this.viewer, h('div', { class: 'empty-state' }, t('admin.defs.pick_file')));
      return;
    }
    const file = this.file(path);
    const head = h(
      'div',
      { class: 'toolbar' },
      h('strong', { class: 'defs-path' }, path),
      file ? h('span', { class: 'muted' }, t('admin.defs.bytes', { n: formatNumber(file.bytes) })) : null,
      h('span', { class: 'grow' }),
      this.edit && !this.editing ? h('button', { type: 'button', id: 'defs-edit', onclick: () => this.select(path, true) }, t('admin.defs.edit')) : null,
      this.editing ? h('button', { type: 'button', id: 'defs-view', onclick: () => ((this.editing = false), this.renderViewer()) }, t('admin.defs.view')) : null,
      this.drafts.has(path) ? h('button', { type: 'button', id: 'defs-discard', onclick: () => this.discard(path) }, t('admin.defs.discard')) : null,
    );
    if (!this.editing) {
      const pre = h('pre', { class: 'code defs-code', id: 'defs-code', tabindex: '0' });
      const lines = this.text(path).split('\n');
      lines.forEach((line, i) => pre.append(h('span', { class: 'ln', dataset: { n: i + 1 } }, `${line}\n`)));
      put(this.viewer, head, pre);
      return;
    }
    const area = h('textarea', { id: 'defs-editor', class: 'defs-editor', spellcheck: 'false', 'aria-label': t('admin.defs.editor_label', { path }), wrap: 'off' });
    area.value = this.text(path);
    const pos = h('span', { class: 'muted', id: 'defs-pos' });
    const where = () => {
      const before = area.value.slice(0, area.selectionStart).split('\n');
      pos.textContent = t('admin.defs.position', { line: before.length, col: before[before.length - 1].length + 1 });
    };
    area.addEventListener('input', () => {
      const original = file?.content;
      const had = this.drafts.has(path);
      if (area.value === original) this.drafts.delete(path);
      else this.drafts.set(path, area.value);
      if (had !== this.drafts.has(path)) {
        this.renderFiles();
        head.querySelector('#defs-discard')?.remove();
        if (this.drafts.has(path)) head.append(h('button', { type: 'button', id: 'defs-discard', onclick: () => this.discard(path) }, t('admin.defs.discard')));
      }
      this.renderChanges();
      where();
    });
    area.addEventListener('keyup', where);
    area.addEventListener('click', where);
    area.addEventListener('keydown', (e) => {
      if (e.key === 'Tab' && !e.shiftKey && !e.ctrlKey && !e.metaKey) {
        // Two spaces (YAML wants spaces); Esc then Tab leaves the editor.
        if (this.escaped) return;
        e.preventDefault();
        area.setRangeText('  ', area.selectionStart, area.selectionEnd, 'end');
        area.dispatchEvent(new Event('input'));
      }
      this.escaped = e.key === 'Escape';
    });
    put(this.viewer, head, area, h('div', { class: 'defs-editor-foot' }, pos, h('span', { class: 'muted' }, t('admin.defs.tab_hint'))));
    where();
  }

  discard(path) {
    this.drafts.delete(path);
    if (!this.file(path)) this.selected = null;
    this.renderFiles();
    this.renderViewer();
    this.renderChanges();
  }

  async upload(input) {
    const known = this.current.files.map((f) => f.path);
    for (const f of input.files) {
      const text = await f.text();
      const rel = (f.webkitRelativePath || '').split('/');
      let path = known.find((p) => p.split('/').pop() === f.name);
      if (!path && rel.length > 1) {
        const i = rel.findIndex((part) => ['workflows', 'rules', 'templates'].includes(part));
        if (i >= 0) path = rel.slice(i).join('/');
      }
      if (!path) {
        const dir = /\.rhai$/.test(f.name) ? 'rules' : /\.txt$/.test(f.name) ? 'templates/messages' : 'workflows';
        path = `${dir}/${f.name}`;
      }
      if (this.file(path)?.content === text) this.drafts.delete(path);
      else this.drafts.set(path, text);
      this.selected = path;
    }
    input.value = '';
    this.editing = this.edit;
    this.renderFiles();
    this.renderViewer();
    this.renderChanges();
  }

  changes() {
    return Object.fromEntries(this.drafts);
  }

  renderChanges() {
    if (!this.edit) {
      put(this.changesBox);
      return;
    }
    const n = this.drafts.size;
    put(this.changesBox, 
      h(
        'div',
        { class: 'toolbar defs-actions' },
        h('span', { id: 'defs-changes-count', class: n ? '' : 'muted' }, n ? t('admin.defs.changed_files', { n: formatNumber(n), list: [...this.drafts.keys()].join(', ') }) : t('admin.defs.no_changes')),
        h('span', { class: 'grow' }),
        n ? h('button', { type: 'button', id: 'defs-discard-all', onclick: () => this.discardAll() }, t('admin.defs.discard_all')) : null,
        h('button', { type: 'button', id: 'defs-validate', onclick: () => this.validate() }, t('admin.defs.validate')),
        h('button', { type: 'button', id: 'defs-reload', class: 'primary', title: n ? '' : t('admin.defs.reload_folder_hint'), onclick: () => this.reload() }, n ? t('admin.defs.reload') : t('admin.defs.reload_folder')),
      ),
    );
  }

  discardAll() {
    this.drafts.clear();
    if (this.selected && !this.file(this.selected)) this.selected = null;
    this.renderFiles();
    this.renderViewer();
    this.renderChanges();
    put(this.result);
  }

  busy(on) {
    for (const id of ['defs-validate', 'defs-reload']) {
      const b = this.changesBox.querySelector(`#${id}`);
      if (b) b.disabled = on;
    }
  }

  async validate() {
    this.busy(true);
    put(this.result, skeleton(2));
    try {
      const body = this.drafts.size ? { changes: this.changes() } : {};
      const v = await call('POST', '/api/admin/definitions/validate', body);
      const warnings = v.diagnostics.filter((d) => d.severity !== 'error');
      put(this.result, 
        v.valid
          ? h(
              'div',
              { class: 'defs-verdict ok', role: 'status', id: 'defs-verdict', dataset: { valid: 'true' } },
              h('p', null, h('strong', null, t('admin.defs.valid')), ' ', t('admin.defs.valid_version', { version: shortId(v.version) })),
              this.diagnostics(warnings),
              v.diff ? this.diffSummary(v.diff) : null,
            )
          : h(
              'div',
              { class: 'defs-verdict bad', role: 'alert', id: 'defs-verdict', dataset: { valid: 'false' } },
              h('p', null, h('strong', null, t('admin.defs.invalid', { n: formatNumber(v.diagnostics.filter((d) => d.severity === 'error').length) }))),
              this.diagnostics(v.diagnostics),
            ),
      );
    } catch (error) {
      put(this.result, h('p', { class: 'form-error', role: 'alert' }, adminError(error)));
    } finally {
      this.busy(false);
      this.result.scrollIntoView({ block: 'nearest' });
    }
  }

  async reload() {
    const before = this.current.version;
    if (!this.drafts.size) {
      const ok = await confirmDialog(t('admin.defs.reload_folder'), t('admin.defs.reload_folder_confirm'), t('admin.defs.reload_folder'));
      if (!ok) return;
    }
    this.busy(true);
    put(this.result, skeleton(2));
    try {
      const body = this.drafts.size ? { changes: this.changes() } : {};
      const op = opId();
      this.ops.add(op);
      const applied = await api('POST', '/api/admin/definitions/reload', body, op);
      this.drafts.clear();
      this.editing = false;
      await this.refresh().catch(() => {});
      this.renderChanges();
      put(this.result, 
        h(
          'div',
          { class: 'defs-verdict ok', role: 'status', id: 'defs-verdict', dataset: { applied: String(applied.changed) } },
          h('p', null, h('strong', null, applied.changed ? t('admin.defs.applied', { version: shortId(applied.version) }) : t('admin.defs.unchanged', { version: shortId(applied.version) }))),
          applied.moved?.length
            ? h('ul', null, applied.moved.map((m) => h('li', null, t('admin.defs.moved', { pipeline: m.pipeline, from: m.from, to: m.to, n: formatNumber(m.cards) }))))
            : null,
          this.diagnostics(applied.warnings || []),
        ),
      );
      toast(applied.changed ? t('admin.defs.applied', { version: shortId(applied.version) }) : t('admin.defs.unchanged', { version: shortId(applied.version) }));
    } catch (error) {
      const diags = error instanceof ApiError ? error.body?.diagnostics || [] : [];
      put(this.result, 
        h(
          'div',
          { class: 'defs-verdict bad', role: 'alert', id: 'defs-verdict', dataset: { valid: 'false' } },
          h('p', null, h('strong', null, diags.length ? t('admin.defs.reload_refused') : adminError(error))),
          h('p', { id: 'defs-kept' }, t('admin.defs.kept', { version: shortId(before) })),
          this.diagnostics(diags),
        ),
      );
      this.renderChanges();
    } finally {
      this.busy(false);
      this.result.scrollIntoView({ block: 'nearest' });
    }
  }

  /** Diagnostics as `file:line:col message`; a click opens the file at that line. */
  diagnostics(list) {
    if (!list.length) return null;
    return h(
      'ul',
      { class: 'diag-list', id: 'defs-diagnostics' },
      list.map((d) =>
        h(
          'li',
          { class: `diag ${d.severity}`, dataset: { file: d.file, line: d.line, col: d.col } },
          h(
            'button',
            { type: 'button', class: 'diag-jump', title: t('admin.defs.jump'), onclick: () => this.jump(d) },
            h('span', { class: 'diag-sev' }, t(`admin.defs.sev.${d.severity}`)),
            ' ',
            h('span', { class: 'diag-where' }, `${d.file}:${d.line}:${d.col}`),
            ' ',
            h('span', { class: 'diag-msg' }, d.message),
          ),
          d.help ? h('div', { class: 'muted diag-help' }, d.help) : null,
        ),
      ),
    );
  }

  jump(d) {
    if (!this.file(d.file) && !this.drafts.has(d.file)) return;
    this.selected = d.file;
    this.editing = this.edit;
    this.renderFiles();
    this.renderViewer();
    const area = this.viewer.querySelector('#defs-editor');
    const lines = this.text(d.file).split('\n');
    const line = Math.min(Math.max(1, d.line), lines.length);
    if (area) {
      let start = 0;
      for (let i = 0; i < line - 1; i++) start += lines[i].length + 1;
      const end = start + lines[line - 1].length;
      area.focus();
      area.setSelectionRange(start, end);
      const lh = parseFloat(getComputedStyle(area).lineHeight) || 18;
      area.scrollTop = Math.max(0, (line - 4) * lh);
      area.dispatchEvent(new Event('click'));
    } else {
      const target = this.viewer.querySelector(`.ln[data-n="${line}"]`);
      target?.classList.add('hit');
      target?.scrollIntoView({ block: 'center' });
    }
    this.viewer.scrollIntoView({ block: 'nearest' });
  }

  // ---- dry run

  dryRunPanel() {
    const search = h('input', { type: 'search', id: 'dry-search', placeholder: t('admin.dry.search'), autocomplete: 'off' });
    const hits = h('ul', { class: 'dry-hits', id: 'dry-hits' });
    const card = h('input', { name: 'card_id', id: 'dry-card', required: true, autocomplete: 'off', placeholder: t('admin.dry.card_placeholder') });
    const cardInfo = h('small', { class: 'muted', id: 'dry-card-info' });
    const to = h('select', { name: 'to', id: 'dry-to', required: true }, h('option', { value: '' }, t('admin.dry.pick_card')));
    const fields = h('textarea', { name: 'fields', id: 'dry-fields', rows: 3, spellcheck: 'false', placeholder: '{"deposit_amount": 1000}' });
    const useDrafts = h('input', { type: 'checkbox', name: 'drafts', id: 'dry-drafts' });
    const out = h('div', { id: 'dry-result', 'aria-live': 'polite' });
    let timer;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      const q = search.value.trim();
      if (q.length < 2) return put(hits);
      timer = setTimeout(async () => {
        try {
          const page = await api('GET', `/api/customers?${new URLSearchParams({ q, limit: '8' })}`);
          put(hits, 
            ...(page.customers.length
              ? page.customers.map((c) => h('li', null, h('button', { type: 'button', class: 'link', onclick: () => pickCustomer(c) }, c.name, ' ', h('span', { class: 'muted' }, c.phones?.[0]?.raw || c.phones?.[0]?.e164 || ''))))
              : [h('li', { class: 'muted' }, t('admin.dry.no_customer'))]),
          );
        } catch (error) {
          put(hits, h('li', { class: 'form-error' }, adminError(error)));
        }
      }, 200);
    });
    const stagesFor = async (pipelineId, current) => {
      this.pipelines ??= await api('GET', '/api/pipelines');
      const p = this.pipelines.find((x) => x.id === pipelineId);
      const name = (x) => (pageLang() === 'en' ? x.name_en || x.name_tr : x.name_tr || x.name_en) || x.id;
      for (const s of p?.stages || []) this.stageNames.set(s.id, name(s));
      put(to, (p?.stages || []).filter((s) => s.id !== current).map((s) => h('option', { value: s.id }, name(s))));
      return p ? name(p) : pipelineId;
    };
    const loadCard = async () => {
      const id = card.value.trim();
      if (!id) return;
      try {
        const c = await api('GET', `/api/cards/${encodeURIComponent(id)}`);
        const pipeline = await stagesFor(c.pipeline_id, c.stage_id);
        cardInfo.textContent = t('admin.dry.card_info', { pipeline, stage: this.stageNames.get(c.stage_id) || c.stage_id });
      } catch (error) {
        cardInfo.textContent = adminError(error);
      }
    };
    const pickCustomer = async (c) => {
      put(hits);
      search.value = c.name;
      try {
        const detail = await api('GET', `/api/customers/${encodeURIComponent(c.id)}`);
        const open = (detail.cards || []).find((x) => !x.closed_at) || detail.cards?.[0];
        if (!open) {
          cardInfo.textContent = t('admin.dry.no_card');
          return;
        }
        card.value = open.id;
        await loadCard();
      } catch (error) {
        cardInfo.textContent = adminError(error);
      }
    };
    card.addEventListener('change', loadCard);
    const form = h(
      'form',
      { id: 'dry-form', class: 'stack' },
      h('div', { class: 'form-grid' }, h('div', { class: 'dry-search' }, field(t('admin.dry.customer'), search), hits), field(t('admin.dry.card'), card, cardInfo), field(t('admin.dry.to'), to)),
      field(t('admin.dry.fields'), fields, t('admin.dry.fields_hint')),
      h('label', { class: 'check' }, useDrafts, ' ', t('admin.dry.use_drafts')),
      h('div', null, h('button', { type: 'submit', id: 'dry-run' }, t('admin.dry.run'))),
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      let extra = {};
      if (fields.value.trim()) {
        try {
          extra = JSON.parse(fields.value);
          if (typeof extra !== 'object' || Array.isArray(extra) || extra === null) throw new Error('object');
        } catch {
          put(out, h('p', { class: 'form-error', role: 'alert' }, t('admin.dry.bad_json')));
          return;
        }
      }
      const body = { card_id: card.value.trim(), to: to.value, fields: extra };
      if (useDrafts.checked && this.drafts.size) body.definitions = { changes: this.changes() };
      put(out, skeleton(2));
      try {
        put(out, this.dryRunView(await call('POST', '/api/admin/definitions/dry-run', body)));
      } catch (error) {
        const diags = error instanceof ApiError ? error.original?.body?.diagnostics || error.body?.diagnostics || [] : [];
        put(out, h('p', { class: 'form-error', role: 'alert' }, adminError(error)), this.diagnostics(diags));
      }
    });
    return h('section', { class: 'panel', 'aria-labelledby': 'dry-h' }, h('h2', { id: 'dry-h' }, t('admin.dry.title')), h('p', { class: 'muted' }, t('admin.dry.intro')), form, out);
  }

  dryRunView(r) {
    return h(
      'div',
      { class: 'stack dry-out', id: 'dry-out', dataset: { allowed: String(r.allowed) } },
      h(
        'p',
        null,
        r.allowed ? h('span', { class: 'chip ok' }, t('admin.dry.allowed')) : h('span', { class: 'chip bad' }, t('admin.dry.refused')),
        ' ',
        t('admin.dry.move', { from: this.stageNames.get(r.from) || r.from, to: this.stageNames.get(r.to) || r.to }),
        ' ',
        h('span', { class: 'muted' }, t('admin.dry.under', { version: shortId(r.definitions_version) })),
      ),
      r.refusal
        ? h(
            'div',
            { class: 'defs-verdict bad' },
            h('p', null, h('strong', null, r.refusal.message), ' ', h('code', { class: 'muted' }, r.refusal.code)),
            Object.keys(r.refusal.fields || {}).length ? h('ul', null, Object.entries(r.refusal.fields).map(([k, v]) => h('li', null, h('code', null, k), ' ', v))) : null,
          )
        : null,
      h('h3', null, t('admin.dry.timeline')),
      r.timeline.length
        ? h('ul', { class: 'dry-list' }, r.timeline.map((e) => h('li', null, h('code', null, e.kind), h('details', null, h('summary', null, t('admin.details')), h('pre', { class: 'code' }, json(e.data))))))
        : h('p', { class: 'muted' }, t('admin.dry.no_timeline')),
      h('h3', null, t('admin.dry.jobs')),
      r.jobs.length
        ? h(
            'ul',
            { class: 'dry-list' },
            r.jobs.map((j) =>
              h('li', null, h('code', null, j.kind), j.skipped ? h('span', { class: 'muted' }, ` — ${t('admin.dry.skipped', { reason: j.skipped })}`) : null, j.payload ? h('details', null, h('summary', null, t('admin.details')), h('pre', { class: 'code' }, json(j.payload))) : null),
            ),
          )
        : h('p', { class: 'muted' }, t('admin.dry.no_jobs')),
    );
  }

  // ---- versions and diff

  renderVersions() {
    const list = this.versions?.activations || [];
    if (!list.length) {
      put(this.versionsBox, h('div', { class: 'empty-state' }, t('admin.defs.no_versions')));
      return;
    }
    const table = h(
      'table',
      { class: 'grid', id: 'defs-versions-table' },
      h('thead', null, h('tr', null, ['version', 'when', 'by', 'origin', 'files', 'moved'].map((k) => h('th', { scope: 'col', class: k === 'files' || k === 'moved' ? 'num' : null }, t(`admin.defs.col.${k}`))))),
      h(
        'tbody',
        null,
        list.map((a) =>
          h(
            'tr',
            { dataset: { version: a.version } },
            h('td', null, h('code', { title: a.version }, shortId(a.version)), a.version === this.current.version ? [' ', h('span', { class: 'chip ok' }, t('admin.defs.in_force'))] : null),
            h('td', null, formatDate(a.activated_at)),
            h('td', null, a.activated_by_name || h('span', { class: 'muted' }, t('admin.defs.system'))),
            h('td', null, tOr(`admin.defs.origin.${a.origin}`, a.origin)),
            h('td', { class: 'num' }, formatNumber(a.file_count)),
            h('td', { class: 'num' }, formatNumber(a.moved_cards)),
          ),
        ),
      ),
    );
    const unique = [...new Map(list.map((a) => [a.version, a])).values()];
    const controls = [];
    if (unique.length >= 2) {
      const opts = unique.map((a) => ({ value: a.version, label: `${shortId(a.version)} · ${formatDate(a.activated_at)}` }));
      const from = select('from', opts, unique[1].version);
      from.id = 'diff-from';
      const to = select('to', opts, unique[0].version);
      to.id = 'diff-to';
      controls.push(
        h('form', { class: 'toolbar', id: 'diff-form', onsubmit: (e) => (e.preventDefault(), this.diff(from.value, to.value)) }, field(t('admin.defs.diff_from'), from), field(t('admin.defs.diff_to'), to), h('button', { type: 'submit', id: 'diff-run' }, t('admin.defs.diff_run'))),
      );
    } else {
      controls.push(h('p', { class: 'muted' }, t('admin.defs.diff_need_two')));
    }
    put(this.versionsBox, tableWrap(table), ...controls);
  }

  async diff(from, to) {
    if (from === to) {
      put(this.diffBox, h('p', { class: 'muted' }, t('admin.defs.diff_same')));
      return;
    }
    put(this.diffBox, skeleton(4));
    try {
      const q = new URLSearchParams({ from, to });
      const [d, a, b] = await Promise.all([
        api('GET', `/api/admin/definitions/diff?${q}`),
        api('GET', `/api/admin/definitions/versions/${encodeURIComponent(from)}`),
        api('GET', `/api/admin/definitions/versions/${encodeURIComponent(to)}`),
      ]);
      const textOf = (v, path) => v.files.find((f) => f.path === path)?.content ?? null;
      const files = [...d.files.changed, ...d.files.added, ...d.files.removed].sort();
      put(this.diffBox, 
        h(
          'div',
          { class: 'stack', id: 'diff-out' },
          h('h3', null, t('admin.defs.diff_title', { from: shortId(from), to: shortId(to) })),
          this.diffSummary(d),
          files.length
            ? files.map((path, i) =>
                h(
                  'details',
                  { class: 'diff-file', open: i < 3, dataset: { path } },
                  h('summary', null, h('code', null, path), ' ', d.files.added.includes(path) ? h('span', { class: 'chip ok' }, t('admin.defs.added')) : d.files.removed.includes(path) ? h('span', { class: 'chip bad' }, t('admin.defs.removed')) : h('span', { class: 'chip' }, t('admin.defs.changed'))),
                  renderLineDiff(textOf(a, path), textOf(b, path)),
                ),
              )
            : h('p', { class: 'muted' }, t('admin.defs.diff_no_files')),
        ),
      );
    } catch (error) {
      put(this.diffBox, h('p', { class: 'form-error', role: 'alert' }, adminError(error)));
    }
  }

  /** What a diff says changed, by kind of definition. */
  diffSummary(d) {
    const item = (c, prefix = '') =>
      h('li', { class: `diff-item ${c.change}` }, h('span', { class: 'diff-mark' }, c.change === 'added' ? '+' : c.change === 'removed' ? '−' : '~'), ' ', h('code', null, `${prefix}${c.id}`), c.keys?.length ? h('span', { class: 'muted' }, ` (${c.keys.join(', ')})`) : null);
    const sections = [];
    for (const p of d.pipelines || []) {
      const items = [item({ id: p.id, change: p.change, keys: p.keys })];
      for (const s of p.stages || []) items.push(item(s, `${p.id} · `));
      for (const tr of p.transitions || []) {
        items.push(item(tr, `${p.id} · `));
        for (const a of tr.actions || []) items.push(item(a, `${p.id} · ${tr.id} · `));
      }
      sections.push([t('admin.defs.kind.pipelines'), items]);
    }
    for (const key of ['customer_fields', 'card_fields', 'activity_kinds', 'work_orders', 'reminder_sets', 'roles', 'whatsapp_templates', 'settings']) {
      if (d[key]?.length) sections.push([tOr(`admin.defs.kind.${key}`, key), d[key].map((c) => item(c))]);
    }
    const f = d.files || { added: [], removed: [], changed: [] };
    const fileLine = t('admin.defs.files_changed', { added: f.added.length, removed: f.removed.length, changed: f.changed.length });
    return h(
      'div',
      { class: 'diff-summary' },
      h('p', { class: 'muted' }, fileLine),
      sections.length ? sections.map(([title, items]) => h('div', null, h('h4', null, title), h('ul', { class: 'diff-items' }, items))) : h('p', { class: 'muted' }, t('admin.defs.diff_nothing')),
    );
  }
}

// ---------------------------------------------------------------- jobs

class JobsSection {
  constructor(screen, el) {
    this.s = screen;
    this.el = el;
    const state = screen.query.state || '';
    this.filter = { queue: screen.query.queue || '', state: JOB_STATES.includes(state) ? state : '' };
  }

  async load() {
    put(this.el, skeleton(6));
    this.countsBox = h('div', { id: 'job-counts' }, skeleton(3));
    this.listBox = h('div', { id: 'job-list' }, skeleton(4));
    this.effectsBox = h('div', { id: 'effects' });
    this.filters = h('form', { class: 'toolbar', id: 'job-filters' });
    put(this.el, 
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'job-counts-h' },
        h('header', { class: 'panel-head' }, h('h2', { id: 'job-counts-h' }, t('admin.jobs.queues')), h('button', { type: 'button', id: 'jobs-refresh', onclick: () => this.refreshAll() }, t('admin.refresh'))),
        this.countsBox,
      ),
      h('section', { class: 'panel', 'aria-labelledby': 'job-list-h' }, h('h2', { id: 'job-list-h' }, t('admin.jobs.list')), this.filters, this.listBox),
      h('section', { class: 'panel', 'aria-labelledby': 'effects-h' }, h('h2', { id: 'effects-h' }, t('admin.effects.title')), h('p', { class: 'muted' }, t('admin.effects.intro')), this.effectsBox),
    );
    try {
      await Promise.all([this.loadCounts(), this.loadList(), this.loadEffects()]);
      this.s.ready();
    } catch (error) {
      this.s.sectionFailed(error, () => this.load());
      return;
    }
    let timer;
    this.s.live?.on('job.failed', (event) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.loadCounts().catch(() => {});
        if (!this.filter.state || this.filter.state === 'dead') this.loadList(event?.data?.job_id).catch(() => {});
      }, 250);
    });
  }

  refreshAll() {
    return Promise.all([this.loadCounts(), this.loadList(), this.loadEffects()]).catch((error) => toast(adminError(error), true));
  }

  async loadCounts() {
    const [health, dead] = await Promise.all([api('GET', '/api/admin/jobs/health'), api('GET', '/api/admin/jobs?state=dead&limit=1000')]);
    const rows = new Map();
    const row = (q) => {
      if (!rows.has(q)) rows.set(q, { queue: q, pending: 0, running: 0, scheduled: 0, dead: 0, oldest_pending_secs: null });
      return rows.get(q);
    };
    for (const x of health) Object.assign(row(x.queue), x);
    for (const j of dead) row(j.queue).dead++;
    this.queues = [...new Set([...QUEUES, ...rows.keys()])];
    this.renderFilters();
    const list = [...rows.values()].sort((a, b) => collator().compare(a.queue, b.queue));
    if (!list.length) {
      put(this.countsBox, h('div', { class: 'empty-state', id: 'job-counts-empty' }, t('admin.jobs.idle')));
      return;
    }
    const num = (n, cls, q, state) =>
      h('td', { class: `num ${n && cls ? cls : ''}`, dataset: { state } }, n ? h('button', { type: 'button', class: 'link', onclick: () => this.setFilter(q, state), title: t('admin.jobs.show', { queue: q, state: t(`admin.jobs.state.${state}`) }) }, formatNumber(n)) : h('span', { class: 'muted' }, '0'));
    const table = h(
      'table',
      { class: 'grid job-counts' },
      h(
        'thead',
        null,
        h('tr', null, h('th', { scope: 'col' }, t('admin.jobs.col.queue')), ['pending', 'running', 'scheduled', 'dead'].map((s) => h('th', { scope: 'col', class: 'num' }, t(`admin.jobs.state.${s}`))), h('th', { scope: 'col', class: 'num' }, t('admin.jobs.col.oldest'))),
      ),
      h(
        'tbody',
        null,
        list.map((r) =>
          h(
            'tr',
            { dataset: { queue: r.queue } },
            h('th', { scope: 'row' }, h('code', null, r.queue)),
            num(r.pending, '', r.queue, 'pending'),
            num(r.running, '', r.queue, 'running'),
            num(r.scheduled, '', r.queue, 'scheduled'),
            num(r.dead, 'overdue', r.queue, 'dead'),
            h('td', { class: 'num' }, r.oldest_pending_secs === null || r.oldest_pending_secs === undefined ? h('span', { class: 'muted' }, t('screen.none')) : this.age(r.oldest_pending_secs)),
          ),
        ),
      ),
    );
    put(this.countsBox, tableWrap(table, false));
  }

  age(secs) {
    if (secs < 60) return t('admin.jobs.secs', { n: formatNumber(Math.round(secs)) });
    if (secs < 3600) return t('admin.jobs.mins', { n: formatNumber(Math.round(secs / 60)) });
    return t('admin.jobs.hours', { n: formatNumber(Math.round(secs / 360) / 10) });
  }

  renderFilters() {
    const queue = select('queue', [{ value: '', label: t('admin.jobs.all_queues') }, ...(this.queues || QUEUES).map((q) => ({ value: q, label: q }))], this.filter.queue);
    queue.id = 'job-queue';
    const state = select('state', [{ value: '', label: t('admin.jobs.all_states') }, ...JOB_STATES.map((s) => ({ value: s, label: t(`admin.jobs.state.${s}`) }))], this.filter.state);
    state.id = 'job-state';
    const apply = () => this.setFilter(queue.value, state.value);
    queue.addEventListener('change', apply);
    state.addEventListener('change', apply);
    put(this.filters, field(t('admin.jobs.col.queue'), queue), field(t('admin.jobs.col.state'), state));
  }

  setFilter(queue, state) {
    this.filter = { queue, state };
    setQuery({ queue, state });
    this.renderFilters();
    this.loadList().catch((error) => toast(adminError(error), true));
  }

  async loadList(flashId) {
    const q = new URLSearchParams({ limit: '100' });
    if (this.filter.queue) q.set('queue', this.filter.queue);
    if (this.filter.state) q.set('state', this.filter.state);
    const jobs = await api('GET', `/api/admin/jobs?${q}`);
    const order = ['dead', 'running', 'pending', 'scheduled', 'cancelled', 'done'];
    jobs.sort((a, b) => order.indexOf(a.state) - order.indexOf(b.state) || String(b.at).localeCompare(String(a.at)));
    this.jobs = jobs.slice(0, 200);
    this.renderList();
    if (flashId) flash(this.listBox.querySelector(`tr[data-id="${CSS.escape(flashId)}"]`));
  }

  renderList() {
    if (!this.jobs.length) {
      put(this.listBox, h('div', { class: 'empty-state', id: 'job-list-empty' }, this.filter.state === 'dead' ? t('admin.jobs.no_dead') : t('admin.jobs.none')));
      return;
    }
    const edit = this.s.can.admin_edit;
    const table = h(
      'table',
      { class: 'grid job-list' },
      h('thead', null, h('tr', null, ['id', 'queue', 'state', 'attempts', 'at', 'error', 'job'].map((k) => h('th', { scope: 'col', class: k === 'attempts' ? 'num' : null }, t(`admin.jobs.col.${k}`))), edit ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('admin.actions'))) : null)),
      h(
        'tbody',
        null,
        this.jobs.map((j) =>
          h(
            'tr',
            { dataset: { id: j.id, state: j.state, queue: j.queue } },
            h('td', null, h('code', { title: j.id }, tailId(j.id))),
            h('td', null, h('code', null, j.queue)),
            h('td', null, h('span', { class: `chip ${j.state === 'dead' ? 'bad' : j.state === 'done' ? 'ok' : ''}` }, t(`admin.jobs.state.${j.state}`))),
            h('td', { class: 'num' }, formatNumber(j.attempts)),
            h('td', null, formatDate(j.at)),
            h('td', { class: `job-error${j.state === 'dead' ? ' overdue' : ''}` }, j.last_error || h('span', { class: 'muted' }, t('screen.none'))),
            h('td', null, h('details', { class: 'job-payload' }, h('summary', null, t('admin.details')), h('pre', { class: 'code' }, json(j.job)))),
            edit
              ? h(
                  'td',
                  { class: 'row-actions' },
                  j.state === 'dead' ? h('button', { type: 'button', class: 'link', dataset: { action: 'retry' }, onclick: () => this.act(j, 'retry') }, t('admin.jobs.retry')) : null,
                  j.state === 'pending' || j.state === 'scheduled' ? h('button', { type: 'button', class: 'link danger', dataset: { action: 'cancel' }, onclick: () => this.act(j, 'cancel') }, t('admin.jobs.cancel')) : null,
                )
              : null,
          ),
        ),
      ),
    );
    put(this.listBox, tableWrap(table));
  }

  async act(job, action) {
    if (action === 'cancel') {
      const ok = await confirmDialog(t('admin.jobs.cancel_title'), t('admin.jobs.cancel_text', { queue: job.queue }), t('admin.jobs.cancel'));
      if (!ok) return;
    }
    const row = this.listBox.querySelector(`tr[data-id="${CSS.escape(job.id)}"]`);
    row?.querySelectorAll('button').forEach((b) => (b.disabled = true));
    try {
      const updated = await call('POST', `/api/admin/jobs/${encodeURIComponent(job.id)}/${action}`, {}, opId());
      const i = this.jobs.findIndex((j) => j.id === job.id);
      if (i >= 0) this.jobs[i] = updated;
      this.renderList();
      flash(this.listBox.querySelector(`tr[data-id="${CSS.escape(job.id)}"]`));
      toast(t(action === 'retry' ? 'admin.jobs.retried' : 'admin.jobs.cancelled'));
      this.loadCounts().catch(() => {});
    } catch (error) {
      row?.querySelectorAll('button').forEach((b) => (b.disabled = false));
      toast(errorText(error), true);
    }
  }

  async loadEffects() {
    const effects = await api('GET', '/api/admin/effects');
    if (!effects.length) {
      put(this.effectsBox, h('div', { class: 'empty-state', id: 'effects-empty' }, t('admin.effects.none')));
      return;
    }
    const edit = this.s.can.admin_edit;
    const table = h(
      'table',
      { class: 'grid effects' },
      h('thead', null, h('tr', null, ['kind', 'key', 'job', 'attempts', 'detail', 'at'].map((k) => h('th', { scope: 'col', class: k === 'attempts' ? 'num' : null }, t(`admin.effects.col.${k}`))), edit ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('admin.actions'))) : null)),
      h(
        'tbody',
        null,
        effects.map((e) =>
          h(
            'tr',
            { dataset: { key: e.effect_key } },
            h('td', null, h('code', null, e.kind)),
            h('td', null, h('code', { class: 'wrap' }, e.effect_key)),
            h('td', null, e.job_id ? h('code', { title: e.job_id }, tailId(e.job_id)) : t('screen.none')),
            h('td', { class: 'num' }, formatNumber(e.attempts)),
            h('td', null, e.detail || t('screen.none')),
            h('td', null, formatDate(e.updated_at || e.claimed_at)),
            edit
              ? h(
                  'td',
                  { class: 'row-actions' },
                  h('button', { type: 'button', class: 'link', dataset: { action: 'happened' }, onclick: () => this.resolve(e, true) }, t('admin.effects.happened')),
                  h('button', { type: 'button', class: 'link', dataset: { action: 'not-happened' }, onclick: () => this.resolve(e, false) }, t('admin.effects.not_happened')),
                )
              : null,
          ),
        ),
      ),
    );
    put(this.effectsBox, tableWrap(table));
  }

  async resolve(effect, happened) {
    const done = await formDialog({
      title: happened ? t('admin.effects.happened_title') : t('admin.effects.not_happened_title'),
      submitLabel: t('admin.effects.resolve'),
      build: (body, form) => {
        dialogOf(form);
        body.append(
          h('p', { class: 'muted' }, happened ? t('admin.effects.happened_text') : t('admin.effects.not_happened_text')),
          h('p', null, h('code', null, effect.effect_key)),
          field(t('admin.effects.note'), h('textarea', { name: 'note', id: 'effect-note', required: true, maxlength: 1000, rows: 3 })),
        );
      },
      submit: async (data) => call('POST', '/api/admin/effects/resolve', { effect_key: effect.effect_key, happened, note: data.get('note') }, opId()),
    });
    if (done) {
      toast(t('admin.effects.resolved'));
      this.loadEffects().catch((error) => toast(adminError(error), true));
    }
  }
}

// ---------------------------------------------------------------- audit

class AuditSection {
  constructor(screen, el) {
    this.s = screen;
    this.el = el;
    const q = screen.query;
    this.filter = { action: q.action || '', actor: q.actor || '', target: q.target || '' };
    this.entries = [];
    this.users = [];
    this.done = false;
  }

  async load() {
    put(this.el, skeleton(8));
    try {
      this.users = await api('GET', '/api/admin/users').catch(() => []);
      this.render();
      await this.fetch(true);
      this.s.ready();
    } catch (error) {
      this.s.sectionFailed(error, () => this.load());
    }
  }

  name(id) {
    return this.users.find((u) => u.id === id)?.name || this.s.userName(id);
  }

  render() {
    const actions = ['auth.login', 'auth.login_failed', 'auth.logout', 'auth.password_changed', 'user.created', 'user.updated', 'user.role_changed', 'user.deactivated', 'user.reactivated', 'user.password_reset', 'user.offboarded', 'team.created', 'token.created', 'token.revoked', 'definitions.reloaded', 'job.retried', 'job.cancelled', 'effect.resolved', 'file.uploaded', 'file.deleted'];
    const action = select('action', [{ value: '', label: t('admin.audit.all_actions') }, ...actions.map((a) => ({ value: a, label: tOr(`admin.audit.action.${a}`, a) }))], this.filter.action);
    action.id = 'audit-action';
    if (this.filter.action && !actions.includes(this.filter.action)) action.append(h('option', { value: this.filter.action, selected: true }, this.filter.action));
    const col = collator();
    const actor = select('actor', [{ value: '', label: t('admin.audit.anyone') }, ...[...this.users].sort((a, b) => col.compare(a.name, b.name)).map((u) => ({ value: u.id, label: u.name }))], this.filter.actor);
    actor.id = 'audit-actor';
    const target = h('input', { type: 'search', name: 'target', id: 'audit-target', value: this.filter.target, placeholder: t('admin.audit.target_placeholder'), autocomplete: 'off' });
    const form = h('form', { class: 'toolbar', id: 'audit-filters' }, field(t('admin.audit.col.action'), action), field(t('admin.audit.col.actor'), actor), field(t('admin.audit.col.target'), target), h('button', { type: 'submit', id: 'audit-apply' }, t('admin.audit.apply')));
    const apply = () => {
      this.filter = { action: action.value, actor: actor.value, target: target.value.trim() };
      setQuery(this.filter);
      this.fetch(true).catch((error) => toast(adminError(error), true));
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      apply();
    });
    action.addEventListener('change', apply);
    actor.addEventListener('change', apply);
    this.listBox = h('div', { id: 'audit-list' });
    this.pager = h('div', { class: 'pager', id: 'audit-pager' });
    put(this.el, form, this.listBox, this.pager);
  }

  async fetch(reset) {
    const q = new URLSearchParams({ limit: String(AUDIT_PAGE) });
    if (this.filter.action) q.set('action', this.filter.action);
    if (this.filter.actor) q.set('actor', this.filter.actor);
    if (this.filter.target) q.set('target', this.filter.target);
    if (!reset && this.entries.length) q.set('before', this.entries[this.entries.length - 1].id);
    if (reset) put(this.listBox, skeleton(6));
    const more = this.pager.querySelector('button');
    if (more) more.disabled = true;
    try {
      const page = await api('GET', `/api/admin/audit?${q}`);
      this.entries = reset ? page : [...this.entries, ...page];
      this.done = page.length < AUDIT_PAGE;
      this.renderList();
      if (!reset) (this.pager.querySelector('#audit-more') || this.listBox.querySelector('tbody tr:last-child button'))?.focus();
    } catch (error) {
      if (reset) put(this.listBox, h('div', { class: 'empty-state', role: 'alert' }, t('screen.error', { message: adminError(error) })));
      else toast(adminError(error), true);
      if (more) more.disabled = false;
      if (reset) throw error;
    }
  }

  renderList() {
    if (!this.entries.length) {
      const filtered = this.filter.action || this.filter.actor || this.filter.target;
      put(this.listBox, h('div', { class: 'empty-state', id: 'audit-empty' }, filtered ? t('admin.audit.no_match') : t('admin.audit.empty')));
      put(this.pager);
      return;
    }
    const table = h(
      'table',
      { class: 'grid audit' },
      h('thead', null, h('tr', null, ['at', 'actor', 'action', 'target', 'details'].map((k) => h('th', { scope: 'col' }, t(`admin.audit.col.${k}`))))),
      h('tbody', null, this.entries.map((e) => this.row(e))),
    );
    put(this.listBox, tableWrap(table));
    put(this.pager, 
      h('span', { class: 'muted', id: 'audit-count' }, t('admin.audit.shown', { n: formatNumber(this.entries.length) })),
      this.done ? h('span', { class: 'muted' }, t('admin.audit.end')) : h('button', { type: 'button', id: 'audit-more', onclick: () => this.fetch(false) }, t('admin.audit.older')),
    );
  }

  row(e) {
    const who = e.actor_id ? this.name(e.actor_id) || e.actor_label || shortId(e.actor_id) : e.actor_label || t('admin.audit.system');
    const target = e.target_type || e.target_id ? [e.target_type ? tOr(`admin.audit.target.${e.target_type}`, e.target_type) : '', e.target_type === 'user' ? this.name(e.target_id) : ''].filter(Boolean).join(' · ') : '';
    const details = e.details && typeof e.details === 'object' && Object.keys(e.details).length ? e.details : null;
    const filterBy = (key, value) => h('button', { type: 'button', class: 'link', onclick: () => this.setFilter(key, value), title: `${t('admin.audit.filter_by')}: ${value}` }, e.target_type === 'definitions' ? shortId(value) : tailId(value));
    return h(
      'tr',
      { dataset: { id: e.id, action: e.action } },
      h('td', { class: 'nowrap' }, formatDate(e.at)),
      h('td', null, e.actor_id ? h('button', { type: 'button', class: 'link', onclick: () => this.setFilter('actor', e.actor_id), title: t('admin.audit.filter_by') }, who) : who),
      h('td', null, h('span', { class: 'audit-action' }, tOr(`admin.audit.action.${e.action}`, e.action)), ' ', h('code', { class: 'muted' }, e.action)),
      h('td', null, target, e.target_id ? [' ', h('code', { title: e.target_id }, filterBy('target', e.target_id))] : null),
      h(
        'td',
        null,
        details || e.ip || e.user_agent
          ? h('details', null, h('summary', null, t('admin.details')), h('pre', { class: 'code' }, json({ ...(details || {}), ...(e.ip ? { ip: e.ip } : {}), ...(e.user_agent ? { user_agent: e.user_agent } : {}) })))
          : h('span', { class: 'muted' }, t('screen.none')),
      ),
    );
  }

  setFilter(key, value) {
    this.filter[key] = value;
    setQuery(this.filter);
    this.render();
    this.fetch(true).catch((error) => toast(adminError(error), true));
  }
}
