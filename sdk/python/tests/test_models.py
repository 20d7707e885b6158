"""The model calls against a server with the models loaded (``MARQUEE_TEST_MODELS=1``;
``crates/cli/tests/sdk_python.rs`` starts one with the pulled models)."""

from __future__ import annotations

import asyncio
import io
import math
import time
import unittest
import wave

import _support
from _support import FILMS, requires_models

import marquee

CHAT: marquee.ChatOptions = {"temperature": 0.0, "seed": 7, "max_tokens": 16}
QUESTION = "What is the capital of France?"


@requires_models
class ModelsTest(unittest.TestCase):
    client: marquee.Client

    @classmethod
    def setUpClass(cls) -> None:
        cls.client = _support.client(timeout=300)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()

    def test_the_models_are_listed(self) -> None:
        names = {m["id"] for m in self.client.list_models()}
        self.assertTrue(
            {
                "all-minilm-l6-v2",
                "smollm2-135m-instruct",
                "hibari",
                "whisper-tiny-en",
                "efficientnet-lite0",
            }
            <= names,
            names,
        )

    def test_embeddings(self) -> None:
        texts = [
            "A cat sits on the mat.",
            "A kitten rests on a rug.",
            "Stock markets fell sharply.",
        ]
        answer = self.client.embed(texts)
        vectors = [d["embedding"] for d in answer["data"]]
        self.assertEqual([d["index"] for d in answer["data"]], [0, 1, 2])
        self.assertEqual([len(v) for v in vectors], [384, 384, 384])
        for v in vectors:
            self.assertAlmostEqual(math.sqrt(sum(x * x for x in v)), 1.0, places=3)

        def cos(a: list[float], b: list[float]) -> float:
            return sum(x * y for x, y in zip(a, b, strict=True))

        self.assertGreater(cos(vectors[0], vectors[1]), cos(vectors[0], vectors[2]) + 0.2)
        self.assertGreater(answer["usage"]["prompt_tokens"], 0)
        one = self.client.embed(texts[0], model="all-minilm-l6-v2")
        self.assertGreater(cos(one["data"][0]["embedding"], vectors[0]), 0.9999)

    def test_chat_plain_and_streamed_agree(self) -> None:
        completion = self.client.chat(QUESTION, **CHAT)
        text = completion["choices"][0]["message"]["content"]
        self.assertIn("Paris", text)
        usage = completion["usage"]
        self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"])
        with_usage: marquee.ChatOptions = {**CHAT, "include_usage": True}
        messages = [{"role": "user", "content": QUESTION}]
        with self.client.chat(messages, stream=True, **with_usage) as stream:
            deltas = list(stream)
        self.assertGreater(len(deltas), 1, "streamed piece by piece")
        self.assertEqual("".join(deltas), text)
        self.assertEqual(stream.finish_reason, completion["choices"][0]["finish_reason"])
        self.assertEqual(stream.usage, usage)
        # The module-level function and the async client stream the same text.
        self.assertEqual(marquee.chat(QUESTION, stream=True, **CHAT).until_done(), text)

        async def streamed() -> str:
            async with marquee.AsyncClient(_support.BASE_URL, _support.API_KEY, timeout=300) as c:
                stream = await c.chat(QUESTION, stream=True, **CHAT)
                return "".join([t async for t in stream])

        self.assertEqual(asyncio.run(streamed()), text)

    def test_closing_a_stream_early_stops_the_generation(self) -> None:
        # A key of its own, so that its usage line counts this one request only.
        key, key_id = _support.create_key_with_id({"kind": "secret"})
        with _support.client(api_key=key) as own:
            stream = own.chat("Tell me a long story about a heist.", stream=True, max_tokens=500)
            self.assertTrue(next(stream))
            stream.close()

        def billed() -> marquee.UsageLine | None:
            lines = self.client.usage(group_by="key")["data"]
            return next((line for line in lines if line.get("group") == key_id), None)

        # The server notices the closed connection, stops, and bills what it generated.
        deadline = time.monotonic() + 60
        while (line := billed()) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert line is not None, "the request was billed"
        self.assertEqual(line["requests"], 1)
        self.assertLess(line["units"].get("output_tokens", 0), 50, "stopped long before 500")

    def test_speech_is_a_wav_file(self) -> None:
        audio = self.client.speech("Coming this summer to a theater near you.")
        with wave.open(io.BytesIO(audio)) as w:
            self.assertEqual((w.getnchannels(), w.getsampwidth(), w.getframerate()), (1, 2, 24000))
            seconds = w.getnframes() / w.getframerate()
        self.assertTrue(1.0 < seconds < 10.0, seconds)
        pcm = self.client.speech("Coming soon.", response_format="pcm", speed=1.2)
        self.assertFalse(pcm.startswith(b"RIFF"))
        self.assertEqual(len(pcm) % 2, 0)

    def test_transcription_of_a_file_and_of_speech(self) -> None:
        path = _support.SAMPLES / "speech_hibari_16k.wav"
        text = self.client.transcribe(path)["text"]
        self.assertIn("dragons", text.lower())
        with open(path, "rb") as f:
            self.assertEqual(
                self.client.transcribe(f, response_format="text").strip(), text.strip()
            )
        verbose = self.client.transcribe(path.read_bytes(), response_format="verbose_json")
        self.assertTrue(verbose["segments"])
        self.assertLess(verbose["segments"][0]["start"], verbose["segments"][-1]["end"])
        # What `speech` says, `transcribe` hears.
        spoken = self.client.speech("The heist begins at midnight.")
        heard = self.client.transcribe(spoken)["text"].lower()
        self.assertIn("midnight", heard)

    def test_image_classification(self) -> None:
        path = _support.SAMPLES / "chelsea.png"
        answer = self.client.classify_image(path, top_k=3)
        self.assertEqual(len(answer["labels"]), 3)
        self.assertIn("cat", answer["labels"][0]["label"])
        self.assertEqual((answer["image"]["width"], answer["image"]["height"]), (451, 300))
        same = self.client.classify_image(path.read_bytes(), top_k=1, min_score=0.1)
        self.assertEqual(same["labels"][0]["label"], answer["labels"][0]["label"])

    def test_search_by_meaning(self) -> None:
        # The catalogue is embedded in the background after it is written.
        deadline = time.monotonic() + 120
        while True:
            hits = self.client.search("a killer robot sent back in time", n=len(FILMS))
            if len(hits) == len(FILMS) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(len(hits), len(FILMS))
        self.assertIn(hits[0]["item_id"], {"terminator", "t2"})
        crime = self.client.search("a casino in Las Vegas", n=3, category="Crime")
        self.assertEqual(crime[0]["item_id"], "casino")
        self.assertTrue(all("Crime" in h["categories"] for h in crime))


if __name__ == "__main__":
    unittest.main()
