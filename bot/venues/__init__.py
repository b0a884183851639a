"""Venue adapters: ccxt REST (read-only and trade clients kept apart) and the websockets market feed."""
