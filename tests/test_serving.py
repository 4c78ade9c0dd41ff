"""The REST model server (pmlv_utils.serving), started from its CLI on 127.0.0.1."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np
import pytest

MAX_BODY = 200_000
MAX_INSTANCES = 16


@pytest.fixture(scope="module")
def tiny(tiny_assets):
    assets = dict(tiny_assets)
    link = Path(assets["images"]) / "link_out.jpg"
    if not link.is_symlink():
        os.symlink(assets["outside"], link)
    assets["symlink_out"] = str(link)
    return assets


@pytest.fixture(scope="module")
def server(tiny):
    from pmlv_utils import serving

    handle = serving.start_server(
        tiny["export"],
        allowed_roots=[tiny["images"]],
        max_instances=MAX_INSTANCES,
        max_body_bytes=MAX_BODY,
    )
    yield handle
    handle.stop()
    assert not handle.running()


@pytest.fixture(scope="module")
def in_memory(tiny):
    from pmlv_utils import predict

    model = predict.LoadedModel(tiny["export"])
    return {r["filename"]: r for r in predict.predict_files(tiny["good"], model)}


def _probs(rows):
    return np.array([r["probability"] for r in rows])


def test_cli_binds_loopback_by_default():
    from pmlv_utils import serving

    assert serving.parse_args(["--model_dir", "m"]).host == "127.0.0.1"


def test_status_route_lists_signatures(server):
    import requests

    assert server.url.startswith("http://127.0.0.1:")
    status = requests.get(server.model_url, timeout=10).json()
    assert status["ready"] is True and status["name"] == "flowers"
    assert {"serving_default", "from_bytes", "passthrough"} <= set(status["signatures"])
    assert status["signatures"]["from_bytes"]["inputs"] == {
        "img_bytes": {"dtype": "string", "shape": [None]}
    }


def test_filenames_signature_name_and_b64_match_in_memory(server, tiny, in_memory):
    files = tiny["good"][:6]
    expected = _probs([in_memory[f] for f in files])
    as_strings = server.predict(files)
    as_objects = server.predict([{"filenames": f} for f in files], signature_name="serving_default")
    relative = server.predict([Path(f).name for f in files])  # relative to the first allowed root
    b64 = [{"img_bytes": {"b64": base64.b64encode(Path(f).read_bytes()).decode()}} for f in files]
    from_bytes = server.predict(b64)  # signature inferred from the field name
    bare_b64 = server.predict([i["img_bytes"] for i in b64], signature_name="from_bytes")
    for rows in (as_strings, as_objects, relative, from_bytes, bare_b64):
        np.testing.assert_allclose(_probs(rows), expected, atol=1e-6)
        assert [r["flower_type_str"] for r in rows] == [
            in_memory[f]["flower_type_str"] for f in files
        ]


def test_passthrough_returns_the_clients_name_and_key(server, tiny):
    name = Path(tiny["good"][0]).name
    rows = server.predict(
        [{"filenames": name, "key": 41}, {"filenames": name, "key": 42}],
        signature_name="passthrough",
    )
    assert [(r["filename"], r["key"]) for r in rows] == [
        (name, 41),
        (name, 42),
    ]  # no server path leaked


def test_malformed_and_hostile_requests_get_4xx_and_server_stays_up(server, tiny):
    from pmlv_utils import serving

    cases = serving.bad_request_cases(
        tiny["good"][0],
        tiny["outside"],
        tiny["symlink_out"],
        max_body_bytes=MAX_BODY,
        max_instances=MAX_INSTANCES,
    )
    assert len(cases) >= 20
    rows = serving.run_request_battery(server, cases)
    wrong = [r for r in rows if not r["ok"]]
    assert not wrong, wrong
    statuses = [r["status"] for r in rows[:-1]]
    assert all(400 <= s < 500 for s in statuses)
    # The outside file IS a valid image: a 200 would mean the server had read it.
    refused = {r["case"]: r["error"] for r in rows}
    for case in ("path traversal ../", "absolute path outside", "symlink out of root"):
        assert "outside the server's allowed folders" in refused[case]
    assert rows[-1]["case"] == "server still up" and rows[-1]["status"] == 200


def test_a_bad_instance_in_a_batch_names_it(server, tiny):
    resp = server.post("predict", {"instances": [tiny["good"][0], tiny["corrupt"]]})
    assert resp.status_code == 400
    assert "could not read instance 1" in resp.json()["error"]


def test_explain_route(server, tiny):
    resp = server.post(
        "explain", {"instances": tiny["good"][:2], "parameters": {"method": "ig", "steps": 8}}
    )
    try:
        import pmlv_utils.explain  # noqa: F401
    except ImportError:
        assert resp.status_code == 501
        return
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["predictions"]) == len(body["explanations"]) == 2
    attribution = body["explanations"][0]["attributions"][0]
    assert attribution["outputIndex"] == [body["predictions"][0]["flower_type_int"]]
    assert isinstance(attribution["approximationError"], float)
    raw = attribution["featureAttributions"]["input_images"]
    values = np.frombuffer(base64.b64decode(raw["b64"]), "<f4").reshape(raw["shape"])
    assert values.shape == (32, 32) and np.isfinite(values).all()
    assert base64.b64decode(raw["b64_png"]).startswith(b"\x89PNG")
    bad = server.post("explain", {"instances": tiny["good"][:1], "parameters": {"method": "nope"}})
    assert bad.status_code == 400


def test_2000_requests_from_16_clients_all_succeed(server, tiny):
    import requests

    from pmlv_utils import serving

    before = requests.get(server.model_url, timeout=10).json()["batching"]
    stats = serving.load_test(
        server.predict_url,
        {"instances": [Path(tiny["good"][1]).name]},
        clients=16,
        requests_total=2000,
    )
    assert stats["requests"] == 2000 and stats["errors"] == 0
    after = requests.get(server.model_url, timeout=10).json()["batching"]
    calls = after["model_calls"] - before["model_calls"]
    instances = after["instances"] - before["instances"]
    assert instances == 2000 + 16  # + one warm-up request per client
    assert calls < instances  # concurrent requests were merged into batches


def test_rest_dofn_sends_bad_files_to_dead_letter(server, tiny, tmp_path):
    from pmlv_utils import predict

    files = tiny["good"][:5] + [tiny["outside"], str(Path(tiny["images"]) / "missing.jpg")]
    result = predict.run_batch_prediction(
        files,
        None,
        str(tmp_path / "rest"),
        mode="rest",
        predict_url=server.predict_url,
        batch_size=4,
    )
    assert sorted(r["filename"] for r in result.predictions()) == sorted(tiny["good"][:5])
    dead = {d["path"]: d["reason"] for d in result.dead_letters()}
    assert dead[tiny["outside"]].startswith("HTTP 403")
    assert dead[files[-1]].startswith("HTTP 404")


def test_path_policy_unit():
    from pmlv_utils.serving import PathPolicy, RequestError

    policy = PathPolicy(["gs://bucket/allowed"])
    for name, status in [
        ("gs://bucket/allowed/../secret/x.jpg", 403),
        ("gs://bucket/allowedX/x.jpg", 403),
        ("gs://other/allowed/x.jpg", 403),
        ("/etc/passwd", 403),
        ("hdfs://x/y", 403),
    ]:
        with pytest.raises(RequestError) as err:
            policy.resolve(name)
        assert err.value.status == status, name
    with pytest.raises(ValueError):
        PathPolicy(["s3://bucket"])
