// RecordTable: a small table whose rows are all in the widget's state (a drift report's columns, a model's
// versions). Sticky header, scroll inside the widget, sortable columns, tones as CSS classes, and an optional
// single selection (a click on a row sets `selected` to its key).

function sortValue(cell) {
  const raw = Array.isArray(cell) ? cell[1] : cell;
  const n = Number.parseFloat(String(raw ?? '').replace(/[%,]/g, ''));
  return Number.isFinite(n) ? n : String(cellText(cell)).toLowerCase();
}

function render({ model, el }) {
  const root = h('div', 'mlwb mlwb-records');
  const banner = h('div', 'mlwb-records-banner');
  const scroll = h('div', 'scroll mlwb-records-scroll');
  const empty = h('div', 'empty');
  root.append(banner, scroll, empty);
  el.appendChild(root);
  let order = null; // [column index, 1 | -1] of a sort the user chose in the browser

  function draw() {
    const columns = model.get('columns');
    const kinds = model.get('kinds');
    const rows = [...model.get('rows')];
    const selected = model.get('selected');
    const selectable = model.get('selectable');
    const b = model.get('banner') || {};
    banner.textContent = b.text || '';
    banner.className = 'mlwb-records-banner' + (b.tone ? ` tone-${tone(b.tone)}` : '');
    banner.style.display = b.text ? '' : 'none';
    scroll.style.maxHeight = `${model.get('max_height')}px`;
    empty.textContent = rows.length ? '' : model.get('empty');
    empty.style.display = rows.length ? 'none' : '';
    if (order) {
      const [c, dir] = order;
      rows.sort((a, b) => {
        const x = sortValue(a.cells[c]);
        const y = sortValue(b.cells[c]);
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
    }
    const table = h('table', 'mlwb-table');
    const head = h('tr');
    columns.forEach((label, c) => {
      const th = h('th', kinds[c] === 'num' ? 'num' : '', label + (order && order[0] === c ? (order[1] > 0 ? ' ▲' : ' ▼') : ''));
      th.title = `${label}: click to sort`;
      th.onclick = () => {
        order = order && order[0] === c ? (order[1] > 0 ? [c, -1] : null) : [c, 1];
        draw();
      };
      head.appendChild(th);
    });
    table.appendChild(h('thead')).appendChild(head);
    const body = table.appendChild(h('tbody'));
    for (const row of rows) {
      const tr = h('tr', (selectable ? 'clickable' : '') + (row.key === selected ? ' selected' : '') +
        (row.tone ? ` tone-${tone(row.tone)}` : ''));
      tr.dataset.key = row.key;
      if (row.title) tr.title = row.title;
      row.cells.forEach((cell, c) => {
        const t = (row.tones || [])[c];
        const td = h('td', (kinds[c] === 'num' ? 'num' : '') + (t ? ` tone-${tone(t)} bg-${tone(t)}` : ''));
        setCell(td, cell);
        tr.appendChild(td);
      });
      if (selectable) {
        tr.onclick = () => {
          model.set('selected', row.key);
          model.save_changes();
        };
      }
      body.appendChild(tr);
    }
    scroll.replaceChildren(table);
    root.dataset.rows = String(rows.length);
  }

  const names = ['change:rows', 'change:columns', 'change:selected', 'change:banner', 'change:max_height'];
  names.forEach(n => model.on(n, draw));
  draw();
  return () => names.forEach(n => model.off(n, draw));
}

export default { render };
