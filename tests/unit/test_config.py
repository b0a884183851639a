from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, config_hash, load_settings, public_dict


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bot.toml"
    p.write_text(text)
    return p


def test_embedded_defaults_are_dry_run_sqlite(clean_env: None) -> None:
    loaded = load_settings(None, env={})
    s = loaded.settings
    assert s.mode.value == "DRY_RUN"
    assert s.store.url.startswith("sqlite+aiosqlite:///")
    assert s.market.venue == "sim" and s.market.feed == "synthetic"
    assert s.telegram.token is None
    assert loaded.source == "<embedded defaults>"


def test_valid_file_and_env_override(tmp_path: Path) -> None:
    p = write(tmp_path, '[risk]\nmax_trade_qty = "0.02"\nmax_daily_loss = "100"\n')
    loaded = load_settings(p, env={"BOT_RISK__MAX_DAILY_LOSS": "50"})
    assert loaded.settings.risk.max_trade_qty == Decimal("0.02")
    assert loaded.settings.risk.max_daily_loss == Decimal("50")  # environment wins over the file
    assert isinstance(loaded.settings.risk.max_trade_qty, Decimal)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    p = write(tmp_path, '[risk]\nmax_trade_qtty = "1"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(p, env={})
    msg = str(err.value)
    assert str(p) in msg
    assert "risk.max_trade_qtty" in msg
    assert "unknown key" in msg


def test_unknown_top_level_section(tmp_path: Path) -> None:
    p = write(tmp_path, "[rsik]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"rsik: unknown key"):
        load_settings(p, env={})


def test_secret_in_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    p = write(tmp_path, '[telegram]\ntoken = "123456:SUPERSECRETTOKENVALUE"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(p, env={})
    msg = str(err.value)
    assert "telegram.token" in msg and str(p) in msg
    assert "BOT_TELEGRAM__TOKEN" in msg
    assert "SUPERSECRETTOKENVALUE" not in msg


def test_secret_in_mode_override_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, '[mode_overrides.dry_run.keys]\nmaster_key = "abc"\n')
    with pytest.raises(ConfigError, match=r"mode_overrides\.dry_run\.keys\.master_key"):
        load_settings(p, env={})


def test_bad_value_names_key_and_value(tmp_path: Path) -> None:
    p = write(tmp_path, '[risk]\nmax_trade_qty = "-1"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(p, env={})
    msg = str(err.value)
    assert "risk.max_trade_qty" in msg and "greater than 0" in msg and "'-1'" in msg and str(p) in msg


def test_bad_value_type(tmp_path: Path) -> None:
    p = write(tmp_path, 'mode = "PAPER"\n')
    with pytest.raises(ConfigError, match=r"mode: Input should be 'LIVE', 'DRY_RUN' or 'REPLAY'"):
        load_settings(p, env={})


def test_not_toml(tmp_path: Path) -> None:
    p = write(tmp_path, "[risk\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(p, env={})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings("/nonexistent/bot.toml", env={})


def test_live_with_sim_venue_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, 'mode = "LIVE"\n')
    with pytest.raises(ConfigError, match="mode LIVE needs a live venue"):
        load_settings(p, env={})


def test_mode_overrides_are_applied_and_reported(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        '[risk]\nmax_trade_qty = "0.01"\n[mode_overrides.DRY_RUN.risk]\nmax_trade_qty = "0.5"\n[mode_overrides.LIVE.risk]\nmax_trade_qty = "0.001"\n',
    )
    loaded = load_settings(p, env={})
    assert loaded.settings.risk.max_trade_qty == Decimal("0.5")
    assert loaded.overrides == ["risk.max_trade_qty"]


def test_unknown_mode_in_overrides(tmp_path: Path) -> None:
    p = write(tmp_path, "[mode_overrides.paper.risk]\nmax_trade_qty = \"1\"\n")
    with pytest.raises(ConfigError, match="mode_overrides.paper: unknown mode"):
        load_settings(p, env={})


def test_strategy_asset_must_be_a_market_asset(tmp_path: Path) -> None:
    p = write(tmp_path, '[[strategies]]\nid = "q"\nname = "quote"\nassets = ["ETH/USDT"]\n')
    with pytest.raises(ConfigError, match=r"ETH/USDT is not in market.assets"):
        load_settings(p, env={})


def test_hash_masks_secrets_and_changes_with_values(tmp_path: Path) -> None:
    a = load_settings(None, env={"BOT_TELEGRAM__TOKEN": "1:aaa"}).settings
    b = load_settings(None, env={"BOT_TELEGRAM__TOKEN": "1:bbb"}).settings
    assert config_hash(a) == config_hash(b)  # the secret's value never reaches the hash
    assert public_dict(a)["telegram"]["token"] == "**********"
    c = load_settings(write(tmp_path, '[risk]\nmax_trade_qty = "0.02"\n'), env={}).settings
    assert config_hash(c) != config_hash(load_settings(None, env={}).settings)


def test_cli_config_check_prints_masked_config_and_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TELEGRAM__TOKEN", "999:VERYSECRET")
    p = write(tmp_path, '[mode_overrides.DRY_RUN.risk]\nmax_trade_qty = "0.5"\n')
    assert main(["config", "check", "--config", str(p)]) == 0
    out = capsys.readouterr().out
    assert "VERYSECRET" not in out
    assert '"token": "**********"' in out
    assert "config hash: " in out
    assert "# override for DRY_RUN: risk.max_trade_qty" in out


def test_cli_config_check_error_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "[risk]\nnope = 1\n")
    assert main(["config", "check", "--config", str(p)]) == 2
    assert "risk.nope: unknown key" in capsys.readouterr().err


def test_oms_retention_must_outlast_a_staged_intent(tmp_path: Path) -> None:
    p = write(tmp_path, "[oms]\nretention_s = 900\n[telegram]\nintent_ttl_s = 900\n")
    with pytest.raises(ConfigError, match=r"oms.retention_s \(900\) must exceed telegram.intent_ttl_s \(900\)"):
        load_settings(p, env={})
    ok = load_settings(write(tmp_path, "[oms]\nretention_s = 901\n[telegram]\nintent_ttl_s = 900\n"), env={})
    assert ok.settings.oms.retention_s == 901
    with pytest.raises(ConfigError, match="retention_s"):
        load_settings(write(tmp_path, "[oms]\nretention_s = 599\n"), env={})
