"""Dependencies (issue 13, item 14): minimum versions that include the known security fixes, and
one constraints file, used by CI and the Dockerfile, that pins every dependency to a version the
minimums allow."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

CONSTRAINTS = ROOT / "deploy" / "constraints.txt"
# package -> the first version with the fixes named in pyproject.toml
SECURITY_MINIMUMS = {"gunicorn": "23.0", "requests": "2.32.4", "urllib3": "2.5", "flask": "3.1.1",
                     "werkzeug": "3.0.6"}


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def pins() -> dict[str, Version]:
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = Version(version.strip())
    return out


def test_minimums_include_the_security_fixes() -> None:
    by_name = {canonicalize_name(r.name): r for r in requirements()}
    for name, first_fixed in SECURITY_MINIMUMS.items():
        spec = by_name[canonicalize_name(name)].specifier
        lows = [Version(s.version) for s in spec if s.operator in (">=", "==", "~=")]
        assert lows and max(lows) >= Version(first_fixed), f"{name} {spec} admits versions before the fix"


def test_every_dependency_is_pinned_within_its_range() -> None:
    pinned = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} has no pin: run deploy/update-constraints.sh"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{req.name} {pinned[name]} vs {req}"


def test_ci_and_the_dockerfile_install_with_the_constraints() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -c deploy/constraints.txt -e '.[test]'" in ci
    docker = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "COPY deploy/constraints.txt" in docker
    assert "pip install -c /src/deploy/constraints.txt /src" in docker
    assert "!deploy/constraints.txt" in (ROOT / "deploy" / "docker" / "Dockerfile.dockerignore").read_text()
