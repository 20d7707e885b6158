"""Reference outputs of the Python hibari-tts 0.2.1 package for the crate's tests.

Run once with a Python environment where `hibari` is installed (numpy, onnxruntime, scipy), after
`marquee_tts::convert` has written acoustic.onnx into the model directory:

    python crates/tts/tests/data/make_reference.py /path/to/models/hibari

Writes, next to this script:
  phonemes.json   [{"text": ..., "chunks": [phoneme string per chunk]}] from Hibari().phonemize
  ref_<n>.wav     16-bit mono 24 kHz audio of AUDIO_TEXTS[n] with the noise component switched off
                  (numpy's generator cannot be reproduced in Rust; the rest of the synthesis is
                  deterministic), for the waveform comparison
  audio.json      the texts and phonemes of those WAVs, and the network's F0 track (Hz per 12.5 ms frame)

The audio is hibari's (its G2P, its DSP) with the acoustic model run by onnxruntime on the converted
acoustic.onnx, i.e. with exact integer matmuls. hibari.onnx itself, run by onnxruntime on an x86 CPU
without VNNI, goes through a u8 x s8 kernel (VPMADDUBSW) that saturates pairs of products at int16
(MatMulInteger of [255]*4 and [127]*4 gives 65534 there, not 129540); that CPU-dependent rounding
changes the output audibly enough (about 6 dB waveform SNR) to make it a poor reference. VNNI and ARM
CPUs compute the exact sums, as the converted graph does everywhere.
"""
import json, os, sys
import numpy as np
from hibari import Hibari, write_wav

HERE = os.path.dirname(os.path.abspath(__file__))

TEXTS = [
    "Hello there.",
    "The quick brown fox jumps over the lazy dog.",
    "On the 3rd of March 2024, 1,250 people paid $9.99 each to hear it read at 7:30 pm.",
    "Dr. Smith lives on Baker St. in London.",
    "I read the record, and I'll record it live.",
    "The xylophonist Zbigniew played grzmot on the Quizzlebrook.",
    "It costs €5.50 or £3, roughly 20% less than ¥1000.",
    "Call me at 555-123-4567 before 10:05 a.m. tomorrow!",
    "She was born on 12/25/1999 and moved on 2021-06-15.",
    "Prices rose 3.75% in Q3; the S&P 500 fell 2.1 points.",
    "World War II ended in 1945, and Henry VIII had six wives.",
    "Mix 1/2 cup of flour with 3/4 cup of sugar.",
    "The temperature dropped to -5°C, or 23°F, overnight.",
    "He ran 5 km in 22 min, at about 13.6 km/h.",
    "Visit https://example.com or email info@example.org for details.",
    "NASA and the FBI aren't the same as the U.S. Army.",
    "Don't you think it's weird that they'd've gone?",
    "The state-of-the-art model was tested on Jan. 5th, 2020.",
    "Mr. and Mrs. O'Brien's children—Tom, Ann, and Lou—waved.",
    "Wait... what?! \"No way,\" she said (quietly).",
    "The 1990s were followed by the 2000s and 21st century.",
    "Chapter IV covers pages 10-20 of Vol. 3.",
    "He owed $2.5 million, about 1.2B yen, to #1 fan Bob.",
    "Use the [hibari](/hˈɪbəɹi/) voice for the demo.",
    "Route 66 runs 2,448 miles from Chicago to Santa Monica.",
    "Her iPhone 15 Pro cost 1199 dollars; his Pixel cost less.",
    "Approx. 40 people, incl. Prof. Lee, attended the 2nd session.",
    "The ratio was 3:2, and 7 + 5 = 12.",
    "At 3 p.m. on Tuesday, Gen. Patton's troops crossed the Rhine.",
    "Supercalifragilisticexpialidocious is a long word; antidisestablishmentarianism is longer.",
    "J. R. R. Tolkien wrote The Hobbit. It was published in 1937.",
    "We need 2 apples, 3 bananas and 10 oranges.",
    "Meet me @ the café near 5th Ave. at noon.",
    "Is it 0.5 or .75 or 3.14159?",
    "First line.\nSecond line after a break.\n\nA new paragraph starts here.",
    "She said, 'It's 4 o'clock,' and left; then, after a long pause, he answered, quietly and slowly, "
    "that the meeting, which had been scheduled for the afternoon, would have to be moved, postponed, "
    "or perhaps cancelled altogether, because the director, the treasurer, and the secretary, all of "
    "whom were required to attend, had been delayed by the storm, the traffic, and the closure of the "
    "bridge across the river, which, as everyone knew, was the only way into town.",
]

AUDIO_TEXTS = [
    "Hello there, how are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "Dr. Lee paid $9.99 on May 3rd.",
]


class ZeroNoise:
    def standard_normal(self, shape, dtype=np.float64):
        return np.zeros(shape, dtype)


def main():
    model_dir = sys.argv[1]
    tts = Hibari()
    out = [{"text": t, "chunks": tts.phonemize(t)} for t in TEXTS]
    with open(os.path.join(HERE, "phonemes.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    exact = Hibari(model=os.path.join(model_dir, "acoustic.onnx"), g2p=tts.g2p)
    meta = []
    for i, text in enumerate(AUDIO_TEXTS):
        (ps,) = tts.phonemize(text)
        ids = exact.ids(ps)
        audio = exact.from_ids(ids, 1.0, ZeroNoise())
        f0 = exact.sess.run(["f0"], {"ids": np.asarray([ids], np.int64), "speed": np.asarray([1.0], np.float32)})[0][0]
        write_wav(os.path.join(HERE, f"ref_{i}.wav"), audio)
        meta.append({"text": text, "phonemes": ps, "file": f"ref_{i}.wav", "samples": len(audio),
                     "f0": [round(float(v), 3) for v in f0]})
    with open(os.path.join(HERE, "audio.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
