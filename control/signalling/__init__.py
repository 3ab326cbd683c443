"""Client signalling over WebSocket: protocol parsing and the connection endpoint."""
