"""Output formatters: table, json, yaml. Depends only on the standard library (rich and yaml
are imported when used, to keep start-up small).

Machine output (json, yaml) is never decorated. Tables are drawn by rich on a terminal and as
plain aligned columns when stdout is not a terminal or the table is large (a rich Table costs
~300 µs a row). Host strings are never interpreted as Rich markup.
"""

from __future__ import annotations

import enum
import os
import sys
from typing import IO, Any, List, Optional, Sequence

RICH_TABLE_MAX_ROWS = 200


class Format(str, enum.Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


def dump_json(data: Any, pretty: bool = True) -> str:
    """Indented for people; compact when ``pretty`` is False (json's C encoder only runs without
    indent: 25× faster on a 4,096-device listing)."""
    import json

    if pretty:
        return json.dumps(data, indent=2) + "\n"
    return json.dumps(data, separators=(",", ":")) + "\n"


def dump_yaml(data: Any) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def use_color(stream: IO[str]) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(headers: Sequence[str], rows: List[Sequence[Any]], out: Optional[IO[str]] = None,
          title: Optional[str] = None) -> None:
    out = out or sys.stdout
    texts = [[cell(v) for v in row] for row in rows]
    if out.isatty() and len(texts) <= RICH_TABLE_MAX_ROWS:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        tbl = Table(title=title, box=None, header_style="bold", pad_edge=False)
        for header in headers:
            tbl.add_column(header)
        for row in texts:
            tbl.add_row(*(Text(v) for v in row))
        Console(file=out, no_color="NO_COLOR" in os.environ, highlight=False).print(tbl)
        return
    widths = [len(h) for h in headers]
    for row in texts:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in texts:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    out.write("\n".join(lines) + "\n")


def emit(data: Any, fmt: Format, out: Optional[IO[str]] = None) -> bool:
    """Write ``data`` as json or yaml; returns False for ``table`` (the caller draws it)."""
    out = out or sys.stdout
    if fmt == Format.json:
        out.write(dump_json(data, pretty=out.isatty()))
        return True
    if fmt == Format.yaml:
        out.write(dump_yaml(data))
        return True
    return False


def message(text: str, style: Optional[str] = None) -> None:
    """A message for people, on stderr (never stdout: stdout carries data)."""
    stream = sys.stderr
    if style and use_color(stream):
        codes = {"error": "31", "warn": "33", "ok": "32"}
        stream.write(f"\x1b[{codes.get(style, '0')}m{text}\x1b[0m\n")
    else:
        stream.write(text + "\n")
