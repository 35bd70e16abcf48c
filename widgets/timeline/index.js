// AuditTimeline: a model's audit trail, newest first, as a vertical timeline: who did what to which version,
// the state change, the outcome (refusals in red), the comment and any override or reason. A banner says whether
// the trail verified intact. All text is set as text.

function render({ model, el }) {
  const root = h('div', 'mlwb mlwb-timeline');
  const banner = h('div', 'mlwb-timeline-banner');
  const list = h('ol', 'mlwb-timeline-list scroll');
  root.append(banner, list);
  el.appendChild(root);

  function draw() {
    const b = model.get('banner') || {};
    banner.textContent = b.text || '';
    banner.className = 'mlwb-timeline-banner' + (b.tone ? ` tone-${tone(b.tone)}` : '');
    list.style.maxHeight = `${model.get('max_height')}px`;
    const records = model.get('records');
    const items = records.map(r => {
      const li = h('li', `mlwb-timeline-item tone-${tone(r.tone) || 'muted'}`);
      li.dataset.seq = String(r.seq);
      const dot = h('span', 'mlwb-timeline-dot');
      const head = h('div', 'mlwb-timeline-head');
      head.append(h('b', '', `#${r.seq} ${r.action}`), h('span', '', r.version ? ` v${r.version}` : ''),
        h('span', 'muted', ` · ${r.change} · ${r.who} · ${r.time}`));
      if (r.outcome && r.outcome !== 'ok') head.append(h('span', 'mlwb-timeline-outcome tone-bad', ` ${r.outcome}`));
      li.append(dot, head);
      if (r.comment) li.append(h('div', 'mlwb-timeline-comment', r.comment));
      if (r.reason) li.append(h('div', 'mlwb-timeline-reason muted', r.reason));
      return li;
    });
    if (!items.length) items.push(h('li', 'empty', model.get('empty')));
    list.replaceChildren(...items);
    root.dataset.records = String(records.length);
  }

  const names = ['change:records', 'change:banner', 'change:max_height'];
  names.forEach(n => model.on(n, draw));
  draw();
  return () => names.forEach(n => model.off(n, draw));
}

export default { render };
