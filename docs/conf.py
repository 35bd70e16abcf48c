"""Sphinx configuration of the docs site. Build it with `make docs` (docs/make_docs.py writes the sources)."""
from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import importlib  # noqa: E402
import pkgutil  # noqa: E402

import mlops_wb  # noqa: E402

# autodoc imports every module; importing them here, once, lets Sphinx's parallel readers (forked) share them
for _m in pkgutil.walk_packages(mlops_wb.__path__, "mlops_wb."):
    if not _m.name.rsplit(".", 1)[-1].startswith("_"):
        importlib.import_module(_m.name)

project = "mlops_wb"
author = "mlops_wb developers"
copyright = "mlops_wb developers"  # noqa: A001 - Sphinx's name
release = version = mlops_wb.__version__

extensions = ["myst_nb", "sphinx.ext.autodoc"]  # the source is in the notebook pages, folded
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["**/.ipynb_checkpoints"]

# The notebooks arrive executed (docs/run_notebooks.py): Sphinx only renders them.
nb_execution_mode = "off"
nb_output_stderr = "remove"  # MLflow's and tqdm's log lines, not the examples' results
nb_merge_streams = True
nb_number_source_lines = False
myst_enable_extensions = ["colon_fence", "deflist", "html_image"]
myst_heading_anchors = 3  # the README's and the notebooks' `#section` links

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
add_module_names = False
python_display_short_literal_types = True

html_theme = "furo"
html_title = f"mlops_wb {version}"
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_show_sourcelink = False
html_copy_source = False


_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_EMPHASIS = re.compile(r"(?<![^\s(\[\"'])(\*\*?)(?=\w)[^*]*?(?<=\S)\1(?![\w*])")
_STAR = re.compile(r"\*")
_TRAILING_UNDERSCORE = re.compile(r"(?<=\w)_(?![\w])")


def _md_text(text: str) -> str:
    "Markdown prose outside code spans as reStructuredText: links, and the `*` and `name_` that Markdown leaves alone."
    out, pos = [], 0
    for m in _EMPHASIS.finditer(text):  # *em* and **strong** mean the same in both; other stars are literal
        out.append(_STAR.sub(r"\*", text[pos:m.start()]) + m.group(0))
        pos = m.end()
    text = "".join(out) + _STAR.sub(r"\*", text[pos:])
    text = _TRAILING_UNDERSCORE.sub(r"\_", text)
    return _LINK.sub(lambda m: f"`{m.group(1)} <{m.group(2)}>`__", text)


def md_to_rst(line: str) -> str:
    "One line of a Markdown docstring (nbdev's style) as reStructuredText: `code` spans, links, literal stars."
    out, pos = [], 0
    for m in _CODE_SPAN.finditer(line):
        before, after = line[m.start() - 1: m.start()], line[m.end(): m.end() + 1]
        literal = "``" + m.group(2).strip() + "``"
        if before and (before.isalnum() or before == "_"):
            literal = "\\ " + literal
        if after and (after.isalnum() or after == "_"):
            literal += "\\ "
        out += [_md_text(line[pos:m.start()]), literal]
        pos = m.end()
    return "".join(out) + _md_text(line[pos:])


def _markdown_docstring(app, what, name, obj, options, lines) -> None:
    "Docstrings are nbdev's Markdown; autodoc reads reStructuredText. A value without a docstring gets none."
    from sphinx.util.docstrings import prepare_docstring

    if what in ("data", "attribute") and type(obj).__doc__ and \
            [ln for ln in lines if ln.strip()] == [ln for ln in prepare_docstring(type(obj).__doc__) if ln.strip()]:
        lines[:] = []  # autodoc fell back to the docstring of the value's type
        return
    lines[:] = [md_to_rst(ln) for ln in lines]


def _plotly_pages(app, pagename, templatename, context, doctree) -> None:
    "Load plotly.js, served from the site itself (no CDN), on the pages that draw figures."
    if "mlops-wb-plotly" in context.get("body", ""):
        app.add_js_file("plotly.min.js", priority=300)
        app.add_js_file("plotly-figures.js", priority=310)


def _copy_plotly(app, exception) -> None:
    "Write the plotly.js bundled with the installed plotly into the site's _static folder."
    if exception is None and app.builder.format == "html":
        from plotly.offline import get_plotlyjs

        (Path(app.outdir) / "_static" / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")


def setup(app):
    app.connect("autodoc-process-docstring", _markdown_docstring)
    app.connect("html-page-context", _plotly_pages)
    app.connect("build-finished", _copy_plotly)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
