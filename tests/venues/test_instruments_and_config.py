"""Markets -> Instrument, numbers at the edge, endpoints and the ccxt configuration."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.config import VenueSettings
from bot.domain.instrument import FeeModel, PositionSemantics
from bot.venues.binance_dialect import PUBLIC_REST, TESTNET_REST, TESTNET_WS, ccxt_config, endpoints
from bot.venues.instruments import DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE, edge_decimal, instrument_from_market, market_maxima
from tests.venues.helpers import READ

D = Decimal

MARKET = {
    "id": "BTCUSDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "spot": True, "contract": False,
    "maker": 0.001, "taker": 0.001, "contractSize": None,
    "precision": {"amount": "0.00001000", "price": "0.01000000"},
    "limits": {"amount": {"min": "0.00001000", "max": "9000.00000000"}, "price": {"min": "0.01", "max": "1000000"},
               "cost": {"min": "5.00000000", "max": "9000000"}},
}


def test_market_to_instrument_tick_size_mode() -> None:
    inst = instrument_from_market(MARKET, venue="binance", precision_mode=TICK_SIZE)
    assert (inst.tick_size, inst.lot_size, inst.min_qty, inst.min_notional) == (D("0.01"), D("0.00001"), D("0.00001"), D("5"))
    assert inst.fees == FeeModel(D("0.001"), D("0.001")) and inst.semantics is PositionSemantics.SPOT
    assert market_maxima(MARKET) == (D("9000"), D("1000000"), D("9000000"))


def test_market_to_instrument_decimal_places_and_contracts() -> None:
    market = {**MARKET, "precision": {"amount": 3, "price": 1}, "contract": True, "spot": False, "contractSize": "0.001",
              "maker": -0.0001, "taker": 0.0004}
    inst = instrument_from_market(market, venue="x", precision_mode=DECIMAL_PLACES, fees=None)
    assert (inst.tick_size, inst.lot_size, inst.contract_size) == (D("0.1"), D("0.001"), D("0.001"))
    assert inst.semantics is PositionSemantics.CONTRACTS and inst.fees.maker == D("-0.0001") and inst.fees.taker == D("0.0004")
    with pytest.raises(ValueError, match="significant digits"):
        instrument_from_market(MARKET, venue="x", precision_mode=SIGNIFICANT_DIGITS)
    with pytest.raises(ValueError, match="no precision"):
        instrument_from_market({**MARKET, "precision": {}}, venue="x", precision_mode=TICK_SIZE)


def test_edge_decimal() -> None:
    assert edge_decimal("0.10000000", field="f") == D("0.1") and isinstance(edge_decimal(3, field="f"), Decimal)
    assert str(edge_decimal(0.1, field="f")) == "0.1"  # ccxt's static floats through repr, not binary
    for bad in ("nan", "inf", "abc", ""):
        with pytest.raises(ValueError):
            edge_decimal(bad, field="f")
    with pytest.raises(ValueError, match="boolean"):
        edge_decimal(True, field="f")
    with pytest.raises(TypeError):
        edge_decimal(object(), field="f")


def test_endpoints_and_sandbox() -> None:
    assert endpoints(VenueSettings()) == (PUBLIC_REST, "wss://stream.binance.com:9443")
    assert endpoints(VenueSettings(sandbox=True)) == (TESTNET_REST, TESTNET_WS)
    explicit = VenueSettings(sandbox=True, rest_url="http://127.0.0.1:9/", ws_url="ws://127.0.0.1:9")
    assert endpoints(explicit) == ("http://127.0.0.1:9", "ws://127.0.0.1:9")


def test_ccxt_config() -> None:
    public = ccxt_config(VenueSettings(recv_window_ms=4000, ccxt_options={"fetchMarkets": {"types": ["spot"]}, "x": 1}), READ)
    assert "urls" not in public  # ccxt's own public URLs
    assert public["apiKey"] == READ.api_key.get_secret_value() and public["enableRateLimit"] is True
    opts = public["options"]
    assert (opts["recvWindow"], opts["fetchCurrencies"], opts["adjustForTimeDifference"], opts["x"]) == (4000, False, False, 1)
    local = ccxt_config(VenueSettings(rest_url="http://127.0.0.1:9"), None)
    api = local["urls"]["api"]
    assert api["public"] == "http://127.0.0.1:9/api/v3" and api["sapi"] == "http://127.0.0.1:9/sapi/v1"
    assert api["fapiPublic"].startswith("http://127.0.0.1:9/fapi/") and "apiKey" not in local
    assert local["urls"]["test"] == api
    testnet = ccxt_config(VenueSettings(sandbox=True), None)
    assert testnet["urls"]["api"]["public"] == TESTNET_REST + "/api/v3"
