"""Compare model families at equal CPU budget: the reference EEG CNN+GRU, ChainWaveNet and MelCNN (and any other model
the config lists), trained by the same recipe on fold 0 of a synthetic set of about 600 EEGs.

Usage: .venv/bin/python scripts/bench_models.py [--config configs/bench_cpu.json] [--out bench_models_out]
                                                [--epochs-scale 1.0] [--workers 2] [--models eeg,wavenet,melcnn]

Prints, per model: training seconds, validation KL per window and per EEG (one window per EEG, as the test set has)
for the selected checkpoint (`hbac cv`), and test KL on the held-out synthetic test EEGs (their expert votes are in
test_votes.csv); then the blend `hbac cv` fitted on the out-of-fold predictions, scored the same way. Everything runs
on this CPU; --epochs-scale < 1 shortens every stage for a quick look (say so when you quote its figures).
"""
from __future__ import annotations
import argparse, dataclasses, json, time, warnings
from pathlib import Path

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--config', default='configs/bench_cpu.json')
    ap.add_argument('--out', default='bench_models_out')
    ap.add_argument('--epochs-scale', type=float, default=1.0)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--models', default=None, help='comma-separated (default: every single-input model of the config)')
    a = ap.parse_args(argv)
    import numpy as np, pandas as pd, torch
    from hbac.synthetic import SynthConfig, make_synthetic_dataset
    from hbac.preprocess import preprocess
    from hbac.recipe import load_recipe, run_recipe, run_dir_of
    from hbac.ensemble import cv
    from hbac.predict import predict, model_predictions
    from hbac.runs import load_run, load_history
    from hbac.cli import test_kl
    from hbac.dataset import vote_prior
    from hbac.data import read_train_csv
    out = Path(a.out); data = out/'data'; cache = out/'cache'; runs = out/'runs'
    cfg = load_recipe(a.config)
    if a.epochs_scale != 1.0:
        scale = lambda st: {**st, 'epochs': max(1, round(st.get('epochs', 1) * a.epochs_scale))}
        cfg = dataclasses.replace(cfg, stage1=scale(cfg.stage1), stage2=scale(cfg.stage2),
                                  model_stages={m: {s: scale(v) for s, v in st.items()} for m, st in cfg.model_stages.items()})
    models = tuple(a.models.split(',')) if a.models else tuple(m for m in cfg.models if m not in ('multimodal', 'spectrogram', 'eeg_spectrogram'))
    if not (data/'train.csv').exists():
        t = time.perf_counter()
        make_synthetic_dataset(data, SynthConfig(n_patients=300, eegs_per_patient=(1, 3), windows_per_eeg=(1, 3), n_test=150, seed=0,
                                                 agreement=(0.6, 0.95)), workers=a.workers)
        print(f'synthetic data in {time.perf_counter() - t:.0f} s')
    for split in ('train', 'test'):
        preprocess(data, cache/split, ('raw', 'spectrogram'), split=split, workers=a.workers, progress=False)
    n_train = read_train_csv(data).eeg_id.nunique()
    print(f'{n_train} training EEGs; recipe {cfg.name!r} (epochs x {a.epochs_scale:g}), fold 0 of {cfg.n_folds}; models {", ".join(models)}')
    seconds = {}
    for m in models:
        t = time.perf_counter()
        run_recipe(cfg, data, cache/'train', runs, folds=[0], models=(m,))
        seconds[m] = sum(load_history(run_dir_of(runs, 0, m, st))['seconds'].sum() for st in ('stage1', 'stage2'))   # as trained (a rerun resumes)
        print(f'  {m}: {seconds[m]:.0f} s of training (this call {time.perf_counter() - t:.0f} s)')
    res = cv(runs, data, cache/'train', out/'cv', checkpoint=cfg.select_checkpoint, verbose=False)
    table = res['table'].query('checkpoint == @cfg.select_checkpoint').set_index('model')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sub = predict(data, [runs], out/'submission.csv')
        single = {m: model_predictions(data, [load_run(run_dir_of(runs, 0, m, 'stage2'), cfg.select_checkpoint)])[0] for m in models}
    prior = np.tile(vote_prior(read_train_csv(data)), (len(sub), 1))
    rows = [{'model': m, 'train_s': round(seconds[m]), 'valid_kl_window': table.loc[m, 'kl_all'], 'valid_kl_eeg': table.loc[m, 'kl_eeg_all'],
             'test_kl': test_kl(data, single[m])} for m in models]
    blend_row = table.loc['blend'] if 'blend' in table.index else None
    rows.append({'model': 'blend (' + ', '.join(f'{k} {v:.2f}' for k, v in res['blend']['weights'].items()) + ')', 'train_s': round(sum(seconds.values())),
                 'valid_kl_window': blend_row['kl_all'] if blend_row is not None else float('nan'),
                 'valid_kl_eeg': blend_row['kl_eeg_all'] if blend_row is not None else float('nan'), 'test_kl': test_kl(data, sub.iloc[:, 1:].to_numpy())})
    rows.append({'model': 'vote prior', 'train_s': 0, 'valid_kl_window': float('nan'), 'valid_kl_eeg': float('nan'), 'test_kl': test_kl(data, prior)})
    df = pd.DataFrame(rows)
    df['test_x_prior'] = df.test_kl / rows[-1]['test_kl']
    print(f'\nfold 0 validation and test KL ({len(sub)} test EEGs), CPU, torch threads {torch.get_num_threads()}:')
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    (out/'bench_models.json').write_text(json.dumps(rows, indent=1, default=float))

if __name__ == '__main__':
    main()
