"""The per-episode log of an actor: one CSV row per finished episode, in the run directory.

`<run_dir>/episodes/actor-<index>.csv` with the header `end_time,return,length`: end_time is
time.time() when the episode ended, return the raw undiscounted return (before reward clipping or
scaling), length the agent steps of the episode. Rows are buffered in memory and written on `flush`
(each progress report) and on `close`; a restarted or resumed actor appends to its file. Every actor
has its own file, so actors on separate hosts sharing the run directory never write the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

EPISODES_DIR: Final = "episodes"
HEADER: Final = "end_time,return,length"


def episode_log_path(run_dir: Path, actor_index: int) -> Path:
    """Where actor `actor_index` logs its episodes."""
    return Path(run_dir) / EPISODES_DIR / f"actor-{actor_index}.csv"


class EpisodeLog:
    """Buffered appender of (end time, raw return, length) rows."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="ascii")  # noqa: SIM115 - closed in close()
        if self._file.tell() == 0:
            self._file.write(HEADER + "\n")
        self._rows: list[str] = []
        self.written = 0  # rows written to the file by this writer

    def add(self, end_time: float, ret: float, length: int) -> None:
        """Buffer one finished episode (a non-finite return is written as nan/inf, as Python spells it)."""
        self._rows.append(f"{end_time:.6f},{float(ret)!r},{int(length)}\n")

    def flush(self) -> None:
        """Write the buffered rows and flush the file (nothing once closed)."""
        if self._file.closed:
            return
        if self._rows:
            self._file.write("".join(self._rows))
            self.written += len(self._rows)
            self._rows.clear()
        self._file.flush()

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if not self._file.closed:
            self.flush()
            self._file.close()
