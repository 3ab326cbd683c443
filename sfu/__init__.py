"""SFU worker processes (media plane). Not built yet: see issue 4."""
