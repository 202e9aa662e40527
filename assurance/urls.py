"""The one rule for a base URL that goes into a recorded plan (an endpoint target's, an HTTP judge's)."""

from __future__ import annotations

import urllib.parse


def check_public_base_url(url: str) -> None:
    """Raise ValueError unless ``url`` is an http(s) URL with a host and no credentials, query or fragment:
    the plan is recorded in the ledger, so a secret in it would be too."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL, got {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("base_url must carry no credentials, query or fragment (the plan is recorded); "
                         "put the API key in the environment variable named by api_key_env")
