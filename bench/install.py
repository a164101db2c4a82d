"""Disk size of a fresh serving install beside a fresh full install, built in the same run.

Serving: `pip install mlopsmortem` (serve, search, similar, export a built knowledge base).
Full: the CPU build of torch, then `pip install 'mlopsmortem[crawl]'` (crawl, extract, embed,
tag too), the way README's setup installs it. Each into a new venv with an upgraded pip; the
size is that of the whole venv directory (du), pip included, like the user's disk sees it.

    python -m bench.install [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"


def venv_with(path: Path, *installs: list[str]) -> Path:
    """A new venv at path with pip upgraded and each pip install argument list run in order."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    quiet = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for args in (["-U", "pip"], *installs):
        done = subprocess.run([str(python), *quiet, *args], capture_output=True, text=True)
        if done.returncode:  # pip's warnings about this machine's index are noise otherwise
            sys.exit(f"pip install {' '.join(args)} failed:\n{done.stderr}")
    return python


def megabytes(path: Path) -> float:
    """Bytes on disk under path (like du), in MB; hard links counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(root, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total / 1e6


def largest_packages(venv: Path, count: int = 6) -> list[tuple[str, float]]:
    """The venv's largest top-level entries of site-packages, in MB."""
    site = next(venv.glob("lib/python*/site-packages"))
    sizes = [(entry.name, megabytes(entry)) for entry in site.iterdir() if entry.is_dir()]
    return sorted(sizes, key=lambda item: -item[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the venvs here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        serving = base / "serving"
        full = base / "full"
        venv_with(serving, [str(REPO_ROOT)])
        venv_with(full, [TORCH], [f"{REPO_ROOT}[crawl]"])
        serving_mb, full_mb = megabytes(serving), megabytes(full)
        print("fresh venv sizes (du, pip included)")
        print(f"{'install':<44}{'MB':>8}{'share':>8}")
        share = serving_mb / full_mb
        print(f"{'pip install mlopsmortem (serving)':<44}{serving_mb:>8.0f}{share:>8.0%}")
        full_label = f"{TORCH} + mlopsmortem[crawl] (full)"
        print(f"{full_label:<44}{full_mb:>8.0f}{1:>8.0%}")
        print("largest packages of the serving install:")
        for name, size in largest_packages(serving):
            print(f"  {name:<30}{size:>8.0f} MB")


if __name__ == "__main__":
    main()
