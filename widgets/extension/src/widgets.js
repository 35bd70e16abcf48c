// mlops-wb: the Jupyter widget module behind the workbench's tables, grid and timeline (RunsGrid, RecordTable,
// AuditTimeline in mlops_wb.widgets).
//
// Each of those widgets carries its front end as two synced traits: `_esm`, an ES module in anywidget's format
// (`export default { render({ model, el }) }`, from the top-level widgets/ folder), and `_css`. This module loads
// them, once per distinct text for the whole page, and renders the view. It stands in for anywidget's own runtime,
// which gives a model 2 s from its creation to load its module and otherwise rejects it ("[anywidget] Failed to
// initialize model.") and drops every later state update of that model: on a busy page (a notebook of charts
// drawing, a loaded machine) that happens, and a table then keeps stale rows. Here a model waits for its module as
// long as it takes; its views draw as soon as it is there.
import { DOMWidgetModel, DOMWidgetView } from '@jupyter-widgets/base';

export const MODULE = 'mlops-wb';
export const VERSION = '0.1.0';

const modules = new Map(); // ES module text -> Promise of its widget definition
const styles = new Set(); // stylesheet texts already in the page

function loadModule(esm) {
  let definition = modules.get(esm);
  if (!definition) {
    const url = URL.createObjectURL(new Blob([esm], { type: 'text/javascript' }));
    definition = import(/* webpackIgnore: true */ url)
      .then(async mod => (typeof mod.default === 'function' ? await mod.default() : mod.default))
      .finally(() => URL.revokeObjectURL(url));
    modules.set(esm, definition);
  }
  return definition;
}

function loadStyle(css) {
  if (!css || styles.has(css)) {
    return;
  }
  styles.add(css);
  const style = document.createElement('style');
  style.dataset.mlwbStyle = String(styles.size);
  style.textContent = css; // text, never markup
  document.head.appendChild(style);
}

export class WorkbenchViewModel extends DOMWidgetModel {
  defaults() {
    return {
      ...super.defaults(),
      _model_name: 'WorkbenchViewModel',
      _model_module: MODULE,
      _model_module_version: VERSION,
      _view_name: 'WorkbenchViewView',
      _view_module: MODULE,
      _view_module_version: VERSION,
      _esm: '',
      _css: ''
    };
  }
}

export class WorkbenchViewView extends DOMWidgetView {
  async render() {
    this.el.classList.add('mlwb-view-host');
    loadStyle(this.model.get('_css'));
    let definition;
    try {
      definition = await loadModule(this.model.get('_esm'));
    } catch (error) {
      this._fail(error);
      return;
    }
    if (this._removed) {
      return;
    }
    try {
      const cleanup = await definition.render({ model: this.model, el: this.el, experimental: {} });
      if (this._removed) {
        if (typeof cleanup === 'function') {
          cleanup();
        }
      } else {
        this._cleanup = cleanup;
      }
    } catch (error) {
      this._fail(error);
    }
  }

  _fail(error) {
    console.error(`[mlops-wb] the ${this.model.get('_model_name')} view could not draw:`, error);
    const note = document.createElement('pre');
    note.className = 'mlwb-view-error';
    note.textContent = `This view could not draw: ${error && error.message ? error.message : error}`;
    this.el.replaceChildren(note);
  }

  remove() {
    this._removed = true;
    if (typeof this._cleanup === 'function') {
      this._cleanup();
    }
    this._cleanup = undefined;
    return super.remove();
  }
}

export function registerWidgets(registry) {
  registry.registerWidget({
    name: MODULE,
    version: VERSION,
    exports: { WorkbenchViewModel, WorkbenchViewView }
  });
}
