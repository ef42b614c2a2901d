"""The ``report`` component of a version: the evaluation report ``chorus train`` writes (one HTML page, made by
:mod:`chorus.training.report`), stored as its UTF-8 bytes in ``report/html.npy`` (uint8), so that it is
checksummed, published and pruned with the version like every other file of it, and a service serves the page of
exactly the version it serves."""

from __future__ import annotations

import numpy as np

from chorus.shared.artifacts import Version, VersionWriter

COMPONENT = "report"
ARRAY = "html"
MEDIA_TYPE = "text/html; charset=utf-8"


def save_report(writer: VersionWriter, page: str) -> None:
    """Put ``page`` into the version being written."""
    writer.save_array(COMPONENT, ARRAY, np.frombuffer(page.encode("utf-8"), dtype=np.uint8))
    writer.set_component_meta(COMPONENT, media_type=MEDIA_TYPE)


def load_report(version: Version) -> bytes | None:
    """The page of a version (read and checked as every array is), or None when the version has no report."""
    if COMPONENT not in version.components:
        return None
    return bytes(version.array(COMPONENT, ARRAY).tobytes())
