#!/usr/bin/python
# A small Ansible module over hostdev's JSON (docs/ansible.md). GPL-2.0-or-later, as hostdev.
"""Run one hostdev command on the target and report what Ansible users expect from it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: hostdev
short_description: Run a hostdev command and report its JSON result
description:
  - Runs C(hostdev ARGV -o json) on the target (never through a shell) and reports hostdev's own
    C(changed), C(reboot_required) and notes.
  - Check mode runs the command with C(--dry-run), so C(changed) says what would change; a command
    that only reads (O(reads_only)) runs as it is in check mode too.
  - C(--diff) shows what would change (the boot configuration's unified diff, else the plan's steps).
  - hostdev's notes, and whatever it says on stderr, are returned in C(notes) and shown as warnings.
  - A failed command fails the task with hostdev's one-line error (and its fix), never "changed".
options:
  argv:
    description: The hostdev command line after C(hostdev), e.g. C([iommu, enable, --passthrough]).
    type: list
    elements: str
    required: true
  executable:
    description: How to run hostdev, split like a shell command line (no shell is used).
    type: str
    default: hostdev
  stdin:
    description: Text given on standard input (C(hostdev apply -)).
    type: str
  reads_only:
    description:
      - The command only reads (check, inventory, kubevirt …) - run it in check mode too, never report changed.
    type: bool
    default: false
  ok_rcs:
    description: Exit codes that are not failures (C([0, 1]) for C(check), whose 1 means not ready).
    type: list
    elements: int
    default: [0]
"""

RETURN = r"""
json: {description: hostdev's JSON output (docs/json.md), null when it printed none, type: raw}
exit_code: {description: "hostdev's exit code (docs/exit-codes.md; not rc: Ansible fails any rc but 0)", type: int}
reboot_required: {description: the change takes effect after a reboot, type: bool}
notes: {description: hostdev's notes and stderr messages, type: list}
cmd: {description: the command run, type: list}
"""

import json  # noqa: E402 - Ansible's layout: the documentation first
import shlex  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def diff_text(data):
    """What would change, for --diff: the boot configuration's diff, else the plan's steps."""
    if not isinstance(data, dict):
        return ""
    if data.get("diff"):
        return data["diff"]
    actions = data.get("actions") or []
    return "".join(f"{action.get('action')}\n" for action in actions)


def main():
    module = AnsibleModule(
        argument_spec=dict(argv=dict(type="list", elements="str", required=True),
                           executable=dict(type="str", default="hostdev"),
                           stdin=dict(type="str"),
                           reads_only=dict(type="bool", default=False),
                           ok_rcs=dict(type="list", elements="int", default=[0])),
        supports_check_mode=True)
    params = module.params
    argv = list(params["argv"])
    if not {"-o", "--output"} & set(argv):
        argv += ["-o", "json"]
    if module.check_mode and not params["reads_only"] and "--dry-run" not in argv:
        argv.append("--dry-run")
    cmd = shlex.split(params["executable"]) + argv
    rc, out, err = module.run_command(cmd, data=params["stdin"], binary_data=True)
    try:
        data = json.loads(out) if out.strip() else None
    except ValueError:
        data = None
    error = None
    notes = list(data.get("notes") or []) if isinstance(data, dict) else []
    for line in err.splitlines():
        if line.startswith("hostdev: error: "):
            error = line[len("hostdev: error: "):]
        elif line.strip() and line.strip() not in notes:
            notes.append(line.strip())
    # not "rc": Ansible fails any result whose rc is not 0, and check answers 1 for "not ready"
    result = dict(exit_code=rc, cmd=cmd, json=data, stdout=out, stderr=err, notes=notes,
                  reboot_required=bool(isinstance(data, dict) and data.get("reboot_required")))
    if rc not in params["ok_rcs"]:
        if isinstance(data, dict) and data.get("message"):
            error = data["message"] + (f" ({data['fix']})" if data.get("fix") else "")
        module.fail_json(msg=f"hostdev {' '.join(argv)}: " + (error or f"exit {rc}"), changed=False, **result)
    changed = not params["reads_only"] and isinstance(data, dict) and bool(data.get("changed"))
    if module._diff and changed:
        result["diff"] = {"prepared": diff_text(data)}
    for note in notes:
        module.warn(note)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
