"""``kindling loadtest`` (also ``python -m loadtest``).

    kindling loadtest --scenario smoke --server http://127.0.0.1:18500 \\
        --ak AK --sk SK --project-id PID            # creates (and deletes) an app via the REST API
    kindling loadtest --scenario conference --app-id ID --app-key KEY --processes 2
    kindling loadtest --scenario conference ... --ab-naive   # then the same against a naive aiortc relay
    kindling loadtest --list
    kindling loadtest --merge host1/result.json host2/result.json --out merged/

Several hosts against one server: give every host the same ``--run-id`` and
``--start-at`` (a UNIX time a little in the future) and its own ``--shard i/n``,
then ``--merge`` their result files (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kindling-loadtest"


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="smoke", help="name in loadtest/scenarios/ or a JSON/YAML file")
    p.add_argument("--list", action="store_true", help="list the bundled scenarios and exit")
    p.add_argument("--server", default=os.environ.get("KINDLING_LT_SERVER", "http://127.0.0.1:8080"),
                   help="Kindling control plane URL")
    cred = p.add_argument_group("credentials (an app id + key, or AK/SK + project to create an app)")
    cred.add_argument("--app-id", default=os.environ.get("KINDLING_LT_APP_ID"))
    cred.add_argument("--app-key", default=os.environ.get("KINDLING_LT_APP_KEY"))
    cred.add_argument("--ak", default=os.environ.get("KINDLING_LT_AK"), help="access key (or KINDLING_LT_AK)")
    cred.add_argument("--sk", default=os.environ.get("KINDLING_LT_SK"), help="secret key (or KINDLING_LT_SK)")
    cred.add_argument("--project-id", default=os.environ.get("KINDLING_LT_PROJECT_ID"))
    cred.add_argument("--keep-app", action="store_true", help="do not delete the app created for the run")
    tgt = p.add_argument_group("target")
    tgt.add_argument("--target", choices=("kindling", "naive"), default="kindling")
    tgt.add_argument("--ab-naive", action="store_true",
                     help="after the Kindling run, run the same scenario against a naive aiortc relay (A/B)")
    tgt.add_argument("--naive-url", default="auto", help="naive relay URL (default: start one on loopback)")
    ov = p.add_argument_group("scenario overrides")
    ov.add_argument("--duration", type=float, help="seconds from the first join to the end")
    ov.add_argument("--rooms", type=int)
    ov.add_argument("--publishers", type=int, help="per room")
    ov.add_argument("--subscribers", type=int, help="per room")
    ov.add_argument("--join-rate", type=float, help="clients started per second")
    ov.add_argument("--top-n", action="store_true", default=None, help="join with the topN option")
    ov.add_argument("--no-audio", action="store_true")
    ov.add_argument("--no-video", action="store_true")
    ov.add_argument("--layers", help="video layers: id:WxH@fps:kbps,... e.g. high:640x360@30:600,low:320x180@15:150")
    ov.add_argument("--audio-kbps", type=int)
    ov.add_argument("--audio-ptime", type=int, choices=(10, 20, 40, 60))
    ov.add_argument("--decoders", type=int, help="subscribers that decode (proof the media is real)")
    ov.add_argument("--subscriber-role", choices=("joiner", "player"))
    run = p.add_argument_group("run")
    run.add_argument("--processes", type=int, default=1, help="agent processes to spread the clients over")
    run.add_argument("--publisher-processes", type=int, default=0,
                     help="of the --processes, how many run only the publishers (default: all mixed)")
    run.add_argument("--shard", default="0/1", help="this host's part i/n of the clients (several hosts)")
    run.add_argument("--run-id", help="prefix of room names; the same on every host of one run")
    run.add_argument("--start-at", type=float, help="UNIX time at which the schedule starts (several hosts)")
    run.add_argument("--out", type=Path, help="output directory (default loadtest-results/SCENARIO-TIME)")
    run.add_argument("--media-cache", type=Path, default=DEFAULT_CACHE, help="pre-encoded media cache")
    run.add_argument("--local-address", default="127.0.0.1", help="address the clients gather ICE candidates on")
    run.add_argument("--server-pid", type=int, help="server process to sample (default: found by port if local)")
    run.add_argument("--no-proc", action="store_true", help="do not sample server processes from /proc")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument("--fail-on-errors", action="store_true",
                     help="exit 1 if any client error, or a subscriber that joined got no media")
    p.add_argument("--merge", nargs="+", type=Path, metavar="RESULT_JSON",
                   help="merge result files of several hosts into one report (with --out)")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``loadtest`` on ``kindling``'s subparsers."""
    p = sub.add_parser("loadtest", help="synthetic WebRTC publishers/subscribers against a server",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(p)
    return p


def _layers(spec: str):
    from loadtest.media import Layer

    out = []
    for part in spec.split(","):
        ident, size, kbps = part.split(":")
        wh, fps = size.split("@")
        w, h = wh.split("x")
        out.append(Layer(ident, int(w), int(h), int(fps), int(kbps)))
    return out


def scenario_from_args(args: argparse.Namespace):
    from loadtest.scenario import load

    sc = load(args.scenario)
    for attr, field in (("duration", "duration_s"), ("rooms", "rooms"), ("publishers", "publishers"),
                        ("subscribers", "subscribers"), ("join_rate", "join_rate"), ("top_n", "top_n"),
                        ("audio_kbps", "audio_kbps"), ("audio_ptime", "audio_ptime_ms"), ("decoders", "decoders"),
                        ("subscriber_role", "subscriber_role")):
        value = getattr(args, attr, None)
        if value is not None:
            setattr(sc, field, value)
    if args.layers:
        sc.video = _layers(args.layers)
    if args.no_audio:
        sc.audio = False
    if args.no_video:
        sc.video = []
    sc.validate()
    return sc


def run(args: argparse.Namespace) -> int:
    from loadtest import report
    from loadtest.coordinator import Run, RunOptions, machine
    from loadtest.scenario import SCENARIO_DIR

    if args.list:
        from loadtest.scenario import load

        for path in sorted(SCENARIO_DIR.glob("*.*")):
            sc = load(str(path))
            print(f"{path.stem:<12} {sc.description}")
        return 0
    if args.merge:
        from loadtest.merge import merge

        out = args.out or Path("loadtest-results") / "merged"
        result = merge(args.merge)
        j, h = report.write(result, out)
        print(f"merged {len(args.merge)} result(s): {j}\n{h}")
        return 0
    sc = scenario_from_args(args)
    i, n = (int(x) for x in args.shard.split("/"))
    if not 0 <= i < n:
        print("kindling loadtest: --shard must be i/n with 0 ≤ i < n", file=sys.stderr)
        return 2
    if n > 1 and not args.run_id:
        print("kindling loadtest: several shards need a common --run-id", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or Path("loadtest-results") / f"{sc.name}-{stamp}"
    argv = _redacted(sys.argv[1:])
    prog = "kindling" if argv[:1] == ["loadtest"] or "--log-level" in argv else "python -m loadtest"
    command = prog + " " + " ".join(shlex.quote(a) for a in argv)
    targets = [args.target] + (["naive"] if args.ab_naive and args.target != "naive" else [])
    runs = []
    for target in targets:
        opts = RunOptions(
            scenario=sc, target=target, server=args.naive_url if target == "naive" else args.server,
            app_id=args.app_id, app_key=args.app_key, ak=args.ak, sk=args.sk, project_id=args.project_id,
            keep_app=args.keep_app, processes=args.processes, publisher_processes=args.publisher_processes,
            shard_index=i, shard_count=n, run_id=args.run_id,
            out_dir=out, media_cache=args.media_cache, local_address=args.local_address,
            server_pid=args.server_pid if target == "kindling" else None, proc_sampling=not args.no_proc,
            quiet=args.quiet, command=command, start_at=args.start_at if target == targets[0] else None,
        )
        started = time.time()
        result = asyncio.run(Run(opts).execute())
        result["wall_s"] = round(time.time() - started, 1)
        runs.append(result)
    full = {"machine": machine(), "command": command, "runs": runs}
    j, h = report.write(full, out)
    failed = _summary(runs)
    print(f"results: {j}\nreport:  {h}")
    if any(a["exit_code"] not in (0, None) or a.get("errors") for r in runs for a in r["agents"]):
        return 1
    if args.fail_on_errors and failed:
        return 1
    return 0


def _redacted(argv: list[str]) -> list[str]:
    out, hide = [], False
    for a in argv:
        if hide:
            out.append("***")
            hide = False
            continue
        if a in ("--sk", "--app-key"):
            hide = True
        elif a.startswith(("--sk=", "--app-key=")):
            a = a.split("=", 1)[0] + "=***"
        out.append(a)
    return out


def _summary(runs: list[dict]) -> bool:
    """Print a short summary; True if there were client errors or starving subscribers."""
    bad = False
    for r in runs:
        lat, m, c = r["latency"], r["media"], r["clients"]
        starving = [s["user"] for s in r["subscribers"] if s["joined"] and not s["streams_with_media"]]
        errs = sum(r["errors"].values())
        bad = bad or bool(errs or starving or c["join_failed"])

        def p(d: dict) -> str:
            return f"{d.get('p50', '-')}/{d.get('p90', '-')}/{d.get('p99', '-')}" if d.get("count") else "-"

        print(f"== {r['target']} {r['scenario']['name']}: clients {c['joined']}/{c['planned']} joined, "
              f"{c['join_failed']} failed; errors {errs} {r['errors'] if errs else ''}")
        print(f"   latency ms p50/p90/p99: join {p(lat['join_request'])}, join→media {p(lat['join_to_first_media'])},"
              f" publish→first packet {p(lat['publish_to_first_packet'])}, 1-way audio {p(lat['one_way_audio'])},"
              f" video {p(lat['one_way_video'])}")
        print(f"   media: sent {m['sent_packets']:,} pkts, received {m['received_packets']:,} pkts "
              f"({m['avg_recv_mbps']} Mbit/s), loss {m['loss_pct']}%, freezes {m['video_freezes']}, "
              f"decoded {m['decoded_frames']} frames, subscribers without media {len(starving)}")
        for b in r.get("bottleneck", []):
            print(f"   bottleneck? {b}")
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(p)
    return run(p.parse_args(argv))
