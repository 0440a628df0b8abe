"""Peak RSS of the REST API under concurrent worst-case uploads (decompression amplification).

A child process serves ``/reimagine/v1/*`` (uvicorn, tiny random-weight unCLIP from tests/tiny_models.py, CPU). The
parent measures the child's RSS when idle (after one small warm-up request), then sends ``--clients`` concurrent
requests, each with as many pixels as one request may carry (``rest.MAX_REQUEST_PIXELS``: 4 × 4096² solid-colour PNGs,
~50 KB each on the wire, 200 MB of RGB once decoded), and reads the child's peak RSS (``VmHWM``) afterwards.
Reported: peak − idle, in MB (goal: under 1500). Linux only (/proc).

Run: ``.nox/a1111/bin/python bench/bench_api_memory.py [--clients 10] [--cache /tmp/reimagine-bench-tiny]``
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def serve(cache: Path, port: int) -> None:
    """The child: the API on 127.0.0.1:``port`` over the tiny unCLIP-H."""
    import threading as _threading

    import uvicorn
    from fastapi import FastAPI

    from extension import api
    from extension.loading import load_unclip
    from tests.tiny_models import build_tiny_models

    pipe = load_unclip(build_tiny_models(cache).unclip_h.folder)
    lock = _threading.Lock()

    class Backend:
        def models(self):
            return [type("Entry", (), {"name": "tiny", "kind": "unclip-h", "path": "tiny.safetensors"})()]

        def load(self, entry):
            return pipe

        def run_job(self, description, job):
            with lock:
                return job(lambda step, total: None, lambda: False)

    app = FastAPI()
    api.add_routes(app, Backend())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _png(size: int, colour: tuple[int, int, int]) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _post(port: int, body: dict) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("POST", "/reimagine/v1/variations", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/reimagine-bench-tiny"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.cache, args.port)
        return 0

    import socket

    from extension import rest

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port), "--cache", str(args.cache)])
    try:
        small = {"images": [_png(64, (10, 20, 30))], "steps": 1, "width": 64, "height": 64, "seed": 1}
        deadline = time.time() + 600
        while True:
            try:
                if _post(port, small) == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or child.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.5)
        idle = _status(child.pid, "VmRSS")
        side = int((rest.MAX_REQUEST_PIXELS // 4) ** 0.5)
        images = [_png(side, (i * 40, 255 - i * 40, 128)) for i in range(4)]
        worst = {"images": images, "steps": 1, "width": 64, "height": 64, "seed": 2}
        wire = len(json.dumps(worst))
        statuses: list[int] = []
        lock = threading.Lock()

        def call(_: int) -> None:
            status = _post(port, worst)
            with lock:
                statuses.append(status)

        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(call, range(args.clients)))
        took = time.perf_counter() - start
        peak = _status(child.pid, "VmHWM")
        after = _status(child.pid, "VmRSS")
        print(
            json.dumps(
                {
                    "clients": args.clients,
                    "request": f"4 x {side}x{side} PNG, {wire / 1e3:.0f} kB body",
                    "statuses": sorted(statuses),
                    "idle_rss_mb": round(idle / 1e6),
                    "peak_rss_mb": round(peak / 1e6),
                    "peak_above_idle_mb": round((peak - idle) / 1e6),
                    "rss_after_mb": round(after / 1e6),
                    "seconds": round(took, 1),
                }
            )
        )
    finally:
        child.terminate()
        child.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
