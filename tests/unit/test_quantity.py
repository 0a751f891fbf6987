from decimal import Decimal

import pytest

from bus.quantity import cpu_millis, format_quantity, is_quantity, memory_bytes, parse_quantity


@pytest.mark.parametrize("text,value", [
    ("250m", Decimal("0.25")), ("1", Decimal(1)), ("1.5", Decimal("1.5")), ("0.1", Decimal("0.1")),
    ("128Mi", Decimal(128 * 2**20)), ("1Gi", Decimal(2**30)), ("4026532Ki", Decimal(4026532 * 1024)),
    ("1k", Decimal(1000)), ("1M", Decimal(10**6)), ("2G", Decimal(2 * 10**9)), ("1E", Decimal(10**18)),
    ("1Ei", Decimal(2**60)), ("100n", Decimal("1e-7")), ("5u", Decimal("5e-6")),
    ("1e3", Decimal(1000)), ("1E3", Decimal(1000)), ("12e-3", Decimal("0.012")), ("-1", Decimal(-1)),
    ("+2", Decimal(2)), (".5", Decimal("0.5")), (2, Decimal(2)), (0.5, Decimal("0.5")),
])
def test_parse(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "1 Gi", "1gi", "1Ki5", "Mi", "1e", "--1", True, None, [1],
                                 float("nan"), "1" * 200])
def test_parse_rejects_with_clear_message(bad):
    with pytest.raises(ValueError) as e:
        parse_quantity(bad)
    assert str(e.value)
    assert not is_quantity(bad)


def test_cpu_and_memory_helpers_round_up_like_kubernetes():
    assert cpu_millis("250m") == 250
    assert cpu_millis("1") == 1000
    assert cpu_millis(2) == 2000
    assert cpu_millis("0.1") == 100
    assert cpu_millis("100u") == 1  # MilliValue rounds up
    assert memory_bytes("128Mi") == 134217728
    assert memory_bytes("1G") == 10**9
    assert memory_bytes("0.5") == 1


@pytest.mark.parametrize("value,binary,text", [
    (Decimal("0.25"), False, "250m"), (Decimal(2), False, "2"), (Decimal(1500), False, "1500"),
    (Decimal(2000), False, "2k"), (Decimal(128 * 2**20), True, "128Mi"), (Decimal(1536 * 2**20), True, "1536Mi"),
    (Decimal(0), False, "0"), (Decimal("1e-9"), False, "1n"), (Decimal(-3000), False, "-3k"),
])
def test_format(value, binary, text):
    assert format_quantity(value, binary=binary) == text
    assert parse_quantity(text) == value
