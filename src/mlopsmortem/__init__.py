"""mlopsmortem: a searchable knowledge base of public MLOps and infrastructure failure stories."""

__version__ = "0.1.0"
HOMEPAGE = "https://github.com/mlopsmortem/mlopsmortem"
