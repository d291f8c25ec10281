"""Compare model families at equal CPU budget: the reference EEG CNN+GRU, ChainWaveNet and MelCNN (and any other model
the config lists), trained by the same recipe on fold 0 of a synthetic set of about 600 EEGs.

Usage: .venv/bin/python scripts/bench_models.py [--config configs/bench_cpu.json] [--out bench_models_out]
                                                [--epochs-scale 1.0] [--workers 2] [--models eeg,wavenet,melcnn]

Prints, per model: training seconds, validation KL per window and per EEG (one window per EEG, as the test set has)
for the selected checkpoint (`hbac cv`), and test KL on the held-out synthetic test EEGs (their expert votes are in
test_votes.csv); then the blend `hbac cv` fitted on the out-of-fold predictions, scored the same way. Everything runs
on this CPU; --epochs-scale < 1 shortens every stage for a quick look (say so when you quote its figures).

--variant MODEL:KEY=VALUE[,KEY=VALUE...] (repeatable) also trains a model of the config with some arguments changed,
by the same recipe and seed, in a runs folder of its own (so it is not part of the blend): by default the reference
EEG model with a whole-window readout (`readout=mean`, and `readout=attention` with a bidirectional GRU). For every
model that reads the EEG, `hbac.interpret.time_profiles` then gives where its integrated-gradients attribution lies
in time on held-out test EEGs whose experts voted a lateralised pattern (LPD or LRDA): the share of |IG| in the
centre 10 s (what experts label; uniform 20 %) and in the last 5 s (uniform 10 %).
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
    ap.add_argument('--variant', action='append', default=None,
                    help="MODEL:KEY=VALUE[,KEY=VALUE] (repeatable; default: eeg:readout=mean and eeg:readout=attention,bidirectional=true; 'none': no variant)")
    ap.add_argument('--profile-windows', type=int, default=18, help='held-out LPD/LRDA test EEGs for the attribution time profile (0: skip)')
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
    variants = [parse_variant(v, cfg) for v in (a.variant or DEFAULT_VARIANTS) if v != 'none']
    seconds = {}
    def train(m, c, runs_dir, label):
        t = time.perf_counter()
        run_recipe(c, data, cache/'train', runs_dir, folds=[0], models=(m,))
        seconds[label] = sum(load_history(run_dir_of(runs_dir, 0, m, st))['seconds'].sum() for st in ('stage1', 'stage2'))   # as trained (a rerun resumes)
        print(f'  {label}: {seconds[label]:.0f} s of training (this call {time.perf_counter() - t:.0f} s)')
    for m in models: train(m, cfg, runs, m)
    for label, m, vcfg in variants: train(m, vcfg, out/'variants'/label, label)
    res = cv(runs, data, cache/'train', out/'cv', checkpoint=cfg.select_checkpoint, verbose=False)
    table = res['table'].query('checkpoint == @cfg.select_checkpoint').set_index('model')
    vtables = {label: cv(out/'variants'/label, data, cache/'train', out/'cv_variants'/label, checkpoint=cfg.select_checkpoint,
                         verbose=False)['table'].query('checkpoint == @cfg.select_checkpoint').set_index('model').loc[m]
               for label, m, _ in variants}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sub = predict(data, [runs], out/'submission.csv')
        final = {m: run_dir_of(runs, 0, m, 'stage2') for m in models} | {label: run_dir_of(out/'variants'/label, 0, m, 'stage2')
                                                                            for label, m, _ in variants}
        single = {k: model_predictions(data, [load_run(d, cfg.select_checkpoint)])[0] for k, d in final.items()}
    prior = np.tile(vote_prior(read_train_csv(data)), (len(sub), 1))
    profiles = time_profile_rows(data, final, cfg.select_checkpoint, out/'time_profile', a.profile_windows)
    rows = [{'model': m, 'train_s': round(seconds[m]), 'valid_kl_window': table.loc[m, 'kl_all'], 'valid_kl_eeg': table.loc[m, 'kl_eeg_all'],
             'test_kl': test_kl(data, single[m]), **profiles.get(m, {})} for m in models]
    rows += [{'model': label, 'train_s': round(seconds[label]), 'valid_kl_window': t['kl_all'], 'valid_kl_eeg': t['kl_eeg_all'],
              'test_kl': test_kl(data, single[label]), **profiles.get(label, {})} for label, t in vtables.items()]
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

DEFAULT_VARIANTS = ('eeg:readout=mean', 'eeg:readout=attention,bidirectional=true')

def parse_variant(text, cfg):
    "'MODEL:KEY=VALUE,...' -> (label, model, the recipe with that model's arguments changed)."
    import dataclasses, json
    model, _, args = text.partition(':')
    if model not in cfg.models or model == 'multimodal' or not args:
        raise SystemExit(f"bench_models: --variant {text!r}: expected MODEL:KEY=VALUE[,KEY=VALUE] with MODEL one of the "
                         f"config's single-input models ({', '.join(m for m in cfg.models if m != 'multimodal')})")
    kw = {}
    for item in args.split(','):
        k, eq, v = item.partition('=')
        if not eq: raise SystemExit(f'bench_models: --variant {text!r}: {item!r} is not KEY=VALUE')
        try: kw[k] = json.loads(v)
        except json.JSONDecodeError: kw[k] = v                        # a bare word is a string (readout=mean)
    label = model + '[' + ','.join(f'{k}={v}' for k, v in kw.items()) + ']'
    from hbac.recipe import check_model_args
    check_model_args(model, {**cfg.models[model], **kw})
    vcfg = dataclasses.replace(cfg, models={**cfg.models, model: {**cfg.models[model], **kw}})
    return label, model, vcfg

def time_profile_rows(data, final, checkpoint, out, n_windows):
    "Per model that reads the EEG: the mean time profile of IG on held-out LPD/LRDA test EEGs ({} when skipped)."
    import pandas as pd
    from hbac.data import CLASSES, VOTE_COLS
    from hbac.interpret import interpret_run
    from hbac.runs import load_run
    from hbac.synthetic import read_test_votes
    if n_windows <= 0: return {}
    votes = read_test_votes(data)
    top = votes[list(VOTE_COLS)].to_numpy().argmax(1)
    lateral = votes[(top == CLASSES.index('lpd')) | (top == CLASSES.index('lrda'))]   # the lateralised patterns
    ids = lateral.eeg_id.astype(int).tolist()[:n_windows]
    rows = {}
    for label, run_dir in final.items():
        if load_run(run_dir, checkpoint).inputs != ('eeg',): continue
        paths = interpret_run(run_dir, data, ids, Path(out)/label, split='test', checkpoint=checkpoint, plots=False)
        mean = pd.read_csv(paths['time_profile'])[['centre', 'last']].mean()
        rows[label] = {'ig_centre_10s': float(mean['centre']), 'ig_last_5s': float(mean['last'])}
    print(f'attribution time profile: IG on {len(ids)} held-out LPD/LRDA test EEGs (uniform: centre 0.20, last 0.10)')
    return rows

if __name__ == '__main__':
    main()
