// The live tap: the requests of a service as its proxies see them, streamed
// from /api/tap with Server-Sent Events. Bodies are never shown, and
// credential headers arrive redacted.

import {h, API, getJSON, setStatus, fmtMs, fmtBytes, notice} from './util.js';

const KEEP = 200;

export function tapPage(main, namespace, name, info) {
  namespace = namespace || 'default';
  name = name || '';
  const nsInput = h('input', {id: 'tap-ns', name: 'namespace', value: namespace, required: true, pattern: '[a-z0-9]([a-z0-9-]*[a-z0-9])?', size: 14});
  const svcSelect = h('select', {id: 'tap-svc', name: 'service'}, h('option', {value: ''}, 'every service'));
  if (name) svcSelect.append(h('option', {value: name, selected: true}, name));
  const dirSelect = h('select', {id: 'tap-dir', name: 'direction'},
    h('option', {value: 'inbound'}, 'requests it receives'), h('option', {value: 'outbound'}, 'calls it makes'));
  const button = h('button', {type: 'submit'}, 'Start');
  const counter = h('p', {class: 'summary'}, 'Not tapping.');
  const body = h('tbody');
  const table = h('table', {class: 'tap', 'aria-labelledby': 'tap-h'},
    h('caption', {}, `The last ${KEEP} requests, newest first.`),
    h('thead', {}, h('tr', {}, ['Time', 'Direction', 'From', 'To', 'Request', 'Status', 'Latency', 'mTLS', 'Bytes in/out', 'Flags'].map((c) => h('th', {scope: 'col'}, c)))),
    body);
  const form = h('form', {class: 'tap-form'},
    h('label', {for: 'tap-ns'}, 'Namespace'), nsInput,
    h('label', {for: 'tap-svc'}, 'Service'), svcSelect,
    h('label', {for: 'tap-dir'}, 'Show'), dirSelect,
    button);
  main.append(h('h1', {id: 'tap-h'}, 'Live tap'),
    h('p', {}, 'Requests of the chosen service as its proxies see them. Request and response bodies are never captured; credential headers are redacted.'),
    info.tap === false ? notice('This control plane has no tap source.', 'warn') : '',
    form, counter, table);

  // The service list comes from the graph.
  getJSON('graph').then((g) => {
    const names = [...new Set(g.nodes.filter((n) => !n.external && n.namespace === nsInput.value).map((n) => n.name))].sort();
    for (const n of names) if (n !== name) svcSelect.append(h('option', {value: n}, n));
  }).catch(() => {});

  let source = null, count = 0;
  function close() {
    if (source) source.close();
    source = null;
    button.textContent = 'Start';
  }
  function open() {
    close();
    const q = new URLSearchParams({namespace: nsInput.value, direction: dirSelect.value});
    if (svcSelect.value) q.set('service', svcSelect.value);
    const target = svcSelect.value ? `${svcSelect.value}.${nsInput.value}` : `every service in ${nsInput.value}`;
    history.replaceState(null, '', `#/tap/${encodeURIComponent(nsInput.value)}${svcSelect.value ? '/' + encodeURIComponent(svcSelect.value) : ''}`);
    count = 0;
    body.replaceChildren();
    counter.textContent = `Tapping ${target}…`;
    source = new EventSource(`${API}tap?${q}`);
    button.textContent = 'Stop';
    source.addEventListener('open', () => setStatus(`live · tapping ${target}`, true));
    source.addEventListener('tap', (m) => {
      const ev = JSON.parse(m.data);
      count++;
      body.prepend(row(ev));
      while (body.rows.length > KEEP) body.deleteRow(-1);
      counter.textContent = `Tapping ${target}: ${count} requests seen.`;
    });
    source.addEventListener('end', (m) => {
      const why = JSON.parse(m.data).reason;
      counter.textContent = `The tap ended: ${why}.`;
      close();
    });
    source.addEventListener('error', () => {
      if (source && source.readyState === EventSource.CLOSED) {
        counter.textContent = 'The tap could not be opened (too many taps, or no tap source).';
        close();
      } else {
        setStatus('tap interrupted; reconnecting…', false);
      }
    });
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (source) { close(); counter.textContent = `Stopped after ${count} requests.`; } else open();
  });
  if (name) open();
  return {stop: close};
}

function row(ev) {
  const status = ev.grpcStatus ? `${ev.status} (grpc ${ev.grpcStatus})` : String(ev.status);
  const cls = ev.status >= 500 || (ev.grpcStatus && ev.grpcStatus !== '0' && ev.grpcStatus !== 'OK') ? 'failing' : ev.status >= 400 ? 'degraded' : 'healthy';
  const headers = Object.entries(ev.requestHeaders || {}).map(([k, v]) => `${k}: ${v.join(', ')}`).join('\n');
  return h('tr', {},
    h('td', {}, new Date(ev.time).toLocaleTimeString()),
    h('td', {}, ev.direction),
    h('td', {}, ev.source || ev.sourceId || 'unknown'),
    h('td', {}, ev.destination || ev.workload),
    h('td', {}, h('code', {title: headers || null}, `${ev.method} ${ev.authority}${ev.path}`)),
    h('td', {}, h('span', {class: `badge h-${cls}`}, status)),
    h('td', {class: 'num'}, fmtMs(ev.durationMs)),
    h('td', {}, ev.mtls ? 'yes' : 'no'),
    h('td', {class: 'num'}, `${fmtBytes(ev.requestBytes)} / ${fmtBytes(ev.responseBytes)}`),
    h('td', {}, (ev.flags || []).join(' ')));
}
