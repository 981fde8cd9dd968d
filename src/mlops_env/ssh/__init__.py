"""The SSH layer: the tool's keys, its pinned known_hosts, the OpenSSH config it writes, and the
paramiko transport.

- ``keys``: mlops-env's ED25519 client key (made, read, checked: 0600).
- ``knownhosts``: the tool's known_hosts, keyed by ``HostKeyAlias`` ``mlops-env-NAME``.
- ``config``: the Host blocks in the tool's SSH config and the ``Include`` in the user's.
- ``overrides``: what ``ssh -G`` really uses for an alias, and the user's lines that win over ours.
- ``transport``: ``SSHTransport`` (paramiko, pinned host key) and the host-key probe.
- ``connect``: one connection with the pinned key; the first contact with a box we did not make.

paramiko is imported only by ``transport`` (and inside functions elsewhere): ``mlops-env --help``
does not load it.
"""
