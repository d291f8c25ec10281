"""Benchmark `hbac scan` on this machine: seconds per recording-hour and peak memory.

Usage: .venv/bin/python scripts/bench_scan.py [--hours 1] [--long-hours 12] [--step 10] [--workdir DIR]

Writes a synthetic 1-hour EDF recording (200 Hz, 20 channels, hospital-style labels) and a --long-hours one made of
the same data records repeated (an EDF is a header plus fixed-size data records, so it is written in pieces without
ever holding the long recording in memory). Each measurement is a fresh child process (peak RSS from getrusage
belongs to that run alone):
  1. one EEG model (reference size, untrained weights: speed does not depend on the values), step --step s, 1 hour;
  2. one fold of all four reference-size models (eeg, eeg_spectrogram, spectrogram, multimodal), 1 hour;
  3. peak RSS of a scan of the 1-hour and of the long recording with a tiny EEG model (step 60 s: the reader's memory,
     not the models', is what must stay flat in the length).
Prints seconds per recording-hour and windows/s for 1 and 2, and peak RSS for 3.
"""
from __future__ import annotations
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

CHILD = r'''
import json, resource, sys, time, warnings
warnings.simplefilter('ignore')
from hbac.scan import scan
rec, runs, out, step = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
t = time.perf_counter()
(files,) = scan([rec], [runs], out, step=step, device='cpu')
dt = time.perf_counter() - t
import pandas as pd
n = len(pd.read_csv(files['timeline']))
print(json.dumps({'seconds': dt, 'windows': n, 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''

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

def child(rec, runs, out, step) -> dict:
    r = subprocess.run([sys.executable, '-c', CHILD, str(rec), str(runs), str(out), str(step)], capture_output=True, text=True,
                       env={**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '2')})
    if r.returncode: raise SystemExit(f'bench_scan: the scan failed:\n{r.stderr[-2000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--hours', type=float, default=1.0)
    ap.add_argument('--long-hours', type=int, default=12)
    ap.add_argument('--step', type=float, default=10.0)
    ap.add_argument('--workdir', default=None)
    a = ap.parse_args(argv)
    from hbac.fixtures import TINY_KWARGS, init_run_dir
    work = Path(a.workdir or tempfile.mkdtemp(prefix='hbac_bench_scan_'))
    t = time.perf_counter(); short, long = write_recordings(work, a.hours, a.long_hours)
    print(f'recordings: {short} ({short.stat().st_size / 1e6:.0f} MB), {long} ({long.stat().st_size / 1e6:.0f} MB) '
          f'in {time.perf_counter() - t:.1f} s')
    if not (work/'eeg_only').exists(): init_run_dir(work/'eeg_only'/'eeg', 'eeg', checkpoints=('best_high',))
    if not (work/'fold').exists():
        for m in ('eeg', 'eeg_spectrogram', 'spectrogram', 'multimodal'): init_run_dir(work/'fold'/m, m, checkpoints=('best_high',))
    if not (work/'tiny').exists(): init_run_dir(work/'tiny'/'eeg', 'eeg', TINY_KWARGS['eeg'], checkpoints=('best_high',))
    hours = a.hours
    rows = []
    for name, runs in (('one EEG model', work/'eeg_only'), ('one fold of four models', work/'fold')):
        r = child(short, runs, work/'out'/runs.name, a.step)
        rows.append((name, r['seconds'] / hours, r['windows'] / r['seconds'], r['rss_mb']))
    print(f'\nscan at step {a.step:g} s, reference-size models, torch threads {os.environ.get("OMP_NUM_THREADS", "2")}:')
    print(f'| ensemble | s per recording-hour | windows/s | peak RSS (MB) |\n|---|---|---|---|')
    for name, sph, wps, rss in rows: print(f'| {name} | {sph:.1f} | {wps:.1f} | {rss:.0f} |')
    mem = []
    for rec, h in ((short, hours), (long, a.long_hours)):
        r = child(rec, work/'tiny', work/'out'/f'tiny_{h:g}h', 60)
        mem.append((h, r['rss_mb'], r['seconds']))
    print('\npeak RSS of a scan (tiny EEG model, step 60 s):')
    print('| recording | peak RSS (MB) | seconds |\n|---|---|---|')
    for h, rss, s in mem: print(f'| {h:g} h | {rss:.0f} | {s:.1f} |')

if __name__ == '__main__':
    main()
