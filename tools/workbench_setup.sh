#!/usr/bin/env bash
# Vertex AI Workbench (or any Jupyter host): install the pinned course environment as a kernel.
#
#   bash tools/workbench_setup.sh            # from the cloned repository, in a Workbench terminal
#
# Creates a virtual environment (default ~/pmlv-venv), installs requirements.txt and the
# pmlv_utils package into it, and registers it as the Jupyter kernel "pmlv" ("Python (PMLV course)").
# Also usable as a post-startup script: set PMLV_REPO to the repository's path on the instance.
# Set PMLV_VENV to choose the environment's folder.
set -euo pipefail
repo="${PMLV_REPO:-$(cd "$(dirname "$0")/.." && pwd)}"
venv="${PMLV_VENV:-$HOME/pmlv-venv}"
python="${PYTHON:-python3}"

"$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else "Python >= 3.10 needed (3.11 tested)")'
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$repo/requirements.txt"
"$venv/bin/python" -m pip install --quiet --no-deps -e "$repo"
"$venv/bin/python" -m ipykernel install --user --name pmlv --display-name "Python (PMLV course)"
echo "Kernel 'Python (PMLV course)' installed from $venv. In JupyterLab: Kernel > Change Kernel."
