"""The book's trainer command, kept under the book's module name:

    python -m pmlv_utils.train --job-dir JOB_DIR --input_topdir TFRECORD_DIR [flags...]

It is also the ``pythonModule`` of the Vertex job specs in ``07_training/vertex/``. The flags
and the code are in :mod:`pmlv_utils.training.cli`; the trainer is
:func:`pmlv_utils.training.train_and_export`.
"""

import sys

from .training.cli import main

if __name__ == "__main__":
    sys.exit(main())
