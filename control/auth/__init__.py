"""Authentication: REST AK/SK signatures, admin tokens, join signatures, secret sealing."""
