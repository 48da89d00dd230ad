"""Reading an RLExperiment document and turning validation errors into field-named messages."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.suggest import suggestion
from srl_runtime.config.yaml_limits import MAX_DOCUMENT_BYTES, DocumentError, load_yaml


class InvalidExperiment(ValueError):
    """An experiment document that does not validate; `problems` are 'field.path: message' lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        if len(problems) == 1:
            super().__init__(f"invalid experiment: {problems[0]}")
        else:
            super().__init__("invalid experiment:\n  " + "\n  ".join(problems))


class UnreadableDocument(InvalidExperiment):
    """A file that is not a readable YAML document at all; str() is one line naming the problem."""

    def __init__(self, problem: str):
        self.problems = [problem]
        ValueError.__init__(self, problem)


_PYDANTIC_TEXT = [
    (re.compile(r"^Input should be greater than or equal to (.+)$"), r"must be >= \1"),
    (re.compile(r"^Input should be greater than (.+)$"), r"must be > \1"),
    (re.compile(r"^Input should be less than or equal to (.+)$"), r"must be <= \1"),
    (re.compile(r"^Input should be less than (.+)$"), r"must be < \1"),
    (re.compile(r"^Extra inputs are not permitted$"), "unknown field"),
    (re.compile(r"^Field required$"), "required"),
    (re.compile(r"^Value error, (.+)$"), r"\1"),
]


def _message(text: str) -> str:
    for pattern, repl in _PYDANTIC_TEXT:
        if pattern.match(text):
            return pattern.sub(repl, text)
    return text


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = str(part)
        else:
            out += f".{part}"
    return out


def problems_of(err: ValidationError, root: type[BaseModel] | None = None) -> list[str]:
    """'field.path: message' for each error, with camelCase document paths; an unknown field of a
    document of `root` gets a 'did you mean' hint."""
    lines = []
    for e in err.errors():
        # Union/literal branches add type names to loc ("function-after[...]"): drop them.
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or "-" in p)))
        path = _path(loc)
        msg = _message(e["msg"])
        # A model validator reports at the model; its message may start with the field name.
        m = re.match(r"^([a-zA-Z]+(?:\.[a-zA-Z]+)*): (.+)$", msg)
        if m and "." in m.group(1) and not path.endswith(m.group(1)):
            head = m.group(1).split(".")
            path = ".".join([path] + head) if path else ".".join(head)
            msg = m.group(2)
        elif m and "." not in m.group(1):
            path = f"{path}.{m.group(1)}" if path else m.group(1)
            msg = m.group(2)
        if e["type"] == "extra_forbidden" and root is not None:
            msg += suggestion(root, loc) or ""
        lines.append(f"{path}: {msg}")
    return lines


def parse_experiment(doc: dict[str, Any]) -> RLExperiment:
    """Validate a parsed document (camelCase names only); raises InvalidExperiment naming every bad field."""
    if not isinstance(doc, dict):
        raise InvalidExperiment(["(document): must be a mapping with apiVersion, kind, metadata, spec"])
    try:
        return RLExperiment.model_validate(doc, by_alias=True, by_name=False)
    except ValidationError as err:
        raise InvalidExperiment(problems_of(err, RLExperiment)) from None


def read_document(path: str | Path) -> Any:
    """The YAML document in a file; UnreadableDocument (one line) for anything that is not one."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DOCUMENT_BYTES + 1)  # one byte more than allowed: enough to refuse it
    except IsADirectoryError:
        raise UnreadableDocument("is a directory, not a file") from None
    except FileNotFoundError:
        raise UnreadableDocument("no such file") from None
    except OSError as e:
        raise UnreadableDocument(f"cannot read: {os.strerror(e.errno) if e.errno else e}") from None
    try:
        return load_yaml(data)
    except DocumentError as e:
        raise UnreadableDocument(str(e)) from None


def load_experiment(path: str | Path) -> RLExperiment:
    """Read and validate an experiment YAML file."""
    return parse_experiment(read_document(path))

