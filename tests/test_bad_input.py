"""Bad input, every command: exit 2, one line on stderr, no traceback, nothing written, at once
(issue #14). A table of the cases the issue found, then property tests over each command's
free-text inputs. Hosts: tests/fakesys scenarios (amd_host has a T4 with vGPU types)."""
import hashlib
import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakesys.scenarios import EXISTING_VGPU_UUID


def tree_digest(root: str) -> str:
    """Names, contents, link targets and modes of everything under ``root``."""
    digest = hashlib.sha256()
    for base, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(base, name)
            info = os.lstat(path)
            digest.update(f"{os.path.relpath(path, root)} {info.st_mode:o}\n".encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def refused(sim, *argv, code=2, seconds=10.0):
    """Run ``argv``; assert the clean refusal and return the one stderr line."""
    before = tree_digest(sim.root)
    started = time.monotonic()
    rc, out, err = sim.invoke(*argv)
    elapsed = time.monotonic() - started
    assert rc == code, (argv, rc, out, err)
    assert "Traceback" not in err + out and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hostdev: error: "), err
    assert tree_digest(sim.root) == before, f"{argv} changed the host"
    assert elapsed < seconds, f"{argv} took {elapsed:.1f} s"
    return lines[0]


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_YAML = "a:\n" + "".join("  " * i + "- \n" for i in range(1, 300))


@pytest.fixture
def amd(sim_of):
    return sim_of("amd_host")


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return str(path)


@pytest.mark.parametrize("argv, says", [
    (["mdev", "create", "--parent", "0000:41:00.0", "--type", "nvidia-222", "--count", "100000000"],
     "--count 100000000 is out of range"),
    (["mdev", "remove", "--parent", "0000:41:00.1"], "0000:41:00.1 is not an mdev parent"),
    (["bind", "0000:41:00.0", "--driver", ""], "invalid driver name ''"),
    (["bind", "0000:41:00.0", "--driver", "../../x"], "invalid driver name '../../x'"),
    (["bind", "0000:41:00.0", "--driver", "vfio-pci/../x", "--dry-run"], "invalid driver name"),
    (["iommu", "enable", "--arg", "="], "invalid kernel argument '='"),
    (["iommu", "enable", "--arg", "=1"], "invalid kernel argument '=1'"),
    (["kubevirt", "vmi", "--gpu", "nvidia.com/T4", "--format", "vm", "--memory", "lots"], "invalid --memory 'lots'"),
    (["kubevirt", "vmi", "--gpu", "nvidia.com/T4", "--memory", "0"], "invalid --memory '0'"),
    (["inventory", "--label", "bad key=x"], "label key 'bad key'"),
    (["inventory", "--label", "-gpu=x"], "label key '-gpu'"),
    (["inventory", "--label", "Example.COM/gpu=x"], "the prefix before '/' must be a DNS subdomain"),
    (["inventory", "--label", "gpu=" + "x" * 64], "label value"),
    (["kubevirt", "permitted", "--mdev-config", "--node-selector", "a/b/c=1"], "label key 'a/b/c'"),
])
def test_bad_options_are_refused_cleanly(amd, argv, says):
    assert says in refused(amd, *argv)


@pytest.mark.parametrize("name, text, says", [
    ("bomb.yaml", BILLION_LAUGHS, "expands to more than 200000 values"),
    ("deep.json", DEEP_JSON, "nested more than 64 levels deep (line 1)"),
    ("deep.yaml", DEEP_YAML, "nested more than 64 levels deep"),
    ("self.yaml", "a: &a [*a]\n", "an alias inside its own anchor"),
    ("big.yaml", "# " + "x" * (16 * 1024 * 1024) + "\n", "more than the 16777216 bytes"),
    ("latin1.yaml", b"devices: [] # \xe9t\xe9\n", "is not UTF-8 text (byte 14)"),
    ("count.yaml", 'mdevs:\n  - parent: "0000:41:00.0"\n    type: nvidia-222\n    count: -3\n',
     "profile: mdevs[0].count -3 is out of range"),
    ("base60.yaml", "devices:\n  - address: 0000:41:00.0\n",
     'devices[0].address: YAML reads an unquoted 0000:41:00.0 as a base-60 number: quote it ("0000:41:00.0")'),
    ("base60-parent.yaml", "mdevs:\n  - parent: 0000:41:00.0\n    type: nvidia-222\n", "quote it"),
])
def test_bad_profiles_and_crs_are_refused_cleanly(amd, tmp_path, name, text, says):
    path = _file(tmp_path, name, text)
    assert says in refused(amd, "apply", path)
    if name in ("bomb.yaml", "deep.json", "deep.yaml", "self.yaml", "big.yaml", "latin1.yaml"):
        assert says in refused(amd, "kubevirt", "permitted", "--merge-with", path)
        inventory = refused(amd, "kubevirt", "merge", path)  # inventories are JSON
        assert says in inventory if name in ("deep.json", "big.yaml", "latin1.yaml") else \
            "is not valid JSON" in inventory


@pytest.mark.parametrize("path, text, says", [
    ("/var/lib/hostdev/bindings.json", "{not json", "/var/lib/hostdev/bindings.json: is not valid JSON"),
    ("/var/lib/hostdev/bindings.json", '{"devices": []}', 'expected an object with a "devices" object'),
    ("/var/lib/hostdev/bindings.json", '{"devices": {"0000:41:00.0": {"driver": 3}}}',
     "devices.0000:41:00.0: expected an object with driver and driver_override"),
    ("/var/lib/hostdev/bindings.json", '{"devices": {"nope": {"driver": "nvidia"}}}',
     "devices: 'nope' is not a PCI address"),
    ("/var/lib/hostdev/boot-args.json", '{"args": "intel_iommu=on"}',
     "/var/lib/hostdev/boot-args.json: args: expected a list of kernel arguments"),
    ("/var/lib/hostdev/boot-args.json", "[" * 1000, "nested more than 64 levels deep"),
])
def test_a_corrupt_record_names_the_file(amd, path, text, says):
    os.makedirs(os.path.dirname(amd.root + path), exist_ok=True)
    with open(amd.root + path, "w") as handle:
        handle.write(text)
    command = ["restore", "--all"] if "bindings" in path else ["iommu", "disable"]
    assert says in refused(amd, *command)


def test_an_inventory_with_a_bad_label_is_refused(amd, tmp_path):
    rc, out, err = amd.invoke("inventory", "--hostname", "node1", "-o", "json")
    assert rc == 0, err
    doc = json.loads(out)
    doc["labels"] = {"node role": "gpu"}
    assert "label key 'node role'" in refused(amd, "kubevirt", "merge", _file(tmp_path, "inv.json", json.dumps(doc)))


def test_a_device_named_by_address_and_by_id_converges(amd, tmp_path):
    # the example of docs/ansible.md: one T4, named by its address and by its ID
    profile = _file(tmp_path, "p.yaml", 'devices:\n  - address: "0000:41:00.0"\n    persist: true\n'
                                        '  - id: "10de:1eb8"\n')
    amd.kernel.release("/dev/vfio/8")  # the existing vGPU is not in use
    rc, out, err = amd.invoke("apply", profile, "-o", "json")
    assert rc == 0, err
    first = json.loads(out)
    assert first["changed"] is True
    assert [s["devices"] for s in first["sections"]][1] == []
    assert os.path.realpath(f"{amd.root}/sys/bus/pci/devices/0000:41:00.0/driver").endswith("/vfio-pci")
    before = tree_digest(amd.root)
    rc, out, err = amd.invoke("apply", profile, "-o", "json")
    assert rc == 0, err
    assert json.loads(out)["changed"] is False and json.loads(out)["actions"] == []
    assert tree_digest(amd.root) == before


# ---------------------------------------------------------------- property tests
PROPERTY = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@PROPERTY
@given(text=st.text(max_size=300))
def test_any_profile_text_is_planned_or_refused_cleanly(sim, tmp_path, text):
    path = _file(tmp_path, "any.yaml", text)
    before = tree_digest(sim.root)
    rc, out, err = sim.invoke("apply", path, "--dry-run", "-o", "json")
    assert rc in (0, 2, 3, 4), (text, rc, err)
    assert "Traceback" not in err and "internal error" not in err
    if rc:
        assert len(err.strip().splitlines()) == 1, err
    assert tree_digest(sim.root) == before


@PROPERTY
@given(text=st.text(max_size=300))
def test_any_merge_with_text_is_merged_or_refused_cleanly(sim, tmp_path, text):
    path = _file(tmp_path, "kv.yaml", text)
    rc, out, err = sim.invoke("kubevirt", "permitted", "--merge-with", path)
    assert rc in (0, 2), (text, rc, err)
    assert "Traceback" not in err and "internal error" not in err
    if rc:
        assert len(err.strip().splitlines()) == 1, err


_WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@PROPERTY
@given(driver=_WORDS)
def test_any_driver_name_is_used_or_refused_before_anything_is_written(sim, driver):
    before = tree_digest(sim.root)
    rc, out, err = sim.invoke("bind", sim.t4, "--driver", driver, "--dry-run")
    assert rc in (0, 2, 3), (driver, rc, err)
    assert "Traceback" not in err and "internal error" not in err
    assert tree_digest(sim.root) == before


@PROPERTY
@given(arg=_WORDS)
def test_any_kernel_argument_is_planned_or_refused(sim, arg):
    before = tree_digest(sim.root)
    rc, out, err = sim.invoke("iommu", "enable", "--arg", arg, "--dry-run")
    assert rc in (0, 2, 3), (arg, rc, err)
    assert "Traceback" not in err and "internal error" not in err
    assert tree_digest(sim.root) == before


@PROPERTY
@given(memory=_WORDS, label=_WORDS)
def test_any_memory_or_label_gives_a_valid_manifest_or_a_refusal(sim, memory, label):
    import re

    rc, out, err = sim.invoke("kubevirt", "vmi", "--gpu", "nvidia.com/T4", "--format", "vm", "--memory", memory)
    assert rc in (0, 2) and "Traceback" not in err
    if rc == 0:  # the quantity grammar of Kubernetes, written out independently
        assert re.fullmatch(r"\+?(\d+\.?\d*|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?\d+)?", memory)
        assert float(re.match(r"\+?(\d+\.?\d*|\.\d+)", memory).group(1)) > 0
    rc, out, err = sim.invoke("inventory", "--hostname", "node1", "--label", f"{label}=v", "-o", "json")
    assert rc in (0, 2) and "Traceback" not in err
    if rc == 0:
        name = label.strip().rpartition("/")[2]
        assert 1 <= len(name) <= 63 and name[0].isascii() and name[0].isalnum() and name[-1].isalnum()


def test_existing_vgpu_is_known(amd):
    # a sanity anchor for the table above: the amd_host scenario's T4 is an mdev parent
    rc, out, err = amd.invoke("mdev", "list", "-o", "json")
    assert rc == 0 and EXISTING_VGPU_UUID in out
