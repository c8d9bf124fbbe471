import re

import pytest

from aksrun.core.ids import check_job_id, new_job_id, slug
from aksrun.core.options import make_options, resolve_node_type
from aksrun.errors import AksrunError, ConfigError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_defaults_and_canonical_values():
    opts = make_options(cpu=2, memory="4Gi", timeout="30m", retries=2, env={"A": "1"},
                        requirements=["numpy>=2", "scikit-learn==1.5.2"])
    assert (opts.cpu, opts.memory, opts.timeout, opts.retries) == ("2", "4Gi", 1800.0, 2)
    assert opts.requirements == ("numpy>=2", "scikit-learn==1.5.2")
    assert make_options().to_dict() == make_options(**make_options().to_dict()).to_dict()


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"cpu": "lots"}, "cpu="), ({"memory": "4GB"}, "memory="), ({"timeout": "soon"}, "timeout="),
    ({"retries": -1}, "retries="), ({"retries": "2"}, "retries="), ({"gpu": 1.5}, "gpu="),
    ({"env": {"1BAD": "x"}}, "env key"), ({"env": {"A": 1}}, "env['A']"),
    ({"env": {"AKSRUN_STORE": "x"}}, "reserved"), ({"node_type": "big"}, "node_type="),
    ({"requirements": "numpy"}, "requirements="), ({"spot": "yes"}, "spot="),
    ({"image": "Bad Image"}, "image="),
])
def test_bad_options_name_the_option(kwargs, named):
    with pytest.raises(ConfigError) as err:
        make_options(**kwargs)
    assert named in str(err.value)


def test_unknown_option_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="cpus"):
        make_options(cpus=2)


def test_node_type_aliases():
    assert resolve_node_type("gpu-a100") == "Standard_NC24ads_A100_v4"
    assert resolve_node_type("Standard_D8s_v5") == "Standard_D8s_v5"


def test_job_ids_are_dns_labels_and_unique():
    ids = {new_job_id("Train_Model.v2") for _ in range(200)}
    assert len(ids) == 200
    for job_id in ids:
        assert DNS_LABEL.match(job_id) and len(job_id) <= 63
        assert job_id.startswith("train-model-v2-")
        assert check_job_id(job_id) == job_id
    assert len(new_job_id("x" * 200)) <= 63
    assert slug("___") == "job"


@pytest.mark.parametrize("bad", ["", "../../etc", "train", "TRAIN-20261124-101500-abcde", 7])
def test_check_job_id_rejects(bad):
    with pytest.raises(AksrunError, match="not an aksrun job id"):
        check_job_id(bad)


def test_unknown_option_of_the_decorator_suggests_the_right_one():
    import aksrun

    with pytest.raises(ConfigError, match=r"'cpus' is not .* option \(did you mean 'cpu'\?\)"):
        aksrun.function(cpus=2)
    with pytest.raises(ConfigError, match="'memroy'"):
        aksrun.Executor(memroy="1Gi")
