"""classification: class probabilities for a set of images of one subject (gpu)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.jobtypes.params import (
    MODEL_PARAM_SCHEMAS,
    model_params,
    number_in,
    object_schema,
    reject_unknown,
)
from core.jobtypes.spec import SCAN_FORMATS, JobType, Stage
from core.queue_names import GPU_QUEUE

PARAMS_SCHEMA = object_schema(
    {
        **MODEL_PARAM_SCHEMAS,
        "uncertain_below": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Below this mean probability the prediction is 'uncertain'; "
            "default the model card's, else CLASSIFICATION_UNCERTAIN_BELOW.",
        },
    }
)

PROBABILITIES = {
    "type": "object",
    "description": "Class name -> probability.",
    "additionalProperties": {"type": "number"},
}

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prediction": {"type": "string", "description": "A class, or 'uncertain'."},
        "most_probable": {"type": "string"},
        "confidence": {"type": "number"},
        "uncertain_below": {"type": "number"},
        "probabilities": {**PROBABILITIES, "description": "The mean over the images."},
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "position": {"type": "integer"},
                    "probabilities": PROBABILITIES,
                    "most_probable": {"type": "string"},
                },
            },
        },
    },
}


def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """An optional registry classifier (and version) and confidence threshold."""
    reject_unknown(params, set(PARAMS_SCHEMA["properties"]))
    resolved = model_params(params)
    if "uncertain_below" in params:
        resolved["uncertain_below"] = number_in(params, "uncertain_below", 0.0, 1.0)
    return resolved


JOB_TYPE = JobType(
    name="classification",
    description=(
        "Classify one or more images of one subject with a registry classifier "
        "(default CLASSIFICATION_MODEL, the HC18 trimester model; params.model names "
        "another): class probabilities per image and their mean for the set, whose "
        "most probable class is the prediction, or 'uncertain' when its probability is "
        "below uncertain_below (the model card's, else 0.6)."
    ),
    stages=(
        Stage(
            "scanqueue.classification",
            GPU_QUEUE,
            "tasks.classification",
            models=("CLASSIFICATION_MODEL",),
        ),
    ),
    image_formats=SCAN_FORMATS,
    validate_params=validate_params,
    params_schema=PARAMS_SCHEMA,
    result_schema=RESULT_SCHEMA,
    max_files=30,
    summary=("prediction", ""),
    model_task="classification",
)
