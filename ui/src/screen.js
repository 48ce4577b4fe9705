// What every screen but the board shares: mounting into #screen-root, loading with an
// error state that offers a retry, toasts, dialogs, and small form helpers.
import { ApiError, api, formatDate, h, t } from './util.js';

let toastTimer;
/** A short message at the bottom of the screen (`error` in the danger colour). */
export function toast(message, error = false) {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = message;
  el.classList.toggle('error', error);
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), error ? 8000 : 3000);
}

/** The user's words for an API failure: the server's message (already in their language). */
export function errorText(error) {
  if (error instanceof ApiError) {
    if (error.status === 0) return t('screen.offline');
    const details = (error.body?.errors || error.body?.details || [])
      .map((e) => (typeof e === 'string' ? e : e.message))
      .filter(Boolean);
    return [error.body?.message || error.message, ...details].join(' ');
  }
  return String(error?.message || error);
}

/** Runs `fn`; a failure becomes a toast. Resolves to its value or null. */
export async function attempt(fn, success) {
  try {
    const value = await fn();
    if (success) toast(success);
    return value ?? true;
  } catch (error) {
    toast(errorText(error), true);
    return null;
  }
}

/** A labelled input: `field('Ad', input)`. */
export function field(label, input, hint) {
  if (!input.id) input.id = `f-${Math.random().toString(36).slice(2, 10)}`;
  return h('label', { for: input.id }, label, input, hint ? h('small', { class: 'muted' }, hint) : null);
}

export function select(name, options, value) {
  const el = h('select', { name }, options.map((o) => h('option', { value: o.value }, o.label)));
  if (value !== undefined && value !== null) el.value = value;
  return el;
}

/**
 * A modal form. `build(form)` appends the inputs; resolves to the FormData on submit, or
 * null when cancelled. `submit(data)` may reject with an ApiError: its message shows in
 * the dialog and the input is kept.
 */
export function formDialog({ title, build, submitLabel, submit, wide }) {
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const body = h('div', { class: 'stack' });
  const ok = h('button', { type: 'submit', class: 'primary', value: 'ok' }, submitLabel || t('screen.save'));
  const cancel = h('button', { type: 'button', value: 'cancel' }, t('screen.cancel'));
  const form = h('form', { method: 'dialog' }, h('h2', null, title), error, body, h('div', { class: 'dialog-actions' }, cancel, ok));
  const dialog = h('dialog', { class: wide ? 'wide' : '' }, form);
  build(body, form);
  document.body.append(dialog);
  return new Promise((resolve) => {
    const done = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    cancel.addEventListener('click', () => done(null));
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      done(null);
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      const data = new FormData(form);
      if (!submit) return done(data);
      ok.disabled = true;
      try {
        const value = await submit(data);
        done(value ?? data);
      } catch (e) {
        error.textContent = errorText(e);
        error.hidden = false;
      } finally {
        ok.disabled = false;
      }
    });
    dialog.showModal();
    body.querySelector('input, select, textarea')?.focus();
  });
}

/** Asks a yes/no question; resolves to true when confirmed. */
export async function confirmDialog(title, text, confirmLabel) {
  const data = await formDialog({ title, submitLabel: confirmLabel, build: (body) => body.append(h('p', null, text)) });
  return data !== null;
}

export class Screen {
  constructor(page, root, live) {
    this.page = page;
    this.root = root;
    this.live = live;
    this.can = page.can || {};
    this.users = page.users || [];
  }

  userName(id) {
    return this.users.find((u) => u.id === id)?.name || (id === this.page.user.id ? this.page.user.name : '');
  }

  userOptions(withNone) {
    const options = this.users.map((u) => ({ value: u.id, label: u.name }));
    return withNone ? [{ value: '', label: t('screen.none') }, ...options] : options;
  }

  /** Replaces the screen's content; marks it ready for tests and assistive technology. */
  show(...children) {
    this.root.replaceChildren(...children);
    this.root.setAttribute('aria-busy', 'false');
    document.body.dataset.screenReady = 'true';
  }

  ready(title) {
    this.show(h('h1', { class: 'screen-title' }, title));
  }

  /** A load failure with a retry button, in place of the content. */
  failed(error, retry) {
    this.show(
      h('div', { class: 'empty-state', role: 'alert' }, t('screen.error', { message: errorText(error) }), ' ', h('button', { onclick: retry }, t('screen.retry'))),
    );
  }

  api(method, path, body, op) {
    return api(method, path, body, op);
  }

  date(value) {
    return value ? formatDate(value) : t('screen.none');
  }
}
