"""The job-type declarations: each is complete, and what is derived from them covers them all."""

from __future__ import annotations

import importlib

import pytest

from core.jobtypes import (
    FACE_DETECTOR,
    JOB_TYPES,
    JobRequestError,
    all_stages,
    job_task_modules,
    models_on,
    stage_of,
)
from core.queues import CPU_QUEUE, GPU_QUEUE, QUEUES, TASK_ROUTES


def test_every_stage_is_routed_to_its_declared_queue() -> None:
    for _job_type, stage in all_stages():
        assert stage.queue in QUEUES
        assert TASK_ROUTES[stage.task_name] == {"queue": stage.queue}
    names = [stage.task_name for _type, stage in all_stages()]
    assert len(names) == len(set(names))  # a task runs one stage of one type


def test_every_stage_task_is_defined_by_its_declared_module() -> None:
    from celery import current_app

    for _job_type, stage in all_stages():
        module = importlib.import_module(stage.module)
        assert stage.module in job_task_modules()
        assert stage.task_name in current_app.tasks, (stage.task_name, module.__name__)
        assert current_app.tasks[stage.task_name].__module__ == stage.module


def test_the_types_needing_models_have_them_loaded_on_their_queue() -> None:
    gpu_models = models_on(GPU_QUEUE)
    assert set(gpu_models) == {
        "SEGMENTATION_MODEL",
        "SEQUENCE_MODEL",
        "CLASSIFICATION_MODEL",
        FACE_DETECTOR,
    }
    assert models_on(CPU_QUEUE) == []  # a cpu worker never loads TensorFlow


def test_registry_settings_named_by_the_declarations_exist() -> None:
    from core.config import Settings

    for job_type in JOB_TYPES.values():
        for model in job_type.models:
            if model != FACE_DETECTOR:
                assert (
                    model in Settings.model_fields and f"{model}_VERSION" in Settings.model_fields
                )


@pytest.mark.parametrize("name", sorted(JOB_TYPES))
def test_the_params_schema_names_what_the_validator_accepts(name: str) -> None:
    job_type = JOB_TYPES[name]
    with pytest.raises(JobRequestError, match="Unknown parameter"):
        job_type.validate_params({"no_such_param": 1})
    for param in job_type.param_names:
        # A wrong value of a declared param is refused for its value, never as unknown.
        try:
            job_type.validate_params({param: object()})
        except JobRequestError as exc:
            assert "Unknown parameter" not in exc.message, (name, param)
    assert job_type.params_schema["additionalProperties"] is False


def test_stage_of_finds_each_task() -> None:
    assert stage_of("scanqueue.head_circumference.measure") == (JOB_TYPES["head_circumference"], 1)
    assert stage_of("scanqueue.send_email") is None


def test_a_child_type_is_a_declared_type() -> None:
    for job_type in JOB_TYPES.values():
        if job_type.child_type is not None:
            assert job_type.child_type in JOB_TYPES and job_type.child_params is not None


def test_a_summary_names_a_result_field() -> None:
    for job_type in JOB_TYPES.values():
        if job_type.summary is not None:
            assert job_type.summary[0] in job_type.result_schema["properties"], job_type.name
