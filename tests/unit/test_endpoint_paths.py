"""The deployment's endpoint paths are ZenML's, read from ZenML: a rename there moves the
request checks and the printed URLs with it instead of silently leaving them behind."""

import utils.core.names as names


def test_endpoint_paths_follow_zenmls_deployment_settings(monkeypatch) -> None:
    from zenml.config.deployment_settings import DeploymentSettings

    fields = DeploymentSettings.model_fields
    assert fields["invoke_url_path"].default == names.INVOKE_PATH
    monkeypatch.setattr(fields["invoke_url_path"], "default", "/v2/invoke")
    monkeypatch.setattr(fields["health_url_path"], "default", "/v2/health")
    monkeypatch.setattr(fields["submit_url_path"], "default", "/v2/submit")
    assert (names.INVOKE_PATH, names.HEALTH_PATH, names.SUBMIT_PATH) == (
        "/v2/invoke",
        "/v2/health",
        "/v2/submit",
    )
