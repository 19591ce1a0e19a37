"""predict.py: the same probabilities as the Trainer's own evaluation, spans, JSON lines, ensembles."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from finetune_lab import inference
from finetune_lab.arguments import DataArguments
from finetune_lab.errors import UsageError
from predict import main


def trainer_probabilities(run: inference.LoadedRun, rows: list[dict], tmp_path) -> tuple[np.ndarray, np.ndarray]:
    """The model's own evaluation: task.preprocess + collator + Trainer.predict, softmaxed; and the label ids."""
    data_args = DataArguments(max_seq_length=run.max_length)
    dataset = Dataset.from_list(rows).map(
        run.task.preprocess,
        batched=True,
        fn_kwargs={"tokenizer": run.tokenizer, "data_args": data_args},
        remove_columns=list(run.task.example_columns),
    )
    dataset = dataset.remove_columns([c for c in ("truncated", "words_lost") if c in dataset.column_names])
    args = TrainingArguments(output_dir=str(tmp_path / "eval"), report_to=[], use_cpu=True, disable_tqdm=True)
    output = Trainer(
        model=run.model, args=args, data_collator=run.task.data_collator(run.tokenizer), processing_class=run.tokenizer
    ).predict(dataset)
    logits = output.predictions
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return probs / probs.sum(-1, keepdims=True), output.label_ids


def test_sentiment_probabilities_match_the_trainer(tiny_runs, tmp_path):
    run = inference.load_run(tiny_runs["sentiment"])
    rows = inference.load_test_rows(run)
    assert len(rows) == run.results["test"]["examples"] == 50
    expected, label_ids = trainer_probabilities(run, rows, tmp_path)
    ours = inference.text_probabilities(run, [r["text"] for r in rows], batch_size=7)  # other batching, same numbers
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    metrics = inference.evaluate([run], rows)
    for key in ("accuracy", "macro_f1", "per_class/positive/support"):
        assert metrics[key] == pytest.approx(run.results["test"][key], abs=1e-9), key
    assert label_ids.tolist() == [run.task.label2id[r["label"]] for r in rows]


def test_ner_word_probabilities_match_the_trainer(tiny_runs, tmp_path):
    run = inference.load_run(tiny_runs["ner"])
    rows = inference.load_test_rows(run)
    assert len(rows) == run.results["test"]["examples"] == 30
    expected, label_ids = trainer_probabilities(run, rows, tmp_path)
    ours = inference.word_probabilities(run, [r["tokens"] for r in rows], batch_size=4)
    for i, words in enumerate(ours):
        first_subtokens = label_ids[i] != -100  # the positions the Trainer scores
        np.testing.assert_allclose(words, expected[i][first_subtokens], atol=1e-5)
    metrics = inference.evaluate([run], rows)
    for key in ("f1", "precision", "recall", "token_accuracy", "per_class/PER/support"):
        assert metrics[key] == pytest.approx(run.results["test"][key], abs=1e-9), key


@pytest.mark.parametrize("task", ["ner", "sentiment"])
def test_ensemble_of_a_run_with_itself_equals_the_run(tiny_runs, task, capsys):
    out = main(["--ensemble", str(tiny_runs[task]), str(tiny_runs[task])])
    run = inference.load_run(tiny_runs[task])
    metric = run.results["main_metric"]
    for key, value in run.results["test"].items():
        if key in out["test"] and key != "loss":
            assert out["test"][key] == pytest.approx(value, abs=1e-9), key
    assert f"ensemble of 2 runs ({task}): test {metric} {run.results['test'][metric]:.4f}" in capsys.readouterr().err


def test_ensemble_averages_probabilities(tiny_runs):
    run = inference.load_run(tiny_runs["sentiment"])
    texts = ["a fine film", "dull and slow"]
    single = inference.text_probabilities(run, texts)
    np.testing.assert_allclose(inference.ensemble_text_probabilities([run, run], texts), single, rtol=1e-6)
    # a second "run" that always says the opposite: the average is the mean of the two
    flipped = inference.LoadedRun(run.path, run.results, run.task, run.tokenizer, run.model)
    original = inference.text_probabilities
    try:
        inference.text_probabilities = lambda r, t, batch_size=64: (
            original(r, t)[:, ::-1] if r is flipped else original(r, t)
        )
        np.testing.assert_allclose(inference.ensemble_text_probabilities([run, flipped], texts), 0.5, rtol=1e-6)
    finally:
        inference.text_probabilities = original


def test_sentiment_jsonl_output_one_line_per_input_line(tiny_runs, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("a fine film\n\n  dull and slow  \n   \nthe end\n")
    main([str(tiny_runs["sentiment"]), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.jsonl")])
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    # line i answers line i; a blank line gets an empty prediction; text kept as given (offsets index into it)
    assert [r["text"] for r in records] == ["a fine film", "", "  dull and slow  ", "   ", "the end"]
    assert records[1] == {"text": "", "label": None, "probability": None, "probabilities": {}}
    assert records[3]["label"] is None
    assert "2 blank input line(s) (first: line 2): empty predictions written for them" in capsys.readouterr().err
    run = inference.load_run(tiny_runs["sentiment"])
    texts = ["a fine film", "  dull and slow  ", "the end"]
    probs = inference.text_probabilities(run, texts)
    for record, p in zip([records[0], records[2], records[4]], probs, strict=True):
        assert sum(record["probabilities"].values()) == pytest.approx(1.0)
        assert record["label"] == run.task.label_names[int(p.argmax())]
        assert record["probability"] == pytest.approx(float(p.max()))


def test_text_format_keeps_line_numbers_and_shows_progress_on_long_files(deploy_runs, tmp_path, capsys):
    lines = [f"review number {i}, {'great' if i % 3 else 'awful'} film" if i % 50 else "" for i in range(400)]
    (tmp_path / "long.txt").write_text("\n".join(lines) + "\n")
    out = main([str(deploy_runs["sentiment"]), "--input", str(tmp_path / "long.txt"), "--batch_size", "32"])
    captured = capsys.readouterr()
    printed = captured.out.splitlines()
    assert len(printed) == len(out["records"]) == 400
    for line, text, record in zip(printed, lines, out["records"], strict=True):
        assert line == ("" if not text else f"{record['label']}\t{record['probability']:.4f}\t{text}")
    assert "8 blank input line(s) (first: line 1)" in captured.err
    assert "predicting: 100%" in captured.err and "392/392" in captured.err  # tqdm's bar, on stderr
    (tmp_path / "short.txt").write_text("a fine film\nthe end\n")
    main([str(deploy_runs["sentiment"]), "--input", str(tmp_path / "short.txt")])
    assert "predicting" not in capsys.readouterr().err  # a short file: no bar


def entity_spans(record: dict) -> list[tuple]:
    return [(e["type"], e["start"], e["end"]) for e in record["entities"]]


@pytest.mark.parametrize("task", ["sentiment", "ner"])
def test_onnx_backends_predict_and_score_like_torch(deploy_runs, task, capsys, monkeypatch):
    folder = str(deploy_runs[task])
    run = inference.load_run(folder)
    rows = inference.load_test_rows(run)
    texts = [" ".join(r["tokens"]) if run.is_token_task else r["text"] for r in rows]
    outputs = {}
    for backend in ("torch", "onnx-fp32", "onnx-int8"):
        monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(texts) + "\n"))
        outputs[backend] = main([folder, "--backend", backend, "--evaluate", "--format", "jsonl"])
    err = capsys.readouterr().err
    metric = run.results["main_metric"]
    torch_out, fp32_out, int8_out = outputs["torch"], outputs["onnx-fp32"], outputs["onnx-int8"]
    assert fp32_out["test"] == pytest.approx(torch_out["test"], abs=1e-6)  # the same scores on the test set
    assert f"run ({task}, onnx-fp32): test {metric} {torch_out['test'][metric]:.4f}" in err
    assert "backend onnx-int8: " in err and "model.int8.onnx" in err
    key = entity_spans if run.is_token_task else (lambda record: record["label"])
    torch_labels = [key(r) for r in torch_out["records"]]
    assert [key(r) for r in fp32_out["records"]] == torch_labels
    assert len({str(k) for k in torch_labels}) > 1  # the loud head gives varied predictions
    if run.is_token_task:
        assert sum(len(k) for k in torch_labels) >= 10  # entities to compare, not a few
    # int8 approximates: nearly the same labels, most of the same entities
    int8_labels = [key(r) for r in int8_out["records"]]
    if run.is_token_task:
        kept = sum(len(set(a) & set(b)) for a, b in zip(torch_labels, int8_labels, strict=True))
        assert kept / sum(len(k) for k in torch_labels) >= 0.75
    else:
        assert np.mean([a == b for a, b in zip(torch_labels, int8_labels, strict=True)]) >= 0.9


def test_ner_words_without_subtokens_do_not_shift_tags(deploy_runs):
    """A zero-width space is a word to the pre-tokenizer but has no sub-token: tags stay on their own words."""
    run = inference.load_run(deploy_runs["ner"])
    plain = "Peter Blackburn visited Brussels with Jean Dupont of Acme Corp in New York"
    odd = plain.replace("Peter ", "Peter \u200b ").replace("with ", "with \u200b ")
    a, b = inference.label_texts([run], [plain, odd])
    assert len(a["entities"]) >= 2  # the loud head finds entities here
    # the model sees the same sub-tokens, so the same entities, with the zero-width words inside their spans
    assert [(e["type"], e["text"].replace(" \u200b", ""), round(e["score"], 5)) for e in b["entities"]] == [
        (e["type"], e["text"], round(e["score"], 5)) for e in a["entities"]
    ]
    assert b["words_not_labelled"] == 2 and "words_not_labelled" not in a
    for entity in b["entities"]:
        assert odd[entity["start"] : entity["end"]] == entity["text"]


def test_ner_text_output_has_character_spans(tiny_runs, capsys, monkeypatch):
    import io

    text = "Peter Blackburn visited Brussels, said the EU."
    monkeypatch.setattr("sys.stdin", io.StringIO(text + "\n"))
    out = main([str(tiny_runs["ner"]), "--format", "jsonl"])
    (record,) = out["records"]
    assert json.loads(capsys.readouterr().out) == record
    run = inference.load_run(tiny_runs["ner"])
    words = inference.split_words(run.tokenizer, text)
    assert [w for w, _ in words][:4] == ["Peter", "Blackburn", "visited", "Brussels"]
    # the tags behind the entities are the model's own word predictions on those words
    probs = inference.word_probabilities(run, [[w for w, _ in words]])[0]
    tags = [run.task.label_names[i] for i in probs.argmax(-1)]
    expected = inference.tags_to_entities(tags, [s for _, s in words], list(probs.max(-1)), text)
    assert record["entities"] == expected
    for entity in record["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]


def test_tags_to_entities_spans():
    text = "John Smith met Acme Corp in New York"
    words = [("John", (0, 4)), ("Smith", (5, 10)), ("met", (11, 14)), ("Acme", (15, 19)), ("Corp", (20, 24))]
    words += [("in", (25, 27)), ("New", (28, 31)), ("York", (32, 36))]
    tags = ["B-PER", "I-PER", "O", "B-ORG", "I-LOC", "O", "I-LOC", "I-LOC"]
    scores = [0.9, 0.7, 0.99, 0.8, 0.6, 0.9, 0.5, 0.7]
    entities = inference.tags_to_entities(tags, [s for _, s in words], scores, text)
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in entities] == [
        ("PER", "John Smith", 0, 10),
        ("ORG", "Acme", 15, 19),
        ("LOC", "Corp", 20, 24),  # I-LOC after an ORG starts a new entity (conlleval)
        ("LOC", "New York", 28, 36),  # I-X after O too
    ]
    assert entities[0]["score"] == pytest.approx(0.8)


def test_errors_are_usage_errors(tiny_runs, tmp_path):
    with pytest.raises(UsageError, match="run folder not found: nowhere"):
        main(["nowhere", "--input", "x"])
    (tmp_path / "half").mkdir()
    with pytest.raises(UsageError, match="is not a finished run"):
        main([str(tmp_path / "half")])
    with pytest.raises(UsageError, match="--ensemble: .* is a 'sentiment' run, .* a 'ner' run"):
        main(["--ensemble", str(tiny_runs["ner"]), str(tiny_runs["sentiment"])])
    with pytest.raises(UsageError, match="give one RUN folder, or --ensemble"):
        main([])
    with pytest.raises(UsageError, match="--input missing.txt: file not found"):
        main([str(tiny_runs["sentiment"]), "--input", "missing.txt"])
