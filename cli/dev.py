"""`rflow dev`: PostgreSQL, Temporal (+ Web UI), the worker(s), the API, a mail sink and the PSA simulators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from cli import dev_pids, dev_psa
from cli.database import DEV_DATABASE, EmbeddedPostgres, ensure_database, migrate
from cli.dev_options import DevOptions, StartupError, refuse_busy_ports
from cli.dev_secrets import load_or_create
from cli.dev_summary import summary
from cli.dev_workers import all_polling, describe, is_worker, metrics_address, worker_names
from cli.mail_sink import DEFAULT_HOST as MAIL_HOST
from cli.mail_sink import DEFAULT_PORT as DEFAULT_MAIL_PORT
from cli.processes import (
    Child,
    command_succeeds,
    describe_exit,
    free_port,
    http_status,
    port_in_use,
    reachable,
    stop_children,
    task_queue_pollers,
)
from core.binaries import temporal_cli_path
from core.config import PROJECT_ROOT, Settings
from core.temporal import dynamic_config_cli_args, search_attribute_cli_args

__all__ = ["DevOptions", "DevStack", "StartupError", "run_dev", "say"]

# They hold no state of their own (the mail sink's messages are files; a simulator's tickets are a demo that
# starts over): a crash costs a restart, not the stack. So do the worker processes (cli/dev_workers.is_worker).
RESTARTABLE = ("api", "mail", *dev_psa.NAMES)
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0  # a child up this long has recovered: its next crash is restarted after FIRST_BACKOFF_S
MAIL_DIR = "mail"  # inside the data dir


class _StopRequested(Exception):
    pass


class _ChildDied(Exception):
    pass


def say(message: str) -> None:
    """Progress for the person at the terminal."""
    print(f"rflow: {message}", flush=True)


class DevStack:
    """Starts the parts in dependency order, supervises them, and stops them in reverse order."""

    def __init__(self, settings: Settings, options: DevOptions) -> None:
        self.settings = settings
        self.opt = options
        self.data_dir = options.data_dir.resolve()
        self.children: dict[str, Child] = {}
        self.postgres: EmbeddedPostgres | None = None
        self.database_url = ""
        self.stop_signal: str | None = None
        self.force = False
        self.secrets: dict[str, str] = {}
        self.supervising = False  # before the stack is ready a dying part is a startup failure, not restarted
        self.backoff: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}
        self.mail_port: int | None = None  # the local SMTP sink's port; None when a real SMTP server is used
        self.psa: dict[str, dev_psa.Running] = {}  # the PSA simulators this run starts, by child name
        self.temporal_metrics_port = 0  # Temporal's own /metrics (chosen when it starts)
        self.worker_metrics_address = ""  # the first worker's (the Temporal SDK's) /metrics; "" when turned off
        self.workers = worker_names(options.workers)

    # --- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, wait for a stop signal or a crash, stop everything; the exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        started = time.monotonic()
        code = 0
        try:
            self._start()
            dev_pids.write(self.data_dir, self.pids())
            print(summary(self, time.monotonic() - started), flush=True)
            self.supervising = True
            while True:
                self._check()
                time.sleep(0.2)
        except _StopRequested:
            say(f"{self.stop_signal} received; stopping")
        except _ChildDied as exc:
            say(f"{exc}; stopping the rest of the stack")
            code = 1
        except StartupError as exc:
            say(f"cannot start: {exc}")
            code = 1
        except Exception:
            if self.stop_signal is None:
                raise  # a bug, not a stop: the traceback matters (the finally still stops everything)
            # Ctrl-C also reaches the helpers we run in the foreground (initdb, pg_ctl) and fails them.
            say(f"{self.stop_signal} received during startup; stopping")
        finally:
            self._shutdown()
        say("stopped" if code == 0 else f"stopped after a failure (exit code {code})")
        return code

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only set flags here: every blocking step polls them, so no half-registered child is lost.
        if self.stop_signal is None:
            self.stop_signal = signal.Signals(signum).name
        else:
            self.force = True

    def _check(self) -> None:
        """Raise if a stop was requested or a part the stack cannot do without died; restart the others."""
        if self.stop_signal is not None:
            raise _StopRequested
        for child in self.children.values():
            child.pump()
        for name, child in list(self.children.items()):
            code = child.exited()
            if code is None or child.expected_exit:
                continue
            tail = child.log_tail()
            detail = f" (last lines of {child.log}):\n{tail}" if tail else ""
            died = f"{name} (pid {child.pid}) exited unexpectedly with {describe_exit(code)}"
            if not self.supervising:
                raise _ChildDied(f"{died}{detail}")
            if name not in RESTARTABLE and not is_worker(name):
                raise _ChildDied(f"{died}; the worker and the API cannot work without it{detail}")
            self._schedule_restart(name, child, died, detail)
        if self.postgres is not None and self.postgres.started and not self.postgres.alive():
            raise _ChildDied("the embedded PostgreSQL exited unexpectedly "
                             f"(see {self.postgres.pgdata / 'log'}); nothing works without the database")
        self._restart_due()

    def _schedule_restart(self, name: str, child: Child, died: str, detail: str) -> None:
        child.pump(final=True)
        child.close()
        del self.children[name]
        now = time.monotonic()
        delay = self.backoff.get(name, FIRST_BACKOFF_S)
        if now - child.started_at >= STABLE_AFTER_S:
            delay = FIRST_BACKOFF_S
        self.backoff[name] = min(delay * 2, MAX_BACKOFF_S)
        self.restart_at[name] = now + delay
        say(f"{died}; restarting it in {delay:.0f} s{detail}")

    def _restart_due(self) -> None:
        for name, when in list(self.restart_at.items()):
            if time.monotonic() >= when:
                del self.restart_at[name]
                child = self._spawn(name)
                say(f"restarted {name} (pid {child.pid})")
                dev_pids.write(self.data_dir, self.pids())

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.opt.timeout_s
        while not ready():
            self._check()
            if time.monotonic() > deadline:
                raise StartupError(f"{what} not ready after {self.opt.timeout_s:.0f} s")
            time.sleep(0.1)

    # --- starting --------------------------------------------------------------------------------

    def _start(self) -> None:
        self._refuse_second_instance()
        refuse_busy_ports(self.opt)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.secrets, notes = load_or_create(self.data_dir)
        for note in notes:
            say(note)
        self._start_mail()
        self._start_psa_simulators()
        self._start_temporal()  # boots in the background while the database starts and migrates
        self._start_database()
        self._check()
        say("waiting for Temporal")
        self._wait("Temporal", self._temporal_ready)
        if self.mail_port is not None:
            mail_port = self.mail_port
            self._wait("the local SMTP sink", lambda: port_in_use(MAIL_HOST, mail_port))
        for sim in self.psa.values():
            self._wait(f"the {sim.spec.label} simulator", sim.serving)
        say(f"starting {describe(len(self.workers))} and the API")
        for name in self.workers:
            self._spawn(name)
        self._spawn("api")
        self._wait("API /healthz", lambda: http_status(f"{self.api_url}/healthz") == 200)
        s, pids = self.settings, [self.children[name].pid for name in self.workers]  # a death here ends startup
        self._wait(f"{describe(len(pids))} polling the task queue", lambda: all_polling(pids, task_queue_pollers(
            temporal_cli_path(), self.temporal_address, s.temporal_namespace, s.temporal_task_queue)))

    def _spawn(self, name: str) -> Child:
        """Start a worker, the API, the mail sink or a simulator; output to `logs/<name>.log` and the terminal."""
        env = self._child_env()
        if is_worker(name):
            argv = [sys.executable, str(PROJECT_ROOT / "worker.py")]
            env["WORKER_METRICS_ADDRESS"] = metrics_address(name, self.worker_metrics_address)
        elif name == "api":
            argv = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                    "--host", self.opt.host, "--port", str(self.opt.api_port)]
        elif name in self.psa:  # its secrets reach it alone, through its environment
            argv, env = self.psa[name].argv(), self.psa[name].child_env()
        else:
            argv = [sys.executable, "-m", "cli.mail_sink", "--dir", str(self.mail_dir),
                    "--host", MAIL_HOST, "--port", str(self.mail_port)]
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # it needs neither the database nor a secret
        child = Child(name, argv, env=env, cwd=PROJECT_ROOT,
                      log=self.data_dir / "logs" / f"{name}.log", echo=True)
        self.children[name] = child
        return child

    def _refuse_second_instance(self) -> None:
        if (owner := dev_pids.other_owner(self.data_dir)) is not None:
            raise StartupError(f"another `rflow dev` (pid {owner}) is using {self.data_dir}; "
                               "stop it first or pass --data-dir")

    def _start_mail(self) -> None:
        """Use the SMTP server the user configured if it answers; otherwise start the local sink."""
        s = self.settings
        where = f"{s.smtp_host}:{s.smtp_port}"
        if {"smtp_host", "smtp_port"} & s.model_fields_set:  # set in the environment or .env
            if reachable(s.smtp_host, s.smtp_port):
                say(f"sending mail through the SMTP server {where} (SMTP_HOST/SMTP_PORT); no local mail sink")
                return
            say(f"nothing answers at {where} (SMTP_HOST/SMTP_PORT): mail goes to a local SMTP sink instead")
        # Not 1025 when something else holds it (another `rflow dev`'s sink would file our mail in its data dir).
        port = self.opt.mail_port or DEFAULT_MAIL_PORT
        if self.opt.mail_port is None and port_in_use(MAIL_HOST, port):  # like the simulators: a choice stays
            port = free_port(MAIL_HOST)
        self.mail_port = port
        say(f"starting a local SMTP sink on {MAIL_HOST}:{port} (messages saved in {self.mail_dir})")
        self._spawn("mail")

    def _start_psa_simulators(self) -> None:
        """Start the PSA simulators and write the connection bodies that point at them (unless turned off)."""
        self.psa, notes = dev_psa.start(self.data_dir, self.opt, claimed=self.opt.stack_ports)
        for note in notes:
            say(note)
        for name in self.psa:
            self._spawn(name)

    def _start_temporal(self) -> None:
        sqlite = self.data_dir / "temporal.sqlite"
        self.temporal_metrics_port = free_port(self.opt.connect_host)  # otherwise random, and nobody could know it
        self.worker_metrics_address = self._worker_metrics_address()
        say(f"starting Temporal on {self.temporal_address} (Web UI :{self.opt.ui_port}, state in {sqlite})")
        argv = [
            temporal_cli_path(), "server", "start-dev",
            "--ip", self.opt.host, "--port", str(self.opt.temporal_port), "--ui-port", str(self.opt.ui_port),
            "--db-filename", str(sqlite), "--log-level", "warn", *search_attribute_cli_args(),
            "--metrics-port", str(self.temporal_metrics_port),
            *dynamic_config_cli_args(),
        ]
        if self.settings.temporal_namespace != "default":
            argv += ["--namespace", self.settings.temporal_namespace]
        self.children["temporal"] = Child("temporal", argv, env=dict(os.environ), cwd=self.data_dir,
                                          log=self.data_dir / "logs" / "temporal.log")

    def _start_database(self) -> None:
        if self.settings.database_url:
            self.database_url = self.settings.database_url
            say(f"using DATABASE_URL ({self.database_url.rsplit('@', 1)[-1]})")
        else:
            pgdata = self.data_dir / "postgres"
            say(f"starting the embedded PostgreSQL (data in {pgdata})")
            self.postgres = EmbeddedPostgres(pgdata)
            try:
                admin_url = self.postgres.start()
            except (subprocess.SubprocessError, OSError) as exc:
                self._check()  # interrupted: report the stop, not the helper it killed
                raise StartupError(f"the embedded PostgreSQL did not start ({exc}); see {pgdata / 'log'}") from exc
            self.database_url = ensure_database(admin_url, DEV_DATABASE)
        self._check()
        say("migrating the database to the newest revision")
        migrate(self.database_url)

    def _worker_metrics_address(self) -> str:
        """WORKER_METRICS_ADDRESS as set (empty: off); by default 127.0.0.1:9464, or a free port when that is taken."""
        address = self.settings.worker_metrics_address
        if not address or "worker_metrics_address" in self.settings.model_fields_set:
            return address
        host, _, port = address.rpartition(":")
        return f"{host}:{free_port(host)}" if port_in_use(host, int(port)) else address

    def _temporal_ready(self) -> bool:
        if not port_in_use(self.opt.connect_host, self.opt.temporal_port):
            return False
        return command_succeeds([temporal_cli_path(), "operator", "namespace", "describe",
                                 "--namespace", self.settings.temporal_namespace,
                                 "--address", self.temporal_address])

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.database_url,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_NAMESPACE": self.settings.temporal_namespace,
            "TEMPORAL_TASK_QUEUE": self.settings.temporal_task_queue,
            "DATA_DIR": str(self.data_dir),
            "DEV_MODE": "true",
            "PYTHONUNBUFFERED": "1",
            "WORKER_METRICS_ADDRESS": self.worker_metrics_address,
        })
        # A secret set in the environment (or .env) wins; otherwise the data dir's generated one.
        explicit = {"JWT_SECRET": self.settings.jwt_secret, "CREDENTIALS_KEY": self.settings.credentials_key,
                    "BILLING_SECRET": self.settings.billing_secret}
        env.update({name: explicit.get(name) or value for name, value in self.secrets.items()})
        if self.mail_port is not None:
            # The sink speaks plain SMTP: no login (which would need STARTTLS), even if credentials are configured.
            env.update({"SMTP_HOST": MAIL_HOST, "SMTP_PORT": str(self.mail_port),
                        "SMTP_USERNAME": "", "SMTP_PASSWORD": ""})
        return env

    # --- reporting -------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """Where the API answers."""
        return f"http://{self.opt.connect_host}:{self.opt.api_port}"

    @property
    def temporal_address(self) -> str:
        """Where Temporal's frontend answers (gRPC)."""
        return f"{self.opt.connect_host}:{self.opt.temporal_port}"

    @property
    def mail_dir(self) -> Path:
        """Where the local SMTP sink saves the messages it receives."""
        return self.data_dir / MAIL_DIR

    def pids(self) -> dict[str, int | None]:
        """Every process the stack runs, by part."""
        pids: dict[str, int | None] = {"rflow": os.getpid()}
        pids.update({name: child.pid for name, child in self.children.items()})
        pids["postgres"] = self.postgres.pid if self.postgres else None
        return pids

    # --- stopping --------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        # Reverse dependency order: the API and the workers first (each drains its in-flight tasks while
        # Temporal is still up; together, so N take no longer than one), then Temporal, then the database.
        front = [c for name, c in self.children.items() if name == "api" or is_worker(name)]
        if front:
            say(f"stopping the API and {describe(len(self.workers))}")
            stop_children(front, timeout=15, force=lambda: self.force)
        # The mail sink and the simulators stop after the worker: what it sends while draining still lands.
        names = {"temporal": "Temporal", "mail": "the mail sink", **dev_psa.described(self.psa)}
        back = {name: c for name, c in self.children.items() if name in names}
        if back:
            parts = [names[n] for n in back]
            say("stopping " + " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts))
            stop_children(list(back.values()), timeout=10, force=lambda: self.force)
        if self.postgres is not None:
            say("stopping the embedded PostgreSQL")
            try:
                self.postgres.stop()
            except Exception as exc:  # report and go on: the pids file must still be removed
                say(f"could not stop the embedded PostgreSQL cleanly: {exc}")
        dev_pids.remove_if_ours(self.data_dir)


def run_dev(settings: Settings, options: DevOptions) -> int:
    """Run the whole stack until Ctrl-C/SIGTERM (exit 0), or until Temporal or the database dies (exit 1)."""
    return DevStack(settings, options).run()
