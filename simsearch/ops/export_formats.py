"""The files a selection of images is exported as: CSV, JSON and COCO (pure: rows in, text out).

A row is one image: ``{"id", "path", "label", "width", "height", "files": [{"path", "size", "mtime"},
...], "group"}``: its first path, every file with its bytes (the first path first), and the group it
was selected in (a cluster's number, a duplicate group's; None when the selection has none).

- **csv**: one line per file (an image with three files: three lines, the same id), columns
  :data:`CSV_COLUMNS`; ``first`` is ``yes`` on the image's first path.
- **json**: a list of the rows, in the order given.
- **coco**: a COCO-format JSON (the format of ``pycocotools``' ``COCO(file)``, FiftyOne's
  ``COCODetectionDataset`` and most labelling tools): ``images`` (``file_name`` = the first path,
  ``width``, ``height``; every path in ``simsearch_paths``, the group in ``simsearch_group``),
  ``categories`` (one per label, ids from 1 in label order) and one image-level ``annotation`` per
  labelled image: a box over the whole image (``[0, 0, width, height]``, ``area`` its size), the
  usual way to carry a whole-image class in COCO. Unlabelled images have no annotation.
"""

from __future__ import annotations

import csv
import io
import json

FORMATS = ("csv", "json", "coco")
MIME = {"csv": "text/csv", "json": "application/json", "coco": "application/json"}
SUFFIX = {"csv": "csv", "json": "json", "coco": "coco.json"}
CSV_COLUMNS = ["id", "path", "label", "first", "group", "width", "height", "size", "mtime"]


def _cell(value) -> str:
    return "" if value is None else str(value)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        for k, f in enumerate(r["files"]):
            w.writerow([r["id"], f["path"], _cell(r["label"]), "yes" if k == 0 else "no", _cell(r.get("group")),
                        _cell(r["width"]), _cell(r["height"]), _cell(f.get("size")), _cell(f.get("mtime"))])
    return buf.getvalue()


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"


def to_coco(rows: list[dict], *, description: str, version: str, created: str) -> str:
    """``created``: the export's time (ISO 8601), written in ``info.date_created``."""
    labels = sorted({r["label"] for r in rows if r["label"] is not None})
    category = {label: n for n, label in enumerate(labels, start=1)}
    images, annotations = [], []
    for r in rows:
        width, height = r["width"] or 0, r["height"] or 0
        images.append({"id": r["id"], "file_name": r["path"], "width": width, "height": height,
                       "simsearch_paths": [f["path"] for f in r["files"]], "simsearch_group": r.get("group")})
        if r["label"] is not None:
            annotations.append({"id": len(annotations) + 1, "image_id": r["id"], "category_id": category[r["label"]],
                                "bbox": [0, 0, width, height], "area": width * height, "iscrowd": 0})
    doc = {"info": {"description": description, "version": version, "date_created": created},
           "licenses": [], "images": images,
           "categories": [{"id": n, "name": label, "supercategory": "label"} for label, n in category.items()],
           "annotations": annotations}
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def serialise(rows: list[dict], fmt: str, *, description: str = "", version: str = "", created: str = "") -> str:
    """``rows`` as ``fmt`` (one of :data:`FORMATS`; the caller has checked it)."""
    if fmt == "csv":
        return to_csv(rows)
    if fmt == "json":
        return to_json(rows)
    return to_coco(rows, description=description, version=version, created=created)
