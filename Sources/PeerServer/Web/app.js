// Peer's web UI: the torrent list (live from /api/events), adding, search, details, a player for streams, and
// channels (#channels: this node's and those it follows; one open at #channels/ID).
// Plain JavaScript, no build step; docs/api.md is the contract. Text from the API is only ever set with
// textContent, never as HTML.
'use strict';

const $ = (selector, root = document) => root.querySelector(selector);

/** Makes an element: el('span', {class: 'x', 'data-id': id}, 'text', child, …). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

// ---- Formatting (binary units, as `peer` prints them) ----

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = n || 0, unit = 0;
  while (value >= 1023.95 && unit < units.length - 1) { value /= 1024; unit++; }
  if (unit === 0) return value + ' B';
  return (Number.isInteger(value) ? value : value.toFixed(value < 10 ? 2 : 1)) + ' ' + units[unit];
}
const rate = (n) => bytes(n) + '/s';
function eta(seconds) {
  if (seconds == null) return '∞';
  const s = Math.round(seconds);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
}
const percent = (p) => (Math.floor((p || 0) * 1000) / 10) + '%';

// ---- The API ----

class ApiError extends Error {
  constructor(code, message, status) { super(message); this.code = code; this.status = status; }
}

/** Calls the API; JSON in and out, a Blob is sent as a .torrent. A 401 goes to the login page. */
async function api(method, path, body) {
  const options = {method, credentials: 'same-origin', headers: {}};
  if (body instanceof Blob) {
    options.body = body;
    options.headers['Content-Type'] = 'application/x-bittorrent';
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers['Content-Type'] = 'application/json';
  }
  let res;
  try { res = await fetch(path, options); } catch (e) {
    throw new ApiError('network', 'Cannot reach the daemon (' + e.message + ').', 0);
  }
  if (res.status === 401) { location.href = '/login'; throw new ApiError('unauthorized', 'Not logged in.', 401); }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { /* not JSON: reported below */ }
  if (!res.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(error.code || 'http', error.message || text || res.statusText, res.status);
  }
  return data;
}

function showError(error) {
  const detail = error instanceof ApiError && error.status ? ' (' + error.code + ', HTTP ' + error.status + ')' : '';
  $('#error-text').textContent = error.message + detail;
  $('#error').hidden = false;
}
/** Runs an action, showing its failure in the page. */
const attempt = (action) => (...args) => action(...args).catch(showError);

// ---- The torrent list ----

const torrents = new Map(); // id -> summary
const rows = new Map();     // id -> <li>

function rowFor(t) {
  let row = rows.get(t.id);
  if (!row) {
    row = el('li', {class: 'torrent', 'data-id': t.id, tabindex: 0},
      el('div', {class: 'line'}, el('span', {class: 'name'}), el('span', {class: 'state'})),
      el('div', {class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100},
        el('div', {class: 'progress-bar'})),
      el('div', {class: 'line stats muted'},
        el('span', {class: 'size'}), el('span', {class: 'rates'}), el('span', {class: 'peers'}),
        el('span', {class: 'eta'}), el('span', {class: 'labels'})));
    row.addEventListener('click', () => { location.hash = t.id; });
    row.addEventListener('keydown', (e) => { if (e.key === 'Enter') location.hash = t.id; });
    rows.set(t.id, row);
  }
  return row;
}

function renderRow(t) {
  const row = rowFor(t);
  row.dataset.state = t.state;
  row.classList.toggle('open', t.id === openId);
  $('.name', row).textContent = t.name;
  $('.state', row).textContent = t.error ? 'error' : t.state;
  $('.state', row).title = t.error || '';
  $('.progress', row).setAttribute('aria-valuenow', Math.round(t.progress * 100));
  const bar = $('.progress-bar', row);
  bar.dataset.progress = String(t.progress);
  bar.style.width = (t.progress * 100) + '%';
  $('.size', row).textContent = percent(t.progress) + ' of ' + bytes(t.size);
  $('.rates', row).textContent = '↓ ' + rate(t.download_rate) + ' ↑ ' + rate(t.upload_rate);
  $('.peers', row).textContent = t.peers + (t.peers === 1 ? ' peer' : ' peers');
  $('.eta', row).textContent = t.progress >= 1 ? 'done' : t.paused ? '' : 'ETA ' + eta(t.eta);
  $('.labels', row).replaceChildren(
    ...(t.category ? [el('span', {class: 'badge category'}, t.category)] : []),
    ...(t.tags || []).map((tag) => el('span', {class: 'badge tag'}, '#' + tag)));
  return row;
}

// ---- Categories and tags ----

let categories = [];  // from GET /api/categories: [{name, save_path}]

function refreshCategories() {
  api('GET', '/api/categories').then((list) => { categories = list; renderFilters(); }).catch(showError);
}

/** The filter menus: every category known and every tag some torrent has; the choice survives a rebuild. */
function renderFilters() {
  const names = new Set(categories.map((c) => c.name));
  for (const t of torrents.values()) if (t.category) names.add(t.category);
  const tags = new Set([...torrents.values()].flatMap((t) => t.tags || []));
  const fill = (select, first, values) => {
    const chosen = select.value;
    select.replaceChildren(...first, ...[...values].sort().map((v) => el('option', {value: v}, v)));
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : '';
  };
  fill($('#filter-category'), [el('option', {value: ''}, 'all'), el('option', {value: '\u0000none'}, 'none')], names);
  fill($('#filter-tag'), [el('option', {value: ''}, 'all')], tags);
  $('#category-names').replaceChildren(...[...names].sort().map((v) => el('option', {value: v})));
  $('#filters').hidden = names.size === 0 && tags.size === 0;
}

function shown(t) {
  const category = $('#filter-category').value, tag = $('#filter-tag').value;
  if (category && (category === '\u0000none' ? t.category : t.category !== category)) return false;
  return !tag || (t.tags || []).includes(tag);
}

function renderList() {
  const list = $('#torrents');
  const sorted = [...torrents.values()].sort((a, b) => (a.added_at || '').localeCompare(b.added_at || ''));
  renderFilters();
  const visible = sorted.filter(shown);
  list.replaceChildren(...visible.map(renderRow));
  for (const id of rows.keys()) if (!torrents.has(id)) rows.delete(id);
  $('#filter-count').textContent = visible.length < sorted.length ? visible.length + ' of ' + sorted.length : '';
  $('#empty').hidden = torrents.size > 0;
  renderTotals();
  refreshHitButtons();
  refreshItemButtons();
  renderTorrentChoice();
}

function renderTotals() {
  let down = 0, up = 0;
  for (const t of torrents.values()) { down += t.download_rate; up += t.upload_rate; }
  $('#totals').textContent = torrents.size + ' torrent' + (torrents.size === 1 ? '' : 's') +
    ' · ↓ ' + rate(down) + ' · ↑ ' + rate(up);
}

function update(t) {
  const old = torrents.get(t.id);
  const isNew = !old;
  const relabelled = old && (old.category !== t.category || (old.tags || []).join() !== (t.tags || []).join());
  torrents.set(t.id, t);
  if (isNew || relabelled) renderList(); else { renderRow(t); renderTotals(); refreshItemButtons(); }
  if (t.id === openId) refreshDetail(false);
}

// ---- Live events ----

let events = null;
function connect() {
  events = new EventSource('/api/events');
  const live = $('#live');
  // The API's own `error` event shares its name with EventSource's connection error: only the first has data.
  const on = (name, handler) => events.addEventListener(name, (e) => {
    if (typeof e.data === 'string') handler(JSON.parse(e.data));
  });
  events.onopen = () => { live.textContent = 'live'; live.className = 'live on'; };
  events.onerror = (e) => {
    if (typeof e.data === 'string') return;
    live.textContent = 'reconnecting…';
    live.className = 'live';
    if (events.readyState === EventSource.CLOSED) {
      // The browser gave up (a 401, or the daemon went away): find out which, then try again.
      api('GET', '/api/session').then(() => setTimeout(connect, 2000), () => setTimeout(connect, 5000));
    }
  };
  on('snapshot', (d) => {
    refreshCategories();
    torrents.clear();
    for (const t of d.torrents) torrents.set(t.id, t);
    renderList();
    if (openId) refreshDetail(true);
    // Channel events missed while the stream was down: fetch the channels again.
    refreshChannels();
    if (openChannel) refreshChannel();
  });
  on('torrent', update);
  on('added', (t) => { update(t); indexChanged(); });
  on('completed', update);
  on('removed', (d) => {
    torrents.delete(d.id);
    renderList();
    indexChanged();
    if (d.id === openId) location.hash = '';
  });
  on('error', (d) => showError(new Error((torrents.get(d.id)?.name || d.id) + ': ' + d.message)));
  on('channel', channelEvent);
}

// ---- Adding ----

/** "a, b,,c" as ["a", "b", "c"]. */
const tagList = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

function addOptions() {
  const options = {};
  if ($('#add-paused').checked) options.paused = true;
  if ($('#add-sequential').checked) options.sequential = true;
  const category = $('#add-category').value.trim();
  if (category) options.category = category;
  const tags = tagList($('#add-tags').value);
  if (tags.length) options.tags = tags;
  return options;
}

/** Adds a torrent (a JSON body of POST /api/torrents) with the options above, and lists it. */
async function addTorrent(body) {
  const t = await api('POST', '/api/torrents', Object.assign(body, addOptions()));
  update(t);
  return t;
}

async function addLink(event) {
  event.preventDefault();
  const input = $('#magnet-input');
  const link = input.value.trim();
  if (!link) return;
  if (/[?&]x\.live=1(&|$)/.test(link)) await playLive(link);
  else await addTorrent(/^https?:\/\//i.test(link) ? {url: link} : {magnet: link});
  input.value = '';
}

async function addFile(file) {
  if (!file) return;
  const options = addOptions();
  if (options.tags) options.tags = options.tags.join(',');
  const query = new URLSearchParams(options).toString();
  const t = await api('POST', '/api/torrents' + (query ? '?' + query : ''), file);
  $('#file-input').value = '';
  update(t);
}

// ---- Search (the node's keyword index) ----

const SEARCH_LIMIT = 100;
// The hits shown, by info-hash, in the order they came. A search replaces them; mergeHits() adds more, so that
// results arriving later (from other nodes) can join those already listed.
const hits = new Map();
const adding = new Set(); // info-hashes whose Add is under way
let searchSeq = 0;        // only the newest search's answer is shown

/** Two reports of one torrent as one: the first one's fields, every source, the best seeders count. */
function mergeHit(a, b) {
  const seeders = [a.seeders, b.seeders].filter((n) => n != null);
  return Object.assign({}, b, a, {
    sources: [...new Set([...(a.sources || []), ...(b.sources || [])])],
    verified: Boolean(a.verified || b.verified),
    seeders: seeders.length ? Math.max(...seeders) : null,
  });
}

/** Adds hits (objects shaped like /api/search's) to those shown; one already shown is merged, not repeated. */
function mergeHits(list) {
  for (const h of list) {
    const known = hits.get(h.info_hash);
    hits.set(h.info_hash, known ? mergeHit(known, h) : h);
  }
  renderHits();
}

function renderHits() {
  $('#search-hits').replaceChildren(...[...hits.values()].map(hitRow));
  $('#search-results').hidden = hits.size === 0;
}

function hitRow(h) {
  const paths = (h.paths || []).join('\n');
  return el('tr', {class: 'hit', 'data-info-hash': h.info_hash},
    el('td', {class: 'name', title: paths || null}, el('span', {class: 'hit-name'}, h.name),
      h.files > 1 ? el('span', {class: 'muted'}, ' · ' + h.files + ' files') : null),
    el('td', {class: 'num size'}, bytes(h.size)),
    el('td', {class: 'num seeders', title: h.leechers == null ? null : h.leechers + ' leechers'},
      h.seeders == null ? '?' : String(h.seeders)),
    el('td', {class: 'sources'}, (h.sources || []).join(', ')),
    el('td', {class: 'verification'}, h.verified
      ? el('span', {class: 'verified', title: 'its metadata was checked against the info-hash'}, 'verified')
      : el('span', {class: 'claim', title: 'what another node said; not checked yet'}, 'claim')),
    el('td', {}, hitButton(h)));
}

function hitButton(h) {
  const button = el('button', {type: 'button', class: 'hit-add', 'data-info-hash': h.info_hash,
    onclick: () => attempt(addHit)(h)});
  button.dataset.name = h.name;
  setHitButton(button);
  return button;
}

/** Add, Adding… or Added (the torrent is in the list): the visible word, and the name for screen readers. */
function setHitButton(button) {
  const id = button.dataset.infoHash;
  const word = torrents.has(id) ? 'Added' : adding.has(id) ? 'Adding…' : 'Add';
  button.disabled = word !== 'Add';
  button.classList.toggle('done', word === 'Added');
  button.textContent = word;
  button.setAttribute('aria-label', word + ' ' + button.dataset.name);
}

function refreshHitButtons() {
  for (const button of document.querySelectorAll('#search-hits .hit-add')) setHitButton(button);
}

async function addHit(h) {
  adding.add(h.info_hash);
  refreshHitButtons();
  try {
    await addTorrent({magnet: h.magnet});
  } catch (e) {
    if (e.code !== 'conflict') throw e; // already there: the list shows it
  } finally {
    adding.delete(h.info_hash);
    refreshHitButtons();
  }
}

function showSearchError(error) {
  hits.clear();
  renderHits();
  $('#search-status').textContent = '';
  const detail = error instanceof ApiError && error.status && error.status !== 400
    ? ' (' + error.code + ', HTTP ' + error.status + ')' : '';
  $('#search-error').textContent = error.message + detail;
  $('#search-error').hidden = false;
}

/** Marks the newest search as answered (`data-answered` is its number: tests wait for it). */
function searchAnswered(seq) { $('#search').dataset.answered = String(seq); }

async function search(event) {
  event.preventDefault();
  const text = $('#search-input').value;
  const seq = ++searchSeq;
  $('#search-status').textContent = 'Searching…';
  let r;
  try {
    r = await api('GET', '/api/search?q=' + encodeURIComponent(text) + '&limit=' + SEARCH_LIMIT);
  } catch (e) {
    if (seq === searchSeq) { showSearchError(e); searchAnswered(seq); }
    return;
  }
  if (seq !== searchSeq) return;
  $('#search-error').hidden = true;
  hits.clear();
  mergeHits(r.hits);
  const n = r.hits.length;
  $('#search-status').textContent = n === 0 ? 'Nothing found for ' + r.terms.join(' ') + '.'
    : (n === SEARCH_LIMIT ? 'The best ' + n + ' results' : n + (n === 1 ? ' result' : ' results')) +
      ' for ' + r.terms.join(' ') + ' (' + Math.round(r.milliseconds) + ' ms).';
  searchAnswered(seq);
  refreshIndexStats();
}

function clearSearch() {
  searchSeq++;
  hits.clear();
  renderHits();
  $('#search-status').textContent = '';
  $('#search-error').hidden = true;
  $('#search-input').focus();
}

/** "index: N torrents" from /api/index; a failure only blanks it (the list and search report their own). */
function refreshIndexStats() {
  api('GET', '/api/index').then((s) => {
    const stats = $('#index-stats');
    stats.textContent = 'index: ' + s.rows + (s.rows === 1 ? ' torrent' : ' torrents');
    stats.title = s.verified + ' verified, ' + s.pinned + ' pinned' +
      (s.bytes_on_disk == null ? '' : ', ' + bytes(s.bytes_on_disk) + ' on disk');
  }, () => { $('#index-stats').textContent = ''; });
}

// The index takes an added torrent within a second (it writes in batches): count again a little later.
let indexTimer = null;
function indexChanged() {
  clearTimeout(indexTimer);
  indexTimer = setTimeout(refreshIndexStats, 1500);
}

// ---- Details ----

let openId = null;
let refreshing = null;
let lastRefresh = 0;
let refreshTimer = null;

const PLAYABLE = /\.(webm|mp4|m4v|mkv|ogv|mp3|ogg|oga|opus|flac|wav|m4a)$/i;
const AUDIO = /\.(mp3|ogg|oga|opus|flac|wav|m4a)$/i;

/** Reloads the open torrent's detail; at most every 2 s unless forced (a skipped one is done later). */
function refreshDetail(force) {
  if (!openId) return;
  const wait = lastRefresh + 2000 - Date.now();
  if (refreshing || (!force && wait > 0)) {
    if (!refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = null; refreshDetail(true); }, Math.max(wait, 200));
    return;
  }
  const id = openId;
  refreshing = api('GET', '/api/torrents/' + encodeURIComponent(id))
    .then((d) => { if (id === openId) renderDetail(d); })
    .catch((e) => { if (e.status === 404) location.hash = ''; else showError(e); })
    .finally(() => { refreshing = null; lastRefresh = Date.now(); });
}

function openDetail() {
  const r = decodeURIComponent(location.hash.slice(1));
  openId = r && !isChannelRoute(r) ? r : null;
  for (const [id, row] of rows) row.classList.toggle('open', id === openId);
  const detail = $('#detail');
  if (!openId) { detail.hidden = true; detail.replaceChildren(); return; }
  detail.replaceChildren(el('p', {class: 'muted'}, 'Loading…'));
  detail.dataset.id = openId;
  detail.hidden = false;
  refreshDetail(true);
}

async function control(id, action) {
  update(await api('POST', '/api/torrents/' + encodeURIComponent(id) + '/' + action));
  refreshDetail(true);
}

async function remove(id, deleteData) {
  const name = torrents.get(id)?.name || id;
  if (!confirm('Remove ' + name + (deleteData ? ' and delete its data' : '') + '?')) return;
  await api('DELETE', '/api/torrents/' + encodeURIComponent(id) + (deleteData ? '?delete_data=true' : ''));
  torrents.delete(id);
  renderList();
  location.hash = '';
}

/** Files the torrent under a category (empty: none) and gives it these tags. */
async function relabel(id, category, tags) {
  update(await api('PATCH', '/api/torrents/' + encodeURIComponent(id),
    {category: category.trim() || null, tags: tagList(tags)}));
  if (category.trim() && !categories.some((c) => c.name === category.trim())) refreshCategories();
  refreshDetail(true);
}

async function setPriority(id, index, priority) {
  document.activeElement.blur();
  renderDetail(await api('PUT', '/api/torrents/' + encodeURIComponent(id) + '/files',
    {priorities: [{index, priority}]}));
}

function fileRow(d, f) {
  const select = el('select', {class: 'file-priority', 'aria-label': 'Priority of ' + f.path,
    onchange: (e) => attempt(setPriority)(d.id, f.index, e.target.value)},
    ...['skip', 'normal', 'high'].map((p) => el('option', {value: p, selected: p === f.priority}, p)));
  const playButton = PLAYABLE.test(f.path)
    ? el('button', {type: 'button', class: 'play-button', onclick: () => play(d.id, f)}, 'Play') : null;
  return el('tr', {class: 'file', 'data-index': f.index},
    el('td', {class: 'path'}, f.path),
    el('td', {class: 'num'}, bytes(f.length)),
    el('td', {class: 'num'}, percent(f.progress)),
    el('td', {}, select), el('td', {}, playButton));
}

function renderDetail(d) {
  const detail = $('#detail');
  // Keep a priority menu that is open from being rebuilt under the user's finger.
  if (detail.contains(document.activeElement) && document.activeElement.tagName === 'SELECT') return;
  const paused = d.paused || d.state === 'paused';
  const keep = detail.dataset.id === d.id && $('#delete-data');
  const deleteData = el('input', {type: 'checkbox', id: 'delete-data', checked: Boolean(keep && keep.checked)});
  const files = (d.files || []).filter((f) => !f.padding);
  // The label fields keep what is being typed in them across refreshes.
  const typed = detail.dataset.id === d.id && $('#label-form') ? [$('#label-category').value, $('#label-tags').value] : null;
  const categoryInput = el('input', {id: 'label-category', type: 'text', list: 'category-names', size: 12,
    autocomplete: 'off', spellcheck: 'false', placeholder: 'none', value: typed ? typed[0] : d.category || ''});
  const tagsInput = el('input', {id: 'label-tags', type: 'text', size: 16, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'a, b', value: typed ? typed[1] : (d.tags || []).join(', ')});
  detail.replaceChildren(
    el('div', {class: 'bar'},
      el('h2', {}, d.name),
      el('button', {type: 'button', class: 'link', onclick: () => { location.hash = ''; }}, 'Close')),
    el('p', {class: 'muted'}, d.state + ' · ' + percent(d.progress) + ' of ' + bytes(d.size) +
      ' · saved in ' + (d.save_path || '?') + (d.error ? ' · ' + d.error : '')),
    el('p', {class: 'muted id'}, d.id),
    el('div', {class: 'actions'},
      paused
        ? el('button', {type: 'button', id: 'resume-button', onclick: () => attempt(control)(d.id, 'resume')}, 'Resume')
        : el('button', {type: 'button', id: 'pause-button', onclick: () => attempt(control)(d.id, 'pause')}, 'Pause'),
      el('button', {type: 'button', id: 'remove-button', class: 'danger',
        onclick: () => attempt(remove)(d.id, deleteData.checked)}, 'Remove'),
      el('label', {}, deleteData, ' delete data')),
    el('form', {id: 'label-form', class: 'add-options', onsubmit: (e) => {
      e.preventDefault();
      attempt(relabel)(d.id, categoryInput.value, tagsInput.value);
    }},
      el('label', {}, 'Category ', categoryInput), el('label', {}, 'Tags ', tagsInput),
      el('button', {type: 'submit', id: 'label-save'}, 'Save')),
    el('h3', {}, 'Files'),
    files.length === 0 ? el('p', {class: 'muted'}, 'Waiting for the metadata…')
      : el('div', {class: 'scroll'}, el('table', {id: 'files'},
        el('thead', {}, el('tr', {}, ...['File', 'Size', 'Done', 'Priority', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, ...files.map((f) => fileRow(d, f))))),
    el('h3', {}, 'Peers (' + (d.peers || []).length + ')'),
    el('ul', {id: 'peers', class: 'plain'}, ...(d.peers || []).map((p) => el('li', {},
      p.address + ' · ' + (p.transport || 'tcp') + ' · ' + (p.client || '?') + ' · ' + percent(p.progress) + ' · ↓ ' + rate(p.download_rate) +
      ' ↑ ' + rate(p.upload_rate)))),
    el('h3', {}, 'Trackers'),
    (d.trackers || []).length === 0 ? el('p', {class: 'muted'}, 'none')
      : el('ul', {id: 'trackers', class: 'plain'}, ...d.trackers.map((t) => el('li', {},
        t.url + ' · tier ' + t.tier + ' · ' + t.status + (t.message ? ': ' + t.message : '')))));
}

// ---- Player ----

function play(id, file) {
  const src = '/api/torrents/' + encodeURIComponent(id) + '/files/' + file.index + '/stream';
  const media = el(AUDIO.test(file.path) ? 'audio' : 'video', {controls: true, autoplay: true, preload: 'auto', src});
  media.addEventListener('error', () => {
    const e = media.error;
    showError(new Error('Cannot play ' + file.path + ': ' + ((e && e.message) ||
      ['', 'aborted', 'network error', 'cannot decode', 'format not supported'][e ? e.code : 0] || 'unknown error')));
  });
  $('#player-title').textContent = file.path;
  $('#player-media').replaceChildren(media);
  $('#player').hidden = false;
  $('#player').scrollIntoView({behavior: 'smooth', block: 'nearest'});
  media.play().catch(() => { /* autoplay refused: the controls are there */ });
}

/** A live stream's link: the daemon plays and relays it; the player shows it from the daemon's one long response. */
async function playLive(link) {
  const s = await api('POST', '/api/live', {link});
  const media = el('video', {controls: true, autoplay: true, muted: true, src: '/api/live/' + s.stream + '/stream'});
  media.muted = true; // a muted video may start by itself; the controls unmute it
  media.addEventListener('error', () => {
    const e = media.error;
    showError(new Error('Cannot play the live stream ' + s.name + ': ' + ((e && e.message) || 'error ' + (e ? e.code : '?'))));
  });
  $('#player-title').textContent = s.name + ' (live)';
  $('#player-media').replaceChildren(media);
  $('#player').hidden = false;
  media.play().catch(() => { /* autoplay refused: the controls are there */ });
}

function closePlayer() {
  const media = $('#player-media video, #player-media audio');
  if (media) { media.pause(); media.removeAttribute('src'); media.load(); }
  $('#player-media').replaceChildren();
  $('#player').hidden = true;
}

// ---- Channels ----

const channels = new Map(); // id -> ChannelInfo, from GET /api/channels
let openChannel = null;     // the channel shown (#channels/ID)
let shownChannel = null;    // its detail, as last fetched
// Items that were unread when the open channel showed them: marked "new" while it stays open, though the daemon
// is told at once that they were seen.
const freshItems = new Set();
let replyTo = null;         // the post the post form answers
let channelsSeq = 0, channelSeq = 0; // only the newest answer of each kind is shown
let channelsTimer = null, channelTimer = null, channelPoll = null;

const isChannelRoute = (r) => r === 'channels' || r.startsWith('channels/');
const channelPath = (id) => '/api/channels/' + encodeURIComponent(id);
const localTime = (date) => date.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'short'});
const KINDS = {channel: 'channel', group: 'group', torrent: 'one torrent'};
const plural = (n, word) => n + ' ' + word + (n === 1 ? '' : 's');

/** Shows the page the address names: '' or a torrent's id, the torrents; `channels` or `channels/ID`, channels. */
function route() {
  const r = decodeURIComponent(location.hash.slice(1));
  const onChannels = isChannelRoute(r);
  $('#torrents-page').hidden = onChannels;
  $('#channels-page').hidden = !onChannels;
  for (const [link, current] of [['#nav-torrents', !onChannels], ['#nav-channels', onChannels]]) {
    if (current) $(link).setAttribute('aria-current', 'page'); else $(link).removeAttribute('aria-current');
  }
  openDetail();
  openChannelView(r.startsWith('channels/') ? r.slice('channels/'.length) : null);
}

/** Fetches the list of channels again, soon (events come in bursts: one fetch for a burst). */
function refreshChannels() {
  clearTimeout(channelsTimer);
  channelsTimer = setTimeout(() => {
    const seq = ++channelsSeq;
    api('GET', '/api/channels').then((list) => {
      if (seq !== channelsSeq) return;
      $('#channels-off').hidden = true;
      channels.clear();
      for (const c of list) channels.set(c.id, c);
      renderChannels();
    }, (e) => {
      // A daemon without channels (--no-channels) says so on the channels page, not in every page's banner.
      if (e.status !== 409 && e.status !== 503) { showError(e); return; }
      $('#channels-off').textContent = 'Channels are not available: ' + e.message;
      $('#channels-off').hidden = false;
    });
  }, 150);
}

function renderChannels() {
  const list = [...channels.values()].sort((a, b) => a.title.localeCompare(b.title));
  const mine = list.filter((c) => c.mine), followed = list.filter((c) => !c.mine);
  $('#my-channels').replaceChildren(...mine.map(channelRow));
  $('#subscriptions').replaceChildren(...followed.map(channelRow));
  $('#mine-empty').hidden = mine.length > 0;
  $('#subscriptions-empty').hidden = followed.length > 0;
  const unread = followed.reduce((n, c) => n + c.unread, 0);
  $('#nav-unread').textContent = String(unread);
  $('#nav-unread').hidden = unread === 0;
  $('#nav-channels').setAttribute('aria-label', 'Channels' + (unread ? ', ' + unread + ' unread' : ''));
}

/** What a channel holds, in a few words: its revision and items, or why it has none yet. */
function channelState(c) {
  if (c.seq == null) return c.mine ? 'not published yet' : 'waiting for its first revision';
  return plural(c.items, 'item') + (c.staged ? ' · ' + c.staged + ' staged' : '');
}

function channelRow(c) {
  return el('li', {class: 'channel-row' + (c.unread ? ' has-unread' : ''), 'data-id': c.id},
    el('a', {class: 'channel-name', href: '#channels/' + c.id}, c.title),
    el('span', {class: 'unread count', 'data-count': c.unread, hidden: !c.unread,
      title: plural(c.unread, 'unread item')}, String(c.unread)),
    el('span', {class: 'muted'}, (KINDS[c.kind] || c.kind) + ' · ' + channelState(c)),
    c.stale ? el('span', {class: 'warn', title: 'no new revision for 180 days'}, 'stale') : null,
    c.error ? el('span', {class: 'bad'}, c.error) : null);
}

function openChannelView(id) {
  if (id !== openChannel) {
    openChannel = id;
    shownChannel = null;
    clearTimeout(channelPoll);
    freshItems.clear();
    setReplyTo(null);
    $('#post-form').reset(); // a draft belongs to the channel it was begun in
    $('#channel-items').replaceChildren();
    $('#channel-empty').hidden = true;
    const known = id && channels.get(id);
    if (known) renderChannelHead(known);
    else $('#channel-title').textContent = id ? 'Loading…' : '';
  }
  $('#channel').dataset.id = id || '';
  $('#channel-lists').hidden = Boolean(id);
  $('#channel').hidden = !id;
  if (id) refreshChannel();
}

/** Fetches the open channel again, soon; it is shown (and its unread items marked read) when it comes. */
function refreshChannel() {
  clearTimeout(channelTimer);
  channelTimer = setTimeout(() => {
    if (!openChannel) return;
    const id = openChannel, seq = ++channelSeq;
    api('GET', channelPath(id)).then((d) => {
      if (seq === channelSeq && id === openChannel) renderChannel(d);
    }, (e) => {
      if (seq !== channelSeq) return;
      showError(e);
      if (e.status === 404) location.hash = 'channels';
    });
  }, 100);
}

function renderChannelHead(c) {
  $('#channel-title').textContent = c.title;
  $('#channel-description').textContent = c.description;
  $('#channel-description').hidden = !c.description;
  const parts = [c.mine ? 'yours' : 'subscribed', KINDS[c.kind] || c.kind];
  if (c.seq != null) parts.push('revision ' + c.seq);
  parts.push(channelState(c));
  if (c.updated_at) parts.push('updated ' + localTime(new Date(c.updated_at)));
  if (!c.mine && c.checked_at) parts.push('checked ' + localTime(new Date(c.checked_at)));
  if (c.stale) parts.push('stale: no new revision for 180 days');
  $('#channel-meta').textContent = parts.join(' · ');
  $('#channel-error').textContent = c.error || '';
  $('#channel-error').hidden = !c.error;
  $('#channel-link').value = c.link;
  $('#channel-rss').href = channelPath(c.id) + '/rss';
  $('#channel-remove').textContent = c.mine ? 'Delete' : 'Unsubscribe';
}

function renderChannel(d) {
  const c = d.channel;
  shownChannel = d;
  renderChannelHead(c);
  // A group takes its members' posts too (the daemon says no to one whose key is not a member).
  const writable = c.mine || c.kind === 'group';
  $('#channel-write').hidden = !writable;
  for (const i of d.items) if (!i.read) freshItems.add(i.id);
  $('#channel-items').replaceChildren(...d.items.map((i) => itemRow(i, writable)));
  $('#channel-empty').textContent = c.seq == null && !c.mine
    ? 'Nothing yet: waiting for the channel\'s first revision from the DHT.'
    : c.mine ? 'Nothing yet: post something or add a torrent.' : 'No items.';
  $('#channel-empty').hidden = d.items.length > 0;
  $('#channel-members').hidden = d.members.length === 0;
  $('#members').replaceChildren(...d.members.map((key) => el('li', {}, key)));
  $('#channel-links').hidden = d.links.length === 0;
  $('#links').replaceChildren(...d.links.map(linkRow));
  renderTorrentChoice();
  $('#channel').dataset.seq = c.seq == null ? '' : String(c.seq);
  // Shown is seen: the daemon is told, and the counts drop (a page in the background waits until it is looked at).
  const unread = d.items.filter((i) => !i.read).map((i) => i.id);
  if (unread.length && document.visibilityState === 'visible') attempt(markRead)(c.id, unread);
  // A check of a followed channel that finds nothing new sends no event: look again now and then, for the time
  // of the last check and its error (such as no pointer found yet).
  clearTimeout(channelPoll);
  if (!c.mine) channelPoll = setTimeout(refreshChannel, 10000);
}

function itemRow(i, writable) {
  const fresh = freshItems.has(i.id);
  const row = el('li', {class: 'item ' + i.kind + (fresh ? ' fresh' : ''), 'data-id': i.id, 'data-kind': i.kind,
    'data-depth': i.depth},
    el('div', {class: 'line'},
      el('span', {class: 'item-title'}, i.title),
      fresh ? el('span', {class: 'badge new'}, 'new') : null,
      i.staged ? el('span', {class: 'badge', title: 'not in a published revision yet'}, 'staged') : null,
      el('span', {class: 'muted item-meta'},
        i.author ? el('span', {class: 'author', title: i.author}, i.author.slice(0, 8) + ' · ') : null,
        localTime(new Date(i.time * 1000)))),
    i.body ? el('p', {class: 'item-body'}, i.body) : null,
    el('div', {class: 'line item-foot'},
      el('span', {class: 'license' + (i.license ? '' : ' muted')},
        i.license ? 'Licence: ' + i.license : 'No licence given'),
      i.size != null ? el('span', {class: 'muted'}, bytes(i.size)) : null,
      i.kind === 'torrent' && i.magnet ? itemButton(i) : null,
      i.kind === 'post' && writable
        ? el('button', {type: 'button', class: 'link item-reply', onclick: () => setReplyTo(i)}, 'Reply') : null));
  row.style.setProperty('--depth', String(i.depth));
  return row;
}

function linkRow(link) {
  const known = [...channels.values()].find((c) => c.link === link);
  return el('li', {class: 'line'}, el('span', {class: 'id'}, link),
    known ? el('a', {href: '#channels/' + known.id}, known.title)
      : el('button', {type: 'button', class: 'link', onclick: () => attempt(subscribeTo)(link)}, 'Subscribe'));
}

// A torrent item's button: Download; Adding… while the daemon adds it; then how far it is.

/** The daemon's torrent of an info-hash (an item's id: the v1 info-hash, or v2 for a v2-only torrent). */
function torrentOf(infoHash) {
  return torrents.get(infoHash) || [...torrents.values()].find((t) => t.info_hash_v2 === infoHash);
}

function itemButton(i) {
  const button = el('button', {type: 'button', class: 'item-download', 'data-id': i.id,
    onclick: () => attempt(downloadItem)(i)});
  button.dataset.name = i.title;
  setItemButton(button);
  return button;
}

function setItemButton(button) {
  const t = torrentOf(button.dataset.id);
  const word = t ? (t.progress >= 1 ? 'Downloaded' : 'Downloading ' + percent(t.progress))
    : adding.has(button.dataset.id) ? 'Adding…' : 'Download';
  button.disabled = word !== 'Download';
  button.classList.toggle('done', Boolean(t));
  button.textContent = word;
  button.setAttribute('aria-label', word + ' ' + button.dataset.name);
}

function refreshItemButtons() {
  for (const button of document.querySelectorAll('#channel-items .item-download')) setItemButton(button);
}

async function downloadItem(i) {
  adding.add(i.id);
  refreshItemButtons();
  try {
    update(await api('POST', '/api/torrents', {magnet: i.magnet}));
  } catch (e) {
    if (e.code !== 'conflict') throw e; // already there: the button says so
  } finally {
    adding.delete(i.id);
    refreshItemButtons();
  }
}

// Writing: making channels, following them, posting and adding torrents.

/** Runs a form's action with its button disabled and saying what is under way: publishing a revision puts its
 * pointer in the DHT, which takes a while (the first one waits until the node has joined the DHT). */
async function busy(button, word, action) {
  const label = button.textContent;
  button.disabled = true;
  button.textContent = word;
  try { return await action(); } finally { button.textContent = label; button.disabled = false; }
}

/** The torrents the daemon holds, to add one to the open channel (those already in it can't be chosen). */
function renderTorrentChoice() {
  const select = $('#item-torrent');
  const keep = select.value;
  const inChannel = new Set((shownChannel ? shownChannel.items : []).map((i) => i.id));
  const list = [...torrents.values()].sort((a, b) => a.name.localeCompare(b.name));
  select.replaceChildren(...list.map((t) => {
    const held = inChannel.has(t.id) || (t.info_hash_v2 && inChannel.has(t.info_hash_v2));
    return el('option', {value: t.id, selected: t.id === keep && !held, disabled: Boolean(held)},
      t.name + (held ? ' (in the channel)' : ''));
  }));
  if (list.length === 0) select.append(el('option', {value: ''}, 'none: add one on the Torrents page first'));
  $('#item-button').disabled = list.length === 0;
}

async function subscribeTo(link) {
  const c = await api('POST', '/api/channels/subscribe', {link});
  channels.set(c.id, c);
  renderChannels();
  location.hash = 'channels/' + c.id;
  return c;
}

async function subscribe(event) {
  event.preventDefault();
  const input = $('#subscribe-input');
  const link = input.value.trim();
  if (!link) return;
  await busy($('#subscribe-button'), 'Subscribing…', () => subscribeTo(link));
  input.value = '';
}

async function createChannel(event) {
  event.preventDefault();
  const body = {name: $('#create-name').value.trim()};
  const title = $('#create-title').value.trim(), description = $('#create-description').value.trim();
  if (title) body.title = title;
  if (description) body.description = description;
  if ($('#create-group').checked) body.group = true;
  const c = await busy($('#create-button'), 'Making…', () => api('POST', '/api/channels', body));
  $('#create-form').reset();
  $('#create').open = false;
  channels.set(c.id, c);
  renderChannels();
  location.hash = 'channels/' + c.id;
}

function setReplyTo(item) {
  replyTo = item ? item.id : null;
  $('#reply-to').hidden = !item;
  $('#reply-title').textContent = item ? item.title : '';
  if (item) {
    $('#post-form').scrollIntoView({behavior: 'smooth', block: 'nearest'});
    $('#post-title').focus();
  }
}

/** Posts (the daemon publishes a revision with it at once), then shows the channel again. */
async function postToChannel(event) {
  event.preventDefault();
  const body = {title: $('#post-title').value.trim(), body: $('#post-body').value};
  if (!body.title) return;
  const license = $('#post-license').value.trim();
  if (license) body.license = license;
  if (replyTo) body.reply_to = [replyTo];
  const id = openChannel;
  await busy($('#post-button'), 'Posting…', () => api('POST', channelPath(id) + '/posts', body));
  if (id !== openChannel) return;
  $('#post-title').value = '';
  $('#post-body').value = '';
  setReplyTo(null);
  refreshChannel();
  refreshChannels();
}

async function addItemToChannel(event) {
  event.preventDefault();
  const id = $('#item-torrent').value;
  if (!id) return;
  const body = {id};
  const license = $('#item-license').value.trim();
  if (license) body.license = license;
  const channel = openChannel;
  await busy($('#item-button'), 'Adding…', () => api('POST', channelPath(channel) + '/items', body));
  renderTorrentChoice();
  if (channel !== openChannel) return;
  $('#item-license').value = '';
  refreshChannel();
  refreshChannels();
}

async function markRead(id, items) {
  await api('POST', channelPath(id) + '/read', items ? {items} : {});
  refreshChannels();
}

async function removeChannel(id) {
  const c = channels.get(id) || (shownChannel && shownChannel.channel);
  const title = c ? c.title : id;
  if (!confirm(c && c.mine ? 'Delete your channel ' + title + ' from this node? Subscribers keep what they have.'
    : 'Unsubscribe from ' + title + '?')) return;
  await api('DELETE', channelPath(id));
  channels.delete(id);
  renderChannels();
  location.hash = 'channels';
}

function copyLink() {
  const input = $('#channel-link');
  input.select();
  const said = (word) => {
    $('#channel-copy').textContent = word;
    setTimeout(() => { $('#channel-copy').textContent = 'Copy'; }, 1500);
  };
  // The clipboard API needs a secure context: elsewhere the link is left selected, to copy by hand.
  if (!navigator.clipboard) { said('Selected'); return; }
  navigator.clipboard.writeText(input.value).then(() => said('Copied'), () => said('Selected'));
}

/** A `channel` event: the list changes; the open channel, if it is the one, is fetched and shown again. */
function channelEvent(e) {
  refreshChannels();
  if (e.channel !== openChannel) return;
  if (e.kind === 'removed') { location.hash = 'channels'; return; }
  if (e.kind === 'refused' && e.message) {
    $('#channel-error').textContent = e.message;
    $('#channel-error').hidden = false;
  }
  refreshChannel();
}

// ---- Login page ----

async function login(event) {
  event.preventDefault();
  const error = $('#error');
  error.hidden = true;
  const res = await fetch('/api/login', {method: 'POST', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({token: $('#token-input').value.trim()})})
    .catch((e) => ({ok: false, status: 0, statusText: e.message, json: async () => ({})}));
  if (res.ok) { location.href = '/'; return; }
  const body = await res.json().catch(() => ({}));
  error.textContent = res.status === 401 ? 'That token is not right.'
    : res.status === 0 ? 'Cannot reach the daemon (' + res.statusText + ').'
    : (body.error && body.error.message) || 'Login failed (HTTP ' + res.status + ').';
  error.hidden = false;
}

// ---- Start ----

function start() {
  if ($('#login-form')) { $('#login-form').addEventListener('submit', login); return; }
  $('#add-form').addEventListener('submit', attempt(addLink));
  $('#file-input').addEventListener('change', (e) => attempt(addFile)(e.target.files[0]));
  $('#search-form').addEventListener('submit', attempt(search));
  $('#search-clear').addEventListener('click', clearSearch);
  $('#filter-category').addEventListener('change', renderList);
  $('#filter-tag').addEventListener('change', renderList);
  $('#error-close').addEventListener('click', () => { $('#error').hidden = true; });
  $('#player-close').addEventListener('click', closePlayer);
  $('#logout').addEventListener('click', () => {
    fetch('/api/logout', {method: 'POST', credentials: 'same-origin'}).finally(() => { location.href = '/login'; });
  });
  const overlay = $('#drop-overlay');
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  document.addEventListener('dragover', (e) => { if (hasFiles(e)) { e.preventDefault(); overlay.hidden = false; } });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) overlay.hidden = true; });
  document.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    overlay.hidden = true;
    attempt(addFile)(e.dataTransfer.files[0]);
  });
  $('#subscribe-form').addEventListener('submit', attempt(subscribe));
  $('#create-form').addEventListener('submit', attempt(createChannel));
  $('#post-form').addEventListener('submit', attempt(postToChannel));
  $('#item-form').addEventListener('submit', attempt(addItemToChannel));
  $('#reply-cancel').addEventListener('click', () => setReplyTo(null));
  $('#channel-remove').addEventListener('click', () => attempt(removeChannel)(openChannel));
  $('#channel-copy').addEventListener('click', copyLink);
  $('#channel-link').addEventListener('focus', (e) => e.target.select());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && openChannel) refreshChannel();
  });
  window.addEventListener('hashchange', route);
  route();
  connect();
  refreshIndexStats();
  refreshChannels();
}

start();
