"""The GRU and LSTM cells, one step, computed as torch's nn.GRU / nn.LSTM compute
them (gate order and all), so that the decoder's step loop and its fused training
call agree. gi and gh are the input's and the previous state's shares of the
gates, x W_ih^T + b_ih and h_{t-1} W_hh^T + b_hh, each [M, G * H]."""

from __future__ import annotations

import torch


def lstm_cell(gi: torch.Tensor, gh: torch.Tensor, c: torch.Tensor):
    """nn.LSTM's cell from its gates' input and hidden shares gi, gh [M, 4H]
    (order i, f, g, o) and c_{t-1} [M, H] -> (h_t, c_t)."""
    i, f, g, o = (gi + gh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """nn.GRU's cell from gi, gh [M, 3H] (order r, z, n) and h_{t-1} [M, H]."""
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n)
