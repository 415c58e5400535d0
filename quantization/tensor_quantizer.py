"""TensorQuantizer: the nn.Module that calibrates and fake-quantizes one tensor."""
from typing import Optional, Union

import torch
from torch import nn

from .calib import HistogramCalibrator, MaxCalibrator
from .descriptor import QUANT_DESC_8BIT_PER_TENSOR, QuantDescriptor, as_descriptor
from .tensor_quant import (MIN_LEARNED_AMAX, fake_quant, fake_quant_learned_amax, reduce_amax,
                           scale_from_amax)


#: What a quantizer quantizes (:attr:`TensorQuantizer.role`).
ROLES = ('input', 'weight', 'shared input')


class TensorQuantizer(nn.Module):
    """Fake-quantizes a tensor with symmetric INT8 (or ``num_bits``) quantization.

    State that must survive ``state_dict``, ``.to()`` and export is registered in ``__init__``:
    ``amax`` (persistent buffer; (0,) until calibrated, then () per tensor or (C,) per channel, in
    input units), ``scale`` and ``zero_point`` (non-persistent buffers derived from amax, the
    constants of exported Q/DQ nodes). amax and scale are updated in place while their shape
    stays. The enable flag is a Python bool (:attr:`is_enabled`), so forward never reads a
    tensor to branch; the state_dict carries it as the bool tensor ``enabled``, so skip lists
    survive checkpoints.

    ``learn_amax()`` (pytorch-quantization's ``learn_amax``) turns amax into an ``nn.Parameter``
    of the same name and shape, trained by the optimizer with the LSQ gradient of
    :func:`~quantization.tensor_quant.fake_quant_learned_amax`; the state_dict key stays
    ``amax``, so checkpoints and export treat a learned amax like a calibrated one.

    Modes, as in pytorch-quantization: ``enable_calib()`` feeds every forward input to the
    calibrator; ``enable_quant()`` fake-quantizes it; ``disable()`` makes the quantizer an
    identity. During ONNX export the lower bound becomes ``-2**(b-1)`` (-128), the only signed
    range ONNX's QuantizeLinear has; inputs inside ±amax give the same result.

    Args:
        quant_desc (QuantDescriptor | dict): Settings. Defaults to INT8 per tensor, histogram.
        num_channels (int, optional): Channels of a per-channel quantizer whose descriptor holds
            a fixed amax. Defaults to None.
        name (str): Shown in error messages; passes set it to the module path.
        role (str): What it quantizes, set by the quant module that builds it: 'input',
            'weight' or 'shared input' (one quantizer for every input of an add / concat).
    """

    #: State format. 2: versioned, keys ``amax`` ((), (C,) or empty when unset) and ``enabled``;
    #: 1 (unversioned files) has the same keys. amax of any shape with the right number of
    #: values loads (pytorch-quantization keeps dimensions: (C, 1, 1, 1)); its key names are
    #: mapped by :func:`quantization.checkpoint.from_pytorch_quantization`.
    _version = 2

    def __init__(self,
                 quant_desc: Union[QuantDescriptor, dict] = QUANT_DESC_8BIT_PER_TENSOR,
                 num_channels: Optional[int] = None,
                 name: str = 'TensorQuantizer',
                 role: str = 'input'):
        super().__init__()
        if role not in ROLES:
            raise ValueError(f'{name}: role must be one of {ROLES}, got {role!r}')
        self.quant_desc = as_descriptor(quant_desc)
        self.name = name
        self.role = role
        self._enabled = True
        self._if_quant = True
        self._if_calib = False
        self.amax_momentum: Optional[float] = None  # set while QAT tracks ranges
        desc = self.quant_desc
        if desc.calib_method == 'max':
            self._calibrator = MaxCalibrator(axis=desc.axis)
        else:
            self._calibrator = HistogramCalibrator(desc.num_bins, desc.num_bits, desc.unsigned,
                                                   desc.skip_zeros)
        self.register_buffer('amax', torch.empty(0))
        self.register_buffer('scale', torch.ones(()), persistent=False)
        self.register_buffer('zero_point', torch.zeros((), dtype=torch.int32), persistent=False)
        if desc.amax is not None:
            shape = () if desc.axis is None else (num_channels or 1, )
            self.set_amax(torch.full(shape, float(desc.amax)))

    # ----------------------------------------------------------------- modes
    def enable(self):
        self._enabled = True

    def disable(self):
        self._enabled = False

    def enable_quant(self):
        self._if_quant = True

    def disable_quant(self):
        self._if_quant = False

    def enable_calib(self):
        self._if_calib = True

    def disable_calib(self):
        self._if_calib = False

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def is_calibrating(self) -> bool:
        return self._enabled and self._if_calib

    @property
    def learns_amax(self) -> bool:
        """Whether amax is a trained ``nn.Parameter`` (:meth:`learn_amax`)."""
        return isinstance(self.amax, nn.Parameter)

    def learn_amax(self) -> nn.Parameter:
        """Make amax a trained Parameter (same key, shape and value) and return it, for the
        optimizer. Needs amax set (calibrate first); range tracking stops."""
        if not self.has_amax:
            raise RuntimeError(f'{self.name}: learn_amax needs amax set; calibrate first')
        if not self.learns_amax:
            value = self.amax.detach().clone()
            del self._buffers['amax']
            self.amax = nn.Parameter(value)
        self.amax_momentum = None
        return self.amax

    def fix_amax(self):
        """Stop training amax: it becomes a buffer again, same key, shape and value."""
        if self.learns_amax:
            value = self.amax.detach().clone()
            del self._parameters['amax']
            self.register_buffer('amax', value)
            self._update_qparams()

    @property
    def has_amax(self) -> bool:
        """Whether amax is set (by calibration, a descriptor or a loaded state_dict)."""
        return self.amax.numel() > 0

    @property
    def calibrator(self):
        return self._calibrator

    # ----------------------------------------------------------------- amax
    def set_amax(self, amax: Union[torch.Tensor, float]):
        """Set amax (() or (C,), >= 0, finite) and the scale / zero-point derived from it."""
        amax = torch.as_tensor(amax, dtype=torch.float32).detach()
        if not torch.isfinite(amax).all() or (amax < 0).any():
            raise ValueError(f'{self.name}: amax must be finite and >= 0, got {amax}')
        if self.quant_desc.axis is None and amax.numel() != 1:
            raise ValueError(
                f'{self.name}: per-tensor quantizer got amax of shape {tuple(amax.shape)}')
        amax = amax.reshape(()) if self.quant_desc.axis is None else amax.reshape(-1)
        self._store('amax', amax)
        self._update_qparams()

    def _store(self, name: str, value: torch.Tensor):
        """Write ``value`` into buffer ``name``: in place when the shape stays (references to the
        buffer stay valid), as a new tensor on the buffer's device otherwise."""
        buffer = getattr(self, name)
        if buffer.shape == value.shape:
            with torch.no_grad():
                buffer.copy_(value)
        elif isinstance(buffer, nn.Parameter):
            raise ValueError(f'{self.name}: a learned {name} of shape {tuple(buffer.shape)} '
                             f'cannot take shape {tuple(value.shape)}')
        else:
            setattr(self, name, value.to(device=buffer.device, dtype=buffer.dtype))

    def _update_qparams(self):
        if not self.has_amax:
            return
        self._store('scale', scale_from_amax(self.amax, self.quant_desc.quant_max))
        self._store('zero_point', torch.zeros(self.amax.shape, dtype=torch.int32))

    def load_calib_amax(self, method: str = 'max', strict: bool = True, **kwargs):
        """Compute amax from the calibrator and load it.

        Args:
            method (str): 'max', 'percentile', 'mse' or 'entropy' for histogram calibrators;
                max calibrators return their running max whatever the method.
            strict (bool): Raise when the calibrator saw no data; otherwise keep the old amax.
            **kwargs: Passed to the reduction, e.g. ``percentile=99.99``.
        """
        amax = self._calibrator.compute_amax(method, **kwargs)
        if amax is None:
            if strict:
                raise ValueError(f'{self.name}: calibrator saw no data; run calibration first '
                                 'or pass strict=False')
            return
        self.set_amax(amax)

    def sync_calibrator(self):
        """Merge the calibrator's statistics over the distributed ranks (every rank calls it);
        errors name this quantizer on every rank."""
        try:
            self._calibrator.sync()
        except ValueError as err:
            raise ValueError(f'{self.name}: {err}') from err

    def reset_amax(self):
        """Forget amax (a learned one becomes a buffer again); quantizing again needs
        calibration."""
        device = self.amax.device
        if self.learns_amax:
            del self._parameters['amax']
        self.register_buffer('amax', torch.empty(0, device=device))

    # ----------------------------------------------------------------- state
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + 'enabled'] = torch.tensor(self._enabled)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        saved_enabled = state_dict.pop(prefix + 'enabled', None)
        if saved_enabled is not None:
            self._enabled = bool(saved_enabled)
        elif strict:
            missing_keys.append(prefix + 'enabled')
        saved_amax = state_dict.get(prefix + 'amax')
        if isinstance(saved_amax, torch.Tensor) and saved_amax.numel() > 0:
            # () per tensor, (C,) per channel, whatever dimensions the file kept
            saved_amax = saved_amax.reshape(() if self.quant_desc.axis is None else (-1, ))
            state_dict[prefix + 'amax'] = saved_amax
        if (isinstance(saved_amax, torch.Tensor) and saved_amax.shape != self.amax.shape
                and not self.learns_amax):  # a learned amax reports the mismatch itself
            self.amax = torch.empty(saved_amax.shape, device=self.amax.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        self._update_qparams()

    # ----------------------------------------------------------------- forward
    def track_ranges(self, momentum: Optional[float]):
        """QAT range tracking from now on: activations (per tensor) follow the data with the EMA
        factor ``momentum``, weights and per-channel quantizers take the current max; None
        keeps amax fixed, and so does a learned amax (the optimizer moves it)."""
        if momentum is None or self.learns_amax:
            self.amax_momentum = None
        elif self.role == 'weight' or self.quant_desc.axis is not None:
            self.amax_momentum = 1.0
        else:
            self.amax_momentum = momentum

    def _track_amax(self, x: torch.Tensor):
        """QAT range tracking: ``amax = (1 - m) * amax + m * max|x|``."""
        batch_amax = reduce_amax(x, self.quant_desc.axis)
        if self.has_amax and self.amax.shape == batch_amax.shape:
            batch_amax = torch.lerp(self.amax, batch_amax, self.amax_momentum)
        self.set_amax(batch_amax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._enabled:
            return x
        if self._if_calib:
            if not torch.isfinite(x).all():
                raise ValueError(f'{self.name}: calibration input holds NaN or Inf; check the '
                                 'data and the layers before this one')
            try:
                self._calibrator.collect(x)
            except ValueError as err:
                raise ValueError(f'{self.name}: {err}') from err
        if not self._if_quant:
            return x
        if self.amax_momentum is not None and self.training:
            self._track_amax(x)
        if not self.has_amax:
            raise RuntimeError(f'{self.name}: quantizing before calibration (amax is not set); '
                               'calibrate first (CalibrationManager) or call disable_quant()')
        desc = self.quant_desc
        if desc.axis is not None and self.amax.numel() != x.shape[desc.axis]:
            raise ValueError(f'{self.name}: {self.amax.numel()} per-channel amax values for '
                             f'{x.shape[desc.axis]} channels on axis {desc.axis}')
        quant_min = desc.quant_min
        if torch.onnx.is_in_onnx_export() and not desc.unsigned:
            quant_min = -desc.quant_max - 1
        if self.learns_amax:
            with torch.no_grad():  # an optimizer step may have pushed amax below the floor
                self.amax.clamp_(min=MIN_LEARNED_AMAX)
            self._update_qparams()  # scale follows the trained amax (export reads it)
            if not torch.onnx.is_in_onnx_export():
                return fake_quant_learned_amax(x.float(), self.amax, desc.axis, quant_min,
                                               desc.quant_max).to(x.dtype)
        return fake_quant(x, self.scale, self.zero_point, desc.axis, quant_min, desc.quant_max)

    def extra_repr(self) -> str:
        desc = self.quant_desc
        if not self.has_amax:
            amax = 'amax=unset'
        elif self.amax.dim() == 0:
            amax = f'amax={self.amax.item():.4g}'
        else:
            low, high = self.amax.min().item(), self.amax.max().item()
            amax = f'amax=[{low:.4g}, {high:.4g}]({self.amax.numel()})'
        state = 'enabled' if self._enabled else 'disabled'
        if self.learns_amax:
            state += ' learned'
        return (f'{desc.num_bits}bit axis={desc.axis} calib={desc.calib_method} {amax} {state}'
                f'{" calib" if self._if_calib else ""}{"" if self._if_quant else " no-quant"}')
