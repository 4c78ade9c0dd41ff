#!/usr/bin/env bash
# Creates build/triton-venv with tritonclient[http] (requirements-triton.txt), for the KServe v2
# protocol test (tests/test_serving_protocols.py). Its own venv: with the course's pins it would
# downgrade ml_dtypes under TensorFlow. Idempotent: does nothing when the venv already holds
# exactly these pins. Exits 0 when the venv is usable afterwards, 1 otherwise (the test then
# skips with a message). PYTHON picks the interpreter (default python3).
set -u
cd "$(dirname "$0")/.." || exit 1
VENV=build/triton-venv
REQS=requirements-triton.txt
STAMP=$VENV/.installed
PY=${PYTHON:-python3}
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && cmp -s "$REQS" "$STAMP"; then
  exit 0
fi
fail() {
  echo "install_triton_client: $1 (the tritonclient test will be skipped)" >&2
  exit 1
}
command -v "$PY" >/dev/null 2>&1 || fail "no $PY"
rm -rf "$VENV"
mkdir -p build
"$PY" -m venv "$VENV" || fail "'$PY -m venv $VENV' failed"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" \
  || fail "pip could not install $REQS into $VENV (offline?)"
"$VENV/bin/python" -c "import tritonclient.http" || fail "tritonclient.http does not import"
cp "$REQS" "$STAMP"
echo "install_triton_client: $VENV ready ($(grep -v '^#' "$REQS" | grep -c .) pins)"
