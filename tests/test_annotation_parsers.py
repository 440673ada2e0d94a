"""Annotation parsers (roboact_clip.txt Algorithm 1): rules parser cases, the OpenAI-compatible parser
against a real HTTP server on 127.0.0.1 (including malformed replies), and the prepare script."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from envs.datasets.annotations import (
    AnnotationParseError,
    ParserConfig,
    build_parser,
    compose_description,
    recombination_text,
)

VOCAB = {"action": ["pick up", "put down", "push", "pull", "slide left", "slide right", "rotate clockwise",
                    "rotate counterclockwise", "open", "close", "turn on", "turn off"],
         "object": ["red cube", "green ball", "drawer", "knob", "orange mug"]}  # fmt: skip


@pytest.fixture(scope="module")
def rules():
    return build_parser(ParserConfig(name="rules"), VOCAB)


@pytest.mark.parametrize("text, want", [
    ("the robot pushes the red cube away", (1, "robot", "push", "red cube")),
    ("the person opens the drawer", (1, "human", "open", "drawer")),
    ("THE  Robot Opens the DRAWER!!!", (1, "robot", "open", "drawer")),
    ("A human hand rotates the orange mug counter-clockwise.", (1, "human", "rotate counterclockwise", "orange mug")),
    ("the robot rotates the orange mug clockwise", (1, "robot", "rotate clockwise", "orange mug")),
    ("the gripper slides the green ball to the LEFT;", (1, "robot", "slide left", "green ball")),
    ("Robot: pick the red cube up", (1, "robot", "pick up", "red cube")),
    ("the person turns off the knob", (1, "human", "turn off", "knob")),
    ("the robot opens the drawer, then the robot picks up the red cube", (2, "robot", "open", "drawer")),
    ("The person picks up the green ball and puts it down", (2, "human", "pick up", "green ball")),
])  # fmt: skip
def test_rules_parser_cases(rules, text, want):
    p = rules.parse(text)
    assert (p.n_actions, p.subject, p.action, p.object) == want


def test_rules_parser_without_vocabulary_extracts_the_noun_phrase():
    p = build_parser(ParserConfig(name="rules", default_subject="robot")).parse("Put the wooden spoon in the pot.")
    assert (p.n_actions, p.subject, p.action, p.object) == (1, "robot", "put down", "wooden spoon")
    q = build_parser(ParserConfig(name="rules")).parse("put the spoon in the pot")
    assert q.subject is None  # no subject and no default: the prepare step reports it


@pytest.mark.parametrize("text", ["", "   ", "the robot waits patiently"])
def test_rules_parser_rejects_bad_annotations(rules, text):
    with pytest.raises(AnnotationParseError):
        rules.parse(text)


def test_templates():
    assert compose_description("robot", "open", "drawer") == "Robot open drawer. Action is open, Object is drawer."
    assert compose_description("human", "pick up", "red cube") == \
        "Human pick up red cube. Action is pick up, Object is red cube."
    assert recombination_text("robot", "open", "drawer") == "robot open the drawer, action is open"


def test_parser_config_errors():
    from configs.loader import ConfigError, from_dict

    with pytest.raises(ConfigError, match="openai_compatible needs parser.url"):
        from_dict(ParserConfig, {"name": "openai_compatible"}, source="test")
    with pytest.raises(ConfigError, match="parser.name"):
        from_dict(ParserConfig, {"name": "regex"}, source="test")


# ---------------------------------------------------------------- OpenAI-compatible, real server
REPLIES = {
    # annotation text -> the assistant's message content the server returns
    "the robot opens the drawer": json.dumps({"num_actions": 1, "subject": "robot",
                                              "actions": [{"verb": "opens", "object": "the drawer"}]}),
    "Human picks up the red cube": "```json\n" + json.dumps({"num_actions": 1, "subject": "Human",
                                                             "actions": [{"verb": "pick up", "object": "Red Cube"}]}) + "\n```",
    "the robot opens the drawer then closes it": json.dumps({"num_actions": 2, "subject": "robot",
                                                             "actions": [{"verb": "open", "object": "drawer"},
                                                                         {"verb": "close", "object": "drawer"}]}),
    "malformed json": "{num_actions: one,",
    "missing field": json.dumps({"subject": "robot", "actions": [{"verb": "push", "object": "cube"}]}),
    "alien subject": json.dumps({"num_actions": 1, "subject": "dog", "actions": [{"verb": "push", "object": "knob"}]}),
}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        prompt = body["messages"][-1]["content"]
        text = prompt.split("in: ", 1)[1].split("\n", 1)[0]
        if text == "server error":
            self.send_response(500)
            self.end_headers()
            return
        if text == "not a completion":
            payload = {"error": "nope"}
        else:
            payload = {"id": "cmpl-1", "object": "chat.completion", "model": body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": REPLIES[text]}}]}  # fmt: skip
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1/chat/completions"
    srv.shutdown()
    srv.server_close()


def _http(url, **kw):
    return build_parser(ParserConfig(**{"name": "openai_compatible", "url": url, "model": "tiny-llm", "timeout_s": 10, **kw}), VOCAB)


def test_http_parser_good_replies(server, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sekrit")
    p = _http(server, api_key_env="TEST_LLM_KEY")
    a = p.parse("the robot opens the drawer")
    assert (a.n_actions, a.subject, a.action, a.object) == (1, "robot", "open", "drawer")
    b = p.parse("Human picks up the red cube")  # fenced JSON, odd casing, canonicalised
    assert (b.n_actions, b.subject, b.action, b.object) == (1, "human", "pick up", "red cube")
    c = p.parse("the robot opens the drawer then closes it")
    assert c.n_actions == 2
    req = _Handler.requests[-1]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sekrit"
    assert req["body"]["model"] == "tiny-llm" and "Identify the number of actions" in req["body"]["messages"][-1]["content"]


@pytest.mark.parametrize("text, match", [
    ("malformed json", "not JSON"),
    ("missing field", "num_actions"),
    ("alien subject", "neither robot nor human"),
    ("not a completion", "choices"),
    ("server error", "HTTP 500"),
])  # fmt: skip
def test_http_parser_malformed_replies(server, text, match):
    with pytest.raises(AnnotationParseError, match=match):
        _http(server).parse(text)


def test_http_parser_unreachable_endpoint():
    with pytest.raises(AnnotationParseError, match="request failed"):
        _http("http://127.0.0.1:9/v1/chat/completions", timeout_s=2).parse("the robot opens the drawer")


# ----------------------------------------------------------------------------- prepare (the script's library)
class _Prep:
    """What scripts/prepare_single_action.py does, from the library: parse the same arguments, run."""

    @staticmethod
    def main(argv: list[str]) -> dict:
        from configs.loader import parse_cli
        from envs.datasets.single_action import PrepareConfig, prepare

        return prepare(parse_cli(PrepareConfig, argv, flags={"--src": ("src", ""), "--out": ("out", "")}))

    @staticmethod
    def read_annotations(src):
        from envs.datasets.single_action import read_annotations

        return read_annotations(src)


def test_prepare_lists_bad_and_discards_multi_action(tmp_path, server):
    prep = _Prep()

    src = tmp_path / "ann.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "text": "The robot pushes the red cube away."},
        {"id": "b", "text": "the person opens the drawer, then closes the drawer"},
        {"id": "c", "text": ""},
        {"id": "d", "text": "the robot juggles"},
        {"id": "e", "text": "PUT the green ball down"},
        {"id": "f", "text": 7},
    ]) + "\n")  # fmt: skip
    r = prep.main(["--src", str(src), "--out", str(tmp_path / "out.jsonl")])
    assert (r["annotations"], r["kept"], r["discarded_multi_action"], r["bad"]) == (6, 1, 1, 4)
    assert {b["id"] for b in r["bad_annotations"]} == {"c", "d", "e", "f"}
    assert "subject" in next(b["reason"] for b in r["bad_annotations"] if b["id"] == "e")
    kept = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert kept[0]["description"] == "Robot push red cube. Action is push, Object is red cube."
    assert json.loads((tmp_path / "out.report.json").read_text())["histogram"]["action"] == {"push": 1}
    # default subject keeps "e"
    r2 = prep.main(["--src", str(src), "--out", str(tmp_path / "o2.jsonl"), "parser.default_subject=robot"])
    assert r2["kept"] == 2
    # the HTTP parser through the script (CSV source)
    csv = tmp_path / "ann.csv"
    csv.write_text('id,text\n1,the robot opens the drawer\n2,malformed json\n3,the robot opens the drawer then closes it\n')
    r3 = prep.main(["--src", str(csv), "--out", str(tmp_path / "o3.jsonl"), "parser.name=openai_compatible",
                    f"parser.url={server}", "parser.model=tiny-llm"])  # fmt: skip
    assert (r3["kept"], r3["discarded_multi_action"], r3["bad"]) == (1, 1, 1)
    assert "not JSON" in r3["bad_annotations"][0]["reason"]
    (tmp_path / "ann.xml").write_text("<x/>")
    with pytest.raises(ValueError, match="ann.xml: unsupported"):
        prep.read_annotations(tmp_path / "ann.xml")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "ok"}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        prep.read_annotations(bad)


def test_prepare_from_a_dataset_folder_discards_take_level_chains(tmp_path):
    """Dataset source: one annotation per clip (views share it) + the joined annotation of a 2-clip take."""
    from configs.runs import atomic_write_json
    from envs.atomic_world.dataset import write_index

    prep = _Prep()

    def row(take, seg, view, s, a, o, cap):
        return {"take_id": take, "clip_id": f"t{take}_c{seg}", "view": view, "split": "train", "scene": "s0",
                "subject": s, "action": a, "object": o, "caption": cap, "keystep_id": 0 if take == 1 else -1,
                "keystep": "", "segment_index": seg, "start_frame": 0, "end_frame": 4, "path": f"c/{take}_{seg}_{view}.npz"}  # fmt: skip

    rows = [row(0, 0, v, "robot", "push", "red cube", "the robot pushes the red cube away") for v in ("ego", "exo_left")]
    rows += [row(1, 0, "ego", "human", "turn on", "knob", "the person turns on the knob"),
             row(1, 1, "ego", "human", "turn off", "knob", "the person turns off the knob")]  # fmt: skip
    write_index(tmp_path, rows)
    atomic_write_json(tmp_path / "meta.json", {"vocab": VOCAB})
    r = prep.main(["--src", str(tmp_path), "--out", str(tmp_path / "sa.jsonl")])
    assert (r["annotations"], r["kept"], r["discarded_multi_action"], r["bad"]) == (4, 3, 1, 0)
    assert r["multi_action"][0]["id"] == "take:1" and r["label_agreement"] == 1.0
    assert r["histogram"]["subject"] == {"human": 2, "robot": 1}
