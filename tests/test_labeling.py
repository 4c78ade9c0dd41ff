"""label.json annotations: validation, round trip, table views, pre-labels, the widget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pmlv_utils import labeling, synthetic

OPTIONS = {
    "flower": ["daisy", "tulips", "roses"],
    "color": ["yellow", "red", "other"],
    "location": ["indoors", "outdoors"],
}
GOOD = {
    "a.jpg": {"flower": ["roses", "daisy"], "color": ["red"], "location": ["outdoors"]},
    "b.jpg": {"flower": ["tulips"], "color": ["yellow", "other"], "location": ["indoors"]},
}


def test_round_trip_and_order(tmp_path):
    path = labeling.save_label_json(GOOD, tmp_path / "label.json", OPTIONS)
    data = json.loads(path.read_text())
    assert data["a.jpg"]["flower"] == ["daisy", "roses"]  # options order
    assert labeling.load_label_json(path, OPTIONS) == data
    assert labeling.load_label_json(path) == data  # structure-only check


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            {"a.jpg": {"flower": ["lily"], "color": ["red"], "location": ["indoors"]}},
            r"image 'a.jpg', task 'flower': unknown label\(s\) \['lily'\]",
        ),
        ({"a.jpg": {"flowers": ["daisy"]}}, r"unknown task\(s\) \['flowers'\]"),
        (
            {"a.jpg": {"flower": "daisy", "color": ["red"], "location": ["indoors"]}},
            "must be a list of strings",
        ),
        (
            {"a.jpg": {"flower": ["daisy", "daisy"], "color": ["red"], "location": ["indoors"]}},
            "repeated label",
        ),
        (
            {"a.jpg": {"flower": ["daisy"], "color": [], "location": ["indoors"]}},
            r"task 'color': no label",
        ),
        (["a.jpg"], "expected an object"),
    ],
)
def test_validation_errors_write_nothing(tmp_path, bad, match):
    target = tmp_path / "label.json"
    with pytest.raises(ValueError, match=match):
        labeling.save_label_json(bad, target, OPTIONS)
    assert not target.exists()


def test_load_reports_bad_json(tmp_path):
    path = tmp_path / "label.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        labeling.load_label_json(path)
    path.write_text(
        json.dumps({"x.jpg": {"flower": ["rose"], "color": ["red"], "location": ["indoors"]}})
    )
    with pytest.raises(
        ValueError, match=r"label.json: image 'x.jpg', task 'flower': unknown label"
    ):
        labeling.load_label_json(path, OPTIONS)


def test_table_and_multi_hot():
    table = labeling.annotations_table(GOOD, OPTIONS)
    assert list(table.columns) == ["image", "flower", "color", "location"]
    assert table.loc[0, "flower"] == "daisy+roses"
    images, targets = labeling.to_multi_hot(GOOD, OPTIONS, "flower")
    assert images == ["a.jpg", "b.jpg"]
    np.testing.assert_array_equal(targets, [[1, 0, 1], [0, 1, 0]])
    with pytest.raises(ValueError, match="unknown task"):
        labeling.to_multi_hot(GOOD, OPTIONS, "size")


def test_colour_names():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[:, :5] = (230, 200, 20)  # yellow
    rgb[:, 5:] = (40, 160, 40)  # green stem: ignored
    mask = np.ones((10, 10), bool)
    assert labeling.colour_names(rgb, mask) == ["yellow"]
    rgb[:5, :5] = (245, 245, 245)
    assert labeling.colour_names(rgb, mask) == ["white", "yellow"]
    rgb[:] = (240, 170, 180)  # pale red is pink
    assert labeling.colour_names(rgb, mask) == ["pink"]
    with pytest.raises(ValueError, match="selects no pixel"):
        labeling.colour_names(rgb, np.zeros((10, 10), bool))


def test_prelabels_of_synthetic_flowers(tmp_path):
    synthetic.generate_dataset(
        tmp_path, images_per_class=2, seed=3, progress=False, difficulty="easy"
    )
    images = [f"flower_photos/{c}/{c}_0000.jpg" for c in synthetic.CLASSES]
    pre = labeling.prelabel_synthetic(tmp_path, images)
    clean = labeling.validate_annotations(pre, labeling.DEFAULT_OPTIONS)
    for image, cls in zip(images, synthetic.CLASSES):
        assert cls in clean[image]["flower"]
    with pytest.raises(ValueError, match="not listed"):
        labeling.prelabel_synthetic(tmp_path, ["flower_photos/daisy/daisy_0099.jpg"])
    with pytest.raises(FileNotFoundError, match="image_info.csv is missing"):
        labeling.prelabel_synthetic(tmp_path / "nowhere", images)


def test_annotator_widget_records_clicks(tmp_path):
    synthetic.generate_dataset(tmp_path, images_per_class=1, seed=3, progress=False)
    images = ["flower_photos/daisy/daisy_0000.jpg", "flower_photos/roses/roses_0000.jpg"]
    done = []
    ann = labeling.MultiLabelAnnotator(
        images,
        OPTIONS,
        image_root=tmp_path,
        initial={images[1]: {"flower": ["roses"]}},
        on_done=done.append,
    )
    assert ann.complete() == []
    ann._boxes["flower"]["daisy"].value = True
    ann._boxes["color"]["other"].value = True
    ann._boxes["location"]["outdoors"].value = True
    assert ann.annotations[images[0]] == {
        "flower": ["daisy"],
        "color": ["other"],
        "location": ["outdoors"],
    }
    ann._advance()
    assert (
        ann.index == 1
        and ann._boxes["flower"]["roses"].value
        and not ann._boxes["flower"]["daisy"].value
    )
    ann._boxes["flower"]["tulips"].value = True
    ann._advance()  # last image: done
    assert done and done[0][images[1]]["flower"] == ["tulips", "roses"]
    ann.show(0)
    assert ann._boxes["flower"]["daisy"].value  # going back shows what was stored
    assert ann.complete() == [images[0]]


def test_restrict_to_options():
    rich = {"a.jpg": {"flower": ["daisy", "lily"], "color": ["red"], "size": ["big"]}}
    assert labeling.restrict_to_options(rich, OPTIONS) == {
        "a.jpg": {"flower": ["daisy"], "color": ["red"], "location": []}
    }
