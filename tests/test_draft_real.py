"""JPEG draft decoding as ingest asks for it, on the realistic shared photos and on a 12 MP JPEG:
the decoded image is never smaller than the model's input (both sides) or the thumbnail (long
side), and large photos are decoded at a reduced DCT scale."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from simsearch.embedding.backbones import get_backbone
from simsearch.images import THUMBNAIL_SIDE, decode_image, load_image

DATASETS = (Path(__file__).resolve().parent.parent / ".." / "shared" / "datasets").resolve()
SIZE = get_backbone("efficientnet_lite0").input_size


def sample(name: str, n: int = 12) -> list[Path]:
    paths = sorted((DATASETS / name).rglob("*.jpg"))
    if not paths:
        pytest.skip(f"dataset not present at {DATASETS / name}")
    return paths[:: max(1, len(paths) // n)][:n]


def assert_enough(rgb, full: tuple[int, int]) -> None:
    h, w = rgb.shape[:2]
    assert min(h, w) >= min(SIZE, *full), (w, h, full)
    assert max(h, w) >= min(max(SIZE, THUMBNAIL_SIDE), max(full)), (w, h, full)


@pytest.mark.parametrize("name", ["flowers102", "oxford-buildings", "cats-dogs"])
def test_draft_keeps_the_model_input_and_thumbnail_on_real_photos(name):
    reduced = 0
    for path in sample(name):
        img = load_image(path, draft_size=SIZE, draft_long=THUMBNAIL_SIDE)
        assert_enough(img.rgb, (img.width, img.height))
        reduced += img.rgb.shape[:2] != (img.height, img.width)
    if name == "flowers102":  # short side 500: at least twice 224, decoded at 1/2
        assert reduced > 0


def test_draft_on_a_12_megapixel_photo():
    with Image.open(sample("oxford-buildings", 1)[0]) as im:
        big = im.convert("RGB").resize((4000, 3000), Image.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=90)
    img = decode_image(buf.getvalue(), source="big.jpg", draft_size=SIZE, draft_long=THUMBNAIL_SIDE)
    assert (img.width, img.height) == (4000, 3000)
    assert img.rgb.shape == (375, 500, 3)  # DCT scale 1/8: the smallest that keeps both sides >= 224
    assert_enough(img.rgb, (4000, 3000))
