// The bell's panel (templates/ui/shell.html: #bell, #notifications, #notification-list,
// #read-all): each notification with its body, a relative time (the exact one on hover)
// and an unread marker; clicking one marks it read and opens its record; "mark all read";
// a `notification` live event prepends to the list.
//
// `initNotifications(live)` wires it once (calling it again only attaches `live` if it
// was missing). The panel loads whenever it opens — whoever toggles it (shell.js's
// popover) — by watching its `hidden` attribute, and shows the last list at once while
// the fresh one loads.
import { api, formatDate, h, pageLang, t } from './util.js';
import { setUnread } from './shell.js';
import { errorText, toast } from './screen.js';

let state = null;
const LIMIT = 20;
const locale = () => (pageLang() === 'en' ? 'en-GB' : 'tr-TR');

/** "3 dakika önce", "dün"; the date itself when older than a week. */
export function relativeTime(value, now = Date.now()) {
  const at = new Date(value).getTime();
  if (Number.isNaN(at)) return '';
  const seconds = (at - now) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 45) return t('notifications.just_now');
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: 'auto' });
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), 'hour');
  if (abs < 7 * 86400) return rtf.format(Math.round(seconds / 86400), 'day');
  return formatDate(value);
}

function recordOf(n) {
  return n.customer_id ? `/customers/${encodeURIComponent(n.customer_id)}` : null;
}

/** Marks `n` read at once (its row too); rolls back when the server refuses. */
async function markRead(n, row) {
  if (n.read_at) return true;
  n.read_at = new Date().toISOString();
  row?.classList.remove('unread');
  row?.querySelector('.notification-unread')?.remove();
  try {
    const r = await api('POST', `/api/notifications/${encodeURIComponent(n.id)}/read`, {});
    if (typeof r?.unread === 'number') setUnread(r.unread);
    return true;
  } catch (error) {
    n.read_at = null;
    if (row) {
      row.classList.add('unread');
      row.querySelector('.notification-meta')?.append(unreadMarker());
    }
    toast(errorText(error), true);
    return false;
  }
}

const unreadMarker = () => h('span', { class: 'notification-unread' }, h('span', { class: 'sr-only' }, t('notifications.unread')));

function row(n) {
  const href = recordOf(n);
  const content = [
    h('span', { class: 'notification-body' }, n.body),
    h('small', { class: 'notification-meta' },
      h('time', { datetime: n.created_at, title: formatDate(n.created_at) }, relativeTime(n.created_at)),
      href ? h('span', { class: 'notification-open' }, t('notifications.open')) : null,
      n.read_at ? null : unreadMarker(),
    ),
  ];
  const target = href
    ? h('a', { class: 'notification-target', href }, content)
    : h('button', { type: 'button', class: 'notification-target' }, content);
  const li = h('li', { class: `notification${n.read_at ? '' : ' unread'}`, dataset: { n: n.id, id: n.id, kind: n.kind || '', customer: n.customer_id || '' } }, target);
  target.addEventListener('click', async (event) => {
    // A new tab or window: the browser opens it; the notification is still read.
    if (href && (event.ctrlKey || event.metaKey || event.shiftKey || event.button === 1)) {
      markRead(n, li);
      return;
    }
    event.preventDefault();
    await markRead(n, li);
    if (href) location.assign(href);
  });
  return li;
}

/** Fills `list` (the panel's `<ul>`) with `items` as `GET /api/notifications` returns them. */
export function renderNotifications(list, items) {
  if (!list) return;
  const rows = (items || []).map(row);
  list.replaceChildren(...(rows.length ? rows : [h('li', { class: 'notification-none muted', dataset: { n: 'none' } }, t('notifications.none'))]));
}

function render() {
  if (state?.items) renderNotifications(state.list, state.items);
}

function load() {
  if (!state) return Promise.resolve();
  if (state.items) render();
  else state.list.replaceChildren(h('li', { class: 'notification-loading', dataset: { n: 'loading' }, 'aria-busy': 'true' }, h('span', { class: 'skeleton' }), h('span', { class: 'sr-only' }, t('screen.loading'))));
  state.loading ??= api('GET', `/api/notifications?limit=${LIMIT}`)
    .then((items) => {
      state.items = Array.isArray(items) ? items : [];
      render();
    })
    .catch((error) => {
      if (!state.items) state.list.replaceChildren(h('li', { class: 'notification-none', dataset: { n: 'error' }, role: 'alert' }, errorText(error)));
    })
    .finally(() => {
      state.loading = null;
    });
  return state.loading;
}

async function readAll() {
  if (!state) return;
  const before = (state.items || []).map((n) => n.read_at);
  const now = new Date().toISOString();
  for (const n of state.items || []) n.read_at ??= now;
  render();
  try {
    const r = await api('POST', '/api/notifications/read-all', {});
    setUnread(typeof r?.unread === 'number' ? r.unread : 0);
  } catch (error) {
    (state.items || []).forEach((n, i) => (n.read_at = before[i]));
    render();
    toast(errorText(error), true);
  }
}

function onLive(event) {
  const n = event?.data;
  if (!state || !n?.id) return;
  if (!state.items) {
    if (!state.panel.hidden) load();
    return;
  }
  state.items = [n, ...state.items.filter((x) => x.id !== n.id)].slice(0, LIMIT);
  if (state.panel.hidden) return;
  render();
  const li = state.list.querySelector(`li[data-id="${CSS.escape(n.id)}"]`);
  li?.classList.add('flash-row');
  setTimeout(() => li?.classList.remove('flash-row'), 3000);
}

/**
 * Wires the bell's panel: loads when it opens, "mark all read", and — given the live
 * connection — new notifications prepended while it is open. Safe to call more than once.
 */
export function initNotifications(live) {
  if (!state) {
    const panel = document.getElementById('notifications');
    const list = document.getElementById('notification-list');
    if (!panel || !list) return null;
    state = { panel, list, items: null, loading: null, live: null };
    new MutationObserver(() => {
      if (!panel.hidden) load();
    }).observe(panel, { attributes: true, attributeFilter: ['hidden'] });
    // Rows of ours carry data-n; anything else written into the list (an older renderer)
    // is replaced by the list we hold.
    new MutationObserver(() => {
      if (state.items && [...list.children].some((li) => !li.dataset.n)) render();
    }).observe(list, { childList: true });
    document.getElementById('read-all')?.addEventListener('click', readAll);
    if (!panel.hidden) load();
  }
  if (live && !state.live) {
    state.live = live;
    live.on('notification', onLive);
  }
  return { load, readAll };
}
