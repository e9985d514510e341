"""One error hierarchy: every error a user can cause is an :class:`IcltestError` subclass.

The plugin turns an ``IcltestError`` into a short message that names the spec line (never a
traceback); anything else is a bug in icltest and is shown as one. Code must therefore raise the
most specific subclass for a user mistake and never catch a blanket ``ValueError`` to relabel it:
a bug that raises ``ValueError`` must stay visible as a bug.
"""
from __future__ import annotations


class IcltestError(Exception):
    """Base class of every error a user can cause and fix (spec, model, inputs, options)."""


class SpecFileError(IcltestError):
    """A spec file is malformed (YAML, schema). ``icltest.schema.SpecError`` is the concrete class."""


class ClaimSpecError(IcltestError):
    """A claim is valid YAML but impossible for this model or its inputs (e.g. head out of range).

    Attributes:
        where: ``file:line:col`` of the offending value.
        key: the dotted key in the claim.
        message: what is wrong and what to do.
    """

    def __init__(self, where: str, key: str, message: str) -> None:
        super().__init__(f"{where}: {key}: {message}")
        self.where, self.key, self.message = where, key, message


class ClaimKindError(IcltestError):
    """A claim kind is unknown, or the package / module that declares it is broken."""


class InputError(IcltestError):
    """Inputs cannot be built as asked (task unknown, probe too long, a reference that cannot serve).

    Claims re-raise it as a :class:`ClaimSpecError` at the key that asked for the inputs.
    """


class InterventionError(IcltestError):
    """An intervention names a hook point, head or shape the model does not have."""


class ModelError(IcltestError):
    """The model cannot be loaded or used (see the subclasses)."""


class ModelUnavailable(ModelError):
    """The model's files are not installed / reachable; the message says what to install."""


class DeviceUnavailable(ModelError):
    """The device asked for (spec ``device:`` or ``--icl-device``) does not exist on this machine.

    Checked before anything loads: a model moved to a missing device fails only after a full load.
    """


class UnsupportedArchitecture(ModelError):
    """The model's ``model_type`` has no adapter; the message lists the supported ones."""


class AttentionNotCaptured(ModelError):
    """The attention module returned no probabilities (a fused kernel such as SDPA ran)."""
