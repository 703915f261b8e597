"""The "ready" table `rflow dev` prints: where each part runs and where its files are (never a secret's value)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cli import dev_psa
from cli.mail_sink import DEFAULT_HOST as MAIL_HOST
from core.config import SECRETS_FILE

if TYPE_CHECKING:
    from cli.dev import DevStack


def summary(stack: DevStack, elapsed: float) -> str:
    """The table, headed by how long startup took."""
    s, data_dir = stack.settings, stack.data_dir
    db_where = "embedded, data in " + str(data_dir / "postgres") if stack.postgres else "DATABASE_URL"
    if stack.mail_port is not None:
        mail = f"{stack.mail_dir}/ (local SMTP sink on {MAIL_HOST}:{stack.mail_port}; a line per message here)"
    else:
        mail = f"sent through the SMTP server {s.smtp_host}:{s.smtp_port} (SMTP_HOST/SMTP_PORT)"
    psa_rows = []
    for spec in dev_psa.SIMULATORS:  # the file holds the keys; the terminal never shows them
        sim = stack.psa.get(spec.name)
        psa_rows.append((spec.label, f"no simulator ({dev_psa.off_flag(spec, stack.opt)})" if sim is None else
                         f"simulator at {sim.url}, demo ticket {dev_psa.DEMO_TICKET_ID}; "
                         f"POST /api/v1/psa/connections -d @{data_dir / spec.connection_file}"))
    workers = stack.workers
    logs = ["api", "worker" if len(workers) == 1 else "worker-<i>", "temporal",
            *(["mail"] if stack.mail_port is not None else []), *stack.psa]
    # With --workers N only the first serves the SDK's metrics (cli/dev_workers.metrics_address).
    worker_metrics = (f"http://{stack.worker_metrics_address}/metrics ({workers[0]})" if stack.worker_metrics_address
                      else "worker off (WORKER_METRICS_ADDRESS empty)")
    named = workers if len(workers) <= 3 else [workers[0], "…", workers[-1]]
    worker_logs = ", ".join(name if name == "…" else f"logs/{name}.log" for name in named)
    worker_row = (f"1 process (more with --workers N), log in {worker_logs}" if len(workers) == 1 else
                  f"{len(workers)} processes (--workers), logs in {worker_logs}; SDK metrics from {workers[0]} only")
    metrics = (f"{stack.api_url}/metrics (API) · {worker_metrics} · "
               f"http://{stack.opt.connect_host}:{stack.temporal_metrics_port}/metrics (Temporal)")
    rows = [
        ("API", stack.api_url),
        ("API docs", f"{stack.api_url}/docs"),
        ("Metrics", metrics),
        ("Temporal UI", f"http://{stack.opt.connect_host}:{stack.opt.ui_port}"),
        ("Temporal", f"{stack.temporal_address} (namespace {s.temporal_namespace}, "
                     f"task queue {s.temporal_task_queue})"),
        ("Database", f"{stack.database_url} ({db_where})"),
        ("Workers", worker_row),
        ("Mail", mail),
        *psa_rows,
        ("Data dir", f"{data_dir} (logs: {', '.join(f'logs/{name}.log' for name in logs)})"),
        ("Secrets", f"{data_dir / SECRETS_FILE} (JWT_SECRET, CREDENTIALS_KEY, BILLING_SECRET"
                    f"{''.join(f', {sim.spec.env_prefix}*' for sim in stack.psa.values())}; mode 0600)"),
        ("Processes", " ".join(f"{k}={v}" for k, v in stack.pids().items() if v)),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"  {label:<{width}}  {value}" for label, value in rows]
    return "\n".join(["", f"rflow: ready in {elapsed:.1f} s — Ctrl-C stops everything (a crashed worker, API, "
                          "mail sink or simulator is restarted)", *lines, ""])
