"""Version metadata (train step, returns, tags, evaluation results) kept beside the checkpoints."""

from __future__ import annotations

import abc
from typing import Any, Literal

BestBy = Literal["eval_return", "episode_return"]


class MetadataStore(abc.ABC):
    """Queryable facts about versions; checkpoints themselves live in the parameter DB's files."""

    @abc.abstractmethod
    def record_version(
        self,
        version: int,
        *,
        train_step: int,
        timestamp: float,
        episode_return: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Insert or overwrite the record of `version`."""

    @abc.abstractmethod
    def set_tag(self, tag: str, version: int) -> None:
        """Record that `tag` now names `version`."""

    @abc.abstractmethod
    def remove_tag(self, tag: str) -> None:
        """Forget `tag` (no error if absent)."""

    @abc.abstractmethod
    def add_eval_result(self, version: int, tag: str, mean_return: float, episodes: int) -> None:
        """Append one evaluation of `version` (evaluated under `tag`)."""

    @abc.abstractmethod
    def get(self, version: int) -> dict[str, Any]:
        """version, train_step, timestamp, episode_return, extra, tags, evals; raises KeyError."""

    @abc.abstractmethod
    def query_best(self, by: BestBy = "eval_return") -> dict[str, Any] | None:
        """The record (as get()) with the highest eval mean return or episode return; None if none."""

    @abc.abstractmethod
    def list_versions(self) -> list[int]:
        """Recorded versions, ascending."""

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections."""
