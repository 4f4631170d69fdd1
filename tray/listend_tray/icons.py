"""Tray icons drawn with Pillow at run time: a distinct shape *and* colour per state.

| state         | shape                      | colour |
|---------------|----------------------------|--------|
| idle          | hollow ring                | grey   |
| listening     | filled disc                | red    |
| processing    | disc with a white ring     | amber  |
| error         | triangle with a bar        | orange-red on dark |
| not running   | crossed square             | dark grey |

A memory-pressure badge (warn: yellow, cleanup: orange, limit: magenta) sits in the top-right corner.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

SIZE = 64
COLOURS = {
    "idle": (128, 128, 128),
    "listening": (220, 30, 30),
    "processing": (240, 170, 0),
    "error": (255, 80, 0),
    "absent": (70, 70, 70),
    "loading": (30, 110, 220),
}
BADGE = {"warn": (255, 230, 0), "cleanup": (255, 140, 0), "limit": (220, 0, 220)}


def draw_icon(state: str, pressure: str = "normal", size: int = SIZE) -> Image.Image:
    """Return an RGBA icon for ``state`` (idle, listening, processing, error, absent, loading)."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    c = COLOURS.get(state, COLOURS["error"])
    m = size // 8
    box = [m, m, size - m, size - m]
    if state == "idle":
        d.ellipse(box, outline=c, width=max(3, size // 8))
    elif state == "listening":
        d.ellipse(box, fill=c)
    elif state == "processing":
        d.ellipse(box, fill=c)
        inner = size // 4
        d.ellipse([inner, inner, size - inner, size - inner], outline=(255, 255, 255), width=max(2, size // 16))
    elif state == "loading":
        d.arc(box, 0, 270, fill=c, width=max(3, size // 8))
    elif state == "absent":
        d.rectangle(box, outline=c, width=max(3, size // 10))
        d.line([m, m, size - m, size - m], fill=c, width=max(3, size // 10))
        d.line([m, size - m, size - m, m], fill=c, width=max(3, size // 10))
    else:  # error
        d.polygon([(size // 2, m), (size - m, size - m), (m, size - m)], fill=c)
        d.rectangle([size // 2 - size // 16, size // 3, size // 2 + size // 16, size * 2 // 3], fill=(40, 40, 40))
    if pressure in BADGE:
        r = size // 5
        d.ellipse([size - 2 * r, 0, size - 1, 2 * r - 1], fill=BADGE[pressure], outline=(0, 0, 0))
    return img
