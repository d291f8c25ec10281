"User errors of the `hbac` command line, end to end in a subprocess: one line on stderr, exit status 1, no traceback."
import json, shutil, subprocess, sys
from pathlib import Path
import pytest

from hbac.synthetic import tiny_dataset


def hbac(*args, cwd=None) -> subprocess.CompletedProcess:
    "Run `python -m hbac.cli ARGS` (the same as the `hbac` console script)."
    return subprocess.run([sys.executable, '-m', 'hbac.cli', *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def one_error_line(r: subprocess.CompletedProcess, command: str) -> str:
    "The single non-empty stderr line of a failed command, checked for its prefix and the absence of a traceback."
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert 'Traceback' not in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f'hbac {command}: error: '), lines[0]
    return lines[0]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp('cli_errors')/'data')


@pytest.fixture
def typo_config(tmp_path) -> Path:
    p = tmp_path/'typo.json'
    p.write_text(json.dumps({'name': 'x', 'n_folds': 3, 'stage1': {'epochz': 1}}))
    return p


def test_mistyped_config_key(tiny, typo_config, tmp_path):
    r = hbac('train', '--data-dir', tiny, '--cache-dir', tmp_path/'cache', '--config', typo_config, '--out', tmp_path/'runs')
    line = one_error_line(r, 'train')
    assert "unknown TrainConfig key 'epochz'" in line and str(typo_config) in line and 'RecipeConfig.stage1' in line, line
    assert not (tmp_path/'runs').exists()


@pytest.mark.parametrize('where', ['before', 'after'])
def test_debug_shows_traceback(tiny, typo_config, tmp_path, where):
    args = ['train', '--data-dir', tiny, '--config', typo_config, '--out', tmp_path/'runs']
    r = hbac(*(['--debug', *args] if where == 'before' else [*args, '--debug']))
    assert r.returncode != 0
    assert 'Traceback' in r.stderr and "ConfigError: " in r.stderr and 'epochz' in r.stderr, r.stderr


def test_unknown_model_argument(tiny, tmp_path):
    cfg = json.loads((Path(__file__).resolve().parents[1]/'configs'/'smoke.json').read_text())
    cfg['models']['eeg']['width'] = 3
    p = tmp_path/'width.json'; p.write_text(json.dumps(cfg))
    r = hbac('train', '--data-dir', tiny, '--cache-dir', tmp_path/'cache', '--config', p, '--folds', '0', '--out', tmp_path/'runs')
    line = one_error_line(r, 'train')
    assert line.startswith(f'hbac train: error: {p}: '), line     # the recipe's ConfigError or the CLI's TypeError message
    assert 'models.eeg' in line and "'width'" in line and 'EegModel' in line, line


def test_missing_data_dir(tmp_path):
    for command in ('preprocess', 'train'):
        r = hbac(command, '--data-dir', tmp_path/'nowhere', '--cache-dir', tmp_path/'cache')
        line = one_error_line(r, command)
        assert line == f"hbac {command}: error: --data-dir {tmp_path/'nowhere'}: no such directory", line


def test_usage_error_keeps_argparse_status(tmp_path):
    r = hbac('preprocess', '--data-dir', tmp_path, '--modality', 'fmri')
    assert r.returncode == 2 and "invalid choice: 'fmri'" in r.stderr and 'Traceback' not in r.stderr, r.stderr


def test_preprocess_reports_failure_and_exits_1(tiny, tmp_path):
    data, cache = tmp_path/'data', tmp_path/'cache'
    shutil.copytree(tiny, data)
    eegs = sorted((data/'train_eegs').glob('*.parquet'))
    broken = eegs[0]
    broken.write_bytes(b'this is not a parquet file')
    r = hbac('preprocess', '--data-dir', data, '--cache-dir', cache, '--modality', 'recording', '--workers', '1', '--no-progress')
    line = one_error_line(r, 'preprocess')
    assert 'could not be computed' in line, line
    failed = [l for l in r.stdout.splitlines() if l.startswith('failed ')]
    assert failed and all(f' {broken.stem}: ' in l for l in failed), r.stdout
    assert f'failed eeg {broken.stem}: ' in r.stdout, r.stdout
    for m in ('eeg', 'eeg_spectrogram'):    # every other EEG file is cached, the broken one is not
        assert sorted(p.stem for p in (cache/'train'/m).glob('*.npy')) == sorted(p.stem for p in eegs[1:]), m
    shutil.copyfile(tiny/'train_eegs'/broken.name, broken)
    r = hbac('preprocess', '--data-dir', data, '--cache-dir', cache, '--modality', 'recording', '--workers', '1', '--no-progress')
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
