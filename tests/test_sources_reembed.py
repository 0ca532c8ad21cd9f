"""A collection ingested from a bucket is embedded again from the bucket: `compare` embeds a second
backbone and `tune` its pooling and test-time-view variants by reading the objects again (with the
process's AWS environment), and an object removed from the bucket is named as unreadable. The
check of a sample (tune's pass) asks for each sampled object with a HEAD request when the sample is
small beside the collection, and lists the prefix otherwise; both name exactly the removed object,
and a bucket that cannot be checked makes its objects unreadable with the reason, not "readable"."""

from __future__ import annotations

import json

from simsearch.config import Settings
from simsearch.context import AppContext
from simsearch.ingest import remote
from simsearch.ops import reembed
from simsearch.store import repo
from tests.conftest import CATS_DOGS, dataset_files
from tests.helpers.cli import env, run  # noqa: F401 (fixtures)
from tests.helpers.s3 import aws_env, free_port, make_bucket, moto_server, s3_client  # noqa: F401

PER_CLASS = 10


def _bucket(endpoint: str, bucket: str) -> None:
    make_bucket(endpoint, bucket, {f"photos/{cls}/{p.name}": p for cls in ("cats", "dogs")
                                   for p in dataset_files(CATS_DOGS / cls, PER_CLASS)})


def test_compare_embeds_a_second_backbone_from_the_bucket(aws_env, run):
    _bucket(aws_env, "pets-compare")
    run("ingest", "s3://pets-compare/photos", "-c", "pets", "--labels", "folders", "-b", "efficientnet_lite0")
    report = json.loads(run("compare", "-c", "pets", "-b", "efficientnet_lite0,efficientnet_lite1", "--json",
                            "--no-progress").output)
    second = report["backbones"][1]
    assert second["available"], second.get("reason")
    assert second["embedding"]["embedded"] == 2 * PER_CLASS and second["embedding"]["failed"] == 0


def test_tune_variants_read_the_bucket_and_name_a_removed_object(aws_env, run):
    _bucket(aws_env, "pets-tune")
    run("ingest", "s3://pets-tune/photos", "-c", "pets", "--labels", "folders", "-b", "efficientnet_lite0")
    tuned = json.loads(run("tune", "-c", "pets", "--json", "--no-progress", "--folds", "2").output)
    assert not any("can no longer be read" in n for n in tuned.get("notes", [])), tuned.get("notes")
    tried = {c["space"] for c in tuned["candidates"]}
    assert any("@gem" in s or "+flip" in s for s in tried), sorted(tried)

    gone = f"photos/dogs/{dataset_files(CATS_DOGS / 'dogs', 1)[0].name}"
    s3_client(aws_env).delete_object(Bucket="pets-tune", Key=gone)
    again = json.loads(run("tune", "-c", "pets", "--json", "--no-progress", "--folds", "2").output)
    assert any(f"1 of {2 * PER_CLASS} images can no longer be read" in n for n in again.get("notes", [])), again.get("notes")


def test_a_sample_is_checked_by_head_requests_and_a_removed_object_is_named(aws_env, run, env):
    _bucket(aws_env, "pets-heads")
    run("ingest", "s3://pets-heads/photos", "-c", "pets", "--labels", "folders", "-b", "efficientnet_lite0")
    ctx = AppContext.open(Settings.from_env(home=env["SIMSEARCH_HOME"], database_url=env["SIMSEARCH_DATABASE_URL"]))
    try:
        with ctx.db.session() as s:
            coll_id = repo.get_collection(s, "pets").id
        every = reembed._sources(ctx, coll_id)
        paths = [p for _, p in every]
        sample = [every[i] for i in (0, 7, 13)]  # a sample of 3 of the 20: one HEAD each, not a listing
        assert reembed._by_head(len(sample), len(paths)) and not reembed._by_head(len(paths), len(paths))
        sampled = [p for _, p in sample]
        assert reembed._unreadable(sampled, among=paths) == ([], [])
        done = reembed.embed_collection(ctx, coll_id, ["efficientnet_lite0+flip"], ids=[i for i, _ in sample])
        assert done.unavailable is None and done.images == 3

        s3_client(aws_env).delete_object(Bucket="pets-heads", Key=sampled[1].split("/", 3)[3])
        assert remote.missing_objects(sampled) == [sampled[1]]
        assert reembed._unreadable(sampled, among=paths) == ([sampled[1]], [])
        assert reembed._unreadable(paths, among=paths) == ([sampled[1]], [])  # the whole collection: listed
        again = reembed.embed_collection(ctx, coll_id, ["efficientnet_lite0+flip"], ids=[i for i, _ in sample])
        assert again.images == 0 and again.unavailable.startswith("1 of 3 images can no longer be read"), again
    finally:
        ctx.close()


def test_a_bucket_that_cannot_be_checked_makes_its_sample_unreadable_with_the_reason(aws_env, monkeypatch):
    make_bucket(aws_env, "pets-gone", {"photos/a.jpg": b"a"})
    assert reembed._unreadable(["s3://no-such-bucket/photos/a.jpg"]) == (["s3://no-such-bucket/photos/a.jpg"], [])
    monkeypatch.setattr(remote, "BACKOFF", 0.0)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    few = [f"s3://pets-gone/photos/{i}.jpg" for i in range(3)]  # HEAD requests
    many = [f"s3://pets-gone/photos/{i}.jpg" for i in range(20)]  # a listing
    for paths in (few, many):
        missing, failed = reembed._unreadable(paths)
        assert missing == paths and len(failed) == 1, failed
        assert failed[0].startswith("s3://pets-gone at http://127.0.0.1:") and "the endpoint is unreachable" in failed[0]
