"""Targets config: validation names the file, the target and the field; strict patterns hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.config import ConfigError, Target, load_targets, parse_duration, parse_targets
from checks.registry import RESERVED_WORDS

SEED = """
[[targets]]
name = "kathario-saas"
host = "203.0.113.10"
port = 22
user = "root"
identity_file = "~/.ssh/id_ed25519"
known_hosts = "~/.ssh/known_hosts"
pm2_app = "kathario-saas"
app_port = 3003
app_dir = "/root/kathario-saas"
public_url = "http://203.0.113.10/"
ws_path = "/ws"
http_path = "/"
pm2_bin = "pm2"
pm2_home = ""
nginx_bin = "nginx"
nginx_conf = ""
sudo = false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wscheck.toml"
    path.write_text(text)
    return path


def test_issue_example_loads(tmp_path: Path) -> None:
    cfg = load_targets(write(tmp_path, SEED))
    (target,) = cfg.targets
    assert target.name == "kathario-saas"
    assert target.app_port == 3003
    assert not target.is_local
    assert target.public_endpoint() == ("http", "203.0.113.10", 80)
    assert target.where == "root@203.0.113.10"


def test_default_is_one_local_target() -> None:
    cfg = load_targets(None)
    (target,) = cfg.targets
    assert target.is_local
    assert target.public_url == "http://127.0.0.1/"
    assert target.app_port == 3003


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("pm2_app", '"kath; rm -rf /"', "pm2_app"),
        ("app_dir", '"relative/dir"', "app_dir"),
        ("app_dir", '"/root/$(id)"', "app_dir"),
        ("pm2_bin", '"pm2 jlist"', "pm2_bin"),
        ("nginx_conf", '"/etc/nginx/nginx.conf;reboot"', "nginx_conf"),
        ("pm2_home", '"~/.pm2"', "pm2_home"),
        ("app_port", "70000", "app_port"),
        ("app_port", '"three"', "app_port"),
        ("user", '"root user"', "user"),
        ("host", '"bad host"', "host"),
        ("public_url", '"ftp://x/"', "public_url"),
        ("public_url", '"http://u:p@x/"', "public_url"),
        ("ws_path", '"ws"', "ws_path"),
        ("sudo", '"yes"', "sudo"),
        ("check_timeout", '"soon"', "check_timeout"),
        ("nginx_reload", '["systemctl", "reload nginx"]', "nginx_reload"),
        ("alert_channel", '"#general"', "alert_channel"),
    ],
)
def test_bad_values_name_file_target_and_field(tmp_path: Path, field: str, value: str, needle: str) -> None:
    text = SEED.replace(f"\n{field} = ", f"\n_old_{field} = ") if f"\n{field} = " in SEED else SEED
    text = "\n".join(line for line in text.splitlines() if not line.startswith(f"_old_{field}"))
    path = write(tmp_path, text + f"\n{field} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    message = str(info.value)
    assert str(path) in message
    assert "targets[0] (kathario-saas)" in message
    assert needle in message
    assert "Traceback" not in message


def test_missing_required_and_unknown_keys(tmp_path: Path) -> None:
    path = write(tmp_path, '[[targets]]\nname = "a"\napp_dir = "/srv/a"\nappport = 3000\n')
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    lines = str(info.value).splitlines()
    assert any("pm2_app: required key is missing" in ln for ln in lines)
    assert any("app_port: required key is missing" in ln for ln in lines)
    assert any("appport: unknown key" in ln for ln in lines)


@pytest.mark.parametrize("word", ["pm2", "status", "nginx.syntax", "all", "help", "Targets", "restart"])
def test_target_name_may_not_collide_with_grammar(word: str) -> None:
    assert word.lower() in RESERVED_WORDS
    with pytest.raises(ConfigError, match="keyword"):
        parse_targets({"targets": [{"name": word, "pm2_app": "a", "app_port": 1, "app_dir": "/a"}]}, "x.toml")


def test_duplicate_names(tmp_path: Path) -> None:
    one = {"pm2_app": "a", "app_port": 1, "app_dir": "/a"}
    with pytest.raises(ConfigError, match=r"targets\[1\] \(Web\): name: duplicates targets\[0\]"):
        parse_targets({"targets": [{"name": "web", **one}, {"name": "Web", **one}]}, "x.toml")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("targets = [", "TOML syntax error"),
        ("x = 1\n", "no [[targets]] table"),
        ("targets = []\n", "non-empty array"),
        ("targets = [1]\n", "must be a table"),
    ],
)
def test_file_level_problems(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[")):
        load_targets(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_targets(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), ("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25), ("1.5h", 5400.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-5s", "5 minutes", True, None, "1y"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_public_url_defaults_from_host_and_join() -> None:
    t = Target.model_validate({"name": "a", "host": "example.com", "pm2_app": "a", "app_port": 3003, "app_dir": "/a"})
    assert t.public_url == "http://example.com/"
    t2 = t.model_copy(update={"public_url": "https://example.com:8443/app/"})
    assert t2.public_endpoint() == ("https", "example.com", 8443)
    assert t2.public_join("/ws") == "https://example.com:8443/app/ws"


def test_masked_has_no_secret_material(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAb3BlbnNzaC1rZXktdjE\n")
    t = Target.model_validate(
        {"name": "a", "pm2_app": "a", "app_port": 1, "app_dir": "/a", "identity_file": str(key)}
    )
    assert "AAAAb3BlbnNzaC1rZXktdjE" not in repr(t.masked())
    assert "PRIVATE KEY" not in repr(t.masked())


def test_probe_timeout_is_a_setting_below_check_timeout() -> None:
    """The probes' bound is the target's `probe_timeout` (5 s by default); one at or past check_timeout would be cut
    off by the check's own timeout (an `error`) before it could say "no answer", so it is refused at load."""
    base = {"name": "web", "pm2_app": "chat", "app_port": 3000, "app_dir": "/srv/chat"}
    assert parse_targets({"targets": [base]}, "t.toml").targets[0].probe_timeout == 5.0
    assert parse_targets({"targets": [{**base, "probe_timeout": "1500ms"}]}, "t.toml").targets[0].probe_timeout == 1.5
    with pytest.raises(ConfigError, match=r"probe_timeout \(20s\) must be less than check_timeout \(20s\)"):
        parse_targets({"targets": [{**base, "probe_timeout": 20}]}, "t.toml")
