"""The CLI run in-process (click's runner) against a throwaway home, and a collection of imported
vectors to manage without running a model."""

from __future__ import annotations

import numpy as np
import pytest

SPACE = "ext-vectors"  # imported vectors: a collection to manage without running a model


@pytest.fixture
def env(tmp_path, weights_dir):
    return {"SIMSEARCH_HOME": str(tmp_path / "home"), "SIMSEARCH_DATABASE_URL": f"sqlite:///{tmp_path / 'home' / 'db.sqlite'}",
            "SIMSEARCH_WEIGHTS_DIR": str(weights_dir), "SIMSEARCH_REDIS_URL": ""}


@pytest.fixture
def run(env):
    from click.testing import CliRunner

    from simsearch.cli import cli

    runner = CliRunner()

    def _run(*args, code=0, input=None, extra_env=None):
        result = runner.invoke(cli, [str(a) for a in args], env={**env, **(extra_env or {})}, input=input,
                               catch_exceptions=False)
        assert result.exit_code == code, (result.exit_code, result.output)
        return result

    return _run


@pytest.fixture
def imported(run, tmp_path):
    """A collection 'ext' of 30 images with imported 8-d vectors in two groups (no model needed);
    returns their ids by key."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 8))
    x = np.concatenate([centres[i] + 0.05 * rng.normal(size=(15, 8)) for i in range(2)]).astype("float32")
    keys = np.array([f"/photos/{'ab'[i // 15]}/img{i}.jpg" for i in range(30)])
    np.savez(tmp_path / "v.npz", vectors=x, keys=keys, labels=np.array(["a"] * 15 + ["b"] * 15))
    run("import-vectors", tmp_path / "v.npz", "-c", "ext", "-s", SPACE)
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ops import images as ops_images

    app = AppContext.open(Settings.from_env(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'home' / 'db.sqlite'}"))
    try:
        page = ops_images.list_page(app, "ext", per_page=100)
    finally:
        app.close()
    return {img["path"]: img["id"] for img in page["images"]}
