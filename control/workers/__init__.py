"""SFU worker registry, placement and the control side of the worker RPC."""
