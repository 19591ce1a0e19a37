"""serve.py: a real uvicorn process on a free port, spoken to over HTTP.

Predictions equal predict.py's, every kind of bad request gets a one-line 4xx (never a 500), and a
burst of concurrent requests all succeed with the same answers as sequential ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from predict import main as predict_main

ROOT = Path(__file__).resolve().parent.parent
LIMITS = ["--max_texts", "4", "--max_text_chars", "300"]
NER_TEXTS = [
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn visited Brussels with Jean Dupont of Acme Corp",
    "a gorgeous, moving film that stays with you",
    "dull , slow and far too long",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(port: int, path: str, body: bytes | None = None, content_type: str = "application/json", method: str = ""):
    """(HTTP status, parsed JSON body) for one request."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method or None)
    if body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def post(port: int, payload: Any) -> tuple[int, Any]:
    return call(port, "/predict", json.dumps(payload).encode())


@contextlib.contextmanager
def server(folder: Path, log: Path, *options: str) -> Iterator[tuple[int, subprocess.Popen]]:
    """serve.py in its own process, ready (GET /health answers) or the test fails with its log."""
    port = free_port()
    command = [sys.executable, str(ROOT / "serve.py"), str(folder), "--port", str(port), "--log_level", "warning"]
    with open(log, "w") as handle:
        process = subprocess.Popen([*command, *options], stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.time() + 300
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve.py exited with {process.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                if call(port, "/health") == (200, {"status": "ok"}):
                    break
            if time.time() > deadline:
                pytest.fail(f"serve.py not ready after 300 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def servers(deploy_runs, tmp_path_factory) -> Iterator[dict[str, tuple[int, subprocess.Popen, str]]]:
    """NER on PyTorch, sentiment on ONNX (the export's int8 copy): {task: (port, process, backend)}."""
    logs = tmp_path_factory.mktemp("serve-logs")
    with (
        server(deploy_runs["ner"], logs / "ner.log", "--backend", "torch", *LIMITS) as (ner_port, ner_process),
        server(deploy_runs["sentiment"], logs / "sentiment.log", "--backend", "onnx", *LIMITS) as (port, process),
    ):
        yield {"ner": (ner_port, ner_process, "torch"), "sentiment": (port, process, "onnx")}


@pytest.fixture(scope="module")
def texts(deploy_runs) -> dict[str, list[str]]:
    """Four texts per task: for sentiment, test sentences (the ones its head was set to split)."""
    from finetune_lab import inference

    rows = inference.load_test_rows(inference.load_run(deploy_runs["sentiment"], "onnx-fp32"))
    return {"ner": NER_TEXTS, "sentiment": [r["text"] for r in rows[:4]]}


def predict_py(folder: Path, backend: str, texts: list[str], monkeypatch) -> list[dict]:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(texts) + "\n"))
    return predict_main([str(folder), "--backend", backend, "--format", "jsonl"])["records"]


def assert_same_records(served: list[dict], expected: list[dict]) -> None:
    assert len(served) == len(expected)
    for got, want in zip(served, expected, strict=True):
        assert got.keys() == want.keys()
        assert got["text"] == want["text"]
        if "entities" in want:
            assert [(e["type"], e["text"], e["start"], e["end"]) for e in got["entities"]] == [
                (e["type"], e["text"], e["start"], e["end"]) for e in want["entities"]
            ]
            assert [e["score"] for e in got["entities"]] == pytest.approx([e["score"] for e in want["entities"]])
        else:
            assert got["label"] == want["label"]
            assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_predictions_equal_predict_py(servers, deploy_runs, texts, task, monkeypatch):
    port, _, backend = servers[task]
    expected = predict_py(deploy_runs[task], backend, texts[task], monkeypatch)
    status, served = post(port, {"inputs": texts[task]})
    assert status == 200
    assert_same_records(served, expected)
    status, one = post(port, {"inputs": texts[task][1]})  # one text: one record, not a list
    assert status == 200 and isinstance(one, dict)
    # alone, not in a batch of 4: int8's activation scale is set per batch, so compare like with like
    assert_same_records([one], predict_py(deploy_runs[task], backend, texts[task][1:2], monkeypatch))
    if task == "ner":
        assert sum(len(r["entities"]) for r in served) >= 2  # entities with offsets to compare
        for record in served:
            for entity in record["entities"]:
                assert record["text"][entity["start"] : entity["end"]] == entity["text"]
    else:
        assert len({r["label"] for r in served}) == 2, served


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_health_and_info(servers, deploy_runs, task):
    port, _, _ = servers[task]
    assert call(port, "/health") == (200, {"status": "ok"})
    status, info = call(port, "/info")
    results = json.loads((deploy_runs[task] / "results.json").read_text())
    assert status == 200
    assert (info["task"], info["labels"], info["model"]) == (task, results["labels"], results["model"])
    assert info["backend"] == ("torch" if task == "ner" else "onnx-int8")
    assert info["model_file"].endswith("model.safetensors" if task == "ner" else "model.int8.onnx")
    assert info["main_metric"] == results["main_metric"]
    assert info["metrics"] == {k: v for k, v in results["test"].items() if not k.startswith("per_class/")}
    assert (info["limits"]["max_texts"], info["limits"]["max_text_chars"]) == (4, 300)


BAD_REQUESTS = [  # (what, body, content type, status, words of the reason)
    ("not JSON", b'{"inputs": ', "application/json", 422, "not valid JSON"),
    ("empty body", b"", "application/json", 422, "empty request body"),
    ("not a JSON object", b'["a text"]', "application/json", 422, "expected a JSON object"),
    ("no JSON content type", b'{"inputs": "a"}', "text/plain", 422, "content-type: application/json"),
    ("missing field", b'{"text": "a"}', "application/json", 422, "unknown field 'text'"),
    ("no field", b"{}", "application/json", 422, "missing field 'inputs'"),
    ("extra field", b'{"inputs": "a", "top_k": 3}', "application/json", 422, "unknown field 'top_k'"),
    ("number", b'{"inputs": 3}', "application/json", 422, "expected a string or a list of strings, got a number"),
    ("null", b'{"inputs": null}', "application/json", 422, "got null"),
    ("object", b'{"inputs": {"a": 1}}', "application/json", 422, "got an object"),
    ("number in list", b'{"inputs": ["a", 7]}', "application/json", 422, "inputs[1]: expected a string, got a number"),
    ("empty text", b'{"inputs": ""}', "application/json", 422, "inputs: empty text"),
    ("blank text in list", b'{"inputs": ["a", "  \\n "]}', "application/json", 422, "inputs[1]: empty text"),
    ("empty list", b'{"inputs": []}', "application/json", 422, "empty list"),
    ("too many texts", b'{"inputs": ["a", "b", "c", "d", "e"]}', "application/json", 413, "5 texts, over the limit"),
    ("text too long", json.dumps({"inputs": "x" * 301}).encode(), "application/json", 413, "301 characters, over"),
    ("body too large", json.dumps({"inputs": "x" * 20000}).encode(), "application/json", 413, "request body of"),
    ("lone surrogate", b'{"inputs": "\\ud800"}', "application/json", 422, "not valid Unicode"),
]


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_bad_requests_get_a_one_line_4xx(servers, task):
    port, process, _ = servers[task]
    for what, body, content_type, status, reason in BAD_REQUESTS:
        got, answer = call(port, "/predict", body, content_type)
        assert (got, reason in str(answer.get("detail"))) == (status, True), (what, got, answer)
        assert isinstance(answer["detail"], str) and "\n" not in answer["detail"], what
    assert call(port, "/predict", method="GET")[0] == 405
    assert call(port, "/nowhere")[0] == 404
    assert process.poll() is None and call(port, "/health") == (200, {"status": "ok"})  # still serving
    assert post(port, {"inputs": "one more text"})[0] == 200


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_a_burst_of_concurrent_requests(servers, texts, task):
    port, process, _ = servers[task]
    some = texts[task]
    payloads = [{"inputs": some[i % 4]} if i % 2 else {"inputs": some[: 1 + i % 4]} for i in range(96)]
    expected = {json.dumps(p): post(port, p) for p in payloads[:8]}  # one of each, sequentially
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda p: post(port, p), payloads))
    assert [status for status, _ in answers] == [200] * len(payloads)
    for payload, answer in zip(payloads, answers, strict=True):
        reference = expected[json.dumps(payload)][1]
        assert_same_records(answer[1] if isinstance(answer[1], list) else [answer[1]],
                            reference if isinstance(reference, list) else [reference])  # fmt: skip
    assert process.poll() is None and call(port, "/health") == (200, {"status": "ok"})
