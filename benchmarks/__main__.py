"""``python -m benchmarks <suite> [options]``: throughput and accuracy runs printing JSON."""

from __future__ import annotations

import argparse
import sys

from benchmarks import accuracy, calibrate, finger, iris, service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="suite", required=True)
    iris.add_parser(sub)
    finger.add_parser(sub)
    accuracy.add_parser(sub)
    calibrate.add_parser(sub)
    service.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
