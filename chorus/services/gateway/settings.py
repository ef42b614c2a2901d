"""Gateway settings, read from the environment (prefix ``CHORUS_``, plus ``REDIS_URL``).

| variable | default | meaning |
| --- | --- | --- |
| `CHORUS_SIMILARITY_URL` | `http://127.0.0.1:8001` | base URL of the similarity service (comma-separated: replicas) |
| `CHORUS_RATING_URL` | `http://127.0.0.1:8002` | base URL of the rating service (several, comma-separated: replicas) |
| `CHORUS_CONNECT_TIMEOUT` | `1.0` | seconds to open a connection to a downstream service (then 503) |
| `CHORUS_READ_TIMEOUT` | `10.0` | seconds to wait for a downstream answer (then 504) |
| `CHORUS_POOL_TIMEOUT` | `2.0` | seconds to wait for a free pooled connection to a downstream service (then 503) |
| `CHORUS_CONNECT_RETRIES` | `1` | retries of a failed connection (never of a request that reached the service) |
| `CHORUS_MAX_CONNECTIONS` | `8` | pooled connections per downstream service (see below) |
| `CHORUS_VERSION_POLL_INTERVAL` | `2.0` | seconds between polls of each service's `/readyz` (artifact version) |
| `REDIS_URL` | unset | Redis for the cache, e.g. `redis://127.0.0.1:6379/0`; unset: in-process LRU cache |
| `CHORUS_CACHE_TTL` | `300` | seconds a cached answer lives (Redis and in-process alike) |
| `CHORUS_LRU_SIZE` | `10000` | entries of the in-process LRU cache used without `REDIS_URL` |
| `CHORUS_LRU_MAX_MB` | `256` | megabytes of answers the in-process LRU cache holds at most |
| `CHORUS_NEAR_CACHE_TTL` | `0` | with Redis: seconds hot answers also stay in process memory (0: off; see below) |
| `CHORUS_NEAR_CACHE_SIZE` | `1024` | with Redis: entries of that in-process near cache |
| `CHORUS_REDIS_TIMEOUT` | `0.1` | seconds for one Redis command; slower counts as an outage (answered uncached) |
| `CHORUS_REDIS_CONNECT_TIMEOUT` | `0.25` | seconds to connect to Redis |
| `CHORUS_REDIS_MAX_CONNECTIONS` | `64` | pooled Redis connections; when all are busy a request skips the cache |
| `CHORUS_REDIS_MAX_BACKOFF` | `1.0` | longest wait in seconds between reconnection attempts (doubling from 0.25 s) |
| `CHORUS_EVENTS_URL` | unset | event store, `sqlite:///path/events.db` or `postgresql://...`; unset: event routes 503 |
| `CHORUS_API_KEYS` | unset | comma-separated keys of the event routes (`Bearer <key>`); unset: event routes 503 |
| `CHORUS_EVENTS_TIMEOUT` | `0.5` | seconds for one event-store read of a cached route; slower: an outage (uncached) |

The near cache is off by default: while it is on, a hot answer can still be served from process memory (as a hit)
for up to that many seconds after Redis went down, where the gateway otherwise answers uncached (`X-Cache: bypass`)
at once. It is never stale with respect to the model: keys carry the artifact version.

With an event store, the key of an answer that depends on events also carries the store's sequence number that
the answer reflects (:mod:`chorus.services.gateway.events`), so no answer is served from before an event the
client has written. Every gateway replica must name the same store (or none), as they share the cache. A
PostgreSQL URL may carry `connect_timeout=2` (seconds) so that an unreachable server fails a write quickly.

`CHORUS_MAX_CONNECTIONS` is small on purpose. A service is one uvicorn process doing CPU-bound work, so more
requests in flight to it only queue there, while httpx's pool scans every pooled connection (several times over)
each time a request starts or ends: with 100 allowed, 32 concurrent misses opened 32 connections and the gateway
spent a third of its time in that scan. With 8, misses at 32 clients ran at about twice the rate with half the
p99 (`bench/serve.py` on two shared cores, 7-8 runs each: 284-362 req/s with 100, 475-875 with 8; 4 and 16 did
no better than 8); at 1 and 8 clients, and for hits, the difference was within the run-to-run noise. Raise it
when one URL stands for several service processes (workers, or replicas behind a load balancer); requests beyond
it wait for a free connection, up to `CHORUS_POOL_TIMEOUT`.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from chorus.shared.http.limits import HttpSettings


class Settings(HttpSettings):
    """Everything the gateway reads from its environment; see the module docstring for the table, and
    :class:`~chorus.shared.http.limits.HttpSettings` for the limits every process shares."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_", extra="ignore", populate_by_name=True)

    similarity_url: str = "http://127.0.0.1:8001"
    rating_url: str = "http://127.0.0.1:8002"
    connect_timeout: float = Field(1.0, gt=0)
    read_timeout: float = Field(10.0, gt=0)
    pool_timeout: float = Field(2.0, gt=0)
    connect_retries: int = Field(1, ge=0, le=5)
    max_connections: int = Field(8, ge=1)
    version_poll_interval: float = Field(2.0, gt=0)

    redis_url: str | None = Field(None, validation_alias=AliasChoices("redis_url", "REDIS_URL"))
    cache_ttl: int = Field(300, ge=1)
    lru_size: int = Field(10_000, ge=1)
    lru_max_mb: float = Field(256.0, gt=0)
    near_cache_ttl: float = Field(0.0, ge=0)
    near_cache_size: int = Field(1024, ge=1)
    redis_timeout: float = Field(0.1, gt=0)
    redis_connect_timeout: float = Field(0.25, gt=0)
    redis_max_connections: int = Field(64, ge=1)
    redis_max_backoff: float = Field(1.0, gt=0)

    events_url: SecretStr | None = None
    api_keys: SecretStr | None = None
    events_timeout: float = Field(0.5, gt=0)

    @field_validator("similarity_url", "rating_url")
    @classmethod
    def _replica_urls(cls, value: str) -> str:
        """One or more http(s) base URLs, comma-separated (one per replica)."""
        urls = [u.strip() for u in value.split(",")]
        if not all(urls):
            raise ValueError(f"expected comma-separated base URLs without empty entries, got {value!r}")
        bad = [u for u in urls if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"base URLs must start with http:// or https://, got {', '.join(bad)}")
        if len(set(urls)) != len(urls):
            raise ValueError(f"a base URL is listed twice in {value!r}")
        return ",".join(urls)

    @field_validator("events_url", "api_keys", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable means unset (as ``REDIS_URL=`` does)."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, value: SecretStr | None) -> SecretStr | None:
        """Comma-separated keys, none empty (a stray comma would otherwise be read as a key)."""
        if value is not None and not all(k.strip() for k in value.get_secret_value().split(",")):
            raise ValueError("CHORUS_API_KEYS holds an empty key: separate keys with single commas, no trailing comma")
        return value

    def keys(self) -> list[str]:
        """The API keys of the event routes (none when ``CHORUS_API_KEYS`` is unset)."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",")]

    def urls(self, service: str) -> list[str]:
        """The base URLs of ``service``'s replicas (``similarity`` or ``rating``)."""
        return str(getattr(self, f"{service}_url")).split(",")


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()
