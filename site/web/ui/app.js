// skyfed dashboard: renders the state embedded in the page at once, then
// polls /api/status and /api/arrivals and keeps a few minutes of history
// per link for the sparklines. Rates are the server's; ages and history
// are in the server's clock (the "now" of /api/arrivals), so nothing
// depends on the browser's timers or clock.
'use strict';
(function () {
  const HISTORY_MS = 5 * 60 * 1000; // sparkline span
  const RATIO_WINDOW_MS = 60 * 1000; // raw/wire ratios are taken over about this long
  const RATIO_MIN_BYTES = 1 << 20;   // ... once this many wire bytes moved in it
  const ARRIVALS = 25;
  const SVG = 'http://www.w3.org/2000/svg';

  const boot = JSON.parse(document.getElementById('boot').textContent);
  const refresh = boot.refresh_ms || 1500;
  const self = boot.status.site;
  const history = new Map(); // link key -> samples, oldest first
  const siteHistory = [];    // site totals, oldest first
  const seenSites = new Map(); // site -> {via, manifests, last_at}, kept for the page's life

  // ---- formatting ----
  const fmtInt = (n) => Number(n || 0).toLocaleString('en-US');
  function fmtBytes(n) {
    n = Number(n || 0);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
  }
  function fmtRate(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return '–';
    n = Number(n);
    const units = ['B/s', 'kB/s', 'MB/s', 'GB/s'];
    let i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + ' ' + units[i];
  }
  function fmtDur(s) {
    s = Number(s || 0);
    if (s < 10) return s.toFixed(1) + ' s';
    if (s < 120) return s.toFixed(0) + ' s';
    if (s < 7200) return Math.floor(s / 60) + ' min ' + Math.floor(s % 60) + ' s';
    if (s < 172800) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d';
  }
  function fmtAgo(ms) {
    const s = Math.max(0, ms / 1000);
    if (s < 1) return 'now';
    if (s < 90) return s.toFixed(0) + ' s ago';
    if (s < 5400) return Math.round(s / 60) + ' min ago';
    if (s < 129600) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }
  const fmtClock = (ms) => new Date(ms).toLocaleTimeString('en-GB', { hour12: false });

  // ---- DOM helpers (text only through textContent: names come from peers) ----
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v; else e.setAttribute(k, String(v));
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  // num is a number shown with its exact value in data-value, for tests and scrapers.
  const num = (field, value, text, cls) => el('span', { class: 'v ' + (cls || ''), 'data-field': field, 'data-value': value }, text);

  // ---- history ----
  const linkKey = (l) => l.peer + '/' + (l.direction || 'in');

  function ingest(status, arrivals) {
    const t = arrivals.now;
    for (const l of status.links || []) {
      const key = linkKey(l);
      let h = history.get(key);
      if (!h) { h = []; history.set(key, h); }
      const prev = h[h.length - 1];
      if (prev && (l.sent_raw_bytes < prev.sentRaw || l.received_raw_bytes < prev.recvRaw)) h.length = 0; // link restarted
      if (prev && prev.t >= t) continue;
      h.push({
        t, backlog: l.backlog, lag: l.lag_seconds, sendRate: l.send_rate || 0, recvRate: l.receive_rate || 0,
        sentRaw: l.sent_raw_bytes || 0, recvRaw: l.received_raw_bytes || 0,
        sentWire: l.sent_wire_bytes || 0, recvWire: l.received_wire_bytes || 0,
      });
      while (h.length > 2 && h[0].t < t - HISTORY_MS) h.shift();
    }
    const last = siteHistory[siteHistory.length - 1];
    if (!last || last.t < t) {
      let inRate = 0, outRate = 0;
      for (const l of status.links || []) { inRate += l.receive_rate || 0; outRate += l.send_rate || 0; }
      siteHistory.push({ t, inRate, outRate, stored: status.stored_bytes, raw: status.raw_bytes });
      while (siteHistory.length > 2 && siteHistory[0].t < t - HISTORY_MS) siteHistory.shift();
    }
    for (const s of arrivals.sites || []) {
      const known = seenSites.get(s.site);
      if (!known || known.last_at <= s.last_at) seenSites.set(s.site, s);
    }
  }

  // rawRate estimates raw (uncompressed) bytes/s from the server's wire
  // rate and the raw/wire ratio of what the link carried over the last
  // RATIO_WINDOW_MS (or over its life when little moved lately): raw
  // counters move a whole chunk at a time, too coarse for a rate of their own.
  function rawRate(h, wireRate, rawField, wireField, totalRaw, totalWire) {
    if (!wireRate) return 0;
    let ratio = totalWire > 0 ? totalRaw / totalWire : null;
    if (h && h.length >= 2) {
      const last = h[h.length - 1];
      const first = h.find((s) => last.t - s.t <= RATIO_WINDOW_MS) || h[0];
      const dWire = last[wireField] - first[wireField];
      if (dWire >= RATIO_MIN_BYTES) ratio = (last[rawField] - first[rawField]) / dWire;
    }
    return ratio === null ? null : wireRate * ratio;
  }

  // ---- sparklines ----
  function spark(values, cls, w, h) {
    w = w || 96; h = h || 22;
    const s = svg('svg', { class: 'spark ' + (cls || ''), viewBox: `0 0 ${w} ${h}`, width: w, height: h, 'aria-hidden': 'true' });
    if (values.length < 2) {
      s.append(svg('line', { x1: 0, y1: h - 1.5, x2: w, y2: h - 1.5, class: 'spark-base' }));
      return s;
    }
    const max = Math.max(...values, 1e-9) * 1.15;
    const step = w / (values.length - 1);
    const pts = values.map((v, i) => [i * step, h - 1.5 - (Math.max(0, v) / max) * (h - 4)]);
    const line = pts.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' ');
    s.append(svg('polygon', { points: `0,${h} ${line} ${w},${h}`, class: 'spark-area' }));
    s.append(svg('polyline', { points: line, class: 'spark-line' }));
    const lp = pts[pts.length - 1];
    s.append(svg('circle', { cx: lp[0].toFixed(1), cy: lp[1].toFixed(1), r: 1.8, class: 'spark-dot' }));
    return s;
  }

  // ---- cards ----
  function renderCards(st) {
    const links = st.links || [];
    const up = links.filter((l) => l.state === 'up').length;
    const backlog = links.reduce((a, l) => a + (l.backlog || 0), 0);
    const maxLag = links.reduce((a, l) => Math.max(a, l.lag_seconds || 0), 0);
    const inRate = links.reduce((a, l) => a + (l.receive_rate || 0), 0);
    const outRate = links.reduce((a, l) => a + (l.send_rate || 0), 0);
    const incomplete = st.incomplete_versions || 0; // versions known here whose chunks are not all here yet
    const ratio = st.stored_bytes > 0 ? st.raw_bytes / st.stored_bytes : 1;
    const saved = st.raw_bytes > 0 ? 1 - st.stored_bytes / st.raw_bytes : 0;
    const card = (key, label, value, text, sub, extra, cls) => el('div', { class: 'card ' + (cls || ''), 'data-stat': key, 'data-value': value },
      el('div', { class: 'card-label' }, label), el('div', { class: 'card-value' }, text),
      el('div', { class: 'card-sub' }, sub || '\u00a0'), extra);
    const cards = [
      card('objects', 'Objects', st.objects, fmtInt(st.objects), fmtInt(st.versions) + ' versions'),
      card('chunks', 'Chunks', st.chunks, fmtInt(st.chunks), 'unique, by SHA-256'),
      card('raw_bytes', 'Raw data', st.raw_bytes, fmtBytes(st.raw_bytes), 'before compression'),
      card('stored_bytes', 'Stored on disk', st.stored_bytes, fmtBytes(st.stored_bytes), 'after compression'),
      card('compression', 'Compression', ratio.toFixed(3), ratio.toFixed(2) + '×', saved > 0 ? 'saves ' + (saved * 100).toFixed(1) + '%' : 'raw / stored'),
      card('links_up', 'Links up', up, up + ' / ' + links.length, links.length ? (links.length - up) + ' not up' : 'no links', null,
        links.length && up < links.length ? 'warn' : ''),
      card('backlog', 'Backlog', backlog, fmtInt(backlog), 'max lag ' + fmtDur(maxLag), null, backlog > 0 ? 'busy' : ''),
      card('incomplete_versions', 'Incomplete', incomplete, fmtInt(incomplete),
        incomplete > 0 ? fmtBytes(st.incomplete_bytes || 0) + ' missing' : 'all versions readable', null, incomplete > 0 ? 'busy' : ''),
      unrepairableCard(st, card),
      card('disk_free_bytes', 'Disk free', st.disk_free_bytes || 0, fmtBytes(st.disk_free_bytes || 0),
        st.disk_full ? 'FULL: below the ' + fmtBytes(st.disk_reserve_bytes || 0) + ' reserve; puts refused' : 'reserve ' + fmtBytes(st.disk_reserve_bytes || 0),
        null, st.disk_full ? 'bad' : ''),
      card('receive_rate', 'Receiving', inRate, fmtRate(inRate), 'wire, all links', spark(siteHistory.map((s) => s.inRate), 'in', 120, 22)),
      card('send_rate', 'Sending', outRate, fmtRate(outRate), 'wire, all links', spark(siteHistory.map((s) => s.outRate), 'out', 120, 22)),
    ];
    const store = st.store || {};
    if (store.kind === 's3') {
      // The bucket the packs live in: its mean latency, requests and errors.
      const c = card('bucket', 'Bucket', (store.mean_latency_ms || 0).toFixed(1), (store.mean_latency_ms || 0).toFixed(1) + ' ms',
        fmtInt(store.requests) + ' requests, ' + fmtInt(store.errors) + ' errors', null, store.errors > 0 ? 'warn' : '');
      c.title = store.where + (store.last_error ? '\nlast error: ' + store.last_error : '');
      cards.push(c);
    }
    document.getElementById('cards').replaceChildren(...cards);
  }

  // Chunks lost here that no reachable site could send: the objects that
  // use them are named, since that is what an operator acts on.
  function unrepairableCard(st, card) {
    const n = st.unrepairable_chunks || 0;
    const names = [];
    for (const u of st.unrepairable || []) {
      for (const name of u.names || []) if (!names.includes(name)) names.push(name);
    }
    const sub = n > 0 ? (names.length ? names.length + ' objects affected' : 'objects not known yet (skyfed tools scrub names them)')
      : fmtInt(st.repaired_chunks || 0) + ' repaired since start';
    const list = n > 0 ? el('ul', { class: 'card-list', 'data-field': 'unrepairable_names' },
      ...names.slice(0, 5).map((name) => el('li', { title: name }, name))) : null;
    return card('unrepairable_chunks', 'Unrepairable', n, fmtInt(n), sub, list, n > 0 ? 'bad' : '');
  }

  // ---- links table ----
  function stateOf(l) { return l.state || 'down'; }

  const RAW_TITLE = 'raw bytes/s: the wire rate times the raw/wire ratio of the last minute';

  function linkRow(l) {
    const h = history.get(linkKey(l)) || [];
    const dir = l.direction === 'out' ? 'dialed by this site' : 'dialed by ' + l.peer;
    const arrow = l.direction === 'out' ? '→' : '←';
    const cap = l.max_rate ? 'cap ' + fmtRate(l.max_rate) : 'no cap';
    const sendRaw = rawRate(h, l.send_rate, 'sentRaw', 'sentWire', l.sent_raw_bytes, l.sent_wire_bytes);
    const recvRaw = rawRate(h, l.receive_rate, 'recvRaw', 'recvWire', l.received_raw_bytes, l.received_wire_bytes);
    const dup = el('td', { class: 'num' }, num('duplicates', l.duplicates || 0, fmtInt(l.duplicates), l.duplicates ? 'warn' : 'zero'));
    if (l.duplicate_bytes) dup.append(el('div', { class: 'sub' }, fmtBytes(l.duplicate_bytes)));
    const rej = el('td', { class: 'num' }, num('rejected', l.rejected || 0, fmtInt(l.rejected), l.rejected ? 'bad' : 'zero'));
    if (l.refused) rej.append(el('div', { class: 'sub bad' }, num('refused', l.refused, fmtInt(l.refused) + ' dials refused')));
    return el('tr', { class: 'link state-' + stateOf(l), 'data-peer': l.peer, 'data-direction': l.direction, 'data-state': stateOf(l) },
      el('td', { class: 'who' },
        el('div', { class: 'peer' }, el('span', { class: 'arrow', title: dir }, arrow), ' ', el('b', null, l.peer)),
        el('div', { class: 'sub' }, (l.direction || 'in') + ' · ' + (l.mode || 'offer') + ' · ' + cap)),
      stateCell(l),
      el('td', { class: 'num' }, num('backlog', l.backlog || 0, fmtInt(l.backlog)), spark(h.map((s) => s.backlog), 'backlog', 86, 20)),
      el('td', { class: 'num' }, num('lag_seconds', l.lag_seconds || 0, fmtDur(l.lag_seconds)), spark(h.map((s) => s.lag), 'lag', 86, 20)),
      el('td', { class: 'num' }, num('send_rate', l.send_rate || 0, fmtRate(l.send_rate || 0)),
        el('span', { class: 'sub raw', 'data-field': 'send_raw_rate', title: RAW_TITLE }, ' · ' + fmtRate(sendRaw)), spark(h.map((s) => s.sendRate), 'out', 110, 20)),
      el('td', { class: 'num' }, num('receive_rate', l.receive_rate || 0, fmtRate(l.receive_rate || 0)),
        el('span', { class: 'sub raw', 'data-field': 'receive_raw_rate', title: RAW_TITLE }, ' · ' + fmtRate(recvRaw)), spark(h.map((s) => s.recvRate), 'in', 110, 20)),
      el('td', { class: 'num' }, num('sent_chunks', l.sent_chunks || 0, fmtInt(l.sent_chunks)), ' · ', num('received_chunks', l.received_chunks || 0, fmtInt(l.received_chunks)),
        el('div', { class: 'sub' }, fmtBytes(l.sent_wire_bytes) + ' · ' + fmtBytes(l.received_wire_bytes) + ' wire')),
      el('td', { class: 'num' }, num('sent_manifests', l.sent_manifests || 0, fmtInt(l.sent_manifests)), ' · ', num('received_manifests', l.received_manifests || 0, fmtInt(l.received_manifests)),
        el('div', { class: 'sub' }, fmtInt(l.offered) + ' offered · ' + fmtInt(l.wanted) + ' wanted')),
      dup, rej);
  }

  // The state, then why it is not up (reason and the last error, whose
  // full text is the tooltip), since when, and the peer's clock offset.
  function stateCell(l) {
    const td = el('td', { class: 'state-cell' }, el('span', { class: 'pill ' + stateOf(l), 'data-field': 'state', 'data-value': stateOf(l) }, stateOf(l)));
    if (l.reason) td.append(el('div', { class: 'sub bad reason', 'data-field': 'reason', 'data-value': l.reason }, l.reason));
    if (l.last_error && (l.reason || stateOf(l) !== 'up')) {
      td.append(el('div', { class: 'sub last-error', 'data-field': 'last_error', 'data-value': l.last_error, title: l.last_error }, l.last_error));
    }
    const since = l.since ? new Date(l.since) : null;
    if (since && since.getFullYear() > 1) {
      const ago = Math.max(0, (Date.now() - since.getTime()) / 1000);
      td.append(el('div', { class: 'sub', 'data-field': 'since', 'data-value': l.since, title: since.toISOString() }, 'since ' + fmtDur(ago) + ' ago'));
    }
    if (typeof l.clock_offset_seconds === 'number') {
      const off = l.clock_offset_seconds;
      td.append(el('div', { class: 'sub' + (l.reason === 'clock skew' ? ' bad' : ''), 'data-field': 'clock_offset_seconds', 'data-value': off,
        title: "the peer's clock minus this site's" }, 'clock ' + (off >= 0 ? '+' : '−') + fmtDur(Math.abs(off))));
    }
    td.append(reconLine(l));
    return td;
  }

  // reconLine says what the last reconciliation with the peer found, and
  // how long ago: "in sync", or what each side lacked.
  function reconLine(l) {
    const at = l.reconciled_at ? new Date(l.reconciled_at) : null;
    if (!at || at.getFullYear() <= 1 || typeof l.in_sync !== 'boolean') {
      return el('div', { class: 'sub', 'data-field': 'in_sync', 'data-value': 'none' }, 'not reconciled yet');
    }
    const ago = ' · ' + fmtDur(Math.max(0, (Date.now() - at.getTime()) / 1000)) + ' ago';
    if (l.in_sync) {
      return el('div', { class: 'sub', 'data-field': 'in_sync', 'data-value': 'true', title: at.toISOString() }, 'in sync' + ago);
    }
    const side = (c) => fmtInt(c.versions) + ' v, ' + fmtInt(c.chunks) + ' ch (' + fmtBytes(c.bytes) + ')';
    const there = l.peer_lacks || { versions: 0, chunks: 0, bytes: 0 };
    const here = l.local_lacks || { versions: 0, chunks: 0, bytes: 0 };
    return el('div', { class: 'sub bad', 'data-field': 'in_sync', 'data-value': 'false', title: at.toISOString() },
      'peer lacks ' + side(there) + ' · here ' + side(here) + ago);
  }

  function renderLinks(st) {
    const links = st.links || [];
    document.getElementById('links-body').replaceChildren(...links.map(linkRow));
    document.getElementById('links-empty').hidden = links.length > 0;
    document.getElementById('links-hint').textContent = links.length ? 'rates: wire bytes/s · raw bytes/s' : '';
  }

  // ---- graph ----
  function peerNodes(st) {
    const peers = new Map();
    for (const l of st.links || []) {
      const p = peers.get(l.peer) || { name: l.peer, states: new Set(), send: 0, recv: 0, backlog: 0 };
      p.states.add(stateOf(l));
      p.send += l.send_rate || 0; p.recv += l.receive_rate || 0; p.backlog += l.backlog || 0;
      peers.set(l.peer, p);
    }
    for (const p of peers.values()) {
      p.state = p.states.has('up') ? 'up' : p.states.has('down') ? 'down' : 'refused';
    }
    return [...peers.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  // label writes lines of text next to a node: below it, or above when
  // the node sits in the upper part of the graph.
  // side 'left' or 'right' writes them beside it instead (the map).
  function label(x, y, r, lines, above, side) {
    const g = svg('g', { class: 'label' });
    let y0 = above ? y - r - 8 - (lines.length - 1) * 13 : y + r + 14, anchor = 'middle';
    if (side) {
      y0 = y + 4 - ((lines.length - 1) * 13) / 2;
      anchor = side === 'left' ? 'end' : 'start';
      x += side === 'left' ? -(r + 6) : r + 6;
    }
    lines.forEach((ln, i) => g.append(svg('text', { x: x.toFixed(1), y: (y0 + i * 13).toFixed(1), class: ln.cls, 'text-anchor': anchor }, ln.text)));
    return g;
  }

  // labelSide picks where a site's label goes on the map: right of it,
  // or left when another site sits close on the right and none on the
  // left, or below when both sides are taken.
  function labelSide(p, all) {
    const near = (dir) => all.some((q) => q !== p && Math.abs(q.y - p.y) < 45 && dir * (q.x - p.x) > 0 && dir * (q.x - p.x) < 170);
    if (!near(1)) return 'right';
    if (!near(-1)) return 'left';
    return '';
  }

  // layout places direct peers on an inner ellipse around this site and
  // sites seen only through arrivals outside, next to the peer they came by.
  function layout(peers, learned, W, H) {
    const cx = W / 2, cy = H / 2 - 6;
    const inner = learned.length ? [104, 70] : [128, 88], outer = [170, 112];
    const pos = new Map();
    const start = peers.length === 2 ? Math.PI : -Math.PI / 2;
    peers.forEach((p, i) => {
      const a = start + (2 * Math.PI * i) / Math.max(1, peers.length);
      pos.set(p.name, { x: cx + inner[0] * Math.cos(a), y: cy + inner[1] * Math.sin(a), a });
    });
    const byVia = new Map();
    for (const s of learned) {
      const via = (s.via || []).find((v) => pos.has(v)) || '';
      if (!byVia.has(via)) byVia.set(via, []);
      byVia.get(via).push(s);
    }
    let orphan = 0;
    for (const [via, sites] of byVia) {
      sites.forEach((s, j) => {
        const spread = sites.length === 1 ? 0.55 : -0.6 + (1.2 * j) / (sites.length - 1);
        const a = via ? pos.get(via).a + spread : Math.PI / 4 + 0.5 * orphan++;
        pos.set(s.site, { x: cx + outer[0] * Math.cos(a), y: cy + outer[1] * Math.sin(a), a, via });
      });
    }
    return { cx, cy, pos };
  }

  function renderGraph(st) {
    const g = document.getElementById('graph');
    const W = 400, H = 300;
    const peers = peerNodes(st);
    const direct = new Set(peers.map((p) => p.name));
    const learned = [...seenSites.values()].filter((s) => s.site !== self && !direct.has(s.site))
      .sort((a, b) => a.site.localeCompare(b.site));
    const { cx, cy, pos } = layout(peers, learned, W, H);
    const edges = svg('g', { class: 'edges' }), nodes = svg('g', { class: 'nodes' }), labels = svg('g', { class: 'labels' });
    for (const s of learned) {
      const { x, y, via } = pos.get(s.site);
      const from = via ? pos.get(via) : { x: cx, y: cy };
      edges.append(svg('line', { x1: from.x, y1: from.y, x2: x, y2: y, class: 'edge seen' }));
      nodes.append(svg('g', { class: 'node seen', 'data-site': s.site, 'data-state': 'seen', 'data-kind': 'seen', 'data-via': (s.via || []).join(',') },
        svg('title', null, s.site + ': versions arrive via ' + (s.via || []).join(', ')),
        svg('circle', { cx: x, cy: y, r: 12 })));
      labels.append(label(x, y, 12, [{ text: s.site, cls: 'name small' }, { text: 'via ' + (s.via || []).join(', '), cls: 'meta' }], y < cy - 20));
    }
    for (const p of peers) {
      const { x, y } = pos.get(p.name);
      const moving = p.send + p.recv > 0;
      const width = 1.6 + Math.min(4, Math.log10(1 + (p.send + p.recv) / 1e4));
      edges.append(svg('line', { x1: cx, y1: cy, x2: x, y2: y, class: 'edge ' + p.state + (moving ? ' flow' : ''), 'stroke-width': width.toFixed(1) }));
      nodes.append(svg('g', { class: 'node peer ' + p.state, 'data-site': p.name, 'data-state': p.state, 'data-kind': 'peer' },
        svg('title', null, p.name + ': ' + [...p.states].join(', ')),
        svg('circle', { cx: x, cy: y, r: 18 })));
      const lines = [{ text: p.name, cls: 'name' }, { text: '↑ ' + fmtRate(p.send) + '  ↓ ' + fmtRate(p.recv), cls: 'meta' }];
      if (p.backlog) lines.push({ text: 'backlog ' + fmtInt(p.backlog), cls: 'meta warn' });
      labels.append(label(x, y, 18, lines, y < cy - 20));
    }
    nodes.append(svg('g', { class: 'node self', 'data-site': self, 'data-kind': 'self' },
      svg('title', null, 'this site'),
      svg('circle', { cx, cy, r: 26 }), svg('text', { x: cx, y: cy + 4, 'text-anchor': 'middle', class: 'self-name' }, self)));
    if (!peers.length) labels.append(svg('text', { x: cx, y: cy + 52, 'text-anchor': 'middle', class: 'meta' }, 'no links yet'));
    g.replaceChildren(edges, nodes, labels);
    fitGraph(g);
  }

  // fitGraph sets the graph's viewBox to what is drawn, with a margin, so
  // that it fills its panel and no name is cut at an edge; a small graph
  // keeps a minimum size rather than being blown up. data-fill says how
  // much of the view the drawing covers.
  function fitGraph(g) {
    let b;
    try { b = g.getBBox(); } catch (e) { return; } // not rendered (hidden)
    if (!b.width || !b.height) return;
    const pad = 10, minW = 260, minH = 180;
    const w = Math.max(b.width + 2 * pad, minW), h = Math.max(b.height + 2 * pad, minH);
    const x = b.x + b.width / 2 - w / 2, y = b.y + b.height / 2 - h / 2;
    g.setAttribute('viewBox', [x, y, w, h].map((v) => v.toFixed(1)).join(' '));
    g.dataset.fill = ((b.width * b.height) / (w * h)).toFixed(2);
  }

  // ---- the whole federation (/api/federation) ----
  let fedView = null, fedPicked = '';

  // fedState is a link's class: up, refused, or down.
  const fedState = (l) => (l.state === 'up' ? 'up' : l.state === 'refused' ? 'refused' : 'down');

  // ---- the world outline: land-110m.json from the npm package world-atlas
  // (ISC; Natural Earth shapes, public domain), embedded with the page ----
  let land = null; // rings of [lon, lat]
  fetch('/ui/land-110m.json').then((r) => (r.ok ? r.json() : null)).then((topo) => {
    if (!topo) return;
    land = decodeLand(topo);
    if (fedView) renderFederation(fedView);
  }).catch(() => {});

  // decodeLand turns the TopoJSON object "land" (quantized, delta-coded
  // arcs shared between rings) into rings of [lon, lat].
  function decodeLand(topo) {
    const [sx, sy] = topo.transform.scale, [tx, ty] = topo.transform.translate;
    const arcs = topo.arcs.map((a) => {
      let x = 0, y = 0;
      return a.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
    });
    const arc = (i) => (i < 0 ? arcs[~i].slice().reverse() : arcs[i]);
    const rings = [];
    const ring = (ids) => {
      const pts = [];
      for (const i of ids) { const a = arc(i); pts.push(...(pts.length ? a.slice(1) : a)); }
      rings.push(pts);
    };
    for (const g of topo.objects.land.geometries) {
      if (g.type === 'Polygon') g.arcs.forEach(ring);
      else if (g.type === 'MultiPolygon') g.arcs.forEach((p) => p.forEach(ring));
    }
    return rings;
  }

  // parseLocation reads a site's "LAT,LON" (degrees), or null.
  function parseLocation(s) {
    const m = /^\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*$/.exec(s || '');
    if (!m) return null;
    const lat = Number(m[1]), lon = Number(m[2]);
    return Math.abs(lat) <= 90 && Math.abs(lon) <= 180 ? { lat, lon } : null;
  }

  // mapWindow picks the part of the world to draw, in degrees: the sites'
  // box with a margin, at least a third of the world wide, in the
  // canvas's proportions (an equirectangular map: a degree is a degree).
  function mapWindow(locs, W, H) {
    const lons = locs.map((l) => l.lon), lats = locs.map((l) => l.lat);
    let w = Math.max(Math.max(...lons) - Math.min(...lons) + 50, 120);
    let h = Math.max(Math.max(...lats) - Math.min(...lats) + 30, (w * H) / W);
    w = Math.max(w, (h * W) / H);
    h = (w * H) / W;
    const cx = (Math.max(...lons) + Math.min(...lons)) / 2, cy = (Math.max(...lats) + Math.min(...lats)) / 2;
    const lon0 = w >= 360 ? cx - w / 2 : Math.min(Math.max(cx - w / 2, -180), 180 - w);
    const lat1 = h >= 180 ? cy + h / 2 : Math.min(Math.max(cy + h / 2, -90 + h), 90);
    return { lon0, lat1, k: W / w };
  }

  // landPath draws the outline inside the window as one SVG path.
  function landPath(win, W, H) {
    const px = (p) => [(p[0] - win.lon0) * win.k, (win.lat1 - p[1]) * win.k];
    let d = '';
    for (const r of land) {
      const pts = r.map(px);
      if (pts.every(([x]) => x < 0) || pts.every(([x]) => x > W) || pts.every(([, y]) => y < 0) || pts.every(([, y]) => y > H)) continue;
      // A ring that crosses the antimeridian jumps across the map there:
      // each side becomes its own piece (the fill closes it along the edge).
      r.forEach((p, i) => {
        const [x, y] = pts[i];
        d += (i === 0 || Math.abs(p[0] - r[i - 1][0]) > 180 ? 'M' : 'L') + x.toFixed(1) + ',' + y.toFixed(1);
      });
    }
    return d;
  }

  // separate pushes apart nodes drawn closer than gap (sites a few km
  // apart, or sharing a location), so each stays visible and clickable;
  // a moved node keeps a thin line to where it is.
  function separate(points, gap) {
    for (let round = 0; round < 40; round++) {
      let moved = false;
      for (let i = 0; i < points.length; i++) {
        for (let j = i + 1; j < points.length; j++) {
          const a = points[i], b = points[j];
          let dx = b.x - a.x, dy = b.y - a.y, d = Math.hypot(dx, dy);
          if (d >= gap) continue;
          if (d < 0.01) { dx = Math.cos(j * 2.4); dy = Math.sin(j * 2.4); d = 1; }
          const push = (gap - d) / 2 + 0.5;
          a.x -= (dx / d) * push; a.y -= (dy / d) * push;
          b.x += (dx / d) * push; b.y += (dy / d) * push;
          moved = true;
        }
      }
      if (!moved) return;
    }
  }

  // renderFederation draws every site the beacons told of and every link
  // as its dialing site reports it, coloured by state, with its reason,
  // backlog or rate. Sites with a location are drawn there on the world
  // outline (those without in a row under it); when no site has one, or
  // before the outline loaded, on a circle in a stable order (by ID).
  function renderFederation(f) {
    const g = document.getElementById('fed');
    if (!f) return;
    fedView = f;
    const now = Date.parse(f.now);
    const names = new Set(f.sites.map((s) => s.site));
    const links = (f.links || []).filter((l) => l.direction !== 'in');
    for (const l of links) names.add(l.to); // a peer no beacon told of yet
    const order = [...names].sort();
    const bySite = new Map(f.sites.map((s) => [s.site, s]));
    const locs = new Map();
    for (const n of order) { const loc = parseLocation(bySite.get(n) && bySite.get(n).location); if (loc) locs.set(n, loc); }
    const map = land && locs.size > 0, W = map ? 960 : 600, pos = new Map(), extra = [];
    let H = map ? 480 : 360, cy = H / 2, layout = 'circle';
    if (map) {
      layout = 'map';
      const win = mapWindow([...locs.values()], W, H);
      extra.push(svg('rect', { class: 'sea', x: 0, y: 0, width: W, height: H }), svg('path', { class: 'land', d: landPath(win, W, H) }));
      const unplaced = order.filter((n) => !locs.has(n));
      for (const [n, l] of locs) {
        const x = (l.lon - win.lon0) * win.k, y = (win.lat1 - l.lat) * win.k;
        pos.set(n, { x, y, x0: x, y0: y });
      }
      if (unplaced.length) {
        extra.push(svg('text', { x: 8, y: H + 18, class: 'meta' }, 'no location set (skyfed site location --dir D LAT,LON):'));
        unplaced.forEach((n, i) => pos.set(n, { x: (W * (i + 1)) / (unplaced.length + 1), y: H + 44, unplaced: true }));
        H += 80;
      }
      separate([...pos.values()], 44);
      for (const p of pos.values()) {
        if (!p.unplaced && Math.hypot(p.x - p.x0, p.y - p.y0) > 3) {
          extra.push(svg('line', { class: 'leader', x1: p.x0, y1: p.y0, x2: p.x, y2: p.y }), svg('circle', { class: 'spot', cx: p.x0, cy: p.y0, r: 2.5 }));
        }
      }
    } else {
      const cx = W / 2, R = order.length > 1 ? 130 : 0;
      order.forEach((n, i) => {
        const a = -Math.PI / 2 + (2 * Math.PI * i) / order.length;
        pos.set(n, { x: cx + R * 1.45 * Math.cos(a), y: cy + R * Math.sin(a) });
      });
    }
    g.dataset.layout = layout;
    const edges = svg('g', { class: 'edges' }), nodes = svg('g', { class: 'nodes' }), labels = svg('g', { class: 'labels' });
    for (const l of links) {
      const a = pos.get(l.from), b = pos.get(l.to), st = fedState(l);
      edges.append(svg('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: 'edge ' + st + (l.send_rate > 0 ? ' flow' : ''),
        'data-from': l.from, 'data-to': l.to, 'data-state': l.state, 'data-reason': l.reason || '' },
      svg('title', null, l.from + ' → ' + l.to + ': ' + l.state + (l.reason ? ' (' + l.reason + ')' : ''))));
      const text = st !== 'up' ? (l.reason || l.state) : l.backlog ? 'backlog ' + fedBacklog(l) : l.send_rate > 0 ? fmtRate(l.send_rate) : '';
      if (text) {
        labels.append(svg('text', { x: ((a.x + b.x) / 2).toFixed(1), y: ((a.y + b.y) / 2 - 4).toFixed(1), 'text-anchor': 'middle',
          class: 'meta fed-link ' + st, 'data-from': l.from, 'data-to': l.to }, text));
      }
    }
    for (const n of order) {
      const s = bySite.get(n), { x, y } = pos.get(n);
      const state = s ? (s.state === 'up' ? 'up' : 'down') : 'seen';
      nodes.append(svg('g', { class: 'node fed ' + state + (s && s.self ? ' me' : '') + (pos.get(n).unplaced ? ' nolocation' : ''), 'data-site': n, 'data-state': s ? s.state : 'unknown',
        'data-x': x.toFixed(1), 'data-y': y.toFixed(1), tabindex: 0 },
        svg('title', null, n + (s ? ': ' + s.state : ': no beacon heard')),
        svg('circle', { cx: x, cy: y, r: s && s.self ? 20 : 16 })));
      const lines = [{ text: n + (s && s.self ? ' (this site)' : ''), cls: 'name' }];
      if (!s) lines.push({ text: 'no beacon heard', cls: 'meta' });
      else if (s.state !== 'up') lines.push({ text: 'unreachable, last seen ' + fmtAgo(now - Date.parse(s.last_seen)), cls: 'meta warn fed-seen' });
      if (s && s.incomplete_versions !== null && s.incomplete_versions !== undefined) {
        lines.push(s.incomplete_versions > 0
          ? { text: 'lacks ' + fmtInt(s.incomplete_versions) + ' versions, ' + fmtBytes(s.incomplete_bytes), cls: 'meta warn' }
          : { text: fmtInt(s.versions) + ' versions, complete', cls: 'meta' });
      }
      labels.append(label(x, y, 18, lines, layout === 'map' ? y > H - 60 : y < cy - 20, layout === 'map' ? labelSide(pos.get(n), [...pos.values()]) : ''));
    }
    g.replaceChildren(...extra, edges, nodes, labels);
    if (layout === 'map') g.setAttribute('viewBox', '0 0 ' + W + ' ' + H); else fitGraph(g);
    for (const node of g.querySelectorAll('.node.fed')) {
      node.addEventListener('click', () => { fedPicked = node.dataset.site; renderFedDetail(); });
    }
    document.getElementById('fed-hint').textContent = f.sites.length + ' sites, ' + links.length + ' links, as ' + f.site + ' hears them';
    renderFedDetail();
  }

  // fedBacklog is a link's backlog in entries and, when counted, bytes.
  const fedBacklog = (l) => fmtInt(l.backlog) + (l.backlog_bytes ? ' (' + fmtBytes(l.backlog_bytes) + ')' : '');

  // renderFedDetail shows the picked site's fields and links as a table.
  function renderFedDetail() {
    const box = document.getElementById('fed-detail');
    const s = fedView && fedView.sites.find((x) => x.site === fedPicked);
    if (!s) { box.replaceChildren(); return; }
    const rows = [['state', s.state], ['last seen', s.last_seen], ['location', s.location || '–'], ['build', s.version || '–'],
      ['versions', s.versions === null ? '–' : fmtInt(s.versions)],
      ['lacks', s.incomplete_versions === null ? '–' : fmtInt(s.incomplete_versions) + ' versions, ' + fmtBytes(s.incomplete_bytes)]];
    const t = el('table', { class: 'grid', 'data-site': s.site }, el('caption', null, s.site),
      el('tbody', null, ...rows.map(([k, v]) => el('tr', null, el('th', null, k), el('td', null, v)))));
    const lt = el('table', { class: 'grid' }, el('thead', null, el('tr', null, ...['to', 'direction', 'state', 'reason', 'since', 'backlog', 'sending'].map((h) => el('th', null, h)))),
      el('tbody', null, ...(fedView.links || []).filter((l) => l.from === s.site).map((l) => el('tr', null,
        el('td', null, l.to), el('td', null, l.direction), el('td', null, l.state), el('td', null, l.reason || '–'),
        el('td', null, l.since || '–'), el('td', { class: 'num' }, fedBacklog(l)), el('td', { class: 'num' }, l.send_rate > 0 ? fmtRate(l.send_rate) : 'idle')))));
    box.replaceChildren(t, lt);
  }

  // markClipped gives every text cut short by its box its full text as a
  // tooltip and data-clipped="true" (what the page's layout must avoid;
  // tests look for it). Graph text is clipped when it leaves the view.
  function markClipped() {
    for (const e of document.querySelectorAll('.card-value, .card-sub, td.when, td.size, .links td.num .v')) {
      const clipped = e.scrollWidth > e.clientWidth + 1;
      if (clipped) { e.dataset.clipped = 'true'; if (!e.title) e.title = e.textContent; } else delete e.dataset.clipped;
    }
    const g = document.getElementById('graph');
    const view = g.getBoundingClientRect();
    for (const e of g.querySelectorAll('text')) {
      const r = e.getBoundingClientRect();
      const clipped = r.width > 0 && (r.left < view.left - 0.5 || r.right > view.right + 0.5 || r.top < view.top - 0.5 || r.bottom > view.bottom + 0.5);
      if (clipped) e.dataset.clipped = 'true'; else delete e.dataset.clipped;
    }
  }

  // ---- arrivals ----
  function via(a) { return a.peer ? a.peer : 'local put'; }

  // fitsLine shows a frame's header values (its manifest's fits.* meta)
  // under its name: the ones an observer looks for, all on hover.
  function fitsLine(fits) {
    if (!fits) return null;
    const exp = fits.EXPTIME ? fits.EXPTIME.replace(/\.$/, '') + ' s' : '';
    const line = [fits.OBJECT, fits.FILTER, exp, fits.TELESCOP || fits.INSTRUME, fits['DATE-OBS']].filter(Boolean).join(' · ');
    const all = Object.keys(fits).sort().map((k) => k + ' = ' + fits[k]).join('\n');
    return el('span', { class: 'fits', 'data-fits': line, title: all }, line);
  }

  function renderArrivals(av) {
    const now = av.now;
    document.getElementById('manifests-body').replaceChildren(...(av.manifests || []).slice(0, 8).map((a) =>
      el('tr', { 'data-kind': 'manifest', 'data-name': a.name || '', 'data-origin': a.origin || '', 'data-from': a.from },
        el('td', { class: 'when', title: fmtClock(a.at) }, fmtAgo(now - a.at)),
        el('td', { class: 'name', title: (a.name || a.id) + (a.version ? '\nversion ' + a.version : '') },
          a.name || a.id.slice(0, 16) + '…', el('span', { class: 'version' }, a.version || 'manifest ' + a.id.slice(0, 16)), fitsLine(a.fits)),
        el('td', null, el('span', { class: a.origin === self ? 'tag self' : 'tag' }, a.origin || '?')),
        el('td', { class: 'num size' }, a.deleted ? 'deleted' : a.expired ? 'expired' : fmtBytes(a.size)),
        el('td', null, el('span', { class: a.peer ? 'tag via' : 'tag local' }, via(a))))));
    if (!(av.manifests || []).length) document.getElementById('manifests-body').replaceChildren(el('tr', null, el('td', { colspan: 5, class: 'empty' }, 'nothing has arrived yet')));
    const chunks = (av.chunks || []).slice(0, 8);
    document.getElementById('chunks-body').replaceChildren(...chunks.map((a) =>
      el('tr', { 'data-kind': 'chunk', 'data-from': a.from },
        el('td', { class: 'when', title: fmtClock(a.at) }, fmtAgo(now - a.at)),
        el('td', { class: 'mono', title: a.id }, a.id.slice(0, 16)),
        el('td', null, el('span', { class: a.peer ? 'tag via' : 'tag local' }, via(a))))));
    document.getElementById('chunks-hint').textContent = 'log head #' + fmtInt((av.heads || {}).chunk);
    const sites = [...seenSites.values()].sort((a, b) => a.site.localeCompare(b.site));
    document.getElementById('sites-body').replaceChildren(...sites.map((s) =>
      el('tr', { 'data-site': s.site },
        el('td', null, el('b', null, s.site), s.site === self ? el('span', { class: 'sub' }, ' this site') : null),
        el('td', null, (s.via || []).map((v) => v === 'local' ? 'local put' : v).join(', ')),
        el('td', { class: 'num' }, fmtInt(s.manifests)),
        el('td', { class: 'when' }, fmtAgo(now - s.last_at)))));
    if (!sites.length) document.getElementById('sites-body').replaceChildren(el('tr', null, el('td', { colspan: 4, class: 'empty' }, 'no versions yet')));
  }

  // ---- loop ----
  function setLive(ok, t, err) {
    const live = document.getElementById('live');
    live.dataset.live = ok ? 'ok' : 'stale';
    document.getElementById('live-text').textContent = ok ? 'live · updated ' + fmtClock(t) : 'not updating: ' + err;
  }

  function render(st, av, fed) {
    document.body.dataset.updated = String(av.now);
    renderCards(st);
    renderLinks(st);
    renderGraph(st);
    renderFederation(fed);
    renderArrivals(av);
    markClipped();
  }

  async function getJSON(path) {
    const r = await fetch(path, { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    return r.json();
  }

  let lastOK = boot.arrivals.now;
  async function poll() {
    try {
      const [st, av, fed] = await Promise.all([getJSON('/api/status'), getJSON('/api/arrivals?limit=' + ARRIVALS),
        getJSON('/api/federation').catch(() => null)]); // a site from before beacons has none
      ingest(st, av);
      render(st, av, fed);
      lastOK = av.now;
      setLive(true, av.now);
    } catch (e) {
      setLive(false, lastOK, (e && e.message) || String(e));
    } finally {
      setTimeout(poll, refresh);
    }
  }

  ingest(boot.status, boot.arrivals);
  render(boot.status, boot.arrivals, boot.federation);
  setLive(true, boot.arrivals.now);
  document.getElementById('live').dataset.live = 'boot';
  setTimeout(poll, Math.min(refresh, 500));
})();
