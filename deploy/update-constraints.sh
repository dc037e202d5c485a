#!/usr/bin/env bash
# Re-resolve every dependency of pyproject.toml (with the test extras) in a fresh virtualenv and
# pin what was installed in deploy/constraints.txt. CI (.ci/run) and the Dockerfile install with
# `-c deploy/constraints.txt`, so a deploy gets exactly what CI tested. Run it after changing a
# dependency, or to take up new releases (security fixes); commit the result with the change.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q '.[test]'
{
  echo "# Exact versions CI tested: .ci/run and deploy/docker/Dockerfile install with -c this file."
  echo "# Made by deploy/update-constraints.sh from pyproject.toml; do not edit by hand."
  "$tmp/venv/bin/pip" freeze --all --exclude-editable | grep -viE '^(autofulfill|pip|setuptools|wheel)( @|==)' | sort -f
} > deploy/constraints.txt
echo "deploy/constraints.txt: $(grep -vc '^#' deploy/constraints.txt) pins"
