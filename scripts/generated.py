"""Files the repository generates from the code (completions, the man page, the command pages):
write them, or with --check say which are stale. Shared by the scripts/gen-*.py."""
import sys
from pathlib import Path
from typing import Dict


def sync(files: Dict[Path, str], script: str, argv=None) -> int:
    """Write each path's text; with ``--check`` in ``argv`` write nothing and return 1 (naming
    the stale files on stderr) when any file differs."""
    if "--check" in (sys.argv if argv is None else argv):
        stale = [str(p) for p, text in files.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("stale: " + ", ".join(stale) + f" (run scripts/{script})", file=sys.stderr)
            return 1
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0
