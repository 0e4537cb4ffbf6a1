"""Whether the Ray cluster a run joins checks tokens, and the one-line warning when it does not.

Ray 2.60's `ray start --head` turns token authentication on only when RAY_AUTH_MODE=token is set or a token
already exists (~/.ray/auth_token, RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH); only a new `ray.init()` instance has
it on by default. The cluster's mode lives in the environment of its processes, so a task asks its node.
"""
from __future__ import annotations

import os

AUTH_MODE_ENV = "RAY_AUTH_MODE"


def node_auth_mode() -> str:
    """The authentication mode of the Ray process this runs in ("token", "disabled", ...): run as a task, the
    mode of the cluster node that runs it. Ray's own reading where this Ray version has it, else its variable."""
    try:
        from ray._private.authentication.authentication_utils import get_authentication_mode_name
        from ray._raylet import get_authentication_mode
    except ImportError:
        return os.environ.get(AUTH_MODE_ENV, "disabled").lower()
    return get_authentication_mode_name(get_authentication_mode()).lower()


def auth_warning(address: str, cluster_mode: str) -> str | None:
    """One line to print when the cluster at `address` runs without token authentication, else None."""
    if cluster_mode == "token":
        return None
    return (f"warning: the Ray cluster at {address} has token authentication off ({AUTH_MODE_ENV}={cluster_mode}): "
            f"anyone who reaches its ports can run code on its nodes; start it with {AUTH_MODE_ENV}=token "
            f"`ray start --head ...` (README: Joining an existing cluster)")
