"""A resumed build may change execution-only knobs (download threads) but nothing that changes what it writes."""

from pipeline.build import EXECUTION_ONLY, resume_identity
from pipeline.build_config import BuildConfig
from pipeline.core.config import config_hash, validate_config


def cfg(**download) -> BuildConfig:
    data = {"input": {"path": "c.parquet"}, "output": "run", "match": {"metadata": "m.json"}, "download": download}
    return validate_config(BuildConfig, data, "test")


def test_threads_are_execution_only_but_still_recorded():
    assert ("download", "threads") in EXECUTION_ONLY
    a, b = cfg(threads=2), cfg(threads=24)
    assert resume_identity(a) == resume_identity(b)
    assert config_hash(a) != config_hash(b)  # the manifest still records what the run used
    assert b.download.threads == 24  # blanking for the identity does not touch the config itself


def test_process_slots_are_execution_only():
    assert ("download", "process_slots") in EXECUTION_ONLY
    assert resume_identity(cfg(process_slots=1)) == resume_identity(cfg(process_slots=8)) == resume_identity(cfg())
    assert cfg(process_slots=8).download.process_slots == 8
    # both knobs blanked together, not only the last one listed for the section
    assert resume_identity(cfg(threads=2, process_slots=1)) == resume_identity(cfg(threads=24, process_slots=8))


def test_knobs_that_change_outputs_are_part_of_the_identity():
    base = resume_identity(cfg())
    assert resume_identity(cfg(rows_per_part=7)) != base
    assert resume_identity(cfg(fetch={"deadline_s": 3.0})) != base
