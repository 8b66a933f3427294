// The cards and the agent rows: a health answer or a transition event in,
// the page updated in place. No I/O here: when a row's backoff is over,
// render asks for a refresh through the callback given to onRetryDue.

import { PAGE_ROWS, startAgentList, visibleIds } from './agentlist.js';
import { recordTransition, hasHistory, pushHistory, renderHistory } from './transitions.js';
import { $, setText, formatSeconds, formatCountdown, formatClock } from './util.js';
import { renderWindow } from './window.js';

// How long a state from an event outranks an older health answer.
const EVENT_PRECEDENCE_MS = 5000;

const STATE_LABELS = {
  closed: 'Closed',
  half_open: 'Half-open',
  open: 'Open',
  forced_open: 'Open',
  forced_closed: 'Closed',
  corrupt: 'Corrupt',
};
const FORCED = new Set(['forced_open', 'forced_closed']);
const OPENISH = new Set(['open', 'forced_open']);

const rows = new Map(); // agent id -> row (see makeRow), for the rows shown
let agents = {}; // agent id -> metrics, from the last health answer
let updatedAt = null;
let retryDue = () => {};

// `callback` runs once per countdown that reaches zero.
export function onRetryDue(callback) {
  retryDue = callback;
}

export function applyHealth(health) {
  setText('#open-circuits', health.open_circuits);
  setText('#half-open-circuits', health.half_open_circuits);
  setText('#healthy-agents', health.healthy_agents);
  setText('#total-agents', health.total_agents);
  setText('#routing-events', Number(health.routing_events).toLocaleString());

  const store = $('#store-status');
  const degraded = health.store === 'degraded';
  store.dataset.store = degraded ? 'degraded' : 'ok';
  store.textContent = degraded ? 'store degraded' : 'store ok';
  store.title = degraded
    ? `This pod cannot reach the shared store and decides alone: ${health.store_degraded_reason || 'unknown reason'}` +
      (health.store_degraded_since_ms ? ` (since ${formatClock(health.store_degraded_since_ms)})` : '')
    : 'This pod decides with the shared store';

  agents = health.agents || {};
  renderAgents();

  updatedAt = Date.now();
  document.body.dataset.stale = 'false';
  renderUpdated();
}

// The rows of the agents the list shows (see agentlist.js), in its order;
// rows of the others are dropped. Each run is timed as the performance
// measure `fleet-breaker:agents`.
function renderAgents() {
  const started = performance.now();
  const { ids, matching } = visibleIds(agents);
  const total = Object.keys(agents).length;
  const list = $('#agents');
  const seen = new Set(ids);
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.el.remove();
      rows.delete(id);
    }
  }
  let previous = null;
  for (const id of ids) {
    let row = rows.get(id);
    if (!row) {
      row = makeRow(id);
      rows.set(id, row);
    }
    updateRow(row, agents[id]);
    // Keep the DOM in the list's order without moving rows in place.
    const want = previous ? previous.nextSibling : list.firstChild;
    if (want !== row.el) list.insertBefore(row.el, want);
    previous = row.el;
  }
  $('#agents-empty').hidden = total > 0;
  $('#agents-nomatch').hidden = total === 0 || matching > 0;
  $('#show-more').hidden = matching <= ids.length;
  setText(
    $('#show-more'),
    `Show ${Math.min(PAGE_ROWS, matching - ids.length).toLocaleString()} more`,
  );
  setText(
    '#agents-count',
    matching === total
      ? `${ids.length.toLocaleString()} of ${total.toLocaleString()} shown`
      : `${ids.length.toLocaleString()} of ${matching.toLocaleString()} matching shown (${total.toLocaleString()} agents)`,
  );
  performance.measure('fleet-breaker:agents', { start: started });
}

// Wires the search box and "Show more" to the list.
export function startAgents() {
  startAgentList(renderAgents);
}

function makeRow(id) {
  const el = $('#agent-template').content.firstElementChild.cloneNode(true);
  el.dataset.agent = id;
  const q = (selector) => el.querySelector(selector);
  const row = {
    id,
    el,
    state: null,
    generation: -1,
    epoch: undefined, // the epoch of the last event applied to this row
    eventAt: 0, // Date.now() of the last event applied to this row
    retryDeadline: null, // performance.now() at which the retry is due
    retryRefreshed: false,
    refs: {
      id: q('.agent-id'),
      state: q('.agent-state'),
      forced: q('.agent-forced-tag'),
      failures: q('.agent-failures'),
      successes: q('.agent-successes'),
      rejections: q('.agent-rejections'),
      backoff: q('.agent-backoff'),
      retry: q('.agent-retry-after'),
      history: q('.agent-history'),
      window: q('.agent-window'),
      windowLabel: q('.agent-window-label'),
      settings: q('.agent-settings'),
    },
  };
  row.refs.id.textContent = id;
  row.refs.id.title = id;
  for (const button of el.querySelectorAll('button[data-action]')) {
    button.setAttribute('aria-label', `${button.textContent} ${id}`);
  }
  return row;
}

function setRowState(row, state) {
  row.state = state;
  row.el.dataset.state = state;
  row.el.dataset.forced = FORCED.has(state) ? 'true' : 'false';
  row.refs.state.textContent = STATE_LABELS[state] || state;
  row.refs.state.dataset.state = state;
  row.refs.forced.hidden = !FORCED.has(state);
}

function updateRow(row, metrics) {
  if (metrics.state === 'corrupt') {
    showCorrupt(row, metrics.corrupt || {});
    renderWindow(row.refs, null, null);
    return;
  }
  row.refs.state.removeAttribute('title');
  const generation = Number(metrics.generation) || 0;
  if (generation < row.generation && Date.now() - row.eventAt < EVENT_PRECEDENCE_MS) {
    // An answer older than a transition just shown: keep the newer state;
    // the refresh scheduled by that transition brings the rest.
    return;
  }
  if (row.state !== null && row.state !== metrics.state && generation !== row.generation) {
    // A change no event told us about (polling, or a reconnect gap).
    noteTransition(
      {
        agent_id: row.id,
        from: row.state,
        to: metrics.state,
        generation,
        at_ms: Date.now(),
        reason: null,
      },
      false,
    );
  }
  if (row.state === null && !hasHistory(row.id)) {
    pushHistory(row.id, { at: Date.now(), state: metrics.state });
  }
  row.generation = generation;
  setRowState(row, metrics.state);

  const counters = metrics.metrics || {};
  setText(row.refs.failures, counters.failure_count ?? 0);
  setText(row.refs.successes, counters.success_count ?? 0);
  setText(row.refs.rejections, counters.total_rejections ?? 0);
  setText(row.refs.backoff, formatSeconds(metrics.backoff_seconds));
  row.refs.failures.title = counters.last_failure_time
    ? `last failure ${counters.last_failure_time}`
    : 'no failure recorded';
  row.refs.successes.title = counters.last_success_time
    ? `last success ${counters.last_success_time}`
    : 'no success recorded';

  if (metrics.retry_after_seconds != null && OPENISH.has(metrics.state)) {
    row.retryDeadline = performance.now() + metrics.retry_after_seconds * 1000;
    row.retryRefreshed = false;
  } else {
    row.retryDeadline = null;
  }
  renderRetry(row);
  renderHistory(row);
  renderWindow(row.refs, metrics.window, metrics.settings);
}

// An agent whose stored state cannot be read: the state names the field,
// the counters are blank; the next readable answer replaces all of it.
function showCorrupt(row, corrupt) {
  row.generation = -1;
  setRowState(row, 'corrupt');
  row.refs.state.textContent = `Corrupt: ${corrupt.field}`;
  row.refs.state.title =
    `Stored field ${corrupt.field} is ${corrupt.value == null ? 'missing' : JSON.stringify(corrupt.value)}, ` +
    `expected ${corrupt.expected}. ` +
    'Reset or force this agent to rewrite its state.';
  for (const el of [row.refs.failures, row.refs.rate, row.refs.rejections, row.refs.backoff]) {
    setText(el, '–');
    el.removeAttribute('title');
  }
  row.retryDeadline = null;
  renderRetry(row);
}

function renderRetry(row) {
  const el = row.refs.retry;
  if (row.retryDeadline !== null) {
    const left = row.retryDeadline - performance.now();
    setText(el, formatCountdown(left));
    el.dataset.retry = 'counting';
    if (left <= 0 && !row.retryRefreshed) {
      // The backoff is over: the next call may probe. Show what the fleet says.
      row.retryRefreshed = true;
      retryDue();
    }
  } else if (row.state === 'forced_open') {
    setText(el, 'until changed');
    el.dataset.retry = 'manual';
  } else {
    setText(el, '–');
    el.dataset.retry = 'none';
  }
}

// Records a transition (see recordTransition) and, when it is new, redraws
// the agent's sparkline and flashes its row.
function noteTransition(t, fromEvent) {
  if (!recordTransition(t, fromEvent)) return;
  const row = rows.get(t.agent_id);
  if (row) {
    renderHistory(row);
    row.el.classList.remove('flash');
    // Restart the animation: reading offsetWidth forces a reflow.
    void row.el.offsetWidth;
    row.el.classList.add('flash');
  }
}

// A transition from the event stream: listed, and shown in its row at once
// (the refresh that the caller schedules brings counters and cards).
export function showTransition(t) {
  noteTransition(t, true);
  const row = rows.get(t.agent_id);
  // Generations compare within one epoch (one history of the agent).
  const newEpoch = row && row.epoch !== undefined && t.epoch !== row.epoch;
  if (row && (newEpoch || Number(t.generation) >= row.generation)) {
    row.epoch = t.epoch;
    row.generation = Number(t.generation);
    row.eventAt = Date.now();
    setRowState(row, t.to);
    if (!OPENISH.has(t.to)) row.retryDeadline = null;
    renderRetry(row);
  }
}

// Once a second: countdowns, sparklines and "updated … ago".
export function tick() {
  for (const row of rows.values()) {
    renderRetry(row);
    renderHistory(row);
  }
  renderUpdated();
}

function renderUpdated() {
  const el = $('#updated');
  if (updatedAt === null) return;
  const seconds = Math.round((Date.now() - updatedAt) / 1000);
  setText(el, seconds < 2 ? 'updated just now' : `updated ${formatSeconds(seconds)} ago`);
  el.title = new Date(updatedAt).toISOString();
}
