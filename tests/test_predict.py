"""In-memory and Beam prediction (pmlv_utils.predict) on a tiny untrained exported model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pmlv_utils.serving.battery import png_bomb

LABELS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
TINY_SIZE = 32


@pytest.fixture(scope="session")
def tiny(tiny_assets):
    return tiny_assets


@pytest.fixture(scope="session")
def serving_model(tiny):
    from pmlv_utils import predict

    return predict.LoadedModel(tiny["export"])


def test_serving_model_reads_signatures_and_labels(serving_model):
    assert serving_model.labels == LABELS
    assert serving_model.img_size == TINY_SIZE
    described = serving_model.describe()
    assert described["serving_default"]["inputs"] == {
        "filenames": {"dtype": "string", "shape": [None]}
    }
    assert {"from_bytes", "passthrough", "xai_preprocess", "xai_model"} <= set(described)


def test_predict_files_rows_are_plain_json(tiny, serving_model):
    from pmlv_utils import predict

    rows = predict.predict_files(tiny["good"][:3], serving_model)
    assert [r["filename"] for r in rows] == tiny["good"][:3]
    for row in rows:
        json.dumps(row)  # plain JSON types only
        assert row["flower_type_str"] == LABELS[row["flower_type_int"]]
        assert abs(sum(row["probability"]) - 1.0) < 1e-4
        assert row["flower_type_int"] == int(np.argmax(row["probability"]))


def test_predict_files_names_missing_and_corrupt_files(tiny, serving_model):
    from pmlv_utils import predict

    missing = str(Path(tiny["images"]) / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        predict.predict_files([tiny["good"][0], missing], serving_model)
    with pytest.raises(ValueError, match="corrupt.jpg"):
        predict.predict_files([tiny["good"][0], tiny["corrupt"]], serving_model)


def test_bytes_and_filenames_give_identical_predictions(tiny, serving_model):
    from pmlv_utils import predict

    by_name = predict.predict_files(tiny["good"], serving_model)
    by_bytes = predict.predict_bytes([Path(f).read_bytes() for f in tiny["good"]], serving_model)
    diff = np.abs(
        np.array([r["probability"] for r in by_name])
        - np.array([r["probability"] for r in by_bytes])
    )
    assert diff.max() < 1e-6
    with pytest.raises(ValueError, match="image 1"):
        predict.predict_bytes([Path(tiny["good"][0]).read_bytes(), b"not an image"], serving_model)


def test_outputs_to_rows_repeats_scalars_and_decodes_bytes():
    from pmlv_utils import predict

    rows = predict.outputs_to_rows(
        {
            "p": np.array([[0.5, 0.5], [1.0, 0.0]], np.float32),
            "s": np.array([b"a", b"b"]),
            "k": np.int64(7),
        }
    )
    assert rows == [{"k": 7, "p": [0.5, 0.5], "s": "a"}, {"k": 7, "p": [1.0, 0.0], "s": "b"}]


def _by_filename(rows):
    names = [r["filename"] for r in rows]
    assert len(names) == len(set(names)), "a file was predicted more than once"
    return {r["filename"]: r for r in rows}


def test_beam_batch_writes_each_prediction_once_and_dead_letters_bad_files(
    tiny, serving_model, tmp_path
):
    """CSV input (book format, relative paths) + Shared/BatchElements: one load, many batches."""
    from pmlv_utils import predict

    images = Path(tiny["images"])
    lines = [f"{Path(f).name},daisy" for f in tiny["good"]] + [
        "missing.jpg,roses",
        "corrupt.jpg,tulips",
    ]
    csv = images / "batch_input.csv"
    csv.write_text("\n".join(lines) + "\n")
    result = predict.run_batch_prediction(
        str(csv), tiny["export"], str(tmp_path / "out" / "pred"), batch_size=4
    )

    got = _by_filename(result.predictions())
    assert set(got) == set(tiny["good"])
    expected = _by_filename(predict.predict_files(tiny["good"], serving_model))
    for name, row in got.items():
        np.testing.assert_allclose(row["probability"], expected[name]["probability"], atol=1e-6)
    dead = {Path(d["path"]).name: d["reason"] for d in result.dead_letters()}
    assert set(dead) == {"missing.jpg", "corrupt.jpg"}
    assert dead["missing.jpg"] == "file not found"
    assert dead["corrupt.jpg"].startswith("not a decodable image")
    assert result.counters["model_loads"] == 1  # Shared: one load for the (single) worker
    assert result.counters["batches"] > 1
    assert result.counters["predictions"] == len(tiny["good"])


def test_naive_dofn_loads_the_model_for_every_element(tiny, tmp_path):
    from pmlv_utils import predict

    files = tiny["good"][:3]
    result = predict.run_batch_prediction(
        files, tiny["export"], str(tmp_path / "naive"), mode="naive"
    )
    assert set(_by_filename(result.predictions())) == set(files)
    assert result.counters["model_loads"] == len(files)


def test_same_transforms_run_on_a_test_stream(tiny, tmp_path):
    from pmlv_utils import predict

    files = tiny["good"] + [tiny["corrupt"]]
    result = predict.run_batch_prediction(
        files,
        tiny["export"],
        str(tmp_path / "stream"),
        streaming=True,
        stream_batch_size=5,
        window_seconds=10,
        batch_size=4,
    )
    assert len(result.prediction_files()) == 3  # one file per 10 s window (5 + 5 + 3 elements)
    assert set(_by_filename(result.predictions())) == set(tiny["good"])
    assert [d["path"] for d in result.dead_letters()] == [tiny["corrupt"]]


def test_bad_arguments_are_named(tiny, tmp_path):
    from pmlv_utils import predict

    with pytest.raises(ValueError, match="mode"):
        predict.run_batch_prediction(tiny["good"], tiny["export"], str(tmp_path / "x"), mode="fast")
    with pytest.raises(FileNotFoundError, match="no exported model"):
        predict.LoadedModel(tmp_path / "not_a_model")
    with pytest.raises(KeyError, match="no signature 'nope'"):
        predict.LoadedModel(tiny["export"]).call("nope", filenames=[])


# --------------------------------------------------------------------------------------
# Hostile inputs for the batch jobs (issue 12): bad files, bad list lines, a failing server
# --------------------------------------------------------------------------------------


def test_beam_batch_dead_letters_hostile_files_and_list_lines(tiny, tmp_path):
    """A PNG bomb, a FIFO, a TIFF, a quoted path with a comma and a non-UTF-8 CSV line: the
    job finishes, the good files are predicted, every bad one is a dead letter."""
    import os
    import shutil

    from PIL import Image

    from pmlv_utils import predict

    folder = tmp_path / "in"
    (folder / "with,comma").mkdir(parents=True)
    comma = folder / "with,comma" / "ok.jpg"
    shutil.copy(tiny["good"][0], comma)
    (folder / "bomb.png").write_bytes(png_bomb(20_000))
    os.mkfifo(folder / "fifo.jpg")
    Image.new("RGB", (8, 8)).save(folder / "picture.tif", "TIFF")
    lines = [
        b"\xef\xbb\xbf" + f"{tiny['good'][1]},daisy".encode(),  # a BOM before the first path
        b'"with,comma/ok.jpg",roses',
        b"bomb.png,roses",
        b"fifo.jpg,roses",
        b"picture.tif,tulips",
        b"caf\xe9.jpg,daisy",  # Latin-1, not UTF-8
    ]
    csv = folder / "list.csv"
    csv.write_bytes(b"\n".join(lines) + b"\n")
    result = predict.run_batch_prediction(str(csv), tiny["export"], str(tmp_path / "out" / "p"))
    assert set(_by_filename(result.predictions())) == {tiny["good"][1], str(comma)}
    dead = {Path(d["path"]).name: d["reason"] for d in result.dead_letters()}
    assert dead["bomb.png"].startswith("image too large")
    assert "not a regular file" in dead["fifo.jpg"]
    assert dead["picture.tif"].startswith("not a decodable image")
    assert dead["list.csv:6"] == "line 6 is not UTF-8"
    assert len(dead) == 4


def _start_fake_server(behaviour):
    """A tiny HTTP server on 127.0.0.1 answering POSTs with ``behaviour(body) -> (status,
    json)`` (None: hang for 5 s). Returns (url, server, calls)."""
    import http.server
    import threading
    import time

    calls = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append(body)
            answer = behaviour(body)
            if answer is None:
                time.sleep(5)
                return
            status, payload = answer
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/v1/models/m:predict", server, calls


def _fake_predictions(body):
    return [{"flower_type_str": "daisy", "probability": [1.0]} for _ in body["instances"]]


@pytest.mark.parametrize("failure", ["500 for every request", "500 for one file", "hangs"])
def test_rest_dofn_dead_letters_after_bounded_retries(tiny, tmp_path, failure):
    import time

    from pmlv_utils import predict

    files = tiny["good"][:5]
    bad = files[2]

    def behaviour(body):
        names = [i["filenames"] for i in body["instances"]]
        if failure == "hangs":
            return None
        if failure == "500 for every request" or bad in names:
            return 500, {"error": "internal error"}
        return 200, {"predictions": _fake_predictions(body)}

    url, server, calls = _start_fake_server(behaviour)
    policy = predict.RetryPolicy(attempts=2, backoff_s=0.05, timeout_s=0.5)
    start = time.perf_counter()
    try:
        result = predict.run_batch_prediction(
            files, None, str(tmp_path / "rest"), mode="rest", predict_url=url,
            batch_size=5, rest_policy=policy,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert time.perf_counter() - start < 60  # bounded: no endless retries
    dead = {d["path"]: d["reason"] for d in result.dead_letters()}
    predicted = set(_by_filename(result.predictions()))
    assert predicted | set(dead) == set(files) and not predicted & set(dead)  # nothing lost
    if failure == "500 for one file":
        assert set(dead) == {bad} and "HTTP 500" in dead[bad] and "2 tries" in dead[bad]
    elif failure == "hangs":
        assert not predicted and all("Timeout" in r for r in dead.values())
        # each batch tried twice, never split file by file (the server is silent)
        assert len(calls) == 2 * result.counters["batches"]
    else:  # after open_after failures in a row the rest are not even sent
        assert not predicted and all("HTTP 500" in r or "not sent" in r for r in dead.values())


def test_rest_retries_a_busy_server_then_succeeds():
    import requests

    from pmlv_utils import predict

    answers = iter([(503, {"error": "busy"}), (429, {"error": "slow down"})])

    def behaviour(body):
        return next(answers, None) or (200, {"predictions": _fake_predictions(body)})

    url, server, calls = _start_fake_server(behaviour)
    policy = predict.RetryPolicy(attempts=3, backoff_s=0.01, timeout_s=2)
    try:
        with requests.Session() as session:
            out = predict.predict_instances(session, url, [{"filenames": "a"}] * 3, policy)
    finally:
        server.shutdown()
    assert [list(a) for a in out] == [["prediction"]] * 3 and len(calls) == 3


def test_predict_jsonl_finishes_and_replaces_its_output_in_one_step(tmp_path):
    from pmlv_utils import predict

    def behaviour(body):
        if any(i.get("key") == 2 for i in body["instances"]):
            return 400, {"error": "bad instance"}
        return 200, {"predictions": _fake_predictions(body)}

    url, server, _ = _start_fake_server(behaviour)
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [json.dumps({"key": k}).encode() for k in range(4)] + [b"{not json", b"\xff\xfe"]
    source.write_bytes(b"\n".join(lines) + b"\n")
    out.write_text("the previous output\n")
    try:
        counts = predict.predict_jsonl(
            url, source, out, batch_size=3, policy=predict.RetryPolicy(attempts=1)
        )
    finally:
        server.shutdown()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and counts["predictions"] == 3 and counts["errors"] == 3
    assert "error" in rows[2] and "not JSON" in rows[4]["error"] and "UTF-8" in rows[5]["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no tmp left


def test_rest_dofn_stops_sending_to_a_dead_server(tiny, tmp_path):
    """After ``open_after`` failed requests the breaker opens: the other batches are
    dead-lettered at once, so a job against a silent server ends quickly."""
    from pmlv_utils import predict

    url, server, calls = _start_fake_server(lambda body: None)  # hangs
    policy = predict.RetryPolicy(attempts=1, timeout_s=0.3, open_after=1, probe_after_s=600)
    files = tiny["good"]
    try:
        result = predict.run_batch_prediction(
            files, None, str(tmp_path / "dead"), mode="rest", predict_url=url,
            batch_size=2, rest_policy=policy,
        )  # fmt: skip
    finally:
        server.shutdown()
    dead = {d["path"]: d["reason"] for d in result.dead_letters()}
    assert set(dead) == set(files) and not result.predictions()
    assert len(calls) == 1 and result.counters["batches"] > 1
    tried = len(calls[0]["instances"])  # the one batch that was sent
    assert sum("not sent" in r for r in dead.values()) == len(files) - tried
