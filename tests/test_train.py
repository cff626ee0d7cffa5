import json

import pytest
import torch

from nmt.data.corpus import prepare
from nmt.decode.translator import Translator
from nmt.train.loop import Trainer
from tests.conftest import needs_native_bf16


def quiet(*_):
    pass


def test_loss_goes_clearly_down(make_config):
    """A short run on a small toy corpus (2000 pairs) must learn, not just fit
    unigram statistics: the training loss falls well below its first value."""
    cfg = make_config(
        data={"toy": {"train_size": 2000}},
        tokenizer={"vocab_size": 1000, "model_type": "bpe"},
        model={
            "embed_dim": 32,
            "encoder": {"hidden": 64},
            "decoder": {"hidden": 128, "readout": 128},
        },
        train={"max_steps": 200, "valid_every": 100, "log_every": 10, "lr": 0.005},
    )
    corpus = prepare(cfg, quiet)
    Trainer(cfg, corpus, log=quiet).train()
    log = (cfg.model_dir / "log.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in log]
    train = [r["loss"] for r in recs if r["type"] == "train"]
    valid = [r["ppl"] for r in recs if r["type"] == "valid"]
    assert train[-1] < 0.8 * train[0], train
    assert valid[-1] < valid[0], valid


@pytest.mark.parametrize(
    "dec,rev,cond",
    [("gru", True, "cho"), ("lstm", False, "cho"), ("lstm", True, "sutskever")],
)
def test_decoder_types_and_reversal_train_and_translate(make_config, dec, rev, cond):
    cfg = make_config(
        model={"decoder": {"type": dec, "conditioning": cond}},
        data={"reverse_source": rev},
        train={"max_steps": 6},
    )
    corpus = prepare(cfg, quiet)
    Trainer(cfg, corpus, log=quiet).train()
    tr = Translator.load(cfg.model_dir, beam=2)
    assert tr.config.data.reverse_source is rev
    assert tr.config.model.decoder.type == dec
    assert tr.config.model.decoder.conditioning == cond
    out = tr.translate(["da vaim skousts saifen.", "", "dei pails getul."])
    assert len(out) == 3 and out[1] == ""


def test_cache_reused_and_invalidated(make_config):
    logs = []
    cfg = make_config()
    prepare(cfg, logs.append)
    prepare(cfg, logs.append)
    assert any("reusing cached corpus" in m for m in logs[-1:])
    logs.clear()
    prepare(make_config(tokenizer={"vocab_size": 250}), logs.append)
    assert not any("reusing" in m for m in logs)
    logs.clear()  # reversal happens at batching time: the ids are reused
    prepare(make_config(data={"reverse_source": True}), logs.append)
    assert any("reusing" in m for m in logs)


def test_same_seed_same_model(make_config):
    def train_once():
        cfg = make_config(train={"max_steps": 5})
        Trainer(cfg, prepare(cfg, quiet), log=quiet).train()
        return torch.load(cfg.model_dir / "last.pt", weights_only=True)["model"]

    a, b = train_once(), train_once()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_fresh_run_keeps_an_earlier_run_aside(make_config):
    """Without --resume, training in a used model folder starts over in an empty
    one: the earlier run moves aside whole (keep_last would otherwise prune the
    new run's own checkpoints, and averaging would mix the two)."""
    from nmt.checkpoint import numbered

    first = make_config(train={"max_steps": 8, "save_every": 4, "keep_last": 2})
    Trainer(first, prepare(first, quiet), log=quiet).train()
    (first.model_dir / "averaged.pt").write_bytes(b"an earlier average")
    assert [p.name for p in numbered(first.model_dir)][-1] == "step-00000008.pt"
    again = make_config(train={"max_steps": 4, "save_every": 2, "keep_last": 2})
    logs = []
    Trainer(again, prepare(again, quiet), log=logs.append).train()
    names = [p.name for p in numbered(again.model_dir)]
    assert names == ["step-00000002.pt", "step-00000004.pt"]
    assert not (again.model_dir / "averaged.pt").exists()
    (kept,) = again.model_dir.parent.glob("model.*")
    assert any(f"moved to {kept}" in m for m in logs)
    assert (kept / "averaged.pt").read_bytes() == b"an earlier average"
    assert [p.name for p in numbered(kept)][-1] == "step-00000008.pt"
    ck = torch.load(again.model_dir / "last.pt", weights_only=True)
    assert ck["step"] == 4


def test_non_finite_losses_are_skipped_then_stop(make_config, monkeypatch):
    import nmt.train.loop as trainer_mod
    from nmt.errors import NmtError
    from nmt.model.seq2seq import Seq2Seq

    real = Seq2Seq.forward
    calls = {"n": 0}

    def flaky(self, batch, label_smoothing=0.0):
        calls["n"] += 1
        loss = real(self, batch, label_smoothing)
        return loss * float("nan") if calls["n"] in (2, 3) else loss

    monkeypatch.setattr(Seq2Seq, "forward", flaky)
    cfg = make_config(train={"max_steps": 6, "valid_every": 100})
    Trainer(cfg, prepare(cfg, quiet), log=quiet).train()
    ck = torch.load(cfg.model_dir / "last.pt", weights_only=True)
    assert ck["skipped"] == 2 and ck["step"] == 6
    assert all(torch.isfinite(v).all() for v in ck["model"].values())

    monkeypatch.setattr(
        Seq2Seq, "forward", lambda self, b, ls=0.0: real(self, b, ls) * float("inf")
    )
    monkeypatch.setattr(trainer_mod, "MAX_BAD_STEPS", 3)
    cfg = make_config(workdir=str(cfg.model_dir.parent.parent / "w2"))
    with pytest.raises(NmtError, match="3 non-finite losses in a row"):
        Trainer(cfg, prepare(cfg, quiet), log=quiet).train()
    assert (cfg.model_dir / "last.pt").exists()


@needs_native_bf16
def test_bf16_autocast_path_runs_on_cpu(make_config):
    """The mixed-precision path (bf16 autocast, as on CUDA) trains and validates."""
    cfg = make_config(train={"precision": "bf16", "max_steps": 3, "valid_every": 3})
    summary = Trainer(cfg, prepare(cfg, quiet), log=quiet).train()
    assert summary["steps"] == 3 and summary["skipped_updates"] == 0
    ck = torch.load(cfg.model_dir / "last.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in ck["model"].values())  # fp32 master


def test_fp16_needs_cuda(make_config):
    from nmt.errors import NmtError

    cfg = make_config(train={"precision": "fp16", "device": "cpu"})
    with pytest.raises(NmtError, match="fp16 needs a CUDA device"):
        Trainer(cfg, prepare(cfg, quiet), log=quiet)


def test_last_pt_is_train_state_plus_the_parts(make_config):
    """last.pt keeps its flat keys (older runs still resume): the TrainState
    counters, as plain numbers, beside the model, optimizer, schedule, scaler,
    RNG states and config."""
    from nmt.train.state import TrainState

    cfg = make_config(train={"max_steps": 2})
    Trainer(cfg, prepare(cfg, quiet), log=quiet).train()
    ck = torch.load(cfg.model_dir / "last.pt", weights_only=True)
    parts = {"model", "optimizer", "schedule", "scaler", "rng", "cuda_rng", "config"}
    assert set(ck) == {*TrainState.keys(), *parts}
    state = TrainState.from_dict(ck)
    assert state.step == 2 and state.epoch == 0 and state.tokens > 0
    assert state.to_dict() == {k: ck[k] for k in TrainState.keys()}
    assert all(type(ck[k]) in (int, float) for k in TrainState.keys())
