"""EegBrowser beyond the notebook: the real Kaggle files, bad inputs with messages that name the problem, the
widget's Jupyter display bundle, and errors shown in the widget instead of raised from a callback."""
import numpy as np
import pandas as pd
import pytest
import torch
from hbac.data import DataError, read_train_csv, real_fixtures_dir, VOTE_COLS
from hbac.models.eeg import EegModel
from hbac.models.spectrogram import SpectrogramModel
from hbac.synthetic import tiny_dataset
from hbac.widgets import EegBrowser, WindowSource

def toy_eeg():
    torch.manual_seed(0)
    return EegModel(widths=(4,)*7 + (16,), kernels=(3,)*7, hidden=16)   # untrained, toy-sized

@pytest.fixture(scope='module')
def syn(): return tiny_dataset()

def test_real_fixture_windows_and_loss_order():
    fx = real_fixtures_dir()
    if fx is None: pytest.skip('real fixtures not found (set HBAC_FIXTURES)')
    hms = fx/'hms'
    b = EegBrowser(hms, model=toy_eeg(), widgets=False)
    assert len(b.table) == 9 and b.modality == 'eeg'
    w = b.window_arrays()
    assert {k: v.shape for k, v in w.items()} == {'raw': (10000, 20), 'eeg': (19, 2500),
                                                 'eeg_spectrogram': (4, 96, 224), 'spectrogram': (4, 96, 224)}
    kl = b.losses()['kl'].to_numpy()
    assert (np.diff(kl) <= 0).all() and b.state()['rank'] == 0
    seen = [b.state()['window']] + [b.next()['window'] for _ in range(8)]
    assert sorted(seen) == list(range(9))                       # next() visits every window once, by loss
    assert b.next()['window'] == seen[-1]                       # and stays at the last
    b.select(1628180742, 40)
    assert b.state()['offset'] == 40.0 and np.isfinite(b.window_arrays()['raw']).all()
    figs = b.draw()
    assert 'EEG 1628180742 at 40 s' in figs['montage'].get_suptitle()

def test_bad_inputs(syn):
    df = read_train_csv(syn)
    with pytest.raises(DataError, match=r"valid_df lacks columns \['seizure_vote'"):
        EegBrowser(syn, valid_df=df.drop(columns=['seizure_vote']), widgets=False)
    with pytest.raises(DataError, match='valid_df has no rows'):
        EegBrowser(syn, valid_df=df.iloc[:0], widgets=False)
    with pytest.raises(ValueError, match='either run_dir or model'):
        EegBrowser(syn, run_dir=syn, model=toy_eeg(), widgets=False)
    with pytest.raises(ValueError, match="pass modality='eeg_spectrogram'"):
        EegBrowser(syn, model=SpectrogramModel(widths=(4, 8)), widgets=False)
    with pytest.raises(ValueError, match="unknown modality 'fmri'"):
        EegBrowser(syn, model=toy_eeg(), modality='fmri', widgets=False)
    b = EegBrowser(syn, widgets=False)
    with pytest.raises(ValueError, match="unknown view settings \\['colour'\\]"):
        b.set_view(colour='red')
    missing = df.iloc[:1].assign(eeg_id=123)
    b2 = EegBrowser(syn, valid_df=missing, widgets=False)
    with pytest.raises(DataError, match=r'train_eegs/123.parquet: file not found'):
        b2.window_arrays()
    with pytest.raises(ValueError, match="unknown modality 'eeg2'"):
        WindowSource(syn).features('eeg2', 1)

def test_spectrogram_model_needs_modality_and_gets_it(syn):
    torch.manual_seed(0)
    b = EegBrowser(syn, model=SpectrogramModel(widths=(4, 4, 8, 16)), modality='eeg_spectrogram', widgets=False,
                   methods=('gradcam',))
    p = b.prediction()
    assert p.shape == (6,) and abs(p.sum() - 1) < 1e-5
    a = b.attribution('grda', 'gradcam')
    assert tuple(a.arrays()) == ('eeg_spectrogram',) and a.arrays()['eeg_spectrogram'].shape == (4, 96, 224)
    b.set_view(attr_method='gradcam', attr_class='grda')
    figs = b.draw()
    assert sum(im.get_gid() == 'attribution' for ax in figs['eeg_spectrogram'].axes for im in ax.images) == 4
    assert sum(im.get_gid() == 'attribution' for ax in figs['spectrogram'].axes for im in ax.images) == 0

def test_widget_bundle_and_errors_in_the_output(syn):
    b = EegBrowser(syn)
    bundle = b._repr_mimebundle_()
    view = bundle['application/vnd.jupyter.widget-view+json']
    assert view['model_id'] == b.widget.model_id
    assert [o['data']['text/plain'] for o in b.out.outputs] == ['<montage figure>', '<eeg_spectrogram figure>',
                                                               '<spectrogram figure>', '<votes figure>']
    b.span.value = (30, 30)                                     # an empty span: the widget shows why, nothing raises
    assert len(b.out.outputs) == 1 and 'span' in b.out.outputs[0]['text'], b.out.outputs
    b.span.value = (0, 50)
    assert len(b.out.outputs) == 4
    # the window list follows the EEG; picking a window of it moves there
    eeg = int(read_train_csv(syn).eeg_id.value_counts().index[0])
    b.eeg_id.value = eeg
    assert [o[1] for o in b.window.options] == b.offsets(eeg)
    b.window.value = b.offsets(eeg)[-1]
    assert (b.state()['eeg_id'], b.state()['offset']) == (eeg, b.offsets(eeg)[-1])
