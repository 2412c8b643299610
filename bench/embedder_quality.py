"""Retrieval quality and speed of the memory embedders: contextual MiniLM against its static
distillation (``KEEL_MEMORY_EMBEDDER=minilm`` vs ``minilm-static``).

Speed alone would pick the static table every time; what it costs is meaning that depends on
context. Two retrieval sets with known right answers measure that cost:

- **paraphrase**: 60 agent-memory facts written for this benchmark, each with a query that says
  the same thing in other words (synonyms, another word order, a question instead of a
  statement), among 2,000 distractor sentences of the benchmark corpus (``memory_corpus.py``).
  The right answer is the fact the query paraphrases. This is where a contextual model should
  win: few words are shared.
- **same event**: corpus-grammar sentences (who / did what / to what, plus optional where, when,
  why). 3,000 are stored; each of 300 held-out queries shares its who-did-what-to-what with at
  least one stored sentence and differs in the optional parts. A stored sentence is right when
  its core triple is the query's. This is the held-out-sentence-of-the-same-cluster test.

Printed per embedder and set: hit@1, hit@5 and MRR (exact cosine search, so the index plays no
part), then embedding speed: queries/s over 1,000 corpus sentences and the time to embed one
batch of 50 short queries (what a burst of 50 Retrieve calls embeds), best of 5.

Run: ``python bench/embedder_quality.py [--embedders minilm minilm-static]``. Numbers, no
asserts. The static table is distilled on first use if it is not cached yet (~40 s).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
import memory_corpus  # noqa: E402

Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]

# (stored fact, a query that means the same in other words)
PARAPHRASES: list[tuple[str, str]] = [
    ("The user prefers replies in German.", "Which language should I answer this person in?"),
    ("Alice is allergic to peanuts.", "Does Alice have any food allergies?"),
    (
        "The staging database password rotates every 30 days.",
        "How often do we change the credentials of the test environment DB?",
    ),
    (
        "Deployments are frozen from December 20 until January 3.",
        "Can we ship a release during the Christmas holidays?",
    ),
    (
        "The customer's order 4471 was shipped by DHL on Tuesday.",
        "When did parcel 4471 leave the warehouse and with which courier?",
    ),
    ("Bob manages the London office.", "Who is in charge of our UK branch?"),
    (
        "Our API rate limit is 100 requests per minute per key.",
        "How many calls can a client make to the interface each minute?",
    ),
    (
        "The quarterly board meeting is on the first Monday of April.",
        "When do the directors meet next spring?",
    ),
    (
        "Refunds above 500 euros need approval from finance.",
        "Who has to sign off on a large reimbursement?",
    ),
    (
        "The mobile app crashes when the camera permission is denied.",
        "Why does the phone application close if users refuse photo access?",
    ),
    (
        "Invoices are generated on the last day of each month.",
        "When are bills produced for customers?",
    ),
    ("The user has two cats named Miso and Tofu.", "Does this person own any pets?"),
    (
        "Backups of the production cluster are kept for 90 days.",
        "How long do we retain snapshots of the live system?",
    ),
    ("The VPN certificate expires on March 15.", "When does the remote-access credential run out?"),
    ("Carol prefers meetings after 2 pm.", "What time of day does Carol like to be scheduled?"),
    ("The search service runs on Elasticsearch 8.", "Which engine powers our lookup feature?"),
    (
        "Support tickets must be answered within four hours.",
        "What is the response-time target for customer help requests?",
    ),
    (
        "The CEO is travelling to Tokyo next week.",
        "Where will the chief executive be in the coming days?",
    ),
    ("Password resets are handled by the identity team.", "Who can help me if I forgot my login?"),
    (
        "The kitchen on the third floor is closed for renovation.",
        "Can I make coffee upstairs on level three?",
    ),
    ("The user is vegetarian and does not eat fish.", "Should I suggest a steak restaurant?"),
    (
        "Our main competitor lowered prices by 15 percent.",
        "Did a rival company cut what they charge?",
    ),
    (
        "The nightly report failed because the disk was full.",
        "Why didn't the overnight summary get produced?",
    ),
    ("Dave's birthday is on July 9.", "When should we celebrate Dave turning a year older?"),
    (
        "New employees get a laptop on their first day.",
        "What equipment does a fresh hire receive when they start?",
    ),
    (
        "The contract with Acme renews automatically in June.",
        "Is the Acme agreement extended without us doing anything?",
    ),
    (
        "The user wants summaries kept under 100 words.",
        "How long should my recaps be for this person?",
    ),
    (
        "Latency doubled after the cache was disabled.",
        "What made response times get so much slower?",
    ),
    (
        "The office wifi password is written on the whiteboard.",
        "Where can I find the wireless network key at work?",
    ),
    (
        "The data team uses Snowflake as its warehouse.",
        "Which analytics database do the analysts query?",
    ),
    ("The user lives in Lisbon and works remotely.", "Where is this person based?"),
    ("Eve is on parental leave until September.", "Is Eve available to help this summer?"),
    (
        "The payment provider charges 1.4 percent per transaction.",
        "What fee do we pay on each card purchase?",
    ),
    (
        "Our headquarters moved to a new building in Amsterdam.",
        "Where is the company's main office now?",
    ),
    ("The user dislikes emoji in messages.", "Should I add smileys to my answers?"),
    (
        "The printer on floor two jams with thick paper.",
        "Why does the copier downstairs keep getting stuck?",
    ),
    (
        "Customers in Canada are billed in Canadian dollars.",
        "Which currency do we charge clients north of the US border?",
    ),
    (
        "Frank is the on-call engineer this weekend.",
        "Who should I page if something breaks on Saturday?",
    ),
    (
        "The login page was redesigned to support passkeys.",
        "Can people sign in without a password now?",
    ),
    ("The team lunch is every Thursday at noon.", "When do colleagues eat together each week?"),
    ("The user's daughter starts university in October.", "When does their child begin college?"),
    (
        "The recommendation model was retrained on last month's clicks.",
        "Was the suggestion algorithm updated with recent user behaviour?",
    ),
    ("Grace speaks fluent Japanese and Korean.", "Which Asian languages does Grace know?"),
    (
        "The firewall blocks all inbound traffic on port 22.",
        "Can I SSH into the servers from outside?",
    ),
    (
        "Expense reports must include scanned receipts.",
        "What do I need to attach when claiming costs back?",
    ),
    (
        "The user is training for a marathon in May.",
        "Is this person preparing for a long-distance running race?",
    ),
    (
        "Heidi's flight to Boston was cancelled because of snow.",
        "Why is Heidi not flying to Massachusetts?",
    ),
    (
        "The warehouse in Rotterdam ran out of blue jackets.",
        "Do we still have the navy coats in stock at the Dutch depot?",
    ),
    (
        "Two-factor authentication is mandatory for admins.",
        "Do administrators need a second login step?",
    ),
    ("The user asked not to be contacted on weekends.", "Is it fine to message them on Sunday?"),
    (
        "Ivan wrote the original billing code in Perl.",
        "Who authored the first version of the invoicing scripts?",
    ),
    (
        "The conference room projector needs an HDMI adapter.",
        "What cable do I need to present in the meeting room?",
    ),
    (
        "Shipping to Australia takes about two weeks.",
        "How long does delivery down under usually last?",
    ),
    ("The user is learning to play the cello.", "Does this person study a musical instrument?"),
    (
        "Judy approved the budget for the new data centre.",
        "Who signed off the money for the server facility?",
    ),
    ("Our SLA promises 99.9 percent uptime.", "What availability have we guaranteed to clients?"),
    (
        "The user's favourite cuisine is Thai food.",
        "What kind of restaurant would they enjoy most?",
    ),
    ("Karl broke his arm skiing and works from home.", "Why is Karl not coming into the office?"),
    (
        "The sales team closed a deal with a bank in Zurich.",
        "Did we win a Swiss financial customer?",
    ),
    (
        "Old log files are deleted after 14 days.",
        "How long do we keep application logs before removing them?",
    ),
]

DISTRACTORS = 2000
EVENT_STORED = 3000
EVENT_QUERIES = 300


def paraphrase_set() -> tuple[list[str], list[str], list[set[int]]]:
    """(stored texts, queries, indices of each query's right answers)."""
    facts = [fact for fact, _ in PARAPHRASES]
    stored = facts + memory_corpus.sentences(DISTRACTORS, seed=101)
    return stored, [query for _, query in PARAPHRASES], [{i} for i in range(len(facts))]


def _event(rng: random.Random, core: tuple[str, str, str]) -> str:
    _, _, _, places, times, reasons = memory_corpus.SLOTS
    parts = list(core)
    for optional in (places, times, reasons):
        if rng.random() < 0.6:
            parts.append(rng.choice(optional))
    text = " ".join(parts)
    return text[0].upper() + text[1:] + "."


def event_set() -> tuple[list[str], list[str], list[set[int]]]:
    rng = random.Random(202)
    subjects, verbs, objects = memory_corpus.SLOTS[:3]
    cores = [
        (rng.choice(subjects), rng.choice(verbs), rng.choice(objects)) for _ in range(EVENT_STORED)
    ]
    stored = [_event(rng, core) for core in cores]
    by_core: dict[tuple[str, str, str], set[int]] = {}
    for i, core in enumerate(cores):
        by_core.setdefault(core, set()).add(i)
    queries: list[str] = []
    answers: list[set[int]] = []
    seen = set(stored)
    for core in rng.sample(sorted(by_core), EVENT_QUERIES):
        text = _event(rng, core)
        while text in seen:
            text = _event(rng, core)
        seen.add(text)
        queries.append(text)
        answers.append(by_core[core])
    return stored, queries, answers


def scores(
    encode: Encode, stored: list[str], queries: list[str], answers: list[set[int]]
) -> dict[str, float]:
    docs = encode(stored)
    found = np.argsort(-(encode(queries) @ docs.T), axis=1)
    hit1 = hit5 = rr = 0.0
    for row, right in zip(found, answers, strict=True):
        rank = next(r for r, index in enumerate(row) if int(index) in right)
        hit1 += rank == 0
        hit5 += rank < 5
        rr += 1.0 / (rank + 1)
    n = len(queries)
    return {"hit@1": hit1 / n, "hit@5": hit5 / n, "mrr": rr / n}


def evaluate(encode: Encode) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, build in (("paraphrase", paraphrase_set), ("event", event_set)):
        for key, value in scores(encode, *build()).items():
            out[f"{name} {key}"] = value
    return out


def speed(encode: Encode) -> dict[str, float]:
    texts = memory_corpus.sentences(1000, seed=11)
    queries = memory_corpus.sentences(50, memory_corpus.QUERY_SEED)
    encode(texts[:64])  # warm
    best_all = best_50 = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        encode(texts)
        best_all = min(best_all, time.perf_counter() - started)
        started = time.perf_counter()
        encode(queries)
        best_50 = min(best_50, time.perf_counter() - started)
    return {"per_s": len(texts) / best_all, "batch50_ms": best_50 * 1000}


def encoder(name: str) -> Encode:
    from keel_memory.adapters.minilm import MiniLMEmbedder, find_model_dir

    if name == "minilm":
        return MiniLMEmbedder.load().encode
    from keel_memory.adapters.static import StaticEmbedder

    return StaticEmbedder.load(find_model_dir()).encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", nargs="+", default=["minilm", "minilm-static"])
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"embedder quality: paraphrase ({len(PARAPHRASES)} queries, "
        f"{len(PARAPHRASES) + DISTRACTORS} stored), same event ({EVENT_QUERIES} queries, "
        f"{EVENT_STORED} stored); load average {load[0]:.2f} on {os.cpu_count()} cores"
    )
    header = "paraphrase hit@1/hit@5/MRR | same event hit@1/hit@5/MRR | queries/s | 50 queries"
    print(f"  {'embedder':<14} {header}")
    for name in args.embedders:
        encode = encoder(name)
        q = evaluate(encode)
        s = speed(encode)
        print(
            f"  {name:<14} {q['paraphrase hit@1']:.3f} / {q['paraphrase hit@5']:.3f} / "
            f"{q['paraphrase mrr']:.3f}      | {q['event hit@1']:.3f} / {q['event hit@5']:.3f} / "
            f"{q['event mrr']:.3f}      | {s['per_s']:9,.0f} | {s['batch50_ms']:7.2f} ms"
        )


if __name__ == "__main__":
    main()
