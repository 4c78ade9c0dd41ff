"""pmlv_utils.quiet: native (file-descriptor) stderr is dropped inside the block, restored after."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import os
from pmlv_utils.quiet import native_stderr_silenced
os.write(2, b"before\\n")
with native_stderr_silenced():
    os.write(2, b"inside\\n")
os.write(2, b"after\\n")
try:
    with native_stderr_silenced():
        raise ValueError("kept")
except ValueError as err:
    os.write(2, f"raised {err}\\n".encode())
"""


def test_fd2_is_silenced_only_inside_the_block(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert run.stderr.split() == ["before", "after", "raised", "kept"]


def test_beam_interactive_notice_off_keeps_errors():
    import logging

    from pmlv_utils import quiet

    quiet.beam_interactive_notice_off()
    logger = logging.getLogger(quiet.BEAM_INTERACTIVE_LOGGER)
    assert not logger.isEnabledFor(logging.WARNING) and logger.isEnabledFor(logging.ERROR)
