"""Risk lives in code between every intent and every order: policies, kill switches, SAFE mode."""
