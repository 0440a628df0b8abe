"""What every command shares: options from the parameter table, input discovery, the resume rule, output planning,
the progress bar and image reading."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ReimagineError
from ..images import normalized
from ..loading.configs import config_root_from_env
from ..params import Param


def flag(param: Param) -> str:
    """The option spelling of a parameter: its table ``flag``, else ``noise_level`` → ``--noise-level``."""
    return param.flag or "--" + param.name.replace("_", "-")


@dataclass(frozen=True)
class InvalidValue:
    """An option value the parameter table refused; :func:`extension.cli.main` prints ``message`` (one line, exit 2)."""

    message: str


def _checked(param: Param) -> Callable[[str], Any]:
    """An argparse ``type`` that converts and range-checks with the table (``--batch-size 99`` is refused before
    anything runs, with the table's message)."""

    def convert(text: str) -> Any:
        try:
            return param.coerce(text)
        except ReimagineError as error:
            return InvalidValue(str(error))

    convert.__name__ = param.kind.__name__  # argparse names the type in its messages
    return convert


def add_param(parser: argparse.ArgumentParser, param: Param, *flags: str, **overrides: Any) -> None:
    """An option derived from the parameter table (type, default, range in the help)."""
    help_text = overrides.pop("help", param.help or param.label)
    kwargs: dict[str, Any] = {
        "dest": param.name,
        "type": None if param.kind is bool else (param.kind if param.inherit else _checked(param)),
        "default": overrides.pop("default", param.default),
        "help": f"{help_text} ({'' if param.choices else param.expected() + '; '}default: %(default)s)",
    }
    if param.choices:
        kwargs["choices"] = param.choices
    kwargs.update(overrides)
    parser.add_argument(*(flags or (flag(param),)), **kwargs)


def model_options(parser: argparse.ArgumentParser, model_help: str) -> None:
    """``--model``, ``--out``, ``--overwrite``, ``--device``, ``--config-root``."""
    parser.add_argument(
        "--model", default=None, help=f"{model_help} (default: the only one in --models-dir, else the hub)"
    )
    parser.add_argument("--models-dir", type=Path, default=None, help="folder searched when --model is not given")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda, cuda:1, cpu (default: best)")
    parser.add_argument(
        "--config-root",
        type=Path,
        default=config_root_from_env(),
        help="folder of config-only model folders for single files (default: $REIMAGINE_CONFIG_ROOT, else the "
        "bundled configs)",
    )


@dataclass
class Job:
    """One output file and the request that makes it (``seed_offset`` indexes the request's seeds)."""

    path: Path
    seed_offset: int


def plan_requests(todo: list[Job], batch_size: int) -> list[tuple[list[Job], int, int]]:
    """Group missing outputs into requests ``(outputs, n_iter, batch_size)``: each run of consecutive outputs is one
    request of full batches (one CLIP encode) plus one for the remainder; a resumed folder may have holes."""
    runs: list[list[Job]] = []
    for job in todo:
        if runs and job.seed_offset == runs[-1][-1].seed_offset + 1:
            runs[-1].append(job)
        else:
            runs.append([job])
    requests = []
    for run in runs:
        full, rest = divmod(len(run), batch_size)
        if full:
            requests.append((run[: full * batch_size], full, batch_size))
        if rest:
            requests.append((run[full * batch_size :], 1, rest))
    return requests


def input_images(paths: Sequence[Path]) -> list[Path]:
    """The image files named by the IMAGE arguments (folders expanded); a user error when there are none."""
    from ..outputs import expand_inputs

    inputs = expand_inputs(paths)
    if not inputs:
        raise ReimagineError("no input images found")
    return inputs


def wanted(path: Path, args: argparse.Namespace) -> bool:
    """The resume rule: an output is made when it does not exist yet, or always with ``--overwrite``."""
    return args.overwrite or not path.exists()


def nothing_to_do(args: argparse.Namespace, what: str = "outputs") -> int:
    """Say that every output exists already (exit status 0)."""
    print(f"nothing to do: all {what} exist in {args.out} (use --overwrite to redo them)")
    return 0


@contextmanager
def progress_bar(runs: int, description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr over ``runs`` engine runs (batches or strips) that run one after another; yields the
    engines' ``progress(step, steps)`` callback and closes the bar on exit. The steps of a run are what the engine
    reports (its scheduler's own count), so the bar's total is set from the first report."""
    from tqdm.auto import tqdm

    bar = tqdm(total=None, desc=description, unit="step", file=sys.stderr)
    position = {"base": 0}

    def advance(step: int, steps: int) -> None:
        if bar.total is None:
            bar.total = runs * steps
        bar.n = position["base"] + step
        bar.refresh()
        if step == steps:
            position["base"] += steps

    try:
        yield advance
    finally:
        bar.close()


def load_images(paths: Sequence[Path]) -> list[Any]:
    """The files as RGB PIL images; a user error names a file that is missing or not an image."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(normalized(image))  # upright (EXIF) and 8-bit, as the WebUI reads inputs
        except FileNotFoundError:
            raise ReimagineError(f"input image not found: {path}") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise ReimagineError(f"cannot read {path} as an image: {error}") from None
    return images
