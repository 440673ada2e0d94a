"""The one registry mechanism (configs/registry.py) and its use by every swappable kind."""

import json

import pytest

from configs.registry import Registry, UnknownNameError, trusted


def test_duplicates_rejected_same_object_allowed():
    reg = Registry("widget")

    @reg.register("a")
    class A:
        pass

    reg.register("a")(A)  # the same class again (a re-import) is fine
    with pytest.raises(ValueError, match="widget name 'a' is already registered"):

        @reg.register("a")
        class B:
            pass


def test_unknown_name_lists_known_names_and_is_a_keyerror():
    reg = Registry("widget", hint="or a directory")
    reg.add("x", object)
    reg.add("y", object)
    with pytest.raises(KeyError, match=r"unknown widget 'z'; registered: x, y \(or a directory\)"):
        reg.get("z")
    assert issubclass(UnknownNameError, ValueError)


def test_builtin_modules_import_lazily():
    import sys

    reg = Registry("thing", modules=("encoders.invact",))
    sys.modules.pop("encoders.invact.nonexistent", None)
    assert not reg._loaded
    assert reg.names() == []  # encoders.invact registers into ENCODERS, not this registry
    assert reg._loaded and "encoders.invact" in sys.modules


def test_only_project_modules_are_trusted():
    assert trusted("encoders.invact.model") and trusted("vla") and trusted("policies.base")
    assert not trusted("os") and not trusted("encodersx.evil") and not trusted("subprocess")
    reg = Registry("policy")
    with pytest.raises(PermissionError, match="refusing to import module 'os'"):
        reg.import_trusted("os", source="x/policy.json")


def test_every_kind_uses_the_registry():
    from encoders.backbones import BACKBONES
    from encoders.base import ENCODERS
    from encoders.methods import METHODS
    from encoders.text import TEXT_ENCODERS
    from envs.datasets.annotations import PARSERS
    from envs.policy_api import POLICIES

    for reg in (BACKBONES, ENCODERS, METHODS, PARSERS, TEXT_ENCODERS, POLICIES):
        assert isinstance(reg, Registry)
    assert {"efficientnet_lite0", "pixels", "hf"} <= set(BACKBONES.names())
    assert {"backbone_mean", "flow_mean", "random", "invact", "roboact_clip"} <= set(ENCODERS.names())
    assert {"invact", "roboact_clip"} <= set(METHODS.names())
    assert {"rules", "openai_compatible"} <= set(PARSERS.names())
    assert {"minilm", "hf_clip_text"} <= set(TEXT_ENCODERS.names())
    assert {"random", "scripted"} <= set(POLICIES.names())


def test_saved_encoder_naming_a_foreign_module_is_refused(tmp_path):
    from encoders import build_encoder

    d = build_encoder("random", dim=8).save_pretrained(tmp_path / "enc")
    meta = json.loads((d / "config.json").read_text())
    meta.update(encoder="evil", module="os")
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(PermissionError, match=r"config.json: refusing to import module 'os'"):
        build_encoder(str(d))
    meta.update(module="encoders.baselines")  # a project module that does not register 'evil'
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(KeyError, match="unknown encoder 'evil'"):
        build_encoder(str(d))


def test_method_sections_are_typed_and_checked_before_any_file(tmp_path, capsys):
    from encoders.train import main

    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        main(["--config", "configs/encoder/invact.yaml", f"out={out}", "model.dimm=3"])
    err = capsys.readouterr().err
    assert "unknown config key 'model.dimm'" in err and "method 'invact'" in err
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(["--config", "configs/encoder/invact.yaml", f"out={out}", "loss.lambda_text=high"])
    assert "'loss.lambda_text'" in capsys.readouterr().err and not out.exists()
