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
    # check_circular off: what hostdev prints is built fresh (dicts and lists of values), with no
    # cycle to find, and the check costs a dictionary update for each of a listing's 8,000 objects
    return json.dumps(data, separators=(",", ":"), check_circular=False) + "\n"


def dump_yaml(data: Any) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def no_color() -> bool:
    """NO_COLOR set to anything but the empty string turns colour off (https://no-color.org)."""
    return os.environ.get("NO_COLOR", "") != ""


def use_color(stream: IO[str]) -> bool:
    return stream.isatty() and not no_color()


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# How a terminal table fits its width: these columns give up their width, the others (addresses,
# UUIDs, IDs: values one copies) are never cut. Names are cut with an ellipsis; sentences wrap;
# the class column is left out when the names alone would still not fit (the name says more).
SHORTEN = ("name", "class")
WRAP = ("summary", "value")
DROP = ("class",)
MIN_FLEX_WIDTH = 10
# The status column of check tables, coloured on a terminal.
STATUS_COLUMNS = ("status", "readiness")
STATUS_STYLES = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim"}


def fit_widths(headers: Sequence[str], widths: Sequence[int], total: int, gap: int = 2) -> List[Optional[int]]:
    """Column widths that fit ``total`` characters (columns ``gap`` apart): a DROP column, then
    the widest column of SHORTEN or WRAP gives up a character at a time, down to MIN_FLEX_WIDTH;
    when that is not enough the DROP column is left out (None). The other columns keep their
    width even when the table stays wider than ``total``."""
    out: List[Optional[int]] = list(widths)
    flexible = [h in SHORTEN or h in WRAP for h in headers]
    droppable = [i for i, h in enumerate(headers) if h in DROP]
    while True:
        used = [w for w in out if w is not None]
        excess = sum(used) + gap * (len(used) - 1) - total
        while excess > 0:
            candidates = [i for i, w in enumerate(out) if flexible[i] and w is not None and w > MIN_FLEX_WIDTH]
            if not candidates:
                break
            widest = max(candidates, key=lambda i: (headers[i] in DROP, out[i]))
            out[widest] -= 1
            excess -= 1
        if excess <= 0 or not droppable:
            return out
        out[droppable.pop(0)] = None
        out = [None if w is None else widths[i] for i, w in enumerate(out)]


def table(headers: Sequence[str], rows: List[Sequence[Any]], out: Optional[IO[str]] = None,
          title: Optional[str] = None) -> None:
    """Columns under upper-case headers. On a terminal (rich): fitted to its width (COLUMNS),
    names cut with an ellipsis and sentences wrapped, never an address or UUID; the status
    column coloured unless NO_COLOR. Elsewhere plain aligned text, nothing cut."""
    out = out or sys.stdout
    texts = [[cell(v) for v in row] for row in rows]
    heads = [h.upper() for h in headers]
    widths = [len(h) for h in heads]
    for row in texts:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    if out.isatty() and len(texts) <= RICH_TABLE_MAX_ROWS:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(file=out, no_color=no_color(), highlight=False)
        fitted = fit_widths(headers, widths, console.width)
        shown = [i for i, w in enumerate(fitted) if w is not None]
        console.width = max(console.width, sum(fitted[i] for i in shown) + 2 * (len(shown) - 1))
        tbl = Table(title=title, box=None, header_style="bold", pad_edge=False)
        for i in shown:
            tbl.add_column(heads[i], width=fitted[i], no_wrap=headers[i] not in WRAP,
                           overflow="fold" if headers[i] in WRAP else "ellipsis")
        for row in texts:
            tbl.add_row(*(Text(row[i], style=STATUS_STYLES.get(row[i], "") if headers[i] in STATUS_COLUMNS else "")
                          for i in shown))
        console.print(tbl)
        return
    shown = list(range(len(heads)))
    if out.isatty():  # a large table on a terminal: fitted the same way, cut rather than wrapped
        import shutil

        fitted = fit_widths(headers, widths, shutil.get_terminal_size().columns)
        shown = [i for i, w in enumerate(fitted) if w is not None]
        widths = [w if w is not None else 0 for w in fitted]
        texts = [[v if len(v) <= widths[i] else v[:widths[i] - 1] + "…" for i, v in enumerate(row)] for row in texts]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(heads[i].ljust(widths[i]) for i in shown).rstrip())
    for row in texts:
        lines.append("  ".join(row[i].ljust(widths[i]) for i in shown).rstrip())
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


def error(exc: Any, fmt: Format) -> None:
    """An error (a HostdevError) as hostdev renders every error: one line on stderr; with json
    also the error object (``exc.to_dict()``) on stdout, which Ansible reads (where it can be
    written: the line on stderr is the error's record)."""
    if fmt == Format.json:
        try:
            sys.stdout.write(dump_json(exc.to_dict()))
            sys.stdout.flush()
        except OSError:
            pass
    message("hostdev: error: " + " ".join(str(exc).splitlines()), "error")  # one line, always


def message(text: str, style: Optional[str] = None) -> None:
    """A message for people, on stderr (never stdout: stdout carries data)."""
    stream = sys.stderr
    if style and use_color(stream):
        codes = {"error": "31", "fail": "1;31", "warn": "33", "ok": "32"}
        stream.write(f"\x1b[{codes.get(style, '0')}m{text}\x1b[0m\n")
    else:
        stream.write(text + "\n")
