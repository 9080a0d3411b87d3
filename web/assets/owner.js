// The owner's pages: deploying a model with its compile report shown
// before the owner confirms, and each model's plan, usage, access list
// and limits.

import { api, apiForm, el, state, toast, table, badge } from './app.js';
import { galleryCreateCard, galleryCard } from './gallery.js';

const kb = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${(n / 1024).toFixed(1)} KB`);
const ms = (v) => `${v.toFixed(0)} ms`;

function dl(rows) {
  return el('dl', { class: 'facts' }, rows.filter(Boolean).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

// planReport shows what 'fheserve compile' prints: ring and security,
// depth and scale, layouts, keys, sizes, precision and privacy, warnings.
export function planReport(p) {
  const secure = p.log_qp <= p.security_bound;
  const rots = p.rotations || [];
  const pr = p.precision || {};
  return el('div', { class: 'report', id: 'report', 'data-fingerprint': p.fingerprint },
    dl([
      ['Model', `${p.model} (${p.packing} packing, up to ${p.batch_size} sample${p.batch_size === 1 ? '' : 's'} per call)`],
      ['Ring', `N = 2^${p.params.log_n} (${(1 << (p.params.log_n - 1)).toLocaleString()} slots)`],
      ['Security', el('span', { class: secure ? 'notice' : 'error' },
        `log QP = ${p.log_qp.toFixed(1)} bits, bound ${p.security_bound} for 128-bit security (${secure ? 'secure' : 'NOT secure'})`)],
      ['Moduli', `q: ${p.params.log_q.join(', ')} bits; p: ${p.params.log_p.join(', ')} bits`],
      ['Depth', `${p.depth} levels, scale 2^${p.params.log_default_scale}`],
      ['Input', `${p.input_shape.join(' × ')} in ${p.input.ciphertexts} ciphertext${p.input.ciphertexts === 1 ? '' : 's'} (${p.input.encoding}), level ${p.input.level}`],
      ['Output', `${p.output_shape.join(' × ')} in ${p.output.ciphertexts} ciphertext${p.output.ciphertexts === 1 ? '' : 's'}${p.head ? `, then ${p.head} on the device` : ''}`],
      ['Keys', `${p.relin ? 'relinearization key and ' : ''}${rots.length} rotation key${rots.length === 1 ? '' : 's'}${rots.length ? `: ${rots.join(' ')}` : ''}`],
      ['Upload per call', kb(p.sizes.upload)],
      ['Result per call', kb(p.sizes.result)],
      ['Evaluation keys', `${kb(p.sizes.eval_keys)} (sent once)`],
      ['Public key', kb(p.sizes.public_key)],
      ['Precision', `largest output error ± ${(pr.output_error || 0).toPrecision(3)} (output bound ${(pr.output_bound || 0).toPrecision(3)})`],
      ['Privacy', `${pr.privacy_bits || 0} bits over ${(pr.query_budget || 0).toLocaleString()} samples (noise flooding ${(pr.flood_bits || 0).toFixed(1)} bits)`],
      ['Activations', (p.activations || []).length === 0 ? 'none approximated'
        : p.activations.map((a) => `${a.node}: ${a.func} degree ${a.degree} on [${a.interval.map((x) => x.toPrecision(3)).join(', ')}] (${a.source})`).join('; ')],
      // A gallery's outputs are match decisions, named by its templates.
      p.decision ? null : ['Labels', (p.labels || []).length
        ? el('span', { id: 'report-labels' }, p.labels.join(', '))
        : 'none: scores are shown by index (give a .txt file, one label per output, or labels in the ONNX metadata)'],
      ['Fingerprint', el('code', { class: 'mono wrap' }, p.fingerprint)],
    ]),
    (p.warnings || []).length ? el('ul', { class: 'warnings' }, p.warnings.map((w) => el('li', {}, w))) : null);
}

// The compile settings an owner may change ('fheserve compile' flags),
// by their JSON names; empty means the compiler's default.
const settings = [
  ['degree', 'int', 'Activation degree', '7'],
  ['fit', 'text', 'Fit', ''],
  ['margin', 'float', 'Interval margin', '0.1'],
  ['log_n', 'int', 'Ring degree log2 N', 'smallest that fits'],
  ['precision_bits', 'float', 'Precision bits', '8'],
  ['precision', 'float', 'Precision (absolute error)', ''],
  ['privacy_bits', 'float', 'Privacy bits', '30'],
  ['query_budget', 'int', 'Query budget (samples)', '16384'],
  ['keys', 'text', 'Rotation keys', ''],
  ['no_tiles', 'bool', 'One sample per latency call', ''],
];

function settingsBox() {
  const field = ([key, kind, label, placeholder]) => {
    const id = `deploy-${key}`;
    if (kind === 'bool') return el('label', { class: 'check' }, el('input', { type: 'checkbox', id }), label);
    if (key === 'fit') {
      return el('label', {}, label, el('select', { id }, el('option', { value: '' }, 'chosen from the calibration data'),
        el('option', { value: 'interpolation' }, 'interpolation'), el('option', { value: 'least-squares' }, 'least squares')));
    }
    if (key === 'keys') {
      return el('label', {}, label, el('select', { id }, el('option', { value: '' }, 'small: fewest key bytes'),
        el('option', { value: 'fast' }, 'fast: fewest rotations')));
    }
    return el('label', {}, label, el('input', { type: 'number', id, min: 0, step: kind === 'int' ? 1 : 'any', placeholder }));
  };
  return el('details', { class: 'settings' }, el('summary', {}, 'Compile settings'),
    el('div', { class: 'grid-limits' }, settings.map(field)),
    el('p', { class: 'muted' }, 'As fheserve compile’s flags; empty fields keep the defaults. Each bit of precision given up buys two bits of privacy.'));
}

// labelsOf reads a labels file: one label per line, blank lines at the
// end dropped; the server checks them against the model's outputs.
export async function labelsOf(file) {
  const lines = (await file.text()).replace(/\r\n?/g, '\n').split('\n').map((l) => l.trim());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

async function deployForm(form) {
  const fd = new FormData();
  const v = (id) => form.querySelector(`#${id}`);
  const allow = v('deploy-allow').value.split(/[\s,]+/).filter(Boolean);
  const meta = { name: v('deploy-name').value.trim(), packing: v('deploy-packing').value };
  if (allow.length) meta.allow = allow;
  const labels = v('deploy-labels').files[0];
  if (labels) meta.labels = await labelsOf(labels);
  for (const [key, kind] of settings) {
    const input = v(`deploy-${key}`);
    if (kind === 'bool') {
      if (input.checked) meta[key] = true;
    } else if (input.value !== '') {
      meta[key] = kind === 'text' ? input.value : Number(input.value);
    }
  }
  fd.append('metadata', new Blob([JSON.stringify(meta)], { type: 'application/json' }));
  const onnx = v('deploy-onnx').files[0];
  if (!onnx) throw new Error('choose the ONNX model file');
  fd.append('model', onnx, onnx.name);
  const calib = v('deploy-calib').files[0];
  if (calib) fd.append('calibration', calib, calib.name);
  return fd;
}

function deployCard(reload) {
  const error = el('p', { class: 'error', role: 'alert', hidden: true });
  const reportBox = el('div', { id: 'report-box' });
  const compile = el('button', { type: 'submit', id: 'compile' }, 'Compile');
  const confirm = el('button', { type: 'button', id: 'confirm', class: 'ok', hidden: true }, 'Deploy');
  const form = el('form', { id: 'deploy', novalidate: true },
    el('label', {}, 'Name', el('input', { id: 'deploy-name', required: true, pattern: '[A-Za-z0-9_.\\-]{1,64}' })),
    el('div', { class: 'two' },
      el('label', {}, 'ONNX model', el('input', { type: 'file', id: 'deploy-onnx', accept: '.onnx' })),
      el('label', {}, 'Calibration inputs (.npy, optional)', el('input', { type: 'file', id: 'deploy-calib', accept: '.npy' }))),
    el('div', { class: 'two' },
      el('label', {}, 'Packing', el('select', { id: 'deploy-packing' },
        el('option', { value: 'latency' }, 'latency: one sample per call, fastest'),
        el('option', { value: 'batch' }, 'batch: many samples per call'))),
      el('label', {}, 'Users allowed (empty: every approved user)', el('input', { id: 'deploy-allow', placeholder: 'ulrich, ursula' }))),
    el('label', {}, 'Class labels (.txt, one per output, optional: else the ONNX file’s)',
      el('input', { type: 'file', id: 'deploy-labels', accept: '.txt,text/plain' })),
    settingsBox(),
    error, el('div', { class: 'row' }, compile, confirm), reportBox);
  let previewed = null;
  const fail = (err) => { error.textContent = err.message; error.hidden = false; };
  form.addEventListener('input', () => { previewed = null; confirm.hidden = true; });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    compile.disabled = true;
    reportBox.replaceChildren(el('p', { class: 'muted' }, 'Compiling…'));
    try {
      previewed = await apiForm('POST', '/portal/compile', await deployForm(form));
      reportBox.replaceChildren(el('h3', {}, 'Compile report'), planReport(previewed));
      confirm.hidden = false;
    } catch (err) {
      reportBox.replaceChildren();
      fail(err);
    } finally {
      compile.disabled = false;
    }
  });
  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    try {
      const m = await apiForm('POST', '/v1/models', await deployForm(form));
      if (m.plan_fingerprint !== previewed.fingerprint) {
        toast(`Deployed ${m.name} v${m.version}, but its plan differs from the report: check it below`);
      } else {
        toast(`Deployed ${m.name} v${m.version}`);
      }
      form.reset();
      reportBox.replaceChildren();
      confirm.hidden = true;
      await reload();
    } catch (err) {
      fail(err);
    } finally {
      confirm.disabled = false;
    }
  });
  return el('section', { class: 'card', id: 'deploy-card' }, el('h2', {}, 'Deploy a model'),
    el('p', { class: 'muted' }, 'The server compiles the model and shows its plan; nothing is deployed until you confirm.'), form);
}

export async function ownerHome(container) {
  const models = el('section', { class: 'card', id: 'models' }, el('h2', {}, 'Your models'));
  const reload = async () => {
    const { models: list } = await api('GET', '/v1/models');
    models.replaceChildren(el('h2', {}, 'Your models'), table(
      [['Name'], ['Version', 'wide'], ['Input'], ['Output'], ['Ring', 'wide'], ['Users', 'wide'], ['Status'], ['']],
      list.map((m) => el('tr', {}, el('td', {}, m.name), el('td', { class: 'wide' }, `v${m.version}`),
        el('td', {}, m.input_shape.join(' × ')), el('td', {}, m.output_shape.join(' × ')),
        el('td', { class: 'wide' }, `N = 2^${m.log_n}`), el('td', { class: 'wide' }, (m.allow || []).join(', ') || 'everyone'),
        el('td', {}, badge(m.status)),
        el('td', { class: 'actions' }, el('a', { href: `#/model/${encodeURIComponent(m.id)}`, 'data-model': m.name, class: 'try' }, 'Details')))),
      'No model deployed yet.'));
  };
  container.append(deployCard(reload), galleryCreateCard(reload), models);
  await reload();
}

function bars(lines, value, label) {
  const top = Math.max(1, ...lines.map(value));
  return el('div', { class: 'bars' }, lines.map((l) => {
    const fill = el('span', { class: 'fill' });
    fill.style.width = `${(value(l) / top) * 100}%`;
    return el('div', { class: 'barrow' }, el('span', { class: 'label' }, label(l)), el('span', { class: 'track' }, fill),
      el('span', { class: 'value mono' }, String(value(l))));
  }));
}

function usageCard(u) {
  const causes = Object.entries(u.failures_by_cause || {});
  const lat = u.latency_ms;
  return el('section', { class: 'card', id: 'usage' }, el('h2', {}, 'Usage'),
    dl([
      ['Requests', `${u.requests} (${u.samples} samples), ${u.failures} failed`],
      ['Latency', u.requests ? `p50 ${ms(lat.p50)}, p90 ${ms(lat.p90)}, p99 ${ms(lat.p99)}, max ${ms(lat.max)}` : '—'],
      ['Evaluation', u.requests ? `p50 ${ms(u.evaluation_ms.p50)}, p90 ${ms(u.evaluation_ms.p90)}` : '—'],
      ['Quota', u.quota.summary],
    ]),
    el('h3', {}, 'Requests per day'),
    (u.by_day || []).length ? bars(u.by_day, (l) => l.requests, (l) => l.key) : el('p', { class: 'empty' }, 'No request yet.'),
    el('h3', {}, 'Requests per user'),
    (u.by_user || []).length ? bars(u.by_user, (l) => l.requests, (l) => l.key) : el('p', { class: 'empty' }, 'No request yet.'),
    causes.length ? [el('h3', {}, 'Failures by cause'), bars(causes.map(([k, n]) => ({ key: k, n })), (l) => l.n, (l) => l.key)] : null);
}

function accessCard(m, reload) {
  const input = el('input', { id: 'access-allow', value: (m.allow || []).join(', '), placeholder: 'empty: every approved user' });
  const save = el('button', { type: 'submit', id: 'access-save' }, 'Save');
  const form = el('form', { class: 'inline' }, el('label', {}, 'Users allowed', input), save);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('PUT', `/v1/models/${encodeURIComponent(m.id)}/access`, { allow: input.value.split(/[\s,]+/).filter(Boolean) });
      toast('Access saved');
      reload();
    } catch (err) {
      toast(err.message);
    }
  });
  return el('section', { class: 'card', id: 'access' }, el('h2', {}, 'Access'), form);
}

function limitsCard(m, reload) {
  const fields = [
    ['rate_per_minute', 'Per user: samples a minute'], ['burst', 'Per user: burst'], ['daily', 'Per user: samples a day'],
    ['model_rate_per_minute', 'All users: samples a minute'], ['model_burst', 'All users: burst'], ['model_daily', 'All users: samples a day'],
  ];
  const inputs = Object.fromEntries(fields.map(([k]) => [k, el('input', { type: 'number', min: 0, step: 'any', id: `limit-${k}`, value: m.limits[k] || '' })]));
  const form = el('form', {}, el('div', { class: 'grid-limits' }, fields.map(([k, label]) => el('label', {}, label, inputs[k]))),
    el('p', { class: 'muted' }, 'Empty: no limit. Limits count samples; a job larger than a burst is refused.'),
    el('div', { class: 'row' }, el('button', { type: 'submit', id: 'limits-save' }, 'Save limits')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [k] of fields) {
      const v = Number(inputs[k].value);
      if (inputs[k].value !== '' && v > 0) body[k] = k.includes('rate') ? v : Math.round(v);
    }
    try {
      await api('PUT', `/v1/models/${encodeURIComponent(m.id)}/limits`, body);
      toast('Limits saved');
      reload();
    } catch (err) {
      toast(err.message);
    }
  });
  return el('section', { class: 'card', id: 'limits' }, el('h2', {}, 'Limits and quotas'), form);
}

export async function modelPage(main, id) {
  const reload = () => modelPage(main, id);
  const path = `/v1/models/${encodeURIComponent(id)}`;
  const [m, p, u] = await Promise.all([api('GET', path), api('GET', `${path}/plan`), api('GET', `${path}/usage`)]);
  document.title = `${m.name} · fheserve`;
  const retire = el('button', { type: 'button', class: 'danger', id: 'retire' }, 'Retire');
  retire.addEventListener('click', async () => {
    if (!window.confirm(`Retire ${m.name} v${m.version}? Users can no longer make keys or run jobs on it.`)) return;
    try {
      await api('POST', `${path}/retire`);
      toast('Retired');
      reload();
    } catch (err) {
      toast(err.message);
    }
  });
  const own = m.status === 'active' && m.owner === state.session.account.username;
  const gallery = own && p.decision ? await galleryCard(id, reload) : null;
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/' }, '← Models')),
    el('h1', {}, `${m.name} `, el('span', { class: 'muted' }, `v${m.version}`), ' ', badge(m.status)),
    ...(gallery ? [gallery] : []),
    el('section', { class: 'card', id: 'plan' }, el('h2', {}, 'Plan'), planReport({ ...p, labels: m.labels })),
    usageCard(u),
    ...(own
      ? [accessCard(m, reload), limitsCard(m, reload), el('section', { class: 'card' }, el('h2', {}, 'Retire'),
        el('p', { class: 'muted' }, 'A retired model keeps its records; no new keys or jobs.'), retire)]
      : []));
}
