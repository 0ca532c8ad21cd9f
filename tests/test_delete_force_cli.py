"""`simsearch delete collection NAME` refuses a collection with a queued or running job (exit 1,
one line naming --force); `--force` cancels the job and deletes it (issue 19, item 8)."""

from __future__ import annotations

import json

from tests.helpers.cli import env, imported, run  # noqa: F401 (fixtures)


def test_delete_collection_with_a_running_job_needs_force(run, imported, tmp_path):  # noqa: F811
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.store import repo
    from simsearch.store.models import IngestRun

    app = AppContext.open(Settings.from_env(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'home' / 'db.sqlite'}"))
    try:
        with app.db.session() as s:
            coll = repo.get_collection(s, "ext")
            s.add(IngestRun(collection_id=coll.id, source="a worker", spaces=[], status="running"))
    finally:
        app.close()
    r = run("delete", "collection", "ext", "--yes", code=1)
    lines = r.output.strip().splitlines()
    assert lines[-1].startswith("error: collection 'ext' has 1 queued or running job: ") and "--force" in lines[-1], r.output
    assert json.loads(run("collections", "--json").output)[0]["name"] == "ext"
    r = run("delete", "collection", "ext", "--yes", "--force")
    assert "deleted collection ext (30 images)" in r.output
    assert json.loads(run("collections", "--json").output) == []
    assert "no collection named 'ext'" in run("delete", "collection", "ext", "--yes", "--force", code=2).output
