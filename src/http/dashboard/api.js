// Reading the fleet: the health on load and after events (debounced), the
// event stream while it is up with a slow health poll for the counters, a
// 2 s poll while it is down, and the connection badge that says which.

import { applyHealth, showTransition } from './render.js';
import { $, errorText, showStatus, clearStatusFrom } from './util.js';

export const API = '/api/circuit-breaker';
const POLL_MS = 2000;
// While the stream is live it brings every transition, but counters
// (failures, successes, rejections, routing events) change without one.
const LIVE_POLL_MS = 10000;
const REFRESH_DEBOUNCE_MS = 150;
const SSE_RETRY_MS = 10000;

let pollTimer = null;
let pollPeriod = null;
let refreshTimer = null;
let fetchSeq = 0;
let appliedSeq = 0;

export async function refresh() {
  const seq = ++fetchSeq;
  try {
    const response = await fetch(`${API}/health`, {
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    });
    if (!response.ok) throw new Error(await errorText(response));
    const health = await response.json();
    if (seq < appliedSeq) return; // a later read already rendered
    appliedSeq = seq;
    applyHealth(health);
    clearStatusFrom('health');
  } catch (error) {
    document.body.dataset.stale = 'true';
    showStatus(`Cannot read the health: ${error.message}`, 'error', 'health');
  }
}

// Trailing-edge debounce with a bounded wait: a burst of events costs one
// read, started at most `delay` ms after the first event of the burst.
export function scheduleRefresh(delay) {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refresh();
  }, delay);
}

export function setMode(mode) {
  const el = $('#connection');
  el.dataset.mode = mode;
  el.textContent = { sse: 'live', polling: 'polling every 2 s', connecting: 'connecting…' }[mode] || mode;
  el.title = {
    sse: 'Updates arrive as they happen (server-sent events)',
    polling: 'The event stream is down: reading the health every 2 s',
    connecting: 'Opening the event stream',
  }[mode] || '';
}

// Reads the health every `every` ms (replacing any other period).
function pollEvery(every) {
  if (pollPeriod === every) return;
  clearInterval(pollTimer);
  pollTimer = setInterval(refresh, every);
  pollPeriod = every;
}

function startPolling() {
  pollEvery(POLL_MS);
}

function slowPolling() {
  pollEvery(LIVE_POLL_MS);
}

export function connectEvents() {
  if (typeof EventSource === 'undefined') {
    setMode('polling');
    startPolling();
    return;
  }
  const events = new EventSource(`${API}/events`);
  events.addEventListener('open', () => {
    setMode('sse');
    slowPolling();
    // Anything that changed while the stream was down.
    scheduleRefresh(0);
  });
  events.addEventListener('transition', (event) => {
    let transition;
    try {
      transition = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    showTransition(transition);
    scheduleRefresh(REFRESH_DEBOUNCE_MS);
  });
  events.addEventListener('error', () => {
    setMode('polling');
    startPolling();
    if (events.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. a non-SSE answer): try again later.
      events.close();
      setTimeout(connectEvents, SSE_RETRY_MS);
    }
  });
}
