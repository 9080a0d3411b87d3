// The owner's galleries: a gallery is a model whose weights are enrolled
// face templates (one labelled unit-norm embedding each); its plan is
// compiled for its capacity, so enrolling and removing templates never
// changes users' keys.

import { api, el, toast, table } from './app.js';
import { parseNpy } from './try.js';

export function galleryCreateCard(reload) {
  const field = (label, attrs) => el('label', {}, label, el('input', attrs));
  const error = el('p', { class: 'error', role: 'alert', hidden: true });
  const form = el('form', { id: 'gallery-create', novalidate: true },
    el('div', { class: 'two' },
      field('Name', { id: 'gallery-name', required: true }),
      field('Embedding length', { id: 'gallery-dim', type: 'number', min: 1, value: 128 })),
    el('div', { class: 'two' },
      field('Match threshold (cosine similarity)', { id: 'gallery-threshold', type: 'number', step: 'any', min: -1, max: 1, value: 0.5 }),
      field('Capacity (templates)', { id: 'gallery-capacity', type: 'number', min: 1, placeholder: '1024' })),
    field('Users allowed (empty: every approved user)', { id: 'gallery-allow', placeholder: 'ulrich, ursula' }),
    error, el('div', { class: 'row' }, el('button', { type: 'submit', id: 'gallery-submit' }, 'Create the gallery')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const req = { name: v('gallery-name'), dim: Number(v('gallery-dim')), threshold: Number(v('gallery-threshold')) };
    if (v('gallery-capacity')) req.capacity = Number(v('gallery-capacity'));
    const allow = v('gallery-allow').split(/[\s,]+/).filter(Boolean);
    if (allow.length) req.allow = allow;
    try {
      const g = await api('POST', '/v1/galleries', req);
      toast(`Gallery ${g.name} created: enrol templates on its page`);
      form.reset();
      await reload();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
  return el('section', { class: 'card', id: 'gallery-create-card' }, el('h2', {}, 'Create a face gallery'),
    el('p', { class: 'muted' }, 'Users verify a claimed identity or identify a face against the enrolled templates under encryption; results are match decisions, never scores.'),
    form);
}

// galleryCard shows a gallery's templates on its model page.
export async function galleryCard(id, reload) {
  const g = await api('GET', `/v1/galleries/${encodeURIComponent(id)}`);
  const path = `/v1/galleries/${encodeURIComponent(id)}`;
  const file = el('input', { type: 'file', id: 'enrol-npy', accept: '.npy' });
  const labels = el('input', { id: 'enrol-labels', placeholder: 'alice, bob, carol' });
  const error = el('p', { class: 'error', role: 'alert', hidden: true });
  const form = el('form', { id: 'enrol', novalidate: true },
    el('label', {}, `Embeddings (.npy of N × ${g.dim}, unit length)`, file),
    el('label', {}, 'Their labels, in order', labels),
    error, el('div', { class: 'row' }, el('button', { type: 'submit', id: 'enrol-submit' }, 'Enrol')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    try {
      if (!file.files[0]) throw new Error('choose the .npy file of embeddings');
      const { values } = parseNpy(await file.files[0].arrayBuffer());
      const names = labels.value.split(/[\s,]+/).filter(Boolean);
      if (values.length !== names.length * g.dim) {
        throw new Error(`the file holds ${values.length} values: ${names.length} labels need ${names.length * g.dim}`);
      }
      const embeddings = names.map((_, i) => Array.from(values.subarray(i * g.dim, (i + 1) * g.dim)));
      const r = await api('POST', `${path}/templates`, { labels: names, embeddings });
      toast(`${names.length} template${names.length === 1 ? '' : 's'} enrolled: ${r.templates} in all`);
      reload();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
  const remove = (label) => el('button', {
    type: 'button', class: 'danger', 'data-label': label,
    onclick: async () => {
      try {
        await api('POST', `${path}/remove`, { labels: [label] });
        toast(`${label} removed`);
      } catch (err) {
        toast(err.message);
      }
      reload();
    },
  }, 'Remove');
  return el('section', { class: 'card', id: 'gallery', 'data-templates': g.templates },
    el('h2', {}, 'Gallery'),
    el('p', { class: 'muted' }, `${g.templates} of ${g.capacity} templates of ${g.dim} values; match at cosine ≥ ${g.threshold} (± ${g.margin.toPrecision(2)}), ${g.decision === 'randomized' ? `randomized decisions (a result gives |score − threshold| within a factor ${g.spread})` : 'polynomial decisions (a result gives the decisions alone)'}, revision ${g.revision}.`),
    form,
    el('h3', {}, 'Enrolled'),
    table([['Label'], ['']], (g.labels || []).map((l) => el('tr', {}, el('td', {}, l), el('td', { class: 'actions' }, remove(l)))), 'No template enrolled yet.'));
}
