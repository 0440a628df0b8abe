"""``--engine ray``: ``vary`` / ``refine`` over a whole dataset on Ray Data (https://docs.ray.io/en/latest/data/).

Steps of a run (:func:`run`):

1. list the inputs and name each output exactly like the local CLI (:mod:`extension.cli.vary`,
   :func:`extension.cli.refine.output_paths`); drop every output that already exists (no GPU work for those);
2. check that the output location is writable (a clear error before anything starts);
3. stream the remaining inputs through ``map_batches`` with a callable class: one actor per worker loads the
   pipeline once and makes the outputs of the rows it gets, with the local CLI's seeds and the same atomic write;
   each actor works on two rows at once, one on the device (under a lock) while the other is read, PNG-encoded and
   written, so the host work stays off the device's critical path; a row is reported only once its files are written;
   Ray restarts a killed actor and retries its batches, and a batch skips the outputs its first try already wrote;
4. count done / skipped / failed, name every failed input, exit 1 if any failed.

INPUT / OUTPUT are local paths or filesystem URIs that ``pyarrow.fs.FileSystem.from_uri`` understands (``s3://``,
``gs://``, ``abfs://``, ``file://``). ``ray`` is optional: without it ``--engine ray`` is a one-line user error.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import os
import re
import sys
import threading
import uuid
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ReimagineError
from ..outputs import IMAGE_SUFFIXES, png_info, save_png
from .common import Job
from .refine import output_paths, request_for
from .vary import make_outputs, settings_from_args

INSTALL_HINT = (
    '--engine ray needs Ray Data: pip install "ray[data]>=2.59" "pyarrow<20" (or pip install ".[ray]" in this folder)'
)
LOOPBACK = "127.0.0.1"
# Ray's own "no multi-node cluster" switch (on by default on Windows and macOS): with it off, a local Ray takes the
# loopback address as its node address, and its GCS, raylet and workers listen there only.
SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
FAILED_EXIT = 1


def add_options(parser: argparse.ArgumentParser) -> None:
    """The ``--engine`` flags, added to ``vary`` and ``refine``."""
    group = parser.add_argument_group("dataset scale (Ray Data)")
    group.add_argument("--engine", choices=["local", "ray"], default="local", help="where to run (default: local)")
    group.add_argument(
        "--address",
        default=None,
        help="Ray cluster: auto, ray://host:10001 (default: a local Ray on 127.0.0.1 only)",
    )
    group.add_argument("--workers", type=int, default=1, help="actors, each holding one loaded pipeline (default: 1)")
    group.add_argument(
        "--gpus-per-worker",
        type=float,
        default=None,
        help="GPUs per actor (default: 1 when the cluster has GPUs, else 0)",
    )
    # bench/bench_ray.py only: the diffusion call replaced by a wait of T ms per image (extension/cli/simulate.py),
    # and how many rows one actor works on at once (1: one after another, the encode and write on the critical path)
    group.add_argument("--simulate-gpu-ms", type=float, default=None, help=argparse.SUPPRESS)
    group.add_argument("--rows-in-flight", type=int, default=2, help=argparse.SUPPRESS)


def uses_ray(args: argparse.Namespace) -> bool:
    return getattr(args, "engine", "local") == "ray"


# --- filesystems -----------------------------------------------------------------------------------------------------
def uri_text(path: Path | str) -> str:
    """The URI the user typed: argparse's ``type=Path`` turns ``s3://b/k`` into ``s3:/b/k``; undo that."""
    text = str(path)
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/(?!/)(.*)$", text)
    if match:
        scheme, rest = match.groups()
        return f"{scheme}:///{rest}" if scheme == "file" else f"{scheme}://{rest}"
    return text


def filesystem(uri: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path inside it)`` for a local path or a URI."""
    from pyarrow import fs

    if "://" not in uri:
        return fs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return fs.FileSystem.from_uri(uri)
    except Exception as error:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError/ImportError by scheme
        raise ReimagineError(f"cannot open {uri}: {error}") from None


def list_images(uris: list[str]) -> tuple[Any, list[str]]:
    """The image files under the IMAGE arguments (folders: their images sorted by name), all on one filesystem."""
    from pyarrow import fs

    found: list[str] = []
    first = None
    for uri in uris:
        files, path = filesystem(uri)
        first = first or files
        info = files.get_file_info(path)
        if info.type == fs.FileType.Directory:
            listed = files.get_file_info(fs.FileSelector(path, recursive=False))
            found += sorted(i.path for i in listed if i.type == fs.FileType.File and i.extension.lower() in _SUFFIXES)
        elif info.type == fs.FileType.File:
            found.append(path)
        else:
            raise ReimagineError(f"input image not found: {uri}")
    if not found:
        raise ReimagineError("no input images found")
    return first, found


_SUFFIXES = {suffix.lstrip(".") for suffix in IMAGE_SUFFIXES}


def check_writable(files: Any, folder: str) -> None:
    """Create ``folder`` and write + delete a probe file there: a read-only location fails here, before any work."""
    probe = f"{folder}/.reimagine-probe-{uuid.uuid4().hex}"
    try:
        files.create_dir(folder, recursive=True)
        with files.open_output_stream(probe) as stream:
            stream.write(b"ok")
        files.delete_file(probe)
    except (OSError, ValueError) as error:
        raise ReimagineError(f"cannot write to the output location {folder}: {error}") from None


def exists(files: Any, path: str) -> bool:
    from pyarrow import fs

    return files.get_file_info(path).type != fs.FileType.NotFound


def read_image(files: Any, path: str):
    """``(RGB image, its PNG infotext or None)``; an unreadable file raises :class:`ReimagineError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with files.open_input_file(path) as stream:
            data = stream.readall()
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB"), image.info.get("parameters")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ReimagineError(f"cannot read {path} as an image: {error}") from None


def write_png(files: Any, path: str, image: Any, infotext: str) -> None:
    """Atomic write: a temp name, then a rename (local: :func:`extension.outputs.save_png`)."""
    from pyarrow import fs

    if isinstance(files, fs.LocalFileSystem):
        save_png(image, Path(path), infotext)
        return
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(infotext))
    parent, name = path.rsplit("/", 1)
    temp = f"{parent}/.{name}-{uuid.uuid4().hex}.tmp"
    with files.open_output_stream(temp) as stream:
        stream.write(buffer.getvalue())
    files.move(temp, path)


# --- the plan (driver side) ------------------------------------------------------------------------------------------
def plan(args: argparse.Namespace, command: str, in_files: Any, inputs: list[str], out: str, out_files: Any):
    """``(rows, skipped)``: one JSON row per input with outputs still to make; ``skipped`` counts existing outputs."""
    from ..engine import seed_list

    rows: list[str] = []
    skipped = 0
    if command == "vary":
        seed = seed_list(args.seed, 1)[0]  # as run_vary: one run seed, output k of an input gets seed + k
        for src in inputs:
            stem = PurePosixPath(src).stem
            todo = []
            for index in range(args.n):
                if args.overwrite or not exists(out_files, f"{out}/{stem}-{index:04d}.png"):
                    todo.append(index)
                else:
                    skipped += 1
            if todo:
                rows.append(json.dumps({"src": src, "seed": seed, "todo": todo, "stem": stem}))
    else:
        names = [p.name for p in output_paths([Path(src) for src in inputs], Path(out))]
        for src, name in zip(inputs, names):
            if args.overwrite or not exists(out_files, f"{out}/{name}"):
                rows.append(json.dumps({"src": src, "dst": name}))
            else:
                skipped += 1
    return rows, skipped


class Worker:
    """One Ray actor: loads the pipeline once, then makes the outputs of each batch of rows.

    Returns per row: the input, outputs written, outputs found already written (a retried batch), and the error of an
    input that failed (a corrupt image: reported, never fatal). Ray may call it from two threads at once
    (``--rows-in-flight``): the pipeline runs under :attr:`device`, reading, encoding and writing beside it.
    """

    def __init__(self, command: str, args: dict[str, Any], in_files: Any, out_files: Any, out: str) -> None:
        self.command, self.args = command, argparse.Namespace(**args)
        self.in_files, self.out_files, self.out = in_files, out_files, out
        threads = os.environ.get("REIMAGINE_RAY_THREADS")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        self.device = threading.Lock()
        if getattr(self.args, "simulate_gpu_ms", None) is not None:
            from . import simulate

            self.pipe = simulate.SimulatedPipe(self.args.simulate_gpu_ms)
            self.iter_batches, self.refine = simulate.iter_batches, simulate.refine
        else:
            from ..engine.refiner import refine
            from ..engine.unclip import iter_batches

            self.pipe, self.iter_batches, self.refine = load_pipeline(command, self.args), iter_batches, refine

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        results: dict[str, list[Any]] = {"src": [], "written": [], "existing": [], "error": []}
        for text in batch["row"]:
            row = json.loads(str(text))
            written = existing = 0
            error = ""
            try:
                written, existing = self.make(row)
            except Exception as failure:  # noqa: BLE001 - one bad input must not stop the dataset
                error = str(failure) or type(failure).__name__
            results["src"].append(row["src"])
            results["written"].append(written)
            results["existing"].append(existing)
            results["error"].append(error)
        return {key: np.array(values) for key, values in results.items()}

    def make(self, row: dict[str, Any]) -> tuple[int, int]:
        """Outputs of one input; those already present (a retry after a crash) are left alone."""
        image, source_infotext = read_image(self.in_files, row["src"])
        args = self.args

        def save(picture: Any, path: Path | str, infotext: str) -> None:
            write_png(self.out_files, str(path), picture, infotext)

        if self.command == "vary":
            jobs = [Job(Path(f"{self.out}/{row['stem']}-{index:04d}.png"), index) for index in row["todo"]]
            todo = [job for job in jobs if args.overwrite or not exists(self.out_files, str(job.path))]
            base = replace(settings_from_args(args), images=[image], mix=args.mix)
            batches = self.locked_batches
            written = make_outputs(self.pipe, base, row["seed"], todo, args.batch_size, save, batches=batches)
            return written, len(jobs) - len(todo)
        dst = f"{self.out}/{row['dst']}"
        if not args.overwrite and exists(self.out_files, dst):
            return 0, 1
        with self.device:
            result = self.refine(self.pipe, request_for(args, image, source_infotext))
        save(result.images[0], dst, result.infotexts[0])
        return 1, 0

    def locked_batches(self, pipe: Any, request: Any, progress: Any = None) -> Any:
        """The engine's batches, each made holding :attr:`device`; its images are saved after the lock is let go."""
        batches = self.iter_batches(pipe, request, progress=progress)
        while True:
            with self.device:
                batch = next(batches, None)
            if batch is None:
                return
            yield batch


def load_pipeline(command: str, args: argparse.Namespace) -> Any:
    """The pipeline that one worker holds (the same loaders as the local CLI)."""
    from ..loading import load_sdxl, load_unclip

    if command == "vary":
        return load_unclip(args.model, config_root=args.config_root, karlo_stats=args.karlo_stats, device=args.device)
    return load_sdxl(args.model, role="refiner", config_root=args.config_root, device=args.device)


def validate(args: argparse.Namespace, command: str) -> None:
    """Every value checked before Ray starts (the same checks as the local CLI)."""
    from PIL import Image

    if args.workers < 1:
        raise ReimagineError(f"--workers must be at least 1, got {args.workers}")
    if args.rows_in_flight < 1:
        raise ReimagineError(f"--rows-in-flight must be at least 1, got {args.rows_in_flight}")
    probe = [Image.new("RGB", (64, 64))]
    if command == "vary":
        if args.n < 1:
            raise ReimagineError(f"--n must be at least 1, got {args.n}")
        if args.weights is not None:
            raise ReimagineError("--weights (one mix of all inputs) runs on one machine: drop --engine ray")
        replace(settings_from_args(args), images=probe, mix=args.mix).validated()
    else:
        request_for(args, probe[0], None).resolved()


def actor_pool(ray: Any, workers: int, rows: int) -> dict[str, Any]:
    """``map_batches`` arguments for ``workers`` actors that each run up to ``rows`` calls at once, in threads. A Ray
    Data that has ``enable_true_multi_threading`` (2.60) runs one call per actor unless it is set; older ones run
    ``max_concurrency`` calls."""
    strategy = ray.data.ActorPoolStrategy
    if rows == 1:
        return {"compute": strategy(size=workers)}
    if "enable_true_multi_threading" in inspect.signature(strategy).parameters:
        pool = strategy(size=workers, max_concurrent_calls_per_actor=rows, enable_true_multi_threading=True)
        return {"compute": pool}
    return {"compute": strategy(size=workers), "max_concurrency": rows}


PATH_OPTIONS = ("model", "config_root", "karlo_stats", "models_dir")


def absolute(value: Any) -> Any:
    """A local file or folder the user named, as an absolute path: the actors of a cluster joined with ``--address``
    run in the cluster's own working folder, where a relative ``--model x.safetensors`` is not found (on other nodes
    the same absolute path must exist, e.g. a shared folder); anything else (hub ids, URIs, numbers) as it is."""
    if isinstance(value, (str, Path)) and str(value) and "://" not in str(value) and Path(value).exists():
        return str(Path(value).resolve())
    return value


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ReimagineError(INSTALL_HINT) from None
    return ray


def check_can_start(pydantic_version: str) -> None:
    """A one-line error instead of Ray's "The current node timed out during startup": Ray's raylet imports its
    pydantic-2 models, so a local Ray never starts where pydantic 1 is installed (the A1111 WebUI's stack)."""
    if pydantic_version.startswith("1."):
        raise ReimagineError(
            f"--engine ray cannot start a local Ray here: pydantic {pydantic_version} is installed and Ray needs "
            'pydantic 2; run it from its own environment (python -m venv ray-env; pip install ".[ray]")'
        )


def start_ray(ray: Any, address: str | None) -> None:
    """``ray.init``: a new local Ray listens on 127.0.0.1 only (with Ray's token authentication, on by default for
    local clusters since Ray 2.59); ``address`` joins a cluster the user runs. A failure is one line."""
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if address is None:
        import pydantic

        check_can_start(pydantic.VERSION)
        os.environ[SINGLE_NODE_ENV] = "0"  # inherited by the GCS, the raylet and the workers Ray starts
        options["_node_ip_address"] = LOOPBACK
    try:
        ray.init(address=address, **options)
    except Exception as error:  # noqa: BLE001 - Ray raises many kinds; the user needs one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        where = f"join the Ray cluster at {address}" if address else "start a local Ray"
        raise ReimagineError(
            f"--engine ray could not {where}: {first} (another Ray using its ports? try `ray stop`)"
        ) from None


def run(args: argparse.Namespace, command: str) -> int:
    """``vary`` / ``refine`` with ``--engine ray`` (see the module docstring for the steps)."""
    ray = require_ray()
    validate(args, command)

    # 1. inputs, outputs, resume
    in_files, inputs = list_images([uri_text(path) for path in args.images])
    out_files, out = filesystem(uri_text(args.out))
    out = out.rstrip("/")
    # 2. a read-only output location is an error now, not one failure per image
    check_writable(out_files, out)
    rows, skipped = plan(args, command, in_files, inputs, out, out_files)
    if not rows:
        print(f"nothing to do: all outputs exist in {uri_text(args.out)} (use --overwrite to redo them)")
        return 0

    # 3. one actor per worker, each with one loaded pipeline
    if not ray.is_initialized():
        start_ray(ray, args.address)
    gpus = args.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    options = {
        key: absolute(value) if key in PATH_OPTIONS else value for key, value in vars(args).items() if key != "run"
    }
    dataset = ray.data.from_items([{"row": row} for row in rows], override_num_blocks=min(len(rows), 200))
    results = dataset.map_batches(
        Worker,
        fn_constructor_kwargs={
            "command": command,
            "args": options,
            "in_files": in_files,
            "out_files": out_files,
            "out": out,
        },
        batch_size=1,
        num_gpus=gpus,
        num_cpus=1,
        **actor_pool(ray, args.workers, args.rows_in_flight),
        # no max_restarts / max_task_retries: Ray Data's actor pools already restart a killed actor and retry its
        # batch without limit (ActorPoolMapOperator._apply_default_remote_args); a retry skips outputs already written
    )

    # 4. counts and the summary line
    written = failed = 0
    for row in results.iter_rows():
        written += int(row["written"])
        skipped += int(row["existing"])
        if row["error"]:
            failed += 1
            print(f"failed: {row['src']}: {row['error']}", file=sys.stderr)
    print(
        f"ray: {written} written, {skipped} skipped (already there), {failed} input(s) failed -> {uri_text(args.out)}"
    )
    return FAILED_EXIT if failed else 0
