import pytest

from aksrun.core.quantities import (
    cpu_cores,
    format_duration,
    memory_bytes,
    parse_cpu,
    parse_duration,
    parse_memory,
)
from aksrun.errors import ConfigError


@pytest.mark.parametrize(("value", "canonical", "cores"), [
    ("500m", "500m", 0.5), ("2", "2", 2.0), (2, "2", 2.0), (0.25, "0.25", 0.25),
    ("1.5", "1.5", 1.5), (" 4 ", "4", 4.0),
])
def test_cpu_accepts_kubernetes_quantities(value, canonical, cores):
    assert parse_cpu(value) == canonical
    assert cpu_cores(parse_cpu(value)) == cores


@pytest.mark.parametrize("value", ["2 cores", "2Gi", "-1", "0", "0m", "abc", "", True, "0.0001"])
def test_cpu_rejects_with_option_value_and_form(value):
    with pytest.raises(ConfigError) as err:
        parse_cpu(value)
    assert "cpu=" in str(err.value) and repr(value) in str(err.value)


@pytest.mark.parametrize(("value", "nbytes"), [
    ("4Gi", 4 * 2**30), ("512Mi", 512 * 2**20), ("1G", 10**9), (2**30, 2**30), ("1.5Gi", 3 * 2**29),
])
def test_memory_accepts_quantities(value, nbytes):
    assert memory_bytes(parse_memory(value)) == nbytes


def test_memory_explains_gb_spelling():
    with pytest.raises(ConfigError, match=r'memory=.4GB.*"Gi"'):
        parse_memory("4GB")


@pytest.mark.parametrize("value", ["4 gigs", "100m", "1Ki", "", "-4Gi", False])
def test_memory_rejects(value):
    with pytest.raises(ConfigError, match="memory="):
        parse_memory(value)


@pytest.mark.parametrize(("value", "seconds"), [
    (90, 90.0), ("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0),
    ("1h30m", 5400.0), ("7d", 604800.0), ("250ms", 0.25), (1.5, 1.5), (None, None),
])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["30 minutes", "m30", "1h-30m", "0", -5, "", "inf", True])
def test_duration_rejects_with_accepted_form(value):
    with pytest.raises(ConfigError, match=r"timeout=.*(30m|positive)"):
        parse_duration(value)


def test_format_duration():
    assert format_duration(0.42) == "0.4s"
    assert format_duration(185) == "3m05s"
    assert format_duration(7800) == "2h10m"
    assert format_duration(None) == "-"
