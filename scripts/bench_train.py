"""Benchmark training on this machine's CPU: model throughput, data-loading throughput, and learning on synthetic data.

Usage:
  .venv/bin/python scripts/bench_train.py                                   # all three parts, 600 s learning budget
  .venv/bin/python scripts/bench_train.py --parts throughput --steps 5
  .venv/bin/python scripts/bench_train.py --parts loading,learning --work /tmp/hbac_bench --budget-s 600
  .venv/bin/python scripts/bench_train.py --parts compare                 # hbac's training step vs the reference loop

Parts (--parts, comma-separated):
  throughput  windows/s of one training step (forward + backward + Adam step, KL loss, train mode) on random inputs of
              the model's shapes, per model: the reference (full) sizes at batch 32 (16 for multimodal, as mm_stage2),
              multimodal also with frozen backbones (as mm_stage1), the smoke sizes (hbac.recipe.SMOKE_MODELS) and the
              EEG size used by the learning part. --warmup untimed steps, then --steps timed steps; windows/s is the
              batch size over the median step time. Also an estimate of the hours per epoch at Kaggle scale.
  loading     items/s of WindowDataset in training mode (one random window per EEG, augmentation) through the
              training loader `fit` uses (hbac.train.make_train_loader), num_workers 0 and 2, over the preprocessed
              cache of a synthetic dataset; compared with the reference model's training windows/s.
  compare     per model (--compare-models: the four reference models at the reference size, wavenet and melcnn at their
              registry defaults), in one run, each loop in its own fresh Python process (--threads torch threads,
              --compare-workers loader workers, the same batch): the reference-style step (the same architecture, the
              reference's loop: fp32, a plain shuffling DataLoader over the cache of precomputed whole-recording features,
              i.e. WindowDataset(numerics='recording'), forward, nn.KLDivLoss(batchmean), backward, Adam step, default
              malloc) against hbac's step (WindowDataset from the raw cache, the one input path, through
              hbac.train.make_train_loader + make_train_state + train_epoch, i.e. what fit runs). windows/s over
              --compare-steps timed steps after --compare-warmup, more for MelCNN (MIN_COMPARE_STEPS); waits for data included; their ratio (at least 1.0x
              expected), the share of that time each loop spent waiting for its loader (under 5% expected), and
              the main process's system CPU seconds per step. The synthetic epoch is short (260 items, 8 or 9 steps), and
              each epoch starts new loader workers whose first batch the loop waits for (the timed steps begin with
              one, as every epoch of fit does); so the time is also split into steps within an epoch and what an epoch
              start adds (its wait, and its first step's extra time over the others), and from those come the
              windows/s, the ratio and the share of waiting over an epoch of the Kaggle set's size (15,380 training
              EEGs of a fold, KAGGLE_EPOCH), which is what a real run sees. --compare-loops ref,ours,ref_alloc adds the reference loop
              with hbac.train.keep_freed_memory, to separate the allocator from the rest of the loop.
  learning    an EegModel of a CPU-affordable size (--learn-widths / --learn-hidden) trained with hbac.train.fit on fold
              --fold of --n-folds (patient GroupKFold) of the synthetic dataset, Adam lr --learn-lr (3e-4), batch 32, 'all' votes,
              for as many epochs as fit in --budget-s seconds of training (the first epoch is timed, the rest are
              added by resuming the run; at least one epoch is run, so a tiny budget overshoots); validation KL
              all/high/low per epoch beside two references on the same validation windows: the vote prior of the
              training rows (the floor to beat) and the synthetic 'class oracle' (each window predicted as the mean
              training vote distribution of its true class, read from synthetic_truth.csv: roughly the best a model
              can reach on this data). The budget counts training + validation only, not data generation.

The synthetic dataset (--preset, default 'medium': ~2,300 windows / 260 EEGs) is generated into WORK/PRESET/data and
preprocessed into WORK/PRESET/cache once and reused. Results of each part are also merged into WORK/bench_train.json.
Everything is seeded (--seed); timings of course depend on the machine's load (the load average is printed).
"""
from __future__ import annotations
import argparse, json, math, os, platform, shutil, statistics, sys, time
from pathlib import Path

import numpy as np

PARTS = ('throughput', 'loading', 'compare', 'learning')
MODELS = ('eeg', 'eeg_spectrogram', 'spectrogram', 'multimodal')
BATCH = {'eeg': 32, 'eeg_spectrogram': 32, 'spectrogram': 32, 'multimodal': 16, 'multimodal_frozen': 16}
# compare: at least this many (warm-up, timed) steps per model. MelCNN's step lasts about 0.3 s: the default 1 + 3 steps
# time about a second of it (0.81-0.93x over three runs, the reference loop moving from 98 to 123 windows/s), so it gets
# 3 + 60, about 20 s, as long as the other models' 3 steps.
MIN_COMPARE_STEPS = {'melcnn': (3, 60)}
KAGGLE_EEGS = 17_089          # unique eeg_id of the competition's train.csv
KAGGLE_EPOCH = round(KAGGLE_EEGS * 0.9)   # items of one stage-1 epoch ('all') with 10 folds: every training EEG once


# ------------------------------------------------------------------------------------------------ small helpers
def log(*a):
    print(*a, flush=True)

def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    "Fixed-width text table; cols = (key, header, format spec)."
    def cell(r, k, f):
        v = r.get(k)
        if v is None or (isinstance(v, float) and not math.isfinite(v)): return '-'
        return format(v, f) if f else str(v)
    body = [[cell(r, k, f) for k, _, f in cols] for r in rows]
    heads = [h for _, h, _ in cols]
    w = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(heads)]
    line = lambda xs: '  '.join(x.ljust(w[0]) if i == 0 else x.rjust(w[i]) for i, x in enumerate(xs))
    return '\n'.join([line(heads), line(['-' * n for n in w])] + [line(b) for b in body])

def md_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    "The same table in Markdown."
    def cell(r, k, f):
        v = r.get(k)
        if v is None or (isinstance(v, float) and not math.isfinite(v)): return '-'
        return format(v, f) if f else str(v)
    out = ['| ' + ' | '.join(h for _, h, _ in cols) + ' |', '|' + '|'.join('---' if i == 0 else '---:' for i in range(len(cols))) + '|']
    return '\n'.join(out + ['| ' + ' | '.join(cell(r, k, f) for k, _, f in cols) + ' |' for r in rows])

def cpu_name() -> str:
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def loadavg() -> str:
    try: return '{:.1f} {:.1f} {:.1f}'.format(*os.getloadavg())
    except OSError: return '?'

def csv_ints(s: str) -> list[int]:
    try: return [int(x) for x in s.split(',') if x.strip()]
    except ValueError: raise argparse.ArgumentTypeError(f'expected comma-separated integers, found {s!r}') from None

def save_results(path: Path, results: dict) -> None:
    "Merge this run's parts into the JSON file (atomic replace)."
    old = {}
    if path.exists():
        try: old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError): old = {}
    old.update(results)
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(json.dumps(old, indent=1) + '\n'); os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------ synthetic data
def ensure_dataset(root: Path, preset: str, modalities: tuple[str, ...], workers: int) -> tuple[Path, Path]:
    "Generate (once) the synthetic dataset into root/data and fill root/cache for `modalities`; returns (data, cache)."
    from hbac.synthetic import make_synthetic_dataset, preset_config
    from hbac.preprocess import preprocess
    data, cache = root/'data', root/'cache'
    if not (data/'train.csv').exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = root/'data.tmp'
        shutil.rmtree(tmp, ignore_errors=True); shutil.rmtree(data, ignore_errors=True)
        log(f'generating the synthetic {preset!r} dataset into {data} ...')
        t0 = time.perf_counter()
        s = make_synthetic_dataset(tmp, preset_config(preset))
        os.replace(tmp, data)
        log(f"  {s['n_rows']} windows, {s['n_eegs']} EEGs, {s['n_patients']} patients ({time.perf_counter() - t0:.0f} s)")
    t0 = time.perf_counter()
    rep = preprocess(data, cache, modalities, 'train', workers=workers, progress=False)
    if not rep.ok: raise SystemExit(f'preprocessing {data} failed:\n{rep}')
    if sum(rep.done.values()): log(f'preprocessed {dict(rep.done)} into {cache} ({time.perf_counter() - t0:.0f} s)')
    return data, cache


# ------------------------------------------------------------------------------------------------ part 1: throughput
def random_inputs(name: str, b: int, g):
    import torch
    from hbac.dataset import EEG_WINDOW, IMAGE_SIZE
    shapes = {'eeg': (19, EEG_WINDOW), 'eeg_spectrogram': (4, *IMAGE_SIZE), 'spectrogram': (4, *IMAGE_SIZE)}
    mk = lambda m: torch.randn((b,) + shapes[m], generator=g)
    return {m: mk(m) for m in shapes} if name.startswith('multimodal') else mk(name)

def build(name: str, size: str, learn_kw: dict, seed: int):
    "A model by (name, size): 'full' = the reference defaults, 'smoke' = SMOKE_MODELS, 'learn' = the learning EEG size."
    import torch
    from hbac.models.registry import build_model
    from hbac.models.layers import freeze_modules
    from hbac.recipe import SMOKE_MODELS
    torch.manual_seed(seed)
    base = name.replace('_frozen', '')
    if size == 'learn': kw = dict(learn_kw)
    elif size == 'smoke':
        kw = ({m: dict(SMOKE_MODELS[m]) for m in ('eeg', 'eeg_spectrogram', 'spectrogram')} | dict(SMOKE_MODELS['multimodal'])
              if base == 'multimodal' else dict(SMOKE_MODELS[base]))
    else: kw = {}
    model = build_model(base, **kw)
    if name == 'multimodal_frozen': freeze_modules(model, model.BACKBONE_NAMES)
    return model

def time_train_steps(model, inputs, batch: int, steps: int, warmup: int, seed: int) -> dict:
    "Median seconds of one forward + backward + Adam step (KL loss, train mode; frozen backbones kept in eval mode)."
    import torch
    from hbac.train import kl_loss
    model.train()
    if getattr(model, 'backbones_frozen', False):
        for b in model.backbones: b.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=3e-4)
    g = torch.Generator().manual_seed(seed + 1)
    target = torch.softmax(torch.randn(batch, 6, generator=g) * 2, 1)
    def step():
        loss = kl_loss(model(inputs), target)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return float(loss.detach())
    for _ in range(warmup): step()
    times, cpu = [], []
    for _ in range(steps):
        c0, t0 = time.process_time(), time.perf_counter(); step()
        times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    return {'s_step': med, 'min_s': min(times), 'max_s': max(times), 'windows_s': batch / med,
            'cpu_s_step': statistics.median(cpu),
            'params': sum(p.numel() for p in model.parameters()),
            'trainable': sum(p.numel() for p in params)}

def part_throughput(args, learn_kw: dict) -> dict:
    import torch
    plan = []
    for size in args.sizes:
        names = ['eeg'] if size == 'learn' else [m for m in args.models] + (['multimodal_frozen'] if 'multimodal' in args.models else [])
        if size == 'learn' and 'eeg' not in args.models: names = []
        plan += [(n, size) for n in names]
    rows = []
    for name, size in plan:
        b = args.batch or BATCH[name]
        g = torch.Generator().manual_seed(args.seed)
        model = build(name, size, learn_kw, args.seed)
        inputs = random_inputs(name, b, g)
        log(f'  {name:<18} {size:<5} batch {b:>2}: {args.warmup} warm-up + {args.steps} timed steps ...')
        r = time_train_steps(model, inputs, b, args.steps, args.warmup, args.seed)
        r.update(model=name, size=size, batch=b, kaggle_h=KAGGLE_EPOCH / r['windows_s'] / 3600)
        log(f'    {r["windows_s"]:.2f} windows/s ({r["s_step"]:.2f} s/step, min {r["min_s"]:.2f} max {r["max_s"]:.2f})')
        rows.append(r)
        del model, inputs
    cols = [('model', 'model', ''), ('size', 'size', ''), ('params', 'params', ','), ('trainable', 'trainable', ','),
            ('batch', 'batch', ''), ('s_step', 's/step', '.2f'), ('cpu_s_step', 'CPU s/step', '.2f'),
            ('windows_s', 'windows/s', '.2f'), ('kaggle_h', f'h/epoch ({KAGGLE_EPOCH:,} EEGs)', '.2f')]
    log('\nTraining throughput (forward + backward + Adam, median step; random inputs; '
        f'{torch.get_num_threads()} threads)')
    log(table(rows, cols))
    return {'rows': rows, 'steps': args.steps, 'warmup': args.warmup}


# ------------------------------------------------------------------------------------------------ part 2: loading
def time_loading(ds, batch: int, workers: int, epochs: int, seed: int) -> dict:
    "Items/s through make_train_loader for `epochs` epochs: overall (with worker start-up) and after the first batch."
    from hbac.train import TrainConfig, make_train_loader
    loader = make_train_loader(ds, TrainConfig(batch_size=batch, num_workers=workers, seed=seed, progress=False, device='cpu'))
    n_all = n_rest = 0; t_all = t_rest = first = 0.0
    for e in range(1, epochs + 1):
        ds.set_epoch(e)
        t0 = time.perf_counter(); t1 = None
        for i, (x, y, c) in enumerate(loader):
            n_all += len(y)
            if i == 0: t1 = time.perf_counter(); first += t1 - t0
            else: n_rest += len(y)
        t2 = time.perf_counter(); t_all += t2 - t0; t_rest += t2 - (t1 or t2)
    return {'items_s': n_all / t_all, 'steady_items_s': n_rest / t_rest if t_rest > 0 else float('nan'),
            'first_batch_s': first / epochs, 'items': n_all}

def part_loading(args, cache: Path, data: Path, throughput: dict | None) -> dict:
    from hbac.data import read_train_csv
    from hbac.dataset import labels_table, WindowDataset
    table_ = labels_table(read_train_csv(data))
    train_ws = {}
    for r in (throughput or {}).get('rows', []): train_ws[(r['model'], r['size'])] = r['windows_s']
    rows = []
    for m in args.models:
        ds = WindowDataset(table_, cache, m, train=True, seed=args.seed)
        b = args.batch or BATCH[m]
        row = {'modality': m, 'items': len(ds), 'batch': b}
        for w in args.load_workers:
            log(f'  {m:<16} workers {w}: {args.load_epochs} epoch(s) of {len(ds)} items ...')
            r = time_loading(ds, b, w, args.load_epochs, args.seed)
            row[f'w{w}'] = r['items_s']; row[f'w{w}_steady'] = r['steady_items_s']; row[f'w{w}_first'] = r['first_batch_s']
        full, smoke = train_ws.get((m, 'full')), train_ws.get((m, 'smoke'))
        best = max((row[f'w{w}'] for w in args.load_workers), default=float('nan'))
        row['train_full'] = full
        row['ratio_full'] = best / full if full else None
        row['ratio_smoke'] = best / smoke if smoke else None
        if full and 0 in args.load_workers:     # workers 0: loading and training share the same process, in series
            row['share_w0'] = 100 * full / (row['w0'] + full)
        rows.append(row)
    cols = [('modality', 'modality', ''), ('items', 'items/epoch', '')]
    for w in args.load_workers:
        cols += [(f'w{w}', f'items/s w{w}', '.1f'), (f'w{w}_steady', f'steady w{w}', '.1f'), (f'w{w}_first', f'1st batch s w{w}', '.2f')]
    cols += [('train_full', 'train windows/s (full)', '.2f'), ('ratio_full', 'best load/train (full)', '.1f'),
             ('ratio_smoke', 'best load/train (smoke)', '.2f'), ('share_w0', '% step loading w0', '.1f')]
    log(f'\nData loading (WindowDataset training mode via make_train_loader; {len(table_)} windows / '
        f'{table_.eeg_id.nunique()} EEGs; items/s incl. worker start-up, steady = after the first batch)')
    log(table(rows, cols))
    if not train_ws: log('(no training throughput in this run: run --parts throughput,loading for the ratios)')
    return {'rows': rows, 'epochs': args.load_epochs, 'workers': args.load_workers}


# ------------------------------------------------------------------------------------------------ part: compare
COMPARE_MODELS = MODELS + ('wavenet', 'melcnn')          # the reference sizes, and the two new families at their defaults
LOOPS = {'ref': 'reference loop (plain DataLoader over the whole-recording feature cache, KLDivLoss, Adam, default malloc)',
         'ours': 'hbac loop (WindowDataset from the raw cache, make_train_loader, make_train_state, train_epoch)',
         'ref_alloc': 'reference loop with hbac.train.keep_freed_memory (isolates the allocator from the loop)'}

def compare_steps(args, name: str) -> tuple[int, int]:
    "(warm-up, timed) steps of model `name` in part compare: the command line's, or MIN_COMPARE_STEPS where more."
    w, n = MIN_COMPARE_STEPS.get(name, (0, 0))
    return max(args.compare_warmup, w), max(args.compare_steps, n)

def other_steps(rows: list[dict], warmup: int, steps: int) -> str:
    "', model: warm-up + timed' for each compare row whose steps differ from the command line's (empty when none)."
    return ''.join(f", {r['model']}: {r['warmup']} + {r['steps']}" for r in rows
                   if (r.get('warmup', warmup), r.get('steps', steps)) != (warmup, steps))

def compare_modality(name: str) -> str:
    "The WindowDataset modality a registered model reads ('multimodal' for a model of several inputs)."
    from hbac.models.registry import MODEL_INPUTS
    ins = MODEL_INPUTS[name]
    return ins[0] if len(ins) == 1 else 'multimodal'

def _timed(loader, log_: list, n: int, before_pass=None):
    """n batches of a new pass over `loader` (`_cycle`: it begins with an epoch start, as each of fit's epochs does),
    appending (start time, seconds waiting, windows, first of its epoch?) of each to `log_`; the pass's workers stop after."""
    batches = _cycle(loader, before_pass)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            first, b = next(batches)
            log_.append((t0, time.perf_counter() - t0, len(b[1]), first))
            yield b
    finally: batches.close()

def _usage():
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt

def _rate(log_: list, t_end: float, u0, u1) -> dict:
    """windows/s over the timed steps (waits included) and over an epoch of the Kaggle set's size; the share of the
    time spent waiting for data (measured; within epochs; over a Kaggle-size epoch); what an epoch start costs (the wait
    for its first batch, and its first step's extra time over the others, wait included); step spread; process usage."""
    sec = t_end - log_[0][0]
    steps = [b[0] - a[0] for a, b in zip(log_, log_[1:])] + [t_end - log_[-1][0]]   # wait for batch i + step i
    n, batch = len(log_), max(w for _, _, w, _ in log_)
    first = [(d, wait) for d, (_, wait, _, f) in zip(steps, log_) if f]
    other = [(d, wait) for d, (_, wait, _, f) in zip(steps, log_) if not f]
    mean = lambda xs: statistics.mean(xs) if xs else 0.0
    other_s = mean([d for d, _ in other]) if other else mean([d for d, _ in first])   # a step within an epoch
    start_wait_s = mean([w for _, w in first])                  # forking the workers + their first batch
    start_extra_s = mean([d for d, _ in first]) - other_s if first and other else 0.0
    k = KAGGLE_EPOCH / batch                                   # steps of one Kaggle-size epoch
    epoch_s = k * other_s + start_extra_s                      # its time: one epoch start, the other steps within it
    return {'windows_s': sum(w for _, _, w, _ in log_) / sec, 'load_pct': 100 * sum(w for _, w, _, _ in log_) / sec,
            'load_pct_inner': 100 * sum(w for _, w in other) / max(1e-9, sum(d for d, _ in other)),
            'epoch_starts': len(first), 'epoch_start_s': start_wait_s, 'epoch_start_extra_s': start_extra_s,
            'kaggle_windows_s': KAGGLE_EPOCH / epoch_s,
            'load_pct_kaggle': 100 * (k * mean([w for _, w in other]) + start_wait_s) / epoch_s,
            'seconds': sec, 'steps': n, 'min_step_s': min(steps), 'max_step_s': max(steps),
            'user_s_step': (u1[0] - u0[0]) / n, 'sys_s_step': (u1[1] - u0[1]) / n, 'faults_step': (u1[2] - u0[2]) / n}

def _cycle(loader, before_pass=None):
    "A loader's batches over and over (epochs reshuffled by the loader itself), each as (first of its epoch?, batch)."
    while True:
        if before_pass is not None: before_pass(loader)      # what fit's train_epoch does before each pass
        for i, b in enumerate(loader): yield i == 0, b

def ours_step_rate(model, ds, batch: int, workers: int, steps: int, warmup: int, seed: int,
                   device: str = 'cpu', amp: bool = False) -> dict:
    "Windows/s and loading share of hbac.train.train_epoch (fit's loop) over make_train_loader (AMP only on CUDA)."
    import torch
    from hbac.train import TrainConfig, make_train_loader, make_train_state, train_epoch
    from hbac.dataset import start_pass
    cfg = TrainConfig(batch_size=batch, num_workers=workers, seed=seed, progress=False, device=device, amp=amp)
    dev = torch.device(device)
    model = model.to(dev)
    st = make_train_state(model, cfg, dev, steps_per_epoch=max(1, len(ds) // batch))
    loader = make_train_loader(ds, cfg, dev)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == 'cuda' else (lambda: None)
    log_ = []
    if warmup: train_epoch(model, _timed(loader, [], warmup, start_pass), st, cfg, 1)
    sync(); u0 = _usage()
    train_epoch(model, _timed(loader, log_, steps, start_pass), st, cfg, 1)
    sync(); t_end = time.perf_counter()
    return _rate(log_, t_end, u0, _usage())

def reference_step_rate(model, ds, batch: int, workers: int, steps: int, warmup: int, seed: int) -> dict:
    "Windows/s and loading share of the reference's loop: plain shuffling DataLoader, KLDivLoss(batchmean), Adam, fp32."
    import torch
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    crit = torch.nn.KLDivLoss(reduction='batchmean')
    model.train()
    def run(n, log_):
        for x, y, _ in _timed(loader, log_, n):
            opt.zero_grad(); loss = crit(model(x), y.float()); loss.backward(); opt.step()
    run(warmup, [])
    log_ = []; u0 = _usage(); run(steps, log_)
    return _rate(log_, time.perf_counter(), u0, _usage())

def compare_one(args, who: str, name: str) -> dict:
    "One loop of one model in this (fresh) process: the reference's loop reads the whole-recording features, ours the raw cache."
    import torch
    from hbac.data import read_train_csv
    from hbac.dataset import labels_table, WindowDataset
    if who == 'ref_alloc':
        from hbac.data import keep_freed_memory
        keep_freed_memory()
    data, cache = args.work/args.preset/'data', args.work/args.preset/'cache'
    ds = WindowDataset(labels_table(read_train_csv(data)), cache, compare_modality(name), train=True, seed=args.seed,
                       numerics='window' if who == 'ours' else 'recording')
    b = args.batch or BATCH.get(name, 32)
    model = build(name, 'full', {}, args.seed)
    warmup, steps = compare_steps(args, name)
    if who == 'ours': r = ours_step_rate(model, ds, b, args.compare_workers, steps, warmup, args.seed)
    else: r = reference_step_rate(model, ds, b, args.compare_workers, steps, warmup, args.seed)
    return dict(r, who=who, model=name, batch=b, threads=torch.get_num_threads(), params=sum(p.numel() for p in model.parameters()))

def _run_child(args, who: str, name: str) -> dict:
    "compare_one in a fresh Python process (no allocator state or warm caches carried from one loop to the next)."
    import subprocess
    cmd = [sys.executable, str(Path(__file__).resolve()), '--compare-one', f'{who}:{name}', '--work', str(args.work),
           '--preset', args.preset, '--threads', str(args.threads), '--seed', str(args.seed),
           '--compare-workers', str(args.compare_workers), '--compare-steps', str(args.compare_steps),
           '--compare-warmup', str(args.compare_warmup)] + (['--batch', str(args.batch)] if args.batch else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    res = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
    if p.returncode or not res:
        raise SystemExit(f'compare {who} {name}: the child process failed (exit {p.returncode}):\n{p.stderr[-3000:]}')
    return json.loads(res[-1][len('RESULT '):])

def part_compare(args, cache: Path, data: Path) -> dict:
    rows = []
    for m in args.compare_models:
        b = args.batch or BATCH.get(m, 32)
        w, n = compare_steps(args, m)
        row = {'model': m, 'batch': b, 'workers': args.compare_workers, 'warmup': w, 'steps': n}
        for _ in range(args.compare_repeats):         # interleaved: a busy machine slows both loops alike
            for who in args.compare_loops:
                log(f'  {m:<16} {who:<9} batch {b}: {w} warm-up + {n} timed steps ...')
                r = _run_child(args, who, m)
                log(f"    {r['windows_s']:.2f} windows/s, {r['load_pct']:.1f}% waiting for data ({r['load_pct_inner']:.1f}% "
                    f"within epochs; {r['epoch_starts']} epoch starts, each a {r['epoch_start_s']:.2f} s wait and "
                    f"{r['epoch_start_extra_s']:.2f} s more than another step; over a {KAGGLE_EPOCH:,}-item epoch "
                    f"{r['kaggle_windows_s']:.2f} windows/s, {r['load_pct_kaggle']:.1f}% waiting); per step {r['min_step_s']:.2f}-"
                    f"{r['max_step_s']:.2f} s, main process CPU user {r['user_s_step']:.2f} s + system {r['sys_s_step']:.2f} s, "
                    f"{r['faults_step']:,.0f} page faults")
                if r['windows_s'] > row.get(f'{who}_ws', 0):
                    row.update({f'{who}_{k}': r[k] for k in ('windows_s', 'load_pct', 'load_pct_inner', 'epoch_start_s',
                                                             'epoch_start_extra_s', 'kaggle_windows_s', 'load_pct_kaggle',
                                                             'user_s_step', 'sys_s_step', 'faults_step')})
                    row[f'{who}_ws'] = r['windows_s']; row['params'] = r['params']
        if 'ref_ws' in row and 'ours_ws' in row:
            row['ratio'] = row['ours_ws'] / row['ref_ws']
            row['ratio_kaggle'] = row['ours_kaggle_windows_s'] / row['ref_kaggle_windows_s']
        if 'ref_alloc_ws' in row and 'ours_ws' in row: row['ratio_alloc'] = row['ours_ws'] / row['ref_alloc_ws']
        rows.append(row)
        log(f"    {m}: ours {row.get('ours_ws', float('nan')):.2f} windows/s, reference {row.get('ref_ws', float('nan')):.2f}: "
            f"{row.get('ratio', float('nan')):.2f}x")
    log(f'\nTraining throughput at the reference sizes (wavenet, melcnn: registry defaults), fp32 on the CPU, '
        f'{args.threads} torch threads, {args.compare_workers} loader workers, each loop in its own process '
        f'(best of {args.compare_repeats} interleaved); {args.compare_warmup} warm-up + {args.compare_steps} timed steps'
        + other_steps(rows, args.compare_warmup, args.compare_steps))
    for who in args.compare_loops: log(f'  {who}: {LOOPS[who]}')
    log(table(rows, compare_cols(args.compare_loops)))
    return {'rows': rows, 'steps': args.compare_steps, 'warmup': args.compare_warmup, 'workers': args.compare_workers,
            'loops': list(args.compare_loops)}

def compare_cols(loops) -> list[tuple[str, str, str]]:
    cols = [('model', 'model', ''), ('batch', 'batch', '')]
    if 'ref' in loops: cols += [('ref_ws', 'reference windows/s', '.2f')]
    if 'ref_alloc' in loops: cols += [('ref_alloc_ws', 'ref. + allocator windows/s', '.2f')]
    if 'ours' in loops: cols += [('ours_ws', 'hbac windows/s', '.2f')]
    if 'ref' in loops and 'ours' in loops: cols += [('ratio', 'hbac/reference', '.2f')]
    if 'ref' in loops: cols += [('ref_kaggle_windows_s', 'reference windows/s, Kaggle-size epoch', '.2f')]
    if 'ours' in loops: cols += [('ours_kaggle_windows_s', 'hbac windows/s, Kaggle-size epoch', '.2f')]
    if 'ref' in loops and 'ours' in loops: cols += [('ratio_kaggle', 'hbac/reference, Kaggle-size epoch', '.2f')]
    if 'ref_alloc' in loops and 'ours' in loops: cols += [('ratio_alloc', 'hbac/(ref. + allocator)', '.2f')]
    waits = lambda who, name: [(f'{who}_load_pct', f'% {name} waits for data', '.1f'),
                               (f'{who}_epoch_start_extra_s', f'{name} s more per epoch start', '.2f'),
                               (f'{who}_load_pct_kaggle', f'% {name} waits, Kaggle-size epoch', '.1f')]
    if 'ours' in loops: cols += waits('ours', 'hbac')
    if 'ref' in loops: cols += waits('ref', 'ref.') + [('ref_sys_s_step', 'ref. system s/step', '.2f')]
    if 'ours' in loops: cols += [('ours_sys_s_step', 'hbac system s/step', '.2f')]
    return cols

# ------------------------------------------------------------------------------------------------ part 3: learning
def class_oracle(data: Path, train, valid) -> dict:
    "KL of predicting for each validation window the mean training vote distribution of its true synthetic class."
    from hbac.synthetic import read_truth
    from hbac.dataset import PROB_COLS
    from hbac.metrics import kl_rows
    nan = {k: float('nan') for k in ('all', 'high', 'low')}
    try: lab = read_truth(data).set_index('eeg_id')['label']
    except Exception: return nan
    means = train.assign(label=train['eeg_id'].map(lab)).groupby('label')[list(PROB_COLS)].mean()
    vl = valid['eeg_id'].map(lab)
    if vl.isna().any() or not set(vl) <= set(means.index): return nan
    kl = kl_rows(valid[list(PROB_COLS)].to_numpy(), means.loc[vl].to_numpy())
    hi = valid['count'].to_numpy() >= 10
    return {'all': float(kl.mean()), 'high': float(kl[hi].mean()) if hi.any() else float('nan'),
            'low': float(kl[~hi].mean()) if (~hi).any() else float('nan')}

def part_learning(args, data: Path, cache: Path, learn_kw: dict, out: Path) -> dict:
    import dataclasses, torch
    from hbac.recipe import fold_data
    from hbac.dataset import prior_kl
    from hbac.train import TrainConfig, fit
    from hbac.models.registry import build_model
    fd = fold_data(data, args.n_folds, args.fold)
    log(f'  {fd!r}')
    torch.manual_seed(args.seed)
    model = build_model('eeg', **learn_kw)
    n_par = sum(p.numel() for p in model.parameters())
    cfg = TrainConfig(epochs=1, lr=args.learn_lr, batch_size=32, count_type='all', num_workers=args.learn_workers,
                      seed=args.seed, progress=False, device='cpu')
    tr, va = fd.datasets('eeg', cache, cfg, valid_mode=args.valid_mode)
    v = fd.valid.loc[va.frame.index]          # the labelled rows of exactly the windows fit validates on
    prior = {f'kl_{k}': (prior_kl(s, fd.prior) if len(s) else float('nan'))
             for k, s in (('all', v), ('high', v[v['count'] >= 10]), ('low', v[v['count'] < 10]))}
    oracle = class_oracle(data, fd.train, v)
    run_dir = out/'learn'/f"eeg_w{'-'.join(map(str, learn_kw['widths']))}_h{learn_kw['hidden']}_f{args.fold}of{args.n_folds}"
    shutil.rmtree(run_dir, ignore_errors=True)
    log(f"  EegModel(widths={learn_kw['widths']}, hidden={learn_kw['hidden']}) {n_par:,} params; "
        f'Adam lr {args.learn_lr:g}, batch 32; {len(tr)} training items/epoch, {len(va)} validation windows ({args.valid_mode}); budget {args.budget_s:.0f} s')
    log(f"  vote prior on these validation windows: KL all {prior['kl_all']:.4f}  high {prior['kl_high']:.4f}  "
        f"low {prior['kl_low']:.4f}")
    log(f"  synthetic class oracle (mean training votes of the true class): KL all {oracle['all']:.4f}  "
        f"high {oracle['high']:.4f}  low {oracle['low']:.4f}")
    cols = [('epoch', 'epoch', ''), ('train_loss', 'train loss', '.4f'), ('valid_kl_all', 'KL all', '.4f'),
            ('valid_kl_high', 'KL high', '.4f'), ('valid_kl_low', 'KL low', '.4f'), ('ratio_all', 'all/prior', '.3f'),
            ('ratio_high', 'high/prior', '.3f'), ('ratio_low', 'low/prior', '.3f'), ('seconds', 's', '.1f'),
            ('elapsed', 'elapsed s', '.0f')]
    t0 = time.perf_counter(); rows = []
    log('  ' + '  '.join(h.rjust(10) for _, h, _ in cols))
    def on_epoch(epoch, row):
        r = dict(row, elapsed=time.perf_counter() - t0,
                 **{f'ratio_{k}': row[f'valid_kl_{k}'] / prior[f'kl_{k}'] if prior[f'kl_{k}'] > 0 else float('nan')
                    for k in ('all', 'high', 'low')})
        rows.append(r)
        log('  ' + '  '.join(format(r[k], f).rjust(10) for k, _, f in cols))
    epochs, resume = 1, False
    while True:
        cfg = dataclasses.replace(cfg, epochs=epochs)
        res = fit(model, tr, va, cfg, run_dir, resume=resume, on_epoch_end=on_epoch)
        resume, done, elapsed = True, res.epochs, time.perf_counter() - t0
        per_epoch = elapsed / max(1, done)                   # wall time per epoch so far, fit's own overhead included
        more = int((args.budget_s - elapsed) // per_epoch)
        if args.max_epochs: more = min(more, args.max_epochs - done)
        if more < 1: break
        epochs = done + more
    total = time.perf_counter() - t0
    hist = res.history
    best = min(hist, key=lambda h: h['valid_kl_all'])
    final = hist[-1]
    out_ = {'model_kwargs': learn_kw, 'valid_mode': args.valid_mode, 'lr': args.learn_lr, 'params': n_par, 'fold': args.fold, 'n_folds': args.n_folds, 'epochs': len(hist),
            'seconds': total, 'budget_s': args.budget_s, 'n_train_items': len(tr), 'n_valid': len(va),
            'prior': {k: prior[f'kl_{k}'] for k in ('all', 'high', 'low')}, 'oracle': oracle,
            'final': {k: final[f'valid_kl_{k}'] for k in ('all', 'high', 'low')},
            'best_all': {'epoch': best['epoch'], **{k: best[f'valid_kl_{k}'] for k in ('all', 'high', 'low')}},
            'history': rows, 'run_dir': str(run_dir)}
    log(f'\nLearning: {len(hist)} epoch(s) in {total:.0f} s (budget {args.budget_s:.0f} s); run files in {run_dir}')
    sm = [{'what': 'vote prior', **out_['prior']}, {'what': 'class oracle', **oracle},
          {'what': f'final (epoch {final["epoch"]})', **out_['final']},
          {'what': f'best all (epoch {best["epoch"]})', **{k: out_['best_all'][k] for k in ('all', 'high', 'low')}}]
    for r in sm[2:]: sm.append({'what': r['what'].split(' (')[0] + ' / prior',
                                **{k: r[k] / out_['prior'][k] if out_['prior'][k] > 0 else float('nan') for k in ('all', 'high', 'low')}})
    log(table(sm, [('what', 'validation KL', ''), ('all', 'all', '.4f'), ('high', 'high', '.4f'), ('low', 'low', '.4f')]))
    return out_


# ------------------------------------------------------------------------------------------------ summary
def summary(res: dict) -> str:
    "Markdown of every part in `res` (this run's parts merged with earlier runs' from bench_train.json)."
    env = res.get('env', {})
    L = [f"### Training benchmark ({env.get('cpu', '?')}, {env.get('threads', '?')} torch threads, torch {env.get('torch', '?')})", '']
    when = lambda part: (f" [run {res[part]['env']['date']}, load average {res[part]['env']['load_start']} at start]"
                         if 'env' in res[part] else '')
    if 'throughput' in res:
        t = res['throughput']
        L += [f"Training throughput{when('throughput')} (forward + backward + Adam step, median of {t['steps']} steps after {t['warmup']} "
              f"warm-up, random inputs); h/epoch = one stage-1 epoch at Kaggle scale ({KAGGLE_EPOCH:,} EEGs, 10 folds), "
              'estimated:', '',
              md_table(t['rows'], [('model', 'model', ''), ('size', 'size', ''), ('params', 'params', ','),
                                   ('batch', 'batch', ''), ('s_step', 's/step', '.2f'), ('windows_s', 'windows/s', '.2f'),
                                   ('kaggle_h', 'h/epoch', '.2f')]), '']
    if 'loading' in res:
        ld = res['loading']
        cols = [('modality', 'modality', '')] + [(f'w{w}', f'items/s, {w} workers', '.1f') for w in ld['workers']] + \
               [('ratio_full', 'loading (best) / training (full)', '.1f'), ('share_w0', '% of step loading (0 workers)', '.1f')]
        L += [f"Data loading{when('loading')} (WindowDataset training mode, synthetic {ld.get('preset', '?')!r} cache, epoch of "
              f"{ld['rows'][0]['items'] if ld['rows'] else '?'} items incl. worker start-up):", '', md_table(ld['rows'], cols), '']
    if 'compare' in res:
        c = res['compare']
        L += [f"Training step, hbac loop vs the reference loop{when('compare')} (reference sizes, wavenet/melcnn at their "
              f"registry defaults; fp32, {env.get('threads', '?')} threads, {c.get('workers', '?')} loader workers, each loop in "
              f"its own process, {c['warmup']} warm-up + {c['steps']} timed steps"
              + other_steps(c['rows'], c['warmup'], c['steps'])
              + "; windows/s over the timed steps, waits included):", '', md_table(c['rows'], compare_cols(c.get('loops', ('ref', 'ours')))), '']
    if 'learning' in res:
        g = res['learning']
        p, f, b, o = g['prior'], g['final'], g['best_all'], g['oracle']
        L += [f"Learning{when('learning')} (synthetic {g.get('preset', '?')!r}, fold {g['fold']} of {g['n_folds']} by patient, "
              f"EegModel(widths={g['model_kwargs']['widths']}, hidden={g['model_kwargs']['hidden']}), {g['params']:,} params, "
              f"Adam {g.get('lr', 3e-4):g}, batch 32, {g['n_train_items']} EEGs/epoch, {g['n_valid']} validation windows): "
              f"{g['epochs']} epoch(s) in {g['seconds']:.0f} s of a {g['budget_s']:.0f} s budget.", '',
              '| validation KL | all | high | low |', '|---|---:|---:|---:|',
              f"| vote prior | {p['all']:.4f} | {p['high']:.4f} | {p['low']:.4f} |",
              f"| synthetic class oracle (mean votes of the true class) | {o['all']:.4f} | {o['high']:.4f} | {o['low']:.4f} |",
              f"| final (epoch {g['epochs']}) | {f['all']:.4f} | {f['high']:.4f} | {f['low']:.4f} |",
              f"| best all (epoch {b['epoch']}) | {b['all']:.4f} | {b['high']:.4f} | {b['low']:.4f} |",
              f"| final / prior | {f['all'] / p['all']:.3f} | {f['high'] / p['high']:.3f} | {f['low'] / p['low']:.3f} |",
              f"| best all / prior | {b['all'] / p['all']:.3f} | {b['high'] / p['high']:.3f} | {b['low'] / p['low']:.3f} |", '']
    return '\n'.join(L)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n', 1)[1])
    ap.add_argument('--parts', default=','.join(PARTS), help='comma-separated: throughput,loading,learning (default all)')
    ap.add_argument('--work', type=Path, default=Path('/tmp/hbac_bench'), help='synthetic data, cache, runs, results JSON')
    ap.add_argument('--budget-s', type=float, default=600.0, help='learning: wall-clock seconds of training + validation (default 600)')
    ap.add_argument('--preset', default='medium', choices=('tiny', 'small', 'medium'), help='synthetic dataset preset')
    ap.add_argument('--threads', type=int, default=2, help='torch.set_num_threads (default 2)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--models', default=','.join(MODELS), help='throughput/loading: which models (default all four)')
    ap.add_argument('--sizes', default='full,smoke,learn', help='throughput: full (reference), smoke, learn (the learning EEG size)')
    ap.add_argument('--batch', type=int, default=None, help='override the batch size (default 32, 16 for multimodal)')
    ap.add_argument('--steps', type=int, default=5, help='throughput: timed steps per model (default 5)')
    ap.add_argument('--warmup', type=int, default=2, help='throughput: untimed warm-up steps (default 2)')
    ap.add_argument('--load-workers', type=csv_ints, default=[0, 2], help='loading: num_workers values (default 0,2)')
    ap.add_argument('--load-epochs', type=int, default=1, help='loading: epochs timed per setting (default 1)')
    ap.add_argument('--compare-models', default=','.join(COMPARE_MODELS), help=f"compare: which models (default {','.join(COMPARE_MODELS)})")
    ap.add_argument('--compare-loops', default='ref,ours', help='compare: which loops, of ref, ours, ref_alloc (default ref,ours)')
    ap.add_argument('--compare-workers', type=int, default=2, help='compare: DataLoader workers of every loop (default 2)')
    ap.add_argument('--compare-steps', type=int, default=3, help='compare: timed steps per loop (default 3: about 10 min for all six models on 2 cores)')
    ap.add_argument('--compare-warmup', type=int, default=1, help='compare: untimed warm-up steps per loop (default 1)')
    ap.add_argument('--compare-repeats', type=int, default=1, help='compare: interleaved repeats, best kept (default 1)')
    ap.add_argument('--compare-one', default=None, help=argparse.SUPPRESS)   # internal: LOOP:MODEL, run in a child process
    ap.add_argument('--prep-workers', type=int, default=2, help='preprocessing worker processes (default 2)')
    ap.add_argument('--learn-widths', type=csv_ints, default=[8, 12, 16, 24, 32, 64], help='learning: EegModel widths (default 8,12,16,24,32,64)')
    ap.add_argument('--learn-hidden', type=int, default=64, help='learning: EegModel hidden (token) size (default 64)')
    ap.add_argument('--learn-lr', type=float, default=3e-4, help='learning: Adam learning rate (default 3e-4, the recipe)')
    ap.add_argument('--learn-workers', type=int, default=0, help='learning: DataLoader workers (default 0)')
    ap.add_argument('--fold', type=int, default=0)
    ap.add_argument('--n-folds', type=int, default=5)
    ap.add_argument('--valid-mode', default='all', choices=('all', 'one_per_eeg'),
                    help="learning: validate on every window of the fold ('all', the recipe) or one per EEG")
    ap.add_argument('--max-epochs', type=int, default=0, help='learning: stop after this many epochs (0: budget only)')
    args = ap.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(',') if p.strip()]
    args.models = [m.strip() for m in args.models.split(',') if m.strip()]
    args.sizes = [s.strip() for s in args.sizes.split(',') if s.strip()]
    args.compare_models = [m.strip() for m in args.compare_models.split(',') if m.strip()]
    args.compare_loops = [m.strip() for m in args.compare_loops.split(',') if m.strip()]
    for what, got, ok in (('--parts', args.parts, PARTS), ('--models', args.models, MODELS), ('--sizes', args.sizes, ('full', 'smoke', 'learn')),
                          ('--compare-models', args.compare_models, COMPARE_MODELS), ('--compare-loops', args.compare_loops, tuple(LOOPS))):
        bad = [x for x in got if x not in ok]
        if bad or not got: ap.error(f"{what}: unknown or no value {bad or got}; expected some of {', '.join(ok)}")
    if args.steps < 1 or args.warmup < 0 or args.load_epochs < 1: ap.error('--steps and --load-epochs must be >= 1, --warmup >= 0')
    if any(w < 0 for w in args.load_workers) or not args.load_workers: ap.error('--load-workers: expected integers >= 0')
    if len(args.learn_widths) < 2: ap.error('--learn-widths: expected a stem width and at least one block width')
    if args.compare_steps < 1 or args.compare_warmup < 0: ap.error('--compare-steps must be >= 1, --compare-warmup >= 0')

    import torch
    torch.set_num_threads(args.threads)
    if args.compare_one:                                  # a child of part_compare: one loop, one model, one JSON line
        who, name = args.compare_one.split(':')
        print('RESULT ' + json.dumps(compare_one(args, who, name)), flush=True)
        return
    learn_kw = {'widths': list(args.learn_widths), 'kernels': ([5, 5, 3, 3, 3] + [3] * 10)[:len(args.learn_widths) - 1],
                'hidden': args.learn_hidden}
    env = {'cpu': cpu_name(), 'cores': os.cpu_count(), 'threads': torch.get_num_threads(), 'torch': torch.__version__,
           'python': platform.python_version(), 'load_start': loadavg(), 'date': time.strftime('%Y-%m-%d %H:%M')}
    log(f"hbac training benchmark: {env['cpu']} ({env['cores']} cores), torch {env['torch']} with {env['threads']} "
        f"threads, load average {env['load_start']}, parts {','.join(args.parts)}")
    args.work.mkdir(parents=True, exist_ok=True)
    root = args.work/args.preset
    res = {}
    t_start = time.perf_counter()

    if 'throughput' in args.parts:
        log('\n== Part 1: training throughput')
        res['throughput'] = part_throughput(args, learn_kw)
    data = cache = None
    if {'loading', 'compare', 'learning'} & set(args.parts):
        from hbac.preprocess import MODALITIES, RAW
        from hbac.signal import EEG_MODALITIES
        mods = [m for m in MODALITIES if 'loading' in args.parts and (m in args.models or 'multimodal' in args.models)]
        if 'compare' in args.parts:
            want = {compare_modality(m) for m in args.compare_models}
            mods += [m for m in MODALITIES if m not in mods and (m in want or 'multimodal' in want)]
        mods = [m for m in MODALITIES if m in mods] or ['eeg']
        if 'learning' in args.parts and 'eeg' not in mods: mods.insert(0, 'eeg')
        if set(EEG_MODALITIES) & set(mods): mods.insert(0, RAW)   # hbac's EEG windows are cut from the raw cache
        log(f'\n== Synthetic data ({args.preset}) in {root}')
        data, cache = ensure_dataset(root, args.preset, tuple(mods), args.prep_workers)
    if 'loading' in args.parts:
        log('\n== Part 2: data loading')
        res['loading'] = part_loading(args, cache, data, res.get('throughput'))
    if 'compare' in args.parts:
        log('\n== Part 3: project training step vs the reference loop')
        res['compare'] = part_compare(args, cache, data)
    if 'learning' in args.parts:
        log('\n== Part 4: learning')
        res['learning'] = part_learning(args, data, cache, learn_kw, root)

    env['load_end'] = loadavg(); env['seconds'] = round(time.perf_counter() - t_start, 1)
    for part in res: res[part].update(env=env, preset=args.preset)
    path = args.work/'bench_train.json'
    save_results(path, {'env': env, 'args': {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, **res})
    merged = json.loads(path.read_text())
    older = [p for p in PARTS if p in merged and p not in res]
    log(f"\n== Summary (paste into the README; load average at end {env['load_end']}, {env['seconds']:.0f} s in all"
        + (f"; {', '.join(older)} from an earlier run, kept in {path}" if older else '') + ')\n')
    log(summary(merged))


if __name__ == '__main__':
    main()
