"""The formats everything else builds on: the lock model, cache layout and records, the verification verdict,
hashes, targets, variants and their Python dependencies.

May import no other stage: only the standard library, `kernel_lock.env` and `kernel_lock.errors`. The
verified load path starts here, so nothing in it may pull in pydantic, huggingface_hub or a later stage.
"""
