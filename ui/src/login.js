// The login page: posts the form to the API and goes on to where the user was headed.
import { setup, t, readJson } from './util.js';

setup({ catalogue: readJson('i18n') });

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');

function show(message) {
  error.textContent = message;
  error.hidden = false;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email || !password) {
    show(t('login.missing'));
    return;
  }
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const response = await fetch('/api/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ email, password }),
      credentials: 'same-origin',
    });
    if (response.ok) {
      location.assign(form.dataset.next || '/');
      return;
    }
    show(response.status === 429 ? t('login.throttled') : response.status === 401 ? t('login.invalid') : t('login.failed'));
    // Keep what was typed; only the password field is focused for a retry.
    form.password.select();
  } catch {
    show(t('login.failed'));
  } finally {
    button.disabled = false;
  }
});
