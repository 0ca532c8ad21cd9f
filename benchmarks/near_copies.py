"""Transformed copies of a photo, as people meet them: used by benchmarks/near_duplicates.py.

Each transform is a name of steps joined by ``+`` (applied in order); the result is saved as JPEG
quality 95 unless a step names the format (``jpeg30``, ``png``, ``webp``):

- ``resize50`` / ``resize25``: scaled to 50% / 25% of each side (Lanczos);
- ``jpeg30`` .. ``jpeg90``: re-encoded at that JPEG quality;
- ``crop5`` / ``crop7`` / ``crop10`` / ``crop15``: 5% / 7% / 10% / 15% cut off every side (centred; 7% is
  none of the centre windows the hashes keep);
  ``cropoff5`` / ``cropoff10`` / ``cropoff15``: 5% / 10% / 15% cut off the left and the top only (off-centre crops);
- ``hflip``: mirrored left-right;
- ``rotate3`` / ``rotate6``: rotated 3 / 6 degrees and cropped to its largest upright rectangle (as "straighten" does);
- ``bright130`` / ``dark70``: brightness x1.3 / x0.7; ``sat150``: saturation x1.5 and a warm tint;
  ``gray``: converted to grayscale;
- ``text``: a caption in the bottom third; ``watermark``: a semi-transparent name across the middle;
- ``png`` / ``webp``: saved as PNG / WebP (quality 80).
"""

from __future__ import annotations

import io
import math

SINGLE = ("resize50", "resize25", "jpeg30", "jpeg50", "jpeg70", "jpeg90", "crop5", "crop7", "crop10", "crop15", "cropoff5",
          "cropoff10", "cropoff15", "hflip", "rotate3", "rotate6", "bright130", "dark70", "sat150", "gray", "text", "watermark",
          "png", "webp")
COMBINED = ("resize50+jpeg50", "crop5+resize50+jpeg70", "hflip+jpeg70", "crop10+jpeg50", "resize25+jpeg30",
            "text+resize50+jpeg70", "hflip+cropoff10")
EXTENSION = {"png": ".png", "webp": ".webp"}


def _crop(img, left: float, top: float, right: float, bottom: float):
    w, h = img.size
    return img.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))


def _rotate(img, degrees: float):
    from PIL import Image

    w, h = img.size
    out = img.rotate(degrees, Image.Resampling.BICUBIC, expand=False)
    a = math.radians(abs(degrees))
    # the largest axis-aligned rectangle of the same aspect inside the rotated w x h frame
    s = 1 / (math.cos(a) + max(w / h, h / w) * math.sin(a))
    return _crop(out, (1 - s) / 2, (1 - s) / 2, (1 - s) / 2, (1 - s) / 2)


def _caption(img, text: str, where: str):
    from PIL import Image, ImageDraw, ImageFont

    img = img.convert("RGBA")
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if where == "bottom":
        font = ImageFont.load_default(size=max(10, h // 12))
        draw.text((w * 0.05, h * 0.78), text, font=font, fill=(255, 255, 255, 255), stroke_width=2,
                  stroke_fill=(0, 0, 0, 255))
    else:
        font = ImageFont.load_default(size=max(10, h // 7))
        box = draw.textbbox((0, 0), text, font=font)
        draw.text(((w - (box[2] - box[0])) / 2, (h - (box[3] - box[1])) / 2), text, font=font,
                  fill=(255, 255, 255, 110))
    return Image.alpha_composite(img, layer).convert("RGB")


def apply(img, transform: str):
    """(image, format, quality) of ``transform`` applied to an RGB PIL image."""
    from PIL import Image, ImageEnhance, ImageOps

    fmt, quality = "JPEG", 95
    for step in transform.split("+"):
        if step.startswith("resize"):
            f = int(step[6:]) / 100
            img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), 1)  # LANCZOS
        elif step.startswith("jpeg"):
            fmt, quality = "JPEG", int(step[4:])
        elif step.startswith("cropoff"):
            f = int(step[7:]) / 100
            img = _crop(img, f, f, 0, 0)
        elif step.startswith("crop"):
            f = int(step[4:]) / 100
            img = _crop(img, f, f, f, f)
        elif step == "hflip":
            img = ImageOps.mirror(img)
        elif step.startswith("rotate"):
            img = _rotate(img, float(step[6:]))
        elif step == "bright130":
            img = ImageEnhance.Brightness(img).enhance(1.3)
        elif step == "dark70":
            img = ImageEnhance.Brightness(img).enhance(0.7)
        elif step == "sat150":
            img = ImageEnhance.Color(img).enhance(1.5)
            r, g, b = img.split()
            img = Image.merge("RGB", (r.point(lambda v: min(255, v + 20)), g, b.point(lambda v: max(0, v - 20))))
        elif step == "gray":
            img = ImageOps.grayscale(img).convert("RGB")
        elif step == "text":
            img = _caption(img, "Summer 2019 - Oxford", "bottom")
        elif step == "watermark":
            img = _caption(img, "(c) PhotoStock", "middle")
        elif step == "png":
            fmt = "PNG"
        elif step == "webp":
            fmt, quality = "WEBP", 80
        else:
            raise ValueError(f"unknown step {step!r}")
    return img, fmt, quality


def make_copy(data: bytes, transform: str) -> bytes:
    """The bytes of ``transform`` applied to the image file ``data``."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    img, fmt, quality = apply(img, transform)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": quality} if fmt != "PNG" else {}))
    return buf.getvalue()


def extension(transform: str) -> str:
    last = [s for s in transform.split("+") if s in EXTENSION]
    return EXTENSION[last[-1]] if last else ".jpg"
