"""`train.tensorboard: true`: the numbers of `log.jsonl` as TensorBoard scalars in
`<model>/tensorboard/`, read back with tensorboard's own reader; the refusal
without the package; nothing written on a rank other than 0."""

import json
import sys
from pathlib import Path

import pytest

from nmt.data.corpus import prepare
from nmt.errors import NmtError
from nmt.train.distributed import Dist
from nmt.train.loop import Trainer

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator"
)


def quiet(*_):
    pass


def numeric(record: dict) -> dict:
    """The fields of a log record that become scalars: numbers, bar the step."""
    return {
        k: v
        for k, v in record.items()
        if k != "step" and isinstance(v, (int, float)) and type(v) is not bool
    }


def test_every_logged_number_is_a_scalar_at_its_step(make_config):
    cfg = make_config(
        train={"tensorboard": True, "max_steps": 10, "log_every": 2, "valid_every": 5}
    )
    Trainer(cfg, prepare(cfg, quiet), log=quiet).train()
    lines = (cfg.model_dir / "log.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    train = [r for r in records if r["type"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10]
    assert all(r["grad_norm"] > 0 for r in train)  # clip_norm is on by default
    assert [r["step"] for r in records if r["type"] == "valid"] == [5, 10]

    folder = cfg.model_dir / "tensorboard"
    assert list(folder.glob("events.out.tfevents.*"))
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    expected: dict[str, dict[int, float]] = {}
    for r in records:
        for k, v in numeric(r).items():
            expected.setdefault(f"{r['type']}/{k}", {})[r["step"]] = v
    for tag in ("train/loss", "train/lr", "train/tok_s", "train/grad_norm"):
        assert tag in expected
    for tag in ("valid/loss", "valid/ppl", "valid/bleu"):
        assert tag in expected
    assert sorted(acc.Tags()["scalars"]) == sorted(expected)
    for tag, by_step in expected.items():
        got = {e.step: e.value for e in acc.Scalars(tag)}
        assert got.keys() == by_step.keys(), tag
        for step, v in by_step.items():
            assert got[step] == pytest.approx(v, rel=1e-6, abs=1e-6), (tag, step)
    # the hyperparameters: the resolved recipe, as text and in the HParams tab
    assert "config/text_summary" in acc.Tags()["tensors"]
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "train.tensorboard: true" in text and "model.embed_dim: 16" in text
    assert acc.PluginTagToContent("hparams")


def test_without_the_package_one_line_before_training(make_config, monkeypatch):
    cfg = make_config(train={"tensorboard": True})
    corpus = prepare(cfg, quiet)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(NmtError) as e:
        Trainer(cfg, corpus, log=quiet)
    assert str(e.value) == (
        "train.tensorboard: true needs the tensorboard package: "
        'pip install "nmt[tensorboard]"'
    )
    assert not cfg.model_dir.exists()


def test_off_by_default_and_silent_on_other_ranks(make_config, monkeypatch):
    cfg = make_config()
    Trainer(cfg, prepare(cfg, quiet), log=quiet).train()
    assert not (cfg.model_dir / "tensorboard").exists()

    # a rank other than 0, alone (no process group): it trains, writes nothing
    monkeypatch.setattr("nmt.train.build.setup", lambda device: Dist(rank=1))
    cfg = make_config(train={"tensorboard": True}, workdir=cfg.workdir + "-rank1")
    Trainer(cfg, prepare(cfg, quiet), log=quiet).train()
    assert not (cfg.model_dir / "tensorboard").exists()


def test_without_the_package_nmt_train_refuses_before_any_data(
    tiny_raw, write_recipe, monkeypatch
):
    from tests.faults import run_cli

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    tiny_raw["train"]["tensorboard"] = True
    line = run_cli("train", write_recipe(tiny_raw)).error
    assert 'pip install "nmt[tensorboard]"' in line
    assert not Path(tiny_raw["workdir"]).exists()  # nothing prepared, nothing made
