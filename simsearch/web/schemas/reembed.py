"""Request and response of ``POST /api/collections/<name>/reembed``: a re-embedding job and its
cost estimate (:mod:`simsearch.ops.reembed_jobs`); the answer of ``.../embed`` (the same job,
with the images left out because their source file is gone); and ``.../features``: the job storing
the images' local features (:mod:`simsearch.ops.local_features`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from simsearch import limits as L
from simsearch.web.schemas.requests import Body

__all__ = ["ReembedRequest", "ReembedEstimate", "ReembedAccepted", "EmbedAccepted", "FeaturesRequest",
           "FeaturesEstimate", "FeaturesAccepted"]


class ReembedRequest(Body):
    spaces: Annotated[list[L.Backbone], Field(min_length=1, max_length=16)] = Field(
        description="The spaces to embed the collection's stored images in: one backbone and precision, any poolings "
                    "and test-time views (`efficientnet_lite0@gem3`, `efficientnet_lite0@gem3+flip`).",
        examples=[["efficientnet_lite0@gem3"]])
    shard_size: Annotated[int, Field(ge=1, le=1_000_000), L.Whole] | None = Field(
        None, description="Images per shard (default: the server's SIMSEARCH_SHARD_SIZE).", examples=[1000])


class ReembedEstimate(BaseModel):
    """What the job will cost, worked out before it starts: images x forwards per image x seconds per forward."""

    model_config = ConfigDict(extra="forbid")

    images: int = Field(description="Images to embed (the collection's ok images lacking one of the spaces).",
                        examples=[2040])
    spaces: int = Field(description="Target spaces.", examples=[1])
    forwards_per_image: int = Field(description="Model forwards per image: the distinct test-time views of the "
                                                "spaces (poolings share one forward).", examples=[1])
    seconds_per_image: float | None = Field(description="Seconds per image (null: no rate known yet).",
                                            examples=[0.021])
    seconds: float | None = Field(description="Seconds for the whole job on one worker (null: no rate known yet).",
                                  examples=[42.8])
    basis: Literal["recorded", "ingest", "probe", "none"] = Field(
        description="Where the rate comes from: `recorded` re-embedding shards of this backbone (wall time), `ingest`'s "
                    "model seconds per image (decoding not included), a timed `probe`, or `none`.", examples=["recorded"])


class ReembedAccepted(BaseModel):
    job_id: int
    status: Literal["queued", "running"]
    status_url: str
    collection: str
    spaces: list[str] = Field(description="The target spaces (with the server's precision).",
                              examples=[["efficientnet_lite0@gem3"]])
    total: int = Field(description="Images the job embeds.", examples=[2040])
    shards: int = Field(description="Shards the job was split into (0: a job already under way was joined).",
                        examples=[3])
    estimate: ReembedEstimate | None = Field(description="The cost, said before it starts.")
    runner: Literal["thread", "rq"]


class EmbedAccepted(ReembedAccepted):
    """A re-embedding with another backbone (the compare page's action)."""

    ignored: list[str] = Field(description="Images left out because their source file is gone (the first 200).",
                               examples=[["cat.1.jpg (its source file is gone)"]])


class FeaturesRequest(Body):
    shard_size: Annotated[int, Field(ge=1, le=1_000_000), L.Whole] | None = Field(
        None, description="Images per shard (default: the server's SIMSEARCH_SHARD_SIZE).", examples=[1000])
    retry_unreadable: StrictBool = Field(
        False, description="Also try again the images whose original an earlier pass could not read (recorded as "
                           "tried, not taken again otherwise): for originals fixed or restored since. Not when the "
                           "request joins a job under way.", examples=[False])


class FeaturesEstimate(BaseModel):
    """What the job will cost on one worker, worked out before it starts: images x seconds per image."""

    model_config = ConfigDict(extra="forbid")

    images: int = Field(description="Images lacking their local features.", examples=[2040])
    seconds_per_image: float | None = Field(description="Seconds per image (null: no rate known).", examples=[0.05])
    seconds: float | None = Field(description="Seconds for the whole job on one worker (null: no rate known).",
                                  examples=[102.0])
    basis: Literal["recorded", "probe", "none"] = Field(
        description="Where the rate comes from: the `recorded` wall time of earlier shards, a timed `probe` of a few "
                    "of the images, or `none`.", examples=["recorded"])


class FeaturesAccepted(BaseModel):
    job_id: int
    status: Literal["queued", "running"]
    status_url: str
    collection: str
    total: int = Field(description="Images the job stores the local features of.", examples=[2040])
    shards: int = Field(description="Shards the job was split into (0: a job already under way was joined).",
                        examples=[3])
    estimate: FeaturesEstimate | None = Field(description="The cost, said before it starts.")
    runner: Literal["thread", "rq"]
    retried: int = Field(0, description="Images whose original an earlier pass could not read, tried again "
                                        "(`retry_unreadable`; counted in `total`).", examples=[0])
