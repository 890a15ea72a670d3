"""What operations do to time: the tables the analysis reads."""
from __future__ import annotations

import operator
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.node import Node


POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU,
                      nn.CELU, nn.SELU, nn.LeakyReLU, nn.Softplus, nn.Softsign, nn.Hardswish,
                      nn.Hardsigmoid, nn.Mish, nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.Identity,
                      nn.Threshold, nn.Tanhshrink, nn.LogSigmoid)
POINTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow,
    torch.add, torch.sub, torch.mul, torch.div, torch.true_divide, torch.maximum, torch.minimum,
    torch.where, torch.pow, torch.clamp, torch.clip, torch.relu, torch.sigmoid, torch.tanh, torch.exp,
    torch.log, torch.log1p, torch.expm1, torch.abs, torch.neg, torch.sqrt, torch.rsqrt, torch.square,
    torch.sign, torch.erf, torch.masked_fill,
    F.relu, F.relu6, F.hardtanh, F.gelu, F.silu, F.elu, F.celu, F.selu, F.leaky_relu, F.softplus,
    F.softsign, F.hardswish, F.hardsigmoid, F.mish, F.sigmoid, F.tanh, F.dropout, F.logsigmoid,
    F.threshold, F.tanhshrink,
}
POINTWISE_METHODS = {"add", "sub", "mul", "div", "true_divide", "pow", "neg", "relu", "sigmoid", "tanh",
                      "exp", "log", "log1p", "abs", "sqrt", "rsqrt", "clamp", "clamp_min", "clamp_max",
                      "clip", "square", "sign", "masked_fill", "float", "half", "double", "to", "type_as",
                      "contiguous", "maximum", "minimum", "erf"}
# Operations that keep every value where it is (zero stays zero: `clean` passes through).
IDENTITY_LIKE = {"float", "half", "double", "to", "type_as", "contiguous", F.dropout}
IDENTITY_LIKE_MODULES = (nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.Identity)
# Layout operations: time moves with the data (checked through the traced shapes).
LAYOUT_FUNCTIONS = {torch.transpose, torch.permute, torch.unsqueeze, torch.squeeze, torch.movedim,
                     torch.swapaxes, torch.flatten, torch.reshape}
LAYOUT_METHODS = {"transpose", "permute", "unsqueeze", "squeeze", "movedim", "swapaxes", "view",
                   "reshape", "flatten", "unflatten", "expand", "expand_as", "repeat", "view_as",
                   "reshape_as"}
REGROUPING = {torch.flatten, torch.reshape, "view", "reshape", "flatten", "unflatten", "view_as",
               "reshape_as"}
# Operations over given dims: (argument position of dim, default dims; None = all dims).
DIM_FUNCTIONS = {
    torch.softmax: (1, "required"), torch.log_softmax: (1, "required"), F.softmax: (1, "required"),
    F.log_softmax: (1, "required"), torch.sum: (1, None), torch.mean: (1, None), torch.amax: (1, None),
    torch.amin: (1, None), torch.std: (1, None), torch.var: (1, None), torch.logsumexp: (1, "required"),
    torch.prod: (1, None), torch.cumsum: (1, "required"), F.normalize: (2, 1), F.glu: (1, -1),
}
DIM_METHODS = {"softmax": (1, "required"), "log_softmax": (1, "required"), "sum": (1, None),
                "mean": (1, None), "amax": (1, None), "amin": (1, None), "std": (1, None), "var": (1, None),
                "logsumexp": (1, "required"), "prod": (1, None), "cumsum": (1, "required")}
SPLIT_FUNCTIONS = {torch.chunk: (2, 0), torch.split: (2, 0), torch.unbind: (1, 0)}
SPLIT_METHODS = {"chunk": (2, 0), "split": (2, 0), "unbind": (1, 0)}
SIZE_METHODS = {"size", "dim"}
SIZE_ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv, operator.neg}


def node_arg(node: Node, pos: int, name: str, default=None):
    if name in node.kwargs:
        return node.kwargs[name]
    if len(node.args) > pos:
        return node.args[pos]
    return default


def dims_of(d, rank: int) -> Optional[set]:
    if d is None:
        return None
    if isinstance(d, (list, tuple)):
        return {x % rank for x in d}
    return {d % rank}
