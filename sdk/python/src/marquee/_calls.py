"""Every API call as a :class:`~marquee._base.Call`: the one place that knows each route's
method, path, parameters and body, and checks the arguments before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ._base import (
    MAX_EMBEDDING_INPUTS,
    MAX_HISTORY,
    MAX_PAGE,
    MAX_RECOMMENDATIONS,
    MAX_SPEECH_CHARS,
    NOT_GIVEN,
    RECOMMEND_FILTERS,
    SEARCH_FILTERS,
    Call,
    check_bool,
    check_id,
    check_int,
    check_month,
    check_number,
    check_object,
    check_str,
    check_str_list,
    filters_query,
    json_call,
    normalize_filters,
    read_file_arg,
    segment,
    to_time,
)

# ---------------------------------------------------------------------------------------------
# Recommendations


def recommend(user_id: object, item_id: object, n: object, filters: Mapping[str, object]) -> Call:
    path = f"/v1/recommend/{segment(check_id('user_id', user_id))}"
    if item_id is not None:
        path += f"/{segment(check_id('item_id', item_id))}"
    return Call("GET", path, params=filters_query("recommend", n, filters, RECOMMEND_FILTERS))


def similar(item_id: object, n: object, filters: Mapping[str, object]) -> Call:
    path = f"/v1/items/{segment(check_id('item_id', item_id))}/similar"
    return Call("GET", path, params=filters_query("similar", n, filters, RECOMMEND_FILTERS))


def popular(n: object, filters: Mapping[str, object]) -> Call:
    return Call(
        "GET", "/v1/popular", params=filters_query("popular", n, filters, RECOMMEND_FILTERS)
    )


def trending(n: object, filters: Mapping[str, object]) -> Call:
    return Call(
        "GET", "/v1/trending", params=filters_query("trending", n, filters, RECOMMEND_FILTERS)
    )


def session(items: object, n: object, filters: Mapping[str, object]) -> Call:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError(f"items must be a list of item ids, not {type(items).__name__}")
    body: dict[str, Any] = {
        "items": [check_id("items[]", i) for i in items],
        "n": check_int("n", n, 1, MAX_RECOMMENDATIONS),
    }
    body.update(normalize_filters("session", filters, RECOMMEND_FILTERS, in_query=False))
    # Read-only: recommends from the items given, stores nothing.
    return json_call("POST", "/v1/recommend/session", body, idempotent=True)


def search(q: object, n: object, filters: Mapping[str, object]) -> Call:
    params = {"q": check_str("q", q)}
    params.update(filters_query("search", n, filters, SEARCH_FILTERS))
    return Call("GET", "/v1/search", params=params)


# ---------------------------------------------------------------------------------------------
# Users' data


def profile(user_id: object, history: object) -> Call:
    path = f"/v1/users/{segment(check_id('user_id', user_id))}/profile"
    return Call("GET", path, params={"history": str(check_int("history", history, 0, MAX_HISTORY))})


def export_user(user_id: object) -> Call:
    return Call("GET", f"/v1/users/{segment(check_id('user_id', user_id))}/export")


def delete_user(user_id: object) -> Call:
    return Call("DELETE", f"/v1/users/{segment(check_id('user_id', user_id))}")


# ---------------------------------------------------------------------------------------------
# Catalogue

_TIME_FIELDS = ("published_at", "available_from", "available_until")


def _item_fields(fields: Mapping[str, object], *, patch: bool) -> dict[str, Any]:
    """The body of a PUT (``None``: leave out) or a PATCH (``NOT_GIVEN``: leave out, ``None``:
    clear)."""
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if value is NOT_GIVEN or (value is None and not patch):
            continue
        if value is None:
            if name in ("categories", "tags", "metadata", "hidden"):
                raise ValueError(f"{name} cannot be cleared with None; send an empty value")
            body[name] = None
        elif name in ("title", "description"):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {type(value).__name__}")
            body[name] = value
        elif name in ("categories", "tags"):
            body[name] = check_str_list(name, value)
        elif name == "metadata":
            body[name] = check_object("metadata", value)
        elif name in _TIME_FIELDS:
            body[name] = to_time(name, value)
        elif name == "hidden":
            body[name] = check_bool("hidden", value)
    return body


def get_item(item_id: object) -> Call:
    return Call("GET", f"/v1/items/{segment(check_id('item_id', item_id))}")


def put_item(item_id: object, fields: Mapping[str, object]) -> Call:
    path = f"/v1/items/{segment(check_id('item_id', item_id))}"
    return json_call("PUT", path, _item_fields(fields, patch=False), idempotent=True)


def patch_item(item_id: object, fields: Mapping[str, object]) -> Call:
    path = f"/v1/items/{segment(check_id('item_id', item_id))}"
    body = _item_fields(fields, patch=True)
    if not body:
        raise ValueError("patch_item needs at least one field to change")
    # Sets the fields given to the values given: sending it twice leaves the same item.
    return json_call("PATCH", path, body, idempotent=True)


def delete_item(item_id: object) -> Call:
    return Call("DELETE", f"/v1/items/{segment(check_id('item_id', item_id))}")


def _page(limit: object, cursor: object) -> dict[str, str]:
    params = {"limit": str(check_int("limit", limit, 1, MAX_PAGE))}
    if cursor is not None:
        if not isinstance(cursor, str) or not cursor:
            raise TypeError("cursor must be a non-empty str (a page's next_cursor)")
        params["cursor"] = cursor
    return params


def list_items(limit: object, cursor: object) -> Call:
    return Call("GET", "/v1/items", params=_page(limit, cursor))


def item_element(index: int, item: object) -> dict[str, Any]:
    """One element of a bulk item upload, checked."""
    if not isinstance(item, Mapping):
        raise TypeError(f"items[{index}] must be a dict, not {type(item).__name__}")
    element = dict(item)
    if "id" not in element:
        raise ValueError(f"items[{index}] has no 'id'")
    element["id"] = check_id(f"items[{index}]['id']", element["id"])
    for name in _TIME_FIELDS:
        if element.get(name) is not None:
            element[name] = to_time(f"items[{index}][{name!r}]", element[name])
    return element


def user_element(index: int, user: object) -> dict[str, Any]:
    if not isinstance(user, Mapping):
        raise TypeError(f"users[{index}] must be a dict, not {type(user).__name__}")
    element = dict(user)
    if "id" not in element:
        raise ValueError(f"users[{index}] has no 'id'")
    element["id"] = check_id(f"users[{index}]['id']", element["id"])
    if "attributes" in element:
        element["attributes"] = check_object(f"users[{index}]['attributes']", element["attributes"])
    return element


def feedback_element(index: int, event: object) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise TypeError(f"events[{index}] must be a dict, not {type(event).__name__}")
    element = dict(event)
    for name in ("user_id", "item_id", "type"):
        if name not in element:
            raise ValueError(f"events[{index}] has no {name!r}")
    element["user_id"] = check_id(f"events[{index}]['user_id']", element["user_id"])
    element["item_id"] = check_id(f"events[{index}]['item_id']", element["item_id"])
    element["type"] = check_str(f"events[{index}]['type']", element["type"])
    if element.get("value") is not None:
        check_number(f"events[{index}]['value']", element["value"], -1e300, 1e300)
    if element.get("timestamp") is not None:
        element["timestamp"] = to_time(f"events[{index}]['timestamp']", element["timestamp"])
    return element


def batch(path: str, elements: list[dict[str, Any]]) -> Call:
    """A bulk write. Retried: items and users are upserted by id, feedback events keyed by
    (user, item, type), so a batch sent twice leaves the same state."""
    return json_call("POST", path, elements, idempotent=True)


def batch_body(path: str, body: bytes) -> Call:
    """:func:`batch` with its JSON array already encoded (the bulk helpers size their chunks by
    the encoded elements)."""
    return Call(
        "POST", path, body=body, headers={"content-type": "application/json"}, idempotent=True
    )


# ---------------------------------------------------------------------------------------------
# Users and feedback


def get_user(user_id: object) -> Call:
    return Call("GET", f"/v1/users/{segment(check_id('user_id', user_id))}")


def put_user(user_id: object, attributes: object) -> Call:
    path = f"/v1/users/{segment(check_id('user_id', user_id))}"
    body = {"attributes": check_object("attributes", attributes) if attributes is not None else {}}
    return json_call("PUT", path, body, idempotent=True)


def patch_user(user_id: object, attributes: object) -> Call:
    path = f"/v1/users/{segment(check_id('user_id', user_id))}"
    body = {"attributes": check_object("attributes", attributes)}
    return json_call("PATCH", path, body, idempotent=True)


def list_users(limit: object, cursor: object) -> Call:
    return Call("GET", "/v1/users", params=_page(limit, cursor))


def user_feedback(user_id: object, limit: object) -> Call:
    path = f"/v1/users/{segment(check_id('user_id', user_id))}/feedback"
    return Call("GET", path, params={"limit": str(check_int("limit", limit, 1, MAX_PAGE))})


def one_feedback(
    user_id: object,
    item_id: object,
    type: object,
    value: object,
    timestamp: object,
    recommendation_id: object,
) -> Call:
    event: dict[str, Any] = {"user_id": user_id, "item_id": item_id, "type": type}
    if value is not None:
        event["value"] = value
    if timestamp is not None:
        event["timestamp"] = timestamp
    if recommendation_id is not None:
        event["recommendation_id"] = check_str("recommendation_id", recommendation_id)
    return batch("/v1/feedback", [feedback_element(0, event)])


# ---------------------------------------------------------------------------------------------
# Models


def embed(input: object, model: object, dimensions: object) -> Call:
    if isinstance(input, str):
        check_str("input", input)
    else:
        texts = check_str_list("input", input)
        if not texts:
            raise ValueError("input must hold at least one text")
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"input holds {len(texts)} texts; the limit is {MAX_EMBEDDING_INPUTS}")
        for i, t in enumerate(texts):
            check_str(f"input[{i}]", t)
        input = texts
    body: dict[str, Any] = {"input": input, "encoding_format": "float"}
    if model is not None:
        body["model"] = check_str("model", model)
    if dimensions is not None:
        body["dimensions"] = check_int("dimensions", dimensions, 1)
    # The same texts give the same vectors, and nothing is stored: safe to send again.
    return json_call("POST", "/v1/embeddings", body, idempotent=True)


_ROLES = ("system", "developer", "user", "assistant")


def chat_messages(messages: object) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        check_str("messages", messages)
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a str or a list of dicts, not {type(messages).__name__}")
    if not messages:
        raise ValueError("messages must not be empty")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise TypeError(f"messages[{i}] must be a dict, not {type(m).__name__}")
        if m.get("role") not in _ROLES:
            raise ValueError(f"messages[{i}]['role'] must be one of {', '.join(_ROLES)}")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise TypeError(f"messages[{i}]['content'] must be a str")
        out.append(dict(m))
    return out


_CHAT_OPTIONS = (
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "include_usage",
)


def chat(messages: object, model: object, stream: object, options: Mapping[str, object]) -> Call:
    unknown = [k for k in options if k not in _CHAT_OPTIONS]
    if unknown:
        raise TypeError(
            f"chat() got an unexpected option {unknown[0]!r}; the options are: "
            + ", ".join(_CHAT_OPTIONS)
        )
    body: dict[str, Any] = {
        "model": check_str("model", model),
        "messages": chat_messages(messages),
    }
    if check_bool("stream", stream):
        body["stream"] = True
    for name, value in options.items():
        if value is None:
            continue
        if name == "max_tokens":
            body[name] = check_int(name, value, 1)
        elif name == "temperature":
            body[name] = check_number(name, value, 0.0, 2.0)
        elif name == "top_p":
            body[name] = check_number(name, value, 1e-9, 1.0)
        elif name in ("frequency_penalty", "presence_penalty"):
            body[name] = check_number(name, value, -2.0, 2.0)
        elif name == "seed":
            body[name] = check_int(name, value, 0)
        elif name == "stop":
            body[name] = [value] if isinstance(value, str) else check_str_list("stop", value)
        elif name == "include_usage":
            if check_bool(name, value):
                if not stream:
                    raise ValueError("include_usage applies to stream=True only")
                body["stream_options"] = {"include_usage": True}
    # Not retried: each generation is new work, billed per token, and sampling may answer
    # differently the second time.
    call = json_call("POST", "/v1/chat/completions", body, idempotent=False)
    if stream:
        call.stream = True
        call.headers["accept"] = "text/event-stream"
    return call


def speech(
    input: object, model: object, voice: object, speed: object, response_format: object
) -> Call:
    body: dict[str, Any] = {
        "model": check_str("model", model),
        "input": check_str("input", input, max_chars=MAX_SPEECH_CHARS),
        "voice": check_str("voice", voice),
    }
    if response_format not in ("wav", "pcm"):
        raise ValueError(f"response_format must be 'wav' or 'pcm' (got {response_format!r})")
    body["response_format"] = response_format
    if speed is not None:
        body["speed"] = check_number("speed", speed, 0.25, 4.0)
    # Synthesis is deterministic and stores nothing: safe to send again.
    call = json_call("POST", "/v1/audio/speech", body, idempotent=True)
    call.headers["accept"] = "audio/wav" if response_format == "wav" else "audio/pcm"
    return call


def classify_image(image: object, model: object, top_k: object, min_score: object) -> Call:
    filename, data = read_file_arg("image", image)
    fields: dict[str, str] = {}
    if model is not None:
        fields["model"] = check_str("model", model)
    if top_k is not None:
        fields["top_k"] = str(check_int("top_k", top_k, 1, 1000))
    if min_score is not None:
        fields["min_score"] = repr(check_number("min_score", min_score, 0.0, 1.0))
    return Call(
        "POST",
        "/v1/images/classify",
        files={"file": (filename, data, "application/octet-stream")},
        data=fields,
        idempotent=True,
    )


_TRANSCRIPT_FORMATS = ("json", "verbose_json", "text", "srt", "vtt")


def transcribe(
    audio: object,
    model: object,
    response_format: object,
    prompt: object,
    temperature: object,
    language: object,
) -> Call:
    filename, data = read_file_arg("audio", audio)
    if response_format not in _TRANSCRIPT_FORMATS:
        raise ValueError(
            f"response_format must be one of {', '.join(_TRANSCRIPT_FORMATS)} "
            f"(got {response_format!r})"
        )
    fields = {"model": check_str("model", model), "response_format": str(response_format)}
    if prompt is not None:
        fields["prompt"] = check_str("prompt", prompt)
    if temperature is not None:
        fields["temperature"] = repr(check_number("temperature", temperature, 0.0, 1.0))
    if language is not None:
        fields["language"] = check_str("language", language)
    return Call(
        "POST",
        "/v1/audio/transcriptions",
        files={"file": (filename, data, "audio/wav")},
        data=fields,
        idempotent=True,
    )


def list_models() -> Call:
    return Call("GET", "/v1/models")


def train(wait: object, model: object) -> Call:
    body: dict[str, Any] = {}
    if model is not None:
        body["model"] = check_object("model", model)
    call = json_call("POST", "/v1/models/train", body, idempotent=False)
    if check_bool("wait", wait):
        call.params = {"wait": "true"}
    return call


def training_status() -> Call:
    return Call("GET", "/v1/training")


# ---------------------------------------------------------------------------------------------
# Usage


def _query_time(name: str, value: object) -> str:
    """A time in a query string: RFC 3339 (the server reads Unix seconds only in bodies)."""
    t = to_time(name, value)
    if isinstance(t, (int, float)):
        return datetime.fromtimestamp(t, tz=UTC).isoformat()
    return t


def usage(start: object, end: object, group_by: object) -> Call:
    params: dict[str, str] = {}
    if start is not None:
        params["from"] = _query_time("start", start)
    if end is not None:
        params["to"] = _query_time("end", end)
    if group_by is not None:
        if group_by not in ("day", "key", "model", "route", "tenant"):
            raise ValueError(
                f"group_by must be day, key, model, route or tenant (got {group_by!r})"
            )
        params["group_by"] = str(group_by)
    return Call("GET", "/v1/usage", params=params)


def invoice(month: object) -> Call:
    return Call("GET", f"/v1/invoices/{check_month(month)}")
