"""Redaction: messages, arguments, tracebacks, stacks, URL/JSON forms, fingerprints, uncaught exceptions."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest

from bot.keys.master import MasterKey
from bot.keys.redaction import MASK, REDACTOR, Redactor, install_redaction
from bot.ops import logs
from tests.keys_support import new_api_key

TOKEN = "123456789:AAH-sEcReT_telegram-TOKEN-value-xyz"


@pytest.fixture
def stream(isolated_logging: None) -> io.StringIO:
    """``logs.configure`` at DEBUG writing into a buffer."""
    buf = io.StringIO()
    logs.configure("DEBUG")
    logging.getLogger().handlers[0].setStream(buf)  # type: ignore[attr-defined]
    return buf


def test_messages_arguments_and_tracebacks_are_masked(stream: io.StringIO) -> None:
    secret = new_api_key()
    REDACTOR.add(TOKEN, "telegram.token")
    REDACTOR.add(secret, "read key secret")
    log = logging.getLogger("bot.test")
    log.info("token " + TOKEN)
    log.debug("args %s and %r", secret, {"secret": secret})
    try:
        raise RuntimeError(f"venue said no to {secret} via https://api.telegram.org/bot{TOKEN}/getMe")
    except RuntimeError:
        log.exception("forced failure with %s", TOKEN)
    log.warning("stack", stack_info=True, extra={"note": "x"})
    text = stream.getvalue()
    assert TOKEN not in text and secret not in text
    assert text.count(MASK) >= 6
    assert "Traceback (most recent call last)" in text and "RuntimeError: venue said no to [REDACTED]" in text


def test_url_quoted_json_and_repr_forms_are_masked() -> None:
    r = Redactor()
    phrase = 'pa ss"w/o:rd'
    r.add(TOKEN, "token")
    r.add(phrase, "passphrase")
    from urllib.parse import quote, quote_plus

    import html

    for text in (quote(TOKEN, safe=""), quote_plus(TOKEN), json.dumps({"p": phrase}), repr(phrase), quote_plus(phrase), html.escape(phrase)):
        out = r.redact(f"before {text} after")
        assert TOKEN not in out and phrase not in out and MASK in out, out
        assert "before" in out and "after" in out


def test_the_json_formatter_carries_the_masked_traceback(isolated_logging: None) -> None:
    buf = io.StringIO()
    logs.configure("INFO", json_format=True)
    logging.getLogger().handlers[0].setStream(buf)  # type: ignore[attr-defined]
    REDACTOR.add(TOKEN, "token")
    try:
        raise ValueError(TOKEN)
    except ValueError:
        logging.getLogger("x").exception("boom %s", TOKEN)
    line = json.loads(buf.getvalue())
    assert TOKEN not in buf.getvalue()
    assert line["msg"] == f"boom {MASK}" and line["exc"].endswith(f"ValueError: {MASK}")


def test_removed_secrets_are_no_longer_held() -> None:
    r = Redactor()
    secret = new_api_key()
    handle = r.add(secret, "trade key secret")
    assert r.redact(secret) == MASK and r.labels() == ["trade key secret"]
    r.remove(handle)
    assert r.redact(secret) == secret and r.labels() == [] and r.empty


def test_one_handle_removed_keeps_another_registration_of_the_same_secret() -> None:
    r = Redactor()
    secret = new_api_key()
    a, b = r.add(secret, "a"), r.add(secret, "b")
    r.remove(a)
    assert r.redact(secret) == MASK
    r.remove(b)
    assert r.redact(secret) == secret


def test_master_key_forms_are_masked_by_fingerprint_without_keeping_the_key() -> None:
    import base64

    r = Redactor()
    raw = bytes(range(100, 132))
    key = MasterKey(bytearray(raw), "test")
    key.register_fingerprints(r)
    key.wipe()
    forms = [base64.b64encode(raw).decode(), base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode(), raw.hex(), raw.hex().upper()]
    for form in forms:
        assert r.redact(f"key={form}; other=0123456789abcdef") == f"key={MASK}; other=0123456789abcdef"
    # the redactor stores digests, never the key
    assert not any(isinstance(v, (bytes, str)) and raw.hex() in str(v) for v in vars(r).values())
    assert r.labels() == ["master key"]


def test_fingerprints_find_a_secret_inside_a_longer_token_run() -> None:
    r = Redactor()
    secret = new_api_key()
    assert r.add_fingerprint(secret.encode(), "trade secret")
    assert r.redact(f"GET /api?x=1&signature=abc{secret}def end") == f"GET /api?x=1&signature=abc{MASK}def end"
    assert not r.add_fingerprint(b"has spaces in it", "phrase")  # only token characters can be fingerprinted
    assert not r.add_fingerprint(b"short", "short")


def test_very_long_token_runs_are_masked_whole_when_fingerprints_exist() -> None:
    r = Redactor()
    r.add_fingerprint(new_api_key().encode(), "x")
    blob = "A" * 5000
    assert r.redact(f"data {blob} end") == f"data {MASK} end"


def test_short_secrets_are_refused_not_silently_ignored(caplog: pytest.LogCaptureFixture) -> None:
    r = Redactor()
    assert r.add("abc", "tiny") is None
    assert "shorter than" in caplog.text and "abc" not in caplog.text.replace("tiny", "")


def test_a_bad_format_string_drops_the_arguments(stream: io.StringIO) -> None:
    secret = new_api_key()
    logging.getLogger("x").info("two %s %s", secret)  # missing argument: logging would print the args
    assert secret not in stream.getvalue()


def test_uncaught_exceptions_are_masked(isolated_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    install_redaction([(TOKEN, "token")])
    try:
        raise KeyError(TOKEN)
    except KeyError:
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    thread = threading.Thread(target=lambda: (_ for _ in ()).throw(RuntimeError(TOKEN)), name="worker")
    thread.start()
    thread.join()
    err = capsys.readouterr().err
    assert TOKEN not in err and err.count(MASK) == 2 and "Exception in thread worker" in err
