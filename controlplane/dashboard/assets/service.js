// A service's page: its golden metrics over time, its instances and
// versions, who calls it and whom it calls, and the Route and policies that
// govern it with their status. Refreshed every two seconds.

import {h, getJSON, poll, record, historyOf, sparkline, fmtRPS, fmtPct, fmtMs, badge, notice} from './util.js';

const METRICS = [
  {key: 'rps', label: 'Requests per second', format: fmtRPS, golden: 'rps'},
  {key: 'success', label: 'Success rate', format: fmtPct, golden: 'successRate'},
  {key: 'p50', label: 'Latency p50', format: fmtMs, golden: 'p50Ms'},
  {key: 'p95', label: 'Latency p95', format: fmtMs, golden: 'p95Ms'},
  {key: 'p99', label: 'Latency p99', format: fmtMs, golden: 'p99Ms'},
];

export function servicePage(main, namespace, name, info) {
  const id = `${name}.${namespace}`;
  const title = h('h1', {}, `${name}`, h('span', {class: 'ns'}, ` .${namespace}`));
  const head = h('div', {class: 'service-head'});
  const metrics = h('section', {'aria-labelledby': 'golden-h'}, h('h2', {id: 'golden-h'}, 'Golden metrics'));
  const cards = h('div', {class: 'cards'});
  metrics.append(cards);
  const instances = h('section', {'aria-labelledby': 'instances-h'});
  const versions = h('section', {'aria-labelledby': 'versions-h'});
  const traffic = h('section', {'aria-labelledby': 'traffic-h'});
  const policies = h('section', {'aria-labelledby': 'policies-h'});
  main.append(
    h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumb'}, h('a', {href: '#/'}, 'Service graph'), ' › ', id),
    title, head, metrics, instances, versions, traffic, policies);

  const stop = poll(async (signal) => {
    let s;
    try {
      s = await getJSON(`services/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`, signal);
    } catch (e) {
      if (e.status === 404) {
        head.replaceChildren(notice(e.message, 'error'));
        return;
      }
      throw e;
    }
    record(id, s.at, s.golden);
    head.replaceChildren(
      badge(s.health), ' ',
      s.declared ? `${(s.ports || []).map((p) => `${p.name || 'port'} ${p.port}/${p.protocol || 'http'}`).join(', ')}` : 'no Service resource: discovered from its workloads',
      ' · ', h('a', {href: `#/tap/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`}, 'Tap its requests live'),
      s.telemetry.available ? '' : notice(`Traffic is not shown: ${s.telemetry.error || 'telemetry unavailable'}.`, 'warn'),
    );
    const points = historyOf(id);
    const g = s.golden || {};
    cards.replaceChildren(...METRICS.map((m) => h('figure', {class: 'card', 'data-metric': m.key},
      h('figcaption', {}, m.label),
      h('p', {class: 'value'}, m.format(g[m.golden])),
      sparkline(points, m.key, m.label, m.format))));
    cards.append(h('p', {class: 'hint'}, `Window ${s.window}; the lines hold what this page has seen since it was loaded (${points.length} samples).`));

    instances.replaceChildren(h('h2', {id: 'instances-h'}, `Instances (${s.instances.filter((i) => i.ready).length}/${s.instances.length} ready)`),
      s.instances.length ? instanceTable(s.instances) : notice('No workload of this service is registered.'));
    versions.replaceChildren(h('h2', {id: 'versions-h'}, 'Versions'),
      s.versions.length ? versionTable(s.versions) : notice('No versions: no workload is registered.'));
    traffic.replaceChildren(h('h2', {id: 'traffic-h'}, 'Calls'),
      h('h3', {}, 'Callers'), edgeTable(s.inbound, 'from'),
      h('h3', {}, 'Calls made'), edgeTable(s.outbound, 'to'));
    policies.replaceChildren(h('h2', {id: 'policies-h'}, 'Route and policies'),
      s.statusError ? notice(`Status incomplete: ${s.statusError}`, 'warn') : '',
      s.policies.length ? policyTable(s.policies) : notice('No Route, DestinationPolicy, AccessPolicy, RequestAuth or RateLimit governs this service.'));
  }, 2000);
  return {stop};
}

function instanceTable(list) {
  return h('table', {'aria-labelledby': 'instances-h', class: 'instances'},
    h('thead', {}, h('tr', {}, ['Workload', 'Version', 'Address', 'Ready', 'RPS', 'Success', 'p99', 'Scrape'].map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, list.map((i) => h('tr', {'data-workload': i.id},
      h('th', {scope: 'row'}, h('code', {}, i.id)),
      h('td', {}, i.version || '–'),
      h('td', {}, h('code', {}, i.address)),
      h('td', {}, i.ready ? h('span', {class: 'badge h-healthy'}, 'ready') : h('span', {class: 'badge h-failing'}, 'not ready')),
      h('td', {class: 'num'}, fmtRPS(i.golden?.rps)),
      h('td', {class: 'num'}, fmtPct(i.golden?.successRate)),
      h('td', {class: 'num'}, fmtMs(i.golden?.p99Ms)),
      h('td', {}, i.error ? h('span', {class: 'error'}, i.error) : (i.golden ? 'ok' : '–'))))));
}

function versionTable(list) {
  return h('table', {'aria-labelledby': 'versions-h'},
    h('thead', {}, h('tr', {}, ['Version', 'Instances', 'Ready', 'RPS', 'Success'].map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, list.map((v) => h('tr', {},
      h('th', {scope: 'row'}, v.version || '(none)'),
      h('td', {class: 'num'}, v.instances),
      h('td', {class: 'num'}, v.ready),
      h('td', {class: 'num'}, fmtRPS(v.rps)),
      h('td', {class: 'num'}, fmtPct(v.successRate))))));
}

function edgeTable(edges, side) {
  if (!edges.length) return notice('None in this window.');
  return h('table', {},
    h('thead', {}, h('tr', {}, [side === 'from' ? 'Caller' : 'Callee', 'Health', 'RPS', 'Success', 'p99'].map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, edges.map((e) => {
      const other = side === 'from' ? e.from : e.to;
      const [n, ns] = other.split(/\.(.*)/s);
      const cell = other === 'unknown' ? 'outside the mesh' : h('a', {href: `#/service/${encodeURIComponent(ns || 'default')}/${encodeURIComponent(n)}`}, other);
      return h('tr', {},
        h('th', {scope: 'row'}, cell),
        h('td', {}, badge(e.health)),
        h('td', {class: 'num'}, fmtRPS(e.golden.rps)),
        h('td', {class: 'num'}, fmtPct(e.golden.successRate)),
        h('td', {class: 'num'}, fmtMs(e.golden.p99Ms)));
    })));
}

const PHASE_CLASS = {
  Applied: 'healthy', Valid: 'healthy', Pending: 'degraded', NoProxies: 'idle', Unknown: 'idle',
  Rejected: 'failing', NotAccepted: 'failing', Invalid: 'failing',
};

function policyTable(list) {
  return h('table', {'aria-labelledby': 'policies-h', class: 'policies'},
    h('thead', {}, h('tr', {}, ['Kind', 'Name', 'Does', 'Status', 'Proxies', 'Details'].map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, list.map((p) => h('tr', {'data-policy': `${p.kind}/${p.name}`},
      h('td', {}, p.kind),
      h('th', {scope: 'row'}, p.name),
      h('td', {}, p.summary),
      h('td', {}, h('span', {class: `badge h-${PHASE_CLASS[p.phase] || 'idle'}`}, p.phase)),
      h('td', {class: 'num'}, p.proxies !== undefined ? `${p.applied}/${p.proxies} applied` : (p.tracked ? '–' : 'not tracked')),
      h('td', {},
        p.reason ? h('p', {class: 'error'}, p.reason) : '',
        (p.errors || []).map((e) => h('p', {class: 'error'}, e)),
        (p.warnings || []).map((w) => h('p', {class: 'warn'}, w)),
        p.spec ? h('details', {}, h('summary', {}, 'spec'), h('pre', {}, JSON.stringify(p.spec, null, 2))) : '')))));
}
