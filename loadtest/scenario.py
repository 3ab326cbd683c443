"""Scenarios (files in loadtest/scenarios/, JSON or YAML) and the plan they expand
to: one ``ClientSpec`` per simulated client, with its room, role, start and leave
times and what it subscribes to. The plan is made once by the coordinator and
split over the agent processes (and hosts, with ``--shard``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from loadtest.media import AudioSpec, Layer

SCENARIO_DIR = Path(__file__).parent / "scenarios"


@dataclass
class Scenario:
    name: str
    description: str = ""
    duration_s: float = 20.0  # from the first join to the end of the measurement
    rooms: int = 1
    publishers: int = 2  # per room
    subscribers: int = 2  # per room
    join_rate: float = 10.0  # clients started per second (whole run, all processes)
    subscribers_first: float = 0.5  # share of subscribers joining before the publishers
    audio: bool = True
    audio_kbps: int = 32
    audio_ptime_ms: int = 20
    video: list[Layer] = field(default_factory=lambda: [Layer("high", 640, 360, 30, 600),
                                                        Layer("low", 320, 180, 15, 150)])
    subscribe_video: int = 4  # publishers whose video each subscriber takes (≤ the server's video slots)
    subscribe_audio: int = 4  # publishers whose audio each subscriber takes (≤ audio slots)
    main_layer: str | None = None  # layer of the first video a subscriber takes (default: highest)
    other_layer: str | None = None  # layer of its other videos (default: lowest)
    subscriber_role: str = "joiner"  # or "player"
    top_n: bool = False  # join option topN; subscribers then take no audio themselves
    decoders: int = 1  # subscribers that decode what they receive (proof the media is real)
    churn: dict | None = None  # {"session_s": 10, "publisher_share": 0.2}: clients come and go
    request_timeout_s: float = 15.0

    @classmethod
    def from_dict(cls, d: dict) -> Scenario:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown scenario field(s): {', '.join(sorted(unknown))}")
        d = dict(d)
        if "video" in d:
            d["video"] = [Layer.from_dict(v) for v in d["video"] or []]
        sc = cls(**d)
        sc.validate()
        return sc

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if self.duration_s <= 0 or self.join_rate <= 0:
            raise ValueError("duration_s and join_rate must be positive")
        if self.rooms < 1 or self.publishers < 0 or self.subscribers < 0:
            raise ValueError("rooms ≥ 1, publishers ≥ 0, subscribers ≥ 0")
        if self.audio_ptime_ms not in (10, 20, 40, 60):
            raise ValueError("audio_ptime_ms must be 10, 20, 40 or 60")
        if self.subscriber_role not in ("joiner", "player"):
            raise ValueError("subscriber_role must be joiner or player")
        ids = [v.id for v in self.video]
        if len(set(ids)) != len(ids) or len(ids) > 4:
            raise ValueError("video layers need distinct ids, at most 4")
        for name in ("main_layer", "other_layer"):
            value = getattr(self, name)
            if value is not None and value not in ids:
                raise ValueError(f"{name} {value!r} is not a layer")
        if not self.audio and not self.video:
            raise ValueError("publishers need audio or video")
        if self.churn is not None:
            if float(self.churn.get("session_s", 0)) <= 0:
                raise ValueError("churn.session_s must be positive")
            if not 0 <= float(self.churn.get("publisher_share", 0.2)) <= 1:
                raise ValueError("churn.publisher_share must be within 0..1")

    @property
    def audio_spec(self) -> AudioSpec:
        return AudioSpec(self.audio_kbps, self.audio_ptime_ms)

    def layer_by_size(self) -> list[Layer]:
        return sorted(self.video, key=lambda v: v.width * v.height)

    def main(self) -> str | None:
        return self.main_layer or (self.layer_by_size()[-1].id if self.video else None)

    def other(self) -> str | None:
        return self.other_layer or (self.layer_by_size()[0].id if self.video else None)


def load(name_or_path: str) -> Scenario:
    """A scenario by name (loadtest/scenarios/NAME.json|yaml) or by path."""
    path = Path(name_or_path)
    if not path.exists():
        for ext in (".json", ".yaml", ".yml"):
            candidate = SCENARIO_DIR / f"{name_or_path}{ext}"
            if candidate.exists():
                path = candidate
                break
        else:
            names = sorted(p.stem for p in SCENARIO_DIR.glob("*.*"))
            raise FileNotFoundError(f"no scenario {name_or_path!r} (known: {', '.join(names)})")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml  # PyYAML: only needed for YAML scenario files

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return Scenario.from_dict(data)


@dataclass
class Target:
    """What a subscriber takes from one publisher."""

    user: str
    audio: bool
    layer: str | None  # video resolution id, or None for no video


@dataclass
class ClientSpec:
    index: int
    user: str
    room: str
    start_s: float  # after the run's t0
    leave_s: float | None  # None: stay to the end
    publish: bool
    subscribe: bool
    role: int = 0  # 0 joiner, 2 player
    decode: bool = False
    targets: list[Target] = field(default_factory=list)  # fixed plan
    any_video: int = 0  # churn: take the first streams that appear, up to these counts
    any_audio: int = 0
    any_layer: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClientSpec:
        d = dict(d)
        d["targets"] = [Target(**t) for t in d.get("targets", [])]
        return cls(**d)


def plan(sc: Scenario, run_id: str) -> list[ClientSpec]:
    """Every client of the run, in start order. User ids are unique per run so that
    several runs (or hosts) never replace each other's sessions."""
    if sc.churn is not None:
        return _plan_churn(sc, run_id)
    rooms = [f"{run_id}-r{r}" for r in range(sc.rooms)]
    pubs = {room: [f"p{i}" for i in range(sc.publishers)] for room in rooms}
    first_n = int(round(sc.subscribers * sc.subscribers_first))

    def subs(lo: int, hi: int) -> list[tuple[str, int]]:
        return [(room, j) for j in range(lo, hi) for room in rooms]

    order: list[tuple[str, str, int]] = [("sub", room, j) for room, j in subs(0, first_n)]
    order += [("pub", room, i) for i in range(sc.publishers) for room in rooms]
    order += [("sub", room, j) for room, j in subs(first_n, sc.subscribers)]
    specs: list[ClientSpec] = []
    decoders = sc.decoders
    player = 2 if sc.subscriber_role == "player" else 0
    for k, (kind, room, n) in enumerate(order):
        start = k / sc.join_rate
        if kind == "pub":
            specs.append(ClientSpec(k, pubs[room][n], room, start, None, publish=True, subscribe=False))
            continue
        targets = _targets(sc, pubs[room], n)
        decode = decoders > 0 and bool(targets)
        decoders -= int(decode)
        specs.append(ClientSpec(k, f"s{n}", room, start, None, publish=False, subscribe=True, role=player,
                                decode=decode, targets=targets))
    return specs


def _targets(sc: Scenario, publishers: list[str], j: int) -> list[Target]:
    """Subscriber j starts at publisher j mod P, so together the subscribers watch everyone."""
    p = len(publishers)
    if not p:
        return []
    rotated = [publishers[(j + i) % p] for i in range(p)]
    n_video = min(sc.subscribe_video, p) if sc.video else 0
    n_audio = 0 if (sc.top_n or not sc.audio) else min(sc.subscribe_audio, p)
    out = []
    for i, user in enumerate(rotated[: max(n_video, n_audio)]):
        layer = (sc.main() if i == 0 else sc.other()) if i < n_video else None
        out.append(Target(user, i < n_audio, layer))
    return out


def _plan_churn(sc: Scenario, run_id: str) -> list[ClientSpec]:
    """Clients start at ``join_rate`` per second until the end minus one session, each
    leaves ``session_s`` after joining: joins and leaves both run at ``join_rate``
    once the first sessions end. Rooms are taken in turn; in each room every n-th
    arrival publishes (n = 1 / publisher_share)."""
    assert sc.churn is not None
    session = float(sc.churn["session_s"])
    share = float(sc.churn.get("publisher_share", 0.2))
    last_start = max(0.0, sc.duration_s - session - 1.0)
    total = int(last_start * sc.join_rate) + 1
    rooms = [f"{run_id}-r{r}" for r in range(sc.rooms)]
    every = round(1 / share) if share > 0 else 0
    player = 2 if sc.subscriber_role == "player" else 0
    specs = []
    decoders = sc.decoders
    for k in range(total):
        start = k / sc.join_rate
        room = rooms[k % len(rooms)]
        publishes = bool(every) and (k // len(rooms)) % every == 0  # every n-th arrival in each room
        if publishes:
            specs.append(ClientSpec(k, f"c{k}", room, start, start + session, publish=True, subscribe=False))
        else:
            decode = decoders > 0
            decoders -= int(decode)
            specs.append(ClientSpec(
                k, f"c{k}", room, start, start + session, publish=False, subscribe=True, role=player, decode=decode,
                any_video=sc.subscribe_video if sc.video else 0,
                any_audio=0 if (sc.top_n or not sc.audio) else sc.subscribe_audio, any_layer=sc.other(),
            ))
    return specs


def shard(specs: list[ClientSpec], index: int, count: int) -> list[ClientSpec]:
    """This host's part of the plan (``--shard i/n``): every n-th client."""
    return [s for s in specs if s.index % count == index]
