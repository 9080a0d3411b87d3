// The portal's page: hash routes (#/login, #/signup, #/) over the /v1/ API,
// logged in by the session cookie of /portal/session. Everything a page
// shows is built with DOM calls and textContent, never from HTML strings.

import { tryPage, keysCard } from './try.js';
import { ownerHome, modelPage } from './owner.js';
import { auditCard, healthCard } from './admin.js';

export const state = { session: null };

// api calls the server and returns the decoded JSON body (null for 204);
// it throws an Error with the server's message on a failure.
export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.session && method !== 'GET' && method !== 'HEAD') {
    headers['X-CSRF-Token'] = state.session.csrf_token;
  }
  const resp = await fetch(path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return decode(resp);
}

// apiForm sends a multipart form (a deployment) and returns the decoded
// JSON answer.
export async function apiForm(method, path, form) {
  const resp = await fetch(path, {
    method, body: form, credentials: 'same-origin', cache: 'no-store',
    headers: { 'X-CSRF-Token': state.session.csrf_token },
  });
  return decode(resp);
}

async function decode(resp) {
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = new Error((data && data.message) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    err.code = data && data.code;
    throw err;
  }
  return data;
}

// el builds an element: el('button', {class: 'ok', onclick: f}, 'text', child...).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// go shows the page of hash.
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const main = () => document.getElementById('main');

function show(...nodes) {
  main().replaceChildren(...nodes);
}

let toastTimer;
export function toast(msg) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

export function badge(status) {
  return el('span', { class: `badge ${status}` }, status);
}

function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

// form builds a card with a form whose submit runs action(values); the
// error line shows what it throws.
function formCard(title, fields, submitLabel, action, footer) {
  const error = el('p', { class: 'error', role: 'alert', hidden: true });
  const button = el('button', { type: 'submit' }, submitLabel);
  const form = el('form', { novalidate: true }, ...fields, error, button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      await action(Object.fromEntries(new FormData(form)));
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return el('section', { class: 'card narrow' }, el('h1', {}, title), form, footer);
}

function field(label, attrs) {
  return el('label', {}, label, el('input', attrs));
}

function loginPage(notice) {
  document.title = 'Log in · fheserve';
  show(formCard('Log in', [
    notice ? el('p', { class: 'notice' }, notice) : null,
    field('Username', { name: 'username', id: 'login-username', autocomplete: 'username', required: true, autofocus: true }),
    field('Password', { name: 'password', id: 'login-password', type: 'password', autocomplete: 'current-password', required: true }),
  ].filter(Boolean), 'Log in', async (v) => {
    state.session = await api('POST', '/portal/session', { username: v.username, password: v.password });
    go('#/');
  }, el('p', { class: 'switch' }, 'No account yet? ', el('a', { href: '#/signup', id: 'to-signup' }, 'Sign up'))));
}

function signupPage() {
  document.title = 'Sign up · fheserve';
  const role = el('select', { name: 'role', id: 'signup-role' },
    el('option', { value: 'user' }, 'Model user: run encrypted predictions'),
    el('option', { value: 'owner' }, 'Model owner: deploy models'));
  show(formCard('Sign up', [
    field('Username', { name: 'username', id: 'signup-username', autocomplete: 'username', required: true,
      pattern: '[a-z][a-z0-9_.\\-]{1,31}', title: '2 to 32 lower-case letters, digits, _ . or -, starting with a letter' }),
    field('Password', { name: 'password', id: 'signup-password', type: 'password', autocomplete: 'new-password', minlength: 8, required: true }),
    el('label', {}, 'Role', role),
    el('p', { class: 'muted' }, 'An administrator approves every new account before it can log in.'),
  ], 'Sign up', async (v) => {
    await api('POST', '/v1/accounts', { username: v.username, password: v.password, role: v.role });
    history.replaceState(null, '', '#/login');
    loginPage(`Registered ${v.username}: you can log in once an administrator approves the account.`);
  }, el('p', { class: 'switch' }, 'Have an account? ', el('a', { href: '#/login' }, 'Log in'))));
}

// table builds a table of rows, or a line saying there are none.
export function table(headers, rows, emptyText) {
  if (rows.length === 0) return el('p', { class: 'empty' }, emptyText);
  // Each cell knows its column's name, which a phone shows before it
  // when the rows are stacked (app.css); the box scrolls sideways if a
  // table is still wider than the screen, so the page itself never does.
  for (const tr of [rows].flat(Infinity).filter((r) => r && r.children)) {
    Array.from(tr.children).forEach((td, i) => { if (headers[i] && headers[i][0]) td.dataset.label = headers[i][0]; });
  }
  return el('div', { class: 'table-box' }, el('table', {},
    el('thead', {}, el('tr', {}, headers.map(([h, cls]) => el('th', { class: cls }, h)))),
    el('tbody', {}, rows)));
}

function reviewButton(acct, action, cls, reload) {
  return el('button', {
    type: 'button', class: cls, 'data-action': action, 'data-user': acct.username,
    onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        await api('POST', `/v1/accounts/${encodeURIComponent(acct.username)}/${action}`);
        toast(`${acct.username}: ${action === 'approve' ? 'approved' : action === 'reject' ? 'rejected' : 'disabled'}`);
      } catch (err) {
        toast(err.message);
      }
      reload();
    },
  }, action[0].toUpperCase() + action.slice(1));
}

async function adminHome(container) {
  const pending = el('section', { class: 'card', id: 'pending' }, el('h2', {}, 'Pending registrations'));
  const accounts = el('section', { class: 'card', id: 'accounts' }, el('h2', {}, 'Accounts'));
  container.append(pending, accounts);
  const reload = () => adminHomeFill(pending, accounts, reload);
  await reload();
  const [audit, health] = await Promise.all([auditCard(), healthCard()]);
  container.append(audit, health);
}

async function adminHomeFill(pending, accounts, reload) {
  const { accounts: all } = await api('GET', '/v1/accounts');
  const waiting = all.filter((a) => a.status === 'pending');
  pending.replaceChildren(el('h2', {}, 'Pending registrations'), table(
    [['Username'], ['Role'], ['Registered', 'wide'], ['']],
    waiting.map((a) => el('tr', {}, el('td', {}, a.username), el('td', {}, a.role), el('td', { class: 'wide' }, when(a.created_at)),
      el('td', { class: 'actions' }, reviewButton(a, 'approve', 'ok', reload), reviewButton(a, 'reject', 'danger', reload)))),
    'No registration is waiting.'));
  const others = all.filter((a) => a.status !== 'pending');
  accounts.replaceChildren(el('h2', {}, 'Accounts'), table(
    [['Username'], ['Role'], ['Status'], ['Reviewed', 'wide'], ['']],
    others.map((a) => el('tr', {}, el('td', {}, a.username), el('td', {}, a.role), el('td', {}, badge(a.status)),
      el('td', { class: 'wide' }, a.reviewed_by ? `${when(a.reviewed_at)} by ${a.reviewed_by}` : ''),
      el('td', { class: 'actions' }, a.status === 'active' && a.username !== state.session.account.username
        ? reviewButton(a, 'disable', 'danger', reload) : null))),
    'No account yet.'));
}

function shape(s) {
  return (s || []).join(' × ');
}

async function modelsCard(container, title, emptyText) {
  const card = el('section', { class: 'card', id: 'models' }, el('h2', {}, title));
  container.append(card);
  const { models } = await api('GET', '/v1/models');
  card.append(table(
    [['Name'], ['Version', 'wide'], ['Owner', 'wide'], ['Input'], ['Output'], ['Ring', 'wide'], ['Status'], ['']],
    models.map((m) => el('tr', {}, el('td', {}, m.name), el('td', { class: 'wide' }, `v${m.version}`),
      el('td', { class: 'wide' }, m.owner), el('td', {}, shape(m.input_shape)), el('td', {}, shape(m.output_shape)),
      el('td', { class: 'wide' }, `N = 2^${m.log_n}`), el('td', {}, badge(m.status)),
      el('td', { class: 'actions' }, m.status === 'active' && !m.sealed
        ? el('a', { class: 'try', href: `#/try/${encodeURIComponent(m.id)}`, 'data-model': m.name }, 'Try it') : null))),
    emptyText));
}

const homes = {
  admin: adminHome,
  owner: ownerHome,
  user: async (c) => {
    await modelsCard(c, 'Models you may use', 'No model is open to you yet.');
    await keysCard(c);
  },
};

async function homePage() {
  const acct = state.session.account;
  document.title = `${acct.username} · fheserve`;
  const container = el('div', { id: 'home', 'data-role': acct.role });
  show(el('h1', {}, `Welcome, ${acct.username}`), container);
  await homes[acct.role](container);
}

function showWho() {
  const who = document.getElementById('who');
  if (!state.session) {
    who.hidden = true;
    return;
  }
  document.getElementById('who-name').textContent = state.session.account.username;
  document.getElementById('who-role').textContent = state.session.account.role;
  who.hidden = false;
}

async function route() {
  const hash = location.hash || '#/';
  try {
    if (hash === '#/signup') {
      state.session = null;
      showWho();
      return signupPage();
    }
    if (!state.session) {
      try {
        state.session = await api('GET', '/portal/session');
      } catch (err) {
        if (err.status !== 401) throw err;
      }
    }
    showWho();
    if (!state.session) return loginPage();
    if (hash === '#/login') history.replaceState(null, '', '#/');
    if (hash.startsWith('#/model/')) return await modelPage(main(), decodeURIComponent(hash.slice('#/model/'.length)));
    if (hash.startsWith('#/try/')) return await tryPage(main(), decodeURIComponent(hash.slice('#/try/'.length)));
    await homePage();
  } catch (err) {
    if (err.status === 401) {
      state.session = null;
      showWho();
      return loginPage('Your session ended: log in again.');
    }
    show(el('section', { class: 'card' }, el('p', { class: 'error', role: 'alert' }, err.message)));
  }
}

async function logout() {
  try {
    await api('DELETE', '/portal/session');
  } catch (err) {
    toast(err.message);
  }
  state.session = null;
  showWho();
  document.getElementById('toast').hidden = true;
  history.replaceState(null, '', '#/login');
  loginPage('Logged out.');
}

document.getElementById('logout').addEventListener('click', logout);
window.addEventListener('hashchange', route);
route();
