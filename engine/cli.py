"""The ``tdsync`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import TdsyncError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _command_inspect(args: argparse.Namespace) -> int:
    from engine.inspect import decode_file, print_text, to_json

    failures = 0
    documents = []
    for name in args.files:
        path = Path(name)
        try:
            decoded, kind, _sidecar = decode_file(path, args.raw_type, args.raw_block)
        except TdsyncError as exc:
            print(f"tdsync inspect: {exc}", file=sys.stderr)
            failures += 1
            continue
        if args.json:
            documents.append({"file": str(path), **to_json(decoded, kind)})
        else:
            print_text(path, decoded, kind, sys.stdout, args.rows)
    if args.json and documents:
        json.dump(documents[0] if len(documents) == 1 else documents, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return EXIT_FAILURE if failures else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdsync", description="Active-active replication for TDengine.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    inspect = commands.add_parser(
        "inspect", help="show what a raw TMQ message or raw block file holds",
        description="Decode raw TMQ messages (tmq_get_raw bytes) or raw blocks and print them. "
                    "The kind comes from --raw-type/--raw-block, else from NAME.json beside NAME.bin.")
    inspect.add_argument("files", nargs="+", metavar="FILE")
    kind = inspect.add_mutually_exclusive_group()
    kind.add_argument("--raw-type", type=int, metavar="N",
                      help="tmq_raw_data.raw_type of the bytes (2, 4, 6, 515, 517, 519, 531, 533, 535, 579)")
    kind.add_argument("--raw-block", action="store_true", help="the bytes are one raw block")
    inspect.add_argument("--json", action="store_true", help="print the full decoded content as JSON")
    inspect.add_argument("--rows", type=int, default=5, metavar="N", help="rows to show per block (default 5)")
    inspect.set_defaults(handler=_command_inspect)

    serve = commands.add_parser(
        "serve", help="run the supervisor: one worker process per source vgroup of every running task",
        description="Apply the desired state of the state directory: run, restart and stop the replication "
                    "workers, and write back what happened. Stops gracefully on SIGTERM/SIGINT. Speaks systemd's "
                    "notify protocol when $NOTIFY_SOCKET is set.")
    serve.add_argument("--config", metavar="FILE",
                       help="configuration file (default: $TDSYNC_CONFIG, else /etc/tdsync/tdsync.toml if present)")
    serve.add_argument("--state-dir", metavar="DIR",
                       help="state directory (wins over $TDSYNC_STATE_DIR and the file's state_dir)")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error", "critical"),
                       help="wins over the file's log_level")
    serve.add_argument("--check-config", action="store_true",
                       help="validate the configuration and exit: 0 valid, 1 invalid, 2 unreadable")
    serve.set_defaults(handler=_command_serve)

    sandbox = commands.add_parser(
        "sandbox", add_help=False, help="run the embedded TDengine peer (taosAdapter WebSocket protocol)",
        description="tdsync sandbox --listen 127.0.0.1:6041 --data-dir DIR [--user root --password taosdata]")
    sandbox.add_argument("arguments", nargs=argparse.REMAINDER)
    sandbox.set_defaults(handler=_command_sandbox)

    from engine.replica_cli import register as register_replica  # tdsync replica VERB ...

    register_replica(commands)
    return parser


def _command_serve(args: argparse.Namespace) -> int:
    from engine.replication.supervisor import cli_serve

    return cli_serve(args)


def _command_sandbox(args: argparse.Namespace) -> int:
    from engine.sandbox.server import cli_main

    return cli_main(args.arguments)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sandbox"]:               # its own parser owns every option, --help included
        args = argparse.Namespace(command="sandbox", arguments=argv[1:], handler=_command_sandbox)
    else:
        args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except TdsyncError as exc:
        print(f"tdsync {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
