"""The official `openai` package against a running Marquee (crates/cli/tests/cli.rs runs this).

Environment: MARQUEE_BASE (http://host:port), MARQUEE_KEY (a tenant's secret key),
MARQUEE_SAMPLES (the shared samples directory, with the test speech clips).
"""
import io
import os
import re
import wave

import openai

client = openai.OpenAI(base_url=os.environ["MARQUEE_BASE"] + "/v1", api_key=os.environ["MARQUEE_KEY"])
EMBED, CHAT = "all-minilm-l6-v2", "smollm2-135m-instruct"
SPEECH, TRANSCRIBE = "hibari", "whisper-tiny-en"
SAMPLES = os.environ["MARQUEE_SAMPLES"]


NUMBERS = {"8": "eight", "9": "nine", "10": "ten"}


def words(text):
    """Lower-case words without punctuation; Whisper writes small numbers either way."""
    return [NUMBERS.get(w, w) for w in re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()]

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

# Speech: a WAV from audio.speech.create, streamed as it is made.
line = "The popcorn is ready, and the movie starts at eight."
speech = client.audio.speech.create(model=SPEECH, voice="heart", input=line, response_format="wav")
audio = speech.read()
assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE", audio[:16]
with wave.open(io.BytesIO(audio)) as w:
    assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
    seconds = w.getnframes() / w.getframerate()
assert 1.5 < seconds < 8, seconds
pcm = client.audio.speech.create(model="tts-1", voice="heart", input=line, response_format="pcm").read()
assert abs(len(pcm) - (len(audio) - 44)) < 2 * 24000, (len(pcm), len(audio))
with client.audio.speech.with_streaming_response.create(
    model=SPEECH, voice="heart", input=line + " " + line, response_format="pcm"
) as streamed_speech:
    streamed_bytes = b"".join(streamed_speech.iter_bytes())
assert len(streamed_bytes) > len(pcm), (len(streamed_bytes), len(pcm))

# Transcription of what was just said: the round trip needs no human ear.
t = client.audio.transcriptions.create(model=TRANSCRIBE, file=("speech.wav", audio, "audio/wav"))
heard = words(t.text)
expected = words(line)
missed = [w for w in expected if w not in heard]
assert len(missed) <= 1, (t.text, missed)

# The shared sample, by OpenAI's model name, in each response format.
with open(os.path.join(SAMPLES, "speech_flite_slt_16k.wav"), "rb") as f:
    clip = f.read()
text = client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", clip), response_format="text")
assert words(text) == words("The popcorn is ready and the movie starts at eight o'clock."), text
srt = client.audio.transcriptions.create(model=TRANSCRIBE, file=("clip.wav", clip), response_format="srt")
assert srt.startswith("1\n00:00:0") and "-->" in srt, srt
vtt = client.audio.transcriptions.create(model=TRANSCRIBE, file=("clip.wav", clip), response_format="vtt")
assert vtt.startswith("WEBVTT"), vtt
verbose = client.audio.transcriptions.create(
    model=TRANSCRIBE, file=("clip.wav", clip), response_format="verbose_json",
    timestamp_granularities=["segment"],
)
assert verbose.segments and verbose.duration > 2, verbose

try:
    client.audio.speech.create(model=SPEECH, voice="alloy", input=line)
    raise AssertionError("an unknown voice was accepted")
except openai.BadRequestError as err:
    assert err.param == "voice", err
try:
    client.audio.speech.create(model=SPEECH, voice="heart", input=line, response_format="mp3")
    raise AssertionError("mp3 was accepted")
except openai.UnprocessableEntityError as err:
    assert err.status_code == 422, err
try:
    client.audio.transcriptions.create(model=TRANSCRIBE, file=("x.wav", b"not a wav file at all"))
    raise AssertionError("a corrupt file was accepted")
except openai.BadRequestError as err:
    assert err.code == "invalid_audio", err
print("openai client: ok")
