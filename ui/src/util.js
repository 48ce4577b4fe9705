// Shared helpers: the string catalogue, locale formatting and the API client.

let catalogue = {};
let csrf = '';
let lang = 'tr';

export function setup(options) {
  catalogue = options.catalogue || {};
  csrf = options.csrf || '';
  lang = options.lang || 'tr';
}

/** The string for `key` in the page's language, `{name}` placeholders filled from `vars`. */
export function t(key, vars) {
  let text = catalogue[key] ?? key;
  if (vars) {
    for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  }
  return text;
}

export function readJson(id) {
  const el = document.getElementById(id);
  if (!el) return null;
  try {
    return JSON.parse(el.textContent);
  } catch {
    return null;
  }
}

const locale = () => (lang === 'en' ? 'en-GB' : 'tr-TR');

let dateFormat;
/** `25 Kas 2026 14:30` in Turkish, `25 Nov 2026, 14:30` in English. */
export function formatDate(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  dateFormat ??= new Intl.DateTimeFormat(locale(), { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' });
  return dateFormat.format(d);
}

/** `1.250,00 ₺` in Turkish. */
export function formatMoney(value, currency = 'TRY') {
  const n = typeof value === 'object' && value !== null ? Number(value.amount) : Number(value);
  const cur = (typeof value === 'object' && value?.currency) || currency;
  if (!Number.isFinite(n)) return String(value ?? '');
  return new Intl.NumberFormat(locale(), { style: 'currency', currency: cur }).format(n);
}

export function formatNumber(n) {
  return new Intl.NumberFormat(locale()).format(n);
}

/** `tr` collation, for lists users read. */
export const collator = () => new Intl.Collator(locale());

/** A random id for `X-Client-Op`, so the realtime echo of our own change can be recognised. */
export function opId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

/** A JSON request to our API; rejects with ApiError (status 0 when the server is unreachable). */
export async function api(method, path, body, op) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (op) headers['X-Client-Op'] = op;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, null);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** An element with attributes and children; strings become text nodes (never HTML). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
