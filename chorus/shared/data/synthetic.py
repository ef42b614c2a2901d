"""The demo data generator: Amazon Customer Reviews TSV with a planted rating model.

What it plants, so that every part of Chorus has something real to find:

* long-tailed activity: users and items are drawn from Zipf-like weights ``(rank + c) ** -s``, so a few
  products and customers have many reviews and most have one or two;
* shopping habits: every product belongs to a family (guitars and accessories, effects and amps, recording,
  keys, drums and more) and three quarters of a customer's reviews fall in their favourite family, so similar
  items are related gear;
* ratings ``round(mu + b_user + b_item + p_user . q_item + noise)`` clipped to 1..5, with a rank-8 interaction
  strong enough that a latent factor model beats bias-only on held-out data;
* musical-instrument product titles (brand, series, product type, model number), helpful/total votes, and
  headlines and bodies written the way real reviews carry a rating: praise, lukewarm verdicts and complaints
  about the product and how it sounds (:data:`PRAISE`, :data:`MIXED`, :data:`COMPLAINT` and their per-family
  lists), drawn with odds that follow the stars (:data:`TONE_BY_STAR`) -- never the star count as words -- so a
  text model learns "broke after a week" and "stayed in tune", and a four-star review may still name a flaw;
* about 90% verified purchases, with what sets the others apart in real Amazon data (He, Hollenbeck and
  Proserpio, "The Market for Fake Reviews", 2022; Amazon's 2016 ban of incentivized reviews): unverified reviews
  lean to high stars (:data:`VERIFIED_BY_STAR`) and :data:`DISCLOSED_SHARE` of them say the product came free
  (:data:`DISCLOSURE`, in place of the review's fact, of similar length, so that the text, not its length,
  tells), so the verified-purchase classifier has something to find.

Every (customer, product) pair is distinct and the output has exactly ``n_reviews`` data rows. The same seed
gives the same file.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from chorus.shared.contract.errors import InvalidInput
from chorus.shared.data.rows import TSV_HEADER
from chorus.shared.progress import Progress

BRANDS = (
    "Fender",
    "Yamaha",
    "Gibson",
    "Ibanez",
    "Roland",
    "Korg",
    "Shure",
    "Boss",
    "Ernie Ball",
    "D'Addario",
    "Martin",
    "Taylor",
    "Epiphone",
    "Squier",
    "Casio",
    "Behringer",
    "Audio-Technica",
    "Zildjian",
    "Pearl",
    "Ludwig",
    "Marshall",
    "Vox",
    "Orange",
    "PRS",
    "Gretsch",
    "Dunlop",
    "Planet Waves",
    "Snark",
    "Hohner",
    "Nord",
    "Akai",
    "Novation",
    "Sennheiser",
    "Elixir",
    "Levy's",
    "Hercules",
    "On-Stage",
    "Kyser",
)
SERIES = (
    "Classic",
    "Pro",
    "Studio",
    "Vintage",
    "Deluxe",
    "Standard",
    "Player",
    "Signature",
    "Artist",
    "Performer",
    "Road",
    "Stage",
    "Custom",
    "Select",
    "Essential",
    "Limited",
    "Elite",
    "Junior",
)
PRODUCTS = (
    "Electric Guitar",
    "Acoustic Guitar",
    "Bass Guitar",
    "Ukulele",
    "Guitar Strings",
    "Bass Strings",
    "Guitar Tuner",
    "Capo",
    "Guitar Strap",
    "Guitar Picks (12 Pack)",
    "Instrument Cable",
    "Overdrive Pedal",
    "Distortion Pedal",
    "Delay Pedal",
    "Reverb Pedal",
    "Chorus Pedal",
    "Looper Pedal",
    "Guitar Amplifier",
    "Bass Amplifier",
    "Dynamic Microphone",
    "Condenser Microphone",
    "Microphone Stand",
    "Pop Filter",
    "Studio Headphones",
    "Digital Piano",
    "MIDI Keyboard Controller",
    "Synthesizer",
    "Drum Sticks",
    "Cymbal Pack",
    "Snare Drum",
    "Practice Pad",
    "Harmonica",
    "Guitar Stand",
    "Gig Bag",
    "Hard Case",
    "Audio Interface",
    "Metronome",
    "Sustain Pedal",
    "String Winder",
    "Fretboard Conditioner",
)
#: Product families: a reviewer mostly shops in one, so "people who bought X also bought Y" finds related gear.
FAMILIES = (
    (
        "Electric Guitar",
        "Acoustic Guitar",
        "Bass Guitar",
        "Ukulele",
        "Guitar Strings",
        "Bass Strings",
        "Guitar Tuner",
        "Capo",
        "Guitar Strap",
        "Guitar Picks (12 Pack)",
        "Guitar Stand",
        "Gig Bag",
        "Hard Case",
        "String Winder",
        "Fretboard Conditioner",
    ),
    (
        "Instrument Cable",
        "Overdrive Pedal",
        "Distortion Pedal",
        "Delay Pedal",
        "Reverb Pedal",
        "Chorus Pedal",
        "Looper Pedal",
        "Guitar Amplifier",
        "Bass Amplifier",
    ),
    (
        "Dynamic Microphone",
        "Condenser Microphone",
        "Microphone Stand",
        "Pop Filter",
        "Studio Headphones",
        "Audio Interface",
    ),
    ("Digital Piano", "MIDI Keyboard Controller", "Synthesizer", "Sustain Pedal", "Metronome"),
    ("Drum Sticks", "Cymbal Pack", "Snare Drum", "Practice Pad", "Harmonica"),
)
FAMILY_OF_PRODUCT = {p: f for f, members in enumerate(FAMILIES) for p in members}
COLORS = ("Black", "Sunburst", "Natural", "Red", "White", "Blue", "Silver", "Tobacco Burst", "Walnut")

#: What a reviewer calls each kind of product ("great strings", "cheap pedal").
NOUN = {
    "Electric Guitar": "guitar",
    "Acoustic Guitar": "guitar",
    "Bass Guitar": "bass",
    "Ukulele": "uke",
    "Guitar Strings": "strings",
    "Bass Strings": "strings",
    "Guitar Tuner": "tuner",
    "Capo": "capo",
    "Guitar Strap": "strap",
    "Guitar Picks (12 Pack)": "picks",
    "Instrument Cable": "cable",
    "Overdrive Pedal": "pedal",
    "Distortion Pedal": "pedal",
    "Delay Pedal": "pedal",
    "Reverb Pedal": "pedal",
    "Chorus Pedal": "pedal",
    "Looper Pedal": "looper",
    "Guitar Amplifier": "amp",
    "Bass Amplifier": "amp",
    "Dynamic Microphone": "mic",
    "Condenser Microphone": "mic",
    "Microphone Stand": "stand",
    "Pop Filter": "filter",
    "Studio Headphones": "headphones",
    "Digital Piano": "piano",
    "MIDI Keyboard Controller": "keyboard",
    "Synthesizer": "synth",
    "Drum Sticks": "sticks",
    "Cymbal Pack": "cymbals",
    "Snare Drum": "snare",
    "Practice Pad": "pad",
    "Harmonica": "harmonica",
    "Guitar Stand": "stand",
    "Gig Bag": "bag",
    "Hard Case": "case",
    "Audio Interface": "interface",
    "Metronome": "metronome",
    "Sustain Pedal": "pedal",
    "String Winder": "winder",
    "Fretboard Conditioner": "conditioner",
}

#: The opinions a review is written from, as short clauses ("{n}": the product's noun): praise, a mixed or lukewarm
#: verdict, a complaint. Each kind of review draws its clauses, and its headline, from these with the odds of
#: :data:`TONE_BY_STAR`, so the text carries the rating the way real reviews do: through what is said about the
#: product, never the star count itself, and with the noise of a four-star review that names a flaw.
PRAISE = (
    "great {n}",
    "love this {n}",
    "best {n} I have owned",
    "excellent {n} for the price",
    "really nice {n}",
    "works great",
    "works perfectly",
    "sounds amazing",
    "sounds great",
    "very well made",
    "solid build",
    "feels sturdy",
    "easy to use",
    "easy to set up",
    "great value",
    "worth every penny",
    "highly recommend it",
    "would buy again",
    "exactly as described",
    "does exactly what it should",
    "no complaints at all",
    "very happy with it",
)
MIXED = (
    "okay for the price",
    "does the job",
    "nothing special",
    "decent for a beginner",
    "average quality",
    "fine for practice",
    "good enough",
    "a bit pricey",
    "a little noisy",
    "takes some getting used to",
    "could be better",
    "tone is just okay",
    "not bad",
)
COMPLAINT = (
    "broke after a week",
    "stopped working after a month",
    "cheaply made",
    "feels flimsy",
    "arrived damaged",
    "had to return it",
    "waste of money",
    "not worth the price",
    "would not buy again",
    "fell apart",
    "poor quality",
    "very disappointed",
    "dead on arrival",
    "cheap {n}",
    "does not work at all",
)
#: What each product family's reviews say about how it sounds and plays, by the same three tones.
FAMILY_PRAISE = (
    ("bright tone", "warm tone", "stayed in tune", "holds its tuning", "plays beautifully", "nice low action"),
    ("warm tone", "great sustain", "quiet, no hum", "rich, full sound", "knobs feel solid", "clean and clear"),
    ("clear sound", "crisp highs", "no background noise", "comfortable to wear", "plug and play", "clean and clear"),
    ("keys feel great", "nice weighted keys", "sounds like a real piano", "plug and play", "rich, full sound"),
    ("great rebound", "nice balance", "loud and clear", "lasted for months", "bright tone"),
)
FAMILY_MIXED = (
    ("strings went dull in a month", "action is a bit high", "tuners are okay"),
    ("a little hiss at high gain", "knobs are small", "tone is a bit dark"),
    ("a little hiss", "cable is short", "gets warm after an hour"),
    ("keys are a bit light", "speakers are weak", "menus take time to learn"),
    ("a bit heavy", "tone is a bit dull", "finish wore off"),
)
FAMILY_COMPLAINT = (
    ("sounds thin", "buzzes", "will not stay in tune", "strings went dead fast", "sharp fret ends", "tuning pegs slip"),
    ("hums", "crackles", "buzzes", "sounds thin", "knobs came loose", "noisy jack", "too much hiss"),
    ("crackles", "lots of hiss", "muffled sound", "drops out", "hurts my ears", "cable came loose"),
    ("keys stick", "sounds thin", "some keys are dead", "driver issues", "keys clack loudly"),
    ("broke after a week", "chipped quickly", "splintered", "sounds dull", "buzzes"),
)
HEADLINE_PRAISE = (
    "Great {n}",
    "Love it",
    "Excellent",
    "Works great",
    "Highly recommended",
    "Sounds great",
    "Great value",
    "Just what I needed",
    "Perfect",
    "Very happy",
    "Awesome {n}",
)
HEADLINE_MIXED = ("Okay", "Decent {n}", "Does the job", "Not bad", "Good enough for the price", "It is fine", "Average")
HEADLINE_COMPLAINT = (
    "Broke quickly",
    "Disappointed",
    "Junk",
    "Returned it",
    "Do not buy",
    "Poor quality",
    "Not worth it",
    "Cheap {n}",
    "Stopped working",
)
#: Facts that say nothing of the product's quality; one of them in every review.
FACTS = (
    "bought it for my son",
    "use it every day",
    "arrived on time",
    "got it as a gift",
    "use it at gigs",
    "replaced my old one",
    "bought two of them",
    "for home practice",
    "ordered a second one",
    "shipping was quick",
)
#: P(praise), P(mixed), P(complaint) of each clause and the headline, by the star rating (row 0 unused).
TONE_BY_STAR = (
    (0.0, 0.0, 0.0),
    (0.02, 0.08, 0.90),
    (0.08, 0.32, 0.60),
    (0.25, 0.55, 0.20),
    (0.75, 0.20, 0.05),
    (0.92, 0.06, 0.02),
)
#: Share of the reviews that give three opinions rather than two (besides one fact).
THIRD_OPINION = 0.5

EPOCH_START = np.datetime64("2009-01-01", "D")
EPOCH_DAYS = 2434  # to 2015-08-31, the end of the public TSV dumps


@dataclass(frozen=True)
class PlantedModel:
    """The generator's ground truth, documented so tests and benchmarks can reason about it."""

    mu: float = 4.0
    user_bias_sd: float = 0.35
    item_bias_sd: float = 0.45
    rank: int = 8
    factor_sd: float = 0.46  # interaction sd is about sqrt(rank) * factor_sd**2 = 0.6
    noise_sd: float = 0.55
    user_zipf: float = 1.0
    item_zipf: float = 0.9
    family_affinity: float = 0.75  # share of a reviewer's reviews drawn from their favourite product family


#: P(verified purchase | stars), for 1..5 stars (index 0 unused): about 90% overall on the generated star mix.
VERIFIED_BY_STAR = (0.0, 0.96, 0.95, 0.94, 0.91, 0.87)
#: Share of the unverified reviews whose body says :data:`DISCLOSURE`.
DISCLOSED_SHARE = 0.5
DISCLOSURE = "free sample"


def _zipf_weights(n: int, s: float, offset: float, rng: np.random.Generator) -> np.ndarray:
    w = (np.arange(n) + offset) ** -s
    w = w[rng.permutation(n)]  # popular ids are scattered, not the first ones
    weights: NDArray[np.float64] = w / w.sum()
    return weights


def _base36(values: np.ndarray, width: int) -> np.ndarray:
    digits = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    out = np.empty((values.size, width), dtype="<U1")
    v = values.astype(np.int64).copy()
    for pos in range(width - 1, -1, -1):
        out[:, pos] = digits[v % 36]
        v //= 36
    return np.array(["".join(r) for r in out.tolist()])


@dataclass(frozen=True)
class _Pool:
    """Lists of strings, one per (product kind, tone), stored end to end: the list of kind ``k`` (an index of
    :data:`PRODUCTS`) and tone ``t`` (0 praise, 1 mixed, 2 complaint) is ``text[start[k, t]:][:size[k, t]]``."""

    text: list[str]
    start: np.ndarray  # int64 (n_products, 3)
    size: np.ndarray  # int64 (n_products, 3)

    @classmethod
    def of(cls, lists: list[tuple[list[str], list[str], list[str]]]) -> _Pool:
        size = np.array([[len(tone) for tone in kind] for kind in lists], dtype=np.int64)
        start = (np.cumsum(size.ravel()) - size.ravel()).reshape(size.shape)
        return cls([t for kind in lists for tone in kind for t in tone], start, size)


def _pools() -> tuple[_Pool, _Pool]:
    """The headlines and the opinion clauses that a review of each product kind is written from, with the product's
    noun filled in."""
    heads, clauses = [], []
    general = (PRAISE, MIXED, COMPLAINT)
    for name in PRODUCTS:
        family, noun = FAMILY_OF_PRODUCT[name], NOUN[name]
        own = (FAMILY_PRAISE[family], FAMILY_MIXED[family], FAMILY_COMPLAINT[family])
        heads.append(
            (
                [h.format(n=noun) for h in HEADLINE_PRAISE],
                [h.format(n=noun) for h in HEADLINE_MIXED],
                [h.format(n=noun) for h in HEADLINE_COMPLAINT],
            )
        )
        praise, mixed, complaint = ([c.format(n=noun) for c in (*g, *o)] for g, o in zip(general, own, strict=True))
        clauses.append((praise, mixed, complaint))
    return _Pool.of(heads), _Pool.of(clauses)


class _Said(NamedTuple):
    """What each review says, as lists of indices (n,) into :func:`_pools`' strings and :data:`FACTS`."""

    headline: list[int]
    opinions: tuple[list[int], list[int], list[int]]  # two or three distinct clauses; the third -1 where none
    fact: list[int]  # len(FACTS): the disclosure
    fact_first: list[bool]


POOLS = _pools()


def _texts(stars: np.ndarray, kind: np.ndarray, disclosed: np.ndarray, rng: np.random.Generator) -> _Said:
    """What each review says: a headline and two or three distinct opinion clauses, each of a tone drawn with the
    odds of :data:`TONE_BY_STAR`, and a fact (the disclosure where ``disclosed``), first or last.

    ``stars``: int (n,) 1..5; ``kind``: int (n,) the product kind of each review; ``disclosed``: bool (n,).
    """
    n = stars.size
    heads, clauses = POOLS
    odds = np.cumsum(np.asarray(TONE_BY_STAR), axis=1)[stars]  # (n, 3): P(praise), P(praise or mixed), 1
    tones = (rng.random((n, 4))[:, :, None] >= odds[:, None, :2]).sum(axis=2)  # (n, 4): headline, 3 opinions
    draws = rng.random((n, 4))
    size = heads.size[kind, tones[:, 0]]
    head = heads.start[kind, tones[:, 0]] + (draws[:, 0] * size).astype(np.int64)
    start, size = clauses.start[kind[:, None], tones[:, 1:]], clauses.size[kind[:, None], tones[:, 1:]]
    which = (draws[:, 1:] * size).astype(np.int64)
    for j in (1, 2):  # a clause drawn twice in one review: the next one of its list instead
        for _ in range(j):
            dup = ((start[:, :j] + which[:, :j]) == (start[:, [j]] + which[:, [j]])).any(axis=1)
            which[dup, j] = (which[dup, j] + 1) % size[dup, j]
    said = start + which
    said[rng.random(n) >= THIRD_OPINION, 2] = -1
    fact = np.where(disclosed, len(FACTS), rng.integers(0, len(FACTS), n))
    first = rng.random(n) < 0.5
    return _Said(
        head.tolist(), (said[:, 0].tolist(), said[:, 1].tolist(), said[:, 2].tolist()), fact.tolist(), first.tolist()
    )


def _pairs(n: int, n_users: int, n_items: int, item_family: np.ndarray, model: PlantedModel, rng: np.random.Generator):
    """Exactly ``n`` distinct (user, item) pairs, drawn from the long-tailed weights; a share
    ``family_affinity`` of each user's items comes from the user's favourite family."""
    pu = _zipf_weights(n_users, model.user_zipf, 10.0, rng)
    pi = _zipf_weights(n_items, model.item_zipf, 5.0, rng)
    n_families = len(FAMILIES)
    favourite = rng.integers(0, n_families, n_users)
    members = [np.flatnonzero(item_family == f) for f in range(n_families)]
    weights = [pi[m] / pi[m].sum() if m.size else None for m in members]
    keys = np.zeros(0, dtype=np.int64)
    for _attempt in range(50):
        need = n - keys.size
        if need <= 0:
            break
        m = int(need * 1.3) + 64
        u = rng.choice(n_users, m, p=pu).astype(np.int64)
        it = rng.choice(n_items, m, p=pi)
        in_family = rng.random(m) < model.family_affinity
        for f in range(n_families):
            pick = np.flatnonzero(in_family & (favourite[u] == f))
            if pick.size and members[f].size:
                it[pick] = rng.choice(members[f], pick.size, p=weights[f])
        cand = u * n_items + it
        allk = np.concatenate([keys, cand])
        _, first = np.unique(allk, return_index=True)
        keys = allk[np.sort(first)]
    if keys.size < n:  # the head is saturated: fill the rest uniformly from unused pairs
        taken = set(keys.tolist())
        extra = [k for k in rng.permutation(n_users * n_items).tolist() if k not in taken][: n - keys.size]
        keys = np.concatenate([keys, np.array(extra, dtype=np.int64)])
    keys = keys[:n]
    return keys // n_items, keys % n_items


def generate_reviews(
    out: str | os.PathLike[str], n_reviews: int, seed: int = 0, model: PlantedModel | None = None, progress: bool = True
) -> Path:
    """Write ``n_reviews`` rows of Amazon TSV (gzip when ``out`` ends in ``.gz``) and return the path.

    The file is written beside ``out`` under a temporary name and moved into place when complete.
    """
    if n_reviews < 1:
        raise InvalidInput(f"--reviews must be at least 1, got {n_reviews}")
    model = model or PlantedModel()
    rng = np.random.default_rng(seed)
    n_users = max(20, n_reviews // 6)
    n_items = max(20, n_reviews // 25)
    product = rng.integers(0, len(PRODUCTS), n_items)
    item_family = np.array([FAMILY_OF_PRODUCT[PRODUCTS[p]] for p in product.tolist()])
    users, items = _pairs(n_reviews, n_users, n_items, item_family, model, rng)

    bu = rng.normal(0, model.user_bias_sd, n_users)
    bi = rng.normal(0, model.item_bias_sd, n_items)
    P = rng.normal(0, model.factor_sd, (n_users, model.rank))
    Q = rng.normal(0, model.factor_sd, (n_items, model.rank))
    raw = model.mu + bu[users] + bi[items] + np.einsum("ij,ij->i", P[users], Q[items])
    raw += rng.normal(0, model.noise_sd, n_reviews)
    stars = np.clip(np.rint(raw), 1, 5).astype(np.int64)

    customer_ids = (np.arange(n_users, dtype=np.int64) * 7919 + 1_234_567) % 90_000_000 + 10_000_000
    product_ids = np.char.add("B0", _base36((np.arange(n_items, dtype=np.int64) * 1_000_003 + 77_777) % 36**8, 8))
    parents = (np.arange(n_items, dtype=np.int64) * 104_729 + 5_000_000) % 900_000_000 + 100_000_000
    titles = np.array(
        [
            f"{BRANDS[b]} {SERIES[s]} {PRODUCTS[p]}, {COLORS[c]} (Model {m})"
            for b, s, p, c, m in zip(
                rng.integers(0, len(BRANDS), n_items).tolist(),
                rng.integers(0, len(SERIES), n_items).tolist(),
                product.tolist(),
                rng.integers(0, len(COLORS), n_items).tolist(),
                rng.integers(100, 1000, n_items).tolist(),
                strict=True,
            )
        ]
    )
    review_ids = np.char.add("R", _base36((np.arange(n_reviews, dtype=np.int64) * 2_654_435_761 + 99) % 36**12, 12))
    total_votes = rng.geometric(0.45, n_reviews) - 1
    helpful_votes = rng.binomial(total_votes, 0.7)
    # one uniform draw per review decides both, so the rest of the file is what it was with a flat 90% rate
    draw = rng.random(n_reviews)
    p_verified = np.asarray(VERIFIED_BY_STAR)[stars]
    verified = np.where(draw < p_verified, "Y", "N")
    disclosed = draw >= p_verified + (1.0 - p_verified) * (1.0 - DISCLOSED_SHARE)
    vine = np.where(rng.random(n_reviews) < 0.01, "Y", "N")
    dates = (EPOCH_START + rng.integers(0, EPOCH_DAYS, n_reviews)).astype(str)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    opener = (
        (lambda p: gzip.open(p, "wt", encoding="utf-8", compresslevel=5, newline="\n"))
        if out.name.endswith(".gz")
        else (lambda p: open(p, "w", encoding="utf-8", newline="\n"))
    )
    chunk = 100_000
    # Python lists: element access on them is several times cheaper than on numpy arrays in this loop.
    stars_l, users_l, items_l = stars.tolist(), users.tolist(), items.tolist()
    cust_l, prod_l, par_l, title_l = customer_ids.tolist(), product_ids.tolist(), parents.tolist(), titles.tolist()
    rid_l, hv_l, tv_l = review_ids.tolist(), helpful_votes.tolist(), total_votes.tolist()
    ver_l, vine_l, date_l = verified.tolist(), vine.tolist(), dates.tolist()
    text = _texts(stars, product[items], disclosed, rng)
    head_l, (first_said, second_said, third_said), fact_l, first_l = text
    heads, clauses = POOLS
    # the strings of the pools as the body uses them: the first clause capitalised, the third with its comma (and ""
    # at index -1, for a review without one), the facts as sentences
    opening = [f"{c[0].upper()}{c[1:]}" for c in clauses.text]
    third = [f", {c}" for c in clauses.text] + [""]
    middle, headline = clauses.text, heads.text
    facts = [f"{f[0].upper()}{f[1:]}." for f in FACTS] + [f"Got it as a {DISCLOSURE}."]
    try:
        with opener(tmp) as f, Progress(f"generating {out.name}", total=n_reviews) as bar:
            bar.enabled = bar.enabled and progress
            f.write("\t".join(TSV_HEADER) + "\n")
            for lo in range(0, n_reviews, chunk):
                hi = min(n_reviews, lo + chunk)
                rows = []
                for r in range(lo, hi):
                    s = stars_l[r]
                    said = f"{opening[first_said[r]]}, {middle[second_said[r]]}{third[third_said[r]]}."
                    body = f"{facts[fact_l[r]]} {said}" if first_l[r] else f"{said} {facts[fact_l[r]]}"
                    u, i = users_l[r], items_l[r]
                    rows.append(
                        f"US\t{cust_l[u]}\t{rid_l[r]}\t{prod_l[i]}\t{par_l[i]}\t{title_l[i]}\t"
                        f"Musical Instruments\t{s}\t{hv_l[r]}\t{tv_l[r]}\t{vine_l[r]}\t"
                        f"{ver_l[r]}\t{headline[head_l[r]]}\t{body}\t{date_l[r]}\n"
                    )
                f.write("".join(rows))
                bar.update(hi)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
