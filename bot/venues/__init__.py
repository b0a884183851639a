"""Venue adapters: the ccxt REST adapter (read and trade clients kept apart) and websockets feeds."""
