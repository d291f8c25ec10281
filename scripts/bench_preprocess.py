"""Benchmark `hbac.preprocess` against a seed-style reference on the same synthetic files.

Usage: .venv/bin/python scripts/bench_preprocess.py [--data-dir DATA] [--n-eegs 80] [--workers 2] [--repeats 1]

Without --data-dir it writes a synthetic dataset (hbac.synthetic) of --n-eegs train EEGs of about 80 s, each with its
10-min spectrogram, to a temporary folder. Every measured run is a fresh child process (so peak RSS, read from
getrusage, belongs to that run alone): ours = `preprocess(..., workers=W)` (process pool, one read per EEG file for
both EEG modalities, blocked filtfilt with cached coefficients and zi, workers that reuse freed memory); seed-style
reference = what a typical Kaggle notebook
does: one modality per pass over the files, `pd.read_parquet`, per-pair `butter` + `filtfilt`, numpy MAD per pair,
one stacked float32 `torch.stft` (torch's default threads: measured, OMP_NUM_THREADS=1 does not lower its CPU
seconds), a ThreadPoolExecutor with W threads. Prints files/s per modality and for all three,
peak RSS (parent + largest child), the ratio ours vs reference, the per-core floor (IIR filtering alone) and
peak RSS with N/2 and N files.
"""
from __future__ import annotations
import argparse, json, math, os, resource, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np

MODS = ('eeg', 'eeg_spectrogram', 'spectrogram')

# ---------------------------------------------------------------- seed-style reference (per pair, one modality per pass)
def _butter_bandpass_filter(x, low, high, order, fs=200):
    import scipy.signal
    b, a = scipy.signal.butter(order, [low, high], btype='band', fs=fs)
    return scipy.signal.filtfilt(b, a, x)

def _seed_read_eeg(path):
    import pandas as pd
    from hbac.data import EEG_CHANNELS
    return np.nan_to_num(pd.read_parquet(path)[list(EEG_CHANNELS)].to_numpy(np.float32))

def seed_eeg(path, out):
    from hbac.data import EEG_CHANNELS, MONTAGE, MIDLINE
    x = _seed_read_eeg(path); ch = lambda n: x[:, EEG_CHANNELS.index(n)]
    rows = [_butter_bandpass_filter(ch('EKG'), 0.5, 20, 4)]
    rows += [_butter_bandpass_filter(ch(p) - ch(q), 0.25, 50, 4) for p, q in MIDLINE + MONTAGE]
    x = np.stack(rows)
    pad = (-x.shape[1]) % 4
    x = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2)), mode='reflect')
    np.save(out, x.reshape(19, -1, 4).mean(-1).astype(np.float16))

def seed_eeg_spectrogram(path, out):
    import torch
    from hbac.data import EEG_CHANNELS, MONTAGE
    x = _seed_read_eeg(path); ch = lambda n: x[:, EEG_CHANNELS.index(n)]
    pairs = [_butter_bandpass_filter(ch(p) - ch(q), 0.25, 40, 5) for p, q in MONTAGE]
    mads = [1.4826 * np.median(np.abs(v - np.median(v))) for v in pairs]
    sig = torch.tensor(np.stack(pairs) / (np.median(mads) + 1e-5), dtype=torch.float32)
    s = torch.stft(sig, n_fft=800, hop_length=44, win_length=256, window=torch.hann_window(256), center=True,
                   pad_mode='reflect', return_complex=True)
    img = torch.log(torch.clamp(s[:, 2:98].abs() / 15, math.exp(-4), math.exp(7)))
    np.save(out, img.view(4, 4, 96, -1).mean(1).numpy().astype(np.float16))

def seed_spectrogram(path, out):
    import pandas as pd
    v = pd.read_parquet(path).drop(columns='time').to_numpy(np.float32)
    v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    np.save(out, v.reshape(len(v), 4, 100).transpose(1, 2, 0).astype(np.float16))

def seed_run(data_dir, cache_dir, modalities, workers):
    from hbac.data import read_train_csv, eeg_path, spectrogram_path
    df = read_train_csv(data_dir)
    fns = {'eeg': (seed_eeg, 'eeg_id', eeg_path), 'eeg_spectrogram': (seed_eeg_spectrogram, 'eeg_id', eeg_path),
           'spectrogram': (seed_spectrogram, 'spectrogram_id', spectrogram_path)}
    for m in modalities:                                   # one modality per pass over the files
        fn, col, path_of = fns[m]
        out = Path(cache_dir)/m; out.mkdir(parents=True, exist_ok=True)
        ids = sorted(set(df[col].tolist()))
        with ThreadPoolExecutor(max(1, workers)) as ex:
            list(ex.map(lambda i: fn(path_of(data_dir, 'train', i), out/f'{i}.npy'), ids))

# ---------------------------------------------------------------- one measured run = one child process
def child(kind, data_dir, cache_dir, modalities, workers):
    import pandas, scipy.signal, torch
    from hbac.data import read_train_csv
    from hbac.preprocess import preprocess
    c0, t0 = time.process_time(), time.perf_counter()       # imports are not timed
    if kind == 'ours':
        rep = preprocess(data_dir, cache_dir, modalities, workers=workers, progress=False)
        assert rep.ok, str(rep)
    else:
        seed_run(data_dir, cache_dir, modalities, workers)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    df = read_train_csv(data_dir)
    n = sum(df['spectrogram_id' if m == 'spectrogram' else 'eeg_id'].nunique() for m in modalities
            if m != 'eeg_spectrogram' or 'eeg' not in modalities)
    ru_self, ru_ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({'seconds': sec, 'files': n, 'rss_self_mb': ru_self.ru_maxrss / 1024,
                      'rss_child_mb': ru_ch.ru_maxrss / 1024, 'cpu_s': cpu + ru_ch.ru_utime + ru_ch.ru_stime}))

def measure(kind, data_dir, modalities, workers, repeats, tmp):
    "Best of `repeats` fresh child runs (each into an empty cache)."
    best = None
    for r in range(repeats):
        cache = Path(tempfile.mkdtemp(dir=tmp))
        cmd = [sys.executable, __file__, '--_child', kind, str(data_dir), str(cache), ','.join(modalities), str(workers)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode: raise SystemExit(f'{kind} {modalities} failed:\n{out.stderr[-3000:]}')
        res = json.loads(out.stdout.strip().splitlines()[-1])
        shutil.rmtree(cache)
        if best is None or res['seconds'] < best['seconds']: best = res
    return best

# ---------------------------------------------------------------- the per-core floor
def floor_ms(n=16000, reps=30):
    "CPU ms of the IIR filtering alone: sosfiltfilt on (18, n) float64 (the order-4 0.25-50 Hz band-pass)."
    import scipy.signal
    sos = scipy.signal.butter(4, [0.25, 50], btype='band', fs=200, output='sos')
    x = np.random.default_rng(0).normal(size=(18, n))
    scipy.signal.sosfiltfilt(sos, x, axis=-1)
    best = 1e9
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(reps // 5): scipy.signal.sosfiltfilt(sos, x, axis=-1)
        best = min(best, (time.process_time() - t0) / (reps // 5))
    return best * 1e3

def per_file_ms(data_dir, n_files=12):
    """CPU ms per EEG file in this process, set up as a worker (one torch thread, freed memory kept): read + both EEG
    modalities; and per spectrogram file."""
    import torch
    from hbac.data import read_train_csv, read_eeg, read_spectrogram, eeg_path, spectrogram_path
    from hbac.signal import all_features, spectrogram_features
    from hbac.preprocess import _keep_freed_memory
    torch.set_num_threads(1); _keep_freed_memory()
    df = read_train_csv(data_dir)
    eids = sorted(df.eeg_id.unique())[:n_files]; sids = sorted(df.spectrogram_id.unique())[:n_files]
    paths = [eeg_path(data_dir, 'train', i) for i in eids]
    all_features(read_eeg(paths[0]))
    t0 = time.process_time(); [all_features(read_eeg(p)) for p in paths]; t_eeg = (time.process_time() - t0) / len(paths)
    t0 = time.process_time(); [read_eeg(p) for p in paths]; t_read = (time.process_time() - t0) / len(paths)
    sp = [spectrogram_path(data_dir, 'train', i) for i in sids]
    t0 = time.process_time(); [spectrogram_features(read_spectrogram(p)[1]) for p in sp]; t_spec = (time.process_time() - t0) / len(sp)
    n_samples = np.mean([len(read_eeg(p)) for p in paths[:4]])
    return t_eeg * 1e3, t_read * 1e3, t_spec * 1e3, n_samples

def subset(data_dir, n_eegs, out):
    "A data folder with the first `n_eegs` EEG ids of train.csv (symlinked parquet folders)."
    import pandas as pd
    df = pd.read_csv(Path(data_dir)/'train.csv')
    keep = sorted(df.eeg_id.unique())[:n_eegs]
    out.mkdir(parents=True)
    df[df.eeg_id.isin(keep)].to_csv(out/'train.csv', index=False)
    for sub in ('train_eegs', 'train_spectrograms'): (out/sub).symlink_to(Path(data_dir).resolve()/sub)
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data-dir', default=None, help='a Kaggle-layout folder (default: write a synthetic one)')
    ap.add_argument('--n-eegs', type=int, default=80, help='synthetic train EEGs (each with a spectrogram)')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=1, help='runs per configuration (the fastest is reported)')
    ap.add_argument('--_child', nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._child:
        kind, d, c, mods, w = a._child
        return child(kind, Path(d), Path(c), tuple(mods.split(',')), int(w))
    tmp = Path(tempfile.mkdtemp(prefix='hbac_bench_'))
    try:
        if a.data_dir: data = Path(a.data_dir)
        else:
            from hbac.synthetic import SynthConfig, make_synthetic_dataset
            t0 = time.perf_counter(); data = tmp/'data'
            make_synthetic_dataset(data, SynthConfig(n_patients=max(1, a.n_eegs // 2), eegs_per_patient=(2, 2),
                                                     windows_per_eeg=(7, 9), n_test=0, seed=1))
            print(f'synthetic data: {a.n_eegs} EEGs of ~80 s + spectrograms written in {time.perf_counter()-t0:.0f} s')
        print(f'cpus: {os.cpu_count()}  workers: {a.workers}  load average at start: {os.getloadavg()[0]:.1f}')
        rows = []
        for mods in [('eeg',), ('eeg_spectrogram',), ('spectrogram',), MODS]:
            for kind in ('ours', 'seed'):
                rows.append((kind, mods, measure(kind, data, mods, a.workers, a.repeats, tmp)))
        name = lambda m: 'all three' if len(m) == 3 else m[0]
        print(f"\n{'run':8s} {'modalities':16s} {'files':>5s} {'wall s':>7s} {'files/s':>8s} {'cpu s':>6s} "
              f"{'RSS parent MB':>13s} {'RSS child MB':>12s}")
        for kind, mods, r in rows:
            print(f"{kind:8s} {name(mods):16s} {r['files']:5d} {r['seconds']:7.2f} {r['files']/r['seconds']:8.1f} "
                  f"{r['cpu_s']:6.1f} {r['rss_self_mb']:13.0f} {r['rss_child_mb']:12.0f}")
        res = {(k, name(m)): r for k, m, r in rows}
        n_eeg = res[('ours', 'eeg')]['files']
        # before anything big runs in this process: Linux keeps a process's peak RSS across fork + exec
        r_half = measure('ours', subset(data, max(1, n_eeg // 2), tmp/'half'), MODS, a.workers, 1, tmp)
        print()
        for m in ('eeg', 'eeg_spectrogram', 'spectrogram', 'all three'):
            o, r = res[('ours', m)], res[('seed', m)]
            print(f"ours vs seed, {m:15s}: wall-clock speed-up {r['seconds']/o['seconds']:.2f}x, "
                  f"CPU seconds {r['cpu_s']/o['cpu_s']:.2f}x fewer")
        print('(wall-clock needs an idle machine: with a load average above the number of CPUs it mostly measures the '
              'scheduler; CPU seconds are robust to load)')
        fl = floor_ms()
        t_eeg, t_read, t_spec, n_s = per_file_ms(data)
        scale = 16000 / n_s
        ours_all = res[('ours', 'all three')]
        print(f'\nper-core floor: sosfiltfilt on (18, 16000) float64 = {fl:.1f} ms CPU (a file needs 35 such rows: '
              f'18 + 1 at order 4 for eeg, 16 at order 5 for eeg_spectrogram, i.e. ~{fl*35/18:.0f} ms, plus the STFT)')
        print(f'ours, one process, per 80 s EEG file (both EEG modalities, read included): {t_eeg*scale:.1f} ms CPU '
              f'= {t_eeg*scale/fl:.1f}x the floor (read alone {t_read*scale:.1f} ms); per spectrogram file {t_spec:.1f} ms')
        print(f"ours, pool of {a.workers}, all three: {ours_all['seconds']*a.workers/n_eeg*1e3:.1f} ms of worker wall time "
              f"per (EEG file + spectrogram file)")
        print(f"\npeak RSS, ours all three: {n_eeg//2} EEGs -> parent {r_half['rss_self_mb']:.0f} MB, child "
              f"{r_half['rss_child_mb']:.0f} MB; {n_eeg} EEGs -> parent {ours_all['rss_self_mb']:.0f} MB, child "
              f"{ours_all['rss_child_mb']:.0f} MB")
        print(f'load average at end: {os.getloadavg()[0]:.1f}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0

if __name__ == '__main__':
    sys.exit(main())
