"""One error hierarchy for the CLI and every service.

Each error carries a machine-readable ``type`` and an HTTP status; the services install one handler
(:func:`chorus.shared.http.shell.install_error_handlers`) that turns any :class:`ChorusError` into
``{"type": ..., "detail": ...}`` with that status, and the CLI prints ``chorus: error: <detail>`` and exits
non-zero.
"""

from __future__ import annotations


class ChorusError(Exception):
    """Base class: a problem a user can act on, with a message that says what and where."""

    type: str = "error"
    status_code: int = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "detail": self.detail}


class InvalidInput(ChorusError):
    """A request or command-line value that is not acceptable (HTTP 422)."""

    type = "invalid_input"
    status_code = 422


class NotFound(ChorusError):
    """An unknown user, item or version (HTTP 404)."""

    type = "not_found"
    status_code = 404


class DataError(ChorusError):
    """A data file that cannot be read at all (no valid row, unknown format, unreadable)."""

    type = "data_error"
    status_code = 422


class ArtifactError(ChorusError):
    """A missing, truncated, altered or incompatible artifact; never served."""

    type = "bad_artifact"
    status_code = 503


class NotReady(ChorusError):
    """The process has no servable artifact yet (HTTP 503)."""

    type = "not_ready"
    status_code = 503


class UpstreamUnavailable(ChorusError):
    """A downstream service could not be reached (HTTP 503)."""

    type = "upstream_unavailable"
    status_code = 503


class UpstreamError(ChorusError):
    """A downstream service answered with a server error (HTTP 502)."""

    type = "upstream_error"
    status_code = 502


class UpstreamTimeout(ChorusError):
    """A downstream service did not answer in time (HTTP 504)."""

    type = "upstream_timeout"
    status_code = 504


class Unauthorized(ChorusError):
    """A wrong or missing token where one is required (HTTP 401)."""

    type = "unauthorized"
    status_code = 401


class Forbidden(ChorusError):
    """A credential that is not accepted: an API key that is none of the configured ones (HTTP 403)."""

    type = "forbidden"
    status_code = 403


class EventsUnavailable(ChorusError):
    """The event store is not configured, not reachable, or refuses writes for want of API keys (HTTP 503)."""

    type = "events_unavailable"
    status_code = 503


# The refusals of the HTTP layer (chorus.shared.http): answered before a route runs, so no handler raises them;
# they are classes so that every route documents them with the same models (params.limit_responses).


class BadRequest(ChorusError):
    """A request that is not valid HTTP/1.1 (HTTP 400)."""

    type = "bad_request"
    status_code = 400


class RequestTimeout(ChorusError):
    """The request's headers or body arrived too slowly (HTTP 408)."""

    type = "request_timeout"
    status_code = 408


class PayloadTooLarge(ChorusError):
    """A request body over the size limit (HTTP 413)."""

    type = "payload_too_large"
    status_code = 413


class UriTooLong(ChorusError):
    """A request line over the size limit (HTTP 414)."""

    type = "uri_too_long"
    status_code = 414


class HeadersTooLarge(ChorusError):
    """Request headers over the size limit (HTTP 431)."""

    type = "headers_too_large"
    status_code = 431


class Overloaded(ChorusError):
    """The process serves as many requests as it may at once: retry after the seconds of Retry-After (HTTP 503)."""

    type = "overloaded"
    status_code = 503
