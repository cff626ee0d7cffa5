"""CPU speed paths for decoding, each proven equal to the plain path by a test
(tests/test_fast.py, tests/test_packed.py); what each buys is in BENCHMARKS.md,
"What the CPU fast paths buy".

`FastStepper(model)` is a `Stepper` (nmt/decode/search.py) that runs the decoder's
own recurrence (`Decoder.advance`) with:

* per-word tables: each target word's share of the first layer's input gates
  (W_e e) and of the readout (B e), looked up per step instead of multiplied;
* `Packed` products: the per-step weights reordered once into oneDNN's blocked
  layout, which multiplies decoding-sized products faster than MKL (training
  does not pack: its weights change at every update, and for its product sizes
  oneDNN was no faster);
* one score buffer per batch, so that the steps' [rows, V] log-probabilities
  reuse memory instead of faulting in fresh pages at every step;
* with `decode.precision: int8`, `Int8Linear` products instead of `Packed` and,
  on a quantized engine, an int8 copy of the encoder's LSTM (nmt/decode/int8.py);
  with `decode.shortlist`, an output layer cut to the
  batch's candidate pieces (nmt/decode/shortlist.py; `columns` names them).

`row_topk` ranks the candidates of beam search, `row_argmax` picks greedy
search's word.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nmt.decode import int8 as int8_engines
from nmt.decode.int8 import Int8Linear
from nmt.decode.shortlist import Shortlist
from nmt.model.decoder import DecoderState, per_sentence
from nmt.model.seq2seq import Seq2Seq

TABLE_BYTES = 256 * 2**20  # largest per-word tables a FastStepper builds


def _autocast_query() -> Callable[[str], bool]:
    """torch.is_autocast_enabled(device) for any torch: the argument came in 2.4."""
    try:
        torch.is_autocast_enabled("cpu")
    except TypeError:
        return lambda device: (
            torch.is_autocast_cpu_enabled()
            if device == "cpu"
            else torch.is_autocast_enabled()
        )
    return torch.is_autocast_enabled


autocast_enabled = _autocast_query()


def _reorder(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight, None)


def _packed_linear(x, blocked, bias) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, blocked, bias, "none", [], "")


@functools.cache
def onednn_works() -> bool:
    """Whether oneDNN's packed product runs here and gives F.linear's numbers,
    tried once on a small product: the ops belong to torch's compiler backend,
    so a build may lack them or fail at their first use."""
    if not torch.backends.mkldnn.is_available():
        return False
    w, b = torch.linspace(-1, 1, 24).view(6, 4), torch.linspace(0, 1, 6)
    x = torch.linspace(-2, 2, 12).view(3, 4)
    try:
        y = _packed_linear(x, _reorder(w), b)
    except (AttributeError, RuntimeError):  # an absent op; a failing one
        return False
    return y.shape == (3, 6) and torch.allclose(y, F.linear(x, w, b), atol=1e-5)


class Packed:
    """y = x W^T + b for x [M, in] (no gradient), as F.linear(x, weight, bias).

    Falls back to `torch.addmm` with the weight transposed once (the layout MKL
    runs [rows, in] x [in, out] fastest in) where oneDNN cannot run it: not a
    float32 CPU weight, no working oneDNN (`onednn_works`), or under autocast
    (bf16 decoding multiplies in bfloat16 instead)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        self.weight = weight.detach()
        self.bias = None if bias is None else bias.detach()
        self.blocked = self.weight_t = None
        if weight.device.type == "cpu" and weight.dtype == torch.float32:
            if onednn_works():
                self.blocked = _reorder(self.weight.contiguous())

    def rows(self, index: torch.Tensor) -> Packed:
        """The product of output rows `index` only (a shortlist)."""
        bias = None if self.bias is None else self.bias[index]
        return Packed(self.weight[index], bias)

    def __getstate__(self) -> dict:  # oneDNN's copy cannot be copied or pickled
        return {"weight": self.weight, "bias": self.bias}

    def __setstate__(self, state: dict) -> None:  # so it is made again
        self.__init__(state["weight"], state["bias"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.blocked is not None and x.dtype == torch.float32:
            if not autocast_enabled(x.device.type):
                return _packed_linear(x, self.blocked, self.bias)
        if self.weight_t is None:
            self.weight_t = self.weight.t().contiguous()
        if self.bias is None:
            return x @ self.weight_t
        return torch.addmm(self.bias, x, self.weight_t)


@dataclass
class DecodeTables:
    """The per-word constants and packed products of one set of weights."""

    key: tuple  # identity and version of the weights they were made from
    gates: torch.Tensor | None  # [V, G * H] W_e e for every target word e
    read: torch.Tensor | None  # [V, R] B e (Cho readout), else None
    packed: dict[str, Packed | Int8Linear]  # Decoder.products(), by name
    encoder: torch.nn.Module | None = None  # int8: the encoder's quantized LSTM


class FastStepper:
    """The model's decoding step, fast: the same recurrence and, to float
    rounding, the same log-probabilities as `Seq2Seq.step` (in eval mode).

    Built once per model (`Translator.load`, or per validation); it remakes its
    tables when the weights change in place (an optimizer step, averaging), as
    their data pointers and versions tell, checked once per batch (`encode`).
    """

    def __init__(
        self, model: Seq2Seq, int8: bool = False, shortlist: Shortlist | None = None
    ):
        self.model, self.decoder = model, model.decoder
        self.product = Int8Linear if int8 else Packed  # nmt/decode/int8.py
        # int8 on an engine also quantizes the encoder's LSTM
        self.engine = int8_engines.kernel() if int8 else "int_mm"
        self.shortlist = shortlist  # nmt/decode/shortlist.py
        self.columns: torch.Tensor | None = None  # this batch's shortlist, or all
        self._out: Packed | Int8Linear | None = None  # its output layer
        self.tables: DecodeTables | None = None
        self._scores: torch.Tensor | None = None  # this batch's score buffer
        self._refresh()

    def _refresh(self) -> None:
        dec = self.decoder
        params = [dec.embed.weight, dec.rnn.weight_ih_l0]
        for name in dec.products():
            params += [p for p in dec.product(name) if p is not None]
        if dec.cho:
            params.append(dec.read_e.weight)
        if self.engine != "int_mm":
            params += list(self.model.encoder.rnn.parameters())
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in params)
        if self.tables is not None and self.tables.key == key:
            return
        vocab = dec.embed.num_embeddings
        width = dec.rnn.weight_ih_l0.size(0) + 2 * dec.read_h.out_features
        small = vocab * width * dec.embed.weight.element_size() <= TABLE_BYTES
        self.tables = None  # free the old ones first
        device = dec.embed.weight.device.type
        with torch.no_grad(), torch.autocast(device, enabled=False):
            e = dec.embed.weight
            self.tables = DecodeTables(
                key,
                e @ dec.w_in(0).t() if small else None,
                dec.read_e(e) if dec.cho and small else None,
                {name: self.product(*dec.product(name)) for name in dec.products()},
                self._quantized_encoder(),
            )

    def _quantized_encoder(self) -> torch.nn.Module | None:
        """The encoder's LSTM in int8 on this CPU's engine; None (float32) where
        int8 runs on `int_mm` or torch has no quantized LSTM."""
        if self.engine == "int_mm":
            return None
        try:
            return int8_engines.quantized_lstm(self.model.encoder.rnn, self.engine)
        except (ImportError, AttributeError, RuntimeError, NotImplementedError):
            return None

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> DecoderState:
        """src [N, S], src_len [N] -> the state, with its per-batch constants."""
        if self.model.training:
            raise ValueError("FastStepper decodes a model in eval mode")
        self._refresh()
        self._scores = None
        if self.shortlist is not None:
            self.columns = self.shortlist.columns(src, self.decoder.out.out_features)
            self._out = self.tables.packed["out"].rows(self.columns)
        state = self.model.encode(src, src_len, self.tables.encoder)
        return self.decoder.start(state)

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """The decoder's `Linear`, packed."""
        return self.tables.packed[name](x)

    def step(
        self, prev: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState]:
        """prev [M] ids -> log-probabilities [M, V] (float32), next state. The
        log-probabilities may live in this batch's buffer: the next step
        overwrites them (the searches read them before they step again)."""
        tab = self.tables
        if tab.gates is not None:
            gi = per_sentence(tab.gates.index_select(0, prev), state.gates, state.width)
            be = None if tab.read is None else tab.read.index_select(0, prev)
        else:
            gi, be = self.decoder.inputs(prev, state)
        r, state = self.decoder.advance(gi, be, state, self.linear)
        logits = self.linear("out", r) if self._out is None else self._out(r)
        if logits.dtype != torch.float32:
            return F.log_softmax(logits.float(), dim=-1), state
        rows = logits.size(0)
        if self._scores is None or self._scores.size(0) < rows:
            self._scores = torch.empty_like(logits)
        return torch.log_softmax(logits, dim=-1, out=self._scores[:rows]), state


def _run_maxima(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """x [N, V] -> the maximum of each full run of `chunk` columns [N, V // chunk]."""
    n, runs = x.size(0), x.size(1) // chunk
    return x[:, : runs * chunk].view(n, runs, chunk).amax(dim=2)


def _run_columns(best: torch.Tensor, chunk: int, v: int) -> torch.Tensor:
    """Runs best [N, k] -> their columns [N, k * chunk], in order, and then the
    columns after the last full run of a row of width v (always candidates)."""
    n, main = best.size(0), v // chunk * chunk
    step = torch.arange(chunk, device=best.device)
    cols = (best.unsqueeze(2) * chunk + step).view(n, -1)
    if main < v:
        rest = torch.arange(main, v, device=best.device).expand(n, -1)
        cols = torch.cat([cols, rest], dim=1)
    return cols


def row_topk(
    x: torch.Tensor, k: int, chunk: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """`x.topk(k, dim=1)` for rows much wider than k: the same values (on ties the
    indices may differ), faster on CPU, where a maximum over each run of `chunk`
    columns is cheap and torch.topk is not. The k runs with the largest maxima
    hold the k largest values, so only their k * chunk columns are ranked."""
    v = x.size(1)
    if x.device.type != "cpu" or v // chunk < 4 * k:
        return x.topk(k, dim=1)
    cols = _run_columns(_run_maxima(x, chunk).topk(k, dim=1).indices, chunk, v)
    values, j = x.gather(1, cols).topk(k, dim=1)
    return values, cols.gather(1, j)


def row_argmax(x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """`x.argmax(dim=1)` (the first maximum of each row, on ties), faster on CPU,
    where torch's argmax over wide rows is several times slower than a maximum:
    the first run of `chunk` columns whose maximum is the row's holds the row's
    first maximum, so only that run (and a partial last one) is searched."""
    v = x.size(1)
    if x.device.type != "cpu" or v // chunk < 4:
        return x.argmax(dim=1)
    # a larger value in the partial last run wins; an equal one comes later
    cols = _run_columns(_run_maxima(x, chunk).argmax(dim=1, keepdim=True), chunk, v)
    j = x.gather(1, cols).argmax(dim=1, keepdim=True)
    return cols.gather(1, j).squeeze(1)
