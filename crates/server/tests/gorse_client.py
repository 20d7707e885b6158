"""PyGorse, Gorse's official Python client, against Marquee's Gorse-compatible API.

Run by `tests/gorse.rs` with a real server: MARQUEE_GORSE_ENDPOINT is its base URL and
MARQUEE_GORSE_KEY a secret key of a fresh tenant. The client is used exactly as a Gorse
application uses it (`gorse.Gorse` and `gorse.AsyncGorse`, PyGorse 0.5.1); the one
Marquee-specific call trains the tenant's model at once instead of waiting for the background
retrain. Any failed check raises, which exits non-zero with the traceback.
"""

import asyncio
import os
from datetime import datetime, timezone

import requests
from gorse import AsyncGorse, Gorse, GorseException

ENDPOINT = os.environ["MARQUEE_GORSE_ENDPOINT"]
KEY = os.environ["MARQUEE_GORSE_KEY"]


def ts(n):
    """A time as PyGorse's own tests write it (whole seconds, UTC, `Z`)."""
    return datetime.fromtimestamp(1_700_000_000 + n, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fails(status, call, *args, **kwargs):
    """Asserts that a client call raises GorseException with `status`."""
    try:
        call(*args, **kwargs)
    except GorseException as e:
        assert e.status_code == status, (call.__name__, args, e.status_code, e.message)
        return e
    raise AssertionError(f"{call.__name__}{args} succeeded; expected {status}")


FILMS = [
    ("alien", ["Sci-Fi", "Horror"], "1979-05-25T00:00:00Z", "Alien"),
    ("aliens", ["Sci-Fi", "Action"], "1986-07-18T00:00:00Z", "Aliens"),
    ("terminator", ["Sci-Fi", "Action"], "1984-10-26T00:00:00Z", "The Terminator"),
    ("t2", ["Sci-Fi", "Action"], "1991-07-03T00:00:00Z", "Terminator 2"),
    ("heat", ["Crime", "Drama"], "1995-12-15T00:00:00Z", "Heat"),
    ("casino", ["Crime", "Drama"], "1995-11-22T00:00:00Z", "Casino"),
    ("amelie", ["Comedy", "Romance"], "2001-04-25T00:00:00Z", "Amélie"),
    ("clueless", ["Comedy"], "1995-07-19T00:00:00Z", "Clueless"),
]

VIEWS = {
    "ann": ["alien", "aliens", "terminator"],
    "bob": ["alien", "aliens", "t2", "terminator"],
    "cat": ["heat", "casino", "amelie"],
    "dan": ["heat", "casino", "clueless", "amelie"],
    "fay": ["heat", "casino"],
    "eve": ["aliens", "t2", "terminator"],
}


def users(client):
    r = client.insert_user(
        {"UserId": "ann", "Labels": ["a", "b", "c"], "Subscribe": ["d", "e"], "Comment": "comment"}
    )
    assert r == {"RowAffected": 1}, r
    user = client.get_user("ann")
    assert user == {"UserId": "ann", "Labels": ["a", "b", "c"], "Subscribe": ["d", "e"], "Comment": "comment"}, user
    r = client.insert_users([{"UserId": u} for u in ["bob", "cat", "dan", "eve", "fay"]])
    assert r == {"RowAffected": 5}, r
    assert client.get_user("bob") == {"UserId": "bob", "Labels": None, "Subscribe": None, "Comment": ""}

    # Pages follow the cursor to the end, where it is empty.
    page, cursor = client.get_users(4)
    assert len(page) == 4 and cursor, (page, cursor)
    rest, end = client.get_users(4, cursor)
    assert end == "", end
    assert [u["UserId"] for u in page + rest] == ["ann", "bob", "cat", "dan", "eve", "fay"]

    # Errors are Gorse's: the status, and the text of the error as the body (the message).
    e = fails(404, client.get_user, "nobody")
    assert e.message == "nobody: user not found", e.message


def items(client):
    for item_id, categories, timestamp, title in FILMS:
        r = client.insert_item(
            {"ItemId": item_id, "IsHidden": False, "Categories": categories, "Timestamp": timestamp, "Comment": title}
        )
        assert r == {"RowAffected": 1}, r
    # PyGorse's own round trip: what goes in comes back, field for field.
    r = client.insert_item(
        {"ItemId": "100", "IsHidden": True, "Labels": ["a", "b", "c"], "Categories": ["d", "e"],
         "Timestamp": ts(0), "Comment": "comment"}
    )
    assert r == {"RowAffected": 1}
    item = client.get_item("100")
    assert item == {"ItemId": "100", "IsHidden": True, "Labels": ["a", "b", "c"], "Categories": ["d", "e"],
                    "Timestamp": ts(0), "Comment": "comment"}, item
    assert client.delete_item("100") == {"RowAffected": 1}
    fails(404, client.get_item, "100")

    assert client.get_item("alien") == {
        "ItemId": "alien", "IsHidden": False, "Labels": None, "Categories": ["Sci-Fi", "Horror"],
        "Timestamp": "1979-05-25T00:00:00Z", "Comment": "Alien",
    }

    # A partial update changes only what it names.
    assert client.update_item("clueless", labels=["teen", "90s"], comment="Clueless (1995)") == {"RowAffected": 1}
    clueless = client.get_item("clueless")
    assert clueless["Labels"] == ["teen", "90s"] and clueless["Comment"] == "Clueless (1995)", clueless
    assert clueless["Categories"] == ["Comedy"] and clueless["Timestamp"] == "1995-07-19T00:00:00Z", clueless
    assert clueless["IsHidden"] is False

    page, cursor = client.get_items(5)
    rest, end = client.get_items(5, cursor)
    assert end == ""
    assert sorted(i["ItemId"] for i in page + rest) == sorted(f[0] for f in FILMS)

    found = client.search_items("alien")
    assert sorted(i["ItemId"] for i in found) == ["alien", "aliens"], found


def feedback(client):
    events = []
    for user, watched in VIEWS.items():
        for n, item in enumerate(watched):
            events.append({"FeedbackType": "view", "UserId": user, "ItemId": item, "Timestamp": ts(n)})
    r = client.insert_feedbacks(events)
    assert r == {"RowAffected": len(events)}, r

    # Newest first, with Gorse's fields.
    listed = client.list_feedbacks("view", "ann")
    assert listed == [
        {"FeedbackType": "view", "UserId": "ann", "ItemId": "terminator", "Timestamp": ts(2), "Comment": ""},
        {"FeedbackType": "view", "UserId": "ann", "ItemId": "aliens", "Timestamp": ts(1), "Comment": ""},
        {"FeedbackType": "view", "UserId": "ann", "ItemId": "alien", "Timestamp": ts(0), "Comment": ""},
    ], listed

    # POST inserts but keeps what is there: sending ann's first view again changes nothing.
    assert client.insert_feedback("view", "ann", "alien", ts(99)) == {"RowAffected": 1}
    assert client.list_feedbacks("view", "ann")[-1]["Timestamp"] == ts(0)

    # The whole table, page by page.
    seen, cursor = [], ""
    while True:
        page, cursor = client.get_feedbacks(7, cursor)
        seen += [(f["UserId"], f["ItemId"], f["FeedbackType"]) for f in page]
        if not cursor:
            break
    assert len(seen) == len(events) and len(set(seen)) == len(events), seen

    fails(400, client.insert_feedback, "view", "ann", "alien", "not a time")


def train():
    """Marquee trains in the background once feedback arrives; this asks for it now."""
    r = requests.post(f"{ENDPOINT}/v1/models/train?wait=true", headers={"X-API-Key": KEY}, json={}, timeout=300)
    assert r.status_code == 200, r.text


def recommend(client):
    recs = client.get_recommend("ann", n=3)
    ids = [r.id for r in recs]
    assert len(ids) == 3 and ids[0] == "t2", ids
    assert not set(ids) & set(VIEWS["ann"]), ids
    scores = [r.score for r in recs]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True), scores
    # offset skips into the same list.
    assert [r.id for r in client.get_recommend("ann", n=2, offset=1)] == ids[1:3]
    # In a category.
    comedies = [r.id for r in client.get_recommend("ann", category="Comedy", n=5)]
    assert comedies and set(comedies) <= {"amelie", "clueless"}, comedies
    # A new user gets popular items.
    assert len(client.get_recommend("stranger", n=4)) == 4

    # Write-back: what was returned is recorded as feedback of that type...
    first = client.get_recommend("dan", n=1, write_back_type="read")[0].id
    assert [f["ItemId"] for f in client.list_feedbacks("read", "dan")] == [first]
    # ...dated later with a delay, and listed only from then on (as in Gorse).
    assert len(client.get_recommend("cat", n=1, write_back_type="read", write_back_delay="10m")) == 1
    assert client.list_feedbacks("read", "cat") == []

    neighbors = client.get_neighbors("terminator", n=3)
    assert neighbors and all(set(n) == {"Id", "Score"} for n in neighbors), neighbors
    assert {n["Id"] for n in neighbors} <= {"alien", "aliens", "t2"}, neighbors
    assert client.get_neighbors("nothing") == []

    session = client.session_recommend(
        [{"FeedbackType": "view", "UserId": "", "ItemId": "heat", "Timestamp": ts(0)},
         {"FeedbackType": "view", "UserId": "", "ItemId": "casino", "Timestamp": ts(1)}],
        n=2,
    )
    assert len(session) == 2 and session[0]["Id"] in ("amelie", "clueless"), session
    assert not {s["Id"] for s in session} & {"heat", "casino"}, session


def deletes(client):
    assert client.delete_feedback("fay", "casino") == {"RowAffected": 1}
    assert [f["ItemId"] for f in client.list_feedbacks("view", "fay")] == ["heat"]
    assert client.delete_feedback("fay", "casino") == {"RowAffected": 0}

    assert client.delete_item("clueless") == {"RowAffected": 1}
    fails(404, client.get_item, "clueless")
    assert "clueless" not in [r.id for r in client.get_recommend("cat", n=8)]

    assert client.delete_user("fay") == {"RowAffected": 1}
    fails(404, client.get_user, "fay")
    assert client.list_feedbacks("view", "fay") == []
    # Deleting or patching what is not there: 404 with the text of Gorse's reads (Gorse itself
    # answers RowAffected 1 without looking; see the module docs of routes/gorse.rs).
    e = fails(404, client.delete_user, "fay")
    assert e.message == "fay: user not found", e.message
    fails(404, client.delete_item, "clueless")
    fails(404, client.update_item, "clueless", comment="back?")
    e = fails(404, client.get_item, "clueless")
    assert e.message == "clueless: item not found", e.message


async def asynchronous():
    client = AsyncGorse(ENDPOINT, KEY)
    assert await client.insert_feedback("like", "eve", "amelie", ts(5)) == {"RowAffected": 1}
    liked = await client.list_feedbacks("like", "eve")
    assert [f["ItemId"] for f in liked] == ["amelie"], liked
    recs = await client.get_recommend("eve", n=2)
    assert len(recs) == 2 and "amelie" not in [r.id for r in recs], [r.id for r in recs]
    assert (await client.get_item("amelie"))["Comment"] == "Amélie"
    users, _ = await client.get_users(100)
    assert "eve" in [u["UserId"] for u in users]


def main():
    client = Gorse(ENDPOINT, KEY)
    e = fails(401, Gorse(ENDPOINT, "mq_sk_not_a_real_key_000000").get_user, "ann")
    assert e.message == "unauthorized", e.message
    users(client)
    items(client)
    feedback(client)
    train()
    recommend(client)
    deletes(client)
    asyncio.run(asynchronous())
    print("pygorse: all checks passed")


if __name__ == "__main__":
    main()
