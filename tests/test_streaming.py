"""Streamed CSV/Parquet checks (shiftkit.shift.streaming, shiftkit.files.stream) against the in-memory path."""

import json

import numpy as np
import pandas as pd
import pytest

from shiftkit.check import Reference, check_shift
from shiftkit.cli import main
from shiftkit.files import InputError, load_single, read_path
from shiftkit.shift.labels import (
    class_imbalance,
    class_imbalance_from_counts,
    label_shift_test,
    label_shift_test_from_counts,
)
from shiftkit.shift.report import label_summary
from shiftkit.shift.scaling import Standardizer
from shiftkit.shift.streaming import FeatureHistograms, FeatureMoments, scan_pair, scan_reference, scan_target

FAST = dict(n_permutations=100, diagnose_shift=False)
COLUMNS = ["a", "b", "c", "d"]


def _frame(n, seed, shift=0.0, classes=("no", "yes", "maybe"), p=(0.5, 0.3, 0.2)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) * [1.0, 10.0, 0.1, 1.0]
    x[:, 3] = np.where(rng.random(n) < 0.995, 0.0, 5.0)  # rare values: its scale is floored at 0.1 x range
    frame = pd.DataFrame(x + shift, columns=COLUMNS)
    frame["label"] = rng.choice(classes, size=n, p=p)
    return frame


def _write(frame, path):
    if str(path).endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return str(path)


def _memory_reference(path, label="label", **kw):
    name, data = read_path(path)
    f = load_single(data, name, label_column=label, role="reference file")
    return Reference.from_data(f.x, f.y, feature_names=f.feature_names, class_names=f.class_names, **kw)


def _memory_check(reference, path, label="label", drop_na=False, **kw):
    name, data = read_path(path)
    t = load_single(data, name, label_column=label, drop_na=drop_na, feature_names=reference.feature_names,
                    class_names=reference.class_names)
    return check_shift(reference, t.x, t.y, **kw)


def _same(a, b):
    da, db = a.to_dict(), b.to_dict()
    assert json.dumps(da, sort_keys=True) == json.dumps(db, sort_keys=True)


# ---------------------------------------------------------------------------------- counts entry points


def test_counts_entry_points_equal_the_array_functions():
    rng = np.random.default_rng(0)
    ys, yt = rng.integers(0, 3, 300), rng.choice(3, 200, p=[0.6, 0.3, 0.1])
    a = label_shift_test(ys, yt, n_classes=3, n_permutations=200, seed=4)
    b = label_shift_test_from_counts(np.bincount(ys, minlength=3), np.bincount(yt, minlength=3), n_permutations=200,
                                     seed=4)
    assert a.to_dict() == b.to_dict()
    assert class_imbalance(yt).to_dict() == class_imbalance_from_counts(np.bincount(yt)).to_dict()
    # the summary from counts against a direct computation from the label arrays (4 classes, the 4th empty)
    s = label_summary(ys, yt, 4, None, ("x", "y", "z"))
    p, q = np.bincount(ys, minlength=4) / len(ys), np.bincount(yt, minlength=4) / len(yt)
    assert np.allclose(s.source_proportions, p) and np.allclose(s.target_proportions, q)
    assert s.distance.total_variation == pytest.approx(0.5 * np.abs(p - q).sum())
    assert s.classes == ("x", "y", "z", 3) and s.target_from == "labels"
    for mine, labels in ((s.source_imbalance, ys), (s.target_imbalance, yt)):
        direct = class_imbalance(labels, n_classes=4)
        assert mine.imbalance_ratio == direct.imbalance_ratio and np.array_equal(mine.counts, direct.counts)
    only_source = label_summary(ys, None, 4, None, ("x", "y", "z"))
    assert only_source.target_proportions is None and only_source.target_from == "unknown"
    with pytest.raises(ValueError, match="non-negative integer class counts"):
        label_shift_test_from_counts([1.5, 2], [1, 2])


def test_moments_merge_to_the_in_memory_standardizer():
    x = _frame(1000, 1)[COLUMNS].to_numpy().astype(np.float32).astype(np.float64)
    m = FeatureMoments.empty(4)
    for part in np.array_split(x, 7):
        m.update(part)
    other = FeatureMoments.of(x[:300]).merge(FeatureMoments.of(x[300:]))  # any order
    fit = Standardizer().fit(x)
    for moments in (m, other):
        s = moments.standardizer()
        np.testing.assert_allclose(s.mean_, fit.mean_, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s.scale_, fit.scale_, rtol=1e-12)
        assert s.how_ == fit.how_ and "1 of 4 feature(s) floored" in s.how_
    h = FeatureHistograms.empty(np.quantile(x, [0.25, 0.5, 0.75], axis=0).T)
    h.update(x[:500]).merge(FeatureHistograms.empty(h.edges).update(x[500:]))
    assert h.counts.sum(axis=1).tolist() == [1000] * 4 and abs(int(h.counts[0, 0]) - 250) <= 1


# ---------------------------------------------------------------------------------- streamed == in memory


@pytest.mark.parametrize("ext", ["csv", "parquet"])
@pytest.mark.parametrize("labels", [True, False], ids=["labels", "no-labels"])
def test_streamed_check_equals_in_memory(tmp_path, ext, labels):
    ref_path = _write(_frame(700, 0), tmp_path / f"ref.{ext}")
    tgt = _frame(523, 1, shift=0.15, p=(0.3, 0.3, 0.4))
    tgt_path = _write(tgt if labels else tgt.drop(columns="label"), tmp_path / f"tgt.{ext}")
    reference = _memory_reference(ref_path, max_samples=300)
    for chunk_rows in (97, 10_000):  # 97 does not divide 523
        streamed = scan_target(tgt_path, reference, label_column="label", max_samples=200, seed=0,
                               chunk_rows=chunk_rows)
        assert streamed.n_rows == 523 and len(streamed.x) == 200
        got = check_shift(reference, streamed, max_samples=200, max_imbalance_ratio=2.0, **FAST)
        want = _memory_check(reference, tgt_path, max_samples=200, max_imbalance_ratio=2.0, **FAST)
        _same(got, want)
    names = {c.name for c in got.criteria}
    assert ("label shift" in names) == labels
    if labels:
        assert streamed.label_counts.sum() == 523 and got.analysis.subsampling.target_rows == 523


def test_streamed_snapshot_equals_in_memory(tmp_path):
    ref_path = _write(_frame(650, 2), tmp_path / "ref.csv")
    memory = _memory_reference(ref_path, max_samples=250, seed=3)
    streamed = scan_reference(ref_path, label_column="label", max_samples=250, seed=3, chunk_rows=64)
    np.testing.assert_array_equal(streamed.x, memory.x)
    np.testing.assert_array_equal(streamed.y, memory.y)
    np.testing.assert_array_equal(streamed.label_counts, memory.label_counts)
    assert streamed.class_names == memory.class_names and streamed.classes == memory.classes
    assert streamed.n_reference == memory.n_reference == 650 and streamed.scaling == memory.scaling
    np.testing.assert_allclose(streamed.mean, memory.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(streamed.scale, memory.scale, rtol=1e-12)
    assert streamed.bandwidth == pytest.approx(memory.bandwidth, rel=1e-10)
    tgt_path = _write(_frame(400, 5, shift=0.3), tmp_path / "tgt.csv")
    a = _memory_check(streamed, tgt_path, max_samples=250, seed=3, **FAST)
    b = _memory_check(memory, tgt_path, max_samples=250, seed=3, **FAST)
    assert [(c.name, c.passed) for c in a.criteria] == [(c.name, c.passed) for c in b.criteria]
    assert [c.value for c in a.criteria] == pytest.approx([c.value for c in b.criteria], rel=1e-9)


def test_drop_na_and_a_nan_in_a_late_chunk(tmp_path):
    reference = _memory_reference(_write(_frame(400, 0), tmp_path / "ref.csv"), max_samples=200)
    tgt = _frame(450, 1)
    tgt.loc[[5, 440, 441], "b"] = np.nan
    tgt.loc[443, "label"] = None
    path = _write(tgt, tmp_path / "holes.csv")
    name, data = read_path(path)
    with pytest.raises(InputError) as memory:
        load_single(data, name, label_column="label", feature_names=reference.feature_names,
                    class_names=reference.class_names)
    with pytest.raises(InputError) as streamed:
        scan_target(path, reference, label_column="label", max_samples=200, chunk_rows=100)
    assert str(streamed.value) == str(memory.value) and "b (3 missing)" in str(streamed.value)
    s = scan_target(path, reference, label_column="label", max_samples=200, chunk_rows=100, drop_na=True)
    assert s.n_rows == 446 and s.dropped == 4
    _same(check_shift(reference, s, max_samples=200, **FAST),
          _memory_check(reference, path, drop_na=True, max_samples=200, **FAST))


def test_pair_without_snapshot_equals_in_memory(tmp_path):
    src = _write(_frame(300, 0), tmp_path / "src.csv")
    tgt = _write(_frame(260, 1, shift=0.2, classes=("no", "yes"), p=(0.6, 0.4)), tmp_path / "tgt.csv")
    reference, streamed, dropped = scan_pair(src, tgt, label_column="label", max_samples=150, chunk_rows=70)
    from shiftkit.files import load_domains_path

    d = load_domains_path(src, tgt, label_column="label")
    want = check_shift(d.x_source, d.x_target, d.y_target, y_reference=d.y_source, feature_names=d.feature_names,
                       class_names=d.class_names, max_samples=150, **FAST)
    got = check_shift(reference, streamed, max_samples=150, **FAST)
    assert dropped == (0, 0) and reference.class_names == tuple(d.class_names)  # "maybe" only in the reference
    assert [(c.name, c.passed, c.value) for c in got.criteria] == pytest.approx(
        [(c.name, c.passed, c.value) for c in want.criteria])


def test_a_class_only_in_the_target_is_an_error_on_every_path(tmp_path):
    """Labels of a pair of files are coded over both, so the reference has a class with no rows; the check
    refuses it as a snapshot check does (before: the pair path measured it, the snapshot path refused it)."""
    src = _write(_frame(300, 0), tmp_path / "src.csv")
    tgt = _write(_frame(260, 1, classes=("no", "yes", "never"), p=(0.5, 0.3, 0.2)), tmp_path / "tgt.csv")
    reference, streamed, _ = scan_pair(src, tgt, label_column="label", max_samples=150, chunk_rows=70)
    from shiftkit.files import load_domains_path

    d = load_domains_path(src, tgt, label_column="label")
    with pytest.raises(ValueError, match=r"label\(s\) \['never'\] that the reference has no rows of"):
        check_shift(reference, streamed, max_samples=150, **FAST)
    with pytest.raises(ValueError, match=r"label\(s\) \['never'\] that the reference has no rows of"):
        check_shift(d.x_source, d.x_target, d.y_target, y_reference=d.y_source, class_names=d.class_names,
                    max_samples=150, **FAST)


# ---------------------------------------------------------------------------------- bad input


def test_bad_files_give_clear_errors(tmp_path):
    reference = _memory_reference(_write(_frame(300, 0), tmp_path / "ref.csv"), max_samples=100)

    def error(path, **kw):
        with pytest.raises((InputError, ValueError)) as exc:
            scan_target(path, reference, label_column="label", max_samples=100, **kw)
        return str(exc.value)

    assert "does not exist" in error(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    assert "is empty" in error(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b,c,d,label\n")
    assert "no data rows" in error(tmp_path / "header.csv")
    _write(_frame(50, 1).drop(columns="c"), tmp_path / "fewer.csv")
    assert "missing from the target file: 'c'" in error(tmp_path / "fewer.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    assert "not a valid Parquet file" in error(tmp_path / "bad.parquet")
    late = _frame(300, 1)
    late["b"] = late["b"].astype(object)
    late.loc[290, "b"] = "oops"
    _write(late, tmp_path / "text.csv")
    assert "non-numeric feature column(s): 'b'" in error(tmp_path / "text.csv", chunk_rows=100)
    unknown = _frame(300, 1)
    unknown.loc[299, "label"] = "other"
    _write(unknown, tmp_path / "unknown.csv")
    assert "'other'" in error(tmp_path / "unknown.csv", chunk_rows=50) and "does not know" in error(
        tmp_path / "unknown.csv", chunk_rows=50)
    assert "chunk_rows" in error(tmp_path / "unknown.csv", chunk_rows=0)


# ---------------------------------------------------------------------------------- CLI


def test_cli_streams_check_and_snapshot(tmp_path, capsys):
    ref = _write(_frame(500, 0), tmp_path / "ref.parquet")
    tgt = _frame(420, 1, shift=0.5)
    tgt.loc[7, "a"] = np.nan
    tgt_path = _write(tgt, tmp_path / "tgt.csv")
    snap = tmp_path / "snap.npz"
    assert main(["snapshot", "--reference", ref, "--label-column", "label", "--max-samples", "200",
                 "--chunk-rows", "128", "--out", str(snap)]) == 0
    assert "500 reference rows" in capsys.readouterr().out
    argv = ["check", "--reference", str(snap), "--target", tgt_path, "--label-column", "label", "--max-samples", "200",
            "--n-permutations", "100", "--no-diagnosis", "--chunk-rows", "100", "--json", "-"]
    assert main(argv) == 2
    assert "a (1 missing)" in capsys.readouterr().err
    assert main(argv + ["--drop-na"]) == 1
    out = capsys.readouterr()
    streamed = json.loads(out.out)
    assert "dropped 1 row(s)" in out.err and streamed["subsampling"]["target_rows"] == 419
    memory = _memory_check(Reference.load(snap), tgt_path, drop_na=True, max_samples=200, **FAST)
    assert streamed["criteria"] == json.loads(memory.to_json())["criteria"]
    assert main(argv[:-2] + ["--drop-na", "--chunk-rows", "0"]) == 2
    assert "--chunk-rows" in capsys.readouterr().err


def test_embedding_over_every_streamed_row(tmp_path):
    from shiftkit.shift import RFFEmbedding

    reference = _memory_reference(_write(_frame(300, 0), tmp_path / "ref.csv"), max_samples=100)
    frame = _frame(350, 1)
    path = _write(frame, tmp_path / "tgt.csv")
    s = scan_target(path, reference, label_column="label", max_samples=100, chunk_rows=90,
                    embedding=lambda: RFFEmbedding(32, bandwidth=reference.bandwidth, seed=0))
    whole = RFFEmbedding(32, bandwidth=reference.bandwidth, seed=0).partial_fit(
        frame[COLUMNS].to_numpy().astype(np.float32))
    assert s.stats.embedding.n_samples_ == 350 and s.stats.moments.n == 350
    np.testing.assert_allclose(s.stats.embedding.sum_, whole.sum_, rtol=1e-5, atol=1e-3)


def _snapshot(tmp_path):
    ref = _write(_frame(300, 0), tmp_path / "ref.parquet")
    assert main(["snapshot", "--reference", ref, "--label-column", "label", "--out", str(tmp_path / "ref.npz")]) == 0
    return str(tmp_path / "ref.npz")


@pytest.mark.parametrize("change,message", [
    (lambda f: f.assign(extra=1.0), "has the extra column(s) 'extra'"),
    (lambda f: f.drop(columns=["c"]), "lacks the column(s) 'c'"),
    (lambda f: f.drop(columns=["label"]), "lacks the label column 'label', which the first part has"),
])
def test_every_part_of_a_multi_part_table_has_the_first_parts_columns(tmp_path, capsys, change, message):
    """A glob of Parquet parts read by the local engine: only the first chunk's columns were checked, so a
    later part's extra column was dropped silently, a label column only in later parts was ignored (the
    label criterion vanished, exit 0), and a missing one was a raw KeyError. Every part is checked now."""
    ref = _snapshot(tmp_path)
    parts = tmp_path / "parts"
    parts.mkdir()
    _write(_frame(150, 1), parts / "p0.parquet")
    _write(change(_frame(150, 2)), parts / "p1.parquet")
    for argv in (["check", "--reference", ref, "--target", str(parts / "*.parquet")],
                 ["snapshot", "--reference", str(parts / "*.parquet"), "--out", str(tmp_path / "s.npz")]):
        assert main(argv + ["--label-column", "label", "--n-permutations", "100", "--no-diagnosis"][
            : 2 if argv[0] == "snapshot" else None]) == 2
        err = capsys.readouterr().err
        assert "part 'p1.parquet'" in err and message in err and "Traceback" not in err


def test_a_label_column_only_in_later_parts_is_not_ignored(tmp_path, capsys):
    ref = _snapshot(tmp_path)
    parts = tmp_path / "parts"
    parts.mkdir()
    _write(_frame(150, 1).drop(columns=["label"]), parts / "p0.parquet")
    _write(_frame(150, 2), parts / "p1.parquet")
    assert main(["check", "--reference", ref, "--target", str(parts / "*.parquet"), "--label-column", "label",
                 "--n-permutations", "100", "--no-diagnosis"]) == 2
    assert "has the label column 'label', which the first part lacks" in capsys.readouterr().err
