#!/usr/bin/env bash
# Creates (or reuses) one virtual environment per peer, outside the repo, because the peers need
# versions that conflict with each other and with ours (Sample Factory: gymnasium<1 and numpy<2;
# RLlib: gymnasium>=1; CleanRL 0.4.8, the last on PyPI: the old `gym` 0.21 API).
# Idempotent: each venv carries a stamp of the requirement lines it was built from.
# uv (from PyPI, in a small tools venv) installs them: it hard-links one shared download cache, so
# three copies of torch cost one download and seconds instead of minutes.
# Usage: bench/setup_venvs.sh [tools|sf|cleanrl|rllib ...]   (default: all)
set -euo pipefail
cache="${SRL_BENCH_CACHE:-$HOME/.cache/srl-bench}"
python="${SRL_BENCH_PYTHON:-python3}"
venvs="$cache/venvs"
export UV_CACHE_DIR="$cache/uv-cache"
# uv ships its own CA roots; use the system's so a registry mirror behind a local CA still works.
export SSL_CERT_FILE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
mkdir -p "$venvs"

# Same torch everywhere: the MLP/CNN maths should not differ between systems by library version.
torch_pin="torch==2.15.0"

# The tools venv: uv itself, plus what the harness and the chart need (pyyaml, matplotlib).
tools_reqs="uv==0.13.9 pyyaml>=6 matplotlib>=3.8"
sf_reqs="sample-factory==2.1.1 gymnasium>=0.29,<1 ale-py>=0.9,<0.10 numpy<2 $torch_pin"
rllib_reqs="ray[rllib]==2.60.0 gymnasium>=1 ale-py>=0.10 $torch_pin"
# CleanRL in three steps: uv first (fast, shared cache) for the heavy wheels; then the two sdists
# (gym 0.21, cleanrl 0.4.8) built into wheels in a throwaway venv with the old setuptools/wheel they
# need (gym 0.21's metadata "opencv-python>=3." is rejected by newer ones, and by uv); then pip,
# which still accepts that metadata, installs them.
cleanrl_uv_reqs="numpy<2 $torch_pin tensorboard pandas<2.3 matplotlib<3.10"
cleanrl_sdists="gym==0.21.0 cleanrl==0.4.8"
cleanrl_pip_reqs="stable-baselines3==1.5.0"

stamp_ok() { [ -f "$1/.bench-stamp" ] && [ "$(cat "$1/.bench-stamp")" = "$2" ]; }

uv="$venvs/tools/bin/uv"
setup_tools() {
  local v="$venvs/tools"
  stamp_ok "$v" "$tools_reqs" && return 0
  echo "setup: tools venv ($tools_reqs)" >&2
  [ -x "$v/bin/python" ] || "$python" -m venv "$v"
  # shellcheck disable=SC2086
  "$v/bin/pip" install -q $tools_reqs >&2
  echo "$tools_reqs" > "$v/.bench-stamp"
}

uv_venv() {  # name, requirements...
  local name="$1"; shift
  local v="$venvs/$name"
  stamp_ok "$v" "$*" && return 0
  echo "setup: $name venv ($*)" >&2
  local t0=$SECONDS
  [ -x "$v/bin/python" ] || "$uv" venv -q --python "$(command -v "$python")" "$v"
  "$uv" pip install -q --python "$v/bin/python" "$@" >&2
  echo "$*" > "$v/.bench-stamp"
  echo "setup: $name ready in $((SECONDS - t0))s" >&2
}

setup_cleanrl() {
  local v="$venvs/cleanrl"
  local want="$cleanrl_uv_reqs | $cleanrl_sdists | $cleanrl_pip_reqs"
  stamp_ok "$v" "$want" && return 0
  echo "setup: cleanrl venv ($want)" >&2
  local t0=$SECONDS
  # A pip-seeded venv (python -m venv), since the second step needs pip itself.
  [ -x "$v/bin/pip" ] || "$python" -m venv "$v"
  # shellcheck disable=SC2086
  "$uv" pip install -q --python "$v/bin/python" $cleanrl_uv_reqs >&2
  local build="$cache/build-cleanrl" wheels="$cache/wheels"
  [ -x "$build/bin/pip" ] || "$python" -m venv "$build"
  "$build/bin/pip" install -q "setuptools<66" "wheel<0.40" >&2
  # shellcheck disable=SC2086
  "$build/bin/pip" wheel -q --no-deps --no-build-isolation -w "$wheels" $cleanrl_sdists >&2
  local cons; cons="$(mktemp)"; echo "numpy<2" > "$cons"
  # shellcheck disable=SC2086
  "$v/bin/pip" install -q -c "$cons" --find-links "$wheels" $cleanrl_sdists $cleanrl_pip_reqs >&2
  rm -f "$cons"
  echo "$want" > "$v/.bench-stamp"
  echo "setup: cleanrl ready in $((SECONDS - t0))s" >&2
}

# ale-py 0.9 (the last that works with gymnasium<1 and ships its ROMs) registers the ALE ids
# (PongNoFrameskip-v4, ...) only when imported, and Sample Factory's Atari example never imports it
# (it expected gymnasium[atari] via shimmy, whose ale-py 0.8 needs ROMs downloaded from the internet).
# A .pth line imports it at interpreter start in every SF process, spawned workers included, which
# is what ale-py's own gymnasium plugin entry point does from 0.10 on. SF's code stays untouched.
sf_register_ale() {
  local site
  site="$("$venvs/sf/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "import ale_py" > "$site/zz_bench_register_ale.pth"
}

# The per-episode recorder (bench/episode_recorder.py; inert unless SRL_BENCH_EPISODE_DIR is set):
# copied into the venv with a .pth line that imports it at interpreter start, so every process of a
# peer (spawned workers, Ray workers) records its episodes. Copied on every run (cheap), so an edit of
# the recorder reaches the venvs without a rebuild.
install_recorder() {  # venv name
  local site
  site="$("$venvs/$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  cp "$(dirname "${BASH_SOURCE[0]}")/episode_recorder.py" "$site/srl_bench_episode_recorder.py"
  echo "import srl_bench_episode_recorder" > "$site/zz_srl_bench_episode_recorder.pth"
}

want=("$@"); [ ${#want[@]} -gt 0 ] || want=(tools sf cleanrl rllib)
setup_tools
for w in "${want[@]}"; do
  case "$w" in
    tools) ;;
    # shellcheck disable=SC2086
    sf) uv_venv sf $sf_reqs && sf_register_ale && install_recorder sf ;;
    # shellcheck disable=SC2086
    rllib) uv_venv rllib $rllib_reqs && install_recorder rllib ;;
    cleanrl) setup_cleanrl && install_recorder cleanrl ;;
    *) echo "setup: unknown venv $w" >&2; exit 2 ;;
  esac
done
