"""Content hashes of the pipeline's inputs, so that kfp's cache follows contents, not names.

    data_fingerprint    the CSV, its labels and every local image it lists
    code_fingerprint    a step's ``*_step`` function and every pmlv_utils module it runs
    module_closure      the files of some pmlv_utils modules and of all they import (packages whole)
    folder_fingerprint  every file under a folder (the watcher's trigger)
    input_fingerprints  the fingerprint-inputs task's outputs (data hash, each step's code hash)

kfp (its local runner and Vertex AI) caches on the *values* of a task's inputs: the same CSV
path with new lines in it, or an edited training module, would be a cache hit. The
``fingerprint-inputs`` task (never cached) computes these hashes and each step takes its own as
an input, so unchanged data and code give the same inputs and a cache hit, and a change gives a
miss.
"""

import ast
import collections
import hashlib
import inspect
import os
from pathlib import Path

from .. import dataset_files
from . import steps

# The pmlv_utils modules (or packages) each step runs; what they import is followed too.
STEP_MODULES = {
    "create-dataset": ("tfrecords", "dataset_files", "synthetic", "workspace"),
    "train-model": ("training",),
    "export-model": ("export", "tflite"),
    "evaluate-model": ("training", "export"),
    "explain-check": ("explain", "workspace", "synthetic"),
}
STEP_FUNCTIONS = {
    "create-dataset": steps.create_dataset_step,
    "train-model": steps.train_step,
    "export-model": steps.export_step,
    "evaluate-model": steps.evaluate_step,
    "explain-check": steps.explain_check_step,
}
# The outputs of the fingerprint-inputs task (and of the pipeline).
FINGERPRINT_OUTPUTS = (
    "data_version",
    "dataset_code",
    "train_code",
    "export_code",
    "evaluate_code",
    "explain_code",
)
Fingerprints = collections.namedtuple("Fingerprints", FINGERPRINT_OUTPUTS)
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the pmlv_utils folder


def _hash_file(h, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def data_fingerprint(data_csv: str, labels_file: str = "") -> str:
    """A content hash of a data set: the CSV, its labels file and every local image it lists.

    For gs:// data only the CSV and labels text are hashed (reading every image would be slow).
    Returns ``"missing"`` when the CSV does not exist (the dataset step then reports it).
    """
    if not steps.file_exists(data_csv):
        return "missing"
    labels = labels_file or steps.default_labels_file(data_csv)
    h = hashlib.sha256()
    csv_bytes = steps.read_bytes(data_csv)
    h.update(csv_bytes + b"\0")
    h.update((steps.read_bytes(labels) if steps.file_exists(labels) else b"") + b"\0")
    base = dataset_files.csv_folder(data_csv)
    for number, line in enumerate(csv_bytes.decode("utf-8", "replace").splitlines(), start=1):
        row = dataset_files.parse_csv_line(number, line, base)
        if not row.problem and not dataset_files.has_scheme(row.path) and Path(row.path).is_file():
            _hash_file(h, Path(row.path))
    return h.hexdigest()[:16]


def _module_files(name: str) -> list[Path]:
    """The .py files of pmlv_utils module ``name``: one file, or every file of a package."""
    module = PACKAGE_ROOT / f"{name}.py"
    if module.is_file():
        return [module]
    package = PACKAGE_ROOT / name
    if (package / "__init__.py").is_file():
        return sorted(package.rglob("*.py"))
    return []  # not a pmlv_utils module (an imported name such as a function)


def _imported_modules(path: Path) -> set[str]:
    """The top-level pmlv_utils modules that file ``path`` imports, relatively or absolutely,
    at module level or inside functions."""
    here = ["pmlv_utils", *path.relative_to(PACKAGE_ROOT).parts[:-1]]  # the file's package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level <= len(here):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            names = [module + [alias.name] for alias in node.names] if module else []
        else:
            continue
        found.update(parts[1] for parts in names if parts[0] == "pmlv_utils" and len(parts) > 1)
    return found


def module_closure(names, opaque=("workspace",)) -> list[Path]:
    """The files of pmlv_utils modules ``names`` and of every pmlv_utils module they import.

    A module that is a package counts whole: every .py file in it. Imports inside ``opaque``
    modules are not followed (workspace imports every stage lazily; a step that uses it for one
    thing lists the modules that thing needs).
    """
    todo, seen = list(names), {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = _module_files(name)
        if name in opaque:
            continue
        for path in seen[name]:
            todo.extend(_imported_modules(path))
    return sorted(path for files in seen.values() for path in files)


def code_fingerprint(step: str) -> str:
    """A hash of the code a step runs: its ``*_step`` function and the modules it uses."""
    h = hashlib.sha256()
    h.update(inspect.getsource(STEP_FUNCTIONS[step]).encode())
    for path in module_closure(STEP_MODULES[step]):
        h.update(path.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A content hash of every file under ``folder`` (names and bytes)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        _hash_file(h, path)
    return h.hexdigest()[:16]


def input_fingerprints(data_csv: str, labels_file: str) -> Fingerprints:
    """The fingerprint-inputs task's outputs: the data's hash (``"synthetic"`` without a CSV)
    and each step's code hash (in ``STEP_MODULES`` order); printed on one line too."""
    data = data_fingerprint(data_csv, labels_file) if data_csv else "synthetic"
    step_names = list(STEP_MODULES)
    codes = [code_fingerprint(step) for step in step_names]
    print(f"data {data}; code " + ", ".join(f"{s} {c}" for s, c in zip(step_names, codes)))
    return Fingerprints(data, *codes)
