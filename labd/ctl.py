"""``labctl``: the operator's command line to a running daemon (human-readable, or ``--json``)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from labd.client import (
    DEFAULT_ENDPOINT,
    DEFAULT_TELEMETRY,
    Client,
    DaemonTimeout,
    Subscription,
)
from labd.export import ExportError, export_csv, export_hdf5, read_run
from labd.rpc import RpcError
from labd.sequences import SequenceError, load_sequence, plan


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        sys.exit(args.handler(args))
    except RpcError as exc:
        _fail(args, {"code": exc.code, "message": exc.message, "data": exc.data},
              f"error {exc.code}: {exc.message}")
    except DaemonTimeout as exc:
        _fail(args, {"message": str(exc)}, f"labctl: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)


def _fail(args: argparse.Namespace, as_json: dict[str, Any], text: str) -> None:
    print(json.dumps({"error": as_json}) if args.json else text, file=sys.stderr)
    sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labctl", description=__doc__)
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="daemon JSON-RPC endpoint")
    parser.add_argument("--telemetry", default=DEFAULT_TELEMETRY, help="daemon PUB endpoint")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")
    parser.add_argument("--lease", default=os.environ.get("LABD_LEASE"),
                        help="lease token for commanding methods (default: $LABD_LEASE)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    status = commands.add_parser("status", help="every instrument and its state")
    status.set_defaults(handler=_status)

    call = commands.add_parser("call", help="call any method: labctl call METHOD '{...}'")
    call.add_argument("method")
    call.add_argument("params", nargs="?", default="{}", help="params as a JSON object")
    call.set_defaults(handler=_call)

    lease = commands.add_parser("lease", help="acquire | release | status of the operator lease")
    lease.add_argument("action", choices=["acquire", "release", "status"])
    lease.add_argument("--holder", default=f"{getpass.getuser()}@{socket.gethostname()}")
    lease.add_argument("--ttl", type=float, default=3600.0, help="seconds, unless renewed")
    lease.set_defaults(handler=_lease)

    soliton = commands.add_parser("soliton", help="start | status | stop the soliton machine")
    soliton.add_argument("action", choices=["start", "status", "stop"])
    soliton.add_argument("--sequence", default="single_soliton", help="for start")
    soliton.set_defaults(handler=_soliton)

    qkd = commands.add_parser("qkd", help="start [--channels 31,32] | status | stop QKD")
    qkd.add_argument("action", choices=["start", "status", "stop"])
    qkd.add_argument("--channels", type=lambda text: [int(c) for c in text.split(",")],
                     help="for start: ITU channels, comma-separated (default: TR1 and TR2)")
    qkd.set_defaults(handler=_qkd)

    sequence = commands.add_parser("sequence", help="run FILE [--dry-run] | status | abort")
    sequence.add_argument("action", choices=["run", "status", "abort"])
    sequence.add_argument("file", nargs="?", type=Path, help="the sequence file, for run")
    sequence.add_argument("--dry-run", action="store_true", help="validate and print the plan")
    sequence.set_defaults(handler=_sequence)

    abort = commands.add_parser("abort", help="every source to its safe state now (no lease)")
    abort.add_argument("reason", nargs="?", default="operator abort from labctl")
    abort.set_defaults(handler=_abort)

    export = commands.add_parser("export", help="write one run of the record as CSV or HDF5")
    export.add_argument("run", type=int)
    export.add_argument("--database", type=Path, default=Path("labd.sqlite"))
    export.add_argument("--format", choices=["csv", "hdf5"], default="csv")
    export.add_argument("--out", type=Path, help="folder (csv) or file (hdf5)")
    export.set_defaults(handler=_export)

    watch = commands.add_parser("watch", help="stream telemetry (topics match by prefix)")
    watch.add_argument("topics", nargs="*", default=[""])
    watch.add_argument("--count", type=int, default=0, help="stop after N messages (0: never)")
    watch.set_defaults(handler=_watch)
    return parser


def _client(args: argparse.Namespace) -> Client:
    return Client(args.endpoint, timeout_s=args.timeout, lease=args.lease)


def _lease(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.action == "acquire":
            result = client.call("lease.acquire", holder=args.holder, ttl_s=args.ttl)
            text = f"export LABD_LEASE={result['token']}  # held by {result['holder']}"
        elif args.action == "release":
            result = client.call("lease.release", lease=args.lease)
            text = "released"
        else:
            result = client.call("lease.status")
            text = f"held by {result['holder']}" if result["holder"] else "free"
    print(json.dumps(result) if args.json else text)
    return 0


def _soliton(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.action == "start":
            status = client.call("soliton.start", sequence=args.sequence)
        elif args.action == "stop":
            status = client.call("soliton.stop")
        else:
            status = client.call("soliton.status")
    if args.json:
        print(json.dumps(status))
        return 0
    print(f"state {status['state']} ({status['reason']})")
    for key in ("soliton_number", "comb_power_mw", "spacing_ghz", "bandwidth_3db_thz",
                "lines_20db", "locked", "sequence"):
        print(f"  {key:<18} {status[key]}")
    return 0


def _qkd(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.action == "start":
            channels = None if args.channels is None else [{"channel": c} for c in args.channels]
            status = client.call("qkd.start", **({} if channels is None else
                                                 {"channels": channels}))
        else:
            status = client.call(f"qkd.{args.action}")
    if args.json:
        print(json.dumps(status))
        return 0
    print("running" if status["running"] else "stopped")
    for c in status["channels"]:
        if c["qber"] is None:
            print(f"  C{c['channel']} {c['system']}: no window counted yet {c['error'] or ''}")
            continue
        print(f"  C{c['channel']} {c['system']}: QBER {100 * c['qber']:.2f} %, gain "
              f"{c['gain']:.3g}, sifted {c['sifted_bps'] / 1e3:.1f} kbps, SKR "
              f"{c['skr_bps'] / 1e3:.1f} kbps (asymptotic {c['skr_asymptotic_bps'] / 1e3:.1f}) "
              f"over {c['block_s']:.0f} s")
    return 0


def _sequence(args: argparse.Namespace) -> int:
    if args.action == "run":
        if args.file is None:
            print("labctl sequence run: name the sequence FILE", file=sys.stderr)
            return 2
        try:
            sequence = load_sequence(args.file)
        except SequenceError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 1
        if args.dry_run:
            print(plan(sequence))
            return 0
        with _client(args) as client:
            started = client.call("sequence.run", name=args.file.name,
                                  text=args.file.read_text())
        print(json.dumps(started) if args.json else started["plan"])
        return 0
    with _client(args) as client:
        status = client.call("sequence.abort" if args.action == "abort" else "sequence.status")
    print(json.dumps(status) if args.json else
          f"running: {status['running']}; last: {status['last']}")
    return 0


def _abort(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.call("safety.abort", reason=args.reason)
    if args.json:
        print(json.dumps(result))
    else:
        for step in result["steps"]:
            print(f"{step['instrument']:<12} {'safe' if step['ok'] else step['error']}")
    return 0


def _call(args: argparse.Namespace) -> int:
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        print(f"labctl: params are not JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(params, dict):
        print("labctl: params must be a JSON object", file=sys.stderr)
        return 2
    with _client(args) as client:
        result = client.call(args.method, **params)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        instruments = client.call("station.list")["instruments"]
    if args.json:
        print(json.dumps(instruments))
        return 0
    for inst in instruments:
        state = "connected" if inst["connected"] else (inst["last_error"] or "disconnected")
        print(f"{inst['name']:<12} {inst['role']:<12} {inst['model']:<20} {state}")
    return 0


def _export(args: argparse.Namespace) -> int:
    try:
        data = read_run(args.database, args.run)
        out = args.out or Path(f"run-{args.run}" + (".h5" if args.format == "hdf5" else ""))
        (export_hdf5 if args.format == "hdf5" else export_csv)(data, out)
    except ExportError as exc:
        print(f"labctl export: {exc}", file=sys.stderr)
        return 1
    topics = ", ".join(sorted(data["telemetry"])) or "none"
    print(f"run {args.run} -> {out}: {len(data['commands'])} commands, topics {topics}, "
          f"{len(data['traces'])} traces")
    return 0


def _watch(args: argparse.Namespace) -> int:
    stream = Subscription(args.telemetry, tuple(args.topics))
    for received, (topic, message) in enumerate(stream, 1):
        if args.json:
            print(json.dumps({"topic": topic, **message}), flush=True)
        else:
            fields = " ".join(f"{k}={v}" for k, v in message.items() if k not in ("t", "seq"))
            print(f"{message['t']:.3f} {topic} #{message['seq']} {fields}", flush=True)
        if received == args.count:
            break
    return 0
