"""`custody demo` end to end: the company it writes, synced, with owners the policy chose before it prints."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from daemon.cli.app import app


def test_the_demo_assigns_owners_by_the_policy_rule_before_it_prints(tmp_path: Path) -> None:
    demo = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path)])
    assert demo.exit_code == 0, demo.output
    config = tmp_path / "demo" / "custody.toml"

    report = CliRunner().invoke(app, ["-c", str(config), "report", "coverage", "-f", "json", "-o", "-"])

    assert report.exit_code == 0, report.output
    customers = json.loads(report.stdout)["customers"]
    owned = [c for c in customers if c["class"] in ("covered", "single-threaded")]
    assert owned and all(c["owner"] == c["reps"][0] for c in owned if c["class"] == "single-threaded")
    assert all(c["owner"] in c["reps"] for c in owned)
    assert "owners assigned by the policy's most-interactions rule" in " ".join(demo.output.split())
    assert all(c["owner"] is None for c in customers if c["class"] == "dormant")
