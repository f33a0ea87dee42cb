"""The deployment's service (`DeploymentSettings.deployment_service_class`): ZenML's own
`PipelineDeploymentService` (init hook, `/submit`'s fully tracked runs, service info), plus
what the fast routes need: a ServingCore over the model the init hook loaded, the counters
written to the model version's metadata, and the runs `serving.record: sampled` keeps.

ZenML's per-invocation path (snapshot, placeholder run, logs, orchestrator, artifacts, a
hydrated re-read) costs seconds per request on a small machine; here it runs only for
`/submit`, `serving.record: every`, and one request in `record_every`, in the background.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zenml.deployers.server.service import PipelineDeploymentService

from utils.config import ServingSection
from utils.serving.core import ServingCore
from utils.serving.stats import StatsWriter, model_version_writer

logger = logging.getLogger(__name__)


class ServingService(PipelineDeploymentService):
    """ZenML builds it with `deployment_service_kwargs`: the model, its version number and
    the `serving` section (JSON), fixed at deploy time."""

    def __init__(
        self, app_runner: Any, model: str, version: str, serving: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(app_runner, **kwargs)
        self.model_name = model
        self.version = version
        self.serving = ServingSection.model_validate(serving)
        self.core: ServingCore | None = None
        self._writer: StatsWriter | None = None
        self._recorder = ThreadPoolExecutor(1, thread_name_prefix="record")
        self._recording = threading.Lock()
        self._seen = 0
        self._invoke_models: tuple[Any, Any] | None = None

    def initialize(self) -> None:
        from zenml.steps.step_context import get_or_create_run_context

        super().initialize()  # runs the init hook: the model is loaded
        served = get_or_create_run_context().state
        if served is None:
            raise RuntimeError("the init hook loaded no model (load_served_model)")
        meta = {
            "deployment_id": str(self.deployment.id),
            "deployment_name": self.deployment.name,
            "pipeline_name": self.snapshot.pipeline_configuration.name,
            "snapshot_id": str(self.snapshot.id),
            "snapshot_name": self.snapshot.name,
        }
        record = self._maybe_record if self.serving.record == "sampled" else None
        self.core = ServingCore(served, self.serving, meta, record)
        write = model_version_writer(self.model_name, self.version)
        self._writer = StatsWriter(self.core.stats, write, self.serving.stats_every_s).start()
        logger.info(
            "serving %s: record=%s, auth %s",
            served.description,
            self.serving.record,
            "on" if self.deployment.auth_key else "OFF",
        )

    def cleanup(self) -> None:
        self._recorder.shutdown(wait=True, cancel_futures=True)
        if self._writer is not None:
            self._writer.stop()
        super().cleanup()

    def health_check(self) -> None:
        if self.core is not None and not self.core.healthy:
            raise RuntimeError(self.core.health_reason())

    def invoke_request(self, body: dict[str, Any]) -> Any:
        """ZenML's invoke request model of this pipeline, validated from a checked body."""
        if self._invoke_models is None:
            self._invoke_models = self.get_pipeline_invoke_models()
        return self._invoke_models[0].model_validate(body)

    def _maybe_record(self, body: dict[str, Any], inputs: list[str], outputs: list[str]) -> None:
        """One answered request in `record_every` becomes a pipeline run, in the background;
        while one is being written the next sample is skipped rather than queued."""
        self._seen += 1
        if (self._seen - 1) % self.serving.record_every:
            return
        if not self._recording.acquire(blocking=False):
            return
        assert self.core is not None
        self.core.served.remember(inputs, outputs)
        try:
            self._recorder.submit(self._record, body, inputs)
        except RuntimeError:  # shutting down
            self.core.served.forget(inputs)
            self._recording.release()

    def _record(self, body: dict[str, Any], inputs: list[str]) -> None:
        assert self.core is not None
        try:
            reply = self.execute_pipeline(self.invoke_request(body))
            if reply.success:
                self.core.stats.record_written()
            else:
                logger.warning("recording a request as a run failed: %s", reply.error)
        except Exception as e:
            logger.warning("recording a request as a run failed: %r", e)
        finally:
            self.core.served.forget(inputs)
            self._recording.release()
