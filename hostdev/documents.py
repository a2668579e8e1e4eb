"""One bounded loader for every YAML and JSON document hostdev reads: profiles (``apply``),
KubeVirt CRs (``--merge-with``, ``kubevirt merge``), inventories, and its own records on the
host (the binding journal, the boot-arguments record).

Bounded three ways, so that a hostile or broken file is one clear error (exit 2) at once, not
minutes of CPU, gigabytes, a MemoryError or a RecursionError traceback:

* size: at most MAX_BYTES, checked before the file is read;
* depth: at most MAX_DEPTH nested collections (PyYAML and ``json`` recurse per level);
* expansion: YAML aliases are counted as the nodes they stand for, at most MAX_NODES in all
  ("billion laughs": 1 KB of anchors that expand to 10^9 strings).

YAML 1.1 (PyYAML) reads an unquoted ``0000:17:00.0`` as a base-60 number; such plain scalars
are kept as their text in a ``Base60`` (a ``str``), so that a checker can say "quote it" and
everything else sees the string YAML 1.2 would give. Pure: it imports only ``errors``; files
named on the command line are read by ``host.read_document``.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

from .errors import UsageError

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000


class DocumentError(UsageError):
    """A document hostdev cannot read: names the file (or option) and what is wrong (exit 2)."""

    def __init__(self, source: str, problem: str, fix: Optional[str] = None) -> None:
        super().__init__(f"{source}: {problem}", fix=fix or "fix the file, or regenerate it")
        self.source = source
        self.problem = problem


class Base60(str):
    """A plain YAML scalar such as ``0000:17:00.0`` that YAML 1.1 would read as a base-60
    number; the text as written."""


def _check_size(text: str, source: str) -> None:
    if len(text) > MAX_BYTES:
        raise DocumentError(source, f"is more than the {MAX_BYTES} bytes hostdev reads", fix="is it the right file?")


def _loader_class():
    """A SafeLoader that counts depth and expanded nodes while composing and keeps base-60
    scalars as text (built once, on first use: PyYAML is imported lazily)."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream) -> None:
            super().__init__(stream)
            self._depth = 0
            self._weight: Dict[int, int] = {}
            self._total = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                anchored = self.anchors.get(self.peek_event().anchor)
                if anchored is not None and id(anchored) not in self._weight:
                    raise _TooDeep(self.peek_event().start_mark.line + 1, "an alias inside its own anchor")
            self._depth += 1
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _TooDeep(mark.line + 1)
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            key = id(node)
            if key not in self._weight:  # a new node; an alias returns one already weighed
                if isinstance(node, yaml.SequenceNode):
                    weight = 1 + sum(self._weight.get(id(child), 1) for child in node.value)
                elif isinstance(node, yaml.MappingNode):
                    weight = 1 + sum(self._weight.get(id(k), 1) + self._weight.get(id(v), 1) for k, v in node.value)
                else:
                    weight = 1
                self._weight[key] = weight
            else:
                weight = self._weight[key]
            if weight > MAX_NODES:
                raise _TooBig(weight)
            return node

    def construct_number(kind):
        base = getattr(yaml.SafeLoader, f"construct_yaml_{kind}")

        def construct(loader, node):
            if ":" in node.value:
                return Base60(node.value)
            return base(loader, node)
        return construct

    BoundedLoader.add_constructor("tag:yaml.org,2002:int", construct_number("int"))
    BoundedLoader.add_constructor("tag:yaml.org,2002:float", construct_number("float"))
    return BoundedLoader


class _TooDeep(Exception):
    def __init__(self, line: int, what: str = "") -> None:
        super().__init__(line)
        self.line = line
        self.what = what or f"nested more than {MAX_DEPTH} levels deep"


class _TooBig(Exception):
    pass


_LOADER: Any = None


def load_yaml(text: str, source: str, fix: Optional[str] = None) -> Any:
    """The YAML (or JSON) document in ``text``. Raises DocumentError (not YAML, too big, too
    deep, aliases that expand too far)."""
    global _LOADER
    import yaml

    _check_size(text, source)
    if _LOADER is None:
        _LOADER = _loader_class()
    loader = None
    try:
        loader = _LOADER(text)  # the reader refuses control characters already here
        return loader.get_single_data()
    except _TooDeep as exc:
        raise DocumentError(source, f"{exc.what} (line {exc.line})", fix=fix) from None
    except _TooBig:
        raise DocumentError(source, f"expands to more than {MAX_NODES} values (YAML aliases: an alias bomb?)",
                            fix=fix) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DocumentError(source, f"is not valid YAML{where}: {problem}",
                            fix=fix or "check the indentation and quoting") from None
    except RecursionError:  # cannot happen within MAX_DEPTH; kept as a last line of defence
        raise DocumentError(source, "nested too deep", fix=fix) from None
    finally:
        if loader is not None:
            loader.dispose()


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def load_json(text: str, source: str, fix: Optional[str] = None) -> Any:
    """The JSON document in ``text``. Raises DocumentError (not JSON, too big, too deep)."""
    import json

    _check_size(text, source)
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, match.start()) + 1
                raise DocumentError(source, f"nested more than {MAX_DEPTH} levels deep (line {line})", fix=fix)
        elif token in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DocumentError(source, f"is not valid JSON ({exc})", fix=fix) from None
    except RecursionError:
        raise DocumentError(source, "nested too deep", fix=fix) from None
