"""The `wispy` command line: one module per theme registers its commands."""
from __future__ import annotations

import argparse
import os
import sys

from wispy.cli import compiling, compression, speech

TRACEBACK_ENV = "WISPY_TRACEBACK"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wispy", description="Compile PyTorch speech models with IREE for "
                                "host, arm64, armv7 and Vulkan.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for theme in (compiling, speech, compression):
        theme.register(sub)
    return p


def main(argv=None) -> int:
    import warnings

    from wispy.errors import WispyError

    # torch.export's internals warn about their own deprecations; not the user's concern.
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(torch|copyreg|onnx)")

    parser = build_parser()
    a = parser.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(a, "fn", None):
        parser.print_help()
        return 2
    if a.command in ("bench", "demo"):
        from wispy._timing import passive_openmp_waits

        passive_openmp_waits()  # these time PyTorch beside IREE and ONNX Runtime in one process
    try:
        return a.fn(a)
    except (WispyError, OSError) as e:  # OSError: a missing or unreadable file the user named
        print(f"wispy {a.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"wispy {a.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug of wispy's: one line, the traceback on request
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"wispy {a.command}: internal error: {type(e).__name__}: {e}\n  this is a bug in wispy: please "
              f"report it with the command line ({TRACEBACK_ENV}=1 shows the traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
