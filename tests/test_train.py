"Training engine: crash (SIGKILL) + resume, torchrun/DDP against a single process, bad configs and checkpoints."
import json, math, os, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hbac.train import ConfigError, TrainConfig, evaluate, fit, make_eval_loader
from hbac.runs import EPOCH_COLS, RUN_FILES, STEP_COLS, CheckpointError, load_checkpoint, read_csv_rows, save_checkpoint
from hbac.fixtures import ToyDataset, ToyModel
from hbac.devices import set_seed

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}

# The same toy run in a subprocess (which SIGKILLs itself inside epoch 4) and in this process (resume; the uninterrupted reference).
RUN = dict(epochs=5, lr=3e-3, batch_size=32, seed=7, progress=False)
KILL_SCRIPT = textwrap.dedent('''
    import os, signal, sys, torch
    from hbac.train import TrainConfig, fit
    from hbac.fixtures import ToyDataset, ToyModel
    from hbac.devices import set_seed
    torch.set_num_threads(1)
    out = sys.argv[1]
    class KillingDataset(ToyDataset):
        armed, served = False, 0
        def __getitem__(self, i):
            if KillingDataset.armed:
                KillingDataset.served += 1
                if KillingDataset.served > 100: os.kill(os.getpid(), signal.SIGKILL)   # mid-epoch 4, no cleanup
            return super().__getitem__(i)
    def arm(epoch, row):
        if epoch == 3: KillingDataset.armed = True
    cfg = TrainConfig(**%r)
    set_seed(cfg.seed)
    res = fit(ToyModel(), KillingDataset(320, seed=1, noise=0.05), ToyDataset(90, seed=2), cfg, out, on_epoch_end=arm)
''' % RUN)

@pytest.fixture
def one_thread():
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

def _rows(run_dir, name='epochs.csv', cols=EPOCH_COLS):
    return read_csv_rows(Path(run_dir)/name, cols)

def _no_seconds(rows): return [{k: v for k, v in r.items() if k != 'seconds'} for r in rows]

def test_kill_and_resume(tmp_path, one_thread):
    script = tmp_path/'run.py'; script.write_text(KILL_SCRIPT)
    out = tmp_path/'run'
    r = subprocess.run([sys.executable, str(script), str(out)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])                    # really killed, not a clean exit
    assert [e['epoch'] for e in _rows(out)] == [1, 2, 3]
    assert load_checkpoint(out/'last.pt')['epoch'] == 3
    steps = _rows(out, 'steps.csv', STEP_COLS)
    assert len(steps) > 3 * 10 and steps[-1]['epoch'] == 4                       # part of epoch 4 was logged
    assert not (out/'final.pt').exists()

    cfg = TrainConfig(**RUN); set_seed(cfg.seed)                                   # a fresh start, as after a reboot
    res = fit(ToyModel(), ToyDataset(320, seed=1, noise=0.05), ToyDataset(90, seed=2), cfg, out)
    assert res.resumed_from == 3
    resumed, resumed_steps = _rows(out), _rows(out, 'steps.csv', STEP_COLS)
    assert [e['epoch'] for e in resumed] == [1, 2, 3, 4, 5]
    assert [s['step'] for s in resumed_steps] == list(range(1, 5 * 10 + 1))     # 320 / 32 = 10 steps per epoch
    assert sorted(p.name for p in out.iterdir() if p.name != 'run.py') == sorted(RUN_FILES)   # no temporaries left

    ref = tmp_path/'ref'                                                           # uninterrupted, same seed
    cfg = TrainConfig(**RUN); set_seed(cfg.seed)
    res = fit(ToyModel(), ToyDataset(320, seed=1, noise=0.05), ToyDataset(90, seed=2), cfg, ref)
    for a, b in zip(_no_seconds(resumed), _no_seconds(res.history), strict=True):
        assert a.keys() == b.keys()
        for k in a: assert math.isclose(a[k], b[k], rel_tol=1e-6, abs_tol=1e-9), (k, a, b)
    for a, b in zip(resumed_steps, _rows(ref, 'steps.csv', STEP_COLS), strict=True):
        assert math.isclose(a['loss'], b['loss'], rel_tol=1e-6) and a['step'] == b['step'] and a['epoch'] == b['epoch']
    for name in ('final', 'best_all', 'best_high', 'best_low'):
        a, b = load_checkpoint(out/f'{name}.pt'), load_checkpoint(ref/f'{name}.pt')
        assert a['epoch'] == b['epoch'], name
        for k in a['model']: torch.testing.assert_close(a['model'][k], b['model'][k], rtol=1e-5, atol=1e-6)

DDP_SCRIPT = textwrap.dedent('''
    import json, os, sys, numpy as np, torch
    from hbac.train import TrainConfig, evaluate, fit, make_eval_loader
    from hbac.fixtures import ToyDataset, ToyModel
    from hbac.devices import cleanup_distributed, init_distributed, set_seed
    out, epochs = sys.argv[1], int(sys.argv[2])
    cfg = TrainConfig(epochs=epochs, lr=3e-3, batch_size=16, seed=0, progress=False)
    set_seed(0); model = ToyModel(spare=True)      # a parameter without gradient must not upset DDP
    va = ToyDataset(101, seed=2)
    res = fit(model, ToyDataset(200, seed=1), va, cfg, out, extra={'launcher': 'torchrun'})
    info = init_distributed()
    ev = evaluate(model, make_eval_loader(va, cfg), return_predictions=True)     # gathered from both ranks
    ev = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ev.items()}
    with open(os.path.join(out, f'eval_rank{info.rank}.json'), 'w') as f:
        json.dump({'world_size': info.world_size, 'epochs': res.epochs, 'resumed_from': res.resumed_from, 'best': res.best, **ev}, f)
    cleanup_distributed()
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)   # all work is done and on disk: skip interpreter teardown, where torch's gloo threads intermittently abort (SIGABRT) on a loaded CPU
''')

def test_torchrun_ddp_matches_single_process(tmp_path, one_thread):
    script = tmp_path/'ddp.py'; script.write_text(DDP_SCRIPT)
    out = tmp_path/'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script), str(out)]
    for epochs in (2, 3):                   # 2 epochs, then extend the run to 3: resuming works under DDP too
        r = subprocess.run(cmd + [str(epochs)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    ranks = [json.loads((out/f'eval_rank{i}.json').read_text()) for i in range(2)]
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith('eval_rank'))
    assert files == sorted(RUN_FILES)                                              # one set of files, rank 0 only
    meta = json.loads((out/'config.json').read_text())
    assert meta['runtime']['world_size'] == 2 and meta['runtime']['per_rank_batch_size'] == 8
    assert meta['extra'] == {'launcher': 'torchrun'}
    rows = _rows(out)
    assert [e['epoch'] for e in rows] == [1, 2, 3]
    assert [s['step'] for s in _rows(out, 'steps.csv', STEP_COLS)] == list(range(1, 3 * 13 + 1))  # 100 per rank / 8

    # the single-process run writes the same kinds of things
    cfg = TrainConfig(epochs=3, lr=3e-3, batch_size=16, seed=0, progress=False)
    va = ToyDataset(101, seed=2)
    set_seed(0); model = ToyModel(spare=True)
    single = fit(model, ToyDataset(200, seed=1), va, cfg, tmp_path/'single')
    assert sorted(p.name for p in (tmp_path/'single').iterdir()) == sorted(RUN_FILES)
    assert [list(r) for r in single.history] == [list(r) for r in rows]
    ev1 = evaluate(model, make_eval_loader(va, cfg), return_predictions=True)
    for rk in ranks:
        assert rk['world_size'] == 2 and rk['epochs'] == 3 and rk['resumed_from'] == 2
        assert set(ev1) <= set(rk) and rk['best'].keys() == single.best.keys()
        assert np.asarray(rk['log_probs']).shape == ev1['log_probs'].shape == (101, 6)
        assert rk['index'] == list(range(101)) and rk['n_all'] == 101               # every sample once, in order
        np.testing.assert_array_equal(np.asarray(rk['targets'], np.float32), va.target)
        np.testing.assert_array_equal(np.asarray(rk['counts'], np.float32), va.count)
    assert ranks[0]['kl_all'] == ranks[1]['kl_all']

    # the gathered metrics are exact: the DDP model, evaluated here in one process, gives the logged numbers
    m = ToyModel(spare=True); load_checkpoint(out/'final.pt', m)
    ev = evaluate(m, make_eval_loader(va, cfg), return_predictions=True)
    for k in ('all', 'high', 'low'):
        assert math.isclose(ev[f'kl_{k}'], rows[-1][f'valid_kl_{k}'], rel_tol=1e-6), k
        assert math.isclose(ev[f'kl_{k}'], ranks[0][f'kl_{k}'], rel_tol=1e-6), k
    np.testing.assert_allclose(ev['log_probs'], np.asarray(ranks[0]['log_probs']), rtol=1e-5, atol=1e-6)

# A real EegModel (BatchNorm layers) trained by torchrun with 2 CPU processes on the preprocessed tiny synthetic dataset.
# BatchNorm running statistics are per rank (each rank sees its own batches); fit gives every rank rank 0's weights
# before validating, so the logged metrics are those of the checkpoint rank 0 saves for that epoch.
EEG_KW = dict(widths=(4, 4, 8, 8, 16), kernels=(3, 3, 3, 3), hidden=16)
EEG_RUN = dict(epochs=3, lr=1e-2, batch_size=4, valid_batch_size=3, seed=0, progress=False)
EEG_DDP_SCRIPT = textwrap.dedent('''
    import json, os, shutil, sys, torch
    from pathlib import Path
    from hbac.data import read_train_csv
    from hbac.dataset import WindowDataset, labels_table
    from hbac.models.eeg import EegModel
    from hbac.train import TrainConfig, evaluate, fit, make_eval_loader
    from hbac.devices import cleanup_distributed, init_distributed, set_seed
    torch.set_num_threads(1)
    data, cache, out = map(Path, sys.argv[1:4])
    labels = labels_table(read_train_csv(data))
    tr, va = WindowDataset(labels, cache, 'eeg', train=True), WindowDataset(labels, cache, 'eeg')
    cfg = TrainConfig(**%r)
    info = init_distributed()
    def keep(epoch, row):                           # each epoch's checkpoint, to evaluate it later in one process
        if info.is_main: shutil.copy(out/'run'/'last.pt', out/f'epoch{epoch}.pt')
    set_seed(cfg.seed); model = EegModel(**%r)
    res = fit(model, tr, va, cfg, out/'run', on_epoch_end=keep)
    ev = evaluate(model, make_eval_loader(va, cfg))
    torch.save(model.state_dict(), out/f'state_rank{info.rank}.pt')
    with open(out/f'eval_rank{info.rank}.json', 'w') as f: json.dump({'history': res.history, **ev}, f)
    cleanup_distributed()
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)   # as DDP_SCRIPT: skip interpreter teardown, where gloo threads intermittently abort on a loaded CPU
''' % (EEG_RUN, EEG_KW))

def test_torchrun_batchnorm_validation_matches_checkpoint(tmp_path, one_thread):
    from hbac.data import read_train_csv
    from hbac.dataset import WindowDataset, labels_table
    from hbac.models.eeg import EegModel
    from hbac.preprocess import preprocess
    from hbac.synthetic import tiny_dataset
    data, cache = tiny_dataset(tmp_path/'data'), tmp_path/'cache'
    preprocess(data, cache, modalities=('raw',), split='train', workers=0, progress=False)
    script = tmp_path/'ddp_eeg.py'; script.write_text(EEG_DDP_SCRIPT)
    out = tmp_path/'out'; out.mkdir()
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script),
           str(data), str(cache), str(out)]
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    ranks = [json.loads((out/f'eval_rank{i}.json').read_text()) for i in range(2)]
    rows = _rows(out/'run')
    assert [e['epoch'] for e in rows] == [1, 2, 3] and ranks[0]['history'] == ranks[1]['history'] == rows

    # every rank ends with rank 0's weights, BatchNorm running statistics included, bit for bit: those of final.pt
    final = load_checkpoint(out/'run'/'final.pt')['model']
    assert any(k.endswith('running_var') for k in final)
    for i in range(2):
        state = torch.load(out/f'state_rank{i}.pt', weights_only=True)
        assert state.keys() == final.keys()
        for k in final: assert torch.equal(state[k], final[k]), (i, k)

    # each epoch's logged metrics are those of that epoch's checkpoint evaluated in one process on the whole
    # validation set. Tolerance: relative 1e-6. Only float32 rounding differs (other batch groupings: measured <= 5e-8);
    # ranks validating with their own BatchNorm statistics (before the fix) were off by 6e-6 to 9e-5 relative here.
    va = WindowDataset(labels_table(read_train_csv(data)), cache, 'eeg')
    cfg = TrainConfig(**EEG_RUN)
    for row in rows:
        ck = out/f"epoch{row['epoch']}.pt"
        m = EegModel(**EEG_KW); assert load_checkpoint(ck, m)['epoch'] == row['epoch']
        ev = evaluate(m, make_eval_loader(va, cfg))
        assert ev['n_all'] == len(va) == 14 and ev['n_high'] > 0 and ev['n_low'] > 0
        for k in ('all', 'high', 'low'):
            assert math.isclose(ev[f'kl_{k}'], row[f'valid_kl_{k}'], rel_tol=1e-6), (row['epoch'], k, ev[f'kl_{k}'], row)
    for rk in ranks:                                 # evaluate after fit, on both ranks: the same numbers again
        for k in ('all', 'high', 'low'): assert math.isclose(rk[f'kl_{k}'], rows[-1][f'valid_kl_{k}'], rel_tol=1e-6)
    assert ranks[0]['kl_all'] == ranks[1]['kl_all']

def test_bad_config():
    with pytest.raises(ConfigError, match="unknown TrainConfig key 'learning_rate'; valid keys: epochs, lr, batch_size"):
        TrainConfig.from_dict({'learning_rate': 1e-3})
    with pytest.raises(ConfigError, match=r"TrainConfig.batch_size: expected int, found 32.0 \(float\)"):
        TrainConfig.from_dict({'batch_size': 32.0})
    with pytest.raises(ConfigError, match=r"TrainConfig.freeze: expected a list of strings, found 'eeg'"):
        TrainConfig.from_dict({'freeze': 'eeg'})
    with pytest.raises(ConfigError, match="TrainConfig.count_type: expected one of all, upper, lower"):
        TrainConfig.from_json('{"count_type": "hi"}')
    cfg = TrainConfig(epochs=2); cfg.lr = -1.0                       # set after construction: fit checks again
    with pytest.raises(ConfigError, match='TrainConfig.lr'):
        fit(ToyModel(), ToyDataset(8), None, cfg, '/nonexistent/never-created')

def test_bad_checkpoints(tmp_path):
    bad = tmp_path/'corrupt.pt'; bad.write_bytes(os.urandom(2000))
    with pytest.raises(CheckpointError, match=f'{bad}: not a valid checkpoint'):
        load_checkpoint(bad, ToyModel())
    good = save_checkpoint(tmp_path/'good.pt', ToyModel(), epoch=1)
    torn = tmp_path/'torn.pt'; torn.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match='torn.pt: not a valid checkpoint'):
        load_checkpoint(torn, ToyModel())

    class Other(torch.nn.Module):
        def __init__(self): super().__init__(); self.lin = torch.nn.Linear(8, 6)
        def forward(self, x): return torch.log_softmax(self.lin(x), 1)
    with pytest.raises(CheckpointError, match=r'checkpoint of a hbac\.fixtures\.ToyModel, but the model is a .*Other'):
        load_checkpoint(good, Other())
    with pytest.raises(CheckpointError, match=r"first mismatching key 'body.0.weight': checkpoint \(32, 8\) vs model \(32, 4\)"):
        load_checkpoint(good, ToyModel(n_in=4))
    with pytest.raises(CheckpointError, match=r"first mismatching key 'lin.weight': missing from the checkpoint \(model \(6, 8\)\)"):
        load_checkpoint(good, Other(), strict_class=False)
    # a run directory whose last.pt is corrupt is not silently restarted
    run = tmp_path/'run'; run.mkdir(); (run/'last.pt').write_bytes(b'\x00' * 10)
    with pytest.raises(CheckpointError, match='last.pt: not a valid checkpoint'):
        fit(ToyModel(), ToyDataset(16), None, TrainConfig(epochs=1, progress=False), run)
