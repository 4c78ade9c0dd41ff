"""``python -m pmlv_utils.training``: the trainer's command line (the same as
``python -m pmlv_utils.train``, see :mod:`pmlv_utils.training.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
