"""Image input: decode any file we accept into RGB uint8, resize for a model, thumbnail, hash, scan.

Everything here is pure CPU work with no global state, safe to call from worker threads.
"""

from simsearch.images.decode import DecodedImage, decode_image, load_image
from simsearch.images.scan import IMAGE_EXTENSIONS, scan_images
from simsearch.images.transform import THUMBNAIL_SIDE, content_hash, make_thumbnail, resize_for_model, shrink

__all__ = [
    "DecodedImage",
    "IMAGE_EXTENSIONS",
    "THUMBNAIL_SIDE",
    "content_hash",
    "decode_image",
    "load_image",
    "make_thumbnail",
    "shrink",
    "resize_for_model",
    "scan_images",
]
