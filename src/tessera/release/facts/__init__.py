"""The facts a release documents, gathered from what the pipeline wrote: never typed into a document.

basis.py         fact / table shapes and the basis of a figure (measured, computed, estimated, declared)
inputs.py        reading the run's files (checkpoint, manifest, reports, exported weights) into Facts
distribution.py  provider, dates, distribution, downstream integration, the open-source exemption
model.py         the model's shape, context, weights, tokenizer
data.py          sources, per-language corpus and the tokens training drew
compute.py       training method, precision, stages, history, compute
energy.py        energy and emissions with their scope
evaluation.py    the released checkpoint's scores
"""

from tessera.release.facts.basis import BASES, Basis, fact, table
from tessera.release.facts.inputs import (
    Facts,
    WeightsFile,
    final_checkpoint_dir,
    gather_facts,
    read_exported_weights,
)
from tessera.release.facts.model import ISO_639_1

__all__ = [
    "BASES",
    "Basis",
    "Facts",
    "ISO_639_1",
    "WeightsFile",
    "fact",
    "final_checkpoint_dir",
    "gather_facts",
    "read_exported_weights",
    "table",
]
