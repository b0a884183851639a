"""tgbot-trader: a trading bot service controlled by a human operator from Telegram."""

__version__ = "0.1.0"
