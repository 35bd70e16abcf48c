// RunsGrid: a paged, virtualised table of runs (or of aggregated groups of runs).
// The first page is state (trait `head`): it draws with no round trip and is in any saved widget state. Other pages
// come by custom messages, one page at a time, only for the rows scrolled into view. The DOM holds only the rows
// and the columns in view (a reused pool), so every scroll frame does the same small amount of work.
// Sorting and filtering happen in the kernel: a change there bumps `version`, which drops the cached pages.
const ROW_H = 26;
const OVERSCAN = 6;

function render({ model, el }) {
  const root = h('div', 'mlwb mlwb-grid');
  const viewport = h('div', 'mlwb-grid-viewport');
  const header = h('div', 'mlwb-grid-header');
  const spacer = h('div', 'mlwb-grid-spacer');
  const body = h('div', 'mlwb-grid-body');
  const footer = h('div', 'mlwb-grid-footer muted');
  spacer.appendChild(body);
  viewport.append(header, spacer);
  root.append(viewport, footer);
  el.appendChild(root);

  let version = model.get('version');
  const pages = new Map([[0, model.get('head')]]);
  const pending = new Map(); // page -> time asked
  let offsets = [0];
  let view = { c0: -1, c1: -1 };
  const pool = [];

  const pageSize = () => Math.max(1, model.get('page_size'));
  const columns = () => model.get('columns');

  function layoutColumns() {
    const widths = model.get('widths');
    offsets = [0];
    for (const w of widths) offsets.push(offsets[offsets.length - 1] + w);
    const total = `${offsets[offsets.length - 1]}px`;
    spacer.style.width = total;
    header.style.width = total;
    viewport.style.height = `${model.get('height')}px`;
    view = { c0: -1, c1: -1 };
  }

  function visibleColumns() {
    const left = viewport.scrollLeft;
    const right = left + (viewport.clientWidth || 800);
    let c0 = 0;
    while (c0 < offsets.length - 2 && offsets[c0 + 1] <= left) c0++;
    let c1 = c0;
    while (c1 < offsets.length - 1 && offsets[c1] < right) c1++;
    return { c0, c1 };
  }

  function fillCells(row, c0, c1, make) {
    // children: one pad, then the cells of columns c0 .. c1-1
    const need = c1 - c0 + 1;
    while (row.childElementCount < need) row.appendChild(h('div', 'mlwb-grid-cell'));
    while (row.childElementCount > need) row.lastChild.remove();
    row.firstChild.className = 'mlwb-grid-pad';
    row.firstChild.style.width = `${offsets[c0]}px`;
    const kinds = model.get('kinds');
    const widths = model.get('widths');
    for (let c = c0; c < c1; c++) {
      const cell = row.children[c - c0 + 1];
      cell.className = 'mlwb-grid-cell' + (kinds[c] === 'num' ? ' num' : '');
      cell.style.width = `${widths[c]}px`;
      make(cell, c);
    }
  }

  function drawHeader(c0, c1) {
    const [sortCol, sortDir] = model.get('sort');
    const labels = columns();
    fillCells(header, c0, c1, (cell, c) => {
      const mark = labels[c] === sortCol ? (sortDir === 'desc' ? ' ▼' : ' ▲') : '';
      cell.textContent = labels[c] + mark;
      cell.title = `${labels[c]}: click to sort`;
      cell.dataset.column = labels[c];
    });
  }

  header.addEventListener('click', event => {
    const cell = event.target.closest('.mlwb-grid-cell');
    if (!cell || !cell.dataset.column) return;
    const [sortCol, sortDir] = model.get('sort');
    const col = cell.dataset.column;
    const next = col !== sortCol ? 'asc' : sortDir === 'asc' ? 'desc' : sortDir === 'desc' ? '' : 'asc';
    model.set('sort', next ? [col, next] : ['', '']);
    model.save_changes();
  });

  body.addEventListener('click', event => {
    const row = event.target.closest('.mlwb-grid-row');
    if (!row || !row.dataset.key) return;
    const selected = new Set(model.get('selected'));
    if (selected.has(row.dataset.key)) selected.delete(row.dataset.key);
    else selected.add(row.dataset.key);
    model.set('selected', [...selected]);
    model.save_changes();
  });

  function rowEl(k) {
    while (pool.length <= k) {
      const r = h('div', 'mlwb-grid-row');
      body.appendChild(r);
      pool.push(r);
    }
    return pool[k];
  }

  function request(p) {
    if (pages.has(p) || pending.has(p)) return;
    pending.set(p, performance.now());
    const start = p * pageSize();
    model.send({ type: 'rows', start, stop: start + pageSize(), version });
  }

  let scheduled = false;
  function schedule() {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(draw);
    }
  }

  function draw() {
    scheduled = false;
    const total = model.get('total');
    spacer.style.height = `${Math.max(total, 1) * ROW_H}px`;
    const top = Math.max(0, viewport.scrollTop - ROW_H);
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const count = Math.ceil((viewport.clientHeight || model.get('height')) / ROW_H) + 2 * OVERSCAN;
    const last = Math.min(total, first + count);
    const { c0, c1 } = visibleColumns();
    if (c0 !== view.c0 || c1 !== view.c1) {
      drawHeader(c0, c1);
      view = { c0, c1 };
    }
    body.style.transform = `translateY(${first * ROW_H}px)`;
    const selected = new Set(model.get('selected'));
    const size = pageSize();
    let missing = 0;
    for (let i = first, k = 0; k < count; i++, k++) {
      const r = rowEl(k);
      if (i >= last) {
        r.style.display = 'none';
        r.dataset.key = '';
        continue;
      }
      r.style.display = '';
      const p = Math.floor(i / size);
      const page = pages.get(p);
      const row = page ? page[i - p * size] : null;
      if (!row) {
        missing++;
        request(p);
      }
      // a row is [key, tone, cell, cell, ...]
      fillCells(r, c0, c1, (cell, c) => setCell(cell, row ? row[c + 2] : c === 0 ? '…' : ''));
      r.dataset.key = row ? String(row[0]) : '';
      r.dataset.index = String(i);
      r.className = 'mlwb-grid-row' + (row && tone(row[1]) ? ` tone-${tone(row[1])}` : '') +
        (row && selected.has(String(row[0])) ? ' selected' : '') + (row ? '' : ' placeholder');
    }
    const caption = model.get('caption');
    footer.textContent = (total ? `rows ${first + 1}–${last} of ${total.toLocaleString()}` : 'no rows') +
      (caption ? ` · ${caption}` : '') + (missing ? ' · loading…' : '');
    root.dataset.total = String(total);
    root.dataset.missing = String(missing);
  }

  const onMessage = msg => {
    if (!msg || msg.type !== 'rows' || msg.version !== version) return; // an answer for rows since replaced
    const p = Math.floor(msg.start / pageSize());
    pages.set(p, msg.rows);
    pending.delete(p);
    schedule();
  };
  const onVersion = () => {
    version = model.get('version');
    pages.clear();
    pending.clear();
    pages.set(0, model.get('head'));
    schedule();
  };
  const onHead = () => {
    pages.set(0, model.get('head'));
    schedule();
  };
  const onLayout = () => {
    layoutColumns();
    schedule();
  };
  model.on('msg:custom', onMessage);
  model.on('change:version', onVersion);
  model.on('change:head', onHead);
  model.on('change:columns', onLayout);
  model.on('change:widths', onLayout);
  model.on('change:height', onLayout);
  model.on('change:sort', onLayout);
  model.on('change:selected', schedule);
  model.on('change:total', schedule);
  model.on('change:caption', schedule);
  viewport.addEventListener('scroll', schedule, { passive: true });
  const resize = new ResizeObserver(() => {
    view = { c0: -1, c1: -1 };
    schedule();
  });
  resize.observe(viewport);
  layoutColumns();
  draw();
  // answers lost on the way (a kernel busy elsewhere, a dropped message): ask again after 5 s
  const retry = setInterval(() => {
    const now = performance.now();
    let again = false;
    for (const [p, t] of pending) {
      if (now - t > 5000) {
        pending.delete(p);
        again = true;
      }
    }
    if (again) schedule();
  }, 2000);
  return () => {
    clearInterval(retry);
    resize.disconnect();
    model.off('msg:custom', onMessage);
    model.off('change:version', onVersion);
    model.off('change:head', onHead);
    model.off('change:columns', onLayout);
    model.off('change:widths', onLayout);
    model.off('change:height', onLayout);
    model.off('change:sort', onLayout);
    model.off('change:selected', schedule);
    model.off('change:total', schedule);
    model.off('change:caption', schedule);
  };
}

export default { render };
