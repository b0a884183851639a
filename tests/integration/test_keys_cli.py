"""``bot keys ...`` end to end through ``bot.cli.main``: stdin and hidden-prompt input, never argv, audit rows."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.store.models import OperatorCommandRow
from tests.conftest import DB
from tests.keys_support import new_api_key, new_key_file


@pytest.fixture
def env(tmp_path: Path, clean_env: None, isolated_logging: None) -> Path:
    return tmp_path


def _cfg(tmp_path: Path, key_file: Path, db: DB | None = None) -> Path:
    cfg = tmp_path / "bot.toml"
    store = db.store_toml() if db else f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n'
    cfg.write_text(store + f'[keys]\nmaster_key_file = "{key_file}"\n')
    return cfg


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def _add(monkeypatch: pytest.MonkeyPatch, cfg: Path, kind: str, lines: list[str], *extra: str) -> int:
    _stdin(monkeypatch, "\n".join(lines) + "\n")
    return main(["keys", "add", "--config", str(cfg), "--venue", "binance", "--kind", kind, *extra])


def test_add_list_verify_remove(env: Path, db: DB, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cfg(env, new_key_file(env), db)
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    api, secret, t_api, t_secret = new_api_key(), new_api_key(), new_api_key(), new_api_key()
    assert _add(monkeypatch, cfg, "read", [api, secret], "--key-id", "r1") == 0
    assert _add(monkeypatch, cfg, "trade", [t_api, t_secret, "my pass phrase"], "--passphrase") == 0
    assert _add(monkeypatch, cfg, "read", [new_api_key(), new_api_key()]) == 2  # exists: --replace needed
    assert main(["keys", "list", "--config", str(cfg)]) == 0
    first = capsys.readouterr()
    assert main(["keys", "verify", "--offline", "--config", str(cfg)]) == 0
    verify = capsys.readouterr()
    assert main(["keys", "remove", "--config", str(cfg), "--venue", "binance", "--kind", "read"]) == 2  # needs --yes
    assert main(["keys", "remove", "--config", str(cfg), "--venue", "binance", "--kind", "read", "--yes"]) == 0
    removal = capsys.readouterr()
    assert main(["keys", "list", "--config", str(cfg)]) == 0
    last = capsys.readouterr()
    text = "".join(x.out + x.err for x in (first, verify, removal, last))
    for value in (api, secret, t_api, t_secret, "my pass phrase"):
        assert value not in text
    listing = [line.split() for line in first.out.splitlines() if line.startswith("binance ")]
    assert listing[0][:4] == ["binance", "read", "r1", f"{api[:4]}...{api[-4:]}"] and listing[0][-1] == "never"
    assert listing[1][:2] == ["binance", "trade"] and len(listing) == 2
    assert "exists already" in first.err
    assert verify.out.count("OK       integrity") == 2 and "verify: ok" in verify.out
    assert "repeat with --yes" in removal.err and "removed read key r1" in removal.out
    assert [line.split()[:2] for line in last.out.splitlines()[1:]] == [["binance", "trade"]]

    async def commands() -> list[tuple[str, str, str]]:
        engine = db.engine()
        async with engine.connect() as conn:
            rows = (await conn.execute(select(OperatorCommandRow.command, OperatorCommandRow.outcome, OperatorCommandRow.args).order_by(OperatorCommandRow.id))).all()
        await engine.dispose()
        return [tuple(r) for r in rows]

    import asyncio

    rows = asyncio.run(commands())
    assert [(c, o) for c, o, _ in rows] == [
        ("keys add", "ok"), ("keys add", "ok"), ("keys add", "refused"), ("keys verify", "ok"), ("keys remove", "ok"),
    ]
    assert all(api not in a and secret not in a for _, _, a in rows)


def test_secrets_on_the_command_line_are_refused_without_echo(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cfg(env, new_key_file(env))
    secret = new_api_key()
    for argv in (["--secret", secret], [f"--secret={secret}"], [secret], ["--api-key", secret, secret]):
        assert main(["keys", "add", "--config", str(cfg), "--venue", "binance", "--kind", "read", *argv]) == 2
    err = capsys.readouterr().err
    assert secret not in err and "never taken from the command line" in err


def test_hidden_prompt_on_a_terminal(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cfg(env, new_key_file(env))
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    answers = [new_api_key(), new_api_key()]
    prompts: list[str] = []

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty(""))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": (prompts.append(prompt), answers[len(prompts) - 1])[1])
    assert main(["keys", "add", "--config", str(cfg), "--venue", "binance", "--kind", "read"]) == 0
    assert prompts == ["API key (input hidden): ", "API secret (input hidden): "]
    out = capsys.readouterr().out
    assert answers[0] not in out and f"{answers[0][:4]}...{answers[0][-4:]}" in out


@pytest.mark.parametrize(
    "lines,message",
    [([], "exactly 2 lines"), (["onlyone-key-1234"], "exactly 2 lines"), (["k" * 20, "s" * 20, "extra"], "exactly 2 lines"), (["short", "s" * 20], "shorter than 8")],
)
def test_bad_stdin_is_refused_clearly(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lines: list[str], message: str) -> None:
    cfg = _cfg(env, new_key_file(env))
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    assert _add(monkeypatch, cfg, "read", lines) == 2
    assert message in capsys.readouterr().err


def test_rotate_master_through_the_cli(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    old = new_key_file(env, "old.key")
    cfg = _cfg(env, old)
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    assert _add(monkeypatch, cfg, "read", [new_api_key(), new_api_key()]) == 0
    assert _add(monkeypatch, cfg, "trade", [new_api_key(), new_api_key()]) == 0
    assert main(["keys", "gen-master", "--out", str(env / "new.key")]) == 0
    assert main(["keys", "rotate-master", "--config", str(cfg), "--new-key-file", str(env / "new.key")]) == 0
    out = capsys.readouterr().out
    assert "re-encrypted 2 entries" in out and "restart the service" in out
    # the old key no longer opens anything: verify says so, naming the entries and the fix
    assert main(["keys", "verify", "--offline", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL     integrity") == 2 and "install the new master key" in out
    cfg_new = _cfg(env, env / "new.key")
    assert main(["keys", "verify", "--offline", "--config", str(cfg_new)]) == 0


def test_key_problems_are_one_clear_line(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    key = new_key_file(env)
    cfg = _cfg(env, key)
    assert main(["keys", "list", "--config", str(cfg)]) == 3  # schema not created yet
    assert "bot db upgrade --config" in capsys.readouterr().err
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    key.chmod(0o644)
    assert _add(monkeypatch, cfg, "read", [new_api_key(), new_api_key()]) == 1
    assert f"chmod 600 {key}" in capsys.readouterr().err
    (env / "bot.toml").write_text(f'[store]\nurl = "sqlite+aiosqlite:///{env / "bot.db"}"\n')  # no master key at all
    assert _add(monkeypatch, cfg, "read", [new_api_key(), new_api_key()]) == 1
    assert "no master key" in capsys.readouterr().err
    assert main(["keys", "gen-master", "--out", str(key)]) == 1
    assert "never overwritten" in capsys.readouterr().err
