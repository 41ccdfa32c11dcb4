"""The pure deployment model: observations, transitions, roll-ups, gate rules. No I/O."""
