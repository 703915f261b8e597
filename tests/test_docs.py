"""The docs say what the code does: every setting with its real default, every workflow, every route that takes no
`Idempotency-Key`, links that stay inside the repository, and a README a newcomer reads in five minutes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic.fields import FieldInfo

from api.app import create_app
from core.config import PROJECT_ROOT, Settings
from workflows.registry import ALL_WORKFLOWS

DOCS = PROJECT_ROOT / "docs"
README = PROJECT_ROOT / "README.md"
README_MAX_BYTES = 12 * 1024
# A table row of docs/configuration.md: | `NAME` | `default` or unset | meaning |
SETTING_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*?) \|", re.MULTILINE)
# Read from the environment outside core/config.py (so no field to compare with): where, and the documented default.
READ_ELSEWHERE = {
    "LOG_LEVEL": ("core/logging.py", "`INFO`"),
    "PROMETHEUS_MULTIPROC_DIR": ("api/observability.py", "unset"),
}
# State-changing operations that take no Idempotency-Key, each for the reason docs/workflows.md gives.
NO_IDEMPOTENCY_KEY = {
    ("post", "/api/v1/auth/register"), ("post", "/api/v1/auth/login"), ("post", "/api/v1/auth/login/json"),
    ("put", "/api/v1/account/subscription"),
    ("post", "/api/v1/psa/connections/{connection_id}/test"),
    ("post", "/api/v1/ai-sessions/{session_id}/resolution-note/preview"),
    ("post", "/api/v1/ai-sessions/{session_id}/escalation-package/preview"),
}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _rendered_default(field: FieldInfo) -> str:
    """How docs/configuration.md writes a field's default."""
    value: Any = field.get_default(call_default_factory=True)
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Path):
        value = f"{value.relative_to(PROJECT_ROOT)}/"
    return f"`{value}`"


def _documented_settings() -> dict[str, str]:
    text = (DOCS / "configuration.md").read_text()
    rows = SETTING_ROW.findall(text)
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), f"documented twice: {sorted({n for n in names if names.count(n) > 1})}"
    return {name: default.strip() for name, default in rows}


def test_the_configuration_doc_lists_every_setting_with_its_real_default() -> None:
    documented = _documented_settings()
    expected = {name.upper(): _rendered_default(field) for name, field in Settings.model_fields.items()}
    missing = sorted(set(expected) - set(documented))
    assert not missing, f"docs/configuration.md does not list {missing}"
    wrong = {name: (documented[name], default) for name, default in expected.items() if documented[name] != default}
    assert not wrong, f"docs/configuration.md gives the wrong default (documented, real): {wrong}"
    unknown = sorted(set(documented) - set(expected) - set(READ_ELSEWHERE))
    assert not unknown, f"docs/configuration.md lists {unknown}, which no code reads"
    assert {name: documented.get(name) for name in READ_ELSEWHERE} == {n: d for n, (_, d) in READ_ELSEWHERE.items()}


def test_variables_read_outside_the_settings_class_are_really_read_there() -> None:
    for name, (module, _) in READ_ELSEWHERE.items():
        assert f'os.environ.get("{name}"' in (PROJECT_ROOT / module).read_text(), (name, module)


def test_docs_workflows_names_every_registered_workflow() -> None:
    text = (DOCS / "workflows.md").read_text()
    missing = [cls.__name__ for cls in ALL_WORKFLOWS if f"`{cls.__name__}`" not in text]
    assert not missing, f"docs/workflows.md does not describe {missing}"


def test_every_state_changing_route_takes_an_idempotency_key_unless_documented() -> None:
    settings = Settings(dev_mode=True, database_url="postgresql://unused/unused", jwt_secret="x" * 32,
                        credentials_key=Fernet.generate_key().decode())
    schema = create_app(settings).openapi()
    without = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if "Idempotency-Key" not in headers:
                without.add((method, path))
    assert without <= NO_IDEMPOTENCY_KEY, f"take no Idempotency-Key: {sorted(without - NO_IDEMPOTENCY_KEY)}"
    documented = (DOCS / "workflows.md").read_text()
    for method, path in NO_IDEMPOTENCY_KEY & without:
        assert f"{method.upper()} {path.removeprefix('/api/v1')}" in documented, (method, path)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", markdown.read_text(), flags=re.DOTALL)
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


def test_links_stay_inside_the_repository_and_reach_their_heading() -> None:
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto
            file_part, _, anchor = target.partition("#")
            found = (page.parent / file_part).resolve() if file_part else page
            if not found.is_relative_to(PROJECT_ROOT) or not found.exists():
                broken.append(f"{page.name}: {target} (no such file in the repository)")
            elif anchor and found.suffix == ".md" and anchor not in _anchors(found):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_the_readme_is_a_page_a_newcomer_reads_in_five_minutes() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/ (limit {README_MAX_BYTES})"
    text = README.read_text()
    for page in ("docs/walkthroughs.md", "docs/configuration.md", "docs/benchmarks.md"):
        assert f"]({page}" in text, f"the README does not link {page}"
