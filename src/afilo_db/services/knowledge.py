"""Knowledge search for the chat bot: three ranked lists gathered in one statement, and a
calibrated relevance that orders them and lets a caller say "no good match" instead of citing
unrelated passages.

The lists, built inside PostgreSQL:
- lexical: the passages holding any of the question's rarest terms (its lexemes, stop words
  dropped, misspelt words read as the nearest word the base holds, the question never parsed as
  search operators), scored like BM25 with binary term frequency: the sum of the inverse
  document frequency (from `knowledge_terms`) of the terms it holds, terms in its title counting
  `TITLE_BOOST` more. Chunks are of similar length, so length normalisation adds little.
- codes: passages holding the question's code-like tokens (AF-E410, CLERK_SECRET_KEY,
  tailwind.config.ts, SKUs) as exact phrases of the full-text index, wherever they stand in it.
- vector: nearest neighbours by cosine distance (HNSW, only vectors of the question's model); a
  long question is embedded as several windows, each passage keeping its best distance.
All three read what the question asks: all of a short one, the windows of a long one (an email's
background is left out).

Every candidate gets a reciprocal rank fusion score (each list's share reported) and a relevance
in [0, 1]: a logistic model, fitted on labelled questions, of its cosine similarity, the share of
the question's term weight it holds and the code-like tokens it holds or lacks. Results are
ordered by relevance, ties by the fused score (more lists agreeing), never by a row id first;
passages below `min_relevance` are dropped.

What the caller may see is enforced twice: the statement keeps published passages only (unless
`include_unpublished`, for operators), and row-level security shows the application role
nothing else whatever the statement says.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from sqlalchemy.orm import Session

from afilo_db import rules
from afilo_db.db import hot
from afilo_db.errors import ValidationError
from afilo_db.knowledge import ingestion
from afilo_db.knowledge.chunking import (
    SENTENCE_END,
    Document,
    Section,
    chunk_document,
    count_tokens,
)
from afilo_db.knowledge.embedders import (
    MINILM_MODEL,
    Embedder,
    Relevance,
    Vectors,
    english_words,
    get_embedder,
    installed_file,
    query_vectors,
    relevance_of,
    to_pgvector_text,
)
from afilo_db.once import once_per_arguments

SEARCH_MODES: Final = ("hybrid", "fulltext", "vector")
# Reciprocal rank fusion, 1 / (RRF_K + rank) summed over the lists that found a passage: each
# list's contribution is reported, and it breaks ties of relevance. Ordering by the relevance
# model (below) beat every RRF weighting tried on the tune split (docs/knowledge-search.md).
RRF_K: Final = 60
# A question term in a passage's title counts this much more than one in its body: titles say
# what a passage is about, bodies mention things in passing.
TITLE_BOOST: Final = 0.5
# A term's weight is BM25's inverse document frequency, ln(1 + (C - n + 0.5) / (n + 0.5)), with
# n its published passages (knowledge_terms) capped at C. Terms in C passages or more weigh next
# to nothing and select no candidates; they still count in a passage's coverage.
COMMON_TERM_PASSAGES: Final = 1000
# Candidates of the lexical list come from the question's rarest terms, taken rarest first while
# their passages add up to at most this many: a long question of many fairly common words reads
# a bounded number of passages. The sample knowledge base's questions stay well under it.
SELECTED_POSTINGS: Final = 2000
# Each list contributes this many candidates per passage asked for (at least 40).
CANDIDATES_PER_RESULT: Final = 4
MIN_CANDIDATES: Final = 40
# HNSW's search breadth. bench.knowledge at 200,000 synthetic chunks, index m 16 and
# ef_construction 200 (revision 0007): recall@10 against exact search 0.73 / 0.88 / 0.96 / 0.98
# at 40 / 100 / 200 / 400. Iterative scans keep filtered searches (content type, published) from
# coming back short.
EF_SEARCH: Final = 200
MAX_QUESTION_CHARS: Final = 2000
MAX_LIMIT: Final = 100
# A question longer than this (in chunking's tokens: words and punctuation) is embedded as
# windows of at most QUESTION_WINDOW_TOKENS (see question_windows), each searched, each passage
# keeping its best distance: the model reads 256 WordPiece tokens.
LONG_QUESTION_TOKENS: Final = 120
QUESTION_WINDOW_TOKENS: Final = 60
# The relevance: a logistic model of the probability that a passage answers the question, from
# its cosine similarity to the question, the share of the question's term weight it holds, and
# the share of the question's code-like tokens it holds (or that it holds none of them). It
# orders the results. Its constants are the question's model's (`Relevance`, carried by the
# embedder: each model's similarities have their own scale), fitted on the tune split of
# tests/knowledge/questions.json by `python -m bench.knowledge --quality-only --tune [--model
# NAME]`. The threshold: near the best balanced accuracy on the tune split (answerable questions
# answered, the others refused), which moves from run to run (docs/knowledge-search.md, "No good
# match"); one serves every model, as each model's constants calibrate its probability.
RELEVANCE_THRESHOLD: Final = 0.05
# Code-like tokens: a letter and a digit, an underscore, a dot, colon, slash, equals or at sign
# between two characters, or a lower-to-upper case change (ThemeToggle). Surrounding quotes and
# sentence punctuation are not part of the token.
_TOKEN: Final = re.compile(r"\S+")
_CODE_EDGES: Final = "\"'()[]{}<>,;:.!?"
_HAS_LETTER: Final = re.compile(r"[A-Za-z]")
_CODE_SHAPE: Final = re.compile(r"\d|_|\w[./:=@]\w|^/\w|[a-z][A-Z]")

# Spelling: a question word (an alphabetic lexeme of at least MIN_CORRECTED_LETTERS) that no
# published passage holds is read as the nearest lexeme that some passage holds, by optimal
# string alignment distance (a swapped pair of adjacent letters counts one edit): one edit for
# words of up to LONG_WORD_LETTERS - 1 letters, two beyond. Shorter words are left alone: one
# edit from a four-letter word reaches too many real ones ("tall" is one from "tabl", "feed" from
# "fee"). Candidates share the word's first two letters (slips seldom hit them, and the primary
# key then reads a short range) and are within two letters of its length; ties go to the lexeme
# more passages hold. Codes are never corrected: they hold digits or punctuation, and a code the
# base does not hold must stay unknown. Nor are English words (`english_words`, the model's
# word list): "receipt" or "anything" is a word the base does not use, not a slip.
MIN_CORRECTED_LETTERS: Final = 5
# Endings of English inflections the word list leaves to its word pieces ("complain" + "s"). Not
# a bare "d": "corruptd" is a slip for "corrupted", not an inflection of "corrupt".
INFLECTION_ENDINGS: Final = ("s", "es", "ed", "ing", "ly")
LONG_WORD_LETTERS: Final = 7
# At most MAX_CORRECTED_WORDS words of a question (its longest unknown ones) are corrected,
# each against at most SPELLING_CANDIDATES lexemes (the ones most passages hold): the distance
# is computed here, in Python, so the work must stay bounded whatever the vocabulary (a
# vocabulary can hold tens of thousands of lexemes under one two-letter prefix).
MAX_CORRECTED_WORDS: Final = 4
SPELLING_CANDIDATES: Final = 100
# Other spellings: customers write "license", "color", "customize", "organization" where the
# documents say "licence", "colour", "customising", "organisation", or the other way round, and
# the English stemmer gives the two spellings different lexemes. Each question word with a British
# or American spelling of its own is searched in both (one term, its lexemes OR-ed). The pairs
# are those of `eng`'s maintained list (British -> American) that are single words at most
# SPELLING_VARIANT_EDITS apart: the list also pairs different words of the two countries
# ("rubbish" and "garbage", "quarter" and "fourth"), synonyms that are more edits apart and
# that a search should not read as the same word.
SPELLING_VARIANT_EDITS: Final = 2
_VARIANTS_DISTRIBUTION: Final = "eng"
_VARIANTS_FILE: Final = "eng/words.txt"
_VARIANTS_SHA256: Final = "ea75b84df3f9c3dcc855c01e3b95323c627c632f561f88787ecc864a11ce75e4"
SPELLING_SQL: Final = """
SELECT unknown, candidate.lexeme, candidate.passages
FROM (
  SELECT unknown
  FROM unnest(tsvector_to_array(to_tsvector('english', %(question)s))) AS unknown
  WHERE unknown ~ %(correctable)s
    AND NOT EXISTS (SELECT FROM knowledge_terms known WHERE known.lexeme = unknown)
    AND unknown <> ALL (tsvector_to_array(to_tsvector('english', %(english)s)))
  ORDER BY length(unknown) DESC, unknown
  LIMIT %(max_corrected_words)s
) misspelt
CROSS JOIN LATERAL (
  SELECT kt.lexeme, kt.passages
  FROM knowledge_terms kt
  WHERE kt.lexeme >= left(unknown, 2) AND kt.lexeme < left(unknown, 2) || 'zzzz'
    AND left(kt.lexeme, 2) = left(unknown, 2)
    AND length(kt.lexeme) BETWEEN length(unknown) - 2 AND length(unknown) + 2
    AND kt.lexeme ~ '^[a-z]+$'
  ORDER BY kt.passages DESC, kt.lexeme
  LIMIT %(spelling_candidates)s
) candidate
"""

# The statement before the search, one round trip: the model whose vectors the knowledge base
# holds (the question is embedded by it; see active_model), the question's misspelt lexemes with
# their candidate corrections (none when max_corrected_words is 0), and the caller's
# plan_cache_mode, which the search statement puts back after SEARCH_SETTINGS_SQL changed it.
# Reads only: the caller's transaction is as it was if the model then fails.
SEARCH_SETUP_SQL: Final = f"""
SELECT settings.active_model, misspelt.unknown, misspelt.lexeme, misspelt.passages,
       settings.caller_plan_cache_mode
FROM (
  SELECT current_setting('plan_cache_mode') AS caller_plan_cache_mode,
         coalesce(({ingestion.ACTIVE_MODEL_SQL}), %(default_model)s) AS active_model
) settings
LEFT JOIN ({SPELLING_SQL}) misspelt ON true
"""

# Sent with the search statement, before it, in its round trip (a pipeline): the HNSW settings
# and a generic plan for the search statement (see SEARCH_SQL), transaction-local: in the
# caller's transaction they hold until its end (the plan mode until the search statement puts
# the caller's back), and a search run on its own ends them with its round trip.
SEARCH_SETTINGS_SQL: Final = """
SELECT set_config('hnsw.ef_search', %(ef_search)s, true),
       set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('plan_cache_mode', 'force_generic_plan', true)
"""

_FILTERS = """
      AND (CAST(%(types)s AS text[]) IS NULL OR kb.content_type = ANY(CAST(%(types)s AS text[])))
      AND (kb.is_published OR %(include_unpublished)s)"""

# The question's lexemes are quoted as tsquery literals (quotes and backslashes doubled), so no
# word of it is ever read as an operator. `|| ':' || 'A'` restricts a term to titles (weight A);
# written `':A'` it would read as a bind parameter. A term is a lexeme of the question (its
# correction, when misspelt) or any of its other spellings' lexemes (licence: 'licenc' |
# 'licens'), its passages those of all of them. A term's passages come from knowledge_terms
# (kept by a trigger on knowledge_base), not from the GIN index, which would read every passage
# of a common word to count them. Candidates come from the rarest terms only, at most
# selected_postings passages in all, so that a question of common words reads few passages.
# `evidence` is MATERIALIZED: inlined, its similarity subquery ran once per reference to it.
# Planned once per connection: the statement is prepared and its plan generic (SEARCH_SETUP_SQL
# sets plan_cache_mode for it; PostgreSQL's own choice kept re-planning it per call, a large share
# of its time: docs/knowledge-search.md). So the LIMITs are literals of its text (search_statement),
# not parameters: a generic plan cannot see a parameter's value, and planned for a tenth of the
# table it read far more. The caller's plan_cache_mode is put back by the statement's first
# step, `restored`, whose one row the results join, so it runs whatever the search finds.
SEARCH_SQL: Final = f"""
WITH asked AS (
  SELECT asked AS lexeme, coalesce(spelling.correction, asked) AS spelled
  FROM unnest(tsvector_to_array(to_tsvector('english', %(question)s))) AS asked
  LEFT JOIN unnest(CAST(%(misspelt)s AS text[]), CAST(%(corrections)s AS text[]))
    AS spelling(misspelt, correction) ON spelling.misspelt = asked
  WHERE {{lexical_candidates}} > 0
),
spellings AS (
  SELECT spelled, spelled AS spelling FROM asked
  UNION
  SELECT asked.spelled, other_lexeme
  FROM unnest(CAST(%(variant_words)s AS text[]), CAST(%(variants)s AS text[])) AS variant(word, other),
       LATERAL unnest(tsvector_to_array(to_tsvector('english', variant.word))) AS word_lexeme,
       LATERAL unnest(tsvector_to_array(to_tsvector('english', variant.other))) AS other_lexeme,
       asked
  WHERE asked.lexeme = word_lexeme
),
terms AS (
  SELECT CAST(alternatives AS tsquery) AS term, CAST(title_alternatives AS tsquery) AS title_term,
         ln(1 + (%(common_term_passages)s - passages + 0.5) / (passages + 0.5)) AS weight,
         passages < %(common_term_passages)s
           AND sum(passages) OVER (ORDER BY passages, spelled) <= %(selected_postings)s AS selective
  FROM (
    SELECT literals.spelled, string_agg(quoted, ' | ' ORDER BY quoted) AS alternatives,
           string_agg(quoted || ':' || 'A', ' | ' ORDER BY quoted) AS title_alternatives,
           least(sum(passages), %(common_term_passages)s) AS passages
    FROM (
      SELECT spelled, spelling,
             '''' || replace(replace(spelling, '\\', '\\\\'), '''', '''''') || '''' AS quoted,
             coalesce((SELECT kt.passages FROM knowledge_terms kt WHERE kt.lexeme = spelling), 0)
               AS passages
      FROM spellings
    ) literals
    GROUP BY literals.spelled
  ) counted
),
question AS (
  SELECT sum(weight) AS total_weight FROM terms
),
lexical AS (
  SELECT id, weight, row_number() OVER (ORDER BY weight DESC, id) AS position
  FROM (
    SELECT postings.id,
           sum(t.weight * (1 + %(title_boost)s * CAST(postings.in_title AS int))) AS weight
    FROM terms t
    CROSS JOIN LATERAL (
      SELECT kb.id, kb.searchable_text @@ t.title_term AS in_title
      FROM knowledge_base kb
      WHERE kb.searchable_text @@ t.term{_FILTERS}
      LIMIT {COMMON_TERM_PASSAGES}
    ) postings
    WHERE t.selective
    GROUP BY postings.id
    ORDER BY weight DESC, postings.id
    LIMIT {{lexical_candidates}}
  ) matches
),
codes AS (
  SELECT id, found, row_number() OVER (ORDER BY found DESC, density DESC, id) AS position
  FROM (
    SELECT kb.id, count(*) AS found, sum(ts_rank_cd(kb.searchable_text, code_query)) AS density
    FROM unnest(CAST(%(codes)s AS text[])) AS code,
         LATERAL phraseto_tsquery('english', code) AS code_query,
         knowledge_base kb
    WHERE kb.searchable_text @@ code_query{_FILTERS}
    GROUP BY kb.id
    ORDER BY found DESC, density DESC, kb.id
    LIMIT {{lexical_candidates}}
  ) matches
),
semantic AS (
  SELECT id, row_number() OVER (ORDER BY min(distance), id) AS position
  FROM unnest(CAST(%(vectors)s AS vector[])) AS window_vector,
       LATERAL (
         SELECT kb.id, kb.embedding <=> window_vector AS distance
         FROM knowledge_base kb
         WHERE kb.embedding_model = %(model)s{_FILTERS}
         ORDER BY kb.embedding <=> window_vector
         LIMIT {{vector_candidates}}
       ) nearest
  GROUP BY id
),
fused AS (
  SELECT id, l.position AS fulltext_rank, c.position AS code_rank, s.position AS vector_rank,
         coalesce(c.found, 0) AS codes_found,
         coalesce(1.0 / (%(rrf_k)s + l.position), 0) AS lexical_score,
         coalesce(1.0 / (%(rrf_k)s + c.position), 0) AS code_score,
         coalesce(1.0 / (%(rrf_k)s + s.position), 0) AS vector_score
  FROM lexical l
  FULL JOIN codes c USING (id)
  FULL JOIN semantic s USING (id)
),
evidence AS MATERIALIZED (
  SELECT f.*, f.lexical_score + f.code_score + f.vector_score AS score,
         (SELECT max(1 - (kb.embedding <=> window_vector))
          FROM unnest(CAST(%(vectors)s AS vector[])) AS window_vector
          WHERE kb.embedding_model = %(model)s) AS similarity,
         coalesce((SELECT sum(t.weight) FILTER (WHERE kb.searchable_text @@ t.term) FROM terms t)
                  / nullif(q.total_weight, 0), 0) AS coverage
  FROM fused f
  JOIN knowledge_base kb USING (id)
  CROSS JOIN question q
)
SELECT found.*
FROM (
  SELECT set_config('plan_cache_mode', %(caller_plan_cache_mode)s, true) AS plan_cache_mode
) restored
LEFT JOIN (
SELECT kb.id, kb.content_type, kb.title, kb.content, kb.source, kb.source_url, kb.product_id,
       kb.is_published, r.relevance, r.score, r.lexical_score, r.code_score, r.vector_score,
       r.fulltext_rank, r.code_rank, r.vector_rank, r.codes_found,
       CAST(%(codes_asked)s AS int) AS codes_asked, r.similarity, r.coverage
FROM (
  SELECT e.*, 1 / (1 + exp(-(
           %(relevance_intercept)s
           + %(relevance_per_similarity)s * coalesce(e.similarity, 0)
           + %(relevance_per_coverage)s * e.coverage
           + CASE WHEN %(codes_asked)s = 0 THEN 0
                  WHEN e.codes_found = 0 THEN %(relevance_per_code_missing)s
                  ELSE %(relevance_per_code_found)s * e.codes_found / %(codes_asked)s END))) AS relevance
  FROM evidence e
) r
JOIN knowledge_base kb USING (id)
WHERE r.relevance >= %(min_relevance)s
ORDER BY r.relevance DESC, r.score DESC, kb.id
LIMIT {{limit}}
) found ON true
ORDER BY found.relevance DESC, found.score DESC, found.id
"""


@functools.cache
def search_statement(lexical_candidates: int, vector_candidates: int, limit: int) -> str:
    """SEARCH_SQL with its LIMITs written in: one text (and one prepared statement) per shape."""
    return SEARCH_SQL.format(
        lexical_candidates=int(lexical_candidates),
        vector_candidates=int(vector_candidates),
        limit=int(limit),
    )


@dataclass(frozen=True)
class Passage:
    id: uuid.UUID
    content_type: str
    title: str
    content: str
    source: str | None
    source_url: str | None
    product_id: uuid.UUID | None
    is_published: bool
    # The fused score (the ranking) and what each list contributed to it.
    score: float
    lexical_score: float
    code_score: float
    vector_score: float
    # Its rank in each list (1 = best), None when that list did not find it.
    fulltext_rank: int | None
    code_rank: int | None
    vector_rank: int | None
    # Cosine similarity to the question (its best window), None for vectors of another model.
    similarity: float | None
    # The share of the question's term weight (inverse document frequency) the passage holds.
    coverage: float
    # How many of the question's code-like tokens it holds, of how many the question has.
    codes_found: int
    codes_asked: int
    # The calibrated probability that it answers the question (see RELEVANCE_THRESHOLD).
    relevance: float


def active_model(session: Session) -> str:
    """The model whose vectors the knowledge base holds (the default when it holds none)."""
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection), "afilo-db runs on psycopg 3"
    return ingestion.active_model(driver)


def code_tokens(question: str) -> list[str]:
    """The question's code-like tokens (error codes, settings, file and host names, SKUs), in
    order, once each."""
    found: dict[str, None] = {}
    for raw in _TOKEN.findall(question):
        token = raw.strip(_CODE_EDGES)
        if _HAS_LETTER.search(token) and _CODE_SHAPE.search(token):
            found[token] = None
    return list(found)


def question_windows(question: str) -> list[str]:
    """What the model embeds of the question: all of it when short; else its questions (the
    sentences ending with a question mark) and its last sentences, each packed into windows the
    model reads whole. A long email's greeting and background would otherwise fill the model's
    window (or pull the search towards what the background mentions) and its question, usually
    at the end, would be cut off."""
    if count_tokens(question) <= LONG_QUESTION_TOKENS:
        return [question]
    sentences = SENTENCE_END.split(question)
    asked = [sentence for sentence in sentences if sentence.rstrip().endswith("?")]
    last: list[str] = []
    for sentence in reversed(sentences):
        if last and count_tokens(" ".join([sentence, *last])) > QUESTION_WINDOW_TOKENS:
            break
        last.insert(0, sentence)
    windows: dict[str, None] = {}
    for part in (asked, last):
        if part:
            document = Document(title="", sections=[Section(headings=[], paragraphs=part)])
            for chunk in chunk_document(document, budget=QUESTION_WINDOW_TOKENS, overlap=0):
                windows[chunk.content] = None
    return list(windows)


def asked_part(question: str) -> str:
    """What every list reads of the question: its windows (question_windows), so all of a short
    question and, of a long one, its questions and last sentences. An email's background is left
    out of the lexical and code lists too: its incidental words and code-shaped tokens
    ("TypeScript", "Node 18") otherwise pick the passages that share them and, through the
    coverage and the code-missing penalty, push down the passage that answers what is asked."""
    return " ".join(question_windows(question))


def edit_distance(first: str, second: str, at_most: int | None = None) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
    adjacent letters, one edit each ("refnud" is one edit from "refund"). With `at_most`, any
    distance beyond it is returned as at_most + 1, as soon as it is certain."""
    previous2: list[int] = []
    previous = list(range(len(second) + 1))
    for i, letter in enumerate(first, 1):
        current = [i]
        for j, other in enumerate(second, 1):
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (letter != other))
            if i > 1 and j > 1 and letter == second[j - 2] and first[i - 2] == other:
                best = min(best, previous2[j - 2] + 1)
            current.append(best)
        # A swap reaches back two rows, so both must exceed the bound.
        if at_most is not None and min(current) > at_most and min(previous) > at_most:
            return at_most + 1
        previous2, previous = previous, current
    return previous[-1] if at_most is None else min(previous[-1], at_most + 1)


@dataclass(frozen=True)
class SearchSetup:
    # The model whose vectors the knowledge base holds (active_model).
    active_model: str
    # Misspelt lexeme of the question -> the lexeme of the knowledge base it is read as.
    corrections: dict[str, str]
    # plan_cache_mode before the setup changed it, for the search statement to put back.
    caller_plan_cache_mode: str


def search_setup(session: Session, question: str, *, correct_spelling: bool = True) -> SearchSetup:
    """The active model, the caller's plan_cache_mode and the question's misspelt lexemes, each
    with the lexeme of the knowledge base it is read as (see MIN_CORRECTED_LETTERS; none unless
    `correct_spelling`): one round trip (SEARCH_SETUP_SQL), in the session's transaction if it
    has one, else on its own. Lexemes no passage holds and nothing is near stay as they are."""
    return setup_from(
        hot.fetch(session, hot.Read(SEARCH_SETUP_SQL, setup_parameters(question, correct_spelling)))
    )


def setup_parameters(question: str, correct_spelling: bool) -> dict[str, Any]:
    """SEARCH_SETUP_SQL's parameters (shared with the benchmark)."""
    return {
        "default_model": MINILM_MODEL,
        "question": question,
        "english": " ".join(
            word for word in re.findall(r"[A-Za-z]+", question.lower()) if is_english(word)
        ),
        "correctable": f"^[a-z]{{{MIN_CORRECTED_LETTERS},}}$",
        "max_corrected_words": MAX_CORRECTED_WORDS if correct_spelling else 0,
        "spelling_candidates": SPELLING_CANDIDATES,
    }


def setup_from(rows: Sequence[Sequence[Any]]) -> SearchSetup:
    """SEARCH_SETUP_SQL's rows (active model, unknown lexeme, candidate, its passages, the
    caller's plan_cache_mode; the candidate is NULL in the one row of a question with nothing to
    correct) read."""
    return SearchSetup(
        active_model=str(rows[0][0]),
        corrections=nearest_lexemes(
            [(row[1], row[2], row[3]) for row in rows if row[2] is not None]
        ),
        caller_plan_cache_mode=str(rows[0][4]),
    )


def is_english(word: str) -> bool:
    """Whether the model's word list holds `word` (lower-case), or holds it without an
    inflection's ending: the list has "complain", not "complains"."""
    words = english_words()
    return word in words or any(
        word.endswith(ending) and word.removesuffix(ending) in words
        for ending in INFLECTION_ENDINGS
    )


@once_per_arguments
def spelling_variants() -> dict[str, frozenset[str]]:
    """Each word with a British and an American spelling, lower-case, with its other spellings
    (several when the list has several: "yoghurt", "yoghourt" and "yogurt"). Made once per
    process, whichever threads search first: the pairs' edit distances take a noticeable
    fraction of a second in Python."""
    pairs = installed_file(_VARIANTS_DISTRIBUTION, _VARIANTS_FILE, _VARIANTS_SHA256)
    groups: dict[str, frozenset[str]] = {}
    for line in pairs.read_text(encoding="utf-8").splitlines():
        british, _, american = (part.strip().lower() for part in line.partition("\t"))
        if not (british.isalpha() and american.isalpha()):
            continue
        if (
            edit_distance(british, american, at_most=SPELLING_VARIANT_EDITS)
            > SPELLING_VARIANT_EDITS
        ):
            continue
        group = groups.get(british, frozenset([british])) | groups.get(
            american, frozenset([american])
        )
        groups.update(dict.fromkeys(group, group))
    return {word: group - {word} for word, group in groups.items()}


def other_spellings(question: str) -> list[tuple[str, str]]:
    """The question's words that have another spelling, each paired with each of its others."""
    variants = spelling_variants()
    pairs = {
        (word, other): None
        for word in re.findall(r"[a-z]+", question.lower())
        for other in sorted(variants.get(word, ()))
    }
    return list(pairs)


def nearest_lexemes(candidates: Sequence[tuple[str, str, int]]) -> dict[str, str]:
    """From (unknown lexeme, known lexeme, its passages) rows, each unknown lexeme's nearest
    known one within the edits allowed, ties to the one more passages hold."""
    nearest: dict[str, tuple[int, int, str]] = {}
    for unknown, lexeme, passages in candidates:
        allowed = 2 if len(unknown) >= LONG_WORD_LETTERS else 1
        distance = edit_distance(unknown, lexeme, at_most=allowed)
        if distance <= allowed:
            nearest[unknown] = min(nearest.get(unknown, (3, 0, "")), (distance, -passages, lexeme))
    return {unknown: lexeme for unknown, (_, _, lexeme) in nearest.items()}


def _checked(
    question: str, types: Sequence[str] | None, limit: int, mode: str, min_relevance: float
) -> str:
    problems: dict[str, str] = {}
    cleaned = " ".join(question.split())
    if not cleaned:
        problems["question"] = "must not be empty"
    elif len(cleaned) > MAX_QUESTION_CHARS:
        problems["question"] = f"must be at most {MAX_QUESTION_CHARS} characters"
    if "\x00" in question:
        problems["question"] = "must not contain NUL characters"
    unknown = [kind for kind in types or () if kind not in rules.KNOWLEDGE_CONTENT_TYPES]
    if unknown:
        problems["type"] = f"must be one of {', '.join(rules.KNOWLEDGE_CONTENT_TYPES)}"
    if not 1 <= limit <= MAX_LIMIT:
        problems["limit"] = f"must be between 1 and {MAX_LIMIT}"
    if mode not in SEARCH_MODES:
        problems["mode"] = f"must be one of {', '.join(SEARCH_MODES)}"
    if not 0 <= min_relevance <= 1:
        problems["min_relevance"] = "must be between 0 and 1"
    if problems:
        raise ValidationError(problems)
    return cleaned


def statement_parameters(
    question: str,
    window_vectors: Vectors,
    *,
    model_name: str,
    relevance: Relevance,
    types: Sequence[str] | None,
    include_unpublished: bool,
    min_relevance: float,
    caller_plan_cache_mode: str,
    corrections: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The parameters of SEARCH_SQL (search_statement) for a checked question and its windows'
    vectors (shared with the benchmark, which runs the statement prepared through psycopg);
    `relevance`: the constants of the model that embedded them (relevance_of). The lexical and
    code lists read the question's asked part (asked_part), as the vectors do. The code list
    follows the lexical one: both are the full-text side. `corrections`: misspelt lexeme of the
    asked part -> the lexeme the lexical list reads instead, and `caller_plan_cache_mode` what
    the statement puts back (both from search_setup). Words with another spelling
    (other_spellings) are searched in both."""
    asked = asked_part(question)
    codes = code_tokens(asked)
    misspelt = sorted(corrections or {})
    spelt_otherwise = other_spellings(asked)
    return {
        "question": asked,
        "codes": codes,
        "vectors": "{" + ",".join(f'"{to_pgvector_text(v)}"' for v in window_vectors) + "}",
        "model": model_name,
        "types": list(types) if types else None,
        "include_unpublished": include_unpublished,
        "misspelt": misspelt,
        "corrections": [(corrections or {})[lexeme] for lexeme in misspelt],
        "variant_words": [word for word, _ in spelt_otherwise],
        "variants": [other for _, other in spelt_otherwise],
        "common_term_passages": COMMON_TERM_PASSAGES,
        "selected_postings": SELECTED_POSTINGS,
        "title_boost": TITLE_BOOST,
        "rrf_k": RRF_K,
        "codes_asked": len(codes),
        "relevance_intercept": relevance.intercept,
        "relevance_per_similarity": relevance.per_similarity,
        "relevance_per_coverage": relevance.per_coverage,
        "relevance_per_code_found": relevance.per_code_found,
        "relevance_per_code_missing": relevance.per_code_missing,
        "min_relevance": min_relevance,
        "caller_plan_cache_mode": caller_plan_cache_mode,
    }


def search(
    session: Session,
    question: str,
    *,
    types: Sequence[str] | None = None,
    limit: int = 5,
    embedder: Embedder | None = None,
    include_unpublished: bool = False,
    mode: str = "hybrid",
    min_relevance: float = RELEVANCE_THRESHOLD,
) -> list[Passage]:
    """The passages that best answer `question`, best first; none when no passage reaches
    `min_relevance` (0 keeps every passage found).

    `types`: content types to keep (all when None). `embedder`: the model to embed the question
    with; by default the one the knowledge base's vectors were made with (so a `kb reembed`
    switch takes effect for every caller at once), and so is the relevance (relevance_of: the
    constants fitted on that model's similarities). `mode`: `fulltext` (the lexical and code
    lists) or `vector` alone, for comparison.

    Two round trips: the active model and the spelling corrections (search_setup), then the
    search with its HNSW settings and plan mode before it (SEARCH_SETTINGS_SQL,
    transaction-local). In the session's open transaction if it has one; else each on its own
    (`afilo_db.db.hot`): no BEGIN and no ROLLBACK, and the session is left as it was.
    """
    cleaned = _checked(question, types, limit, mode, min_relevance)
    candidates = max(MIN_CANDIDATES, CANDIDATES_PER_RESULT * limit)
    setup = search_setup(session, asked_part(cleaned), correct_spelling=mode != "vector")
    model = embedder or get_embedder(setup.active_model)
    vectors = query_vectors(model, question_windows(cleaned))
    rows = hot.fetch(
        session,
        hot.Read(
            search_statement(
                lexical_candidates=candidates if mode != "vector" else 0,
                vector_candidates=candidates if mode != "fulltext" else 0,
                limit=limit,
            ),
            statement_parameters(
                cleaned,
                vectors,
                model_name=model.model_name,
                relevance=relevance_of(model),
                types=types,
                include_unpublished=include_unpublished,
                min_relevance=min_relevance,
                caller_plan_cache_mode=setup.caller_plan_cache_mode,
                corrections=setup.corrections,
            ),
            before=[(SEARCH_SETTINGS_SQL, {"ef_search": str(max(EF_SEARCH, candidates))})],
        ),
    )
    # A row without an id is the one row of `restored` when nothing is found.
    return [_passage(row) for row in rows if row[0] is not None]


def _passage(row: hot.Row) -> Passage:
    """A row of SEARCH_SQL, in its columns' order."""
    (
        passage_id, content_type, title, content, source, source_url, product_id, is_published,
        relevance, score, lexical_score, code_score, vector_score, fulltext_rank, code_rank,
        vector_rank, codes_found, codes_asked, similarity, coverage,
    ) = row  # fmt: skip
    return Passage(
        id=passage_id,
        content_type=content_type,
        title=title,
        content=content,
        source=source,
        source_url=source_url,
        product_id=product_id,
        is_published=is_published,
        score=float(score),
        lexical_score=float(lexical_score),
        code_score=float(code_score),
        vector_score=float(vector_score),
        fulltext_rank=fulltext_rank,
        code_rank=code_rank,
        vector_rank=vector_rank,
        similarity=None if similarity is None else float(similarity),
        coverage=float(coverage),
        codes_found=codes_found,
        codes_asked=codes_asked,
        relevance=float(relevance),
    )
