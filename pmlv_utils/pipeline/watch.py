"""Running the pipeline automatically when new data lands (a small folder watcher).

watch_folder      poll a folder's content hash; run a callback once new data has settled
make_data_folder  copy a data set into a self-contained "landing folder"
add_new_images    simulate new data landing: new synthetic flowers appended to a CSV
"""

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .. import dataset_files, synthetic
from .. import workspace as ws
from .fingerprints import folder_fingerprint
from .steps import LABELS_NAME


def watch_folder(
    folder: str | os.PathLike,
    on_change: Callable[[Path], Any],
    known: str | None = None,
    poll_seconds: float = 2.0,
    max_polls: int = 10,
    max_triggers: int = 1,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict]:
    """Poll ``folder``'s content hash; call ``on_change(folder)`` when it changed and then stayed
    the same for one more poll (so files still being copied do not trigger a run).

    ``known``: the hash the last run used (None: the folder as it is now). Stops after
    ``max_triggers`` runs or ``max_polls`` polls. Returns one event dict per poll.
    """
    folder = Path(folder)
    known = known or folder_fingerprint(folder)
    pending = None
    events, triggers = [], 0
    for poll in range(max_polls):
        if poll:
            sleep(poll_seconds)
        current = folder_fingerprint(folder)
        event = dict(poll=poll, fingerprint=current[:10], action="no change")
        if current != known:
            if current == pending:
                event["action"] = "new data, stable: run the pipeline"
                event["result"] = on_change(folder)
                known, pending = current, None
                triggers += 1
            else:
                event["action"] = "new data: wait one poll for it to settle"
                pending = current
        events.append(event)
        if triggers >= max_triggers:
            break
    return events


def make_data_folder(source_csv: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy a (local) data set into ``dest`` as a self-contained folder (``<label>/<file>`` images,
    ``all_data.csv`` with relative paths, ``dict.txt``): a "landing folder" for new images.
    Returns the new CSV. Replaces ``dest`` if it exists."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    lines = []
    base = dataset_files.csv_folder(str(source_csv))
    for number, text in enumerate(Path(source_csv).read_text().splitlines(), start=1):
        row = dataset_files.parse_csv_line(number, text, base)
        if row.problem:
            continue
        target = dest / row.label / Path(row.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(row.path, target)
        lines.append(f"{row.label}/{target.name},{row.label}")
    shutil.copyfile(Path(base) / LABELS_NAME, dest / LABELS_NAME)
    (dest / "all_data.csv").write_text("\n".join(lines) + "\n")
    return dest / "all_data.csv"


def add_new_images(
    data_csv: str | os.PathLike,
    images_per_class: int,
    seed: int,
    difficulty: str = ws.DEFAULT_DIFFICULTY,
) -> int:
    """Simulate new data landing: draw ``images_per_class`` new synthetic flowers per class
    (with ``seed`` and ``difficulty``), copy them next to ``data_csv`` as
    ``<label>/new<seed>_<file>`` and append their lines. Returns the number of images added."""
    folder = Path(data_csv).parent
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.generate_dataset(
            tmp, images_per_class, seed, progress=False, difficulty=difficulty
        )
        new_lines = []
        for line in (Path(tmp) / "flower_photos" / "all_data.csv").read_text().splitlines():
            path, label = line.rsplit(",", 1)
            name = f"new{seed}_{Path(path).name}"
            (folder / label).mkdir(exist_ok=True)
            shutil.copyfile(path, folder / label / name)
            new_lines.append(f"{label}/{name},{label}")
    with open(data_csv, "a") as f:
        f.write("\n".join(new_lines) + "\n")
    return len(new_lines)
