"""The config system: YAML -> typed dataclasses, dotted overrides, errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from configs.loader import ConfigError, from_dict, load_config, parse_cli, save_config, to_dict


@dataclass
class Inner:
    frames: int = 16
    lr: float = 1e-4
    names: list[str] = field(default_factory=lambda: ["a", "b"])


@dataclass
class Outer:
    out: str = "runs/x"
    seed: int = 0
    resume: bool = False
    inner: Inner = field(default_factory=Inner)

    def validate(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed: must be >= 0, got {self.seed}")


def test_defaults_yaml_and_overrides_compose(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("seed: 3\ninner:\n  frames: 8\n")
    cfg = load_config(Outer, f, ["inner.lr=0.5", "inner.names=[x, y, z]", "out=/tmp/o"])
    assert cfg.seed == 3 and cfg.inner.frames == 8 and cfg.inner.lr == 0.5
    assert cfg.inner.names == ["x", "y", "z"] and cfg.out == "/tmp/o" and cfg.resume is False


def test_unknown_key_names_the_key_and_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("inner:\n  frams: 8\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, f)
    assert "inner.frams" in str(e.value) and str(f) in str(e.value) and "frames" in str(e.value)


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="'inner.frames'.*integer"):
        from_dict(Outer, {"inner": {"frames": "many"}})
    with pytest.raises(ConfigError, match="'resume'.*true/false"):
        from_dict(Outer, {"resume": "yes please"})


def test_validate_hook_and_bad_override_form():
    with pytest.raises(ConfigError, match="seed: must be >= 0"):
        from_dict(Outer, {"seed": -1})
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Outer, None, ["inner.frames"])


def test_comma_list_override_and_roundtrip(tmp_path):
    cfg = load_config(Outer, None, ["inner.names=push,pull"])
    assert cfg.inner.names == ["push", "pull"]
    p = save_config(cfg, tmp_path / "resolved.yaml")
    assert from_dict(Outer, yaml.safe_load(p.read_text())) == cfg
    assert to_dict(cfg)["inner"]["names"] == ["push", "pull"]


def test_parse_cli_flags_config_and_overrides(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("seed: 5\n")
    flags = {"--out": ("out", "output"), "--frames": ("inner.frames", "frames"), "--resume": ("resume", "resume")}
    cfg = parse_cli(Outer, ["--config", str(f), "--out", "007", "--frames", "4", "--resume", "inner.lr=2"], flags=flags)
    # a string-typed key keeps the flag text as written (no YAML number coercion)
    assert cfg.out == "007" and cfg.seed == 5 and cfg.inner.frames == 4 and cfg.resume and cfg.inner.lr == 2.0
    with pytest.raises(SystemExit):
        parse_cli(Outer, ["nonsense.key=1"], flags=flags)
    assert "unknown config key 'nonsense'" in capsys.readouterr().err


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_every_shipped_world_yaml_loads():
    from pathlib import Path

    from envs.atomic_world.generate import MakeVideosConfig

    files = sorted(Path(__file__).resolve().parents[1].glob("configs/world/*.yaml"))
    assert files, "no world configs shipped"
    for f in files:
        load_config(MakeVideosConfig, f)


def test_inherit_deep_merges_and_detects_cycles(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 1\ninner:\n  frames: 8\n  lr: 0.5\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("inherit: ../base.yaml\ninner:\n  lr: 0.25\n")
    cfg = load_config(Outer, tmp_path / "sub" / "child.yaml")
    assert cfg.seed == 1 and cfg.inner.frames == 8 and cfg.inner.lr == 0.25
    (tmp_path / "a.yaml").write_text("inherit: b.yaml\n")
    (tmp_path / "b.yaml").write_text("inherit: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(Outer, tmp_path / "a.yaml")


def test_atomic_write_publishes_with_umask_mode_and_leaves_no_temp(tmp_path):
    import os
    import stat

    from configs.runs import atomic_write, atomic_write_text

    p = atomic_write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "b.txt", lambda t: (_ for _ in ()).throw(RuntimeError("boom")))
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.txt"]


@dataclass
class BlameInner:
    width: int = 3


@dataclass
class BlameOuter:
    steps: int = 1
    inner: BlameInner = field(default_factory=BlameInner)


def test_cli_errors_blame_the_place_that_set_the_key(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 2\ninner:\n  width: 4\n")
    cases = [
        (["--config", str(f), "stepz=3"], "unknown config key 'stepz' in the command line"),
        (["--config", str(f), "inner.widht=3"], "unknown config key 'inner.widht' in the command line"),
        (["--config", str(f), "steps=abc"], "'steps' in the command line (steps=abc): expected an integer"),
    ]
    f2 = tmp_path / "bad.yaml"
    f2.write_text("inner:\n  widht: 4\n")
    cases.append((["--config", str(f2), "steps=3"], f"unknown config key 'inner.widht' in {f2}"))
    for argv, expected in cases:
        with pytest.raises(SystemExit):
            parse_cli(BlameOuter, argv)
        assert expected in capsys.readouterr().err, argv


@dataclass
class BlameChecked:
    """A config whose `validate()` names no key (like LiberoEvalConfig's suite check)."""

    suite: str = "goal"
    ks: list[int] = field(default_factory=lambda: [1, 5])
    inner: BlameInner = field(default_factory=BlameInner)

    def validate(self) -> None:
        if self.suite not in ("goal", "ten"):
            raise ValueError(f"unknown suite {self.suite!r}")


def _cli_error(capsys, cls, argv, flags=None) -> str:
    with pytest.raises(SystemExit) as e:
        parse_cli(cls, argv, flags=flags or {})
    assert e.value.code == 2, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no usage block
    return err


def test_cli_errors_name_the_flag_override_file_or_default(tmp_path, capsys):
    """A value that fails validate() (no key in the error) is blamed on the layer that brought it in:
    the flag or the override as typed, the --config file, or the defaults -- never the file for a
    command-line value, nor the defaults for either."""
    flags = {"--suite": ("suite", "suite"), "--width": ("inner.width", "width")}
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("inner:\n  width: 5\n")
    bad.write_text("suite: nosuch\n")
    err = _cli_error(capsys, BlameChecked, ["--suite", "nosuch"], flags)
    assert "the command line (--suite nosuch): unknown suite 'nosuch'" in err
    err = _cli_error(capsys, BlameChecked, ["--config", str(good), "--suite", "nosuch"], flags)
    assert "the command line (--suite nosuch)" in err and str(good) not in err
    err = _cli_error(capsys, BlameChecked, ["--config", str(good), "suite=nosuch"], flags)
    assert "the command line (suite=nosuch)" in err and str(good) not in err
    err = _cli_error(capsys, BlameChecked, ["--config", str(bad), "inner.width=7"], flags)
    assert f"{bad}: unknown suite 'nosuch'" in err and "command line" not in err
    # the command line fixes the file's bad value: no error at all
    assert parse_cli(BlameChecked, ["--config", str(bad), "--suite", "ten"], flags=flags).suite == "ten"
    # a type error in a list item or a flag is the command line's, whatever the file holds
    err = _cli_error(capsys, BlameChecked, ["--config", str(good), "ks=a,b"], flags)
    assert "'ks[0]' in the command line (ks=a,b): expected an integer" in err
    err = _cli_error(capsys, BlameChecked, ["--config", str(good), "--width", "wide"], flags)
    assert "'inner.width' in the command line (--width wide): expected an integer" in err
    # ... and the file's when the file set it
    (tmp_path / "ks.yaml").write_text("ks: [1, x]\n")
    err = _cli_error(capsys, BlameChecked, ["--config", str(tmp_path / "ks.yaml"), "--suite", "ten"], flags)
    assert f"'ks[1]' in {tmp_path / 'ks.yaml'}: expected an integer" in err


@dataclass
class BadDefault:
    suite: str = "nosuch"

    def validate(self) -> None:
        if self.suite != "ok":
            raise ValueError(f"unknown suite {self.suite!r}")


def test_cli_error_in_a_default_blames_the_defaults(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("{}\n")
    err = _cli_error(capsys, BadDefault, ["--config", str(tmp_path / "c.yaml")])
    assert "the defaults: unknown suite 'nosuch'" in err


def test_load_config_blames_the_override_not_the_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inner:\n  width: 5\n")
    with pytest.raises(ConfigError) as e:
        load_config(BlameChecked, f, ["ks=a"])
    assert "override 'ks=a'" in str(e.value) and str(f) not in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(BlameChecked, f, ["suite=nosuch"])
    assert "override 'suite=nosuch': unknown suite" in str(e.value) and str(f) not in str(e.value)


def test_help_lists_every_key_with_its_default_and_comment(capsys):
    @dataclass
    class Helped:
        suite: str = "goal"  # which suite to run
        trials: int = 20
        inner: BlameInner = field(default_factory=BlameInner)

    with pytest.raises(SystemExit) as e:
        parse_cli(Helped, ["--help"], flags={"--trials": ("trials", "episodes per task")})
    assert e.value.code == 0
    out = capsys.readouterr().out
    keys = out[out.index("config keys"):]
    assert "suite='goal'" in keys and "which suite to run" in keys
    assert "trials=20" in keys and "episodes per task [--trials]" in keys
    assert "inner.width=3" in keys  # nested sections are listed with their dotted keys
