"""The wheel must carry every subpackage and the data the installed commands read."""

import tomllib

from .conftest import REPO_ROOT


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    source = REPO_ROOT / "src" / "mlopsmortem"
    found = {
        "mlopsmortem." + ".".join(init.parent.relative_to(source).parts)
        for init in source.rglob("__init__.py")
        if init.parent != source
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert {"mlopsmortem.data", "mlopsmortem.plugins"} <= listed
    assert config["package-dir"] == {
        "": "src",
        "mlopsmortem.data": "data",
        "mlopsmortem.plugins": "plugins",
    }
