"""Prediction with a model that has learned something: `hbac predict` (CLI) and the Kaggle notebook score the synthetic
test EEGs' expert votes well below the vote prior, so a bug that keeps the format but breaks the predictions fails here."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hbac.cli import test_kl as kl_on_test_votes     # aliased: pytest would collect a name starting with test_
from hbac.data import VOTE_COLS, read_train_csv
from hbac.dataset import vote_prior
from hbac.predict import build_kaggle_bundle
from hbac.synthetic import SynthConfig, make_synthetic_dataset

sys.path.insert(0, str(Path(__file__).parent))
from test_predict import check_file, kaggle_layout, notebook_stdout, run_notebook_nb   # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAX_RATIO = 0.95     # test KL at most this fraction of the vote prior's (measured 0.87x; an untrained model scores >= 1x)

@pytest.fixture(scope='module')
def learned(tmp_path_factory):
    "A small spectrogram CNN (EEG-spectrogram input) trained 12 epochs on 48 synthetic patients; 24 test EEGs with votes."
    import torch
    from hbac.preprocess import preprocess
    from hbac.recipe import fold_data
    from hbac.dataset import WindowDataset
    from hbac.train import TrainConfig, fit
    from hbac.models.registry import build_model
    from hbac.devices import set_seed
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp('learned')
    make_synthetic_dataset(d/'data', SynthConfig(n_patients=48, eegs_per_patient=(1, 2), windows_per_eeg=(1, 3), n_test=24,
                                                 seed=1, high_vote_fraction=1.0, agreement=(0.7, 0.95)))
    preprocess(d/'data', d/'cache', ('raw',), workers=0, progress=False)
    fd = fold_data(d/'data', 4, 0)
    kw = {'widths': [8, 8, 8, 16, 16, 32]}
    set_seed(0)
    fit(build_model('eeg_spectrogram', **kw), WindowDataset(fd.train, d/'cache', 'eeg_spectrogram', train=True),
        WindowDataset(fd.valid, d/'cache', 'eeg_spectrogram'),
        TrainConfig(epochs=12, batch_size=4, lr=3e-3, progress=False, device="cpu", seed=0), d/"runs"/"es",
        extra={'model_name': 'eeg_spectrogram', 'model_kwargs': kw, 'fold': 0, 'n_folds': 4})
    return d

def scores(data, sub):
    "(test KL of the submission, test KL of the vote prior) against the test EEGs' expert votes."
    prior = np.tile(vote_prior(read_train_csv(data)), (len(sub), 1))
    return kl_on_test_votes(data, sub[list(VOTE_COLS)].to_numpy(float)), kl_on_test_votes(data, prior)

def test_cli_predict_with_a_trained_model(learned, tmp_path):
    out = tmp_path/'submission.csv'
    r = subprocess.run([sys.executable, '-m', 'hbac.cli', 'predict', '--data-dir', learned/'data', '--models', learned/'runs',
                        '--out', out], cwd=ROOT, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr
    kl, prior = scores(learned/'data', check_file(out, learned/'data'))
    print(f'hbac predict, trained EEG-spectrogram model: test KL {kl:.3f} vs vote prior {prior:.3f} ({kl/prior:.2f}x)')
    assert kl <= MAX_RATIO*prior, (kl, prior)

def test_kaggle_notebook_with_a_trained_model(learned, tmp_path, monkeypatch):
    monkeypatch.delenv('HBAC_FORMAT_CHECK', raising=False); monkeypatch.delenv('IN_TEST', raising=False)
    bundle = build_kaggle_bundle([learned/'runs'], tmp_path/'bundle')
    params = kaggle_layout(tmp_path, learned/'data', bundle)
    sh, nb = run_notebook_nb(params)                                  # trained models only: no format-check flag needed
    assert 'FORMAT CHECK' not in notebook_stdout(nb)
    kl, prior = scores(learned/'data', check_file(params['OUT'], params['DATA_DIR']))
    print(f'Kaggle notebook, trained EEG-spectrogram model: test KL {kl:.3f} vs vote prior {prior:.3f} ({kl/prior:.2f}x)')
    assert kl <= MAX_RATIO*prior, (kl, prior)
