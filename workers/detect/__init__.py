"""Detectors: shared per-frame extractors (VGG16 features, face embeddings) and
the targets that score frames from them. One module per implementation; the
registry in ``workers.targets.bundle`` maps a bundle's ``kind`` to its class."""
