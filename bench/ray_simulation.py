"""``bench/bench_ray.py --simulate-gpu-ms T …``: Ray orchestration measured with the GPU replaced by a wait.

Each actor runs ``--engine ray`` exactly as on a GPU node, except that the diffusion call sleeps T ms per image
(``extension/cli/simulate.py``): our own host work (reading and decoding the inputs, the existence checks, seeds,
infotext, float → PIL, PNG encoding, the atomic write) and Ray Data's scheduling and retries all run for real. A 2-core
machine imitates a GPU node this way, where the host mostly waits on the device.

Measured per configuration (T, actors, rows in flight per actor), each on a fresh output folder:

* images/s in the steady state: ``(outputs - actors) / (last output's mtime - first output's mtime)``, all actors
  started before the first row (``DataContext.wait_for_min_actors_s``); the whole-run wall time (actor start-up
  included) is printed beside it;
* efficiency: images/s over N × the 1-actor images/s at the same T and rows in flight, and over the device bound
  N / T (what N busy GPUs would give): on a shared machine the 1-actor run may have met another load;
* CPU per image in the steady state, by process: our actors, the driver (this process: Ray Data's executor and the
  result loop; the sampler's own thread left out), Ray's own processes (raylet, GCS, idle workers), and the machine
  as a whole (other users included), sampled with psutil every 0.2 s.

``--profile N`` instead runs one :class:`extension.cli.ray_engine.Worker` in this process (no Ray, T = 0) over N
rows and splits its CPU time per image by function (cProfile on ``time.process_time``): the actor's host work.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401 - puts the repository on sys.path

from extension.cli import build_parser, main
from extension.cli.ray_engine import SINGLE_NODE_ENV  # noqa: E402
from extension.cli.simulate import picture


def make_inputs(folder: Path, count: int, side: int) -> Path:
    """``count`` photo-like PNGs of ``side``² (the simulated outputs of other seeds: realistic decoding cost)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        path = folder / f"img{index:04d}.png"
        if not path.exists():
            picture(1000 + index, (side, side)).save(path)
    return folder


class CpuSampler:
    """CPU seconds of every process of interest, sampled in a thread: ``cpu(category, t0, t1)`` gives the CPU spent
    between two instants by our actors, the driver, Ray's own processes, and the whole machine."""

    def __init__(self, period: float = 0.2) -> None:
        import psutil

        self.psutil, self.period = psutil, period
        self.samples: list[tuple[float, dict[int, tuple[str, float]], float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _category(self, process: Any) -> str | None:
        if process.pid == os.getpid():
            return "driver"
        line = " ".join(process.info["cmdline"] or [])
        if line.startswith("ray::") and "Map" in line:
            return "actors"
        if "ray" in line and ("raylet" in line or "gcs_server" in line or line.startswith("ray::") or "/ray/" in line):
            return "ray"
        return None

    def _run(self) -> None:
        while not self.stop.is_set():
            now = time.perf_counter()
            found: dict[int, tuple[str, float]] = {}
            for process in self.psutil.process_iter(["cmdline", "cpu_times"]):
                category = self._category(process)
                times = process.info["cpu_times"]
                if category and times is not None:
                    found[process.pid] = (category, times.user + times.system)
            total = self.psutil.cpu_times()
            busy = sum(total) - total.idle - getattr(total, "iowait", 0.0)
            self.samples.append((now, found, busy, time.thread_time()))  # the sampler's own CPU: not the driver's
            self.stop.wait(self.period)

    def __enter__(self) -> CpuSampler:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join()

    def cpu(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per category between the samples nearest ``start`` and ``end`` (processes alive at both)."""
        first = min(self.samples, key=lambda sample: abs(sample[0] - start))
        last = min(self.samples, key=lambda sample: abs(sample[0] - end))
        spent = {"actors": 0.0, "driver": 0.0, "ray": 0.0}
        for pid, (category, seconds) in last[1].items():
            if pid in first[1]:
                spent[category] += seconds - first[1][pid][1]
        spent["driver"] -= last[3] - first[3]
        spent["machine"] = last[2] - first[2]
        spent["seconds"] = last[0] - first[0]
        return spent


def run_one(inputs: Path, out: Path, ms: float, workers: int, rows: int, sampler: CpuSampler, side: int) -> dict[str, Any]:  # fmt: skip
    argv = ["vary", str(inputs), "--out", str(out), "--n", "1", "--seed", "1", "--engine", "ray"]
    argv += ["--width", str(side), "--height", str(side)]
    argv += ["--workers", str(workers), "--simulate-gpu-ms", f"{ms:g}", "--rows-in-flight", str(rows)]
    load_before = os.getloadavg()[0]
    start_wall, start = time.time(), time.perf_counter()
    if main(argv) != 0:
        raise SystemExit(f"run failed: {argv}")
    wall = time.perf_counter() - start
    stamps = sorted(path.stat().st_mtime for path in out.glob("*.png"))
    count = len(stamps)
    window = stamps[-1] - stamps[0]
    rate = (count - workers) / window
    # the mtimes are wall-clock; the sampler's clock is perf_counter: map one onto the other
    spent = sampler.cpu(start + (stamps[0] - start_wall), start + (stamps[-1] - start_wall))
    made = rate * spent["seconds"]  # outputs written in the sampled window
    return {
        "gpu_ms": ms,
        "side": side,
        "actors": workers,
        "rows_in_flight": rows,
        "images": count,
        "wall_s": round(wall, 2),
        "images_per_s": round(rate, 3),
        # a run too short for the sampler's window (a toy size) has no CPU figures
        "cpu_ms_per_image": {
            key: round(spent[key] / made * 1000, 1) if made > 0 else None
            for key in ("actors", "driver", "ray", "machine")
        },
        "machine_busy_cores": round(spent["machine"] / spent["seconds"], 2) if spent["seconds"] > 0 else None,
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def simulate(options: argparse.Namespace) -> None:
    import ray

    os.environ["REIMAGINE_RAY_THREADS"] = "1"
    root = Path(tempfile.mkdtemp(prefix="bench-raysim-", dir=options.tmp))
    inputs = make_inputs(Path(options.inputs or root / "in"), options.images, options.side)
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    cpus = max(options.workers) + 2  # logical CPUs: one per actor (as on a GPU node), whatever the cores
    os.environ[SINGLE_NODE_ENV] = "0"  # loopback only, as start_ray does for a local Ray
    ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False, _temp_dir=temp_dir)  # fmt: skip
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.wait_for_min_actors_s = 600  # every actor up before the first row: a clean steady state
    print(f"{options.images} inputs {options.side}², --n 1; cores: {os.cpu_count()}; load before: {os.getloadavg()}")
    rows: list[dict[str, Any]] = []
    with CpuSampler() as sampler:
        for ms in options.simulate_gpu_ms:
            for in_flight in options.rows_in_flight:
                for workers in options.workers:
                    out = root / f"out-{ms:g}-{in_flight}-{workers}"
                    row = run_one(inputs, out, ms, workers, in_flight, sampler, options.side)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    ray.shutdown()
    for row in rows:  # against the 1-actor run of the same T, side and rows in flight (in any order)
        key = (row["gpu_ms"], row["rows_in_flight"], 1)
        one = next((r for r in rows if (r["gpu_ms"], r["rows_in_flight"], r["actors"]) == key), None)
        row["efficiency"] = round(row["images_per_s"] / (row["actors"] * one["images_per_s"]), 3) if one else None
    print(f"load after: {os.getloadavg()}")
    print(table(rows))
    if options.json:
        Path(options.json).write_text(json.dumps({"rows": rows, "cores": os.cpu_count()}, indent=1))


def table(rows: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table (README's "At scale")."""
    lines = [
        "| T (ms) | side | rows/actor | actors | images/s | N × 1 actor | efficiency | of N/T | wall (s) | CPU/image ms: actors / driver / Ray / machine | load |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        key = (row["gpu_ms"], row.get("side"), row["rows_in_flight"], 1)
        one = next((r for r in rows if (r["gpu_ms"], r.get("side"), r["rows_in_flight"], r["actors"]) == key), None)
        ideal = row["actors"] * one["images_per_s"] if one else None
        versus_one = f"{ideal:.2f} | {row['images_per_s'] / ideal:.0%}" if ideal else "– | –"
        cpu = row["cpu_ms_per_image"]
        lines.append(
            f"| {row['gpu_ms']:g} | {row.get('side', '?')}² | {row['rows_in_flight']} | {row['actors']} | "
            f"{row['images_per_s']:.2f} | {versus_one} | "
            f"{row['images_per_s'] * row['gpu_ms'] / 1000 / row['actors']:.0%} | {row['wall_s']:.0f} | "
            f"{' / '.join('–' if cpu[k] is None else f'{cpu[k]:.0f}' for k in ('actors', 'driver', 'ray', 'machine'))} | "
            f"{row['load_1min'][0]:.1f}–{row['load_1min'][1]:.1f} |"
        )
    return "\n".join(lines)


# --- the actor's host work, profiled in this process ------------------------------------------------------------------
GROUPS = {  # function (file suffix, name) -> what it is
    ("ray_engine.py", "read_image"): "read + decode input",
    ("ray_engine.py", "exists"): "existence checks",
    ("unclip.py", "fit_for_clip"): "CLIP-side resize",
    ("simulate.py", "picture"): "float → uint8 → PIL",
    ("unclip.py", "build_infotext"): "infotext",
    ("PngImagePlugin.py", "_save"): "PNG encode",
    ("outputs.py", "save_png"): "PNG encode + atomic write",
}


def profile(options: argparse.Namespace) -> None:
    from extension.cli.ray_engine import Worker, filesystem, list_images, plan

    root = Path(tempfile.mkdtemp(prefix="bench-raysim-profile-", dir=options.tmp))
    inputs = make_inputs(root / "in", options.profile, options.side)
    out = root / "out"
    out.mkdir()
    args = build_parser().parse_args(["vary", str(inputs), "--out", str(out), "--n", "1", "--seed", "1", "--engine", "ray", "--simulate-gpu-ms", "0", "--width", str(options.side), "--height", str(options.side)])  # fmt: skip
    in_files, paths = list_images([str(inputs)])
    out_files, out_path = filesystem(str(out))
    rows, _ = plan(args, "vary", in_files, paths, out_path, out_files)
    options_dict = {key: value for key, value in vars(args).items() if key != "run"}
    worker = Worker("vary", options_dict, in_files, out_files, out_path)
    worker({"row": rows[:2]})  # warm-up (imports, the cached simulated pictures)
    for path in out.glob("*.png"):
        path.unlink()
    profiler = cProfile.Profile(time.process_time)  # CPU time: other users' load barely moves it
    cpu, wall = time.process_time(), time.perf_counter()
    profiler.enable()
    worker({"row": rows})
    profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tottime, cumtime, callers)}
    count = len(rows)
    result = {"images": count, "side": options.side, "cpu_ms_per_image": round(cpu / count * 1000, 1)}
    result["wall_ms_per_image"] = round(wall / count * 1000, 1)
    parts: dict[str, float] = {}
    for (file, _line, name), (_cc, _nc, _tottime, cumtime, _callers) in stats.items():
        label = GROUPS.get((Path(file).name, name))
        if label:
            parts[label] = parts.get(label, 0.0) + cumtime
    parts["atomic write (temp file, fsync, rename)"] = parts.pop("PNG encode + atomic write") - parts["PNG encode"]
    parts["the rest (Worker, seeds, requests)"] = cpu - sum(parts.values())
    result["profile_cpu_ms_per_image"] = {label: round(seconds / count * 1000, 1) for label, seconds in parts.items()}
    result["load_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=1, ensure_ascii=False))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("simulation (no model: the diffusion call is a wait of T ms per image)")
    group.add_argument("--simulate-gpu-ms", type=float, nargs="+", default=None, metavar="T")
    group.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8], help="actor counts (default: 1 2 4 8)")
    group.add_argument("--rows-in-flight", type=int, nargs="+", default=[2], help="per actor; 1 = encode on the critical path")  # fmt: skip
    group.add_argument("--side", type=int, default=768, help="input and output side, a multiple of 64 (default: 768)")
    group.add_argument("--profile", type=int, default=0, metavar="N", help="profile one actor's host work over N rows")
    group.add_argument("--json", default=None, help="also write the figures here")
    group.add_argument("--tmp", default=None, help="scratch folder (default: the system's)")
    group.add_argument("--inputs", default=None, help="input folder, kept between runs (default: a new one)")
