"""What one request can cost the server under its limits, and what it answers when too many come at once.

    .venv/bin/python bench/cost_limits.py --model out/ [--flood-seconds 5] [--in-flight 16,32,48,64]

Starts `cnn-mnist` with its defaults (cnn_mnist/serving/server-defaults.json) on a free loopback port and
prints, with the CPU model:

- what the drawing page's canvas sends (its size read from static/index.html, a stroke as app.js draws
  it) and a 12-megapixel phone photo of a digit: bytes, status, wall time and the server's CPU time;
- issue 15's request, 20 PNGs of 4096x4096 holding one pen stroke each, and the costliest requests the
  defaults admit (the image formats that cost most a pixel at the pixel limit, the most tiny images,
  the most canvas drawings, the most 28x28 pixel arrays): the same figures;
- a one-digit drawing's latency (median and worst of 20) alone, and while four of each of the costliest
  admitted requests are in flight;
- a flood of twice --max-in-flight closed-loop clients sending drawings: answers and 503s a second,
  the answered ones' p50 and p99, the worst /healthz meanwhile, and the overload metrics after it;
- with --in-flight, the same flood for each --max-in-flight given, at as many clients as the limit
  (nothing refused) and at twice as many: the figures behind that default.

The server's CPU time is read from /proc before and after each request, one at a time (in clock ticks,
usually 10 ms). The flood's clients retry a 503 at once, ignoring Retry-After: the worst case. Only loopback
is contacted; the server is killed on exit.
"""

import argparse
import atexit
import base64
import http.client
import io
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid

import numpy as np
from loadgen import HEADERS, HOST, LoadGenerator, cpu_seconds
from PIL import Image, ImageDraw
from serve import ROOT, free_port, percentile, start_server, stop_servers

sys.path.insert(0, ROOT)
from cnn_mnist.serving.defaults import SERVER  # noqa: E402  (numpy and json only: no backend)

STATIC = os.path.join(ROOT, "cnn_mnist", "serving", "static")


# ---- the bodies ------------------------------------------------------------------------------------


def canvas_size():
    """(width, height) of the page's drawing canvas, as index.html declares it."""
    with open(os.path.join(STATIC, "index.html")) as page:
        tag = re.search(r"<canvas[^>]*>", page.read()).group(0)
    return int(re.search(r'width="(\d+)"', tag).group(1)), int(re.search(r'height="(\d+)"', tag).group(1))


def encode(image, fmt="PNG", **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def stroke(image, ink, width):
    """A digit-one-like stroke across the middle of `image`, in place."""
    w, h = image.size
    ImageDraw.Draw(image).line([(w * 0.45, h * 0.2), (w * 0.55, h * 0.8)], fill=ink, width=width)
    return image


def drawing():
    """What app.js sends for a drawn digit: a transparent canvas with an opaque stroke, canvas.width / 14 wide."""
    width, height = canvas_size()
    return encode(stroke(Image.new("RGBA", (width, height), (0, 0, 0, 0)), (0, 0, 0, 255), width // 14))


def photo(width=4032, height=3024):
    """A 12 MP phone photo of a digit on paper: grey paper, a little sensor noise, a dark stroke; JPEG."""
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(190, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    return encode(stroke(Image.fromarray(paper), (30, 30, 40), width // 40), "JPEG", quality=90)


def pen_stroke(width, height, mode="L", fmt="PNG", **options):
    """A large image holding one thin pen stroke: a small file that decodes into `width` x `height` pixels."""
    image = stroke(Image.new("L", (width, height)), 255, 3)
    return encode(image.convert(mode), fmt, **options)


def tiny():
    """The smallest image that holds ink: 3x3, its centre lit."""
    image = Image.new("L", (3, 3))
    image.putpixel((1, 1), 255)
    return encode(image)


def images_json(blobs):
    urls = ["data:image/png;base64," + base64.b64encode(blob).decode() for blob in blobs]
    return json.dumps({"image": urls[0]} if len(urls) == 1 else {"images": urls}).encode(), HEADERS


def multipart(blobs):
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{i}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + blob
        + b"\r\n"
        for i, blob in enumerate(blobs)
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# ---- requests ---------------------------------------------------------------------------------------


def post(port, body, headers, path="/predict", timeout=120):
    """→ (status, seconds, the answer's error or None)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    return response.status, time.monotonic() - started, answer.get("error") if isinstance(answer, dict) else None


def measured(port, pid, body, headers, path="/predict"):
    """One request alone → (status, wall s, server CPU s, error)."""
    cpu = cpu_seconds(pid)
    status, wall, error = post(port, body, headers, path)
    return status, wall, cpu_seconds(pid) - cpu, error


def get(port, path):
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    started = time.monotonic()
    try:
        connection.request("GET", path)
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return time.monotonic() - started, text


def latencies(port, body, headers, count=20):
    times = []
    for _ in range(count):
        status, wall, error = post(port, body, headers)
        assert status == 200, (status, error)
        times.append(wall)
    return statistics.median(times), max(times)


# ---- the sections -----------------------------------------------------------------------------------


def costliest_admitted():
    """The requests that cost most under the defaults: (name, body, headers, path)."""
    side = int(SERVER["max_image_pixels"] ** 0.5)
    width, height = 4 * (side // 3), 3 * (side // 3)  # 4:3, as a photo, within max_image_pixels
    while width * height > min(SERVER["max_image_pixels"], SERVER["max_request_pixels"]):
        width, height = width - 4, height - 3
    canvas_pixels = canvas_size()[0] * canvas_size()[1]
    drawings = min(SERVER["max_images_per_request"], SERVER["max_request_pixels"] // canvas_pixels)
    pixels = [[[(i * 7 + j) % 256 for j in range(28)] for i in range(28)]] * SERVER["max_images_per_request"]
    unit = (np.asarray(pixels)[..., None] / 255).round(3).tolist()  # 3 decimals, so that a full batch fits 4 MiB
    return [
        (
            f"1 opaque RGBA PNG {width}x{height}, one stroke",
            *multipart([pen_stroke(width, height, "RGBA")]),
            "/predict",
        ),
        (
            f"1 lossless WEBP {width}x{height}, one stroke",
            *multipart([pen_stroke(width, height, "RGB", "WEBP", lossless=True)]),
            "/predict",
        ),
        (
            f"1 float TIFF {width}x{height}, one stroke",
            *multipart([pen_stroke(width, height, "F", "TIFF", compression="tiff_adobe_deflate")]),
            "/predict",
        ),
        (
            f"{SERVER['max_images_per_request']} tiny PNGs (3x3)",
            *images_json([tiny()] * SERVER["max_images_per_request"]),
            "/predict",
        ),
        (f"{drawings} canvas drawings", *images_json([drawing()] * drawings), "/predict"),
        (
            f"{SERVER['max_images_per_request']} pixel arrays 28x28",
            json.dumps({"pixels": pixels}).encode(),
            HEADERS,
            "/predict",
        ),
        (
            f"{SERVER['max_images_per_request']} TF Serving instances",
            json.dumps({"instances": unit}).encode(),
            HEADERS,
            "/v1/models/cnn-mnist:predict",
        ),
    ]


def row(name, body, result):
    status, wall, cpu, error = result
    said = f" ({error[:70]})" if error else ""
    return f"| {name} | {len(body) / 1024:,.0f} KB | {status}{said} | {wall * 1000:,.0f} ms | {cpu * 1000:,.0f} ms |"


def costs(port, pid):
    print("\n| request | body | status | wall | server CPU |\n|---|--:|---|--:|--:|")
    normal = images_json([drawing()])
    width, height = canvas_size()
    cases = [
        (f"a canvas drawing {width}x{height} (JSON data URL, as app.js)", *normal, "/predict"),
        ("a 12 MP phone photo 4032x3024 (JPEG, multipart)", *multipart([photo()]), "/predict"),
        ("issue 15: 20 PNGs 4096x4096, one pen stroke each", *images_json([pen_stroke(4096, 4096)] * 20), "/predict"),
        *costliest_admitted(),
    ]
    admitted = []
    for name, body, headers, path in cases:
        result = measured(port, pid, body, headers, path)
        print(row(name, body, result), flush=True)
        if result[0] == 200 and not name.startswith(("a ", "issue")):
            admitted.append((name, body, headers, path))
    return normal, admitted


def under_load(port, normal, heavy_request, heavy=4):
    """A drawing's latency while `heavy` clients keep `heavy_request` in flight."""
    name, body, headers, path = heavy_request
    stop, statuses = threading.Event(), []

    def hammer():
        while not stop.is_set():
            statuses.append(post(port, body, headers, path)[0])

    threads = [threading.Thread(target=hammer) for _ in range(heavy)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)  # let all four be in flight
        median, worst_wall = latencies(port, *normal)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print(
        f"one-digit drawing with {heavy} x [{name}] in flight: median {1000 * median:.0f} ms, "
        f"worst {1000 * worst_wall:.0f} ms of 20 (the heavy ones answered {sorted(set(statuses))})"
    )


def flood(port, generator, body, clients, seconds):
    """`clients` closed-loop clients of `body` for `seconds`; → a summary line, with /healthz's worst meanwhile."""
    health = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            health.append(get(port, "/healthz")[0])
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        answered, errors, seconds = generator.run(port, [body], clients, 1.0, seconds, 30)
    finally:
        stop.set()
        prober.join()
    answered.sort()
    refused = sum(error.startswith("HTTP 503") for error in errors)
    return (
        f"{clients} clients: {len(answered) / seconds:,.0f} answers/s, {refused / seconds:,.0f} 503s/s, "
        f"{len(errors) - refused} other errors; answered p50 {1000 * percentile(answered, 50):.0f} ms, "
        f"p99 {1000 * percentile(answered, 99):.0f} ms; /healthz worst {1000 * max(health):.0f} ms"
    )


def overload_metrics(port):
    text = get(port, "/metrics")[1]
    return "; ".join(
        line
        for line in text.splitlines()
        if re.match(r"cnn_mnist_(in_flight|refused_total|waiting|queued_total) ", line)
    )


def serve(model, tmp, *flags):
    port = free_port()
    argv = [sys.executable, "-m", "cnn_mnist.serving.cli", "--model", model, "--port", str(port), *flags]
    process, _ = start_server("cnn-mnist", argv, port, os.path.join(tmp, f"server-{port}.log"), 180)
    return process, port


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "out"))
    parser.add_argument("--flood-seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", default="", help="comma-separated --max-in-flight values to compare")
    return parser.parse_args(argv)


def cpu_model():
    """The CPU as /proc/cpuinfo names it (family and model too: a VM may say only "AMD EPYC"), and the load."""
    with open("/proc/cpuinfo") as info:
        text = info.read()
    name, family, model = (
        match.group(1) if (match := re.search(rf"^{key}\s*:\s*(.+)$", text, re.M)) else "?"
        for key in ("model name", "cpu family", "model")
    )
    return f"{name} (family {family}, model {model}), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    atexit.register(stop_servers)
    print(
        f"# {cpu_model()}; server defaults: "
        + ", ".join(
            f"{key} {SERVER[key]}"
            for key in (
                "threads",
                "max_images_per_request",
                "max_image_pixels",
                "max_request_pixels",
                "max_in_flight",
                "max_body_bytes",
            )
        )
    )
    generator = LoadGenerator(min(8, os.cpu_count() or 1))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            process, port = serve(args.model, tmp)
            normal, admitted = costs(port, process.pid)
            median, worst = latencies(port, *normal)
            print(f"\none-digit drawing alone: median {1000 * median:.0f} ms, worst {1000 * worst:.0f} ms of 20")
            for heavy_request in admitted:
                under_load(port, normal, heavy_request)
            clients = 2 * SERVER["max_in_flight"]
            print(f"\nflood, defaults: {flood(port, generator, normal[0], clients, args.flood_seconds)}")
            print(f"metrics after it: {overload_metrics(port)}", flush=True)
            stop_servers()
            for limit in (int(value) for value in args.in_flight.split(",") if value):
                process, port = serve(args.model, tmp, "--max-in-flight", str(limit))
                for clients in (limit, 2 * limit):
                    print(
                        f"--max-in-flight {limit}, {flood(port, generator, normal[0], clients, args.flood_seconds)}",
                        flush=True,
                    )
                stop_servers()
    finally:
        generator.close()
        stop_servers()
    return 0


if __name__ == "__main__":
    sys.exit(main())
