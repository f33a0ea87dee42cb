"""The leaderboard's ZenML side: its rows read from a model's versions, and the HTML page
(plus its scatter PNG) stored as artifacts and pinned to each model as curated
visualizations, so the dashboard shows them on the model. Ranking and formatting are
`utils.experiments.leaderboard`'s."""

from __future__ import annotations

import io
import logging
from typing import Any

from utils.core.errors import UserError
from utils.core.names import LEADERBOARD, SWEEP_TAG_PREFIX
from utils.experiments.leaderboard import Row, row_from_metadata

logger = logging.getLogger(__name__)

LEADERBOARD_PLOT = f"{LEADERBOARD}_plot"


def version_rows(models: list[str], sweep_id: str | None = None) -> tuple[list[Row], list[str]]:
    """(rows of the evaluated versions, "model vN" of those without scores) of `models`,
    only versions tagged `sweep:<sweep_id>` when given."""
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate

    client = Client()
    rows, unscored = [], []
    for model in models:
        try:
            client.get_model(model)
        except KeyError:
            raise UserError(f"--model {model!r}: no such model in the ZenML store") from None
        for v in depaginate(client.list_model_versions, model=model, hydrate=True):
            if sweep_id is not None and SWEEP_TAG_PREFIX + sweep_id not in {t.name for t in v.tags}:
                continue
            row = row_from_metadata(model, v.number, v.name, v.stage, dict(v.run_metadata))
            if row is None:
                unscored.append(f"{model} v{v.number}")
            else:
                rows.append(row)
    return rows, unscored


def store_leaderboard(html: str, png: bytes, models: list[str], tags: list[str]) -> Any:
    """Save the page and the scatter as artifacts and pin both to each model (replacing the
    leaderboard pinned before). Returns the HTML artifact version."""
    # ZenML registers its PIL materializer (PNG + image view) only when imported.
    import zenml.integrations.pillow.materializers  # noqa: F401
    from PIL import Image
    from zenml import save_artifact
    from zenml.client import Client
    from zenml.enums import VisualizationResourceTypes
    from zenml.types import HTMLString

    image = Image.open(io.BytesIO(png))
    image.load()
    page = save_artifact(HTMLString(html), name=LEADERBOARD, tags=tags)
    plot = save_artifact(image, name=LEADERBOARD_PLOT, tags=tags)
    client = Client()
    for model in models:
        m = client.get_model(model)
        for old in m.visualizations:
            if old.display_name in (LEADERBOARD, LEADERBOARD_PLOT):
                client.delete_curated_visualization(old.id)
        for order, artifact in enumerate((page, plot)):
            artifact = client.get_artifact_version(artifact.id)
            if not artifact.visualizations:
                logger.warning("artifact %s has no visualization to pin", artifact.name)
                continue
            client.create_curated_visualization(
                artifact.visualizations[0].id,
                resource_id=m.id,
                resource_type=VisualizationResourceTypes.MODEL,
                display_name=artifact.name,
                display_order=order,
            )
    return page
