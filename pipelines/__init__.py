"""Pure processing pipelines: inputs and parameters in, results and artifacts out.

No Celery and no database here, so every pipeline can be tested and benchmarked on its own.
"""
