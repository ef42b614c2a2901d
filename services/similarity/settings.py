"""Settings of the similarity service (environment, prefix ``CHORUS_``).

| variable | default | meaning |
| --- | --- | --- |
| `CHORUS_ARTIFACTS` | `artifacts` | artifact root holding `CURRENT` and the versions |
| `CHORUS_RELOAD_INTERVAL` | `2.0` | seconds between checks of `CURRENT` for a new version |
| `CHORUS_VERIFY_CHECKSUMS` | `true` | check every file's sha256 before serving a version |
"""

from __future__ import annotations

from chorus.shared.serving import ServiceSettings


class Settings(ServiceSettings):
    """The similarity service reads only the shared model-service settings."""
