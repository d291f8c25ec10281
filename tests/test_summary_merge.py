"Runs of different folds into one --out keep each other's rows in summary.csv, also when they finish at the same time."
import multiprocessing as mp
from pathlib import Path

import pandas as pd

from hbac.recipe import merge_summary

def _writer(path: str, fold: int, times: int) -> None:
    rows = pd.DataFrame({'fold': [fold, fold], 'model': ['eeg', 'vote prior'], 'stage': ['stage2', '-'], 'epochs': [3, 0],
                         'kl_all': [0.5 + fold, 1.2], 'kl_high': [0.4, 1.0], 'kl_low': [0.6, 1.4]})
    for _ in range(times): merge_summary(path, rows)

def test_concurrent_fold_runs_merge(tmp_path):
    path = tmp_path/'summary.csv'
    ctx = mp.get_context('spawn')
    procs = [ctx.Process(target=_writer, args=(str(path), fold, 25)) for fold in (0, 1, 2)]
    for p in procs: p.start()
    for p in procs: p.join(120)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    table = pd.read_csv(path)
    assert sorted(table.fold.unique()) == [0, 1, 2] and len(table) == 6, table   # no run lost another's rows
    assert table.query("model == 'eeg'").kl_all.tolist() == [0.5, 1.5, 2.5]
    assert not [p for p in Path(tmp_path).iterdir() if p.name.endswith('.tmp')]
