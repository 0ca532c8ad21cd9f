"""Job rows made through the lifecycle, for the cancel and retry endpoints: a queued ingest (no
runner takes it) and a failed clustering job (a retry computes it again)."""

from __future__ import annotations

from simsearch.store import lifecycle, repo
from simsearch.store.lifecycle import JobKind


def _collection_id(app, name: str) -> int:
    with app.extensions["simsearch"].db.session() as s:
        return repo.get_or_create_collection(s, name).id


def queued_job(app, collection: str) -> int:
    return lifecycle.create(app.extensions["simsearch"].db, kind=JobKind.INGEST,
                            collection_id=_collection_id(app, collection), source="queued for the test", total=1)


def failed_clusters_job(app, collection: str, backbone: str = "efficientnet_lite0") -> int:
    from simsearch.ops.analysis_tasks import AnalysisTask

    task = AnalysisTask("clusters", collection, {"backbone": backbone, "k": 2, "representatives": 4})
    db = app.extensions["simsearch"].db
    run_id = lifecycle.create(db, kind=JobKind.CLUSTERS, collection_id=_collection_id(app, collection),
                              params=task.to_json(), source=task.describe(), spaces=task.spaces)
    lifecycle.fail(db, run_id, "the clusters computation failed: for the test")
    return run_id
