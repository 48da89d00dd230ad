"""Per-episode recorder for the peers, loaded at interpreter start by a .pth file that
bench/setup_venvs.sh installs into each peer venv (as `srl_bench_episode_recorder`).

Does nothing unless SRL_BENCH_EPISODE_DIR is set. Then, once `gym` / `gymnasium` is imported, it
wraps `make` (the package's and its registration module's, which `make_vec` calls) so that every env
those build is wrapped, at the innermost `make` level, in a recorder that appends one row per
finished episode to `$SRL_BENCH_EPISODE_DIR/episodes-<pid>.csv`: `end_time,return,length` (unix
seconds, raw undiscounted return of that env, agent steps). The peers' algorithms are untouched: the
recorder passes every call through unchanged and only reads rewards and done flags.
Written for the old `gym` (0.21: 4-tuple step) and `gymnasium` (5-tuple step) APIs alike.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import time
from typing import Any

ENV_VAR = "SRL_BENCH_EPISODE_DIR"
HEADER = "end_time,return,length\n"
_files: dict[int, Any] = {}


def _out() -> Any:
    """This process's log (a forked child gets its own file, keyed by pid)."""
    pid = os.getpid()
    f = _files.get(pid)
    if f is None:
        path = os.path.join(os.environ[ENV_VAR], f"episodes-{pid}.csv")
        new = not os.path.exists(path)
        f = open(path, "a", buffering=1)  # line-buffered: every row is on disk when written
        if new:
            f.write(HEADER)
        _files[pid] = f
    return f


def _recorder_class(wrapper_base: type) -> type:
    class EpisodeRecorder(wrapper_base):  # type: ignore[misc, valid-type]
        """Counts the raw return and length of each episode of the env it wraps."""

        srl_bench_recorder = True

        def __init__(self, env: Any) -> None:
            super().__init__(env)
            self._ret = 0.0
            self._len = 0

        def reset(self, **kwargs: Any) -> Any:
            self._ret = 0.0
            self._len = 0
            return self.env.reset(**kwargs)

        def step(self, action: Any) -> Any:
            result = self.env.step(action)
            self._ret += float(result[1])
            self._len += 1
            done = bool(result[2]) or (len(result) == 5 and bool(result[3]))
            if done:
                _out().write(f"{time.time():.6f},{self._ret:.6g},{self._len}\n")
                self._ret = 0.0
                self._len = 0
            return result

    return EpisodeRecorder


def _has_recorder(env: Any) -> bool:
    seen = 0
    while env is not None and seen < 64:
        if getattr(type(env), "srl_bench_recorder", False):
            return True
        env = getattr(env, "env", None)
        seen += 1
    return False


def _patch(pkg: Any) -> None:
    registration = sys.modules.get(pkg.__name__ + ".envs.registration")
    recorder = _recorder_class(pkg.Wrapper)
    original = getattr(registration, "make", None) or pkg.make

    def make(*args: Any, **kwargs: Any) -> Any:
        env = original(*args, **kwargs)
        # A make inside another make's entry point (RLlib's) already wrapped the inner env.
        return env if _has_recorder(env) else recorder(env)

    make.srl_bench_original = original  # type: ignore[attr-defined]
    if registration is not None:
        registration.make = make
    pkg.make = make


class _Finder(importlib.abc.MetaPathFinder):
    """Patches gym / gymnasium right after the package's own import finishes. It asks the other
    finders on sys.meta_path for the spec (never removing itself, so concurrent imports in other
    threads are safe) and wraps the loader's exec_module."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in ("gym", "gymnasium"):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return None
        exec_module = loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            _patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def install() -> None:
    if not os.environ.get(ENV_VAR):
        return
    os.makedirs(os.environ[ENV_VAR], exist_ok=True)
    for name in ("gym", "gymnasium"):
        if name in sys.modules:
            _patch(sys.modules[name])
    sys.meta_path.insert(0, _Finder())


install()
