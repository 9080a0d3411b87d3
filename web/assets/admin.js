// The administrator's cards beyond accounts: the signed audit trail,
// verified in the browser by the same Go code as 'fheserve audit verify',
// and the server's health.

import { api, el, state, toast, table } from './app.js';
import { work } from './try.js';

// The pinned audit key and the last checkpoint verified, per server: not
// secrets, evidence.
const store = {
  get key() { return localStorage.getItem('fheserve.audit.key') || ''; },
  set key(v) { localStorage.setItem('fheserve.audit.key', v); },
  get seen() {
    const s = localStorage.getItem('fheserve.audit.checkpoint');
    return s ? Uint8Array.from(atob(s), (c) => c.charCodeAt(0)) : null;
  },
  set seen(b) {
    let s = '';
    for (const x of b) s += String.fromCharCode(x);
    localStorage.setItem('fheserve.audit.checkpoint', btoa(s));
  },
  forget() {
    localStorage.removeItem('fheserve.audit.key');
    localStorage.removeItem('fheserve.audit.checkpoint');
  },
};

function objects(r) {
  return (r.objects || []).map((o) => `${o.kind} ${o.id}`).join(', ');
}

export async function auditCard() {
  const card = el('section', { class: 'card', id: 'audit' }, el('h2', {}, 'Audit trail'));
  const keyInput = el('input', { id: 'audit-key', value: store.key, placeholder: 'the key the operator publishes (empty: trust this server’s on first use)' });
  const verify = el('button', { type: 'button', id: 'audit-verify' }, 'Verify');
  const forget = el('button', { type: 'button', class: 'quiet', id: 'audit-forget' }, 'Forget the pinned key');
  const result = el('div', { id: 'audit-result-box' });
  verify.addEventListener('click', async () => {
    verify.disabled = true;
    result.replaceChildren(el('p', { class: 'muted' }, 'Verifying the signed checkpoint and every record’s proof of inclusion…'));
    try {
      const key = keyInput.value.trim();
      const seen = key === store.key ? store.seen : null;
      const r = await work('verifyAudit', { origin: location.origin, csrf: state.session.csrf_token, key, seen });
      store.key = r.key;
      store.seen = r.note;
      keyInput.value = r.key;
      result.replaceChildren(el('div', { id: 'audit-result', class: 'verified', 'data-ok': 'true', 'data-records': r.records, 'data-tree': r.tree_size },
        el('p', { class: 'notice' }, `Verified: ${r.tree_size} records in the log, root hash ${r.root_hash.slice(0, 16)}…; `,
          `${r.records} record${r.records === 1 ? '' : 's'} proven included.`),
        r.seen_size >= 0 ? el('p', {}, `It extends the log of ${r.seen_size} records verified here before.`) : null,
        r.pinned_now ? el('p', { class: 'warn' }, `The key ${r.key} was pinned on first use: compare it with the key the operator publishes.`) : null));
    } catch (err) {
      result.replaceChildren(el('div', { id: 'audit-result', 'data-ok': 'false' }, el('p', { class: 'error', role: 'alert' }, err.message)));
    } finally {
      verify.disabled = false;
    }
  });
  forget.addEventListener('click', () => {
    store.forget();
    keyInput.value = '';
    toast('The pinned key and checkpoint are forgotten');
  });

  const cp = await fetch('/v1/audit/checkpoint', { credentials: 'same-origin' }).then((r) => (r.ok ? r.text() : ''));
  const size = Number((cp.split('\n')[1] || '0').trim()) || 0;
  const from = Math.max(0, size - 50);
  const page = size ? await api('GET', `/v1/audit/records?from=${from}&limit=50`) : { records: [] };
  const rows = page.records.slice().reverse().map((it) => {
    const r = it.record;
    return el('tr', {}, el('td', { class: 'mono' }, String(it.index)), el('td', { class: 'wide' }, new Date(r.time).toLocaleString()),
      el('td', {}, r.actor || 'system'), el('td', {}, r.action), el('td', { class: 'wide' }, objects(r)),
      el('td', {}, el('span', { class: `badge ${r.outcome === 'ok' ? 'active' : 'rejected'}` }, r.outcome)));
  });
  card.append(
    el('p', { class: 'muted' }, `The ${Math.min(50, size)} latest of ${size} records (newest first). Verify checks the server’s signed checkpoint, that the log only grew since the last check here, and every record’s proof, in this browser.`),
    el('form', { class: 'inline', onsubmit: (ev) => ev.preventDefault() }, el('label', {}, 'Audit key', keyInput), verify, forget),
    result,
    table([['#'], ['Time', 'wide'], ['Actor'], ['Action'], ['Objects', 'wide'], ['Outcome']], rows, 'No record yet.'));
  return card;
}

function metric(text, name) {
  let sum = null;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) {
      sum = (sum || 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

export async function healthCard() {
  const [ready, metrics] = await Promise.all([
    fetch('/readyz', { cache: 'no-store' }).then(async (r) => ({ ok: r.ok, body: await r.json().catch(() => ({})) })),
    fetch('/metrics', { cache: 'no-store' }).then((r) => (r.ok ? r.text() : '')),
  ]);
  const m = (name) => metric(metrics, name);
  const started = m('process_start_time_seconds');
  const up = started ? (Date.now() / 1000 - started) : null;
  const rows = [
    ['Status', el('span', { id: 'health-status', class: ready.ok ? 'notice' : 'error' }, ready.ok ? 'ready' : (ready.body.message || 'not ready'))],
    ['Jobs waiting', m('fheserve_job_queue_depth')],
    ['Jobs finished', m('fheserve_jobs_finished_total')],
    ['Active key sets', m('fheserve_keysets_active')],
    ['Uploads in progress', m('fheserve_uploads_in_progress')],
    ['Memory', m('process_resident_memory_bytes') !== null ? `${(m('process_resident_memory_bytes') / (1 << 20)).toFixed(0)} MB resident` : null],
    ['Up for', up !== null ? `${Math.floor(up / 3600)} h ${Math.floor((up % 3600) / 60)} min` : null],
  ].filter(([, v]) => v !== null && v !== undefined);
  return el('section', { class: 'card', id: 'health' }, el('h2', {}, 'Server health'),
    el('dl', { class: 'facts' }, rows.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v instanceof Node ? v : String(v))])));
}
