"""Sanity checks of hbac.interpret that can fail: IG completeness, model randomisation (Adebayo et al. 2018),
localisation on a toy task with known left-hemisphere evidence; and the files/CLI of `hbac interpret`.

Everything runs on toy-sized models on the CPU (one thread: faster than two on a busy 2-core machine)."""
import argparse, contextlib, io, json, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from hbac.data import CLASSES, VOTE_COLS, read_train_csv, real_fixtures_dir
from hbac.interpret import (METHODS, add_interpret_parser, attribute, channel_importance, interpret_run,
                            load_attribution, load_attributions, randomisation_check, randomise_weights, save_attributions)
from hbac.models.eeg import EegModel
from hbac.models.multimodal import MultimodalModel
from hbac.models.spectrogram import SpectrogramModel

EEG_KW = dict(widths=(8, 8, 8, 16), kernels=(5, 3, 3), hidden=16, n_layers=1)
LRDA, OTHER = CLASSES.index('lrda'), CLASSES.index('other')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def planted_rhythm(n, seed, T=256, fs=50):
    "Noise windows (n, 19, T); a 2 Hz rhythm in the 8 left montage channels -> lrda, in the 8 right ones or none -> other."
    g = np.random.default_rng(seed)
    x = g.normal(0, 1, (n, 19, T)).astype(np.float32)
    y = np.zeros((n, 6), np.float32)
    t = np.arange(T)/fs
    for i in range(n):
        wave = 2*np.sin(2*np.pi*2*t + g.uniform(0, 2*np.pi))
        if i % 3 == 0: x[i, :8] += wave; y[i, LRDA], y[i, OTHER] = 0.9, 0.1
        else:
            if i % 3 == 1: x[i, 8:16] += wave
            y[i, LRDA], y[i, OTHER] = 0.1, 0.9
    return torch.tensor(x), torch.tensor(y)


@pytest.fixture(scope='module')
def trained():
    "A toy EegModel trained (KL loss, Adam) until it tells left from right rhythms; with its validation windows."
    torch.manual_seed(0)
    X, Y = planted_rhythm(150, 0)
    model = EegModel(**EEG_KW)
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    for _ in range(8):
        model.train()
        for idx in torch.randperm(len(X)).split(16):
            loss = F.kl_div(model(X[idx]), Y[idx], reduction='batchmean')
            opt.zero_grad(); loss.backward(); opt.step()
    model.eval()
    Xv, Yv = planted_rhythm(30, 1)
    with torch.no_grad(): lp = model(Xv)
    acc = float(((lp[:, LRDA] > lp[:, OTHER]) == (Yv[:, LRDA] > 0.5)).float().mean())
    assert acc >= 0.9, f'toy model did not learn the task (validation accuracy {acc:.2f})'
    left = [i for i in range(len(Xv)) if Yv[i, LRDA] > 0.5]
    return model, Xv, left


# ---- (a) completeness ------------------------------------------------------------------------------------------

def _gap(a): return abs(a.score - a.baseline_score)

def test_ig_completeness_trained_eeg(trained):
    "Zero baseline, 64 steps: |delta| < 5 % of F(x) - F(baseline), where that gap is large (about 2 nats)."
    model, Xv, left = trained
    for i in left[:3]:
        a = attribute(model, Xv[i], target='lrda', n_steps=64)
        total = float(a.values.sum())
        assert _gap(a) > 0.5, 'F(x) and F(baseline) barely differ: the check would be vacuous'
        # Captum's delta is sum(attr) - (F(x) - F(b)); recompute it independently from the stored scores
        assert abs(total - (a.score - a.baseline_score) - a.delta) < 1e-3
        assert abs(a.delta) < 0.05*_gap(a), (i, a.delta, _gap(a))


def test_ig_completeness_noise_baseline(trained):
    """Noise baseline: the toy model finds band-limited noise almost as 'lrda' as the window (F(b) ~ F(x)), so a
    relative bound is ill-posed; the integration error must still be small in absolute terms (nats)."""
    model, Xv, left = trained
    for i in left[:3]:
        a = attribute(model, Xv[i], target='lrda', n_steps=128, baseline='noise')
        assert abs(float(a.values.sum()) - (a.score - a.baseline_score) - a.delta) < 1e-3
        assert abs(a.delta) < 0.05, (i, a.delta, _gap(a))


def test_ig_completeness_images_and_multimodal():
    torch.manual_seed(0)
    g = np.random.default_rng(0)
    img = g.normal(0, 1, (4, 32, 64)).astype(np.float32)
    spec = SpectrogramModel(widths=(4, 8, 16), n_layers=1)
    mm = MultimodalModel(EegModel(**EEG_KW), SpectrogramModel(widths=(4, 8, 16), n_layers=1),
                         SpectrogramModel(widths=(4, 8, 16), n_layers=1), n_layers=1)
    for model, x, kw in [(spec, img, {'modality': 'spectrogram'}),
                         (mm, {'eeg': g.normal(0, 1, (19, 256)).astype(np.float32), 'eeg_spectrogram': img, 'spectrogram': img}, {})]:
        a = attribute(model, x, n_steps=64, **kw)
        total = sum(float(v.sum()) for v in a.arrays().values())
        assert abs(total - (a.score - a.baseline_score)) <= abs(a.delta) + 1e-4
        assert abs(a.delta) < 0.05*_gap(a) + 1e-4, (type(model).__name__, a.delta, _gap(a))


# ---- (b) model randomisation ------------------------------------------------------------------------------------

def test_model_randomisation(trained):
    model, Xv, left = trained
    for i in left[:2]:
        chk = randomisation_check(model, Xv[i], target='lrda', n_steps=64, seed=i)
        print(i, {k: round(v, 3) for k, v in chk.items()})
        assert chk['repeat'] > 0.8, chk            # stable under a 5 % input jitter
        assert chk['randomised'] < 0.5, chk        # but not under random weights
        assert chk['randomised_abs'] < chk['repeat_abs'], chk
    r = randomise_weights(model, 0)
    kept = [n for (n, p), q in zip(model.named_parameters(), r.parameters()) if p.ndim > 1 and torch.equal(p, q)]
    assert not kept, f'weight matrices survived randomisation: {kept}'
    assert not r.training and model.training is False


# ---- (c) localisation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('method', METHODS)
def test_localisation_left_chains(trained, method):
    model, Xv, left = trained
    for i in left[:3]:
        a = attribute(model, Xv[i], target='lrda', method=method, n_steps=32)
        imp = channel_importance(a)
        mass = imp.groupby('group')['abs'].sum()
        lhs, rhs = mass['LL'] + mass['LP'], mass['RP'] + mass['RL']
        assert lhs > 2*rhs, (method, i, lhs, rhs)
        assert imp.loc[imp.side == 'left', 'fraction'].sum() > 0.6, (method, i)


def test_hemisphere_swap_moves_attribution(trained):
    "Swapping the hemispheres of a left window makes the model say 'other' and moves lrda evidence off the right side."
    from hbac.dataset import swap_hemispheres
    model, Xv, left = trained
    x = Xv[left[0]].numpy()
    a = attribute(model, x, target='lrda')
    b = attribute(model, swap_hemispheres(x), target='lrda')
    assert a.probs[LRDA] > 0.5 > b.probs[LRDA]
    ia, ib = channel_importance(a), channel_importance(b)
    assert ia.loc[ia.side == 'left', 'abs'].sum() > ia.loc[ia.side == 'right', 'abs'].sum()
    assert ib.loc[ib.side == 'right', 'abs'].sum() > ib.loc[ib.side == 'left', 'abs'].sum()


# ---- files, run, CLI --------------------------------------------------------------------------------------------

def test_files_readable_without_hbac(trained, tmp_path):
    "The npz + json pair is plain numpy + JSON: a program without hbac can read it."
    model, Xv, left = trained
    a = attribute(model, Xv[left[0]], target='lrda')
    paths = save_attributions([a], tmp_path, eeg_ids=[7], label_ids=[70], offsets=[12.0])
    code = ("import json, sys, numpy as np\n"
            "m = json.load(open(sys.argv[1])); z = np.load(sys.argv[2])\n"
            "v = z['values_eeg']; assert v.shape == tuple(m['shapes']['eeg'])\n"
            "print(m['eeg_id'], m['label_id'], m['target_class'], m['method'], round(float(v.sum()) - (m['score'] - m['baseline_score']) - m['convergence_delta'], 4))")
    out = subprocess.run([sys.executable, '-S', '-c', code, str(paths['meta'][0]), str(paths['arrays'][0])],
                         capture_output=True, text=True, env={'PYTHONPATH': str(Path(np.__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    eid, lid, cls, meth, resid = out.stdout.split()
    assert (eid, lid, cls, meth) == ('7', '70', 'lrda', 'ig') and abs(float(resid)) < 1e-3
    back = load_attribution(paths['meta'][0])
    np.testing.assert_array_equal(back.values, a.values)
    csv = pd.read_csv(paths['summary'])
    assert list(csv.channel[:4]) == ['Fp1-F7', 'F7-T3', 'T3-T5', 'T5-O1'] and len(csv) == 19


def _toy_run(root, name, kwargs, key='model_name'):
    from hbac.models.registry import build_model
    from hbac.runs import save_checkpoint
    torch.manual_seed(0)
    run = Path(root)/f'run_{name}'; run.mkdir(parents=True)
    save_checkpoint(run/'best_high.pt', build_model(name, **kwargs), epoch=0)
    (run/'config.json').write_text(json.dumps({'config': {}, 'extra': {key: name, 'model_kwargs': kwargs}}))
    return run


def _cli(argv):
    p = argparse.ArgumentParser(prog='hbac')
    add_interpret_parser(p.add_subparsers(dest='command', required=True))
    args = p.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = args.func(args)
    return rc, out.getvalue(), err.getvalue()


def test_cli_on_synthetic_data(tmp_path):
    from hbac.synthetic import tiny_dataset
    data = tiny_dataset()
    train = read_train_csv(data)
    run = _toy_run(tmp_path, 'spectrogram', {'widths': [4, 8, 16], 'n_layers': 1})
    eid = int(train.eeg_id.iloc[0])
    rc, out, err = _cli(['interpret', '--run', str(run), '--data-dir', str(data), '--ids', str(eid),
                         '--out', str(tmp_path/'out'), '--method', 'gradcam', 'occlusion'])
    assert rc == 0, err
    n_win = 1                                                          # --windows-per-eeg defaults to 1
    files = sorted(p.name for p in (tmp_path/'out').iterdir())
    assert len([f for f in files if f.endswith('.png')]) == 2*n_win, files
    attrs = load_attributions(tmp_path/'out')
    assert {a.method for a in attrs} == {'gradcam', 'occlusion'} and all(a.values.shape == (4, 96, 224) for a in attrs)
    assert all(a.modality == 'spectrogram' for a in attrs)
    imp = pd.read_csv(tmp_path/'out'/'importance.csv')
    assert list(imp.channel[:4]) == ['LL', 'RL', 'LP', 'RP']          # Kaggle spectrogram regions in file order
    # bad input: an error naming the problem, exit status 2, nothing written
    rc, out, err = _cli(['interpret', '--run', str(tmp_path), '--data-dir', str(data), '--ids', str(eid), '--out', str(tmp_path/'bad')])
    assert rc == 2 and 'no config.json' in err and not (tmp_path/'bad').exists()
    rc, out, err = _cli(['interpret', '--run', str(run), '--data-dir', str(data), '--ids', '5', '--out', str(tmp_path/'bad')])
    assert rc == 2 and 'no rows with eeg_id [5]' in err and not (tmp_path/'bad').exists()


def test_interpret_run_on_real_fixture(tmp_path):
    fx = real_fixtures_dir()
    if fx is None: pytest.skip('real fixtures not found (../shared/fixtures/real or $HBAC_FIXTURES)')
    data = fx/'hms'
    run = _toy_run(tmp_path, 'eeg', dict(EEG_KW), key='model')
    train = read_train_csv(data)
    lids = [int(x) for x in train.label_id.iloc[[0, -1]]]
    paths = interpret_run(run, data, lids, tmp_path/'out', methods=['ig'], id_kind='label', target='seizure', n_steps=8)
    assert len(paths['figures']) == 2 and all(p.stat().st_size > 10_000 for p in paths['figures'])
    for lid, jp in zip(lids, paths['meta']):
        m = json.loads(jp.read_text())
        row = train[train.label_id == lid].iloc[0]
        assert m['label_id'] == lid and m['offset_seconds'] == float(row.eeg_label_offset_seconds)
        assert m['votes'] == [float(row[c]) for c in VOTE_COLS] and m['target_class'] == 'seizure'
    # the test split: test.csv rows at offset 0, no votes
    tp = interpret_run(run, data, [3911565283], tmp_path/'test', split='test', n_steps=4, plots=False)
    m = json.loads(tp['meta'][0].read_text())
    assert m['votes'] is None and m['offset_seconds'] == 0.0 and m['split'] == 'test'
