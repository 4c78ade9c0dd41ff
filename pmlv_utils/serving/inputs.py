"""The images of a request, read once and checked before the model sees them.

:class:`ImageLoader` turns a :class:`~pmlv_utils.serving.requests.ParsedRequest`'s file
names and bytes into :class:`ImageData` (the bytes, their format and size from the header):

- a local file is opened once without blocking (``O_NONBLOCK``), checked with ``fstat`` on
  the open descriptor (regular files only: a FIFO, a device or a directory is refused at
  once), checked to still lie inside the allowed folders (``/proc/self/fd``: a symlink
  swapped in after the name was resolved does not count), and read up to a size cap;
- a ``gs://`` file is read through TensorFlow's file system with a timeout;
- every image's header is checked against the pixel budget (:mod:`pmlv_utils.image_limits`).

Those checked bytes are the ones the model decodes (:func:`call_inputs`): through the bytes
signature when the model has an equivalent one, else from a private copy, so TensorFlow
never reopens the client's path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from .. import image_limits
from .paths import PathPolicy
from .requests import ParsedRequest, RequestError
from .workers import DaemonExecutor, call_with_timeout

DEFAULT_MAX_PIXELS = image_limits.DEFAULT_MAX_PIXELS
DEFAULT_MAX_REQUEST_PIXELS = 2 * DEFAULT_MAX_PIXELS
DEFAULT_MAX_FILE_BYTES = DEFAULT_MAX_REQUEST_BYTES = 16 * 2**20
DEFAULT_READ_TIMEOUT_S = 10.0
_GCS_STATUS = (
    (tf.errors.NotFoundError, 404, "file not found"),
    (tf.errors.PermissionDeniedError, 403, "permission denied"),
    (tf.errors.UnauthenticatedError, 403, "permission denied"),
)


@dataclass(frozen=True)
class ImageData:
    """One checked image: its bytes, format and header size; ``source`` is the resolved path
    it was read from ("" for bytes sent in the request)."""

    data: bytes
    format: str
    width: int
    height: int
    source: str = ""

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Limits:
    """What one image and one request may cost."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S


class ImageLoader:
    """Reads and checks a parsed request's images (see the module docstring)."""

    def __init__(self, paths: PathPolicy, limits: Limits = Limits()):
        self.paths, self.limits = paths, limits
        self._remote = DaemonExecutor(4, "gcs-read")

    def load(self, parsed: ParsedRequest, specs: Mapping[str, tuple]) -> list[int]:
        """Replace each file name / bytes input of ``parsed`` by its :class:`ImageData`;
        returns the pixels of each instance. RequestError (4xx) for what cannot be used."""
        pixels = [0] * parsed.n
        for key, (kind, _) in specs.items():
            if kind not in ("file", "bytes"):
                continue
            images = []
            for i, value in enumerate(parsed.inputs[key]):
                name = parsed.client_names[i].get(value, "") if kind == "file" else ""
                images.append(self.one(i, value, name) if kind == "file" else self.data(i, value))
                pixels[i] += images[-1].pixels
            parsed.inputs[key] = images
        total, cap = sum(pixels), self.limits.max_request_pixels
        if total > cap:
            raise RequestError(
                413, f"{total:,} pixels in one request; this server decodes at most {cap:,}"
            )
        return pixels

    def data(self, i: int, data: bytes, source: str = "") -> ImageData:
        """Bytes checked against the pixel budget (NotAnImage 400, ImageTooLarge 413)."""
        try:
            fmt, width, height = image_limits.check(data, self.limits.max_pixels)
        except image_limits.ImageTooLarge as err:
            raise RequestError(413, f"could not read instance {i}: {err}") from None
        except image_limits.NotAnImage as err:
            raise RequestError(400, f"could not read instance {i}: {err}") from None
        return ImageData(data, fmt, width, height, source)

    def one(self, i: int, path: str, name: str) -> ImageData:
        """The file ``path`` (already resolved by the path policy) read and checked."""
        shown = repr(name or os.path.basename(path))
        if path.startswith("gs://"):
            return self.data(i, self.read_remote(i, path, shown), path)
        try:
            data = self.read_local(path)
        except image_limits.ImageTooLarge as err:
            raise RequestError(
                413, f"could not read instance {i}: {_without(err, path, shown)}"
            ) from None
        except image_limits.NotAnImage as err:
            raise RequestError(
                400, f"could not read instance {i}: {_without(err, path, shown)}"
            ) from None
        except FileNotFoundError:
            raise RequestError(
                404, f"could not read instance {i}: {shown}: file not found"
            ) from None
        except PermissionError:
            raise RequestError(
                403, f"could not read instance {i}: {shown}: permission denied"
            ) from None
        except OSError as err:
            reason = os.strerror(err.errno) if err.errno else type(err).__name__
            raise RequestError(400, f"could not read instance {i}: {shown}: {reason}") from None
        return self.data(i, data, path)

    def read_local(self, path: str) -> bytes:
        """Open once, fstat, check the opened file is inside the roots, read up to the cap."""
        fd, info = image_limits.open_regular(path)
        try:
            opened = os.path.realpath(f"/proc/self/fd/{fd}")
            if os.path.isdir("/proc/self/fd") and not self.paths.inside(opened):
                raise PermissionError("the opened file is outside the allowed folders")
            return image_limits.read_capped(fd, info.st_size, self.limits.max_file_bytes, path)
        finally:
            os.close(fd)

    def read_remote(self, i: int, path: str, shown: str) -> bytes:
        """A gs:// file, stat'ed and read through tf.io.gfile within the read timeout."""
        try:
            return call_with_timeout(
                self._remote, self.limits.read_timeout_s, _read_gfile, path, self.limits
            )
        except TimeoutError as err:
            raise RequestError(504, f"could not read instance {i}: {shown}: {err}") from None
        except image_limits.ImageTooLarge as err:
            raise RequestError(413, f"could not read instance {i}: {err}") from None
        except tf.errors.OpError as err:
            for error_class, status, reason in _GCS_STATUS:
                if isinstance(err, error_class):
                    raise RequestError(status, f"could not read instance {i}: {shown}: {reason}")
            raise RequestError(
                502, f"could not read instance {i}: {shown}: storage error"
            ) from None


def _without(err: Exception, path: str, shown: str) -> str:
    """An image_limits message naming the file as the client did (not the server's path)."""
    return str(err).replace(repr(path), shown)


def _read_gfile(path: str, limits: Limits) -> bytes:
    size = tf.io.gfile.stat(path).length
    if size > limits.max_file_bytes:
        raise image_limits.ImageTooLarge(
            f"{size:,} bytes, over the limit of {limits.max_file_bytes:,} bytes"
        )
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read(limits.max_file_bytes)


# ---- handing the checked bytes to the model -------------------------------------------------


class CheckedCopies:
    """A private folder for copies of checked files, for signatures that only take names."""

    def __init__(self):
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.folder = tempfile.mkdtemp(prefix="pmlv_serving_", dir=base)

    def write(self, images: Sequence[ImageData]) -> list[str]:
        paths = []
        for image in images:
            path = os.path.join(self.folder, f"{uuid.uuid4().hex}.{image.format.lower()}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(image.data)
            paths.append(path)
        return paths

    @staticmethod
    def remove(paths: Sequence[str]) -> None:
        for path in paths:
            try:
                os.unlink(path)
            except OSError:
                pass

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def bytes_equivalent(signature: str, model) -> bool:
    """Whether ``signature`` is the course export's file-name twin of ``from_bytes`` (same
    outputs, plus the echoed file name and key for ``passthrough``)."""
    exported = set(model.info.get("signatures", ()))
    return (
        signature in ("serving_default", "passthrough")
        and {signature, "from_bytes"} <= exported
        and "from_bytes" in model.signatures
    )


def echo_outputs(signature: str, inputs: Mapping[str, Any], images: Sequence[ImageData]) -> dict:
    """The outputs ``passthrough`` adds to ``from_bytes``' (the file name and the key)."""
    if signature != "passthrough":
        return {}
    names = np.array([image.source.encode("utf-8") for image in images], dtype=object)
    return {"filename": names, "key": np.asarray(inputs["key"], dtype=np.int64)}


def restore_names(outputs: dict, copies: Sequence[str], images: Sequence[ImageData]) -> dict:
    """Outputs of a call on private copies, with each copy's path replaced by its source."""
    source = {c.encode("utf-8"): image.source.encode("utf-8") for c, image in zip(copies, images)}
    source.update({c: image.source for c, image in zip(copies, images)})
    fixed = {}
    for key, value in outputs.items():
        array = np.asarray(value)
        if array.dtype == object:
            array = np.array([source.get(v, v) for v in array.ravel()], dtype=object).reshape(
                array.shape
            )
        fixed[key] = array
    return fixed


def _images(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], ImageData)


def call_checked(model, copies: CheckedCopies, signature: str, specs: Mapping, inputs: dict):
    """Run ``signature`` of ``model`` (a LoadedModel) on loaded inputs: checked images go in as
    bytes -- through ``from_bytes`` for its file-name twins (:func:`bytes_equivalent`), else
    as private copies of the checked bytes for a signature that only takes file names."""
    plain = {k: [d.data for d in v] if _images(v) else v for k, v in inputs.items()}
    files = [k for k, (kind, _) in specs.items() if kind == "file" and _images(inputs[k])]
    if len(files) == 1 and bytes_equivalent(signature, model):
        images = inputs[files[0]]
        outputs = model.call("from_bytes", img_bytes=[d.data for d in images])
        return {**outputs, **echo_outputs(signature, inputs, images)}
    written = {k: copies.write(inputs[k]) for k in files}
    try:
        outputs = model.call(signature, **{**plain, **written})
    finally:
        for paths in written.values():
            copies.remove(paths)
    for k, paths in written.items():
        outputs = restore_names(outputs, paths, inputs[k])
    return outputs
