"""Settings read from environment variables (pydantic-settings), with one-line errors naming the variable.

A settings class names each field once; its variable is the prefix plus the field name in upper case
(`index` -> `SRL_INDEX`); a set but empty variable counts as unset unless a class says otherwise
(`env_ignore_empty=False`). `Cls()` is the defaults alone; `load(Cls, environ)` reads a mapping
(`os.environ` unless given), so tests and callers never depend on the process's own environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

EXIT_INVALID = 2  # what the `srl` command and the operator exit with on a bad value


class EnvironmentProblem(ValueError):
    """A bad environment value; str() is one line: '$VAR: problem (got 'value')'."""


class EnvSettings(BaseSettings):
    """Base of environment-configured settings: defaults only unless built by `load`."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment is read only through `load`, from a given mapping

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of `field`."""
        if field not in cls.model_fields:
            raise KeyError(f"{cls.__name__} has no field {field!r}")
        return f"{cls.model_config.get('env_prefix', '')}{field.upper()}"


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # As pydantic-settings' own source does (case-insensitive names): keys lower-cased.
        return {k.lower(): v for k, v in self._environ.items() if not (self.env_ignore_empty and v == "")}


S = TypeVar("S", bound=EnvSettings)


def load(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """`cls` from the environment variables in `environ` (default os.environ); EnvironmentProblem else."""
    environ = os.environ if environ is None else environ
    try:
        values: dict[str, Any] = _MappingSource(cls, environ)()
        return cls(**values)
    except SettingsError as err:
        raise EnvironmentProblem(str(err).splitlines()[0]) from None
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        var = cls.variable(field) if field in cls.model_fields else field
        got = environ.get(var)
        problem = first["msg"].removeprefix("Value error, ")
        raise EnvironmentProblem(f"${var}: {problem}" + (f" (got {got!r})" if got is not None else "")) from None
