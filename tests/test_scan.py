"""`hbac scan` end to end on EDF files: bad inputs give one clear line, a non-zero exit and no output; a missing
channel is a warning; a 500-Hz file scans like a 256-Hz one."""
import contextlib, io, json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hbac.data import EEG_CHANNELS
from hbac.fixtures import TINY_KWARGS, init_run_dir
from hbac.recordings import write_edf
from hbac.synthetic import synth_recording

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
LABELS = ['EEG ' + {'T3': 'T7', 'T4': 'T8', 'T5': 'P7', 'T6': 'P8'}.get(c, c) + '-REF' for c in EEG_CHANNELS[:-1]] + ['ECG']

def hbac(*args):
    return subprocess.run([sys.executable, '-m', 'hbac.cli', *map(str, args)], cwd=ROOT, capture_output=True, text=True, env=ENV)

def hbac_here(*args):
    "`hbac ARGS` through `hbac.cli.main` in this process (about 4 s less than a subprocess's imports), as a CompletedProcess."
    from hbac.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp('scan')
    x = synth_recording(180, [('seizure', 'left', 60, 120)], np.random.default_rng(0)).astype(np.float64)
    from scipy.signal import resample_poly
    write_edf(d/'ok.edf', resample_poly(x, 32, 25, axis=0), 256, LABELS)
    write_edf(d/'fast.edf', resample_poly(x, 5, 2, axis=0), 500, LABELS)
    init_run_dir(d/'runs'/'eeg', 'eeg', TINY_KWARGS['eeg'], fold=0, n_folds=2)
    return d, x

def one_line_error(r, *needles):
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith('hbac scan: error: '), r.stderr
    for n in needles: assert n in lines[0], (n, lines[0])

def test_bad_inputs(setup, tmp_path):
    d, x = setup
    (tmp_path/'text.edf').write_text('this is not an EDF file ' * 20)
    (tmp_path/'trunc.edf').write_bytes((d/'ok.edf').read_bytes()[:40_000])
    write_edf(tmp_path/'noeeg.edf', x[:, :2], 200, ['Resp', 'Pleth'])
    write_edf(tmp_path/'short.edf', x[:200 * 40], 200, LABELS)
    bad_rate = bytearray((d/'ok.edf').read_bytes())         # samples per data record of every signal set to 0: no rate
    ns = int(bad_rate[252:256].decode())
    for j in range(ns): bad_rate[256 + ns * 216 + 8 * j:256 + ns * 216 + 8 * (j + 1)] = b'0       '
    (tmp_path/'norate.edf').write_bytes(bytes(bad_rate))
    (tmp_path/'notes.csv').write_text('a,b\n')
    cases = {'text.edf': 'not a readable EDF file', 'trunc.edf': 'truncated', 'noeeg.edf': 'no EEG channels',
             'short.edf': 'shorter than one 50-s window', 'norate.edf': 'norate.edf: ', 'notes.csv': 'not an EDF, BDF or Kaggle parquet',
             'missing.edf': 'file not found'}
    for i, (name, needle) in enumerate(cases.items()):      # the first as the console script runs, the rest in this process
        out = tmp_path/f'out_{name}'
        r = (hbac if i == 0 else hbac_here)('scan', d/'ok.edf', tmp_path/name, '--models', d/'runs', '--out', out, '--no-progress')
        assert 'Traceback' not in r.stderr, r.stderr
        one_line_error(r, name, needle)
        assert not out.exists(), name                       # nothing written, not even for the good file before it

def test_missing_channel_and_500_hz(setup, tmp_path):
    d, x = setup
    keep = [j for j, c in enumerate(EEG_CHANNELS) if c != 'O2']
    write_edf(tmp_path/'no_o2.edf', x[:, keep], 200, [LABELS[j] for j in keep])
    r = hbac('scan', tmp_path/'no_o2.edf', d/'ok.edf', d/'fast.edf', '--models', d/'runs', '--out', tmp_path/'out', '--no-progress')
    assert r.returncode == 0, r.stderr
    assert 'no channel for O2: read as zero (montage pairs P4-O2, T6-O2)' in r.stderr, r.stderr
    assert 'wrote ' in r.stdout and 'timeline.png' in r.stdout, r.stdout
    summary = json.loads((tmp_path/'out'/'no_o2'/'summary.json').read_text())
    assert summary['channels_missing'] == ['O2'] and summary['lost_montage_pairs'] == ['P4-O2', 'T6-O2']
    a, b = (pd.read_csv(tmp_path/'out'/n/'timeline.csv') for n in ('ok', 'fast'))
    assert len(a) == len(b) == len(np.arange(0, 180 * 200 - 10_000 + 1, 2000))
    cols = ['seizure', 'lpd', 'gpd', 'lrda', 'grda', 'other']
    assert np.abs(a[cols].to_numpy() - b[cols].to_numpy()).max() < 0.02     # 256 Hz and 500 Hz files: the same timeline

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A small spectrogram CNN on the EEG spectrogram, trained through `fit` on 50-s synthetic clips of seizure, LPD and background."
    import torch
    from hbac.data import CLASSES
    from hbac.dataset import window_inputs
    from hbac.devices import set_seed
    from hbac.models.registry import build_model
    from hbac.synthetic import synth_eeg
    from hbac.train import TrainConfig, fit
    torch.set_num_threads(1)
    rng = np.random.default_rng(11)
    def clips(n):
        xs, ys = [], []
        for i in range(n):
            c = ('seizure', 'lpd', 'other')[i % 3]
            side = 'both' if c == 'other' else ('left', 'right')[(i // 3) % 2]
            xs.append(window_inputs(synth_eeg(c, side, 10_000, rng), None, ('eeg_spectrogram',))['eeg_spectrogram'])
            ys.append(np.eye(len(CLASSES), dtype=np.float32)[CLASSES.index(c)])
        x = torch.from_numpy(np.stack(xs)); y = torch.from_numpy(np.stack(ys))
        return torch.utils.data.TensorDataset(x, y, torch.full((n,), 12.0))
    d = tmp_path_factory.mktemp('scan_trained')
    kw = {'widths': [8, 8, 8, 16, 16, 32]}
    set_seed(0)
    r = fit(build_model('eeg_spectrogram', **kw), clips(150), clips(30), TrainConfig(epochs=6, batch_size=8, lr=3e-3, progress=False,
            device='cpu', seed=0, schedule='cosine'), d/'runs'/'es', extra={'model_name': 'eeg_spectrogram', 'model_kwargs': kw})
    return d/'runs', r

def test_scan_finds_the_seizure(trained, tmp_path):
    "A 20-min recording (EDF, 256 Hz, T7/P7 names) with a seizure and an LPD episode: the timeline finds them where they are."
    runs, fitted = trained
    seizure, lpd = (300, 420), (780, 900)
    x = synth_recording(1200, [('seizure', 'left', *seizure), ('lpd', 'right', *lpd)], np.random.default_rng(3))
    from scipy.signal import resample_poly
    edf = write_edf(tmp_path/'icu.edf', resample_poly(x.astype(np.float64), 32, 25, axis=0), 256, LABELS)
    r = hbac('scan', edf, '--models', runs, '--out', tmp_path/'out', '--device', 'cpu', '--no-progress')
    assert r.returncode == 0, r.stderr
    tl = pd.read_csv(tmp_path/'out'/'icu'/'timeline.csv')
    inside = (tl.start_s >= seizure[0]) & (tl.end_s <= seizure[1])
    in_lpd = (tl.start_s >= lpd[0]) & (tl.end_s <= lpd[1])
    background = ~((tl.end_s > seizure[0]) & (tl.start_s < seizure[1])) & ~((tl.end_s > lpd[0]) & (tl.start_s < lpd[1]))
    top = tl.loc[tl.seizure.idxmax()]
    p_in, p_out = tl.seizure[inside].mean(), tl.seizure[background].mean()
    print(f"scan (validation KL {fitted.best['all']['value']:.3f}): top seizure window {top.start_s:g}-{top.end_s:g} s "
          f"(episode {seizure[0]}-{seizure[1]} s, p {top.seizure:.2f}); mean seizure probability inside {p_in:.2f}, background "
          f"{p_out:.2f}; mean LPD probability in the LPD episode {tl.lpd[in_lpd].mean():.2f}, background {tl.lpd[background].mean():.2f}")
    assert seizure[0] <= top.start_s and top.end_s <= seizure[1], top
    assert p_in > p_out + 0.3, (p_in, p_out)
    assert tl.lpd[in_lpd].mean() > tl.lpd[background].mean() + 0.2
    summary = json.loads((tmp_path/'out'/'icu'/'summary.json').read_text())
    first = summary['classes']['seizure']['top_windows'][0]
    assert seizure[0] <= first['start_s'] and first['end_s'] <= seizure[1], first
