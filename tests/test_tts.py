"""Speech out: text read as a person would say it, sentence streaming, telephone-ready files, bad input,
and the round trip (the packaged voice speaks, the default Whisper base hears it back)."""
import json
import wave

import av
import numpy as np
import pytest

from agent.types import AgentError
from channels import audio, tts
from channels.speech_text import SpeechTextOptions, prepare, sentences
from conftest import one_line_error, run_cli, wer, words

# Replies as the agent writes them: amounts, dates, references, card digits, phone numbers, emails,
# times, percentages and abbreviations.
REPLIES = [
    "Your refund of £25.50 was sent on 12/03/2026 for order 48213.",
    "We post new cards within 1 working day, and they usually arrive within 3 to 5 working days.",
    "I can see the £1,200 payment from your card ending in 4321, e.g. the one from 3rd March.",
    "Please call us on 0800 555 0199, approx. 9am to 5pm, Monday to Friday.",
    "Your case reference is KB-48213 and we aim to reply within 10 working days.",
    "The exchange fee is 2.5% and the daily limit is $3,000.",
    "Email support@kestrel.example if you have any questions about your statement.",
    "Your transfer of €40 on 2026-01-05 at 17:05 is pending, i.e. not yet complete.",
    "Your refund of €42.90 was approved, and the fee of $19.99 will be returned by Friday.",
]


@pytest.mark.parametrize("text, spoken", [
    ("Your refund of £25.50 is on its way.", "Your refund of twenty-five point five zero pounds is on its way."),
    ("Refund of 42.90 euros and £3.05.", "Refund of forty-two point nine zero euros and three point zero five pounds."),
    ("A fee of £0.50, then $1 and 12 CHF.", "A fee of fifty pence, then one dollar and twelve Swiss francs."),
    ("We saw £1,200 and £2k.", "We saw one thousand two hundred pounds and two thousand pounds."),
    ("For order 48213.", "For order four eight two one three."),
    ("Case KB-48213.", "Case K B, four eight two one three."),
    ("Code KB48213 works.", "Code K B four eight two one three works."),
    ("Card ending in 4321.", "Card ending in four three two one."),
    ("Sent on 12/03/2026.", "Sent on the twelfth of March twenty twenty-six."),
    ("Sent on the 3rd March.", "Sent on the third of March."),
    ("I rang on Thursday 6 March.", "I rang on Thursday the sixth of March."),
    ("Call oh two oh seven nine four six oh one one eight.", "Call oh two oh seven nine four six oh one one eight."),
    ("$15.25 Canadian dollars, $7 zloty.", "fifteen point two five Canadian dollars, seven zloty."),  # as Whisper writes
    ("You were charged AUD 150.25.", "You were charged one hundred and fifty point two five Australian dollars."),
    ("Due 2026-01-05.", "Due the fifth of January twenty twenty-six."),
    ("Call 0800 555 0199.", "Call zero eight zero zero, five five five, zero one nine nine."),
    ("Write to a.b@x.com today.", "Write to a dot b at x dot com today."),
    ("See https://kestrel.example/help.", "See kestrel dot example slash help."),
    ("Open at 9am, 5:30 pm and 17:05.", "Open at nine A M, five thirty P M and seventeen oh five."),
    ("Rates are 2.5% or 10%.", "Rates are two point five percent or ten percent."),
    ("It costs approx. £3, e.g. on T&Cs, etc. Then stop.",
     "It costs approximately three pounds, for example on terms and conditions, et cetera. Then stop."),
    ("Mr. Smith came 1st in 2026 with 1,500 points.",
     "Mister Smith came first in twenty twenty-six with one thousand five hundred points."),
    ("**Hello** _Sam_, see [our page](https://x.example).", "Hello Sam, see our page."),
    ("<p>Hi <b>there</b></p><script>alert(1)</script><ul><li>One</li><li>Two</li></ul>", "Hi there. One. Two."),
    ("# Your card\n\n- posted today\n- arrives soon", "Your card. posted today. arrives soon."),
    ("Say [[ h ə l oʊ ]] now.", "Say (h ə l oʊ) now."),  # Piper's raw-phoneme syntax is not passed on
    ("Thanks 😀 Привет.", "Thanks."),
])
def test_text_is_prepared_as_a_person_would_say_it(text, spoken):
    assert prepare(text) == spoken


def test_every_currency_the_detector_knows_is_spoken():
    from agent.entities import CURRENCY_CODES, CURRENCY_SYMBOLS, CURRENCY_WORDS
    from channels.speech_text import MONEY

    written = [f"{symbol}42.90" for symbol in CURRENCY_SYMBOLS] + [f"42.90 {code}" for code in CURRENCY_CODES] \
        + [f"42.90 {word}" for word in CURRENCY_WORDS if word not in ("quid", "bucks")]
    codes = set(CURRENCY_SYMBOLS.values()) | set(CURRENCY_WORDS.values()) | set(CURRENCY_CODES)
    for text in written:
        spoken = prepare(f"A refund of {text} today.")
        assert spoken.startswith("A refund of forty-two point nine zero ") and spoken.endswith(" today."), spoken
        assert any(f" {MONEY[code][1]} today." in spoken for code in codes), spoken
    assert prepare("£1 and 1 CHF, $0.01 and 2 CAD.") == "one pound and one Swiss franc, one cent and two Canadian dollars."


def test_dates_follow_the_locale():
    assert prepare("12/03/2026") == "the twelfth of March twenty twenty-six"
    assert prepare("12/03/2026", SpeechTextOptions(locale="en_US")) == "December third twenty twenty-six"


def test_a_full_card_number_is_never_read_out():
    assert prepare("Card 4111 1111 1111 1111 was used.") == \
        "Card a card number ending in one one one one was used."


@pytest.mark.parametrize("text", ["", "   ", "😀😀", "<b></b>", "--- ***", "你好"])
def test_text_with_nothing_to_say_is_a_clear_error(piper, text):
    with pytest.raises(AgentError, match="nothing to say"):
        piper.synthesize(text)


def test_too_much_text_is_refused_before_any_synthesis():
    with pytest.raises(AgentError, match="too long to speak: 50,001 characters"):
        prepare("a" * 50_001)


def test_long_text_is_cut_into_bounded_sentences():
    text = ("This is a sentence about your account and the card we posted, which should arrive soon "
            "and without any trouble at all " * 80)[:10_000]
    parts = sentences(text)
    assert len(parts) > 30 and max(map(len, parts)) <= 250
    assert words(" ".join(parts)) == words(prepare(text))  # nothing lost at the cuts


def test_a_long_first_sentence_is_cut_at_a_comma_for_early_audio():
    first, second, _ = sentences("Thank you for getting in touch about your new card and the payment, and sorry "
                                 "for the long wait today. Goodbye.")
    assert first.endswith("payment,") and len(first) <= 80 and second.startswith("and sorry")


def test_the_first_cut_is_never_between_the_digit_groups_of_a_number():
    first, _ = sentences("Please call us on 0800 555 0199, or write to us, about the payment you made.")
    assert first == "Please call us on zero eight zero zero, five five five, zero one nine nine,"
    assert len(sentences("Your refund of £25.50 was sent on 12/03/2026 for order 48213.")) == 1


def test_stream_yields_each_sentence_before_the_reply_is_done(piper, monkeypatch):
    # How soon the first chunk comes (its share of the whole reply's time): bench/tts.py, "first audio share".
    reply, spoken, speak = " ".join(REPLIES[:3]), [], piper._speak
    monkeypatch.setattr(piper, "_speak", lambda sentence: spoken.append(sentence) or speak(sentence))
    chunks = piper.stream(reply)
    first = next(chunks)
    assert len(spoken) == 1  # the first sentence is out before the next one is made
    rest = list(chunks)
    assert len(rest) >= 2 and len(spoken) == 1 + len(rest)
    assert len(first) < sum(map(len, rest))
    whole = piper.synthesize(reply)  # deterministic voice: the file is the chunks, in order
    assert np.array_equal(whole, np.concatenate([first, *rest]))


def test_ten_thousand_characters_stream_in_small_chunks(piper):
    text = "Your card is on its way and should arrive within five working days. " * 150
    assert len(text) > 10_000
    chunks = piper.stream(text)
    first_two = [next(chunks), next(chunks)]
    assert all(0.5 < len(c) / piper.sample_rate < 20 for c in first_two)


def test_a_sentence_the_voice_cannot_say_is_an_error_not_silence(piper):
    silent = tts.Speaker()
    silent.sample_rate = piper.sample_rate
    silent._speak = lambda sentence: np.zeros(1000, np.float32)  # a voice that says nothing
    with pytest.raises(AgentError, match="no audible speech for sentence 1 of 2"):
        silent.synthesize("Hello there. Goodbye.")


def _loudness_and_peak(path):
    with av.open(str(path)) as f:
        rate = f.streams.audio[0].rate
    samples = audio.decode(path, sample_rate=rate)
    return tts.loudness_lufs(samples, rate), tts.true_peak_db(samples, rate)


@pytest.mark.parametrize("fmt, rate, codec, target", [
    ("wav", 22050, "pcm_s16le", tts.WIDEBAND),
    ("telephone", 8000, "pcm_mulaw", tts.TELEPHONE),
    ("telephone-pcm", 8000, "pcm_s16le", tts.TELEPHONE),
])
def test_files_are_at_the_format_rate_and_loudness_normalised(piper, tmp_path, fmt, rate, codec, target):
    samples = piper.synthesize(" ".join(REPLIES[:2]))
    path, written_rate = tts.export(tmp_path / f"{fmt}.wav", samples * 0.05, piper.sample_rate, fmt)  # quiet in
    with av.open(str(path)) as f:
        s = f.streams.audio[0]
        assert (s.rate, s.codec_context.name, s.channels, f.format.name) == (rate, codec, 1, "wav")
    assert written_rate == rate
    loudness, peak = _loudness_and_peak(path)
    assert abs(loudness - target.lufs) <= 0.5, loudness
    assert peak <= target.ceiling_dbtp + 0.3, peak  # 16-bit and mu-law rounding move peaks a little


def test_a_loud_voice_is_brought_down_to_the_target(piper):
    samples = np.clip(piper.synthesize(REPLIES[0]) * 8, -1, 1)  # clipped and far too loud
    out = tts.normalise_loudness(samples, piper.sample_rate, tts.WIDEBAND)
    assert abs(tts.loudness_lufs(out, piper.sample_rate) - tts.WIDEBAND.lufs) <= 0.3
    assert tts.true_peak_db(out, piper.sample_rate) <= tts.WIDEBAND.ceiling_dbtp + 0.01


def test_the_limiter_holds_peaks_without_touching_quiet_speech(piper):
    speech = piper.synthesize(REPLIES[1]) * 0.1  # about -20 dBFS peaks
    burst = np.concatenate([speech, np.ones(2205, np.float32), speech])  # and one full-scale burst
    out = tts.limit(burst, piper.sample_rate, -1.0)
    assert tts.true_peak_db(out, piper.sample_rate) <= -0.99
    assert np.array_equal(out[:len(speech) // 2], burst[:len(speech) // 2])  # far from the burst: unchanged


def test_unknown_format_is_a_clear_error(piper, tmp_path):
    with pytest.raises(AgentError, match="unknown audio format 'mp3'"):
        tts.export(tmp_path / "x.wav", np.ones(100, np.float32), 22050, "mp3")


def normalised(text):
    """Both sides of the round trip in spoken form, so "£25.50" and "25 pounds 50" compare equal."""
    return " ".join(words(prepare(text)))


# What must come back exactly: amounts, references, card endings, dates, phone numbers, in spoken form.
KEYS = ["twenty five point five zero pounds", "forty two point nine zero euros", "four eight two one three", "twelfth of march twenty twenty six",
        "one thousand two hundred pounds", "four three two one", "three thousand dollars",
        "zero eight zero zero five five five zero one nine nine", "two point five percent", "fifth of january"]


def test_round_trip_through_whisper_base_keeps_amounts_dates_and_references(piper, recogniser):
    errors = total = 0
    for reply in REPLIES:
        heard = recogniser.transcribe(audio.resample(piper.synthesize(reply), piper.sample_rate,
                                                     audio.SAMPLE_RATE)).text
        reference, hypothesis = normalised(reply), normalised(heard)
        errors += wer(reference, hypothesis) * len(reference.split())
        total += len(reference.split())
        for key in KEYS:  # a reference read as a cardinal would come back as "48,230"
            assert key not in reference or key in hypothesis, (key, heard)
    assert errors / total <= 0.05, errors / total


def test_speak_command_round_trip_and_timings(tmp_path, recogniser):
    text = " ".join(REPLIES[:3])
    proc = run_cli("speak", text, "--out", str(tmp_path / "reply.wav"))
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert (out["format"], out["sample_rate"], out["engine"], out["sentences"]) == ("wav", 22050, "piper", 3)
    assert 0 < out["timings"]["first_audio_s"] < out["timings"]["synthesis_s"] and out["real_time_factor"] > 0
    heard = recogniser.transcribe(audio.decode(tmp_path / "reply.wav")).text
    assert wer(normalised(text), normalised(heard)) <= 0.1, heard

    proc = run_cli("speak", "-", "--out", str(tmp_path / "phone.wav"), "--format", "telephone-pcm",
                   stdin=REPLIES[0].encode())
    assert proc.returncode == 0, proc.stderr.decode()
    with wave.open(str(tmp_path / "phone.wav")) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)


@pytest.mark.parametrize("args, message", [
    (["😀"], "nothing to say"),
    (["Hello.", "--engine", "festival"], "unknown TTS engine 'festival' (available: piper, coqui)"),
    (["Hello.", "--voice", "en_GB-nobody"], "Piper voice 'en_GB-nobody' not found"),
])
def test_speak_command_errors_are_one_line(tmp_path, args, message):
    line = one_line_error(run_cli("speak", *args, "--out", str(tmp_path / "x.wav")))
    assert line.startswith("support-agent: error:") and message in line
    assert not (tmp_path / "x.wav").exists()
