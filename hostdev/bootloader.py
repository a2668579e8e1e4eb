"""The boot configuration: what kernel arguments the next boot will get.

Reading only, for ``check``. /etc/default/grub is a shell fragment that grub-mkconfig sources,
so its values are parsed as the shell would: quotes, ``$VAR`` expansion, backslash-newline
continuations, comments, last assignment wins, and Debian's /etc/default/grub.d/*.cfg sourced
after it in name order (grub2's util/grub-mkconfig.in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

from .errors import EXIT_ENVIRONMENT, HostdevError
from .host import Host
from .kernel import split_cmdline

GRUB_DEFAULT = "/etc/default/grub"
GRUB_DROPIN_DIR = "/etc/default/grub.d"
BLS_DIR = "/boot/loader/entries"
KERNEL_CMDLINE = "/etc/kernel/cmdline"  # systemd-boot / UKI (kernel-install)
CMDLINE_VARS = ("GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT")


# Characters that end an unquoted shell word (and so an assignment's value).
_WORD_END = frozenset(" \t\r\n;&|<>()")
_NAME_EQ = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_EXPORT = re.compile(r"(?:export|readonly)[ \t]+")


class _Value(NamedTuple):
    """A shell value with, for each character, the offset in the file text it was written at
    (-1: it came from outside this text, e.g. a variable set in an earlier file)."""

    chars: str
    origin: Tuple[int, ...]


class _Word(NamedTuple):
    value: _Value
    start: int                 # offset of the first character of the word
    end: int                   # offset just after the word
    closing_quote: Optional[str]  # '"' or "'" when the word ends with a closing quote


def _read_var(text: str, i: int) -> Tuple[str, int]:
    if i < len(text) and text[i] == "{":
        end = text.find("}", i)
        if end < 0:
            return "", i
        return text[i + 1:end], end + 1
    j = i
    while j < len(text) and (text[j].isalnum() or text[j] == "_"):
        j += 1
    return text[i:j], j


def _continuation(text: str, i: int) -> int:
    """Length of a backslash-newline at ``i`` (2, or 3 for backslash-CRLF), else 0."""
    if text.startswith("\\\n", i):
        return 2
    if text.startswith("\\\r\n", i):
        return 3
    return 0


def _lex_word(text: str, i: int, variables: Dict[str, _Value]) -> _Word:
    """One shell word from ``i``, evaluated as ``sh`` would for an assignment's right-hand
    side: quotes, backslash escapes and continuations, ``$VAR``/``${VAR}``. Raises
    BootConfigError for an unterminated quote (the shell would refuse the file too)."""
    chars: List[str] = []
    origin: List[int] = []
    start, quote, closed = i, None, (-1, None)  # closed: (offset after a closing quote, the quote)
    n = len(text)
    while i < n:
        char = text[i]
        if quote == "'":
            if char == "'":
                quote, closed = None, (i + 1, "'")
            else:
                chars.append(char)
                origin.append(i)
            i += 1
            continue
        skip = _continuation(text, i)
        if skip:
            i += skip
            continue
        if char == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if quote == '"' and nxt not in '$`"\\':
                chars.append(char)  # not an escape inside double quotes: both characters stay
                origin.append(i)
            # the character after a backslash, escaped or not, counts as written at the backslash, so
            # that it is never part of a literal run: remove_args would cut it and leave the
            # backslash, which then escapes whatever follows (the next blank, the closing quote,
            # the line's newline)
            chars.append(nxt)
            origin.append(i)
            i += 2
            continue
        if char == '"':
            if quote == '"':
                quote, closed = None, (i + 1, '"')
            else:
                quote = '"'
            i += 1
            continue
        if char == "'" and quote is None:
            quote = "'"
            i += 1
            continue
        if char == "`" or text.startswith("$(", i):
            # command substitution: its output is unknown here (GRUB_DISTRIBUTOR=`lsb_release …`)
            i = _skip_substitution(text, i)
            continue
        if char == "$":
            name, j = _read_var(text, i + 1)
            if name:
                value = variables.get(name, _Value("", ()))
                chars.extend(value.chars)
                origin.extend(value.origin)
                i = j
                continue
        elif quote is None and char in _WORD_END:
            break
        chars.append(char)
        origin.append(i)
        i += 1
    if quote is not None:
        raise BootConfigError(f"unterminated {quote} quote", start)
    return _Word(_Value("".join(chars), tuple(origin)), start, i, closed[1] if closed[0] == i else None)


def _skip_substitution(text: str, i: int) -> int:
    """The offset after a `...` or $(...) starting at ``i`` (quotes inside skipped, $( nested)."""
    closer, depth, j = ("`", 1, i + 1) if text[i] == "`" else (")", 1, i + 2)
    n = len(text)
    while j < n:
        char = text[j]
        if char == "\\":
            j += 2
            continue
        if char in "'\"" and closer == ")":
            end = text.find(char, j + 1)
            if end < 0:
                break
            j = end + 1
            continue
        if closer == ")" and text.startswith("$(", j):
            depth += 1
            j += 2
            continue
        if char == closer:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise BootConfigError("unterminated command substitution", i)


def _skip_command(text: str, i: int) -> int:
    """From inside a command that is not an assignment, the offset of its end (an unquoted
    newline or ``;``), skipping quoted words and comments as the shell would."""
    n = len(text)
    while i < n:
        char = text[i]
        if char in "\n;":
            return i
        if char in _WORD_END:  # a blank or an operator ("\n" and ";" returned above)
            i += 1
        elif char == "#" and (i == 0 or text[i - 1] in _WORD_END):  # a word's start: a comment
            end = text.find("\n", i)
            return n if end < 0 else end
        else:
            i = max(_lex_word(text, i, {}).end, i + 1)
    return n


def _assignments(text: str, variables: Dict[str, _Value]):
    """Yield ``(name, word)`` for each assignment at the start of a command, in order, and
    update ``variables`` as sourcing the text would."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        skip = _continuation(text, i)
        if skip:
            i += skip
        elif char in " \t\r\n;":
            i += 1
        elif char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        else:
            export = _EXPORT.match(text, i)
            j = export.end() if export else i
            match = _NAME_EQ.match(text, j)
            if not match:
                i = _skip_command(text, j)
                continue
            name = match.group()[:-1]
            word = _lex_word(text, match.end(), variables)
            variables[name] = word.value
            yield name, word
            i = word.end


def parse_shell_assignments(text: str, variables: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Variables a sourced shell fragment leaves set (assignments only; other lines ignored).
    A fragment that does not parse (an open quote) yields what was read before the error."""
    values = {k: _Value(v, (-1,) * len(v)) for k, v in (variables or {}).items()}
    try:
        for _ in _assignments(text, values):
            pass
    except BootConfigError:
        pass
    return {k: v.chars for k, v in values.items()}


class BootConfigError(HostdevError):
    """A GRUB file hostdev cannot edit safely (exit 4: nothing was changed)."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, reason: str, offset: int = -1, path: Optional[str] = None) -> None:
        self.reason, self.offset, self.path = reason, offset, path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{reason}", fix="fix the file by hand (sh -n FILE must accept it), or use --dry-run "
                                                  "to see the intended change")

    def at(self, path: str, text: str) -> BootConfigError:
        """The same error naming the file and line."""
        line = text.count("\n", 0, self.offset) + 1 if self.offset >= 0 else None
        return BootConfigError(f"{self.reason}" + (f" (line {line})" if line else ""), path=path)


# ------------------------------------------------------------------ editing (pure text transforms)
# Kernel arguments hostdev writes are plain words: nothing the shell or GRUB would interpret.
_SAFE_ARG = re.compile(r"[A-Za-z0-9_.,:=/+@%~^!{}\[\]-]+")


def is_plain_arg(arg: str) -> bool:
    return bool(_SAFE_ARG.fullmatch(arg))


def _var_words(text: str, var: str, inherited: Optional[Dict[str, str]] = None) -> Tuple[List[_Word], _Value]:
    """Every assignment of ``var`` in ``text`` and the value the variable has after the text."""
    values = {k: _Value(v, (-1,) * len(v)) for k, v in (inherited or {}).items()}
    words = [word for name, word in _assignments(text, values) if name == var]
    return words, values.get(var, _Value("", ()))


def _final_value(text: str, var: str, inherited: Optional[Dict[str, str]] = None) -> Tuple[Optional[_Word], _Value]:
    """The last assignment of ``var`` in ``text`` and the value the variable has after the text."""
    words, value = _var_words(text, var, inherited)
    return (words[-1] if words else None), value


def _tokens(value: _Value):
    """(start, end) character spans of the whitespace-separated words of a value."""
    spans, start = [], None
    for index, char in enumerate(value.chars + " "):
        if char.isspace():
            if start is not None:
                spans.append((start, index))
                start = None
        elif start is None:
            start = index
    return spans


def remove_args(text: str, var: str, args, inherited: Optional[Dict[str, str]] = None,
                last_only: bool = False) -> Tuple[str, List[str]]:
    """Remove each of ``args`` (exact words) from the value ``var`` ends up with in ``text``,
    wherever in the text it is written literally (``last_only``: only its last occurrence, the
    one hostdev appended), with one adjacent blank. Returns the new text and the args that were
    removed. Other lines stay byte-identical."""
    removed: List[str] = []
    for arg in args:
        while not (last_only and arg in removed):
            words, value = _var_words(text, var, inherited)
            cut = None
            for start, end in (reversed(_tokens(value)) if last_only else _tokens(value)):
                if value.chars[start:end] != arg:
                    continue
                first, last = value.origin[start], value.origin[end - 1]
                if first < 0 or last - first != end - start - 1 or text[first:last + 1] != arg:
                    continue  # not written as one literal run in this text (an expansion, an escape)
                if not any(w.start <= first and last < w.end for w in words):
                    continue  # written in another variable ($EXTRA): not ours to change
                lo, hi = first, last + 1
                if start > 0 and value.origin[start - 1] == first - 1 and value.chars[start - 1] in " \t":
                    lo -= 1
                elif end < len(value.chars) and value.origin[end] == hi and value.chars[end] in " \t":
                    hi += 1
                cut = (lo, hi)
                break
            if cut is None:
                break
            text = _end_edited_line(text, text[:cut[0]] + text[cut[1]:])
            removed.append(arg)
    return text, removed


def _newline(text: str) -> str:
    """The file's line ending: CRLF when its first line ends so, else LF."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def _end_edited_line(old: str, new: str) -> str:
    """``new``, with a line ending added when ``old`` had none at the end and its last line is
    the one edited (files end with a newline; an untouched last line is left as it was)."""
    if not old or old.endswith("\n") or new == old or not new or new.endswith("\n"):
        return new
    if new.endswith("\n" + old[old.rfind("\n") + 1:]):
        return new  # the last line is untouched
    return new + _newline(old)


def append_args(text: str, var: str, args) -> str:
    """Append ``args`` (plain words, see is_plain_arg) to the last assignment of ``var``; add an
    assignment at the end when there is none. Only that assignment's text changes."""
    args = list(args)
    if not args:
        return text
    for arg in args:
        if not is_plain_arg(arg):
            raise BootConfigError(f"kernel argument {arg!r} has characters the shell or GRUB would interpret")
    words = " ".join(args)
    last, value = _final_value(text, var)
    if last is None:
        newline = _newline(text)
        sep = newline if text and not text.endswith("\n") else ""
        return f'{text}{sep}{var}="{words}"{newline}'
    return _end_edited_line(text, _append_to(text, last, value, words))


def _append_to(text: str, last: _Word, value: _Value, words: str) -> str:
    raw = text[last.start:last.end]
    # no blank after an empty value, unless it holds an expansion we could not see ($FOO set elsewhere)
    blank = "" if value.chars[-1:].isspace() or (not value.chars and "$" not in raw) else " "
    if last.closing_quote:
        at = last.end - 1
        return text[:at] + blank + words + text[at:]
    if last.start == last.end:
        return text[:last.end] + f'"{words}"' + text[last.end:]
    if raw == value.chars:  # a plain unquoted word: quote it as people write it
        return text[:last.start] + f'"{raw} {words}"' + text[last.end:]
    return text[:last.end] + f'"{blank}{words}"' + text[last.end:]


def check_parses(text: str, path: str) -> None:
    """Raise BootConfigError (with the line) when ``text`` has an open quote."""
    try:
        for _ in _assignments(text, {}):
            pass
    except BootConfigError as exc:
        raise exc.at(path, text) from None


@dataclass(frozen=True)
class BootConfig:
    """Where the next boot's arguments come from and what they are."""

    source: Optional[str]          # "grub", "bls", "kernel-cmdline" or None when not found
    files: Tuple[str, ...]          # the files read
    args: Tuple[str, ...]           # arguments a normal boot entry will get

    @property
    def known(self) -> bool:
        return self.source is not None


def grub_files(host: Host) -> List[str]:
    """The files grub-mkconfig sources, in its order: /etc/default/grub (when present), then
    Debian's /etc/default/grub.d/*.cfg by name."""
    files = [GRUB_DEFAULT] if host.exists(GRUB_DEFAULT) else []
    return files + [f"{GRUB_DROPIN_DIR}/{n}" for n in host.listdir(GRUB_DROPIN_DIR) if n.endswith(".cfg")]


def read_grub(host: Host) -> Optional[BootConfig]:
    if host.read_text(GRUB_DEFAULT) is None:
        return None
    files = grub_files(host)
    variables: Dict[str, str] = {}
    for path in files:
        variables = parse_shell_assignments(host.read_text(path) or "", variables)
    args = split_cmdline(" ".join(variables.get(v, "") for v in CMDLINE_VARS))
    return BootConfig("grub", tuple(files), tuple(args))


def read_bls(host: Host, release: Optional[str]) -> Optional[BootConfig]:
    """BLS entries (Fedora/RHEL 8+): the entry for the running kernel, else the first one."""
    entries = [n for n in host.listdir(BLS_DIR) if n.endswith(".conf")]
    if not entries:
        return None
    chosen = next((n for n in entries if release and release in n), entries[0])
    path = f"{BLS_DIR}/{chosen}"
    options = ""
    for line in (host.read_text(path) or "").splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "options":
            options = value
    return BootConfig("bls", (path,), tuple(split_cmdline(options)))


def read_boot_config(host: Host, release: Optional[str] = None) -> BootConfig:
    """The next boot's arguments, from BLS where it is in use, else GRUB, else kernel-install."""
    bls = read_bls(host, release)
    if bls:
        return bls
    grub = read_grub(host)
    if grub:
        return grub
    text = host.read_text(KERNEL_CMDLINE)
    if text is not None:
        return BootConfig("kernel-cmdline", (KERNEL_CMDLINE,), tuple(split_cmdline(text)))
    return BootConfig(None, (), ())
