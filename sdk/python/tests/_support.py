"""What the test modules share: the SDK from this tree, and the server they run against.

The server is a real ``marquee serve`` that ``crates/cli/tests/sdk_python.rs`` starts, with a
tenant, its keys and a small film catalogue (eight films, six viewers, trained). It passes:

- ``MARQUEE_BASE_URL``: the server;
- ``MARQUEE_API_KEY``: a secret key of the tenant; ``MARQUEE_PUBLISHABLE_KEY``: a publishable one;
- ``MARQUEE_ADMIN_KEY``: the operator key (to make keys with limits) and ``MARQUEE_TENANT``;
- ``MARQUEE_TEST_MODELS=1`` when the server has the models loaded.

Without them the server tests are skipped and only the offline ones run.
"""

from __future__ import annotations

import os
import sys
import unittest
import uuid
from pathlib import Path
from typing import Any

# The package in this tree, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

try:
    import httpx  # noqa: F401
except ImportError:  # pragma: no cover - the message is the point
    raise SystemExit(
        "the Marquee SDK tests need httpx: pip install ./sdk/python (or pip install httpx)"
    ) from None

import marquee  # noqa: E402

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
