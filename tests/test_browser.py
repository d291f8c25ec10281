"""The EegBrowser widget really renders in JupyterLab: a headless Debian Chromium (driven by Python playwright) opens a
demo notebook in a fresh `jupyter lab` server, runs all cells from the Run menu, waits for the widget's controls and
its montage image, and saves a screenshot (to pytest's tmp dir, and to $HBAC_SCREENSHOT_DIR when set).

Needs /usr/bin/chromium and the `playwright` package (scripts/install_browser.sh installs both); skips otherwise.
Never runs `playwright install`: the test drives the system chromium."""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
TIMEOUT_S = 110          # the whole test stays under 2 minutes

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

def test_browser_renders_widget(tmp_path):
    reason = _skip_reason()
    if reason: pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    t0 = time.monotonic(); deadline = t0 + TIMEOUT_S
    root = tmp_path/'lab'; root.mkdir()
    (root/'demo.ipynb').write_text(json.dumps(_notebook(DEMO_CELLS), indent=1))
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
    shot = tmp_path/'eeg_browser.png'
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
                out = '.jp-OutputArea-output'
                page.wait_for_selector(f'{out} .widget-dropdown select', timeout=left())
                page.wait_for_selector(f'{out} .widget-output img[src^="data:image/png"]', timeout=left())
                page.wait_for_selector(f'{out} pre:has-text("demo ready:")', timeout=left())
                page.wait_for_function("""() => [...document.querySelectorAll('.widget-output img')]
                                              .every(i => i.complete && i.naturalWidth > 0)""", timeout=left())
                widget = page.locator('.jp-OutputArea-output:has(.widget-dropdown)').first
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
            except Exception:
                page.screenshot(path=str(tmp_path/'eeg_browser_failed.png'))   # what the page showed when it failed
                if dest:
                    Path(dest).mkdir(parents=True, exist_ok=True)
                    shutil.copy(tmp_path/'eeg_browser_failed.png', Path(dest)/'eeg_browser_failed.png')
                raise
            finally:
                browser.close()
    except Exception as e:
        raise AssertionError(f'{type(e).__name__}: {e}\n--- browser console (last 20) ---\n' + '\n'.join(console[-20:]) +
                             f'\n--- jupyter log (tail) ---\n{log.read_text()[-3000:]}') from e
    finally:
        _stop(proc)
    assert n_img == 4, f'expected 4 figures (montage, 2 spectrograms, votes) in the widget, found {n_img} images'
    assert min(widths) > 100, widths
    assert any('EEG id' in s for s in labels), labels
    assert 'rank 1/' in info0 and 'rank 2/' in info1, (info0, info1)
    assert shot.exists() and shot.stat().st_size > 20_000
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        for p in (shot, tmp_path/'eeg_browser_widget.png'): shutil.copy(p, Path(dest)/p.name)
