"""Cheap structural checks of an image file, run before PIL parses it.

PIL's JPEG and GIF parsers skip bytes they do not understand one at a time, in Python: a file of
``FF D8 FF`` + 63 MB of zeros kept ``Image.open`` busy for 28 s of CPU, a JPEG with a frame header
followed by zeros for 8 s, ``GIF89a`` + zeros for 11 s. These checks walk the same structure with
C-speed searches and a bounded number of Python steps, and return a reason when the file cannot
be a usable image. PNG (chunk lengths), TIFF (IFD offsets), BMP and WebP (fixed headers) are parsed
by PIL without such scans; :func:`png_problem` still bounds the chunks before the image data.

Each function takes the whole file and returns ``None`` (looks sane: decode it) or a reason.
"""

from __future__ import annotations

import struct

MAX_SEGMENTS = 10_000  # JPEG markers / PNG chunks / GIF blocks before the image data (real files: < 100)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (DHT, JPG, DAC are not)
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM: no length field


def jpeg_problem(data: bytes) -> str | None:
    """A JPEG needs a frame header (SOF: the size) and then a scan (SOS) before its end."""
    n = len(data)
    pos = 2  # after SOI (FF D8)
    size = None
    for _ in range(MAX_SEGMENTS):
        ff = data.find(b"\xff", pos)  # bytes before a marker are junk (libjpeg tolerates a few)
        if ff < 0:
            break
        pos = ff
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
            if pos - ff > 65536:
                return "corrupt JPEG file: a run of fill bytes instead of markers"
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker == 0x00 or marker in _STANDALONE:  # stuffed byte or no-length marker: keep looking
            continue
        if marker == 0xD9:  # EOI
            break
        if marker == 0xD8:
            return "corrupt JPEG file: a second start-of-image marker before the image data"
        if pos + 2 > n:
            break
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            return f"corrupt JPEG file: a marker segment of length {length}"
        if marker in _SOF:
            if length < 8 or pos + 7 > n:
                return "corrupt JPEG file: the frame header (SOF) is cut short"
            height, width = struct.unpack_from(">HH", data, pos + 3)
            if width == 0 or height == 0:
                return f"corrupt JPEG file: the frame header gives a size of {width}x{height}"
            size = (width, height)
        elif marker == 0xDA:  # start of scan: the compressed data follows
            if size is None:
                return "corrupt JPEG file: image data (SOS) before any frame header (SOF)"
            return None
        pos += length
    else:
        return f"corrupt JPEG file: more than {MAX_SEGMENTS} markers before the image data"
    if size is None:
        return "not a usable JPEG file: no frame header (SOF marker), so no image size"
    return "truncated JPEG file: it ends before the image data (no SOS marker)"


def gif_problem(data: bytes) -> str | None:
    """A GIF needs a non-empty screen and an image descriptor, reached through well-formed blocks."""
    if len(data) < 13:
        return "truncated GIF file: the header is cut short"
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    if width == 0 or height == 0:
        return f"corrupt GIF file: the screen size is {width}x{height}"
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # global colour table
    n = len(data)
    steps = 0
    while pos < n:
        block = data[pos]
        if block == 0x2C:  # image descriptor: PIL can take it from here
            return None
        if block == 0x3B:  # trailer
            return "not a usable GIF file: it has no image"
        if block != 0x21:
            return f"corrupt GIF file: unexpected block type 0x{block:02x} at byte {pos}"
        pos += 2  # extension introducer and label, then sub-blocks up to a zero-length one
        while True:
            steps += 1
            if steps > MAX_SEGMENTS * 10:
                return "corrupt GIF file: too many extension blocks before the first image"
            if pos >= n:
                return "truncated GIF file: it ends inside an extension block"
            size = data[pos]
            pos += 1 + size
            if size == 0:
                break
    return "truncated GIF file: it ends before the first image"


def png_problem(data: bytes) -> str | None:
    """A PNG starts with an IHDR chunk of a non-empty size and reaches IDAT in few chunks."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        return "corrupt PNG file: it does not start with a header (IHDR) chunk"
    width, height = struct.unpack_from(">II", data, 16)
    if width == 0 or height == 0:
        return f"corrupt PNG file: the header gives a size of {width}x{height}"
    pos, n = 8, len(data)
    for _ in range(MAX_SEGMENTS):
        if pos + 8 > n:
            return "truncated PNG file: it ends before the image data (IDAT)"
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IDAT":
            return None
        if kind == b"IEND":
            return "not a usable PNG file: it has no image data (IDAT)"
        pos += 12 + length
    return f"corrupt PNG file: more than {MAX_SEGMENTS} chunks before the image data"


def check_structure(data: bytes) -> str | None:
    """The reason ``data`` cannot be a usable image, from its structure alone; None to go on."""
    if data[:3] == b"\xff\xd8\xff":
        return jpeg_problem(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return gif_problem(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return png_problem(data)
    return None
