// The admin buttons: POST /api/circuit-breaker/{reset,force}/{agent} with
// `Authorization: Bearer <token>`, the token asked once per tab and kept in
// sessionStorage (forgotten on a 401, or with "Forget admin token").

import { API, scheduleRefresh } from './api.js';
import { $, errorText, formatSeconds, showStatus } from './util.js';

const TOKEN_KEY = 'fleet-breaker.admin-token';

let memoryToken = null; // when sessionStorage is unavailable

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || memoryToken;
  } catch (_) {
    return memoryToken;
  }
}

function storeToken(token) {
  memoryToken = token;
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    // storage disabled: the in-memory copy lasts until the page closes
  }
  $('#forget-token').hidden = !token;
}

function adminToken() {
  const known = storedToken();
  if (known) return known;
  const entered = window.prompt('Admin token of this fleet-breaker service (kept for this tab only):');
  const token = entered ? entered.trim() : '';
  if (!token) return null;
  storeToken(token);
  return token;
}

const ACTIONS = {
  reset: { path: 'reset', body: null, done: 'reset' },
  'force-open': { path: 'force', body: { state: 'open' }, done: 'forced open' },
  'force-closed': { path: 'force', body: { state: 'closed' }, done: 'forced closed' },
  auto: { path: 'force', body: { state: 'auto' }, done: 'back to automatic' },
};

async function runAction(agent, name, buttons) {
  const action = ACTIONS[name];
  if (!action) return;
  if (
    name === 'force-open' &&
    !window.confirm(`Force ${agent} open? Every pod will reject its calls until it is reset or set to Auto.`)
  ) {
    return;
  }
  const token = adminToken();
  if (!token) {
    showStatus('No admin token given: nothing was changed.', 'info');
    return;
  }
  const init = {
    method: 'POST',
    cache: 'no-store',
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
  };
  let ttlNote = '';
  if (action.body) {
    const body = { ...action.body };
    const ttl = Number($('#force-ttl').value);
    if (body.state !== 'auto' && ttl > 0) {
      body.ttl_seconds = ttl;
      ttlNote = ` for ${formatSeconds(ttl)}`;
    }
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  buttons.forEach((b) => {
    b.disabled = true;
  });
  try {
    const response = await fetch(`${API}/${action.path}/${encodeURIComponent(agent)}`, init);
    if (response.status === 401) {
      storeToken(null);
      showStatus(`${await errorText(response)}. The token was forgotten; try again to enter it.`, 'error');
    } else if (!response.ok) {
      showStatus(`${agent}: ${await errorText(response)}`, 'error');
    } else {
      showStatus(`${agent}: ${action.done}${ttlNote}.`, 'ok');
      scheduleRefresh(0);
    }
  } catch (error) {
    showStatus(`${agent}: the request failed: ${error.message}`, 'error');
  } finally {
    buttons.forEach((b) => {
      b.disabled = false;
    });
  }
}

// Wires the row buttons (one listener on the list) and "Forget admin token".
export function startAdmin() {
  $('#agents').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const row = button.closest('[data-agent]');
    if (!row) return;
    runAction(row.dataset.agent, button.dataset.action, [...row.querySelectorAll('button[data-action]')]);
  });
  $('#forget-token').addEventListener('click', () => {
    storeToken(null);
    showStatus('Admin token forgotten.', 'info');
  });
  $('#forget-token').hidden = !storedToken();
}
