from finetune_lab import tracking


def test_no_key_means_offline_said_once(monkeypatch, capsys):
    assert tracking.choose_wandb_mode() == "offline"
    assert tracking.choose_wandb_mode() == "offline"
    out = capsys.readouterr().out
    assert out.count("W&B: no API key found, logging offline") == 1


def test_a_key_in_the_environment_or_netrc_means_online(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert tracking.choose_wandb_mode() == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "p" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert tracking.has_wandb_credentials()


def test_the_users_wandb_mode_wins(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.choose_wandb_mode() == "disabled"


def test_wandb_that_cannot_start_online_falls_back_to_offline(monkeypatch, capsys, tmp_path):
    # A key, but the server is a closed local port: online start fails, the run goes on offline.
    monkeypatch.setenv("WANDB_API_KEY", "fake-wandb-key-0123456789abcdef01234567")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "15")
    run = tracking.start_wandb("fallback", "sentiment", ["t"], {"lr": 1e-4})
    try:
        assert run is not None and run.settings.mode == "offline"
        run.log({"eval/accuracy": 0.5})
    finally:
        tracking.finish(run)
    assert "falling back to offline logging" in capsys.readouterr().out
    assert len(list(tmp_path.glob("wandb/offline-run-*"))) == 1
