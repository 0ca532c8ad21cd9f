"""Vectors in and out: the import's query, upload form and result; the export's query."""

from __future__ import annotations

from apiflask.fields import UploadFile
from pydantic import BaseModel, Field

from simsearch import limits as L
from simsearch.web.schemas.requests import CsrfToken, Form, Query, SpaceParam

__all__ = ["VectorsImportQuery", "VectorsExportQuery", "VectorsUpload", "VectorsImported", "VectorsIndexed"]


class VectorsImportQuery(Query):
    backbone: L.Space = Field(description="The embedding space: a backbone's (its dimension must match, and the file's "
                                          "`fingerprint` must name that model) or any name for vectors computed "
                                          "elsewhere, e.g. `clip-vit-b32`.")
    same_model: bool = Field(False, description="The file has no `fingerprint`, and the caller vouches that the "
                                                "backbone of `backbone` made its vectors (else such a file is refused "
                                                "into a backbone's space).")


class VectorsExportQuery(Query):
    backbone: SpaceParam = Field(None, description="The embedding space; default: the collection's only (or default) one.")


class VectorsUpload(Form):
    file: UploadFile = Field(description="The .npz file: `vectors` (N x D float32), `keys` (N unique strings), "
                                         "optional `labels`, `metadata` (JSON objects as strings).",
                      examples=["pets-efficientnet_lite0.npz"])
    csrf_token: CsrfToken = None


class VectorsIndexed(BaseModel):
    vectors: int = Field(description="Vectors in the index after the import.")
    seconds: float


class VectorsImported(BaseModel):
    """What an import stored. Nothing is stored when any row is refused."""

    collection: str
    backbone: str = Field(description="The space the vectors went to.")
    imported_space: bool = Field(description="True when the space is no backbone's: no search by image there.")
    dim: int
    rows: int = Field(description="Rows in the file.")
    vectors_added: int
    already_present: int = Field(description="Rows whose image already had exactly this vector.")
    images_created: int = Field(description="New images (no file, no thumbnail) for keys that matched none.")
    images_matched: int = Field(description="Rows whose key is the source path of an image of the collection.")
    labels_set: int
    normalised: int = Field(description="Rows that were not of unit length and were L2-normalised.")
    ignored_arrays: list[str]
    seconds: float = Field(description="Checking and storing, without the index update.")
    rate: float | None = Field(description="Rows per second.")
    index: VectorsIndexed | None
