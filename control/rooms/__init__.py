"""The room state machine (room-rules.md): who may be in which room, as what, and
what everyone else is told."""
