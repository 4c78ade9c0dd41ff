"""Start TensorFlow without its C++ start-up lines in a notebook's outputs.

TensorFlow's native core writes some lines to the process's stderr (file descriptor 2) before
``TF_CPP_MIN_LOG_LEVEL`` applies (``All log messages before absl::InitializeLog()``, oneDNN and
CUDA probes). Python's ``sys.stderr`` does not see them, so ``contextlib.redirect_stderr`` cannot
hide them; :func:`native_stderr_silenced` points descriptor 2 at ``os.devnull`` for the duration::

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # later C++ lines (e.g. the cuInit error)
    with quiet.native_stderr_silenced():
        import tensorflow as tf

Python exceptions still reach the caller: only what is written to the descriptor is dropped.

:func:`beam_interactive_notice_off` drops Apache Beam's warning, printed in every Jupyter kernel
that runs a pipeline, that Interactive Beam's optional visualisation packages are missing (the
course never uses Interactive Beam).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

BEAM_INTERACTIVE_LOGGER = "apache_beam.runners.interactive.interactive_environment"


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to ``os.devnull`` inside the block; restore it afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def beam_interactive_notice_off() -> None:
    """Only errors from Beam's Interactive Beam check, not its missing-extras notice."""
    logging.getLogger(BEAM_INTERACTIVE_LOGGER).setLevel(logging.ERROR)
