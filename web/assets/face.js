// The face page of a gallery: a photo chosen here, its faces found and
// their embeddings computed in the browser (the same network as 'fheserve
// face embed'), one embedding encrypted and verified against a claimed
// label or identified among the enrolled ones; the answer holds match
// decisions only. The photo and the embedding never leave the browser.

import { api, el, state, toast } from './app.js';
import { work, keySection, progressBox } from './try.js';

export async function facePage(main, m) {
  const acct = state.session.account;
  const g = await api('GET', `/v1/galleries/${encodeURIComponent(m.id)}`);
  const session = () => ({ origin: location.origin, csrf: state.session.csrf_token, model: m.id, username: acct.username });
  let faces = [];
  let chosen = -1;
  const verifyButton = el('button', { type: 'button', id: 'face-verify', disabled: true }, 'Verify the claim');
  const identifyButton = el('button', { type: 'button', id: 'face-identify', class: 'quiet', disabled: true }, 'Identify');
  const keys = keySection(m, session, () => ready());
  const ready = () => {
    const ok = keys.current() && chosen >= 0;
    verifyButton.disabled = !ok;
    identifyButton.disabled = !ok;
  };

  const canvas = el('canvas', { class: 'photo', id: 'face-canvas', hidden: true });
  const status = el('p', { id: 'face-status', class: 'muted' }, 'No photo yet.');
  const findProgress = progressBox('face-progress');
  const picker = el('div', { class: 'row', id: 'face-picker' });
  const photo = el('input', { type: 'file', id: 'face-photo', accept: 'image/jpeg,image/png' });
  const draw = (bitmap) => {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const g2 = canvas.getContext('2d');
    g2.drawImage(bitmap, 0, 0);
    faces.forEach((f, i) => {
      g2.lineWidth = Math.max(3, bitmap.width / 300);
      g2.strokeStyle = i === chosen ? '#2ecc71' : '#f1c40f';
      g2.strokeRect(f.x, f.y, f.w, f.h);
    });
    canvas.hidden = false;
  };
  let bitmap = null;
  const choose = (i) => {
    chosen = i;
    draw(bitmap);
    picker.querySelectorAll('button').forEach((b, j) => b.classList.toggle('ok', j === i));
    ready();
  };
  photo.addEventListener('change', async () => {
    const f = photo.files[0];
    if (!f) return;
    faces = [];
    chosen = -1;
    picker.replaceChildren();
    ready();
    try {
      bitmap = await createImageBitmap(f);
      draw(bitmap);
      const r = await work('faceFind', { photo: new Uint8Array(await f.arrayBuffer()) }, findProgress.report);
      faces = r.faces;
      status.textContent = faces.length === 0 ? 'No face found: use a photo where the face is upright, lit and at least about 60 pixels wide.'
        : `${faces.length} face${faces.length === 1 ? '' : 's'} found; the embeddings were computed in this browser.`;
      status.dataset.faces = faces.length;
      picker.replaceChildren(...faces.map((_, i) => el('button', { type: 'button', class: 'quiet', 'data-face': i, onclick: () => choose(i) }, `Face ${i + 1}`)));
      if (faces.length > 0) choose(0);
    } catch (err) {
      status.textContent = err.message;
    } finally {
      findProgress.done();
    }
  });

  const claim = el('select', { id: 'face-claim' }, (g.labels || []).map((l) => el('option', { value: l }, l)));
  const queryProgress = progressBox('query-progress');
  const result = el('div', { id: 'face-result-box' });
  const query = async (withClaim) => {
    verifyButton.disabled = identifyButton.disabled = true;
    result.replaceChildren();
    try {
      const r = await work('faceQuery', { ...session(), key_set_id: keys.current().key_set_id, embedding: faces[chosen].embedding, claim: withClaim ? claim.value : '' }, queryProgress.report);
      if (withClaim) {
        result.replaceChildren(el('p', { id: 'face-result', class: `verdict ${r.match ? 'notice' : 'error'}`, 'data-match': String(r.match) },
          r.match ? `Match: this is ${claim.value}.` : `No match: this is not ${claim.value}.`));
      } else {
        result.replaceChildren(el('p', { id: 'face-result', class: 'verdict', 'data-matches': r.matches.join(',') },
          r.matches.length ? `Identified: ${r.matches.join(', ')}` : 'No enrolled face matches.'));
      }
    } catch (err) {
      toast(err.message);
    } finally {
      queryProgress.done();
      ready();
    }
  };
  verifyButton.addEventListener('click', () => query(true));
  identifyButton.addEventListener('click', () => query(false));

  main.replaceChildren(
    el('p', {}, el('a', { href: '#/' }, '← Models')),
    el('h1', {}, `${m.name} `, el('span', { class: 'muted' }, `face gallery by ${m.owner}`)),
    el('section', { class: 'card' }, el('p', { class: 'muted' },
      `${g.templates} enrolled faces. The photo and its embedding stay in this browser: only the encrypted embedding is sent, and the answer is a match decision, never a score.`)),
    keys.node,
    el('section', { class: 'card', id: 'face-photo-card' }, el('h2', {}, '2. Photo'),
      el('label', {}, 'A photo (JPEG or PNG)', photo), findProgress, status, picker, canvas),
    el('section', { class: 'card', id: 'face-query' }, el('h2', {}, '3. Verify or identify'),
      el('label', {}, 'Claimed identity', claim), el('div', { class: 'row' }, verifyButton, identifyButton), queryProgress, result));
  await keys.show();
}
