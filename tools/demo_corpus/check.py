"""Sanity checks for the demo corpus (needs the project venv: pypdf, trafilatura).

    .venv/bin/python tools/demo_corpus/check.py

* build.py is deterministic (two runs, byte-identical output)
* every story link in list.md resolves to a file under site/ (after _redirects.tsv and
  _wayback.tsv), except the one dead link that deliberately has no snapshot
* PDFs are readable by pypdf and contain the article text
* no article text contains a sentinel; every HTML page contains some
* prints what trafilatura extracts from one page per layout, and whether sentinels leak
"""

from __future__ import annotations

import csv
import hashlib
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from markdown_it import MarkdownIt

SOURCES = Path(__file__).resolve().parent
HERE = SOURCES.parents[1] / "data" / "demo"
SITE = HERE / "site"
BASE = "http://127.0.0.1:8017"


def snapshot() -> dict[str, str]:
    out = {}
    for p in sorted(HERE.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            out[str(p.relative_to(HERE))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_build() -> None:
    subprocess.run([sys.executable, str(SOURCES / "build.py")], check=True, capture_output=True)


def list_links() -> list[tuple[str, str]]:
    md = MarkdownIt("commonmark")
    tokens = md.parse((HERE / "list.md").read_text(encoding="utf-8"))
    links = []
    for tok in tokens:
        if tok.type != "inline":
            continue
        children = tok.children or []
        for i, child in enumerate(children):
            if child.type == "link_open":
                href = child.attrGet("href")
                text = ""
                for c in children[i + 1 :]:
                    if c.type == "link_close":
                        break
                    text += c.content
                links.append((text, href))
    return links


def main() -> int:
    ok = True

    run_build()
    first = snapshot()
    run_build()
    second = snapshot()
    if first != second:
        print("NOT deterministic:", sorted(k for k in first if first[k] != second.get(k))[:10])
        ok = False
    else:
        print(f"deterministic: {len(first)} files identical across two builds")

    redirects = {}
    for line in (SITE / "_redirects.tsv").read_text().splitlines():
        src, dst, status = line.split("\t")
        assert status == "301"
        redirects[src] = dst
    wayback = {}
    for line in (SITE / "_wayback.tsv").read_text().splitlines():
        url, ts, path = line.split("\t")
        wayback[url] = path

    stories = {r["url"]: r for r in csv.DictReader(open(HERE / "stories.tsv"), delimiter="\t")}
    entry_re = re.compile(r"^(?P<title>.+) - (?P<pub>.+) - (?P<kind>[a-z ]+) (?P<year>\d{4})$")
    n_entries = 0
    for text, href in list_links():
        m = entry_re.match(text)
        if not m:
            print(f"  not a story: [{text}]({href})")
            continue
        n_entries += 1
        if href not in stories:
            print("  list entry missing from stories.tsv:", href)
            ok = False
            continue
        path = href[len(BASE) :]
        how = "direct"
        if path in redirects:
            path, how = redirects[path], "301"
        target = SITE / path.lstrip("/")
        if not target.is_file():
            if href in wayback:
                target, how = SITE / wayback[href].lstrip("/"), "wayback"
            else:
                print(f"  404 (no snapshot): {href}")
                if stories[href]["path"]:
                    ok = False
                continue
        expected = stories[href]["path"]
        if str(target.relative_to(HERE)) != expected:
            print(f"  {href} -> {target} but stories.tsv says {expected}")
            ok = False
        if how != "direct":
            print(f"  {how}: {href} -> {target.relative_to(HERE)}")
    print(f"list.md: {n_entries} story entries")

    from pypdf import PdfReader

    for pdf in sorted((SITE / "papers").glob("*.pdf")):
        reader = PdfReader(pdf)
        text = "\n".join(p.extract_text() for p in reader.pages)
        md = (SOURCES / "articles").glob(f"*-{pdf.stem}.md")
        body = next(md).read_text(encoding="utf-8").split("---", 2)[2]
        words = re.findall(r"[A-Za-z]{5,}", body)
        found = sum(1 for w in words if w in text)
        print(
            f"pdf {pdf.name}: {len(reader.pages)} pages, {len(text.split())} words extracted, "
            f"{found}/{len(words)} article words found"
        )
        if found < 0.97 * len(words):
            ok = False

    sentinels = (HERE / "sentinels.txt").read_text().split()
    for md in sorted((SOURCES / "articles").glob("*.md")):
        low = md.read_text(encoding="utf-8").lower()
        for w in sentinels:
            if w in low:
                print("sentinel in article:", md.name, w)
                ok = False

    import trafilatura

    layouts = {}
    for row in stories.values():
        if row["path"].endswith(".html") and row["layout"] not in layouts:
            layouts[row["layout"]] = row
    wb = next(r for r in stories.values() if "/wayback/" in r["path"])
    layouts["wayback"] = wb
    for layout, row in sorted(layouts.items()):
        raw = (HERE / row["path"]).read_bytes()
        enc = "cp1252" if b'charset="windows-1252"' in raw[:300] else "utf-8"
        html = raw.decode(enc)
        extracted = trafilatura.extract(html) or ""
        leaked = sorted({w for w in sentinels if w in extracted.lower()})
        print(f"\n=== {layout}: {row['path']} ({enc}) ===")
        print(f"extracted {len(extracted.split())} words; sentinels leaked: {leaked or 'none'}")
        print(extracted[:500].replace("\n", " / "), "...")
    for row in stories.values():
        p = row["path"]
        if p.endswith(".html"):
            raw = (HERE / p).read_bytes()
            if b'charset="windows-1252"' in raw[:300]:
                print(f"\nwindows-1252 page: {p} ({len(raw)} bytes)")

    counts = Counter(r["layout"] for r in stories.values())
    print("\nlayouts:", dict(sorted(counts.items())))
    size = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"total size of data/demo: {size / 1e6:.2f} MB")
    print("OK" if ok else "PROBLEMS FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
