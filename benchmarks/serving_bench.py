"""The model server's benchmarks: P5 (REST throughput against the in-memory batch-size curve)
and P9 (the server's peak memory on the largest request it accepts).

Both start the real server (``serving.start_server``: ``python -m pmlv_utils.serving`` in a
subprocess on 127.0.0.1), so P9 reads the server's own memory from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import math
import tempfile
import threading
from pathlib import Path

import requests

from .common import Artifacts, Result, median, plain_number

# --------------------------------------------------------------------------------------
# P5: REST against in-memory at its best batch size
# --------------------------------------------------------------------------------------

REST_CLIENTS = (1, 4, 8)
REST_INSTANCES = 8  # images per REST request (a client's batch; the server merges requests)
# The goal. In-memory at its best batch size is the physical limit: the model alone on both
# cores. Through REST the same two cores also run the load-test clients (JSON, HTTP), the
# server's per-request Python work under one GIL (body, strict JSON, path checks, files opened
# and fstat-ed, headers checked) and the batcher, which forms batches of at most
# clients x REST_INSTANCES images, not necessarily the best size. Half the limit means the
# serving layer costs no more than the model itself.
REST_GOAL = 0.5


def p5_rest(a: Artifacts) -> Result:
    from pmlv_utils import predict, serving

    s = a.s
    files = a.test_files(s.curve_images)
    model = predict.LoadedModel(a.export_dir)
    passes = max(2, s.repeats)
    # one pass of every batch size per round, so that a load that changes (a shared machine)
    # falls on every batch size alike; the median of the rounds per batch size
    rounds = [
        {b: predict.time_in_memory(model, files, b, repeats=1)["seconds"] for b in s.batch_sizes}
        for _ in range(passes)
    ]
    curve = {b: len(files) / median(r[b] for r in rounds) for b in s.batch_sizes}
    del model
    best_batch = max(curve, key=curve.get)
    body = {"instances": [{"filenames": f} for f in files[:REST_INSTANCES]]}
    server = serving.start_server(a.export_dir, allowed_roots=[a.data_dir])
    try:
        runs = {c: rest_run(server, body, c, s.load_requests) for c in REST_CLIENTS}
    finally:
        server.stop()
    best_clients = max(runs, key=lambda c: runs[c]["images_per_s"])
    rest, memory = runs[best_clients]["images_per_s"], curve[best_batch]
    ratio = rest / memory
    details = [
        f"in-memory `serving_default` calls, median of {passes} rounds (one pass of each batch "
        f"size per round) over {len(files)} images:"
    ]
    details += [
        f"in-memory, batch of {b}: {plain_number(rate)} images/s"
        + (" (best)" if b == best_batch else "")
        for b, rate in curve.items()
    ]
    details += [
        f"REST, {c} clients × {len(body['instances'])} images per request: "
        f"{r['requests_per_s']} req/s = {r['images_per_s']} images/s, p50 {r['p50_ms']} ms, "
        f"p99 {r['p99_ms']} ms, errors {r['errors']}, mean model batch {r['mean_batch']}"
        for c, r in runs.items()
    ]
    details.append(
        f"REST best: {best_clients} clients, {plain_number(rest)} images/s = "
        f"{plain_number(ratio)}× in-memory at its best batch ({best_batch} per call, "
        f"{plain_number(memory)} images/s)"
    )
    return Result(
        "P5",
        "REST best of 1/4/8 clients / in-memory at its best batch size (images/s)",
        ratio,
        "× in-memory",
        f"≥ {REST_GOAL}× (serving layer ≤ the model's own cost)",
        ratio >= REST_GOAL and all(r["errors"] == 0 for r in runs.values()),
        details,
    )


def rest_run(server, body: dict, clients: int, requests_total: int) -> dict:
    """``serving.load_test`` with the mean batch the server ran (from its batching counters)."""
    from pmlv_utils import serving

    before = batching_stats(server)
    run = serving.load_test(server.predict_url, body, clients, requests_total)
    after = batching_stats(server)
    calls = after["model_calls"] - before["model_calls"]
    instances = after["instances"] - before["instances"]
    return {**run, "mean_batch": round(instances / calls, 1) if calls else float("nan")}


def batching_stats(server) -> dict:
    return requests.get(server.model_url, timeout=30).json()["batching"]


# --------------------------------------------------------------------------------------
# P9: the server's peak memory on the largest request it accepts
# --------------------------------------------------------------------------------------

# What preprocess_image holds at once for one image, per pixel: the decoded uint8 RGB (3 B)
# then its float32 copy (12 B); the centre crop of a non-square image is a float32 copy of up to
# the whole image (12 B more) while the uncropped float32 is still alive. A square image skips
# the copy (TensorFlow forwards an identity slice): 15 B. The worst case is 24 B per pixel.
BYTES_PER_PIXEL = 24
# The goal: peak - idle within 1.5x the bound for these requests (allocator slack, request bodies
# and bytes, resize intermediates and per-thread buffers on top of the image tensors).
RSS_SLACK = 1.5
MIB = 2**20


def p9_server_memory(a: Artifacts) -> Result:
    from pmlv_utils import serving
    from pmlv_utils.serving import inputs

    max_pixels, request_pixels = inputs.DEFAULT_MAX_PIXELS, inputs.DEFAULT_MAX_REQUEST_PIXELS
    max_instances = serving.DEFAULT_MAX_INSTANCES
    with tempfile.TemporaryDirectory(prefix="pmlv_p9_") as tmp:
        files = largest_images(Path(tmp), max_pixels, request_pixels, max_instances)
        shapes = largest_requests(files, max_instances)
        refused = over_budget_requests(files, max_instances)
        server = serving.start_server(a.export_dir, allowed_roots=[tmp])
        try:
            pid = server.process.pid
            idle_kib, load_kib = status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM")
            peaks = {
                name: peak_during(server, body, a.s.rss_clients, a.s.rss_requests)
                for name, body in shapes.items()
            }
            answers = {name: answer(server, body) for name, body in refused.items()}
        finally:
            server.stop()
    peak_kib = max(p["peak_kib"] for p in peaks.values())
    lane_bound = max_pixels * BYTES_PER_PIXEL
    goal_kib = idle_kib + RSS_SLACK * lane_bound / 1024
    details = limit_lines(max_pixels, request_pixels, max_instances) + [
        f"idle RSS after model load and warm-up: {mib(idle_kib * 1024)} MiB "
        f"(peak while loading: {mib(load_kib * 1024)} MiB)",
    ]
    details += [
        f"peak RSS during {name}: {mib(p['peak_kib'] * 1024)} MiB ({p['how']}) = idle + "
        f"{plain_number((p['peak_kib'] - idle_kib) * 1024 / max_pixels)} B per budget pixel; "
        f"{p['requests']} requests from {p['clients']} clients, errors {p['errors']}, "
        f"p50 {p['p50_ms']} ms"
        for name, p in peaks.items()
    ]
    details += [
        f"over the limits, {name}: HTTP {code} {text}" for name, (code, text) in answers.items()
    ]
    details.append(
        f"peak RSS {mib(peak_kib * 1024)} MiB = idle + {mib((peak_kib - idle_kib) * 1024)} MiB "
        f"(goal ≤ {mib(goal_kib * 1024)} MiB = idle + {RSS_SLACK} × bound)"
    )
    ok = (
        peak_kib <= goal_kib
        and all(p["errors"] == 0 for p in peaks.values())
        and all(400 <= code < 500 for code, _ in answers.values())
    )
    return Result(
        "P9",
        "server peak RSS on the largest accepted request (MiB)",
        peak_kib / 1024,
        "MiB",
        f"≤ idle + {RSS_SLACK} × (one image budget × {BYTES_PER_PIXEL} B); over-limit → 4xx",
        ok,
        details,
    )


def limit_lines(max_pixels: int, request_pixels: int, max_instances: int) -> list[str]:
    """The server's limits, its decode concurrency and the memory bound they imply."""
    from pmlv_utils.serving import app

    server_pixels = request_pixels + app.SMALL_BATCH_PIXELS
    return [
        f"limits: {max_pixels:,} pixels per image (checked from the header), "
        f"{request_pixels:,} per request, {max_instances} instances per request",
        f"decode concurrency: the large lane decodes one slice of ≤ {max_pixels:,} pixels at a "
        f"time under a shared budget of {request_pixels:,} pixels (large lane + explanations); "
        f"small requests (≤ {app.SMALL_REQUEST_PIXELS:,} pixels) in batches of ≤ "
        f"{app.SMALL_BATCH_PIXELS:,}",
        f"bound for these requests: {max_pixels:,} px × {BYTES_PER_PIXEL} B = "
        f"{mib(max_pixels * BYTES_PER_PIXEL)} MiB above idle; whole server (budget + small-lane "
        f"batch): {server_pixels:,} px × {BYTES_PER_PIXEL} B = "
        f"{mib(server_pixels * BYTES_PER_PIXEL)} MiB above idle",
    ]


def mib(n_bytes: float) -> str:
    return plain_number(n_bytes / MIB)


def largest_images(folder: Path, max_pixels: int, request_pixels: int, instances: int) -> dict:
    """Image files at the limits: 1-colour, so a few KB on disk decode to the whole budget."""
    from PIL import Image

    from pmlv_utils.serving import battery

    side = math.isqrt(max_pixels)
    small = math.isqrt(request_pixels // instances)
    files = {
        "square": folder / "square.png",  # side x side: square, no crop copy
        "near_square": folder / "near_square.jpg",  # cropped to side - 1 square: a copy
        "small": folder / "small.png",  # max instances of these fill the request budget
        "over": folder / "over.png",  # one pixel row and column over the budget
    }
    files["square"].write_bytes(battery.png_bomb(side))
    Image.new("L", (side + 1, side - 1), 128).save(files["near_square"], quality=90)
    files["small"].write_bytes(battery.png_bomb(small))
    files["over"].write_bytes(battery.png_bomb(side + 1))
    return {k: str(v) for k, v in files.items()}


def _body(names) -> dict:
    return {"instances": [{"filenames": n} for n in names]}


def largest_requests(files: dict, max_instances: int) -> dict:
    return {
        "2 images at the budget (PNG square + JPEG near-square)": _body(
            [files["square"], files["near_square"]]
        ),
        f"{max_instances} images filling the request budget": _body(
            [files["small"]] * max_instances
        ),
    }


def over_budget_requests(files: dict, max_instances: int) -> dict:
    return {
        "1 image one pixel row and column over the budget": _body([files["over"]]),
        "3 images at the budget (over the request budget)": _body([files["square"]] * 3),
        f"{max_instances + 1} instances": _body([files["small"]] * (max_instances + 1)),
    }


def answer(server, body: dict) -> tuple[int, str]:
    resp = server.post("predict", body, timeout=300)
    try:
        text = str(resp.json().get("error", ""))[:160]
    except ValueError:
        text = resp.text[:160]
    return resp.status_code, text


def status_kib(pid: int, name: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (VmRSS: now; VmHWM: the peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    raise ValueError(f"no {name} in /proc/{pid}/status")


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux ``clear_refs`` 5); False if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_during(server, body: dict, clients: int, requests_per_client: int) -> dict:
    """The server's peak RSS while ``clients`` send ``body`` (VmHWM reset before, and VmRSS
    sampled every 10 ms as a cross-check where the reset is refused)."""
    from pmlv_utils import serving

    pid = server.process.pid
    reset = reset_peak(pid)
    stop, sampled = threading.Event(), [status_kib(pid, "VmRSS")]

    def sample():
        while not stop.wait(0.01):
            try:
                sampled.append(max(sampled[-1], status_kib(pid, "VmRSS")))
            except (OSError, ValueError):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run = serving.load_test(
            server.predict_url, body, clients, clients * requests_per_client, timeout=300
        )
    finally:
        stop.set()
        sampler.join()
    hwm = status_kib(pid, "VmHWM")
    peak = max(hwm, sampled[-1]) if reset else sampled[-1]
    how = "VmHWM, reset before" if reset else "VmRSS sampled every 10 ms (VmHWM reset refused)"
    # load_test's clients each send one warm-up request first: count them
    return {**run, "requests": run["requests"] + clients, "peak_kib": peak, "how": how}
