"""The wheel must carry every subpackage and the data the installed commands read, and
setuptools must have nothing to warn about: every folder holding shipped files is a package."""

import tomllib
from pathlib import Path

from .conftest import REPO_ROOT


def setuptools_config() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def importable_folders(root: Path, prefix: str) -> set[str]:
    """Folders Python could import as packages (every name on the way an identifier)."""
    found = {prefix}
    for folder in root.rglob("*"):
        parts = folder.relative_to(root).parts
        if folder.is_dir() and all(p.isidentifier() for p in parts) and "__pycache__" not in parts:
            found.add(".".join((prefix, *parts)))
    return found


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    config = setuptools_config()
    listed = set(config["packages"])
    found = importable_folders(REPO_ROOT / "src" / "mlopsmortem", "mlopsmortem")
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert config["package-dir"] == {
        "": "src",
        "mlopsmortem.data": "data",
        "mlopsmortem.plugins": "plugins",
    }


def test_every_data_folder_is_listed_so_setuptools_does_not_warn() -> None:
    listed = set(setuptools_config()["packages"])
    for folder, name in (("data", "mlopsmortem.data"), ("plugins", "mlopsmortem.plugins")):
        found = importable_folders(REPO_ROOT / folder, name)
        assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_demo_generator_stays_out_of_the_wheel() -> None:
    assert not list((REPO_ROOT / "data").rglob("*.py"))
    assert (REPO_ROOT / "tools" / "demo_corpus" / "build.py").is_file()
