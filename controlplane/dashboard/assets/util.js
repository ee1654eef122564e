// Helpers shared by the pages: building elements, formatting numbers,
// fetching JSON, and the client-side history of golden metrics.

export const API = 'api/';

// h builds an element: h('td', {class: 'num'}, 'text', child, ...).
export function h(tag, attrs, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export async function getJSON(path, signal) {
  const resp = await fetch(API + path, {signal, headers: {Accept: 'application/json'}});
  let body;
  try {
    body = await resp.json();
  } catch {
    throw new Error(`${resp.status} ${resp.statusText}`);
  }
  if (!resp.ok) {
    const err = new Error(body && body.error ? body.error : `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

export function fmtRPS(v) {
  if (v === undefined || v === null) return '–';
  if (v === 0) return '0';
  // Decide the precision on the rounded value, so 9.996 reads 10.0 as 10.01 would.
  if (Number(v.toFixed(2)) < 10) return v.toFixed(2);
  if (Number(v.toFixed(1)) < 100) return v.toFixed(1);
  return Math.round(v).toString();
}

export function fmtPct(v) {
  if (v === undefined || v === null) return '–';
  const p = v * 100;
  if (p === 100) return '100%';
  return (p >= 99 ? p.toFixed(2) : p.toFixed(1)) + '%';
}

export function fmtMs(v) {
  if (v === undefined || v === null) return '–';
  if (v < 1) return v.toFixed(2) + ' ms';
  if (v < 100) return v.toFixed(1) + ' ms';
  if (v < 10000) return Math.round(v) + ' ms';
  return (v / 1000).toFixed(1) + ' s';
}

export function fmtBytes(v) {
  if (!v) return '0 B';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (i === 0 ? v.toString() : v.toFixed(1)) + ' ' + units[i];
}

export function fmtTime(s) {
  if (!s) return '–';
  const d = new Date(s);
  return isNaN(d) ? s : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// fmtDuration spells a duration in milliseconds the way an operator reads it.
export function fmtDuration(ms) {
  const neg = ms < 0;
  ms = Math.abs(ms);
  const s = Math.round(ms / 1000), m = Math.round(ms / 60000), hr = Math.round(ms / 3600000), d = Math.floor(ms / 86400000);
  let out;
  if (ms >= 2 * 86400000) out = `${d} days`;
  else if (ms >= 3600000) out = `${hr} h`;
  else if (ms >= 60000) out = `${m} min`;
  else out = `${s} s`;
  return neg ? `${out} ago` : out;
}

export const healthText = {
  healthy: 'healthy (success rate at least 99%)',
  degraded: 'degraded (success rate at least 95%)',
  failing: 'failing',
  idle: 'idle (no requests)',
};

export function badge(health) {
  return h('span', {class: `badge h-${health}`}, health);
}

// The golden metrics of every service seen since the page was loaded, so
// that a service's page has a history the moment it opens.
const HISTORY_POINTS = 180;
const history = new Map();

export function record(id, at, golden) {
  if (!golden) return;
  let points = history.get(id);
  if (!points) history.set(id, points = []);
  const t = new Date(at).getTime();
  if (points.length && points[points.length - 1].t >= t) return;
  points.push({
    t, rps: golden.rps ?? 0, success: golden.successRate ?? null,
    p50: golden.p50Ms ?? null, p95: golden.p95Ms ?? null, p99: golden.p99Ms ?? null,
  });
  if (points.length > HISTORY_POINTS) points.splice(0, points.length - HISTORY_POINTS);
}

export function historyOf(id) {
  return history.get(id) || [];
}

// sparkline draws the series as a small SVG with a text alternative.
export function sparkline(points, key, label, format) {
  const W = 220, H = 44, pad = 3;
  const vals = points.map((p) => p[key]).filter((v) => v !== null && v !== undefined);
  const last = vals.length ? vals[vals.length - 1] : null;
  const svg = h('svg:svg', {class: 'spark', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    'aria-label': vals.length
      ? `${label} over the last ${points.length} samples: from ${format(vals[0])} to ${format(last)}, at most ${format(Math.max(...vals))}`
      : `${label}: no samples yet`});
  if (vals.length >= 2) {
    let lo = Math.min(...vals), hi = Math.max(...vals);
    if (key === 'success') { lo = Math.min(lo, 0.9); hi = 1; }
    if (hi === lo) { hi = lo + 1; lo = Math.max(0, lo - 1); }
    // The line spans the samples that have a value: a latency has none
    // before the first request.
    const valued = points.filter((p) => p[key] !== null && p[key] !== undefined);
    const t0 = valued[0].t, t1 = valued[valued.length - 1].t;
    const xy = valued.map((p) => {
      const x = pad + (W - 2 * pad) * ((p.t - t0) / Math.max(1, t1 - t0));
      const y = H - pad - (H - 2 * pad) * ((p[key] - lo) / (hi - lo));
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    svg.append(h('svg:polyline', {points: xy.join(' '), class: 'spark-line'}));
  }
  return svg;
}

// setStatus shows, in the header, how fresh the page's data is. Screen
// readers hear only when the page stops or starts updating again, not
// every refresh.
let lastOK = null;
export function setStatus(text, ok) {
  const live = document.getElementById('live');
  live.textContent = text;
  live.classList.toggle('stale', !ok);
  if (ok !== lastOK) {
    if (lastOK !== null) document.getElementById('announce').textContent = ok ? 'Updating again.' : text;
    lastOK = ok;
  }
}

// poll calls load(signal) now and every interval after it finishes, until
// the returned stop is called; it reports freshness in the header.
export function poll(load, interval) {
  let stopped = false, timer = null;
  const ctl = new AbortController();
  async function tick() {
    try {
      await load(ctl.signal);
      if (!stopped) setStatus(`live · updated ${new Date().toLocaleTimeString()}`, true);
    } catch (e) {
      if (stopped || e.name === 'AbortError') return;
      setStatus(`not updating: ${e.message}`, false);
    }
    if (!stopped) timer = setTimeout(tick, interval);
  }
  tick();
  return () => { stopped = true; clearTimeout(timer); ctl.abort(); };
}

// notice is a message box shown in place of what cannot be shown.
export function notice(text, kind) {
  return h('p', {class: `notice ${kind || ''}`, role: kind === 'error' ? 'alert' : null}, text);
}
