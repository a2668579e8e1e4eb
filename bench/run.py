#!/usr/bin/env python3
"""Benchmark hostdev: every figure of issue 18 side by side in one run, as ratios of medians.

    .venv/bin/python bench/run.py                     # install as scripts/install.sh does, then measure
    .venv/bin/python bench/run.py --sizes 4096 --runs 5 --no-install   # quicker, with .venv's hostdev

Figures: `devices -o json` vs `lspci -Dnnk` on generated trees (4,096 and 16,384 functions by
default); `--help` and `devices -o json` on this host vs a bare typer app in the same venv; a TAB
(bash's completion of an address) on this host; binding 64 VFs with the simulated kernel.

hostdev runs as scripts/install.sh installs it: a venv made by `python3 -m venv` with
`pip install --upgrade .` (not editable), at bench/out/install (rebuilt from this checkout each run;
--no-install uses .venv instead, --hostdev any command line). The bare typer app runs with the
same venv's python. Each pair of commands runs interleaved (A, B, A, B …: a change of load hits
both alike); the ratio is the median of the per-pair ratios, next to each command's median.
hyperfine is not used. Peak RSS is GNU time's %M of one run. Reads this machine's /sys only to list
it (read-only); the trees are generated under --tree-dir and reused while bench/gen_tree.py is
unchanged.

lspci reads the same tree with ``-A linux-sysfs -O sysfs.path=ROOT/sys/bus/pci``: the option is
the PCI bus directory (default /sys/bus/pci), not the sysfs mount point — pointed at ROOT/sys it
fails with "sysfs_scan: Couldn't parse entry name pci0000:00".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
INSTALL = os.path.join(OUT, "install")  # the venv scripts/install.sh would make at /opt/hostdev
BIN = [VENV_BIN]  # the venv whose hostdev and python are measured
GEN = os.path.join(HERE, "gen_tree.py")
BARE = os.path.join(HERE, "bare_typer_app.py")
SMALL_N = 16

# Children run with byte-code caching on: an installed hostdev has its .pyc files (pip compiles
# them; an editable install writes them on first run). With PYTHONDONTWRITEBYTECODE=1 in the
# environment every run would recompile hostdev's modules (~20 ms) but not typer's.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# ------------------------------------------------------------------ commands
HOSTDEV = [os.path.join(VENV_BIN, "hostdev")]  # the install or --hostdev replaces it


def hostdev_bin() -> str:
    return HOSTDEV[0]


def python_bin() -> str:
    return os.path.join(BIN[0], "python")


def install() -> None:
    """scripts/install.sh's steps without apt and without the /usr/local/bin link: a venv made
    by the system python3, and this checkout pip-installed into it (a wheel, not editable)."""
    start = time.perf_counter()
    if not os.path.exists(os.path.join(INSTALL, "bin", "python")):
        subprocess.run(["python3", "-m", "venv", INSTALL], check=True)
    subprocess.run([os.path.join(INSTALL, "bin", "pip"), "install", "-q", "--upgrade", REPO], check=True,
                   stdout=subprocess.DEVNULL)
    BIN[0] = os.path.join(INSTALL, "bin")
    HOSTDEV[:] = [os.path.join(INSTALL, "bin", "hostdev")]
    print(f"  installed into {INSTALL} in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def cmd_hostdev(root: str) -> list:
    return HOSTDEV + ["--root", root, "devices", "-o", "json"]


def cmd_lspci(root: str) -> list:
    return ["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={root}/sys/bus/pci", "-Dnnk"]


# ------------------------------------------------------------------ trees
def _generator_digest() -> str:
    with open(GEN, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


def ensure_tree(tree_dir: str, n: int) -> str:
    root = os.path.join(tree_dir, str(n))
    stamp = os.path.join(root, ".gen_tree")
    want = f"{n} {_generator_digest()}"
    try:
        with open(stamp) as handle:
            if handle.read().strip() == want:
                return root
    except OSError:
        pass
    os.makedirs(root, exist_ok=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, GEN, root, str(n), "--force"], check=True)
    print(f"  generated N={n} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    with open(stamp, "w") as handle:
        handle.write(want + "\n")
    return root


# ------------------------------------------------------------------ measuring
def peak_rss_kib(argv: list) -> int:
    """Peak RSS (KiB) of one run of argv, its output discarded.

    Uses GNU time (``/usr/bin/time -f %M``): Linux keeps ru_maxrss across execve, so a child
    forked straight from this (large) Python process would report at least our own peak.
    """
    gnu_time = "/usr/bin/time"
    if os.access(gnu_time, os.X_OK):
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
            subprocess.run([gnu_time, "-f", "%M", "-o", out.name] + argv, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=ENV)
            return int(out.read().split()[-1])
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss  # an upper bound: see above


def run_once(argv: list, env: dict) -> tuple:
    """(wall-clock ms, CPU ms: user + system of the child and its children) of one run. The CPU
    time moves much less than the wall clock when other work shares the machine."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, argv)
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def time_alone(argv: list, runs: int, warmup: int, env: Optional[dict] = None) -> list:
    return [t for i, t in enumerate(run_once(argv, env or ENV) for _ in range(warmup + runs)) if i >= warmup]


def time_interleaved(argv_a: list, argv_b: list, runs: int, warmup: int) -> tuple:
    """A, B, A, B …: on a shared machine a change of load hits both commands alike."""
    times_a, times_b = [], []
    for i in range(warmup + runs):
        a, b = run_once(argv_a, ENV), run_once(argv_b, ENV)
        if i >= warmup:
            times_a.append(a)
            times_b.append(b)
    return times_a, times_b


def summary(argv: list, times: list) -> dict:
    """Medians of wall-clock and CPU ms over ``times`` ((wall, cpu) pairs), and peak RSS."""
    walls = [w for w, _ in times]
    return {"median": statistics.median(walls), "min": min(walls), "cpu": statistics.median(c for _, c in times),
            "runs": len(walls), "rss": peak_rss_kib(argv), "times": times}


def pair(argv_a: list, argv_b: list, runs: int, warmup: int) -> tuple:
    """(summary of A, summary of B, median of the per-pair wall-clock ratios A/B, the same for CPU)."""
    times_a, times_b = time_interleaved(argv_a, argv_b, runs, warmup)
    ratio = statistics.median(a[0] / b[0] for a, b in zip(times_a, times_b))
    cpu_ratio = statistics.median(a[1] / b[1] for a, b in zip(times_a, times_b))
    return summary(argv_a, times_a), summary(argv_b, times_b), ratio, cpu_ratio


# ------------------------------------------------------------------ sanity
def lspci_devices(root: str) -> dict:
    """address → (vendor:device, driver) from lspci -Dnnk."""
    out = subprocess.run(cmd_lspci(root), capture_output=True, text=True, check=True, env=ENV).stdout
    found, current = {}, None
    for line in out.splitlines():
        if line and not line[0].isspace():
            current = line.split()[0]
            # "... Name [10de:1eb8] (rev a1)": the last [vvvv:dddd]
            ids = [w.strip("[]") for w in line.split() if len(w) == 11 and w.startswith("[") and w[5] == ":"]
            found[current] = [ids[-1] if ids else None, None]
        elif current and line.strip().startswith("Kernel driver in use:"):
            found[current][1] = line.split(":", 1)[1].strip()
    return {k: tuple(v) for k, v in found.items()}


def hostdev_devices(root: str) -> dict:
    out = subprocess.run(cmd_hostdev(root), capture_output=True, text=True, check=True, env=ENV).stdout
    return {d["address"]: (d["pci_id"] if "pci_id" in d else f"{d['vendor_id']}:{d['device_id']}", d["driver"],
                           d["vendor_name"]) for d in json.loads(out)["devices"]}


def sanity(root: str, n: int) -> str:
    ls = lspci_devices(root)
    hd = hostdev_devices(root)
    mismatched = [a for a in ls if a not in hd or hd[a][:2] != ls[a]]
    unnamed = sum(1 for v in hd.values() if not v[2])
    ok = len(ls) == len(hd) == n and not mismatched and not unnamed
    line = (f"N={n}: hostdev {len(hd)} devices, lspci {len(ls)} functions, "
            f"{len(mismatched)} differ in address/ID/driver, {unnamed} without vendor name: "
            f"{'OK' if ok else 'MISMATCH'}")
    if mismatched:
        line += f" (first: {mismatched[0]} lspci={ls[mismatched[0]]} hostdev={hd.get(mismatched[0])})"
    return line


# ------------------------------------------------------------------ report
def machine() -> list:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    py = subprocess.run([python_bin(), "-c", "import sys, importlib.metadata as m; "
                         "print(sys.version.split()[0], m.version('typer'), m.version('click'), m.version('rich'))"],
                        capture_output=True, text=True).stdout.split()
    lspci_v = subprocess.run(["lspci", "--version"], capture_output=True, text=True).stdout.strip()
    hf = shutil.which("hyperfine")
    hf_v = subprocess.run([hf, "--version"], capture_output=True, text=True).stdout.strip() if hf else "not installed"
    return [f"- CPU: {model}, nproc {os.cpu_count()}",
            f"- kernel {platform.release()}, Python {py[0] if py else '?'} ({os.path.relpath(BIN[0], REPO)}), "
            f"typer {py[1] if py else '?'}, "
            f"click {py[2] if py else '?'}, rich {py[3] if py else '?'}",
            f"- {lspci_v}; {hf_v}"]


def fmt_ms(r: dict) -> str:
    return f"{r['median']:.1f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def tab_env(line: str) -> dict:
    """The environment completions/hostdev.bash gives hostdev at a TAB after ``line``."""
    return dict(ENV, _HOSTDEV_COMPLETE="complete_bash", COMP_LINE=line, COMP_POINT=str(len(line)),
                COMP_WORDBREAKS="\"'><=;|&(:")


def time_bind(runs: int, tree_dir: str) -> dict:
    """``hostdev bind`` of 64 VFs with the simulated kernel (tests/ansible_sim.py: hostdev with a
    SimKernel behind --root), on a fresh tree each run (built untimed by bench/vf_host.py)."""
    times = []
    for _ in range(runs + 1):
        root = tempfile.mkdtemp(prefix="bind-", dir=tree_dir) + "/root"
        vfs = subprocess.run([python_bin(), os.path.join(HERE, "vf_host.py"), root], check=True,
                             capture_output=True, text=True, env=ENV).stdout.split()
        assert len(vfs) == 64, vfs
        argv = [python_bin(), os.path.join(REPO, "tests", "ansible_sim.py"), "--root", root, "bind", *vfs,
                "-o", "json"]
        times.append(run_once(argv, ENV))
        shutil.rmtree(os.path.dirname(root))
    times = times[1:]  # the first run warms the page cache and the byte-code
    return {"median": statistics.median(w for w, _ in times), "cpu": statistics.median(c for _, c in times),
            "runs": runs, "times": times}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--runs", type=int, default=10, help="interleaved pairs per figure (default 10)")
    parser.add_argument("--big-runs", type=int, default=5, help="pairs at N >= 16384 (default 5)")
    parser.add_argument("--bind-runs", type=int, default=5, help="timed binds of 64 VFs (default 5)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tree-dir", default=os.path.join(OUT, "trees"))
    parser.add_argument("--no-install", action="store_true",
                        help="measure .venv's hostdev (editable) instead of installing this checkout")
    parser.add_argument("--results", default=os.path.join(OUT, "results.md"), metavar="FILE",
                        help="where to write the Markdown report (default bench/out/results.md; "
                             "the JSON goes next to it)")
    parser.add_argument("--hostdev", metavar="CMD",
                        help="command line that runs hostdev (default: the installed one), e.g. to time a patch")
    args = parser.parse_args(argv)
    os.makedirs(args.tree_dir, exist_ok=True)
    if not args.no_install and not args.hostdev:
        install()
    if args.hostdev:
        import shlex

        HOSTDEV[:] = shlex.split(args.hostdev)
    for tool in ("lspci", hostdev_bin(), python_bin()):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found")
    load_start = os.getloadavg()
    print("sanity (hostdev JSON vs lspci -Dnnk on the same tree):", file=sys.stderr)
    checks, rows, results = [], [], {}

    def row(figure, a, reference, b, ratio, cpu_ratio, goal, ok):
        results[figure] = {"hostdev": a, "reference": b, "ratio": ratio, "cpu_ratio": cpu_ratio}
        b_cpu = f"{b['cpu']:.1f}" if b else "—"
        ratios = [f"{r:.2f}×" if r else "—" for r in (ratio, cpu_ratio)]
        rows.append(f"| {figure} | {fmt_ms(a)} | {a['cpu']:.1f} | {reference} | {fmt_ms(b) if b else '—'} "
                    f"| {b_cpu} | {ratios[0]} | {ratios[1]} | {goal} | {verdict(ok)} |")
        print(f"  {figure}: {fmt_ms(a)} ms" + (f" vs {fmt_ms(b)} ms, {ratio:.2f}×" if b else ""), file=sys.stderr)

    for n in args.sizes:
        root = ensure_tree(args.tree_dir, n)
        checks.append(sanity(root, n))
        print("  " + checks[-1], file=sys.stderr)
        hd, ls, ratio, cpu = pair(cmd_hostdev(root), cmd_lspci(root), args.big_runs if n >= 16384 else args.runs,
                                  args.warmup)
        row(f"`devices -o json`, {n:,} functions (generated tree)", hd, "`lspci -Dnnk`", ls, ratio, cpu, "≤ 1.0×",
            ratio <= 1.0)
    for name, argv_a, argv_b in (("`--help`", HOSTDEV + ["--help"], [python_bin(), BARE, "--help"]),
                                 ("`devices -o json` on this host", HOSTDEV + ["devices", "-o", "json"],
                                  [python_bin(), BARE, "hello"])):
        a, b, ratio, cpu = pair(argv_a, argv_b, args.runs, args.warmup)
        row(name, a, f"bare typer `{argv_b[-1]}`", b, ratio, cpu, "≤ 1.15×", ratio <= 1.15)
    line = "hostdev bind 0000:"
    tab = summary(HOSTDEV, time_alone(HOSTDEV, args.runs, args.warmup, tab_env(line)))
    row(f"TAB: `{line}<TAB>` on this host (bash)", tab, "—", None, None, None, "≤ 150 ms", tab["median"] <= 150)
    if args.sizes:
        big = ensure_tree(args.tree_dir, max(args.sizes))
        line = f"hostdev --root {big} bind 0000:0"
        tab = summary(HOSTDEV, time_alone(HOSTDEV, args.runs, args.warmup, tab_env(line)))
        row(f"TAB: an address on the {max(args.sizes):,}-function tree (`--root` on the line)", tab, "—", None,
            None, None, "≤ 150 ms", tab["median"] <= 150)
    bind = time_bind(args.bind_runs, args.tree_dir)
    results["bind 64 VFs"] = bind
    rows.append(f"| `bind` 64 VFs (simulated kernel, journal and verification included) | {fmt_ms(bind)} "
                f"| {bind['cpu']:.1f} | — | — | — | — | — | — | (no goal) |")
    print(f"  bind 64 VFs: {fmt_ms(bind)} ms", file=sys.stderr)
    load = os.getloadavg()
    lines = ["## Machine", ""] + machine() + [
        f"- hostdev run as: `{' '.join(HOSTDEV)}`" + ("" if args.hostdev or args.no_install
                                                      else " (installed as scripts/install.sh does)"),
        f"- load average at start {load_start[0]:.2f}, at end {load[0]:.2f} (1 min; nproc {os.cpu_count()}): "
        "other work on the machine makes every number noisier",
        f"- interleaved pairs: {args.runs} per figure ({args.big_runs} at N ≥ 16,384) after {args.warmup} warm-up "
        f"pairs; TABs {args.runs} runs; bind {args.bind_runs} runs on fresh trees", "",
        "## Figures", "", "Medians in ms, start-up included, output to /dev/null: wall clock (the goals) and CPU "
        "(user + system, steadier on a shared machine); each ratio is the median of the per-pair ratios.", "",
        "| figure | hostdev ms | hostdev CPU ms | reference | reference ms | reference CPU ms | ratio | CPU ratio "
        "| goal | |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|---|"] + rows
    lines += ["", "## Sanity", ""] + [f"- {c}" for c in checks] + [""]
    report = "\n".join(lines)
    print(report)
    with open(args.results, "w") as handle:
        handle.write(report)
    with open(os.path.splitext(args.results)[0] + ".json", "w") as handle:
        json.dump({"figures": results, "sanity": checks}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
