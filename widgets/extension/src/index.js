// mlops-wb: the JupyterLab / Notebook 7 side of the workbench widgets' outputs.
//
// A workbench widget does not display as `application/vnd.jupyter.widget-view+json` (which shows "model not found"
// once its kernel is gone, and which nbconvert can only render with scripts from a CDN). It displays, under a
// display id, a bundle of
//   application/vnd.mlops-wb.view+json  {model_id, display_id, snapshot: {parts: [mime bundles]}}
//   text/html                            the same snapshot as static HTML (nbconvert, GitHub, the MLflow UI)
// and re-publishes it with update_display_data on every change. This extension renders the view mimetype:
//   1. the snapshot at once (tables as HTML, charts through the notebook's plotly renderer);
//   2. the live widget instead, a view made by the notebook's widget manager, when the kernel holds the model;
//   3. the snapshot again when the live view goes (kernel restart or shutdown).
// It also renders `application/vnd.mlops-wb.lib+json` (plotly.js for static HTML exports) as nothing, and registers
// the widget module of the workbench's tables, grid and timeline (widgets.js).
import { INotebookTracker } from '@jupyterlab/notebook';
import { MimeModel } from '@jupyterlab/rendermime';
import { Panel, Widget } from '@lumino/widgets';
import { IJupyterWidgetRegistry } from '@jupyter-widgets/base';
import { registerWidgets } from './widgets';

const VIEW = 'application/vnd.mlops-wb.view+json';
const LIB = 'application/vnd.mlops-wb.lib+json';
const WIDGET = 'application/vnd.jupyter.widget-view+json';

const sleep = ms => new Promise(resolve => setTimeout(() => resolve(null), ms));

// Chromium keeps 16 WebGL contexts per page and then drops the oldest, which may be a chart on screen (a parallel
// coordinates plot alone takes three). Free the contexts of charts that go away instead of waiting for the GC.
function freeWebGL(node) {
  for (const canvas of node.querySelectorAll('canvas')) {
    for (const kind of ['webgl2', 'webgl', 'experimental-webgl']) {
      const gl = canvas.getContext(kind); // an existing context of this kind, else null: never a new one
      if (gl) {
        const lose = gl.getExtension('WEBGL_lose_context');
        if (lose) {
          lose.loseContext();
        }
        break;
      }
    }
  }
}

function disposeAll(panel) {
  freeWebGL(panel.node);
  for (const w of [...panel.widgets]) {
    w.dispose();
  }
}

class LibRenderer extends Widget {
  constructor() {
    super();
    this.addClass('mlwb-lib');
  }

  async renderModel() {
    // nothing to show: the library is for static HTML exports; the stylesheet hides the output row
  }
}

class ViewRenderer extends Panel {
  constructor(panel) {
    super();
    this.addClass('mlwb-view');
    this._panel = panel; // the NotebookPanel: its rendermime holds the widget-view factory bound to its manager
    this._snap = new Panel();
    this._snap.addClass('mlwb-snapshot');
    this.addWidget(this._snap);
    this._live = null;
    this._liveId = null;
    this._model = null;
    this._snapshot = null; // the last snapshot, drawn only while no live view shows (a hidden copy costs WebGL)
    this._snapDrawn = false;
    this._displayId = null;
    this._onIOPub = this._onIOPub.bind(this);
    this._setState('snapshot');
  }

  get rendermime() {
    return this._panel.content.rendermime;
  }

  _setState(state) {
    this.node.dataset.mlwbState = state;
  }

  async renderModel(model) {
    const spec = model.data[VIEW] || {};
    this._model = model;
    this._snapshot = spec.snapshot || { parts: [] };
    if (this._live && !this._live.isHidden) {
      this._snapDrawn = false; // kept for when the live view goes, not drawn behind it
    } else {
      await this._renderSnapshot(this._snapshot, model.trusted);
    }
    this._watchDisplay(spec.display_id);
    if (!model.trusted) {
      return; // as Lab does for widget-view outputs: an untrusted notebook shows the snapshot only
    }
    if (this._live && this._liveId === spec.model_id) {
      return; // a display update of the widget on show: the live view stays, the hidden snapshot was refreshed
    }
    void this._renderLive(spec.model_id);
  }

  async _renderSnapshot(snapshot, trusted) {
    const rm = this.rendermime;
    const fresh = new Panel();
    for (const part of snapshot.parts || []) {
      const mimeType = rm.preferredMimeType(part, trusted ? 'any' : 'ensure');
      if (!mimeType) {
        continue;
      }
      const renderer = rm.createRenderer(mimeType);
      fresh.addWidget(renderer);
      await renderer.renderModel(new MimeModel({ data: part, trusted }));
    }
    // swap in one step, so a redraw never shows a half-built snapshot
    const hidden = this._snap.isHidden;
    disposeAll(this._snap);
    for (const w of [...fresh.widgets]) {
      this._snap.addWidget(w);
    }
    fresh.dispose();
    this._snapDrawn = true;
    if (hidden) {
      this._snap.hide();
    }
  }

  // The notebook's widget manager. jupyterlab-manager registers an app-wide widget-view factory whose renderers get
  // their manager late (it finds them only among an output area's direct children: not ours), and, once the
  // notebook's kernel is known, one bound to the notebook's manager, whose renderers have it at once: wait for a
  // renderer of the bound one and take its manager. `_manager` (a PromiseDelegate) is a field of jupyterlab-manager
  // 5's WidgetRenderer; the renderer itself renders nothing (its renderModel logs a console error for a model the
  // manager does not hold, which a snapshot is not an error of).
  async _widgetManager(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!this.isDisposed && Date.now() < deadline) {
      if (this.rendermime.getFactory(WIDGET)) {
        const renderer = this.rendermime.createRenderer(WIDGET);
        const delegate = renderer._manager;
        const manager = delegate && delegate.promise ? await Promise.race([delegate.promise, sleep(50)]) : null;
        renderer.dispose();
        if (manager && typeof manager.get_model === 'function') {
          return manager;
        }
      }
      await sleep(200);
    }
    return null;
  }

  // Whether the kernel holds `modelId`: asked once the manager has loaded the kernel's widgets. While it has not
  // yet (a reload on a busy machine), the answer waits for it; see _renderLive for when it never comes.
  async _hasModel(manager, modelId) {
    if (!manager.restoredStatus && manager.restored) {
      await Promise.race([new Promise(resolve => manager.restored.connect(() => resolve(null))), sleep(15000)]);
    }
    const has = () => (typeof manager.has_model === 'function' ? manager.has_model(modelId) : true);
    for (let i = 0; i < 30 && !has(); i++) {
      await sleep(100); // a comm_open may still be on its way
    }
    return has();
  }

  async _renderLive(modelId) {
    if (!modelId || this._pendingLive === modelId) {
      return;
    }
    this._pendingLive = modelId;
    try {
      await this._panel.sessionContext.ready;
      const manager = await this._widgetManager(30000);
      if (!manager || this.isDisposed) {
        return; // no kernel, or no ipywidgets: the snapshot stays
      }
      if (!(await this._hasModel(manager, modelId))) {
        if (!manager.restoredStatus && manager.restored && !this.isDisposed) {
          // still loading the kernel's widgets after the wait: try again once it has
          const retry = () => {
            manager.restored.disconnect(retry);
            if (!this.isDisposed && !this._live && this._model) {
              void this._renderLive(modelId);
            }
          };
          manager.restored.connect(retry);
        }
        return; // the kernel does not hold this widget (a new kernel, or another one): snapshot
      }
      let widget;
      try {
        const model = await manager.get_model(modelId);
        const view = await manager.create_view(model);
        widget = view.luminoWidget || view.pWidget;
      } catch (error) {
        console.warn(`[mlops-wb] the live view is not available, its last state shows instead: ${error}`);
        return;
      }
      if (this.isDisposed || (this._live && this._liveId === modelId)) {
        widget.dispose();
        return;
      }
      this._showLive(widget, modelId);
    } finally {
      this._pendingLive = null;
    }
  }

  // Show the live view `widget` in place of the snapshot; back to the snapshot when the view goes.
  _showLive(widget, modelId) {
    const previous = this._live;
    this._live = null; // its view's going is no return to the snapshot
    if (previous) {
      previous.dispose();
    }
    const live = new Panel();
    live.addClass('mlwb-live');
    live.addWidget(widget);
    this._live = live;
    this._liveId = modelId;
    this.addWidget(live);
    this._snap.hide();
    disposeAll(this._snap); // drawn again from the last snapshot if the live view goes
    this._snapDrawn = false;
    this._setState('live');
    widget.disposed.connect(() => {
      // a kernel restart or shutdown (or the widget's close) disposes the view: back to the snapshot, kept current
      if (this.isDisposed || this._live !== live) {
        return;
      }
      this._live = null;
      this._liveId = null;
      freeWebGL(live.node);
      live.dispose();
      this._snap.show();
      this._setState('snapshot');
      if (!this._snapDrawn && this._snapshot && this._model) {
        void this._renderSnapshot(this._snapshot, this._model.trusted);
      }
    });
  }

  // After a page reload the kernel connection no longer knows which outputs a display id belongs to, so Lab
  // drops the kernel's update_display_data: apply it here, so the saved snapshot stays the widget's last state.
  _watchDisplay(displayId) {
    if (!displayId || this._displayId === displayId) {
      return;
    }
    if (!this._displayId) {
      this._panel.sessionContext.iopubMessage.connect(this._onIOPub);
    }
    this._displayId = displayId;
  }

  _onIOPub(_, msg) {
    if (msg.header.msg_type !== 'update_display_data' || !this._model) {
      return;
    }
    const content = msg.content;
    if (!content.transient || content.transient.display_id !== this._displayId) {
      return;
    }
    const now = this._model.data[VIEW] || {};
    const next = (content.data || {})[VIEW] || {};
    if (JSON.stringify(now.snapshot) === JSON.stringify(next.snapshot)) {
      return; // Lab applied it already (its execute future was still alive)
    }
    this._model.setData({ data: content.data, metadata: content.metadata });
    void this.renderModel(this._model);
  }

  dispose() {
    if (this.isDisposed) {
      return;
    }
    if (this._displayId) {
      this._panel.sessionContext.iopubMessage.disconnect(this._onIOPub);
    }
    freeWebGL(this.node);
    super.dispose();
  }
}

const plugin = {
  id: 'mlops-wb:views',
  description: 'Workbench widgets: live while the kernel holds them, their last state otherwise.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app, tracker) => {
    const register = panel => {
      const rm = panel.content.rendermime;
      rm.addFactory({ safe: true, mimeTypes: [VIEW], createRenderer: () => new ViewRenderer(panel) }, -20);
      rm.addFactory({ safe: true, mimeTypes: [LIB], createRenderer: () => new LibRenderer() }, -20);
    };
    tracker.forEach(register);
    tracker.widgetAdded.connect((_, panel) => register(panel));
  }
};

// The widget module of the workbench's tables, grid and timeline (see widgets.js): wherever Jupyter widgets are.
const widgetsPlugin = {
  id: 'mlops-wb:widgets',
  description: 'The widget module of the workbench tables, grid and timeline.',
  autoStart: true,
  requires: [IJupyterWidgetRegistry],
  activate: (app, registry) => registerWidgets(registry)
};

export default [plugin, widgetsPlugin];
