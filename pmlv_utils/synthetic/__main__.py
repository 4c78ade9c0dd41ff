"""``python -m pmlv_utils.synthetic --output_dir DIR ...``: write the synthetic data set."""

from .dataset import main

if __name__ == "__main__":
    raise SystemExit(main())
