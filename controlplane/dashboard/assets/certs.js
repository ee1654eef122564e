// The mesh's certificates: the roots of the trust bundle and the
// intermediates, how long each has left, the CA's warnings, and the root
// rotation in progress or last completed. Refreshed every five seconds.

import {h, getJSON, poll, fmtTime, fmtDuration, notice} from './util.js';

const STATE_CLASS = {valid: 'healthy', expiring: 'degraded', expired: 'failing'};

export function certsPage(main, info) {
  const head = h('p', {class: 'summary'}, 'Loading the CA…');
  const warnings = h('div');
  const roots = h('section', {'aria-labelledby': 'roots-h'});
  const inters = h('section', {'aria-labelledby': 'inter-h'});
  const rotation = h('section', {'aria-labelledby': 'rotation-h'});
  main.append(h('h1', {}, 'Certificates'), head, warnings, roots, inters, rotation);
  if (info.ca === false) {
    head.replaceChildren(notice('This control plane does not expose its CA.', 'warn'));
    return {stop() {}};
  }
  const stop = poll(async (signal) => {
    const c = await getJSON('certs', signal);
    const now = new Date(c.at).getTime();
    head.replaceChildren(`Trust domain `, h('strong', {}, c.trustDomain), `, ${c.mode} CA. `,
      c.otherSVIDs ? `${c.otherSVIDs} unexpired SVID(s) were signed by a retired root.` : '');
    warnings.replaceChildren(...(c.warnings.length
      ? [h('div', {class: 'warnings', role: 'alert'}, h('h2', {}, 'Warnings'), h('ul', {}, c.warnings.map((w) => h('li', {}, w))))]
      : [h('p', {class: 'ok-line'}, 'No warnings: every CA certificate has more than a third of its lifetime and 30 days left.')]));
    roots.replaceChildren(h('h2', {id: 'roots-h'}, 'Roots (trust bundle)'), certTable(c.roots, now, 'roots-h'));
    inters.replaceChildren(h('h2', {id: 'inter-h'}, 'Intermediates'),
      c.intermediates.length ? certTable(c.intermediates, now, 'inter-h') : notice('None: SVIDs are signed by the root itself.'));
    rotation.replaceChildren(h('h2', {id: 'rotation-h'}, 'Root rotation'), c.rotation ? rotationList(c.rotation, now) : notice('No root rotation has run. Start one with `weft ca rotate`.'));
  }, 5000);
  return {stop};
}

function certTable(list, now, labelledBy) {
  return h('table', {'aria-labelledby': labelledBy, class: 'certs'},
    h('thead', {}, h('tr', {}, ['Subject', 'State', 'Expires', 'Lifetime left', 'Signs SVIDs', 'SVIDs issued', 'Issuer', 'SHA-256'].map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, list.map((c) => {
      const left = new Date(c.notAfter).getTime() - now;
      const pct = Math.round(c.left * 100);
      return h('tr', {'data-cert': c.sha256},
        h('th', {scope: 'row'}, c.subject),
        h('td', {}, h('span', {class: `badge h-${STATE_CLASS[c.state] || 'idle'}`}, c.state)),
        h('td', {}, fmtTime(c.notAfter), h('br'), h('small', {}, left > 0 ? `in ${fmtDuration(left)}` : `${fmtDuration(left)}`)),
        h('td', {}, h('meter', {min: 0, max: 100, low: 34, optimum: 100, value: pct, 'aria-label': `${pct}% of its lifetime left`}), ` ${pct}%`),
        h('td', {}, c.signing ? 'yes' : 'no'),
        h('td', {class: 'num'}, c.svids),
        h('td', {}, c.issuer),
        h('td', {}, h('code', {title: c.sha256}, c.sha256.slice(0, 16) + '…')));
    })));
}

function rotationList(r, now) {
  const item = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  return h('dl', {class: 'rotation'},
    item('Phase', h('strong', {}, r.phase)),
    item('Started', fmtTime(r.started)),
    item('In this phase since', fmtTime(r.phaseSince)),
    r.nextStepBy ? item('Next step by', `${fmtTime(r.nextStepBy)} (in ${fmtDuration(new Date(r.nextStepBy).getTime() - now)})`) : '',
    r.completed ? item('Completed', fmtTime(r.completed)) : '',
    r.outcome ? item('Outcome', r.outcome) : '',
    item('Workloads re-issued', `${r.reissued} of ${r.workloads}`),
    item('Propagation / grace', `${r.propagation} / ${r.grace}`),
    item('Old root', h('code', {}, r.oldRoot)),
    item('New root', h('code', {}, r.newRoot)),
    r.pending && r.pending.length ? item('Still on the old root', h('ul', {}, r.pending.map((p) => h('li', {}, h('code', {}, p))))) : '');
}
