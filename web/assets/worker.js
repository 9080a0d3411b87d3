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
// fingerprint, created, iv, wrapped}: the secret key encrypted with
// AES-256-GCM under the wrapping key, its additional data the key set,
// user and model it is for. The wrapping key is a non-extractable
// WebCrypto key made here once and kept as a CryptoKey object in the store
// "wrap": no script can export its bytes, only use it. (Chromium still
// writes them to the profile's files: docs/portal.md says what this does
// and does not protect.) Records of version 1 hold the raw key in
// "secret" and are wrapped when next used.
function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open('fheserve', 2);
    req.onupgradeneeded = (ev) => {
      if (ev.oldVersion < 1) {
        const store = req.result.createObjectStore('keys', { keyPath: 'key_set_id' });
        store.createIndex('model', 'model');
      }
      if (ev.oldVersion < 2) req.result.createObjectStore('wrap', { keyPath: 'id' });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, f, store = 'keys') {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(store, mode);
    const req = f(t.objectStore(store));
    t.oncomplete = () => { d.close(); resolve(req && req.result); };
    t.onerror = () => { d.close(); reject(t.error); };
    t.onabort = () => { d.close(); reject(t.error); };
  });
}

let wrapping;

// wrappingKey returns the wrapping key, made on first use. add, not put:
// when two workers (two tabs) make one at once, the first stored wins and
// the other reads it, so no secret is ever wrapped under a lost key.
function wrappingKey() {
  if (!wrapping) {
    wrapping = (async () => {
      const have = await tx('readonly', (s) => s.get('aes-gcm'), 'wrap');
      if (have) return have.key;
      const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      try {
        await tx('readwrite', (s) => s.add({ id: 'aes-gcm', key }), 'wrap');
        return key;
      } catch (err) {
        const won = await tx('readonly', (s) => s.get('aes-gcm'), 'wrap');
        if (won) return won.key;
        throw err;
      }
    })();
    wrapping.catch(() => { wrapping = undefined; });
  }
  return wrapping;
}

const aad = (rec) => new TextEncoder().encode(JSON.stringify(['fheserve secret key', rec.key_set_id, rec.username, rec.model]));

// wrap returns rec with its secret encrypted, the raw secret gone.
async function wrap(rec, secret) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const wrapped = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(rec) }, await wrappingKey(), secret);
  const { secret: _, ...rest } = rec;
  return { ...rest, iv, wrapped };
}

// secretOf returns the secret key of a key set held here, decrypted.
async function secretOf(keySetID) {
  const rec = await tx('readonly', (s) => s.get(keySetID));
  if (!rec) throw new Error('this browser holds no secret key for that key set: generate keys here');
  if (rec.secret) { // version 1: wrap it now
    const wrapped = await wrap(rec, rec.secret);
    await tx('readwrite', (s) => s.put(wrapped));
    return rec.secret;
  }
  try {
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: rec.iv, additionalData: aad(rec) }, await wrappingKey(), rec.wrapped);
    return new Uint8Array(plain);
  } catch (err) {
    throw new Error('this browser cannot unwrap the secret key of that key set (its key store was reset or the record altered): revoke it and generate keys again');
  }
}

const ops = {
  async keygen(args, progress) {
    const fhe = await load(progress);
    const r = await fhe.generateKeys(args, progress);
    const rec = await wrap({
      key_set_id: r.key_set_id, model: args.model, username: args.username,
      fingerprint: r.fingerprint, created: new Date().toISOString(),
    }, r.secret);
    r.secret.fill(0);
    await tx('readwrite', (s) => s.put(rec));
    delete r.secret;
    return r;
  },
  // keys lists the key sets held here for a model and user, without secrets.
  async keys(args) {
    const all = await tx('readonly', (s) => s.index('model').getAll(args.model));
    return all.filter((k) => k.username === args.username)
      .map(({ secret, wrapped, iv, ...rest }) => rest);
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
    const secret = await secretOf(args.key_set_id);
    const fhe = await load(progress);
    try {
      return await fhe.faceQuery({ ...args, secret }, progress);
    } finally {
      secret.fill(0);
    }
  },
  async predict(args, progress) {
    const secret = await secretOf(args.key_set_id);
    const fhe = await load(progress);
    try {
      return await fhe.predict({ ...args, secret }, progress);
    } finally {
      secret.fill(0);
    }
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
