"""Benchmark `hbac scan` on this machine: seconds per recording-hour and peak memory.

Usage: .venv/bin/python scripts/bench_scan.py [--hours 1] [--long-hours 12] [--step 10] [--parts 0,1,2,3]
           [--breakdown-windows 64] [--precisions float32,bfloat16] [--workdir DIR]

Writes a synthetic 1-hour EDF recording (200 Hz, 20 channels, hospital-style labels) and a --long-hours one made of
the same data records repeated (an EDF is a header plus fixed-size data records, so it is written in pieces without
ever holding the long recording in memory). Each measurement is a fresh child process (peak RSS from getrusage
belongs to that run alone):
  0. where the time goes (one fold of the four models, the first --breakdown-windows windows of the 1-hour recording,
     extrapolated to seconds per recording-hour): the window inputs (all three modalities, once for all models) on
     1 and on 2 torch threads, and each prepared model at the batch size its BatchSizer chose on those windows;
  1. one EEG model (reference size, untrained weights: speed does not depend on the values), step --step s, 1 hour;
  2. one fold of all four reference-size models (eeg, eeg_spectrogram, spectrogram, multimodal; a blend.json beside
     them gives each weight 0.25, so that the scan uses all four), 1 hour;
  3. peak RSS of a scan of the 1-hour and of the long recording with a tiny EEG model (step 60 s: the reader's memory,
     not the models', is what must stay flat in the length).
Prints seconds per recording-hour and windows/s for 1 and 2 (once per precision of --precisions: `hbac scan
--precision`), and peak RSS for 3. Torch threads: OMP_NUM_THREADS
(default 2).
"""
from __future__ import annotations
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

CHILD = r'''
import json, resource, sys, time, warnings
warnings.simplefilter('ignore')
from hbac.scan import scan
rec, runs, out, step, precision = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
t = time.perf_counter()
(files,) = scan([rec], [runs], out, step=step, device='cpu', precision=precision)
dt = time.perf_counter() - t
import pandas as pd
n = len(pd.read_csv(files['timeline']))
print(json.dumps({'seconds': dt, 'windows': n, 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''

BREAKDOWN = r"""
import json, sys, time, warnings
warnings.simplefilter('ignore')
import torch
from hbac.recordings import open_recording
from hbac.scan import load_ensemble, scan_windows, window_batches, _model_input
from hbac.inference import prepare_for_inference, BatchSizer, torch_threads
from hbac.ensemble import predict_proba
from hbac.signal import MODALITIES
rec_path, runs, step, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
rec = open_recording(rec_path)
starts = scan_windows(rec, step)[:n]
loaded, _ = load_ensemble([runs], 'cpu')
for lm in loaded: lm.model = prepare_for_inference(lm.model, 'cpu')
needed = tuple(m for m in MODALITIES if any(m in lm.inputs for lm in loaded))
out = {'windows': len(starts), 'threads': torch.get_num_threads()}
for th in (1, 2):
    with torch_threads(th):
        t = time.perf_counter(); batches = list(window_batches(rec, starts, needed, 32))
        out[f'inputs on {th} thread' + ('s' if th > 1 else '')] = [(time.perf_counter() - t) / len(starts), None]
x = {m: torch.cat([b[1][m] for b in batches]) for m in needed}
for lm in loaded:
    inp, sizer = _model_input(x, lm, 'cpu'), BatchSizer(lm.model, 'cpu')
    if len(starts) < sizer.candidates[-1]: raise SystemExit(f'--breakdown-windows must be at least {sizer.candidates[-1]}')
    fn = lambda v: predict_proba(lm.model, v, False, lm.model_name)
    while sizer.size is None: sizer(fn, inp)                    # the probe (on these windows), then time the chosen size
    t = time.perf_counter(); sizer(fn, inp)
    out[lm.model_name] = [(time.perf_counter() - t) / len(starts), sizer.size]
print(json.dumps(out))
"""

def write_recordings(work: Path, hours: float, long_hours: int) -> tuple[Path, Path]:
    "A synthetic `hours`-long EDF and a `long_hours` one made of its data records repeated."
    import numpy as np
    from hbac.data import EEG_CHANNELS, EEG_FS
    from hbac.recordings import write_edf
    from hbac.synthetic import synth_recording
    short = work/f'rec_{hours:g}h.edf'
    if not short.exists():
        seconds = int(hours * 3600)
        x = synth_recording(seconds, [('seizure', 'left', seconds * 0.2, seconds * 0.3), ('lpd', 'right', seconds * 0.6, seconds * 0.7)],
                            np.random.default_rng(0))
        labels = ['EEG ' + c + '-REF' if c != 'EKG' else 'ECG' for c in EEG_CHANNELS]
        write_edf(short, x, EEG_FS, labels)
    long = work/f'rec_{long_hours}h.edf'
    if not long.exists():
        raw = short.read_bytes()
        ns = int(raw[252:256].decode()); head = 256 * (ns + 1)
        n_rec = int(raw[236:244].decode())
        repeats = max(1, round(long_hours / hours))
        header = bytearray(raw[:head]); header[236:244] = f'{n_rec * repeats:<8d}'.encode()
        with open(long, 'wb') as f:
            f.write(header)
            for _ in range(repeats): f.write(raw[head:])
    return short, long

def child(rec, runs, out, step, precision='float32', code=CHILD) -> dict:
    r = subprocess.run([sys.executable, '-c', code, str(rec), str(runs), str(out), str(step), precision], capture_output=True, text=True,
                       env={**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '2')})
    if r.returncode: raise SystemExit(f'bench_scan: the scan failed:\n{r.stderr[-2000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--hours', type=float, default=1.0)
    ap.add_argument('--long-hours', type=int, default=12)
    ap.add_argument('--step', type=float, default=10.0)
    ap.add_argument('--parts', default='0,1,2,3', help='which measurements (see above), comma-separated')
    ap.add_argument('--breakdown-windows', type=int, default=64, help='windows timed in part 0')
    ap.add_argument('--precisions', default='float32,bfloat16', help='precisions of the scans of parts 1 and 2, comma-separated')
    ap.add_argument('--workdir', default=None)
    a = ap.parse_args(argv)
    parts = {int(p) for p in a.parts.split(',') if p.strip()}
    from hbac.fixtures import TINY_KWARGS, init_run_dir
    work = Path(a.workdir or tempfile.mkdtemp(prefix='hbac_bench_scan_'))
    t = time.perf_counter(); short, long = write_recordings(work, a.hours, a.long_hours)
    print(f'recordings: {short} ({short.stat().st_size / 1e6:.0f} MB), {long} ({long.stat().st_size / 1e6:.0f} MB) '
          f'in {time.perf_counter() - t:.1f} s')
    if not (work/'eeg_only').exists(): init_run_dir(work/'eeg_only'/'eeg', 'eeg', checkpoints=('best_high',))
    if not (work/'fold').exists():
        for m in ('eeg', 'eeg_spectrogram', 'spectrogram', 'multimodal'): init_run_dir(work/'fold'/m, m, checkpoints=('best_high',))
    if not (work/'fold'/'blend.json').exists():      # all four in the ensemble (without a blend, scan would use the multimodal runs alone)
        (work/'fold'/'blend.json').write_text(json.dumps({'weights': {m: 0.25 for m in ('eeg', 'eeg_spectrogram', 'spectrogram', 'multimodal')}}))
    if not (work/'tiny').exists(): init_run_dir(work/'tiny'/'eeg', 'eeg', TINY_KWARGS['eeg'], checkpoints=('best_high',))
    hours, threads = a.hours, os.environ.get('OMP_NUM_THREADS', '2')
    per_hour = 3600 / a.step
    if 0 in parts:
        r = subprocess.run([sys.executable, '-c', BREAKDOWN, str(short), str(work/'fold'), str(a.step), str(a.breakdown_windows)],
                           capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': threads})
        if r.returncode: raise SystemExit(f'bench_scan: the breakdown failed:\n{r.stderr[-2000:]}')
        b = json.loads(r.stdout.strip().splitlines()[-1])
        print(f'\nwhere the time goes (first {b["windows"]} windows at step {a.step:g} s, {b["threads"]} torch threads, '
              f'extrapolated to one recording-hour = {per_hour:.0f} windows):')
        print('| part | ms per window | s per recording-hour | batch |\n|---|---|---|---|')
        for k, (sec, fb) in [(k, v) for k, v in b.items() if isinstance(v, list)]:
            print(f'| {k} | {sec * 1000:.1f} | {sec * per_hour:.1f} | {fb or ""} |')
        model_s = sum(v[0] for k, v in b.items() if isinstance(v, list) and not k.startswith('inputs'))
        print(f'| inputs on 1 thread + the four models | {(b["inputs on 1 thread"][0] + model_s) * 1000:.1f} | '
              f'{(b["inputs on 1 thread"][0] + model_s) * per_hour:.1f} | |', flush=True)
    rows = []
    for name, runs, part in (('one EEG model', work/'eeg_only', 1), ('one fold of four models', work/'fold', 2)):
        if part not in parts: continue
        for prec in [p.strip() for p in a.precisions.split(',') if p.strip()]:
            r = child(short, runs, work/'out'/f'{runs.name}_{prec}', a.step, prec)
            rows.append((name, prec, r['seconds'] / hours, r['windows'] / r['seconds'], r['rss_mb']))
    if rows:
        print(f'\nscan at step {a.step:g} s, reference-size models, torch threads {threads}:')
        print(f'| ensemble | precision | s per recording-hour | windows/s | peak RSS (MB) |\n|---|---|---|---|---|')
        for name, prec, sph, wps, rss in rows: print(f'| {name} | {prec} | {sph:.1f} | {wps:.1f} | {rss:.0f} |', flush=True)
    if 3 in parts:
        mem = []
        for rec, h in ((short, hours), (long, a.long_hours)):
            r = child(rec, work/'tiny', work/'out'/f'tiny_{h:g}h', 60)
            mem.append((h, r['rss_mb'], r['seconds']))
        print('\npeak RSS of a scan (tiny EEG model, step 60 s):')
        print('| recording | peak RSS (MB) | seconds |\n|---|---|---|')
        for h, rss, s in mem: print(f'| {h:g} h | {rss:.0f} | {s:.1f} |')

if __name__ == '__main__':
    main()
