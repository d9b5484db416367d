"""Bad configuration ends with one line naming the key and exit code 2; secrets stay out of output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.policy import load_policy
from config.settings import load_settings


def custody(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


@pytest.mark.parametrize("body, expected", [
    ('data_dir = "d"\nbatch_sise = 10\n', "config error: batch_sise: unknown key"),
    ('[[sources]]\nname = "ann"\nkind = "pop3"\npath = "x"\n', "config error: sources.ann.kind: Input should be"),
    ('[[sources]]\nname = "ann"\nkind = "maildir"\n', "config error: sources.ann: a maildir source needs 'path'"),
    ('[[sources]]\nname = "ann"\nkind = "imap"\nhost = "h"\nport = 70000\n', "config error: sources.ann.port:"),
    ('default_region = "Germany"\n', "config error: default_region:"),
    ('data_dir = \n', "not valid TOML"),
])
def test_bad_config_is_one_line_naming_the_key_and_exit_code_2(tmp_path: Path, body: str, expected: str) -> None:
    config = tmp_path / "custody.toml"
    config.write_text(body)
    result = custody("--config", str(config), "status")
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_policy_names_the_policy_key(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("lookback_days: -3\n")
    (tmp_path / "custody.toml").write_text('policy_file = "policy.yaml"\n')
    result = custody("--config", str(tmp_path / "custody.toml"), "status")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("custody: config error: policy.lookback_days:")


def test_a_missing_explicit_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = custody("--config", str(tmp_path / "absent.toml"), "status")
    assert (result.returncode, "config file not found" in result.stderr) == (2, True)


def test_environment_overrides_the_file_and_secrets_are_not_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "custody.toml"
    config.write_text('data_dir = "from-file"\ndatabase_url = "postgresql://custody:hunter2@127.0.0.1:1/x"\n')
    monkeypatch.setenv("CUSTODY_DATA_DIR", str(tmp_path / "from-env"))
    settings = load_settings(config)
    assert settings.data_dir == tmp_path / "from-env"
    assert "hunter2" not in repr(settings)
    result = custody("--config", str(config), "status")
    assert result.returncode == 1
    assert result.stderr.startswith("custody: registry unreachable:")
    assert "hunter2" not in result.stdout + result.stderr


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "custody.toml"
    config.parent.mkdir()
    config.write_text('data_dir = "data"\n[[sources]]\nname = "a"\nkind = "mbox"\npath = "mail/a.mbox"\n')
    settings = load_settings(config)
    assert settings.data_dir == config.parent / "data"
    assert settings.sources[0].path == config.parent / "mail" / "a.mbox"


def test_init_writes_a_starter_config_that_loads(tmp_path: Path) -> None:
    result = custody("init", str(tmp_path / "custody.toml"))
    assert result.returncode == 0, result.stderr
    settings = load_settings(tmp_path / "custody.toml")
    assert settings.sources and settings.reps
    assert load_policy(None).lookback_days == 180
