// Which agents the list shows: at 10,000 agents the page renders no more
// than `shown` rows (PAGE_ROWS at first, PAGE_ROWS more per "Show more"),
// open circuits first, then half-open, corrupt, and closed ones, each in
// agent id order, filtered by the search box (a case-insensitive substring
// of the id). No DOM here but the two controls it wires.

import { $ } from './util.js';

export const PAGE_ROWS = 100;

const RANK = { open: 0, forced_open: 0, half_open: 1, corrupt: 2 };
const rank = (metrics) => RANK[metrics && metrics.state] ?? 3;

let query = '';
let shown = PAGE_ROWS;

// The ids of `agents` (id -> metrics) to show, and how many match.
export function visibleIds(agents) {
  let ids = Object.keys(agents);
  if (query) ids = ids.filter((id) => id.toLowerCase().includes(query));
  ids.sort((a, b) => rank(agents[a]) - rank(agents[b]) || (a < b ? -1 : a > b ? 1 : 0));
  return { ids: ids.slice(0, shown), matching: ids.length };
}

// Wires the search box and the "Show more" button; `redraw` renders the
// list again from the last health answer.
export function startAgentList(redraw) {
  let timer = null;
  $('#agent-search').addEventListener('input', (event) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      query = event.target.value.trim().toLowerCase();
      shown = PAGE_ROWS;
      redraw();
    }, 80);
  });
  $('#show-more').addEventListener('click', () => {
    shown += PAGE_ROWS;
    redraw();
  });
}
