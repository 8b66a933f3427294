// Small helpers every part of the dashboard uses: DOM lookups, formatting,
// error texts, and the status line under the cards.

export const $ = (selector) => document.querySelector(selector);

export function setText(selector, value) {
  const el = typeof selector === 'string' ? $(selector) : selector;
  const text = String(value);
  if (el && el.textContent !== text) el.textContent = text;
}

export function formatSeconds(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '–';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 10) return `${seconds.toFixed(seconds % 1 === 0 ? 0 : 1)} s`;
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  if (total === 0) return 'due';
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

export function formatClock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

export function stateName(state) {
  return String(state).replace('_', '-');
}

export async function errorText(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') return body.error;
  } catch (_) {
    // not JSON: fall through
  }
  return `HTTP ${response.status} ${response.statusText}`.trim();
}

// ------------------------------------------------------------ status line

let statusTimer = null;
let statusSource = null;

// kind: 'info' | 'ok' | 'error'; source lets a later success of the same
// source (e.g. the health fetch) clear its own message only.
export function showStatus(message, kind, source) {
  const el = $('#status');
  el.textContent = message;
  el.dataset.kind = kind;
  statusSource = source || null;
  clearTimeout(statusTimer);
  if (kind !== 'error' || source !== 'health') {
    statusTimer = setTimeout(clearStatus, kind === 'error' ? 15000 : 6000);
  }
}

function clearStatus() {
  const el = $('#status');
  el.textContent = '';
  el.dataset.kind = 'info';
  statusSource = null;
}

// Clears the status line only if `source` showed what it says now.
export function clearStatusFrom(source) {
  if (statusSource === source) clearStatus();
}
