// The fleet-breaker dashboard: plain ES2020, no build step, no outside hosts.
//
// Data flow:
//   - GET /api/circuit-breaker/health on load, and again (debounced) after
//     every transition event;
//   - SSE from /api/circuit-breaker/events (event `transition`, data: the
//     Transition JSON) while the stream is up, with a health read every 10 s
//     for the counters; polling of the health every 2 s while it is down;
//   - admin buttons POST to /api/circuit-breaker/{reset,force}/{agent} with
//     `Authorization: Bearer <token>`, the token asked once per tab and kept
//     in sessionStorage (forgotten on a 401).
//
// Untrusted text (agent ids, error messages) only ever goes through
// textContent, dataset and attribute setters, never innerHTML.
'use strict';

(() => {
  const API = '/api/circuit-breaker';
  const POLL_MS = 2000;
  // While the stream is live it brings every transition, but counters
  // (failures, successes, rejections, routing events) change without one.
  const LIVE_POLL_MS = 10000;
  // How long a state from an event outranks an older health answer.
  const EVENT_PRECEDENCE_MS = 5000;
  const REFRESH_DEBOUNCE_MS = 150;
  const SSE_RETRY_MS = 10000;
  const MAX_TRANSITIONS = 50;
  const MAX_HISTORY = 200;
  const HISTORY_WINDOW_MS = 15 * 60 * 1000;
  const TOKEN_KEY = 'fleet-breaker.admin-token';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const STATE_LABELS = {
    closed: 'Closed',
    half_open: 'Half-open',
    open: 'Open',
    forced_open: 'Open',
    forced_closed: 'Closed',
  };
  // Sparkline height of each state: up is bad.
  const STATE_LEVELS = { closed: 0, forced_closed: 0, half_open: 1, open: 2, forced_open: 2 };
  const FORCED = new Set(['forced_open', 'forced_closed']);
  const OPENISH = new Set(['open', 'forced_open']);

  const $ = (selector) => document.querySelector(selector);

  const app = {
    rows: new Map(), // agent id -> row (see makeRow)
    history: new Map(), // agent id -> [{ at, state }], oldest first
    transitions: [], // newest first: { key, entry, reason, ... }
    transitionKeys: new Map(), // `${agent}\n${generation}` -> record
    mode: 'connecting',
    source: null,
    pollTimer: null,
    pollEvery: null,
    refreshTimer: null,
    fetchSeq: 0,
    appliedSeq: 0,
    loadedAt: Date.now(),
    updatedAt: null,
    memoryToken: null, // when sessionStorage is unavailable
    statusTimer: null,
    statusSource: null,
  };

  // ---------------------------------------------------------------- helpers

  function setText(selector, value) {
    const el = typeof selector === 'string' ? $(selector) : selector;
    const text = String(value);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function successRate(counters) {
    const ok = Number(counters.success_count) || 0;
    const failed = Number(counters.failure_count) || 0;
    const total = ok + failed;
    if (total === 0) return '-';
    return `${((ok / total) * 100).toFixed(1)}%`;
  }

  function formatSeconds(seconds) {
    if (seconds == null || !Number.isFinite(seconds)) return '–';
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 10) return `${seconds.toFixed(seconds % 1 === 0 ? 0 : 1)} s`;
    if (seconds < 120) return `${Math.round(seconds)} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function formatCountdown(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    if (total === 0) return 'due';
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
    if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
    return `${s}s`;
  }

  function formatClock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  function stateName(state) {
    return String(state).replace('_', '-');
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (body && typeof body.error === 'string') return body.error;
    } catch (_) {
      // not JSON: fall through
    }
    return `HTTP ${response.status} ${response.statusText}`.trim();
  }

  // ------------------------------------------------------------ status line

  // kind: 'info' | 'ok' | 'error'; source lets a later success of the same
  // source (e.g. the health fetch) clear its own message only.
  function showStatus(message, kind, source) {
    const el = $('#status');
    el.textContent = message;
    el.dataset.kind = kind;
    app.statusSource = source || null;
    clearTimeout(app.statusTimer);
    if (kind !== 'error' || source !== 'health') {
      app.statusTimer = setTimeout(clearStatus, kind === 'error' ? 15000 : 6000);
    }
  }

  function clearStatus() {
    const el = $('#status');
    el.textContent = '';
    el.dataset.kind = 'info';
    app.statusSource = null;
  }

  // ------------------------------------------------------------- rendering

  function applyHealth(health) {
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

    const agents = health.agents || {};
    const ids = Object.keys(agents).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const list = $('#agents');
    const seen = new Set(ids);
    for (const [id, row] of app.rows) {
      if (!seen.has(id)) {
        row.el.remove();
        app.rows.delete(id);
      }
    }
    let previous = null;
    for (const id of ids) {
      let row = app.rows.get(id);
      if (!row) {
        row = makeRow(id);
        app.rows.set(id, row);
      }
      updateRow(row, agents[id]);
      // Keep the DOM in id order without moving rows that are in place.
      const want = previous ? previous.nextSibling : list.firstChild;
      if (want !== row.el) list.insertBefore(row.el, want);
      previous = row.el;
    }
    $('#agents-empty').hidden = ids.length > 0;

    app.updatedAt = Date.now();
    document.body.dataset.stale = 'false';
    renderUpdated();
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
      eventAt: 0, // Date.now() of the last event applied to this row
      retryDeadline: null, // performance.now() at which the retry is due
      retryRefreshed: false,
      refs: {
        id: q('.agent-id'),
        state: q('.agent-state'),
        forced: q('.agent-forced-tag'),
        failures: q('.agent-failures'),
        rate: q('.agent-success-rate'),
        rejections: q('.agent-rejections'),
        backoff: q('.agent-backoff'),
        retry: q('.agent-retry-after'),
        history: q('.agent-history'),
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
    const generation = Number(metrics.generation) || 0;
    if (generation < row.generation && Date.now() - row.eventAt < EVENT_PRECEDENCE_MS) {
      // An answer older than a transition just shown: keep the newer state;
      // the refresh scheduled by that transition brings the rest.
      return;
    }
    if (row.state !== null && row.state !== metrics.state && generation !== row.generation) {
      // A change no event told us about (polling, or a reconnect gap).
      recordTransition(
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
    if (row.state === null && !app.history.has(row.id)) {
      pushHistory(row.id, { at: Date.now(), state: metrics.state });
    }
    row.generation = generation;
    setRowState(row, metrics.state);

    const counters = metrics.metrics || {};
    setText(row.refs.failures, counters.failure_count ?? 0);
    setText(row.refs.rate, successRate(counters));
    setText(row.refs.rejections, counters.total_rejections ?? 0);
    setText(row.refs.backoff, formatSeconds(metrics.backoff_seconds));
    row.refs.failures.title = counters.last_failure_time
      ? `last failure ${counters.last_failure_time}`
      : 'no failure recorded';
    row.refs.rate.title = counters.last_success_time
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
        scheduleRefresh(500);
      }
    } else if (row.state === 'forced_open') {
      setText(el, 'until changed');
      el.dataset.retry = 'manual';
    } else {
      setText(el, '–');
      el.dataset.retry = 'none';
    }
  }

  // ------------------------------------------------------ history sparkline

  function pushHistory(agent, point) {
    let points = app.history.get(agent);
    if (!points) {
      points = [];
      app.history.set(agent, points);
    }
    let i = points.length;
    while (i > 0 && points[i - 1].at > point.at) i -= 1;
    points.splice(i, 0, point);
    if (points.length > MAX_HISTORY) points.splice(0, points.length - MAX_HISTORY);
  }

  function renderHistory(row) {
    const points = app.history.get(row.id) || [];
    const now = Date.now();
    const start = Math.max(app.loadedAt, now - HISTORY_WINDOW_MS);
    const width = 132;
    const height = 26;
    const pad = 3;
    const span = Math.max(now - start, 1000);
    const x = (t) => pad + ((Math.min(Math.max(t, start), now) - start) / span) * (width - 2 * pad);
    const y = (state) => height - pad - ((STATE_LEVELS[state] ?? 0) / 2) * (height - 2 * pad);

    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('width', String(width));
    svg.setAttribute('height', String(height));
    svg.setAttribute('role', 'img');
    svg.classList.add('sparkline');
    const line = (x1, y1, x2, y2, cls) => {
      const el = document.createElementNS(SVG_NS, 'line');
      el.setAttribute('x1', x1.toFixed(1));
      el.setAttribute('y1', y1.toFixed(1));
      el.setAttribute('x2', x2.toFixed(1));
      el.setAttribute('y2', y2.toFixed(1));
      el.setAttribute('class', cls);
      svg.appendChild(el);
    };
    line(pad, height - pad, width - pad, height - pad, 'baseline');
    const visible = points.filter((p, i) => i === points.length - 1 || points[i + 1].at >= start);
    visible.forEach((p, i) => {
      const next = visible[i + 1];
      const x1 = x(p.at);
      const x2 = next ? x(next.at) : width - pad;
      if (next) line(x2, y(p.state), x2, y(next.state), 'link');
      line(x1, y(p.state), Math.max(x2, x1 + 1), y(p.state), `seg state-${stateName(p.state)}`);
    });
    for (const p of visible.slice(1)) {
      const dot = document.createElementNS(SVG_NS, 'circle');
      dot.setAttribute('cx', x(p.at).toFixed(1));
      dot.setAttribute('cy', y(p.state).toFixed(1));
      dot.setAttribute('r', '2');
      dot.setAttribute('class', `dot state-${stateName(p.state)}`);
      svg.appendChild(dot);
    }
    const changes = Math.max(points.length - 1, 0);
    const label = `${changes} transition${changes === 1 ? '' : 's'} since load`;
    const title = document.createElementNS(SVG_NS, 'title');
    title.textContent = label;
    svg.appendChild(title);
    svg.setAttribute('aria-label', label);

    const count = document.createElement('span');
    count.className = 'agent-history-count';
    count.textContent = String(changes);
    count.title = label;
    row.refs.history.dataset.transitions = String(changes);
    row.refs.history.replaceChildren(svg, count);
  }

  // ------------------------------------------------------------ transitions

  // A transition from the event stream (fromEvent) or one inferred from a
  // change between two health reads (reason null).
  function recordTransition(t, fromEvent) {
    if (!t || typeof t.agent_id !== 'string') return;
    const key = `${t.agent_id}\n${t.generation}`;
    const known = app.transitionKeys.get(key);
    if (known) {
      if (fromEvent && !known.reason) {
        // The event for a change first seen by polling: fill in the details.
        known.reason = t.reason;
        known.at = t.at_ms;
        fillTransition(known.el, known);
      }
      return;
    }
    const record = {
      key,
      agent: t.agent_id,
      from: t.from,
      to: t.to,
      generation: t.generation,
      reason: t.reason || null,
      at: Number(t.at_ms) || Date.now(),
      el: document.createElement('li'),
    };
    fillTransition(record.el, record);
    app.transitions.unshift(record);
    app.transitionKeys.set(key, record);
    $('#transitions').prepend(record.el);
    while (app.transitions.length > MAX_TRANSITIONS) {
      const old = app.transitions.pop();
      old.el.remove();
      app.transitionKeys.delete(old.key);
    }
    $('#transitions-empty').hidden = true;
    pushHistory(t.agent_id, { at: record.at, state: t.to });
    const row = app.rows.get(t.agent_id);
    if (row) {
      renderHistory(row);
      row.el.classList.remove('flash');
      // Restart the animation: reading offsetWidth forces a reflow.
      void row.el.offsetWidth;
      row.el.classList.add('flash');
    }
  }

  function fillTransition(li, record) {
    li.className = 'transition';
    li.dataset.agent = record.agent;
    li.dataset.from = record.from;
    li.dataset.to = record.to;
    li.dataset.reason = record.reason || 'observed';
    const time = document.createElement('time');
    time.className = 'transition-time';
    time.dateTime = new Date(record.at).toISOString();
    time.textContent = formatClock(record.at);
    const agent = document.createElement('span');
    agent.className = 'transition-agent';
    agent.textContent = record.agent;
    agent.title = record.agent;
    const change = document.createElement('span');
    change.className = 'transition-change';
    const from = document.createElement('span');
    from.className = 'state-pill';
    from.dataset.state = record.from;
    from.textContent = stateName(record.from);
    const arrow = document.createElement('span');
    arrow.className = 'arrow';
    arrow.textContent = '→';
    const to = document.createElement('span');
    to.className = 'state-pill';
    to.dataset.state = record.to;
    to.textContent = stateName(record.to);
    change.append(from, arrow, to);
    const reason = document.createElement('span');
    reason.className = 'transition-reason';
    reason.textContent = record.reason ? String(record.reason).replace(/_/g, ' ') : 'seen by polling';
    li.replaceChildren(time, agent, change, reason);
  }

  function onTransitionEvent(t) {
    recordTransition(t, true);
    const row = app.rows.get(t.agent_id);
    if (row && Number(t.generation) >= row.generation) {
      // Show the new state at once; the refresh brings counters and cards.
      row.generation = Number(t.generation);
      row.eventAt = Date.now();
      setRowState(row, t.to);
      if (!OPENISH.has(t.to)) row.retryDeadline = null;
      renderRetry(row);
    }
    scheduleRefresh(REFRESH_DEBOUNCE_MS);
  }

  // ---------------------------------------------------------------- loading

  async function refresh() {
    const seq = ++app.fetchSeq;
    try {
      const response = await fetch(`${API}/health`, {
        cache: 'no-store',
        headers: { Accept: 'application/json' },
      });
      if (!response.ok) throw new Error(await errorText(response));
      const health = await response.json();
      if (seq < app.appliedSeq) return; // a later read already rendered
      app.appliedSeq = seq;
      applyHealth(health);
      if (app.statusSource === 'health') clearStatus();
    } catch (error) {
      document.body.dataset.stale = 'true';
      showStatus(`Cannot read the health: ${error.message}`, 'error', 'health');
    }
  }

  // Trailing-edge debounce with a bounded wait: a burst of events costs one
  // read, started at most `delay` ms after the first event of the burst.
  function scheduleRefresh(delay) {
    if (app.refreshTimer !== null) return;
    app.refreshTimer = setTimeout(() => {
      app.refreshTimer = null;
      refresh();
    }, delay);
  }

  function setMode(mode) {
    app.mode = mode;
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
    if (app.pollEvery === every) return;
    clearInterval(app.pollTimer);
    app.pollTimer = setInterval(refresh, every);
    app.pollEvery = every;
  }

  function startPolling() {
    pollEvery(POLL_MS);
  }

  function slowPolling() {
    pollEvery(LIVE_POLL_MS);
  }

  function connectEvents() {
    if (typeof EventSource === 'undefined') {
      setMode('polling');
      startPolling();
      return;
    }
    const source = new EventSource(`${API}/events`);
    app.source = source;
    source.addEventListener('open', () => {
      setMode('sse');
      slowPolling();
      // Anything that changed while the stream was down.
      scheduleRefresh(0);
    });
    source.addEventListener('transition', (event) => {
      let transition;
      try {
        transition = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      onTransitionEvent(transition);
    });
    source.addEventListener('error', () => {
      setMode('polling');
      startPolling();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. a non-SSE answer): try again later.
        source.close();
        if (app.source === source) app.source = null;
        setTimeout(connectEvents, SSE_RETRY_MS);
      }
    });
  }

  // ------------------------------------------------------------------ admin

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || app.memoryToken;
    } catch (_) {
      return app.memoryToken;
    }
  }

  function storeToken(token) {
    app.memoryToken = token;
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

  // ------------------------------------------------------------------ start

  function tick() {
    for (const row of app.rows.values()) {
      renderRetry(row);
      renderHistory(row);
    }
    renderUpdated();
  }

  function renderUpdated() {
    const el = $('#updated');
    if (app.updatedAt === null) return;
    const seconds = Math.round((Date.now() - app.updatedAt) / 1000);
    setText(el, seconds < 2 ? 'updated just now' : `updated ${formatSeconds(seconds)} ago`);
    el.title = new Date(app.updatedAt).toISOString();
  }

  function start() {
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
    setMode('connecting');
    refresh();
    connectEvents();
    setInterval(tick, 1000);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
