"Bad inputs: every loader of hbac.data raises a DataError whose message names the file and the problem."
import shutil
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hbac.data import (EEG_CHANNELS, SPEC_COLUMNS, VOTE_COLS, DataError, check_files, eeg_path, read_eeg,
                       read_spectrogram, read_test_csv, read_train_csv, real_fixtures_dir, spectrogram_path)
from hbac.synthetic import tiny_dataset


@pytest.fixture(scope='module')
def tiny():
    return tiny_dataset()


@pytest.fixture
def data(tiny, tmp_path):
    "A private copy of the tiny synthetic dataset (tests may damage it)."
    return shutil.copytree(tiny, tmp_path/'data')


@pytest.fixture
def real():
    fx = real_fixtures_dir()
    if fx is None: pytest.skip('real fixtures not found at ../shared/fixtures/real (set HBAC_FIXTURES)')
    return fx/'hms'


def _eeg_table(n=8000, seed=0):
    rng = np.random.default_rng(seed)
    return {c: rng.normal(0, 20, n).astype(np.float32) for c in EEG_CHANNELS}


def _write(path, cols):
    pq.write_table(pa.table(cols), path)
    return path


def _first_eeg(data):
    df = read_train_csv(data)
    return eeg_path(data, 'train', df.eeg_id.iloc[0]), spectrogram_path(data, 'train', df.spectrogram_id.iloc[0])


# --- EEG parquet ---------------------------------------------------------------------------------------------------

def test_eeg_shorter_than_window(tmp_path):
    p = _write(tmp_path/'40s.parquet', _eeg_table(8000))
    assert read_eeg(p).shape == (8000, 20)
    with pytest.raises(DataError, match=r'40s\.parquet: has 8000 samples \(40\.0 s\) but needs 50\.0 s'):
        read_eeg(p, min_seconds=50)


def test_eeg_missing_columns(data):
    p, _ = _first_eeg(data)
    t = pq.read_table(p).drop(['O2', 'EKG'])
    pq.write_table(t, p)
    with pytest.raises(DataError, match=rf'{p.name}: missing columns O2, EKG'): read_eeg(p)


def test_eeg_extra_columns(data):
    p, _ = _first_eeg(data)
    t = pq.read_table(p)
    pq.write_table(t.append_column('A1', t.column('Fp1')), p)
    with pytest.raises(DataError, match=rf'{p.name}: unexpected extra columns A1'): read_eeg(p)


def test_eeg_wrong_dtype(tmp_path):
    cols = _eeg_table(); cols['Cz'] = cols['Cz'].astype(str)
    p = _write(tmp_path/'strings.parquet', cols)
    with pytest.raises(DataError, match=r"strings\.parquet: column 'Cz' has type string, expected a float type"):
        read_eeg(p)


def test_eeg_float64_and_int_accepted(tmp_path):
    cols = {c: v.astype(np.float64) for c, v in _eeg_table().items()}
    cols['EKG'] = cols['EKG'].astype(np.int32)
    x = read_eeg(_write(tmp_path/'wide.parquet', cols))
    assert x.dtype == np.float32 and x.shape == (8000, 20)


def test_eeg_all_nan_channels(tmp_path):
    cols = _eeg_table(); cols['T4'][:] = np.nan; cols['Pz'][:] = np.nan
    cols['Fp1'][:100] = np.nan                       # a NaN run is fine, only whole channels are refused
    p = _write(tmp_path/'dead.parquet', cols)
    with pytest.raises(DataError, match=r'dead\.parquet: channels Pz, T4 are all NaN'): read_eeg(p)


def test_eeg_nan_runs_kept(tmp_path):
    cols = _eeg_table(); cols['Fp1'][:100] = np.nan
    x = read_eeg(_write(tmp_path/'run.parquet', cols))
    assert np.isnan(x[:100, 0]).all() and not np.isnan(x[100:]).any()


def test_eeg_truncated(data):
    p, _ = _first_eeg(data)
    p.write_bytes(p.read_bytes()[:len(p.read_bytes())//2])
    with pytest.raises(DataError, match=rf'{p.name}: not a readable parquet file'): read_eeg(p)


def test_eeg_corrupt(tmp_path):
    p = tmp_path/'garbage.parquet'; p.write_bytes(b'PAR1' + bytes(range(256))*10 + b'PAR1')
    with pytest.raises(DataError, match=r'garbage\.parquet: not a readable parquet file'): read_eeg(p)


def test_eeg_absent(tmp_path):
    with pytest.raises(DataError, match=r'nothere\.parquet: file not found'): read_eeg(tmp_path/'nothere.parquet')


def test_eeg_empty(tmp_path):
    p = _write(tmp_path/'empty.parquet', _eeg_table(0))
    with pytest.raises(DataError, match=r'empty\.parquet: has no rows'): read_eeg(p)


# --- spectrogram parquet -------------------------------------------------------------------------------------------

def test_spectrogram_shorter_than_window(data):
    _, p = _first_eeg(data)
    pq.write_table(pq.read_table(p).slice(0, 100), p)
    with pytest.raises(DataError, match=rf'{p.name}: has 100 rows \(200\.0 s\) but needs 600\.0 s'):
        read_spectrogram(p, min_seconds=600)


def test_spectrogram_missing_column(data):
    _, p = _first_eeg(data)
    pq.write_table(pq.read_table(p).drop(['RP_19.92']), p)
    with pytest.raises(DataError, match=rf'{p.name}: missing columns RP_19\.92'): read_spectrogram(p)


def test_spectrogram_float_time(data):
    _, p = _first_eeg(data)
    t = pq.read_table(p)
    pq.write_table(t.set_column(0, 'time', t.column('time').cast(pa.float64())), p)
    with pytest.raises(DataError, match=rf"{p.name}: column 'time' has type double, expected an integer type"):
        read_spectrogram(p)


def test_spectrogram_non_numeric_values(data):
    _, p = _first_eeg(data)
    t = pq.read_table(p)
    i = t.schema.get_field_index('LL_1.17')
    pq.write_table(t.set_column(i, 'LL_1.17', t.column(i).cast(pa.string())), p)
    with pytest.raises(DataError, match=rf"{p.name}: column 'LL_1.17' has type string"): read_spectrogram(p)


def test_spectrogram_all_nan(tmp_path):
    cols = {'time': np.arange(1, 600, 2, dtype=np.int64), **{c: np.full(300, np.nan, np.float32) for c in SPEC_COLUMNS}}
    p = _write(tmp_path/'blank.parquet', cols)
    with pytest.raises(DataError, match=r'blank\.parquet: every value is NaN'): read_spectrogram(p)


def test_spectrogram_int16_time_real(real):
    t, v = read_spectrogram(real/'test_spectrograms/853520.parquet', min_seconds=600)
    assert t.dtype == np.int64 and v.dtype == np.float32 and v.shape == (300, 400)


def test_real_eeg_too_short_for_window(real):
    with pytest.raises(DataError, match=r'3911565283\.parquet: has 10000 samples \(50\.0 s\) but needs 51\.0 s'):
        read_eeg(real/'test_eegs/3911565283.parquet', min_seconds=51)


# --- csv files -----------------------------------------------------------------------------------------------------

def test_file_named_in_csv_absent(data):
    df = read_train_csv(data)
    gone = eeg_path(data, 'train', df.eeg_id.iloc[0]); gone.unlink()
    spec = spectrogram_path(data, 'train', df.spectrogram_id.iloc[-1]); spec.unlink()
    missing = check_files(data, df, 'train', raise_error=False)
    assert missing == {'eeg': [int(df.eeg_id.iloc[0])], 'spectrogram': [int(df.spectrogram_id.iloc[-1])]}
    with pytest.raises(DataError, match=rf'train\.csv names files that do not exist: 1 eeg files absent from .*train_eegs '
                                        rf'\(ids {df.eeg_id.iloc[0]}\)'):
        check_files(data, df, 'train')


def test_test_file_absent(data):
    df = read_test_csv(data)
    eeg_path(data, 'test', df.eeg_id.iloc[1]).unlink()
    with pytest.raises(DataError, match=rf'test_eegs \(ids {df.eeg_id.iloc[1]}\)'): check_files(data, df, 'test')


def test_vote_column_missing(data):
    df = pd.read_csv(data/'train.csv').drop(columns=['grda_vote'])
    df.to_csv(data/'train.csv', index=False)
    with pytest.raises(DataError, match=r'train\.csv: missing columns grda_vote'): read_train_csv(data)


def test_extra_csv_column(data):
    df = pd.read_csv(data/'train.csv'); df['fold'] = 0
    df.to_csv(data/'train.csv', index=False)
    with pytest.raises(DataError, match=r'train\.csv: unexpected extra columns fold'): read_train_csv(data)


def test_negative_vote(data):
    df = pd.read_csv(data/'train.csv'); df.loc[1, 'lpd_vote'] = -2
    df.to_csv(data/'train.csv', index=False)
    with pytest.raises(DataError, match=r"train\.csv: column 'lpd_vote' must be >= 0; row 1 has -2"): read_train_csv(data)


def test_non_numeric_vote(data):
    df = pd.read_csv(data/'train.csv'); df['seizure_vote'] = df['seizure_vote'].astype(object); df.loc[0, 'seizure_vote'] = 'many'
    df.to_csv(data/'train.csv', index=False)
    with pytest.raises(DataError, match=r"train\.csv: column 'seizure_vote' must hold numbers; row 0 has 'many'"):
        read_train_csv(data)


def test_row_without_votes(data):
    df = pd.read_csv(data/'train.csv'); df.loc[2, list(VOTE_COLS)] = 0
    df.to_csv(data/'train.csv', index=False)
    with pytest.raises(DataError, match=r'train\.csv: 1 rows have no votes \(first: row 2\)'): read_train_csv(data)


def test_non_numeric_id(data):
    df = pd.read_csv(data/'train.csv'); df['eeg_id'] = df['eeg_id'].astype(object); df.loc[0, 'eeg_id'] = 'abc'
    df.to_csv(data/'train.csv', index=False)
    with pytest.raises(DataError, match=r"train\.csv: column 'eeg_id' must hold integers; row 0 has 'abc'"):
        read_train_csv(data)


def test_fractional_id(data):
    df = pd.read_csv(data/'test.csv'); df['patient_id'] = df['patient_id'] + 0.5
    df.to_csv(data/'test.csv', index=False)
    with pytest.raises(DataError, match=r"test\.csv: column 'patient_id' must hold integers; row 0 has \d+\.5 \(2 bad rows\)"):
        read_test_csv(data)


def test_missing_id_value(data):
    df = pd.read_csv(data/'test.csv'); df['spectrogram_id'] = df['spectrogram_id'].astype(float); df.loc[1, 'spectrogram_id'] = np.nan
    df.to_csv(data/'test.csv', index=False)
    with pytest.raises(DataError, match=r"test\.csv: column 'spectrogram_id' must hold integers; row 1 is empty"):
        read_test_csv(data)


def test_csv_absent(tmp_path):
    with pytest.raises(DataError, match=r'train\.csv: file not found'): read_train_csv(tmp_path)


def test_csv_empty(tmp_path):
    (tmp_path/'test.csv').write_text('')
    with pytest.raises(DataError, match=r'test\.csv: not a readable csv file'): read_test_csv(tmp_path)


def test_real_csvs_pass(real):
    assert read_train_csv(real).eeg_id.dtype == np.int64
    assert check_files(real, read_test_csv(real), 'test') == {'eeg': [], 'spectrogram': []}


def test_synthetic_refuses_non_empty_dir(tmp_path):
    from hbac.synthetic import make_synthetic_dataset, preset_config
    (tmp_path/'keep.txt').write_text('mine')
    with pytest.raises(FileExistsError, match=rf'{tmp_path.name} is not empty'):
        make_synthetic_dataset(tmp_path, preset_config('tiny'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['keep.txt']
