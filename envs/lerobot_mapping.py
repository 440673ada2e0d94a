"""Which features of a LeRobot dataset are what: the declared mapping onto the project's streams.

    mapping = load_mapping("auto" | "so100" | "configs/ingest/lerobot_aloha.yaml")
    plan = resolve(mapping, info)   # info = meta/info.json; MappingError (one line) when it cannot apply

A mapping (`LeRobotMapping`, YAML in configs/ingest/lerobot_<name>.yaml) names, by feature key:

    proprio     the state vector (D,) -> stream joint_states (D - G,), its gripper dims -> gripper_state (G,)
    gripper     names (meta/info.json "names" of the proprio feature) of the gripper dims, each entry may
                list alternatives "gripper.pos|main_gripper"; null = auto (a name ending in "gripper",
                "gripper.pos" included), [] = no gripper dims
    action      the command vector (A,) -> stream action
    cameras     {feature: camera name} -> stream cam_<name> (front -> agentview_rgb, wrist ->
                eye_in_hand_rgb, other <name>_rgb in the demo files); {} = every video / image feature,
                named by its last dotted part
    timestamps  the per-frame time in seconds from the episode start ("" = frame_index / fps)
    extra       {feature: stream name} for other numeric features (observation.force -> force_torque)
    others      read the numeric features the mapping does not name, under their own names (dots -> _)
    dims        {feature: [allowed sizes of its first dim]}: [6] for an SO-100, [7, 8] for a Franka

Shapes and names always come from meta/info.json; nothing here assumes a dimension count. A mapping
that cannot apply (a named feature absent, a camera that is not a video, a size outside `dims`, a
gripper name not in the state's names) raises `MappingError` with one line naming the feature, its
shape and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FT_NAMES = ("fx", "fy", "fz", "tx", "ty", "tz")
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
CAMERA_DTYPES = ("video", "image")
MAPPINGS_DIR = Path(__file__).resolve().parents[1] / "configs" / "ingest"


class MappingError(ValueError):
    """A mapping that cannot apply to a dataset; the message is one line naming the feature."""


@dataclass
class LeRobotMapping:
    """A declared LeRobot feature mapping (module docstring; configs/ingest/lerobot_<name>.yaml)."""

    name: str = "auto"
    robot: str = ""  # the robot_type it was written for (informational; "" = any)
    proprio: str = "observation.state"  # (D,) state -> joint_states (+ gripper_state)
    gripper: list[str] | None = None  # names of the proprio's gripper dims; None = auto, [] = none
    action: str = "action"  # (A,) commands -> action
    cameras: dict[str, str] = field(default_factory=dict)  # feature -> camera name; {} = every video/image
    timestamps: str = "timestamp"  # per-frame seconds from the episode start; "" = frame_index / fps
    extra: dict[str, str] = field(default_factory=dict)  # other numeric feature -> stream name
    others: bool = True  # read unnamed numeric features under their own names
    dims: dict[str, list[int]] = field(default_factory=dict)  # feature -> allowed sizes of its first dim

    def validate(self) -> None:
        if not self.proprio or not self.action:
            raise ValueError(f"mapping {self.name}: proprio and action must name features")
        bad = [k for k, v in self.dims.items() if not v or any(n < 1 for n in v)]
        if bad:
            raise ValueError(f"mapping {self.name}: dims of {bad[0]!r} must list sizes >= 1, got {self.dims[bad[0]]}")


@dataclass
class Plan:
    """A mapping resolved against one dataset's meta/info.json.

    numeric {feature: stream} (vectors read from the parquet), cameras {feature: stream cam_<name>},
    gripper_dims indices into the proprio vector split off as gripper_state, shapes {feature: per-frame
    shape from info.json}, timestamps the time column ("" = frame_index / fps)."""

    mapping: LeRobotMapping
    numeric: dict[str, str]
    cameras: dict[str, str]
    gripper_dims: list[int]
    shapes: dict[str, tuple[int, ...]]
    timestamps: str


def known_mappings() -> list[str]:
    """The names of configs/ingest/lerobot_<name>.yaml, plus "auto"."""
    return ["auto", *sorted(p.stem.removeprefix("lerobot_") for p in MAPPINGS_DIR.glob("lerobot_*.yaml"))]


def load_mapping(spec: str | Path | LeRobotMapping = "auto") -> LeRobotMapping:
    """"auto" (the generic mapping), a name of configs/ingest/lerobot_<name>.yaml, or a YAML path."""
    from configs.loader import load_config

    if isinstance(spec, LeRobotMapping):
        return spec
    if str(spec) == "auto":
        return LeRobotMapping()
    path = Path(spec)
    if not path.suffix:
        path = MAPPINGS_DIR / f"lerobot_{spec}.yaml"
        if not path.is_file():
            raise MappingError(f"mapping {spec!r}: no {path.name} in configs/ingest (known: {', '.join(known_mappings())})")
    m = load_config(LeRobotMapping, path)
    if m.name == "auto":
        m.name = path.stem
    return m


def feature_names(f: dict[str, Any]) -> list[str] | None:
    """meta/info.json "names" of a feature as a flat list (LeRobot writes a list or {"motors": [...]})."""
    names = f.get("names")
    if isinstance(names, dict):
        names = next((v for v in names.values() if isinstance(v, list)), None)
    return [str(n) for n in names] if isinstance(names, list) else None


def _shape(f: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(s) for s in f.get("shape", ()))


def _numeric(f: dict[str, Any]) -> bool:
    return str(f.get("dtype", "")).startswith(("float", "int", "uint", "bool"))


def _auto_stream(key: str, names: list[str] | None) -> str:
    if "force" in key or "wrench" in key or (names and tuple(names) == FT_NAMES):
        return "force_torque"
    return key.replace("observation.", "").replace(".", "_")


def _is_gripper(name: str) -> bool:
    return name.lower().removesuffix(".pos").replace(".", "_").split("_")[-1] == "gripper"


def resolve(mapping: LeRobotMapping, info: dict[str, Any]) -> Plan:
    """`mapping` against meta/info.json `info` -> a `Plan`; `MappingError` names the first misfit."""
    feats: dict[str, dict] = info.get("features", {})
    m = mapping
    where = f"mapping {m.name}"

    def need(key: str, role: str) -> dict:
        if key not in feats:
            raise MappingError(f"feature {key!r} ({role} in {where}) not found; "
                               f"features: {', '.join(sorted(feats))}")
        return feats[key]

    def vector(key: str, role: str) -> tuple[int, ...]:
        f = need(key, role)
        shape = _shape(f)
        if not _numeric(f) or len(shape) != 1:
            raise MappingError(f"feature {key!r} has dtype {f.get('dtype')} shape {list(shape)}; "
                               f"{where} uses it as {role}, expected a numeric vector [D]")
        allowed = m.dims.get(key)
        if allowed and shape[0] not in allowed:
            raise MappingError(f"feature {key!r} has shape {list(shape)}; {where} expects "
                               f"{' or '.join(f'[{n}]' for n in allowed)}")
        return shape

    shapes = {m.proprio: vector(m.proprio, "proprio"), m.action: vector(m.action, "action")}
    numeric = {m.proprio: "joint_states", m.action: "action"}
    for key, stream in m.extra.items():
        shapes[key] = vector(key, f"extra -> {stream}")
        numeric[key] = stream
    for key in m.dims:
        need(key, "dims")
    names = feature_names(feats[m.proprio])
    gripper_dims: list[int] = []
    if m.gripper is None:
        gripper_dims = [i for i, n in enumerate(names or []) if _is_gripper(n)]
    for entry in m.gripper or []:
        alts = entry.split("|")
        hit = [i for i, n in enumerate(names or []) if n in alts]
        if not hit:
            raise MappingError(f"feature {m.proprio!r} shape {list(shapes[m.proprio])} names "
                               f"{names}; {where} expects a gripper dim named {' or '.join(map(repr, alts))}")
        gripper_dims.append(hit[0])
    if len(gripper_dims) >= shapes[m.proprio][0]:
        raise MappingError(f"feature {m.proprio!r} shape {list(shapes[m.proprio])}: {where} "
                           f"leaves no joint dims after the gripper dims {gripper_dims}")
    cameras: dict[str, str] = {}
    if m.cameras:
        for key, cam in m.cameras.items():
            f = need(key, f"camera {cam}")
            if f.get("dtype") not in CAMERA_DTYPES or len(_shape(f)) != 3:
                raise MappingError(f"feature {key!r} has dtype {f.get('dtype')} shape "
                                   f"{list(_shape(f))}; {where} uses it as camera {cam!r}, expected video or "
                                   f"image [H, W, 3]")
            cameras[key] = f"cam_{cam}"
    else:
        cameras = {k: "cam_" + k.rsplit(".", 1)[-1] for k, f in feats.items() if f.get("dtype") in CAMERA_DTYPES}
    for key in cameras:
        shapes[key] = _shape(feats[key])
    if m.timestamps:
        f = need(m.timestamps, "timestamps")
        if not _numeric(f) or _shape(f) not in ((), (1,)):
            raise MappingError(f"feature {m.timestamps!r} has dtype {f.get('dtype')} shape "
                               f"{list(_shape(f))}; {where} uses it as timestamps, expected a float [1]")
    if m.others:
        taken = {*numeric, *cameras, *INDEX_COLUMNS, m.timestamps}
        for key, f in feats.items():
            if key not in taken and _numeric(f) and f.get("dtype") not in CAMERA_DTYPES:
                numeric[key] = _auto_stream(key, feature_names(f))
                shapes[key] = _shape(f)
    return Plan(m, numeric, cameras, gripper_dims, shapes, m.timestamps)
