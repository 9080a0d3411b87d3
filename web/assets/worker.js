// The portal's Web Worker: it runs the Go client (cmd/fheserve-wasm) so
// that key generation and encryption never block the page, and it alone
// touches the secret keys, which it keeps in this browser's IndexedDB.
// The page asks it, by message, to generate keys, to list or forget the
// keys it holds, and to predict; it answers with results and progress,
// never with a secret key.
// Without the client built into the server, the keys held here can still
// be listed and forgotten.
let missing = null;
try {
  importScripts('/assets/wasm/wasm_exec.js');
} catch (err) {
  missing = new Error('this server was built without the browser’s encryption client: run “go generate ./web” and build it again');
}

let client;

// load starts the Go client once.
function load(progress) {
  if (missing) return Promise.reject(missing);
  if (!client) {
    client = (async () => {
      progress({ stage: 'load', done: 0, total: 0 });
      const go = new Go();
      const resp = fetch('/assets/wasm/fheserve.wasm');
      const r = await resp;
      if (!r.ok) throw new Error(await r.text());
      const { instance } = await WebAssembly.instantiateStreaming(r, go.importObject);
      go.run(instance);
      return globalThis.fheserve;
    })();
    client.catch(() => { client = undefined; });
  }
  return client;
}

// The secret keys: one record per key set, {key_set_id, model, username,
// created, secret}.
function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open('fheserve', 1);
    req.onupgradeneeded = () => {
      const store = req.result.createObjectStore('keys', { keyPath: 'key_set_id' });
      store.createIndex('model', 'model');
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, f) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction('keys', mode);
    const req = f(t.objectStore('keys'));
    t.oncomplete = () => { d.close(); resolve(req && req.result); };
    t.onerror = () => { d.close(); reject(t.error); };
  });
}

const ops = {
  async keygen(args, progress) {
    const fhe = await load(progress);
    const r = await fhe.generateKeys(args, progress);
    const rec = {
      key_set_id: r.key_set_id, model: args.model, username: args.username,
      fingerprint: r.fingerprint, created: new Date().toISOString(), secret: r.secret,
    };
    await tx('readwrite', (s) => s.put(rec));
    delete r.secret;
    return r;
  },
  // keys lists the key sets held here for a model and user, without secrets.
  async keys(args) {
    const all = await tx('readonly', (s) => s.index('model').getAll(args.model));
    return all.filter((k) => k.username === args.username)
      .map(({ secret, ...rest }) => rest);
  },
  // held lists the key set ids held here for a user, over all models.
  async held(args) {
    const all = await tx('readonly', (s) => s.getAll());
    return all.filter((k) => k.username === args.username).map((k) => k.key_set_id);
  },
  async forget(args) {
    await tx('readwrite', (s) => s.delete(args.key_set_id));
    return null;
  },
  async verifyAudit(args, progress) {
    const fhe = await load(progress);
    return fhe.verifyAudit(args);
  },
  async faceFind(args, progress) {
    const fhe = await load(progress);
    progress({ stage: 'face', done: 0, total: 0 });
    return fhe.faceFind(args.photo);
  },
  async faceQuery(args, progress) {
    const rec = await tx('readonly', (s) => s.get(args.key_set_id));
    if (!rec) throw new Error('this browser holds no secret key for that key set: generate keys here');
    const fhe = await load(progress);
    return fhe.faceQuery({ ...args, secret: rec.secret }, progress);
  },
  async predict(args, progress) {
    const rec = await tx('readonly', (s) => s.get(args.key_set_id));
    if (!rec) throw new Error('this browser holds no secret key for that key set: generate keys here');
    const fhe = await load(progress);
    return fhe.predict({ ...args, secret: rec.secret }, progress);
  },
};

onmessage = async (ev) => {
  const { id, op, args } = ev.data;
  const progress = (p) => postMessage({ id, progress: { stage: p.stage, done: p.done, total: p.total } });
  try {
    postMessage({ id, result: await ops[op](args, progress) });
  } catch (err) {
    postMessage({ id, error: String((err && err.message) || err) });
  }
};
