"""Settings of the similarity service: the shared model-service settings (README, "Configuration") and the event
store it folds events in from."""

from __future__ import annotations

from chorus.shared.serving import ServiceSettings


class Settings(ServiceSettings):
    """The model-service settings, plus ``CHORUS_EVENTS_URL``."""

    events_url: str | None = None
    """The event store (``CHORUS_EVENTS_URL``, ``sqlite:///path`` or ``postgresql://...``): every answer folds in
    the events after the served version's cutoff. Unset: the version alone answers."""


__all__ = ["Settings"]
