#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment outside the repo and installs the package
# into it. Idempotent: a stamp keyed on pyproject.toml skips pip when nothing changed.
# Prints the venv path on stdout's last line.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SRL_VENV:-$HOME/.cache/srl/venv}"
python="${SRL_PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip wheel >&2
fi
stamp="$venv/.srl-stamp"
want="$(cat "$repo/pyproject.toml" | sha256sum | cut -c1-16)@$repo"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing srl-runtime and its dependencies into $venv" >&2
  "$venv/bin/pip" install -q -e "$repo[atari,operator,dev]" >&2
  echo "$want" > "$stamp"
fi
echo "$venv"
