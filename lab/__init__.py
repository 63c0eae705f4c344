"""The lab: training, datasets and evaluation of the registry's models; never imported at runtime.

Serving needs only ``models`` (the registry, loading, the face detector) and the released
``model.keras`` files, which hold standard Keras layers; the network definitions live here.
"""
