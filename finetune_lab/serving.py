"""The HTTP service behind serve.py: a FastAPI app around one loaded run (PyTorch or ONNX backend).

    POST /predict  {"inputs": "one text"}          -> one record, as predict.py --format jsonl writes it
                   {"inputs": ["text", "text"]}    -> a list of records, in order
    GET  /health                                    -> {"status": "ok"}
    GET  /info                                      -> task, labels, model, backend, limits, test metrics

The request shape is Hugging Face's inference API convention ({"inputs": ...}). A bad request gets a
4xx with a one-line reason in {"detail": "..."}: 422 for a malformed or wrongly typed body, a blank
text or an empty list; 413 for too many texts, a text too long or a body too large (limits set by
serve.py's options). The model runs in FastAPI's worker threads behind one lock: a fast tokenizer
must not be called from two threads at once (it raises "Already borrowed"), and on a small CPU the
model's own intra-op threads already use every core, so requests queue instead of competing.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictStr

from finetune_lab import inference


@dataclass(frozen=True)
class Limits:
    """What one request may carry; every limit is a serve.py option of the same name."""

    max_texts: int = 64
    max_text_chars: int = 5000
    batch_size: int = 64

    @property
    def max_body_bytes(self) -> int:
        # JSON may spell a character as a 6-byte \uXXXX escape; plus quotes, commas and the key.
        return self.max_texts * (6 * self.max_text_chars + 8) + 1024


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, never ignored
    inputs: StrictStr | list[StrictStr]  # strict: a number is not a text


class RequestProblem(Exception):
    """A request the service refuses: HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


EXAMPLE = '{"inputs": "a text"} or {"inputs": ["a text", ...]}'
UNION_TAGS = {"str", "list[str]"}  # pydantic names the union member that failed inside the location


def validation_reason(errors: list[dict[str, Any]]) -> str:
    """pydantic's list of errors as one line a client can act on."""
    # {"text": ...}: an unknown field says more than the missing 'inputs' it causes
    first = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")[0]
    kind = first.get("type", "")
    path = [part for part in first.get("loc", ()) if part != "body"]
    if kind == "json_invalid":
        return f"request body is not valid JSON ({first.get('ctx', {}).get('error', first.get('msg'))})"
    if not path:  # the body as a whole
        if kind == "missing":
            return f"empty request body: send JSON, {EXAMPLE}"
        if isinstance(first.get("input"), (bytes, str)):  # not parsed: no JSON content type
            return f"request body: send JSON with the header 'content-type: application/json', {EXAMPLE}"
        return f"request body: expected a JSON object, {EXAMPLE}"
    if kind == "missing":
        return f"missing field '{path[0]}': send {EXAMPLE}"
    if kind == "extra_forbidden":
        return f"unknown field '{path[0]}': the only field is 'inputs'"
    if path[0] == "inputs":
        # A union: report the list member's error when a list was sent, else "string or list".
        in_list = [e for e in errors if "list[str]" in e.get("loc", ()) and len(e["loc"]) > 3]
        if in_list:
            index, value = in_list[0]["loc"][3], in_list[0].get("input")
            return f"inputs[{index}]: expected a string, got {json_type(value)}"
        return f"inputs: expected a string or a list of strings, got {json_type(first.get('input'))}"
    return ".".join(str(p) for p in path if p not in UNION_TAGS) + f": {first.get('msg', kind)}"


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if isinstance(value, bool):
        return "true/false"
    names = {int: "a number", float: "a number", type(None): "null", dict: "an object", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def check_texts(texts: list[str], limits: Limits) -> None:
    """Count, emptiness and length of the texts; RequestProblem naming the first bad one."""
    if not texts:
        raise RequestProblem(422, "inputs: empty list; send at least one text")
    if len(texts) > limits.max_texts:
        raise RequestProblem(413, f"inputs: {len(texts)} texts, over the limit of {limits.max_texts} (--max_texts)")
    for i, text in enumerate(texts):
        where = f"inputs[{i}]" if len(texts) > 1 else "inputs"
        if not text.strip():
            raise RequestProblem(422, f"{where}: empty text")
        if len(text) > limits.max_text_chars:
            raise RequestProblem(
                413, f"{where}: {len(text)} characters, over the limit of {limits.max_text_chars} (--max_text_chars)"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # JSON allows lone surrogates (\ud800); the tokenizer cannot take them
            raise RequestProblem(422, f"{where}: not valid Unicode (a lone surrogate escape)") from None


def run_info(run: inference.LoadedRun, limits: Limits) -> dict[str, Any]:
    """What GET /info reports: the run's own record, never recomputed."""
    results = run.results
    test = results.get("test") or {}
    return {
        "task": results["task"],
        "labels": list(run.task.label_names),
        "kind": "ner" if run.is_token_task else "regression" if run.is_regression else "classification",
        "model": results.get("model"),
        "run": str(run.path),
        "backend": run.backend,
        "model_file": str(run.model_file) if run.model_file else None,
        "max_seq_length": run.max_length,
        "main_metric": results.get("main_metric"),
        "metrics": {k: v for k, v in test.items() if not k.startswith("per_class/")},
        "limits": {**asdict(limits), "max_body_bytes": limits.max_body_bytes},
    }


def create_app(run: inference.LoadedRun, limits: Limits | None = None) -> FastAPI:
    """The service for one loaded run (loaded once, by the caller)."""
    limits = limits or Limits()
    lock = threading.Lock()
    info = run_info(run, limits)
    app = FastAPI(title="finetune-lab", description=f"{info['task']} ({info['backend']})", version="1")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": validation_reason(list(exc.errors()))})

    @app.exception_handler(RequestProblem)
    async def refused_request(request: Request, exc: RequestProblem) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": exc.reason})

    @app.middleware("http")
    async def body_size(request: Request, call_next: Any) -> Any:
        # Refused before the body is read; a chunked body (no Content-Length) still meets the text limits.
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            reason = f"request body of {declared} bytes, over the limit of {limits.max_body_bytes} bytes"
            return JSONResponse(status_code=413, content={"detail": reason + " (--max_texts x --max_text_chars)"})
        return await call_next(request)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    def get_info() -> dict[str, Any]:
        return info

    @app.post("/predict")
    def predict(request: PredictRequest) -> Any:  # a plain def: FastAPI runs it in a worker thread
        single = isinstance(request.inputs, str)
        texts = [request.inputs] if single else list(request.inputs)
        check_texts(texts, limits)
        records: list[dict[str, Any]] = []
        with lock:
            for start in range(0, len(texts), limits.batch_size):
                records += inference.label_texts([run], texts[start : start + limits.batch_size])
        return records[0] if single else records

    return app
