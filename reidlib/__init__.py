"""reidlib: the thin library behind the faces-reid book.

One module per stage of Dietlmeier et al., "How important are faces for person
re-identification?" (arXiv 2010.06307): `synthetic` (default data), `datasets`, `detection`
(stage 1), `recall` (2), `anonymize` (3), `training` (4), `evaluation` (5), `statistics` (6);
`pipeline` runs them over a run directory whose file formats `runfiles` documents.
"""
__version__ = "0.1.0"
