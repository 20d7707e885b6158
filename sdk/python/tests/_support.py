"""What the test modules share: the installed SDK, and the server they run against.

The tests import ``marquee`` as its users do: installed (``pip install ./sdk/python``), never
from ``src/`` through ``sys.path``, so that they also test the packaging (``py.typed``, the
package data). ``crates/cli/tests/sdk_python.rs`` installs this tree into a fresh directory and
names it in ``MARQUEE_SDK_INSTALLED``: the package must then come from there. Run by hand, the
installed package must be this tree's (reinstall after changing ``src/``).

The server is a real ``marquee serve`` that ``crates/cli/tests/sdk_python.rs`` starts, with a
tenant, its keys and a small film catalogue (eight films, six viewers, trained). It passes:

- ``MARQUEE_BASE_URL``: the server;
- ``MARQUEE_API_KEY``: a secret key of the tenant; ``MARQUEE_PUBLISHABLE_KEY``: a publishable one;
- ``MARQUEE_ADMIN_KEY``: the operator key (to make keys with limits) and ``MARQUEE_TENANT``;
- ``MARQUEE_TEST_MODELS=1`` when the server has the models loaded.

Without them the server tests are skipped and only the offline ones run.
"""

from __future__ import annotations

import filecmp
import os
import unittest
import uuid
from pathlib import Path
from typing import Any

try:
    import httpx  # noqa: F401
except ImportError:  # pragma: no cover - the message is the point
    raise SystemExit(
        "the Marquee SDK tests need httpx: pip install ./sdk/python (or pip install httpx)"
    ) from None

try:
    import marquee
except ImportError:  # pragma: no cover - the message is the point
    raise SystemExit(
        "the Marquee SDK tests run on the installed package: pip install ./sdk/python"
    ) from None

TREE = Path(__file__).resolve().parents[1] / "src" / "marquee"
"""This tree's package source."""
INSTALLED = Path(marquee.__file__).resolve().parent
"""Where the package under test was imported from."""


def _check_installed() -> None:
    wanted = os.environ.get("MARQUEE_SDK_INSTALLED")
    if wanted:
        if not INSTALLED.is_relative_to(Path(wanted).resolve()):
            raise SystemExit(f"marquee was imported from {INSTALLED}, not from {wanted}")
        return
    if INSTALLED == TREE:
        return  # an editable install
    sources = sorted(p.name for p in TREE.glob("*.py"))
    _, mismatch, errors = filecmp.cmpfiles(TREE, INSTALLED, sources, shallow=False)
    if mismatch or errors:
        differ = ", ".join(mismatch + errors)
        raise SystemExit(
            f"the installed marquee ({INSTALLED}) is not this tree's ({differ} differ): "
            "pip install ./sdk/python"
        )


_check_installed()

BASE_URL = os.environ.get("MARQUEE_BASE_URL", "")
API_KEY = os.environ.get("MARQUEE_API_KEY", "")
PUBLISHABLE_KEY = os.environ.get("MARQUEE_PUBLISHABLE_KEY", "")
ADMIN_KEY = os.environ.get("MARQUEE_ADMIN_KEY", "")
TENANT = os.environ.get("MARQUEE_TENANT", "")
MODELS = os.environ.get("MARQUEE_TEST_MODELS") == "1"
SAMPLES = Path(
    os.environ.get("MARQUEE_SAMPLES", Path(__file__).resolve().parents[4] / "shared/samples")
)

HAVE_SERVER = bool(BASE_URL and API_KEY and PUBLISHABLE_KEY and ADMIN_KEY and TENANT)

requires_server = unittest.skipUnless(
    HAVE_SERVER,
    "needs a server: MARQUEE_BASE_URL, MARQUEE_API_KEY, MARQUEE_PUBLISHABLE_KEY, "
    "MARQUEE_ADMIN_KEY, MARQUEE_TENANT (crates/cli/tests/sdk_python.rs sets them)",
)

requires_models = unittest.skipUnless(
    HAVE_SERVER and MODELS, "needs a server with the models loaded (MARQUEE_TEST_MODELS=1)"
)

# The films the Rust test loads: id → (title, categories).
FILMS = {
    "alien": ("Alien", ["Sci-Fi", "Horror"]),
    "aliens": ("Aliens", ["Sci-Fi", "Action"]),
    "terminator": ("The Terminator", ["Sci-Fi", "Action"]),
    "t2": ("Terminator 2", ["Sci-Fi", "Action"]),
    "heat": ("Heat", ["Crime", "Drama"]),
    "casino": ("Casino", ["Crime", "Drama"]),
    "amelie": ("Amélie", ["Comedy", "Romance"]),
    "clueless": ("Clueless", ["Comedy"]),
}
# Who watched what, oldest first.
VIEWS = {
    "ann": ["alien", "aliens", "terminator"],
    "bob": ["alien", "aliens", "t2", "terminator"],
    "cat": ["heat", "casino", "amelie"],
    "dan": ["heat", "casino", "clueless", "amelie"],
    "fay": ["heat", "casino"],
    "eve": ["aliens", "t2", "terminator"],
}


def unique(prefix: str) -> str:
    """An id no other test uses (the tests share one tenant)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def client(**kwargs: Any) -> marquee.Client:
    kwargs.setdefault("base_url", BASE_URL)
    kwargs.setdefault("api_key", API_KEY)
    return marquee.Client(**kwargs)


def create_key(body: dict[str, Any]) -> str:
    """A key of the test tenant made with the operator key (the SDK has no admin calls)."""
    return create_key_with_id(body)[0]


def create_key_with_id(body: dict[str, Any]) -> tuple[str, str]:
    """The same, with the key's id (what usage reports group by)."""
    response = httpx.post(
        f"{BASE_URL}/v1/admin/tenants/{TENANT}/keys",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        json=body,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert isinstance(created["key"], str) and isinstance(created["id"], str)
    return created["key"], created["id"]
