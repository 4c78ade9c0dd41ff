"""The KServe v2 routes of pmlv_utils.serving, checked with a client no one here wrote.

Run with the python of build/triton-venv (tools/install_triton_client.sh), which has
tritonclient[http] and not the course's packages::

    build/triton-venv/bin/python tools/triton_client_check.py 127.0.0.1:8080 flowers A.jpg B.jpg

Checks is_server_live, is_server_ready, is_model_ready and get_model_metadata; runs ``infer``
with the file names as a BYTES input, in the binary tensor extension (tritonclient's default)
and as JSON only (``binary_data=False``; a JSON body says its Content-Type), then with the
images' bytes, and asks for an unknown model. Prints one JSON object (probabilities per run,
the metadata, the unknown model's status) and exits 0, or exits 1 naming what failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

JSON_ONLY = {"Content-Type": "application/json"}
OUTPUTS = ("probability", "flower_type_int", "flower_type_str")


def infer_files(client, model: str, files: list[str], binary: bool) -> dict:
    """``infer`` with the file names as BYTES; every output, in binary or JSON."""
    names = httpclient.InferInput("filenames", [len(files)], "BYTES")
    names.set_data_from_numpy(np.array([f.encode() for f in files], dtype=object), binary)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in OUTPUTS]
    result = client.infer(
        model,
        inputs=[names],
        outputs=outputs,
        request_id=f"files-binary-{binary}",
        headers=None if binary else JSON_ONLY,
    )
    probability = result.as_numpy("probability")
    assert probability.dtype == np.float32, probability.dtype
    assert probability.shape[0] == len(files), probability.shape
    labels = result.as_numpy("flower_type_str")
    assert result.as_numpy("flower_type_int").dtype == np.int64
    assert result.get_response()["id"] == f"files-binary-{binary}"
    return {
        "probability": probability.tolist(),
        "flower_type_int": result.as_numpy("flower_type_int").tolist(),
        "flower_type_str": [v.decode() if isinstance(v, bytes) else str(v) for v in labels],
    }


def infer_bytes(client, model: str, files: list[str]) -> list:
    """``infer`` with the images' bytes (binary: JPEG bytes are no JSON string); the
    probability only."""
    data = np.array([Path(f).read_bytes() for f in files], dtype=object)
    images = httpclient.InferInput("img_bytes", [len(files)], "BYTES")
    images.set_data_from_numpy(data)
    result = client.infer(
        model, inputs=[images], outputs=[httpclient.InferRequestedOutput("probability")]
    )
    return result.as_numpy("probability").tolist()


def main(argv: list[str]) -> int:
    url, model, files = argv[0], argv[1], argv[2:]
    client = httpclient.InferenceServerClient(url, connection_timeout=10.0, network_timeout=120.0)
    report: dict = {}
    try:
        assert client.is_server_live(), "is_server_live"
        assert client.is_server_ready(), "is_server_ready"
        assert client.is_model_ready(model), "is_model_ready"
        report["metadata"] = client.get_model_metadata(model)
        report["binary"] = infer_files(client, model, files, binary=True)
        report["json"] = infer_files(client, model, files, binary=False)
        report["img_bytes"] = infer_bytes(client, model, files)
        try:
            client.get_model_metadata("no_such_model")
            report["unknown_model"] = 200
        except InferenceServerException as err:
            report["unknown_model"] = int(err.status())
            report["unknown_model_message"] = err.message()
    except (AssertionError, InferenceServerException) as err:
        print(f"triton_client_check failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
