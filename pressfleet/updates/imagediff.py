"""How different two screenshots of a page are: the share of pixels that changed noticeably, and a diff image.

Pillow does the work (ImageChops.difference per channel); a pixel counts as changed when any channel moved by
more than `tolerance` (of 255), so anti-aliasing and JPEG-like noise do not count. Pages of different heights
are compared over the taller one (the missing part counts as changed): a page that grew or lost a block shows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    share: float  # of the compared pixels, how many changed
    diff_png: bytes  # the changed pixels in red over a faded copy of the new page
    size: tuple[int, int]


def compare(before_png: bytes, after_png: bytes, *, tolerance: int = 32) -> Difference:
    from PIL import Image, ImageChops

    a = Image.open(io.BytesIO(before_png)).convert("RGB")
    b = Image.open(io.BytesIO(after_png)).convert("RGB")
    size = (max(a.width, b.width), max(a.height, b.height))
    canvas_a, canvas_b = Image.new("RGB", size, (255, 0, 255)), Image.new("RGB", size, (0, 255, 0))
    canvas_a.paste(a, (0, 0))
    canvas_b.paste(b, (0, 0))
    delta = ImageChops.difference(canvas_a, canvas_b)
    channels = delta.split()
    changed = ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2])
    mask = changed.point(lambda v: 255 if v > tolerance else 0)
    count = mask.histogram()[255]
    faded = Image.blend(canvas_b, Image.new("RGB", size, (255, 255, 255)), 0.7)
    faded.paste(Image.new("RGB", size, (220, 0, 0)), (0, 0), mask)
    out = io.BytesIO()
    faded.save(out, format="PNG", optimize=True)
    return Difference(share=count / (size[0] * size[1]), diff_png=out.getvalue(), size=size)
