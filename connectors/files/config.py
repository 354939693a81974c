"""Settings of the file sink (``HOURBRIDGE_FILES__``): where its monthly CSV files go and how lines group."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from connectors.delivery import GRANULARITY_HELP, Granularity


class FilesConfig(BaseModel):
    """An accounting sink kept as files, for books that import CSV rather than take API calls."""

    model_config = {"extra": "forbid"}

    folder: Path = Field(
        description="Folder of the accounting-YYYY-MM.csv files (one row per delivered line, with its [hb:key] marker)."
    )
    granularity: Granularity = Field(default="day", description=GRANULARITY_HELP)
