// The service graph: services as nodes, calls as edges, laid out in layers
// from callers to callees, redrawn from /api/graph every two seconds. The
// same data follows as tables, the graph's text alternative.

import {h, getJSON, poll, record, fmtRPS, fmtPct, fmtMs, fmtBytes, badge, healthText, notice} from './util.js';

const NODE_W = 190, NODE_H = 74, COL = 410, ROW = 104, MARGIN = 24;
const HEALTHS = ['healthy', 'degraded', 'failing', 'idle'];

export function graphPage(main, info) {
  const summary = h('p', {class: 'summary'}, 'Loading the mesh…');
  const svgBox = h('div', {class: 'graph-box'});
  const services = h('div');
  const calls = h('div');
  main.append(
    h('h1', {}, 'Service graph'),
    summary,
    legend(),
    h('figure', {class: 'graph'}, svgBox,
      h('figcaption', {}, 'Each box is a service, each arrow the calls from one service to another, with requests per second, success rate and p99 latency over the last ',
        info.window || '30s', '. Select a service to open its page; the tables below hold the same data.')),
    h('h2', {id: 'services-h'}, 'Services'), services,
    h('h2', {id: 'calls-h'}, 'Calls'), calls,
  );
  let shape = '';
  let laid = null;
  const stop = poll(async (signal) => {
    const g = await getJSON('graph', signal);
    for (const n of g.nodes) record(n.id, g.at, n.golden);
    for (const e of g.edges) record(`${e.from}→${e.to}`, g.at, e.golden);
    const s = g.nodes.map((n) => n.id).join(',') + '|' + g.edges.map((e) => e.from + '>' + e.to).join(',');
    if (s !== shape) {
      shape = s;
      laid = layout(g.nodes, g.edges);
    }
    summary.replaceChildren(
      `${g.nodes.filter((n) => !n.external).length} services, ${g.edges.length} calls, window ${g.window}. `,
      g.telemetry.available ? '' : notice(`Traffic is not shown: ${g.telemetry.error || 'telemetry unavailable'}.`, 'warn'),
    );
    drawGraph(svgBox, g, laid);
    services.replaceChildren(serviceTable(g));
    calls.replaceChildren(callTable(g));
  }, 2000);
  return {stop};
}

function legend() {
  return h('ul', {class: 'legend', 'aria-label': 'Colours'},
    HEALTHS.map((hl) => h('li', {}, h('span', {class: `swatch h-${hl}`, 'aria-hidden': 'true'}), healthText[hl])));
}

// layout places nodes in layers: a node sits one layer right of its
// furthest caller (edges that close a cycle are ignored), and nodes in a
// layer are ordered by the mean row of their callers, then by name. The
// same graph always gets the same picture.
export function layout(nodes, edges) {
  const ids = nodes.map((n) => n.id).sort();
  const out = new Map(ids.map((id) => [id, []]));
  for (const e of edges) if (e.from !== e.to && out.has(e.from) && out.has(e.to)) out.get(e.from).push(e.to);
  for (const l of out.values()) l.sort();

  // Depth-first from every node in name order, callers first, marks the
  // edges that close a cycle.
  const hasIn = new Set(edges.map((e) => e.to));
  const roots = ids.filter((id) => !hasIn.has(id)).concat(ids.filter((id) => hasIn.has(id)));
  const state = new Map(), back = new Set(), order = [];
  const visit = (id) => {
    state.set(id, 1);
    for (const to of out.get(id)) {
      if (state.get(to) === 1) back.add(id + '>' + to);
      else if (!state.has(to)) visit(to);
    }
    state.set(id, 2);
    order.push(id);
  };
  for (const id of roots) if (!state.has(id)) visit(id);
  order.reverse(); // a topological order of the graph without back edges

  const rank = new Map(ids.map((id) => [id, 0]));
  for (const id of order) {
    for (const to of out.get(id)) {
      if (!back.has(id + '>' + to)) rank.set(to, Math.max(rank.get(to), rank.get(id) + 1));
    }
  }
  const preds = new Map(ids.map((id) => [id, []]));
  for (const [from, tos] of out) for (const to of tos) if (!back.has(from + '>' + to)) preds.get(to).push(from);

  const layers = [];
  for (const id of ids) (layers[rank.get(id)] ||= []).push(id);
  const row = new Map();
  layers.forEach((layer, i) => {
    if (i > 0) {
      const bary = (id) => {
        const p = preds.get(id).filter((x) => row.has(x));
        return p.length ? p.reduce((s, x) => s + row.get(x), 0) / p.length : Infinity;
      };
      layer.sort((a, b) => bary(a) - bary(b) || (a < b ? -1 : a > b ? 1 : 0));
    }
    layer.forEach((id, j) => row.set(id, j));
  });
  const rows = Math.max(1, ...layers.map((l) => l.length));
  const pos = new Map();
  layers.forEach((layer, i) => {
    const offset = (rows - layer.length) * ROW / 2;
    layer.forEach((id, j) => pos.set(id, {x: MARGIN + i * COL, y: MARGIN + offset + j * ROW}));
  });
  return {pos, back, width: 2 * MARGIN + (layers.length - 1) * COL + NODE_W, height: 2 * MARGIN + (rows - 1) * ROW + NODE_H + 40};
}

function edgeLabel(g) {
  if (g.requests > 0 || g.successRate !== undefined) {
    return `${fmtRPS(g.rps)} rps · ${fmtPct(g.successRate)} · p99 ${fmtMs(g.p99Ms)}`;
  }
  if (g.tcpConnections > 0 || g.tcpOpen > 0) return `TCP · ${g.tcpOpen || 0} open · ${fmtBytes((g.bytesSent || 0) + (g.bytesReceived || 0))}`;
  return 'no requests';
}

function drawGraph(box, g, laid) {
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.service : null;
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const svg = h('svg:svg', {
    class: 'graph-svg', viewBox: `0 0 ${laid.width} ${laid.height}`, width: laid.width, height: laid.height,
    role: 'group', 'aria-label': `Service graph: ${g.nodes.length} services and ${g.edges.length} calls`,
  });
  const defs = h('svg:defs');
  for (const hl of HEALTHS) {
    defs.append(h('svg:marker', {id: `arrow-${hl}`, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse'},
      h('svg:path', {d: 'M0,0 L10,5 L0,10 z', class: `arrow h-${hl}`})));
  }
  svg.append(defs);

  const edgeLayer = h('svg:g', {class: 'edges'});
  const labelLayer = h('svg:g', {class: 'edge-labels'});
  for (const e of g.edges) {
    const a = laid.pos.get(e.from), b = laid.pos.get(e.to);
    if (!a || !b) continue;
    let d, lx, ly;
    if (e.from === e.to) {
      d = `M${a.x + NODE_W - 30},${a.y} C${a.x + NODE_W},${a.y - 50} ${a.x + NODE_W + 40},${a.y + 10} ${a.x + NODE_W},${a.y + 20}`;
      lx = a.x + NODE_W; ly = a.y - 30;
    } else if (b.x > a.x) {
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, dx = (x2 - x1) / 2;
      d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
      lx = (x1 + x2) / 2; ly = (y1 + y2) / 2;
    } else {
      // Back to an earlier layer, or within one: an arc below both.
      const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y + NODE_H;
      const low = Math.max(y1, y2) + 36;
      d = `M${x1},${y1} C${x1},${low} ${x2},${low} ${x2},${y2}`;
      lx = (x1 + x2) / 2; ly = low - 6;
    }
    const label = edgeLabel(e.golden);
    const name = `${nodeName(byId.get(e.from))} calls ${nodeName(byId.get(e.to))}: ${label}`;
    edgeLayer.append(h('svg:g', {class: `edge h-${e.health}`, 'data-edge': `${e.from}>${e.to}`, role: 'img', 'aria-label': name},
      h('svg:title', {}, name),
      h('svg:path', {d, 'marker-end': `url(#arrow-${e.health})`})));
    const w = label.length * 6.4 + 10;
    labelLayer.append(h('svg:g', {class: `edge-label h-${e.health}`, 'aria-hidden': 'true'},
      h('svg:rect', {x: lx - w / 2, y: ly - 10, width: w, height: 18, rx: 4}),
      h('svg:text', {x: lx, y: ly + 3, 'text-anchor': 'middle'}, label)));
  }
  svg.append(edgeLayer, labelLayer);

  const nodeLayer = h('svg:g', {class: 'nodes'});
  for (const n of g.nodes) {
    const p = laid.pos.get(n.id);
    const gl = n.golden || {};
    const traffic = gl.requests > 0 ? `${fmtRPS(gl.rps)} rps · ${fmtPct(gl.successRate)}` : (gl.tcpConnections > 0 || gl.tcpOpen > 0 ? `TCP · ${gl.tcpOpen || 0} open` : 'no requests');
    const lat = gl.requests > 0 ? `p99 ${fmtMs(gl.p99Ms)}` : '';
    const ready = n.external ? '' : `${n.ready}/${n.instances} ready`;
    const desc = n.external
      ? `Callers outside the mesh: ${traffic}`
      : `Service ${n.name} in ${n.namespace}, ${n.health}: ${traffic}${lat ? ', ' + lat : ''}, ${ready}${n.versions ? ', versions ' + n.versions.join(' ') : ''}`;
    const body = [
      h('svg:title', {}, desc),
      h('svg:rect', {width: NODE_W, height: NODE_H, rx: 8, class: 'node-box'}),
      h('svg:rect', {width: 6, height: NODE_H, rx: 3, class: 'node-bar'}),
      h('svg:text', {x: 14, y: 22, class: 'node-name'}, n.name),
      h('svg:text', {x: NODE_W - 10, y: 22, class: 'node-ns', 'text-anchor': 'end'}, n.namespace || ''),
      h('svg:text', {x: 14, y: 43, class: 'node-stat'}, traffic),
      h('svg:text', {x: 14, y: 62, class: 'node-stat'}, [lat, ready].filter(Boolean).join(' · ')),
    ];
    const attrs = {class: `node h-${n.health}`, transform: `translate(${p.x},${p.y})`, 'data-service': n.id};
    if (n.external) {
      nodeLayer.append(h('svg:g', {...attrs, role: 'img', 'aria-label': desc}, body));
    } else {
      nodeLayer.append(h('svg:a', {...attrs, href: `#/service/${encodeURIComponent(n.namespace)}/${encodeURIComponent(n.name)}`, 'aria-label': desc}, body));
    }
  }
  svg.append(nodeLayer);
  box.replaceChildren(svg);
  if (focused) {
    const el = svg.querySelector(`[data-service="${CSS.escape(focused)}"]`);
    if (el) el.focus({preventScroll: true});
  }
}

function nodeName(n) {
  if (!n) return 'unknown';
  return n.external ? 'outside the mesh' : `${n.name}.${n.namespace}`;
}

function serviceTable(g) {
  const rows = g.nodes.filter((n) => !n.external).map((n) => {
    const gl = n.golden || {};
    return h('tr', {'data-service': n.id},
      h('th', {scope: 'row'}, h('a', {href: `#/service/${encodeURIComponent(n.namespace)}/${encodeURIComponent(n.name)}`}, `${n.name}.${n.namespace}`)),
      h('td', {}, badge(n.health)),
      h('td', {class: 'num'}, fmtRPS(gl.rps)),
      h('td', {class: 'num'}, fmtPct(gl.successRate)),
      h('td', {class: 'num'}, fmtMs(gl.p50Ms)),
      h('td', {class: 'num'}, fmtMs(gl.p95Ms)),
      h('td', {class: 'num'}, fmtMs(gl.p99Ms)),
      h('td', {class: 'num'}, `${n.ready}/${n.instances}`),
      h('td', {}, (n.versions || []).join(', ')));
  });
  if (!rows.length) return notice('No service yet: apply a Service or start a proxy.');
  return h('table', {'aria-labelledby': 'services-h'},
    h('thead', {}, h('tr', {}, ['Service', 'Health', 'RPS', 'Success', 'p50', 'p95', 'p99', 'Ready', 'Versions'].map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, rows));
}

function callTable(g) {
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  if (!g.edges.length) return notice(g.telemetry.available ? 'No calls in this window.' : 'Calls appear once telemetry is available.');
  return h('table', {'aria-labelledby': 'calls-h'},
    h('thead', {}, h('tr', {}, ['From', 'To', 'Health', 'RPS', 'Success', 'p99'].map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, g.edges.map((e) => h('tr', {'data-edge': `${e.from}>${e.to}`},
      h('td', {}, nodeName(byId.get(e.from))),
      h('td', {}, nodeName(byId.get(e.to))),
      h('td', {}, badge(e.health)),
      h('td', {class: 'num'}, fmtRPS(e.golden.rps)),
      h('td', {class: 'num'}, fmtPct(e.golden.successRate)),
      h('td', {class: 'num'}, fmtMs(e.golden.p99Ms))))));
}
