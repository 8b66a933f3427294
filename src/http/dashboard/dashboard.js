// The fleet-breaker dashboard: plain ES2020 modules, no build step, no
// outside hosts. This entry wires the parts together:
//   - api.js: GET /api/circuit-breaker/health on load, and again (debounced)
//     after every transition event; SSE from /api/circuit-breaker/events
//     (event `transition`, data: the Transition JSON) while the stream is
//     up, with a health read every 10 s for the counters; polling of the
//     health every 2 s while it is down;
//   - render.js: the cards and agent rows, from a health answer or an event;
//   - agentlist.js: which rows the list shows (open first, the search box,
//     "Show more"): never 10,000 at once;
//   - transitions.js: the recent transitions list and each row's sparkline;
//   - admin.js: the admin buttons, which POST to
//     /api/circuit-breaker/{reset,force}/{agent} with
//     `Authorization: Bearer <token>`, the token asked once per tab and kept
//     in sessionStorage (forgotten on a 401);
//   - util.js: formatting and the status line.
//
// Untrusted text (agent ids, error messages) only ever goes through
// textContent, dataset and attribute setters, never innerHTML.
//
// A module script runs once the document is parsed: no DOMContentLoaded wait.

import { startAdmin } from './admin.js';
import { connectEvents, refresh, scheduleRefresh, setMode } from './api.js';
import { onRetryDue, startAgents, tick } from './render.js';

onRetryDue(() => scheduleRefresh(500));
startAgents();
startAdmin();
setMode('connecting');
refresh();
connectEvents();
setInterval(tick, 1000);
