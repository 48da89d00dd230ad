"""Reading YAML that someone else wrote: bounded size, depth and alias expansion, no duplicate keys.

An experiment document is small. What is not (a file of megabytes, nesting hundreds of levels deep,
an alias bomb whose anchors expand to billions of nodes once a consumer walks them) is refused while
it is composed, before any Python object is built, with a one-line reason. Duplicate keys are
refused too, naming the key's path: YAML says keys are unique, and last-wins would make the same
file mean different things to different readers.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DOCUMENT_BYTES = 1024 * 1024  # the operator stores the document in a ConfigMap (1 MiB at most)
MAX_DEPTH = 64  # collections inside collections
MAX_ALIASES = 256  # *alias uses in one document
MAX_EXPANDED_NODES = 100_000  # nodes with every alias expanded (an experiment has a few hundred)


class DocumentError(ValueError):
    """A document refused while reading it; str() is one line."""


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that counts depth and aliases while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise DocumentError(f"more than {MAX_ALIASES} YAML aliases{_at(self.peek_event().start_mark)}")
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise DocumentError(f"nested more than {MAX_DEPTH} levels deep{_at(self.peek_event().start_mark)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _at(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _check_tree(root: yaml.Node) -> None:
    """Expanded size (aliases counted each time they are used) and duplicate keys, memoised per node."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node, path: str) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise DocumentError(f"{path or '(document)'}: recursive YAML alias")
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else None
                child = f"{path}.{name}" if path else str(name)
                if name is not None and k.tag != "tag:yaml.org,2002:merge":
                    if name in seen:
                        raise DocumentError(
                            f"{child}: duplicate key (lines {seen[name]} and {k.start_mark.line + 1})"
                        )
                    seen[name] = k.start_mark.line + 1
                total += size(k, child) + size(v, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                total += size(v, f"{path}[{i}]")
        if total > MAX_EXPANDED_NODES:
            raise DocumentError(f"expands to more than {MAX_EXPANDED_NODES:,} YAML nodes (an alias bomb?)")
        in_progress.discard(key)
        sizes[key] = total
        return total

    size(root, "")


def load_yaml(data: bytes) -> Any:
    """The first (only) YAML document in `data`, within the limits above; DocumentError otherwise."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"larger than {MAX_DOCUMENT_BYTES:,} bytes, the most a document may have")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DocumentError(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    if "\x00" in text:
        raise DocumentError(f"not a text file (NUL byte at offset {text.index(chr(0))})")
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(node)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise DocumentError(_yaml_error(e)) from None
    except RecursionError:
        raise DocumentError("nested too deeply") from None
    finally:
        loader.dispose()


def _yaml_error(err: yaml.YAMLError) -> str:
    """One line: where and what."""
    if isinstance(err, yaml.MarkedYAMLError):
        parts = [p for p in (err.context, err.problem) if p]
        return f"YAML syntax error{_at(err.problem_mark or err.context_mark)}: {', '.join(parts) or 'invalid'}"
    return f"YAML: {' '.join(str(err).split())}"
