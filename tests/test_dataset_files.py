"""Unit tests of pmlv_utils.dataset_files: labels, CSV rows, the deterministic split."""

from collections import Counter

import pytest

from pmlv_utils import dataset_files as dfs


def test_read_labels_in_file_order(tmp_path):
    f = tmp_path / "dict.txt"
    f.write_text("daisy\n\ndandelion\n  roses \n")
    assert dfs.read_labels(str(f)) == ["daisy", "dandelion", "roses"]


@pytest.mark.parametrize("text", ["", "\n\n", "daisy\n"])
def test_read_labels_needs_two(tmp_path, text):
    f = tmp_path / "dict.txt"
    f.write_text(text)
    with pytest.raises(ValueError, match=r"dict\.txt.*at least 2"):
        dfs.read_labels(str(f))


def test_read_labels_rejects_duplicates_and_missing_file(tmp_path):
    f = tmp_path / "dict.txt"
    f.write_text("daisy\nroses\ndaisy\n")
    with pytest.raises(ValueError, match="daisy"):
        dfs.read_labels(str(f))
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        dfs.read_labels(str(tmp_path / "nope.txt"))


def test_read_all_data_keeps_and_reports_bad_lines(tmp_path):
    csv_file = tmp_path / "sub" / "all_data.csv"
    csv_file.parent.mkdir()
    csv_file.write_text(
        "daisy/a.jpg,daisy\n"
        "\n"
        "gs://bucket/flower_photos/roses/b.jpg,roses\n"
        "/abs/tulips/c.jpg , tulips\n"
        "only-one-field\n"
        "x.jpg,roses,extra\n"
        '"with,comma/d.jpg",daisy\n'
    )
    reports = []
    rows = dfs.read_all_data(str(csv_file), report=reports.append)
    assert [r.line for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert rows[0].path == str(tmp_path / "sub" / "daisy" / "a.jpg") and rows[0].problem is None
    assert rows[1].problem == dfs.EMPTY_LINE
    assert rows[2].path == "gs://bucket/flower_photos/roses/b.jpg"
    assert (rows[3].path, rows[3].label) == ("/abs/tulips/c.jpg", "tulips")
    assert rows[4].problem == rows[5].problem == dfs.MALFORMED_LINE
    assert rows[6].path.endswith("with,comma/d.jpg") and rows[6].problem is None
    assert (
        len(reports) == 1
        and "3 unusable line(s) of 7" in reports[0]
        and "line 2: empty line" in reports[0]
    )


def test_read_all_data_missing_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        dfs.read_all_data(str(tmp_path / "missing.csv"))


def test_relative_paths_resolve_against_a_gcs_folder():
    assert (
        dfs.resolve_path("daisy/a.jpg", "gs://b/flower_photos")
        == "gs://b/flower_photos/daisy/a.jpg"
    )


def test_split_is_stable_and_ignores_the_folder_above_class():
    local = "/home/me/data/flower_photos/daisy/100080576_f52e8ee070_n.jpg"
    cloud = "gs://cloud-ml-data/img/flower_photos/daisy/100080576_f52e8ee070_n.jpg"
    assert (
        dfs.split_for(local)
        == dfs.split_for(cloud)
        == dfs.split_for("daisy\\100080576_f52e8ee070_n.jpg")
    )
    assert dfs.split_key(cloud) == "daisy/100080576_f52e8ee070_n.jpg"
    # a different file or class may land elsewhere: the key uses both components
    splits = {dfs.split_for(f"/x/{c}/img_{i}.jpg") for c in ("daisy", "roses") for i in range(50)}
    assert splits == {"train", "valid", "test"}


def test_split_fractions_are_roughly_80_10_10():
    paths = [
        f"/data/flower_photos/{c}/{c}_{i:04d}.jpg"
        for c in ("daisy", "dandelion", "roses", "sunflowers", "tulips")
        for i in range(400)
    ]
    counts = Counter(dfs.split_for(p) for p in paths)
    assert sum(counts.values()) == 2000
    # binomial sd for 10% of 2000 is ~13 images; allow ~4 sd
    assert (
        abs(counts["train"] - 1600) < 60
        and abs(counts["valid"] - 200) < 55
        and abs(counts["test"] - 200) < 55
    )
    # the split does not depend on the order or on earlier calls
    assert [dfs.split_for(p) for p in reversed(paths)] == [dfs.split_for(p) for p in paths][::-1]


def test_split_custom_and_invalid_fractions():
    paths = [f"/d/c/{i}.jpg" for i in range(300)]
    assert {dfs.split_for(p, (0.5, 0.5, 0.0)) for p in paths} == {"train", "valid"}
    assert {dfs.split_for(p, (1.0, 0.0, 0.0)) for p in paths} == {"train"}
    for bad in [(0.8, 0.1), (0.8, 0.3, -0.1), (0.5, 0.2, 0.2)]:
        with pytest.raises(ValueError, match="fractions"):
            dfs.split_for("/d/c/1.jpg", bad)
