"""`assure show` prints a sign-off as the pack does: an approval over a FAIL verdict is a risk acceptance
with its reason, never a plain "approve"; on a real ledger, signed with real keys by `assure signoff`."""

from __future__ import annotations

from _signed_run import RUN, sealed_run
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.seal import generate_key

runner = CliRunner()


def _signoff(store, key, name, *args):
    res = runner.invoke(app, ["signoff", RUN, "--db", store.url, "--key", str(key), "--name", name, "--role", "SMF24",
                              *args], terminal_width=400)
    assert res.exit_code == 0, res.output


def test_show_prints_a_risk_acceptance_with_its_reason_and_other_decisions_as_they_are(tmp_path):
    store = sealed_run(tmp_path, status="FAIL")
    key = tmp_path / "k.pem"
    generate_key(key)
    _signoff(store, key, "Pat Risk", "--decision", "approve", "--accept-risk", "compensating control X")
    _signoff(store, key, "Al Jones", "--decision", "reject")
    res = runner.invoke(app, ["show", RUN, "--db", store.url], terminal_width=400)
    assert res.exit_code == 0, res.output
    lines = {line.split(":", 1)[1].split("(")[0].strip(): line for line in res.output.splitlines()
             if line.startswith("sign-off:")}
    assert set(lines) == {"Pat Risk", "Al Jones"}, res.output
    risk = lines["Pat Risk"]
    assert "RISK ACCEPTED (verdict FAIL)" in risk and "Reason: compensating control X" in risk, risk
    assert " approve " not in risk, risk
    assert " reject " in lines["Al Jones"] and "RISK" not in lines["Al Jones"] and "Reason" not in lines["Al Jones"]
