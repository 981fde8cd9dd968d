"""``up docker``: a workstation in a local Docker container.

- ``provider``: ``DockerProvider`` (the container, its published SSH port, its host key).
- ``host``: which engine the ``docker`` CLI would use (DOCKER_HOST, context, platform default).

The docker SDK is imported inside functions only: ``mlops-env --help`` does not load it.
"""
