"""docker-compose.yml checked where `compose up` cannot run: against the compose-spec schema and against the code.

The schema is vendored (compose-spec.json beside this file, from github.com/compose-spec/compose-spec,
schema/compose-spec.json, Apache-2.0).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema_rs
import pytest
import yaml

from cli.main import _parser, _production_settings
from core.config import PROJECT_ROOT, Settings
from workflows.contracts.search_attributes import CUSTOM_SEARCH_ATTRIBUTES

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
APP_SERVICES = ("migrate", "api", "worker")
# The variables a user must export (`${X:?...}`): stand-ins of the right shape, never real secrets.
REQUIRED_FROM_HOST = {"JWT_SECRET": "s" * 48, "CREDENTIALS_KEY": "A" * 43 + "="}
# Read by something other than Settings: uvicorn, prometheus-client, core/logging.py before the settings load.
NOT_SETTINGS = {"FORWARDED_ALLOW_IPS", "PROMETHEUS_MULTIPROC_DIR", "LOG_LEVEL"}

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))")


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ${X}, ${X:-default}, ${X-default}, ${X:?error}, ${X?error}, $X and $$."""
    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        if (op in (":-", ":?") and not value) or (op in ("-", "?") and value is None):
            if op.endswith("?"):
                raise AssertionError(f"compose would refuse to start: {arg}")
            return arg
        return value or ""
    return _VARIABLE.sub(one, value)


def _resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _resolve(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, env) for v in node]
    return _interpolate(node, env) if isinstance(node, str) else node


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as `docker compose config` sees it with only the required variables exported."""
    return dict(_resolve(yaml.safe_load(COMPOSE.read_text()), REQUIRED_FROM_HOST))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment inside its container (a name without a value passes the host's through)."""
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so services can extend the shared one"
    return {k: str(v) if v is not None else REQUIRED_FROM_HOST[k] for k, v in env.items()
            if v is not None or k in REQUIRED_FROM_HOST}


def test_the_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    assert [e.message for e in validator.iter_errors(compose)] == []
    misspelt = {**compose, "services": {**compose["services"], "api": {**compose["services"]["api"], "helthcheck": {}}}}
    assert not validator.is_valid(misspelt)  # the schema does reject what compose would


def test_a_missing_secret_stops_compose_with_a_message() -> None:
    with pytest.raises(AssertionError, match="set JWT_SECRET"):
        _resolve(yaml.safe_load(COMPOSE.read_text()), {"CREDENTIALS_KEY": "x"})


def test_temporal_setup_registers_exactly_the_search_attributes_of_the_code(compose: dict[str, Any]) -> None:
    # A missing one (RfFixStatus was) fails the workflow task that upserts it, forever: every command then 503s.
    script = compose["services"]["temporal-setup"]["command"][0]
    loop = re.search(r"for sa in ([^;]+); do\s+.*?--name \"\$sa\" --type (\w+)", script, re.S)
    assert loop, "temporal-setup no longer registers search attributes in a `for sa in ...` loop"
    assert loop.group(1).split() == [key.name for key in CUSTOM_SEARCH_ATTRIBUTES]
    assert {key.indexed_value_type.name for key in CUSTOM_SEARCH_ATTRIBUTES} == {loop.group(2).upper()}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_has_every_setting_its_command_requires(
        compose: dict[str, Any], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _environment(compose["services"][name])
    monkeypatch.chdir(tmp_path)  # no .env: only what compose sets
    with mock.patch.dict(os.environ, env, clear=True):
        settings = _production_settings(name)  # what `rflow api|worker` checks before starting
    assert isinstance(settings, Settings), settings
    services = compose["services"]
    assert (settings.database_url or "").split("@")[1].split(":")[0] in services
    assert settings.temporal_address.split(":")[0] in services
    unknown = {k for k in env if k.lower() not in Settings.model_fields} - NOT_SETTINGS
    assert not unknown, f"not a setting (a typo?): {unknown}"


def test_the_worker_serves_its_metrics_to_the_network_and_temporal_its_own(compose: dict[str, Any]) -> None:
    services = compose["services"]
    address = _environment(services["worker"])["WORKER_METRICS_ADDRESS"]
    assert address.startswith("0.0.0.0:") and address.split(":")[1] in services["worker"]["expose"]
    endpoint = services["temporal"]["environment"]["PROMETHEUS_ENDPOINT"]
    assert endpoint.split(":")[1] in services["temporal"]["expose"]


def _argv(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else shlex.split(command)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_runs_an_rflow_command_that_exists(compose: dict[str, Any], name: str) -> None:
    argv = _argv(compose["services"][name])
    assert argv[:2] == ["rflow", name]
    _parser().parse_args(argv[1:])  # an unknown command or flag exits 2


def test_the_health_checks_ask_what_the_code_answers(compose: dict[str, Any]) -> None:
    from api.app import create_app

    services = compose["services"]
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", api_check)
    assert path and path.group(1) == _argv(services["api"])[_argv(services["api"]).index("--port") + 1]
    app = create_app(Settings(dev_mode=True, database_url="postgresql://unused/none"))
    assert path.group(2) in app.openapi()["paths"]
    worker_check = services["worker"]["healthcheck"]["test"]
    assert worker_check[:3] == ["CMD", "rflow", "worker"]
    assert _parser().parse_args(worker_check[2:]).check


def test_api_and_worker_scale_behind_one_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("api", "worker"):  # a fixed host port or name makes `--scale` fail
        assert "ports" not in services[name] and "container_name" not in services[name]
    api_port = _argv(services["api"])[_argv(services["api"]).index("--port") + 1]
    conf = compose["configs"]["nginx-conf"]["content"]
    assert f"http://api:{api_port};" in conf
    listen = re.search(r"listen (\d+);", conf)
    assert listen and [p.rsplit(":", 1)[1] for p in services["proxy"]["ports"]] == [listen.group(1)]
    assert services["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"


def test_the_proxy_keeps_metrics_off_the_entry_point(compose: dict[str, Any]) -> None:
    # /metrics has no authentication (docs/operations.md, "Observability"): reachable on the compose network only.
    conf = compose["configs"]["nginx-conf"]["content"]
    blocked = re.search(r"location = /metrics \{\s*return (\d+);", conf)
    assert blocked and blocked.group(1) in ("403", "404")


def test_nothing_but_the_proxy_listens_beyond_loopback(compose: dict[str, Any]) -> None:
    # The Temporal UI shows ticket text and has no login: loopback only (docs/operations.md: put auth in front).
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert name == "proxy" or str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" in service:
            continue  # ours, from the Dockerfile (tests/compose/test_image.py)
        tag = image.split("@")[0].rsplit(":", 1)[1]
        assert "@sha256:" in image or re.fullmatch(r"\d+\.\d+(\.\d+)?(-[\w.]+)?", tag), f"{name}: {image}"
