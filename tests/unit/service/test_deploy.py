"""deploy/ checked without running it: the systemd units, the compose file, the Dockerfile and the
env examples agree with the CLI, the config loader and each other. (PyYAML, which reads the compose
file, comes with `responses` in the test extra.)"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from worker.config import Config, ServiceConfig, parse_config
from worker.service.cli import main
from worker.service.example_config import EXAMPLE

ROOT = Path(__file__).resolve().parents[3]
SYSTEMD = ROOT / "deploy" / "systemd"
DOCKER = ROOT / "deploy" / "docker"
BIN = "/opt/autofulfill/venv/bin/autofulfill"
UNIT_CONFIG = "/etc/autofulfill/autofulfill.toml"
CONTAINER_CONFIG = "/config/autofulfill.toml"
DATA_DIR = "/var/lib/autofulfill"
APP_SERVICES = {"migrate", "web", "worker", "scheduler"}
UNITS = {"web": "autofulfill-web.service", "worker": "autofulfill-worker@.service",
         "scheduler": "autofulfill-scheduler.service"}
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
             "ProtectHome": "yes", "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes",
             "RestrictSUIDSGID": "yes", "LockPersonality": "yes"}
ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")


# --- helpers ---------------------------------------------------------------------------------

def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """systemd's INI dialect: sections of (key, value) pairs; keys may repeat (ExecStartPre)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}: keep directives on one line"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: expected once, found {found}"
    return found[0]


def seconds(value: str) -> float:
    """A systemd time span such as 330, 330s, 5min 30s, 15min."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts, value
    return sum(float(n) * units[u] for n, u in parts)


def assert_real_command(argv: list[str], config: str) -> str:
    """argv (after the program) is an `autofulfill` subcommand that click accepts; returns its name."""
    name, args = argv[0], argv[1:]
    assert name in main.commands, f"`autofulfill {name}` is not a command ({sorted(main.commands)})"
    command = main.commands[name]
    try:
        ctx = command.make_context(name, list(args))
    except click.UsageError as exc:
        pytest.fail(f"`autofulfill {shlex.join(argv)}`: {exc}")
    assert ctx.params.get("config_file") == config, \
        f"`autofulfill {shlex.join(argv)}` must pass --config {config}"
    return name


def env_file_names(path: Path) -> tuple[set[str], set[str]]:
    """(names assigned on active lines, names mentioned anywhere including comments)."""
    active, mentioned = set(), set()
    for line in path.read_text().splitlines():
        if m := re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)=", line):
            active.add(m[1])
        mentioned.update(re.findall(r"\b([A-Z][A-Z0-9_]*)=", line))
    return active, mentioned


def env_refs(node: Any) -> set[str]:
    """Every "env:NAME" value in a parsed TOML document."""
    if isinstance(node, dict):
        return set().union(*(env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_refs(v) for v in node)) if node else set()
    if isinstance(node, str) and node.startswith("env:"):
        return {node[4:]}
    return set()


def dummies(names: set[str]) -> dict[str, str]:
    return {n: f"dummy-{n.lower()}" for n in names}


@pytest.fixture(scope="module")
def units() -> dict[str, dict[str, list[tuple[str, str]]]]:
    return {role: read_unit(SYSTEMD / name) for role, name in UNITS.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def interpolate(text: str, env: dict[str, str]) -> str:
    """compose's ${NAME}, ${NAME:?msg}, ${NAME:-default}."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[?-][^}]*)?\}", lambda m: env[m[1]], text)


# --- systemd ---------------------------------------------------------------------------------

def test_systemd_files_are_there() -> None:
    names = {p.name for p in SYSTEMD.iterdir()}
    assert set(UNITS.values()) | {"autofulfill.target", "autofulfill.env.example"} <= names


def test_every_exec_line_is_a_real_subcommand(units: dict[str, Any]) -> None:
    for role, unit in units.items():
        for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop"):
            for line in values(unit, "Service", key):
                argv = shlex.split(line.lstrip("-+!@:"))
                assert argv[0] == BIN, f"{UNITS[role]} {key}: run {BIN}, not {argv[0]}"
                assert_real_command(argv[1:], UNIT_CONFIG)
        start = shlex.split(one(unit, "Service", "ExecStart"))
        assert start[1] == role, f"{UNITS[role]} runs `autofulfill {start[1]}`"


def test_worker_is_a_template_and_there_is_exactly_one_scheduler(units: dict[str, Any]) -> None:
    assert UNITS["worker"].endswith("@.service")
    schedulers = [p.name for p in SYSTEMD.glob("*.service")
                  if shlex.split(one(read_unit(p), "Service", "ExecStart"))[1] == "scheduler"]
    assert schedulers == ["autofulfill-scheduler.service"]  # one unit, and not a template
    assert not list(SYSTEMD.glob("autofulfill-scheduler@*"))


def test_units_run_as_the_service_user_with_secrets_from_the_env_file(units: dict[str, Any]) -> None:
    for role, unit in units.items():
        assert one(unit, "Service", "User") == "autofulfill", role
        assert one(unit, "Service", "Group") == "autofulfill", role
        assert one(unit, "Service", "EnvironmentFile") == "/etc/autofulfill/autofulfill.env", role
        assert one(unit, "Service", "Restart") == "on-failure", role
        assert one(unit, "Service", "KillSignal") == "SIGTERM", role
        assert one(unit, "Install", "WantedBy") == "autofulfill.target", role
        assert "autofulfill.target" in one(unit, "Unit", "PartOf"), role


def test_units_are_hardened_and_write_only_to_data_dir(units: dict[str, Any]) -> None:
    for role, unit in units.items():
        for key, expected in HARDENING.items():
            assert one(unit, "Service", key) == expected, f"{UNITS[role]}: {key}"
        assert one(unit, "Service", "ReadWritePaths").split() == [DATA_DIR], role
        assert one(unit, "Service", "StateDirectory") == DATA_DIR.rsplit("/", 1)[1], role
        assert not values(unit, "Service", "ReadWriteDirectories"), role


def test_worker_stop_timeout_covers_a_running_task(units: dict[str, Any]) -> None:
    worker = units["worker"]
    limit = ServiceConfig().task_time_limit_s
    assert seconds(one(worker, "Service", "TimeoutStopSec")) >= limit + 30
    # SIGTERM to Celery's main process only: its prefork children die on SIGTERM (mid-task).
    assert one(worker, "Service", "KillMode") == "mixed"


def test_migrate_runs_before_the_scheduler_only_and_the_others_start_after_it(units: dict[str, Any]) -> None:
    migrating = {role for role, unit in units.items()
                 if any(shlex.split(v)[1] == "migrate" for v in values(unit, "Service", "ExecStartPre"))}
    assert migrating == {"scheduler"}
    for role in ("web", "worker"):
        after = " ".join(values(units[role], "Unit", "After")).split()
        assert "autofulfill-scheduler.service" in after, role
        # ordering only: a worker host without a scheduler must still start
        requires = " ".join(values(units[role], "Unit", "Requires") + values(units[role], "Unit", "BindsTo"))
        assert "autofulfill-scheduler" not in requires, role


def test_systemd_env_example_provides_every_secret_of_the_example_config() -> None:
    active, mentioned = env_file_names(SYSTEMD / "autofulfill.env.example")
    used = env_refs(tomllib.loads(EXAMPLE))
    assert used, "the example config reads no env: variables?"
    assert used <= active, f"missing from autofulfill.env.example: {sorted(used - active)}"
    # the commented-out alternatives in the example config are at least documented
    every = set(ENV_REF.findall(EXAMPLE))
    assert every <= mentioned, f"not mentioned in autofulfill.env.example: {sorted(every - mentioned)}"
    for line in (SYSTEMD / "autofulfill.env.example").read_text().splitlines():
        if re.match(r"[A-Za-z_]\w*=", line):
            assert line.endswith("="), f"the example must not carry values: {line!r}"


def test_example_config_loads_with_the_systemd_env_example() -> None:
    active, _ = env_file_names(SYSTEMD / "autofulfill.env.example")
    config = parse_config(tomllib.loads(EXAMPLE), Path("/etc/autofulfill"), dummies(active))
    assert isinstance(config, Config)


# --- docker ----------------------------------------------------------------------------------

def test_dockerfile_slim_non_root_pip_install_healthcheck() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.replace("\\\n", " ").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert any(ln.startswith("FROM python:3.11-slim") for ln in lines)
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must end as a non-root user"
    last_user = max(i for i, ln in enumerate(lines) if ln.startswith("USER "))
    assert not any(ln.startswith("RUN ") for ln in lines[last_user:]), "RUN after USER would need root"
    copied = " ".join(ln for ln in lines if ln.startswith("COPY "))
    for needed in ("pyproject.toml", "README.md", "worker/", "connectors/"):
        assert needed in copied, needed
    assert any(ln.startswith("RUN ") and "pip install" in ln for ln in lines)
    health = [ln for ln in lines if ln.startswith("HEALTHCHECK ")]
    assert len(health) == 1 and "/healthz" in health[0] and "curl" not in health[0]
    assert 'ENTRYPOINT ["autofulfill"]' in lines


def test_compose_has_the_services(services: dict[str, Any]) -> None:
    assert set(services) == APP_SERVICES | {"redis", "postgres", "flower"}


def test_compose_commands_are_real_subcommands(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        argv = services[name]["command"]
        assert isinstance(argv, list), f"{name}: use the exec form (a list)"
        assert assert_real_command(argv, CONTAINER_CONFIG) == name


def test_compose_redis_keeps_every_task(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    argv = command if isinstance(command, list) else shlex.split(command)
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert pairs.get("--appendonly") == "yes" and pairs.get("--maxmemory-policy") == "noeviction"
    assert any(str(v).endswith(":/data") for v in redis["volumes"])


def test_compose_postgres_has_a_volume_and_a_healthcheck(services: dict[str, Any]) -> None:
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16")
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])


def test_compose_exactly_one_scheduler_and_scalable_workers(services: dict[str, Any]) -> None:
    running = [n for n, s in services.items() if s.get("command", [None])[0] == "scheduler"]
    assert running == ["scheduler"]
    assert services["scheduler"]["deploy"]["replicas"] == 1
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker, "--scale worker=N needs neither"
    assert worker.get("deploy", {}).get("replicas", 1) >= 1
    limit = ServiceConfig().task_time_limit_s
    assert seconds(str(worker["stop_grace_period"])) >= limit + 30


def test_compose_app_services_share_config_env_and_wait_for_migrate(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        s = services[name]
        env_file = s["env_file"]
        assert env_file == ".env" or env_file == [".env"], name
        assert f"./autofulfill.toml:{CONTAINER_CONFIG}:ro" in s["volumes"], name
        if name != "migrate":
            assert s["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
            assert s["restart"] != "no", name
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    web = services["web"]
    assert "8000:8000" in [str(p) for p in web["ports"]]
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
    for name in APP_SERVICES - {"web"}:
        assert services[name]["healthcheck"] == {"disable": True}, f"{name} serves no /healthz"


def test_compose_interpolations_come_from_env_example() -> None:
    active, _ = env_file_names(DOCKER / ".env.example")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", (DOCKER / "compose.yaml").read_text()))
    assert used <= active, f"compose.yaml reads {sorted(used - active)}, not in .env.example"


def test_docker_config_secrets_are_provided(services: dict[str, Any]) -> None:
    active, mentioned = env_file_names(DOCKER / ".env.example")
    from_compose = set(compose_environment(services["worker"]))
    used = env_refs(tomllib.loads((DOCKER / "autofulfill.toml").read_text()))
    assert used <= active | from_compose, f"not provided: {sorted(used - active - from_compose)}"
    every = set(ENV_REF.findall(EXAMPLE))
    assert every <= mentioned, f"example-config variables not in .env.example: {sorted(every - mentioned)}"
    for name in APP_SERVICES:
        assert compose_environment(services[name]) == compose_environment(services["worker"]), name


def test_docker_config_is_valid_and_production_shaped(services: dict[str, Any]) -> None:
    active, _ = env_file_names(DOCKER / ".env.example")
    env = dummies(active)
    env.update({k: interpolate(v, env) for k, v in compose_environment(services["worker"]).items()})
    data = tomllib.loads((DOCKER / "autofulfill.toml").read_text())
    config = parse_config(data, Path("/config"), env)
    assert config.broker_url == "redis://redis:6379/0"
    assert make_url(config.database_url).drivername == "postgresql+psycopg"
    assert make_url(config.database_url).host == "postgres"
    assert config.service.listen == "0.0.0.0:8000"
    assert str(config.data_dir) == "/data"
    assert len(config.stores) == 1 and next(iter(config.stores.values())).platform == "shopify"
    assert len(config.amazon) == 1 and len(config.labels) == 1
    flower = " ".join(services["flower"]["command"])
    assert f"--broker={config.broker_url}" in flower
