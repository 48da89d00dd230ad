"""The parameter DB API: versioned policy checkpoints with tags, shared by trainers, actors, evaluators."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LATEST = "latest"


class VersionNotFound(KeyError):
    """No checkpoint for that version or tag (never pushed, or garbage-collected)."""


class UnreadableCheckpoint(ValueError):
    """A stored version that cannot be loaded as data: corrupt, truncated, or asking to run code."""


@dataclass
class Checkpoint:
    """One version of the parameters: the state dict plus what the trainer said about it."""

    version: int
    state: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


class ParameterDB(abc.ABC):
    """Versioned checkpoints; `latest` always names the most recent push.

    States are data: tensors and plain values (numbers, strings, None, lists, tuples, dicts), loaded
    without executing code. `rejected_checkpoints` counts stored versions refused as unreadable.
    """

    rejected_checkpoints: int = 0

    @abc.abstractmethod
    def push(
        self,
        state: dict[str, Any],
        version: int,
        *,
        tags: Iterable[str] = (),
        metadata: dict[str, Any] | None = None,
        durable: bool = True,
    ) -> None:
        """Store `state` as `version`, tag it `latest` and each of `tags` (durable: fsync first)."""

    @abc.abstractmethod
    def get(
        self,
        *,
        version: int | None = None,
        tag: str = LATEST,
        block: bool = False,
        timeout: float | None = None,
    ) -> Checkpoint:
        """The checkpoint of `version` (or of `tag`); with block, wait for it; raises VersionNotFound."""

    @abc.abstractmethod
    def latest_version(self) -> int | None:
        """Version tagged latest, without loading it (cheap: actors poll this)."""

    @abc.abstractmethod
    def tag(self, version: int, tag: str, *, durable: bool = True) -> None:
        """Point `tag` at `version` (which must exist)."""

    @abc.abstractmethod
    def untag(self, tag: str) -> None:
        """Remove `tag` (no error if absent)."""

    @abc.abstractmethod
    def versions(self) -> list[int]:
        """Stored versions, ascending."""

    @abc.abstractmethod
    def tags(self) -> dict[str, int]:
        """Every tag and the version it names."""

    @abc.abstractmethod
    def gc(self) -> int:
        """Delete untagged versions beyond the newest keep_versions; returns how many were deleted."""

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release resources (metadata connections)."""
