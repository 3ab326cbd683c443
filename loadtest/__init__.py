"""Load tester (synthetic WebRTC publishers and subscribers). Not built yet: see issue 7."""
