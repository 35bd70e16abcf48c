// Helpers shared by the workbench's anywidget modules (prepended to each module's own code by the Python side).
// Everything from runs, params, tags or data is set with textContent or as an attribute value: never as HTML.

function h(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// A cell is a string, or [text, title] when the full value differs from what is shown.
function cellText(cell) {
  return Array.isArray(cell) ? String(cell[0] ?? '') : String(cell ?? '');
}

function cellTitle(cell) {
  return Array.isArray(cell) ? String(cell[1] ?? '') : '';
}

function setCell(e, cell) {
  const text = cellText(cell);
  if (e.textContent !== text) e.textContent = text;
  const title = cellTitle(cell);
  if (title) e.title = title;
  else if (e.title) e.removeAttribute('title');
}

// Tones are keywords mapped to colours by the stylesheet, never CSS from the kernel.
const TONES = new Set(['', 'good', 'bad', 'warn', 'info', 'muted', 'accent', 'group', 'sev0', 'sev1', 'sev2', 'sev3', 'na']);
function tone(t) {
  return TONES.has(t) ? t : '';
}
