// What changed since the page loaded: the "Recent transitions" list, and
// each agent's state history drawn as a sparkline in its row.

import { $, formatClock, stateName } from './util.js';

const MAX_TRANSITIONS = 50;
const MAX_HISTORY = 200;
const HISTORY_WINDOW_MS = 15 * 60 * 1000;
const SVG_NS = 'http://www.w3.org/2000/svg';
// Sparkline height of each state: up is bad.
const STATE_LEVELS = { closed: 0, forced_closed: 0, half_open: 1, open: 2, forced_open: 2 };

const loadedAt = Date.now();
const history = new Map(); // agent id -> [{ at, state }], oldest first
const transitions = []; // newest first: { key, entry, reason, ... }
const transitionKeys = new Map(); // `${agent}\n${generation}` -> record
const epochs = new Map(); // agent id -> the epoch of its last event

// ------------------------------------------------------------ transitions

// A transition from the event stream (fromEvent) or one inferred from a
// change between two health reads (reason null). True when it is new: it
// was added to the list and to the agent's history.
export function recordTransition(t, fromEvent) {
  if (!t || typeof t.agent_id !== 'string') return false;
  if (fromEvent && t.epoch !== undefined) {
    // A new epoch: the agent was made again (a flush, a deleted hash) and
    // counts generations from 1 again; its old keys must not hide them.
    const last = epochs.get(t.agent_id);
    if (last !== undefined && last !== t.epoch) {
      for (const key of [...transitionKeys.keys()]) {
        if (key.startsWith(`${t.agent_id}\n`)) transitionKeys.delete(key);
      }
    }
    epochs.set(t.agent_id, t.epoch);
  }
  const key = `${t.agent_id}\n${t.generation}`;
  const known = transitionKeys.get(key);
  if (known) {
    if (fromEvent && !known.reason) {
      // The event for a change first seen by polling: fill in the details.
      known.reason = t.reason;
      known.at = t.at_ms;
      fillTransition(known.el, known);
    }
    return false;
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
  transitions.unshift(record);
  transitionKeys.set(key, record);
  $('#transitions').prepend(record.el);
  while (transitions.length > MAX_TRANSITIONS) {
    const old = transitions.pop();
    old.el.remove();
    transitionKeys.delete(old.key);
  }
  $('#transitions-empty').hidden = true;
  pushHistory(t.agent_id, { at: record.at, state: t.to });
  return true;
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

// ------------------------------------------------------ history sparkline

export function hasHistory(agent) {
  return history.has(agent);
}

export function pushHistory(agent, point) {
  let points = history.get(agent);
  if (!points) {
    points = [];
    history.set(agent, points);
  }
  let i = points.length;
  while (i > 0 && points[i - 1].at > point.at) i -= 1;
  points.splice(i, 0, point);
  if (points.length > MAX_HISTORY) points.splice(0, points.length - MAX_HISTORY);
}

// Draws the sparkline of `row` (see makeRow in render.js) and its count.
export function renderHistory(row) {
  const points = history.get(row.id) || [];
  const now = Date.now();
  const start = Math.max(loadedAt, now - HISTORY_WINDOW_MS);
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
