"""The event loop, the strategy interface and registry, modes, clocks, the simulated venue, replay."""
