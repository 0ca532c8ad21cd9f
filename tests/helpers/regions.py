"""The small real collection of region search and verification tests ("artefacts": 8 flowers102
photos of different species and 4 oxford-buildings landmarks, on SQLite) and a search by upload
against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATASETS, dataset_files, upgraded

SPACE = "efficientnet_lite0"
FLOWERS102 = DATASETS / "flowers102"
OXFORD = DATASETS / "oxford-buildings"


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory, weights_dir):
    """An app on SQLite with a collection 'art' of 8 flowers102 photos (different species) and
    4 oxford-buildings landmarks; returns (client, {file name: id}, paths)."""
    import shutil

    from simsearch.config import Settings
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.web import create_app, shutdown

    base = tmp_path_factory.mktemp("regions")
    folder = base / "art"
    paths = []
    for d in sorted(p for p in FLOWERS102.iterdir() if p.is_dir())[:8] + \
            sorted(p for p in OXFORD.iterdir() if p.is_dir() and p.name != "oxford")[:4]:
        (folder / d.name).mkdir(parents=True)
        f = dataset_files(d, 1)[0]
        shutil.copy(f, folder / d.name / f.name)
        paths.append(f)
    home = base / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}", weights_path=weights_dir,
                                          local_features=True))  # stored at ingest for verify=true (test_verify_search)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    files, _ = files_from_folder(folder, labels="folders")
    Ingester(app.extensions["simsearch"], spaces=[SPACE]).run("art", files, source=str(folder))
    client = app.test_client()
    images = client.get("/api/collections/art/images?per_page=100").get_json()["images"]
    yield client, {Path(i["path"]).name: i["id"] for i in images}, paths
    shutdown(app)


def _search(client, data: bytes, **params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return client.post(f"/api/collections/art/search?{q}", data=data, content_type="image/jpeg")


def on_a_wall(art: Path, background: Path, seed: int = 4) -> bytes:
    """``art`` framed, relit, turned in perspective and pasted into ``background``, as the
    in-context benchmark builds its wall photos (benchmarks/in_context.py)."""
    import numpy as np
    from PIL import Image as PILImage

    from tests.helpers import benchmarks

    in_context = benchmarks.load("in_context")
    with PILImage.open(art) as a, PILImage.open(background) as bg:
        photo, _ = in_context.on_a_wall(a, bg, np.random.default_rng(seed))
    return in_context.jpeg(photo)
