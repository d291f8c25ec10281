"""Benchmark inference on this machine: windows/s per model and batch size, plain (as built) and prepared
(hbac.inference.prepare_for_inference), the batch size predict picks, and the projected time of the full ensemble.

Usage: .venv/bin/python scripts/bench_predict.py [--models eeg,eeg_spectrogram,spectrogram,multimodal]
           [--batches 1,8,32,128] [--repeats 2] [--probe-windows 32] [--folds 10] [--rows 800 1000]
           [--e2e-rows 32] [--threads N] [--device cpu] [--workdir DIR] [--no-bfloat16 | --bfloat16] [--accuracy RUNS DATA]

1. Model rates (with hbac.data.keep_freed_memory, as predict and scan run): each model at the reference size (untrained weights with random BatchNorm statistics: speed does not
   depend on the values) gets forward passes in inference mode on random inputs of the Kaggle shapes, at each batch
   size of --batches, about --probe-windows windows per batch size (at least one pass); plain and prepared runs are
   interleaved and each figure is the fastest of --repeats, so a busy machine disturbs the ratios less. The prepared
   model's largest difference in log-probabilities from the plain one is printed too. Where the device has fast
   bfloat16 kernels (hbac.inference.bfloat16_native; or with --bfloat16) and unless --no-bfloat16, a third version
   runs: prepared with precision='bfloat16' (its difference from the plain model is printed as well).
   Each model's work per window (GFLOP, torch.utils.flop_counter) and the GFLOP/s of its best rate are printed too,
   beside the float32 matmul peak of the device (a 2048 x 2048 product at the same threads): what share of it each best
   rate reaches, and what share twice the plain batch-1 rate would need (over 100 %: out of float32's reach there).
2. Features: hbac.predict.row_inputs over the rows of a small synthetic test set (one EEG + one spectrogram each),
   the fastest of max(2, --repeats) passes.
3. Projection for the full ensemble (--folds folds x the models) on --rows test rows: rows x (features per row +
   folds x sum over models of 1 / windows/s) + loading the fold models, 'today' with the plain models one window at a
   time (what predict did on a CPU before), 'now' with the prepared models at their best batch size
   (and 'bfloat16' with the bfloat16 ones).
4. End to end (--e2e-rows > 0): hbac.predict.model_predictions with one run of each model over that many synthetic rows,
   forward_batch=None (the probed best batch) against forward_batch=1, windows/s including the features.
5. Accuracy of bfloat16 (--accuracy RUNS DATA, e.g. demo_out/runs demo_out/data after `bash scripts/demo.sh`):
   hbac.predict.predict with the trained runs in RUNS on DATA's test set in float32 and in bfloat16, each one's
   seconds and test KL against DATA's test_votes.csv (a synthetic set), and the largest probability difference.
"""
from __future__ import annotations
import argparse, os, tempfile, time, warnings
from pathlib import Path

MODELS = ('eeg', 'eeg_spectrogram', 'spectrogram', 'multimodal')

def random_bn(model, seed=0):
    "Random BatchNorm statistics (an untrained model's are the identity: folding would have nothing to do)."
    import torch
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model

def example(name, device):
    import torch
    from hbac.dataset import EEG_WINDOW, IMAGE_SIZE
    g = torch.Generator().manual_seed(1)
    eeg = lambda: torch.randn(1, 19, EEG_WINDOW, generator=g).to(device)
    img = lambda: torch.randn(1, 4, *IMAGE_SIZE, generator=g).to(device)
    return {'eeg': eeg(), 'eeg_spectrogram': img(), 'spectrogram': img()} if name == 'multimodal' else eeg() if name == 'eeg' else img()

def window_gflop(model, x) -> float:
    "GFLOP of one forward pass of one window (torch.utils.flop_counter: convolutions and matrix products)."
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    with torch.inference_mode(), FlopCounterMode(display=False) as fc: model(x)
    return fc.get_total_flops() / 1e9

def matmul_peak(device, n: int = 2048, repeats: int = 5) -> float:
    "GFLOP/s of the fastest float32 (n, n) @ (n, n) product on `device` at torch's threads: this machine's dense-compute ceiling."
    import torch
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    c, best = torch.empty(n, n, device=device), 0.0
    for _ in range(repeats + 1):                                     # the first pass warms the kernel and the pages
        if device.type == 'cuda': torch.cuda.synchronize()
        t = time.perf_counter(); torch.mm(a, b, out=c)
        if device.type == 'cuda': torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--models', default=','.join(MODELS))
    ap.add_argument('--batches', default='1,8,32,128', help='batch sizes timed (comma-separated, increasing)')
    ap.add_argument('--repeats', type=int, default=2, help='timings per figure; the fastest is reported')
    ap.add_argument('--probe-windows', type=int, default=32, help='windows timed per batch size (at least one pass)')
    ap.add_argument('--folds', type=int, default=10)
    ap.add_argument('--rows', type=int, nargs='+', default=[800, 1000], help='test-set sizes to project for')
    ap.add_argument('--feature-rows', type=int, default=16, help='synthetic rows whose features are timed')
    ap.add_argument('--e2e-rows', type=int, default=32, help='rows for the end-to-end model_predictions check (0: skip)')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--workdir', default=None, help='where to write the synthetic data and runs (default: a temporary folder)')
    ap.add_argument('--no-bfloat16', action='store_true', help="skip the precision='bfloat16' version")
    ap.add_argument('--bfloat16', action='store_true',
                    help="time the bfloat16 version even where the device has no fast bfloat16 kernels (there it is several times slower)")
    ap.add_argument('--accuracy', nargs=2, metavar=('RUNS', 'DATA'), default=None,
                    help='trained runs and a synthetic data folder: test KL of predict in float32 and in bfloat16')
    a = ap.parse_args(argv)
    import numpy as np, pandas as pd, torch
    from hbac.models.registry import build_model
    from hbac.inference import prepare_for_inference, batch_rates, bfloat16_native
    from hbac.synthetic import SynthConfig, make_synthetic_dataset
    from hbac.data import read_test_csv
    from hbac.fixtures import init_run_dir
    from hbac.runs import load_run
    from hbac.predict import model_predictions, row_inputs
    from hbac.data import keep_freed_memory
    if a.threads: torch.set_num_threads(a.threads)
    keep_freed_memory()                    # as predict and scan do: freed activations are reused, not unmapped
    warnings.simplefilter('ignore')
    models = [m.strip() for m in a.models.split(',') if m.strip()]
    batches = tuple(int(b) for b in a.batches.split(','))
    dev = torch.device(a.device)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, {os.cpu_count()} CPUs, '
          f'load average {os.getloadavg()[0]:.1f} (other work on the machine slows every figure)', flush=True)
    print(f'bfloat16 kernels on {dev}: {bfloat16_native(dev)} (cpu capability {torch.backends.cpu.get_cpu_capability()})', flush=True)
    with_bf16 = not a.no_bfloat16 and (a.bfloat16 or bfloat16_native(dev))
    if not a.no_bfloat16 and not with_bf16:
        print('  bfloat16 not timed: no fast bfloat16 kernels here, where it runs emulated and several times slower (--bfloat16 times it anyway)', flush=True)

    # 1. model rates, plain and prepared
    rows, err, gflop = [], {}, {}
    for name in models:
        torch.manual_seed(0)
        plain = random_bn(build_model(name)).eval().to(dev)
        versions = {'plain': plain, 'prepared': prepare_for_inference(plain, dev)}
        if with_bf16: versions['bfloat16'] = prepare_for_inference(plain, dev, precision='bfloat16')
        x = example(name, dev)
        gflop[name] = window_gflop(plain, x)
        with torch.inference_mode():
            for k in versions:
                if k != 'plain': err[(name, k)] = float((versions[k](x) - plain(x)).abs().max())
        best = {k: {b: 0.0 for b in batches} for k in versions}
        for _ in range(a.repeats):
            for k, m in versions.items():
                for b, r in batch_rates(m, x, dev, batches, a.probe_windows, stop_below=0).items():
                    best[k][b] = max(best[k][b], r)
        for k in best:
            rows.append({'model': name, 'version': k, **{f'batch {b}': best[k][b] for b in batches}})
            print(f"  {name:<16} {k:<9} " + '  '.join(f'b{b}: {best[k][b]:6.2f}' for b in batches) + ' windows/s', flush=True)
        del plain, versions
    df = pd.DataFrame(rows)
    cols = [f'batch {b}' for b in batches]
    df['best'] = df[cols].max(1)
    df['best batch'] = df[cols].idxmax(1).str.replace('batch ', '')
    one = df[df.version == 'plain'].set_index('model')[cols[0]]
    df['best / plain batch 1'] = df['best'] / df['model'].map(one)
    df['GFLOP/s at best'] = df['best'] * df['model'].map(gflop)
    peak = matmul_peak(dev)
    df['% of matmul peak'] = 100 * df['GFLOP/s at best'] / peak
    print(f'\nwindows/s per model and batch size (reference sizes, inference mode, fastest of {a.repeats}; '
          f'load average now {os.getloadavg()[0]:.1f}):')
    print(df.to_string(index=False, float_format=lambda v: f'{v:.2f}'))
    print('work per window (torch.utils.flop_counter, a multiply-add = 2 FLOP): ' + ', '.join(f'{m} {v:.2f} GFLOP' for m, v in gflop.items()))
    print(f'float32 matmul peak on {dev} ({torch.get_num_threads()} threads, 2048 x 2048, fastest of 5): {peak:.0f} GFLOP/s; '
          'twice the plain batch-1 rate would need ' + ', '.join(f'{m} {200 * one[m] * gflop[m] / peak:.0f} %' for m in models)
          + ' of it in float32')
    print('largest |log p| difference from the plain model: ' + ', '.join(f'{m} {k} {v:.1e}' for (m, k), v in err.items()))

    # 2. features and model loading
    work = Path(a.workdir or tempfile.mkdtemp(prefix='hbac_bench_'))
    data = work/'data'
    n_rows = max(a.feature_rows, a.e2e_rows, 1)
    if not (data/'test.csv').exists() or len(read_test_csv(data)) != n_rows:
        make_synthetic_dataset(data, SynthConfig(n_patients=2, eegs_per_patient=(1, 1), windows_per_eeg=(1, 1), n_test=n_rows), overwrite=True)
    test = read_test_csv(data)
    feat_s = float('inf')
    for _ in range(max(2, a.repeats)):                       # the fastest pass (the first also warms the page cache)
        t = time.perf_counter()
        for r in test.iloc[:a.feature_rows].itertuples(): row_inputs(data, r.eeg_id, r.spectrogram_id)
        feat_s = min(feat_s, (time.perf_counter() - t) / a.feature_rows)
    runs = {m: work/'runs'/m for m in models}
    for m, r in runs.items():
        if not (r/'best_high.pt').exists(): init_run_dir(r, m, checkpoints=('best_high',))
    load_s = {}
    for m, r in runs.items():
        t = time.perf_counter(); load_run(r, device=dev); load_s[m] = time.perf_counter() - t
    print(f'\nfeatures: {feat_s * 1000:.0f} ms per row; loading one run: ' + ', '.join(f'{m} {s:.2f} s' for m, s in load_s.items()))

    # 3. projection
    pl, pr = df[df.version == 'plain'].set_index('model'), df[df.version == 'prepared'].set_index('model')
    bf = df[df.version == 'bfloat16'].set_index('model')
    load_all = a.folds * sum(load_s.values())
    print(f'\nprojected full ensemble ({a.folds} folds x {len(models)} models: {", ".join(models)}), features + models + loading:')
    for n in a.rows:
        today = n * (feat_s + a.folds * sum(1 / pl.loc[m, cols[0]] for m in models)) + load_all
        now = n * (feat_s + a.folds * sum(1 / pr.loc[m, 'best'] for m in models)) + load_all
        line = (f'  {n} rows: today (plain, one window at a time) {today / 60:6.1f} min   now (prepared, best batch) '
                f'{now / 60:6.1f} min   ({today / now:.2f}x)')
        if len(bf):
            low = n * (feat_s + a.folds * sum(1 / bf.loc[m, 'best'] for m in models)) + load_all
            line += f'   bfloat16 {low / 60:6.1f} min ({today / low:.2f}x)'
        print(line)

    # 4. end to end
    if a.e2e_rows:
        lms = [load_run(r, device=dev) for r in runs.values()]
        sub = test.iloc[:a.e2e_rows]
        model_predictions(data, lms, sub.iloc[:1], batch_size=1, forward_batch=1)          # warm-up
        res = {}
        for fb in (None, 1):
            t = time.perf_counter(); model_predictions(data, lms, sub, forward_batch=fb); res[fb] = time.perf_counter() - t
        print(f'\nend to end: model_predictions, one run of each model, {a.e2e_rows} rows (features included): '
              f'forward_batch=None (probed; probe included) {a.e2e_rows / res[None]:.2f} rows/s, forward_batch=1 '
              f'{a.e2e_rows / res[1]:.2f} rows/s')

    # 5. accuracy of bfloat16 on trained runs
    if a.accuracy:
        from hbac.predict import predict
        from hbac.cli import test_kl
        from hbac.data import VOTE_COLS
        runs_dir, data_dir = a.accuracy
        subs, secs = {}, {}
        for prec in ('float32', 'bfloat16'):
            t = time.perf_counter()
            subs[prec] = predict(data_dir, [runs_dir], work/f'submission_{prec}.csv', device=str(dev), precision=prec)
            secs[prec] = time.perf_counter() - t
        p32, p16 = (subs[k][list(VOTE_COLS)].to_numpy(np.float64) for k in ('float32', 'bfloat16'))
        print(f"\naccuracy on {data_dir} ({len(p32)} test rows, ensemble {subs['float32'].attrs['ensemble']['description']}):")
        for prec, p in (('float32', p32), ('bfloat16', p16)):
            print(f'  {prec:<9} test KL {test_kl(Path(data_dir), p):.4f}   predict {secs[prec]:.1f} s (probe included)')
        print(f'  largest |probability difference| {np.abs(p16 - p32).max():.1e}, mean {np.abs(p16 - p32).mean():.1e}')
    return df

if __name__ == '__main__': main()
