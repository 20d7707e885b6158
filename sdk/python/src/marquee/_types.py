"""The shapes the API sends and receives, as ``TypedDict``s.

Results are plain ``dict``s (``item['title']``, as the specification's snippet reads them) that a
type checker still understands. They mirror ``crates/types`` (the server's own types); a field the
server adds later simply appears in the dict. Times arrive as RFC 3339 strings; as inputs, times
may also be ``datetime`` objects or Unix seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, Required, TypedDict

__all__ = [
    "JSONObject",
    "TimeInput",
    "Reason",
    "Recommendation",
    "RecommendFilters",
    "SearchFilters",
    "Item",
    "ItemInput",
    "ItemPage",
    "User",
    "UserInput",
    "UserPage",
    "Feedback",
    "FeedbackInput",
    "Interest",
    "HistoryEntry",
    "UserProfile",
    "BulkResult",
    "Erasure",
    "ExportedEvent",
    "UserExport",
    "UsageLine",
    "UsageReport",
    "InvoiceLine",
    "Invoice",
    "Embedding",
    "EmbeddingUsage",
    "EmbeddingsResponse",
    "ChatOptions",
    "ChatMessage",
    "ChatCompletionMessage",
    "ChatCompletionChoice",
    "CompletionUsage",
    "ChatCompletion",
    "ImageLabel",
    "ImageInfo",
    "ImageClassification",
    "TranscriptionSegment",
    "Transcription",
]

JSONObject = dict[str, Any]
"""A JSON object (item metadata, user attributes)."""

TimeInput = str | int | float | datetime
"""A time as an input: an RFC 3339 string, Unix seconds, or a ``datetime`` (naive means UTC)."""


# ---------------------------------------------------------------------------------------------
# Recommendations


class Reason(TypedDict):
    """Why an item was recommended."""

    kind: str
    """``because_you_engaged``, ``similar_to_context``, ``similar_item``, ``new_item``,
    ``popular``, ``trending`` or ``exploration``."""
    items: NotRequired[list[str]]
    """The items the reason refers to (history items that contributed most, or the context)."""
    message: str
    """The reason in words, for display."""


class Recommendation(TypedDict):
    """One recommended item."""

    item_id: str
    title: str | None
    score: float
    reason: Reason
    categories: list[str]
    recommendation_id: str
    """The list this item was served in: send it back with feedback to attribute it."""
    variant: str | None
    """The experiment variant that made the list, if the user is in an experiment."""


class RecommendFilters(TypedDict, total=False):
    """The options every recommend route takes (``recommend(..., **filters)``)."""

    category: str | list[str]
    """Keep items in any of these categories (case-insensitive)."""
    category_match: Literal["any", "all"]
    """``all``: keep items in every listed category instead of any."""
    exclude: str | list[str]
    """Item ids never to return (one id, or a list)."""
    exclude_seen: bool
    """Leave out what the user engaged with (default ``True``)."""
    filter: str
    """An expression over item fields and metadata: ``'year >= 1990 AND NOT "Horror" IN
    categories'``."""
    diversity: float
    """0–1: re-rank for variety."""
    max_per_category: int
    """At most this many items per primary category."""
    exploration: float
    """0–0.5: share of the list given to random picks among the next-best candidates."""


class SearchFilters(TypedDict, total=False):
    """The options of ``search`` (the recommend options less ``exclude_seen`` and
    ``exploration``)."""

    category: str | list[str]
    category_match: Literal["any", "all"]
    exclude: str | list[str]
    filter: str
    diversity: float
    max_per_category: int


# ---------------------------------------------------------------------------------------------
# Catalogue


class Item(TypedDict):
    """An item as stored."""

    id: str
    title: str | None
    categories: list[str]
    tags: list[str]
    description: str | None
    metadata: JSONObject
    published_at: str | None
    available_from: str | None
    available_until: str | None
    hidden: bool
    updated_at: str


class ItemInput(TypedDict, total=False):
    """An item to upsert in bulk (``upsert_items``)."""

    id: Required[str]
    title: str
    categories: list[str]
    tags: list[str]
    description: str
    metadata: JSONObject
    published_at: TimeInput
    available_from: TimeInput
    available_until: TimeInput
    hidden: bool


class ItemPage(TypedDict):
    items: list[Item]
    next_cursor: str | None


class User(TypedDict):
    id: str
    attributes: JSONObject
    updated_at: str


class UserInput(TypedDict, total=False):
    """A user to upsert in bulk (``upsert_users``)."""

    id: Required[str]
    attributes: JSONObject


class UserPage(TypedDict):
    users: list[User]
    next_cursor: str | None


class Feedback(TypedDict):
    user_id: str
    item_id: str
    type: str
    value: float | None
    timestamp: str


class FeedbackInput(TypedDict, total=False):
    """A feedback event. Keyed by (user, item, type): sending it again replaces it."""

    user_id: Required[str]
    item_id: Required[str]
    type: Required[str]
    """``view``, ``like``, ``rating``, ``purchase``, …; ``dislike``, ``skip``, ``hide`` and
    ``not_interested`` count as "seen, not interested"."""
    value: float
    timestamp: TimeInput
    recommendation_id: str


class BulkResult(TypedDict):
    """What a bulk upload did: elements the server counted, and requests it took."""

    count: int
    """Items or users upserted, or feedback events accepted."""
    batches: int


# ---------------------------------------------------------------------------------------------
# Users' data


class Interest(TypedDict):
    kind: str
    """``category`` or ``tag``."""
    name: str
    weight: float
    """Share of the user's interest; the weights sum to 1."""


class HistoryEntry(TypedDict):
    item_id: str
    title: str | None
    type: str
    value: float | None
    timestamp: str


class UserProfile(TypedDict):
    """What ``get_user_data`` returns."""

    user_id: str
    item_id: str | None
    """The item the user engaged with most recently (positively), if any."""
    interests: list[Interest]
    """Categories and tags weighted by how much and how recently the user engaged, strongest
    first."""
    history: list[HistoryEntry]
    """Recent feedback, newest first, with item titles."""
    attributes: JSONObject


class Erasure(TypedDict):
    user_id: str
    events_deleted: int
    erased_at: str
    retrain_requested: bool


class ExportedEvent(TypedDict):
    item_id: str
    type: str
    value: float | None
    timestamp: str


class UserExport(TypedDict):
    user_id: str
    attributes: JSONObject | None
    updated_at: str | None
    feedback: list[ExportedEvent]
    exported_at: str


# ---------------------------------------------------------------------------------------------
# Usage and invoices


class UsageLine(TypedDict):
    group: NotRequired[str]
    requests: int
    units: dict[str, int]
    """Non-zero units by name: ``recommendations``, ``input_tokens``, ``output_tokens``,
    ``embedding_tokens``, ``tts_characters``, ``images``, ``audio_milliseconds``."""
    cost: str
    """An exact decimal amount, as a string."""


UsageReport = TypedDict(
    "UsageReport",
    {
        "object": str,
        "tenant": NotRequired[str],
        "from": str,
        "to": str,
        "group_by": NotRequired[str],
        "currency": str,
        "data": list[UsageLine],
        "total": UsageLine,
    },
)
"""What ``usage()`` returns: totals of the window (default: the current billing period), and one
line per group with ``group_by``."""


class InvoiceLine(TypedDict):
    route: str
    model: str | None
    requests: int
    units: dict[str, int]
    amount: str


Invoice = TypedDict(
    "Invoice",
    {
        "object": str,
        "tenant": str,
        "period": str,
        "status": str,
        "from": str,
        "to": str,
        "currency": str,
        "lines": list[InvoiceLine],
        "requests": int,
        "units": dict[str, int],
        "total": str,
    },
)
"""A month's invoice: one line per route and model; ``status`` is ``open`` while the month runs,
``final`` after it."""


# ---------------------------------------------------------------------------------------------
# Models


class Embedding(TypedDict):
    object: str
    index: int
    embedding: list[float]


class EmbeddingUsage(TypedDict):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(TypedDict):
    object: str
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ChatOptions(TypedDict, total=False):
    """The generation options of ``chat(..., **options)``."""

    max_tokens: int
    temperature: float
    """0–2; 0 is greedy and deterministic."""
    top_p: float
    seed: int
    stop: str | list[str]
    frequency_penalty: float
    presence_penalty: float
    include_usage: bool
    """With ``stream=True``: send token counts at the end (``stream.usage``)."""


class ChatMessage(TypedDict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class ChatCompletionMessage(TypedDict):
    role: str
    content: str
    refusal: str | None


class ChatCompletionChoice(TypedDict):
    index: int
    message: ChatCompletionMessage
    finish_reason: str


class CompletionUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(TypedDict):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: CompletionUsage


class ImageLabel(TypedDict):
    label: str
    index: int
    score: float


class ImageInfo(TypedDict):
    width: int
    height: int
    format: str


class ImageClassification(TypedDict):
    object: str
    model: str
    labels: list[ImageLabel]
    image: ImageInfo
    usage: dict[str, int]


class TranscriptionSegment(TypedDict):
    id: int
    start: float
    end: float
    text: str


class Transcription(TypedDict):
    """``response_format="json"``: ``text`` (and ``usage``); ``"verbose_json"`` adds
    ``language``, ``duration`` and ``segments``."""

    text: str
    usage: NotRequired[dict[str, Any]]
    language: NotRequired[str]
    duration: NotRequired[float]
    segments: NotRequired[list[TranscriptionSegment]]
