"""Small line charts drawn with Pillow (monitor and benchmark plots; no matplotlib needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont


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
        for i in range(6):
            yv = y0 + (y1 - y0) * i / 5
            _, yp = px(x0, yv)
            d.line([left - 4, yp, left, yp], fill="black")
            d.text((4, yp - 6), f"{yv:.4g}", fill="black", font=font)
            xv = x0 + (x1 - x0) * i / 5
            xp, _ = px(xv, y0)
            d.line([xp, h - bottom, xp, h - bottom + 4], fill="black")
            d.text((xp - 15, h - bottom + 8), f"{xv:.4g}", fill="black", font=font)
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
