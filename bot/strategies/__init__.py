"""Concrete strategies, each a plug-in registered in the ``bot.strategies`` entry-point group."""
