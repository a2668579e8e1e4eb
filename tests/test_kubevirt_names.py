"""KubeVirt resource-name derivation (hostdev/kubevirt.py's naming functions): cases written for
the survivors of the mutation run over them (docs/testing.md). Expected names are worked out by
hand from the rules quoted in each function's docstring (the NVIDIA plugin's getDeviceName and
readVgpuIDFromFile, KubeVirt's own plugin, k8s IsExtendedResourceName)."""

import pytest

from hostdev import kubevirt as kv


def test_an_invalid_resource_name_is_refused_naming_the_name_the_rule_and_the_fix():
    with pytest.raises(kv.InvalidResourceNameError) as caught:
        kv.check_resource_name("nvidia.com", fix="name it DOMAIN/NAME")
    assert caught.value.message == ("invalid resource name 'nvidia.com': a device resource needs a domain: "
                                    "DOMAIN/NAME, e.g. nvidia.com/TU104GL_TESLA_T4")
    assert caught.value.fix == "name it DOMAIN/NAME"
    with pytest.raises(kv.InvalidResourceNameError) as caught:
        kv.check_resource_name("requests.example.com/gpu")
    assert caught.value.message == ("invalid resource name 'requests.example.com/gpu': it starts with "
                                    "'requests.', the prefix Kubernetes reserves for quota names")
    assert caught.value.fix == "pass --resource-name SELECTOR=DOMAIN/NAME with a valid name"
    assert kv.check_resource_name("nvidia.com/TU104GL_TESLA_T4") == "nvidia.com/TU104GL_TESLA_T4"


def test_a_legacy_name_without_pci_ids_text_is_the_lower_case_device_id():
    assert kv.nvidia_legacy_pci_name("1EB8", None) == "nvidia.com/1eb8"


@pytest.mark.parametrize("type_name, expected", [
    ("GRID T4-1Q\n", "nvidia.com/GRID_T4-1Q"),
    # strings.Trim(name, "\n") trims newlines only: a leading space becomes "_" like any run
    (" GRID T4-1Q\n", "nvidia.com/_GRID_T4-1Q"),
    # and letters at either end stay (a made-up type name ending in X)
    ("XGRID T4-1QX\n", "nvidia.com/XGRID_T4-1QX"),
])
def test_nvidia_vgpu_names(type_name, expected):
    assert kv.nvidia_mdev_name(type_name) == expected


@pytest.mark.parametrize("pci_name, expected", [
    # NVIDIA's rules give "_RTX_A6000_X_" ("." → "_"), invalid at both ends: trimmed to the
    # characters a resource name may start and end with
    (".RTX A6000 X.", "nvidia.com/RTX_A6000_X"),
    # 65 characters ("A" * 62 + "_BC"): cut to 63 ("A" * 62 + "_"), then the "_" goes
    ("A" * 62 + " BC", "nvidia.com/" + "A" * 62),
])
def test_kubevirt_names_an_nvidia_device_validly_when_the_plugin_name_is_not(pci_name, expected):
    assert kv.resource_name_problem("nvidia.com/" + pci_name.replace(" ", "_").replace(".", "_")) is not None
    assert kv.kubevirt_pci_name("10de", "2230", pci_name) == expected


def test_a_device_of_an_unknown_vendor_without_a_name_is_named_by_its_ids_in_upper_case():
    assert kv.kubevirt_pci_name("1af4", "105a", None) == "pci.hostdev.io/1AF4_105A"


def test_an_nvidia_vgpu_type_gets_the_plugins_name_whitespace_runs_as_one_underscore():
    # the NVIDIA plugin's name (\s+ → "_"), not the fallback (each space → "_": GRID__T4-1Q)
    assert kv.kubevirt_mdev_name("GRID  T4-1Q", "10de") == "nvidia.com/GRID_T4-1Q"


def test_a_name_in_the_kubernetes_io_domains_is_refused_as_reserved():
    assert kv.resource_name_problem("devices.kubernetes.io/gpu") == \
        "the kubernetes.io domains are reserved for Kubernetes' own resources"


@pytest.mark.parametrize("vendor_id, device_id, pci_name, expected", [
    # lower case, every run of other characters ("-" and " " too) as one "_"
    ("8086", "1592", "Ethernet Controller E810-C for QSFP", "intel.com/ethernet_controller_e810_c_for_qsfp"),
    # 65 characters ("x" * 62 + "_bc"): cut to 63 ("x" * 62 + "_"), then the "_" goes
    ("8086", "abcd", "X" * 62 + " BC", "intel.com/" + "x" * 62),
])
def test_kubevirt_names_other_vendors_by_their_pci_ids_text(vendor_id, device_id, pci_name, expected):
    assert kv.kubevirt_pci_name(vendor_id, device_id, pci_name) == expected


@pytest.mark.parametrize("selector, vendor, expected", [
    # spaces to "_" (normalize), then runs of other characters to "_", the ends trimmed
    ("mbochs 64MB (1024x768)", None, "mdev.hostdev.io/mbochs_64MB__1024x768"),
    # case kept, and letters at the ends stay (only "_", "." and "-" are trimmed)
    ("X GVTg X", "8086", "intel.com/X_GVTg_X"),
    # nothing left: the name is "mdev"
    ("+++", None, "mdev.hostdev.io/mdev"),
])
def test_kubevirt_names_other_mdev_types(selector, vendor, expected):
    assert kv.kubevirt_mdev_name(selector, vendor) == expected


def test_normalize_trims_what_go_trims_only():
    # Go's TrimSpace leaves \x1c (Python's str.strip would remove it)
    assert kv.normalize("GRID T4-1Q\x1c") == "GRID_T4-1Q\x1c"
    assert kv.normalize(" GRID T4-1Q\n") == "_GRID_T4-1Q"


@pytest.mark.parametrize("name, problem", [
    ("nvidia.com", "a device resource needs a domain: DOMAIN/NAME, e.g. nvidia.com/TU104GL_TESLA_T4"),
    ("requests.example.com/gpu", "it starts with 'requests.', the prefix Kubernetes reserves for quota names"),
    ("example.com/gpu/0", "it has more than one '/'"),
    ("/gpu", "the domain before '/' is empty"),
    # "requests." (9) + 244 = 253: the longest domain there is room for
    ("a" * 244 + "/gpu", None),
    ("a" * 245 + "/gpu", "the domain is 245 characters; with the 'requests.' quota prefix it must fit in 253"),
    ("Example.com/gpu", "the domain 'Example.com' must be a lower-case DNS subdomain (a-z, 0-9, '-', '.')"),
    ("example.com/", "the name after '/' is empty"),
    ("example.com/" + "a" * 63, None),
    ("example.com/" + "a" * 64, "the part after '/' is 64 characters; at most 63 are allowed"),
    ("example.com/-gpu", "the part after '/' ('-gpu') must start and end with a letter or digit and hold only "
                         "letters, digits, '-', '_' and '.'"),
])
def test_each_rule_of_a_resource_name(name, problem):
    assert kv.resource_name_problem(name) == problem


@pytest.mark.parametrize("text, lookup, expected", [
    # the id at the very start of the text, and no newline at its end
    ("1eb8  TU104GL [Tesla T4]", "anywhere", "  TU104GL [Tesla T4]"),
    # a pci.ids with CRLF line ends: bufio.ScanLines drops the CR
    ("10de  NVIDIA Corporation\r\n\t1eb8  TU104GL [Tesla T4]\r\n\t1eb9  Other\r\n", "line-start",
     "  TU104GL [Tesla T4]"),
    # strings.TrimSpace leaves \x1c at the end of the line (Python's str.strip would not)
    ("10de  NVIDIA Corporation\n\t1eb8  TU104GL\x1c\n", "line-start", "  TU104GL\x1c"),
])
def test_the_plugins_pci_ids_lookup(text, lookup, expected):
    assert kv.nvidia_plugin_text(text, "1eb8", lookup) == expected


@pytest.mark.parametrize("chars, expected", [("upper", "nvidia.com/TESLA_T4_"), ("legacy", "nvidia.com/Tesla_T4_")])
def test_the_plugins_trim_is_gos_so_a_blank_before_a_trailing_control_character_stays(chars, expected):
    # strings.TrimSpace does not trim \x1c, so the blank before it is no longer at the end: it becomes
    # "_" and the \x1c is then dropped (Python's str.strip would have trimmed both)
    assert kv.nvidia_pci_name("1eb8", "Tesla T4 \x1c", chars) == expected
