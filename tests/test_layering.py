"""The dependency direction of STYLE.md: errors ← model ← host ← domain ← plan ← cli."""
import ast
import pathlib

PKG = pathlib.Path(__file__).resolve().parent.parent / "hostdev"
LAYER = {"errors": 0, "model": 1, "render": 2, "host": 2, "cli": 9}
# domain modules sit between host and cli
DEFAULT_DOMAIN_LAYER = 5


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            mod = (node.module or "").split(".")[0]
            if mod:
                yield mod
            else:
                yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hostdev."):
                    yield alias.name.split(".")[1]


def test_no_module_imports_upward_and_nothing_imports_cli():
    problems = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        name = rel.parts[0].removesuffix(".py")
        if name in ("__init__", "__main__"):
            continue
        mine = LAYER.get(name, DEFAULT_DOMAIN_LAYER)
        for target in _imports(path):
            if name == "cli" and len(rel.parts) > 1:
                continue  # cli may import anything of ours
            theirs = LAYER.get(target, DEFAULT_DOMAIN_LAYER)
            if target == "cli" or theirs > mine or (name == "render" and target not in ("model",)):
                problems.append(f"{rel} imports {target}")
    assert problems == []


def test_no_shell_true_and_no_print_or_sys_exit_below_cli():
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        assert "shell=True" not in text, path
        if "cli" not in path.relative_to(PKG).parts and path.name != "__main__.py":
            tree = ast.parse(text)
            calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
            names = {c.id for c in calls if isinstance(c, ast.Name)}
            attrs = {f"{c.value.id}.{c.attr}" for c in calls
                     if isinstance(c, ast.Attribute) and isinstance(c.value, ast.Name)}
            assert "print" not in names, path
            assert "sys.exit" not in attrs, path


def test_only_host_opens_files_or_runs_commands():
    for path in PKG.rglob("*.py"):
        if path.name == "host.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id == "open":
                    raise AssertionError(f"{path}: open() outside host.py")
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                        (f.value.id, f.attr) in {("os", "open"), ("os", "listdir"), ("os", "readlink"),
                                                 ("subprocess", "run"), ("subprocess", "Popen"), ("os", "scandir")}:
                    raise AssertionError(f"{path}: {f.value.id}.{f.attr} outside host.py")


# Pure modules: facts in, answers out. They import none of the modules that reach the machine
# (host and everything built on it) and no standard-library module that does I/O.
PURE = ("errors", "model", "rules", "domainxml", "kubevirt", "guestinit", "documents")
IO_STDLIB = {"os", "subprocess", "pathlib", "shutil", "socket", "io", "tempfile", "glob", "sys", "fcntl"}


def test_pure_modules_do_no_io():
    problems = []
    for name in PURE:
        path = PKG / f"{name}.py"
        for target in _imports(path):
            if target not in PURE:
                problems.append(f"{name}.py imports hostdev.{target}")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                problems.extend(f"{name}.py imports {a.name}" for a in node.names
                                if a.name.split(".")[0] in IO_STDLIB and name != "errors")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and name != "errors":
                if (node.module or "").split(".")[0] in IO_STDLIB:
                    problems.append(f"{name}.py imports from {node.module}")
    # errors.py may use os.strerror for messages, nothing else of os
    assert problems == []


def test_command_modules_do_not_import_each_other():
    """hostdev/cli/*: each command module imports the shared context, never another command;
    only app.py, which assembles the typer app, imports them all."""
    problems = []
    # the rest is the machinery around the commands: the entry point, the TAB path and its index,
    # the listing's code that its fast path and cli/devices.py share
    commands = {p.stem for p in (PKG / "cli").glob("*.py")} - {"__init__", "app", "context", "main", "complete",
                                                                "index", "listing"}
    for path in (PKG / "cli").glob("*.py"):
        if path.stem in ("app", "__init__"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                problems.extend(f"cli/{path.name} imports cli/{n}" for n in names if n in commands)
    assert problems == []


def test_architecture_names_every_module_and_the_pure_ones():
    doc = (PKG.parent / "docs" / "architecture.md").read_text()
    missing = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") and str(p.relative_to(PKG)) not in doc]
    assert missing == []
    pure_section = doc.split("# pure", 1)[1].split("# the door", 1)[0]
    named = {line.split()[0][:-3] for line in pure_section.splitlines() if line.split()[:1]
             and line.split()[0].endswith(".py")}
    assert named == set(PURE)
