"""The layout's dependency rules, checked on every import statement (function-level ones too).

    worker/*.py (the core)  imports only the core
    worker/ledger/          the core and the ledger
    worker/pipeline/        the core, the ledger and the pipeline
    worker/service/         all of the above; connectors only in service/bootstrap.py (and the
                            CLI's `demo` command starts the sandbox)
    worker/sandbox/         anything
    connectors/             of worker/, only worker.domain, worker.ports and worker.errors
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = {"worker.domain", "worker.ports", "worker.errors", "worker.config", "worker.logs", "worker.app"}
ADAPTER_MAY_USE = {"worker.domain", "worker.ports", "worker.errors"}
ROOMS = ("ledger", "pipeline", "service", "sandbox")  # each may import the rooms before it
COMPOSITION_ROOTS = {"worker.service.bootstrap"}
EXCEPTIONS = {("worker.service.cli", "worker.sandbox.demo")}  # `autofulfill demo` runs the sandbox


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import; ``from worker import x`` counts as worker.x."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in ("worker", "connectors"):
                found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def room(module: str) -> str:
    """"core", a room name, "connectors" or "" (not ours)."""
    parts = module.split(".")
    if parts[0] == "connectors":
        return "connectors"
    if parts[0] != "worker":
        return ""
    if len(parts) > 1 and parts[1] in ROOMS:
        return parts[1]
    return "core"


def allowed(importer: str, target: str) -> bool:
    src, dst = room(importer), room(target)
    if dst == "":
        return True
    if src == "connectors":
        return dst == "connectors" or any(target == m or target.startswith(m + ".") for m in ADAPTER_MAY_USE)
    if importer == "worker.__main__" or (importer, target) in EXCEPTIONS:
        return True  # `python -m worker` starts the CLI
    if dst == "connectors":
        return importer in COMPOSITION_ROOTS or src == "sandbox"
    if src == "core":
        return dst == "core"
    order = ["core", *ROOMS]
    return order.index(dst) <= order.index(src)


def violations(path: Path, source: str) -> list[str]:
    me = module_name(path)
    return [f"{path.relative_to(ROOT)}:{line}: {me} imports {target}"
            for line, target in imported(source) if not allowed(me, target)]


def test_every_import_keeps_to_the_layout() -> None:
    found: list[str] = []
    for folder in ("worker", "connectors"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += violations(path, path.read_text(encoding="utf-8"))
    assert found == [], "\n".join(found)


def test_the_check_catches_each_kind_of_violation() -> None:
    cases = [
        ("connectors/shopify/client.py", "from worker.config import StoreConfig"),
        ("worker/pipeline/fulfill.py", "def f():\n    from connectors.errors import X"),
        ("worker/ledger/state.py", "from worker.pipeline import routing"),
        ("worker/config.py", "from worker.ledger.models import OrderRow"),
        ("worker/service/web.py", "import connectors.shopify.client"),
        ("worker/service/web.py", "from worker.sandbox import stack"),
        ("worker/pipeline/intake.py", "from worker import tasks\nfrom worker.service import alerts"),
    ]
    for name, source in cases:
        assert violations(ROOT / name, source), name
    assert violations(ROOT / "worker/service/bootstrap.py", "from connectors.shopify.client import S") == []
    assert violations(ROOT / "connectors/easypost/mapping.py", "from worker.domain import Label") == []
    assert violations(ROOT / "worker/service/cli.py", "from worker.pipeline import routing") == []
