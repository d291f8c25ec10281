"Preprocessing end to end through the CLI: crash (SIGKILL) and resume, bad files reported, parity with the reference."
import json, math, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hbac.data import eeg_path, real_fixtures_dir, spectrogram_path
from hbac.preprocess import FeatureCache, preprocess
from hbac.signal import MODALITIES, parity_report
from hbac.synthetic import tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


def link(a: Path, b: Path) -> None:
    try: os.link(a, b)                     # hard link: instant, no extra disk
    except OSError: shutil.copyfile(a, b)


def replicate(src: Path, dst: Path, copies: int) -> Path:
    "A bigger train set fast: `copies` copies of every train EEG / spectrogram of `src` under new ids."
    train = pd.read_csv(src/'train.csv')
    (dst/'train_eegs').mkdir(parents=True); (dst/'train_spectrograms').mkdir()
    parts = []
    for c in range(copies):
        t = train.copy()
        for col in ('eeg_id', 'spectrogram_id', 'label_id'): t[col] = t[col] + c * 2**33
        parts.append(t)
        for (e0, s0), (e1, s1) in zip(train[['eeg_id', 'spectrogram_id']].drop_duplicates().itertuples(index=False),
                                      t[['eeg_id', 'spectrogram_id']].drop_duplicates().itertuples(index=False)):
            link(eeg_path(src, 'train', e0), eeg_path(dst, 'train', e1))
            link(spectrogram_path(src, 'train', s0), spectrogram_path(dst, 'train', s1))
    pd.concat(parts).to_csv(dst/'train.csv', index=False)
    return dst


@pytest.fixture(scope='module')
def tiny():
    return tiny_dataset()


def cli(*args, **kw):
    args = args if '--modality' in args else ('--modality', 'all') + args      # every cache entry kind
    return subprocess.Popen([sys.executable, '-m', 'hbac.cli', 'preprocess', *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def table(out: str) -> dict:
    "The report table printed by the CLI -> {modality: (done, cached, failed)}."
    rows = [l.split() for l in out.splitlines() if l.split() and l.split()[0] in MODALITIES]
    return {r[0]: tuple(map(int, r[1:4])) for r in rows}


def expected_shape(modality, path):
    n = pq.ParquetFile(path).metadata.num_rows
    return {'eeg': (19, math.ceil(n/4)), 'eeg_spectrogram': (4, 96, 1 + n//44), 'spectrogram': (4, 100, n)}[modality]


def entries(cache: Path) -> dict:
    "Every cache entry -> (inode, mtime_ns)."
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(cache.rglob('*.npy'))}


def children(pid: int) -> list[int]:
    out = []
    for d in Path('/proc').iterdir():
        if d.name.isdigit():
            try: stat = (d/'stat').read_text()
            except OSError: continue
            if int(stat.rsplit(')', 1)[1].split()[1]) == pid: out.append(int(d.name))
    return out


def pool_workers(pid: int) -> list[int]:
    "Forked pool workers of `pid` (same command line; not e.g. multiprocessing's resource tracker)."
    try: cmd = Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError: return []
    out = []
    for c in children(pid):
        try:
            if Path(f'/proc/{c}/cmdline').read_bytes() == cmd: out.append(c)
        except OSError: pass
    return out


def alive(pid: int) -> bool:
    try: state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except OSError: return False
    return state != 'Z'


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='uses /proc and SIGKILL')
def test_crash_and_resume(tiny, tmp_path):
    data = replicate(tiny, tmp_path/'data', copies=10)          # 60 EEG + 60 spectrogram files
    df = pd.read_csv(data/'train.csv')
    n_eeg, n_spec = df.eeg_id.nunique(), df.spectrogram_id.nunique()
    proc = cli('--data-dir', data, '--cache-dir', tmp_path/'cache', '--workers', 2, '--no-progress', start_new_session=True)
    cache = tmp_path/'cache'/'train'                             # the CLI writes CACHE_DIR/SPLIT/MODALITY/ID.npy
    workers = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if len(workers) < 2: workers = pool_workers(proc.pid)
            if len(FeatureCache(cache, 'eeg').ids()) >= 5: break
            time.sleep(0.01)
        assert proc.poll() is None, f'the run ended before it could be killed:\n{proc.communicate()}'
        os.kill(proc.pid, signal.SIGKILL)                         # the parent dies mid-run
        proc.wait()
        assert workers, 'no pool workers seen'
        t0 = time.time()                                          # the workers notice and exit by themselves
        while any(alive(w) for w in workers) and time.time() - t0 < 10: time.sleep(0.05)
        assert not any(alive(w) for w in workers), 'pool workers outlived the killed parent'
    finally:
        try: os.killpg(proc.pid, signal.SIGKILL)                   # clean up whatever is left of this session
        except ProcessLookupError: pass
        proc.communicate()

    before = entries(cache)
    n_before = {m: len(FeatureCache(cache, m).ids()) for m in MODALITIES}
    assert 0 < n_before['eeg'] < n_eeg, n_before                  # killed mid-run
    for p in before:                                              # every entry that exists is complete and loadable
        m, i = p.parent.name, int(p.stem)
        src = spectrogram_path(data, 'train', i) if m == 'spectrogram' else eeg_path(data, 'train', i)
        a = np.load(p, mmap_mode='r')
        if m == 'raw':                                            # the samples as read: (N, 20) float32
            assert a.shape == (pq.ParquetFile(src).metadata.num_rows, 20) and a.dtype == np.float32, p
            continue
        assert a.shape == expected_shape(m, src) and a.dtype == np.float16, p

    rep = preprocess(data, cache, workers=2, progress=False)      # resume (in-process call: saves a CLI start-up)
    total = {'eeg': n_eeg, 'eeg_spectrogram': n_eeg, 'spectrogram': n_spec}
    for m in MODALITIES:
        assert (rep.done[m], rep.cached[m], rep.failed[m]) == (total[m] - n_before[m], n_before[m], 0), (m, str(rep))
        assert len(FeatureCache(cache, m).ids()) == total[m]
    after = entries(cache)
    assert {p: after[p] for p in before} == before                # entries finished before the kill were not rewritten
    assert not [p for p in cache.rglob('*') if p.name.endswith('.tmp')], 'temporary files left behind'


def test_bad_files_reported_rest_complete(tiny, tmp_path):
    data = replicate(tiny, tmp_path/'data', copies=2)
    df = pd.read_csv(data/'train.csv')
    eids = sorted(df.eeg_id.unique())
    trunc, garbage, nan_ch, short = eids[:4]
    no_spec = int(df.spectrogram_id[df.eeg_id == eids[4]].iloc[0])
    for i in (trunc, garbage, nan_ch, short): eeg_path(data, 'train', i).unlink()   # hard links: never edit in place
    src = eeg_path(tiny, 'train', sorted(pd.read_csv(tiny/'train.csv').eeg_id.unique())[0])
    eeg_path(data, 'train', trunc).write_bytes(src.read_bytes()[:1000])
    eeg_path(data, 'train', garbage).write_text('not a parquet file')
    x = pd.read_parquet(src); x['T3'] = np.nan; x.to_parquet(eeg_path(data, 'train', nan_ch), index=False)
    x = pd.read_parquet(src).iloc[:300]; x.to_parquet(eeg_path(data, 'train', short), index=False)
    spectrogram_path(data, 'train', no_spec).unlink()
    proc = cli('--data-dir', data, '--cache-dir', tmp_path/'cache', '--workers', 2, '--no-progress')
    cache = tmp_path/'cache'/'train'
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and 'could not be computed' in err, err   # the run finishes the rest, then exits 1
    t = table(out)
    n = len(eids)
    assert t == {'eeg': (n - 4, 0, 4), 'eeg_spectrogram': (n - 4, 0, 4), 'spectrogram': (n - 1, 0, 1)}, out
    fails = {(m, int(i)): why for m, i, why in re.findall(r'^failed (\S+) (\d+): (.*)$', out, flags=re.M)}
    assert 'not a readable parquet file' in fails[('eeg', trunc)]
    assert 'not a readable parquet file' in fails[('eeg_spectrogram', garbage)]
    assert 'T3 are all NaN' in fails[('eeg', nan_ch)]
    assert '300 samples' in fails[('eeg', short)]
    assert 'file not found' in fails[('spectrogram', no_spec)]
    good = set(eids) - {trunc, garbage, nan_ch, short}
    for m in ('eeg', 'eeg_spectrogram'): assert set(FeatureCache(cache, m).ids()) == good
    assert no_spec not in FeatureCache(cache, 'spectrogram').ids()
    # a rerun retries only the failures (they fail again) and recomputes nothing else
    rep = preprocess(data, cache, workers=0, progress=False)
    assert table(str(rep)) == {'eeg': (0, n - 4, 4), 'eeg_spectrogram': (0, n - 4, 4), 'spectrogram': (0, n - 1, 1)}, str(rep)


def test_workers_agree(tiny, tmp_path):
    "A pool run and an in-process run write identical entries."
    r0 = preprocess(tiny, tmp_path/'c0', workers=0, progress=False)
    r2 = preprocess(tiny, tmp_path/'c2', workers=2, progress=False)
    assert r0.done == r2.done and r0.ok and r2.ok
    for m in MODALITIES:
        c0, c2 = FeatureCache(tmp_path/'c0', m), FeatureCache(tmp_path/'c2', m)
        assert c0.ids() == c2.ids()
        for i in c0.ids(): np.testing.assert_array_equal(c0.load(i), c2.load(i))


def test_parity_with_reference(tmp_path):
    fx = real_fixtures_dir()
    if fx is None: pytest.skip('real fixtures not found at ../shared/fixtures/real (set HBAC_FIXTURES)')
    rep = preprocess(fx/'hms', tmp_path/'cache', workers=2, progress=False)   # the fixture folder is only read
    assert table(str(rep)) == {m: (1, 0, 0) for m in MODALITIES}, str(rep)
    ref = np.load(fx/'reference_outputs.npz')
    got = {'eeg': FeatureCache(tmp_path/'cache', 'eeg').load(1628180742),
           'eeg_spectrogram': FeatureCache(tmp_path/'cache', 'eeg_spectrogram').load(1628180742),
           'spectrogram': FeatureCache(tmp_path/'cache', 'spectrogram').load(353733)}
    for m in MODALITIES:
        assert got[m].shape == ref[m].shape and got[m].dtype == np.float16, m
        rep = parity_report(got[m], ref[m])       # within 2 float16 steps, at most 0.5 % of values beyond 1 step
        print(m, rep)
        assert rep['ok'], (m, rep)


WORKERS_PROBE = """
import json, sys
import hbac.data as D, hbac.preprocess as P
safe = D.polars_fork_safe()
def no_arrow(path, *a): raise RuntimeError(f'{path}: read with pyarrow')
D._read_arrow = no_arrow                      # inherited by the forked workers: a pyarrow read fails its file
pooled, run_pool = [], P._run_pool
def spy(tasks, *a, **kw):
    pooled.extend(t[0] for t in tasks); return run_pool(tasks, *a, **kw)
P._run_pool = spy
r = P.preprocess(sys.argv[1], sys.argv[2], ('eeg', 'spectrogram'), workers=2, progress=False)
print(json.dumps([safe, r.ok, str(r), sorted(set(pooled)), D.polars_threads_started()]))
"""


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads thread names from /proc')
def test_workers_read_with_polars(tiny, tmp_path):
    "In a fresh main process every file goes to the worker processes, which read it with polars (never pyarrow)."
    pytest.importorskip('polars')
    out = subprocess.run([sys.executable, '-c', WORKERS_PROBE, str(tiny), str(tmp_path/'c')], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    safe, ok, report, pooled, started = json.loads(out.stdout.strip().splitlines()[-1])
    assert safe and ok, report                           # no file was read with pyarrow
    assert pooled == ['eeg', 'spectrogram'], pooled      # all of them in the workers
    assert not started                                    # and polars' pool never started in the parent
    c = FeatureCache(tmp_path/'c', 'spectrogram')
    assert c.ids() == sorted(pd.read_csv(tiny/'train.csv').spectrogram_id.unique().tolist())


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads thread names from /proc')
def test_spectrograms_on_threads(tiny, tmp_path, monkeypatch):
    "Once polars' pool runs in this main process, spectrogram files are read by polars on threads here; only EEG files go to the workers."
    import hbac.preprocess as P
    from hbac.data import polars_usable, polars_fork_safe, _read_polars, SPEC_COLUMNS
    if not polars_usable(): pytest.skip('polars is not installed (or this is a child process): spectrograms go to the workers')
    sid = int(pd.read_csv(tiny/'train.csv').spectrogram_id[0])
    _read_polars(spectrogram_path(tiny, 'train', sid), ('time',), SPEC_COLUMNS)   # polars' pool now runs here
    assert not polars_fork_safe()
    pooled, run_pool = [], P._run_pool
    def spy(tasks, *a, **kw):
        pooled.extend(t[0] for t in tasks); return run_pool(tasks, *a, **kw)
    monkeypatch.setattr(P, '_run_pool', spy)
    r2 = preprocess(tiny, tmp_path/'c2', ('eeg', 'spectrogram'), workers=2, progress=False)
    n_eeg, n_spec = (pd.read_csv(tiny/'train.csv')[c].nunique() for c in ('eeg_id', 'spectrogram_id'))
    assert r2.ok and r2.done == {'eeg': n_eeg, 'spectrogram': n_spec}, str(r2)
    assert pooled and set(pooled) == {'eeg'}, pooled
    r0 = preprocess(tiny, tmp_path/'c0', ('spectrogram',), workers=0, progress=False)
    c0, c2 = FeatureCache(tmp_path/'c0', 'spectrogram'), FeatureCache(tmp_path/'c2', 'spectrogram')
    assert r0.ok and c0.ids() == c2.ids()
    for i in c0.ids(): np.testing.assert_array_equal(c0.load(i), c2.load(i))
    pooled.clear()
    r3 = preprocess(tiny, tmp_path/'c3', ('spectrogram',), workers=2, progress=False)   # spectrograms only: no pool at all
    assert r3.ok and r3.done == {'spectrogram': n_spec} and pooled == [], (str(r3), pooled)


def test_worker_killed_run_ends(tiny, tmp_path):
    "A worker killed by the system (as the OOM killer would) ends the run with failures reported, never a hang."
    data = replicate(tiny, tmp_path/'data', copies=10)
    n_eeg = pd.read_csv(data/'train.csv').eeg_id.nunique()
    proc = cli('--data-dir', data, '--cache-dir', tmp_path/'cache', '--workers', 2, '--no-progress', start_new_session=True)
    cache = tmp_path/'cache'/'train'
    try:
        deadline, workers = time.time() + 120, []
        while time.time() < deadline and proc.poll() is None:
            workers = pool_workers(proc.pid)
            if workers and len(FeatureCache(cache, 'eeg').ids()) >= 3: break
            time.sleep(0.01)
        assert proc.poll() is None and workers, 'the run ended before a worker could be killed'
        os.kill(workers[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)                  # ends by itself
    finally:
        try: os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError: pass
    assert proc.returncode == 1 and 'could not be computed' in err, err   # failures reported: exit 1
    t = table(out)
    assert t['eeg'][2] > 0 and 'a worker process died' in out, out
    assert sum(t['eeg']) == n_eeg, out
    assert len(FeatureCache(cache, 'eeg').ids()) == t['eeg'][0]   # entries written before the pool broke count as done
    rep = preprocess(data, cache, workers=2, progress=False)      # the rerun completes the cache
    assert rep.ok and rep.done['eeg'] == t['eeg'][2] and rep.cached['eeg'] == t['eeg'][0], str(rep)
