"""GPU figures for hbac on a CUDA machine: training windows/s per reference-size model with and without AMP, peak GPU
memory, one full fold of the recipe extrapolated, batched inference windows/s, and the gpu-flagged notebook tests.

Usage:
  .venv/bin/python scripts/bench_gpu.py                       # on a CUDA machine (exits 2 with a message elsewhere)
  .venv/bin/python scripts/bench_gpu.py --dry-run             # the same logic on the CPU with tiny sizes, in seconds

1. Training: each model (eeg, eeg_spectrogram, spectrogram at batch 32, multimodal at 16, the recipe's batch sizes)
   trains for --warmup + --steps optimiser steps of the project's loop (hbac.train.train_epoch over
   make_train_loader over the WindowDataset cache of a synthetic dataset, --preset), fp32 and with AMP (float16
   autocast + GradScaler); windows/s over the timed steps, the share of each step spent waiting for the loader, and
   the peak GPU memory (torch.cuda.max_memory_allocated) of each run.
2. One fold of the recipe (hbac.recipe.RecipeConfig(): 20 + 10 epochs per unimodal model, 20 + 10 multimodal) at
   Kaggle scale, extrapolated from the AMP rates: stage epochs x training items per epoch / windows/s, plus one
   validation pass per epoch (the fold's labelled windows at the batched inference rate). Items per epoch: every
   training EEG once ('all': 17,089 x 9/10) and --upper-fraction of them in the 'upper' stages (an assumption:
   the share of EEGs with >= 10 votes).
3. Inference: windows/s of hbac.inference.prepare_for_inference's model at batch sizes 1 .. 512 (batch_rates).
4. Notebooks: `nbdev_test --flags gpu --path NB` for every notebook in nbs/ with a `#| gpu` cell (the learning
   checks of the reference-size models on the GPU); their exit status is reported and makes this script fail.

--dry-run runs parts 1-3 on the CPU with the smoke model sizes (hbac.recipe.SMOKE_MODELS), a tiny dataset and a
few steps, without AMP (CUDA only) and without part 4, to check the script itself.
"""
from __future__ import annotations
import argparse, os, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import BATCH, KAGGLE_EEGS, KAGGLE_EPOCH, MODELS, build, ensure_dataset, log, ours_step_rate, table

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_WINDOWS = 106_800          # rows (labelled windows) of the competition's train.csv

def gpu_notebooks(nbs: Path = ROOT/'nbs') -> list[Path]:
    "The notebooks with a `#| gpu` cell."
    return sorted(p for p in nbs.glob('*.ipynb') if '#| gpu' in p.read_text())

def fold_hours(rates: dict, infer: dict, upper_fraction: float, n_folds: int = 10) -> tuple[float, list[dict]]:
    "Hours of one recipe fold at Kaggle scale from training windows/s per model and inference windows/s per model."
    from hbac.recipe import RecipeConfig, RECIPE_MODELS, UNIMODAL
    cfg = RecipeConfig()
    train_items = {'all': KAGGLE_EPOCH, 'upper': KAGGLE_EPOCH * upper_fraction}
    valid = KAGGLE_WINDOWS / n_folds
    rows, total = [], 0.0
    for m in RECIPE_MODELS:
        for stage in (('stage1', 'stage2') if m in UNIMODAL else ('mm_stage1', 'mm_stage2')):
            sc = cfg.stage_config(stage, m)
            sec = sc.epochs * (train_items[sc.count_type] / rates[m] + valid / infer[m])
            rows.append({'model': m, 'stage': stage, 'epochs': sc.epochs, 'items': train_items[sc.count_type], 'hours': sec / 3600})
            total += sec
    return total / 3600, rows

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split('\n', 1)[1])
    ap.add_argument('--dry-run', action='store_true', help='CPU, smoke sizes, tiny data, a few steps: checks the script')
    ap.add_argument('--steps', type=int, default=None, help='timed training steps per run (default 300; dry run 2)')
    ap.add_argument('--warmup', type=int, default=None, help='untimed steps before (default 20; dry run 1)')
    ap.add_argument('--models', default=','.join(MODELS))
    ap.add_argument('--preset', default=None, help="synthetic dataset preset (default 'small'; dry run 'tiny')")
    ap.add_argument('--workers', type=int, default=None, help='DataLoader workers (default 8; dry run 0)')
    ap.add_argument('--upper-fraction', type=float, default=0.4, help="assumed share of training EEGs in the 'upper' stages")
    ap.add_argument('--batches', default=None, help='inference batch sizes (default 1,8,32,128,512; dry run 1,4)')
    ap.add_argument('--no-notebooks', action='store_true', help='skip the gpu-flagged notebook tests')
    ap.add_argument('--work', type=Path, default=None, help='synthetic data and cache (default: a temporary folder)')
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args(argv)
    import torch
    if not a.dry_run and not torch.cuda.is_available():
        print(f'bench_gpu.py needs a CUDA GPU, and torch {torch.__version__} sees none here (torch.cuda.is_available() '
              'is False). Run it on a CUDA machine, or check its logic on this CPU with --dry-run.', file=sys.stderr)
        return 2
    dry = a.dry_run
    steps, warmup = a.steps or (2 if dry else 300), a.warmup if a.warmup is not None else (1 if dry else 20)
    workers = a.workers if a.workers is not None else (0 if dry else 8)
    device = 'cpu' if dry else 'cuda'
    size = 'smoke' if dry else 'full'
    models = [m.strip() for m in a.models.split(',') if m.strip()]
    from hbac.inference import prepare_for_inference, batch_rates
    from hbac.data import read_train_csv
    from hbac.dataset import labels_table, WindowDataset
    from hbac.preprocess import CACHE_MODALITIES
    work = a.work or Path(tempfile.mkdtemp(prefix='hbac_gpu_'))
    name = torch.cuda.get_device_name(0) if not dry else 'CPU (dry run)'
    log(f'hbac GPU benchmark on {name}: torch {torch.__version__}, {size} sizes, {warmup} + {steps} steps, '
        f'{workers} loader workers, data in {work}')
    data, cache = ensure_dataset(work/(a.preset or ('tiny' if dry else 'small')), a.preset or ('tiny' if dry else 'small'),
                                 CACHE_MODALITIES, workers=2)
    lab = labels_table(read_train_csv(data))

    rows, rates, infer = [], {}, {}
    for m in models:
        ds = WindowDataset(lab, cache, m, train=True, seed=a.seed)
        row = {'model': m, 'batch': BATCH[m]}
        for amp in ((False,) if dry else (False, True)):
            if device == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
            r = ours_step_rate(build(m, size, {}, a.seed), ds, BATCH[m], workers, steps, warmup, a.seed, device, amp)
            k = 'amp' if amp else 'fp32'
            row[f'{k}_ws'], row[f'{k}_load'] = r['windows_s'], r['load_pct']
            row[f'{k}_mem'] = torch.cuda.max_memory_allocated() / 2**30 if device == 'cuda' else float('nan')
            log(f"  {m:<16} {k}: {r['windows_s']:.1f} windows/s, {r['load_pct']:.1f}% loading, peak {row[f'{k}_mem']:.2f} GiB")
        rates[m] = row.get('amp_ws', row['fp32_ws'])
        net = prepare_for_inference(build(m, size, {}, a.seed).eval(), device)
        x = WindowDataset(lab, cache, m)[0][0]
        x = {k: v[None].to(device) for k, v in x.items()} if isinstance(x, dict) else x[None].to(device)
        batches = tuple(int(b) for b in (a.batches or ('1,4' if dry else '1,8,32,128,512')).split(','))
        br = batch_rates(net, x, device, batches, probe_windows=4 if dry else 512, stop_below=0)
        infer[m] = max(br.values())
        row['infer'] = ', '.join(f'{b}: {v:.0f}' for b, v in br.items())
        rows.append(row)
        del ds, net
    log(f'\nTraining ({warmup} warm-up + {steps} timed steps of hbac.train.train_epoch, {size} sizes) and inference (windows/s per batch):')
    log(table(rows, [('model', 'model', ''), ('batch', 'batch', ''), ('fp32_ws', 'fp32 windows/s', '.1f'),
                     ('amp_ws', 'AMP windows/s', '.1f'), ('fp32_load', '% loading fp32', '.1f'), ('amp_load', '% loading AMP', '.1f'),
                     ('fp32_mem', 'peak GiB fp32', '.2f'), ('amp_mem', 'peak GiB AMP', '.2f'), ('infer', 'inference windows/s by batch', '')]))
    if set(models) >= set(MODELS):
        hours, fr = fold_hours(rates, infer, a.upper_fraction)
        log(f'\nOne fold of the recipe at Kaggle scale ({KAGGLE_EEGS:,} EEGs, {KAGGLE_WINDOWS:,} windows, 10 folds; '
            f"'upper' = {a.upper_fraction:.0%} of the EEGs, assumed), extrapolated from the {'fp32' if dry else 'AMP'} rates: {hours:.2f} h")
        log(table(fr, [('model', 'model', ''), ('stage', 'stage', ''), ('epochs', 'epochs', ''), ('items', 'items/epoch', ',.0f'), ('hours', 'hours', '.2f')]))
    rc = 0
    if not (dry or a.no_notebooks):
        for nb in gpu_notebooks():
            log(f'\nnbdev_test --flags gpu --path {nb.relative_to(ROOT)} ...')
            t0 = time.perf_counter()
            p = subprocess.run([str(Path(sys.executable).parent/'nbdev_test'), '--flags', 'gpu', '--path', str(nb)], cwd=ROOT)
            log(f'  exit status {p.returncode} ({time.perf_counter() - t0:.0f} s)')
            rc = rc or p.returncode
    return rc

if __name__ == '__main__': sys.exit(main())
