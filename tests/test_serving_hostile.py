"""Hostile and unlucky inputs to the REST server (issue 12): every one a cheap 4xx.

Unit tests of the guards (strict JSON and types, Content-Type, Host, the image loader on
special files, the explain option bounds, the busy explainer, the pixel budget), then live
servers: the whole hostile battery followed by a normal request answered within a second,
health during a big slow upload, the concurrency limit, the explain time budget with
:predict answering meanwhile, the largest allowed request's peak memory, and SIGTERM during
a long explanation.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tensorflow as tf
from PIL import Image

from pmlv_utils import serving
from pmlv_utils.serving import battery, explaining, guards, inputs
from pmlv_utils.serving.paths import PathPolicy
from pmlv_utils.serving.requests import (
    RequestError,
    RequestParser,
    check_content_type,
    parse_json,
    served_inputs,
)

BODY_TIMEOUT_S = 3
MAX_CONCURRENT = 4


def _status(fn, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(RequestError) as err:
        fn(*args, **kwargs)
    return err.value.status, err.value.message


# ---- strict JSON, types, headers --------------------------------------------------------


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_non_finite_numbers_are_refused(text):
    status, message = _status(parse_json, f'{{"instances": [{text}]}}'.encode())
    assert status == 400 and "not valid JSON" in message


def test_json_value_count_and_utf8():
    assert _status(parse_json, b"[" + b"0," * 300 + b"0]", 100)[0] == 413
    assert parse_json(b"[" + b"0," * 50 + b"0]", 100) == [0] * 51
    assert _status(parse_json, b'["\xff"]') == (400, "the request body is not valid UTF-8")
    assert parse_json('["daisy ✿"]'.encode()) == ["daisy ✿"]


@pytest.mark.parametrize(
    "value, ok",
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON;charset=UTF-8", True),
        (None, False),
        ("", False),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("application/json; charset=latin-1", False),
        ("application/jsonp", False),
    ],
)
def test_content_type(value, ok):
    if ok:
        check_content_type(value)
    else:
        assert _status(check_content_type, value)[0] == 415


@pytest.fixture()
def parser(tmp_path):
    string = tf.TensorSpec([None], tf.string)
    specs = {
        "serving_default": {"filenames": string},
        "passthrough": {"filenames": string, "key": tf.TensorSpec([None], tf.int64)},
        "scaled": {"filenames": string, "scale": tf.TensorSpec([None], tf.float32)},
        "small_ints": {"filenames": string, "level": tf.TensorSpec([None], tf.int8)},
        "flags": {"filenames": string, "flag": tf.TensorSpec([None], tf.bool)},
        "xai_model": {"input_images": tf.TensorSpec([None, 4, 4, 3], tf.float32)},
    }
    (tmp_path / "daisy.jpg").write_bytes(b"not read by the parser")
    return RequestParser(served_inputs(specs), PathPolicy([tmp_path]))


@pytest.mark.parametrize(
    "signature, field, value, fragment",
    [
        ("passthrough", "key", 1.5, "expected an integer from"),
        ("passthrough", "key", 1.0, "got 1.0"),
        ("passthrough", "key", True, "got true"),
        ("passthrough", "key", 2**63, "got 9223372036854775808"),
        ("passthrough", "key", [1], "shape [1] does not fit []"),
        ("small_ints", "level", 128, "from -128 to 127 (int8)"),
        ("scaled", "scale", True, "expected a number (float32)"),
        ("scaled", "scale", 1e300, "out of range for float32"),
        ("flags", "flag", 1, "expected true or false"),
    ],
)
def test_strict_numbers(parser, signature, field, value, fragment):
    body = {"signature_name": signature, "instances": [{"filenames": "daisy.jpg", field: value}]}
    status, message = _status(parser.parse, body)
    assert status == 400 and fragment in message, message


def test_valid_numbers_still_pass(parser):
    body = {"signature_name": "passthrough", "instances": [{"filenames": "daisy.jpg", "key": -7}]}
    assert int(parser.parse(body).inputs["key"][0]) == -7
    body = {"signature_name": "scaled", "instances": [{"filenames": "daisy.jpg", "scale": 2}]}
    assert float(parser.parse(body).inputs["scale"][0]) == 2.0


def test_internal_signatures_are_not_callable(parser):
    body = {"signature_name": "xai_model", "instances": [{"input_images": [[[0.0] * 3] * 4] * 4}]}
    status, message = _status(parser.parse, body)
    assert status == 400 and "internal" in message
    status, message = _status(
        parser.parse, {"instances": [{"input_images": [[[0.0] * 3] * 4] * 4}]}
    )
    assert status == 400 and "match no signature" in message
    assert "xai_model" not in parser.served and "xai_model" in parser.internal


def test_lone_surrogate_file_name(parser):
    body = json.loads('{"instances": ["daisy\\ud800.jpg"]}')
    assert _status(parser.parse, body) == (
        400,
        "instance 0, field 'filenames': a file name must be valid UTF-8 (it has a lone surrogate)",
    )


@pytest.mark.parametrize(
    "header, allowed",
    [
        ("127.0.0.1:8080", True),
        ("localhost", True),
        ("LOCALHOST:1", True),
        ("[::1]:9000", True),
        ("evil.example", False),
        ("127.0.0.1.evil.example:80", False),
        ("", False),
        (None, False),
    ],
)
def test_host_allowlist(header, allowed):
    guard = guards.HostGuard(None)
    assert guard.allows(header) is allowed
    assert guards.HostGuard(None, ["*"]).allows(header) is True
    assert guards.HostGuard(None, ["model.internal"]).allows("model.internal:8080") is True


def test_admission_limit():
    admission = guards.Admission(2)
    with admission.admit(), admission.admit():
        with pytest.raises(RequestError) as err:
            with admission.admit():
                pass
    assert err.value.status == 429 and err.value.headers == {"Retry-After": "1"}
    with admission.admit():
        assert admission.active == 1


# ---- the image loader: special files, bombs, sizes ------------------------------------------


def _png(size=(20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def hostile(tmp_path):
    (tmp_path / "ok.png").write_bytes(_png())
    return tmp_path, battery.make_hostile_files(tmp_path)


def _load(loader, path):
    return loader.one(0, path, os.path.basename(path))


def test_loader_refuses_special_files_without_blocking(hostile):
    root, files = hostile
    loader = inputs.ImageLoader(PathPolicy([root]), inputs.Limits(max_file_bytes=2**20))
    expected = {"fifo": 400, "directory": 400, "device": 400, "sparse": 413, "bomb": 413}
    for kind, status in expected.items():
        if kind not in files:
            continue
        start = time.perf_counter()
        with pytest.raises(RequestError) as err:
            _load(loader, files[kind])
        assert err.value.status == status, (kind, err.value.message)
        assert time.perf_counter() - start < 1, kind
        assert str(root) not in err.value.message  # the client's name, not the server's path
    ok = _load(loader, str(root / "ok.png"))
    assert (ok.format, ok.width, ok.height, ok.data) == (
        "PNG",
        20,
        10,
        (root / "ok.png").read_bytes(),
    )


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_loader_refuses_dev_zero_under_an_allowed_root():
    loader = inputs.ImageLoader(PathPolicy(["/dev"]))
    with pytest.raises(RequestError, match="character device") as err:
        _load(loader, "/dev/zero")
    assert err.value.status == 400


def test_loader_checks_the_opened_file_is_inside_the_roots(hostile, tmp_path_factory):
    root, _ = hostile
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    outside.write_bytes(_png())
    swapped = root / "swapped.png"
    swapped.symlink_to(outside)  # as if swapped in after the policy resolved the name
    loader = inputs.ImageLoader(PathPolicy([root]))
    with pytest.raises(RequestError) as err:
        loader.one(0, str(swapped), "swapped.png")
    assert err.value.status == 403


def test_request_pixel_total(hostile):
    root, _ = hostile
    policy = PathPolicy([root])
    limits = inputs.Limits(max_pixels=300, max_request_pixels=500)
    parser = RequestParser(
        served_inputs({"from_bytes": {"img_bytes": tf.TensorSpec([None], tf.string)}}), policy
    )
    b64 = {"b64": base64.b64encode(_png()).decode()}  # 200 pixels each
    loader = inputs.ImageLoader(policy, limits)
    parsed = parser.parse({"instances": [{"img_bytes": b64}] * 2})
    assert loader.load(parsed, parser.served["from_bytes"]) == [200, 200]
    parsed = parser.parse({"instances": [{"img_bytes": b64}] * 3})
    status, message = _status(loader.load, parsed, parser.served["from_bytes"])
    assert status == 413 and "600 pixels in one request" in message


def test_gcs_read_has_a_timeout(monkeypatch):
    def hang(path):
        time.sleep(30)

    monkeypatch.setattr(tf.io.gfile, "stat", hang)
    loader = inputs.ImageLoader(PathPolicy(["gs://bucket/data"]), inputs.Limits(read_timeout_s=0.5))
    start = time.perf_counter()
    with pytest.raises(RequestError) as err:
        loader.one(0, "gs://bucket/data/x.jpg", "gs://bucket/data/x.jpg")
    assert err.value.status == 504 and time.perf_counter() - start < 3


def test_gcs_errors_map_to_4xx(monkeypatch):
    def missing(path):
        raise tf.errors.NotFoundError(None, None, "no such object")

    monkeypatch.setattr(tf.io.gfile, "stat", missing)
    loader = inputs.ImageLoader(PathPolicy(["gs://bucket/data"]))
    with pytest.raises(RequestError) as err:
        loader.one(0, "gs://bucket/data/x.jpg", "x.jpg")
    assert err.value.status == 404
    # resolving a gs:// name makes no network call
    assert (
        PathPolicy(["gs://bucket/data"]).resolve("gs://bucket/data/y.jpg")
        == "gs://bucket/data/y.jpg"
    )


def test_tf_error_classes_are_client_errors():
    from pmlv_utils.serving.service import tf_error_status

    expected = {
        tf.errors.InvalidArgumentError: 400,
        tf.errors.NotFoundError: 404,
        tf.errors.PermissionDeniedError: 403,
        tf.errors.ResourceExhaustedError: 413,
        tf.errors.DataLossError: 400,
        tf.errors.UnimplementedError: 400,
        tf.errors.OutOfRangeError: 400,
        tf.errors.FailedPreconditionError: 400,
    }
    for error_class, status in expected.items():
        assert tf_error_status(error_class(None, None, "x")) == status
    assert tf_error_status(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")) == 400


# ---- pixel budget, slices, explain bounds ---------------------------------------------------


def test_pixel_budget_and_slices():
    from pmlv_utils.serving.batching import pixel_slices

    assert pixel_slices([5, 5, 5, 20, 1], 10) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert pixel_slices([1, 2, 3], None) == [(0, 3)]
    budget = serving.PixelBudget(100)
    order = []
    with budget.hold(80):

        def other():
            with budget.hold(50):
                order.append("other")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.2)
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "other"] and budget.in_use == 0
    with budget.hold(10**9) as held:  # more than the capacity: waits for all of it
        assert held.n == 100


class _Methods:
    IG_INTEGRATION = ("riemann", "gausslegendre")
    HIDE_MODES = ("mean", "grey", "black")
    IG_BASELINES = ("black", "white", "random")


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"steps": 0}, "steps: expected an integer from 1 to 512, got 0"),
        ({"steps": 10**9}, "from 1 to 512"),
        ({"num_samples": 10**7}, "num_samples: expected an integer from 1 to 5000"),
        ({"batch_size": 10**6}, "batch_size: expected an integer from 1 to 256"),
        ({"n_segments": 1}, "from 2 to 500"),
        ({"seed": 2**40}, "seed"),
        ({"threshold": 0}, "above 0.0 and at most 1.0"),
        ({"max_anchor_size": 0}, "max_anchor_size"),
        ({"integration": "simpson"}, "expected one of ('riemann', 'gausslegendre')"),
        ({"hide": "blur"}, "hide"),
        ({"baseline": "grey"}, "baseline"),
        ({"baseline": [[0.0] * 3] * 2}, "shape [4, 4, 3]"),
        ({"baselines": ["black"] * 5}, "a list of 1 to 4 baselines"),
        ({"baselines": []}, "a list of 1 to 4 baselines"),
    ],
)
def test_explain_option_bounds(options, fragment):
    status, message = _status(explaining.check_options, options, _Methods, 4)
    assert status == 400 and fragment in message, message


def test_explain_options_in_range_pass():
    image = [[[0.5] * 3] * 4] * 4
    checked = explaining.check_options(
        {"steps": 512, "baseline": image, "baselines": ["black", image], "max_anchor_size": None},
        _Methods,
        4,
    )
    assert checked["steps"] == 512 and checked["baseline"].shape == (4, 4, 3)
    assert checked["baselines"][0] == "black" and checked["max_anchor_size"] is None


def test_explain_queue_busy_and_budget():
    async def scenario():
        queue = explaining.ExplainQueue(timeout_s=0.3, max_pending=1)

        def slow(budget):
            while True:  # a loop that checks its budget, as the guarded model calls do
                budget.check()
                time.sleep(0.01)

        first = asyncio.ensure_future(queue.run(slow))
        await asyncio.sleep(0.05)
        with pytest.raises(RequestError) as busy:
            await queue.run(slow)
        with pytest.raises(explaining.ExplainStopped):
            await first
        queue.close()
        return busy.value

    busy = asyncio.run(scenario())
    assert busy.status == 429 and int(busy.headers["Retry-After"]) >= 1


# ---- live servers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tiny_assets):
    return battery.make_hostile_files(tiny_assets["images"])


@pytest.fixture(scope="module")
def server(tiny_assets, files):
    handle = serving.start_server(
        tiny_assets["export"],
        allowed_roots=[tiny_assets["images"]],
        max_body_bytes=16 * 2**20 + 4096,
        extra_args=[
            "--body_timeout_s",
            str(BODY_TIMEOUT_S),
            "--max_concurrent",
            str(MAX_CONCURRENT),
            "--explain_timeout_s",
            "4",
            "--max_pending_explanations",
            "2",
        ],
    )
    yield handle
    handle.stop()


def _timed_predict(server, name) -> float:
    start = time.perf_counter()
    rows = server.predict([name])
    assert rows[0]["flower_type_str"]
    return time.perf_counter() - start


def test_hostile_battery_then_a_normal_request_within_a_second(server, tiny_assets, files):
    good = tiny_assets["good"][0]
    cases = serving.bad_request_cases(
        good, tiny_assets["outside"], max_body_bytes=16 * 2**20 + 4096
    )
    cases += serving.hostile_request_cases(good, files, slow_body_s=BODY_TIMEOUT_S + 2)
    assert len(cases) > 60
    rows = serving.run_request_battery(server, cases)
    wrong = [r for r in rows if not r["ok"]]
    assert not wrong, wrong
    assert all(400 <= r["status"] < 500 for r in rows[:-1])
    assert rows[-1]["status"] == 200 and server.running()
    assert _timed_predict(server, good) < 1.0
    log = server.log_tail(200)
    assert "Traceback" not in log, log


def test_a_file_is_decoded_from_the_bytes_that_were_checked(server, tiny_assets):
    good = tiny_assets["good"][:3]
    by_name = server.predict(good)
    by_bytes = server.predict(
        [{"b64": base64.b64encode(Path(f).read_bytes()).decode()} for f in good]
    )
    np.testing.assert_allclose(
        [r["probability"] for r in by_name], [r["probability"] for r in by_bytes], atol=1e-6
    )


def test_health_stays_responsive_during_a_16_mib_upload(server):
    pixels = np.random.default_rng(1).integers(0, 256, (1680, 2380, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=0)
    body = json.dumps({"instances": [{"b64": base64.b64encode(buf.getvalue()).decode()}]}).encode()
    assert 15 * 2**20 < len(body) <= 16 * 2**20
    answer = {}

    def upload():
        resp = requests.post(
            server.predict_url,
            data=battery._slowly(body, BODY_TIMEOUT_S - 1.5, pieces=16),
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        answer["status"] = resp.status_code

    thread = threading.Thread(target=upload)
    thread.start()
    latencies = []
    while thread.is_alive():
        start = time.perf_counter()
        assert requests.get(server.model_url, timeout=10).status_code == 200
        latencies.append(time.perf_counter() - start)
        time.sleep(0.05)
    thread.join()
    print(
        f"health during a {len(body) / 2**20:.1f} MiB upload: {len(latencies)} requests, "
        f"max {max(latencies) * 1000:.0f} ms, median {np.median(latencies) * 1000:.0f} ms"
    )
    assert answer["status"] == 200
    assert len(latencies) >= 5 and max(latencies) < 1.0


def test_concurrency_limit_answers_429_at_once(server, tiny_assets):
    body = json.dumps({"instances": [tiny_assets["good"][0]]}).encode()
    statuses = []

    def slow_client():
        resp = requests.post(
            server.predict_url,
            data=battery._slowly(body, BODY_TIMEOUT_S - 1, pieces=4),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        statuses.append(resp.status_code)

    threads = [threading.Thread(target=slow_client) for _ in range(MAX_CONCURRENT)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    start = time.perf_counter()
    resp = server.post("predict", {"instances": [tiny_assets["good"][0]]})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert time.perf_counter() - start < 1
    for t in threads:
        t.join()
    assert statuses == [200] * MAX_CONCURRENT
    assert _timed_predict(server, tiny_assets["good"][1]) < 1.0


# The costliest explanation the option bounds allow, on the most instances a request may
# carry: far past the fixture's 4 s budget even on a fast machine (2 instances at 200
# segments once finished inside it).
LONG_EXPLAIN = {"method": "kernelshap", "num_samples": 5000, "n_segments": 500}
LONG_EXPLAIN_INSTANCES = 8


def test_explain_time_budget_busy_429_and_predict_meanwhile(server, tiny_assets):
    body = {"instances": tiny_assets["good"][:LONG_EXPLAIN_INSTANCES], "parameters": LONG_EXPLAIN}
    results = {}

    def explain(name):
        start = time.perf_counter()
        resp = server.post("explain", body)
        results[name] = (
            resp.status_code,
            resp.json().get("error", ""),
            time.perf_counter() - start,
        )

    threads = [threading.Thread(target=explain, args=(f"e{i}",)) for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)
    time.sleep(0.5)
    busy = server.post("explain", body)
    assert busy.status_code == 429 and int(busy.headers["Retry-After"]) >= 1, (busy.text, results)
    predict_s = [_timed_predict(server, tiny_assets["good"][2]) for _ in range(3)]
    assert max(predict_s) < 1.0, predict_s  # :predict does not wait behind explanations
    for t in threads:
        t.join()
    for status, message, seconds in results.values():
        assert status == 422 and "time budget of 4 s" in message, message
    assert min(s for _, _, s in results.values()) < 15


def test_largest_allowed_request_peak_memory(server):
    # The largest request the defaults allow: 2 images of 40 MP each (80 MP, the request cap).
    side = int((40_000_000) ** 0.5)
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (30, 160, 60)).save(buf, "PNG")
    image = {"b64": base64.b64encode(buf.getvalue()).decode()}
    status = Path(f"/proc/{server.process.pid}/status")
    if not status.exists():
        pytest.skip("no /proc")

    def rss(field):
        line = next(ln for ln in status.read_text().splitlines() if ln.startswith(field))
        return int(line.split()[1]) / 1024

    before = rss("VmRSS:")
    start = time.perf_counter()
    resp = server.post("predict", {"instances": [image, image]}, timeout=600)
    seconds = time.perf_counter() - start
    assert resp.status_code == 200, resp.text
    peak = rss("VmHWM:")
    print(
        f"largest allowed request (2 x {side}x{side} = 80 MP): {seconds:.1f} s, "
        f"server RSS {before:.0f} MB before, peak {peak:.0f} MB"
    )
    assert peak < before + 2500
    over = server.post("predict", {"instances": [image] * 3})
    assert over.status_code == 413 and "pixels in one request" in over.json()["error"]


def test_sigterm_during_a_long_explanation_stops_within_5_s(tiny_assets):
    handle = serving.start_server(
        tiny_assets["export"],
        allowed_roots=[tiny_assets["images"]],
        extra_args=["--explain_timeout_s", "600"],
    )
    body = {"instances": tiny_assets["good"][:LONG_EXPLAIN_INSTANCES], "parameters": LONG_EXPLAIN}
    done = {}

    def explain():
        try:
            done["status"] = handle.post("explain", body, timeout=600).status_code
        except requests.RequestException as err:
            done["status"] = type(err).__name__

    thread = threading.Thread(target=explain, daemon=True)
    thread.start()
    time.sleep(4)
    assert "status" not in done, "the explanation ended before SIGTERM; make it longer"
    start = time.perf_counter()
    handle.process.send_signal(signal.SIGTERM)
    try:
        handle.process.wait(10)
    finally:
        handle.stop()
    stopped_s = time.perf_counter() - start
    print(f"SIGTERM during an explanation: exited in {stopped_s:.2f} s")
    assert stopped_s < 5
    thread.join(10)


def test_file_name_only_signatures_read_a_private_copy_of_the_checked_bytes(tiny_assets, tmp_path):
    """09c's re-saved model has no from_bytes: its file-name signatures get a private copy of
    the checked bytes (never the client's path), and the copy's name is never shown."""
    import shutil

    from pmlv_utils.serving import PredictionService

    model = tf.saved_model.load(str(tiny_assets["export"]))
    old_fn = model.signatures["serving_default"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int64)])
    def pass_through_sequence(filenames, sequenceNumber):
        result = old_fn(filenames=filenames)
        result["filename"] = filenames
        result["sequenceNumber"] = sequenceNumber
        return result

    new_dir = tmp_path / "model2"
    signatures = {"serving_default": old_fn, "sequence_pass_through": pass_through_sequence}
    tf.saved_model.save(model, str(new_dir), signatures=signatures)
    shutil.copytree(tiny_assets["export"] / "assets.extra", new_dir / "assets.extra")
    service = PredictionService(str(new_dir), allowed_roots=[tiny_assets["images"]])
    names = [Path(f).name for f in tiny_assets["good"][:3]]
    body = {
        "signature_name": "sequence_pass_through",
        "instances": [{"filenames": n, "sequenceNumber": 17} for n in names],
    }
    rows = service.predict(body)["predictions"]
    assert [(r["filename"], r["sequenceNumber"]) for r in rows] == [(n, 17) for n in names]
    direct = service.model.call("serving_default", filenames=tiny_assets["good"][:3])
    np.testing.assert_allclose([r["probability"] for r in rows], direct["probability"], atol=1e-6)
    assert os.listdir(service.copies.folder) == []  # copies removed after the call
    with pytest.raises(RequestError) as err:
        service.predict({"instances": [str(Path(tiny_assets["images"]) / "corrupt.jpg")]})
    assert err.value.status == 400
    service.close()
    assert not os.path.exists(service.copies.folder)


def test_non_finite_output_is_a_json_500():
    from pmlv_utils.serving.app import json_response

    resp = json_response({"probability": [float("nan")]})
    assert resp.status_code == 500
    assert "not a finite number" in json.loads(resp.body)["error"]
    assert json_response({"ok": [1.5]}).status_code == 200
