"""The op table, by family.  Each op maps per-row tensors to a per-row tensor and carries
its own derivative rules; ``base`` says what every op has.

- ``activations``: the elementwise activation table h, h' (and softmax/log_softmax);
- ``structure``: identity, transpose, reshape, slice, concatenation (linear);
- ``dense``: Dense and activation layers;
- ``norm``: affine normalisations and layer normalisation;
- ``merge``: add, subtract, multiply, average, maximum, minimum;
- ``spatial``: convolution and pooling windows;
- ``conv_variants``: depthwise and transposed convolutions;
- ``recurrent``: SimpleRNN, LSTM and GRU unrolled over time (backprop through time; ``recurrent_second``:
  their second-order rule); ``time_distributed``: TimeDistributed;
- ``tensor``: general tensor ops ONNX graphs need (pointwise functions with the file's own
  parameters, broadcasting binary ops, where, constants, gather, strided slices, pads, reductions).

A new op goes in the family file it belongs to, decorated with ``@register`` so NPZ files
can store it; import it here.
"""

from .activations import ELEMENTWISE, Activation
from .base import OPS, Linear, Op, dot_last, make_op, op_config, register
from .conv_variants import ConvTranspose, Depthwise
from .dense import Act, Dense
from .merge import Merge
from .norm import Affine, LayerNorm, batch_norm, normalization
from .recurrent import Recurrent
from .spatial import Conv, GlobalPool, Pool, Window
from .structure import Concat, FlatConcat, Identity, Repeat, Reshape, Resize, Slice, Transpose
from .tensor import Binary, Const, Pointwise, Where
from .tensor_index import Pad, Reduce, Strided, Take
from .time_distributed import TimeDistributed

__all__ = [
    "ELEMENTWISE", "OPS", "Act", "Activation", "Affine", "Concat", "Conv", "Dense", "FlatConcat", "GlobalPool",
    "Identity", "LayerNorm", "Linear", "Merge", "Op", "Pool", "Reshape", "Slice", "Transpose", "Window",
    "ConvTranspose", "Depthwise", "Recurrent", "Repeat", "Resize", "TimeDistributed",
    "Binary", "Const", "Pad", "Pointwise", "Reduce", "Strided", "Take", "Where", "batch_norm", "dot_last", "make_op",
    "normalization", "op_config", "register",
]
