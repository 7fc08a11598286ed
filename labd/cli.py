"""``labd``: serve the daemon, run the simulated testbed alone, or check a station file."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import zmq

from labd.config import ConfigError, StationConfig, load_config

DEFAULT_CONFIG = Path("instruments.toml")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labd", description=__doc__)
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the daemon (and the simulated testbed, if "
                                "the config has a [simulation] table)")
    serve.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    serve.set_defaults(run=_serve)

    sim = commands.add_parser("sim", help="run only the simulated instruments of the config")
    sim.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    sim.add_argument("--control", help="fault-injection endpoint (default: [simulation] control)")
    sim.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    sim.set_defaults(run=_sim)

    demo = commands.add_parser("demo", help="the main job on the simulated testbed, end to end")
    demo.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    demo.add_argument("--report", type=Path, default=Path("report"), help="folder to write")
    demo.set_defaults(run=_demo)

    check = commands.add_parser("check-config", help="validate a station file")
    check.add_argument("path", nargs="?", type=Path, default=DEFAULT_CONFIG)
    check.add_argument("--schema", action="store_true", help="print the file's JSON Schema")
    check.set_defaults(run=_check)
    return parser


def _load(path: Path) -> StationConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(StationConfig.model_json_schema(), indent=2))
        return 0
    config = _load(args.path)
    if config is None:
        return 1
    print(f"{args.path}: ok ({len(config.instruments)} instruments)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from labd.server import serve

    config = _load(args.config)
    if config is None:
        return 1
    try:
        serve(config, args.config)
    except zmq.ZMQError as exc:
        print(f"labd: cannot bind {config.daemon.rpc} / {config.daemon.pub}: {exc}",
              file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from labd.demo import run_demo

    config = _load(args.config)
    return 1 if config is None else run_demo(config, args.config, args.report)


def _sim(args: argparse.Namespace) -> int:
    from labd.simulation import run_sim

    config = _load(args.config)
    if config is None:
        return 1
    try:
        asyncio.run(run_sim(config, args.exit_on_stdin_eof, args.control))
    except OSError as exc:
        print(f"labd sim: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
