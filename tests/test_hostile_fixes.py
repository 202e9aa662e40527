"""Fixes for the hostile tester's findings (issue 10, item 7), each through the command a user types."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.store import Store

runner = CliRunner()


def _plan(tmp_path: Path) -> Path:
    (tmp_path / "m").mkdir()
    path = tmp_path / "plan.yaml"
    path.write_text("name: t\nmodel:\n  path: ./m\n")
    return path


def _bad_keys(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notpem.pem"
    text.write_text("this is not a key\n")
    ec = tmp_path / "ec.pem"
    ec.write_bytes(generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return {"missing": tmp_path / "nokey.pem", "not PEM": text, "not Ed25519": ec, "a folder": tmp_path}


@pytest.mark.parametrize("which", ["missing", "not PEM", "not Ed25519", "a folder"])
@pytest.mark.parametrize("resume", [False, True])
def test_a_bad_sign_key_is_refused_before_anything_is_written(tmp_path, which, resume):
    plan = _plan(tmp_path)
    key = _bad_keys(tmp_path)[which]
    db = f"sqlite:///{tmp_path / 'ev.db'}"
    args = ["run", "--resume", "0190", "--db", db] if resume else ["run", str(plan), "--db", db]
    res = runner.invoke(app, [*args, "--sign-key", str(key)], terminal_width=400)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(key) in lines[0] and "Ed25519" in lines[0], res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert not (tmp_path / "ev.db").exists() or Store(db).run_ids() == []


def test_a_good_sign_key_passes_the_check(tmp_path):
    from assurance.evidence.seal import check_signing_key

    key = tmp_path / "k.pem"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    check_signing_key(key)  # raises on a key it cannot sign with
