"""Simulation: bus-functional models, the driver model, the device model, the scenario."""
