"""A real JupyterLab and Jupyter Notebook 7 on 127.0.0.1 driven by Debian's headless Chromium through Playwright.

The fixtures start and stop everything they need, on free ports, and leave no process behind.
Never run `playwright install`: the browser is /usr/bin/chromium (the README's test command installs it).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import BIN, REPO, clean_env, free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# Screenshots go to an ignored folder; `make screenshots` points this at docs/screenshots/ (the README links those).
SCREENSHOTS = Path(os.environ.get("MLOPS_WB_SCREENSHOTS") or REPO / "tests" / "artifacts" / "screenshots")
FAILURES = REPO / "tests" / "artifacts"  # screenshots and logs of failed browser tests (gitignored)


class Lab:
    "A running JupyterLab server and one Chromium page on it, with helpers to act as a user would."

    def __init__(self, url: str, token: str, page, root: Path, log: Path, app: str = "lab"):
        self.url, self.token, self.page, self.root, self.log, self.app = url, token, page, root, log, app
        self.console_errors: list[str] = []
        self.console_all: list[str] = []  # every console message, for the failure reports
        self._opened = 0
        page.on("console", lambda m: self.console_all.append(f"{m.type}: {m.text}"))
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console_errors.append(f"pageerror: {e}"))

    def open(self, notebook: str, timeout: float = 120_000, kernel: bool = True) -> None:
        "Open a notebook; with `kernel`, wait until its kernel is idle (answering the kernel dialog if one shows)."
        p = self.page
        self._opened += 1
        if self.app == "lab":  # a workspace of its own each time, so Lab restores no other tab
            p.goto(f"{self.url}/lab/workspaces/w{self._opened}/tree/{notebook}?token={self.token}")
        else:
            p.goto(f"{self.url}/notebooks/{notebook}?token={self.token}")
        p.wait_for_selector(".jp-Notebook", timeout=timeout)
        if kernel:
            p.wait_for_function("() => { const e = document.querySelector('.jp-Notebook-ExecutionIndicator');"
                                " return !e || e.getAttribute('data-status') === 'idle'; }", timeout=timeout)
        try:
            p.wait_for_selector(".jp-Dialog:has-text('Select Kernel')", timeout=4000)
            p.click(".jp-Dialog button:has-text('Select')" if kernel else ".jp-Dialog button:has-text('No Kernel')")
        except Exception:  # noqa: BLE001 - no dialog: the kernel started on its own
            pass
        self.dismiss_toasts()

    def api(self, path: str, method: str = "GET"):
        "Call the Jupyter server's REST API."
        req = urllib.request.Request(f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            data = r.read()
            return json.loads(data) if data else None

    def kernels(self) -> list[dict]:
        "The server's running kernels."
        return self.api("/api/kernels")

    def shutdown_kernels(self) -> None:
        "Shut every kernel down, as File > Shut Down Kernel would, and wait until none runs."
        for k in self.kernels():
            self.api(f"/api/kernels/{k['id']}", "DELETE")
        deadline = time.time() + 60
        while self.kernels() and time.time() < deadline:
            time.sleep(0.5)

    def wait_kernel_idle(self, timeout: float = 120) -> None:
        "Wait until the server reports a kernel, idle (Notebook 7 may ignore Run All while its kernel connects)."
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(k["execution_state"] == "idle" for k in self.kernels()):
                return
            time.sleep(0.5)
        raise AssertionError(f"no idle kernel after {timeout} s: {self.kernels()}")

    def save(self, path: Path, timeout: float = 60) -> dict:
        "Save the notebook (Ctrl+S) and return the saved file once it changed on disk."
        before = path.stat().st_mtime_ns if path.exists() else 0
        self.page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Control+s")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if path.exists() and path.stat().st_mtime_ns != before:
                time.sleep(0.5)  # the write may still be finishing
                try:
                    return json.loads(path.read_text())
                except ValueError:
                    continue
            time.sleep(0.3)
        raise AssertionError(f"{path.name} was not saved within {timeout} s")

    def dismiss_toasts(self) -> None:
        "Close notification toasts (such as 'Jupyter news?') so they cover nothing."
        for loc in self.page.locator(".jp-Notification-Toast-Close, .Toastify__close-button").all():
            try:
                loc.click(timeout=2000)
            except Exception:  # noqa: BLE001 - it went away by itself
                pass

    def run_all(self, timeout: float = 300_000) -> None:
        "Run > Run All Cells, then wait until the kernel is idle again and no cell is pending."
        p = self.page
        if self.app == "notebook":
            self.wait_kernel_idle()
        p.click("li.lm-MenuBar-item:has-text('Run')")
        p.click("li.lm-Menu-item:has-text('Run All Cells')")
        try:  # the run starts (a fast one may be over before this looks)
            p.wait_for_function("() => [...document.querySelectorAll('.jp-InputPrompt')].some(e => e.textContent."
                                "includes('*'))", timeout=30_000)
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: the callers check the execution counts
            pass
        p.wait_for_function("() => [...document.querySelectorAll('.jp-InputPrompt')].every(e => !e.textContent.includes('*'))"
                            " && document.querySelector('.jp-Notebook-ExecutionIndicator').getAttribute('data-status') === 'idle'",
                            timeout=timeout)

    def cell_errors(self) -> list[str]:
        "Text of every error output in the notebook."
        return self.page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                 ", .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").all_inner_texts()

    def screenshot(self, name: str, locator=None) -> Path:
        "Save a screenshot (of `locator`, or the page) into the screenshots folder (see SCREENSHOTS)."
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        (locator or self.page).screenshot(path=str(path))
        return path


def start_lab(root: Path, env: dict[str, str], app: str = "lab") -> tuple[subprocess.Popen, str, str, Path]:
    "Start `jupyter lab` (or `jupyter notebook`) on 127.0.0.1 serving `root`; returns the process, URL, token, log."
    port, token = free_port(), secrets.token_hex(16)
    log = root / f".jupyter-{app}-{port}.log"
    settings = root / ".jupyter-lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    # every cell in the page (Notebook 7 detaches cells scrolled out of view by default): the tests read all outputs
    tracker = root / ".jupyter-lab-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = {**env, "JUPYTERLAB_SETTINGS_DIR": str(root / ".jupyter-lab-settings")}
    proc = subprocess.Popen(
        [str(BIN / "jupyter"), app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=False"],
        cwd=root, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("jupyter lab did not start:\n" + log.read_text()[-3000:]) from None
            time.sleep(0.5)
    return proc, url, token, log


def stop(proc: subprocess.Popen) -> None:
    "Stop a process group started with start_new_session=True; kill it if it lingers."
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def chromium():
    "Debian's Chromium, headless, through Playwright."
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def lab_factory(chromium, request):
    "Start a JupyterLab on a project folder with extra environment; yields a function returning a `Lab`."
    started: list[tuple[subprocess.Popen, Lab]] = []

    def make(root: Path, app: str = "lab", **env: str) -> Lab:
        proc, url, token, log = start_lab(root, clean_env(**env), app)
        page = chromium.new_page(viewport={"width": 1400, "height": 2200})
        lab = Lab(url, token, page, root, log, app)
        started.append((proc, lab))
        return lab

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for proc, lab in started:
        if failed:
            FAILURES.mkdir(parents=True, exist_ok=True)
            name = request.node.name.replace("/", "_")
            lab.page.screenshot(path=str(FAILURES / f"{name}.png"), full_page=True)
            (FAILURES / f"{name}.console.txt").write_text("\n".join(lab.console_all + lab.console_errors))
            (FAILURES / f"{name}.lab.log").write_text(lab.log.read_text(errors="replace"))
        lab.page.close()
        stop(proc)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    "Remember each phase's outcome on the test item, so fixtures can save screenshots on failure."
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
