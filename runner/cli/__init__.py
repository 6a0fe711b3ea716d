"""The `model-runner` command. Each verb lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import sys

from runner.errors import ModelRunnerError

# Exit codes: 0 success, 1 failure (reason on stderr), 2 usage error (argparse's own).
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-runner",
        description="Serve Java JARs and Python classes behind one protobuf contract, with hot swaps.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    from runner.cli import onboard, remote, serve  # noqa: PLC0415 (verbs register lazily)

    for module in (serve, onboard, remote):
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ModelRunnerError as err:
        print(f"error: {err.message}", file=sys.stderr)
        hint = err.detail.get("hint") if isinstance(err.detail, dict) else None
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
