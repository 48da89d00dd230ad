#!/usr/bin/env bash
# Creates (or reuses) this checkout's virtual environment outside the repo and installs the package
# into it, editable, with the versions pinned in constraints.txt. Idempotent: a stamp keyed on
# pyproject.toml, constraints.txt and the checkout's path skips pip when nothing changed.
# Prints the venv path on stdout's last line.
#
# One venv per checkout (~/.cache/srl/venvs/<dir>-<hash of its path>): an editable install points at
# one checkout, so two clones sharing a venv would each re-point it at themselves. pip's cache makes
# a second checkout's install quick (torch is downloaded once). $SRL_VENV overrides the location.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
key="$(basename "$repo")-$(printf '%s' "$repo" | sha256sum | cut -c1-8)"
venv="${SRL_VENV:-$HOME/.cache/srl/venvs/$key}"
python="${SRL_PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip wheel >&2
fi
stamp="$venv/.srl-stamp"
want="$(cat "$repo/pyproject.toml" "$repo/constraints.txt" | sha256sum | cut -c1-16)@$repo"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing srl-runtime and its dependencies into $venv" >&2
  "$venv/bin/pip" install -q -c "$repo/constraints.txt" -e "$repo[train,atari,operator,dev]" >&2
  echo "$want" > "$stamp"
fi
echo "$venv"
