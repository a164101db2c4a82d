"""Server-side SVG charts for the explore page: no script, no external asset, no library.

Every chart is a `markupsafe.Markup` string (safe to insert in a template) whose texts and
links are escaped here. Small charts scale with their box (a viewBox, width 100%); the matrix
keeps its size (its box scrolls sideways on a narrow screen). Each mark carries a <title>, so
pointing at it (or a screen reader) gives the exact figure.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence

from markupsafe import Markup

FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""
AXIS = "#5b6478"
GRID = "#e3e7ee"
EMPTY = "#f3f5fa"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _plural(n: int, word: str = "story", many: str = "stories") -> str:
    return f"{n} {word if n == 1 else many}"


def year_bars(
    counts: Mapping[int, int], years: Sequence[int], top: int, colour: str, label: str
) -> Markup:
    """Stories per year as bars, on the scale 0..top shared by a set of small charts."""
    width, height, left, right, top_pad, bottom = 160, 78, 14, 3, 12, 17
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    n = max(1, len(years))
    slot = plot_w / n
    bar = max(1.0, slot * 0.74)
    scale = plot_h / max(1, top)
    parts = [
        f'<svg class="mm-svg" viewBox="0 0 {width} {height}" role="img" {FONT}'
        f' aria-label="{_e(label)}: stories per year">',
        f"<title>{_e(label)}: stories per year</title>",
        f'<line x1="{left}" x2="{width - right}" y1="{top_pad}" y2="{top_pad}" stroke="{GRID}"/>',
        f'<text x="{left - 3}" y="{top_pad + 4}" font-size="11" fill="{AXIS}"'
        f' text-anchor="end">{top}</text>',
    ]
    for i, year in enumerate(years):
        count = counts.get(year, 0)
        if not count:
            continue
        h = count * scale
        x = left + i * slot + (slot - bar) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bar:.1f}"'
            f' height="{h:.1f}" rx="1" fill="{colour}"><title>{year}: {_plural(count)}'
            "</title></rect>"
        )
    base = top_pad + plot_h
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{base}" y2="{base}" stroke="{AXIS}"/>'
    )
    if years:
        parts.append(
            f'<text x="{left}" y="{height - 3}" font-size="12" fill="{AXIS}">{years[0]}</text>'
        )
        if len(years) > 1:
            parts.append(
                f'<text x="{width - right}" y="{height - 3}" font-size="12" fill="{AXIS}"'
                f' text-anchor="end">{years[-1]}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _shade(ratio: float) -> str:
    """From a pale blue-grey (few) to the accent blue (most)."""
    low, high = (232, 238, 246), (28, 79, 110)
    rgb = (round(a + (b - a) * ratio) for a, b in zip(low, high, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def matrix_svg(
    rows: Sequence[tuple[str, int]],
    cols: Sequence[tuple[str, str, int]],
    pairs: Mapping[tuple[str, str], int],
    link: Callable[[str, str], str],
) -> Markup:
    """Components (rows: name, stories) x impacts (columns: id, label, stories): each cell
    the number of stories with both, linking to that search; an empty cell links nowhere.
    Drawn at a fixed size (34 px cells)."""
    cell, font = 34, 12
    label_w = min(190, 12 + 7 * max(len(_short(r, 26)) for r, _ in rows))
    header = min(150, 16 + 5 * max(len(_short(label, 26)) for _, label, _ in cols))
    width = label_w + cell * len(cols) + header // 2 + 8
    height = header + cell * len(rows) + 4
    most = max((pairs.get((r, c), 0) for r, _ in rows for c, _, _ in cols), default=0) or 1
    parts = [
        f'<svg class="mm-matrix" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" {FONT}'
        ' aria-label="Stories per component and impact">',
        "<title>Stories per component and impact</title>",
    ]
    for j, (impact, label, total) in enumerate(cols):
        x = label_w + j * cell + cell / 2
        parts.append(
            f'<text x="{x:.0f}" y="{header - 6}" font-size="{font}" fill="{AXIS}"'
            f' transform="rotate(-40 {x:.0f} {header - 6})">{_e(_short(label, 26))}'
            f"<title>{_e(label)} ({_e(impact)}): {_plural(total)}</title></text>"
        )
    for i, (component, total) in enumerate(rows):
        y = header + i * cell
        parts.append(
            f'<text x="{label_w - 8}" y="{y + cell / 2 + 4:.0f}" font-size="{font}"'
            f' fill="#111a35" text-anchor="end">{_e(_short(component, 26))}'
            f"<title>{_e(component)}: {_plural(total)}</title></text>"
        )
        for j, (impact, label, _) in enumerate(cols):
            x = label_w + j * cell
            count = pairs.get((component, impact), 0)
            rect = (
                f'<rect x="{x + 1}" y="{y + 1}" width="{cell - 2}" height="{cell - 2}" rx="3"'
                f' fill="{_shade(count / most) if count else EMPTY}">'
            )
            if not count:
                parts.append(rect + f"<title>{_e(component)} × {_e(label)}: none</title></rect>")
                continue
            ink = "#ffffff" if count / most > 0.5 else "#111a35"
            parts.append(
                f'<a href="{_e(link(component, impact))}" class="mm-cell">{rect}</rect>'
                f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" font-size="{font}"'
                f' text-anchor="middle" fill="{ink}">{count}</text>'
                f"<title>{_e(component)} × {_e(label)}: {_plural(count)}</title></a>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def duration_bars(rows: Sequence[tuple[str, float, int, str]], links: Sequence[str]) -> Markup:
    """Horizontal bars (label, median minutes, stories, median in words), longest first as
    given, on a linear scale; each row links to `links[i]`."""
    width, label_w, text_w, row_h = 390, 158, 100, 28
    bar_w = width - label_w - text_w
    height = row_h * len(rows) + 6
    longest = max((m for _, m, _, _ in rows), default=0) or 1
    parts = [
        f'<svg class="mm-svg" viewBox="0 0 {width} {height}" role="img" {FONT}'
        ' aria-label="Median duration by trigger">',
        "<title>Median duration by trigger</title>",
    ]
    for i, ((label, median, n, words), href) in enumerate(zip(rows, links, strict=True)):
        y = 3 + i * row_h
        w = max(2.0, bar_w * median / longest)
        parts.append(
            f'<a href="{_e(href)}" class="mm-row">'
            f'<text x="{label_w - 8}" y="{y + 18}" font-size="12.5" fill="#111a35"'
            f' text-anchor="end">{_e(_short(label.split(" (")[0], 21))}</text>'
            f'<rect x="{label_w}" y="{y + 6}" width="{w:.1f}" height="{row_h - 12}" rx="2"'
            f' fill="#a05a00"/>'
            f'<text x="{label_w + w + 5:.1f}" y="{y + 18}" font-size="12" fill="{AXIS}">'
            f"{_e(words)} · {n}</text>"
            f"<title>{_e(label)}: median {_e(words)} over {_plural(n)}</title></a>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
