import pytest

from hostdev.errors import EXIT_USAGE, InvalidAddressError
from hostdev.model import PciAddress


@pytest.mark.parametrize("text, expected", [
    ("0000:65:00.0", "0000:65:00.0"),
    ("65:00.0", "0000:65:00.0"),
    ("0000:AF:1F.7", "0000:af:1f.7"),
    ("10000:e0:00.0", "10000:e0:00.0"),    # Intel VMD domain
    (" 0000:00:02.1 ", "0000:00:02.1"),
])
def test_parse_accepts_sysfs_and_short_forms(text, expected):
    assert str(PciAddress.parse(text)) == expected


@pytest.mark.parametrize("text", [
    "0000.65:00.0",        # the seed's typo
    "0000:65:20.0",        # slot > 1f
    "0000:65:00.8",        # function > 7
    "65:0.0", "6:00.0", "0000:65:00", "", "../../etc", "0000:65:00.0/../x", "g000:65:00.0",
    "123456789:00:00.0",
])
def test_parse_rejects_everything_else_with_usage_exit_code(text):
    with pytest.raises(InvalidAddressError) as info:
        PciAddress.parse(text)
    assert info.value.exit_code == EXIT_USAGE
    assert "0000:65:00.0" in str(info.value)      # names the accepted form


def test_addresses_sort_numerically_not_textually():
    addrs = [PciAddress.parse(a) for a in ["0000:0a:00.0", "0000:09:00.0", "10000:00:00.0", "0001:00:00.0"]]
    assert [str(a) for a in sorted(addrs)] == ["0000:09:00.0", "0000:0a:00.0", "0001:00:00.0", "10000:00:00.0"]
    assert PciAddress.parse("65:00.1").slot_address == "0000:65:00"
