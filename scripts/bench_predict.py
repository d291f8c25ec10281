"""Benchmark hbac.predict on this machine: windows per second for the features alone, one model of each kind, and
the full ensemble (FOLDS folds x 4 models, untrained full-size weights: speed does not depend on the values), each
batched (--batch-size windows per forward pass), with predict's default (batches of rows, forward_batch=None: one
window per forward pass on a CPU, the whole batch on a GPU) and one window at a time (batch 1, the simple way),
with the projected time for the hidden test set.

Usage: .venv/bin/python scripts/bench_predict.py [--windows 256] [--single-windows 16] [--ensemble-windows 4]
                                                 [--repeats 3] [--folds 10] [--batch-size 32] [--threads N] [--device cpu]

A synthetic test set of --windows rows (each a 50 s EEG + a 10 min spectrogram, as on Kaggle) is generated; the
features are timed over all of it, the single models over the first --single-windows rows and the full ensemble
over the first --ensemble-windows rows (a full-size ensemble is slow on a CPU); each model timing is the fastest of
--repeats runs, batched and batch-1 runs interleaved, so a busy machine disturbs the ratio less. Model loading is
timed separately and added once to the projections. The FOLDS fold models of one kind
are FOLDS separate model objects loaded from one run directory: they cost exactly what FOLDS different runs cost.
The hidden test set's size is not published; it is assumed to be about 800 rows, and projections are also given
for 1,000.
"""
from __future__ import annotations
import argparse, os, sys, tempfile, time, warnings
from pathlib import Path

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--windows', type=int, default=256, help='rows of the synthetic test set (features timed over all)')
    ap.add_argument('--single-windows', type=int, default=16, help='rows timed for each single model')
    ap.add_argument('--ensemble-windows', type=int, default=4, help='rows timed for the full ensemble')
    ap.add_argument('--repeats', type=int, default=3, help='timings per measurement; the fastest is reported')
    ap.add_argument('--folds', type=int, default=10)
    ap.add_argument('--batch-size', type=int, default=32)
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--hidden-rows', type=int, nargs='+', default=[800, 1000], help='test-set sizes to project for')
    ap.add_argument('--workdir', default=None, help='where to write the data and runs (default: a temporary folder)')
    a = ap.parse_args(argv)
    import pandas as pd, torch
    from hbac.synthetic import SynthConfig, make_synthetic_dataset
    from hbac.data import read_test_csv
    from hbac.fixtures import init_run_dir
    from hbac.runs import load_run
    from hbac.predict import model_predictions, row_inputs
    if a.threads: torch.set_num_threads(a.threads)
    warnings.simplefilter('ignore')
    work = Path(a.workdir or tempfile.mkdtemp(prefix='hbac_bench_'))
    data = work/'data'
    if not (data/'test.csv').exists() or len(read_test_csv(data)) != a.windows:
        t = time.perf_counter()
        make_synthetic_dataset(data, SynthConfig(n_patients=2, eegs_per_patient=(1, 1), windows_per_eeg=(1, 1), n_test=a.windows), overwrite=True)
        print(f'synthetic test set: {a.windows} rows in {time.perf_counter() - t:.1f} s ({data})')
    runs = {m: work/'runs'/m for m in ('eeg', 'eeg_spectrogram', 'spectrogram', 'multimodal')}   # reference sizes
    for m, r in runs.items():
        if not (r/'best_high.pt').exists(): init_run_dir(r, m, checkpoints=('best_high',))
    test = read_test_csv(data)

    rows = []
    def record(what, batch, n, seconds, load):
        rows.append({'what': what, 'mode': batch, 'windows': n, 'seconds': seconds, 'windows/s': n/seconds, 'load (s)': load})
        print(f'  {what:<28} {batch:<15}: {n} windows in {seconds:7.1f} s = {n/seconds:7.2f} windows/s', flush=True)

    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, device {a.device}, {os.cpu_count()} CPUs, '
          f'load average {os.getloadavg()[0]:.1f} (the timings assume an otherwise idle machine)')
    t = time.perf_counter()
    for r in test.itertuples(): row_inputs(data, r.eeg_id, r.spectrogram_id)
    record('features (3 modalities)', 'one at a time', len(test), time.perf_counter() - t, 0.0)

    def timed(what, paths, n):
        t = time.perf_counter()
        models = [load_run(p, device=a.device) for p in paths]
        load = time.perf_counter() - t
        model_predictions(data, models, test.iloc[:1], batch_size=1)                   # warm-up (first-call overheads)
        modes = {f'batch {a.batch_size}': (a.batch_size, a.batch_size), 'predict default': (a.batch_size, None),
                 'batch 1': (1, 1)}                                        # (rows per loader batch, windows per forward)
        best = {k: float('inf') for k in modes}
        for _ in range(a.repeats):                                                     # interleaved, best of repeats
            for k, (bs, fb) in modes.items():
                t = time.perf_counter()
                model_predictions(data, models, test.iloc[:n], batch_size=bs, forward_batch=fb)
                best[k] = min(best[k], time.perf_counter() - t)
        for k, sec in best.items(): record(what, k, n, sec, load)

    for m, r in runs.items(): timed(f'1 {m} model', [r], min(a.single_windows, a.windows))
    ens = [r for r in runs.values() for _ in range(a.folds)]
    timed(f'ensemble {a.folds} folds x 4 models', ens, min(a.ensemble_windows, a.windows))

    print(f'load average at the end: {os.getloadavg()[0]:.1f}')
    df = pd.DataFrame(rows)
    for n in a.hidden_rows: df[f'{n} rows (min)'] = (df['load (s)'] + n / df['windows/s']) / 60
    print('\n' + df.to_string(index=False, float_format=lambda v: f'{v:.2f}'))
    print(f'\nspeed relative to one window at a time (batch 1, the simple way):')
    for what, g in df[df.what != 'features (3 modalities)'].groupby('what', sort=False):
        b = g.set_index('mode')['windows/s']
        print(f'  {what:<28} batch {a.batch_size}: {b[f"batch {a.batch_size}"] / b["batch 1"]:.2f}x   '
              f'predict default: {b["predict default"] / b["batch 1"]:.2f}x')
    return df

if __name__ == '__main__': main()
