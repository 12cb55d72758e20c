"""Reference units: the scale at which amplitudes are measured.

Model size and tokens enter the laws as ``n = N / N_ref`` and ``d = D / D_ref`` and the
loss as ``L / loss_ref``, with the references set to the geometric means of the data.
The references are recorded in every fit, so that predictions at any scale use the
same units as the fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scaling:
    """Reference model size, tokens and per-domain loss of a fit.

    Attributes
    ----------
    n_ref : float
        Reference model size in parameters.
    d_ref : float
        Reference tokens.
    loss_ref : tuple of float
        Reference loss of each domain (nats).
    """

    n_ref: float
    d_ref: float
    loss_ref: tuple[float, ...]

    @classmethod
    def from_table(cls, table) -> "Scaling":
        """References from a table: geometric means of N, of D, and of all observed losses.

        The loss reference is one number shared by all domains (repeated per domain):
        the capacity split compares the amplitudes of different domains in absolute
        terms, so rescaling domains separately would change the law itself.
        """
        losses = np.asarray(table.losses, dtype=float)
        observed = losses[np.isfinite(losses)]
        loss_ref = float(np.exp(np.mean(np.log(observed)))) if observed.size else 1.0
        return cls(
            n_ref=float(np.exp(np.mean(np.log(table.model_size)))),
            d_ref=float(np.exp(np.mean(np.log(table.tokens)))),
            loss_ref=tuple([loss_ref] * len(table.domains)),
        )

    def scale_inputs(self, model_size, tokens) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(n, d)`` as column vectors ``(rows, 1)`` in reference units."""
        n = np.asarray(model_size, dtype=float).reshape(-1, 1) / self.n_ref
        d = np.asarray(tokens, dtype=float).reshape(-1, 1) / self.d_ref
        return n, d

    def to_dict(self) -> dict:
        return {"n_ref": self.n_ref, "d_ref": self.d_ref, "loss_ref": list(self.loss_ref)}

    @classmethod
    def from_dict(cls, data: dict) -> "Scaling":
        return cls(float(data["n_ref"]), float(data["d_ref"]), tuple(float(v) for v in data["loss_ref"]))
