"""One input path: a model sees in training (windows of the cached raw samples of a long recording) what it sees on a
50-s test clip of the same samples. Predictions through both paths must agree to max |dp| <= 0.02; with the default
per-window numerics they agree exactly, while the reference's whole-recording numerics do not (printed for contrast)."""
import numpy as np
import pandas as pd
import pytest
import torch
from hbac.data import (EEG_CHANNELS, EEG_FS, SPEC_COLUMNS, SPEC_STEP_SECONDS, eeg_path, read_eeg, read_spectrogram,
                       read_train_csv, real_fixtures_dir, spectrogram_path)
from hbac.dataset import WindowDataset
from hbac.ensemble import predict_proba
from hbac.runs import LoadedModel
from hbac.preprocess import preprocess
from hbac.synthetic import SynthConfig, make_synthetic_dataset
from hbac.predict import SubmissionRows, model_predictions
from hbac.models.registry import build_model
from hbac.devices import set_seed

MAX_DP = 0.02

def models():
    set_seed(0)
    eeg = build_model('eeg', widths=[4, 4, 8, 8, 16], kernels=[3, 3, 3, 3], hidden=16).eval()
    es = build_model('eeg_spectrogram', widths=[4, 8, 8, 16]).eval()
    return [LoadedModel(eeg, 'eeg', 'untrained', 'none.pt', {}), LoadedModel(es, 'eeg_spectrogram', 'untrained', 'none.pt', {})]

def clip_dataset(data, train, out):
    "Each labelled window of `train` as a Kaggle test row: its 50 s of EEG and 600 s of spectrogram as files of their own."
    rows = []
    for k, r in enumerate(train.itertuples()):
        eeg = read_eeg(eeg_path(data, 'train', r.eeg_id))
        i0 = int(round(r.eeg_label_offset_seconds * EEG_FS))
        p = eeg_path(out, 'test', 10_000 + k); p.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(eeg[i0:i0 + 50 * EEG_FS], columns=list(EEG_CHANNELS)).to_parquet(p, index=False)
        t, v = read_spectrogram(spectrogram_path(data, 'train', r.spectrogram_id))
        j0 = int(r.spectrogram_label_offset_seconds // SPEC_STEP_SECONDS)
        p = spectrogram_path(out, 'test', 20_000 + k); p.parent.mkdir(parents=True, exist_ok=True)
        spec = pd.DataFrame(v[j0:j0 + 300], columns=list(SPEC_COLUMNS)); spec.insert(0, 'time', (np.arange(300) * 2 + 1).astype(np.int16))
        spec.to_parquet(p, index=False)
        rows.append({'spectrogram_id': 20_000 + k, 'eeg_id': 10_000 + k, 'patient_id': 1})
    test = pd.DataFrame(rows)
    test.to_csv(out/'test.csv', index=False)
    return test

def agreement(data, tmp_path, train):
    cache = tmp_path/'cache'
    assert preprocess(data, cache, ('raw', 'eeg', 'eeg_spectrogram', 'spectrogram'), workers=0, progress=False).ok
    ms = models()
    test = clip_dataset(data, train, tmp_path/'clips')
    clip = model_predictions(tmp_path/'clips', ms, test)                         # (M, N, 6): the raw 50-s clips
    clip_inputs = [SubmissionRows(tmp_path/'clips', test, ('eeg', 'eeg_spectrogram'))[i][0] for i in range(len(test))]
    out = {}
    for numerics in ('window', 'recording'):
        dp = dx = 0.0
        for k, lm in enumerate(ms):
            ds = WindowDataset(train, cache, lm.model_name, numerics=numerics)
            x = torch.stack([ds[i][0] for i in range(len(ds))])
            dx = max(dx, float((x - torch.stack([c[lm.model_name] for c in clip_inputs])).abs().max()))
            p = predict_proba(lm.model, x).double().numpy()
            dp = max(dp, float(np.abs(p - clip[k]).max()))
        out[numerics], out[numerics + '_inputs'] = dp, dx
    return out

def report(what, dp):
    print(f"{what}: training path vs 50-s clips, max |dp| {dp['window']:.2g} (inputs max |dx| {dp['window_inputs']:.2g}); "
          f"with whole-recording numerics the inputs differ by up to {dp['recording_inputs']:.3f} (|dp| {dp['recording']:.2g})")
    assert dp['window'] <= MAX_DP and dp['window_inputs'] <= 1e-5, dp

def test_real_fixture_training_path_equals_clips(tmp_path):
    fx = real_fixtures_dir()
    if fx is None: pytest.skip('real fixtures not found at ../shared/fixtures/real (set HBAC_FIXTURES)')
    train = read_train_csv(fx/'hms')
    dp = agreement(fx/'hms', tmp_path, train)
    report(f'real EEG 1628180742, {len(train)} windows', dp)

def test_long_synthetic_recordings_training_path_equals_clips(tmp_path):
    data = tmp_path/'data'
    make_synthetic_dataset(data, SynthConfig(n_patients=2, eegs_per_patient=(1, 1), windows_per_eeg=(170, 180), n_test=0, seed=4))
    train = read_train_csv(data)
    lengths = [len(read_eeg(eeg_path(data, 'train', i))) / EEG_FS for i in train.eeg_id.unique()]
    assert min(lengths) >= 600, lengths                                          # recordings of at least 10 minutes
    train = train[train.groupby('eeg_id').cumcount() % 12 == 0].reset_index(drop=True)   # ~15 windows per recording
    dp = agreement(data, tmp_path, train)
    report(f'{len(lengths)} synthetic recordings of {min(lengths):.0f}-{max(lengths):.0f} s, {len(train)} windows', dp)
