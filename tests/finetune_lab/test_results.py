import json

from finetune_lab.results import REDACTED, environment, redact, write_json


def test_secret_keys_and_environment_secret_values_are_redacted(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-0123456789abcdef")
    config = {
        "hub_token": "hf_abc123",
        "token_accuracy": 0.9,
        "notes": "key fake-key-0123456789abcdef",
        "nested": [{"api_key": "x"}],
        "hub_model_id": None,
    }
    clean = redact(config)
    assert clean["hub_token"] == REDACTED and clean["nested"][0]["api_key"] == REDACTED
    assert clean["token_accuracy"] == 0.9 and clean["hub_model_id"] is None
    assert "fake-key" not in json.dumps(clean)


def test_write_json_replaces_atomically(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


def test_environment_names_library_versions():
    env = environment()
    assert env["packages"]["torch"] and env["packages"]["transformers"]
    assert set(env["git"]) == {"commit", "dirty"}
