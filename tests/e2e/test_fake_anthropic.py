"""The fake Messages API on its own (no Claude Code needed)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from .fake_anthropic import EXHAUSTED_TEXT, SIDE_TEXT, FakeAnthropic, all_text, tool_results

TOOLS = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]


def _post(url: str, body: dict[str, Any]) -> tuple[str, bytes]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers.get("content-type", ""), resp.read()


def _sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk.strip():
            continue
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def _assemble(events: list[tuple[str, dict[str, Any]]]) -> tuple[list[dict[str, Any]], str]:
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    stop = ""
    for name, data in events:
        if name == "content_block_start":
            blocks[data["index"]] = dict(data["content_block"])
        elif name == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                blocks[data["index"]]["text"] += delta["text"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "message_delta":
            stop = data["delta"]["stop_reason"]
    for index, raw in partial.items():
        blocks[index]["input"] = json.loads(raw)
    return [blocks[i] for i in sorted(blocks)], stop


def test_streams_scripted_turns_and_answers_side_requests():
    script = [
        {"tool": "Bash", "input": {"command": "echo hi", "description": "d"}, "id": "toolu_X"},
        {"text": "finished"},
    ]
    with FakeAnthropic(script) as fake:
        url = fake.url + "/v1/messages?beta=true"
        body = {"model": "m", "stream": True, "tools": TOOLS, "messages": [{"role": "user", "content": "go"}]}
        ctype, raw = _post(url, body)
        assert ctype.startswith("text/event-stream")
        events = _sse(raw)
        names = [n for n, _ in events]
        assert names[0] == "message_start" and names[-1] == "message_stop"
        blocks, stop = _assemble(events)
        assert stop == "tool_use"
        assert blocks == [
            {
                "type": "tool_use",
                "id": "toolu_X",
                "name": "Bash",
                "input": {"command": "echo hi", "description": "d"},
            }
        ]

        # a side request (no tools) does not consume a turn
        _, raw_side = _post(
            url, {"model": "haiku", "stream": True, "messages": [{"role": "user", "content": "title?"}]}
        )
        assert _assemble(_sse(raw_side))[0][0]["text"] == SIDE_TEXT

        follow = {
            **body,
            "stream": False,
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": blocks},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_X", "content": "hi"}],
                },
                {"role": "system", "content": "PostToolUse:Bash hook additional context: CTX"},
            ],
        }
        ctype, raw2 = _post(url, follow)
        assert ctype == "application/json"
        message = json.loads(raw2)
        assert message["content"] == [{"type": "text", "text": "finished"}]
        assert message["stop_reason"] == "end_turn"

        _, raw3 = _post(url, {**follow, "stream": False})
        assert json.loads(raw3)["content"][0]["text"] == EXHAUSTED_TEXT
        assert fake.exhausted == 1

        _, counted = _post(fake.url + "/v1/messages/count_tokens", {"messages": []})
        assert json.loads(counted)["input_tokens"] >= 1

        assert len(fake.main_requests) == 3
        assert len(fake.side_requests) == 1
        assert fake.paths.count("POST /v1/messages") == 4
        text = all_text(fake.main_requests[1])
        assert "hi" in text and "hook additional context: CTX" in text and "go" in text
        assert tool_results(fake.main_requests[1])[0]["text"] == "hi"


def test_callable_turn_sees_the_request():
    seen = []

    def turn(body):
        seen.append(body["messages"][-1]["content"])
        return {"text": "echo:" + body["messages"][-1]["content"]}

    with FakeAnthropic([turn]) as fake:
        _, raw = _post(
            fake.url + "/v1/messages",
            {"model": "m", "tools": TOOLS, "messages": [{"role": "user", "content": "ping"}]},
        )
    assert json.loads(raw)["content"][0]["text"] == "echo:ping"
    assert seen == ["ping"]
