"""The LSTM layer and its variants: peephole, coupled input-forget gate, forget bias, ablation."""

from __future__ import annotations

import numbers

import numpy as np

import lstmcore._core as _core
from lstmcore._typing import DTypeLike
from lstmcore._util.checks import as_numeric_array, check_finite_real, shape_text
from lstmcore.reference._activations import Activations
from lstmcore.rnn._activations import as_config, check_activation, check_clip, core_spec
from lstmcore.rnn._recurrent import CoreCall, _GatedRecurrent, check_probability

# Gates a user can trace or clamp, in the order the core's clamps take them.
GATE_NAMES = ("input", "forget", "candidate", "output")
# layer_norm=True: the parameters, in registration order.
_LAYER_NORM_KINDS = ("layer_norm_ih_weight", "layer_norm_hh_weight", "layer_norm_cell_weight", "layer_norm_cell_bias")


class LSTM(_GatedRecurrent):
    """Long short-term memory, PyTorch's ``nn.LSTM`` formulation and parameter names.

    Gates i, f, g, o stacked in that order in ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}``
    (4H, H), ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (4H,); ``_reverse`` for the backward
    direction. State is ``(h, c)``, each (num_layers * D, B, H).

    Options (README, "LSTM variants", gives the equations):

    - ``peephole=True``: diagonal peepholes, ``weight_peephole_l{k}`` (3, H) rows p_i, p_f, p_o.
    - ``coupled=True``: forget gate 1 - i; the weights hold 3 gate blocks i, g, o. With
      ``peephole=True`` too (CIFG with peepholes), ``weight_peephole_l{k}`` is (2, H):
      rows p_i, p_o.
    - ``bias=False``: no bias parameters (and no keys for them), as PyTorch's.
    - ``reverse=True``: the one direction runs from each sequence's own end (with
      ``lengths``, from its last real step), outputs in the input's time order: ONNX's
      ``direction="reverse"``. Not with ``bidirectional``, nor ``step``.
    - ``forget_bias=b``: ``bias_ih`` forget rows start at b and ``bias_hh`` forget rows at 0
      (so the forget gate starts near sigmoid(b)); None keeps PyTorch's initialisation.
    - ``proj_size=P``: PyTorch's projected LSTM, h = (o * tanh(c)) W_hr^T with
      ``weight_hr_l{k}`` (P, H); ``weight_hh`` is (4H, P), h states (L*D, B, P).
    - ``dropout=p``: dropout on the input of every layer but the first, in training.
    - ``recurrent_dropout=p``: one dropout mask per sequence on h_{t-1} where it enters
      the recurrent product (variational dropout), in training.
    - ``zoneout=p``: each unit keeps its previous h and c with probability p (masks per
      step) in training, and with weight p (the expectation) at inference.
    - ``layer_norm=True``: layer-normalised gate pre-activations and cell (Ba et al. 2016),
      gains ``layer_norm_ih_weight_l{k}``, ``layer_norm_hh_weight_l{k}`` (4H) and
      ``layer_norm_cell_weight_l{k}``, bias ``layer_norm_cell_bias_l{k}`` (H).
    - ``gate_activation`` (i, f, o; default "sigmoid"), ``activation`` (g, and tanh(c) in
      h = o * tanh(c); default "tanh"), ``cell_activation`` (that h's alone, ONNX's third
      activation; None: ``activation``) and ``clip=c`` (every gate's activation input,
      peephole term included, clipped to [-c, c]): ONNX's activations and clip, with
      ``peephole`` and ``coupled`` (ONNX's P and input_forget) or without; not with
      ``proj_size`` or ``layer_norm``. An activation is one of "sigmoid", "tanh", "relu",
      "hard_sigmoid", "linear", "softsign", or ("hard_sigmoid", alpha, beta) (the name
      alone: ONNX's 0.2, 0.5).
    Dropout and zoneout masks come from a generator seeded by ``seed``.
    """

    _state_names = ("h", "c")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        batch_first: bool = True,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        dropout: float = 0.0,
        peephole: bool = False,
        coupled: bool = False,
        forget_bias: float | None = None,
        proj_size: int = 0,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        layer_norm: bool = False,
        bias: bool = True,
        reverse: bool = False,
        gate_activation: str | tuple[str, float, float] = "sigmoid",
        activation: str | tuple[str, float, float] = "tanh",
        cell_activation: str | tuple[str, float, float] | None = None,
        clip: float | None = None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            dtype=dtype,
            seed=seed,
            dropout=dropout,
            bias=bias,
            reverse=reverse,
        )
        if isinstance(proj_size, bool) or not isinstance(proj_size, numbers.Integral):
            raise TypeError(f"expected proj_size as an int, got {type(proj_size).__name__}")
        if not 0 <= proj_size < self.hidden_size:
            raise ValueError(f"expected proj_size in [0, hidden_size) = [0, {self.hidden_size}), got {proj_size}")
        self.proj_size = int(proj_size)
        self.recurrent_dropout = check_probability(recurrent_dropout, "recurrent_dropout")
        self.zoneout = check_probability(zoneout, "zoneout")
        if self.proj_size and (self.recurrent_dropout or self.zoneout):
            raise ValueError("recurrent_dropout and zoneout are not supported with proj_size")
        self.peephole = bool(peephole)
        self.coupled = bool(coupled)
        self.layer_norm = bool(layer_norm)
        if self.layer_norm and (self.peephole or self.coupled or self.proj_size or self.recurrent_dropout or self.zoneout):
            raise ValueError(
                "layer_norm=True combines with lengths, stacking, bidirectional, dropout and ablation, "
                "but not with peephole, coupled, proj_size, recurrent_dropout or zoneout"
            )
        if forget_bias is not None:
            if isinstance(forget_bias, bool) or not isinstance(forget_bias, numbers.Real):
                raise TypeError(f"expected forget_bias as a number or None, got {type(forget_bias).__name__}")
            if self.coupled:
                raise ValueError("forget_bias needs a forget gate; coupled=True has none (f = 1 - i)")
            if not self.bias:
                raise ValueError("forget_bias sets the forget gate's bias; bias=False has none")
            forget_bias = check_finite_real(forget_bias, "forget_bias")
            if abs(forget_bias) > float(np.finfo(self.dtype).max):  # infinite once stored in the parameters
                raise ValueError(f"expected forget_bias finite in {self.dtype.name}, got {forget_bias}")
        self.forget_bias = forget_bias
        self.gate_activation = check_activation(gate_activation, "gate_activation")
        self.activation = check_activation(activation, "activation")
        self.cell_activation = None if cell_activation is None else check_activation(cell_activation, "cell_activation")
        self.clip = check_clip(clip)
        if self._chosen_activations() and (self.proj_size or self.layer_norm):
            raise ValueError(
                "activations other than the defaults and clip are supported on the LSTM's plain, peephole, coupled "
                "and peephole+coupled cells (and the GRU and RNN), not with proj_size or layer_norm; got "
                f"{self._activation_options()} with proj_size={self.proj_size}, layer_norm={self.layer_norm}"
            )
        self._init_params()
        if forget_bias is not None:
            hidden = self.hidden_size
            for name in self.params:
                if name.startswith("bias_ih"):
                    self.params[name][hidden : 2 * hidden] = forget_bias
                elif name.startswith("bias_hh"):
                    self.params[name][hidden : 2 * hidden] = 0

    def _activation_options(self):
        """The activation keywords off their defaults, by name."""
        found = {
            "gate_activation": self.gate_activation,
            "activation": self.activation,
            "cell_activation": self.cell_activation,
            "clip": self.clip,
        }
        defaults = {"gate_activation": "sigmoid", "activation": "tanh", "cell_activation": None, "clip": None}
        return {name: value for name, value in found.items() if value != defaults[name]}

    def _chosen_activations(self):
        """[gate, candidate, output] and clip, or None for the default cell's sigmoid and tanh."""
        output = self.activation if self.cell_activation is None else self.cell_activation
        chosen = [self.gate_activation, self.activation, output]
        if chosen == ["sigmoid", "tanh", "tanh"] and self.clip is None:
            return None
        return chosen

    @property
    def cell(self):
        """The core's cell kind: 'plain', 'peephole', 'coupled', 'peephole_coupled', or with
        chosen activations or clip 'general', 'general_peephole', 'general_coupled',
        'general_peephole_coupled'."""
        form = "_".join(word for word, on in (("peephole", self.peephole), ("coupled", self.coupled)) if on)
        if self._chosen_activations():
            return "_".join(("general", form)) if form else "general"
        return form or "plain"

    @property
    def output_size(self):
        return self.proj_size or self.hidden_size

    def _state_sizes(self):
        return (self.output_size, self.hidden_size)

    def _gate_blocks(self):
        return 3 if self.coupled else 4

    def _param_kinds(self):
        kinds = super()._param_kinds()
        kinds += ("weight_hr",) if self.proj_size else ()
        kinds += _LAYER_NORM_KINDS if self.layer_norm else ()
        kinds += ("weight_peephole",) if self.peephole else ()
        return kinds

    def _kind_shapes(self, layer_input):
        shapes = super()._kind_shapes(layer_input)
        # p_i, p_f, p_o; a coupled cell has no forget gate of its own, so no p_f.
        shapes["weight_peephole"] = (2 if self.coupled else 3, self.hidden_size)
        shapes["weight_hr"] = (self.proj_size, self.hidden_size)
        rows = 4 * self.hidden_size
        shapes.update(
            layer_norm_ih_weight=(rows,),
            layer_norm_hh_weight=(rows,),
            layer_norm_cell_weight=(self.hidden_size,),
            layer_norm_cell_bias=(self.hidden_size,),
        )
        return shapes

    def get_config(self):
        config = super().get_config()
        config.update(
            peephole=self.peephole,
            coupled=self.coupled,
            forget_bias=self.forget_bias,
            proj_size=self.proj_size,
            recurrent_dropout=self.recurrent_dropout,
            zoneout=self.zoneout,
            layer_norm=self.layer_norm,
            gate_activation=as_config(self.gate_activation),
            activation=as_config(self.activation),
            cell_activation=None if self.cell_activation is None else as_config(self.cell_activation),
            clip=self.clip,
        )
        return config

    def _init_params(self):
        super()._init_params()
        # Layer norm starts as the identity: gains 1, bias 0 (Ba et al. 2016).
        for name, value in self.params.items():
            if name.startswith("layer_norm"):
                value[...] = 0 if name.startswith("layer_norm_cell_bias") else 1

    # ----------------------------------------------------------------- state

    def _unpack_state(self, state, name):
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(f"expected {name} as an (h, c) pair of arrays, got {type(state).__name__}")
        return state

    def _pack_state(self, parts):
        return tuple(parts)

    def _final_tape_states(self, core_tape):
        return [core_tape.c_n]

    # ----------------------------------------------------------------- gates

    def _checked_ablation(self, ablate):
        """``ablate={"forget": 1.0, "input": values, ...}`` as the core's clamps.

        A value is a number (every unit), an (H,) array (per unit) or an (L*D, H) array
        (per layer-direction and unit); NaN entries leave that unit's gate alone.
        """
        count = self.num_layers * self.num_directions
        if ablate is None:
            return [None] * count
        if not isinstance(ablate, dict):
            raise TypeError(f"expected ablate as a dict gate -> value, got {type(ablate).__name__}")
        hidden = self.hidden_size
        clamps = [[None] * 4 for _ in range(count)]
        for gate, value in ablate.items():
            if gate not in GATE_NAMES:
                raise ValueError(f"expected ablate keys among {list(GATE_NAMES)}, got {gate!r}")
            if gate == "forget" and self.coupled:
                raise ValueError("a coupled LSTM has no forget gate of its own to clamp (f = 1 - i); clamp 'input'")
            value = as_numeric_array(value, f"ablate[{gate!r}]").astype(self.dtype)
            if np.isinf(value).any():  # NaN is meaningful (leave the unit alone), infinity is not
                raise ValueError(f"expected ablate[{gate!r}] as finite values or NaN, got {value[np.isinf(value)].flat[0]}")
            if value.ndim == 0:
                value = np.full((count, hidden), value, self.dtype)
            elif value.shape == (hidden,):
                value = np.broadcast_to(value, (count, hidden))
            elif value.shape != (count, hidden):
                raise ValueError(
                    f"expected ablate[{gate!r}] as a number or of shape {shape_text((hidden,))} or "
                    f"{shape_text((count, hidden))}, got {shape_text(value.shape)}"
                )
            for index in range(count):
                clamps[index][GATE_NAMES.index(gate)] = np.ascontiguousarray(value[index])
        return clamps

    def _named_gates(self, core_tape):
        """Trace names -> (T, B, H) views of one run's tape: gates, and cell state."""
        gates, cells = core_tape.gates, core_tape.cells
        hidden = self.hidden_size
        blocks = ("input", "candidate", "output") if self.coupled else GATE_NAMES
        named = {name: gates[:, :, k * hidden : (k + 1) * hidden] for k, name in enumerate(blocks)}
        chosen = self._chosen_activations()
        if chosen:  # a general cell's tape holds each gate's activation input
            acts = Activations(*chosen, clip=self.clip)
            clamps = core_tape.options.clamps or [None] * 4
            for name in blocks:
                value = (acts.candidate if name == "candidate" else acts.gate)(named[name])[0]
                held = clamps[GATE_NAMES.index(name)]
                named[name] = value if held is None else np.where(np.isnan(held), value, held)
        if self.coupled:
            named["forget"] = 1 - named["input"]
        named["cell"] = cells
        return {name: named[name] for name in GATE_NAMES + ("cell",)}

    # ----------------------------------------------------------------- core calls

    def _regularizers(self, steps, batch, training):
        """This run's recurrent dropout mask and zoneout masks (training) or rate (inference)."""
        hidden, rng = self.hidden_size, self._dropout_rng
        found = {"recurrent_mask": None, "zoneout_h": None, "zoneout_c": None, "zoneout_rate": 0.0}
        if training and self.recurrent_dropout > 0:
            keep = 1.0 - self.recurrent_dropout
            found["recurrent_mask"] = (rng.random((batch, hidden)) < keep).astype(self.dtype) / self.dtype.type(keep)
        if self.zoneout > 0 and training:
            # 1 where a unit keeps its previous state this step.
            found["zoneout_h"] = (rng.random((steps, batch, hidden)) < self.zoneout).astype(self.dtype)
            found["zoneout_c"] = (rng.random((steps, batch, hidden)) < self.zoneout).astype(self.dtype)
        elif self.zoneout > 0:
            found["zoneout_rate"] = self.zoneout
        return found

    def _core_weights(self, weights):
        """One layer-direction's weights (or gradients) by name, as the core takes them."""
        common = [weights[name] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if self.layer_norm:
            return _core.LayerNormLstmWeights(*common, *(weights[kind] for kind in _LAYER_NORM_KINDS))
        peephole = weights.get("weight_peephole")
        if self.proj_size:
            return _core.ProjectedLstmWeights(*common, weights["weight_hr"], peephole=peephole)
        return _core.LstmWeights(*common, peephole=peephole)

    def _core_call(self, weights, reverse, offset, batch_first, batch_sizes, clamps, steps, batch, training, traced):
        pass_options = _core.PassOptions(reverse=reverse, y_offset=offset, batch_sizes=batch_sizes, batch_first=batch_first)
        chosen = self._chosen_activations()
        cell_options = _core.LstmOptions(
            cell=self.cell,
            clamps=clamps,
            activations=None if chosen is None else core_spec(chosen),
            clip=self.clip or 0.0,
            **self._regularizers(steps, batch, training),
        )
        if self.layer_norm:
            forward = _core.layer_norm_lstm_forward
        else:
            forward = _core.projected_lstm_forward if self.proj_size else _core.lstm_forward
        return CoreCall(forward, self._core_weights(weights), pass_options, (cell_options, traced or training))

    def _core_backward_function(self):
        if self.layer_norm:
            return _core.layer_norm_lstm_backward
        return _core.projected_lstm_backward if self.proj_size else _core.lstm_backward
