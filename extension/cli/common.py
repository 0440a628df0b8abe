"""Helpers shared by the subcommands: options from the parameter table, input expansion, the resume rule, the
progress bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ReimagineError
from ..params import Param


def flag(param: Param) -> str:
    """The option spelling of a parameter: ``--noise-level`` for ``noise_level``."""
    return "--" + param.name.replace("_", "-")


def add_param(parser: argparse.ArgumentParser, param: Param, *flags: str, **overrides: Any) -> None:
    """An option derived from the parameter table (type, default, range in the help)."""
    help_text = overrides.pop("help", param.help or param.label)
    kwargs: dict[str, Any] = {
        "dest": param.name,
        "type": param.kind if param.kind is not bool else None,
        "default": overrides.pop("default", param.default),
        "help": f"{help_text} ({'' if param.choices else param.expected() + '; '}default: %(default)s)",
    }
    if param.choices:
        kwargs["choices"] = param.choices
    kwargs.update(overrides)
    parser.add_argument(*(flags or (flag(param),)), **kwargs)


def model_options(parser: argparse.ArgumentParser, model_help: str) -> None:
    parser.add_argument("--model", required=True, help=model_help)
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda, cuda:1, cpu (default: best)")
    parser.add_argument(
        "--config-root",
        type=Path,
        default=None,
        help="folder of config-only model folders for single files (default: the bundled configs)",
    )


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
    """Say that a re-run found every output already written; exit status 0."""
    print(f"nothing to do: all {what} exist in {args.out} (use --overwrite to redo them)")
    return 0


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar over ``total`` steps on stderr; yields the engines' ``progress(step, steps)`` callback (requests
    run one after another, each counting its own steps from 1) and closes the bar on exit."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=description, unit="step", file=sys.stderr)
    position = {"base": 0}

    def advance(step: int, steps: int) -> None:
        bar.n = position["base"] + step
        bar.refresh()
        if step == steps:
            position["base"] += steps

    try:
        yield advance
    finally:
        bar.close()


def load_images(paths: Sequence[Path]):
    """The images at ``paths`` as RGB; a missing or unreadable file is a user error."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except FileNotFoundError:
            raise ReimagineError(f"input image not found: {path}") from None
        except (UnidentifiedImageError, OSError) as error:
            raise ReimagineError(f"cannot read {path} as an image: {error}") from None
    return images
