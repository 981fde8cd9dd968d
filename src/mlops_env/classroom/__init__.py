"""``mlops-env class ...``: a class of EC2 workstations from one roster (docs/class.md).

- ``roster``: the roster file (YAML), validated where it is read; errors name the line.
- ``ghkeys``: students' public keys from GitHub's ``USER.keys`` endpoint.
- ``steps``: the box side of a student's workstation (their keys in ``authorized_keys``).
- ``fleet``: ``class up|status|stop|start|down``: every student's workstation through the same
  pipeline and provider as ``up ec2``, in a bounded pool.
- ``bundle``: what a student gets to connect (``class bundle``, ``join``).

Heavy SDKs are imported inside functions only: ``mlops-env --help`` must not load them.
"""

from __future__ import annotations

TAG_CLASS = "mlops-env:class"  # on every resource of a class's workstations


def workstation_name(class_name: str, student: str) -> str:
    """The workstation of ``student`` in ``class_name``: ``CLASS-STUDENT``."""
    return f"{class_name}-{student}"
