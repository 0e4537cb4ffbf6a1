"""The joined cluster's token authentication: how a node reports its mode, and the one-line warning when off."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.run.ray_auth import auth_warning


def test_a_cluster_with_token_authentication_gets_no_warning():
    assert auth_warning("10.0.0.5:6379", "token") is None


@pytest.mark.parametrize("mode", ["disabled", "unknown"])
def test_a_cluster_without_it_gets_one_line_saying_how_to_turn_it_on(mode):
    warning = auth_warning("10.0.0.5:6379", mode)
    assert "\n" not in warning and warning.startswith("warning: the Ray cluster at 10.0.0.5:6379")
    assert f"RAY_AUTH_MODE={mode}" in warning and "start it with RAY_AUTH_MODE=token `ray start --head" in warning


@pytest.mark.parametrize("env, expected", [({"RAY_AUTH_MODE": "token"}, "token"),
                                           ({"RAY_AUTH_MODE": "disabled"}, "disabled")])
def test_a_node_reports_the_mode_its_processes_were_started_with(env, expected):
    """What the task on a joined cluster's node returns: Ray reads the mode from its process's environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    probe = "from core.run.ray_auth import node_auth_mode; print(node_auth_mode())"
    out = subprocess.run([sys.executable, "-c", probe], env={**base, **env}, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == expected
