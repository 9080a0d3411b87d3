// The "try it" page: keys generated in the browser (the Web Worker keeps
// the secret key in IndexedDB), an input from a .npy file or a form,
// encrypted, evaluated by the server, decrypted here and shown as a bar
// chart. Only public and evaluation keys and ciphertexts are sent.

import { api, el, state, toast, table, badge } from './app.js';
import { facePage } from './face.js';

let worker;
let seq = 0;
const waiting = new Map();

// work asks the worker to run op and returns a promise of its result;
// onProgress sees its progress reports.
export function work(op, args, onProgress) {
  if (!worker) {
    worker = new Worker('/assets/worker.js');
    worker.onmessage = (ev) => {
      const { id, progress, result, error } = ev.data;
      const w = waiting.get(id);
      if (!w) return;
      if (progress) return w.onProgress && w.onProgress(progress);
      waiting.delete(id);
      if (error !== undefined) w.reject(new Error(error));
      else w.resolve(result);
    };
    worker.onerror = (ev) => {
      for (const w of waiting.values()) w.reject(new Error(ev.message || 'the worker failed'));
      waiting.clear();
      worker = undefined;
    };
  }
  const id = ++seq;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject, onProgress });
    worker.postMessage({ id, op, args });
  });
}

const stages = {
  load: 'Loading the encryption client',
  plan: 'Fetching and checking the plan',
  keygen: 'Generating keys in this browser',
  upload: 'Uploading the public and evaluation keys',
  encrypt: 'Encrypting the input in this browser',
  evaluate: 'The server evaluates the encrypted input',
  wait: 'Waiting for the server',
  face: 'Finding faces and computing their embeddings',
};

// progressBox shows a stage and a bar: counted when total > 0.
export function progressBox(id) {
  const bar = el('progress', { id: `${id}-bar` });
  const text = el('span', { id: `${id}-text`, class: 'muted' });
  const box = el('div', { class: 'progress', id, hidden: true }, bar, text);
  box.report = (p) => {
    box.hidden = false;
    // The last count of each stage stays on the box, for the tests.
    if (p.total > 0) box.dataset[p.stage] = `${p.done}/${p.total}`;
    text.textContent = stages[p.stage] || p.stage;
    if (p.total > 0 && p.stage !== 'upload') {
      bar.max = p.total;
      bar.value = p.done;
      const pct = Math.floor((100 * p.done) / p.total);
      text.textContent += p.stage === 'keygen'
        ? `: ${pct}% (${p.done} of ${p.total} evaluation keys)`
        : ` (${p.done} of ${p.total})`;
    } else {
      bar.removeAttribute('value');
    }
  };
  box.done = () => { box.hidden = true; };
  return box;
}

const size = (shape) => (shape || []).reduce((a, b) => a * b, 1);

function mb(n) {
  return `${(n / (1 << 20)).toFixed(1)} MB`;
}

// parseNpy reads a little-endian float or integer .npy file into numbers.
export function parseNpy(buf) {
  const b = new Uint8Array(buf);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (b.length < 10 || !magic.every((m, i) => b[i] === m)) throw new Error('not a .npy file');
  const dv = new DataView(buf);
  const v1 = b[6] === 1;
  const hlen = v1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = (v1 ? 10 : 12) + hlen;
  const header = new TextDecoder().decode(b.subarray(v1 ? 10 : 12, start));
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shape) throw new Error('the .npy header has no descr or shape');
  if (/'fortran_order':\s*True/.test(header)) throw new Error('Fortran-ordered .npy files are not supported');
  const dims = shape[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const types = { '<f4': Float32Array, '<f8': Float64Array, '<i4': Int32Array, '|u1': Uint8Array, '<i8': BigInt64Array };
  const T = types[descr[1]];
  if (!T) throw new Error(`.npy type ${descr[1]} is not supported (use float32 or float64)`);
  const n = size(dims);
  const data = new T(buf.slice(start, start + n * T.BYTES_PER_ELEMENT));
  if (data.length !== n) throw new Error('the .npy file is truncated');
  return { shape: dims, values: Float64Array.from(data, Number) };
}

function facts(m) {
  const row = (k, v) => [el('dt', {}, k), el('dd', {}, v)];
  return el('dl', { class: 'facts' },
    row('Input', m.input_shape.join(' × ')),
    row('Output', m.output_shape.join(' × ')),
    ...((m.labels || []).length ? [row('Classes', el('span', { id: 'model-labels' }, m.labels.join(', ')))] : []),
    row('Packing', m.packing),
    row('Ring', `N = 2^${m.log_n}`),
    row('Rotation keys', String(m.rotations)),
    row('Expected error', `± ${m.output_error.toPrecision(2)}`));
}

// chart draws one sample's outputs as bars, the largest marked.
function chart(values, labels) {
  const top = values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
  const scale = Math.max(...values.map(Math.abs)) || 1;
  const name = (i) => (labels && labels[i]) || (values.length === 1 ? 'score' : `class ${i}`);
  const rows = Array.from(values, (v, i) => {
    const fill = el('span', { class: `fill${v < 0 ? ' neg' : ''}` });
    fill.style.width = `${(Math.abs(v) / scale) * 100}%`;
    return el('div', { class: `barrow${i === top ? ' top' : ''}`, 'data-class': i, 'data-score': v },
      el('span', { class: 'label' }, name(i)), el('span', { class: 'track' }, fill),
      el('span', { class: 'value mono' }, v.toFixed(3)));
  });
  const verdict = values.length === 1
    ? el('p', { id: 'prediction', class: 'verdict', 'data-label': values[0] > 0.5 ? 1 : 0 }, `Score ${values[0].toFixed(3)}`)
    : el('p', { id: 'prediction', class: 'verdict', 'data-label': top }, `Predicted: ${name(top)}`);
  return el('div', { id: 'result' }, verdict, el('div', { class: 'bars' }, rows));
}

export async function tryPage(main, id) {
  const acct = state.session.account;
  const [m, p] = await Promise.all([api('GET', `/v1/models/${encodeURIComponent(id)}`), api('GET', `/v1/models/${encodeURIComponent(id)}/plan`)]);
  document.title = `Try ${m.name} · fheserve`;
  if (p.decision) return facePage(main, m);
  const inputSize = size(m.input_shape);
  const outputSize = size(m.output_shape);
  const session = () => ({ origin: location.origin, csrf: state.session.csrf_token, model: m.id, username: acct.username });
  const runButton = el('button', { type: 'button', id: 'predict', disabled: true }, 'Encrypt and predict');
  let input = null;
  const keys = keySection(m, session, () => ready());
  const ready = () => { runButton.disabled = !(keys.current() && input); };

  // Input.
  const inputStatus = el('p', { id: 'input-status', class: 'muted' }, 'No input yet.');
  const setInput = (values, from) => {
    input = values;
    inputStatus.textContent = `${inputSize} values from ${from}.`;
    ready();
  };
  const file = el('input', { type: 'file', id: 'npy', accept: '.npy' });
  file.addEventListener('change', async () => {
    const f = file.files[0];
    if (!f) return;
    try {
      const { values } = parseNpy(await f.arrayBuffer());
      if (values.length < inputSize || values.length % inputSize !== 0) {
        throw new Error(`the file holds ${values.length} values; the model takes ${inputSize} per sample`);
      }
      const n = values.length / inputSize;
      setInput(values.slice(0, inputSize), n > 1 ? `${f.name} (the first of ${n} samples)` : f.name);
    } catch (err) {
      input = null;
      inputStatus.textContent = err.message;
      ready();
    }
  });
  const inputParts = [el('label', {}, 'Upload a .npy file (float32 or float64, shape ', m.input_shape.join(' × '), ')', file)];
  if (inputSize <= 64) {
    const boxes = Array.from({ length: inputSize }, (_, i) => el('input', { type: 'number', step: 'any', value: '0', 'aria-label': `value ${i}`, 'data-index': i }));
    const use = el('button', { type: 'button', class: 'quiet', id: 'use-form' }, 'Use these values');
    use.addEventListener('click', () => setInput(Float64Array.from(boxes, (b) => Number(b.value) || 0), 'the form'));
    inputParts.push(el('p', { class: 'muted' }, 'or type the values:'), el('div', { class: 'grid-inputs' }, boxes), use);
  }

  if (inputSize === 784) inputParts.push(drawBox(setInput));

  // Prediction.
  const runProgress = progressBox('predict-progress');
  const result = el('div', { id: 'result-box' });
  runButton.addEventListener('click', async () => {
    runButton.disabled = true;
    result.replaceChildren();
    try {
      const r = await work('predict', { ...session(), key_set_id: keys.current().key_set_id, input, samples: 1 }, runProgress.report);
      result.replaceChildren(chart(Array.from(r.output.slice(0, outputSize)), m.labels),
        el('p', { class: 'muted' }, `Encrypted in ${r.encrypt_ms.toFixed(0)} ms, evaluated by the server in ${r.evaluate_ms.toFixed(0)} ms, `,
          `decrypted in ${r.decrypt_ms.toFixed(0)} ms; sent ${mb(r.upload_bytes)}, received ${mb(r.result_bytes)}.`));
    } catch (err) {
      result.replaceChildren(el('p', { class: 'error', role: 'alert' }, err.message));
    } finally {
      runProgress.done();
      ready();
    }
  });

  main.replaceChildren(
    el('p', {}, el('a', { href: '#/' }, '← Models')),
    el('h1', {}, `Try ${m.name} `, el('span', { class: 'muted' }, `v${m.version} by ${m.owner}`)),
    el('section', { class: 'card' }, el('h2', {}, 'The model'), facts(m),
      el('p', { class: 'muted' }, 'Your input is encrypted in this browser; the server computes on the ciphertext and never sees the input or the result.')),
    keys.node,
    el('section', { class: 'card', id: 'input' }, el('h2', {}, '2. Input'), ...inputParts, inputStatus),
    el('section', { class: 'card', id: 'run' }, el('h2', {}, '3. Predict'), el('div', { class: 'row' }, runButton), runProgress, result));
  await keys.show();
}

// keySection is the keys card of a model's page: the key set this
// browser holds the secret key of, its revocation, key generation with
// progress, and a word on the user's key sets made elsewhere. onChange
// runs when the key set in use changes.
export function keySection(m, session, onChange) {
  const keyList = el('div', { id: 'keylist' });
  const keyProgress = progressBox('keygen-progress');
  const keygen = el('button', { type: 'button', id: 'keygen' }, 'Generate keys');
  let current = null;

  async function showKeys() {
    const [held, server] = await Promise.all([work('keys', session()), api('GET', '/v1/keysets')]);
    const active = new Set(server.keysets.filter((k) => k.model_id === m.id && k.status === 'active').map((k) => k.id));
    const usable = held.filter((k) => active.has(k.key_set_id)).sort((a, b) => b.created.localeCompare(a.created));
    current = usable[0] || null;
    const held_ = new Set(held.map((k) => k.key_set_id));
    const elsewhere = [...active].filter((k) => !held_.has(k)).length;
    const revoke = el('button', { type: 'button', class: 'danger', id: 'revoke' }, 'Revoke');
    revoke.addEventListener('click', async () => {
      revoke.disabled = true;
      try {
        await api('DELETE', `/v1/keysets/${encodeURIComponent(current.key_set_id)}`);
        await work('forget', { key_set_id: current.key_set_id });
        toast('Key set revoked and its secret key deleted from this browser');
      } catch (err) {
        toast(err.message);
      }
      await showKeys();
    });
    keyList.replaceChildren(el('div', {}, usable.length === 0
      ? el('p', { class: 'empty' }, 'This browser holds no keys for this model yet.')
      : el('div', { class: 'row' }, el('p', {}, 'Using key set ', el('code', { id: 'keyset' }, current.key_set_id),
        el('span', { class: 'muted' }, ` made here ${new Date(current.created).toLocaleString()}, fingerprint ${current.fingerprint.slice(0, 16)}…`)), revoke),
      elsewhere ? el('p', { class: 'muted', id: 'keys-elsewhere' },
        `${elsewhere} other active key set${elsewhere === 1 ? '' : 's'} of yours for this model ${elsewhere === 1 ? 'was' : 'were'} not made in this browser (the command line, another browser). If you did not make ${elsewhere === 1 ? 'it' : 'them'}, revoke ${elsewhere === 1 ? 'it' : 'them'} from your key sets.`) : null));
    onChange();
  }

  keygen.addEventListener('click', async () => {
    keygen.disabled = true;
    try {
      const r = await work('keygen', session(), keyProgress.report);
      toast(`Keys made in ${(r.keygen_ms / 1000).toFixed(1)} s; ${mb(r.upload_bytes)} uploaded`);
      await showKeys();
    } catch (err) {
      toast(err.message);
    } finally {
      keyProgress.done();
      keygen.disabled = false;
    }
  });

  const large = m.log_n >= 15 ? ' For this model they are large (about 100 MB): generating and uploading them takes a while.' : '';
  return {
    node: el('section', { class: 'card', id: 'keys' }, el('h2', {}, '1. Keys'),
      el('p', { class: 'muted' }, `The secret key is made and kept in this browser; only the public and evaluation keys go to the server.${large}`),
      keyList, el('div', { class: 'row' }, keygen), keyProgress),
    current: () => current,
    show: showKeys,
  };
}

// keysCard lists the user's key sets, says which this browser holds the
// secret key of, and revokes them.
export async function keysCard(container) {
  const card = el('section', { class: 'card', id: 'keysets' }, el('h2', {}, 'Your key sets'));
  container.append(card);
  const reload = async () => {
    const [{ keysets }, { models }, held] = await Promise.all([
      api('GET', '/v1/keysets'), api('GET', '/v1/models'),
      work('held', { username: state.session.account.username }).catch(() => []),
    ]);
    const names = new Map(models.map((m) => [m.id, `${m.name} v${m.version}`]));
    const here = new Set(held);
    card.replaceChildren(el('h2', {}, 'Your key sets'), table(
      [['Key set'], ['Model'], ['Made', 'wide'], ['Secret key'], ['Status'], ['']],
      keysets.map((k) => el('tr', {}, el('td', { class: 'mono' }, k.id), el('td', {}, names.get(k.model_id) || k.model_id),
        el('td', { class: 'wide' }, new Date(k.created_at).toLocaleString()),
        el('td', {}, here.has(k.id) ? 'in this browser' : 'elsewhere'), el('td', {}, badge(k.status)),
        el('td', { class: 'actions' }, k.status === 'active' ? el('button', {
          type: 'button', class: 'danger', 'data-keyset': k.id,
          onclick: async () => {
            try {
              await api('DELETE', `/v1/keysets/${encodeURIComponent(k.id)}`);
              if (here.has(k.id)) await work('forget', { key_set_id: k.id });
              toast(`${k.id} revoked`);
            } catch (err) {
              toast(err.message);
            }
            reload();
          },
        }, 'Revoke') : null))),
      'No key set yet: “Try it” on a model makes one in this browser.'));
  };
  await reload();
}

// drawBox lets the user draw a 28 x 28 image, white on black as MNIST's
// are, scaled to [0, 1] and then normalized as the model was trained.
function drawBox(setInput) {
  const canvas = el('canvas', { class: 'draw', id: 'draw', width: 280, height: 280 });
  const g = canvas.getContext('2d');
  const blank = () => { g.fillStyle = '#000'; g.fillRect(0, 0, 280, 280); };
  blank();
  let last = null;
  const at = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * (280 / r.width), (ev.clientY - r.top) * (280 / r.height)];
  };
  canvas.addEventListener('pointerdown', (ev) => { last = at(ev); canvas.setPointerCapture(ev.pointerId); });
  canvas.addEventListener('pointermove', (ev) => {
    if (!last) return;
    const p = at(ev);
    g.strokeStyle = '#fff';
    g.lineWidth = 24;
    g.lineCap = 'round';
    g.beginPath();
    g.moveTo(...last);
    g.lineTo(...p);
    g.stroke();
    last = p;
  });
  const up = () => { last = null; };
  canvas.addEventListener('pointerup', up);
  canvas.addEventListener('pointercancel', up);
  const mean = el('input', { type: 'number', step: 'any', value: '0', id: 'draw-mean' });
  const std = el('input', { type: 'number', step: 'any', value: '1', id: 'draw-std' });
  const use = el('button', { type: 'button', class: 'quiet', id: 'use-drawing' }, 'Use the drawing');
  const clearButton = el('button', { type: 'button', class: 'quiet' }, 'Clear');
  clearButton.addEventListener('click', blank);
  use.addEventListener('click', () => {
    const small = el('canvas', { width: 28, height: 28 });
    const sg = small.getContext('2d');
    sg.imageSmoothingQuality = 'high';
    sg.drawImage(canvas, 0, 0, 28, 28);
    const px = sg.getImageData(0, 0, 28, 28).data;
    const m = Number(mean.value) || 0;
    const s = Number(std.value) || 1;
    setInput(Float64Array.from({ length: 784 }, (_, i) => (px[4 * i] / 255 - m) / s), 'the drawing');
  });
  return el('div', { class: 'drawbox' },
    el('p', { class: 'muted' }, 'or draw an image (white on black):'), canvas,
    el('div', { class: 'two' }, el('label', {}, 'Normalize: mean', mean), el('label', {}, 'standard deviation', std)),
    el('p', { class: 'muted' }, 'Pixels are scaled to [0, 1], then (x − mean) / standard deviation, as the model was trained (the bundled Fashion-MNIST models: 0.2860 and 0.3530).'),
    el('div', { class: 'row' }, use, clearButton));
}
