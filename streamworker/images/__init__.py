"""The runtime images: built offline from Debian packages, with no container registry.

`recipe` says what goes into an image (hashes, the base's mmdebstrap command, the install
script, the build context, the labels) without touching anything; `docker_io` makes the
builder's Docker requests (import, a build step committed as a layer, build, inspect, a
version run); `debian_base` makes the shared base and the package lists once per build;
`apt_cache` is the shared deb cache; `builder` runs the steps per language (and
`streamworker languages`); `mirror` picks Debian's mirror. Kept apart from
`streamworker.languages` (the registry, data) and `streamworker.sandbox` (which runs the
images) so that neither of those depends on the builder.
"""
