"""Multi-label image annotation in the book's ``label.json`` schema.

The book labels a few photos for several tasks at once and saves them as::

    {"flower_images/100080576_f52e8ee070_n.jpg": {"flower": ["daisy"],
                                                   "color": ["red"],
                                                   "location": ["outdoors"]},
     ...}

one object per image, one list of labels per task (a list: a photo can show a daisy AND a
rose). The allowed labels of each task are the ``options``, e.g.
``{"flower": [...], "color": [...], "location": [...]}``.

This module: a notebook UI to label images by hand (:class:`MultiLabelAnnotator`, ipywidgets:
one checkbox per label, back / next buttons), rule-based pre-labels for the synthetic
flowers (:func:`prelabel_synthetic`, what a human then checks), validation with clear
errors, reading/writing ``label.json``, and the table / multi-hot views used for training.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import pandas as pd
from PIL import Image

from .synthetic import load_mask

COLOUR_NAMES = ["white", "yellow", "orange", "red", "pink", "purple", "brown"]
DEFAULT_OPTIONS = {
    "flower": ["daisy", "dandelion", "roses", "sunflowers", "tulips"],
    "color": COLOUR_NAMES,
    "location": ["indoors", "outdoors"],
}
# Synthetic backgrounds that look like a studio backdrop; the others are outdoors scenes.
INDOOR_BACKGROUNDS = ("plain", "gradient", "noise")

Annotations = dict[str, dict[str, list[str]]]


# ----------------------------------------------------------------------------------------
# Validation, reading and writing
# ----------------------------------------------------------------------------------------


def validate_annotations(
    annotations: Mapping,
    options: Mapping[str, Sequence[str]],
    require_all_tasks: bool = True,
    source: str = "annotations",
) -> Annotations:
    """Check annotations against ``options``; returns a clean copy (labels in options order).

    Raises ValueError naming the image, the task and the offending value for: an unknown
    task, an unknown label, a label that is not a list of strings, a repeated label, or (with
    ``require_all_tasks``) a task with no label.
    """
    if not isinstance(annotations, Mapping):
        raise ValueError(
            f"{source}: expected an object {{image: {{task: [labels]}}}}, "
            f"got {type(annotations).__name__}"
        )
    clean: Annotations = {}
    for image, tasks in annotations.items():
        where = f"{source}: image {image!r}"
        if not isinstance(tasks, Mapping):
            raise ValueError(f"{where}: expected {{task: [labels]}}, got {type(tasks).__name__}")
        unknown_tasks = sorted(set(tasks) - set(options))
        if unknown_tasks:
            raise ValueError(f"{where}: unknown task(s) {unknown_tasks}; tasks are {list(options)}")
        clean[image] = {}
        for task, allowed in options.items():
            labels = tasks.get(task, [])
            if (
                isinstance(labels, str)
                or not isinstance(labels, (list, tuple))
                or not all(isinstance(x, str) for x in labels)
            ):
                raise ValueError(
                    f"{where}, task {task!r}: labels must be a list of strings, got {labels!r}"
                )
            unknown = [x for x in labels if x not in allowed]
            if unknown:
                raise ValueError(
                    f"{where}, task {task!r}: unknown label(s) {unknown}; allowed: {list(allowed)}"
                )
            if len(set(labels)) != len(labels):
                raise ValueError(f"{where}, task {task!r}: repeated label in {labels}")
            if require_all_tasks and not labels:
                raise ValueError(
                    f"{where}, task {task!r}: no label (choose at least one of {list(allowed)})"
                )
            clean[image][task] = [x for x in allowed if x in labels]
    return clean


def save_label_json(
    annotations: Mapping,
    path: str | os.PathLike,
    options: Mapping[str, Sequence[str]],
    require_all_tasks: bool = True,
) -> Path:
    """Validate, then write ``label.json`` (nothing is written when validation fails)."""
    clean = validate_annotations(annotations, options, require_all_tasks)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean, indent=2) + "\n")
    tmp.replace(path)  # a crash never leaves half a file
    return path


def load_label_json(
    path: str | os.PathLike,
    options: Mapping[str, Sequence[str]] | None = None,
    require_all_tasks: bool = True,
) -> Annotations:
    """Read ``label.json``; validated against ``options`` when given."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if options is None:  # check the structure only: every label found counts as allowed
        options = _options_found_in(data)
    return validate_annotations(data, options, require_all_tasks, source=str(path))


def restrict_to_options(annotations: Mapping, options: Mapping[str, Sequence[str]]) -> Annotations:
    """Annotations keeping only the tasks and labels that ``options`` allows (e.g. pre-labels
    made with a richer label set than the one being collected)."""
    return {
        image: {
            task: [x for x in tasks.get(task, []) if x in allowed]
            for task, allowed in options.items()
        }
        for image, tasks in annotations.items()
    }


def _options_found_in(data) -> dict[str, list[str]]:
    if not isinstance(data, Mapping) or not all(isinstance(t, Mapping) for t in data.values()):
        return {}  # validate_annotations then names what is wrong
    options: dict[str, list[str]] = {}
    for tasks in data.values():
        for task, labels in tasks.items():
            found = options.setdefault(task, [])
            if isinstance(labels, (list, tuple)):
                found += [x for x in labels if isinstance(x, str) and x not in found]
    return options


def annotations_table(annotations: Mapping, options: Mapping[str, Sequence[str]]):
    """A pandas DataFrame: one row per image, one column per task (labels joined by '+')."""
    clean = validate_annotations(annotations, options, require_all_tasks=False)
    rows = [
        {"image": image, **{task: "+".join(labels) for task, labels in tasks.items()}}
        for image, tasks in clean.items()
    ]
    return pd.DataFrame(rows, columns=["image", *options])


def to_multi_hot(annotations: Mapping, options: Mapping[str, Sequence[str]], task: str):
    """(images, float32 [n_images, n_labels]) targets of one task, for a sigmoid output layer."""
    if task not in options:
        raise ValueError(f"unknown task {task!r}; tasks are {list(options)}")
    clean = validate_annotations(annotations, options, require_all_tasks=False)
    labels = list(options[task])
    targets = np.zeros((len(clean), len(labels)), np.float32)
    for i, tasks in enumerate(clean.values()):
        for label in tasks[task]:
            targets[i, labels.index(label)] = 1.0
    return list(clean), targets


# ----------------------------------------------------------------------------------------
# Pre-labels for the synthetic flowers (machine-assisted labelling)
# ----------------------------------------------------------------------------------------


def colour_names(rgb: np.ndarray, mask: np.ndarray, min_share: float = 0.2) -> list[str]:
    """Names (COLOUR_NAMES) of the colours covering at least ``min_share`` of the masked
    pixels, ignoring green (stems and leaves); the most common one when none does."""
    hsv = np.asarray(Image.fromarray(np.asarray(rgb, np.uint8)).convert("HSV"), np.float32) / 255.0
    h, s, v = (hsv[..., i][np.asarray(mask, bool)] for i in range(3))
    if h.size == 0:
        raise ValueError("colour_names: the mask selects no pixel")
    names = np.full(h.shape, "", dtype=object)
    names[(h >= 0.10) & (h < 0.18)] = "yellow"
    names[(h >= 0.04) & (h < 0.10)] = "orange"
    reddish = (h < 0.04) | (h >= 0.83)
    names[reddish & (s >= 0.5) & ((h < 0.04) | (h >= 0.96))] = "red"
    names[reddish & ((s < 0.5) | ((h >= 0.83) & (h < 0.96)))] = "pink"  # pale reds are pink
    names[(h >= 0.70) & (h < 0.83)] = "purple"
    names[(h >= 0.03) & (h < 0.12) & (v < 0.45)] = "brown"
    names[(s < 0.22) & (v > 0.55)] = "white"
    names[(h >= 0.18) & (h < 0.70) & (s >= 0.22)] = ""  # green / blue: not a petal colour here
    named = names[names != ""]
    if named.size == 0:
        return []
    found, counts = np.unique(named.astype(str), return_counts=True)
    shares = dict(zip(found, counts / counts.sum()))
    picked = [c for c in COLOUR_NAMES if shares.get(c, 0) >= min_share]
    return picked or [max(shares, key=shares.get)]


def prelabel_synthetic(data_dir: str | os.PathLike, images: Sequence[str]) -> Annotations:
    """Rule-based labels for images of a synthetic data set (``images`` relative to ``data_dir``).

    flower: the folder's class, plus any other visible flower (``image_info.csv``);
    color: the colours of the flower pixels (its stored mask); location: "indoors" for
    studio-like backgrounds (INDOOR_BACKGROUNDS), else "outdoors". A human checks them.
    """
    data_dir = Path(data_dir)
    info_path = data_dir / "image_info.csv"
    if not info_path.exists():
        raise FileNotFoundError(
            f"{info_path} is missing: pre-labels need a data set made by "
            "pmlv_utils.synthetic.generate_dataset"
        )
    with open(info_path, newline="") as f:
        info = {row["image"]: row for row in csv.DictReader(f)}
    out: Annotations = {}
    for image in images:
        if image not in info:
            raise ValueError(f"{image!r} is not listed in {info_path}")
        row = info[image]
        with Image.open(data_dir / image) as im:
            rgb = np.asarray(im.convert("RGB"))
        flowers = [row["label"]] + ([row["other_flower"]] if row.get("other_flower") else [])
        out[image] = {
            "flower": flowers,
            "color": colour_names(rgb, load_mask(data_dir / image)),
            "location": ["indoors" if row["background"] in INDOOR_BACKGROUNDS else "outdoors"],
        }
    return out


# ----------------------------------------------------------------------------------------
# The annotation UI (ipywidgets)
# ----------------------------------------------------------------------------------------


class MultiLabelAnnotator:
    """Label images for several tasks in a notebook: checkboxes per label, back / next.

        annotator = MultiLabelAnnotator(images, options, image_root=data_dir, initial=prelabels)
        display(annotator.widget)
        ...  # click through; annotator.annotations holds the labels (updated on every click)

    ``images`` are the keys written to label.json; ``image_root`` is the folder they are
    relative to (for display). ``initial`` pre-ticks the boxes (e.g. rule-based labels).
    ``on_done(annotations)`` is called when "next" is pressed on the last image.
    """

    def __init__(
        self,
        images: Sequence[str],
        options: Mapping[str, Sequence[str]],
        image_root: str | os.PathLike | None = None,
        initial: Mapping | None = None,
        on_done: Callable[[Annotations], None] | None = None,
        image_width: int = 256,
    ):
        if not images:
            raise ValueError("MultiLabelAnnotator: no images to label")
        self.images, self.options = list(images), {t: list(v) for t, v in options.items()}
        self.image_root = Path(image_root) if image_root is not None else None
        self.on_done = on_done
        start = validate_annotations(initial or {}, self.options, require_all_tasks=False)
        self.annotations: Annotations = {
            img: start.get(img, {t: [] for t in self.options}) for img in self.images
        }
        self.index = 0
        self._image = widgets.Image(format="jpeg", width=image_width)
        self._progress = widgets.HTML()
        self._boxes = {
            t: {
                label: widgets.Checkbox(
                    description=label, indent=False, layout=widgets.Layout(width="auto")
                )
                for label in labels
            }
            for t, labels in self.options.items()
        }
        for task, boxes in self._boxes.items():
            for label, box in boxes.items():
                box.observe(lambda change, t=task: self._record(t), names="value")
        self._back = widgets.Button(description="back", icon="arrow-left")
        self._next = widgets.Button(description="next", icon="arrow-right", button_style="primary")
        self._back.on_click(lambda _: self.show(self.index - 1))
        self._next.on_click(lambda _: self._advance())
        rows = [
            widgets.HBox(
                [widgets.Label(f"{task}:", layout=widgets.Layout(width="80px")), *boxes.values()]
            )
            for task, boxes in self._boxes.items()
        ]
        self.widget = widgets.VBox(
            [self._progress, self._image, *rows, widgets.HBox([self._back, self._next])]
        )
        self._loading = False
        self.show(0)

    def show(self, index: int) -> None:
        """Show image ``index`` with its current labels ticked."""
        self.index = int(np.clip(index, 0, len(self.images) - 1))
        name = self.images[self.index]
        path = self.image_root / name if self.image_root is not None else Path(name)
        self._image.value = path.read_bytes()
        self._loading = True  # ticking boxes to show stored labels must not record them again
        for task, boxes in self._boxes.items():
            for label, box in boxes.items():
                box.value = label in self.annotations[name][task]
        self._loading = False
        self._update_progress()

    def _record(self, task: str) -> None:
        if self._loading:
            return
        name = self.images[self.index]
        self.annotations[name][task] = [
            label for label, box in self._boxes[task].items() if box.value
        ]
        self._update_progress()

    def _advance(self) -> None:
        if self.index == len(self.images) - 1:
            if self.on_done is not None:
                self.on_done(self.annotations)
            self._progress.value += " <b>done</b>"
            return
        self.show(self.index + 1)

    def complete(self) -> list[str]:
        """Images with at least one label for every task."""
        return [
            img for img, tasks in self.annotations.items() if all(tasks[t] for t in self.options)
        ]

    def _update_progress(self) -> None:
        self._progress.value = (
            f"image {self.index + 1} of {len(self.images)}: "
            f"<code>{self.images[self.index]}</code> &middot; "
            f"{len(self.complete())} fully labelled"
        )
