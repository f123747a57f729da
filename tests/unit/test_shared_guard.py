"""Tests that need ../shared skip in a user's clone but fail in CI, where a missing folder is a broken setup."""

from __future__ import annotations

import pytest
from conftest import in_ci, require_shared


@pytest.mark.parametrize(
    "value,expected", [("true", True), ("TRUE", True), ("1", True), ("", False), ("false", False)]
)
def test_ci_flag_is_read_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected
    monkeypatch.delenv("CI")
    assert in_ci() is False


def test_present_material_is_returned(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    (tmp_path / "manifest.json").write_text("{}")
    assert require_shared(tmp_path / "manifest.json", "reference outputs") == tmp_path / "manifest.json"


def test_missing_material_skips_in_a_users_clone(tmp_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="reference outputs not found at .*nowhere"):
        require_shared(tmp_path / "nowhere", "reference outputs")


def test_missing_material_fails_in_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but reference outputs not found"):
        require_shared(tmp_path / "nowhere", "reference outputs")


def test_parity_fixtures_go_through_the_guard(monkeypatch, tmp_path):
    """The ARNIQA and Re-IQA parity fixtures fail (not skip) under CI=true when their folder is missing."""
    import importlib

    monkeypatch.setenv("CI", "true")
    for module, attr, fixture in (
        ("parity.conftest", "ARNIQA_REFERENCE", "arniqa_reference"),
        ("parity.test_reiqa_parity", "REIQA_REFERENCE", "reiqa_reference"),
    ):
        mod = importlib.import_module(module)
        monkeypatch.setattr(mod, attr, tmp_path / "missing")
        with pytest.raises(pytest.fail.Exception, match="CI=true"):
            getattr(mod, fixture).__wrapped__()
