"""Kindling's control plane: REST management API, signalling, rooms, worker registry."""
