"""Shell completion without typer: a TAB answers from the command index (cli/index.py, generated
from the typer app) and, for values, from the host under ``--root`` given on the line
(HOSTDEV_ROOT, else /). Imports neither typer, click nor rich, and no command module, so a TAB
costs the interpreter's start-up and the few files it reads (docs/benchmarks.md).

The shell scripts (``script``; completions/ holds them) call hostdev with ``_HOSTDEV_COMPLETE``:

* ``complete_bash``: the line up to the cursor in ``COMP_LINE``/``COMP_POINT`` and the shell's
  ``COMP_WORDBREAKS``. bash completes only the text after the last word break (``:`` and ``=``
  by default), so each answer is trimmed to that part, as bash-completion's
  ``__ltrim_colon_completions`` does; otherwise ``0000:65:00.0`` is pasted after ``0000:``.
* ``complete_zsh`` / ``complete_fish``: the words after the program name as arguments, the last
  one being the word under the cursor (possibly empty).

The answer, on stdout: a first line ``plain``, ``file`` or ``dir`` (the shell then completes file
or directory names itself), then one candidate a line (zsh ``value:description`` with ``:``
escaped, fish ``value<TAB>description``). ``source_SHELL`` prints the script itself.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

SHELLS = ("bash", "zsh", "fish")

# What a value is, by its metavar (the [..] and ... of click's spelling stripped): the metavar is
# the documented name of the value, so it says what completes it. Every metavar of the CLI must be
# here or in FREE_TEXT (tests/test_completions.py), so a new option makes its author decide.
KINDS = {
    "ADDR": "address", "PF": "pf", "PARENT": "mdev_parent", "UUID": "mdev_uuid", "TYPE": "mdev_type",
    "CLASS": "class", "FILE": "file", "PATH": "file", "PROFILE.yaml": "file", "INVENTORY": "file",
}
# Values nothing on the host lists (numbers, names the user makes up, IDs written out; "" an
# option without a metavar): no candidates, and no file names either.
FREE_TEXT = {"", "N", "S", "MiB", "URI", "ARGS", "K=V", "KEY=VALUE", "SELECTOR=NAME", "RESOURCE[:NAME]", "MODE",
             "VVVV", "VENDOR", "VVVV:DDDD", "DRIVER", "NAME", "FORMAT", "TEXT", "INTEGER", "FLOAT"}
# An option whose value is a directory, whatever its metavar.
DIRECTORY_OPTIONS = {"--root"}


def kind_of(metavar: Optional[str], names: Sequence[str] = ()) -> Optional[str]:
    """The completion kind of an option's or argument's value: a KINDS value, or None (free text)."""
    if DIRECTORY_OPTIONS.intersection(names):
        return "dir"
    return KINDS.get(_bare(metavar))


def _bare(metavar: Optional[str]) -> str:
    """``[ADDR]...``, ``[ADDR...]``, ``ADDR...`` → ``ADDR``; ``RESOURCE[:NAME]`` stays."""
    text, before = metavar or "", None
    while text != before:
        before = text
        text = text[:-3] if text.endswith("...") else text
        text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    return text


# ------------------------------------------------------------------ parsing the line
class Line:
    """What the words before the cursor say: the command node reached, the option waiting for its
    value (if any), the positional arguments given, the options given and their values."""

    def __init__(self, tree: dict) -> None:
        self.node = tree
        self.path: List[str] = []
        self.pending: Optional[dict] = None
        self.positional = 0
        self.values: Dict[str, str] = {}
        self.only_args = False

    def feed(self, word: str) -> None:
        if self.pending is not None:
            self._set(self.pending, word)
            self.pending = None
            return
        if word == "--" and not self.only_args:
            self.only_args = True
            return
        if word.startswith("-") and len(word) > 1 and not self.only_args:
            name, eq, value = word.partition("=")
            option = find_option(self.node, name)
            if option is not None and option["value"]:
                if eq:
                    self._set(option, value)
                else:
                    self.pending = option
            return
        if self.positional == 0 and word in self.node["commands"]:
            self.node = self.node["commands"][word]
            self.path.append(word)
            return
        self.positional += 1

    def _set(self, option: dict, value: str) -> None:
        self.values[option["names"][0]] = value
        if option["names"][0] == "--root" and not self.path:
            self.values["root"] = value

    def argument(self) -> Optional[dict]:
        """The argument the next positional word fills (the last one when it takes many)."""
        args = self.node["args"]
        for arg in args[:self.positional + 1]:
            if arg["nargs"] == -1:
                return arg
        return args[self.positional] if self.positional < len(args) else None


def find_option(node: dict, name: str) -> Optional[dict]:
    for option in node["options"]:
        if name in option["names"]:
            return option
    return None


def candidates(words: Sequence[str], current: str, env=None) -> Tuple[str, List[Tuple[str, str]]]:
    """(kind, [(value, description)]) for ``current``, the word under the cursor, after ``words``
    (those after the program name). kind is ``plain``, ``file`` or ``dir``."""
    from .index import TREE

    env = os.environ if env is None else env
    line = Line(TREE)
    for word in words:
        line.feed(word)
    if line.pending is not None:
        return _values(line, line.pending, current, "", env)
    if current.startswith("--") and "=" in current and not line.only_args:
        name, _, value = current.partition("=")
        option = find_option(line.node, name)
        if option is None or not option["value"]:
            return "plain", []
        kind, found = _values(line, option, value, name + "=", env)
        return kind, found
    if current.startswith("-") and not line.only_args:
        found = []
        for option in line.node["options"]:
            found.extend((n, option["help"]) for n in option["names"] if n.startswith(current))
        return "plain", found
    if line.node["commands"] and line.positional == 0:
        return "plain", [(name, _summary(sub["help"])) for name, sub in line.node["commands"].items()
                         if name.startswith(current)]
    argument = line.argument()
    if argument is None:
        return "plain", []
    return _values(line, argument, current, "", env)


def _values(line: Line, param: dict, current: str, prefix: str, env) -> Tuple[str, List[Tuple[str, str]]]:
    if param.get("choices"):
        return "plain", [(prefix + c, "") for c in param["choices"] if c.startswith(current)]
    kind = kind_of(param.get("metavar"), param.get("names", ()))
    if kind in ("file", "dir"):
        return kind, []
    if kind is None:
        return "plain", []
    try:
        found = host_values(kind, lambda: _host(line, env), line.values)
    except Exception:  # noqa: BLE001 - a TAB never prints a traceback into the user's line
        return "plain", []
    return "plain", [(prefix + value, help_) for value, help_ in matching(found, current)]


def _host(line: Line, env):
    from ..host import Host

    root = line.values.get("root") or env.get("HOSTDEV_ROOT") or "/"
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(root)
    return Host(root)


def matching(found: List[Tuple[str, str]], current: str) -> List[Tuple[str, str]]:
    """Values starting with ``current``; an address also without its domain when it is 0000 and
    the user left it out (``65:0`` → ``65:00.0``: a shell replaces only what was typed)."""
    out = []
    for value, help_ in found:
        if value.startswith(current):
            out.append((value, help_))
        elif value.startswith("0000:") and current and value[5:].startswith(current):
            out.append((value[5:], help_))
    return out


def host_values(kind: str, host_of, given: Dict[str, str]) -> List[Tuple[str, str]]:
    """(value, description) pairs of one kind, read from the host ``host_of()`` gives when the
    kind needs one: the question each kind asks is answered by the domain module that owns it."""
    if kind == "class":
        from ..pci import CLASS_ALIASES

        return [(name, "class " + "/".join(codes)) for name, codes in CLASS_ALIASES.items()]
    host = host_of()
    if kind == "address":
        from ..pci import list_addresses

        return [(a, "") for a in list_addresses(host)]
    if kind == "pf":
        from ..pci import list_devices

        return [(d.address, f"PF {d.sriov.num_vfs}/{d.sriov.total_vfs} VFs") for d in list_devices(host)
                if d.sriov and d.sriov.role == "pf"]
    from .. import mdev

    if kind == "mdev_parent":
        return [(p, "mdev parent") for p in mdev.parents(host)]
    if kind == "mdev_uuid":
        return [(m.uuid, f"{m.type_id or ''} on {m.parent}".strip()) for m in mdev.list_mdevs(host)]
    if kind == "mdev_type":
        parent = given.get("--parent")
        found: Dict[str, str] = {}
        for p in [parent] if parent else mdev.parents(host):
            for t in mdev.types(host, p):
                found.setdefault(t.id, t.name or "")
        return sorted(found.items())
    return []


def _summary(text: str) -> str:
    """A command's help as one short line (the first sentence of its first paragraph)."""
    first = " ".join(text.split("\n\n", 1)[0].split())
    return first.split("; ", 1)[0].rstrip(".")


# ------------------------------------------------------------------ the shells
def _split_line(text: str) -> List[str]:
    """The shell words of a partial line, the last being the one under the cursor ("" after a
    space). An open quote is closed, as the user will close it."""
    import shlex

    for tail in ("", "'", '"'):
        try:
            words = shlex.split(text + tail)
        except ValueError:
            continue
        if not text or text[-1].isspace() and not tail:
            words.append("")
        return words
    return text.split() + ([""] if not text or text[-1].isspace() else [])


def _bash_trim(value: str, current: str, wordbreaks: str) -> str:
    """What bash will replace: the part of the word after its last break character."""
    breaks = set(wordbreaks) - set("\"'")
    cut = max((i for i, c in enumerate(current) if c in breaks), default=-1)
    return value[cut + 1:] if cut >= 0 and value.startswith(current[:cut + 1]) else value


def answer(instruction: str, argv: Sequence[str], env, out) -> int:
    """Handle ``_HOSTDEV_COMPLETE=INSTRUCTION`` (``complete_SHELL`` or ``source_SHELL``); 1 for an
    instruction this module does not know."""
    action, _, shell = instruction.partition("_")
    if shell not in SHELLS or action not in ("complete", "source"):
        return 1
    if action == "source":
        out.write(script(shell))
        return 0
    if shell == "bash":
        line = env.get("COMP_LINE", "")
        try:
            point = int(env.get("COMP_POINT", len(line)))
        except ValueError:
            point = len(line)
        words = _split_line(line[:point])[1:]
    else:
        words = list(argv)
    if not words:
        words = [""]
    *before, current = words
    kind, found = candidates(before, current, env)
    lines = [kind]
    for value, help_ in found:
        if shell == "bash":
            lines.append(_bash_trim(value, current, env.get("COMP_WORDBREAKS", "\"'><=;|&(:")))
        elif shell == "zsh":
            lines.append(value.replace("\\", "\\\\").replace(":", "\\:") + (":" + help_ if help_ else ""))
        else:
            lines.append(value + ("\t" + help_ if help_ else ""))
    out.write("\n".join(lines) + "\n")
    return 0


_BASH = r"""# bash completion for hostdev (scripts/gen-completions.py writes it; hostdev answers each TAB)
_hostdev_completion() {
    local IFS=$'\n' cur=${COMP_WORDS[COMP_CWORD]}
    local -a reply
    # hostdev reads the line itself and trims its answers to the text after the last
    # COMP_WORDBREAKS character (":" in PCI addresses), as __ltrim_colon_completions does
    reply=($(env _HOSTDEV_COMPLETE=complete_bash COMP_LINE="$COMP_LINE" COMP_POINT="$COMP_POINT" \
        COMP_WORDBREAKS="$COMP_WORDBREAKS" "$1" 2>/dev/null))
    case ${reply[0]} in
        file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
        dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
        *) COMPREPLY=("${reply[@]:1}") ;;
    esac
}
complete -F _hostdev_completion hostdev
"""

_ZSH = r"""#compdef hostdev
# zsh completion for hostdev (scripts/gen-completions.py writes it; hostdev answers each TAB)
_hostdev() {
    local -a reply specs
    reply=("${(@f)$(_HOSTDEV_COMPLETE=complete_zsh ${words[1]} "${(@Q)words[2,CURRENT-1]}" "${(Q)PREFIX}" \
        2>/dev/null)}")
    case $reply[1] in
        file) _files ;;
        dir) _files -/ ;;
        *) specs=("${(@)reply[2,-1]}"); (( $#specs )) && _describe -t values hostdev specs ;;
    esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _hostdev "$@"   # autoloaded from $fpath: this file is the function
else
    compdef _hostdev hostdev   # sourced
fi
"""

_FISH = r"""# fish completion for hostdev (scripts/gen-completions.py writes it; hostdev answers each TAB)
function __hostdev_complete
    set -l words (commandline -opc)
    set -l reply (env _HOSTDEV_COMPLETE=complete_fish $words (commandline -ct) 2>/dev/null)
    switch "$reply[1]"
        case file
            __fish_complete_path (commandline -ct)
        case dir
            __fish_complete_directories (commandline -ct)
        case '*'
            printf '%s\n' $reply[2..-1]
    end
end
complete -c hostdev -f -a '(__hostdev_complete)'
"""

_SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh, fish)."""
    return _SCRIPTS[shell]


def typer_template(shell: str) -> str:
    """``script`` as a template for typer's --show-completion/--install-completion."""
    return script(shell).replace("%", "%%").replace("hostdev", "%(prog_name)s")


def main(instruction: str) -> int:
    """The console script's TAB path (cli/main.py)."""
    return answer(instruction, sys.argv[1:], os.environ, sys.stdout)
