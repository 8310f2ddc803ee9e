"""The `domainssl` command: one subcommand per step of the user's path.

Each subcommand lives in `domainssl/commands/<name>.py` with `HELP`, `add_arguments(parser)`
and `run(args) -> int`, so a change to one step is made in one small file.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

# Order is the user's path (DESIGN.md): scan -> pretrain -> export -> probe; demo runs them all.
COMMANDS = ["scan", "stats", "pretrain", "export", "probe", "demo"]


def _available() -> list[str]:
    return [c for c in COMMANDS if importlib.util.find_spec(f"domainssl.commands.{c}") is not None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="domainssl",
        description="Self-supervised pretraining on unlabeled scientific image archives "
                    "(DICOM, NIfTI, GeoTIFF/COG, OME-Zarr, OME-TIFF) and few-label transfer.",
        epilog="Run 'domainssl COMMAND --help' for a command's options and an example.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"domainssl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _available():
        module = importlib.import_module(f"domainssl.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def format_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as a command-line user reads it: what happened and what to do, without the
    source file and line that Python's default format adds (they point into our code, not at
    the user's data). The category is named unless it is a plain UserWarning."""
    kind = "" if category is UserWarning else f" ({category.__name__})"
    return f"warning{kind}: {message}\n"


def error_text(exc: BaseException) -> str:
    """`exc`'s message for a command's one-line error. An error raised in a DataLoader worker
    comes back wrapped ("Caught X in DataLoader worker process 0. Original Traceback ...");
    the user needs only the original message, its last part."""
    text = str(exc)
    if text.startswith("Caught ") and "Original Traceback" in text:
        marker = f"{type(exc).__name__}: "
        at = text.rfind(marker)
        if at >= 0:
            return text[at + len(marker):].strip()
    return text


def _is_input_error(exc: BaseException) -> bool:
    """Errors that come from what the user gave (a value, a path, a device): one line, not a
    traceback. The commands report their own domain errors; this catches what they leave, such
    as a value torch or Lightning refuses (precision 'fp17', an accelerator this machine lacks)."""
    return isinstance(exc, (ValueError, OSError)) or type(exc).__name__ == "MisconfigurationException"


def main(argv: list[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # Only `pretrain` takes free-form dotted overrides (--data.root PATH ...).
    if extra and not getattr(args._module, "ACCEPTS_OVERRIDES", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = extra
    python_format, warnings.formatwarning = warnings.formatwarning, format_warning
    try:
        return int(args._module.run(args) or 0)
    except Exception as exc:
        if isinstance(getattr(exc, "exit_code", None), int):  # a run stopped from outside (SIGTERM)
            print(f"domainssl {args.command}: {exc}", file=sys.stderr)
            return exc.exit_code
        if not _is_input_error(exc) or os.environ.get("DOMAINSSL_TRACEBACK"):
            raise
        print(f"domainssl {args.command}: error: {error_text(exc)} "
              f"(DOMAINSSL_TRACEBACK=1 shows where)", file=sys.stderr)
        return 2
    finally:  # main() called in-process (tests, notebooks) leaves Python's format as it was
        warnings.formatwarning = python_format


if __name__ == "__main__":
    sys.exit(main())
