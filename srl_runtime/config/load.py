"""Reading an RLExperiment document and turning validation errors into field-named messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from srl_runtime.config.experiment import RLExperiment


class InvalidExperiment(ValueError):
    """An experiment document that does not validate; `problems` are 'field.path: message' lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid experiment:\n  " + "\n  ".join(problems))


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


def problems_of(err: ValidationError) -> list[str]:
    """'field.path: message' for each error, with camelCase document paths."""
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
        lines.append(f"{path}: {msg}")
    return lines


def parse_experiment(doc: dict[str, Any]) -> RLExperiment:
    """Validate a parsed document; raises InvalidExperiment naming every bad field."""
    if not isinstance(doc, dict):
        raise InvalidExperiment(["(document): must be a mapping with apiVersion, kind, metadata, spec"])
    try:
        return RLExperiment.model_validate(doc)
    except ValidationError as err:
        raise InvalidExperiment(problems_of(err)) from None


def load_experiment(path: str | Path) -> RLExperiment:
    """Read and validate an experiment YAML file (the first document in it)."""
    text = Path(path).read_text()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidExperiment([f"(yaml): {err}"]) from None
    return parse_experiment(doc)
