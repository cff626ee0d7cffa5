"""Checkpoints: one self-describing dict, written atomically, loaded as data only.

Inference weights (`best`, averages) are `.safetensors`: tensors and a JSON header,
no pickle, read through a memory map; what else the dict holds (step, config,
scores) is the header's metadata. The resume state (`last.pt`) and the numbered
checkpoints that `nmt average` reads are torch files, loaded with
`weights_only=True`. Model directories written before safetensors (`best.pt`)
still load: `find` looks for both.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from nmt.errors import NmtError
from nmt.files import atomic

SAFETENSORS = ".safetensors"
SUFFIXES = (SAFETENSORS, ".pt")


def save_checkpoint(obj: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A reader (or a process killed mid-write) sees the old file or the new one,
    never a torn one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == SAFETENSORS:
            data = _safetensors_bytes(obj)
        else:  # serialized first: torch's writer reports a full disk as a bad offset
            buf = io.BytesIO()
            torch.save(obj, buf)
            data = buf.getbuffer()
        with atomic(path) as f:
            f.write(data)
    except (OSError, RuntimeError) as e:
        reason = getattr(e, "strerror", None) or str(e).strip().splitlines()[-1]
        kept = " (the previous one is kept)" if path.exists() else ""
        raise NmtError(f"cannot write checkpoint {path}: {reason}{kept}") from None


def load_checkpoint(
    path: Path,
    map_location: str | torch.device = "cpu",
    needs: tuple[str, ...] = ("model",),
) -> dict:
    """A checkpoint dict, loaded as data only, that has the keys in `needs`."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"checkpoint not found: {path}")
    try:
        if path.suffix == SAFETENSORS:
            ck = _from_safetensors(path, map_location)
        else:
            with warnings.catch_warnings():  # a foreign pickle: our one line says it
                warnings.simplefilter("ignore")
                ck = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise NmtError(
            f"{path}: not a readable checkpoint ({type(e).__name__})"
        ) from None
    missing = [k for k in needs if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise NmtError(
            f"{path}: not an nmt checkpoint of this kind (no {', '.join(missing)})"
        )
    if "model" in needs and not isinstance(ck["model"], dict):
        raise NmtError(f"{path}: its 'model' entry is not a set of weights")
    return ck


def _safetensors_bytes(obj: dict) -> bytes:
    """`obj["model"]` as safetensors, the rest of `obj` as JSON in its metadata.
    Tied weights (one tensor under two names) are stored once; the metadata
    names the aliases and loading restores them."""
    tensors: dict[str, torch.Tensor] = {}
    first: dict[tuple, str] = {}  # (storage, offset, shape) -> the name stored
    aliases: dict[str, str] = {}
    for name, t in obj["model"].items():
        where = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if where in first and t.numel():
            aliases[name] = first[where]
        else:
            first[where] = name
            tensors[name] = t.detach().to("cpu", copy=True)  # its own storage
    meta = {k: v for k, v in obj.items() if k != "model"}
    meta["aliases"] = aliases
    return st_save(tensors, metadata={"format": "pt", "nmt": json.dumps(meta)})


def _from_safetensors(path: Path, map_location) -> dict:
    """The checkpoint dict of a `.safetensors` file (tensors through a memory map)."""
    device = str(map_location)
    with safe_open(path, framework="pt", device=device) as f:
        meta = json.loads((f.metadata() or {}).get("nmt", "{}"))
        state = {k: f.get_tensor(k) for k in f.keys()}
    if not isinstance(meta, dict):
        raise ValueError("its metadata is not a mapping")
    for name, target in meta.pop("aliases", {}).items():
        state[name] = state[target]
    return {"model": state, **meta}


def find(directory: Path, name: str) -> Path:
    """The checkpoint `name` names in `directory`: the file itself, else the same
    stem as .safetensors or .pt (so `best`, `best.pt` and `best.safetensors` all
    find a directory's best weights, old or new). `best` falls back to `last.pt`
    when training stopped before it validated."""
    directory = Path(directory)
    stem = name
    for suffix in SUFFIXES:
        stem = stem.removesuffix(suffix)
    tried = [name, *(stem + s for s in SUFFIXES)]
    if stem == "best":
        tried.append("last.pt")
    for candidate in dict.fromkeys(tried):
        if (directory / candidate).is_file():
            return directory / candidate
    looked = ", ".join(dict.fromkeys(tried))
    raise NmtError(f"checkpoint not found: {directory / name} (looked for {looked})")


def load_weights(model: torch.nn.Module, state: dict, path: Path) -> None:
    """`model.load_state_dict(state)`, or one line saying why they do not fit."""
    ours, theirs = set(model.state_dict()), set(state)
    missing, extra = sorted(ours - theirs), sorted(theirs - ours)
    if missing or extra:
        what = [
            f"{name} {', '.join(keys[:3])}"
            for name, keys in (("missing", missing), ("unexpected", extra))
            if keys
        ]
        raise NmtError(
            f"{path}: its weights do not fit the model its config describes "
            f"({'; '.join(what)}); was it made by another version of nmt?"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # same names, other shapes
        first = str(e).strip().splitlines()[-1].strip()
        raise NmtError(
            f"{path}: its weights do not fit the model its config describes: {first}"
        ) from None


def save_numbered(
    model_state: dict, cfg, step: int, directory: Path, keep: int
) -> None:
    """`step-NNNNNNNN.pt` (weights only) and keep the newest `keep` of them."""
    save_checkpoint(
        {"model": model_state, "step": step, "config": cfg.to_dict()},
        directory / f"step-{step:08d}.pt",
    )
    for old in numbered(directory)[:-keep]:
        old.unlink()


def numbered(directory: Path) -> list[Path]:
    """Numbered checkpoints, oldest first."""
    return sorted(Path(directory).glob("step-*.pt"))


# what training writes; never an average's output
PROTECTED = ("best.safetensors", "best.pt", "last.pt")
BEST = "best.safetensors"


def average(directory: Path, last: int, out_name: str = "averaged.safetensors") -> Path:
    """Average the parameters of the newest `last` numbered checkpoints into
    `out_name` (.safetensors, or .pt for a torch file), which may not be a
    checkpoint that training writes."""
    directory = Path(directory)
    if last < 1:
        raise NmtError(f"--last must be at least 1; got {last}")
    if not directory.is_dir():
        raise NmtError(f"model directory not found: {directory}")
    out = directory / out_name
    if out.name in PROTECTED or out.name.startswith("step-"):
        raise NmtError(
            f"-o {out_name} would overwrite a checkpoint that training writes; "
            "name another file (default: averaged.safetensors)"
        )
    if out.suffix not in SUFFIXES or out.name in SUFFIXES:
        raise NmtError(
            f"-o {out_name}: name a file ending in .safetensors (or .pt for a "
            "torch checkpoint)"
        )
    paths = numbered(directory)[-last:]
    if not paths:
        raise NmtError(f"{directory}: no step-*.pt checkpoints to average")
    acc: dict[str, torch.Tensor] = {}
    ck: dict = {}
    for p in paths:
        ck = load_checkpoint(p, needs=("model", "step", "config"))
        if acc and (
            set(ck["model"]) != set(acc)
            or any(v.shape != acc[k].shape for k, v in ck["model"].items())
        ):
            raise NmtError(
                f"{p} has other weights than {paths[0].name} (another model size?); "
                "average checkpoints of one run"
            )
        for k, v in ck["model"].items():
            acc[k] = acc[k] + v.double() if k in acc else v.double()
    state = {k: (v / len(paths)).to(ck["model"][k].dtype) for k, v in acc.items()}
    save_checkpoint(
        {
            "model": state,
            "step": ck["step"],
            "config": ck["config"],
            "averaged": [p.name for p in paths],
        },
        out,
    )
    return out
