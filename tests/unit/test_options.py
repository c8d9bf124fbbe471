

def test_env_may_not_change_who_the_pod_signs_in_as():
    import pytest as _pytest

    from aksrun.core.options import make_options
    from aksrun.errors import ConfigError

    for name in ("AZURE_CLIENT_ID", "AZURE_TOKEN_CREDENTIALS", "AZURE_FEDERATED_TOKEN_FILE"):
        with _pytest.raises(ConfigError, match="workload identity"):
            make_options(env={name: "x"})
    assert make_options(env={"AZURE_REGION_HINT": "x"}).env == {"AZURE_REGION_HINT": "x"}
