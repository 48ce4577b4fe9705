// Shared helpers: the string catalogue, locale formatting and the API client.

let catalogue = {};
let csrf = '';
let lang = 'tr';
let timeZone; // the organisation's (AKIS_TIMEZONE); the browser's when unknown

export function setup(options) {
  catalogue = options.catalogue || {};
  csrf = options.csrf || '';
  lang = options.lang || 'tr';
  timeZone = options.timezone || undefined;
  dateFormat = undefined;
}

export const pageLang = () => lang;

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
/** `25 Kas 2026 14:30` in Turkish, `25 Nov 2026, 14:30` in English, in the organisation's time zone. */
export function formatDate(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  dateFormat ??= new Intl.DateTimeFormat(locale(), { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZone });
  return dateFormat.format(d);
}

const formats = new Map();
/** `value` formatted with Intl options (cached), in the organisation's time zone. */
export function formatWith(value, options) {
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value ?? '');
  const key = JSON.stringify(options);
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat(locale(), { ...options, timeZone }));
  return formats.get(key).format(d);
}

/** The wall-clock parts of `date` in the organisation's time zone. */
export function zonedParts(date) {
  const parts = {};
  for (const p of new Intl.DateTimeFormat('en-GB', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(date)) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return parts;
}

/** `YYYY-MM-DDTHH:MM` (a datetime-local value) of an instant, in the organisation's zone. */
export function toLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return '';
  const p = zonedParts(d);
  const pad = (n) => String(n).padStart(2, '0');
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}`;
}

/** The instant (ISO) of a wall-clock time `YYYY-MM-DDTHH:MM[:SS]` in the organisation's zone. */
export function fromLocalInput(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(String(text || ''));
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
  // The zone's offset at that moment, applied twice to settle across a DST change.
  let guess = wall;
  for (let i = 0; i < 2; i++) {
    const p = zonedParts(new Date(guess));
    const shown = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
    guess = wall - (shown - guess);
  }
  return new Date(guess).toISOString();
}

/** The organisation's calendar day (`YYYY-MM-DD`) of an instant. */
export function dayOf(value) {
  return toLocalInput(value).slice(0, 10);
}

/** The amount in major units of a stored money value (`{minor, currency}`) or a number. */
export function moneyAmount(value) {
  if (typeof value === 'object' && value !== null) return value.minor !== undefined ? Number(value.minor) / 100 : Number(value.amount);
  return Number(value);
}

/** A `{tr, en}` text in the page's language (other values as they are). */
export function localized(value) {
  if (value && typeof value === 'object' && ('tr' in value || 'en' in value)) return (lang === 'en' ? value.en : value.tr) ?? value.tr ?? value.en ?? '';
  return value;
}

/** `1.250,00 ₺` in Turkish. */
export function formatMoney(value, currency = 'TRY') {
  const n = moneyAmount(value);
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
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** `+90 532 400 00 01` for Turkish numbers; other E.164 numbers as they are. */
export function formatPhone(e164) {
  const m = /^\+90(\d{3})(\d{3})(\d{2})(\d{2})$/.exec(String(e164));
  return m ? `+90 ${m[1]} ${m[2]} ${m[3]} ${m[4]}` : String(e164);
}

/** `ÇA` for `Çağla Arslan` (Turkish upper case). */
export function initials(name) {
  return String(name || '')
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w[0].toLocaleUpperCase('tr'))
    .join('');
}
