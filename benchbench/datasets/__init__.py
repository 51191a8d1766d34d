"""Datasets: real loaders and their procedural look-alikes, registered by decorator (datasets.md).

Importing this package imports each dataset module once, which runs its ``@register_dataset``.
"""

import benchbench.datasets.cars3d  # noqa: F401  (registers cars3d)
import benchbench.datasets.cars3d_synth  # noqa: F401  (registers cars3d-synth)
import benchbench.datasets.celeba  # noqa: F401  (registers celeba)
import benchbench.datasets.celeba_synth  # noqa: F401  (registers celeba-synth)
import benchbench.datasets.dsprites  # noqa: F401  (registers dsprites)
import benchbench.datasets.dsprites_synth  # noqa: F401  (registers dsprites-synth)
import benchbench.datasets.mpi3d  # noqa: F401  (registers mpi3d)
import benchbench.datasets.mpi3d_synth  # noqa: F401  (registers mpi3d-synth)
import benchbench.datasets.shapes3d  # noqa: F401  (registers shapes3d)
import benchbench.datasets.shapes3d_synth  # noqa: F401  (registers shapes3d-synth)
from benchbench.datasets.base import (
    DataConfig,
    DataSpec,
    GroundTruthData,
    ImageData,
    data_root,
    to_model_input,
)

__all__ = ["DataConfig", "DataSpec", "GroundTruthData", "ImageData", "data_root", "to_model_input"]
