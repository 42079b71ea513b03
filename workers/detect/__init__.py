"""Detectors: shared per-frame extractors (VGG16 features, face embeddings) and
the targets that score frames from them. One module per kind, each declaring a
``DetectorKind`` (with the ``FrameView`` of a frame it reads: ``views``); the
registry (``registry``) lists them and maps a bundle's ``kind`` to its kind."""
