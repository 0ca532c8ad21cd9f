"""The one settings object: every ``SIMSEARCH_*`` variable, typed, validated, with its default.

:class:`Settings` is built once per process (the CLI from its options and the environment,
``create_app(config)`` from a Settings or a dict of overrides, the RQ worker from its command) and
passed explicitly; nothing else in the package reads ``SIMSEARCH_*`` from the environment.
Each field is read from ``SIMSEARCH_<FIELD NAME IN CAPITALS>`` unless its ``alias`` says otherwise,
so adding a variable is adding one annotated line here (and a row in the README's table).
A bad value is an :class:`~simsearch.errors.InvalidInput` naming the variable:
``SIMSEARCH_MAX_PIXELS: Input should be a valid integer (got 'lots')``.

Per-backbone weights files (``SIMSEARCH_WEIGHTS_<BACKBONE>``, e.g. ``SIMSEARCH_WEIGHTS_RESNET50``)
have names that depend on the registry, so they are collected into ``weights_files``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from simsearch import paths
from simsearch.errors import InvalidInput

ENV_PREFIX = "SIMSEARCH_"
DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_SEARCH_MAX_PIXELS = 24_000_000
WEIGHTS_PREFIX = ENV_PREFIX + "WEIGHTS_"


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "simsearch"


def _weights_files_from_env() -> dict[str, Path]:
    return {k[len(WEIGHTS_PREFIX):].lower(): Path(v).expanduser()
            for k, v in os.environ.items() if k.startswith(WEIGHTS_PREFIX) and k != WEIGHTS_PREFIX + "DIR" and v}


class Settings(BaseSettings):
    """Read-only settings (see the README's configuration table for every variable)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", populate_by_name=True,
                                      validate_default=True)

    # where things live
    home: Path = Field(default_factory=default_home)
    database_url: str = ""  # empty: SQLite in home
    weights_path: Path | None = Field(None, alias="SIMSEARCH_WEIGHTS_DIR")
    weights_files: dict[str, Path] = Field(default_factory=_weights_files_from_env, exclude=True)
    redis_url: str | None = None
    # database failure handling
    db_connect_timeout: float = Field(3.0, gt=0, le=600)
    db_statement_timeout: float = Field(30.0, gt=0)
    # PostgreSQL ends a session that stays idle inside a transaction this long (a client that froze)
    db_idle_transaction_timeout: float = Field(120.0, gt=0)
    # the health check's answer about the database comes within this many seconds, whatever it does
    health_timeout: float = Field(3.0, gt=0, le=60)
    # security
    api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    secret_key: str | None = Field(None, repr=False)
    allow_server_paths: Path | None = None
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    expose_paths: bool = False
    # with API keys set, every read (collections, images, thumbnails, originals, vectors, analyses,
    # jobs; the browser UI's pages) needs a key or a signed-in session, unless this opens them all
    public_reads: bool = False
    # with API keys set, anonymous clients may still search (by upload, or from a result: similar
    # images) and see the results' thumbnails and the search page; nothing else...
    public_search: bool = False
    # ...at most this many such searches a minute per client address (0: no limit; per server process)
    public_search_per_minute: int = Field(30, ge=0, le=1_000_000)
    # jobs started through the API and not yet finished (queued or running): at most this many per
    # client (its API key, else its address) and in all; more is 429 with Retry-After (0: no cap)
    max_queued_jobs_per_client: int = Field(10, ge=0, le=1_000_000)
    max_queued_jobs: int = Field(100, ge=0, le=1_000_000)
    # reverse proxies in front whose X-Forwarded-For is trusted for the client address (0: none)
    proxy_hops: int = Field(0, ge=0, le=10)
    # images, models and ingest
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    search_max_pixels: int = Field(DEFAULT_SEARCH_MAX_PIXELS, ge=1)
    upload_retention_hours: float = Field(0.0, ge=0)
    # keep the file of each image stored from an upload in <home>/originals (by content hash) when
    # its job ends, so the full image stays viewable after the upload folder is deleted
    keep_originals: bool = True
    # store each image's local features (SIFT, ~36 KB an image, about 3x ingest's pre-processing CPU)
    # at ingest, for searches with verify=true and for candidates by local features (the search's
    # local=, on by default when this is set: docs/region-search.md); without them a verified search
    # reads the candidates' originals the first time and stores their features then
    local_features: bool = False
    default_backbone: str = DEFAULT_BACKBONE
    download_timeout: float = Field(30.0, ge=1.0)
    decode_priority: str = "idle"
    tf_verbose: bool = False
    runtime: Literal["auto", "openvino", "onnxruntime", "keras"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    # int8 (space BACKBONE+int8): the folder of photos its quantization is calibrated on (a sample)
    int8_calibration: Path | None = None
    device: Literal["auto", "cpu", "gpu"] = "auto"
    # web requests and jobs
    max_upload_mb: float = Field(64.0, gt=0)
    # slow clients under gunicorn (simsearch.web.deadlines): headers must arrive within this many
    # seconds; a body, and the reading of a response, may take this long and must then keep
    # moving at request_min_rate_kb KB/s on average (else 408 and the connection is closed)
    request_header_timeout: float = Field(10.0, gt=0, le=3600)
    request_body_timeout: float = Field(20.0, gt=0, le=3600)
    request_min_rate_kb: float = Field(8.0, ge=0)
    jobs: Literal["thread", "rq"] | None = None
    queue: str = Field("simsearch", min_length=1)
    job_threads: int = Field(1, ge=1, le=64)
    # queued ingests larger than this are split into shards of this many files that any worker takes
    shard_size: int = Field(1000, ge=1, le=1_000_000)
    # a job whose worker died or that raised is started again this many times, then it fails
    job_retries: int = Field(3, ge=0, le=20)
    # a busy worker reports every this many seconds; its job is taken over ~10 s after the last report
    worker_heartbeat: int = Field(10, ge=1, le=600)
    search_threads: int = Field(1, ge=1, le=256)
    # the index policy (simsearch.index.policy): exact search below exact_threshold vectors, above
    # it a compressed approximate index tuned until recall@10 on sampled queries reaches target_recall
    target_recall: float = Field(0.95, gt=0, le=1)
    exact_threshold: int = Field(50_000, ge=0)
    # "auto" or a registered index kind (simsearch.index.kinds: flat, ivf_pq_refine, ivf_sq8, hnsw_sq8)
    index_type: str = "auto"
    # open saved indexes memory-mapped read-only: the processes of one machine (web workers, job
    # workers, the CLI) share one copy through the page cache instead of one copy each
    index_mmap: bool = True
    zip_max_entries: int = Field(50_000, ge=1)
    zip_max_bytes: int = Field(1 << 30, ge=1)
    zip_max_entry_bytes: int = Field(512 << 20, ge=1)
    zip_max_ratio: float = Field(100.0, gt=1)

    @field_validator("home", "weights_path", "allow_server_paths", "int8_calibration", mode="after")
    @classmethod
    def _absolute(cls, v: Path | None) -> Path | None:
        return None if v is None else Path(v).expanduser().resolve()

    @field_validator("redis_url", "secret_key", "weights_path", "allow_server_paths", "jobs", "int8_calibration", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            return v or None
        return v

    @field_validator("runtime", "precision", "device", "index_type", mode="before")
    @classmethod
    def _lower_or_auto(cls, v: Any) -> Any:
        return (v.strip().lower() or "auto") if isinstance(v, str) else v

    @field_validator("index_type", mode="after")
    @classmethod
    def _index_kind(cls, v: str) -> str:
        if v == "auto":
            return v
        from simsearch.index import kinds

        known = ["auto", *kinds.names()]
        if v not in known:  # worded as pydantic words a Literal's error
            expected = ", ".join(repr(k) for k in known[:-1]) + f" or {known[-1]!r}"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return v

    @field_validator("jobs", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return (v.strip().lower() or None) if isinstance(v, str) else v

    @field_validator("api_keys", "allowed_hosts", mode="before")
    @classmethod
    def _split_keys(cls, v: Any) -> Any:
        items = v.split(",") if isinstance(v, str) else (v or ())
        return tuple(k.strip() for k in items if k and k.strip())

    @field_validator("decode_priority", mode="after")
    @classmethod
    def _priority(cls, v: str) -> str:
        v = v.strip().lower()
        if v != "idle":
            try:
                if not 0 <= int(v) <= 19:
                    raise ValueError
            except ValueError:
                raise ValueError("should be 'idle' or a nice value from 0 to 19") from None
        return v

    @model_validator(mode="after")
    def _derived(self) -> "Settings":
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{paths.database_file(self.home)}")
        return self

    # ---- building ---------------------------------------------------------------------------
    @classmethod
    def from_env(cls, home: str | os.PathLike | None = None, database_url: str | None = None, **overrides) -> "Settings":
        """The environment's settings; arguments that are not None take precedence."""
        given = {k: v for k, v in dict(overrides, home=home, database_url=database_url).items() if v is not None}
        return _validated(cls, given)

    def replace(self, **changes) -> "Settings":
        """A copy with ``changes`` applied and validated."""
        data = {k: getattr(self, k) for k in type(self).model_fields}
        data.update(changes)
        return _validated(type(self), data)

    def to_data(self) -> dict:
        """Plain JSON-able values (for a job payload); :meth:`from_data` reads them back."""
        data = self.model_dump(mode="json", exclude={"api_keys", "secret_key"})
        data["weights_files"] = {k: str(v) for k, v in self.weights_files.items()}
        return data

    @classmethod
    def from_data(cls, data: dict) -> "Settings":
        return _validated(cls, dict(data))

    # ---- derived paths ------------------------------------------------------------------------
    @property
    def weights_dir(self) -> Path:
        return self.weights_path or paths.weights_dir(self.home)

    @property
    def index_dir(self) -> Path:
        return paths.index_dir(self.home)

    @property
    def max_content_length(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def ensure_dirs(self) -> None:
        for p in (self.home, self.weights_dir, self.index_dir):
            p.mkdir(parents=True, exist_ok=True)


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    info = Settings.model_fields.get(field)
    if info is not None and info.alias:
        return info.alias
    return ENV_PREFIX + field.upper()


def _validated(cls, data: dict) -> Settings:
    try:
        return cls(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]) if err.get("loc") else ""
        name = loc if loc.startswith(ENV_PREFIX) else env_name(loc)
        value = err.get("input")
        shown = "" if isinstance(value, dict) or loc == "secret_key" or loc == "api_keys" else f" (got {value!r})"
        raise InvalidInput(f"{name}: {err['msg']}{shown}", field=loc) from None


def env_settings() -> Settings:
    """The environment's settings, for library code that is not handed a :class:`Settings` (a
    backbone built directly, TensorFlow's import): the same variables and validation."""
    return Settings.from_env()


def env_weights_file(backbone: str) -> Path | None:
    """``SIMSEARCH_WEIGHTS_<BACKBONE>``: a weights file named for one backbone, if set."""
    return env_settings().weights_files.get(backbone.lower())
