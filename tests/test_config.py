"""The one settings object: every SIMSEARCH_* variable typed, validated and passed explicitly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simsearch.config import Settings, env_name
from simsearch.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMSEARCH_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("SIMSEARCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("SIMSEARCH_API_KEYS", " k1, ,k2 ")
    monkeypatch.setenv("SIMSEARCH_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("SIMSEARCH_WEIGHTS_RESNET50", str(tmp_path / "r.h5"))
    monkeypatch.setenv("SIMSEARCH_JOBS", "RQ")
    monkeypatch.setenv("SIMSEARCH_REDIS_URL", "")
    s = Settings.from_env()
    assert s.home == (tmp_path / "h").resolve()
    assert s.database_url == f"sqlite:///{s.home / 'simsearch.db'}"
    assert s.api_keys == ("k1", "k2")
    assert s.weights_dir == (tmp_path / "w").resolve()
    assert s.weights_files == {"resnet50": tmp_path / "r.h5"}
    assert s.jobs == "rq" and s.redis_url is None
    assert s.queue == "simsearch" and s.job_threads == 1 and s.max_content_length == 64 * 1024 * 1024
    # arguments beat the environment; to_data/from_data round-trips (the RQ payload)
    t = Settings.from_env(home=tmp_path / "other", max_pixels=10)
    assert t.home == (tmp_path / "other").resolve() and t.max_pixels == 10
    assert Settings.from_data(t.to_data()).to_data() == t.to_data()
    assert "api_keys" not in t.to_data() and "secret_key" not in t.to_data()


@pytest.mark.parametrize("var, value, expected", [
    ("SIMSEARCH_MAX_PIXELS", "lots", "SIMSEARCH_MAX_PIXELS: Input should be a valid integer"),
    ("SIMSEARCH_JOB_THREADS", "0", "SIMSEARCH_JOB_THREADS: Input should be greater than or equal to 1"),
    ("SIMSEARCH_JOBS", "celery", "SIMSEARCH_JOBS: Input should be 'thread' or 'rq'"),
    ("SIMSEARCH_DECODE_PRIORITY", "high", "SIMSEARCH_DECODE_PRIORITY: Value error, should be 'idle'"),
    ("SIMSEARCH_ZIP_MAX_RATIO", "-1", "SIMSEARCH_ZIP_MAX_RATIO: Input should be greater than 1"),
    ("SIMSEARCH_DB_CONNECT_TIMEOUT", "soon", "SIMSEARCH_DB_CONNECT_TIMEOUT: Input should be a valid number"),
])
def test_bad_value_names_the_variable(monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(InvalidInput) as err:
        Settings.from_env()
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_replace_validates(tmp_path):
    s = Settings.from_env(home=tmp_path)
    assert s.replace(queue="q2").queue == "q2" and s.queue == "simsearch"
    with pytest.raises(InvalidInput, match="SIMSEARCH_SEARCH_THREADS"):
        s.replace(search_threads=0)
    with pytest.raises(Exception):
        s.queue = "x"  # frozen


def test_env_names():
    assert env_name("weights_path") == "SIMSEARCH_WEIGHTS_DIR"
    assert env_name("zip_max_bytes") == "SIMSEARCH_ZIP_MAX_BYTES"


def test_create_app_takes_overrides_as_settings(sqlite_settings, make_app):
    app = make_app(SIMSEARCH_QUEUE="other", SIMSEARCH_ZIP_MAX_ENTRIES="7", SIMSEARCH_MAX_UPLOAD_MB="2")
    settings = app.extensions["simsearch"].settings
    assert settings.queue == "other" and settings.zip_max_entries == 7
    assert app.config["MAX_CONTENT_LENGTH"] == 2 * 1024 * 1024
    with pytest.raises(InvalidInput, match="SIMSEARCH_JOB_THREADS"):
        make_app(SIMSEARCH_JOB_THREADS="many")


def test_package_reads_no_simsearch_variable_outside_config():
    """Every SIMSEARCH_* read goes through simsearch/config.py."""
    offenders = []
    for path in (ROOT / "simsearch").rglob("*.py"):
        if path.name == "config.py" and path.parent.name == "simsearch":
            continue
        text = path.read_text()
        for needle in ("os.environ", "os.getenv", "getenv("):
            for line in text.splitlines():
                if needle in line and "SIMSEARCH" in line:
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []


def test_cli_bad_setting_is_one_line(tmp_path):
    env = dict(os.environ, SIMSEARCH_HOME=str(tmp_path), SIMSEARCH_MAX_PIXELS="-5", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "simsearch.cli", "collections"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: SIMSEARCH_MAX_PIXELS: Input should be greater than or equal to 1 (got '-5')"
