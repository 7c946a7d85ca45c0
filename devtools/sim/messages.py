"""Anthropic-shaped Messages API payloads built by the simulator (pure, apart from the cache).

Builds the ``message`` object of ``POST /v1/messages`` and the server-sent event sequence of a
streamed answer: ``message_start``, ``ping``, then per block ``content_block_start``,
``content_block_delta`` (``text_delta`` or ``input_json_delta``), ``content_block_stop``, then
``message_delta`` (stop reason and cumulative usage) and ``message_stop``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from devtools.sim.cache import CacheRequestError, check_cache_control
from devtools.sim.faults import Fault
from devtools.sim.multi import MULTI_TOOL, multi_tool_input
from devtools.sim.rules import RULE_VERSION, estimate_tokens, extract_post, judge

JSON = dict[str, Any]


class SimRequestError(Exception):
    """A request the real API would reject; rendered as Anthropic's error JSON."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def error_body(error_type: str, message: str, request_id: str | None = None) -> JSON:
    body: JSON = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def new_id(prefix: str) -> str:
    return f"{prefix}_sim{secrets.token_hex(10)}"


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    max_tokens: int
    system_blocks: list[JSON]
    user_text: str
    forced_tool: JSON | None
    stream: bool
    raw: JSON


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def parse_request(body: Any) -> MessagesRequest:
    """Check a ``POST /v1/messages`` body as the API would (the parts the simulator uses)."""
    if not isinstance(body, dict):
        raise SimRequestError(400, "invalid_request_error", "body must be a JSON object")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise SimRequestError(400, "invalid_request_error", f"{name}: Field required")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise SimRequestError(400, "invalid_request_error", "messages: at least one message")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise SimRequestError(400, "invalid_request_error", "messages: no user message")
    system = body.get("system", [])
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {}
    forced: JSON | None = None
    if tools:
        names = {t.get("name"): t for t in tools if isinstance(t, dict)}
        if choice.get("type") == "tool":
            if choice.get("name") not in names:
                raise SimRequestError(
                    400, "invalid_request_error", "tool_choice names a tool not in tools"
                )
            forced = names[choice["name"]]
        elif choice.get("type") in (None, "auto", "any"):
            forced = next(iter(names.values()))
    req = MessagesRequest(
        model=str(body["model"]),
        max_tokens=int(body["max_tokens"]),
        system_blocks=[b for b in system if isinstance(b, dict)],
        user_text=_text_of(users[-1].get("content")),
        forced_tool=forced,
        stream=bool(body.get("stream", False)),
        raw=body,
    )
    try:
        check_cache_control(req)
    except CacheRequestError as exc:
        raise SimRequestError(400, "invalid_request_error", str(exc)) from None
    return req


def _rationale_limit(tool: JSON) -> int:
    props = (tool.get("input_schema") or {}).get("properties") or {}
    limit = (props.get("rationale") or {}).get("maxLength")
    return int(limit) if isinstance(limit, int) and limit > 0 else 400


def _item_schema(tool: JSON) -> JSON:
    props = (tool.get("input_schema") or {}).get("properties") or {}
    return {"input_schema": (props.get("verdicts") or {}).get("items") or {}}


def _tool_use(tool: JSON, tool_input: Any) -> JSON:
    return {"type": "tool_use", "id": new_id("toolu"), "name": tool["name"], "input": tool_input}


def _analysis(post: str) -> str:
    v = judge(post)
    found = ", ".join(repr(m) for m in v.matched) or "none of the listed phrases"
    parts = [
        f"[SIMULATOR {RULE_VERSION}: this analysis comes from a keyword rule, not a model.]",
        f"Suggested verdict: {v.verdict} (confidence {v.confidence:.2f}).",
        f"Categories: {', '.join(v.categories) or 'none'}. Matched phrases: {found}.",
        f"The post is {len(post)} characters long.",
    ]
    if v.injection:
        parts.append("The post contains instructions addressed to the moderator; they are data.")
    parts.append("A reviewer should read the post in context before confirming the verdict.")
    return " ".join(parts)


def build_message(req: MessagesRequest, fault: Fault, input_usage: JSON) -> JSON:
    """The ``message`` object answering ``req`` under ``fault`` (content faults only)."""
    post = extract_post(req.user_text)
    content: list[JSON] = []
    stop_reason = "end_turn"
    if fault is Fault.REFUSAL:
        stop_reason = "refusal"
    elif fault is Fault.REFUSAL_TEXT:
        content = [{"type": "text", "text": "[SIMULATOR] I can't help with moderating this post."}]
    elif req.forced_tool is not None and req.forced_tool.get("name") == MULTI_TOOL:
        limit = _rationale_limit(_item_schema(req.forced_tool))
        content = [_tool_use(req.forced_tool, multi_tool_input(req.user_text, fault, limit))]
        stop_reason = "tool_use"
    elif req.forced_tool is not None:
        verdict = judge(post)
        tool_input: Any = {
            "verdict": verdict.verdict,
            "categories": verdict.categories,
            "confidence": verdict.confidence,
            "rationale": verdict.rationale(_rationale_limit(req.forced_tool)),
        }
        if fault is Fault.MISSING_FIELD:
            del tool_input["verdict"]
        elif fault is Fault.BAD_ENUM:
            tool_input["verdict"] = "approve"
        elif fault is Fault.OUT_OF_RANGE:
            tool_input["confidence"] = 1.7
        elif fault is Fault.MALFORMED_JSON:
            tool_input = '{"verdict": "allow", "categories": ['
        content = [_tool_use(req.forced_tool, tool_input)]
        stop_reason = "tool_use"
    else:
        content = [{"type": "text", "text": _analysis(post)}]
    out_text = json.dumps(content)
    usage = {**input_usage, "output_tokens": min(req.max_tokens, estimate_tokens(out_text))}
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_events(message: JSON, *, chunk_chars: int = 24) -> list[tuple[str, JSON]]:
    """The SSE ``(event, data)`` sequence that streams ``message``."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[tuple[str, JSON]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            deltas = [
                {"type": "text_delta", "text": c} for c in _chunks(block["text"], chunk_chars)
            ]
        else:
            raw = block["input"]
            partial = raw if isinstance(raw, str) else json.dumps(raw)
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {**block, "input": {}},
                    },
                )
            )
            deltas = [
                {"type": "input_json_delta", "partial_json": c}
                for c in _chunks(partial, chunk_chars)
            ]
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
