"""Load tester: synthetic WebRTC publishers and subscribers driven through the
Python SDK (``kindling loadtest``; docs/benchmarks.md), plus micro-benchmarks of
the SFU's per-packet path (``bench_rtp_path``)."""
