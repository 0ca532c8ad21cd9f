"""Settings from the environment, each overridable by a CLI option or ``create_app(config)``.

- ``SIMSEARCH_HOME``: the data directory (SQLite file, converted weights, FAISS indexes).
  Default: ``$XDG_DATA_HOME/simsearch`` or ``~/.local/share/simsearch``.
- ``SIMSEARCH_DATABASE_URL``: SQLAlchemy URL. Default: ``sqlite:///$SIMSEARCH_HOME/simsearch.db``.
- ``SIMSEARCH_REDIS_URL``: when set, web ingest jobs go to an RQ queue for ``simsearch worker``.
- ``SIMSEARCH_API_KEYS``: comma-separated keys; when set, every API write needs one.
- ``SIMSEARCH_MAX_PIXELS``: decoded images larger than this are refused (decompression bombs).
- ``SIMSEARCH_WEIGHTS_DIR``: where model weights are looked for and converted weights cached.
  Default: ``$SIMSEARCH_HOME/weights``.
- ``SIMSEARCH_RUNTIME``: ``auto`` (default), ``openvino``, ``onnxruntime`` or ``keras``: what runs the model.
- ``SIMSEARCH_PRECISION``: ``auto`` (default: bf16 where the CPU has AMX / AVX512-BF16, else fp32),
  ``fp32`` or ``bf16``: the numerics of new vectors (bf16 ones go to their own ``+bf16`` space).
- ``SIMSEARCH_DEVICE``: ``auto`` (default: a GPU when the Keras backend sees one), ``cpu`` or ``gpu``.
- ``SIMSEARCH_ALLOWED_HOSTS``: comma-separated host names the web app answers to besides
  localhost, 127.0.0.1, [::1] and the address ``simsearch serve`` binds; ``.example.com`` allows
  example.com and its subdomains, ``*`` any host (DNS rebinding protection).
- ``SIMSEARCH_EXPOSE_PATHS``: ``1`` shows absolute server paths in API responses (default: paths
  relative to the ingested folder, or the uploaded name).
- ``SIMSEARCH_SEARCH_MAX_PIXELS``: the largest search-by-upload image (default 24 million pixels).
- ``SIMSEARCH_UPLOAD_RETENTION_HOURS``: how long uploaded files are kept after their ingest job
  ends (default 0: deleted when the job ends).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_SEARCH_MAX_PIXELS = 24_000_000
_TRUE = ("1", "true", "yes", "on")


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "simsearch"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    redis_url: str | None = None
    api_keys: tuple[str, ...] = ()
    max_pixels: int = DEFAULT_MAX_PIXELS
    default_backbone: str = DEFAULT_BACKBONE
    weights_path: Path | None = None
    runtime: str = "auto"
    precision: str = "auto"
    device: str = "auto"
    allowed_hosts: tuple[str, ...] = ()
    expose_paths: bool = False
    search_max_pixels: int = DEFAULT_SEARCH_MAX_PIXELS
    upload_retention_hours: float = 0.0

    @classmethod
    def from_env(cls, home: str | os.PathLike | None = None, database_url: str | None = None, **overrides) -> "Settings":
        env = os.environ
        home_path = Path(home or env.get("SIMSEARCH_HOME") or default_home()).expanduser().resolve()
        url = database_url or env.get("SIMSEARCH_DATABASE_URL") or f"sqlite:///{home_path / 'simsearch.db'}"
        keys = tuple(k.strip() for k in env.get("SIMSEARCH_API_KEYS", "").split(",") if k.strip())
        settings = cls(
            home=home_path,
            database_url=url,
            redis_url=env.get("SIMSEARCH_REDIS_URL") or None,
            api_keys=keys,
            max_pixels=int(env.get("SIMSEARCH_MAX_PIXELS", DEFAULT_MAX_PIXELS)),
            weights_path=Path(env["SIMSEARCH_WEIGHTS_DIR"]).expanduser().resolve() if env.get("SIMSEARCH_WEIGHTS_DIR") else None,
            runtime=(env.get("SIMSEARCH_RUNTIME") or "auto").strip().lower(),
            precision=(env.get("SIMSEARCH_PRECISION") or "auto").strip().lower(),
            device=(env.get("SIMSEARCH_DEVICE") or "auto").strip().lower(),
            allowed_hosts=tuple(h.strip() for h in env.get("SIMSEARCH_ALLOWED_HOSTS", "").split(",") if h.strip()),
            expose_paths=env.get("SIMSEARCH_EXPOSE_PATHS", "").strip().lower() in _TRUE,
            search_max_pixels=int(env.get("SIMSEARCH_SEARCH_MAX_PIXELS", DEFAULT_SEARCH_MAX_PIXELS)),
            upload_retention_hours=float(env.get("SIMSEARCH_UPLOAD_RETENTION_HOURS", 0)),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def weights_dir(self) -> Path:
        return self.weights_path or self.home / "weights"

    @property
    def index_dir(self) -> Path:
        return self.home / "indexes"

    def ensure_dirs(self) -> None:
        for p in (self.home, self.weights_dir, self.index_dir):
            p.mkdir(parents=True, exist_ok=True)
