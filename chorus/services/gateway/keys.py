"""API keys of the routes that write or read personal data (the event routes): ``Authorization: Bearer <key>``,
the key one of ``CHORUS_API_KEYS``.

A key is compared with every configured key, always all of them, by ``hmac.compare_digest`` on SHA-256
digests, so the time taken says neither which key matched nor how long the keys are. Without a configured key
the routes refuse every request (503) rather than be open.
"""

from __future__ import annotations

import hashlib
import hmac

from chorus.shared.contract.errors import EventsUnavailable, Forbidden, Unauthorized


class MissingKey(Unauthorized):
    """No API key: ``Authorization: Bearer <key>`` is required (HTTP 401, with ``WWW-Authenticate: Bearer``)."""

    challenge = 'Bearer realm="chorus"'


class ApiKeys:
    """The configured keys, kept as digests only."""

    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(key.encode()).digest() for key in keys]

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, given: str | None) -> None:
        """Accept ``given`` (the bearer token, None when the request has none) or raise.

        Raises
        ------
        EventsUnavailable : no key is configured (CHORUS_API_KEYS).
        MissingKey : no bearer token (401).
        Forbidden : a token that is none of the keys (403).
        """
        if not self._digests:
            raise EventsUnavailable(
                "this gateway takes no events: it has no API keys configured, so the event routes refuse every request"
            )
        if not given:
            raise MissingKey("this route needs an API key: send Authorization: Bearer <key>")
        digest = hashlib.sha256(given.encode()).digest()
        matched = False
        for key in self._digests:  # every key, whatever matched before: no early exit
            matched |= hmac.compare_digest(digest, key)
        if not matched:
            raise Forbidden("the API key is not accepted: send one of the keys this gateway was given")
