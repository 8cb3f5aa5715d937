"""The strict pydantic base of every clipforge config model; no I/O, no project imports.

It lives in `curation/` (the lowest layer) so that the algorithms' own configs need nothing above them;
`pipeline.core.config` re-exports it for the rest of the project.
"""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are rejected, docstrings become field descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)
