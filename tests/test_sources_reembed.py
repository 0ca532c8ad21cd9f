"""A collection ingested from a bucket is embedded again from the bucket: `compare` embeds a second
backbone and `tune` its pooling and test-time-view variants by reading the objects again (with the
process's AWS environment), and an object removed from the bucket is named as unreadable."""

from __future__ import annotations

import json

from tests.conftest import CATS_DOGS, dataset_files
from tests.helpers.cli import env, run  # noqa: F401 (fixtures)
from tests.helpers.s3 import aws_env, make_bucket, moto_server, s3_client  # noqa: F401

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
