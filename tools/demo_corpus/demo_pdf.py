"""Minimal PDF writer for the demo's ``pdf`` layout stories.

Flattens a story's markdown into blocks, wraps them into lines and writes a real,
several-page PDF (Helvetica/Courier Type1 fonts, WinAnsiEncoding) with a page footer line
that carries a sentinel word.  Standard library only (plus the shared markdown parser).
"""

from __future__ import annotations

from demo_chrome import MD
from demo_stories import Story

# --------------------------------------------------------------------------------------
# Minimal PDF writer (Helvetica Type1, WinAnsiEncoding)
# --------------------------------------------------------------------------------------


def md_blocks(body: str) -> list[tuple[str, str]]:
    """Flatten markdown into (style, text) blocks: h, p, li, code, row."""
    tokens = MD.parse(body)
    blocks: list[tuple[str, str]] = []
    style_stack: list[str] = []
    row: list[str] = []

    def inline_text(tok) -> str:
        out = []
        for child in tok.children or []:
            if child.type in ("text", "code_inline"):
                out.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                out.append(" ")
        return "".join(out)

    for tok in tokens:
        if tok.type == "heading_open":
            style_stack.append("h")
        elif tok.type == "heading_close":
            style_stack.pop()
        elif tok.type in ("bullet_list_open", "ordered_list_open"):
            style_stack.append("li")
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            style_stack.pop()
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close":
            blocks.append(("row", " | ".join(row)))
        elif tok.type == "inline":
            text = inline_text(tok)
            if style_stack and style_stack[-1] == "cell":
                row.append(text)
            elif style_stack and style_stack[-1] == "h":
                blocks.append(("h", text))
            elif "li" in style_stack:
                blocks.append(("li", text))
            else:
                blocks.append(("p", text))
        elif tok.type in ("th_open", "td_open"):
            style_stack.append("cell")
        elif tok.type in ("th_close", "td_close"):
            style_stack.pop()
        elif tok.type in ("fence", "code_block"):
            blocks.append(("code", tok.content.rstrip("\n")))
    return blocks


def wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for raw in text.split("\n"):
        words = raw.split(" ")
        cur = ""
        for w in words:
            while len(w) > width:
                if cur:
                    lines.append(cur)
                    cur = ""
                lines.append(w[:width])
                w = w[width:]
            if not cur:
                cur = w
            elif len(cur) + 1 + len(w) <= width:
                cur += " " + w
            else:
                lines.append(cur)
                cur = w
        lines.append(cur)
    return lines


def pdf_string(text: str) -> str:
    data = text.encode("cp1252", errors="replace")
    out = []
    for b in data:
        c = chr(b)
        if c in "()\\":
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return "(" + "".join(out) + ")"


def build_pdf(s: Story) -> bytes:
    page_w, page_h = 612, 792
    margin = 60
    # (font, size, leading, wrap width, text)
    lines: list[tuple[str, int, int, str]] = []
    for ln in wrap(s.title, 55):
        lines.append(("F2", 16, 22, ln))
    lines.append(("F1", 10, 14, f"{s.publisher} - {s.kind}, {s.year}"))
    lines.append(("F1", 10, 14, ""))
    for style, text in md_blocks(s.body):
        if style == "h":
            lines.append(("F1", 10, 8, ""))
            for ln in wrap(text, 70):
                lines.append(("F2", 12, 17, ln))
        elif style == "code":
            for ln in wrap(text, 82):
                lines.append(("F3", 9, 12, ln))
            lines.append(("F1", 10, 8, ""))
        elif style == "li":
            for i, ln in enumerate(wrap(text, 86)):
                lines.append(("F1", 10, 14, ("\u2022 " if i == 0 else "   ") + ln))
        elif style == "row":
            for ln in wrap(text, 90):
                lines.append(("F1", 9, 13, ln))
        else:
            for ln in wrap(text, 92):
                lines.append(("F1", 10, 14, ln))
            lines.append(("F1", 10, 6, ""))

    pages: list[list[str]] = []
    cur: list[str] = []
    y = page_h - margin
    for font, size, leading, text in lines:
        if y - leading < margin:
            pages.append(cur)
            cur = []
            y = page_h - margin
        y -= leading
        if text:
            cur.append(f"BT /{font} {size} Tf 1 0 0 1 {margin} {y} Tm {pdf_string(text)} Tj ET")
    pages.append(cur)

    objects: list[bytes] = []

    def add(obj: str | bytes) -> int:
        objects.append(obj.encode("latin-1") if isinstance(obj, str) else obj)
        return len(objects)

    catalog = add("")  # placeholder, filled below
    pages_obj = add("")
    f1 = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    f2 = add(
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
    )
    f3 = add("<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
    kids = []
    total = len(pages)
    for n, ops in enumerate(pages, start=1):
        footer_op = (
            f"BT /F1 8 Tf 1 0 0 1 {margin} 30 Tm "
            f"{pdf_string(f'{s.publisher} - Crivabole document services - page {n} of {total}')}"
            " Tj ET"
        )
        stream = "\n".join([*ops, footer_op]).encode("latin-1")
        content = add(
            f"<< /Length {len(stream)} >>\nstream\n".encode("latin-1") + stream + b"\nendstream"
        )
        kids.append(
            add(
                f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 {page_w} {page_h}] "
                f"/Resources << /Font << /F1 {f1} 0 R /F2 {f2} 0 R /F3 {f3} 0 R >> >> "
                f"/Contents {content} 0 R >>"
            )
        )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode("latin-1")
    objects[pages_obj - 1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    ).encode("latin-1")
    info = add(f"<< /Title {pdf_string(s.title)} /Author {pdf_string(s.publisher)} >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode("latin-1") + obj + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode("latin-1")
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode("latin-1")
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode("latin-1")
    return bytes(out)
