"""shiftkit.files: size limits before decompression (NPZ/NPY/.keras), label encoding, dependency floors."""

import io
import pathlib
import re
import tomllib
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest
from _synthetic import csv_bytes, npz_bytes

from shiftkit import files
from shiftkit.files import InputError

ROOT = pathlib.Path(__file__).resolve().parents[1]
MiB = 1024**2


# ------------------------------------------------------------------------------ helpers


def _zeros_npz(rows: int, cols: int, *, name: str = "x", dtype: str = "<f8") -> bytes:
    """`np.savez_compressed(buf, x=np.zeros((rows, cols)))`, streamed: the array is never built here."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": dtype, "fortran_order": False, "shape": (rows, cols)})
            left = rows * cols * np.dtype(dtype).itemsize
            chunk = bytes(1 << 20)
            while left > 0:
                fh.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
    return buf.getvalue()


def _lying_npz(shape: tuple[int, ...]) -> bytes:
    """An NPZ whose 'x' header announces `shape` (float64) but holds 80 bytes of data."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": shape})
    member.write(bytes(80))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", member.getvalue())
    return buf.getvalue()


def _peak_while(fn) -> tuple[int, BaseException | None]:
    """Peak traced allocation (bytes) while `fn()` runs, and the exception it raised."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    error = None
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        error = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, error




# ------------------------------------------------------------------------------ decompression bombs


def test_npz_bomb_is_refused_before_allocating():
    # The file scaled down: zeros compress ~1000-fold; 40 MB of float64 in a ~0.2 MB file.
    bomb = _zeros_npz(1_250_000, 4)
    assert len(bomb) < 0.5 * MiB
    expanded = 1_250_000 * 4 * 8
    peak, error = _peak_while(lambda: files.load_arrays(bomb, "bomb.npz", role="source file", max_bytes=8 * MiB))
    assert isinstance(error, InputError), error
    message = str(error)
    assert "'bomb.npz'" in message and "source file" in message
    assert "(1250000, 4)" in message and "38.1 MiB" in message and "8 MiB" in message
    assert "max_bytes" in message and "--max-gib" in message and files.MAX_BYTES_ENV in message
    assert peak < expanded / 10, f"peak {peak / MiB:.1f} MiB while refusing a {expanded / MiB:.0f} MiB array"
    # Under a limit it fits, the same file loads.
    x, y, _ = files.load_arrays(bomb, "bomb.npz", max_bytes=64 * MiB)
    assert x.shape == (1_250_000, 4) and y is None


def test_lying_npy_header_is_refused_with_the_default_limit():
    # A 0.3 KB file whose header claims 32 GB: numpy would allocate the array before reading.
    lying = _lying_npz((1_000_000_000, 4))
    peak, error = _peak_while(lambda: files.load_arrays(lying, "huge.npz"))
    assert isinstance(error, InputError), error
    assert "'huge.npz'" in str(error) and "29.8 GiB" in str(error) and "2 GiB" in str(error)
    assert peak < 4 * MiB
    # A header that claims more than the member holds, within the limit: corrupt, not allocated.
    with pytest.raises(InputError, match="corrupt.*announces"):
        files.load_arrays(_lying_npz((100_000, 4)), "short.npz")


def test_npy_header_checked_too(tmp_path):
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 4)})
    with pytest.raises(InputError, match=r"'huge.npy'.*29.8 GiB"):
        files.load_arrays(member.getvalue() + bytes(80), "huge.npy")
    ok = io.BytesIO()
    np.save(ok, np.ones((10, 3)))
    with pytest.raises(InputError, match="truncated"):
        files.load_arrays(ok.getvalue()[:-16], "cut.npy")
    x, _, _ = files.load_arrays(ok.getvalue(), "ok.npy")
    assert x.shape == (10, 3)


def test_zip_member_sizes_are_checked():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zipfile.ZipFile(io.BytesIO(npz_bytes(x=np.ones((5, 2))))) as small:
            zf.writestr("x.npy", small.read("x.npy"))
        zf.writestr("padding.bin", bytes(20 * MiB))
    with pytest.raises(InputError, match=r"'padding.bin' expands to 20 MiB"):
        files.load_arrays(buf.getvalue(), "padded.npz", max_bytes=16 * MiB)


def test_limit_from_the_environment(monkeypatch):
    bomb = _zeros_npz(100_000, 4)  # 3.05 MiB expanded
    monkeypatch.setenv(files.MAX_BYTES_ENV, "0.001")  # about 1 MiB
    with pytest.raises(InputError, match="more than the limit of 1.02 MiB"):
        files.load_arrays(bomb, "b.npz")
    monkeypatch.setenv(files.MAX_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match=files.MAX_BYTES_ENV):
        files.max_bytes_limit()
    monkeypatch.delenv(files.MAX_BYTES_ENV)
    assert files.max_bytes_limit() == files.MAX_BYTES == 2 * 1024**3
    with pytest.raises(ValueError, match="max_bytes"):
        files.max_bytes_limit(0)
    monkeypatch.setenv(files.MAX_BYTES_ENV, "inf")  # parses as a float, but is no limit in bytes
    with pytest.raises(ValueError, match=files.MAX_BYTES_ENV + ".*positive finite number"):
        files.max_bytes_limit()


def test_bytes_from_gib_is_the_one_gib_conversion():
    assert files.bytes_from_gib(0.5) == 512 * MiB
    assert files.bytes_from_gib(1e-12) == 1
    for bad, error in ((0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("8", TypeError)):
        with pytest.raises(error, match="--max-gib must be a positive"):
            files.bytes_from_gib(bad, "--max-gib")


def test_read_path_checks_the_size_before_reading(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 300_000)
    with pytest.raises(InputError, match=r"'.*big.csv'.*the file is 1.1\d MiB.*1 MiB"):
        files.read_path(path, "source file", max_bytes=MiB)
    assert files.read_path(path, max_bytes=2 * MiB)[0] == "big.csv"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    path = tmp_path_factory.mktemp("model") / "m.keras"
    model.save(path)
    return path


def test_keras_archive_size_is_checked_before_keras_opens_it(model_file):
    data = model_file.read_bytes()
    total = files.check_keras_archive(model_file)
    assert total >= len(data) // 2 and files.check_keras_archive(data) == total
    with pytest.raises(InputError, match=r"'m.keras'.*archive members expand to .*more than the limit of 1 KiB"):
        files.check_keras_archive(data, 1024, filename="m.keras")
    with pytest.raises(InputError, match=r"'m.keras'.*the file is .*KiB.*more than the limit of 1 KiB"):
        files.check_keras_archive(model_file, 1024)
    with pytest.raises(InputError, match=r"'m.keras'.*more than the limit"):
        files.load_keras_model(data, "m.keras", max_bytes=1024)
    with pytest.raises(InputError, match="more than the limit"):
        files.load_model_path(model_file, max_bytes=1024)
    with pytest.raises(InputError, match="empty or corrupt"):
        files.check_keras_archive(b"PK\x03\x04 broken", filename="x.keras")
    # A bomb in a .keras archive: a 64 MiB member in a small file.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", bytes(64 * MiB))
    assert len(buf.getvalue()) < MiB
    with pytest.raises(InputError, match=r"'model.weights.h5' alone to 64 MiB"):
        files.load_keras_model(buf.getvalue(), "bomb.keras", max_bytes=32 * MiB)
    assert files.load_keras_model(data, "m.keras").outputs[0].shape[-1] == 2


def test_an_unbuilt_model_file_is_a_clear_input_error(tmp_path):
    import keras

    path = tmp_path / "unbuilt.keras"
    with pytest.warns(UserWarning, match="not yet been built"):
        keras.Sequential([keras.layers.Dense(2)]).save(path)
    with pytest.raises(InputError, match=r"'unbuilt.keras' has no defined inputs/outputs.*keras.Input\(shape"):
        files.load_model_path(path)


def test_streamlit_upload_limit_is_explicit_and_within_the_file_limit():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    upload_mb = config["server"]["maxUploadSize"]
    assert isinstance(upload_mb, int) and 1 <= upload_mb
    assert upload_mb * MiB <= files.MAX_BYTES


def test_dependency_floors_exclude_known_unsafe_versions():
    from importlib.metadata import version

    from packaging.version import Version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", dep.strip())
        assert m, f"dependency without a floor: {dep!r}"
        floors[m.group(1).lower()] = Version(m.group(2))
    # keras: safe_mode bypasses CVE-2025-1550 (<3.9), CVE-2025-8747 / CVE-2025-9906 (<3.11),
    # CVE-2025-49655 (<3.11.3), CVE-2025-12058 (<3.12), CVE-2026-1462 (<3.14), and the Lambda
    # safe_mode=None bypass (3.14) fixed in the 3.15.1 security release.
    assert floors["keras"] >= Version("3.15.1")
    assert floors["scipy"] >= Version("1.11")  # scipy.stats.false_discovery_control
    assert "matplotlib" in floors  # imported directly by shiftkit.plots
    for name, floor in floors.items():
        assert Version(version(name)) >= floor, f"installed {name} is below its floor {floor}"


# ------------------------------------------------------------------------------ labels


@pytest.mark.parametrize(
    "values, names",
    [
        ([1, 2], ("1", "2")),
        ([2019, 2020], ("2019", "2020")),
        ([True, False], ("False", "True")),
        (["no", "yes"], ("no", "yes")),
        ([1.0, 2.0], ("1", "2")),
    ],
    ids=["1..K", "years", "bools", "strings", "whole-floats"],
)
def test_csv_labels_any_values_become_codes(values, names):
    rng = np.random.default_rng(0)
    labels = np.array(values * 20, dtype=object if isinstance(values[0], str) else None)
    src = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "label": labels})
    tgt = src.iloc[::-1].reset_index(drop=True)
    d = files.load_uploaded_domains(("s.csv", csv_bytes(src)), ("t.csv", csv_bytes(tgt)), "label")
    assert d.class_names == names and d.n_classes == 2
    assert sorted(set(d.y_source.tolist())) == [0, 1]
    assert np.bincount(d.y_source).tolist() == [20, 20]
    assert d.y_target.tolist() == d.y_source[::-1].tolist()  # one coding for both files
    assert d.class_names[d.y_source[0]] == names[sorted(values).index(values[0])]


def test_npz_labels_any_values_become_codes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    d = files.load_uploaded_domains(("s.npz", npz_bytes(x=x, y=np.arange(30) % 2 + 1)),
                                    ("t.npz", npz_bytes(x=x, y=np.full(30, 2))))
    assert d.class_names == ("1", "2") and d.y_target.tolist() == [1] * 30
    d = files.load_uploaded_domains(("s.npz", npz_bytes(x=x, y=np.array(["cat", "dog", "emu"] * 10))),
                                    ("t.npz", npz_bytes(x=x)))
    assert d.class_names == ("cat", "dog", "emu") and d.y_source[:3].tolist() == [0, 1, 2]
    with pytest.raises(InputError, match="fractional"):
        files.load_uploaded_domains(("s.npz", npz_bytes(x=x, y=np.linspace(0, 1, 30))), ("t.npz", npz_bytes(x=x)))


def test_labels_recoded_for_a_model():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    # Codes 0 and 2 of a 3-class model stay the model's output indices (class 1 absent).
    d = files.load_uploaded_domains(("s.npz", npz_bytes(x=x, y=np.arange(30) % 2 * 2)), ("t.npz", npz_bytes(x=x)))
    assert d.y_source[:2].tolist() == [0, 1] and d.class_names == ("0", "2")
    m = d.for_model(3)
    assert m.y_source[:2].tolist() == [0, 2] and m.class_names == ("0", "1", "2") and m.n_classes == 3
    # Labels 1/2 and a 2-output (or single-logit) model: mapped in sorted order.
    d = files.load_uploaded_domains(("s.npz", npz_bytes(x=x, y=np.arange(30) % 2 + 1)), ("t.npz", npz_bytes(x=x)))
    assert d.for_model(2).y_source[:2].tolist() == [0, 1] and d.for_model(2).class_names == ("1", "2")
    # Labels 1/2 index a 3-output model's classes 1 and 2 as they are.
    assert d.for_model(3).y_source[:2].tolist() == [1, 2]
    with pytest.raises(InputError, match="cannot be matched to the model's 1 output class"):
        d.for_model(1)
    # Built-in scenarios keep their class names.
    s = files.scenario_domains("hospitals_no_shift", seed=0)
    assert s.for_model(2).class_names == s.class_names


def test_load_single_maps_labels_to_the_reference_classes():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(size=12), "label": [1, 2, 2] * 4})
    alone = files.load_single(csv_bytes(frame), "t.csv", label_column="label")
    assert alone.class_names == ("1", "2") and alone.y.tolist()[:3] == [0, 1, 1]
    ref = files.load_single(csv_bytes(frame), "t.csv", label_column="label", class_names=("1", "2"))
    assert ref.y.tolist() == alone.y.tolist()
    with pytest.raises(InputError, match=r"label\(s\) '3'.*does not know"):
        files.load_single(csv_bytes(frame.assign(label=3)), "t.csv", label_column="label", class_names=("1", "2"))
    arrays = files.load_single(npz_bytes(x=rng.normal(size=(12, 2)), y=np.array([2019, 2020] * 6)), "t.npz")
    assert arrays.class_names == ("2019", "2020") and arrays.y.tolist()[:2] == [0, 1]


def test_the_split_package_keeps_every_public_name():
    """shiftkit.files is a package now (common, tables, arrays, models, domains); its names stay put."""
    from shiftkit.files import arrays, common, domains, models, tables

    for name in files.__all__:
        assert getattr(files, name) is not None, name
    assert files.InputError is common.InputError and files.Domains is domains.Domains
    assert files.load_arrays is arrays.load_arrays and files.read_csv is tables.read_csv
    assert files.load_keras_model is models.load_keras_model


@pytest.mark.parametrize("name, message", [("p.npz", "holds object arrays"), ("p.npy", "holds an object array")])
def test_pickled_arrays_are_refused_with_the_fix(name, message):
    buf = io.BytesIO()
    objects = np.array([{"a": 1}] * 6, dtype=object)
    np.savez(buf, x=objects) if name.endswith(".npz") else np.save(buf, objects)
    with pytest.raises(InputError, match=rf"'{name}' {message} .*not loaded for safety. Save (a )?plain numeric"):
        files.load_arrays(buf.getvalue(), name)


# ------------------------------------------------------------------------------ Parquet


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def test_parquet_tables_load_like_their_csv():
    rng = np.random.default_rng(3)
    src = pd.DataFrame({"a": rng.normal(size=40), "b": rng.integers(0, 5, 40), "label": ["no", "yes"] * 20})
    tgt = src.sample(frac=1.0, random_state=0).reset_index(drop=True)
    from_csv = files.load_uploaded_domains(("s.csv", csv_bytes(src)), ("t.csv", csv_bytes(tgt)), "label")
    from_parquet = files.load_uploaded_domains(("s.parquet", _parquet_bytes(src)), ("t.pq", _parquet_bytes(tgt)),
                                               "label")
    mixed = files.load_uploaded_domains(("s.csv", csv_bytes(src)), ("t.parquet", _parquet_bytes(tgt)), "label")
    for d in (from_parquet, mixed):
        np.testing.assert_array_equal(d.x_source, from_csv.x_source)
        np.testing.assert_array_equal(d.x_target, from_csv.x_target)
        np.testing.assert_array_equal(d.y_target, from_csv.y_target)
        assert d.class_names == ("no", "yes") and d.feature_names == ("a", "b")
    assert files.csv_columns(_parquet_bytes(src), "s.parquet") == ["a", "b", "label"]
    single = files.load_single(_parquet_bytes(tgt[["b", "a"]]), "t.parquet", feature_names=("a", "b"))
    np.testing.assert_array_equal(single.x, from_csv.x_target)  # reordered to the reference's columns


def test_parquet_paths_and_bad_parquet_files(tmp_path):
    frame = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) ** 2})
    (tmp_path / "s.parquet").write_bytes(_parquet_bytes(frame))
    (tmp_path / "t.parquet").write_bytes(_parquet_bytes(frame * 2))
    d = files.load_domains_path(tmp_path / "s.parquet", tmp_path / "t.parquet")
    assert d.x_target[3].tolist() == [6.0, 18.0] and d.y_source is None
    with pytest.raises(InputError, match=r"'t.parquet' is not a valid Parquet file"):
        files.load_uploaded_domains(("s.parquet", _parquet_bytes(frame)), ("t.parquet", csv_bytes(frame)))
    with pytest.raises(InputError, match="non-numeric feature column.*'when'"):
        dates = frame.assign(when=pd.Timestamp("2024-01-01"))
        files.load_uploaded_domains(("s.parquet", _parquet_bytes(dates)), ("t.parquet", _parquet_bytes(dates)))
    with pytest.raises(InputError, match="Unsupported file type .xlsx: use .csv or .parquet tables"):
        files.load_uploaded_domains(("s.xlsx", b"x"), ("t.xlsx", b"x"))


def test_parquet_bomb_is_refused_before_decompressing():
    # Zeros compress to almost nothing: 40 MB of float64 in a file of a few KB.
    bomb = _parquet_bytes(pd.DataFrame(np.zeros((1_250_000, 4)), columns=list("abcd")))
    assert len(bomb) < 0.5 * MiB
    expanded = 1_250_000 * 4 * 8
    import pyarrow

    pool = pyarrow.default_memory_pool()  # Arrow decompresses outside Python: tracemalloc cannot see it
    peak_before = pool.max_memory()
    with pytest.raises(InputError) as error:
        files.read_parquet(bomb, "bomb.parquet", role="source file", max_bytes=8 * MiB)
    message = str(error.value)
    assert "'bomb.parquet'" in message and "1250000 rows x 4 columns" in message and "8 MiB" in message
    grown = pool.max_memory() - peak_before  # the pool's peak: would grow by ~75 MiB had it been read
    assert grown < expanded / 10, f"Arrow's peak grew {grown / MiB:.1f} MiB while refusing a {expanded / MiB:.0f} MiB table"
    assert files.read_parquet(bomb, "bomb.parquet", max_bytes=64 * MiB).shape == (1_250_000, 4)


# ---------------------------------------------------------------------------- the row index pandas writes
def _indexed_csv(start: int = 0) -> bytes:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=20), "b": rng.normal(size=20)}, index=range(start, start + 20))
    return frame.to_csv().encode()  # to_csv's default: the index as a first column with an empty header


def test_the_row_index_pandas_writes_is_dropped_with_a_note(tmp_path):
    with pytest.warns(files.InputNote, match=r"row index .* index=False"):
        frame = files.read_csv(_indexed_csv(400), "t.csv")
    assert list(frame.columns) == ["a", "b"]
    path = tmp_path / "t.csv"
    path.write_bytes(_indexed_csv(400))
    from shiftkit.files.stream import table_chunks
    with pytest.warns(files.InputNote):
        chunks = list(table_chunks(path, chunk_rows=7))
    assert all(list(c.columns) == ["a", "b"] for c in chunks) and sum(len(c) for c in chunks) == 20


def test_an_unnamed_column_of_values_is_kept():
    data = b",a\n0.5,1\n1.5,2\n2.5,3\n"  # not integers: not an index
    assert list(files.read_csv(data, "t.csv").columns) == ["Unnamed: 0", "a"]
