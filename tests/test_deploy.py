"""Deployment: no server beyond localhost without an API key (`simsearch serve`, gunicorn with
simsearch's config), the worker health check, and the Docker files (compose.yaml, Dockerfile,
.dockerignore) checked without a Docker engine: parsed and cross-checked here, and validated with
`docker compose config` where a compose v2 CLI is installed (`scripts/compose_cli.sh` unpacks one in CI)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest
import requests

from tests.helpers.servers import BIN, base_env, free_port, stop, wait_up
from tests.helpers.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
SIMSEARCH = [sys.executable, "-c", "from simsearch.cli import main; main()"]


# ---- an API key before listening beyond localhost ------------------------------------------

@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.0.0.1:8000", True), ("127.8.9.1:80", True), ("localhost", True),
    ("localhost:5000", True), ("::1", True), ("[::1]:8000", True), ("unix:/run/simsearch.sock", True),
    ("0.0.0.0", False), ("0.0.0.0:8000", False), ("::", False), ("[::]:8000", False), (":8000", False),
    ("", False), ("192.168.1.5:8000", False), ("10.0.0.1", False), ("example.com:80", False),
    ("fd://3", False),
])
def test_which_addresses_are_loopback(address, loopback):
    from simsearch.web.exposure import is_loopback

    assert is_loopback(address) is loopback


def test_require_api_key():
    from simsearch.errors import InvalidInput
    from simsearch.web.exposure import require_api_key

    require_api_key(["127.0.0.1:8000", "unix:/tmp/s"], ())
    require_api_key(["0.0.0.0:8000"], ("k1",))
    with pytest.raises(InvalidInput) as exc:
        require_api_key(["127.0.0.1:8000", "0.0.0.0:8000"], ("", ), server="gunicorn")
    assert "\n" not in exc.value.message
    assert exc.value.message.startswith("gunicorn refuses to listen on 0.0.0.0:8000 (reachable beyond this machine)")
    assert "SIMSEARCH_API_KEYS" in exc.value.message


def test_serve_refuses_every_interface_without_a_key(sqlite_settings):
    proc = subprocess.run(SIMSEARCH + ["serve", "--host", "0.0.0.0", "--port", str(free_port())],
                          env=base_env(sqlite_settings), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: simsearch serve refuses to listen on 0.0.0.0"), proc.stderr
    assert "SIMSEARCH_API_KEYS" in lines[0]


def test_serve_on_every_interface_with_a_key(sqlite_settings):
    port = free_port()
    proc = subprocess.Popen(SIMSEARCH + ["serve", "--host", "0.0.0.0", "--port", str(port)],
                            env=base_env(sqlite_settings, SIMSEARCH_API_KEYS="k1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_up(f"http://127.0.0.1:{port}/api/health", proc)
        assert requests.post(f"http://127.0.0.1:{port}/api/collections", json={"name": "a"}, timeout=10).status_code == 401
        ok = requests.post(f"http://127.0.0.1:{port}/api/collections", json={"name": "a"}, timeout=10,
                           headers={"Authorization": "Bearer k1"})
        assert ok.status_code == 201, ok.text
    finally:
        stop(proc)


def gunicorn(bind: str) -> list[str]:
    return [str(BIN / "gunicorn"), "-c", "python:simsearch.web.gunicorn_conf", "-w", "1", "-b", bind,
            "simsearch.web.wsgi:app"]


def test_gunicorn_refuses_every_interface_without_a_key(sqlite_settings, tmp_path):
    bind = f"0.0.0.0:{free_port()}"
    env = base_env(sqlite_settings)
    proc = subprocess.run(gunicorn(bind), env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: gunicorn refuses to listen on {bind} (reachable beyond this machine) without an API key: "
                      "set SIMSEARCH_API_KEYS (comma-separated; make one with python -c 'import secrets; "
                      "print(secrets.token_urlsafe(32))'), or listen on 127.0.0.1"], proc.stderr
    assert "Listening at" not in proc.stderr and "Booting worker" not in proc.stderr


def test_gunicorn_on_loopback_needs_no_key(sqlite_settings, tmp_path):
    port = free_port()
    env = base_env(sqlite_settings)
    proc = subprocess.Popen(gunicorn(f"127.0.0.1:{port}"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_up(f"http://127.0.0.1:{port}/api/health", proc)
    finally:
        stop(proc)


# ---- the worker's health check ---------------------------------------------------------------

@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own: other tests' and sessions' workers share the usual one."""
    server = shutil.which("redis-server")
    if not server:
        pytest.fail("redis-server is needed (.ci/run installs and starts Redis)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    conn = redis.Redis(port=port)

    def answers():
        try:
            return conn.ping()
        except redis.ConnectionError:
            return False

    wait_until(answers, 30, 0.05, "redis-server answers")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.redis
def test_worker_check(sqlite_settings, private_redis):
    env = base_env(sqlite_settings, SIMSEARCH_REDIS_URL=private_redis)

    def check():
        return subprocess.run(SIMSEARCH + ["worker", "--check"], env=env, capture_output=True, text=True, timeout=60)

    none = check()
    assert none.returncode == 1
    assert none.stderr.strip() == f"error: no live simsearch worker on {socket.gethostname()} is registered with Redis"
    worker = subprocess.Popen(SIMSEARCH + ["worker", "--name", "checked"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while (alive := check()).returncode != 0:
            assert worker.poll() is None, worker.stderr.read()[-3000:]
            assert time.monotonic() < deadline, alive.stderr
            time.sleep(0.5)
        assert alive.stdout.startswith(f"ok: checked (pid {worker.pid}, ") and "queues simsearch" in alive.stdout
    finally:
        worker.send_signal(signal.SIGKILL)  # its registration stays in Redis: the pid check sees it die
        worker.wait()
    dead = check()
    assert dead.returncode == 1 and "no live simsearch worker" in dead.stderr
    down = subprocess.run(SIMSEARCH + ["worker", "--check"], env=dict(env, SIMSEARCH_REDIS_URL="redis://127.0.0.1:1/0"),
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and down.stderr.startswith("error: Redis does not answer")


# ---- compose.yaml, Dockerfile, .dockerignore -------------------------------------------------

def script(name: str):
    """A module of scripts/ (build_context, docker_requirements)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


build_context = script("build_context")
docker_requirements = script("docker_requirements")


def compose() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def volumes_of(service: dict) -> list[dict]:
    """Volume entries in the long form (the short ``SOURCE:TARGET[:ro]`` strings are converted)."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            out.append({"source": parts[0], "target": parts[1], "read_only": len(parts) > 2 and "ro" in parts[2].split(",")})
        else:
            out.append(v)
    return out


def test_compose_services_are_checked_and_ordered():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "web", "worker"} <= set(services)
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"migrate"}
    assert services["migrate"]["command"] == ["simsearch", "db", "upgrade"]
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if name in one_shot:  # a job that exits: the image's HEALTHCHECK (the web app's) is switched off
            assert check == {"disable": True}
        else:
            assert check.get("test"), name
    assert "/api/health" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "simsearch", "worker", "--check"]
    for name in ("web", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"] == {"condition": "service_completed_successfully"}
        assert deps["redis"] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_compose_photos_weights_keys_and_scaling():
    services = compose()["services"]
    for name in ("web", "worker"):
        service = services[name]
        env = service["environment"]
        photos = [v for v in volumes_of(service) if v["target"] == "/photos"]
        assert len(photos) == 1 and photos[0]["read_only"] is True, name
        assert photos[0]["source"].startswith("${SIMSEARCH_PHOTOS")
        # server-path ingest only below the read-only mount
        allowed = PurePosixPath(env["SIMSEARCH_ALLOW_SERVER_PATHS"])
        assert allowed.is_absolute() and allowed.is_relative_to(PurePosixPath(photos[0]["target"]))
        # weights (converted models, Keras downloads) on a named volume
        weights = PurePosixPath(env["SIMSEARCH_WEIGHTS_DIR"])
        mounted = {v["target"]: v["source"] for v in volumes_of(service)}
        assert str(weights) in mounted and mounted[str(weights)] in compose()["volumes"]
        assert PurePosixPath(env["KERAS_HOME"]).is_relative_to(weights)
        assert mounted[env["SIMSEARCH_HOME"]] in compose()["volumes"]
    # the web app listens on 0.0.0.0 in its container: compose refuses to start without a key
    assert services["web"]["environment"]["SIMSEARCH_API_KEYS"].startswith("${SIMSEARCH_API_KEYS:?")
    assert "SIMSEARCH_API_KEYS" not in services["worker"]["environment"]  # jobs never carry keys
    # scalable: nothing a second replica would clash on
    assert not {"container_name", "ports", "hostname"} & set(services["worker"])
    # the web app's command comes from the image: gunicorn with the config that checks for a key
    cmd = dockerfile_instructions("CMD")[-1]
    assert '"python:simsearch.web.gunicorn_conf"' in cmd and '"0.0.0.0:8000"' in cmd


def test_health_probes_wait_longer_than_the_health_check_takes():
    """/api/health answers within SIMSEARCH_HEALTH_TIMEOUT whatever the database does; compose's
    and the image's probes give it more than that, so a frozen database reads as 503, not as a
    probe timeout. The deadline settings compose passes are real settings."""
    from simsearch.config import Settings, env_name

    def seconds(text: str) -> float:
        return float(text.rstrip("s"))

    health_timeout = Settings.model_fields["health_timeout"].default
    web = compose()["services"]["web"]
    assert seconds(web["healthcheck"]["timeout"]) > health_timeout
    probe = dockerfile_instructions("HEALTHCHECK")[-1]
    assert seconds(re.search(r"--timeout=(\S+)", probe).group(1)) > health_timeout
    for field in ("request_header_timeout", "request_body_timeout", "request_min_rate_kb"):
        default = Settings.model_fields[field].default
        assert web["environment"][env_name(field)] == f"${{{env_name(field)}:-{default:g}}}"


def dockerfile_instructions(name: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.split(None, 1)[:1] == [name]]


def test_dockerfile_copies_what_exists_and_the_context_sends():
    builds = [s["build"] for s in compose()["services"].values() if "build" in s]
    assert len(builds) == 1 and (ROOT / builds[0]["dockerfile"]).is_file()
    context = set(build_context.context_files(ROOT))
    copies = dockerfile_instructions("COPY")
    assert copies
    for copy in copies:
        *sources, _dest = copy.split()
        assert not any(s.startswith("--") for s in sources), copy
        for src in sources:
            path = ROOT / src
            assert path.exists(), f"COPY {src}: missing"
            files = [src] if path.is_file() else [p.relative_to(ROOT).as_posix() for p in path.rglob("*")
                                                  if p.is_file() and "__pycache__" not in p.parts]
            assert set(files) <= context, f"COPY {src}: .dockerignore leaves out {sorted(set(files) - context)[:5]}"


def test_dockerignore_keeps_the_context_small(tmp_path):
    patterns = build_context.read_patterns(ROOT / ".dockerignore")
    for path in (".venv/lib/python3.11/site-packages/tensorflow/libtensorflow_cc.so.2", ".git/HEAD", ".git",
                 "photos/cat.jpg", ".env", "tests/test_deploy.py", "simsearch/__pycache__/config.cpython-311.pyc",
                 "simsearch.egg-info/PKG-INFO", ".pytest_cache/v/x", "artifacts/run.json", "benchmarks/out/a.json",
                 "data/simsearch.db", ".ci/bin/docker-compose", "schemathesis-report/x.json"):
        assert build_context.excluded(path, patterns), path
    for path in ("pyproject.toml", "requirements.lock", "README.md", "simsearch/config.py",
                 "simsearch/web/templates/ui/base.html", "scripts/docker_requirements.py"):
        assert not build_context.excluded(path, patterns), path
    # a checkout with what lies around in one: only the image's sources get through
    for rel in ("pyproject.toml", "README.md", "scripts/docker_requirements.py", "scripts/bench.py", "simsearch/config.py",
                "simsearch/__pycache__/config.cpython-311.pyc", ".venv/lib/big.so", ".git/objects/pack/p.pack",
                "photos/2024/cat.jpg", ".env", "tests/test_x.py", "data/simsearch.db", "simsearch.egg-info/PKG-INFO"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * (10_000_000 if rel.startswith((".venv", ".git", "photos")) else 10))
    shutil.copy(ROOT / ".dockerignore", tmp_path / ".dockerignore")
    assert build_context.context_files(tmp_path) == ["README.md", "pyproject.toml", "scripts/docker_requirements.py",
                                                     "simsearch/config.py"]
    # this checkout
    files = build_context.context_files(ROOT)
    size = sum((ROOT / f).stat().st_size for f in files)
    assert size < 5_000_000, f"{len(files)} files, {size} bytes"
    assert not [f for f in files if not f.startswith(("simsearch/", "scripts/"))
                and f not in ("pyproject.toml", "requirements.lock", "README.md")]


def test_build_context_follows_dockers_rules(tmp_path):
    (tmp_path / ".dockerignore").write_text("# c\n*\n!keep\n!src/\nsrc/**/*.tmp\n/src/skip.txt\n!src/skip.txt.d\n**/cache\n")
    for rel in ("keep", "drop", "src/a.py", "src/b.tmp", "src/deep/c.tmp", "src/skip.txt", "src/cache/x",
                "big/venv/lib.so"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    assert build_context.context_files(tmp_path) == ["keep", "src/a.py"]


def test_docker_requirements_take_the_cpu_wheel_on_x86_64():
    deps = docker_requirements.requirements(ROOT / "pyproject.toml", docker_requirements.tensorflow_package("auto", "x86_64"))
    tf = [d for d in deps if re.match(r"tensorflow\b", d)]
    assert len(tf) == 1 and tf[0].startswith("tensorflow-cpu") and re.search(r"[<>=]", tf[0])
    assert any(d.startswith("tf2onnx") for d in deps) and not any(d.startswith("tensorflow-cpu-") for d in deps)
    assert docker_requirements.tensorflow_package("auto", "aarch64") == "tensorflow"
    assert docker_requirements.tensorflow_package("tensorflow", "x86_64") == "tensorflow"
    # everything else as pyproject.toml says
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [d for d in deps if not d.startswith("tensorflow")] == [d for d in declared if not d.startswith("tensorflow")]


def test_compose_builds_one_image_that_the_services_share():
    """`docker compose build` builds one image, once: one service has `build:`, and migrate, web and
    worker run that image's tag (a build per service could give each a different image)."""
    services = compose()["services"]
    built = [name for name, s in services.items() if "build" in s]
    assert built == ["migrate"], built
    image = services["migrate"]["image"]
    assert image.startswith("simsearch:")
    for name in ("migrate", "web", "worker"):
        assert services[name]["image"] == image, name
        assert services[name]["platform"] == "linux/amd64", name  # what requirements.lock is resolved for
    # the image installs the lock, hashes checked, then simsearch without dependencies
    runs = dockerfile_instructions("RUN")
    assert any(r.startswith("pip install --require-hashes -r requirements.lock") for r in runs), runs
    assert any(r.startswith("pip install --no-deps") for r in runs), runs
    assert not any(re.search(r"pip install(?! --require-hashes| --no-deps)", r) for r in runs), runs
    assert "requirements.lock ./" in dockerfile_instructions("COPY")


def test_compose_sets_one_precision_for_web_and_workers():
    """A fleet whose CPUs differ must name one space (docs/backbones.md): SIMSEARCH_PRECISION is set,
    the same in web and worker, and its default is a precision every CPU runs (not `auto`)."""
    from simsearch.config import Settings

    services = compose()["services"]
    values = {services[name]["environment"].get("SIMSEARCH_PRECISION") for name in ("web", "worker", "migrate")}
    assert len(values) == 1, values
    value = values.pop()
    match = re.fullmatch(r"\$\{SIMSEARCH_PRECISION:-(\w+)\}", value or "")
    assert match, value
    assert match.group(1) == "fp32"
    Settings(precision=match.group(1))  # a value the settings accept


# ---- docker compose config (the CLI needs no engine) ---------------------------------------------

def compose_cli() -> list[str] | None:
    """A Docker Compose v2 command, where one is installed (`scripts/compose_cli.sh` looks in the same places)."""
    def works(cmd):
        try:
            out = subprocess.run(cmd + ["version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.returncode == 0 and " v2." in out.stdout

    for cmd in (["docker", "compose"], ["docker-compose"], [str(ROOT / ".ci" / "bin" / "docker-compose")]):
        if (shutil.which(cmd[0]) or Path(cmd[0]).is_file()) and works(cmd):
            return cmd
    return None


def test_docker_compose_config(tmp_path):
    cmd = compose_cli()
    if cmd is None:
        pytest.skip("no Docker Compose v2 CLI here (bash scripts/compose_cli.sh unpacks one: .ci/run does)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMSEARCH_", "COMPOSE_", "POSTGRES_"))}
    run = lambda *args, **extra: subprocess.run(cmd + ["--project-directory", str(ROOT), "-f", str(ROOT / "compose.yaml"),
                                                       "--env-file", os.devnull, *args],
                                                env=dict(env, **extra), capture_output=True, text=True, timeout=60)
    missing = run("config", "--quiet")
    assert missing.returncode != 0 and "SIMSEARCH_API_KEYS" in missing.stderr
    valid = run("config", "--quiet", SIMSEARCH_API_KEYS="k1")
    assert valid.returncode == 0, valid.stderr
    import json

    out = run("config", "--format", "json", SIMSEARCH_API_KEYS="k1", SIMSEARCH_PHOTOS=str(tmp_path))
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    assert services["web"]["environment"]["SIMSEARCH_API_KEYS"] == "k1"
    for name in ("web", "worker"):
        photos = [v for v in services[name]["volumes"] if v["target"] == "/photos"]
        assert photos == [{"type": "bind", "source": str(tmp_path), "target": "/photos", "read_only": True,
                           "bind": {"create_host_path": True}}]
    # `docker compose build` builds one image, for linux/amd64 (the bake file it would hand buildx)
    bake = run("build", "--print", SIMSEARCH_API_KEYS="k1")
    assert bake.returncode == 0, bake.stderr
    targets = json.loads(bake.stdout)["target"]
    assert list(targets) == ["migrate"], list(targets)
    assert targets["migrate"]["tags"] == ["simsearch:latest"] and targets["migrate"]["platforms"] == ["linux/amd64"]
