"""A seeded, deterministic simulated backlash on an event's milestones, for the demo and for tests.

The shape follows the Instagram 2012 storm: a week of baseline chatter, a storm after the announcement
that decays, a bump of relief at a reversal, a smaller wave when the change takes effect. Every post
is stored under the source name "simulated" and carries `"simulated": true` in its raw payload.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from monitor.config import Config, EventConfig
from monitor.posts import FUTURE_SLACK, Post
from monitor.sources.base import Page, Source

DEFAULT_SEED = 2012
DEFAULT_POSTS = 6_000
PAGE_SIZE = 1_000
TAIL_DAYS = 7  # simulated days after the last milestone
REPOST_WINDOW = timedelta(hours=36)  # a repost copies an original from this far back at most


@dataclass(frozen=True)
class Wave:
    """One burst of attention after a milestone: rises to its peak, then decays exponentially."""

    milestone: str
    mood: str  # which text mix the wave's posts use
    peak: float  # posts per hour at the peak, in units of the baseline rate
    rise_hours: float
    half_life_hours: float

    def rate(self, hours_since: float) -> float:
        if hours_since < 0:
            return 0.0
        if hours_since < self.rise_hours:
            return self.peak * hours_since / self.rise_hours
        return self.peak * 0.5 ** ((hours_since - self.rise_hours) / self.half_life_hours)


# The milestones the waves ride on; a milestone the event lacks simply has no wave.
WAVES = (
    Wave("announced", "storm", peak=32.0, rise_hours=30.0, half_life_hours=16.0),
    Wave("reversed", "relief", peak=11.0, rise_hours=8.0, half_life_hours=9.0),
    Wave("effective", "effective", peak=7.0, rise_hours=14.0, half_life_hours=14.0),
)

# mood → (template kind, weight); weights are per cent of the mood's posts
MOOD_MIX: dict[str, list[tuple[str, float]]] = {
    "baseline": [("chatter", 78), ("gripe", 12), ("news", 6), ("foreign", 4)],
    "storm": [("angry", 38), ("churn", 17), ("worried", 12), ("news", 10), ("defend", 8), ("joke", 7), ("foreign", 8)],
    "relief": [("relief", 44), ("skeptic", 24), ("news", 14), ("churn", 8), ("foreign", 10)],
    "effective": [("worried", 22), ("churn", 18), ("news", 22), ("chatter", 20), ("skeptic", 12), ("foreign", 6)],
}
REPOST_SHARE = {"baseline": 0.08, "storm": 0.32, "relief": 0.22, "effective": 0.15}

ASPECT_PHRASES = {
    "photos": ["sell my photos", "sell our pictures", "profit from my photos", "use my pics", "sell my images"],
    "ads": [
        "put my photos in ads",
        "use my face in advertising",
        "turn my pictures into ads",
        "sell ads with my photos",
    ],
    "privacy": ["own my data", "grab my privacy rights", "take our data", "change the privacy terms"],
}
TEMPLATES: dict[str, list[str]] = {
    "chatter": [
        "Loving the new {platform} filters, my {thing} looks amazing",
        "Just shared my {thing} on {platform} :)",
        "Great sunset tonight, check my {platform}",
        "{platform} is the best way to keep up with friends",
        "Happy to see so many friends on {platform} now",
        "Finally got my {thing} to pose for {platform}",
        "Anyone know a good {platform} filter for food?",
    ],
    "gripe": [
        "{platform} keeps crashing on my phone, annoying",
        "Why is {platform} so slow today? Ugh",
        "Too many boring food pictures on {platform} lately",
    ],
    "news": [
        "{platform} updates its terms of service, effective January 16",
        "{platform} says new terms let it {aspect_phrase} in ads, report says",
        "What the new {platform} terms of service actually say",
        "{platform} responds to questions about its new terms",
    ],
    "angry": [
        "{platform} wants to {aspect_phrase}? Disgusting. #boycott{tag}",
        "No way {platform} gets to {aspect_phrase}. This is outrageous",
        "I hate that {platform} thinks it can {aspect_phrase} without paying me. Terrible",
        "Shame on {platform}, greedy and evil. They want to {aspect_phrase} #boycott{tag}",
        "{platform} is a ripoff now, they will {aspect_phrase}. Awful",
        "Angry doesn't even cover it. {platform} can {aspect_phrase}?! Ridiculous",
    ],
    "churn": [
        "{platform} wants to {aspect_phrase}, deleting my account #boycott{tag}",
        "Quitting {platform}. Not letting them {aspect_phrase}. Bye",
        "Deleting my account today. {platform} can't {aspect_phrase}, sorry #delete{tag}",
        "Goodbye {platform}, moving to Flickr. Terrible what they did",
        "Done. Deactivating my account, {platform} is dead to me",
        "Leaving {platform} for good, they want to {aspect_phrase}. Awful #boycott{tag}",
    ],
    "worried": [
        "Not sure I like that {platform} could {aspect_phrase}. Worried",
        "Reading the new {platform} terms and I'm concerned, can they really {aspect_phrase}?",
        "The new {platform} terms are confusing and a bit scary",
    ],
    "defend": [
        "Relax everyone, {platform} is free, of course they need ads. Fine by me",
        "People overreacting about {platform}. Read the terms, it's not that bad",
        "Still love {platform}, the panic is silly",
    ],
    "joke": [
        "{platform} selling my photos of lunch? Good luck with that lol",
        "Can't wait to see my blurry cat pics in a {platform} ad lol",
    ],
    "relief": [
        "So glad {platform} backed down on selling our photos. Good call!",
        "{platform} listened! Thank you for reverting the ad terms",
        "Great news, {platform} drops the plan to {aspect_phrase}. Happy to stay",
        "Good move by {platform}, glad they fixed the terms",
    ],
    "skeptic": [
        "{platform} backed down, but I still don't trust them with my data",
        "Too late {platform}, the damage is done. Still suspicious",
        "They only reverted part of it, {platform} can still {aspect_phrase}. Not happy",
    ],
}
FOREIGN = [
    ("es", "{platform} quiere vender mis fotos. Adiós #boycott{tag}"),
    ("es", "Borrando mi cuenta de {platform}, qué vergüenza"),
    ("de", "{platform} will meine Fotos verkaufen? Ohne mich"),
    ("fr", "{platform} veut vendre mes photos, je supprime mon compte"),
    ("pt", "{platform} vai vender minhas fotos? Que absurdo"),
    ("ja", "{platform}の新しい規約はひどい"),
]
THINGS = ["cat", "dog", "breakfast", "latte", "kid", "garden", "bike", "new shoes"]
HANDLE_PARTS = (
    ["sunny", "quiet", "urban", "lazy", "happy", "indie", "retro", "salty", "pixel", "coastal"],
    ["fox", "lens", "panda", "baker", "runner", "coder", "nomad", "owl", "snap", "mango"],
)
NEWS_OUTLETS = ["technewsdaily", "theverge_sim", "wired_sim", "cnet_sim"]


class SimulatedSource(Source):
    """Yields a simulated backlash for any event, deterministic for a seed; needs no credentials."""

    name = "simulated"

    def __init__(self, config: Config, seed: int = DEFAULT_SEED, posts: int = DEFAULT_POSTS) -> None:
        self.config = config
        self.seed = seed
        self.posts = posts

    @classmethod
    def from_config(cls, config: Config) -> SimulatedSource:
        return cls(config)

    def search(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[Page]:
        """Pages of PAGE_SIZE posts in time order; the cursor is how many were already stored."""
        done = int(cursor.get("position", 0))
        generated = simulate(event, self.config, self.seed, self.posts)
        for start in range(done, len(generated), PAGE_SIZE):
            batch = generated[start : start + PAGE_SIZE]
            yield Page(posts=batch, cursor={"position": str(start + len(batch))}, read=len(batch))


def simulate(event: EventConfig, config: Config, seed: int = DEFAULT_SEED, posts: int = DEFAULT_POSTS) -> list[Post]:
    """The whole simulated backlash for an event, oldest first: the same list for the same seed."""
    rng = random.Random(seed)
    milestones = config.milestones_utc(event)
    start = milestones["announced"].astimezone(UTC) - timedelta(days=event.baseline_days)
    end = max(milestones.values()).astimezone(UTC) + timedelta(days=TAIL_DAYS)
    hours = _hour_starts(start, end)
    moods = [_mood_weights(hour, milestones) for hour in hours]
    counts = _spread(posts, [sum(weights.values()) for weights in moods], rng)
    writer = _PostWriter(event, seed, rng)
    latest = datetime.now(UTC) + FUTURE_SLACK - timedelta(hours=1)
    for hour, weights, count in zip(hours, moods, counts, strict=True):
        if hour > latest:  # an ongoing event: no post from the future (the ones before are the same at any time)
            break
        for offset in sorted(rng.uniform(0, 3600) for _ in range(count)):
            mood = rng.choices(list(weights), weights=list(weights.values()))[0]
            writer.write(hour + timedelta(seconds=offset), mood)
    return writer.posts


def _hour_starts(start: datetime, end: datetime) -> list[datetime]:
    first = start.replace(minute=0, second=0, microsecond=0)
    return [first + timedelta(hours=i) for i in range(int((end - first).total_seconds() // 3600))]


def _mood_weights(hour: datetime, milestones: Mapping[str, datetime]) -> dict[str, float]:
    """Expected posts in this hour by mood, in baseline units, with a daily rhythm (busy US afternoons)."""
    rhythm = 1.0 + 0.6 * math.sin(2 * math.pi * (hour.hour - 13) / 24)
    weights = {"baseline": 1.0}
    for wave in WAVES:
        if wave.milestone in milestones:
            since = (hour - milestones[wave.milestone]).total_seconds() / 3600
            weights[wave.mood] = weights.get(wave.mood, 0.0) + wave.rate(since)
    return {mood: weight * rhythm for mood, weight in weights.items()}


def _spread(total: int, weights: list[float], rng: random.Random) -> list[int]:
    """Split total posts over the hours in proportion to their weights, with Poisson-like noise."""
    noisy = [weight * rng.gammavariate(8.0, 1 / 8.0) for weight in weights]
    scale = total / sum(noisy)
    counts = [int(weight * scale) for weight in noisy]
    remainders = sorted(range(len(noisy)), key=lambda i: noisy[i] * scale - counts[i], reverse=True)
    for index in remainders[: total - sum(counts)]:
        counts[index] += 1
    return counts


class _PostWriter:
    """Turns (time, mood) into Post records: picks authors, texts and reposts of recent originals."""

    def __init__(self, event: EventConfig, seed: int, rng: random.Random) -> None:
        self.event = event
        self.seed = seed
        self.rng = rng
        self.posts: list[Post] = []
        self.originals: list[Post] = []
        self.followers: dict[str, int] = {}

    def write(self, moment: datetime, mood: str) -> None:
        original = self._repost_target(moment) if self.rng.random() < REPOST_SHARE[mood] else None
        if original is not None:
            post = self._repost(moment, original)
        else:
            post = self._original(moment, mood)
            self.originals.append(post)
        self.posts.append(post)

    def _original(self, moment: datetime, mood: str) -> Post:
        kind = self.rng.choices(*zip(*MOOD_MIX[mood], strict=True))[0]
        lang, text = self._text(kind)
        author = self.rng.choice(NEWS_OUTLETS) if kind == "news" else self._author()
        followers = self._followers(author, kind)
        likes = int(followers * self.rng.uniform(0.0, 0.03)) + self.rng.randint(0, 4)
        return self._post(moment, text, author, lang, followers, likes, kind)

    def _repost(self, moment: datetime, original: Post) -> Post:
        author = self._author()
        post = self._post(moment, original.text, author, original.lang, self._followers(author, "repost"), 0, "repost")
        return replace(post, is_repost=True, repost_of=original.id)

    def _post(
        self, moment: datetime, text: str, author: str, lang: str | None, followers: int, likes: int, kind: str
    ) -> Post:
        post_id = f"sim{self.seed}-{len(self.posts):07d}"
        raw = json.dumps({"simulated": True, "seed": self.seed, "kind": kind})
        reposts = int(likes * self.rng.uniform(0.1, 0.5))
        return Post(
            source="simulated", id=post_id, created_at=moment, text=text, author=author, lang=lang,
            likes=likes, reposts=reposts, replies=int(likes * self.rng.uniform(0.0, 0.2)), followers=followers,
            raw=raw, collected_at=moment + timedelta(minutes=5),
        )  # fmt: skip

    def _repost_target(self, moment: datetime) -> Post | None:
        """A recent original, chosen in proportion to its likes: loud posts get shared."""
        recent = [post for post in self.originals[-400:] if moment - post.created_at < REPOST_WINDOW]
        if not recent:
            return None
        return self.rng.choices(recent, weights=[1 + (post.likes or 0) for post in recent])[0]

    def _text(self, kind: str) -> tuple[str, str]:
        platform = self.event.platform
        tag = platform.lower().replace(" ", "")
        if kind == "foreign":
            lang, template = self.rng.choice(FOREIGN)
            return lang, template.format(platform=platform, tag=tag)
        aspect = self.rng.choices(list(ASPECT_PHRASES), weights=[50, 25, 25])[0]
        fills = {"aspect_phrase": self.rng.choice(ASPECT_PHRASES[aspect]), "thing": self.rng.choice(THINGS)}
        return "en", self.rng.choice(TEMPLATES[kind]).format(platform=platform, tag=tag, **fills)

    def _author(self) -> str:
        first, second = self.rng.choice(HANDLE_PARTS[0]), self.rng.choice(HANDLE_PARTS[1])
        return f"{first}{second}{self.rng.randint(1, 400)}"

    def _followers(self, author: str, kind: str) -> int:
        """Followers are heavy-tailed (Pareto) and fixed per author; news outlets are large."""
        if author not in self.followers:
            base = 200_000 if kind == "news" else 40
            self.followers[author] = min(int(base * self.rng.paretovariate(1.2)), 20_000_000)
        return self.followers[author]
