"""hostdev on a fake root with the simulated kernel: one "host" of the Ansible playbook test
(tests/test_ansible.py). Usage: python tests/ansible_sim.py --root ROOT COMMAND [ARGS...].
Test use only: it never touches this machine, only the tree under ROOT."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostdev.cli import context  # noqa: E402
from hostdev.cli.app import main  # noqa: E402
from hostdev.host import Host  # noqa: E402
from tests.fakesys.simkernel import SimKernel  # noqa: E402

if __name__ == "__main__":
    root = sys.argv[sys.argv.index("--root") + 1]
    if root in ("", "/"):
        sys.exit("tests/ansible_sim.py: --root must be a fake root, never /")
    context.host_factory = lambda _root: Host(root, kernel=SimKernel(root))
    main()
