"""The configuration file: defaults, every key, errors naming the file and key, ``serve --check-config``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.config import Config, Credentials, SupervisorSettings, load_config
from engine.errors import ConfigError, ConfigFileUnreadable
from engine.replication.batch import BatchLimits
from tests.e2e.conftest import ROOT, child_env

EXAMPLE = ROOT / "packaging" / "tdsync.toml"

FULL = """
state_dir = "/srv/tdsync"
log_level = "DEBUG"

[batch]
max_rows = 5000
max_bytes = 1048576
max_age = 1.5

[credentials]
user = "repl"
password = "s3cret"

[supervisor]
heartbeat_timeout = 12
stop_timeout = 4
restart_backoff_initial = 0.5
restart_backoff_max = 8
max_failures = 3
failure_window = 120
vgroup_check_interval = 15
"""


def write(tmp_path: Path, text: str, name: str = "tdsync.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file():
    config = load_config(None, environ={})
    assert config.path is None
    assert config.state_dir == Path("/var/lib/tdsync") and config.state_dir_from == "default"
    assert config.log_level == "info"
    assert config.batch == BatchLimits()
    assert config.supervisor == SupervisorSettings()
    assert config.supervisor.heartbeat_timeout == 30 and config.supervisor.stop_timeout == 10


def test_every_key(tmp_path):
    config = load_config(write(tmp_path, FULL), environ={})
    assert config.state_dir == Path("/srv/tdsync") and config.state_dir_from == "file"
    assert config.log_level == "debug"
    assert config.batch == BatchLimits(5000, 1048576, 1.5)
    assert config.credentials == Credentials("repl", "s3cret")
    assert config.supervisor == SupervisorSettings(12, 4, 0.5, 8, 3, 120, 15)


def test_the_example_file_is_valid_and_says_the_defaults():
    config = load_config(EXAMPLE, environ={})
    assert config.batch == BatchLimits()
    assert config.supervisor == SupervisorSettings()
    assert config.state_dir == Path("/var/lib/tdsync") and config.log_level == "info"


def test_state_dir_precedence(tmp_path):
    path = write(tmp_path, 'state_dir = "/from/file"\n')
    assert load_config(path, environ={}).state_dir == Path("/from/file")
    from_env = load_config(path, environ={"TDSYNC_STATE_DIR": "/from/env"})
    assert from_env.state_dir == Path("/from/env") and from_env.state_dir_from == "env"
    from_option = load_config(path, state_dir="/from/option", environ={"TDSYNC_STATE_DIR": "/from/env"})
    assert from_option.state_dir == Path("/from/option") and from_option.state_dir_from == "option"


def test_config_file_from_the_environment(tmp_path):
    path = write(tmp_path, 'log_level = "warning"\n')
    assert load_config(None, environ={"TDSYNC_CONFIG": str(path)}).log_level == "warning"
    with pytest.raises(ConfigFileUnreadable, match="no such file"):
        load_config(None, environ={"TDSYNC_CONFIG": str(tmp_path / "absent.toml")})


@pytest.mark.parametrize(("text", "key", "words"), [
    ('log_level = "loud"', "log_level", "must be one of debug, info"),
    ("log_level = 3", "log_level", "must be a non-empty string, got an integer 3"),
    ('state_dir = ""', "state_dir", "non-empty string"),
    ("[batch]\nmax_rows = 0", "batch.max_rows", "at least 1"),
    ('[batch]\nmax_rows = "many"', "batch.max_rows", "must be an integer, got a string 'many'"),
    ("[batch]\nmax_rows = true", "batch.max_rows", "must be an integer, got a boolean"),
    ("[batch]\nmax_bytes = 10", "batch.max_bytes", "at least 1024"),
    ("[batch]\nmax_age = -1", "batch.max_age", "greater than 0"),
    ("[batch]\nmax_age = nan", "batch.max_age", "number of seconds"),
    ("[batch]\nmax_row = 5", "batch.max_row", "unknown key (known here: max_age, max_bytes, max_rows)"),
    ("batch = 5", "batch", "must be a table ([batch])"),
    ('[credentials]\nuser = "a b"', "credentials.user", "without spaces"),
    ('[credentials]\npassword = "x"\npassword_file = "/etc/passwd"', "credentials.password_file",
     "either password or password_file"),
    ('[credentials]\npassword_file = "/nonexistent/pw"', "credentials.password_file", "cannot read the password file"),
    ("[supervisor]\nheartbeat_timeout = 0", "supervisor.heartbeat_timeout", "greater than 0"),
    ("[supervisor]\nmax_failures = 0", "supervisor.max_failures", "at least 1"),
    ("[supervisor]\nrestart_backoff_initial = 10\nrestart_backoff_max = 5", "supervisor.restart_backoff_max",
     "at least restart_backoff_initial"),
    ("[supervisor]\nwatchdog = 1", "supervisor.watchdog", "unknown key"),
    ("statedir = '/x'", "statedir", "unknown key"),
])
def test_bad_values_name_the_file_and_the_key(tmp_path, text, key, words):
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert message.startswith(f"config file {path}: key `{key}`: "), message
    assert words in message, message
    assert caught.value.key == key


def test_invalid_toml_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path, 'log_level = "info"\n[batch\nmax_rows = 1\n')
    with pytest.raises(ConfigError, match=rf"config file {path}: invalid TOML: .*line 2"):
        load_config(path, environ={})


def test_credentials_fill_in_what_an_endpoint_does_not_say(tmp_path):
    creds = Credentials("repl", "s3cret")
    bare = creds.resolve("ws://td1:6041")
    assert (bare.user, bare.password) == ("repl", "s3cret")
    own = creds.resolve("ws://alice:pw@td1:6041")
    assert (own.user, own.password) == ("alice", "pw")
    user_only = creds.resolve("ws://alice@td1:6041")
    assert (user_only.user, user_only.password) == ("alice", "s3cret")
    pw_file = write(tmp_path, "from-file\n", "password")
    assert Credentials(password_file=pw_file).resolve("td1:6030").password == "from-file"
    assert Credentials().resolve("ws://td1:6041").user == "root"
    assert "s3cret" not in repr(creds) and "s3cret" not in str(bare)


# --- tdsync serve --check-config ------------------------------------------------------------------
def test_check_config_exit_codes(tmp_path, capsys):
    good = write(tmp_path, FULL, "good.toml")
    assert main(["serve", "--check-config", "--config", str(good)]) == 0
    out = capsys.readouterr()
    assert "configuration ok" in out.out and str(good) in out.out and "/srv/tdsync" in out.out

    bad = write(tmp_path, "[supervisor]\nstop_timeout = 'soon'\n", "bad.toml")
    assert main(["serve", "--check-config", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"config file {bad}: key `supervisor.stop_timeout`: must be a number of seconds" in err, err

    assert main(["serve", "--check-config", "--config", str(tmp_path / "absent.toml")]) == 2
    err = capsys.readouterr().err
    assert f"cannot read the config file {tmp_path / 'absent.toml'}: no such file" in err, err

    # --state-dir wins over the file, and the answer says where the state directory came from
    assert main(["serve", "--check-config", "--config", str(good), "--state-dir", str(tmp_path / "s")]) == 0
    assert f"state dir {tmp_path / 's'} (from the option)" in capsys.readouterr().out


def test_check_config_as_a_command(tmp_path):
    """The real command line, as ExecStartPre runs it: exit codes and messages on stdout/stderr."""
    bad = write(tmp_path, "[batch]\nmax_rows = -5\n")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--check-config", *args],
                              capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=60)

    ok = run("--config", str(EXAMPLE))
    assert ok.returncode == 0 and "configuration ok" in ok.stdout, ok.stderr
    wrong = run("--config", str(bad))
    assert wrong.returncode == 1 and "key `batch.max_rows`: must be at least 1, got -5" in wrong.stderr
    missing = run("--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "nope.toml" in missing.stderr


def test_config_is_a_plain_value():
    assert isinstance(Config(), Config)
    assert SupervisorSettings().backoff(1) == 1 and SupervisorSettings().backoff(3) == 4
    assert SupervisorSettings().backoff(50) == 60
