"`hbac cv` end to end on a recipe-shaped runs folder: the files and their formats, KL recomputed from oof.parquet, the blend.json predict then uses by default, the user errors."
import argparse, contextlib, io, json, shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hbac.data import VOTE_COLS, DataError, read_train_csv
from hbac.ensemble import CV_COLUMNS, CV_TABLE_COLUMNS, TARGET_COLS, add_cv_parser, cv, one_window_per_eeg
from hbac.fixtures import TINY_KWARGS, init_run_dir
from hbac.metrics import competition_kl
from hbac.runs import find_run_dirs
from hbac.predict import predict

@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

MODELS = ('eeg', 'spectrogram', 'multimodal')
STAGES = {'eeg': ('stage1', 'stage2'), 'spectrogram': ('stage2',), 'multimodal': ('mm_stage1', 'mm_stage2')}

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    "The tiny dataset, its cache under CACHE/train (the `hbac preprocess` layout) and RUNS/fold{k}/{model}/{stage} for 2 folds."
    from hbac.synthetic import tiny_dataset
    from hbac.preprocess import preprocess
    d = tmp_path_factory.mktemp('cv')
    data = tiny_dataset(d/'data')
    preprocess(data, d/'cache'/'train', split='train', workers=1, progress=False)
    runs = d/'runs'
    for k in range(2):
        for m in MODELS:
            for st in STAGES[m]:
                rd = runs/f'fold{k}'/m/st
                for ck, seed in (('final', 10 + k), ('best_high', k)):     # different weights: the checkpoints differ
                    init_run_dir(rd, m, TINY_KWARGS[m], fold=k, n_folds=2, checkpoints=(ck,), seed=seed,
                                 extra={'stage': st, 'recipe': 'tiny'})
                c = json.loads((rd/'config.json').read_text())           # the recipe's key: extra.model
                c['extra']['model'] = c['extra'].pop('model_name'); (rd/'config.json').write_text(json.dumps(c))
    return data, d/'cache', runs

@pytest.fixture
def runs_copy(setup, tmp_path):
    data, cache, runs = setup
    shutil.copytree(runs, tmp_path/'runs')
    return data, cache, tmp_path/'runs'

def _cli(argv):
    p = argparse.ArgumentParser(prog='hbac'); sp = p.add_subparsers(dest='command', required=True)
    add_cv_parser(sp)
    args = p.parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out): code = args.func(args)
    return code, out.getvalue()

def _kl(d): return competition_kl(d[list(TARGET_COLS)].to_numpy(), d[list(VOTE_COLS)].to_numpy())

def test_cli_cv_files_and_table(runs_copy, tmp_path):
    data, cache, runs = runs_copy
    out = tmp_path/'out'
    code, text = _cli(['cv', '--runs', str(runs), '--data-dir', str(data), '--cache-dir', str(cache), '--out', str(out),
                       '--device', 'cpu', '--batch-size', '8'])
    assert code == 0
    assert 'kl_eeg_all' in text and 'blend weights (fitted on best_high' in text and str(runs/'blend.json') in text
    assert sorted(p.name for p in out.iterdir()) == ['blend.json', 'cv.csv', 'cv.png', 'oof.parquet']

    train = read_train_csv(data)
    n_win, n_eeg = len(train), train.eeg_id.nunique()
    oof = pd.read_parquet(out/'oof.parquet')
    assert list(oof.columns[:8]) == ['model', 'fold', 'checkpoint', 'eeg_id', 'eeg_label_offset_seconds', 'spectrogram_id',
                                     'spectrogram_label_offset_seconds', 'count']
    assert list(oof.columns[8:14]) == list(VOTE_COLS)
    assert list(oof.columns) == list(CV_COLUMNS) and list(oof.columns[14:20]) == [f'{c[:-5]}_target' for c in VOTE_COLS]
    assert len(oof) == n_win*len(MODELS)*2                                    # windows x runs x checkpoints
    assert sorted(oof.checkpoint.unique()) == ['best_high', 'final']
    for (m, ck), g in oof.groupby(['model', 'checkpoint']):
        assert sorted(g.label_id) == sorted(train.label_id), (m, ck)         # every window once, from its fold's run
    assert len(one_window_per_eeg(oof)) == n_eeg*len(MODELS)*2
    np.testing.assert_allclose(oof[list(VOTE_COLS)].sum(axis=1), 1, atol=1e-5)
    truth = train.set_index('label_id').loc[oof.label_id]
    votes = truth[list(VOTE_COLS)].to_numpy(float)
    np.testing.assert_allclose(oof[list(TARGET_COLS)].to_numpy(), votes/votes.sum(1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(oof['count'], votes.sum(1))

    table = pd.read_csv(out/'cv.csv')
    assert list(table.columns) == list(CV_TABLE_COLUMNS)
    assert table.model.tolist() == [m for m in ('eeg', 'multimodal', 'spectrogram', 'average', 'blend', 'blend_refit') for _ in range(2)]
    assert table.checkpoint.tolist() == ['best_high', 'final']*6
    assert (table.n_eegs == n_eeg).all() and (table.n_windows == n_win).all() and (table.n_folds == 2).all()
    for r in table[~table.model.isin(['average', 'blend', 'blend_refit'])].itertuples():
        d = oof[(oof.model == r.model) & (oof.checkpoint == r.checkpoint)]
        assert r.kl_all == pytest.approx(_kl(d), abs=1e-9)
        assert r.kl_high == pytest.approx(_kl(d[d['count'] >= 10]), abs=1e-9)
        assert r.kl_low == pytest.approx(_kl(d[d['count'] < 10]), abs=1e-9)
        one = one_window_per_eeg(d)
        assert len(one) == n_eeg and r.kl_eeg_all == pytest.approx(_kl(one), abs=1e-9)
    bh, fi = (table[(table.model == 'eeg') & (table.checkpoint == c)].iloc[0] for c in ('best_high', 'final'))
    assert abs(bh.kl_all - fi.kl_all) > 1e-6                                  # the two checkpoints were both scored

    blend = json.loads((out/'blend.json').read_text())
    assert json.loads((runs/'blend.json').read_text()) == blend
    assert {'weights', 'checkpoint', 'n_rows', 'kl_blend', 'kl_plain_average'} <= set(blend)
    assert sorted(blend['weights']) == sorted(MODELS) and sum(blend['weights'].values()) == pytest.approx(1, abs=1e-9)
    assert (blend['checkpoint'], blend['n_rows']) == ('best_high', n_eeg)
    assert blend['runs'] == [p.relative_to(runs).as_posix() for p in find_run_dirs(runs)]
    one = one_window_per_eeg(oof[oof.checkpoint == 'best_high'])
    per = {m: g.set_index('label_id').sort_index() for m, g in one.groupby('model')}
    t = per['eeg'][list(TARGET_COLS)].to_numpy()
    p = sum(w*per[m][list(VOTE_COLS)].to_numpy() for m, w in blend['weights'].items())
    assert blend['kl_blend'] == pytest.approx(competition_kl(t, p), abs=1e-9)
    assert blend['kl_plain_average'] == pytest.approx(competition_kl(t, sum(x[list(VOTE_COLS)].to_numpy() for x in per.values())/3), abs=1e-9)
    assert blend['kl_blend'] <= blend['kl_plain_average'] + 1e-12
    row = table[(table.model == 'blend') & (table.checkpoint == 'best_high')].iloc[0]
    assert row.kl_eeg_all == pytest.approx(blend['kl_blend'], abs=1e-9)

def test_predict_uses_the_cv_blend(runs_copy, tmp_path, capsys):
    data, cache, runs = runs_copy
    blend = cv(runs, data, cache/'train', tmp_path/'out', batch_size=8, device='cpu', plot=False, verbose=False)['blend']
    sub = predict(data, [runs], tmp_path/'s.csv', device='cpu')
    line = capsys.readouterr().out
    assert line.startswith(f'predict: ensemble = blend weights from {runs/"blend.json"} (')
    ens = sub.attrs['ensemble']
    assert (ens['source'], ens['checkpoint'], ens['blend_file']) == ('blend', 'best_high', str(runs/'blend.json'))
    assert ens['weights'] == {m: w for m, w in blend['weights'].items() if w > 0}
    ref = predict(data, [runs], tmp_path/'r.csv', device='cpu', weights=blend['weights'], checkpoint='best_high')
    np.testing.assert_allclose(sub[list(VOTE_COLS)].to_numpy(), ref[list(VOTE_COLS)].to_numpy(), atol=1e-9)
    fin = predict(data, [runs], tmp_path/'f.csv', device='cpu', checkpoint='final')          # an explicit checkpoint wins
    assert fin.attrs['ensemble']['checkpoint'] == 'final' and fin.attrs['ensemble']['source'] == 'blend'
    assert not np.allclose(fin[list(VOTE_COLS)].to_numpy(), sub[list(VOTE_COLS)].to_numpy())
    (runs/'blend.json').unlink()                                                            # without it: the multimodal runs
    mm = predict(data, [runs], tmp_path/'m.csv', device='cpu')
    assert mm.attrs['ensemble']['source'] == 'multimodal'
    assert 'multimodal, averaged over 2 folds (no blend.json beside the runs' in capsys.readouterr().out

def test_final_checkpoint_and_default_out(runs_copy):
    data, cache, runs = runs_copy
    code, text = _cli(['cv', '--runs', str(runs), '--data-dir', str(data), '--cache-dir', str(cache/'train'),
                       '--checkpoint', 'final', '--device', 'cpu'])
    assert code == 0
    oof = pd.read_parquet(runs/'cv'/'oof.parquet')                                           # --out defaults to RUNS/cv
    assert oof.checkpoint.unique().tolist() == ['final']
    assert pd.read_csv(runs/'cv'/'cv.csv').checkpoint.unique().tolist() == ['final']
    assert json.loads((runs/'blend.json').read_text())['checkpoint'] == 'final'
    assert len(find_run_dirs(runs)) == 6                                                     # the outputs are no runs

def test_one_window_per_eeg_is_the_validation_rule(setup):
    from hbac.dataset import WindowDataset, labels_table
    data, cache, _ = setup
    labels = labels_table(read_train_csv(data))
    ds = WindowDataset(labels, cache/'train', 'eeg', valid_mode='one_per_eeg')
    assert sorted(one_window_per_eeg(labels, by=()).label_id) == sorted(ds.frame.label_id)
    shuffled = labels.sample(frac=1, random_state=0)
    assert sorted(one_window_per_eeg(shuffled, by=()).label_id) == sorted(ds.frame.label_id)

def test_user_errors(runs_copy, tmp_path):
    data, cache, runs = runs_copy
    with pytest.raises(DataError, match='runs folder .*nowhere does not exist'):
        cv(tmp_path/'nowhere', data, cache, tmp_path/'o')
    (tmp_path/'empty').mkdir()
    with pytest.raises(DataError, match='no run directory'):
        cv(tmp_path/'empty', data, cache, tmp_path/'o')
    with pytest.raises(ValueError, match="unknown checkpoint 'best'"):
        cv(runs, data, cache, tmp_path/'o', checkpoint='best')
    shutil.copytree(runs/'fold0'/'eeg'/'stage2', runs/'other_recipe'/'eeg')
    with pytest.raises(DataError, match="two runs of model 'eeg' for fold 0"):
        cv(runs, data, cache/'train', tmp_path/'o', device='cpu')
    assert not (tmp_path/'o').exists() and not (runs/'blend.json').exists()

def test_hbac_main_cv(runs_copy, tmp_path, capsys):
    "Once the CLI registers `add_cv_parser`: exit 0, and a user error is one line with exit 1."
    from hbac.cli import build_parser, main
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if 'cv' not in sub.choices: pytest.skip('hbac cv is not registered in hbac.cli.build_parser yet')
    data, cache, runs = runs_copy
    assert main(['cv', '--runs', str(runs), '--data-dir', str(data), '--cache-dir', str(cache), '--out', str(tmp_path/'o'),
                 '--device', 'cpu']) == 0
    assert (tmp_path/'o'/'cv.csv').exists()
    capsys.readouterr()
    assert main(['cv', '--runs', str(tmp_path/'gone'), '--data-dir', str(data)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('hbac cv: error: runs folder') and 'gone does not exist' in err[0]
