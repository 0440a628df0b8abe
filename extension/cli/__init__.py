"""Command line: ``python -m extension {vary,interpolate,refine,serve}``.

Outputs are PNGs carrying their infotext (WebUI format, readable by PNG Info), written atomically under stable
names; a re-run skips every output that already exists, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import ReimagineError
from . import ray_engine, refine, vary
from .common import InvalidValue
from .files import write_error

DESCRIPTION = """\
Stable unCLIP 2.1 image variations and an SDXL refiner pass, without a WebUI.

examples:
  python -m extension vary photo.jpg --model models/Stable-diffusion/sd21-unclip-h.ckpt --out out/ --n 4
  python -m extension vary a.png b.png --weights 0.7,0.3 --model sd21-unclip-l.ckpt --out out/ --prompt "oil painting"
  python -m extension interpolate a.png b.png --frames 8 --model sd21-unclip-h.ckpt --out strip/
  python -m extension refine render.png --model sd_xl_refiner_1.0.safetensors --out refined/
  python -m extension serve
"""


# Installed with pip the package is `sd_webui_reimagine` and the command `sd-reimagine` (pyproject.toml).
PROG = "python -m extension" if __name__.startswith("extension.") else "sd-reimagine"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION.replace("python -m extension", PROG),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    vary.add_parsers(commands)
    serve = commands.add_parser("serve", help="the Reimagine and Refine tabs as a local web app (127.0.0.1)")
    serve.add_argument("--port", type=int, default=7861)
    serve.add_argument("--models-dir", type=Path, default=None, help="folder with unCLIP / SDXL refiner models")
    serve.add_argument(
        "--listen",
        default=None,
        metavar="ADDRESS",
        help="bind this address instead of 127.0.0.1 (e.g. 0.0.0.0); requests must still name an allowed host",
    )
    serve.add_argument(
        "--allowed-hosts",
        default="",
        metavar="NAMES",
        help="comma-separated host names/addresses the browser may use besides 127.0.0.1, localhost, [::1] and --listen",
    )
    serve.set_defaults(run=run_serve)

    refine.add_parser(commands)
    for name in ("vary", "refine"):
        ray_engine.add_options(commands.choices[name])
    return parser


def run_serve(args: argparse.Namespace) -> int:
    """``serve``: the standalone gradio app."""
    from ..app import serve
    from ..loading.configs import config_root_from_env

    hosts = [name.strip() for name in args.allowed_hosts.split(",") if name.strip()]
    return serve(
        port=args.port,
        models_dir=args.models_dir,
        listen=args.listen,
        allowed_hosts=hosts,
        config_root=config_root_from_env(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one clear line and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    invalid = next((value for value in vars(args).values() if isinstance(value, InvalidValue)), None)
    if invalid is not None:
        print(f"error: {invalid.message}", file=sys.stderr)
        return 2
    try:
        if ray_engine.uses_ray(args):
            return ray_engine.run(args, args.command)
        return int(args.run(args) or 0)
    except ReimagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, read-only or vanished folder, name too long: one line, not a traceback
        print(f"error: {write_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished outputs are saved; run the same command again to resume", file=sys.stderr)
        return 130
