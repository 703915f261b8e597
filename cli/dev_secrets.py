"""The secrets of one `rflow dev` data dir: generated on first use, kept in `<data dir>/secrets.env` (mode 0600)."""

from __future__ import annotations

import base64
import os
import secrets
import stat
import string
import uuid
from collections.abc import Callable
from pathlib import Path

from cli.atomic_file import write_atomic
from core.config import SECRETS_FILE


def _fernet_key() -> str:
    # What cryptography's Fernet.generate_key() returns, without importing it into the CLI.
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


GENERATORS: dict[str, Callable[[], str]] = {
    "JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "CREDENTIALS_KEY": _fernet_key,
    "BILLING_SECRET": lambda: secrets.token_urlsafe(48),
}
# The API member the dev stack's ConnectWise simulator accepts (names as the simulator reads them from its
# environment). Kept apart from GENERATORS: the API and the worker never see them.
CW_SIMULATOR_GENERATORS: dict[str, Callable[[], str]] = {
    "CW_SIM_PUBLIC_KEY": lambda: secrets.token_urlsafe(12),  # 16 characters, like ConnectWise's own keys
    "CW_SIM_PRIVATE_KEY": lambda: secrets.token_urlsafe(12),
    "CW_SIM_CLIENT_ID": lambda: str(uuid.uuid4()),  # a clientId is a GUID
}
# The Autotask and HaloPSA simulators' secrets, kept apart for the same reason. Their login names (AT_SIM_USERNAME,
# HALO_SIM_CLIENT_ID) are no secret: the simulators print them and the API returns them (cli/dev_psa.py).
AT_SIMULATOR_GENERATORS: dict[str, Callable[[], str]] = {
    "AT_SIM_SECRET": lambda: secrets.token_urlsafe(18),
    # Autotask issues 26 upper-case letters and digits as an integration code (the tracking identifier).
    "AT_SIM_INTEGRATION_CODE": lambda: "".join(secrets.choice(string.ascii_uppercase + string.digits)
                                               for _ in range(26)),
}
HALO_SIMULATOR_GENERATORS: dict[str, Callable[[], str]] = {
    "HALO_SIM_CLIENT_SECRET": lambda: secrets.token_urlsafe(36),
}
HEADER = ("# Secrets of this `rflow dev` data dir, generated on first start; keep it private (mode 0600).\n"
          "# Delete a line to have it regenerated (tokens signed with an old JWT_SECRET stop working).\n")


def _parse(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value.strip():
            values[name.strip()] = value.strip()
    return values


def _write_private(path: Path, values: dict[str, str]) -> None:
    write_atomic(path, HEADER + "".join(f"{name}={value}\n" for name, value in values.items()), mode=0o600)


def load_or_create(data_dir: Path, generators: dict[str, Callable[[], str]] | None = None,
                   ) -> tuple[dict[str, str], list[str]]:
    """The data dir's secrets named by `generators` (creating what is missing) and notes that never name a value."""
    generators = GENERATORS if generators is None else generators
    path = data_dir / SECRETS_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    values = _parse(path.read_text()) if path.exists() else {}
    missing = [name for name in generators if name not in values]
    if missing:
        values.update({name: generators[name]() for name in missing})
        _write_private(path, values)
        notes.append(f"generated {', '.join(missing)} into {path}")
    elif stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
        notes.append(f"{path} was readable by others; its mode is now 0600")
    # The file keeps every line it had; the caller gets only what it asked for.
    return {name: values[name] for name in generators}, notes
