"""Defaults the CLI shows in its help: kept apart from loader/models.py (which imports numpy and
PIL) so that `pgsearch load --help` imports neither."""

DEFAULT_MODEL = "openclip:ViT-B-16:datacomp_xl_s13b_b90k"
