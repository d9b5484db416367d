"""Bad configuration ends with one line naming the key and exit code 2; secrets stay out of output."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from config.policy import load_policy
from config.settings import load_settings


def custody(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli.app", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


@pytest.mark.parametrize("body, expected", [
    ('data_dir = "d"\nbatch_sise = 10\n', "config error: batch_sise: unknown key"),
    ('[[sources]]\nname = "a"\nkind = "mbox"\npath = "x"\n[[sources]]\nname = "a"\nkind = "mbox"\npath = "y"\n',
     "config error: sources: two entries have the name 'a'"),
    ('[[reps]]\nemail = "ann@acme.test"\n[[reps]]\nemail = "Ann@acme.test"\nteam = "b"\n',
     "config error: reps: two entries have the email 'ann@acme.test'"),
    ('database_url = "mysql://custody:hunter2@db/custody"\n', "config error: database_url: mysql is not supported"),
    ('database_url = "not a url"\n', "config error: database_url: not a database URL; expected sqlite:///"),
    ('[service]\nsync_interval_minutes = 0.0001\n',
     "config error: service.sync_interval_minutes: Input should be greater than or equal to 1"),
    ('[service]\nhandover_interval_minutes = 0.5\n', "config error: service.handover_interval_minutes:"),
    ('[[sources]]\nname = "ann"\nkind = "pop3"\npath = "x"\n',
     "config error: sources.ann.kind: unknown kind 'pop3' (kinds: 'maildir', 'mbox', 'vcard', 'csv', 'imap', 'graph', 'google')"),
    ('[[sources]]\nname = "ann"\nkind = "maildir"\n', "config error: sources.ann.path: Field required"),
    ('[[sources]]\nname = "ann"\nkind = "imap"\nhost = "h"\npath = "x"\n', "config error: sources.ann.path: unknown key"),
    ('[[sources]]\nname = "ann"\nkind = "imap"\nhost = "h"\nauth = "xoauth2"\n',
     'config error: sources.ann: auth = "xoauth2" needs either token_env'),
    ('[[sources]]\nname = "m365"\nkind = "graph"\ntenant_id = "t"\nclient_id = "c"\n',
     "config error: sources.m365: name exactly one credential: client_secret_env, client_secret_file, certificate_env "
     "or certificate_file (given: none)"),
    ('[[sources]]\nname = "m365"\nkind = "graph"\ntenant_id = "t"\nclient_id = "c"\nclient_secret_env = "S"\n'
     'graph_url = "http://graph.example"\n', "config error: sources.m365: graph_url must be an https:// URL"),
    ('[smtp]\nhost = "h"\n[graph_send]\ntenant_id = "t"\nclient_id = "c"\nclient_secret_env = "S"\n',
     "config error: graph_send: set either [smtp] or [graph_send], not both"),
    ('[smtp]\nhost = "h"\n[gmail_send]\nkey_env = "K"\n',
     "config error: gmail_send: set either [smtp] or [gmail_send], not both"),
    ('[graph_send]\ntenant_id = "t"\nclient_id = "c"\nclient_secret_env = "S"\n[gmail_send]\nkey_env = "K"\n',
     "config error: gmail_send: set either [graph_send] or [gmail_send], not both"),
    ('[gmail_send]\nkey_env = "K"\nkey_file = "k.json"\n',
     "config error: gmail_send: name the service account key in exactly one of key_env or key_file"),
    ('[[sources]]\nname = "ann"\nkind = "csv"\npath = "x"\ncolumns = { fax = "Fax" }\n',
     "config error: sources.ann.columns: unknown field 'fax'"),
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
    assert "hunter2" not in result.stderr


def test_bad_policy_names_the_policy_key(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("lookback_days: -3\n")
    (tmp_path / "custody.toml").write_text('policy_file = "policy.yaml"\n')
    result = custody("--config", str(tmp_path / "custody.toml"), "status")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("custody: config error: policy.lookback_days:")


def test_a_missing_explicit_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = custody("--config", str(tmp_path / "absent.toml"), "status")
    assert (result.returncode, "config file not found" in result.stderr) == (2, True)


@pytest.mark.parametrize("command", [["status"], ["run"], ["sync"], ["check"], ["report", "coverage"]])
def test_without_any_config_file_every_command_but_init_and_demo_refuses(tmp_path: Path, command: list[str]) -> None:
    """Not an empty config: a service started in the wrong directory would report healthy with no
    sources and create a registry there."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CUSTODY_")}
    result = custody(*command, env=env, cwd=tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert output.endswith(f" {tmp_path / 'custody.toml'}: config file not found "
                           "(give --config PATH or set CUSTODY_CONFIG; `custody init PATH` writes one)")
    assert len(output.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_version() -> None:
    result = custody("--version")
    assert (result.returncode, result.stdout) == (0, f"custody {metadata.version('custody')}\n")


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


def test_gmail_send_is_a_way_out_and_its_key_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "custody.toml"
    config.parent.mkdir()
    config.write_text('[gmail_send]\nkey_file = "keys/google.json"\nmailbox = "outbox@company.example"\n')
    settings = load_settings(config)
    assert settings.sends_mail() and settings.gmail_send is not None
    assert settings.gmail_send.key_file == config.parent / "keys" / "google.json"
    assert (settings.gmail_send.mailbox, settings.gmail_send.sent_copy_wait_seconds) == ("outbox@company.example", 60)


def test_init_writes_a_starter_config_and_its_policy_that_work_together(tmp_path: Path) -> None:
    result = custody("init", str(tmp_path / "custody.toml"))
    assert result.returncode == 0, result.stderr
    settings = load_settings(tmp_path / "custody.toml")
    assert settings.sources and settings.reps
    assert settings.policy_file == tmp_path / "policy.yaml"
    assert load_policy(settings.policy_file).lookback_days == 180
    status = custody("--config", str(tmp_path / "custody.toml"), "status")
    assert status.returncode == 0, status.stderr
    again = custody("init", str(tmp_path / "custody.toml"))
    assert (again.returncode, again.stderr.strip()) == (1, f"custody: {tmp_path / 'custody.toml'} exists; "
                                                           "use --force to overwrite")


def test_nested_keys_are_overridden_by_double_underscore_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """How a container sets the listen address without editing the mounted config."""
    config = tmp_path / "custody.toml"
    config.write_text('[service]\nlisten_port = 9000\njitter_seconds = 5\n')
    monkeypatch.setenv("CUSTODY_SERVICE__LISTEN_HOST", "0.0.0.0")
    service = load_settings(config).service
    assert (service.listen_host, service.listen_port, service.jitter_seconds) == ("0.0.0.0", 9000, 5)
