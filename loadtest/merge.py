"""Merging the result files of one run made from several hosts (``--shard i/n``
with a common ``--run-id`` and ``--start-at``) into one result.

Per-client timings, per-stream statistics, errors and the one-way latency
histograms merge exactly. Per-second series are aligned on seconds since the
common start: counts and rates are added; the per-second latency percentiles
cannot be merged from percentiles, so the merged series shows the highest of the
hosts' values (an upper bound), and says so in its notes. Server-side series come
from the host that sampled the server (the one running on it)."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.coordinator import build_result, machine

ADDITIVE = {"clients", "publishing", "sent_pps", "sent_mbps", "recv_pps", "recv_mbps", "errors", "agent_cpu",
            "agent_rss_mb"}


def _merge_series(all_series: list[dict]) -> dict:
    base = max(all_series, key=lambda s: len(s.get("t", [])))
    out: dict = {"t": list(base.get("t", []))}
    n = len(out["t"])
    keys = {k for s in all_series for k in s if k != "t"}
    for key in sorted(keys):
        merged: list = [None] * n
        for s in all_series:
            for i, v in enumerate(s.get(key, [])[:n]):
                if v is None:
                    continue
                if merged[i] is None:
                    merged[i] = v
                elif key in ADDITIVE:
                    merged[i] = round(merged[i] + v, 3)
                else:
                    merged[i] = max(merged[i], v)
        out[key] = merged
    return out


def merge(paths: list[Path]) -> dict:
    files = [json.loads(Path(p).read_text()) for p in paths]
    n_runs = min(len(f["runs"]) for f in files)
    runs = []
    for i in range(n_runs):
        parts = [f["runs"][i] for f in files]
        finals = [{
            "clients": r["clients_raw"], "streams": r["streams"], "errors": r["errors"],
            "error_details": r.get("error_examples", {}),
            "latency": r["one_way_hist"], "counters": r.get("counters", {}),
        } for r in parts]
        server_side = next((r["server_side"] for r in parts if r.get("server_side") and
                            (r["server_side"].get("processes") or r["server_side"].get("has_process_metrics"))),
                           parts[0].get("server_side"))
        notes = [f"merged from {len(parts)} result files: per-second latency percentiles are the highest "
                 "of the hosts' values"]
        for r in parts:
            notes += [f"{r['shard']}: {n}" for n in r.get("notes", [])]
        meta = {k: parts[0][k] for k in ("target", "server", "run_id", "started_at", "stamp", "t0", "command")}
        meta["processes"] = sum(r["processes"] for r in parts)
        meta["shard"] = "+".join(r["shard"] for r in parts)
        meta["planned"] = sum(r["clients"]["planned"] for r in parts)
        meta["agents"] = [a for r in parts for a in r["agents"]]
        runs.append(build_result(parts[0]["scenario"], finals, _merge_series([r["series"] for r in parts]),
                                 server_side, notes, meta))
    return {"machine": files[0].get("machine") or machine(), "command": "; ".join(f.get("command", "") for f in files),
            "runs": runs, "merged_from": [str(p) for p in paths]}
