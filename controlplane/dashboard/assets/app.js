// The dashboard's router: one page at a time in <main>, chosen by the URL's
// hash (#/, #/service/<namespace>/<name>, #/tap[/<namespace>[/<name>]],
// #/certs). Each page polls or streams while it is shown and stops when left.

import {getJSON, setStatus} from './util.js';
import {graphPage} from './graph.js';
import {servicePage} from './service.js';
import {tapPage} from './tap.js';
import {certsPage} from './certs.js';

const main = document.getElementById('main');
let current = null;
let info = {};

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [page, ...args] = parts;
  if (current) current.stop();
  main.replaceChildren();
  let nav = 'graph';
  switch (page) {
    case 'service':
      current = servicePage(main, args[0], args[1], info);
      break;
    case 'tap':
      nav = 'tap';
      current = tapPage(main, args[0], args[1], info);
      break;
    case 'certs':
      nav = 'certs';
      current = certsPage(main, info);
      break;
    default:
      current = graphPage(main, info);
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function start() {
  try {
    info = await getJSON('info');
    if (info.version) document.getElementById('version').textContent = `Control plane ${info.version}.`;
  } catch (e) {
    setStatus(`cannot reach the control plane: ${e.message}`, false);
  }
  window.addEventListener('hashchange', () => { route(); main.focus({preventScroll: true}); });
  route();
}

start();
