"""The EegBrowser and RecordingBrowser widgets really render in JupyterLab: a headless Debian Chromium (driven by Python
playwright) opens a demo notebook in a fresh `jupyter lab` server, runs all cells from the Run menu, waits for the
widget's controls and its images, and saves a screenshot (to pytest's tmp dir, and to $HBAC_SCREENSHOT_DIR when set).

Needs /usr/bin/chromium and the `playwright` package (scripts/install_browser.sh installs both); skips otherwise.
Never runs `playwright install`: the test drives the system chromium."""
import contextlib, json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
TIMEOUT_S = 110          # each test stays under 2 minutes

DEMO_CELLS = [
    "# EegBrowser demo: tiny synthetic dataset, untrained toy-sized model (its predictions are random)\n"
    "import torch\n"
    "from hbac.synthetic import tiny_dataset\n"
    "from hbac.models.registry import build_model\n"
    "from hbac.widgets import EegBrowser",
    "torch.manual_seed(0)\n"
    "model = build_model('multimodal', eeg=dict(widths=(4,)*7 + (16,), kernels=(3,)*7, hidden=16),\n"
    "                    eeg_spectrogram=dict(widths=(4, 4, 8, 16)), spectrogram=dict(widths=(4, 4, 8, 16)))\n"
    "browser = EegBrowser(tiny_dataset(), model=model, attribute_kw=dict(n_steps=4))\n"
    "browser",
    "print('demo ready:', browser.state()['eeg_id'])",
]

RECORDING_CELLS = [
    "# RecordingBrowser demo: a synthetic 5-minute EDF (a left-sided seizure from 150 to 210 s) scanned by an\n"
    "# untrained tiny EEG model (its probabilities are random)\n"
    "import numpy as np\n"
    "from pathlib import Path\n"
    "from scipy.signal import resample_poly\n"
    "from hbac.data import EEG_CHANNELS\n"
    "from hbac.synthetic import synth_recording\n"
    "from hbac.recordings import write_edf\n"
    "from hbac.fixtures import TINY_KWARGS, init_run_dir\n"
    "from hbac.recording_browser import RecordingBrowser",
    "x = synth_recording(300, [('seizure', 'left', 150, 210)], np.random.default_rng(0))\n"
    "edf = write_edf(Path('synthetic.edf'), resample_poly(x.astype(np.float64), 32, 25, axis=0), 256, list(EEG_CHANNELS))\n"
    "init_run_dir(Path('runs')/'eeg', 'eeg', TINY_KWARGS['eeg'], fold=0, n_folds=2)\n"
    "browser = RecordingBrowser(edf, 'runs', device='cpu')\n"
    "browser",
    "print('demo ready:', len(browser.timeline), 'windows')",
]

def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f'{CHROMIUM} not found: install Debian chromium (scripts/install_browser.sh) to run the browser test'
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return 'python package playwright not installed (scripts/install_browser.sh installs it)'
    for mod in ('jupyterlab', 'ipywidgets', 'jupyterlab_widgets', 'ipykernel'):
        try: __import__(mod)
        except ImportError: return f'{mod} not installed: the browser test needs JupyterLab with ipywidgets'
    return None

def _notebook(cells: list[str]) -> dict:
    return {'cells': [{'id': f'cell-{i}', 'cell_type': 'code', 'execution_count': None, 'metadata': {}, 'outputs': [],
                       'source': c} for i, c in enumerate(cells)],
            'metadata': {'kernelspec': {'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'},
                         'language_info': {'name': 'python'}},
            'nbformat': 4, 'nbformat_minor': 5}

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, deadline: float):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f'jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}')
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200: return
        except OSError: pass
        time.sleep(0.5)
    raise TimeoutError(f'jupyter lab did not answer at {url}:\n{log.read_text()[-3000:]}')

def _wait_for_kernel(page, sessions_url: str, deadline: float):
    "Accept a 'Select Kernel' dialog if Lab shows one, then wait until the notebook's kernel is idle."
    while time.monotonic() < deadline:
        accept = page.locator('.jp-Dialog .jp-Dialog-button.jp-mod-accept')
        if accept.count() and accept.first.is_visible():
            accept.first.click(); time.sleep(0.5); continue
        try:
            with urllib.request.urlopen(sessions_url, timeout=2) as r: sessions = json.load(r)
        except OSError: sessions = []
        if any((s.get('kernel') or {}).get('execution_state') == 'idle' for s in sessions) and not page.locator('.jp-Dialog').count():
            return
        time.sleep(0.5)
    raise TimeoutError('the notebook kernel did not start')

def _stop(proc: subprocess.Popen):
    "End the server and its kernels (the process group this test started)."
    if proc.poll() is not None: return
    try: os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError: return
    try: proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL); proc.wait(5)

@contextlib.contextmanager
def _lab_notebook(tmp_path: Path, cells: list[str], name: str, deadline: float):
    """Open `cells` as a notebook in a fresh `jupyter lab` in headless Chromium and run them all (Run > Run All Cells).

    Yields (page, left): the playwright page and a function giving the milliseconds left before `deadline`. On a failure
    the page is saved as {name}_failed.png (also to $HBAC_SCREENSHOT_DIR) and the error carries the browser console and
    the server log. The server and its kernels are stopped at the end."""
    from playwright.sync_api import sync_playwright
    root = tmp_path/'lab'; root.mkdir()
    (root/'demo.ipynb').write_text(json.dumps(_notebook(cells), indent=1))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1',   # a busy CI machine
           # a clean Jupyter: no user settings, workspaces or kernelspecs from the home folder
           'JUPYTER_CONFIG_DIR': str(tmp_path/'jcfg'), 'JUPYTER_DATA_DIR': str(tmp_path/'jdata'),
           'JUPYTERLAB_SETTINGS_DIR': str(tmp_path/'jsettings'), 'JUPYTERLAB_WORKSPACES_DIR': str(tmp_path/'jws'),
           'JUPYTER_RUNTIME_DIR': str(tmp_path/'jrt'), 'IPYTHONDIR': str(tmp_path/'ipython')}
    # no "get notified about Jupyter news?" toast over the screenshot
    news = tmp_path/'jsettings'/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings'
    news.parent.mkdir(parents=True); news.write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    log = tmp_path/'jupyter.log'
    cmd = [sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}', '--ServerApp.port_retries=0',
           '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
    if os.geteuid() == 0: cmd.append('--allow-root')     # containers and CI often run as root
    dest = os.environ.get('HBAC_SCREENSHOT_DIR')
    console: list[str] = []
    with open(log, 'w') as logf:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f'http://127.0.0.1:{port}'
        _wait_for_server(f'{base}/api/status?token={token}', proc, log, deadline)
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(tmp_path/'chromium-profile'), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                viewport={'width': 1400, 'height': 2000})
            try:
                page = browser.pages[0] if browser.pages else browser.new_page()
                page.on('console', lambda m: console.append(f'{m.type}: {m.text}'))
                left = lambda: max(1000, int((deadline - time.monotonic())*1000))
                page.goto(f'{base}/lab/tree/demo.ipynb?reset&token={token}', timeout=left())
                # the notebook is open and its kernel is idle
                page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=left())
                _wait_for_kernel(page, f'{base}/api/sessions?token={token}', deadline)
                # Run > Run All Cells, as a user would
                page.click('.lm-MenuBar-itemLabel:text-is("Run")', timeout=left())
                page.click('.lm-Menu-itemLabel:text-is("Run All Cells")', timeout=left())
                yield page, left
            except Exception:
                failed = tmp_path/f'{name}_failed.png'
                page.screenshot(path=str(failed))   # what the page showed when it failed
                if dest:
                    Path(dest).mkdir(parents=True, exist_ok=True)
                    shutil.copy(failed, Path(dest)/failed.name)
                raise
            finally:
                browser.close()
    except Exception as e:
        raise AssertionError(f'{type(e).__name__}: {e}\n--- browser console (last 20) ---\n' + '\n'.join(console[-20:]) +
                             f'\n--- jupyter log (tail) ---\n{log.read_text()[-3000:]}') from e
    finally:
        _stop(proc)

def _keep(shots: list[Path]):
    "Copy the screenshots to $HBAC_SCREENSHOT_DIR when it is set."
    dest = os.environ.get('HBAC_SCREENSHOT_DIR')
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        for p in shots: shutil.copy(p, Path(dest)/p.name)

def _rendered_widget(page, control: str, left):
    "Wait until the widget with `control` (a CSS selector inside it) has drawn every figure; its output area."
    out = '.jp-OutputArea-output'
    page.wait_for_selector(f'{out} {control}', timeout=left())
    page.wait_for_selector(f'{out} .widget-output img[src^="data:image/png"]', timeout=left())
    page.wait_for_selector(f'{out} pre:has-text("demo ready:")', timeout=left())
    page.wait_for_function("""() => [...document.querySelectorAll('.widget-output img')]
                                  .every(i => i.complete && i.naturalWidth > 0)""", timeout=left())
    return page.locator(f'{out}:has({control.split()[0]})').first

def test_browser_renders_widget(tmp_path):
    reason = _skip_reason()
    if reason: pytest.skip(reason)
    deadline = time.monotonic() + TIMEOUT_S
    shot = tmp_path/'eeg_browser.png'
    with _lab_notebook(tmp_path, DEMO_CELLS, 'eeg_browser', deadline) as (page, left):
        out = '.jp-OutputArea-output'
        widget = _rendered_widget(page, '.widget-dropdown select', left)
        n_img = page.locator(f'{out} .widget-output img').count()
        labels = page.locator(f'{out} .widget-dropdown label').all_inner_texts()
        widths = page.eval_on_selector_all(f'{out} .widget-output img', 'els => els.map(e => e.naturalWidth)')
        info0 = widget.locator('.widget-html-content').first.inner_text()
        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(shot))
        # a click on 'next' goes through the kernel and redraws: the window with the next-highest loss
        montage0 = widget.locator('.widget-output img').first.get_attribute('src')
        widget.locator('button:has-text("next")').click(timeout=left())
        page.wait_for_function("""(src) => { const i = document.querySelector('.widget-output img');
                                            return i && i.getAttribute('src') !== src && i.complete; }""",
                               arg=montage0, timeout=left())
        widget.locator('.widget-html-content:has-text("rank 2/")').wait_for(timeout=left())
        info1 = widget.locator('.widget-html-content').first.inner_text()
        # choose an attribution method: the montage and spectrograms get the overlay
        montage1 = widget.locator('.widget-output img').first.get_attribute('src')
        widget.locator('.widget-dropdown:has(label:text-is("attribution")) select').select_option('ig')
        page.wait_for_function("""(src) => { const i = document.querySelector('.widget-output img');
                                            return i && i.getAttribute('src') !== src && i.complete; }""",
                               arg=montage1, timeout=left())
        widget.screenshot(path=str(tmp_path/'eeg_browser_widget.png'))
    assert n_img == 4, f'expected 4 figures (montage, 2 spectrograms, votes) in the widget, found {n_img} images'
    assert min(widths) > 100, widths
    assert any('EEG id' in s for s in labels), labels
    assert 'rank 1/' in info0 and 'rank 2/' in info1, (info0, info1)
    assert shot.exists() and shot.stat().st_size > 20_000
    _keep([shot, tmp_path/'eeg_browser_widget.png'])

def test_recording_browser_renders_widget(tmp_path):
    reason = _skip_reason()
    if reason: pytest.skip(reason)
    deadline = time.monotonic() + TIMEOUT_S
    shot = tmp_path/'recording_browser.png'
    with _lab_notebook(tmp_path, RECORDING_CELLS, 'recording_browser', deadline) as (page, left):
        out = '.jp-OutputArea-output'
        widget = _rendered_widget(page, '.widget-hslider', left)
        n_img = page.locator(f'{out} .widget-output img').count()
        sliders = widget.locator('.widget-hslider .widget-label').all_inner_texts()
        widths = page.eval_on_selector_all(f'{out} .widget-output img', 'els => els.map(e => e.naturalWidth)')
        info0 = widget.locator('.widget-html-content').first.inner_text()
        # 'next top' goes through the kernel: the timeline's marker moves to the top seizure window
        timeline0 = widget.locator('.widget-output img').first.get_attribute('src')
        widget.locator('button:has-text("next top")').click(timeout=left())
        if 'seizure rank 1/' not in info0:               # (the untrained model may rank the first window top already)
            page.wait_for_function("""(src) => { const i = document.querySelector('.widget-output img');
                                                return i && i.getAttribute('src') !== src && i.complete; }""",
                                   arg=timeline0, timeout=left())
        widget.locator('.widget-html-content:has-text("seizure rank 1/")').wait_for(timeout=left())
        page.wait_for_function("""() => [...document.querySelectorAll('.widget-output img')]
                                      .every(i => i.complete && i.naturalWidth > 0)""", timeout=left())
        info1 = widget.locator('.widget-html-content').first.inner_text()
        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(shot))
    assert n_img == 5, f'expected 5 figures (timeline, montage, 2 spectrograms, prediction), found {n_img} images'
    assert min(widths) > 100, widths
    assert 'time (s)' in sliders, sliders
    assert 'synthetic.edf' in info0 and 'seizure rank 1/' in info1, (info0, info1)
    assert shot.exists() and shot.stat().st_size > 20_000
    _keep([shot])
