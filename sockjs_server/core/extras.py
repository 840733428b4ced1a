"""The package's optional extras and the words that say how to install one.

The package is installed from a checkout (or a wheel built from one), not
from a package index, so an error line naming a missing extra gives the
commands that work there, not an install from the index.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "install_hint"]

#: Extra (pyproject.toml's optional-dependencies) -> what it brings and serves.
EXTRAS = {
    "uvicorn": "uvicorn, for --server uvicorn",
    "granian": "granian, for --server granian",
    "metrics": "prometheus_client, for --metrics-path and sockjs_server.metrics' Prometheus routes",
    "uvloop": "uvloop, for --uvloop",
    "starlette": "Starlette, for the README's Starlette samples",
    "fastapi": "FastAPI, for the README's FastAPI sample",
}


def install_hint(extra: str) -> str:
    """How to install ``extra``: ``bash .ci/venv <extra>`` in a checkout (its ``.venv``),
    ``pip install -e '.[<extra>]'`` from a checkout into an environment of one's own."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}")
    return f"install the {extra} extra: bash .ci/venv {extra} in a checkout, or pip install -e '.[{extra}]' from it"
