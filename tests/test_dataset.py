"hbac.dataset end to end (the whole-recording cache entries): flat memory over a DataLoader with workers, missing cache entries, bad folds."
import gc, os
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from hbac.data import VOTE_COLS, DataError
from hbac.dataset import WindowDataset, labels_table, make_loader, patient_folds, split_fold

EEG_T = 120 * 50      # 120 s at 50 Hz: 19 x 6000 float16 = 228 KB per entry

def rss_mb(pid=None) -> float:
    "Resident set size (MB) of a process, psutil when available, else /proc/<pid>/status VmRSS."
    try:
        import psutil
        return psutil.Process(pid or os.getpid()).memory_info().rss / 2**20
    except ImportError:
        for line in Path(f'/proc/{pid or "self"}/status').read_text().splitlines():
            if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    raise RuntimeError('cannot read RSS')

def table(n_eegs, windows=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = [dict(eeg_id=1000 + e, eeg_label_offset_seconds=float(20 * w), spectrogram_id=5000 + e,
                 spectrogram_label_offset_seconds=float(20 * w), label_id=10**6 + windows * e + w, patient_id=e // 2,
                 **dict(zip(VOTE_COLS, rng.multinomial(13, np.ones(6) / 6).astype(float))))
            for e in range(n_eegs) for w in range(windows)]
    return pd.DataFrame(rows)

def write_cache(root, df, modalities=('eeg',)):
    rng = np.random.default_rng(1)
    for m in modalities: (root/m).mkdir(parents=True, exist_ok=True)
    for i in df.eeg_id.unique():
        if 'eeg' in modalities: np.save(root/'eeg'/f'{i}.npy', rng.normal(0, 50, (19, EEG_T)).astype(np.float16))
        if 'eeg_spectrogram' in modalities:
            np.save(root/'eeg_spectrogram'/f'{i}.npy', rng.uniform(-4, 7, (4, 96, 120 * 200 // 44 + 1)).astype(np.float16))
    if 'spectrogram' in modalities:
        for i in df.spectrogram_id.unique():
            np.save(root/'spectrogram'/f'{i}.npy', rng.uniform(0, 50, (4, 100, 360)).astype(np.float16))
    return root

def test_ram_flat_with_workers(tmp_path):
    """400 EEG entries (~90 MB of cache, 1,200 windows = 110 MB of window reads per epoch) through 2 workers, two epochs:
    after a warm-up epoch (allocator arenas, thread pools), the parent's RSS does not grow over the second epoch,
    nor does a worker's within it. A dataset that kept what it reads would grow by ~55 MB per worker per epoch."""
    import psutil
    df = table(400)
    cache = write_cache(tmp_path/'cache', df)
    cache_mb = sum(p.stat().st_size for p in (cache/'eeg').iterdir()) / 2**20
    assert cache_mb > 80
    ds = WindowDataset(df, cache, 'eeg', numerics='recording')                           # validation mode: every window, 1200 items
    loader = make_loader(ds, batch_size=16, num_workers=2, seed=0)
    end, finite = [], True
    for epoch in range(2):
        n, trace, kids0, kid_peak = 0, [], {}, {}
        for i, (x, y, c) in enumerate(loader):
            n += len(c)
            if i % 8 == 0:
                finite &= bool(torch.isfinite(x).all()) and x.shape[1:] == (19, 2500)
                trace.append(rss_mb())
                for k in psutil.Process().children():
                    r = rss_mb(k.pid); kids0.setdefault(k.pid, r); kid_peak[k.pid] = max(kid_peak.get(k.pid, 0), r)
            del x, y, c
        assert n == len(ds) and len(kids0) == 2 and finite
        gc.collect(); end.append(rss_mb())
    parent_growth = end[1] - end[0]
    kid_growth = max(kid_peak[p] - kids0[p] for p in kids0)
    print(f'cache {cache_mb:.0f} MB, parent RSS growth over epoch 2 {parent_growth:.1f} MB (within: {max(trace) - trace[0]:.1f}), '
          f'worst worker growth {kid_growth:.1f} MB')
    assert parent_growth < 25, parent_growth
    assert kid_growth < 25, kid_growth

def test_missing_cache_entry(tmp_path):
    df = table(4)
    cache = write_cache(tmp_path/'cache', df, ('eeg', 'eeg_spectrogram', 'spectrogram'))
    (cache/'eeg_spectrogram'/'1002.npy').unlink()
    with pytest.raises(DataError, match=r"no eeg_spectrogram cache entry for eeg_id 1002: .*1002\.npy not found.*hbac preprocess"):
        WindowDataset(df, cache, 'multimodal', train=True, numerics='recording')
    ds = WindowDataset(df, cache, 'eeg_spectrogram', check=False, numerics='recording')
    with pytest.raises(DataError, match=r'no eeg_spectrogram cache entry for id 1002: .*1002\.npy not found'): ds[6]
    # a loader worker surfaces the same error
    with pytest.raises(DataError, match='entry for id 1002'):
        list(make_loader(ds, batch_size=4, num_workers=1))
    assert len(list(make_loader(WindowDataset(df, cache, 'eeg', numerics='recording'), batch_size=4))) == 3   # other modalities work
    bad = df.copy(); bad.loc[0, 'eeg_label_offset_seconds'] = 500.0
    with pytest.raises(DataError, match='eeg_id 1000: window at offset 500.0 s starts at frame 25000'):
        WindowDataset(bad, cache, 'eeg', numerics='recording')[0]

def test_fold_errors():
    df = labels_table(table(20))            # 10 patients
    folds = patient_folds(df, 10)
    assert folds.nunique() == 10
    with pytest.raises(ValueError, match='fold 12 out of range for 10 folds'): split_fold(df, folds, 12)
    with pytest.raises(ValueError, match='cannot split 10 patients into 11 folds'): patient_folds(df, 11)
    for k in range(10):
        tr, va = split_fold(df, folds, k)
        assert not set(tr.patient_id) & set(va.patient_id) and len(tr) + len(va) == len(df)
    assert patient_folds(df.iloc[::-1], 10).equals(folds)   # deterministic, row order independent
