"""TF Serving's REST API and KServe v2 (Open Inference Protocol) on pmlv_utils.serving (issue 15).

The codec without a server (binary tensor extension, headers, shapes), then a server started
from its CLI: TF Serving's model status, signature_def metadata, columnar requests and version
paths, checked with ``requests``; KServe v2 with ``requests`` (JSON and hand-made binary
bodies), the bad-request battery of both protocols, and the real ``tritonclient[http]`` in its
own venv (build/triton-venv, made by tools/install_triton_client.sh; skipped without it).
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
import tensorflow as tf

from notebook_tools import REPO
from pmlv_utils import serving
from pmlv_utils.serving import oip, oip_tensors
from pmlv_utils.serving.paths import PathPolicy
from pmlv_utils.serving.requests import RequestError, RequestParser, served_inputs

TRITON_PYTHON = REPO / "build" / "triton-venv" / "bin" / "python"
STATUS = [
    {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
]
BINARY = "Inference-Header-Content-Length"


def _status(fn, *args) -> tuple[int, str]:
    with pytest.raises(RequestError) as err:
        fn(*args)
    return err.value.status, err.value.message


def _bytes_tensor(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def _binary_body(header: dict, *blobs: bytes) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {BINARY: str(len(head))}


# ---- the codec, without a server ------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"content-type": "application/json"}, None),
        ({"content-type": "application/json; charset=utf-8"}, None),
        ({"content-type": "application/octet-stream"}, None),
        ({BINARY: "12"}, None),  # tritonclient's binary form: no Content-Type
        ({}, 415),
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "text/plain", BINARY: "12"}, 415),
        ({"content-type": "application/json; charset=latin-1"}, 415),
        ({"content-type": "application/json", "content-encoding": "gzip"}, 415),
    ],
)
def test_v2_content_types(headers, status):
    if status is None:
        oip.check_headers(headers)
    else:
        assert _status(oip.check_headers, headers)[0] == status


def test_v2_binary_request_round_trip():
    names = [b"daisy/1.jpg", "rosé.png".encode()]
    keys = np.array([7, -2], dtype="<i8").tobytes()
    header = {
        "id": "r1",
        "parameters": {"binary_data_output": True},
        "inputs": [
            {"name": "filenames", "shape": [2], "datatype": "BYTES", "parameters": {}},
            {"name": "key", "shape": [2], "datatype": "INT64", "parameters": {}},
        ],
    }
    header["inputs"][0]["parameters"]["binary_data_size"] = len(_bytes_tensor(names))
    header["inputs"][1]["parameters"]["binary_data_size"] = len(keys)
    body, headers = _binary_body(header, _bytes_tensor(names), keys)
    request = oip.parse_infer(body, headers[BINARY], 1000, 1000)
    assert [t.values for t in request.inputs] == [names, [7, -2]]
    assert request.id == "r1" and request.outputs is None and request.binary_output
    outputs = {"probability": np.eye(2, 3, dtype=np.float32), "label": np.array([b"a", b"bc"])}
    answer, out_headers, media = oip.encode_response("flowers", "1", request, outputs)
    size = int(out_headers[BINARY])
    head = json.loads(answer[:size])
    assert media == "application/octet-stream" and head["id"] == "r1"
    assert [o["name"] for o in head["outputs"]] == ["label", "probability"]  # sorted, all
    blob = answer[size:]
    label_size = head["outputs"][0]["parameters"]["binary_data_size"]
    assert blob[:label_size] == _bytes_tensor([b"a", b"bc"])
    probability = np.frombuffer(blob[label_size:], "<f4").reshape(head["outputs"][1]["shape"])
    np.testing.assert_array_equal(probability, outputs["probability"])


@pytest.mark.parametrize(
    "header, blob, fragment",
    [
        ({"inputs": [{"name": "f", "shape": [1], "datatype": "BYTES"}]}, b"", "either 'data'"),
        ({"inputs": [{"name": "f", "shape": [-1], "datatype": "BYTES", "data": []}]}, b"", "shape"),
        ({"inputs": [{"name": "f", "shape": [1], "datatype": "BF16", "data": [1]}]}, b"", "BF16"),
        (
            {"inputs": [{"name": "f", "shape": [2], "datatype": "BYTES", "data": ["a"]}]},
            b"",
            "count",
        ),
        (
            {"inputs": [{"name": "f", "shape": [1], "datatype": "BYTES", "data": [3]}]},
            b"",
            "strings",
        ),
        (
            {"inputs": [{"name": "f", "shape": [1], "datatype": "INT64", "data": [1]}] * 2},
            b"",
            "unique",
        ),
        ({"inputs": [], "extra": 1}, b"", "unknown fields ['extra']"),
        (
            {
                "inputs": [
                    {
                        "name": "k",
                        "shape": [2],
                        "datatype": "INT64",
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            },
            b"\x00" * 8,
            "take 16 bytes",
        ),
        (
            {"inputs": [{"name": "f", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
            b"extra",
            "binary part of the body has 5 bytes",
        ),
        (
            {
                "inputs": [{"name": "f", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
                "outputs": [{"name": "p", "parameters": {"classification": 3}}],
            },
            b"",
            "'classification' is not supported",
        ),
    ],
)
def test_v2_bad_requests(header, blob, fragment):
    body, headers = _binary_body(header, blob)
    status, message = _status(oip.parse_infer, body, headers[BINARY], 1000, 1000)
    assert status == 400 and fragment in message, message


def test_v2_element_budget_is_checked_before_decoding():
    header = {"inputs": [{"name": "f", "shape": [10**6, 10**6], "datatype": "BYTES", "data": []}]}
    body = json.dumps(header).encode()
    assert _status(oip.parse_infer, body, None, 1000, 1000)[0] == 413


def test_v2_tensors_to_a_signature(tmp_path):
    (tmp_path / "daisy.jpg").write_bytes(b"not read here")
    string = tf.TensorSpec([None], tf.string)
    specs = {
        "serving_default": {"filenames": string},
        "from_bytes": {"img_bytes": string},
        "passthrough": {"filenames": string, "key": tf.TensorSpec([None], tf.int64)},
    }
    parser = RequestParser(served_inputs(specs), PathPolicy([tmp_path]))

    def tensors(*inputs, **fields):
        return oip.parse_infer(
            json.dumps({"inputs": list(inputs), **fields}).encode(), None, 99, 99
        )

    names = {"name": "filenames", "shape": [1], "datatype": "BYTES", "data": ["daisy.jpg"]}
    key = {"name": "key", "shape": [1], "datatype": "INT64", "data": [3]}
    image = {"name": "img_bytes", "shape": [1], "datatype": "BYTES", "data": ["AAEC"]}
    assert oip_tensors.columnar_body(tensors(names), parser)["signature_name"] == "serving_default"
    body = oip_tensors.columnar_body(tensors(names, key), parser)
    assert body == {
        "inputs": {"filenames": ["daisy.jpg"], "key": [3]},
        "signature_name": "passthrough",
    }
    assert oip_tensors.columnar_body(tensors(image), parser)["inputs"] == {"img_bytes": [b"\0\1\2"]}
    for bad, fragment in [
        ({**names, "datatype": "FP32", "data": [1.0]}, "datatype FP32; the model takes BYTES"),
        ({**names, "shape": [1, 1]}, "shape [1, 1] does not fit [-1]"),
        ({**image, "data": ["@@"]}, "must be base64"),
    ]:
        assert fragment in _status(oip_tensors.columnar_body, tensors(bad), parser)[1]
    wrong = tensors(names, parameters={"signature_name": "from_bytes"})
    assert "takes inputs ['img_bytes']" in _status(oip_tensors.columnar_body, wrong, parser)[1]


# ---- a live server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_assets):
    handle = serving.start_server(tiny_assets["export"], allowed_roots=[tiny_assets["images"]])
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def in_memory(tiny_assets):
    from pmlv_utils import predict

    model = predict.LoadedModel(tiny_assets["export"])
    return {r["filename"]: r for r in predict.predict_files(tiny_assets["good"], model)}


def _probs(files, in_memory):
    return np.array([in_memory[f]["probability"] for f in files])


def test_tf_serving_model_status(server):
    status = requests.get(server.model_url, timeout=10).json()
    assert status["model_version_status"] == STATUS  # exactly TF Serving's
    assert status["ready"] is True and "serving_default" in status["signatures"]  # and ours
    assert "batching" in status
    versioned = requests.get(f"{server.model_url}/versions/1", timeout=10).json()
    assert versioned["model_version_status"] == STATUS
    for route in ("/versions/7", "/versions/7/metadata"):
        resp = requests.get(server.model_url + route, timeout=10)
        assert resp.status_code == 404
        assert resp.json() == {"error": "Servable not found for request: Specific(flowers, 7)"}


def test_tf_serving_metadata_is_the_signature_def_map(server):
    meta = requests.get(server.metadata_url, timeout=10).json()
    assert meta["model_spec"] == {"name": "flowers", "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert sorted(defs) == ["from_bytes", "passthrough", "serving_default"]  # public ones only
    default = defs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["filenames"] == {
        "name": "serving_default_filenames:0",
        "dtype": "DT_STRING",
        "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
    }
    probability = default["outputs"]["probability"]
    assert probability["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in probability["tensor_shape"]["dim"]] == ["-1", "5"]
    assert defs["passthrough"]["inputs"]["key"]["dtype"] == "DT_INT64"
    versioned = requests.get(f"{server.model_url}/versions/1/metadata", timeout=10).json()
    assert versioned == meta


def test_columnar_requests_match_rows(server, tiny_assets, in_memory):
    files = tiny_assets["good"][:4]
    names = [Path(f).name for f in files]  # relative to the allowed root
    b64 = [{"b64": base64.b64encode(Path(f).read_bytes()).decode()} for f in files]
    urls = (server.predict_url, f"{server.model_url}/versions/1:predict")
    bodies = [
        {"inputs": files},
        {"inputs": {"filenames": names}},
        {"inputs": names, "signature_name": "serving_default"},
        {"inputs": b64},
        {"inputs": {"img_bytes": b64}, "signature_name": "from_bytes"},
    ]
    for url in urls:
        for body in bodies:
            resp = requests.post(url, json=body, timeout=60)
            assert resp.status_code == 200, (body, resp.text)
            outputs = resp.json()["outputs"]
            assert sorted(outputs) == ["flower_type_int", "flower_type_str", "probability"]
            np.testing.assert_allclose(outputs["probability"], _probs(files, in_memory), atol=1e-6)
            assert outputs["flower_type_str"] == [in_memory[f]["flower_type_str"] for f in files]
    passthrough = {"inputs": {"filenames": names[:2], "key": [5, 6]}}
    outputs = requests.post(server.predict_url, json=passthrough, timeout=60).json()["outputs"]
    assert outputs["filename"] == names[:2] and outputs["key"] == [5, 6]  # no server path
    rows = requests.post(urls[1], json={"instances": names[:2]}, timeout=60).json()
    np.testing.assert_allclose(
        [r["probability"] for r in rows["predictions"]], _probs(files[:2], in_memory), atol=1e-6
    )


def test_v2_health_metadata_ready(server):
    for route, body in [
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        ("/v2/models/flowers/ready", {"name": "flowers", "ready": True}),
        ("/v2/models/flowers/versions/1/ready", {"name": "flowers", "ready": True}),
    ]:
        resp = requests.get(server.url + route, timeout=10)
        assert (resp.status_code, resp.json()) == (200, body), route
    meta = requests.get(server.v2_url, timeout=10).json()
    assert meta == {
        "name": "flowers",
        "versions": ["1"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "filenames", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "flower_type_int", "datatype": "INT64", "shape": [-1]},
            {"name": "flower_type_str", "datatype": "BYTES", "shape": [-1]},
            {"name": "probability", "datatype": "FP32", "shape": [-1, 5]},
        ],
    }
    assert requests.get(f"{server.v2_url}/versions/1", timeout=10).json() == meta
    assert requests.get(server.url + "/v2", timeout=10).json()["extensions"] == [
        "binary_tensor_data"
    ]
    missing = requests.get(server.url + "/v2/models/nope", timeout=10)
    assert missing.status_code == 404 and set(missing.json()) == {"error"}


def test_v2_infer_json(server, tiny_assets, in_memory):
    files = tiny_assets["good"][:3]
    tensor = {"name": "filenames", "shape": [3], "datatype": "BYTES", "data": files}
    body = {"id": "a", "inputs": [tensor], "outputs": [{"name": "probability"}]}
    resp = requests.post(f"{server.v2_url}/infer", json=body, timeout=60)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    answer = resp.json()
    assert (answer["id"], answer["model_name"], answer["model_version"]) == ("a", "flowers", "1")
    (output,) = answer["outputs"]  # only what was asked for
    assert (output["name"], output["datatype"], output["shape"]) == ("probability", "FP32", [3, 5])
    np.testing.assert_allclose(
        np.reshape(output["data"], (3, 5)), _probs(files, in_memory), atol=1e-6
    )
    b64 = [base64.b64encode(Path(f).read_bytes()).decode() for f in files]
    images = {"name": "img_bytes", "shape": [3], "datatype": "BYTES", "data": b64}
    answer = requests.post(f"{server.v2_url}/infer", json={"inputs": [images]}, timeout=60).json()
    assert [o["name"] for o in answer["outputs"]] == [
        "flower_type_int",
        "flower_type_str",
        "probability",
    ]
    assert answer["outputs"][1]["data"] == [in_memory[f]["flower_type_str"] for f in files]


def test_v2_infer_binary(server, tiny_assets, in_memory):
    files = [Path(f).name for f in tiny_assets["good"][:3]]
    names = _bytes_tensor([f.encode() for f in files])
    keys = np.array([10, 11, 12], dtype="<i8").tobytes()
    header = {
        "inputs": [
            {"name": "filenames", "shape": [3], "datatype": "BYTES"},
            {"name": "key", "shape": [3], "datatype": "INT64"},
        ],
        "outputs": [
            {"name": "filename", "parameters": {"binary_data": True}},
            {"name": "key", "parameters": {"binary_data": False}},
            {"name": "probability", "parameters": {"binary_data": True}},
        ],
    }
    header["inputs"][0]["parameters"] = {"binary_data_size": len(names)}
    header["inputs"][1]["parameters"] = {"binary_data_size": len(keys)}
    body, headers = _binary_body(header, names, keys)  # no Content-Type, as tritonclient
    resp = requests.post(f"{server.v2_url}/infer", data=body, headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/octet-stream"
    size = int(resp.headers[BINARY])
    head, blob = json.loads(resp.content[:size]), resp.content[size:]
    filename, key, probability = head["outputs"]
    assert key == {"name": "key", "datatype": "INT64", "shape": [3], "data": [10, 11, 12]}
    name_size = filename["parameters"]["binary_data_size"]
    assert blob[:name_size] == names  # the client's names, not the server's paths
    values = np.frombuffer(blob[name_size:], "<f4").reshape(probability["shape"])
    full = [str(Path(tiny_assets["images"]) / f) for f in files]
    np.testing.assert_allclose(values, _probs(full, in_memory), atol=1e-6)


def test_v2_and_columnar_bad_requests_get_4xx(server, tiny_assets):
    cases = serving.protocol_request_cases(tiny_assets["good"][0], tiny_assets["outside"])
    assert len(cases) >= 25
    rows = serving.run_request_battery(server, cases)
    wrong = [r for r in rows if not r["ok"]]
    assert not wrong, wrong
    assert rows[-1]["status"] == 200
    refused = {r["case"]: r["error"] for r in rows}
    assert "outside the server's allowed folders" in refused["v2 outside file"]
    assert "outside the server's allowed folders" in refused["columnar outside file"]
    assert "pixels" in refused["v2 PNG bomb bytes"]
    log = server.log_tail(200)
    assert "Traceback" not in log, log


def test_every_error_body_is_one_error_string(server, tiny_assets):
    v2 = f"{server.v2_url}/infer"
    for method, url, kwargs in [
        ("GET", server.url + "/v1/models/flowers/versions/9", {}),
        ("POST", server.predict_url, {"json": {"inputs": {"nope": [1]}}}),
        ("POST", server.predict_url, {"data": b"{}", "headers": {"Content-Type": "text/plain"}}),
        ("GET", server.url + "/no/such/route", {}),
        ("POST", v2, {"data": b"{", "headers": {"Content-Type": "application/json"}}),
        ("POST", v2, {"data": b"{}"}),
    ]:
        resp = requests.request(method, url, timeout=10, **kwargs)
        assert 400 <= resp.status_code < 500
        body = resp.json()
        assert set(body) == {"error"} and isinstance(body["error"], str), (url, body)


# ---- tritonclient, in its own venv -----------------------------------------------------------


def test_tritonclient_checks_live_ready_metadata_and_infer(server, tiny_assets, in_memory):
    if not TRITON_PYTHON.exists():
        pytest.skip(
            f"no {TRITON_PYTHON.relative_to(REPO)}: run `bash tools/install_triton_client.sh` "
            "(make test does) to check the KServe v2 routes with tritonclient"
        )
    files = tiny_assets["good"][:4]
    url = server.url.removeprefix("http://")
    done = subprocess.run(
        [
            str(TRITON_PYTHON),
            str(REPO / "tools" / "triton_client_check.py"),
            url,
            "flowers",
            *files,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["metadata"]["inputs"] == [
        {"name": "filenames", "datatype": "BYTES", "shape": [-1]}
    ]
    expected = _probs(files, in_memory)
    for run in ("binary", "json"):
        np.testing.assert_allclose(report[run]["probability"], expected, atol=1e-6)
        assert report[run]["flower_type_str"] == [in_memory[f]["flower_type_str"] for f in files]
    np.testing.assert_allclose(report["img_bytes"], expected, atol=1e-6)
    assert report["unknown_model"] == 404
