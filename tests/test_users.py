"""``support-agent users add|remove|list``: the demo's users file, passwords from standard input, stored only
as salted Argon2id hashes; every mistake is a one-line error."""
import json

from channels import users
from conftest import one_line_error, run_cli


def test_users_are_added_listed_and_removed(tmp_path):
    path = tmp_path / "team" / "users"
    env = {"SUPPORT_AGENT_USERS_FILE": str(path)}
    added = run_cli("users", "add", "anna", stdin=b"correct horse battery\n", env=env)
    assert json.loads(added.stdout) == {"user": "anna", "added": True, "users_file": str(path)}
    assert run_cli("--set", f"users_file={path}", "users", "add", "ben", stdin=b"ben's password\r\n").returncode == 0
    listed = run_cli("users", "list", env=env)
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [{"user": "anna"}, {"user": "ben"}]
    stored = path.read_text()
    assert "correct horse" not in stored and stored.count("$argon2id$") == 2
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert users.verify(users.read(path), "ben", "ben's password")  # one line: the line ending is not in it
    salts = {line.split("$")[4] for line in stored.splitlines()}
    assert len(salts) == 2
    assert "already exists" in one_line_error(run_cli("users", "add", "anna", stdin=b"another password\n", env=env))
    assert run_cli("users", "add", "anna", "--replace", stdin=b"another password\n", env=env).returncode == 0
    assert users.verify(users.read(path), "anna", "another password")
    assert json.loads(run_cli("users", "remove", "ben", env=env).stdout)["removed"] is True
    assert [json.loads(line)["user"] for line in run_cli("users", "list", env=env).stdout.splitlines()] == ["anna"]


def test_user_mistakes_are_one_line_errors(tmp_path):
    env = {"SUPPORT_AGENT_USERS_FILE": str(tmp_path / "users")}
    for args, stdin, message in [
        (["users", "add", "anna"], b"short\n", "password too short: at least 8 characters"),
        (["users", "add", "anna"], b"", "no password on standard input"),
        (["users", "add", "anna"], b"\xff\xfe not utf-8 at all\n", "not UTF-8 text"),
        (["users", "add", "anna:admin"], b"long enough password\n", "bad user name 'anna:admin'"),
        (["users", "remove", "zed"], None, "no user 'zed' in"),
    ]:
        assert message in one_line_error(run_cli(*args, stdin=stdin, env=env))
    (tmp_path / "users").write_text("anna:not-a-hash\n")
    assert "line 1: not NAME:ARGON2-HASH" in one_line_error(run_cli("users", "list", env=env))
    unset = run_cli("users", "list", env={"SUPPORT_AGENT_USERS_FILE": ""})
    assert "no users file: set users_file (--set users_file=PATH" in one_line_error(unset)
