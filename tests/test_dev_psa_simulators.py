"""`rflow dev`'s PSA simulators (ConnectWise, Autotask, HaloPSA): secrets kept in the data dir and never shown, the
connection files and what the API makes of them, ports, the flags that turn them off, and each simulator run from its
spec accepting its file's credentials over HTTP (the whole stack with them runs in tests/test_cli.py)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import TypeAdapter

from api.schemas.psa import PsaConnectionCreate

if TYPE_CHECKING:
    from cli.dev import DevStack

SECRETS = {"cw-simulator": ("CW_SIM_PUBLIC_KEY", "CW_SIM_PRIVATE_KEY", "CW_SIM_CLIENT_ID"),
           "at-simulator": ("AT_SIM_SECRET", "AT_SIM_INTEGRATION_CODE"),
           "halo-simulator": ("HALO_SIM_CLIENT_SECRET",)}
NAMES = list(SECRETS)
DEFAULT_PORTS = {"cw-simulator": 8123, "at-simulator": 8124, "halo-simulator": 8125}
LABELS = {"cw-simulator": "ConnectWise", "at-simulator": "Autotask", "halo-simulator": "HaloPSA"}
CONNECTION = TypeAdapter(PsaConnectionCreate)  # what POST /api/v1/psa/connections validates its body with


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    lines = (data_dir / "secrets.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _body(data_dir: Path, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((data_dir / f"{name}-connection.json").read_text())
    return body


def _stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> tuple[DevStack, list[str], list[str]]:
    """A DevStack whose children are only recorded; (stack, what it said, what it spawned)."""
    from cli import dev
    from core.config import Settings

    said: list[str] = []
    spawned: list[str] = []
    monkeypatch.setattr(dev, "say", said.append)
    stack = dev.DevStack(Settings(dev_mode=True), dev.DevOptions(
        host="127.0.0.1", api_port=1, temporal_port=2, ui_port=3, data_dir=tmp_path, timeout_s=1, **options))
    monkeypatch.setattr(stack, "_spawn", spawned.append)
    return stack, said, spawned


def _summary_rows(stack: DevStack) -> dict[str, str]:
    from cli.dev_summary import summary

    stack.temporal_metrics_port = 40123
    rows = [line.strip().split("  ", 1) for line in summary(stack, 1.0).splitlines() if "  " in line]
    return {label: value.strip() for label, value in rows}


def test_dev_starts_three_simulators_whose_files_the_api_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 ) -> None:
    from cli import dev_psa

    monkeypatch.setattr(dev_psa, "port_in_use", lambda host, port: False)
    stack, said, spawned = _stack(tmp_path, monkeypatch)
    stack._start_psa_simulators()
    assert spawned == NAMES and list(stack.psa) == NAMES
    keys = _dev_secrets(tmp_path)
    assert {name for names in SECRETS.values() for name in names} <= set(keys)
    bodies = {name: _body(tmp_path, name) for name in NAMES}
    assert bodies == {
        "cw-simulator": {"provider": "connectwise", "site_url": "http://127.0.0.1:8123", "company_id": "rflowdev",
                         "public_key": keys["CW_SIM_PUBLIC_KEY"], "private_key": keys["CW_SIM_PRIVATE_KEY"],
                         "client_id": keys["CW_SIM_CLIENT_ID"]},
        "at-simulator": {"provider": "autotask", "username": "rflow-api@rflowdev.example",
                         "secret": keys["AT_SIM_SECRET"], "integration_code": keys["AT_SIM_INTEGRATION_CODE"],
                         "discovery_url": "http://127.0.0.1:8124/atservicesrest"},
        "halo-simulator": {"provider": "halopsa", "api_url": "http://127.0.0.1:8125/api", "client_id": "rflowdev-api",
                           "client_secret": keys["HALO_SIM_CLIENT_SECRET"], "tenant": "rflowdev"},
    }
    for name, body in bodies.items():
        assert (tmp_path / f"{name}-connection.json").stat().st_mode & 0o777 == 0o600
        accepted = CONNECTION.validate_python(body)  # no 422: every field is one the API takes, none missing
        assert accepted.model_dump(exclude_none=True) == body  # and none ignored
    secrets_file = tmp_path / "secrets.env"
    assert said == [line for n in NAMES for line in (
        f"generated {', '.join(SECRETS[n])} into {secrets_file}",
        f"starting the {LABELS[n]} simulator on http://127.0.0.1:{DEFAULT_PORTS[n]} "
        f"(connection body in {tmp_path / f'{n}-connection.json'})")]
    assert secrets_file.stat().st_mode & 0o777 == 0o600

    # The secrets reach each simulator through its own environment only: not argv (which ps shows), not the
    # API's or the worker's environment, not a line rflow prints, not the summary.
    secret_values = [keys[name] for names in SECRETS.values() for name in names]
    assert not any(value in line for line in said for value in secret_values)
    for name, sim in stack.psa.items():
        assert not set(secret_values) & set(sim.argv())
        assert all(sim.child_env()[key] == keys[key] for key in SECRETS[name])
        other = [key for n, ks in SECRETS.items() if n != name for key in ks]
        assert not any(key in sim.child_env() for key in other)  # nor another simulator's
    assert not any("_SIM_" in name for name in stack._child_env())
    rows = _summary_rows(stack)
    assert not any(value in row for row in rows.values() for value in secret_values)
    for name in NAMES:
        assert rows[LABELS[name]] == (f"simulator at http://127.0.0.1:{DEFAULT_PORTS[name]}, demo ticket 48291; "
                                      f"POST /api/v1/psa/connections -d @{tmp_path / f'{name}-connection.json'}")
    assert "CW_SIM_*, AT_SIM_*, HALO_SIM_*; mode 0600" in rows["Secrets"]
    assert all(f"logs/{name}.log" in rows["Data dir"] for name in NAMES)


def test_secrets_are_kept_across_restarts_and_taken_default_ports_move(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import dev_psa

    monkeypatch.setattr(dev_psa, "port_in_use", lambda host, port: False)
    first, said, _ = _stack(tmp_path, monkeypatch)
    first._start_psa_simulators()
    assert said[0].startswith("generated CW_SIM_PUBLIC_KEY, CW_SIM_PRIVATE_KEY, CW_SIM_CLIENT_ID into ")
    keys = _dev_secrets(tmp_path)

    # Something else holds the three default ports (another `rflow dev`): each moves to a port of its own.
    monkeypatch.setattr(dev_psa, "port_in_use", lambda host, port: port in DEFAULT_PORTS.values())
    again, said, _ = _stack(tmp_path, monkeypatch)
    again._start_psa_simulators()
    assert not any(line.startswith("generated ") for line in said)  # nothing new to generate
    assert _dev_secrets(tmp_path) == keys
    assert {n: s.credentials for n, s in again.psa.items()} == {n: s.credentials for n, s in first.psa.items()}
    ports = {name: sim.port for name, sim in again.psa.items()}
    assert len(set(ports.values())) == 3 and not set(ports.values()) & set(DEFAULT_PORTS.values())
    assert _body(tmp_path, "cw-simulator")["site_url"] == f"http://127.0.0.1:{ports['cw-simulator']}"
    assert _body(tmp_path, "at-simulator")["discovery_url"] == f"http://127.0.0.1:{ports['at-simulator']}/atservicesrest"
    assert _body(tmp_path, "halo-simulator")["api_url"] == f"http://127.0.0.1:{ports['halo-simulator']}/api"

    # A default port does not take one asked for elsewhere in the stack, even while that one is still free.
    monkeypatch.setattr(dev_psa, "port_in_use", lambda host, port: False)
    stack, _, _ = _stack(tmp_path, monkeypatch, at_port=8123, halo_port=9125)
    stack._start_psa_simulators()
    assert stack.psa["at-simulator"].port == 8123 and stack.psa["halo-simulator"].port == 9125
    assert stack.psa["cw-simulator"].port not in (8123, 9125, 8124)


@pytest.mark.parametrize("flag", ["cw_port", "at_port", "halo_port"])
def test_a_taken_port_asked_for_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str) -> None:
    from cli import dev, dev_options

    monkeypatch.setattr(dev_options, "port_in_use", lambda host, port: port == 9100)
    stack, _, spawned = _stack(tmp_path, monkeypatch, **{flag: 9100})
    dashed = "--" + flag.replace("_", "-")
    with pytest.raises(dev.StartupError, match=f"port 9100 is already in use; stop what holds it or pass {dashed}$"):
        dev_options.refuse_busy_ports(stack.opt)
    twice, _, _ = _stack(tmp_path, monkeypatch, **{flag: 1})  # the API's port (1 in _stack)
    with pytest.raises(dev.StartupError, match=f"port 1 is asked for twice \\(--api-port and {dashed}\\)"):
        dev_options.refuse_busy_ports(twice.opt)
    assert spawned == []
    # Turned off, its port is not checked.
    off, _, _ = _stack(tmp_path, monkeypatch, psa_simulators=False, **{flag: 9100})
    dev_options.refuse_busy_ports(off.opt)


def test_a_mail_port_asked_for_is_kept_or_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import dev, dev_options

    monkeypatch.setattr(dev_options, "port_in_use", lambda host, port: port == 9100)
    taken, _, _ = _stack(tmp_path, monkeypatch, mail_port=9100)
    with pytest.raises(dev.StartupError, match=r"port 9100 is already in use; stop what holds it or pass --mail-port$"):
        dev_options.refuse_busy_ports(taken.opt)
    free, _, spawned = _stack(tmp_path, monkeypatch, mail_port=9101)
    dev_options.refuse_busy_ports(free.opt)
    monkeypatch.setattr(dev, "port_in_use", lambda host, port: True)  # even a busy default would have moved
    free._start_mail()
    assert free.mail_port == 9101 and spawned == ["mail"]


def test_the_flags_parse_into_the_options() -> None:
    from cli.main import _parser

    args = _parser().parse_args(["dev", "--at-port", "9124", "--halo-port", "9125", "--cw-port", "9123"])
    assert (args.cw_port, args.at_port, args.halo_port, args.cw_simulator, args.psa_simulators) == (
        9123, 9124, 9125, True, True)
    args = _parser().parse_args(["dev", "--no-psa-simulators"])
    assert args.psa_simulators is False and args.cw_simulator is True


def test_no_psa_simulators_starts_none_and_drops_stale_connection_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:  # from an earlier run with the simulators
        (tmp_path / f"{name}-connection.json").write_text("{}")
    stack, said, spawned = _stack(tmp_path, monkeypatch, psa_simulators=False)
    stack._start_psa_simulators()
    assert spawned == [] and stack.psa == {}
    assert said == ["no PSA simulators (--no-psa-simulators)"]
    assert not list(tmp_path.glob("*-connection.json")) and not (tmp_path / "secrets.env").exists()
    rows = _summary_rows(stack)
    assert [rows[label] for label in LABELS.values()] == ["no simulator (--no-psa-simulators)"] * 3
    assert "_SIM_" not in rows["Secrets"] and "simulator.log" not in rows["Data dir"]


def test_no_cw_simulator_leaves_the_other_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import dev_psa

    monkeypatch.setattr(dev_psa, "port_in_use", lambda host, port: False)
    (tmp_path / "cw-simulator-connection.json").write_text("{}")
    stack, said, spawned = _stack(tmp_path, monkeypatch, cw_simulator=False)
    stack._start_psa_simulators()
    assert spawned == ["at-simulator", "halo-simulator"]
    assert said[0] == "no ConnectWise simulator (--no-cw-simulator)"
    assert not (tmp_path / "cw-simulator-connection.json").exists()
    assert _summary_rows(stack)["ConnectWise"] == "no simulator (--no-cw-simulator)"
    assert not any(name.startswith("CW_SIM_") for name in _dev_secrets(tmp_path))


# --- each simulator, run from its spec, accepts the credentials its file holds ---------------------------------------

def _ticket(name: str, body: dict[str, Any]) -> Any:
    """Demo ticket 48291 read with the body's credentials the way each PSA wants them."""
    with httpx.Client(timeout=10) as http:
        if name == "cw-simulator":
            site = body["site_url"]
            codebase = http.get(f"{site}/login/companyinfo/{body['company_id']}").json()["Codebase"]
            got = http.get(f"{site}/{codebase}apis/3.0/service/tickets/48291", headers={"clientId": body["client_id"]},
                           auth=(f"{body['company_id']}+{body['public_key']}", body["private_key"]))
            return got.raise_for_status().json()["id"]
        if name == "at-simulator":
            zone = http.get(f"{body['discovery_url']}/v1.0/zoneInformation", params={"user": body["username"]})
            got = http.get(f"{zone.raise_for_status().json()['url']}V1.0/Tickets/48291", headers={
                "ApiIntegrationCode": body["integration_code"], "UserName": body["username"], "Secret": body["secret"]})
            return got.raise_for_status().json()["item"]["id"]
        host = body["api_url"].removesuffix("/api")
        token = http.post(f"{host}/auth/token", params={"tenant": body["tenant"]}, data={
            "grant_type": "client_credentials", "client_id": body["client_id"],
            "client_secret": body["client_secret"], "scope": "all"})
        got = http.get(f"{body['api_url']}/Tickets/48291",
                       headers={"Authorization": f"Bearer {token.raise_for_status().json()['access_token']}"})
        return got.raise_for_status().json()["id"]


@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The three simulators as `rflow dev` starts them (argv and environment from the spec), on free ports."""
    from cli import dev_psa
    from cli.processes import free_port

    procs: dict[str, subprocess.Popen[bytes]] = {}
    running: dict[str, dev_psa.Running] = {}
    try:
        for spec in dev_psa.SIMULATORS:
            port, credentials, _ = spec.prepare(tmp_path, free_port())
            running[spec.name] = sim = dev_psa.Running(spec, port, credentials)
            procs[spec.name] = subprocess.Popen(sim.argv(), env=sim.child_env(), stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not all(sim.serving() for sim in running.values()):
            assert all(p.poll() is None for p in procs.values()), {n: p.poll() for n, p in procs.items()}
            assert time.monotonic() < deadline, "the simulators did not answer /_simulator/state"
            time.sleep(0.1)
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=10)


def test_each_simulator_accepts_its_files_credentials_and_prints_no_secret(
        tmp_path: Path, simulators: dict[str, subprocess.Popen[bytes]]) -> None:
    for name in NAMES:
        body = _body(tmp_path, name)
        assert _ticket(name, body) == 48291, name
        secret = next(key for key in ("private_key", "secret", "client_secret") if key in body)
        wrong = {**body, secret: "not-it"}  # and the simulator does check it
        with pytest.raises(httpx.HTTPStatusError):
            _ticket(name, wrong)
    keys = _dev_secrets(tmp_path)
    for proc in simulators.values():
        proc.terminate()
    printed = b"".join(proc.communicate(timeout=10)[0] for proc in simulators.values()).decode()
    assert "simulator for" in printed  # each announced itself, with its login name only
    assert not any(keys[key] in printed for names in SECRETS.values() for key in names)
