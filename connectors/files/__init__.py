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
        # Built with HOURBRIDGE_FILE_MODE and HOURBRIDGE_CSV_BOM, like the reports.
        file_factory=lambda config, output: FileSink(config.folder, output=output),
        config=FilesConfig,
        lines=_lines,
    )
)

__all__ = ["FileSink", "FilesConfig"]
