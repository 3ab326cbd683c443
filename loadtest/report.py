"""The HTML report of a run: one self-contained file (inline SVG charts, no
scripts, no external resources) that a person can open in any browser."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22"]


def _nice_step(span: float, ticks: int = 5) -> float:
    if span <= 0:
        return 1.0
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def line_chart(title: str, x: list[float], series: list[tuple[str, list]], y_label: str, *, width: int = 920,
               height: int = 260, log_hint: str = "") -> str:
    """An SVG line chart; ``None`` values leave gaps."""
    left, right, top, bottom = 64, 190, 28, 40
    pw, ph = width - left - right, height - top - bottom
    esc = html.escape
    values = [v for _, vs in series for v in vs if v is not None]
    if not x or not values:
        return (f'<svg class="chart" width="{width}" height="60" xmlns="http://www.w3.org/2000/svg">'
                f'<text x="{left}" y="20" class="t">{esc(title)}</text>'
                f'<text x="{left}" y="44" class="n">no data</text></svg>')
    x0, x1 = min(x), max(x)
    if x1 <= x0:
        x1 = x0 + 1
    ymax = max(values)
    step = _nice_step(ymax if ymax > 0 else 1)
    ytop = step * math.ceil((ymax if ymax > 0 else 1) / step)

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def py(v: float) -> float:
        return top + ph - (v / ytop) * ph

    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{esc(title)}">',
           f'<text x="{left}" y="18" class="t">{esc(title)}</text>']
    k = 0
    while k * step <= ytop + 1e-9:
        yv = k * step
        y = py(yv)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" class="g"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="yl">{_fmt(round(yv, 6))}</text>')
        k += 1
    xstep = _nice_step(x1 - x0, 8)
    xv = math.ceil(x0 / xstep) * xstep
    while xv <= x1 + 1e-9:
        xx = px(xv)
        out.append(f'<line x1="{xx:.1f}" y1="{top}" x2="{xx:.1f}" y2="{top + ph}" class="g"/>')
        out.append(f'<text x="{xx:.1f}" y="{top + ph + 16}" class="xl">{_fmt(round(xv, 6))}</text>')
        xv += xstep
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" class="xl">seconds since start</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" class="yl" transform="rotate(-90 14 {top + ph / 2})" '
               f'style="text-anchor:middle">{esc(y_label)}</text>')
    for i, (name, vs) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        seg: list[str] = []
        segments = []
        for xv_, v in zip(x, vs, strict=False):
            if v is None:
                if seg:
                    segments.append(seg)
                seg = []
                continue
            seg.append(f"{px(xv_):.1f},{py(v):.1f}")
        if seg:
            segments.append(seg)
        for s in segments:
            if len(s) == 1:
                cx, cy = s[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
            else:
                out.append(f'<polyline points="{" ".join(s)}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        ly = top + 6 + i * 18
        out.append(f'<rect x="{left + pw + 12}" y="{ly}" width="12" height="12" fill="{color}"/>')
        last = next((v for v in reversed(vs) if v is not None), None)
        out.append(f'<text x="{left + pw + 30}" y="{ly + 10}" class="lg">{esc(name)}</text>')
        if last is None:
            continue
    if log_hint:
        out.append(f'<text x="{left + pw}" y="18" class="n" style="text-anchor:end">{esc(log_hint)}</text>')
    out.append("</svg>")
    return "".join(out)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;
 padding:0 16px;line-height:1.4}
h1{font-size:1.6em;margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{margin-top:22px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f6f8}td.l,th.l{text-align:left}
code,pre{background:#f4f6f8;border-radius:3px;padding:1px 4px;font-size:13px}
pre{padding:8px;overflow-x:auto;white-space:pre-wrap}
.warn{background:#fff4e5;border-left:4px solid #ff9800;padding:6px 10px;margin:8px 0}
.ok{color:#1b7f2a}.bad{color:#b00020;font-weight:600}.muted{color:#777}
svg.chart{display:block;margin:10px 0 18px;background:#fff}
svg .t{font-size:14px;font-weight:600;fill:#222}svg .n{font-size:12px;fill:#888}
svg .g{stroke:#e5e5e5;stroke-width:1}svg .frame{fill:none;stroke:#999;stroke-width:1}
svg .yl{font-size:11px;fill:#555;text-anchor:end}svg .xl{font-size:11px;fill:#555;text-anchor:middle}
svg .lg{font-size:12px;fill:#333}
"""


def _cell(v) -> str:
    if v is None:
        return '<td class="muted">–</td>'
    if isinstance(v, float):
        return f"<td>{v:,.2f}</td>" if abs(v) < 1e6 else f"<td>{v:,.0f}</td>"
    if isinstance(v, int):
        return f"<td>{v:,}</td>"
    return f'<td class="l">{html.escape(str(v))}</td>'


def _table(headers: list[str] | None, rows: list[list]) -> str:
    head = "" if headers is None else "<tr>" + "".join(
        f'<th class="{"l" if i == 0 else ""}">{html.escape(h)}</th>' for i, h in enumerate(headers)) + "</tr>"
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _pct_row(name: str, p: dict) -> list:
    return [name, p.get("count", 0), p.get("p50"), p.get("p90"), p.get("p99"), p.get("max")]


def _server_summary(r: dict) -> list[list]:
    ss = r.get("server_side") or {}
    rows = []
    for name, p in sorted((ss.get("processes") or {}).items()):
        cpu = [v for v in p["cpu"] if v is not None]
        rss = [v for v in p["rss_mb"] if v is not None]
        rows.append([name, round(sum(cpu) / len(cpu), 1) if cpu else None, max(cpu) if cpu else None,
                     rss[0] if rss else None, max(rss) if rss else None])
    return rows


def _run_section(r: dict, idx: int) -> str:
    s = r["series"]
    t = s.get("t", [])
    parts = [f'<h2 id="run{idx}">Run {idx + 1}: {html.escape(r["target"])} — {html.escape(r["server"])}</h2>']
    c, m, lat = r["clients"], r["media"], r["latency"]
    parts.append(_table(["clients", "planned", "joined", "join failed", "left", "publishers", "subscribers"],
                        [["", c["planned"], c["joined"], c["join_failed"], c["left"], c["publishers"],
                          c["subscribers"]]]))
    if r.get("bottleneck"):
        parts.append("".join(f'<div class="warn">{html.escape(b)}</div>' for b in r["bottleneck"]))
    for n in r.get("notes", []):
        parts.append(f'<div class="warn">{html.escape(n)}</div>')
    parts.append("<h3>Latency (ms)</h3>")
    parts.append(_table(["measure", "samples", "p50", "p90", "p99", "max"], [
        _pct_row("join: request → ok", lat["join_request"]),
        _pct_row("join: connect + request", lat["join_connect_and_request"]),
        _pct_row("join → first media packet", lat["join_to_first_media"]),
        _pct_row("publish → first packet at subscribers", lat["publish_to_first_packet"]),
        _pct_row("publish: request → ok", lat["publish_request"]),
        _pct_row("subscribe (incl. first negotiation)", lat["subscribe_total"]),
        _pct_row("one-way audio through the server", lat["one_way_audio"]),
        _pct_row("one-way video (last packet of a frame)", lat["one_way_video"]),
    ]))
    parts.append("<h3>Media</h3>")
    parts.append(_table(["", "value"], [
        ["packets sent (publishers)", m["sent_packets"]],
        ["packets received (subscribers)", m["received_packets"]],
        ["average Mbit/s sent / received", f"{m['avg_sent_mbps']:.2f} / {m['avg_recv_mbps']:.2f}"],
        ["packets lost (of expected)", f"{m['lost_packets']:,} of {m['expected_packets']:,} ({m['loss_pct']}%)"],
        ["streams received (with media / bound)", f"{m['streams_with_media']} / {m['streams']}"],
        ["video freezes (total ms)", f"{m['video_freezes']} ({m['video_freeze_ms']:,.0f} ms)"],
        ["video fps per stream p50 / min", f"{m['video_fps'].get('p50', '–')} / {m['video_fps'].get('min', '–')}"],
        ["jitter ms per stream p50 / p99", f"{m['jitter_ms'].get('p50', '–')} / {m['jitter_ms'].get('p99', '–')}"],
        ["decoded frames (streams)", f"{m['decoded_frames']:,} ({m['decoded_streams']})"],
        ["decode errors", m["decode_errors"]],
        ["client connections closed by ICE consent expiry", m.get("ice_consent_expired", 0)],
        ["keyframe requests honoured by publishers", m["keyframe_requests"]],
        ["frames generated / not sent by the publishers' senders",
         f"{m.get('frames_generated', 0):,} / {m.get('frames_not_sent', 0):,}"],
        ["load generator CPU avg / max (% of one core)",
         f"{r['load_generator']['cpu_pct_avg']} / {r['load_generator']['cpu_pct_max']}"],
    ]))
    srv = _server_summary(r)
    if srv:
        parts.append("<h3>Server processes (from /proc on this host)</h3>")
        parts.append(_table(["process", "CPU % avg", "CPU % max", "RSS MB start", "RSS MB max"], srv))
    parts.append("<h3>Over time</h3>")
    parts.append(line_chart("One-way latency through the server (per second)", t, [
        ("audio p50", s.get("lat_audio_p50", [])), ("audio p99", s.get("lat_audio_p99", [])),
        ("video p50", s.get("lat_video_p50", [])), ("video p99", s.get("lat_video_p99", [])),
    ], "ms"))
    parts.append(line_chart("Throughput", t, [
        ("sent Mbit/s", s.get("sent_mbps", [])), ("received Mbit/s", s.get("recv_mbps", [])),
    ], "Mbit/s"))
    parts.append(line_chart("Packet rate", t, [
        ("sent pkt/s", s.get("sent_pps", [])), ("received pkt/s", s.get("recv_pps", [])),
    ], "packets/s"))
    parts.append(line_chart("Clients", t, [
        ("in the room", s.get("clients", [])), ("publishing", s.get("publishing", [])),
        ("errors (cumulative)", s.get("errors", [])),
    ], "clients"))
    parts.append(line_chart("Loss per second, and frames the publishers could not send", t, [
        ("lost % (subscribers)", s.get("loss_pct", [])),
        ("frames not sent % (publishers)", s.get("frames_not_sent_pct", [])),
    ], "%"))
    ss = r.get("server_side") or {}
    procs = ss.get("processes") or {}
    st = ss.get("t", [])
    cpu_series = [(n, p["cpu"]) for n, p in sorted(procs.items())]
    cpu_series.append(("load generator", s.get("agent_cpu", [])))
    parts.append(line_chart("CPU (100% = one core)", st or t, cpu_series, "% CPU"))
    parts.append(line_chart("Memory (RSS)", st or t, [(n, p["rss_mb"]) for n, p in sorted(procs.items())]
                            + [("load generator", s.get("agent_rss_mb", []))], "MB"))
    met = ss.get("metrics") or {}
    if any(v is not None for v in met.get("participants", [])):
        parts.append(line_chart("Server's own metrics (/metrics)", st, [
            ("participants", met.get("participants", [])), ("signalling sockets", met.get("ws_connections", [])),
            ("rooms", met.get("rooms", [])),
        ], "count"))
    scraped = [(k, v) for k, v in sorted(met.items()) if k == "cpu" or k.endswith(" cpu")]
    if any(x is not None for _, vs in scraped for x in vs):
        parts.append(line_chart("CPU as the server reports it (/metrics; 100% = one core)", st,
                                [("control plane" if k == "cpu" else k, vs) for k, vs in scraped], "% CPU"))
        mem = [(k, v) for k, v in sorted(met.items()) if k == "rss_mb" or k.endswith(" rss_mb")]
        parts.append(line_chart("Memory as the server reports it (/metrics)", st,
                                [("control plane" if k == "rss_mb" else k[:-7], vs) for k, vs in mem], "MB"))
    if ss and ss.get("has_process_metrics") is False:
        parts.append('<div class="warn">The server\'s /metrics has no process_cpu_seconds_total / '
                     "process_resident_memory_bytes: CPU and memory above come from /proc on this host.</div>")
    if ss.get("signalling_outcomes"):
        rows = [[k, int(v)] for k, v in sorted(ss["signalling_outcomes"].items())]
        parts.append("<h3>Signalling requests counted by the server (type:code, 0 = ok)</h3>")
        parts.append(_table(["type:code", "count"], rows))
    parts.append("<h3>Errors seen by clients (operation:code)</h3>")
    errs = r.get("errors") or {}
    examples = r.get("error_examples") or {}
    parts.append(_table(["operation:code", "count", "examples"],
                        [[k, v, " | ".join(examples.get(k, [])[:3])] for k, v in errs.items()]) if errs
                 else '<p class="ok">none</p>')
    subs = r.get("subscribers", [])
    starving = [x for x in subs if x["joined"] and not x["streams_with_media"]]
    parts.append(f"<h3>Subscribers ({len(subs)}; {len(starving)} joined without receiving media)</h3>")
    shown = starving[:30] + [x for x in subs if x not in starving][: max(0, 30 - len(starving[:30]))]
    parts.append(_table(["user", "room", "subscribed ok", "streams with media", "audio pkts", "video pkts",
                         "decoded frames", "errors"],
                        [[x["user"], x["room"], f"{x['subscribed_ok']}/{x['subscriptions']}",
                          f"{x['streams_with_media']}/{x['streams']}", x["audio_packets"], x["video_packets"],
                          x["decoded_frames"], ", ".join(x["errors"])] for x in shown]))
    streams = sorted(r.get("streams", []), key=lambda x: (-x["loss_pct"], -x["freezes"]))[:15]
    if streams:
        parts.append("<h3>Worst streams (by loss, then freezes)</h3>")
        parts.append(_table(["subscriber ← publisher", "kind/layer", "packets", "lost %", "kbit/s", "jitter ms",
                             "fps", "freezes"],
                            [[f"{x['subscriber']} ← {x['publisher']}", f"{x['kind']}/{x['layer'] or '-'}",
                              x["packets"], x["loss_pct"], x["kbps"], x["jitter_ms"], x["fps"], x["freezes"]]
                             for x in streams]))
    return "".join(parts)


def _comparison(runs: list[dict]) -> str:
    def lat(r, key, p):
        v = r["latency"][key].get(p)
        return "–" if v is None else v

    def srv(r, agg):
        rows = _server_summary(r)
        vals = [row[1 if agg == "avg" else 2] or 0 for row in rows if row[0] != "postgres"]
        return round(sum(vals), 1) if rows else None

    heads = ["measure"] + [f"{r['target']}" for r in runs]
    rows = [
        ["subscribers with media / joined"] + [
            f"{sum(1 for x in r['subscribers'] if x['streams_with_media'])}/{r['clients']['subscribers']}"
            for r in runs],
        ["received Mbit/s (average)"] + [r["media"]["avg_recv_mbps"] for r in runs],
        ["received packets"] + [r["media"]["received_packets"] for r in runs],
        ["loss %"] + [r["media"]["loss_pct"] for r in runs],
        ["video fps per stream p50"] + [r["media"]["video_fps"].get("p50") for r in runs],
        ["video freezes"] + [r["media"]["video_freezes"] for r in runs],
        ["frames the publishers could not send"] + [r["media"].get("frames_not_sent") for r in runs],
        ["join → first media p50 ms"] + [lat(r, "join_to_first_media", "p50") for r in runs],
        ["publish → first packet p50 ms"] + [lat(r, "publish_to_first_packet", "p50") for r in runs],
        ["one-way audio p50 / p99 ms"] + [f"{lat(r, 'one_way_audio', 'p50')} / {lat(r, 'one_way_audio', 'p99')}"
                                           for r in runs],
        ["one-way video p50 / p99 ms"] + [f"{lat(r, 'one_way_video', 'p50')} / {lat(r, 'one_way_video', 'p99')}"
                                           for r in runs],
        ["server CPU % avg (all media/control processes, excl. PostgreSQL)"] + [srv(r, "avg") for r in runs],
        ["server CPU % max"] + [srv(r, "max") for r in runs],
        ["load generator CPU % avg"] + [r["load_generator"]["cpu_pct_avg"] for r in runs],
        ["client connections closed by ICE consent expiry"] + [r["media"].get("ice_consent_expired") for r in runs],
        ["errors"] + [sum(r["errors"].values()) for r in runs],
    ]
    return ("<h2>A/B comparison</h2><p>Same scenario, same clients, one after the other in this invocation. "
            "The naive relay decodes and re-encodes, so the payload timestamps do not survive it "
            "(one-way latency: no samples).</p>" + _table(heads, rows))


def render(result: dict) -> str:
    runs = result["runs"]
    first = runs[0]
    sc = first["scenario"]
    mach = result["machine"]
    head = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Kindling load test — {html.escape(sc['name'])}</title><style>{CSS}</style></head><body>",
        f"<h1>Kindling load test — {html.escape(sc['name'])}</h1>",
        f"<p class='muted'>{html.escape(sc.get('description', ''))}</p>",
        _table(None, [
            ["started", first["started_at"]],
            ["command", result.get("command", "")],
            ["machine", f"{mach['cpu']} × {mach['cpus']} CPUs, {mach['memory_gib']} GiB, {mach['platform']}, "
                        f"Python {mach['python']}"],
            ["load average at start", ", ".join(f"{x:.2f}" for x in (mach.get("loadavg_at_start") or []))],
            ["duration", f"{sc['duration_s']} s"],
            ["clients", f"{sc['rooms']} room(s) × ({sc['publishers']} publishers + {sc['subscribers']} subscribers)"
                        + (f", churn {sc['churn']}" if sc.get("churn") else "")],
            ["media", (f"audio {sc['audio_kbps']} kbit/s / {sc['audio_ptime_ms']} ms; " if sc["audio"] else "")
                      + "video " + ", ".join(f"{v['id']} {v['width']}x{v['height']}@{v['fps']} {v['kbps']} kbit/s"
                                             for v in sc["video"])],
            ["processes", f"{first['processes']} agent process(es), shard {first['shard']}"],
        ]),
    ]
    body = []
    if len(runs) > 1:
        body.append(_comparison(runs))
    for i, r in enumerate(runs):
        body.append(_run_section(r, i))
    body.append("<h2>Scenario</h2><pre>" + html.escape(json.dumps(sc, indent=1)) + "</pre>")
    body.append("<p class='muted'>Latencies from join/publish timestamps are wall-clock differences between "
                "processes (exact on one host). One-way latency: a send timestamp carried in every audio packet "
                "(Opus padding) and every video frame (after the VP8 data), read at arrival by the subscriber "
                "before its jitter buffer; includes both clients' queues. Freezes: W3C webrtc-stats definition "
                "on frame arrival times.</p>")
    return "".join(head + body) + "</body></html>"


def write(result: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath = out_dir / "result.json"
    hpath = out_dir / "report.html"
    jpath.write_text(json.dumps(result, indent=1, default=str))
    hpath.write_text(render(result))
    return jpath, hpath
