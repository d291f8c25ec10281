"Prediction end to end: the Kaggle notebook on a Kaggle-layout synthetic dataset and on the real public test example, the bundle's wheel, bad inputs, the CLI."
import argparse, contextlib, io, json, os, shutil, subprocess, sys, warnings, zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hbac.data import SUBMISSION_COLUMNS, VOTE_COLS, DataError, eeg_path, read_test_csv, real_fixtures_dir, spectrogram_path
from hbac.fixtures import TINY_KWARGS, init_run_dir
from hbac.runs import find_run_dirs, load_run
from hbac.predict import (FORMAT_CHECK_BANNER, FORMAT_CHECK_ENV, add_bundle_parser, add_predict_parser, build_kaggle_bundle,
                          check_submission, predict)

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT/'nbs'/'16_kaggle_submission.ipynb'
COMPETITION = 'hms-harmful-brain-activity-classification'

@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    from hbac.synthetic import tiny_dataset
    return tiny_dataset(tmp_path_factory.mktemp('tiny')/'data')

@pytest.fixture(scope='module')
def trained_run(tiny, tmp_path_factory):
    "A toy-sized EEG model trained for one epoch with hbac.train.fit on the preprocessed tiny dataset (fold 0 of 2)."
    from hbac.data import read_train_csv
    from hbac.dataset import WindowDataset, labels_table, patient_folds, split_fold
    from hbac.preprocess import preprocess
    from hbac.train import TrainConfig, fit
    from hbac.devices import set_seed
    d = tmp_path_factory.mktemp('trained')
    preprocess(tiny, d/'cache', modalities=('raw',), split='train', workers=1, progress=False)
    labels = labels_table(read_train_csv(tiny))
    tr, va = split_fold(labels, patient_folds(labels, 2), 0)
    cfg = TrainConfig(epochs=1, batch_size=2, progress=False, device='cpu', seed=0)
    set_seed(0)
    from hbac.models.registry import build_model
    model = build_model('eeg', **TINY_KWARGS['eeg'])
    fit(model, WindowDataset(tr, d/'cache', 'eeg', train=True), WindowDataset(va, d/'cache', 'eeg'), cfg, d/'eeg_f0',
        extra={'model_name': 'eeg', 'model_kwargs': TINY_KWARGS['eeg'], 'fold': 0, 'n_folds': 2})
    return d/'eeg_f0'

@pytest.fixture(scope='module')
def runs(trained_run, tmp_path_factory):
    "The trained EEG run plus untrained spectrogram and multimodal runs."
    d = tmp_path_factory.mktemp('runs')
    shutil.copytree(trained_run, d/'eeg_f0')
    init_run_dir(d/'spectrogram_f0', 'spectrogram', TINY_KWARGS['spectrogram'], fold=0, n_folds=2)
    init_run_dir(d/'multimodal_f0', 'multimodal', TINY_KWARGS['multimodal'], fold=0, n_folds=2)
    return [d/'eeg_f0', d/'spectrogram_f0', d/'multimodal_f0']

@pytest.fixture(scope='module')
def bundle(runs, tmp_path_factory):
    return build_kaggle_bundle(runs, tmp_path_factory.mktemp('b')/'bundle', weights={'eeg': 2, 'spectrogram': 1, 'multimodal': 1})

def run_notebook(params: dict):
    "Execute the Kaggle notebook in this process with its first code cell replaced by `params` (papermill-style)."
    return run_notebook_nb(params)[0]

def run_notebook_nb(params: dict):
    "`run_notebook`, returning (shell, notebook): the executed cells' outputs are in the notebook."
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    nb = read_nb(NB)
    first = next(c for c in nb.cells if c.cell_type == 'code')
    assert 'DATA_DIR' in first.source and 'MODELS_DIR' in first.source, 'the first code cell must hold the parameters'
    defaults = {}
    exec(first.source, {}, defaults)
    unknown = set(params) - set(defaults)
    assert not unknown, f'not notebook parameters: {unknown}'
    first.source = '\n'.join(f'{k} = {v!r}' for k, v in {**defaults, **params}.items())
    sh = CaptureShell()
    cwd = os.getcwd()
    try:
        os.chdir(NB.parent)
        sh.run_all(nb, exc_stop=True)
    finally: os.chdir(cwd)
    return sh, nb

def notebook_stdout(nb) -> str:
    "Everything the executed notebook printed."
    return ''.join(''.join(o.get('text', '')) for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])
                   if o.get('output_type') == 'stream')

@pytest.fixture
def no_format_check(monkeypatch):
    "Neither HBAC_FORMAT_CHECK nor nbdev_test's IN_TEST in the environment: the notebook's own default."
    monkeypatch.delenv(FORMAT_CHECK_ENV, raising=False)
    monkeypatch.delenv('IN_TEST', raising=False)

def kaggle_layout(root: Path, data_src: Path, bundle: Path) -> dict:
    "/kaggle/input/... and /kaggle/working laid out under `root`; returns the notebook parameters."
    inp = root/'kaggle'/'input'
    inp.mkdir(parents=True)
    shutil.copytree(data_src, inp/COMPETITION, ignore=shutil.ignore_patterns('train_*', 'cache'))
    shutil.copytree(bundle/'wheels', inp/'hbac-wheels')
    shutil.copytree(bundle/'models', inp/'hbac-models')
    (root/'kaggle'/'working').mkdir()
    return dict(DATA_DIR=str(inp/COMPETITION), WHEELS_DIR=str(inp/'hbac-wheels'), MODELS_DIR=str(inp/'hbac-models'),
                OUT=str(root/'kaggle'/'working'/'submission.csv'), WORKERS=0)

def check_file(out, data_dir):
    "Columns == sample_submission's, rows == test.csv's in order, finite, >= 0, summing to 1."
    sub = pd.read_csv(out)
    test = pd.read_csv(Path(data_dir)/'test.csv')
    assert list(sub.columns) == list(pd.read_csv(Path(data_dir)/'sample_submission.csv', nrows=0).columns)
    assert sub['eeg_id'].tolist() == test['eeg_id'].tolist()
    v = sub[list(VOTE_COLS)].to_numpy(np.float64)
    assert np.isfinite(v).all() and (v >= 0).all()
    np.testing.assert_allclose(v.sum(1), 1.0, atol=1e-9)
    return sub

def test_notebook_on_kaggle_layout(tmp_path, tiny, bundle, runs, no_format_check):
    params = kaggle_layout(tmp_path, tiny, bundle)
    sh, nb = run_notebook_nb({**params, 'FORMAT_CHECK': True})     # the bundle's spectrogram and multimodal runs are untrained
    assert notebook_stdout(nb).count(FORMAT_CHECK_BANNER) == 2        # after the input check and under the result
    sub = check_file(params['OUT'], params['DATA_DIR'])
    assert len(sub) == len(read_test_csv(tiny))
    # the notebook used every shipped model and the blend weights: the same as predict() with them
    ref = predict(tiny, runs, tmp_path/'ref.csv', weights={'eeg': 2, 'spectrogram': 1, 'multimodal': 1}, device='cpu')
    np.testing.assert_allclose(sub[list(VOTE_COLS)].to_numpy(), ref[list(VOTE_COLS)].to_numpy(), atol=1e-6)
    assert not list((tmp_path/'kaggle'/'working').glob('.*'))                  # no temporary file left behind

def test_notebook_on_real_public_test(tmp_path, bundle, no_format_check):
    fx = real_fixtures_dir()
    if fx is None: pytest.skip('real fixtures not found (../shared/fixtures/real or $HBAC_FIXTURES): the public test example is needed')
    hms = fx/'hms'
    import pyarrow.parquet as pq
    sid = int(pd.read_csv(hms/'test.csv').spectrogram_id[0])
    assert str(pq.read_schema(spectrogram_path(hms, 'test', sid)).field('time').type) == 'int16'   # the quirk is exercised
    params = kaggle_layout(tmp_path, hms, bundle)
    with warnings.catch_warnings():
        warnings.filterwarnings('error', module=r'hbac\.')                     # no fallback warning on the real example
        run_notebook({**params, 'FORMAT_CHECK': True})                       # the bundle holds untrained runs
    sub = check_file(params['OUT'], hms)
    assert sub['eeg_id'].tolist() == [3911565283]
    ref, msgs = _predict_warnings(hms, [bundle/'models'], tmp_path/'ref.csv', device='cpu',
                                  weights={'eeg': 2, 'spectrogram': 1, 'multimodal': 1})
    assert msgs == []                                                            # all three inputs were usable
    np.testing.assert_allclose(sub[list(VOTE_COLS)].to_numpy(), ref[list(VOTE_COLS)].to_numpy(), atol=1e-6)

def test_bundle_wheel_installs_offline(tmp_path, bundle):
    "The bundle's wheel installs with the notebook's offline pip command and its hbac.predict imports from there."
    wheels = sorted((bundle/'wheels').glob('*.whl'))
    assert [w.name.split('-')[0] for w in wheels] == ['hbac']
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert {'hbac/predict.py', 'hbac/ensemble.py', 'hbac/signal.py', 'hbac/dataset.py', 'hbac/models/wavenet.py',
            'hbac/models/melcnn.py'} <= set(names)
    target = tmp_path/'site'
    r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', '--find-links', str(bundle/'wheels'),
                        '--target', str(target), 'hbac'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    code = (f'import sys; sys.path.insert(0, {str(target)!r}); import hbac.predict, hbac; print(hbac.__file__); '
            'from hbac.models.registry import build_model; [build_model(n) for n in ("wavenet", "melcnn")]')   # every family
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().startswith(str(target))
    models = sorted(p.name for p in (bundle/'models').iterdir())
    assert models == ['blend_weights.json', 'eeg_f0', 'multimodal_f0', 'spectrogram_f0']
    assert sorted(p.name for p in (bundle/'models'/'eeg_f0').iterdir()) == ['best_high.pt', 'config.json']
    readme = (bundle/'README.md').read_text()
    assert 'hbac-wheels' in readme and 'hbac-models' in readme and wheels[0].name in readme

def test_trained_run_loads(trained_run):
    "A run directory written by hbac.train.fit is what load_run reads."
    lm = load_run(trained_run)
    assert (lm.model_name, lm.fold, lm.checkpoint.name) == ('eeg', 0, 'best_high.pt')
    assert not lm.model.training

def _predict_warnings(*args, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        sub = predict(*args, **kw)
    return sub, [str(x.message) for x in w]

@pytest.fixture
def bad_data(tmp_path, tiny):
    d = tmp_path/'data'
    shutil.copytree(tiny, d, ignore=shutil.ignore_patterns('train_*'))
    return d

def test_all_nan_eeg(bad_data, runs, tmp_path):
    test = read_test_csv(bad_data)
    eid = int(test.eeg_id[0])
    df = pd.read_parquet(eeg_path(bad_data, 'test', eid)); df[:] = np.nan; df.to_parquet(eeg_path(bad_data, 'test', eid))
    sub, msgs = _predict_warnings(bad_data, runs, tmp_path/'s.csv', device='cpu')
    assert any(f'eeg_id {eid}' in m and 'NaN' in m for m in msgs), msgs
    assert sub.attrs['ensemble']['source'] == 'multimodal'                       # the default; it needs the dead EEG
    assert any(m.startswith('test row 0 ') and '(multimodal) cannot run on its inputs' in m for m in msgs), msgs
    check_file(tmp_path/'s.csv', bad_data)
    only_spec = predict(bad_data, runs[1:2], tmp_path/'spec.csv', device='cpu')    # row 0 = the spectrogram model alone
    np.testing.assert_allclose(sub.loc[0, list(VOTE_COLS)].to_numpy(float), only_spec.loc[0, list(VOTE_COLS)].to_numpy(float), atol=1e-6)

def test_some_dead_channels_are_used(bad_data, runs, tmp_path):
    test = read_test_csv(bad_data)
    eid = int(test.eeg_id[0])
    df = pd.read_parquet(eeg_path(bad_data, 'test', eid)); df['EKG'] = np.nan; df['Fp1'] = np.nan
    df.to_parquet(eeg_path(bad_data, 'test', eid))
    sub, msgs = _predict_warnings(bad_data, runs[:1], tmp_path/'s.csv', device='cpu')
    assert any('Fp1, EKG are all NaN (used as 0)' in m for m in msgs), msgs
    assert not any('vote prior' in m for m in msgs)                                # the EEG model still ran
    check_file(tmp_path/'s.csv', bad_data)

def test_missing_spectrogram(bad_data, runs, tmp_path):
    test = read_test_csv(bad_data)
    sid = int(test.spectrogram_id[1])
    os.remove(spectrogram_path(bad_data, 'test', sid))
    sub, msgs = _predict_warnings(bad_data, runs, tmp_path/'s.csv', device='cpu')
    assert any(f'spectrogram_id {sid}' in m and 'file not found' in m for m in msgs), msgs
    assert any(m.startswith('test row 1 ') and '(multimodal) cannot run on its inputs' in m for m in msgs), msgs
    check_file(tmp_path/'s.csv', bad_data)
    only_eeg = predict(bad_data, runs[:1], tmp_path/'eeg.csv', device='cpu')        # row 1 = the eeg model alone
    np.testing.assert_allclose(sub.loc[1, list(VOTE_COLS)].to_numpy(float), only_eeg.loc[1, list(VOTE_COLS)].to_numpy(float), atol=1e-6)

def test_unreadable_and_missing_eeg_fall_back_to_prior(bad_data, tmp_path):
    test = read_test_csv(bad_data)
    eeg_path(bad_data, 'test', int(test.eeg_id[0])).write_bytes(b'PAR1 truncated')
    os.remove(eeg_path(bad_data, 'test', int(test.eeg_id[1])))
    prior = [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]
    run = init_run_dir(tmp_path/'eeg', 'eeg', TINY_KWARGS['eeg'], vote_prior=prior)
    sub, msgs = _predict_warnings(bad_data, [run], tmp_path/'s.csv', device='cpu')
    assert any(f'eeg_id {test.eeg_id[0]}' in m and 'not a readable parquet file' in m for m in msgs), msgs
    assert any(f'eeg_id {test.eeg_id[1]}' in m and 'file not found' in m for m in msgs), msgs
    assert sum('predicting the vote prior (saved in the runs)' in m for m in msgs) == 2
    np.testing.assert_allclose(sub[list(VOTE_COLS)].to_numpy(), [prior, prior], atol=1e-12)
    check_file(tmp_path/'s.csv', bad_data)

def test_missing_model_dir_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match='no_such_run does not exist'):
        predict(tiny, [tmp_path/'no_such_run'], tmp_path/'s.csv')
    (tmp_path/'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no run directory'):
        predict(tiny, [tmp_path/'empty'], tmp_path/'s.csv')
    assert not (tmp_path/'s.csv').exists()

def test_existing_submission_survives_a_failure(tiny, runs, tmp_path):
    out = tmp_path/'s.csv'
    out.write_text('old\n')
    with pytest.raises(ValueError, match='no weight for'):
        predict(tiny, runs, out, weights={'eeg': 1}, device='cpu')
    assert out.read_text() == 'old\n'

def _cli(argv):
    p = argparse.ArgumentParser(prog='hbac'); sp = p.add_subparsers(dest='command', required=True)
    add_predict_parser(sp); add_bundle_parser(sp)
    args = p.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = args.func(args)
    return code, out.getvalue(), err.getvalue()

def test_cli_predict(tiny, runs, tmp_path):
    code, out, err = _cli(['predict', '--data-dir', str(tiny), '--models', *map(str, runs), '--out', str(tmp_path/'s.csv'),
                           '--no-progress', '--device', 'cpu', '--tta', '--weights', '{"eeg": 1, "spectrogram": 1, "multimodal": 2}'])
    assert code == 0, err
    check_file(tmp_path/'s.csv', tiny)
    code, out, err = _cli(['predict', '--data-dir', str(tiny), '--models', str(tmp_path/'gone'), '--out', str(tmp_path/'x.csv')])
    assert code == 2 and 'gone does not exist' in err
    code, out, err = _cli(['kaggle-bundle', '--models', str(tmp_path/'gone'), '--out', str(tmp_path/'b')])
    assert code == 2 and 'gone does not exist' in err and not (tmp_path/'b').exists()

def _values(sub): return sub[list(VOTE_COLS)].to_numpy(float)

def test_default_ensemble_is_multimodal(tiny, runs, tmp_path, capsys):
    "Without weights or blend.json, multimodal runs among the models: they alone predict (the recipe's final model)."
    sub = predict(tiny, runs, tmp_path/'s.csv', device='cpu')
    line = capsys.readouterr().out
    assert line == ('predict: ensemble = multimodal, averaged over 1 fold (no blend.json beside the runs; '
                    'the other 2 runs only for rows it cannot read)\n')
    ens = sub.attrs['ensemble']
    assert (ens['source'], ens['weights'], ens['checkpoint'], ens['blend_file']) == ('multimodal', None, 'best_high', None)
    assert ens['runs'] == [str(runs[2])] and ens['fallback_runs'] == [str(runs[0]), str(runs[1])]
    alone = predict(tiny, runs[2:], tmp_path/'mm.csv', device='cpu')
    np.testing.assert_allclose(_values(sub), _values(alone), atol=1e-9)
    check_file(tmp_path/'s.csv', tiny)

def test_default_ensemble_plain_average(tiny, runs, tmp_path, capsys):
    "No multimodal run, no blend.json: the plain average of every run."
    sub = predict(tiny, runs[:2], tmp_path/'s.csv', device='cpu')
    assert sub.attrs['ensemble']['source'] == 'average'
    assert 'plain average of 2 runs (eeg, spectrogram; no blend.json beside the runs, no multimodal run)' in capsys.readouterr().out
    each = [_values(predict(tiny, [r], tmp_path/f'{r.name}.csv', device='cpu')) for r in runs[:2]]
    np.testing.assert_allclose(_values(sub), np.mean(each, 0), atol=1e-6)

@pytest.fixture
def blend_runs(runs, tmp_path):
    "The runs in one folder with a blend.json as hbac cv writes it (checkpoint final)."
    d = tmp_path/'RUNS'
    for r in runs: shutil.copytree(r, d/r.name)
    blend = {'weights': {'eeg': 0.7, 'spectrogram': 0.0, 'multimodal': 0.3}, 'checkpoint': 'final', 'n_rows': 6,
             'kl_blend': 1.0, 'kl_plain_average': 1.1, 'runs': [r.name for r in runs]}
    (d/'blend.json').write_text(json.dumps(blend))
    return d, blend

def test_default_ensemble_blend_json(tiny, blend_runs, tmp_path, capsys):
    "A blend.json beside the runs: its weights and its checkpoint (unless one is asked for); zero weights are not run."
    d, blend = blend_runs
    sub = predict(tiny, [d], tmp_path/'s.csv', device='cpu')
    out = capsys.readouterr().out
    assert out == f'predict: ensemble = blend weights from {d/"blend.json"} (eeg 0.7, spectrogram 0, multimodal 0.3; final)\n'
    ens = sub.attrs['ensemble']
    assert (ens['source'], ens['checkpoint'], ens['blend_file']) == ('blend', 'final', str(d/'blend.json'))
    assert ens['weights'] == {'eeg': 0.7, 'multimodal': 0.3} and [Path(r).name for r in ens['fallback_runs']] == ['spectrogram_f0']
    ref = predict(tiny, [d], tmp_path/'r.csv', device='cpu', weights=blend['weights'], checkpoint='final')
    np.testing.assert_allclose(_values(sub), _values(ref), atol=1e-9)
    assert ref.attrs['ensemble']['source'] == 'weights'
    sub2 = predict(tiny, [d/'eeg_f0', d/'multimodal_f0'], tmp_path/'s2.csv', device='cpu', checkpoint='best_high')
    assert (sub2.attrs['ensemble']['source'], sub2.attrs['ensemble']['checkpoint']) == ('blend', 'best_high')
    assert 'fitted on final, predicting with best_high' in capsys.readouterr().out
    np.testing.assert_allclose(_values(sub2), _values(ref), atol=1e-6)        # the tiny runs' best_high = final weights

def test_stale_blend_json_is_not_used(tiny, blend_runs, tmp_path):
    d, blend = blend_runs
    (d/'blend.json').write_text(json.dumps({**blend, 'runs': ['eeg_f0', 'multimodal_f0']}))  # written for other runs
    sub, msgs = _predict_warnings(tiny, [d], tmp_path/'s.csv', device='cpu')
    assert sub.attrs['ensemble']['source'] == 'multimodal'
    assert any('was written for other runs' in m and 'spectrogram_f0' in m for m in msgs), msgs
    (d/'blend.json').write_text('{"weights": {"eeg": "heavy"}}')
    with pytest.raises(DataError, match='blend.json: the weights must be numbers'):
        predict(tiny, [d], tmp_path/'s.csv', device='cpu')

def test_cli_predict_default_and_blend_file(tiny, blend_runs, tmp_path):
    d, blend = blend_runs
    code, out, err = _cli(['predict', '--data-dir', str(tiny), '--models', str(d), '--out', str(tmp_path/'s.csv'),
                           '--no-progress', '--device', 'cpu'])
    assert code == 0, err
    assert out.splitlines()[0].startswith(f'predict: ensemble = blend weights from {d/"blend.json"}')
    code, out2, err = _cli(['predict', '--data-dir', str(tiny), '--models', *(str(d/r) for r in ('eeg_f0', 'spectrogram_f0', 'multimodal_f0')),
                            '--out', str(tmp_path/'w.csv'), '--no-progress', '--device', 'cpu', '--checkpoint', 'final',
                            '--weights', str(d/'blend.json')])                 # --weights takes a blend.json too
    assert code == 0, err
    assert out2.splitlines()[0] == 'predict: ensemble = weights given (eeg 0.7, spectrogram 0, multimodal 0.3)'
    np.testing.assert_allclose(pd.read_csv(tmp_path/'s.csv')[list(VOTE_COLS)], pd.read_csv(tmp_path/'w.csv')[list(VOTE_COLS)], atol=1e-9)

def test_notebook_refuses_untrained_models(tmp_path, tiny, bundle, no_format_check):
    "Competition data and models attached, but some models untrained: without the flag, one error and no submission."
    params = kaggle_layout(tmp_path, tiny, bundle)
    with pytest.raises(DataError, match=r'hbac-models: 2 of 3 models are untrained \(multimodal_f0, spectrogram_f0.*FORMAT_CHECK = True'):
        run_notebook(params)
    assert not Path(params['OUT']).exists() and not list((tmp_path/'kaggle'/'working').iterdir())

def test_notebook_refuses_without_data(tmp_path, no_format_check):
    "Off Kaggle with no competition data and no models: without the flag, one error naming both, and no submission."
    out = tmp_path/'working'/'submission.csv'; out.parent.mkdir()
    params = dict(DATA_DIR=str(tmp_path/'hms'), MODELS_DIR=str(tmp_path/'models'), WHEELS_DIR=str(tmp_path/'wheels'), OUT=str(out), WORKERS=0)
    with pytest.raises(FileNotFoundError) as e: run_notebook(params)
    msg = str(e.value)
    assert f'the competition data {tmp_path/"hms"} and the models dataset {tmp_path/"models"} not found' in msg, msg
    assert 'FORMAT_CHECK = True' in msg and FORMAT_CHECK_ENV in msg and 'no submission was written' in msg, msg
    assert not out.exists() and not list(out.parent.iterdir())

def test_notebook_format_check_by_environment(tmp_path, no_format_check, monkeypatch):
    "HBAC_FORMAT_CHECK=1 and no data: untrained toy models on a test example, the banner printed, OUT left alone."
    monkeypatch.setenv(FORMAT_CHECK_ENV, '1')
    out = tmp_path/'working'/'submission.csv'; out.parent.mkdir()
    sh, nb = run_notebook_nb(dict(DATA_DIR=str(tmp_path/'hms'), MODELS_DIR=str(tmp_path/'models'), OUT=str(out), WORKERS=0))
    text = notebook_stdout(nb)
    assert text.count(FORMAT_CHECK_BANNER) == 2 and '(untrained)' in text, text
    assert not out.exists()                                                  # the format check writes into a temporary folder

def test_notebook_with_trained_models_needs_no_flag(tmp_path, tiny, trained_run, no_format_check):
    "Only trained runs in the bundle: the notebook predicts without the flag and prints no format-check banner."
    b = build_kaggle_bundle([trained_run], tmp_path/'bundle')
    params = kaggle_layout(tmp_path/'k', tiny, b)
    sh, nb = run_notebook_nb(params)
    assert FORMAT_CHECK_BANNER not in notebook_stdout(nb)
    check_file(params['OUT'], params['DATA_DIR'])

FAMILY_KWARGS = {'wavenet': {'widths': [4, 8], 'dilations': [1, 2], 'hidden': 8}, 'melcnn': {'widths': [4, 8], 'n_mels': 16}}

def test_families_in_the_bundle_and_notebook(tmp_path, tiny, trained_run, bundle, no_format_check, monkeypatch):
    "Runs of the raw-EEG families (wavenet, melcnn) ship through `hbac kaggle-bundle` and predict in the Kaggle notebook."
    import hbac.predict
    (whl,) = (bundle/'wheels').glob('*.whl')                         # the module bundle's wheel (installed offline above)
    def same_wheel(out_dir): Path(out_dir).mkdir(parents=True, exist_ok=True); return Path(shutil.copy2(whl, out_dir))
    monkeypatch.setattr(hbac.predict, 'build_wheel', same_wheel)       # no second pip run: the models are the point here
    fam = [init_run_dir(tmp_path/'runs'/f'{m}_f0', m, kw, fold=0, n_folds=2) for m, kw in FAMILY_KWARGS.items()]
    runs, w = [trained_run, *fam], {'eeg': 1, 'wavenet': 2, 'melcnn': 1}
    code, out, err = _cli(['kaggle-bundle', '--models', *map(str, runs), '--out', str(tmp_path/'bundle'), '--weights', json.dumps(w)])
    assert code == 0, err
    b = tmp_path/'bundle'
    assert sorted(p.name for p in (b/'models').iterdir()) == ['blend_weights.json', 'eeg_f0', 'melcnn_f0', 'wavenet_f0']
    readme = (b/'README.md').read_text()
    assert '| `wavenet_f0` | `best_high.pt` | wavenet |' in readme and '| `melcnn_f0` | `best_high.pt` | melcnn |' in readme
    params = kaggle_layout(tmp_path/'k', tiny, b)
    sh, nb = run_notebook_nb({**params, 'FORMAT_CHECK': True})          # the family runs are untrained
    text = notebook_stdout(nb)
    assert 'wavenet_f0 (untrained)' in text and 'melcnn_f0 (untrained)' in text, text
    sub = check_file(params['OUT'], params['DATA_DIR'])
    ref = predict(tiny, runs, tmp_path/'ref.csv', weights=w, device='cpu')  # the notebook blended all three
    np.testing.assert_allclose(sub[list(VOTE_COLS)].to_numpy(), ref[list(VOTE_COLS)].to_numpy(), atol=1e-6)
    alone = predict(tiny, [trained_run], tmp_path/'eeg.csv', device='cpu')
    assert np.abs(_values(sub) - _values(alone)).max() > 1e-4                # the families' predictions count
