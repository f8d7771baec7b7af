"""Settings read from the environment (and an optional `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Process settings; an unset service URL means "start the embedded one"."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    smtp_url: str | None = None

    # Every Redis key this deployment writes starts with this prefix, so tests and
    # several deployments can share one Redis.
    redis_prefix: str = "jt"
    # Number of hash-tag shards. A lot lives in shard `lot_id % redis_shards`; all its
    # keys and its shard's ledger stream share that hash tag (one Redis Cluster slot).
    # Changing it requires draining the streams first.
    redis_shards: int = 16

    data_dir: Path = PROJECT_ROOT / ".data"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    allowed_origins: list[str] = Field(default_factory=list)

    secret_key: str = "dev-only-secret-change-me"
    session_ttl_s: int = 14 * 24 * 3600
    cookie_secure: bool = False

    mail_from: str = "광산구 장터 <no-reply@jangteo.local>"
    payment_due_s: int = 48 * 3600
    ledger_gap_grace_s: int = 30
    # Stored Idempotency-Key results are kept at least this long (then purged by the worker).
    # At least 300 s, the time after which a claim of a running request may be taken
    # over (`web.idempotency.IN_PROGRESS_TIMEOUT_S`), so no running request loses its claim.
    idempotency_retention_s: int = Field(default=24 * 3600, ge=300)

    # Login attempts per (client address, email), and per client address over all
    # emails, so one address cannot try a password against many accounts.
    login_rate: str = "10/minute"
    login_ip_rate: str = "30/minute"
    bid_rate: str = "30/10seconds"
    max_body_bytes: int = 64 * 1024
    max_ws_frame_bytes: int = 4 * 1024
    # permessage-deflate on websockets (WS_COMPRESSION). Off: a compressor per
    # connection costs memory and CPU on every message, and compressed frames cannot
    # be shared between watchers (see web/live/ws_protocol.py).
    ws_compression: bool = False
    # Seconds a bid or pledge socket may wait before its hello (CSRF token) arrives.
    ws_hello_timeout_s: float = 10.0

    # Garbage-collector thresholds of a web process (`gc.set_threshold`), as JSON in
    # the environment: GC_THRESHOLDS='[50000, 20, 20]'. See web/gc_tuning.py.
    gc_thresholds: tuple[PositiveInt, PositiveInt, PositiveInt] = (50_000, 20, 20)

    demo_data: bool = True

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def origins(self) -> set[str]:
        """Origins allowed on websocket handshakes: the public URL and `allowed_origins`.

        Without a public URL the local addresses of the port are allowed too, for
        development; with one they are not, unless listed in `allowed_origins`.
        """
        allowed = {self.base_url}
        if not self.public_url:
            allowed |= {f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"}
        return allowed | set(self.allowed_origins)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
