// The window chart of an agent row: the fleet's calls per bucket (bars,
// the failed part in red) and the failure rate per bucket (a line, 0 to
// 100%) over the agent's window, from health's `window.buckets`; and the
// agent's stored settings, when it has any. No I/O here.

import { setText } from './util.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const WIDTH = 132;
const HEIGHT = 30;
const PAD = 2;

// `window` is AgentMetrics' `window` (absent for an agent without a rate
// policy or a quorum: the chart hides); `settings` its stored settings.
export function renderWindow(refs, window, settings) {
  const box = refs.window;
  if (!window || !Array.isArray(window.buckets)) {
    box.hidden = true;
  } else {
    box.hidden = false;
    box.replaceChildren(chart(window.buckets));
    const rate = percent(window.failure_rate);
    const slow = window.slow_calls > 0 ? ` · ${percent(window.slow_call_rate)} slow` : '';
    setText(refs.windowLabel, `${window.calls} calls · ${rate} failed${slow}`);
    box.title =
      `The fleet's calls in the last ${Math.round(window.window_ms / 1000)} s, ` +
      `per ${Math.round(window.window_ms / 100) / 100} s bucket (oldest left): ` +
      `${window.calls} calls, ${window.failures} failed, ${window.slow_calls} slow` +
      (window.reporting_pods > 0 ? `; ${window.reporting_pods} pods reported failures` : '');
    box.appendChild(refs.windowLabel);
  }
  const fields = Object.entries(settings || {});
  refs.settings.hidden = fields.length === 0;
  setText(refs.settings, fields.map(([name, value]) => `${name}=${value}`).join(' '));
  refs.settings.title = fields.length
    ? 'Settings stored for this agent: they override every pod\'s config for it (fleet-breaker config)'
    : '';
}

function percent(rate) {
  const p = (Number(rate) || 0) * 100;
  return p > 0 && p < 10 ? `${p.toFixed(1)}%` : `${Math.round(p)}%`;
}

function chart(buckets) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute('width', String(WIDTH));
  svg.setAttribute('height', String(HEIGHT));
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'calls and failure rate per bucket of the window');
  svg.classList.add('window-chart');
  const n = Math.max(buckets.length, 1);
  const slot = (WIDTH - 2 * PAD) / n;
  const most = Math.max(1, ...buckets.map((b) => Number(b.calls) || 0));
  const base = HEIGHT - PAD;
  const tall = HEIGHT - 2 * PAD;
  const rect = (x, y, w, h, cls) => {
    const el = document.createElementNS(SVG_NS, 'rect');
    el.setAttribute('x', x.toFixed(1));
    el.setAttribute('y', y.toFixed(1));
    el.setAttribute('width', w.toFixed(1));
    el.setAttribute('height', Math.max(h, 0).toFixed(1));
    el.setAttribute('class', cls);
    svg.appendChild(el);
  };
  rect(PAD, base, WIDTH - 2 * PAD, 1, 'window-base');
  const rates = [];
  buckets.forEach((b, i) => {
    const calls = Number(b.calls) || 0;
    const failures = Math.min(Number(b.failures) || 0, calls);
    const x = PAD + i * slot + 1;
    const w = Math.max(slot - 2, 1);
    const h = (calls / most) * tall;
    const f = (failures / most) * tall;
    rect(x, base - h, w, h - f, 'window-calls');
    rect(x, base - f, w, f, 'window-failures');
    if (calls > 0) rates.push([x + w / 2, base - (failures / calls) * tall]);
  });
  if (rates.length > 0) {
    const line = document.createElementNS(SVG_NS, 'polyline');
    line.setAttribute('points', rates.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' '));
    line.setAttribute('class', 'window-rate');
    svg.appendChild(line);
    for (const [x, y] of rates) {
      const dot = document.createElementNS(SVG_NS, 'circle');
      dot.setAttribute('cx', x.toFixed(1));
      dot.setAttribute('cy', y.toFixed(1));
      dot.setAttribute('r', '1.6');
      dot.setAttribute('class', 'window-rate-dot');
      svg.appendChild(dot);
    }
  }
  return svg;
}
