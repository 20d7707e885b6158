"""The official `openai` package against a running Marquee (crates/cli/tests/cli.rs runs this).

Environment: MARQUEE_BASE (http://host:port), MARQUEE_KEY (a tenant's secret key).
"""
import os

import openai

client = openai.OpenAI(base_url=os.environ["MARQUEE_BASE"] + "/v1", api_key=os.environ["MARQUEE_KEY"])
EMBED, CHAT = "all-minilm-l6-v2", "smollm2-135m-instruct"

ids = [m.id for m in client.models.list()]
assert EMBED in ids and CHAT in ids, ids
assert client.models.retrieve(CHAT).id == CHAT

# The package asks for base64 by default and decodes it; floats on request.
e = client.embeddings.create(model=EMBED, input=["A cat sits on the mat.", "Stock markets fell."])
assert len(e.data) == 2 and len(e.data[0].embedding) == 384, e
assert e.usage.prompt_tokens > 0 and e.usage.total_tokens == e.usage.prompt_tokens
f = client.embeddings.create(model=EMBED, input="A cat sits on the mat.", encoding_format="float")
cos = sum(a * b for a, b in zip(f.data[0].embedding, e.data[0].embedding))
assert cos > 0.9999, cos

question = [{"role": "user", "content": "What is the capital of France?"}]
c = client.chat.completions.create(model=CHAT, messages=question, temperature=0, max_tokens=16, seed=7)
text = c.choices[0].message.content
assert "Paris" in text, text
assert c.choices[0].finish_reason in ("stop", "length")
assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens

streamed, usage = "", None
for chunk in client.chat.completions.create(
    model=CHAT, messages=question, temperature=0, max_tokens=16, seed=7,
    stream=True, stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        streamed += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage
assert streamed == text, (streamed, text)
assert usage is not None and usage.completion_tokens == c.usage.completion_tokens

# Errors arrive as the package's exceptions, with OpenAI's fields.
try:
    client.chat.completions.create(model="no-such-model", messages=question)
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError as err:
    assert err.status_code == 404 and err.code == "model_not_found", err
try:
    client.chat.completions.create(model=CHAT, messages=question, n=2)
    raise AssertionError("n=2 was accepted")
except openai.BadRequestError as err:
    assert err.param == "n", err
try:
    client.embeddings.create(model=EMBED, input="")
    raise AssertionError("an empty input was accepted")
except openai.BadRequestError:
    pass
bad = openai.OpenAI(base_url=os.environ["MARQUEE_BASE"] + "/v1", api_key="mq_sk_wrong", max_retries=0)
try:
    bad.models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass
print("openai client: ok")
