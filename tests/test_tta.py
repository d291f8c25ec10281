"Test-time augmentation is a true left/right mirror: models blind to the mirror are unchanged by TTA, lateralised ones are not, in every modality and through every call site."
import numpy as np
import pytest
import torch
from fastcore.test import test_close as assert_close   # fastcore's test_close (renamed: pytest would collect it)

from hbac.data import CHAINS, LEFT_CHANNELS, MIDLINE, MONTAGE, RIGHT_CHANNELS, SPEC_REGIONS, read_train_csv
from hbac.dataset import reverse_regions
from hbac.ensemble import mirror_inputs, oof_predictions, predict_proba
from hbac.models.registry import MODEL_INPUTS
from hbac.fixtures import TINY_KWARGS, init_run_dir
from hbac.runs import LoadedModel, read_run_config
from hbac.predict import model_predictions

MODALITIES = ('eeg', 'eeg_spectrogram', 'spectrogram')

# The mirror, written out from the channel and region names alone (independent of hbac.ensemble's implementation):
# Fp1 <-> Fp2, F7 <-> F8, ... for the EEG rows; LL <-> RL, LP <-> RP for the image regions.
_SIDE = {**dict(zip(LEFT_CHANNELS, RIGHT_CHANNELS)), **dict(zip(RIGHT_CHANNELS, LEFT_CHANNELS))}
EEG_ROWS = [f'{a}-{b}' for a, b in MONTAGE + MIDLINE] + ['EKG']
REGIONS = {'eeg': EEG_ROWS, 'eeg_spectrogram': list(CHAINS), 'spectrogram': list(SPEC_REGIONS)}

def _mirror_name(name):
    if '-' in name or name == 'EKG': return '-'.join(_SIDE.get(e, e) for e in name.split('-'))
    return {'L': 'R', 'R': 'L'}[name[0]] + name[1:]

def _is_left(name): return name[0] == 'L' if name in CHAINS else name.split('-')[0] in LEFT_CHANNELS

def _is_right(name): return name[0] == 'R' if name in CHAINS else name.split('-')[0] in RIGHT_CHANNELS

PAIR = {m: [r.index(_mirror_name(n)) for n in r] for m, r in REGIONS.items()}     # row i's mirror partner
LEFT = {m: [i for i, n in enumerate(r) if _is_left(n)] for m, r in REGIONS.items()}
RIGHT = {m: [PAIR[m][i] for i in LEFT[m]] for m in REGIONS}

def _features(x, modality):
    "Per row / region: log energy of an EEG row; mean of the low-frequency rows (about 0.5-4 Hz) of an image region."
    x = x.float()
    if modality == 'eeg': return torch.log((x**2).mean(-1) + 1e-6)
    return x[..., :16, :].mean((-2, -1))

class MirrorBlind(torch.nn.Module):
    "A small model that is exactly invariant under the left/right mirror: symmetric functions of each mirror pair."
    def __init__(self, modality, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.parts = MODEL_INPUTS[modality]
        self.heads = torch.nn.ModuleDict({m: torch.nn.Linear(2*len(REGIONS[m]), 6) for m in self.parts})
    def forward(self, x):
        x = x if isinstance(x, dict) else {self.parts[0]: x}
        logits = 0
        for m in self.parts:
            f = _features(x[m], m)
            g = f[:, PAIR[m]]
            logits = logits + self.heads[m](torch.cat([f + g, (f - g).abs()], 1))
        return torch.log_softmax(logits, 1)

class Lateralised(torch.nn.Module):
    "Says class 0 when the left side has more of the feature, class 1 when the right side has: the mirror swaps them."
    def __init__(self, modality, gain=4.0):
        super().__init__()
        self.parts = MODEL_INPUTS[modality]
        self.gain = torch.nn.Parameter(torch.tensor(gain))
    def forward(self, x):
        x = x if isinstance(x, dict) else {self.parts[0]: x}
        a = sum(_features(x[m], m)[:, LEFT[m]].mean(1) - _features(x[m], m)[:, RIGHT[m]].mean(1) for m in self.parts)
        z = torch.zeros_like(a)
        return torch.log_softmax(self.gain*torch.stack([a, -a, z, z, z, z], 1), 1)

def _batch(modality, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = {'eeg': (n, 19, 500), 'eeg_spectrogram': (n, 4, 96, 60), 'spectrogram': (n, 4, 96, 60)}
    if modality == 'multimodal': return {m: _batch(m, n, seed + 1 + i) for i, m in enumerate(MODALITIES)}
    shape = shapes[modality]
    per_row = lambda a, b: torch.linspace(a, b, shape[1]).view(-1, *[1]*(len(shape) - 2))   # rows differ: not symmetric
    return torch.randn(*shape, generator=g)*per_row(0.5, 2) + per_row(-1, 1)

SWAP01 = [1, 0, 2, 3, 4, 5]

def test_mirror_matches_the_names():
    "mirror_inputs puts each row's mirror partner in its place (numbered rows make it visible)."
    for m in MODALITIES:
        k = len(REGIONS[m])
        x = torch.arange(float(k)).view(1, k, *([1]*(1 if m == 'eeg' else 2))).expand(2, k, *((7,) if m == 'eeg' else (3, 5)))
        got = mirror_inputs(x, m)[0, :, 0].long().tolist() if m == 'eeg' else mirror_inputs(x, m)[0, :, 0, 0].long().tolist()
        assert got == PAIR[m], (m, got)
    assert PAIR['spectrogram'] == [1, 0, 3, 2] and PAIR['eeg_spectrogram'] == [3, 2, 1, 0]
    assert EEG_ROWS[PAIR['eeg'][0]] == 'Fp2-F8' and PAIR['eeg'][16:] == [16, 17, 18]

@pytest.mark.parametrize('modality', MODALITIES + ('multimodal',))
def test_tta_of_a_mirror_blind_model_is_no_tta(modality):
    model = MirrorBlind(modality).eval()
    x = _batch(modality)
    p0 = predict_proba(model, x)
    assert not torch.allclose(p0, torch.full_like(p0, 1/6), atol=1e-3)        # the model does look at its input
    assert_close(predict_proba(model, x, tta=True, modality=modality), p0, eps=1e-6)
    assert_close(predict_proba(model, mirror_inputs(x, modality)), p0, eps=1e-6)

def test_region_reversal_is_not_the_spectrogram_mirror():
    "Reversing the Kaggle spectrogram's regions (LL, RL, LP, RP -> RP, LP, RL, LL) changes a mirror-blind model's answer."
    model = MirrorBlind('spectrogram').eval()
    x = _batch('spectrogram')
    p0 = predict_proba(model, x)
    assert (predict_proba(model, reverse_regions(x)) - p0).abs().max() > 1e-3
    eeg_spec = MirrorBlind('eeg_spectrogram').eval()                          # for the chain images reversal is the mirror
    xe = _batch('eeg_spectrogram')
    assert_close(predict_proba(eeg_spec, reverse_regions(xe)), predict_proba(eeg_spec, xe), eps=1e-6)

@pytest.mark.parametrize('modality', MODALITIES + ('multimodal',))
def test_mirror_swaps_a_lateralised_prediction(modality):
    model = Lateralised(modality).eval()
    x = _batch(modality)
    p0, pm = predict_proba(model, x), predict_proba(model, mirror_inputs(x, modality))
    assert_close(pm, p0[:, SWAP01], eps=1e-6)                                   # left and right evidence trade places
    assert (pm - p0).abs().max() > 1e-3
    pt = predict_proba(model, x, tta=True, modality=modality)
    assert_close(pt[:, 0], pt[:, 1], eps=1e-6)
    assert_close(pt, (p0 + pm)/2, eps=1e-6)

def test_tta_needs_the_modality_of_a_tensor():
    with pytest.raises(ValueError, match='tta needs the modality'):
        predict_proba(MirrorBlind('eeg').eval(), _batch('eeg'), tta=True)
    with pytest.raises(ValueError, match='expected a spectrogram batch'):
        mirror_inputs(_batch('eeg'), 'spectrogram')

def test_mirror_of_a_lateralised_synthetic_recording_moves_probability():
    "A left-sided LRDA recording (hbac.synthetic): the lateralised model leans left; on its mirror it leans right."
    from hbac.dataset import eeg_inputs, spectrogram_inputs
    from hbac.synthetic import synth_eeg, synth_spectrogram
    rng = np.random.default_rng(0)
    x = eeg_inputs(synth_eeg('lrda', 'left', 10_000, rng))
    x['spectrogram'] = spectrogram_inputs(synth_spectrogram('lrda', 'left', 300, rng))
    for m in MODALITIES:
        b = torch.from_numpy(x[m])[None]
        model = Lateralised(m).eval()
        p, pm = predict_proba(model, b)[0], predict_proba(model, mirror_inputs(b, m))[0]
        assert p[0] > p[1] + 0.05 and pm[1] > pm[0] + 0.05, (m, p, pm)       # left, then right
        assert_close(predict_proba(model, b, tta=True, modality=m)[0, :2].diff().abs().item(), 0.0, eps=1e-6)

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    from hbac.synthetic import tiny_dataset
    return tiny_dataset(tmp_path_factory.mktemp('tiny')/'data')

def _loaded(model, name, run_dir, config=None):
    return LoadedModel(model.eval(), name, run_dir, run_dir/'final.pt', config or {})

def test_predict_call_site_mirrors_each_models_input(tiny, tmp_path):
    "hbac.predict.model_predictions (what predict runs) passes every model's modality to the TTA mirror."
    names = MODALITIES + ('multimodal',)
    blind = [_loaded(MirrorBlind(m, seed=i), m, tmp_path/m) for i, m in enumerate(names)]
    p0 = model_predictions(tiny, blind, forward_batch=2)
    assert np.isfinite(p0).all()
    assert_close(model_predictions(tiny, blind, tta=True, forward_batch=2), p0, eps=1e-6)
    lat = [_loaded(Lateralised(m), m, tmp_path/m) for m in names]
    q0, qt = model_predictions(tiny, lat), model_predictions(tiny, lat, tta=True)
    assert np.abs(q0[..., 0] - q0[..., 1]).max() > 1e-4
    assert_close(qt[..., 0], qt[..., 1], eps=1e-6)

def test_oof_call_site_mirrors_each_models_input(tiny, tmp_path, monkeypatch):
    "hbac.ensemble.oof_predictions (what hbac cv runs) passes every model's modality to the TTA mirror."
    import hbac.ensemble as ens
    from hbac.data import PRED_COLS
    from hbac.preprocess import preprocess
    preprocess(tiny, tmp_path/'cache', split='train', workers=1, progress=False)
    runs = [init_run_dir(tmp_path/'runs'/m, m, TINY_KWARGS[m], fold=0, n_folds=2, checkpoints=('final',)) for m in MODALITIES + ('multimodal',)]
    def fake_load(kind):
        def load(path, checkpoint='best_high', device='cpu'):
            cfg = read_run_config(path)
            name = cfg['extra']['model_name']
            return _loaded(kind(name), name, path, cfg)
        return load
    out = {}
    for kind in (MirrorBlind, Lateralised):
        monkeypatch.setattr(ens, 'load_run', fake_load(kind))
        out[kind] = [oof_predictions(runs, tiny, tmp_path/'cache', checkpoint='final', device='cpu', tta=t, batch_size=4)[list(PRED_COLS)].to_numpy()
                     for t in (False, True)]
    n = len(read_train_csv(tiny))
    assert 0 < len(out[MirrorBlind][0]) < 4*n                                 # fold 0's windows, once per model
    assert_close(out[MirrorBlind][1], out[MirrorBlind][0], eps=1e-6)
    p0, pt = out[Lateralised]
    assert np.abs(p0[:, 0] - p0[:, 1]).max() > 1e-4
    assert_close(pt[:, 0], pt[:, 1], eps=1e-6)
