"""The runtime images: built offline from Debian packages, with no container registry.

`recipe` says what goes into an image (hashes, the mmdebstrap command, the build
context, the labels) without touching anything; `docker_io` makes the builder's Docker
requests (import, build, inspect, a version run); `builder` runs the steps (mmdebstrap
into Docker's import, labels, `streamworker languages`); `mirror` picks Debian's mirror. Kept apart
from `streamworker.languages` (the registry, data) and `streamworker.sandbox` (which
runs the images) so that neither of those depends on the builder.
"""
