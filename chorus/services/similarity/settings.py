"""Settings of the similarity service: the shared model-service settings (README, "Configuration")."""

from __future__ import annotations

from chorus.shared.serving import ServiceSettings as Settings

__all__ = ["Settings"]
