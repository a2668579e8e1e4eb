"""The boot configuration: what kernel arguments the next boot will get.

Reading only, for ``check``. /etc/default/grub is a shell fragment that grub-mkconfig sources,
so its values are parsed as the shell would: quotes, ``$VAR`` expansion, backslash-newline
continuations, comments, last assignment wins, and Debian's /etc/default/grub.d/*.cfg sourced
after it in name order (grub2's util/grub-mkconfig.in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .host import Host
from .kernel import split_cmdline

GRUB_DEFAULT = "/etc/default/grub"
GRUB_DROPIN_DIR = "/etc/default/grub.d"
BLS_DIR = "/boot/loader/entries"
KERNEL_CMDLINE = "/etc/kernel/cmdline"  # systemd-boot / UKI (kernel-install)
CMDLINE_VARS = ("GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT")


def _shell_value(text: str, variables: Dict[str, str]) -> str:
    """Evaluate the right-hand side of a shell assignment (one word: quotes, $VAR, escapes)."""
    out: List[str] = []
    i, quote = 0, None
    while i < len(text):
        char = text[i]
        if quote == "'":
            if char == "'":
                quote = None
            else:
                out.append(char)
        elif char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if quote == '"' and nxt not in '$`"\\':
                out.append(char)
            out.append(nxt)
            i += 1
        elif char == '"':
            quote = None if quote == '"' else '"'
        elif char == "'" and quote is None:
            quote = "'"
        elif char == "$":
            name, i = _read_var(text, i + 1)
            out.append(variables.get(name, "") if name else "$")
            continue
        elif quote is None and (char.isspace() or char in ";#"):
            break
        else:
            out.append(char)
        i += 1
    return "".join(out)


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


def logical_lines(text: str) -> List[str]:
    """Lines with backslash-newline continuations joined, CRLF tolerated."""
    lines: List[str] = []
    pending = ""
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw.endswith("\\") and not raw.endswith("\\\\"):
            pending += raw[:-1]
            continue
        lines.append(pending + raw)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def parse_shell_assignments(text: str, variables: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Variables a sourced shell fragment leaves set (assignments only; other lines ignored)."""
    result = dict(variables or {})
    for line in logical_lines(text):
        stripped = line.strip()
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        name, eq, value = stripped.partition("=")
        if not eq or not name or not (name[0].isalpha() or name[0] == "_") \
                or not all(c.isalnum() or c == "_" for c in name):
            continue
        result[name] = _shell_value(value, result)
    return result


@dataclass(frozen=True)
class BootConfig:
    """Where the next boot's arguments come from and what they are."""

    source: Optional[str]          # "grub", "bls", "kernel-cmdline" or None when not found
    files: Tuple[str, ...]          # the files read
    args: Tuple[str, ...]           # arguments a normal boot entry will get

    @property
    def known(self) -> bool:
        return self.source is not None


def read_grub(host: Host) -> Optional[BootConfig]:
    text = host.read_text(GRUB_DEFAULT)
    if text is None:
        return None
    files = [GRUB_DEFAULT]
    variables = parse_shell_assignments(text)
    for name in host.listdir(GRUB_DROPIN_DIR):
        if name.endswith(".cfg"):
            path = f"{GRUB_DROPIN_DIR}/{name}"
            variables = parse_shell_assignments(host.read_text(path) or "", variables)
            files.append(path)
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
