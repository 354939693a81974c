"""The file sink: delivered lines kept as one CSV file per month in a folder (``files``)."""

from typing import Any

from connectors.base import SinkLines, SinkPlugin, register_sink
from connectors.files.config import FilesConfig
from connectors.files.sink import FileSink


def _lines(config: Any) -> SinkLines:
    return SinkLines(config.granularity)


register_sink(
    SinkPlugin(
        name="files",
        label="Accounting files (CSV)",
        factory=lambda config, _token: FileSink(config.folder),
        config=FilesConfig,
        lines=_lines,
    )
)

__all__ = ["FileSink", "FilesConfig"]
