"""All Hub access, through `huggingface_hub`: listings, refs and downloads, with errors translated to ours.

May import `core`.
"""
