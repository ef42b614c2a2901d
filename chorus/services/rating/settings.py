"""Settings of the rating service: the shared model-service settings (README, "Configuration") and the event
store."""

from __future__ import annotations

from chorus.shared.serving import ServiceSettings


class Settings(ServiceSettings):
    """The model-service settings, and the event store whose events the answers fold in."""

    events_url: str | None = None
    """The event store (``CHORUS_EVENTS_URL``, ``sqlite:///path`` or ``postgresql://...``); unset: none, and every
    answer is the artifact version's alone."""


__all__ = ["Settings"]
