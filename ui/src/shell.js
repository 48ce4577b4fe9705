// The shell around every screen: pipeline switcher, search shortcut, notifications bell,
// user menu (language, theme, logout).
import { api } from './util.js';
import { initNotifications } from './notifications.js';

function popover(buttonId, panelId, onOpen) {
  const button = document.getElementById(buttonId);
  const panel = document.getElementById(panelId);
  if (!button || !panel) return;
  const close = () => {
    panel.hidden = true;
    button.setAttribute('aria-expanded', 'false');
  };
  button.addEventListener('click', (event) => {
    event.stopPropagation();
    const open = panel.hidden;
    document.querySelectorAll('.popover').forEach((p) => (p.hidden = true));
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open && onOpen) onOpen();
  });
  panel.addEventListener('click', (event) => event.stopPropagation());
  document.addEventListener('click', close);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !panel.hidden) {
      close();
      button.focus();
    }
  });
}

export function setUnread(n) {
  const badge = document.getElementById('unread');
  if (!badge) return;
  badge.textContent = String(n);
  badge.hidden = !n;
}

export function applyTheme(theme) {
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

export function initShell() {
  popover('bell', 'notifications');
  initNotifications();
  popover('user-button', 'user-menu');
  document.getElementById('pipeline-switch')?.addEventListener('change', (event) => {
    location.assign(`/board/${encodeURIComponent(event.target.value)}`);
  });
  for (const input of document.querySelectorAll('input[name="theme"]')) {
    input.addEventListener('change', async () => {
      applyTheme(input.value);
      await api('PUT', '/api/me/preferences', { theme: input.value }).catch(() => null);
    });
  }
  for (const input of document.querySelectorAll('input[name="language"]')) {
    input.addEventListener('change', async () => {
      try {
        await api('PUT', '/api/me/preferences', { language: input.value });
        // Every server-rendered string changes: render the page again in the new language.
        location.reload();
      } catch {
        input.checked = false;
      }
    });
  }
  document.getElementById('logout')?.addEventListener('click', async () => {
    await api('POST', '/api/auth/logout', {}).catch(() => null);
    location.assign('/login');
  });
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    const typing = target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement;
    if (event.key === '/' && !typing && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      document.getElementById('search')?.focus();
    }
  });
}
