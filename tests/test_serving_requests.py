"""Request parsing and validation (pmlv_utils.serving.requests) without a model or a server."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
import tensorflow as tf

from pmlv_utils.serving.paths import PathPolicy
from pmlv_utils.serving.requests import (
    RequestError,
    RequestParser,
    parse_json,
    read_body,
    served_inputs,
)

STRING = tf.TensorSpec([None], tf.string)
SPECS = {
    "serving_default": {"filenames": STRING},
    "from_bytes": {"img_bytes": STRING},
    "passthrough": {"filenames": STRING, "key": tf.TensorSpec([None], tf.int64)},
    "thresholded": {"filenames": STRING, "threshold": tf.TensorSpec([], tf.float32)},
    "raw_text": {"text": STRING},  # a string input of unknown meaning: never served
}


@pytest.fixture()
def parser(tmp_path):
    (tmp_path / "daisy.jpg").write_bytes(b"not decoded here")
    return RequestParser(served_inputs(SPECS), PathPolicy([tmp_path]), max_instances=3)


def _error(parser, body, **kwargs) -> tuple[int, str]:
    with pytest.raises(RequestError) as err:
        parser.parse(body, **kwargs)
    return err.value.status, err.value.message


def test_served_signatures_skip_unknown_string_inputs():
    served = served_inputs(SPECS)
    assert sorted(served) == ["from_bytes", "passthrough", "serving_default", "thresholded"]
    assert served["passthrough"]["key"][0] == "number"
    assert served["serving_default"]["filenames"][0] == "file"
    assert served["from_bytes"]["img_bytes"][0] == "bytes"


@pytest.mark.parametrize(
    "body, status, message",
    [
        (["daisy.jpg"], 400, 'the request body must be a JSON object like {"instances": [...]}'),
        (
            {"inputs": {"filenames": ["daisy.jpg"]}},
            400,
            "the columnar 'inputs' format is for :predict only; send 'instances' (rows)",
        ),
        ({"signature_name": "x"}, 400, "missing 'instances'; got fields ['signature_name']"),
        ({"instances": ["daisy.jpg"], "extra": 1}, 400, "unknown request fields ['extra']"),
        ({"instances": []}, 400, "'instances' must be a non-empty list"),
        (
            {"instances": ["daisy.jpg"] * 4},
            413,
            "4 instances in one request; this server takes at most 3",
        ),
        (
            {"instances": ["daisy.jpg"], "signature_name": "nope"},
            400,
            "unknown signature_name 'nope'; this model serves "
            "['from_bytes', 'passthrough', 'serving_default', 'thresholded']",
        ),
        (
            {"instances": [{"filenames": 42}]},
            400,
            "instance 0, field 'filenames': expected a file name string",
        ),
        (
            {"instances": [{"img_bytes": {"b64": "@@not base64@@"}}]},
            400,
            "instance 0, field 'img_bytes': invalid base64",
        ),
        (
            {"instances": [{"img_bytes": "raw string"}]},
            400,
            'instance 0, field \'img_bytes\': bytes must be sent as {"b64": "<base64 string>"}',
        ),
        (
            {"instances": ["/etc/passwd"]},
            403,
            "instance 0, field 'filenames': '/etc/passwd': outside the server's allowed folders",
        ),
        (
            {"instances": ["missing.jpg"]},
            404,
            "instance 0, field 'filenames': 'missing.jpg': file not found",
        ),
        (
            {"instances": ["daisy.jpg\u0000.jpg"]},
            400,
            "instance 0, field 'filenames': a file name may not contain NUL characters",
        ),
        (
            {"instances": [42]},
            400,
            "instance 0: expected a file name string or an object of named inputs",
        ),
        (
            {
                "instances": [{"filenames": "daisy.jpg", "key": "seven"}],
                "signature_name": "passthrough",
            },
            400,
            "instance 0, field 'key': expected a number or nested list of numbers",
        ),
        (
            {
                "instances": [{"filenames": "daisy.jpg", "key": [1, 2]}],
                "signature_name": "passthrough",
            },
            400,
            "instance 0, field 'key': shape [2] does not fit []",
        ),
        (
            {"instances": [{"filenames": "daisy.jpg"}], "signature_name": "passthrough"},
            400,
            "instance 0: signature 'passthrough' expects fields ['filenames', 'key'], "
            "got ['filenames']",
        ),
        (
            {"instances": ["daisy.jpg"], "signature_name": "passthrough"},
            400,
            "instance 0: expected an object with fields ['filenames', 'key']",
        ),
        (
            {"instances": ["daisy.jpg", {"filenames": "daisy.jpg", "key": 1}]},
            400,
            "instance 1, field 'filenames': expected a file name string",
        ),
        (
            {
                "instances": [
                    {"filenames": "daisy.jpg", "threshold": 0.5},
                    {"filenames": "daisy.jpg", "threshold": 0.7},
                ]
            },
            400,
            "field 'threshold' is a scalar: every instance must carry the same value",
        ),
    ],
)
def test_malformed_bodies_get_todays_messages(parser, body, status, message):
    assert _error(parser, body) == (status, message)


def test_fields_that_match_no_signature_list_the_inputs(parser):
    status, message = _error(parser, {"instances": [{"filename_typo": "daisy.jpg"}]})
    assert status == 400
    assert message.startswith("instance 0: fields ['filename_typo'] match no signature; ")
    assert "'passthrough': ['filenames', 'key']" in message


def test_route_without_signature_name_refuses_it(parser):
    body = {"instances": ["daisy.jpg"], "signature_name": "serving_default"}
    assert _error(parser, body, allow_signature=False) == (
        400,
        "'signature_name' is not used by this route",
    )
    assert _error(parser, {"instances": ["daisy.jpg"] * 2}, max_instances=1)[0] == 413


def test_valid_bodies_are_parsed(parser, tmp_path):
    real = str((tmp_path / "daisy.jpg").resolve())
    parsed = parser.parse({"instances": ["daisy.jpg", {"filenames": real}]})
    assert (parsed.signature, parsed.n) == ("serving_default", 2)
    assert parsed.inputs == {"filenames": [real, real]}
    assert parsed.client_names == [{real: "daisy.jpg"}, {real: real}]

    b64 = base64.b64encode(b"\x89PNG...").decode()
    parsed = parser.parse({"instances": [{"b64": b64}]})  # bare {"b64"} -> the bytes signature
    assert parsed.signature == "from_bytes" and parsed.inputs == {"img_bytes": [b"\x89PNG..."]}

    parsed = parser.parse({"instances": [{"filenames": "daisy.jpg", "key": 7}]})
    assert parsed.signature == "passthrough"
    assert parsed.inputs["key"][0].dtype == np.int64 and int(parsed.inputs["key"][0]) == 7

    parsed = parser.parse(
        {"instances": [{"filenames": "daisy.jpg", "threshold": 0.5}] * 2}
    )  # a scalar input: one value for the request
    assert parsed.signature == "thresholded" and float(parsed.inputs["threshold"]) == 0.5


def test_json_errors():
    with pytest.raises(RequestError, match="the request body is not valid JSON"):
        parse_json(b'{"instances": [')
    with pytest.raises(RequestError, match="the request JSON is nested too deeply"):
        parse_json(b"[" * 5000 + b"]" * 5000)
    assert parse_json(json.dumps({"instances": ["a"]}).encode()) == {"instances": ["a"]}


class _FakeRequest:
    def __init__(self, body: bytes, content_length: str | None = None):
        self.headers = {} if content_length is None else {"content-length": content_length}
        self._chunks = [body[i : i + 4] for i in range(0, len(body), 4)]

    async def stream(self):
        while self._chunks:
            yield self._chunks.pop(0)


def _read(request, limit):
    return asyncio.run(read_body(request, limit))


def test_read_body_limits():
    assert _read(_FakeRequest(b"0123456789"), 10) == b"0123456789"
    for request in (_FakeRequest(b"0123456789", "10"), _FakeRequest(b"0123456789")):
        with pytest.raises(RequestError) as err:
            _read(request, 9)
        assert (err.value.status, err.value.message) == (
            413,
            "request body over the server's limit of 9 bytes",
        )
    with pytest.raises(RequestError) as err:
        _read(_FakeRequest(b"{}", "ten"), 9)
    assert (err.value.status, err.value.message) == (400, "invalid Content-Length")
