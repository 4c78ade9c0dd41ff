"""Which files a request may read: :class:`PathPolicy` (allowed folders and gs:// prefixes).

Resolving a name touches the local file system only (``realpath``, ``exists``): it never
opens the file, and a ``gs://`` name is checked against the prefixes without any network
call (the read, with its timeout, happens in :mod:`pmlv_utils.serving.inputs`).
"""

from __future__ import annotations

import os
import posixpath
from typing import Any, Sequence

from .requests import RequestError


class PathPolicy:
    """Resolve a client's file name to a real path inside the allowed roots, or refuse it.

    Local names are resolved with ``os.path.realpath`` (symlinks and ``..`` followed) and
    must land inside a local root; relative names are taken relative to the first local
    root. ``gs://`` names must fall under an allowed ``gs://`` root (after removing ``..``).
    Any other ``scheme://`` is refused, since TensorFlow would happily open it.
    """

    def __init__(self, roots: Sequence[str | os.PathLike] = ()):
        self.local_roots: list[str] = []
        self.gcs_roots: list[str] = []
        for root in roots:
            root = str(root)
            if root.startswith("gs://"):
                self.gcs_roots.append(self._normalize_gcs(root).rstrip("/") + "/")
            elif "://" in root:
                raise ValueError(
                    f"allowed root {root!r}: only local folders and gs:// prefixes are supported"
                )
            else:
                real = os.path.realpath(root)
                if not os.path.isdir(real):
                    raise ValueError(f"allowed root {root!r} is not an existing folder")
                self.local_roots.append(real)

    @staticmethod
    def _normalize_gcs(name: str) -> str:
        rest = posixpath.normpath(name[len("gs://") :])
        if rest.startswith("..") or rest.startswith("/"):
            raise RequestError(403, f"{name!r}: not a valid gs:// path")
        return "gs://" + rest

    def resolve(self, name: Any) -> str:
        if not isinstance(name, str) or not name:
            raise RequestError(400, "a file name must be a non-empty string")
        if "\x00" in name:
            raise RequestError(400, "a file name may not contain NUL characters")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(
                400, "a file name must be valid UTF-8 (it has a lone surrogate)"
            ) from None
        if "://" in name:
            return self._resolve_url(name)
        if not self.local_roots:
            raise RequestError(
                403, f"{name!r}: this server reads no local files (no --allowed_root)"
            )
        path = name if os.path.isabs(name) else os.path.join(self.local_roots[0], name)
        real = os.path.realpath(path)
        if not self.inside(real):
            raise RequestError(403, f"{name!r}: outside the server's allowed folders")
        if not os.path.exists(real):
            raise RequestError(404, f"{name!r}: file not found")
        return real

    def inside(self, real: str) -> bool:
        """Whether the resolved local path ``real`` lies inside an allowed folder."""
        return any(os.path.commonpath([real, root]) == root for root in self.local_roots)

    def _resolve_url(self, name: str) -> str:
        if not name.startswith("gs://"):
            raise RequestError(
                403,
                f"{name!r}: only local files{' and gs://' if self.gcs_roots else ''} are allowed",
            )
        if not self.gcs_roots:
            raise RequestError(403, f"{name!r}: gs:// paths are not allowed on this server")
        path = self._normalize_gcs(name)
        if not any(path.startswith(root) for root in self.gcs_roots):
            raise RequestError(403, f"{name!r}: outside the server's allowed gs:// prefixes")
        return path
