"""Reposts recognised by what they show: perceptual frame hashes (PDQ) and
vPDQ-style video matching (``hashing``, ``matching``: pure), and the lookup
that links a new video to an earlier one (``linking``, over the stored hashes, ``hash_index``)."""
