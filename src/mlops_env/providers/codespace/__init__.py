"""``up codespace``: a GitHub Codespace as the workstation.

- ``provider``: ``CodespaceProvider`` (find, create, start, stop, delete; the SSH endpoint).
- ``github``: the GitHub REST client (token lookup, codespaces API).
- ``ghcli``: the GitHub CLI (``gh codespace ssh``) that carries the SSH connection.
"""
