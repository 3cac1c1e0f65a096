"""The account the demo's SSH target runs as: made once when we are root, none otherwise."""

from __future__ import annotations

import os

import pytest

from gatewatch.demo.account import DEMO_ACCOUNT, target_account


def test_not_root_means_no_account_to_switch_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert target_account() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="only root creates accounts")
def test_as_root_an_unprivileged_system_account_without_a_login() -> None:
    first = target_account()
    assert first is not None and first.pw_name == DEMO_ACCOUNT
    assert first.pw_uid != 0 and first.pw_gid != 0
    assert first.pw_shell.endswith("nologin")
    assert target_account() == first        # found, not made again
