"""lstmcore's C++ core (cpp/bindings/): gated recurrent passes over (T, B, F) or, batch_first, (B, T, F) arrays.

Every array argument is a C-contiguous NumPy array of the call's dtype (float32 or float64),
of exactly the shape the pass indexes; "Optional" arrays may be None. Forward passes write y
(and the tapes and c_n they are given); backward passes add to the weight gradients and
write dx (or add to it, accumulate_dx=True), dh0 and dc0.
"""

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
from numpy.typing import NDArray

from . import diagnostics as diagnostics

# float32 or float64, as x's dtype; the binding checks every array against it.
_Floats = NDArray[np.floating[Any]]
# batch_sizes: (T,) int64 rows alive per step, non-increasing.
_Sizes = NDArray[np.int64]
# The four LSTM gate clamps (input, forget, candidate, output), each None or (H,).
_Clamps = Sequence[_Floats | None]
# gate, candidate, output: (name, alpha, beta) each
_Activation = tuple[str, float, float]
_Activations = Sequence[_Activation]

class _LoadSensorState(TypedDict):
    enabled: bool
    busy: bool
    passes_sensed: int
    busy_verdicts: int
    holds_renewed: int
    lone_slow_passes: int
    hold_seconds: float
    last_slowest_start_us: float
    last_longest_sleep_us: float

class PassOptions:
    """How one layer-direction's pass runs: direction, y's column offset, rows alive per step, layout."""

    def __init__(
        self, *, reverse: bool = False, y_offset: int = 0, batch_sizes: _Sizes | None = None, batch_first: bool = False
    ) -> None: ...
    @property
    def reverse(self) -> bool: ...
    @property
    def y_offset(self) -> int: ...
    @property
    def batch_sizes(self) -> _Sizes | None: ...
    @property
    def batch_first(self) -> bool: ...

class LstmWeights:
    """An LSTM layer-direction's weights (or their gradients) by name: references, not copies."""

    def __init__(
        self,
        weight_ih: _Floats,
        weight_hh: _Floats,
        bias_ih: _Floats,
        bias_hh: _Floats,
        peephole: _Floats | None = None,
    ) -> None: ...
    @property
    def weight_ih(self) -> _Floats: ...
    @property
    def weight_hh(self) -> _Floats: ...
    @property
    def bias_ih(self) -> _Floats: ...
    @property
    def bias_hh(self) -> _Floats: ...
    @property
    def peephole(self) -> _Floats | None: ...

class LstmOptions:
    """An LSTM pass's cell ('plain', 'peephole', 'coupled', 'peephole_coupled'; with chosen activations and clip
    'general', 'general_peephole', 'general_coupled', 'general_peephole_coupled'), clamps, regularizers."""

    def __init__(
        self,
        *,
        cell: str = "plain",
        clamps: _Clamps | None = None,
        recurrent_mask: _Floats | None = None,
        zoneout_h: _Floats | None = None,
        zoneout_c: _Floats | None = None,
        zoneout_rate: float = 0.0,
        activations: _Activations | None = None,
        clip: float = 0.0,
    ) -> None: ...
    @property
    def cell(self) -> str: ...
    @property
    def clamps(self) -> _Clamps | None: ...
    @property
    def recurrent_mask(self) -> _Floats | None: ...
    @property
    def zoneout_h(self) -> _Floats | None: ...
    @property
    def zoneout_c(self) -> _Floats | None: ...
    @property
    def zoneout_rate(self) -> float: ...
    @property
    def activations(self) -> _Activations | None: ...
    @property
    def clip(self) -> float: ...

class LstmTape:
    """What an LSTM forward recorded for its backward; made by lstm_forward, owned by the core."""

    @property
    def gates(self) -> _Floats | None:
        """(T, B, K*H) read-only activated gates, or None without a tape."""

    @property
    def cells(self) -> _Floats | None:
        """(T, B, H) read-only c_t, or None without a tape."""

    @property
    def cell_updates(self) -> _Floats | None:
        """(T, B, H) read-only c~_t before zoneout, or None without zoneout."""

    @property
    def c_n(self) -> _Floats:
        """(B, H) read-only: each sequence's last c_t."""

    @property
    def options(self) -> LstmOptions:
        """The LstmOptions the forward ran with."""

class ProjectedLstmWeights:
    """A projected LSTM layer-direction's weights (or their gradients) by name: references, not copies."""

    def __init__(
        self,
        weight_ih: _Floats,
        weight_hh: _Floats,
        bias_ih: _Floats,
        bias_hh: _Floats,
        weight_hr: _Floats,
        peephole: _Floats | None = None,
    ) -> None: ...
    @property
    def weight_ih(self) -> _Floats: ...
    @property
    def weight_hh(self) -> _Floats: ...
    @property
    def bias_ih(self) -> _Floats: ...
    @property
    def bias_hh(self) -> _Floats: ...
    @property
    def weight_hr(self) -> _Floats: ...
    @property
    def peephole(self) -> _Floats | None: ...

class ProjectedLstmTape:
    """What a projected LSTM forward recorded for its backward; made by projected_lstm_forward."""

    @property
    def gates(self) -> _Floats | None:
        """(T, B, K*H) read-only activated gates, or None without a tape."""

    @property
    def cells(self) -> _Floats | None:
        """(T, B, H) read-only c_t, or None without a tape."""

    @property
    def cell_out(self) -> _Floats | None:
        """(T, B, H) read-only o * tanh(c_t) before the projection, or None without a tape."""

    @property
    def c_n(self) -> _Floats:
        """(B, H) read-only: each sequence's last c_t."""

    @property
    def options(self) -> LstmOptions:
        """The LstmOptions the forward ran with."""

class LayerNormLstmWeights:
    """A layer-norm LSTM layer-direction's weights (or their gradients) by name: references, not copies."""

    def __init__(
        self,
        weight_ih: _Floats,
        weight_hh: _Floats,
        bias_ih: _Floats,
        bias_hh: _Floats,
        layer_norm_ih_weight: _Floats,
        layer_norm_hh_weight: _Floats,
        layer_norm_cell_weight: _Floats,
        layer_norm_cell_bias: _Floats,
    ) -> None: ...
    @property
    def weight_ih(self) -> _Floats: ...
    @property
    def weight_hh(self) -> _Floats: ...
    @property
    def bias_ih(self) -> _Floats: ...
    @property
    def bias_hh(self) -> _Floats: ...
    @property
    def layer_norm_ih_weight(self) -> _Floats: ...
    @property
    def layer_norm_hh_weight(self) -> _Floats: ...
    @property
    def layer_norm_cell_weight(self) -> _Floats: ...
    @property
    def layer_norm_cell_bias(self) -> _Floats: ...

class LayerNormLstmTape:
    """What a layer-norm LSTM forward recorded for its backward; made by layer_norm_lstm_forward."""

    @property
    def gates(self) -> _Floats | None:
        """(T, B, 4H) read-only activated gates, or None without a tape."""

    @property
    def cells(self) -> _Floats | None:
        """(T, B, H) read-only c_t, or None without a tape."""

    @property
    def input_norm(self) -> _Floats | None:
        """(T, B, 4H) read-only normalised input products, or None without a tape."""

    @property
    def hidden_norm(self) -> _Floats | None:
        """(T, B, 4H) read-only normalised recurrent products, or None without a tape."""

    @property
    def cell_norm(self) -> _Floats | None:
        """(T, B, H) read-only normalised cells, or None without a tape."""

    @property
    def inv_std(self) -> _Floats | None:
        """(T, B, 3) read-only 1/std of the input, hidden and cell rows, or None without a tape."""

    @property
    def c_n(self) -> _Floats:
        """(B, H) read-only: each sequence's last c_t."""

    @property
    def options(self) -> LstmOptions:
        """The LstmOptions the forward ran with."""

class GruWeights:
    """A GRU layer-direction's weights (or their gradients) by name: references, not copies."""

    def __init__(self, weight_ih: _Floats, weight_hh: _Floats, bias_ih: _Floats, bias_hh: _Floats) -> None: ...
    @property
    def weight_ih(self) -> _Floats: ...
    @property
    def weight_hh(self) -> _Floats: ...
    @property
    def bias_ih(self) -> _Floats: ...
    @property
    def bias_hh(self) -> _Floats: ...

class GruTape:
    """What a GRU forward recorded for its backward; made by gru_forward, owned by the core."""

    @property
    def gates(self) -> _Floats:
        """(T, B, 4H) read-only: r, z, n and h_{t-1} W_hn^T + b_hn (reset_after) or r * h_{t-1}."""
    @property
    def reset_after(self) -> bool:
        """Whether the forward applied the reset gate after W_hn (PyTorch's form) or before it."""

class RnnWeights:
    """An RNN layer-direction's weights (or their gradients) by name: references, not copies."""

    def __init__(self, weight_ih: _Floats, weight_hh: _Floats, bias_ih: _Floats, bias_hh: _Floats) -> None: ...
    @property
    def weight_ih(self) -> _Floats: ...
    @property
    def weight_hh(self) -> _Floats: ...
    @property
    def bias_ih(self) -> _Floats: ...
    @property
    def bias_hh(self) -> _Floats: ...

class RnnTape:
    """What an RNN forward recorded for its backward; made by rnn_forward."""

    @property
    def hidden(self) -> _Floats:
        """(T, B, H) read-only: h_t, this direction's columns of y."""

    @property
    def nonlinearity(self) -> str | _Activation:
        """The forward's nonlinearity, as it was given."""
    @property
    def clip(self) -> float:
        """The forward's clip (0: none)."""

def lstm_forward(
    x: _Floats,
    weights: LstmWeights,
    h0: _Floats,
    c0: _Floats,
    y: _Floats,
    options: PassOptions,
    cell_options: LstmOptions,
    taped: bool,
) -> LstmTape: ...
def lstm_backward(
    tape: LstmTape,
    weights: LstmWeights,
    dy: _Floats,
    dh_n: _Floats | None,
    dc_n: _Floats | None,
    grads: LstmWeights,
    dx: _Floats,
    dh0: _Floats,
    dc0: _Floats,
    *,
    accumulate_dx: bool = False,
    hidden_grads: _Floats | None = None,
) -> None: ...
def projected_lstm_forward(
    x: _Floats,
    weights: ProjectedLstmWeights,
    h0: _Floats,
    c0: _Floats,
    y: _Floats,
    options: PassOptions,
    cell_options: LstmOptions,
    taped: bool,
) -> ProjectedLstmTape: ...
def projected_lstm_backward(
    tape: ProjectedLstmTape,
    weights: ProjectedLstmWeights,
    dy: _Floats,
    dh_n: _Floats | None,
    dc_n: _Floats | None,
    grads: ProjectedLstmWeights,
    dx: _Floats,
    dh0: _Floats,
    dc0: _Floats,
    *,
    accumulate_dx: bool = False,
    hidden_grads: _Floats | None = None,
) -> None: ...
def layer_norm_lstm_forward(
    x: _Floats,
    weights: LayerNormLstmWeights,
    h0: _Floats,
    c0: _Floats,
    y: _Floats,
    options: PassOptions,
    cell_options: LstmOptions,
    taped: bool,
) -> LayerNormLstmTape: ...
def layer_norm_lstm_backward(
    tape: LayerNormLstmTape,
    weights: LayerNormLstmWeights,
    dy: _Floats,
    dh_n: _Floats | None,
    dc_n: _Floats | None,
    grads: LayerNormLstmWeights,
    dx: _Floats,
    dh0: _Floats,
    dc0: _Floats,
    *,
    accumulate_dx: bool = False,
    hidden_grads: _Floats | None = None,
) -> None: ...
def gru_forward(
    x: _Floats,
    weights: GruWeights,
    h0: _Floats,
    y: _Floats,
    options: PassOptions,
    taped: bool,
    *,
    reset_after: bool = True,
    activations: _Activations | None = None,
    clip: float = 0.0,
) -> GruTape | None: ...
def gru_backward(
    tape: GruTape,
    weights: GruWeights,
    dy: _Floats,
    dh_n: _Floats | None,
    grads: GruWeights,
    dx: _Floats,
    dh0: _Floats,
    *,
    accumulate_dx: bool = False,
    hidden_grads: _Floats | None = None,
) -> None: ...
def rnn_forward(
    x: _Floats,
    weights: RnnWeights,
    h0: _Floats,
    y: _Floats,
    options: PassOptions,
    nonlinearity: str | _Activation,
    taped: bool,
    *,
    clip: float = 0.0,
) -> RnnTape | None: ...
def rnn_backward(
    tape: RnnTape,
    weights: RnnWeights,
    dy: _Floats,
    dh_n: _Floats | None,
    grads: RnnWeights,
    dx: _Floats,
    dh0: _Floats,
    *,
    accumulate_dx: bool = False,
    hidden_grads: _Floats | None = None,
) -> None: ...
def set_num_threads(threads: int) -> None: ...
def get_num_threads() -> int: ...
def requested_threads() -> int: ...
def load_sensor() -> _LoadSensorState: ...
def reset_load_sensor(enabled: bool) -> None: ...
def fingerprint(array: NDArray[Any]) -> int: ...
def retain_freed_memory() -> bool: ...
def fma_peak_gflops(threads: int, seconds: float = 0.5) -> float: ...
def read_rate_gbps(bytes: int, seconds: float = 0.2) -> float: ...

# Reduced precision (cpp/bindings/reduced.cpp): float32 activations and outputs.
class ReducedMatrix:
    """A weight matrix in reduced precision, packed once: 'int8' values (rows, depth) with float32 row
    scales, or 'bfloat16' values as uint16 bits (scales None)."""

    def __init__(self, precision: str, values: NDArray[Any], scales: NDArray[np.float32] | None = None) -> None: ...
    @property
    def precision(self) -> str: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def nbytes(self) -> int:
        """Bytes of the packed values."""
    @property
    def kernel(self) -> str:
        """The kernel its products run on here: 'amx+avx512_vnni', 'avx512_vnni', 'amx_bf16',
        'avx512_bf16', 'avx2' or 'portable'."""

class ReducedWeights:
    """A layer-direction's weights for the reduced forwards (the LSTM's peepholes (3, H) or None)."""

    def __init__(
        self,
        weight_ih: ReducedMatrix,
        weight_hh: ReducedMatrix,
        bias_ih: NDArray[np.float32],
        bias_hh: NDArray[np.float32],
        peephole: NDArray[np.float32] | None = None,
        weight_hr: ReducedMatrix | None = None,
    ) -> None: ...
    @property
    def weight_ih(self) -> ReducedMatrix: ...
    @property
    def weight_hh(self) -> ReducedMatrix: ...
    @property
    def weight_hr(self) -> ReducedMatrix | None: ...

class ReducedLstmResult:
    """What reduced_lstm_forward leaves besides y."""

    @property
    def c_n(self) -> NDArray[np.float32]:
        """(B, H): each sequence's last c_t."""

def reduced_lstm_forward(
    x: NDArray[np.float32],
    weights: ReducedWeights,
    h0: NDArray[np.float32],
    c0: NDArray[np.float32],
    y: NDArray[np.float32],
    options: PassOptions,
    cell_options: LstmOptions,
    taped: bool = False,
) -> ReducedLstmResult: ...
def reduced_projected_lstm_forward(
    x: NDArray[np.float32],
    weights: ReducedWeights,
    h0: NDArray[np.float32],
    c0: NDArray[np.float32],
    y: NDArray[np.float32],
    options: PassOptions,
    cell_options: LstmOptions,
    taped: bool = False,
) -> ReducedLstmResult: ...
def reduced_gru_forward(
    x: NDArray[np.float32],
    weights: ReducedWeights,
    h0: NDArray[np.float32],
    y: NDArray[np.float32],
    options: PassOptions,
    taped: bool = False,
    *,
    reset_after: bool = True,
    activations: _Activations | None = None,
    clip: float = 0.0,
) -> None: ...
def reduced_rnn_forward(
    x: NDArray[np.float32],
    weights: ReducedWeights,
    h0: NDArray[np.float32],
    y: NDArray[np.float32],
    options: PassOptions,
    nonlinearity: str | _Activation,
    taped: bool = False,
    *,
    clip: float = 0.0,
) -> None: ...
def reduced_product(weights: ReducedMatrix, a: NDArray[np.float32]) -> NDArray[np.float32]: ...

# The narrow path of prepared inference (cpp/bindings/narrow.cpp).
class NarrowPass:
    """A layer-direction's forward bound to its weights and options (made by the *_narrow_pass functions)."""

class NarrowStack:
    """A prepared layer's passes run as one call: (x, state) -> (y, state)."""

    def __init__(
        self,
        passes: Sequence[NarrowPass],
        layers: int,
        directions: int,
        batch_first: bool,
        width: int,
        cell_width: int,
        dtype: np.dtype[Any],
    ) -> None: ...
    def __call__(self, x: object, state: object = None) -> tuple[_Floats, Any] | None:
        """(y, state), or None when x or the state is not in the form the core reads."""
    def step(self, x_t: object, state: object = None) -> tuple[_Floats, Any] | None:
        """One step: x_t (B, I) -> (y_t (B, D*W), state), or None as __call__."""

def lstm_narrow_pass(weights: LstmWeights, options: PassOptions, cell_options: LstmOptions, taped: bool) -> NarrowPass: ...
def projected_lstm_narrow_pass(
    weights: ProjectedLstmWeights, options: PassOptions, cell_options: LstmOptions, taped: bool
) -> NarrowPass: ...
def gru_narrow_pass(
    weights: GruWeights,
    options: PassOptions,
    taped: bool,
    *,
    reset_after: bool = True,
    activations: _Activations | None = None,
    clip: float = 0.0,
) -> NarrowPass: ...
def rnn_narrow_pass(
    weights: RnnWeights, options: PassOptions, nonlinearity: str | _Activation, taped: bool, *, clip: float = 0.0
) -> NarrowPass: ...
def reduced_lstm_narrow_pass(
    weights: ReducedWeights, options: PassOptions, cell_options: LstmOptions, taped: bool = False
) -> NarrowPass: ...
def reduced_gru_narrow_pass(
    weights: ReducedWeights,
    options: PassOptions,
    taped: bool = False,
    *,
    reset_after: bool = True,
    activations: _Activations | None = None,
    clip: float = 0.0,
) -> NarrowPass: ...
def reduced_rnn_narrow_pass(
    weights: ReducedWeights, options: PassOptions, nonlinearity: str | _Activation, taped: bool = False, *, clip: float = 0.0
) -> NarrowPass: ...
