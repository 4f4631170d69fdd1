"""Small line charts drawn with Pillow (monitor and benchmark plots; no matplotlib needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) from ``lo`` to ``hi``, at most ``most`` of them."""
    if not hi > lo:
        return [lo]
    power = 10 ** math.floor(math.log10((hi - lo) / most))
    for step in (m * power * scale for scale in (1, 10, 100) for m in (1, 2, 5)):
        first = math.ceil(lo / step - 1e-9) * step
        count = int(math.floor((hi - first) / step + 1e-9)) + 1
        if count <= most:
            break
    return [round(first + i * step, 12) for i in range(count)]


@dataclass
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str = "#1f77b4"


@dataclass
class Chart:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    hlines: list[tuple[str, float, str]] = field(default_factory=list)  # (label, y, colour)

    def save(self, path: str, size: tuple[int, int] = (960, 540)) -> None:
        w, h = size
        left, right, top, bottom = 80, 20, 40, 60
        img = Image.new("RGB", size, "white")
        d = ImageDraw.Draw(img)
        font = ImageFont.load_default()
        xs = [x for s in self.series for x in s.xs] or [0.0, 1.0]
        ys = [y for s in self.series for y in s.ys] + [y for _, y, _ in self.hlines] or [0.0, 1.0]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(0.0, min(ys)), max(ys) * 1.05 or 1.0
        x1 = x1 if x1 > x0 else x0 + 1
        y1 = y1 if y1 > y0 else y0 + 1

        def px(x: float, y: float) -> tuple[float, float]:
            return (
                left + (x - x0) / (x1 - x0) * (w - left - right),
                h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom),
            )

        d.rectangle([left, top, w - right, h - bottom], outline="black")
        for yv in nice_ticks(y0, y1):
            _, yp = px(x0, yv)
            d.line([left - 4, yp, left, yp], fill="black")
            d.text((4, yp - 6), f"{yv:g}", fill="black", font=font)
        for xv in nice_ticks(x0, x1):
            xp, _ = px(xv, y0)
            d.line([xp, h - bottom, xp, h - bottom + 4], fill="black")
            d.text((xp - 15, h - bottom + 8), f"{xv:g}", fill="black", font=font)
        for label, yv, color in self.hlines:
            _, yp = px(x0, yv)
            d.line([left, yp, w - right, yp], fill=color, width=1)
            d.text((w - right - 6 * len(label) - 4, yp - 12), label, fill=color, font=font)
        for s in self.series:
            points = [px(x, y) for x, y in zip(s.xs, s.ys, strict=True)]
            if len(points) > 1:
                d.line(points, fill=s.color, width=2)
            elif points:
                d.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=s.color)
        d.text((left, 12), self.title, fill="black", font=font)
        d.text((w // 2 - 3 * len(self.xlabel), h - 22), self.xlabel, fill="black", font=font)
        d.text((4, top - 16), self.ylabel, fill="black", font=font)
        for i, s in enumerate(self.series):
            d.rectangle([left + 10, top + 10 + 14 * i, left + 20, top + 18 + 14 * i], fill=s.color)
            d.text((left + 26, top + 8 + 14 * i), s.label, fill="black", font=font)
        img.save(path)
