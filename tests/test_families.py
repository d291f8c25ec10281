"""The new model families (`wavenet`, `melcnn`) through the command line, end to end on the tiny synthetic set:
`hbac train --model wavenet,melcnn`, then `hbac cv`, `hbac predict`, `hbac interpret` and `hbac scan` on their runs;
and `hbac train --model all` trains every model a recipe lists in dependency order (multimodal after its backbones)."""
import contextlib, io, json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hbac.cli import main
from hbac.ensemble import TARGET_COLS
from hbac.data import CLASSES, EEG_CHANNELS, EEG_FS, VOTE_COLS, read_test_csv, read_train_csv
from hbac.recipe import recipe_preset
from hbac.recordings import write_edf
from hbac.synthetic import synth_recording, tiny_dataset

FAMILIES = {'wavenet': {'widths': [4, 8], 'dilations': [1, 2], 'hidden': 8},   # toy widths: a few thousand parameters
            'melcnn': {'widths': [4, 8], 'n_mels': 16}}
MODEL_CLASS = {'wavenet': 'ChainWaveNet', 'melcnn': 'MelCNN'}

@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

def write_recipe(path: Path, families: dict) -> Path:
    "The smoke recipe with 2 folds, one epoch per stage on every window (the tiny set has few high-agreement ones) and the families added under `models`, as a JSON file."
    one = {'epochs': 1, 'batch_size': 8, 'count_type': 'all'}
    cfg = recipe_preset('smoke').to_dict()
    cfg.update(name='families', n_folds=2, models={**cfg['models'], **families},
               stage1={**cfg['stage1'], **one}, stage2={**cfg['stage2'], **one},
               mm_stage1={**cfg['mm_stage1'], **one}, mm_stage2={**cfg['mm_stage2'], **one})
    path.write_text(json.dumps(cfg))
    return path

def hbac(*args) -> tuple[int, str]:
    "`hbac ARGS` in this process: (exit status, stdout)."
    out = io.StringIO()
    with contextlib.redirect_stdout(out): code = main([str(a) for a in args])
    return code, out.getvalue()

def check_probs(df: pd.DataFrame, cols, where: str):
    "Finite, non-negative rows of `cols` summing to 1."
    v = df[list(cols)].to_numpy(np.float64)
    assert np.isfinite(v).all() and (v >= 0).all(), where
    np.testing.assert_allclose(v.sum(1), 1.0, atol=1e-5, err_msg=where)

def test_families_end_to_end(tmp_path):
    data, cache, runs = tiny_dataset(tmp_path/'data'), tmp_path/'cache', tmp_path/'runs'
    assert hbac('preprocess', '--data-dir', data, '--cache-dir', cache, '--modality', 'raw', '--workers', 1, '--no-progress')[0] == 0
    cfg = write_recipe(tmp_path/'families.json', FAMILIES)
    code, text = hbac('train', '--data-dir', data, '--cache-dir', cache, '--config', cfg, '--folds', 0,
                      '--model', 'wavenet,melcnn', '--out', runs)
    assert code == 0, text
    for name in FAMILIES:
        for stage in ('stage1', 'stage2'):
            rd = runs/'fold0'/name/stage
            c = json.loads((rd/'config.json').read_text())
            assert (c['extra']['model'], c['model']['class'].rsplit('.', 1)[1]) == (name, MODEL_CLASS[name])
            assert (rd/'final.pt').is_file() and (rd/'best_high.pt').is_file()
    assert sorted(p.name for p in (runs/'fold0').iterdir()) == ['melcnn', 'wavenet']      # nothing else trained

    # hbac cv: out-of-fold predictions of every run, the blend over the two families
    code, text = hbac('cv', '--runs', runs, '--data-dir', data, '--cache-dir', cache, '--device', 'cpu', '--batch-size', 8)
    assert code == 0, text
    oof = pd.read_parquet(runs/'cv'/'oof.parquet')
    assert set(oof['model']) == set(FAMILIES)
    check_probs(oof, VOTE_COLS, 'oof.parquet predictions'); check_probs(oof, TARGET_COLS, 'oof.parquet targets')
    blend = json.loads((runs/'blend.json').read_text())
    assert set(blend['weights']) <= set(FAMILIES) and sum(blend['weights'].values()) > 0

    # hbac predict: the submission in sample_submission's format, one row per test.csv row
    sub_csv = tmp_path/'submission.csv'
    code, text = hbac('predict', '--data-dir', data, '--models', runs, '--out', sub_csv, '--device', 'cpu', '--no-progress')
    assert code == 0, text
    sub = pd.read_csv(sub_csv)
    assert list(sub.columns) == list(pd.read_csv(data/'sample_submission.csv', nrows=0).columns)
    assert sub.eeg_id.tolist() == read_test_csv(data).eeg_id.tolist()
    check_probs(sub, VOTE_COLS, 'submission.csv')

    # hbac interpret: every method on the raw-EEG input of both families
    eid = int(read_train_csv(data).eeg_id.iloc[0])
    for name in FAMILIES:
        out = tmp_path/'interpret'/name
        code, text = hbac('interpret', '--run', runs/'fold0'/name/'stage2', '--data-dir', data, '--ids', eid, '--out', out,
                          '--method', 'ig', 'occlusion', 'gradcam', '--n-steps', 4, '--no-plots')
        assert code == 0, text
        metas = [json.loads(p.read_text()) for p in sorted(out.glob('*.json'))]
        assert sorted(m['method'] for m in metas) == ['gradcam', 'ig', 'occlusion']
        assert {(m['model'], m['modality']) for m in metas} == {(MODEL_CLASS[name], 'eeg')}
        for m in metas: assert m['shapes'] == {'eeg': [19, 2500]} and abs(sum(m['probs']) - 1) < 1e-5, m['stem']
        for p in out.glob('*.npz'):
            with np.load(p) as z: assert z['values_eeg'].shape == (19, 2500) and np.isfinite(z['values_eeg']).all(), p
        assert (out/'importance.csv').is_file()

    # hbac scan: a 2-min EDF at 200 Hz through the families' ensemble
    x = synth_recording(120, [('seizure', 'left', 40, 80)], np.random.default_rng(0)).astype(np.float64)
    edf = write_edf(tmp_path/'rec.edf', x, EEG_FS, [c if c != 'EKG' else 'ECG' for c in EEG_CHANNELS])
    code, text = hbac('scan', edf, '--models', runs, '--out', tmp_path/'scan', '--device', 'cpu', '--no-progress')
    assert code == 0, text
    tl = pd.read_csv(tmp_path/'scan'/'rec'/'timeline.csv')
    assert {'start_s', 'end_s', *CLASSES} <= set(tl.columns) and len(tl) == 8      # windows centred at 25, 35, ..., 95 s
    check_probs(tl, CLASSES, 'timeline.csv')
    assert (tmp_path/'scan'/'rec'/'summary.json').is_file()

def test_model_all_trains_in_dependency_order(tmp_path, monkeypatch):
    "`--model all` trains every listed model: each single-input model's two stages, then the multimodal model on its backbones."
    import hbac.recipe as R
    from hbac.runs import save_checkpoint
    calls = []
    class Result:                                   # what train_fold reads of fit's RunResult
        def __init__(self, rd): self.rd, self.epochs, self.best = rd, 1, {}
        def checkpoint(self, name): return self.rd/'final.pt'
    def fake_stage(model, data, modality, stage, cfg, cache_dir, out_dir, model_name, init=None):
        calls.append((model_name, stage, modality))
        rd = R.run_dir_of(out_dir, data.fold, model_name, stage); rd.mkdir(parents=True, exist_ok=True)
        for ck in ('final', 'best_high'): save_checkpoint(rd/f'{ck}.pt', model)
        return Result(rd)
    monkeypatch.setattr(R, 'train_stage', fake_stage)           # no training: the order of the stages is the point
    data = tiny_dataset(tmp_path/'data')
    cfg = write_recipe(tmp_path/'all.json', FAMILIES)
    code, text = hbac('train', '--data-dir', data, '--cache-dir', tmp_path/'cache', '--config', cfg, '--folds', 0,
                      '--model', 'all', '--out', tmp_path/'runs')
    assert code == 0, text
    names = [c[0] for c in calls]
    assert sorted(set(names)) == sorted(['eeg', 'eeg_spectrogram', 'spectrogram', 'multimodal', *FAMILIES])
    for name in set(names) - {'multimodal'}:
        assert [c[1] for c in calls if c[0] == name] == ['stage1', 'stage2']
    first_mm = names.index('multimodal')
    assert all(n == 'multimodal' for n in names[first_mm:])                          # after every backbone
    assert [c[1:] for c in calls[first_mm:]] == [('mm_stage1', 'multimodal'), ('mm_stage2', 'multimodal')]
    assert {c[2] for c in calls if c[0] in FAMILIES} == {'eeg'}                       # the families read the raw EEG
    calls.clear()                                                                     # multimodal alone pulls in its backbones only
    assert hbac('train', '--data-dir', data, '--cache-dir', tmp_path/'cache', '--config', cfg, '--folds', 0,
                '--model', 'multimodal', '--out', tmp_path/'runs2')[0] == 0
    assert [c[0] for c in calls] == ['eeg']*2 + ['eeg_spectrogram']*2 + ['spectrogram']*2 + ['multimodal']*2
