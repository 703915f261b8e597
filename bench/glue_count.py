"""Lines of logic versus glue per durable workflow (issue 22's target: at most 100 lines of glue per workflow).

Code lines only: not blank, comments, docstrings or imports. Logic: the workflow module (the class's own
decisions and handlers). Glue: its contracts module, its persistence activity class (with the `*_control`
row mappers and private row helpers), its commands class in services/, the lines registering it, its test
fake. A persistence module's public helpers (email texts, schedules, keywords) are activity-side code,
counted apart: that work exists with or without a workflow. Files two workflows share are split by
definition: an activity method goes to the workflow whose contract declares the activity, anything else to
the fix workflow when its name says `fix`, else to the session (so that split is approximate; the sum is
exact). Run `python bench/glue_count.py` to re-measure docs/workflows.md's table.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = {"walk": "WalkSessionWorkflow", "session": "TroubleshootingSessionWorkflow",
             "fix": "FixVerificationWorkflow", "handoff": "HandoffWorkflow"}
PERSISTENCE = {"walk": "WalkPersistence", "session": "SessionPersistence", "fix": "FixPersistence",
               "handoff": "HandoffPersistence"}
CONTRACTS = {"walk": "walk", "session": "ai_session", "fix": "fix", "handoff": "handoff"}
# (path, owner, category); an owner of None splits the file by definition (see above).
FILES = [
    ("workflows/walk_session.py", "walk", "logic"), ("workflows/troubleshooting_session.py", "session", "logic"),
    ("workflows/fix_verification.py", "fix", "logic"), ("workflows/handoff.py", "handoff", "logic"),
    *[(f"workflows/contracts/{module}.py", wf, "contracts") for wf, module in CONTRACTS.items()],
    *[(f"activities/persistence/{module}.py", wf, "persistence")
      for wf, module in {"walk": "walks", "session": "ai_sessions", "fix": "fixes", "handoff": "handoffs"}.items()],
    ("activities/persistence/handoff_texts.py", "handoff", "activity code"),
    ("services/walks.py", "walk", "services"), ("services/handoffs.py", "handoff", "services"),
    ("services/ai_sessions.py", None, "services"),
    ("tests/workflows/fakes.py", "walk", "test fake"), ("tests/workflows/fakes_handoff.py", "handoff", "test fake"),
    ("tests/workflows/fakes_ai.py", None, "test fake"),
]
REGISTRATION = ["workflows/registry.py", "activities/registry.py", "activities/persistence/__init__.py"]
SHARED = ["workflows/skeleton.py", "workflows/contracts/common.py", "services/workflow_client.py"]
GLUE = ["contracts", "persistence", "services", "registration", "test fake"]


def _parsed(path: str) -> tuple[ast.Module, list[str], set[int]]:
    """The module, its lines, and the line numbers that are not code (docstrings, imports)."""
    text = (ROOT / path).read_text()
    tree, skip = ast.parse(text), set[int]()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            skip.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        elif isinstance(node, ast.With) and all(isinstance(s, ast.Import | ast.ImportFrom) for s in node.body):
            skip.add(node.lineno)  # `with workflow.unsafe.imports_passed_through():`
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                skip.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return tree, text.splitlines(), skip


def _count(lines: list[str], skip: set[int], first: int, last: int) -> int:
    return sum(1 for n in range(first, last + 1)
               if n not in skip and lines[n - 1].strip() and not lines[n - 1].strip().startswith("#"))


def _span(node: ast.stmt) -> tuple[int, int]:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)]), node.end_lineno or node.lineno


def _activity_owners() -> dict[str, str]:
    """Each activity ref's constant name -> the workflow whose contracts module declares it."""
    owners = {}
    for wf, module in CONTRACTS.items():
        for node in _parsed(f"workflows/contracts/{module}.py")[0].body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            targets += [node.target] if isinstance(node, ast.AnnAssign) else []
            owners.update({t.id: wf for t in targets if isinstance(t, ast.Name)})
    return owners


def _owner_of(node: ast.stmt, owners: dict[str, str]) -> str:
    for decorator in getattr(node, "decorator_list", []):
        for sub in ast.walk(decorator):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id in owners:
                return owners[sub.value.id]  # @activity.defn(name=LOAD_FIX.name)
    return "fix" if "fix" in getattr(node, "name", "").lower() else "session"


def _category(category: str, node: ast.stmt) -> str:
    if category != "persistence" or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return category
    return category if node.name.startswith("_") or node.name.endswith("_control") else "activity code"


def measure() -> dict[str, dict[str, int]]:
    """{workflow: {category: code lines}}, plus the shared skeleton under 'shared'."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    owners = _activity_owners()
    for path, owner, category in FILES:
        tree, lines, skip = _parsed(path)
        for node in tree.body:
            items = [node]
            if owner is None and isinstance(node, ast.ClassDef) and "activity.defn" in ast.unparse(node):
                items = node.body  # a fake serving two workflows, by method; its class line to the session
                table["session"][category] += 1
            for item in items:
                table[owner or _owner_of(item, owners)][_category(category, item)] += _count(lines, skip, *_span(item))
    for path in REGISTRATION:
        _, lines, skip = _parsed(path)
        for wf, cls in WORKFLOWS.items():
            table[wf]["registration"] += sum(1 for n, line in enumerate(lines, 1)
                                             if n not in skip and (cls in line or PERSISTENCE[wf] in line))
    for path in SHARED:
        _, lines, skip = _parsed(path)
        table["shared"]["written once"] += _count(lines, skip, 1, len(lines))
    return table


def main() -> None:
    """Print the table as markdown."""
    table = measure()
    print("| workflow | logic | " + " | ".join(GLUE) + " | glue | activity-side code |")
    print("|---|" + "---:|" * (len(GLUE) + 3))
    for wf, cls in WORKFLOWS.items():
        row = table[wf]
        cells = [row["logic"], *(row[c] for c in GLUE), f"**{sum(row[c] for c in GLUE)}**", row["activity code"]]
        print(f"| `{cls}` | " + " | ".join(map(str, cells)) + " |")
    print(f"\nShared plumbing, written once (skeleton, common contracts, workflow client): "
          f"{table['shared']['written once']} lines.")


if __name__ == "__main__":
    main()
