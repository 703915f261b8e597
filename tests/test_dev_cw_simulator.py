"""`rflow dev`'s ConnectWise simulator part: keys kept in the data dir, the connection file, ports, and
`--no-cw-simulator` (the whole stack with the simulator runs in tests/test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cli.dev import DevStack


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    lines = (data_dir / "secrets.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, cw_simulator: bool = True, cw_port: int | None = None,
           ) -> tuple[DevStack, list[str], list[str]]:
    """A DevStack whose children are only recorded; (stack, what it said, what it spawned)."""
    from cli import dev
    from core.config import Settings

    said: list[str] = []
    spawned: list[str] = []
    monkeypatch.setattr(dev, "say", said.append)
    stack = dev.DevStack(Settings(dev_mode=True), dev.DevOptions(
        host="127.0.0.1", api_port=1, temporal_port=2, ui_port=3, data_dir=tmp_path, timeout_s=1,
        cw_simulator=cw_simulator, cw_port=cw_port))
    monkeypatch.setattr(stack, "_spawn", spawned.append)
    return stack, said, spawned


def test_dev_starts_the_cw_simulator_with_keys_kept_in_the_data_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import dev, dev_cw

    monkeypatch.setattr(dev_cw, "port_in_use", lambda host, port: False)
    stack, said, spawned = _stack(tmp_path, monkeypatch)
    stack._start_cw_simulator()
    path = tmp_path / "cw-simulator-connection.json"
    assert spawned == ["cw-simulator"] and path.stat().st_mode & 0o777 == 0o600
    body = json.loads(path.read_text())
    keys = _dev_secrets(tmp_path)
    assert body == {"provider": "connectwise", "site_url": "http://127.0.0.1:8123", "company_id": "rflowdev",
                    "public_key": keys["CW_SIM_PUBLIC_KEY"], "private_key": keys["CW_SIM_PRIVATE_KEY"],
                    "client_id": keys["CW_SIM_CLIENT_ID"]}
    secret_values = [keys[name] for name in ("CW_SIM_PUBLIC_KEY", "CW_SIM_PRIVATE_KEY", "CW_SIM_CLIENT_ID")]
    assert said[-1] == f"starting the ConnectWise simulator on http://127.0.0.1:8123 (connection body in {path})"
    assert not any(value in line for line in said for value in secret_values)
    # The keys reach the simulator through its environment only: not argv (which ps shows), not the API's.
    assert not set(secret_values) & set(dev_cw.argv(8123))
    assert all(dev_cw.child_env(stack.cw_credentials)[name] == keys[name] for name in stack.cw_credentials)
    assert not any(name.startswith("CW_SIM_") for name in stack._child_env())

    # The next start keeps the keys; a taken default port moves; an explicitly taken one is refused.
    monkeypatch.setattr(dev_cw, "port_in_use", lambda host, port: port == 8123)
    again, _, _ = _stack(tmp_path, monkeypatch)
    again._start_cw_simulator()
    assert again.cw_credentials == stack.cw_credentials and again.cw_port not in (None, 8123)
    assert json.loads(path.read_text())["site_url"] == f"http://127.0.0.1:{again.cw_port}"
    monkeypatch.setattr(dev, "port_in_use", lambda host, port: port == 8123)
    refused, _, _ = _stack(tmp_path, monkeypatch, cw_port=8123)
    with pytest.raises(dev.StartupError, match="port 8123 is already in use; stop what holds it or pass --cw-port"):
        refused._refuse_busy_ports()


def test_no_cw_simulator_starts_none_and_drops_a_stale_connection_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import _parser

    args = _parser().parse_args(["dev", "--no-cw-simulator"])
    assert args.cw_simulator is False and args.cw_port is None
    (tmp_path / "cw-simulator-connection.json").write_text("{}")  # from an earlier run with the simulator
    stack, said, spawned = _stack(tmp_path, monkeypatch, cw_simulator=False)
    stack._start_cw_simulator()
    assert spawned == [] and stack.cw_port is None
    assert said == ["no ConnectWise simulator (--no-cw-simulator)"]
    assert not (tmp_path / "cw-simulator-connection.json").exists()
