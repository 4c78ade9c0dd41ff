"""``python -m pmlv_utils.serving --model_dir DIR [--host] [--port] [--allowed_root DIR]``."""

from .cli import main

if __name__ == "__main__":
    main()
